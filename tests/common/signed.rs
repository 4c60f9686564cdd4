//! A signed DNS hierarchy on loopback, built at test time: a fake root, a TLD (`test.`) and
//! child zones signed with Debian's `ldnsutils` (`ldns-keygen`, `ldns-signzone`), some of them
//! broken on purpose, all served by one NSD; and Unbound as a recursive resolver iterating from
//! that root (a `stub-zone` per zone, since a referral's glue carries no port), either as a
//! plain iterator (Hearth's upstream) or validating with the fake root's key (the reference).
//!
//! Blocking (std), like `external`.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::external::{
    dns_query, free_port, read_or_empty, spawn_nsd, tool, udp_exchange, wait_until, Process,
    READY_WITHIN,
};

/// Where Debian puts unbound.
const UNBOUND: &str = "/usr/sbin/unbound";

/// How a child zone of `test.` is signed, or broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Child {
    /// Not signed, and no DS in `test.`: an insecure delegation proven by NSEC.
    Unsigned,
    /// Signed with NSEC3 (no opt-out): secure; holds an unsigned delegation (`plain.<zone>`).
    Nsec3,
    /// Signed with NSEC3 and opt-out, holding an unsigned delegation (`unsigned.<zone>`).
    Nsec3OptOut,
    /// `www` A altered after signing: its signature does not verify.
    BadSignature,
    /// Signed with dates in the past.
    Expired,
    /// Signed with dates in the future.
    NotYetValid,
    /// Signed with signatures that expire [`EXPIRES_AFTER`] after the build.
    ExpiresSoon,
    /// Signed, then its DNSKEY RRset removed.
    NoDnskey,
    /// The DS in `test.`, and the zone served with only its DNSKEY RRset signed.
    StrippedSignatures,
    /// Signed with one key, the DS in `test.` made from another.
    WrongDs,
    /// NSEC3 with 200 iterations (RFC 9276's limit is exceeded).
    HighIterations,
    /// Signed, and its DNSKEY RRset holds `COLLIDING_KEYS` more keys with the signing key's tag.
    CollidingKeyTags,
}

/// Extra keys sharing the signing key's tag in a [`Child::CollidingKeyTags`] zone.
pub const COLLIDING_KEYS: usize = 24;

/// How long the signatures of a [`Child::ExpiresSoon`] zone are valid after the build.
pub const EXPIRES_AFTER: Duration = Duration::from_secs(6);

/// The children of `test.` and how each is made.
pub const CHILDREN: &[(&str, Child)] = &[
    ("insecure", Child::Unsigned),
    ("signed", Child::Nsec3),
    ("optout", Child::Nsec3OptOut),
    ("badsig", Child::BadSignature),
    ("expired", Child::Expired),
    ("future", Child::NotYetValid),
    ("nokey", Child::NoDnskey),
    ("stripped", Child::StrippedSignatures),
    ("wrongds", Child::WrongDs),
    ("iterations", Child::HighIterations),
    ("collide", Child::CollidingKeyTags),
    // Bogus as `badsig`, and a negative trust anchor in the tests.
    ("nta", Child::BadSignature),
    // Secure for a few seconds after the build ([`EXPIRES_AFTER`]), then expired.
    ("later", Child::ExpiresSoon),
];

/// The tools the hierarchy needs.
pub const TOOLS: &[&str] = &["ldns-keygen", "ldns-signzone", "nsd", "unbound"];

/// The zones, signed, served by NSD.
pub struct Hierarchy {
    pub dir: PathBuf,
    pub nsd: SocketAddr,
    /// The fake root's DS, one line: the trust anchor of Hearth and the validating Unbound.
    pub root_anchor: PathBuf,
    /// The same anchor as the root's DNSKEY record (ldns's `.key` file, with its comment).
    pub root_key: PathBuf,
    /// Every zone served, with its final dot.
    pub zones: Vec<String>,
    _nsd: Process,
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(tool(program))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A new ECDSA P-256 key for `zone` with the SEP flag (257), used alone (a CSK); its base name.
fn keygen(dir: &Path, zone: &str) -> String {
    run(
        dir,
        "ldns-keygen",
        &["-a", "ECDSAP256SHA256", "-k", "-r", "/dev/urandom", zone],
    )
}

fn key_file(dir: &Path, base: &str, extension: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{base}.{extension}")))
        .unwrap_or_else(|e| panic!("{base}.{extension}: {e}"))
}

/// The DS line of a key, its TTL and class as ldns writes them.
fn ds_of(dir: &Path, base: &str) -> String {
    key_file(dir, base, "ds").trim().to_owned()
}

fn zone_text(zone: &str, body: &str) -> String {
    format!(
        "$ORIGIN {zone}\n$TTL 300\n\
         @ IN SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 300\n\
         @ IN NS ns.{zone}\n\
         ns IN A 127.0.0.1\n\
         www IN A 192.0.2.1\n\
         {body}"
    )
}

/// Dates as ldns-signzone takes them (YYYYMMDDhhmmss), `days` from now.
fn date(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now + days * 86_400).to_string()
}

