//! What every end-to-end test needs: the real server started in-process on `127.0.0.1:0`, a
//! real DNS client (hickory's), and a local upstream that the test scripts and counts.
//!
//! Nothing here sends a packet anywhere but loopback.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod apiserver;
pub mod external;
pub mod kubernetes;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use hearth::app::Running;
use hearth::config::{Config, Overrides};

/// How long a test waits for anything before it gives up: a bound on waiting, never a
/// measurement.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running Hearth and the address it serves on (UDP and TCP).
pub struct TestServer {
    pub addr: SocketAddr,
    running: Option<Running>,
}

impl TestServer {
    /// The running server, for its counters.
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running until stopped")
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown(Duration::from_secs(5)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that panics still stops its listeners: cancelling is enough, waiting is not
        // possible in drop.
        if let Some(running) = self.running.take() {
            drop(tokio::spawn(running.shutdown(Duration::from_secs(1))));
        }
    }
}

/// Starts Hearth on `127.0.0.1:0` with the configuration `toml` (the listen address is
/// replaced).
pub async fn start_server(toml: &str) -> TestServer {
    let overrides = Overrides {
        listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
    };
    let config = Config::from_toml(toml, "test.toml", &overrides).expect("test config is valid");
    let running = hearth::app::start(&config).await.expect("server starts");
    TestServer {
        addr: running.local_addrs()[0],
        running: Some(running),
    }
}

/// A config with a hosts file and the given upstreams and order.
pub fn config(hosts: &Path, upstreams: &[SocketAddr], order: &[&str]) -> String {
    let upstreams: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    let order: Vec<String> = order.iter().map(|o| format!("\"{o}\"")).collect();
    format!(
        "[resolve]\norder = [{}]\n[files]\npaths = [\"{}\"]\nttl = 3600\nreload_interval = \"100ms\"\n\
         [forward]\nupstreams = [{}]\ntimeout = \"500ms\"\n",
        order.join(", "),
        hosts.display(),
        upstreams.join(", ")
    )
}

/// A loopback address on which nothing answers: bound, so no one else takes it, and never read.
pub async fn dead_upstream() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// A hickory client over UDP.
pub async fn udp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(5)))
        // One send: a retry would reach the upstream as a second query and blur the counts.
        .with_max_retries(1)
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

/// A hickory client over TCP.
pub async fn tcp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (stream, sender) = TcpClientStream::new(
        server,
        None,
        Some(Duration::from_secs(5)),
        TokioRuntimeProvider::default(),
    );
    let (client, background) = Client::<TokioRuntimeProvider>::new(stream.await.unwrap(), sender);
    tokio::spawn(background);
    client
}

/// Asks `server` over UDP with hickory's client.
pub async fn ask(server: SocketAddr, name_text: &str, record_type: RecordType) -> DnsResponse {
    let mut client = udp_client(server).await;
    client
        .query(name(name_text), DNSClass::IN, record_type)
        .await
        .unwrap_or_else(|e| panic!("{name_text} {record_type}: {e}"))
}

/// The answer section as zone-file lines, e.g. `web.example.org. 3600 IN A 192.0.2.10`.
pub fn answers(response: &Message) -> Vec<String> {
    response.answers.iter().map(|r| r.to_string()).collect()
}

/// The answer section's data only, e.g. `192.0.2.10`.
pub fn rdata(response: &DnsResponse) -> Vec<String> {
    response
        .answers
        .iter()
        .map(|r| r.data.to_string())
        .collect()
}

/// A query message as bytes, for tests that send raw packets.
pub fn query_bytes(
    id: u16,
    name_text: &str,
    record_type: RecordType,
    edns: Option<u16>,
) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message
        .queries
        .push(Query::query(name(name_text), record_type));
    if let Some(payload) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        message.edns = Some(opt);
    }
    message.to_vec().unwrap()
}

