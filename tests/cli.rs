//! End-to-end tests of the `hearth` binary: the command line (`--version`, `--help`, `check`),
//! configuration and bind errors of `serve` (exit status 64 and the message), real DNS traffic
//! through a running server with `dig` and `nslookup`, forwarding to an independent upstream
//! (NSD serving a small zone), the resolution order, and a graceful stop on SIGTERM.
//!
//! Every server and every query is on 127.0.0.1, on ports picked free at run time, and every
//! server is given an explicit loopback upstream, so nothing ever leaves the host. Every process
//! is killed when its test ends (see [`Process`]) and every wait is bounded.
//!
//! Skip rule: the tests that need `dig`/`nslookup` (Debian `bind9-dnsutils`) or `nsd` (Debian
//! `nsd`) print a loud `SKIPPED: ...` line and pass when the tool is not installed, unless
//! `HEARTH_REQUIRE_EXTERNAL=1` is set (as in CI), which turns a missing tool into a failure.

#![cfg(unix)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::external::*;

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// How long any one command (hearth check, dig, nslookup) may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// The TTL configured for hosts-file answers, distinct from any default.
const FILES_TTL: u32 = 4321;

// ---------------------------------------------------------------------------------------------
// External tools.

// ---------------------------------------------------------------------------------------------
// Processes, commands and ports.