/// Signs `file` (in `dir`) with `keys`; `options` before the file. Returns the signed file's name.
fn sign(dir: &Path, file: &str, zone: &str, keys: &[&str], options: &[&str]) -> String {
    let signed = format!("{file}.signed");
    let mut args: Vec<&str> = options.to_vec();
    args.extend(["-o", zone, "-f", &signed, file]);
    args.extend(keys);
    run(dir, "ldns-signzone", &args);
    signed
}

/// DNSKEY records with the tag and algorithm of the key in `key_line` but other key bytes: each
/// adds 1 to one even byte of the key and takes 1 from another, which keeps the 16-bit sum (the
/// tag, RFC 4034 Appendix B). Not usable keys: what a KeyTrap zone publishes.
fn colliding_keys(key_line: &str, count: usize) -> Vec<String> {
    let key_line = key_line.split(';').next().unwrap_or_default();
    let fields: Vec<&str> = key_line.split_whitespace().collect();
    let dnskey = fields
        .iter()
        .position(|f| *f == "DNSKEY")
        .expect("a DNSKEY line");
    let owner = fields[0];
    let (flags, protocol, algorithm) = (fields[dnskey + 1], fields[dnskey + 2], fields[dnskey + 3]);
    let key = fields[dnskey + 4..].concat();
    let bytes = decode_base64(&key);
    let mut keys = Vec::new();
    let mut i = 0;
    while keys.len() < count {
        let (up, down) = (2 * (i % 16), 2 * (16 + (i / 16) % 16));
        i += 1;
        let mut changed = bytes.clone();
        if changed[up] == 0xff || changed[down] == 0 {
            continue;
        }
        changed[up] += 1;
        changed[down] -= 1;
        keys.push(format!(
            "{owner} 300 IN DNSKEY {flags} {protocol} {algorithm} {}",
            encode_base64(&changed)
        ));
    }
    keys
}

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn decode_base64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = BASE64.iter().position(|b| *b == c).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Hierarchy {
    /// Builds, signs and serves the hierarchy in `dir`.
    pub fn build(dir: &Path) -> Self {
        let mut zones: Vec<(String, String)> = Vec::new(); // (zone, file)
        let mut tld_body = String::from(
            "*.wild IN A 192.0.2.2\n\
             alias IN CNAME www.insecure.test.\n\
             chain IN CNAME www.signed.test.\n\
             text IN TXT \"secure\"\n",
        );
        for (label, child) in CHILDREN {
            let zone = format!("{label}.test.");
            let file = format!("{label}.zone");
            let _ = writeln!(
                tld_body,
                "{label} IN NS ns.{zone}\nns.{label} IN A 127.0.0.1"
            );
            let mut body = String::new();
            // An unsigned delegation: under opt-out (no NSEC3 of its own), and in the plain
            // NSEC3 zone (a matching NSEC3 with NS and without DS).
            let unsigned = match child {
                Child::Nsec3OptOut => Some("unsigned"),
                Child::Nsec3 => Some("plain"),
                _ => None,
            };
            if let Some(inner_label) = unsigned {
                let _ = writeln!(
                    body,
                    "{inner_label} IN NS ns.{inner_label}.{zone}\nns.{inner_label} IN A 127.0.0.1"
                );
                let inner = format!("{inner_label}.{zone}");
                let inner_file = format!("{inner_label}.{label}.zone");
                std::fs::write(dir.join(&inner_file), zone_text(&inner, "")).unwrap();
                zones.push((inner, inner_file));
            }
            std::fs::write(dir.join(&file), zone_text(&zone, &body)).unwrap();
            if *child == Child::Unsigned {
                zones.push((zone, file));
                continue;
            }
            let key = keygen(dir, &zone);
            let mut ds = ds_of(dir, &key);
            let served = match child {
                Child::Nsec3 => sign(dir, &file, &zone, &[&key], &["-n", "-t", "0"]),
                Child::Nsec3OptOut => sign(dir, &file, &zone, &[&key], &["-n", "-t", "0", "-p"]),
                Child::HighIterations => sign(
                    dir,
                    &file,
                    &zone,
                    &[&key],
                    &["-n", "-t", "200", "-s", "abcd"],
                ),
                Child::Expired => sign(
                    dir,
                    &file,
                    &zone,
                    &[&key],
                    &["-i", &date(-30), "-e", &date(-2)],
                ),
                Child::ExpiresSoon => {
                    let expiration = std::time::SystemTime::now() + EXPIRES_AFTER;
                    let seconds = expiration
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        .to_string();
                    sign(
                        dir,
                        &file,
                        &zone,
                        &[&key],
                        &["-i", &date(-1), "-e", &seconds],
                    )
                }
                Child::NotYetValid => sign(
                    dir,
                    &file,
                    &zone,
                    &[&key],
                    &["-i", &date(10), "-e", &date(40)],
                ),
                Child::StrippedSignatures => sign(dir, &file, &zone, &[&key], &[]),
                Child::WrongDs => {
                    let other = keygen(dir, &zone);
                    ds = ds_of(dir, &other);
                    sign(dir, &file, &zone, &[&key], &[])
                }
                Child::CollidingKeyTags => {
                    let extra = colliding_keys(&key_file(dir, &key, "key"), COLLIDING_KEYS);
                    let mut text = zone_text(&zone, &body);
                    for line in extra {
                        let _ = writeln!(text, "{line}");
                    }
                    std::fs::write(dir.join(&file), text).unwrap();
                    sign(dir, &file, &zone, &[&key], &[])
                }
                Child::BadSignature | Child::NoDnskey => sign(dir, &file, &zone, &[&key], &[]),
                Child::Unsigned => unreachable!(),
            };
            let text = std::fs::read_to_string(dir.join(&served)).unwrap();
            let text = match child {
                Child::BadSignature => text.replace("192.0.2.1", "192.0.2.66"),
                Child::NoDnskey => text
                    .lines()
                    .filter(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        !(fields.get(3) == Some(&"DNSKEY")
                            || (fields.get(3) == Some(&"RRSIG")
                                && fields.get(4) == Some(&"DNSKEY")))
                    })
                    .map(|line| format!("{line}\n"))
                    .collect(),
                // Every signature gone but the DNSKEY RRset's, so the zone still looks signed.
                Child::StrippedSignatures => text
                    .lines()
                    .filter(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        fields.get(3) != Some(&"RRSIG") || fields.get(4) == Some(&"DNSKEY")
                    })
                    .map(|line| format!("{line}\n"))
                    .collect(),
                _ => text,
            };
            std::fs::write(dir.join(&served), text).unwrap();
            let _ = writeln!(tld_body, "{ds}");
            zones.push((zone, served));
        }
        std::fs::write(dir.join("test.zone"), zone_text("test.", &tld_body)).unwrap();
        let tld_key = keygen(dir, "test.");
        let tld = sign(dir, "test.zone", "test.", &[&tld_key], &[]);
        zones.push(("test.".to_owned(), tld));

        let root_body = format!(
            "test. IN NS ns.test.\nns.test. IN A 127.0.0.1\n{}\n",
            ds_of(dir, &tld_key)
        );
        std::fs::write(
            dir.join("root.zone"),
            format!(
                "$ORIGIN .\n$TTL 300\n\
                 . IN SOA ns. hostmaster. 1 3600 600 86400 300\n\
                 . IN NS ns.\nns. IN A 127.0.0.1\n{root_body}"
            ),
        )
        .unwrap();
        let root_key = keygen(dir, ".");
        let root = sign(dir, "root.zone", ".", &[&root_key], &[]);
        zones.push((".".to_owned(), root));
        let root_anchor = dir.join("root.anchor");
        std::fs::write(&root_anchor, format!("{}\n", ds_of(dir, &root_key))).unwrap();
        let root_key_file = dir.join(format!("{root_key}.key"));

        let (process, nsd) = start_nsd(dir, &zones);
        Self {
            dir: dir.to_owned(),
            nsd,
            root_anchor,
            root_key: root_key_file,
            zones: zones.into_iter().map(|(zone, _)| zone).collect(),
            _nsd: process,
        }
    }

    /// Starts an Unbound that resolves from this hierarchy: validating with the root anchor
    /// (and `nta.test.` as a negative trust anchor) when `validating`, else a plain iterator.
    pub fn recursor(&self, name: &str, validating: bool) -> Recursor {
        self.recursor_with(name, validating, "")
    }

    /// [`Hierarchy::recursor`] with more `server:` lines.
    pub fn recursor_with(&self, name: &str, validating: bool, tweaks: &str) -> Recursor {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut stubs = String::new();
        for zone in &self.zones {
            let _ = write!(
                stubs,
                "stub-zone:\n    name: \"{zone}\"\n    stub-addr: {}@{}\n",
                self.nsd.ip(),
                self.nsd.port()
            );
        }
        let validation = if validating {
            format!(
                "    module-config: \"validator iterator\"\n    trust-anchor-file: \"{}\"\n    domain-insecure: \"nta.test\"\n    val-log-level: 2\n",
                self.root_anchor.display()
            )
        } else {
            "    module-config: \"iterator\"\n".to_owned()
        };
        for _ in 0..5 {
            let port = free_port();
            let d = dir.display();
            let conf = dir.join("unbound.conf");
            std::fs::write(
                &conf,
                format!(
                    "server:\n    verbosity: 1\n    num-threads: 1\n    do-daemonize: no\n    use-syslog: no\n    logfile: \"\"\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    do-ip6: no\n    interface: 127.0.0.1@{port}\n    port: {port}\n    access-control: 127.0.0.0/8 allow\n    do-not-query-localhost: no\n    aggressive-nsec: no\n    qname-minimisation: no\n    minimal-responses: yes\n    ede: yes\n    local-zone: \"test.\" nodefault\n{tweaks}{validation}{stubs}remote-control:\n    control-enable: no\n"
                ),
            )
            .unwrap();
            let log = dir.join("unbound.log");
            let output = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(UNBOUND);
            command
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output);
            let mut process = Process::spawn("unbound", command);
            let query = dns_query(0x5151, "test", 6, 1);
            let ready = wait_until(&mut process, "unbound", &|| read_or_empty(&log), &|| {
                udp_exchange(port, &query).is_some()
            });
            match ready {
                Ok(()) => {
                    return Recursor {
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        log,
                        _process: process,
                    }
                }
                Err(_) if read_or_empty(&log).contains("in use") => continue,
                Err(status) => panic!("unbound exited ({status}):\n{}", read_or_empty(&log)),
            }
        }
        panic!("no port for unbound");
    }
}