/// Sends raw bytes over UDP and returns the reply, or `None` if none comes within `wait`.
pub async fn udp_raw(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(packet, server).await.unwrap();
    let mut buffer = vec![0u8; 65_535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buffer)).await {
        Ok(Ok((length, _))) => Some(buffer[..length].to_vec()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// A scriptable upstream.

/// How the fake upstream behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers from its records; NXDOMAIN with its SOA for names it lacks.
    Answer,
    /// Never replies.
    Silent,
    /// Replies SERVFAIL to everything.
    ServFail,
    /// Replies REFUSED to everything.
    Refused,
    /// Replies with the right answer but the wrong ID (a spoofing attempt that guessed badly).
    WrongId,
    /// Replies with bytes that are not a DNS message.
    Garbage,
    /// Replies with the right ID but an answer for another question (RFC 5452 §9.1).
    WrongQuestion,
    /// First a forged reply (wrong ID, a poisoned address), then the genuine one.
    SpoofThenAnswer,
}

/// The address a forged reply carries.
pub const POISON: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);

/// A DNS server on loopback that answers from a table, over UDP and TCP, counts what it is
/// asked, and can be told to misbehave. Over UDP it truncates (TC=1) any answer above 512
/// bytes, as a real server does for a client without EDNS-sized room.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
}

struct UpstreamState {
    records: Mutex<HashMap<(String, RecordType), Vec<Record>>>,
    behaviour: Mutex<Behaviour>,
    udp_queries: AtomicUsize,
    tcp_queries: AtomicUsize,
    tcp_connections: AtomicUsize,
    /// Names asked, in order.
    asked: Mutex<Vec<String>>,
    /// Hearth's loop probes and health checks received.
    probes: AtomicUsize,
    delay: Mutex<Duration>,
    /// Sets AD in every reply, as a validating resolver does for signed data.
    authentic_data: std::sync::atomic::AtomicBool,
}