/// Runs `command` to completion, killing it if it takes longer than [`COMMAND_LIMIT`].
fn run(mut command: Command) -> Output {
    let description = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {description}: {error}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {COMMAND_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `hearth` command with nothing inherited from the environment that would change it.
fn hearth_command(args: &[&str]) -> Command {
    command_of(Path::new(HEARTH), args)
}

/// `program` with `args` in the environment every hearth of these tests runs in (`program` is
/// hearth itself, or a wrapper that runs it).
fn command_of(program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_remove("HEARTH_CONFIG")
        .env_remove("RUST_LOG")
        .env("HEARTH_LOG", "info");
    command
}

// ---------------------------------------------------------------------------------------------
// Raw DNS, only to tell when a server is up.

// ---------------------------------------------------------------------------------------------
// Hearth.

/// A running `hearth serve`.
struct Hearth {
    process: Process,
    port: u16,
    log: PathBuf,
}

impl Hearth {
    fn log(&self) -> String {
        read_or_empty(&self.log)
    }

    /// `dig @127.0.0.1 -p PORT ARGS`, parsed.
    fn dig(&self, args: &[&str]) -> Dig {
        dig(self.port, args)
    }
}

/// Starts `hearth serve --config CONFIG --listen 127.0.0.1:PORT` on a free port and waits
/// until it answers. Its stderr goes to `CONFIG.stderr`.
fn start_hearth(config: &Path) -> Hearth {
    let log = PathBuf::from(format!("{}.stderr", config.display()));
    for attempt in 1..=5 {
        let port = free_port();
        let mut command = hearth_command(&[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let mut process = Process::spawn("hearth", command);
        // CHAOS-class queries are refused at once, without asking any source: a liveness probe
        // that does not depend on the configuration.
        let probe = dns_query(0x4854, "version.bind", 16, 3);
        let ready = wait_until(&mut process, "hearth", &|| read_or_empty(&log), &|| {
            udp_exchange(port, &probe).is_some()
        });
        match ready {
            Ok(()) => return Hearth { process, port, log },
            Err(status) => {
                let stderr = read_or_empty(&log);
                if status.code() == Some(64) && stderr.contains("in use") && attempt < 5 {
                    continue; // someone took the port between free_port and the bind
                }
                panic!("hearth exited ({status}) before answering; stderr:\n{stderr}");
            }
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Runs `hearth serve` with `args` expecting it to exit by itself, and returns its output.
/// A server that starts serving instead is killed after [`READY_WITHIN`], failing the test.
fn serve_expecting_exit(args: &[&str]) -> (ExitStatus, String) {
    exit_of(Path::new(HEARTH), args)
}

/// Runs `program` with `args` (a hearth command, perhaps behind a wrapper) until it exits;
/// its status and stderr.
fn exit_of(program: &Path, args: &[&str]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut command = command_of(program, args);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap());
    let mut process = Process::spawn("hearth", command);
    let status = process.wait_for_exit(READY_WITHIN).unwrap_or_else(|| {
        panic!(
            "hearth {args:?} was expected to exit but was still running after \
             {READY_WITHIN:?}; stderr:\n{}",
            read_or_empty(&log)
        )
    });
    (status, read_or_empty(&log))
}

/// A hearth configuration: hosts file `hosts`, the given order, one loopback upstream.
fn hearth_config(hosts: &Path, order: &[&str], upstream_port: u16, timeout: &str) -> String {
    let order: Vec<String> = order.iter().map(|entry| format!("{entry:?}")).collect();
    format!(
        "[resolve]\n\
         order = [{order}]\n\
         [files]\n\
         paths = [{hosts}]\n\
         ttl = {FILES_TTL}\n\
         [forward]\n\
         upstreams = [\"127.0.0.1:{upstream_port}\"]\n\
         timeout = {timeout:?}\n",
        order = order.join(", "),
        hosts = toml_path(hosts),
    )
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A loopback port with nothing listening on it: an upstream that never answers.
fn dead_port() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------------------------
// dig.

/// One resource record as dig prints it: name, TTL, class, type, data.
#[derive(Debug)]
struct Rr {
    name: String,
    ttl: u32,
    rtype: String,
    data: String,
}

/// What dig printed, and the parts the tests look at.
struct Dig {
    output: String,
    status: String,
    flags: String,
    answer: Vec<Rr>,
    authority: Vec<Rr>,
}

impl Dig {
    fn parse(output: String) -> Self {
        let status = between(&output, "status: ", ",");
        let flags = between(&output, ";; flags: ", ";");
        let section = |title: &str| -> Vec<Rr> {
            let mut lines = output.lines().skip_while(|line| !line.starts_with(title));
            lines.next();
            lines
                .take_while(|line| !line.trim().is_empty())
                .map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    assert!(fields.len() >= 5, "unexpected record line {line:?}");
                    Rr {
                        name: fields[0].to_owned(),
                        ttl: fields[1].parse().expect("TTL"),
                        rtype: fields[3].to_owned(),
                        data: fields[4..].join(" "),
                    }
                })
                .collect()
        };
        Self {
            status: status.unwrap_or_default(),
            flags: flags.unwrap_or_default(),
            answer: section(";; ANSWER SECTION:"),
            authority: section(";; AUTHORITY SECTION:"),
            output,
        }
    }

    /// The data of the answer records of type `rtype`.
    fn answers(&self, rtype: &str) -> Vec<String> {
        self.answer
            .iter()
            .filter(|rr| rr.rtype == rtype)
            .map(|rr| rr.data.clone())
            .collect()
    }

    fn assert_status(&self, status: &str) {
        assert_eq!(self.status, status, "dig said:\n{}", self.output);
    }
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(rest[..rest.find(end)?].trim().to_owned())
}

/// Runs `dig @127.0.0.1 -p PORT +tries=1 +time=5 ARGS` (never reading ~/.digrc).
fn dig_raw(port: u16, args: &[&str]) -> Output {
    let mut command = Command::new(tool("dig"));
    command
        .args([
            "-r",
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+tries=1",
            "+time=5",
        ])
        .args(args);
    run(command)
}

/// [`dig_raw`], parsed; panics if dig got no reply.
fn dig(port: u16, args: &[&str]) -> Dig {
    let output = dig_raw(port, args);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("->>HEADER<<-"),
        "dig {args:?} got no reply ({}):\n{stdout}{}",
        output.status,
        text(&output.stderr)
    );
    Dig::parse(stdout)
}

/// `dig +short`: the values, one a line.
fn dig_short(port: u16, args: &[&str]) -> Vec<String> {
    let output = dig_raw(port, &[&["+short"], args].concat());
    assert!(output.status.success(), "dig +short {args:?}: {output:?}");
    let mut values: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    values.sort();
    values
}

// ---------------------------------------------------------------------------------------------
// NSD, the independent upstream.

/// The zone NSD serves: an A, a CNAME to an in-zone A, and a name also in the hosts file.
const ZONE: &str = "\
$ORIGIN example.net.
$TTL 300
@      IN SOA   ns1.example.net. hostmaster.example.net. 2024010101 3600 600 86400 300
@      IN NS    ns1
ns1    IN A     127.0.0.1
www    IN A     198.51.100.20
alias  IN CNAME www
both   IN A     198.51.100.99
";

/// The hosts file beside the zone: `both` is in the zone too (with another address);
/// `onlyhosts` is not.
const NSD_HOSTS: &str = "\
192.0.2.50 both.example.net
192.0.2.51 onlyhosts.example.net
";

struct Nsd {
    _process: Process,
    port: u16,
}

/// Starts `nsd -d` serving [`ZONE`] on a free loopback port, everything in `dir`, and waits
/// until it answers the zone's SOA.
fn start_nsd(dir: &Path) -> Nsd {
    write(dir, "example.net.zone", ZONE);
    let log = dir.join("nsd.log");
    let stderr = dir.join("nsd.stderr");
    for attempt in 1..=5 {
        let port = free_port();
        let d = dir.display();
        let conf = write(
            dir,
            "nsd.conf",
            &format!(
                "server:\n\
                 \x20 ip-address: 127.0.0.1@{port}\n\
                 \x20 port: {port}\n\
                 \x20 zonesdir: \"{d}\"\n\
                 \x20 pidfile: \"{d}/nsd.pid\"\n\
                 \x20 database: \"\"\n\
                 \x20 username: \"\"\n\
                 \x20 logfile: \"{d}/nsd.log\"\n\
                 \x20 xfrdfile: \"{d}/xfrd.state\"\n\
                 \x20 zonelistfile: \"{d}/zone.list\"\n\
                 \x20 verbosity: 1\n\
                 remote-control:\n\
                 \x20 control-enable: no\n\
                 zone:\n\
                 \x20 name: example.net\n\
                 \x20 zonefile: example.net.zone\n"
            ),
        );
        let _ = std::fs::remove_file(dir.join("nsd.pid"));
        let mut process = spawn_nsd(&conf, &stderr);
        let logs = || format!("{}{}", read_or_empty(&stderr), read_or_empty(&log));
        // Ready when the zone is loaded: the SOA query answered NOERROR with one answer.
        let probe = dns_query(0x4e53, "example.net", 6, 1);
        let ready = wait_until(&mut process, "nsd", &logs, &|| {
            udp_exchange(port, &probe)
                .is_some_and(|reply| reply[3] & 0x0f == 0 && reply[6..8] != [0, 0])
        });
        match ready {
            Ok(()) => {
                return Nsd {
                    _process: process,
                    port,
                }
            }
            Err(_) if logs().contains("in use") && attempt < 5 => continue,
            Err(status) => panic!("nsd exited ({status}) before answering:\n{}", logs()),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// A temp dir holding a running nsd, a hosts file, and a hearth forwarding to the nsd with
/// `order`. Returns `None` (the test is skipped) when dig or nsd is missing.
fn hearth_over_nsd(order: &[&str]) -> Option<(tempfile::TempDir, Nsd, Hearth)> {
    if !require("dig") || !require("nsd") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let nsd = start_nsd(dir.path());
    let hosts = write(dir.path(), "hosts", NSD_HOSTS);
    let config = write(
        dir.path(),
        "hearth.toml",
        &hearth_config(&hosts, order, nsd.port, "2s"),
    );
    let hearth = start_hearth(&config);
    Some((dir, nsd, hearth))
}

// ---------------------------------------------------------------------------------------------
// The command line.

#[test]
fn version_and_help() {
    let output = run(hearth_command(&["--version"]));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout).trim(), "hearth 0.1.0");

    let output = run(hearth_command(&["--help"]));
    assert!(output.status.success(), "{output:?}");
    let help = text(&output.stdout);
    assert!(
        help.contains("serve") && help.contains("check"),
        "--help lists the subcommands:\n{help}"
    );
}

/// `hearth check --config FILE`: its exit status and stdout.
fn check(config: &Path) -> (ExitStatus, String) {
    let output = run(hearth_command(&[
        "check",
        "--config",
        config.to_str().unwrap(),
    ]));
    (output.status, text(&output.stdout))
}

#[test]
fn check_accepts_a_clean_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(
        dir.path(),
        "hosts",
        "# clean\n127.0.0.1 localhost\n::1 localhost ip6-localhost\n192.0.2.10 web.example.org web\n",
    );
    let config = write(
        dir.path(),
        "hearth.toml",
        &hearth_config(&hosts, &["files", "dns"], dead_port(), "2s"),
    );
    let (status, stdout) = check(&config);
    assert_eq!(status.code(), Some(0), "stdout:\n{stdout}");
    assert!(stdout.contains(&config.display().to_string()), "{stdout}");
}

/// The shipped config must load; /etc/hosts is the host's own, so its lines may be reported,
/// but nothing else may be.
#[test]
fn check_accepts_the_shipped_configuration() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hearth.toml");
    let (status, stdout) = check(&shipped);
    match status.code() {
        Some(0) => assert!(stdout.contains("ok"), "{stdout}"),
        Some(1) => {
            let mut lines: Vec<&str> = stdout.lines().collect();
            let summary = lines.pop().unwrap_or_default();
            assert!(summary.ends_with("problem(s)"), "{stdout}");
            for line in lines {
                assert!(
                    line.starts_with("/etc/hosts:"),
                    "only /etc/hosts lines may be reported for the shipped config:\n{stdout}"
                );
            }
            eprintln!("note: this host's /etc/hosts has problems:\n{stdout}");
        }
        _ => panic!("check {shipped:?} exited {status}:\n{stdout}"),
    }
}

#[test]
fn check_reports_bad_hosts_lines_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(
        dir.path(),
        "hosts",
        "192.0.2 short\n999.1.1.1 x\n192.0.2.10 fine.example.org\n",
    );
    let config = write(
        dir.path(),
        "hearth.toml",
        &hearth_config(&hosts, &["files", "dns"], dead_port(), "2s"),
    );
    let (status, stdout) = check(&config);
    assert_eq!(status.code(), Some(1), "stdout:\n{stdout}");
    let hosts = hosts.display();
    assert!(stdout.contains(&format!("{hosts}:1:")), "{stdout}");
    assert!(stdout.contains(&format!("{hosts}:2:")), "{stdout}");
    assert!(!stdout.contains(&format!("{hosts}:3:")), "{stdout}");
}

#[test]
fn check_rejects_a_stray_key_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(dir.path(), "hosts", "192.0.2.10 web.example.org\n");
    let mut text = hearth_config(&hosts, &["files", "dns"], dead_port(), "2s");
    text.push_str("bogus = 1\n");
    let line = text.lines().count();
    let config = write(dir.path(), "hearth.toml", &text);
    let (status, stdout) = check(&config);
    assert!(!status.success(), "stdout:\n{stdout}");
    assert!(
        stdout.contains(&format!("{}:{line}:", config.display())),
        "names the file and line {line}: {stdout}"
    );
    assert!(
        stdout.contains("forward") && stdout.contains("bogus"),
        "names the key: {stdout}"
    );
}

// ---------------------------------------------------------------------------------------------
// serve: refusing to start.

#[test]
fn serve_with_a_bad_config_exits_64_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(dir.path(), "hosts", "192.0.2.10 web.example.org\n");
    // The listen address is a free port, so a config wrongly accepted cannot bind port 53.
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:{}\"]\n{}",
        free_port(),
        hearth_config(&hosts, &["files", "dns"], dead_port(), "2x"),
    );
    let line = 1 + text.lines().position(|l| l.starts_with("timeout")).unwrap();
    let config = write(dir.path(), "hearth.toml", &text);
    let (status, stderr) = serve_expecting_exit(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(status.code(), Some(64), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:{line}:", config.display())),
        "names the file and line {line}:\n{stderr}"
    );
    assert!(
        stderr.contains("forward.timeout"),
        "names the key:\n{stderr}"
    );
}

