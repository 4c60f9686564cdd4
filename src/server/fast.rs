//! The UDP fast path: batched socket calls and replies answered from their encoded bytes.
//!
//! ```text
//!  recvmmsg (up to 32 datagrams) ──► for each: table hit? ── yes ─► copy, patch ID and TTLs
//!        ▲                                    │ no                      │
//!        │                                    ▼                         ▼
//!        │                  the general path, polled once here ──► sendmmsg (the whole batch)
//!        │                  (stored if its `Validity` allows)  ready   ▲
//!        │                                    │ waiting (an upstream)   │
//!        │                                    ▼                         │
//!        └──────────────    finished in a task, sent on its own ────────┘
//! ```
//!
//! Why it exists, from PEERS.md on this 2-vCPU VM: syscalls dominate. A reflector that does no
//! DNS work answers 177,000 q/s with recvfrom/sendto and 336,000 with recvmmsg/sendmmsg; Unbound
//! answers 233,000 cache hits. The general path parses with hickory, walks the chain, clones
//! records and encodes, one datagram per syscall pair. Here a hit costs one hash lookup of the
//! query's bytes, one copy, and a share of two syscalls per batch.
//!
//! **Correct by construction.** The table's key is the whole query minus its ID, and an entry
//! is only ever what [`Engine::handle_reply`] answered for those exact bytes, so a fast answer
//! is byte for byte the general path's (a test compares them over a corpus). What the general
//! path's answer depends on besides the bytes, its [`Validity`], is checked on every hit:
//! - local data (hosts files, zones, cluster objects): the version of each kind of data the
//!   answer read ([`Dependencies`]) must be the one it was computed under, so a change to one
//!   kind evicts only the answers that read it (`chain::validity` explains the stamp);
//! - cached forwarded answers: the entry must not have reached its expiry (or its prefetch
//!   point, so that prefetch still sees the hits it needs); TTLs are patched to count down as
//!   the cache would count them.
//!
//! With `resolve.rotate`, a hit also turns each A or AAAA RRset of the stored reply by one
//! record (`AddressRun`), as the general path turns the records it encodes: the same bytes,
//! in another order of the RRset.
//!
//! Failures, truncated replies, stale answers and anything else the general path marks
//! [`Validity::Never`] are never stored. A query in a case the table has not seen (0x20
//! randomization) is a miss and takes the general path: correct, only slower.
//!
//! No allocation per query on a hit: receive buffers, reply buffers and socket headers are
//! allocated once per socket. (Misses copy the datagram for their task.)
//!
//! **Misses are answered in the batch when they can be.** A miss's general-path future is
//! polled once on this thread, with a waker that does nothing. Local data (zones, hosts files,
//! the cluster) and the cache answer without waiting, so the future is ready at once and its
//! reply goes out in the batch's `sendmmsg` with the hits: no task, no wake-up of a runtime
//! thread, no `sendto` of its own. Only a future that waits (an upstream query) is handed to
//! the runtime as a task, which polls it again with a real waker, as the `Future` contract
//! requires of anything that returned `Pending`. Issue 16's long tail (distinct names, each
//! asked once or rarely, which the table does not hold) goes through here.

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use nix::sys::socket::{
    recvmmsg, sendmmsg, sendto, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use quick_cache::sync::Cache as QuickCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::admission::{Admitted, Verdict};
use super::walk::skip_name;
use super::{Client, Engine, Reply, Transport};
use prometheus_client::encoding::DescriptorEncoder;

use crate::chain::validity::VersionSnapshot;
use crate::chain::{DataVersions, Dependencies, Validity};
use crate::metrics::{load, BatchItem, Encoder, MetricDoc};

/// Datagrams per recvmmsg/sendmmsg: PEERS.md's generator uses 32; larger batches gain little
/// and hold replies back longer under light load (a batch is sent when the socket runs dry).
const BATCH: usize = 32;

/// The largest query the fast path reads. A DNS query is a few dozen bytes; anything larger
/// than this is dropped (BAD-INPUTS: "a 65,000-byte datagram: FORMERR or drop").
const RECEIVE_BUFFER: usize = 4096;

/// A stored reply.
#[derive(Debug)]
struct Entry {
    reply: Box<[u8]>,
    /// The local data the answer read, and the sum of their versions before it was computed.
    dependencies: Dependencies,
    stamp: u64,
    countdown: Option<Countdown>,
    /// Where each record's TTL is in `reply` (the OPT record's "TTL" field is not one).
    ttl_offsets: Box<[u16]>,
    /// The source that gave the answer, for the query log.
    source: Option<&'static str>,
    /// The runs of A or AAAA records `resolve.rotate` turns, in `reply`.
    runs: Box<[AddressRun]>,
}

/// Consecutive A (or AAAA) records of one owner, each encoded in the same number of bytes
/// (same owner bytes, same RDATA length): rotating the records' bytes as a whole is rotating
/// the RRset, which is what the general path does to the records (`chain::shape`). TTLs move
/// with their records, already counted down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AddressRun {
    start: u16,
    record_length: u16,
    count: u16,
}

