//! `upstream_reply`: replies from an upstream, through the forwarder's reply matching
//! (`sources/forward/udp.rs`, `check_reply`: our ID? parse; QR, opcode, question match?) and on
//! through the rest of the `dns` source (RCODE mapping, sections, the TCP retry on TC=1).
//!
//! The matching is private to the forwarder, so it is reached the way a packet reaches it: a
//! [`Forwarder`] (no cache, one plain-DNS upstream; a new one for each input, so that the
//! failure cache of RFC 9520 never answers in the upstream's place) asks a fake upstream on
//! 127.0.0.1, which answers each query with the fuzz input's datagram and then with a genuine
//! reply (a marker record).
//!
//! Input: one control byte, then the datagram. Control bit 0: the datagram's ID is replaced by
//! the query's (else it is sent as it is, and nearly always belongs to no query in flight).
//! Bit 1: the question asked is the datagram's own first question, when it has one that reads
//! (else `example.org. A`), so that replies which match get through to the rest of the source.
//!
//! Checked (RFC 5452 §9.1): a datagram that is not a response to a standard query with the
//! query's ID and exactly its question is never the answer: the genuine reply is. And the
//! lookup ends within [`ANSWER_WITHIN`], whatever was sent.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Runtime;

use super::common::runtime;

use hearth::cache::CacheConfig;
use hearth::chain::{Outcome, Question, Source};
use hearth::config::values::UpstreamSpec;
use hearth::sources::forward::{ForwardConfig, Forwarder, Policy, UpstreamsFrom};

/// How long one lookup may take: the upstream answers at once over loopback, so anything near
/// this is a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// The genuine reply's only record, which no fuzz input can make the forwarder read instead
/// without being a valid reply itself.
const MARKER_OWNER: &str = "genuine.hearth-fuzz.invalid.";
const MARKER_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// What the fake upstream sends for the next query, and what it sent for the last one.
#[derive(Default)]
struct Exchange {
    datagram: Vec<u8>,
    patch_id: bool,
    /// The datagram as sent to the lookup's UDP query (its ID perhaps patched), and that
    /// query's ID.
    sent: Option<(Vec<u8>, u16)>,
}

struct State {
    runtime: Runtime,
    /// The fake upstream's address (UDP and TCP).
    upstream: SocketAddr,
    exchange: Arc<Mutex<Exchange>>,
}

fn lock(exchange: &Mutex<Exchange>) -> std::sync::MutexGuard<'_, Exchange> {
    exchange.lock().unwrap_or_else(|e| e.into_inner())
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let runtime = runtime();
        let exchange = Arc::new(Mutex::new(Exchange::default()));
        let upstream = runtime.block_on(async {
            // UDP and TCP on the same port, as an upstream has them (TCP for TC=1).
            let (udp, tcp) = loop {
                let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .expect("a UDP socket on loopback");
                let port = udp.local_addr().expect("its address").port();
                if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                    break (udp, tcp);
                }
            };
            let address = udp.local_addr().expect("its address");
            tokio::spawn(serve_udp(udp, Arc::clone(&exchange)));
            tokio::spawn(serve_tcp(tcp, Arc::clone(&exchange)));
            address
        });
        State {
            runtime,
            upstream,
            exchange,
        }
    })
}

/// A forwarder with no cache and one plain-DNS upstream. Its health-check task ends at its
/// first tick after the forwarder is dropped: the interval is short so that those of earlier
/// inputs do not pile up.
fn forwarder(upstream: SocketAddr) -> Forwarder {
    Forwarder::new(&ForwardConfig {
        upstreams: vec![UpstreamSpec::udp(upstream)],
        upstreams_from: UpstreamsFrom::Config,
        policy: Policy::Sequential,
        timeout: Duration::from_secs(1),
        max_concurrent: 100,
        health_check: Duration::from_millis(50),
        // Every lookup asks the upstream.
        cache: CacheConfig {
            capacity: 0,
            ..CacheConfig::default()
        },
        tls_ca: None,
        // A socket per query: the pool's sweep task would outlive each input by 10 s.
        udp_ports: 0,
        zones: Vec::new(),
        dnssec: Default::default(),
    })
}