#[test]
fn serve_rejects_port_zero_on_the_command_line() {
    let (status, stderr) = serve_expecting_exit(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!status.success(), "stderr:\n{stderr}");
    assert!(stderr.contains("port 0"), "{stderr}");
}

/// A config whose only purpose is to be valid: used where the listen address comes from
/// --listen and nothing is queried.
fn minimal_config(dir: &Path) -> PathBuf {
    let hosts = write(dir, "hosts", "192.0.2.10 web.example.org\n");
    write(
        dir,
        "hearth.toml",
        &hearth_config(&hosts, &["files", "dns"], dead_port(), "2s"),
    )
}

/// Port 53 without the right to bind it: exit 64 with the capability hint. As root, the server
/// is run as `nobody` with no capabilities (`setpriv`), so the path is tested there too. Where
/// unprivileged ports start at or below 53 (some containers), or as root without `setpriv`, the
/// test cannot run: it says SKIPPED, and `serve_on_an_address_in_use_exits_64` covers the bind
/// failure.
#[test]
fn serve_on_a_privileged_port_without_permission_exits_64() {
    let test = thread::current().name().unwrap_or_default().to_owned();
    let skip = |why: &str| {
        // Written to stderr directly: libtest captures eprintln! and drops it for a pass.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
    };
    let unprivileged_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|text| text.trim().parse::<u16>().ok());
    if unprivileged_start.is_some_and(|start| start <= 53) {
        skip("unprivileged users may bind port 53 here (net.ipv4.ip_unprivileged_port_start)");
        return;
    }
    let mut id = Command::new("id");
    id.arg("-u");
    let as_root = text(&run(id).stdout).trim() == "0";
    let setpriv = Path::new("/usr/bin/setpriv");
    if as_root && !setpriv.is_file() {
        skip("running as root without setpriv (util-linux) to drop the right to bind port 53");
        return;
    }
    if !as_root {
        // Not root, but some containers let anyone bind low ports.
        match UdpSocket::bind("127.0.0.1:53") {
            Err(error) if error.kind() == ErrorKind::PermissionDenied => {}
            other => {
                skip(&format!("this user may bind port 53 here ({other:?})"));
                return;
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path());
    let mut args = vec![
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:53",
    ];
    let (status, stderr) = if as_root {
        // nobody must read the configuration: the directory and its files, world-readable.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut dropped = vec![
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            HEARTH,
        ];
        dropped.append(&mut args);
        exit_of(setpriv, &dropped)
    } else {
        serve_expecting_exit(&args)
    };
    assert_eq!(status.code(), Some(64), "stderr:\n{stderr}");
    assert!(stderr.contains("CAP_NET_BIND_SERVICE"), "{stderr}");
}