std::thread_local! {
    /// Each fast-path thread's rotation turn: a counter per thread costs nothing shared on a
    /// hit, and successive answers from one socket still turn.
    static TURN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// For a reply from the cache: when its TTLs were full, how old they were when encoded, and
/// until when it may be reused.
#[derive(Clone, Copy, Debug)]
struct Countdown {
    origin: Instant,
    encoded_age: u32,
    until: Instant,
}

/// Counters, read by the metrics.
#[derive(Debug, Default)]
pub struct FastStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stored: AtomicU64,
}

/// What a hit reused.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    /// The source that gave the answer, for the query log.
    pub source: Option<&'static str>,
    /// The answer came from the forwarding cache (it counts down): a cache hit for the
    /// metrics, though the cache itself was not asked.
    pub from_cache: bool,
}

/// The fast table's metrics.
pub const METRICS: &[MetricDoc] = &[
    (
        "fast_path_hits_total",
        "counter",
        "UDP queries answered from the fast path's encoded replies.",
    ),
    (
        "fast_path_misses_total",
        "counter",
        "UDP queries the fast path passed to the general path.",
    ),
];

impl FastStats {
    /// Encodes [`METRICS`].
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut out = Encoder::new(encoder, METRICS);
        out.counter("fast_path_hits_total", load(&self.hits))?;
        out.counter("fast_path_misses_total", load(&self.misses))
    }
}

/// How the table's size is counted.
#[derive(Clone)]
enum Weight {
    /// Each reply counts 1: the capacity is a number of replies.
    Unit,
    /// Each reply counts its bytes and the table's own structure: the capacity is memory.
    Bytes,
}

/// What one entry costs besides its key, reply and TTL offsets, counted: the `Arc`'d [`Entry`]
/// (128 with malloc's rounding), three more allocations' headers (48), quick_cache's slot and
/// index (48).
const ENTRY_OVERHEAD: u64 = 224;

impl quick_cache::Weighter<Box<[u8]>, Arc<Entry>> for Weight {
    fn weight(&self, key: &Box<[u8]>, entry: &Arc<Entry>) -> u64 {
        match self {
            Self::Unit => 1,
            Self::Bytes => {
                (key.len()
                    + entry.reply.len()
                    + 2 * entry.ttl_offsets.len()
                    + std::mem::size_of::<AddressRun>() * entry.runs.len()) as u64
                    + ENTRY_OVERHEAD
            }
        }
    }
}

/// The encoded replies, keyed by the query's bytes after its ID.
pub struct FastTable {
    entries: QuickCache<Box<[u8]>, Arc<Entry>, Weight, quick_cache::DefaultHashBuilder, Ghosts>,
    /// For a table whose budget follows the working set ([`growth`]); `None`: fixed.
    growth: Option<Growth>,
    versions: Arc<DataVersions>,
    stats: FastStats,
    /// `resolve.rotate`, changed by a reload.
    rotate: std::sync::atomic::AtomicBool,
}

impl FastTable {
    /// A table of at most `capacity` replies.
    pub fn new(capacity: usize, versions: Arc<DataVersions>) -> Self {
        let capacity = capacity.max(1);
        Self::with(capacity, capacity as u64, Weight::Unit, versions, None)
    }

