//! An independent upstream over TCP, TLS and HTTPS on loopback: Debian's `unbound` (built with
//! OpenSSL and libnghttp2) answering a small local zone from `local-data`, so it needs no
//! network, with a certificate made at test time by our own CA (rcgen).
//!
//! Blocking (std), like `external`: start it before the runtime's work, or from a
//! multi-threaded runtime.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::external::{self, Process};

/// Names in the zone: `nN.test.` for N below this, each with its own address
/// ([`address_of`]).
pub const NAMES: u16 = 200;

/// The address of `nN.test.`.
pub fn address_of(n: u16) -> Ipv4Addr {
    let [high, low] = n.to_be_bytes();
    Ipv4Addr::new(10, 1, high, low)
}

/// The name the server's certificate is for (with 127.0.0.1).
pub const SERVER_NAME: &str = "dns.test";

/// Where Debian puts unbound; `external::tool_path` looks in sbin only for nsd.
const UNBOUND: &str = "/usr/sbin/unbound";

/// Whether unbound is installed; when not, `external::require`'s loud skip (or its failure under
/// `HEARTH_REQUIRE_EXTERNAL=1`).
pub fn require_unbound() -> bool {
    Path::new(UNBOUND).is_file() || external::require("unbound")
}

fn unbound_path() -> PathBuf {
    if Path::new(UNBOUND).is_file() {
        PathBuf::from(UNBOUND)
    } else {
        external::tool("unbound")
    }
}

/// The PEM files of one test: a CA, a server certificate it signed (for [`SERVER_NAME`] and
/// 127.0.0.1) with its key, and another CA that signed nothing here.
pub struct Certificates {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_certificate: PathBuf,
    pub server_key: PathBuf,
}

impl Certificates {
    pub fn make(directory: &Path) -> Self {
        let (ca_params, ca_key) = ca("Hearth test CA");
        let ca_certificate = ca_params.self_signed(&ca_key).expect("sign the CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let server_key = rcgen::KeyPair::generate().expect("a server key");
        let mut server =
            rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()])
                .expect("server certificate parameters");
        server
            .distinguished_name
            .push(rcgen::DnType::CommonName, SERVER_NAME);
        let server_certificate = server
            .signed_by(&server_key, &issuer)
            .expect("sign the server certificate");

        let (other_params, other_key) = ca("Another CA");
        let other_ca = other_params
            .self_signed(&other_key)
            .expect("sign the other CA");

        let write = |name: &str, text: String| {
            let path = directory.join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        Self {
            ca: write("ca.pem", ca_certificate.pem()),
            other_ca: write("other-ca.pem", other_ca.pem()),
            server_certificate: write("server.pem", server_certificate.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
        }
    }
}

fn ca(common_name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    (params, rcgen::KeyPair::generate().expect("a CA key"))
}

/// A running unbound: plain DNS (UDP and TCP), DNS over TLS and DNS over HTTPS, each on a port
/// of its own on 127.0.0.1.
pub struct Unbound {
    pub tcp: SocketAddr,
    pub tls: SocketAddr,
    pub https: SocketAddr,
    /// The DoH path.
    pub path: &'static str,
    conf: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl Unbound {
    /// Writes its configuration into `directory` (beside `certificates`) and starts it; returns
    /// once it answers. `tweaks` are more `server:` lines.
    pub fn start(directory: &Path, certificates: &Certificates, tweaks: &str) -> Self {
        let (tcp, tls, https) = (
            external::free_port(),
            external::free_port(),
            external::free_port(),
        );
        let mut local_data = String::new();
        for n in 0..NAMES {
            let _ = writeln!(
                local_data,
                "    local-data: \"n{n}.test. 300 IN A {}\"",
                address_of(n)
            );
        }
        let conf = directory.join("unbound.conf");
        let directory_text = directory.display();
        std::fs::write(
            &conf,
            format!(
                r#"server:
    verbosity: 1
    num-threads: 1
    do-daemonize: no
    use-syslog: no
    logfile: ""
    log-time-ascii: yes
    username: ""
    chroot: ""
    directory: "{directory_text}"
    pidfile: "{directory_text}/unbound.pid"
    do-ip6: no
    interface: 127.0.0.1@{tcp}
    interface: 127.0.0.1@{tls}
    interface: 127.0.0.1@{https}
    port: {tcp}
    tls-port: {tls}
    https-port: {https}
    tls-service-key: "{key}"
    tls-service-pem: "{certificate}"
    http-endpoint: "/dns-query"
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    edns-tcp-keepalive: yes
    incoming-num-tcp: 64
    local-zone: "test." static
{local_data}{tweaks}
remote-control:
    control-enable: no
"#,
                key = certificates.server_key.display(),
                certificate = certificates.server_certificate.display(),
            ),
        )
        .expect("write unbound.conf");
        let mut unbound = Self {
            tcp: SocketAddr::from((Ipv4Addr::LOCALHOST, tcp)),
            tls: SocketAddr::from((Ipv4Addr::LOCALHOST, tls)),
            https: SocketAddr::from((Ipv4Addr::LOCALHOST, https)),
            path: "/dns-query",
            conf,
            log: directory.join("unbound.log"),
            process: None,
        };
        unbound.run();
        unbound
    }

    /// Starts the process on the configured ports and waits until it answers.
    fn run(&mut self) {
        let output = std::fs::File::create(&self.log).expect("create unbound's log");
        let mut command = Command::new(unbound_path());
        command
            .arg("-d")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone a file handle"))
            .stderr(output);
        let mut process = Process::spawn("unbound", command);
        let query = external::dns_query(0x4242, "n1.test", 1, 1);
        let (tls, https) = (self.tls, self.https);
        let log = self.log.clone();
        let ready = external::wait_until(
            &mut process,
            "unbound",
            &|| external::read_or_empty(&log),
            &|| {
                external::udp_exchange(self.tcp.port(), &query).is_some()
                    && TcpStream::connect_timeout(&tls, Duration::from_millis(200)).is_ok()
                    && TcpStream::connect_timeout(&https, Duration::from_millis(200)).is_ok()
            },
        );
        if let Err(status) = ready {
            panic!(
                "unbound exited ({status}) before answering; its log:\n{}",
                external::read_or_empty(&self.log)
            );
        }
        self.process = Some(process);
    }

    /// Stops the process (its connections close with it).
    pub fn stop(&mut self) {
        drop(self.process.take());
    }

    /// Stops it and starts it again on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn log(&self) -> String {
        external::read_or_empty(&self.log)
    }
}