/// Runs `hearth serve` on 127.0.0.1:`port`, which the caller holds on `protocol`.
fn assert_address_in_use(config: &Path, port: u16, protocol: &str) {
    let (status, stderr) = serve_expecting_exit(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(status.code(), Some(64), "{protocol}: stderr:\n{stderr}");
    assert!(
        stderr.contains("in use") || stderr.contains("another process"),
        "{protocol}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}/{protocol}")),
        "names the address and protocol: {stderr}"
    );
}

#[test]
fn serve_on_an_address_in_use_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path());
    // Held on UDP, which is bound first.
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_address_in_use(&config, held.local_addr().unwrap().port(), "udp");
    drop(held);
    // Held on TCP only: the UDP bind succeeds, the TCP one fails.
    let port = free_port();
    let _held = TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert_address_in_use(&config, port, "tcp");
}

// ---------------------------------------------------------------------------------------------
// serve: answering, as seen by dig and nslookup.

const HOSTS: &str = "\
# Hearth end-to-end fixture
192.0.2.10    web.example.org web
2001:db8::10  web.example.org
192.0.2.21    Multi.Example.ORG
192.0.2.22    multi.example.org    # the same name, another case
192.0.2.23    MULTI.example.org
";

/// A hearth serving [`HOSTS`], with an upstream that never answers.
fn hearth_with_hosts(dir: &Path) -> Hearth {
    let hosts = write(dir, "hosts", HOSTS);
    let config = write(
        dir,
        "hearth.toml",
        &hearth_config(&hosts, &["files", "zones", "dns"], dead_port(), "300ms"),
    );
    start_hearth(&config)
}