    /// A table of at most about `bytes` of memory: as many replies as fit. The table is for
    /// the hot set; a reply that does not fit is answered by the general path, which is
    /// correct, only slower. A count alone would let large replies (or a scan over many cold
    /// names) grow it to tens of megabytes.
    pub fn with_memory(bytes: u64, versions: Arc<DataVersions>) -> Self {
        let estimated = usize::try_from(bytes / 256).unwrap_or(usize::MAX).max(1);
        Self::with(estimated, bytes.max(1), Weight::Bytes, versions, None)
    }

    /// A table that starts at [`growth::INITIAL_BYTES`] (or `max_bytes`, if smaller) and grows
    /// as its working set asks, up to `max_bytes` (`server.fast_path_memory`).
    pub fn growing(max_bytes: u64, versions: Arc<DataVersions>) -> Self {
        let max_bytes = max_bytes.max(1);
        let initial = growth::INITIAL_BYTES.min(max_bytes);
        let estimated = usize::try_from(initial / 256).unwrap_or(usize::MAX).max(1);
        Self::with(
            estimated,
            initial,
            Weight::Bytes,
            versions,
            Some(Growth::new(max_bytes)),
        )
    }

    fn with(
        estimated: usize,
        capacity: u64,
        weight: Weight,
        versions: Arc<DataVersions>,
        growth: Option<Growth>,
    ) -> Self {
        let ghosts = Ghosts(growth.as_ref().map(|g| Arc::clone(&g.ghosts)));
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(capacity)
            .build()
            // It refuses only options left unset, and both are set.
            .expect("both of the table's options are set");
        let entries = QuickCache::with_options(options, weight, Default::default(), ghosts);
        Self {
            entries,
            growth,
            versions,
            stats: FastStats::default(),
            rotate: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether hits rotate their A and AAAA RRsets (`resolve.rotate`).
    pub fn set_rotate(&self, on: bool) {
        self.rotate.store(on, Ordering::Relaxed);
    }

    /// Replies held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the table holds, in its capacity's unit (replies, or bytes).
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }

    /// What it may hold now, in the same unit.
    pub fn capacity(&self) -> u64 {
        self.entries.capacity()
    }

    /// A new `server.fast_path_memory` (a reload): the most a growing table may take. Below
    /// what it holds now, it shrinks at once.
    pub fn set_max_memory(&self, max_bytes: u64) {
        let Some(growth) = &self.growth else {
            return;
        };
        let max_bytes = max_bytes.max(1);
        growth.set_max(max_bytes);
        if self.entries.capacity() > max_bytes {
            self.entries.set_capacity(max_bytes);
        }
    }

    pub fn stats(&self) -> &FastStats {
        &self.stats
    }

    /// The data versions now; take them *before* computing a reply to store.
    pub fn versions(&self) -> VersionSnapshot {
        self.versions.snapshot()
    }

    /// Writes the reply to an admitted `query` into `out` if the table has a valid one.
    pub fn answer(
        &self,
        admitted: &Admitted,
        query: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        self.answer_hit(admitted, query, now, out).is_some()
    }

    /// [`FastTable::answer`], telling on a hit which source the stored answer came from. The
    /// [`Admitted`] is the front door's proof: no stored reply goes to a request it did not
    /// admit.
    pub fn answer_hit(
        &self,
        _admitted: &Admitted,
        query: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<Hit> {
        let Some(entry) = key_of(query).and_then(|key| self.entries.get(key)) else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let fresh = entry.stamp == self.versions.stamp(entry.dependencies)
            && entry
                .countdown
                .is_none_or(|countdown| now < countdown.until);
        if !fresh {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        out.clear();
        out.extend_from_slice(&entry.reply);
        out[..2].copy_from_slice(&query[..2]);
        if let Some(countdown) = entry.countdown {
            let age = u32::try_from(now.saturating_duration_since(countdown.origin).as_secs())
                .unwrap_or(u32::MAX);
            let elapsed = age.saturating_sub(countdown.encoded_age);
            if elapsed > 0 {
                for offset in entry.ttl_offsets.iter().map(|o| usize::from(*o)) {
                    let ttl = u32::from_be_bytes([
                        out[offset],
                        out[offset + 1],
                        out[offset + 2],
                        out[offset + 3],
                    ]);
                    out[offset..offset + 4]
                        .copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
                }
            }
        }
        if !entry.runs.is_empty() && self.rotate.load(Ordering::Relaxed) {
            // Turned by at least one: the first hit must not repeat the general path's order.
            let turn = TURN.with(|turn| {
                let next = turn.get().wrapping_add(1);
                turn.set(next);
                next
            });
            for run in entry.runs.iter() {
                let start = usize::from(run.start);
                let length = usize::from(run.record_length);
                let count = usize::from(run.count);
                out[start..start + length * count].rotate_left(turn % count * length);
            }
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(Hit {
            source: entry.source,
            from_cache: entry.countdown.is_some(),
        })
    }

    /// Stores `reply` as the answer to `query` if its validity allows; `before` is the
    /// versions taken before the reply was computed.
    pub fn store(&self, query: &[u8], reply: &Reply, before: &VersionSnapshot, now: Instant) {
        let (dependencies, countdown) = match reply.validity {
            Validity::Never => return,
            Validity::UntilChanged(dependencies) => (dependencies, None),
            Validity::Until {
                dependencies,
                origin,
                until,
                encoded_age,
            } => {
                if now >= until {
                    return;
                }
                (
                    dependencies,
                    Some(Countdown {
                        origin,
                        encoded_age,
                        until,
                    }),
                )
            }
        };
        let (Some(key), Some(ttl_offsets)) = (key_of(query), ttl_offsets(&reply.bytes)) else {
            return;
        };
        self.stats.stored.fetch_add(1, Ordering::Relaxed);
        if let Some(grown) = self
            .growth
            .as_ref()
            .and_then(|growth| growth.on_store(key, self.entries.capacity()))
        {
            tracing::info!(
                bytes = grown,
                max = self.growth.as_ref().map_or(grown, Growth::max),
                "fast path: replies evicted are being asked again; its table grows"
            );
            self.entries.set_capacity(grown);
        }
        self.entries.insert(
            key.into(),
            Arc::new(Entry {
                reply: reply.bytes.clone().into_boxed_slice(),
                dependencies,
                stamp: before.stamp(dependencies),
                countdown,
                ttl_offsets: ttl_offsets.into_boxed_slice(),
                source: reply.source,
                runs: address_runs(&reply.bytes).into_boxed_slice(),
            }),
        );
    }
}

/// The key of a query: its bytes after the ID, for a standard query with one question.
fn key_of(query: &[u8]) -> Option<&[u8]> {
    let flags = *query.get(2)?;
    let standard_query = flags & 0x80 == 0 && (flags >> 3) & 0x0f == 0;
    let one_question = query.get(4..6)? == [0, 1];
    (standard_query && one_question && query.len() > 12).then(|| &query[2..])
}

/// The QTYPE of a query, 0 if it has none we can find.
pub(crate) fn query_type(query: &[u8]) -> u16 {
    skip_name(query, 12)
        .and_then(|end| query.get(end..end + 2))
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

/// The QNAME of a query, for the query log only (not on the hot path unless the log is on).
fn query_name(query: &[u8]) -> Option<Name> {
    let mut decoder = BinDecoder::new(query);
    decoder.read_slice(12).ok()?;
    Name::read(&mut decoder).ok()
}

/// Where the TTL of every record of an encoded message is, OPT aside (RFC 1035 §4.1.3; RFC
/// 6891 §6.1.3: OPT's TTL field holds the extended RCODE and flags). `None` if the message does
/// not walk cleanly.
fn ttl_offsets(message: &[u8]) -> Option<Vec<u16>> {
    let count = |index: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *message.get(index)?,
            *message.get(index + 1)?,
        ])))
    };
    let questions = count(4)?;
    let records = count(6)? + count(8)? + count(10)?;
    let mut position = 12;
    for _ in 0..questions {
        position = skip_name(message, position)? + 4;
    }
    let mut offsets = Vec::with_capacity(records);
    for _ in 0..records {
        position = skip_name(message, position)?;
        let record_type =
            u16::from_be_bytes([*message.get(position)?, *message.get(position + 1)?]);
        position += 4;
        if record_type != 41 {
            offsets.push(u16::try_from(position).ok()?);
        }
        position += 4;
        let length = count(position)?;
        position += 2 + length;
    }
    (position == message.len()).then_some(offsets)
}

