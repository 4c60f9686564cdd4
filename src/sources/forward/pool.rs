//! The UDP sockets of one upstream: a pool shared by every query to it, replies matched to
//! queries by ID and question.
//!
//! ```text
//! ask ─► random slot ─► its socket (bound on first use; a new one once it is due, see below)
//!   │                     │ register: a random ID not in flight on this socket, the question,
//!   │                     │           a oneshot for the reply
//!   │                     ▼
//!   │                   send(query) ── connected socket ──► upstream
//!   ▼                                                          │
//! wait for the oneshot ◄── receive task (one per socket) ◄─────┘ kernel: source address+port
//!   until the deadline       ID in flight? parse; QR, opcode, question match? -> that waiter;
//!   (dropping the wait        anything else is dropped and counted, never answers a query
//!   unregisters the ID)
//! ```
//!
//! Why, measured (BENCHMARKS.md, the `miss` scenario: one pass over 100,000 new names, each
//! answered by a local NSD): hickory-net's `UdpClientStream` opened, registered and closed a
//! socket per query and ran its request machinery around it, and Hearth missed at 0.76× Unbound's
//! rate (33,018 vs 43,641 q/s). With the pool a miss costs one `send` and a share of the receive
//! task's reads (1.4 `recvfrom` per reply), and Hearth misses at 1.92× Unbound's rate (74,557
//! vs 38,878 q/s, `benches/throughput.sh --only miss --servers hearth,unbound --repeat 3`), and
//! at 1.7-2.0× in six more passes of each taken in turns (69,500-83,400 vs 40,700-43,600 q/s).
//! Half of what remains is the kernel's, in the two `sendto`s of a miss (the query upstream, the
//! reply to the client): loopback delivery and waking the receiving process.
//!
//! RFC 5452 §9.1: "A resolver implementation MUST match responses to all of the following
//! attributes of the query: Source address against query destination address; Destination
//! address against query source address; Destination port against query source port; Query ID;
//! Query name; Query class and type ... A mismatch and the response MUST be considered invalid."
//! Each socket is `connect()`ed to the upstream, so the kernel delivers only datagrams from its
//! address and port, to this socket's address and port; the receive task checks the rest (the
//! name case-insensitively, RFC 4343; no 0x20 randomisation, which some upstreams do not echo).
//!
//! RFC 5452 §9.2: "Resolver implementations MUST: Use an unpredictable source port for outgoing
//! queries from the range of available ports (53, or 1024 and above) that is as large as
//! possible and practicable; Use multiple different source ports simultaneously in case of
//! multiple outstanding queries; Use an unpredictable query ID for outgoing queries, utilizing
//! the full range available (0-65535)." So: [`SOCKETS`] sockets per upstream, each query on one
//! chosen at random; IDs from the CSPRNG (`rand`'s `ThreadRng`), unique among the queries in
//! flight on a socket; ports chosen by the kernel (`bind` to port 0), which on Linux starts at a
//! random point of `net.ipv4.ip_local_port_range` (28,232 ports by default). That range, rather
//! than 1024-65535, because the sockets live for a while and must not take a port a service
//! will want, and because `ip_local_port_range` and `ip_local_reserved_ports` are the operator's
//! "means to avoid usage of certain ports" that §9.2 also asks for.
//!
//! A socket is not kept for the life of the process. RFC 5452 §10: "This document recommends
//! the use of UDP source port number randomization to extend the effective DNS transaction ID
//! beyond the available 16 bits." A fixed set of open ports gives less than that: a port that
//! stays open can be found (SAD DNS, 2020, scanned for the ports of *connected* sockets by
//! spoofing the upstream's address and reading the kernel's global ICMP rate limit, about a
//! thousand ports a second), and from then on a forged reply needs to guess only the ID. So a
//! socket is *due* after [`QUERIES_PER_SOCKET`] queries or [`SOCKET_LIFETIME`], whichever comes
//! first, and the query that finds it due binds a new one in its slot, on a new random port;
//! the old one is no longer picked, and closes once the queries in flight on it are answered or
//! time out. A port lives for about 256 × 32 queries (0.1 s at 70,000 misses/s), never more
//! than 10 s; binding, a few hundred times a second in the miss run, is 0.5% of the server's
//! time there.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::upstream::UpstreamStats;
use crate::chain::Question;