#[test]
fn dig_session_against_the_hosts_file() {
    if !require("dig") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hearth = hearth_with_hosts(dir.path());

    let a = hearth.dig(&["web.example.org", "A"]);
    a.assert_status("NOERROR");
    assert_eq!(a.flags, "qr aa rd ra", "{}", a.output);
    assert_eq!(a.answers("A"), ["192.0.2.10"], "{}", a.output);
    assert_eq!(a.answer.len(), 1, "{}", a.output);
    assert_eq!(a.answer[0].name, "web.example.org.");
    assert_eq!(a.answer[0].ttl, FILES_TTL, "{}", a.output);
    // dig sends EDNS: the reply carries OPT with Hearth's payload size.
    assert!(a.output.contains("; EDNS: version: 0"), "{}", a.output);
    assert!(a.output.contains("udp: 1232"), "{}", a.output);

    let without_edns = hearth.dig(&["+noedns", "web.example.org", "A"]);
    without_edns.assert_status("NOERROR");
    assert!(
        !without_edns.output.contains("OPT PSEUDOSECTION"),
        "no OPT in the reply to a query without one:\n{}",
        without_edns.output
    );

    let aaaa = hearth.dig(&["web.example.org", "AAAA"]);
    aaaa.assert_status("NOERROR");
    assert_eq!(aaaa.flags, "qr aa rd ra", "{}", aaaa.output);
    assert_eq!(aaaa.answers("AAAA"), ["2001:db8::10"], "{}", aaaa.output);
    assert_eq!(aaaa.answer[0].ttl, FILES_TTL);

    let ptr = hearth.dig(&["-x", "192.0.2.10"]);
    ptr.assert_status("NOERROR");
    assert!(ptr.flags.contains("aa"), "{}", ptr.output);
    assert!(
        ptr.answers("PTR").contains(&"web.example.org.".to_owned()),
        "{}",
        ptr.output
    );
    let ptr6 = hearth.dig(&["-x", "2001:db8::10"]);
    ptr6.assert_status("NOERROR");
    assert_eq!(ptr6.answers("PTR"), ["web.example.org."], "{}", ptr6.output);

    let tcp = hearth.dig(&["+tcp", "web.example.org", "A"]);
    tcp.assert_status("NOERROR");
    assert!(tcp.output.contains("(TCP)"), "{}", tcp.output);
    assert_eq!(tcp.flags, "qr aa rd ra", "{}", tcp.output);
    assert_eq!(tcp.answers("A"), ["192.0.2.10"], "{}", tcp.output);

    // Another type at a name the hosts file owns: NOERROR, no records, not forwarded.
    let mx = hearth.dig(&["web.example.org", "MX"]);
    mx.assert_status("NOERROR");
    assert_eq!(mx.flags, "qr aa rd ra", "{}", mx.output);
    assert!(mx.answer.is_empty(), "{}", mx.output);
    assert!(mx.output.contains("ANSWER: 0"), "{}", mx.output);

    // The short name on the same line.
    assert_eq!(dig_short(hearth.port, &["web", "A"]), ["192.0.2.10"]);

    // One name in three cases on three lines: one name with three addresses, whatever the case
    // of the question.
    let all = ["192.0.2.21", "192.0.2.22", "192.0.2.23"];
    assert_eq!(dig_short(hearth.port, &["multi.example.org", "A"]), all);
    assert_eq!(dig_short(hearth.port, &["mUlTi.ExAmPlE.oRg", "A"]), all);
    let mixed = hearth.dig(&["mUlTi.ExAmPlE.oRg", "A"]);
    assert!(
        mixed
            .answer
            .iter()
            .all(|rr| rr.name == "mUlTi.ExAmPlE.oRg."),
        "answers carry the question's case (RFC 4343):\n{}",
        mixed.output
    );
    assert_eq!(
        dig_short(hearth.port, &["web.example.org", "AAAA"]),
        ["2001:db8::10"]
    );
}