/// The runs of two or more A (or AAAA) records in the answer section of an encoded message
/// that can be rotated as bytes ([`AddressRun`]); none if the message does not walk cleanly.
fn address_runs(message: &[u8]) -> Vec<AddressRun> {
    let walk = || -> Option<Vec<AddressRun>> {
        let count = |index: usize| -> Option<usize> {
            Some(usize::from(u16::from_be_bytes([
                *message.get(index)?,
                *message.get(index + 1)?,
            ])))
        };
        let mut position = 12;
        for _ in 0..count(4)? {
            position = skip_name(message, position)? + 4;
        }
        let mut runs: Vec<AddressRun> = Vec::new();
        // The run being built: its start, its first record's owner end, length and type.
        let mut current: Option<(usize, usize, usize, u16, u16)> = None;
        for _ in 0..count(6)? {
            let start = position;
            let owner_end = skip_name(message, position)?;
            let record_type =
                u16::from_be_bytes([*message.get(owner_end)?, *message.get(owner_end + 1)?]);
            let end = owner_end + 10 + count(owner_end + 8)?;
            let length = end - start;
            let joins = current.is_some_and(|(first, first_owner_end, first_length, kind, _)| {
                kind == record_type
                    && first_length == length
                    && message.get(first..first_owner_end) == message.get(start..owner_end)
            });
            if joins {
                if let Some(run) = current.as_mut() {
                    run.4 += 1;
                }
            } else {
                if let Some((first, _, first_length, _, count)) = current.take() {
                    if count > 1 {
                        runs.push(AddressRun {
                            start: u16::try_from(first).ok()?,
                            record_length: u16::try_from(first_length).ok()?,
                            count,
                        });
                    }
                }
                if matches!(record_type, 1 | 28) {
                    current = Some((start, owner_end, length, record_type, 1));
                }
            }
            position = end;
        }
        if let Some((first, _, first_length, _, count)) = current {
            if count > 1 {
                runs.push(AddressRun {
                    start: u16::try_from(first).ok()?,
                    record_length: u16::try_from(first_length).ok()?,
                    count,
                });
            }
        }
        (position <= message.len()).then_some(runs)
    };
    walk().unwrap_or_default()
}