/// Sockets per upstream. More spread the queries in flight over more ports (§9.2); fewer
/// let each receive task read more replies per wake-up. 32 sockets hold the 100 queries in flight
/// of the throughput harness's miss run at about 3 per socket.
pub const SOCKETS: usize = 32;

/// Queries a socket sends before it is replaced by one on a new port.
pub const QUERIES_PER_SOCKET: u32 = 256;

/// The age at which a socket is replaced by one on a new port, however few queries it sent.
pub const SOCKET_LIFETIME: Duration = Duration::from_secs(10);

/// The EDNS payload size we advertise upstream: the DNS Flag Day 2020 value, which avoids IP
/// fragmentation on almost every path (RFC 9715).
pub const UPSTREAM_PAYLOAD: u16 = 1232;

/// Room for one reply. We advertise 1,232 bytes; the rest is for upstreams that ignore that. A
/// longer datagram is read truncated, fails to parse and is dropped (the query times out).
const RECEIVE_BUFFER: usize = 4096;

/// The longest query we send: header, a name of at most 255 bytes, type, class, OPT record.
const MAX_QUERY: usize = 12 + 255 + 4 + 11;

/// How an exchange over the pool failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// No reply matched before the deadline.
    TimedOut,
    /// No socket could be bound, or the query could not be sent.
    Io(io::Error),
}

/// The UDP sockets of one upstream.
pub struct Pool {
    upstream: SocketAddr,
    /// Bound on first use, replaced when due; `None` until first used, so an upstream that is
    /// never asked holds no port.
    slots: Box<[ArcSwapOption<PoolSocket>]>,
    /// The receive tasks count what they drop in the upstream's counters.
    stats: Arc<UpstreamStats>,
    /// Stops every receive task when the pool is dropped.
    shutdown: CancellationToken,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Pool {
    pub fn new(upstream: SocketAddr, stats: Arc<UpstreamStats>) -> Self {
        Self {
            upstream,
            slots: (0..SOCKETS).map(|_| ArcSwapOption::empty()).collect(),
            stats,
            shutdown: CancellationToken::new(),
        }
    }

    /// Sends `question` and waits until `deadline` for the reply that matches it. Cancel-safe:
    /// dropped while waiting, the query is unregistered and its reply, if one comes, dropped.
    pub async fn exchange(
        &self,
        question: &Question,
        deadline: Instant,
    ) -> Result<Message, ExchangeError> {
        let slot = &self.slots[rand::random_range(0..self.slots.len())];
        let mut socket = self.socket_in(slot).map_err(ExchangeError::Io)?;
        let mut renewed = false;
        let (registration, reply) = loop {
            if let Some((id, sequence, reply)) = socket.register(question) {
                let registration = Registration {
                    socket: Arc::clone(&socket),
                    id,
                    sequence,
                };
                break (registration, reply);
            }
            // Closed (taken out of its slot meanwhile, or its receive task stopped), or all
            // 65,536 IDs in flight on it: a new socket in the slot.
            if renewed {
                return Err(ExchangeError::Io(io::Error::other(
                    "no upstream socket can take the query",
                )));
            }
            renewed = true;
            socket = self.renew(slot).map_err(ExchangeError::Io)?;
        };
        socket.send(registration.id, question).await?;
        let outcome = tokio::time::timeout_at(deadline, reply).await;
        drop(registration);
        match outcome {
            Ok(Ok(message)) => Ok(message),
            // The sender is only dropped without sending by `Registration::drop`, ours, which
            // has not run yet, or if the socket is gone, which a registration prevents.
            Ok(Err(_)) | Err(_) => Err(ExchangeError::TimedOut),
        }
    }

    /// The socket in `slot`, or a new one if there is none or it is due.
    fn socket_in(&self, slot: &ArcSwapOption<PoolSocket>) -> io::Result<Arc<PoolSocket>> {
        let current = slot.load_full();
        match current {
            Some(socket) if !socket.is_due() => Ok(socket),
            // A due socket still works: better than failing the query if no new one can be had.
            current => self.renew(slot).or_else(|error| current.ok_or(error)),
        }
    }

    /// Binds a new socket into `slot`, starts its receive task and retires the one it replaces.
    fn renew(&self, slot: &ArcSwapOption<PoolSocket>) -> io::Result<Arc<PoolSocket>> {
        let fresh = Arc::new(PoolSocket::bind(self.upstream).inspect_err(|error| {
            tracing::debug!(upstream = %self.upstream, %error, "cannot bind a new upstream socket");
        })?);
        tokio::spawn(receive(
            Arc::clone(&fresh),
            Arc::clone(&self.stats),
            self.shutdown.clone(),
        ));
        if let Some(previous) = slot.swap(Some(Arc::clone(&fresh))) {
            previous.retire();
        }
        Ok(fresh)
    }

    /// The local ports of the sockets now in the slots (for tests).
    #[cfg(test)]
    fn ports(&self) -> Vec<u16> {
        self.slots
            .iter()
            .filter_map(|slot| slot.load_full())
            .filter_map(|socket| socket.socket.local_addr().ok())
            .map(|address| address.port())
            .collect()
    }
}

/// One socket of the pool, connected to the upstream.
struct PoolSocket {
    socket: UdpSocket,
    bound_at: Instant,
    /// Queries registered on it, for [`QUERIES_PER_SOCKET`].
    used: AtomicU32,
    waiters: Mutex<Waiters>,
    /// Wakes the receive task when a retired socket has no query left in flight.
    idle: Notify,
}

/// The queries in flight on one socket.
#[derive(Default)]
struct Waiters {
    by_id: HashMap<u16, Waiter>,
    /// Tells a registration's own entry from a later one that reused its ID.
    next_sequence: u64,
    /// Out of its slot (replaced by a new socket): closes once no query is in flight.
    retired: bool,
    /// The receive task has stopped: nothing would read a reply.
    closed: bool,
}

/// A query waiting for its reply: what the reply must match, and where it goes.
struct Waiter {
    sequence: u64,
    name: Name,
    record_type: RecordType,
    class: DNSClass,
    reply: oneshot::Sender<Message>,
}

impl Waiter {
    /// RFC 5452 §9.1's checks on the message (the addresses and ports were the kernel's): a
    /// response to a standard query, with exactly our question (the name compares
    /// case-insensitively, `Name`'s `PartialEq`). The ID was matched by the caller.
    fn is_answered_by(&self, message: &Message) -> bool {
        message.metadata.message_type == MessageType::Response
            && message.metadata.op_code == OpCode::Query
            && message.queries.len() == 1
            && message.queries[0].name() == &self.name
            && message.queries[0].query_type() == self.record_type
            && message.queries[0].query_class() == self.class
    }
}

/// Unregisters a query when it is answered, times out or is dropped: whichever way the wait
/// ends, its ID leaves the socket's table, and a reply that comes later is dropped.
struct Registration {
    socket: Arc<PoolSocket>,
    id: u16,
    sequence: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut waiters = self.socket.lock();
        if waiters
            .by_id
            .get(&self.id)
            .is_some_and(|waiter| waiter.sequence == self.sequence)
        {
            waiters.by_id.remove(&self.id);
        }
        self.socket.wake_if_idle(&waiters);
    }
}

