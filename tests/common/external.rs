//! Helpers for the tests that drive external programs (the `hearth` binary, `dig`, `nsd`):
//! finding a tool or skipping loudly, child processes that never outlive their test, free
//! loopback ports, and a raw UDP query to tell when a server is up. Std only, no async.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashSet;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to answer its first query.
pub const READY_WITHIN: Duration = Duration::from_secs(10);

/// Where `tool` is: on PATH, or (for nsd, which Debian puts in sbin) at /usr/sbin/nsd.
pub fn tool_path(tool: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let sbin = Path::new("/usr/sbin").join(tool);
        (tool == "nsd" && sbin.is_file()).then_some(sbin)
    })
}

/// Whether `tool` is installed. When it is not: a panic if `HEARTH_REQUIRE_EXTERNAL=1`, else a
/// loud SKIPPED line, and the test returns early.
pub fn require(tool: &str) -> bool {
    if tool_path(tool).is_some() {
        return true;
    }
    let package = match tool {
        "dig" | "nslookup" => "bind9-dnsutils",
        "kdig" => "knot-dnsutils",
        "promtool" => "prometheus",
        other => other,
    };
    let current = thread::current();
    let test = current.name().unwrap_or("unnamed test");
    if std::env::var("HEARTH_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!(
            "{test}: {tool} is not installed (Debian package {package}: apt-get install \
             {package}), and HEARTH_REQUIRE_EXTERNAL=1 makes that a failure"
        );
    }
    let message = format!(
        "SKIPPED: {test}: {tool} not installed (apt-get install {package}); set \
         HEARTH_REQUIRE_EXTERNAL=1 to make this a failure"
    );
    // Written to stderr directly rather than with eprintln!, which libtest captures and then
    // throws away for a passing test: a skip must show in a plain `cargo test`.
    let _ = writeln!(std::io::stderr(), "{message}");
    false
}

pub fn tool(tool: &str) -> PathBuf {
    tool_path(tool).unwrap_or_else(|| panic!("{tool} is not installed"))
}

/// A child process (and its process group) that is stopped when dropped, so no server outlives
/// its test, whether the test passes or panics.
pub struct Process {
    child: Child,
    name: &'static str,
}

impl Process {
    /// Starts `command` in a process group of its own, so [`Drop`] reaches its children too
    /// (nsd forks server processes).
    pub fn spawn(name: &'static str, mut command: Command) -> Self {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Self { child, name }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.pid())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited().is_none() {
            // The leader first, so it can stop and reap its own children (nsd does).
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status();
            // Hearth answers a first SIGTERM with lameduck (5 s by default); a second one
            // cuts it short.
            if self.wait_for_exit(Duration::from_millis(300)).is_none() {
                let _ = Command::new("kill")
                    .args(["-TERM", &self.pid().to_string()])
                    .status();
            }
            if self.wait_for_exit(Duration::from_secs(5)).is_none() {
                eprintln!(
                    "{} (pid {}) ignored SIGTERM; killing it",
                    self.name,
                    self.pid()
                );
            }
        }
        // Also reaches children left behind in the group; harmless if there are none.
        self.signal_group("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ports handed out by [`free_port`] in this test binary, never handed out twice.
static PORTS_GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port free for both UDP and TCP right now. Hearth rejects port 0, so the test picks
/// the port; the callers retry with another if someone takes it before the server binds it.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = PORTS_GIVEN.lock().unwrap();
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// A TOML string holding `path`.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// A query with ID `id` for `name`, of `qtype` in `qclass`, with RD set.
pub fn dns_query(id: u16, name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&qclass.to_be_bytes());
    packet
}

/// Sends `query` over UDP to 127.0.0.1:`port`; the reply (QR set, same ID) if one comes in time.
pub fn udp_exchange(port: u16, query: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    socket.connect(("127.0.0.1", port)).ok()?;
    socket.send(query).ok()?;
    let mut buffer = [0u8; 4096];
    let length = socket.recv(&mut buffer).ok()?;
    let reply = &buffer[..length];
    (length >= 12 && reply[..2] == query[..2] && reply[2] & 0x80 != 0).then(|| reply.to_vec())
}

/// Polls until `is_ready` or the process exits (`Err` with its status) or [`READY_WITHIN`]
/// passes (a panic naming `what` and showing `log`).
pub fn wait_until(
    process: &mut Process,
    what: &str,
    log: &dyn Fn() -> String,
    is_ready: &dyn Fn() -> bool,
) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Some(status) = process.exited() {
            return Err(status);
        }
        if is_ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            panic!(
                "{what} did not answer within {READY_WITHIN:?}; its log:\n{}",
                log()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Starts `nsd -d -c conf` (in the foreground, so the guard owns it), its stdout and stderr
/// written to `output`.
pub fn spawn_nsd(conf: &Path, output: &Path) -> Process {
    let output = std::fs::File::create(output).expect("create nsd's output file");
    let mut command = Command::new(tool_path("nsd").expect("nsd is installed"));
    command
        .arg("-d")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone a file handle"))
        .stderr(output);
    Process::spawn("nsd", command)
}