/// How often a fast-path thread blocked in `recvmmsg` looks at the shutdown token.
const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves `socket` on a thread of its own until `shutdown` is cancelled. Hits are answered on
/// that thread; misses are spawned on `runtime`, on `tracker`, which also waits for the thread.
///
/// Why a thread and not a task: a socket registered in epoll (as every tokio socket is) has a
/// waiter on its wait queue, so the kernel takes the wait-queue and epoll locks, with
/// interrupts off, for every datagram it queues on the socket and for every reply it frees
/// (`sock_def_readable`, `sock_wfree` → `ep_poll_callback`). A thread blocked in `recvmmsg` is
/// a waiter only while it sleeps. Measured on the hit benchmark of BENCHMARKS.md, server pinned
/// to one core: the kernel spent 1.80 µs per query as a tokio task against 1.52 µs in the
/// batched reflector, and `_raw_spin_unlock_irqrestore` alone took 10% of the core against 3%.
/// Knot DNS serves UDP from dedicated threads for the same reason.
pub fn spawn(
    socket: std::net::UdpSocket,
    engine: Arc<Engine>,
    table: Arc<FastTable>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
    max_in_flight: usize,
) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
    // The thread stops on shutdown, and also when the runtime it answers misses on is gone
    // (a test that drops its runtime without shutting the server down): a task holding this
    // guard is dropped with the runtime, and dropping the guard cancels `stop`.
    let stop = shutdown.child_token();
    let guard = stop.clone().drop_guard();
    let stopped = stop.clone();
    runtime.spawn(async move {
        let _guard = guard;
        stopped.cancelled().await;
    });
    let token = tracker.token();
    let unserved = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("hearth-udp".into())
        .spawn(move || {
            // The thread counts as one of the tracker's tasks until it returns.
            let _token = token;
            batch_scheduling();
            // Spawning misses and reading the (possibly paused, in tests) clock need it.
            let _runtime = runtime.enter();
            Worker::new(
                Arc::new(socket),
                engine,
                table,
                tracker,
                runtime,
                max_in_flight,
            )
            .run(&stop);
        });
    if spawned.is_err() {
        // Nothing will serve the socket: let the guard's task end.
        unserved.cancel();
    }
    spawned.map(drop)
}