/// Over 512 bytes for a query without EDNS: TC over UDP, and dig's retry over TCP gets it all.
#[test]
fn truncated_udp_answer_is_retried_over_tcp() {
    if !require("dig") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big: String = (1..=60)
        .map(|i| format!("198.18.0.{i} big.example.org\n"))
        .collect();
    let hosts = write(dir.path(), "hosts", &big);
    let config = write(
        dir.path(),
        "hearth.toml",
        &hearth_config(&hosts, &["files", "dns"], dead_port(), "300ms"),
    );
    let hearth = start_hearth(&config);

    let udp = hearth.dig(&["+noedns", "+ignore", "big.example.org", "A"]);
    udp.assert_status("NOERROR");
    assert!(
        udp.flags.split(' ').any(|flag| flag == "tc"),
        "{}",
        udp.output
    );
    assert!(udp.answer.is_empty(), "{}", udp.output);

    let retried = hearth.dig(&["+noedns", "big.example.org", "A"]);
    retried.assert_status("NOERROR");
    assert!(retried.output.contains("(TCP)"), "{}", retried.output);
    assert_eq!(retried.answers("A").len(), 60, "{}", retried.output);

    // With EDNS (1232 bytes) the same answer fits in one datagram.
    let edns = hearth.dig(&["big.example.org", "A"]);
    assert!(edns.output.contains("(UDP)"), "{}", edns.output);
    assert_eq!(edns.answers("A").len(), 60, "{}", edns.output);
}

/// A hosts file edited while the server runs is re-read: poll until the new address is served.
#[test]
fn hosts_file_changes_are_served_without_restart() {
    if !require("dig") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hearth = hearth_with_hosts(dir.path());
    assert_eq!(
        dig_short(hearth.port, &["new.example.org", "A"]),
        Vec::<String>::new()
    );
    // Replace the file the way editors do: write another, rename it over the original.
    let staged = write(
        dir.path(),
        "hosts.new",
        &format!("{HOSTS}192.0.2.99 new.example.org\n"),
    );
    std::fs::rename(&staged, dir.path().join("hosts")).unwrap();
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let reply = hearth.dig(&["new.example.org", "A"]);
        if reply.answers("A") == ["192.0.2.99"] {
            reply.assert_status("NOERROR");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited hosts file was not picked up within {READY_WITHIN:?}; last reply:\n{}\nlog:\n{}",
            reply.output,
            hearth.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // The rest of the file is still served.
    assert_eq!(
        dig_short(hearth.port, &["web.example.org", "A"]),
        ["192.0.2.10"]
    );
}

#[test]
fn nslookup_shows_both_addresses() {
    if !require("nslookup") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hearth = hearth_with_hosts(dir.path());
    let mut command = Command::new(tool("nslookup"));
    command.args([
        &format!("-port={}", hearth.port),
        "-timeout=5",
        "-retry=1",
        "web.example.org",
        "127.0.0.1",
    ]);
    let output = run(command);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("Address: 192.0.2.10"), "{stdout}");
    assert!(stdout.contains("Address: 2001:db8::10"), "{stdout}");
}

#[test]
fn sigterm_stops_the_server_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut hearth = hearth_with_hosts(dir.path());
    let status = Command::new("kill")
        .args(["-TERM", &hearth.process.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let status = hearth
        .process
        .wait_for_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", hearth.log()));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", hearth.log());
}

