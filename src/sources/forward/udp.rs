//! Plain DNS to one upstream over UDP: each query is lent, alone, a socket of the forwarder's
//! pool (`pool`), on a port the kernel drew at random, and the reply is matched on address,
//! port, ID and question.
//!
//! ```text
//! exchange ─► pool.checkout(upstream): a random slot's socket, connected to the upstream
//!    │         (or a new socket: socket + connect, a new random port) ─► send(query, random ID)
//!    ▼                                                                   │
//! recv until the deadline ◄── kernel: only datagrams from the upstream's address and port
//!    each datagram: check_reply ─ our ID and question? ─► the reply; the socket back to its slot
//!                              └─ anything else ───────► dropped, counted, keep waiting
//!    ICMP port unreachable (ECONNREFUSED) ─► this upstream is not listening: fail at once,
//!                                            and the socket is closed, not lent again
//! ```
//!
//! RFC 5452 §9.1: "A resolver implementation MUST match responses to all of the following
//! attributes of the query: Source address against query destination address; Destination
//! address against query source address; Destination port against query source port; Query ID;
//! Query name; Query class and type ... A mismatch and the response MUST be considered invalid."
//! The socket is `connect()`ed, so the kernel delivers only datagrams from the upstream's
//! address and port to this socket's address and port; [`check_reply`] checks the rest (the
//! name case-insensitively, RFC 4343; no 0x20 randomisation, which some upstreams do not echo).
//! A socket serves one query at a time, so what arrives on it is for that query or for none:
//! a reply that came after an earlier query on the same socket gave up carries that query's
//! random ID and is dropped as unmatched (counted in `upstream_unmatched_replies_total`).
//!
//! RFC 5452 §9.2: "Resolver implementations MUST: Use an unpredictable source port for outgoing
//! queries from the range of available ports ... that is as large as possible and practicable;
//! Use multiple different source ports simultaneously in case of multiple outstanding queries;
//! Use an unpredictable query ID". The ID comes from the CSPRNG for every query. The port is
//! that of a slot drawn at random (CSPRNG) among `forward.udp_ports` (16,384 by default), each
//! socket bound by the kernel, as it first connected, to a port drawn at random from
//! `net.ipv4.ip_local_port_range` (28,232 ports by default, and the operator's way to keep
//! ports away from services, which §9.2 also asks for). Queries in flight at once have
//! different sockets, so different ports.
//!
//! **What the pool changes, against a socket per query** (issue 14; `udp_ports = 0` brings
//! the socket per query back):
//!
//! | | a socket per query (`udp_ports = 0`) | the pool (16,384) |
//! |---|---|---|
//! | a query's port, to an attacker who knows no open port | uniform over 28,232: 14.8 bits | a slot's port, each drawn at random in the 28,232: still 14.8 bits |
//! | to one who has found every open port | one of the queries in flight (one, on a quiet server), each open one round trip | one of up to 16,384 open: 14 bits, and a port found open stays open until its socket is idle 30 s, 60 s old or used 1,000 times |
//! | distinct ports in 1,000 consecutive queries (measured) | 983 (expected 982) | 966 (expected 970) |
//! | upstream sockets open on a busy server | the queries in flight (≤ `max_concurrent`) | up to 16,384, all connected to the upstreams |
//! | plain-UDP misses, one pass of 100,000 (BENCHMARKS.md) | 13,350 q/s, 0.79× Unbound | 21,748 q/s, 1.29× Unbound |
//!
//! So the weakened property, with its numbers: an off-path attacker who can probe which UDP
//! ports of the host are open (SAD DNS, 2020, does it through the kernel's global ICMP rate
//! limit; an attacker on the host sees them directly) no longer narrows a query's port to the
//! few sockets of the queries in flight. With a socket per query, finding the open ports was
//! finding the ports of the queries in flight (on a quiet server, the one query's: what SAD
//! DNS exploits; the socket's short life was the defence). With the pool, that scan finds up
//! to 16,384 ports, and the query's is any of them with equal probability: 14 bits of port
//! left, against 14.8 for a blind guess over the whole range, plus the 16 bits of ID. A blind
//! forgery (no scan) must still cover about 2^30.8 port and ID pairs, as before. Unbound's
//! default: a socket per query, on a port drawn from its permitted range (tens of thousands),
//! up to 4,096 open per thread (`outgoing-range`). The sockets also stay open between queries:
//! up to 16,384 descriptors and ports held while busy, none after 30 s of quiet.
//!
//! **Why not the pool of 32 sockets per upstream** Hearth had until issue 14: its sockets were
//! shared by the queries in flight and replaced every 256 queries; 40 consecutive queries used
//! 24 distinct ports, about 5 bits of port entropy, 2,000 times fewer guesses than against
//! Unbound. The pool here keeps a port per query in flight, draws among thousands, and lends a
//! socket to one query at a time. What it saves, per query: the `socket`, the runtime's
//! `epoll_ctl` registration and removal, and the `close` (which frees the socket after an RCU
//! grace period); measured in BENCHMARKS.md.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::upstream::UpstreamStats;
use crate::chain::Question;
pub use pool::SocketPool;