/// Puts the calling thread under `SCHED_BATCH`: a fast-path thread woken by a datagram then
/// does not preempt a runtime thread that is answering misses, and finds a fuller batch when it
/// runs. Under the default policy every datagram of a miss load switched the core from the
/// runtime to this thread and back. One pass over 100,000 new names, server pinned to one core:
/// `benches/throughput.sh --only miss` gave 53,000-58,000 q/s without this and 77,000-84,000
/// with it (83,900 when the socket was a tokio task); a forwarder in front of a local Hearth,
/// 64,000-66,000 without and 89,000-91,000 with (72,000-86,000 as a tokio task). A hit load,
/// where this thread is the only one busy, does not change. Not allowed (a seccomp filter without
/// `@resources`, say), the thread keeps the default policy.
fn batch_scheduling() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityOsValue, ThreadSchedulePolicy,
    };
    let result = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        // Static priority 0 with nice 0: what SCHED_BATCH takes (sched(7)).
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    );
    if let Err(error) = result {
        tracing::debug!(
            ?error,
            "SCHED_BATCH refused; the UDP thread keeps its policy"
        );
    }
}

/// One fast-path thread's socket, buffers and handles. Everything a batch needs is allocated
/// once here.
struct Worker {
    socket: Arc<std::net::UdpSocket>,
    engine: Arc<Engine>,
    table: Arc<FastTable>,
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
    /// General-path queries answered at once (`server.max_in_flight`). Beyond it a miss is
    /// shed at once (SERVFAIL with an Extended DNS Error, [`Engine::shed`]): the thread never
    /// stops reading, so hits are answered while misses wait on a slow upstream.
    in_flight: Arc<Semaphore>,
    buffers: Vec<[u8; RECEIVE_BUFFER]>,
    /// Each datagram of the batch: its length, its sender, and whether it was truncated.
    received: Vec<(usize, Option<SockaddrStorage>, bool)>,
    replies: Vec<Vec<u8>>,
    destinations: Vec<Option<SockaddrStorage>>,
    /// What the metrics need of each hit in the batch: its slot in `replies`, its index in
    /// `buffers`, and its source. (Rejections, between them in `replies`, are counted by
    /// [`Engine::reject`].)
    answered: Vec<(usize, usize, Hit)>,
    /// The batch's misses that wait (on an upstream), for the runtime to finish: the
    /// general path's future, polled once, where its reply goes, and its place in flight.
    misses: Vec<(GeneralAnswer, SocketAddr, OwnedSemaphorePermit)>,
}

/// A miss on the general path: its reply, stored in the table if it may be reused.
type GeneralAnswer = Pin<Box<dyn Future<Output = Option<Reply>> + Send>>;

impl Worker {
    fn new(
        socket: Arc<std::net::UdpSocket>,
        engine: Arc<Engine>,
        table: Arc<FastTable>,
        tracker: TaskTracker,
        runtime: tokio::runtime::Handle,
        max_in_flight: usize,
    ) -> Self {
        Self {
            socket,
            engine,
            table,
            tracker,
            runtime,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            buffers: vec![[0u8; RECEIVE_BUFFER]; BATCH],
            received: Vec::with_capacity(BATCH),
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            destinations: vec![None; BATCH],
            answered: Vec::with_capacity(BATCH),
            misses: Vec::with_capacity(BATCH),
        }
    }