/// `GET path` from the admin endpoint on 127.0.0.1:`port`: the status and the body, or `None`
/// when nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// A hearth serving [`HOSTS`] with the admin endpoint on a free port and the tables `extra`
/// added to its config; the admin port and the config's path.
fn hearth_with_admin(dir: &Path, extra: &str) -> (Hearth, u16, PathBuf) {
    let hosts = write(dir, "hosts", HOSTS);
    let admin_port = free_port();
    let config = write(
        dir,
        "hearth.toml",
        &format!(
            "{extra}{}[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n",
            hearth_config(&hosts, &["files", "zones", "dns"], dead_port(), "300ms")
        ),
    );
    let hearth = start_hearth(&config);
    (hearth, admin_port, config)
}

/// The A records of `name`, by a raw query: for loops that poll.
fn a_records(port: u16, name: &str) -> Option<Vec<[u8; 4]>> {
    let reply = udp_exchange(port, &dns_query(0x0a0a, name, 1, 1))?;
    // Our replies to these queries are header, question, then uncompressed-pointer A records:
    // each record's last 4 bytes are the address.
    let answers = usize::from(u16::from_be_bytes([reply[6], reply[7]]));
    let question_end = 12 + name.trim_end_matches('.').len() + 2 + 4;
    let mut addresses = Vec::new();
    let mut position = question_end;
    for _ in 0..answers {
        position += 2 + 2 + 2 + 4; // pointer, type, class, TTL
        let length = usize::from(u16::from_be_bytes([reply[position], reply[position + 1]]));
        position += 2;
        if length == 4 {
            addresses.push(reply[position..position + 4].try_into().ok()?);
        }
        position += length;
    }
    Some(addresses)
}

#[test]
fn sighup_reloads_the_config_and_a_broken_one_keeps_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hearth, admin_port, config) = hearth_with_admin(dir.path(), "");
    assert_eq!(
        a_records(hearth.port, "web.example.org."),
        Some(vec![[192, 0, 2, 10]])
    );

    // A new hosts file through a new config, applied by SIGHUP.
    let other = write(dir.path(), "other-hosts", "192.0.2.99 web.example.org\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&toml_path(&dir.path().join("hosts")), &toml_path(&other));
    std::fs::write(&config, &text).unwrap();
    hearth.process.signal_group("-HUP");
    let reloaded = wait_until(
        &mut hearth.process,
        "the reload",
        &|| read_or_empty(&hearth.log),
        &|| a_records(hearth.port, "web.example.org.") == Some(vec![[192, 0, 2, 99]]),
    );
    assert!(
        reloaded.is_ok(),
        "hearth exited on SIGHUP:\n{}",
        hearth.log()
    );

    // A broken config: refused with file:line, logged, counted; the last one keeps serving.
    std::fs::write(
        &config,
        format!("{text}\n[files]\nttl = \"not a number\"\n"),
    )
    .unwrap();
    hearth.process.signal_group("-HUP");
    let logged = wait_until(
        &mut hearth.process,
        "the failed reload",
        &|| read_or_empty(&hearth.log),
        &|| {
            http_get(admin_port, "/metrics").is_some_and(|(_, body)| {
                body.contains("hearth_config_reloads_total{result=\"failure\"} 1")
            })
        },
    );
    assert!(logged.is_ok());
    let log = hearth.log();
    assert!(
        log.contains(&format!("{}:", config.display()))
            && log.contains("running configuration keeps serving"),
        "{log}"
    );
    assert_eq!(
        a_records(hearth.port, "web.example.org."),
        Some(vec![[192, 0, 2, 99]])
    );
    assert!(hearth.process.exited().is_none());
}

#[test]
fn sigterm_enters_lameduck_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hearth, admin_port, _config) =
        hearth_with_admin(dir.path(), "[server]\nlameduck = \"3s\"\n");
    let ready = wait_until(
        &mut hearth.process,
        "/ready",
        &|| read_or_empty(&hearth.log),
        &|| http_get(admin_port, "/ready").is_some_and(|(status, _)| status == 200),
    );
    assert!(ready.is_ok());

    hearth.process.signal_group("-TERM");
    let lameduck = wait_until(
        &mut hearth.process,
        "lameduck",
        &|| read_or_empty(&hearth.log),
        &|| http_get(admin_port, "/ready").is_some_and(|(status, _)| status == 503),
    );
    assert!(
        lameduck.is_ok(),
        "exited before lameduck:\n{}",
        hearth.log()
    );
    // In lameduck: still alive, still answering.
    assert_eq!(http_get(admin_port, "/health").map(|(s, _)| s), Some(200));
    assert_eq!(
        a_records(hearth.port, "web.example.org."),
        Some(vec![[192, 0, 2, 10]])
    );
    let status = hearth
        .process
        .wait_for_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still running after lameduck:\n{}", hearth.log()));
    assert_eq!(status.code(), Some(0), "{}", hearth.log());
    assert!(hearth.log().contains("lameduck"), "{}", hearth.log());
}