/// The EDNS payload size we advertise upstream: the DNS Flag Day 2020 value, which avoids IP
/// fragmentation on almost every path (RFC 9715).
pub const UPSTREAM_PAYLOAD: u16 = 1232;

/// Room for one reply. We advertise 1,232 bytes; the rest is for upstreams that ignore that. A
/// longer datagram is read truncated, fails to parse and is dropped (the query times out).
const RECEIVE_BUFFER: usize = 4096;

/// The longest query we send: header, a name of at most 255 bytes, type, class, OPT record.
const MAX_QUERY: usize = 12 + 255 + 4 + 11;

/// How a UDP exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// No reply matched before the deadline.
    TimedOut,
    /// No socket could be bound, the query could not be sent, or the upstream's port is closed
    /// (an ICMP port unreachable came back).
    Io(io::Error),
}

/// One upstream asked over UDP.
pub struct UdpUpstream {
    upstream: SocketAddr,
    /// Where dropped datagrams are counted.
    stats: Arc<UpstreamStats>,
    /// The sockets, shared with every plain upstream of the forwarder.
    pool: Arc<SocketPool>,
}

/// What a datagram is to the query waiting on the socket.
#[derive(Debug)]
pub enum Checked {
    /// Its reply.
    Reply(Message),
    /// Not under its ID: a late reply to nothing, or a forgery that missed the ID.
    Unmatched,
    /// Under its ID but not its reply: another question, not a response, or undecodable.
    Mismatched,
}

/// RFC 5452 §9.1's checks on a datagram that came from the upstream's address and port (the
/// kernel checked those): the query's ID, then a response to a standard query with exactly the
/// question asked (the name compares case-insensitively, `Name`'s `PartialEq`). The ID is
/// looked at before anything is parsed, so most forgeries cost nothing.
pub fn check_reply(datagram: &[u8], id: u16, question: &Question) -> Checked {
    match datagram.first_chunk::<2>() {
        Some(first) if u16::from_be_bytes(*first) == id => {}
        _ => return Checked::Unmatched,
    }
    let Ok(message) = Message::from_vec(datagram) else {
        return Checked::Mismatched;
    };
    let answers = message.metadata.message_type == MessageType::Response
        && message.metadata.op_code == OpCode::Query
        && message.queries.len() == 1
        && message.queries[0].name() == &question.name
        && message.queries[0].query_type() == question.record_type
        && message.queries[0].query_class() == question.class;
    if answers {
        Checked::Reply(message)
    } else {
        Checked::Mismatched
    }
}

thread_local! {
    /// The encoded query, reused: no allocation per query to build it.
    static QUERY_BUFFER: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(MAX_QUERY));
}

impl UdpUpstream {
    pub fn new(upstream: SocketAddr, stats: Arc<UpstreamStats>, pool: Arc<SocketPool>) -> Self {
        Self {
            upstream,
            stats,
            pool,
        }
    }