    fn run(mut self, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.receive() {
                Ok(()) => self.answer_batch(),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    tracing::debug!(%error, "UDP receive error");
                    // A persistent error must not spin the core.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    /// Waits for at least one datagram, then takes what else is queued, up to [`BATCH`]
    /// (`MSG_WAITFORONE`); gives up after [`SHUTDOWN_POLL`] with `WouldBlock`.
    fn receive(&mut self) -> io::Result<()> {
        self.received.clear();
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
        for (slice, buffer) in slices.iter_mut().zip(self.buffers.iter_mut()) {
            slice[0] = IoSliceMut::new(buffer);
        }
        // Two small allocations per batch, none per query.
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let messages = recvmmsg(
            self.socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(io::Error::from)?;
        for message in messages {
            self.received.push((
                message.bytes,
                message.address,
                message.flags.contains(MsgFlags::MSG_TRUNC),
            ));
        }
        Ok(())
    }

    /// Asks the front door about each datagram of the batch, answers the admitted hits and the
    /// rejections with one `sendmmsg`, and spawns the misses.
    fn answer_batch(&mut self) {
        let now = Instant::now();
        let mut ready = 0;
        self.answered.clear();
        // One policy for the whole batch: one load, then a decision per datagram.
        let policy = self.engine.admission().policy();
        for (index, (length, address, truncated)) in self.received.iter().enumerate() {
            let (Some(address), false) = (address, *truncated) else {
                continue;
            };
            let Some(peer) = socket_addr(address) else {
                continue;
            };
            let query = &self.buffers[index][..*length];
            let client = Client::new(peer, Transport::Udp);
            let admitted = match policy.decide(&client, query, now) {
                Verdict::Admit(admitted) => admitted,
                Verdict::Reject(decision) => {
                    if self
                        .engine
                        .reject(query, &client, decision, &mut self.replies[ready])
                    {
                        self.destinations[ready] = Some(*address);
                        ready += 1;
                    }
                    continue;
                }
            };
            if let Some(hit) =
                self.table
                    .answer_hit(&admitted, query, now, &mut self.replies[ready])
            {
                self.destinations[ready] = Some(*address);
                self.answered.push((ready, index, hit));
                ready += 1;
                continue;
            }
            match Arc::clone(&self.in_flight).try_acquire_owned() {
                Ok(permit) => {
                    let peer = admitted.client().address;
                    let mut answer = general(
                        Arc::clone(&self.engine),
                        Arc::clone(&self.table),
                        query.to_vec(),
                        admitted,
                    );
                    match answer
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()))
                    {
                        Poll::Ready(Some(reply)) => {
                            // Copied, so that the slot keeps its buffer for the hits.
                            self.replies[ready].clear();
                            self.replies[ready].extend_from_slice(&reply.bytes);
                            self.destinations[ready] = Some(*address);
                            ready += 1;
                        }
                        Poll::Ready(None) => {}
                        Poll::Pending => self.misses.push((answer, peer, permit)),
                    }
                }
                // At the limit of misses in flight: shed this one at once rather than stop
                // reading, so the hits behind it are still answered.
                Err(_) => {
                    if self.engine.shed(query, &client, &mut self.replies[ready]) {
                        self.destinations[ready] = Some(*address);
                        ready += 1;
                    }
                }
            }
        }
        drop(policy);
        self.spawn_misses();
        send_batch(
            &self.socket,
            &self.replies[..ready],
            &self.destinations[..ready],
        );
        // Every hit of the batch waited for the whole batch: that is its duration.
        self.record(now.elapsed());
    }

    /// Hands the batch's misses to the runtime in one task, which starts a task for each: a
    /// spawn from outside the runtime wakes a worker thread, so one per batch rather than one
    /// per miss. (One per miss cost a quarter of the miss rate with the server on one core.)
    fn spawn_misses(&mut self) {
        if self.misses.is_empty() {
            return;
        }
        let misses = std::mem::replace(&mut self.misses, Vec::with_capacity(BATCH));
        let (socket, tracker) = (Arc::clone(&self.socket), self.tracker.clone());
        self.tracker.spawn_on(
            async move {
                for (answer, peer, permit) in misses {
                    tracker.spawn(finish_miss(answer, Arc::clone(&socket), peer, permit));
                }
            },
            &self.runtime,
        );
    }

    /// Counts the batch's hits, and logs them if the query log is on.
    fn record(&self, elapsed: std::time::Duration) {
        let hit_info = |slot: usize, index: usize| {
            let query = &self.buffers[index][..self.received[index].0];
            let destination = self.destinations[slot].as_ref();
            let ipv6 = destination.is_some_and(|d| d.as_sockaddr_in6().is_some());
            let response_code = u16::from(self.replies[slot].get(3).map_or(0, |b| b & 0x0F));
            (query, destination, ipv6, response_code)
        };
        self.engine.metrics().record_batch(
            Transport::Udp,
            elapsed,
            self.answered.iter().map(|&(slot, index, hit)| {
                let (query, _, ipv6, response_code) = hit_info(slot, index);
                BatchItem {
                    ipv6,
                    query_type: query_type(query),
                    response_code,
                    from_cache: hit.from_cache,
                }
            }),
        );
        if self.engine.log_queries() {
            for &(slot, index, Hit { source, .. }) in &self.answered {
                let (query, destination, _, response_code) = hit_info(slot, index);
                if let Some(peer) = destination.and_then(socket_addr) {
                    super::log_query(
                        peer,
                        Transport::Udp,
                        query_name(query).as_ref(),
                        query_type(query),
                        Some(response_code),
                        elapsed,
                        source,
                    );
                }
            }
        }
    }
}

/// Answers a miss on the general path and stores the reply if it may be reused. The versions
/// are read before the answer is computed, so a change meanwhile keeps it out of the table.
fn general(
    engine: Arc<Engine>,
    table: Arc<FastTable>,
    packet: Vec<u8>,
    admitted: Admitted,
) -> GeneralAnswer {
    Box::pin(async move {
        let before = table.versions();
        let reply = engine.answer(&packet, &admitted).await?;
        table.store(&packet, &reply, &before, Instant::now());
        Some(reply)
    })
}

/// Finishes a miss that had to wait, in a task, and sends its reply on its own.
async fn finish_miss(
    answer: GeneralAnswer,
    socket: Arc<std::net::UdpSocket>,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let Some(reply) = answer.await else {
        return;
    };
    let destination = SockaddrStorage::from(peer);
    let send = || {
        sendto(
            socket.as_raw_fd(),
            &reply.bytes,
            &destination,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)
    };
    if let Err(error) = when_writable(send).await {
        tracing::debug!(%peer, %error, "UDP send error");
    }
}

/// Sends `replies` to `destinations` with as few sendmmsg calls as the socket allows. The
/// socket is blocking: a full send buffer holds the thread (and so its reading) until the
/// kernel has room, which is the back-pressure a UDP server can give.
fn send_batch(
    socket: &std::net::UdpSocket,
    replies: &[Vec<u8>],
    destinations: &[Option<SockaddrStorage>],
) {
    let mut sent = 0;
    while sent < replies.len() {
        let slices: Vec<[IoSlice<'_>; 1]> =
            replies[sent..].iter().map(|r| [IoSlice::new(r)]).collect();
        let no_control: [ControlMessage<'_>; 0] = [];
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
        let result = sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &slices,
            &destinations[sent..],
            no_control,
            MsgFlags::empty(),
        )
        .map(|results| results.count());
        match result {
            Ok(0) => break,
            Ok(count) => sent += count,
            Err(nix::errno::Errno::EINTR) => {}
            Err(error) => {
                // One destination refused (e.g. unreachable): skip it, send the rest.
                tracing::debug!(%error, "UDP batch send error");
                sent += 1;
            }
        }
    }
}

/// How long a reply waits for room in a full send buffer, in all: what Unbound waits
/// (`SEND_BLOCKED_WAIT_TIMEOUT`, 200 ms) before it drops a UDP reply.
const SEND_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs a non-blocking send until it does not find the send buffer full, checking again every
/// millisecond, for at most [`SEND_WAIT`]. The socket is not in epoll (see [`spawn`]), so its
/// writability cannot be awaited; the send buffer is full only under overload.
async fn when_writable<R>(mut send: impl FnMut() -> io::Result<R>) -> io::Result<R> {
    let deadline = Instant::now() + SEND_WAIT;
    loop {
        match send() {
            Err(error)
                if error.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            other => return other,
        }
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

mod growth;
#[cfg(test)]
mod tests;

use growth::{Ghosts, Growth};