#[test]
fn the_query_log_names_client_name_type_rcode_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let (hearth, _admin_port, _config) = hearth_with_admin(dir.path(), "[log]\nqueries = true\n");
    // Twice: the second is answered by the fast path, which logs too.
    for _ in 0..2 {
        assert_eq!(
            a_records(hearth.port, "web.example.org."),
            Some(vec![[192, 0, 2, 10]])
        );
    }
    let mut log = String::new();
    for _ in 0..50 {
        log = hearth.log();
        if log.matches("web.example.org.").count() >= 2 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("query") && line.contains("web.example.org."))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    for line in lines {
        for field in [
            "client=127.0.0.1:",
            "record_type=A",
            "rcode=NOERROR",
            "source=files",
            "protocol=udp",
            "duration_us=",
        ] {
            assert!(line.contains(field), "{field} missing from {line}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// serve: forwarding to NSD, and the resolution order.

#[test]
fn forwards_to_an_independent_upstream() {
    let Some((_dir, _nsd, hearth)) = hearth_over_nsd(&["files", "zones", "dns"]) else {
        return;
    };

    let www = hearth.dig(&["www.example.net", "A"]);
    www.assert_status("NOERROR");
    assert_eq!(www.answers("A"), ["198.51.100.20"], "{}", www.output);

    let alias = hearth.dig(&["alias.example.net", "A"]);
    alias.assert_status("NOERROR");
    assert_eq!(
        alias.answers("CNAME"),
        ["www.example.net."],
        "{}",
        alias.output
    );
    assert_eq!(alias.answers("A"), ["198.51.100.20"], "{}", alias.output);

    let tcp = hearth.dig(&["+tcp", "alias.example.net", "A"]);
    tcp.assert_status("NOERROR");
    assert_eq!(tcp.answer.len(), 2, "{}", tcp.output);

    let missing = hearth.dig(&["missing.example.net", "A"]);
    missing.assert_status("NXDOMAIN");
    assert!(missing.answer.is_empty(), "{}", missing.output);
    assert!(
        missing.authority.iter().any(|rr| rr.rtype == "SOA"
            && rr.name == "example.net."
            && rr
                .data
                .starts_with("ns1.example.net. hostmaster.example.net. 2024010101")),
        "the upstream's SOA is in AUTHORITY:\n{}",
        missing.output
    );

    // In the zone and in the hosts file: files come first.
    let both = hearth.dig(&["both.example.net", "A"]);
    both.assert_status("NOERROR");
    assert_eq!(both.answers("A"), ["192.0.2.50"], "{}", both.output);
    assert!(both.flags.contains("aa"), "{}", both.output);
    assert_eq!(both.answer[0].ttl, FILES_TTL);
}

#[test]
fn dns_first_falls_back_to_files_on_nxdomain() {
    let Some((_dir, _nsd, hearth)) = hearth_over_nsd(&["dns", "files"]) else {
        return;
    };
    // NXDOMAIN upstream is NOTFOUND, and the default action for it is to continue.
    let only = hearth.dig(&["onlyhosts.example.net", "A"]);
    only.assert_status("NOERROR");
    assert_eq!(only.answers("A"), ["192.0.2.51"], "{}", only.output);
    // A name both have comes from dns, which is asked first.
    let both = hearth.dig(&["both.example.net", "A"]);
    both.assert_status("NOERROR");
    assert_eq!(both.answers("A"), ["198.51.100.99"], "{}", both.output);
}

#[test]
fn notfound_return_stops_at_dns() {
    let Some((_dir, _nsd, hearth)) = hearth_over_nsd(&["dns [NOTFOUND=return]", "files"]) else {
        return;
    };
    let only = hearth.dig(&["onlyhosts.example.net", "A"]);
    only.assert_status("NXDOMAIN");
    assert!(only.answer.is_empty(), "{}", only.output);
}

#[test]
fn dead_upstream_gives_servfail() {
    if !require("dig") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hearth = hearth_with_hosts(dir.path());
    let reply = hearth.dig(&["nothere.example.com", "A"]);
    reply.assert_status("SERVFAIL");
    assert!(reply.answer.is_empty(), "{}", reply.output);
    // Names in the hosts file are still answered.
    hearth
        .dig(&["web.example.org", "A"])
        .assert_status("NOERROR");
}