/// `zone SOA` as bytes (`external::dns_query` writes the root as an empty label).
fn soa_query(id: u16, zone: &str) -> Vec<u8> {
    if zone == "." {
        let mut packet = id.to_be_bytes().to_vec();
        packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]);
        return packet;
    }
    dns_query(id, zone, 6, 1)
}

/// A running Unbound.
pub struct Recursor {
    pub addr: SocketAddr,
    pub log: PathBuf,
    _process: Process,
}

/// Starts NSD serving `zones` (origin, file in `dir`) and waits until each answers its SOA.
fn start_nsd(dir: &Path, zones: &[(String, String)]) -> (Process, SocketAddr) {
    let d = dir.display();
    for _ in 0..5 {
        let port = free_port();
        let mut conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  username: \"\"\n  logfile: \"{d}/nsd.log\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  verbosity: 1\nremote-control:\n  control-enable: no\n"
        );
        for (zone, file) in zones {
            let _ = write!(conf, "zone:\n  name: \"{zone}\"\n  zonefile: \"{file}\"\n");
        }
        let conf_path = dir.join("nsd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let stderr = dir.join("nsd.stderr");
        let mut process = spawn_nsd(&conf_path, &stderr);
        let logs = || {
            format!(
                "{}{}",
                read_or_empty(&stderr),
                read_or_empty(&dir.join("nsd.log"))
            )
        };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if process.exited().is_some() {
                break;
            }
            let all = zones.iter().enumerate().all(|(i, (zone, _))| {
                udp_exchange(port, &soa_query(0x4e00 + i as u16, zone))
                    .is_some_and(|reply| reply[3] & 0x0f == 0 && reply[6..8] == [0, 1])
            });
            if all {
                return (process, SocketAddr::from(([127, 0, 0, 1], port)));
            }
            assert!(
                Instant::now() < deadline,
                "nsd did not serve every zone:\n{}",
                logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
        if !logs().contains("in use") {
            panic!("nsd exited:\n{}", logs());
        }
    }
    panic!("no port for nsd");
}