/// The fuzz datagram for `query`, its ID patched if asked.
fn fuzz_reply(exchange: &Mutex<Exchange>, query: &[u8]) -> Vec<u8> {
    let mut exchange = lock(exchange);
    let mut datagram = exchange.datagram.clone();
    if exchange.patch_id && datagram.len() >= 2 && query.len() >= 2 {
        datagram[..2].copy_from_slice(&query[..2]);
    }
    let id = query
        .first_chunk::<2>()
        .map_or(0, |id| u16::from_be_bytes(*id));
    // The first query of the lookup is the UDP one; a TCP retry (TC=1) does not replace it.
    if exchange.sent.is_none() {
        exchange.sent = Some((datagram.clone(), id));
    }
    datagram
}

/// What an upstream would answer: the question, and the marker record.
fn genuine_reply(query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.queries = query.queries;
    reply.answers.push(Record::from_rdata(
        Name::from_ascii(MARKER_OWNER).ok()?,
        4242,
        RData::A(A(MARKER_ADDRESS)),
    ));
    reply.to_vec().ok()
}

async fn serve_udp(socket: UdpSocket, exchange: Arc<Mutex<Exchange>>) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let query = &buffer[..length];
        let datagram = fuzz_reply(&exchange, query);
        // Too large for a datagram: not sent (the genuine reply still is).
        let _ = socket.send_to(&datagram, peer).await;
        if let Some(genuine) = genuine_reply(query) {
            let _ = socket.send_to(&genuine, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, exchange: Arc<Mutex<Exchange>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream, Arc::clone(&exchange)));
    }
}

async fn serve_connection(mut stream: TcpStream, exchange: Arc<Mutex<Exchange>>) {
    let answer = async {
        let length = usize::from(stream.read_u16().await?);
        let mut query = vec![0u8; length];
        stream.read_exact(&mut query).await?;
        let datagram = fuzz_reply(&exchange, &query);
        let mut out = Vec::new();
        for message in [Some(datagram), genuine_reply(&query)]
            .into_iter()
            .flatten()
        {
            if let Ok(length) = u16::try_from(message.len()) {
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(&message);
            }
        }
        stream.write_all(&out).await?;
        // Until the client is done with the connection.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await?;
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(ANSWER_WITHIN, answer).await;
}

/// Whether `datagram` answers `question` asked under `id`, by RFC 5452 §9.1's checks (the
/// addresses and ports aside: the kernel checks those for a connected socket).
fn answers(datagram: &[u8], id: u16, question: &Question) -> bool {
    let Ok(message) = Message::from_vec(datagram) else {
        return false;
    };
    message.metadata.id == id
        && message.metadata.message_type == MessageType::Response
        && message.metadata.op_code == OpCode::Query
        && message.queries.len() == 1
        && message.queries[0].name() == &question.name
        && message.queries[0].query_type() == question.record_type
        && message.queries[0].query_class() == DNSClass::IN
}

fn is_genuine(outcome: &Outcome) -> bool {
    let Outcome::Success(answer) = outcome else {
        return false;
    };
    answer.answers.iter().any(|record| {
        record.name.to_ascii() == MARKER_OWNER
            && matches!(&record.data, RData::A(address) if address.0 == MARKER_ADDRESS)
    })
}

pub fn run(data: &[u8]) {
    let Some((&control, datagram)) = data.split_first() else {
        return;
    };
    let state = state();
    // One exchange at a time: the checks read what the fake upstream sent for this one.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let question = (control & 2 != 0)
        .then(|| Message::from_vec(datagram).ok())
        .flatten()
        .and_then(|message| message.queries.into_iter().next())
        .map(|query| Question::new(query.name().clone(), query.query_type()))
        .unwrap_or_else(|| {
            Question::new(
                Name::from_ascii("example.org.").expect("a name"),
                RecordType::A,
            )
        });
    {
        let mut exchange = lock(&state.exchange);
        exchange.datagram = datagram.to_vec();
        exchange.patch_id = control & 1 != 0;
        exchange.sent = None;
    }
    let outcome = state
        .runtime
        .block_on(async {
            let forwarder = forwarder(state.upstream);
            tokio::time::timeout(ANSWER_WITHIN, forwarder.lookup(&question)).await
        })
        .unwrap_or_else(|_| panic!("no outcome within {ANSWER_WITHIN:?}"));
    let sent = lock(&state.exchange).sent.take();
    if let Some((sent, id)) = sent {
        if !answers(&sent, id, &question) {
            assert!(
                is_genuine(&outcome),
                "a datagram that does not answer the query (ID {id:04x}, {} {}) was taken \
                 for its answer: {outcome:?}",
                question.name,
                question.record_type
            );
        }
    }
}