    /// Sends `question` from a socket of the pool (a random one of its ports) and waits until
    /// `deadline` for the reply that matches it. Cancel-safe: dropped while waiting, the
    /// socket goes back to its slot, and a late reply is dropped by the next query on it.
    pub async fn exchange(
        &self,
        question: &Question,
        deadline: Instant,
    ) -> Result<Message, ExchangeError> {
        let mut lease = self.pool.checkout(self.upstream).map_err(|error| {
            tracing::debug!(upstream = %self.upstream, %error, "cannot open an upstream socket");
            ExchangeError::Io(error)
        })?;
        let result = self
            .exchange_on(
                lease.socket().map_err(ExchangeError::Io)?,
                question,
                deadline,
            )
            .await;
        if let Err(ExchangeError::Io(_)) = result {
            // An ICMP error, or a send refused: not a socket to lend again.
            lease.discard();
        }
        result
    }

    async fn exchange_on(
        &self,
        socket: &UdpSocket,
        question: &Question,
        deadline: Instant,
    ) -> Result<Message, ExchangeError> {
        // The CSPRNG (the thread's ChaCha12, seeded from the OS): RFC 5452 §9.2's
        // "unpredictable query ID", drawn again for every query, on a reused socket too.
        let id = rand::random::<u16>();
        // Encoded in the thread's buffer and sent at once: a UDP send does not block unless
        // the socket buffer is full, and only then is the query copied to wait for room.
        let blocked = QUERY_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            encode_query(&mut buffer, id, question).map_err(ExchangeError::Io)?;
            match socket.try_send(&buffer) {
                Ok(_) => Ok(None),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(Some(buffer.clone())),
                Err(error) => Err(ExchangeError::Io(error)),
            }
        })?;
        if let Some(query) = blocked {
            socket.send(&query).await.map_err(ExchangeError::Io)?;
        }
        let mut buffer = [0u8; RECEIVE_BUFFER];
        loop {
            let length = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
                Err(_) => return Err(ExchangeError::TimedOut),
                Ok(Ok(length)) => length,
                // The upstream's port is closed: no reply will come to this socket.
                Ok(Err(error)) => return Err(ExchangeError::Io(error)),
            };
            match check_reply(&buffer[..length], id, question) {
                Checked::Reply(message) => return Ok(message),
                Checked::Unmatched => {
                    self.stats.unmatched_replies.fetch_add(1, Ordering::Relaxed);
                    tracing::trace!(upstream = %self.upstream, "datagram not under the query's ID: dropped");
                }
                Checked::Mismatched => {
                    self.stats
                        .mismatched_replies
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(upstream = %self.upstream, "datagram under the query's ID that is not its reply: dropped");
                }
            }
        }
    }
}

/// The query for `question`: ID `id`, RD=1, CD as the client set it, the question as the
/// client wrote it, and EDNS(0) with our payload size and the client's DO bit.
pub fn encode_query(buffer: &mut Vec<u8>, id: u16, question: &Question) -> io::Result<()> {
    buffer.clear();
    let mut metadata = Metadata::new(id, MessageType::Query, OpCode::Query);
    metadata.recursion_desired = true;
    metadata.checking_disabled = question.checking_disabled;
    let header = Header {
        metadata,
        counts: HeaderCounts {
            queries: 1,
            answers: 0,
            authorities: 0,
            additionals: 1,
        },
    };
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD)
        .set_dnssec_ok(question.dnssec_ok);
    let mut encoder = BinEncoder::new(buffer);
    // The name label by label, uncompressed: `Name::emit` builds a list of label offsets for
    // compression (an allocation per query), for a name with nothing to compress against.
    let name = |encoder: &mut BinEncoder<'_>| {
        for label in question.name.iter() {
            // A `Name` holds labels of at most 63 bytes.
            encoder.emit(u8::try_from(label.len()).unwrap_or(u8::MAX))?;
            encoder.emit_vec(label)?;
        }
        encoder.emit(0)
    };
    header
        .emit(&mut encoder)
        .and_then(|()| name(&mut encoder))
        .and_then(|()| question.record_type.emit(&mut encoder))
        .and_then(|()| question.class.emit(&mut encoder))
        .and_then(|()| edns.emit(&mut encoder))
        .map_err(io::Error::other)
}

pub mod pool;

#[cfg(test)]
mod tests;