thread_local! {
    /// The encoded query, reused: no allocation per query to build it.
    static QUERY_BUFFER: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(MAX_QUERY));
}

impl PoolSocket {
    /// A UDP socket on a port the kernel picks at random, connected to `upstream`.
    fn bind(upstream: SocketAddr) -> io::Result<Self> {
        let local = match upstream {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let socket = std::net::UdpSocket::bind(local)?;
        socket.connect(upstream)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: UdpSocket::from_std(socket)?,
            bound_at: Instant::now(),
            used: AtomicU32::new(0),
            waiters: Mutex::new(Waiters::default()),
            idle: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_due(&self) -> bool {
        self.used.load(Ordering::Relaxed) >= QUERIES_PER_SOCKET
            || self.bound_at.elapsed() >= SOCKET_LIFETIME
    }

    /// Takes the socket out of service: the receive task stops once no query is in flight.
    fn retire(&self) {
        let mut waiters = self.lock();
        waiters.retired = true;
        self.wake_if_idle(&waiters);
    }

    fn wake_if_idle(&self, waiters: &Waiters) {
        if waiters.retired && waiters.by_id.is_empty() {
            self.idle.notify_one();
        }
    }

    /// Registers a query for `question` under a random ID not in flight on this socket;
    /// `None` if the socket is closed or every ID is taken.
    fn register(&self, question: &Question) -> Option<(u16, u64, oneshot::Receiver<Message>)> {
        let mut waiters = self.lock();
        if waiters.closed || waiters.by_id.len() > usize::from(u16::MAX) {
            return None;
        }
        // Random IDs until a free one: with n in flight, each draw is taken with p = n/65536.
        let id = loop {
            let id = rand::random::<u16>();
            if !waiters.by_id.contains_key(&id) {
                break id;
            }
        };
        let sequence = waiters.next_sequence;
        waiters.next_sequence += 1;
        let (sender, receiver) = oneshot::channel();
        waiters.by_id.insert(
            id,
            Waiter {
                sequence,
                name: question.name.clone(),
                record_type: question.record_type,
                class: question.class,
                reply: sender,
            },
        );
        drop(waiters);
        self.used.fetch_add(1, Ordering::Relaxed);
        Some((id, sequence, receiver))
    }

    /// Sends the query for `question` with `id`.
    async fn send(&self, id: u16, question: &Question) -> Result<(), ExchangeError> {
        // Encoded in the thread's buffer and sent at once: a UDP send does not block unless
        // the socket buffer is full, and only then is the query copied to wait for room.
        let blocked = QUERY_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            encode_query(&mut buffer, id, question).map_err(ExchangeError::Io)?;
            match try_send(&self.socket, &buffer) {
                Ok(()) => Ok(None),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(Some(buffer.clone())),
                Err(error) => Err(ExchangeError::Io(error)),
            }
        })?;
        if let Some(query) = blocked {
            self.socket.send(&query).await.map_err(ExchangeError::Io)?;
        }
        Ok(())
    }