/// The SOA the fake upstream puts in negative answers.
pub fn upstream_soa() -> Record {
    Record::from_rdata(
        name("example.net."),
        300,
        RData::SOA(SOA::new(
            name("ns.example.net."),
            name("hostmaster.example.net."),
            2026112201,
            7200,
            1800,
            86400,
            60,
        )),
    )
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let state = Arc::new(UpstreamState {
            records: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(Behaviour::Answer),
            udp_queries: AtomicUsize::new(0),
            tcp_queries: AtomicUsize::new(0),
            tcp_connections: AtomicUsize::new(0),
            asked: Mutex::new(Vec::new()),
            probes: AtomicUsize::new(0),
            delay: Mutex::new(Duration::ZERO),
            authentic_data: std::sync::atomic::AtomicBool::new(false),
        });
        let (udp, tcp) = bind_same_port().await;
        let addr = udp.local_addr().unwrap();
        tokio::spawn(serve_udp(udp, Arc::clone(&state)));
        tokio::spawn(serve_tcp(tcp, Arc::clone(&state)));
        Self { addr, state }
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    /// Every answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Whether every reply carries AD=1 ("authenticated"), true or not.
    pub fn set_authentic_data(&self, on: bool) {
        self.state.authentic_data.store(on, Ordering::SeqCst);
    }

    pub fn add(&self, record: Record) {
        let key = (record.name.to_lowercase().to_string(), record.record_type());
        self.state
            .records
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(record);
    }

    pub fn add_a(&self, owner: &str, ip: Ipv4Addr) {
        self.add_a_ttl(owner, ip, 300);
    }

    pub fn add_a_ttl(&self, owner: &str, ip: Ipv4Addr, ttl: u32) {
        self.add(Record::from_rdata(name(owner), ttl, RData::A(A(ip))));
    }

    pub fn add_cname(&self, owner: &str, target: &str) {
        self.add(Record::from_rdata(
            name(owner),
            300,
            RData::CNAME(CNAME(name(target))),
        ));
    }

    pub fn udp_queries(&self) -> usize {
        self.state.udp_queries.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn tcp_connections(&self) -> usize {
        self.state.tcp_connections.load(Ordering::SeqCst)
    }

    pub fn tcp_queries(&self) -> usize {
        self.state.tcp_queries.load(Ordering::SeqCst)
    }

    pub fn queries(&self) -> usize {
        self.udp_queries() + self.tcp_queries()
    }

    /// Hearth's loop probes and health checks received.
    pub fn probes(&self) -> usize {
        self.state.probes.load(Ordering::SeqCst)
    }

    pub fn asked(&self) -> Vec<String> {
        self.state.asked.lock().unwrap().clone()
    }
}

async fn bind_same_port() -> (UdpSocket, TcpListener) {
    for _ in 0..32 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP");
}

impl UpstreamState {
    /// The replies to `packet`, in order (none: silence).
    fn replies(&self, packet: &[u8], over_udp: bool) -> Vec<Vec<u8>> {
        let Some(genuine) = self.reply(packet, over_udp) else {
            return Vec::new();
        };
        let behaviour = *self.behaviour.lock().unwrap();
        let forged = |mut message: Message| {
            message.metadata.id ^= 0x5a5a;
            for record in &mut message.answers {
                record.data = RData::A(A(POISON));
            }
            message.to_vec().unwrap_or_default()
        };
        match behaviour {
            Behaviour::WrongId => vec![forged(Message::from_vec(&genuine).unwrap())],
            Behaviour::Garbage => vec![b"\x13\x37 this is not DNS \xff\xfe".to_vec()],
            Behaviour::WrongQuestion => {
                let mut message = Message::from_vec(&genuine).unwrap();
                message.queries = vec![Query::query(name("poison.example."), RecordType::A)];
                message.answers = vec![Record::from_rdata(
                    name("poison.example."),
                    300,
                    RData::A(A(POISON)),
                )];
                vec![message.to_vec().unwrap()]
            }
            Behaviour::SpoofThenAnswer => {
                vec![forged(Message::from_vec(&genuine).unwrap()), genuine]
            }
            _ => vec![genuine],
        }
    }

    /// The genuine reply to `packet`, or `None` to stay silent.
    fn reply(&self, packet: &[u8], over_udp: bool) -> Option<Vec<u8>> {
        let request = Message::from_vec(packet).ok()?;
        let query = request.queries.first()?.clone();
        // Hearth's probes are answered (if the behaviour allows), but counted apart.
        if is_probe(&query) {
            self.probes.fetch_add(1, Ordering::SeqCst);
        } else {
            self.asked.lock().unwrap().push(query.name().to_string());
        }
        let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.metadata.authentic_data = self.authentic_data.load(Ordering::SeqCst);
        reply.queries.push(query.clone());
        if let Some(edns) = &request.edns {
            let mut opt = Edns::new();
            opt.set_max_payload(1232)
                .set_dnssec_ok(edns.flags().dnssec_ok);
            reply.edns = Some(opt);
        }
        let behaviour = *self.behaviour.lock().unwrap();
        match behaviour {
            Behaviour::Silent => return None,
            Behaviour::ServFail => reply.metadata.response_code = ResponseCode::ServFail,
            Behaviour::Refused => reply.metadata.response_code = ResponseCode::Refused,
            _ => self.fill(&mut reply, &query),
        }
        let bytes = reply.to_vec().ok()?;
        if over_udp && bytes.len() > 512 {
            reply.metadata.truncation = true;
            reply.answers.clear();
            return reply.to_vec().ok();
        }
        Some(bytes)
    }

    /// Answers from the table, following CNAMEs in it, as an authoritative server does.
    fn fill(&self, reply: &mut Message, query: &Query) {
        let records = self.records.lock().unwrap();
        let mut owner = query.name().to_lowercase().to_string();
        for _ in 0..8 {
            if let Some(found) = records.get(&(owner.clone(), query.query_type())) {
                reply.answers.extend(found.iter().cloned());
                return;
            }
            match records.get(&(owner.clone(), RecordType::CNAME)) {
                Some(cname) => {
                    reply.answers.extend(cname.iter().cloned());
                    match &cname[0].data {
                        RData::CNAME(target) => owner = target.0.to_lowercase().to_string(),
                        _ => return,
                    }
                }
                None => break,
            }
        }
        let exists = records.keys().any(|(n, _)| *n == owner);
        if !exists {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
        reply.authorities.push(upstream_soa());
    }
}

/// Whether a query is Hearth's own traffic rather than a client's question: a forwarding-loop
/// probe (sent to every upstream at start) or a health check (`. NS`, while marked down).
fn is_probe(query: &Query) -> bool {
    query.name().is_root()
        || query
            .name()
            .to_string()
            .ends_with(".hearth-loop-check.invalid.")
}

fn is_probe_packet(packet: &[u8]) -> bool {
    Message::from_vec(packet)
        .ok()
        .and_then(|m| m.queries.first().cloned())
        .is_some_and(|q| is_probe(&q))
}

async fn serve_udp(socket: UdpSocket, state: Arc<UpstreamState>) {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; 65_535];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        if !is_probe_packet(&buffer[..length]) {
            state.udp_queries.fetch_add(1, Ordering::SeqCst);
        }
        let packet = buffer[..length].to_vec();
        let state = Arc::clone(&state);
        let socket = Arc::clone(&socket);
        tokio::spawn(async move {
            let delay = *state.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            for reply in state.replies(&packet, true) {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<UpstreamState>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        state.tcp_connections.fetch_add(1, Ordering::SeqCst);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok(length) = stream.read_u16().await else {
                    return;
                };
                let mut packet = vec![0u8; usize::from(length)];
                if stream.read_exact(&mut packet).await.is_err() {
                    return;
                }
                if !is_probe_packet(&packet) {
                    state.tcp_queries.fetch_add(1, Ordering::SeqCst);
                }
                let delay = *state.delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                let Some(reply) = state.reply(&packet, false) else {
                    continue;
                };
                let mut frame = (reply.len() as u16).to_be_bytes().to_vec();
                frame.extend_from_slice(&reply);
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Writes a hosts file into `dir` and returns its path.
pub fn hosts_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("hosts");
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `check` until it holds or `PATIENCE` runs out; returns whether it held.
pub async fn eventually<F, Fut>(check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(PATIENCE, check).await
}

/// [`eventually`] with a patience of its own, for what is bounded by a timeout longer than
/// `PATIENCE` (a watch given up after a minute of silence).
pub async fn eventually_within<F, Fut>(patience: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `GET path` over HTTP/1.1 with `Connection: close`; the status code and the body. A client
/// this small is enough for three admin routes, and keeps an HTTP client crate out of the
/// test dependencies.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_get_with(addr, path, &[]).await;
    (status, body)
}

/// A GET with extra request headers (`("Accept", "...")`): the status, the response's head
/// (status line and headers) and its body.
pub async fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = tokio::time::timeout(PATIENCE, tokio::net::TcpStream::connect(addr))
        .await
        .expect("admin endpoint accepts in time")
        .expect("admin endpoint accepts");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("admin endpoint replies in time")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the metrics sample line `series` (`name{labels}`, labels exactly as printed,
/// or none) in a `/metrics` text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// The Extended DNS Error of a reply (RFC 8914): its INFO-CODE and EXTRA-TEXT.
pub fn extended_error(reply: &[u8]) -> Option<(u16, String)> {
    let message = Message::from_vec(reply).ok()?;
    let edns = message.edns.as_ref()?;
    edns.options()
        .options
        .iter()
        .find_map(|(_, option)| match option {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data) if data.len() >= 2 => {
                Some((
                    u16::from_be_bytes([data[0], data[1]]),
                    String::from_utf8_lossy(&data[2..]).into_owned(),
                ))
            }
            _ => None,
        })
}

/// One UDP exchange from `source` (any address of 127.0.0.0/8 can be bound without privileges,
/// so tests play clients in other networks); the reply, or `None` if none came within `wait`.
pub async fn udp_from(
    source: Ipv4Addr,
    server: SocketAddr,
    query: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((source, 0)).await.unwrap();
    socket.send_to(query, server).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    match tokio::time::timeout(wait, socket.recv_from(&mut buffer)).await {
        Ok(Ok((length, _))) => Some(buffer[..length].to_vec()),
        _ => None,
    }
}