    /// Hands `datagram` to the query it answers, or drops and counts it.
    fn deliver(&self, datagram: &[u8], stats: &UpstreamStats) {
        let Some(id) = datagram
            .first_chunk::<2>()
            .map(|id| u16::from_be_bytes(*id))
        else {
            stats.unmatched_replies.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // The ID first, before any parsing: most forgeries stop here, cheaply.
        if !self.lock().by_id.contains_key(&id) {
            stats.unmatched_replies.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(id, "reply with no query in flight under its ID: dropped");
            return;
        }
        let Ok(message) = Message::from_vec(datagram) else {
            stats.mismatched_replies.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(id, "undecodable reply: dropped");
            return;
        };
        let mut waiters = self.lock();
        let Some(waiter) = waiters.by_id.get(&id) else {
            // Timed out between the two looks.
            drop(waiters);
            stats.unmatched_replies.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !waiter.is_answered_by(&message) {
            drop(waiters);
            stats.mismatched_replies.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(id, got = %question_of(&message), "reply to another question: dropped");
            return;
        }
        let waiter = waiters.by_id.remove(&id);
        self.wake_if_idle(&waiters);
        drop(waiters);
        if let Some(waiter) = waiter {
            // The receiver may be gone (its deadline passed just now): the reply is dropped.
            let _ = waiter.reply.send(message);
        }
    }
}

/// What a dropped reply was about, for the debug log.
fn question_of(message: &Message) -> String {
    match message.queries.first() {
        Some(query) => format!("{} {}", query.name(), query.query_type()),
        None => "no question".to_owned(),
    }
}

/// A send on a connected socket. A previous ICMP port unreachable is reported by the next call
/// on the socket (`ECONNREFUSED`) and cleared, without this datagram going out: send again once.
fn try_send(socket: &UdpSocket, query: &[u8]) -> io::Result<()> {
    match socket.try_send(query) {
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            socket.try_send(query).map(drop)
        }
        result => result.map(drop),
    }
}

/// Reads replies for `socket` until the pool is dropped, or the socket is retired and has no
/// query left in flight.
async fn receive(socket: Arc<PoolSocket>, stats: Arc<UpstreamStats>, shutdown: CancellationToken) {
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    // Pinned once, polled only when no reply is ready: nothing to register per wake-up.
    let stop = async {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = async {
                loop {
                    socket.idle.notified().await;
                    let mut waiters = socket.lock();
                    if waiters.retired && waiters.by_id.is_empty() {
                        waiters.closed = true;
                        break;
                    }
                }
            } => {}
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            readable = socket.socket.readable() => if readable.is_err() { break },
            () = &mut stop => break,
        }
        // Drain what is there: one wake-up, as many replies as have arrived.
        loop {
            match socket.socket.try_recv(&mut buffer) {
                Ok(length) => socket.deliver(&buffer[..length], &stats),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                // An ICMP error (the upstream's port is closed) is reported here once and
                // cleared; the queries it concerns time out and fail over as before.
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(error) => {
                    tracing::debug!(%error, "upstream socket receive error");
                    break;
                }
            }
        }
    }
    socket.lock().closed = true;
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

#[cfg(test)]
mod tests;
