//! The UDP fast path: batched socket calls and replies answered from their encoded bytes.
//!
//! ```text
//!  recvmmsg (up to 32 datagrams) ──► for each: table hit? ── yes ─► copy, patch ID and TTLs
//!        ▲                                    │ no                      │
//!        │                                    ▼                         ▼
//!        │                  the general path, at once here ──────► sendmmsg (the whole batch)
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
//!   answer read ([`Dependencies`](crate::chain::Dependencies)) must be the one it was
//!   computed under, so a change to one kind evicts only the answers that read it
//!   (`chain::validity` explains the stamp);
//! - cached forwarded answers: the entry must not have reached its expiry (or its prefetch
//!   point, so that prefetch still sees the hits it needs); TTLs are patched to count down as
//!   the cache would count them.
//!
//! With `resolve.rotate`, a hit also turns each A or AAAA RRset of the stored reply by one
//! record (`AddressRun`), as the general path turns the records it encodes: the same bytes,
//! in another order of the RRset.
//!
//! Failures, truncated replies, stale answers and anything else the general path marks
//! [`Validity::Never`] are never stored. A reply is stored on its query's second sight
//! (`growth::Growth::admits`), local data's as much as a forwarded one's: a flood of names
//! asked once leaves only ghosts. A query in a case the table has not seen (0x20
//! randomization) is a miss and takes the general path: correct, only slower.
//!
//! No allocation per query on a hit: receive buffers, reply buffers and socket headers are
//! allocated once per socket. (Misses copy the datagram for their task.)
//!
//! **Misses are answered in the batch when they can be.** A miss first goes through
//! [`Engine::answer_now`], which walks the chain without waiting: local data (zones, hosts
//! files, the cluster) and the cache's fresh entries answer there, with no future built, and
//! the reply goes out in a `sendmmsg` with the batch's other misses: no task, no wake-up of a
//! runtime thread, no `sendto` of its own (the hits of the batch are sent first, so they do not
//! wait for the misses' work). A miss that reaches a source that must wait becomes a future,
//! from where the walk stopped ([`Engine::answer_later`]), polled once on this thread with a
//! waker that does nothing; only a future that is then still waiting (an upstream query) is
//! handed to the runtime as a task, which polls it again with a real waker, as the `Future`
//! contract requires of anything that returned `Pending`. Issue 16's long tail (distinct names,
//! each asked once or rarely, which the table does not hold) goes through here.
//!
//! [`Engine::handle_reply`]: crate::server::Engine::handle_reply
//! [`Engine::answer_now`]: crate::server::Engine::answer_now
//! [`Engine::answer_later`]: crate::server::Engine::answer_later

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::admission::Admitted;
use super::walk::skip_name;
use super::Reply;
use prometheus_client::encoding::DescriptorEncoder;

use crate::chain::validity::VersionSnapshot;
use crate::chain::{DataVersions, Validity};
use crate::metrics::{load, Encoder, MetricDoc};

/// Datagrams per recvmmsg/sendmmsg: PEERS.md's generator uses 32; larger batches gain little
/// and hold replies back longer under light load (a batch is sent when the socket runs dry).
const BATCH: usize = 32;

/// The largest query the fast path reads. A DNS query is a few dozen bytes; anything larger
/// than this is dropped (BAD-INPUTS: "a 65,000-byte datagram: FORMERR or drop").
const RECEIVE_BUFFER: usize = 4096;

std::thread_local! {
    /// Each fast-path thread's rotation turn: a counter per thread costs nothing shared on a
    /// hit, and successive answers from one socket still turn.
    static TURN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
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

/// The encoded replies, keyed by the query's bytes after its ID.
pub struct FastTable {
    entries: Slots,
    /// For a table whose budget follows the working set ([`growth`]); `None`: fixed.
    growth: Option<Growth>,
    versions: Arc<DataVersions>,
    stats: FastStats,
    /// `resolve.rotate`, changed by a reload.
    rotate: std::sync::atomic::AtomicBool,
    /// What entries' instants are counted from ([`entry::Countdown`]).
    epoch: Instant,
    sources: Sources,
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

    /// A table that starts at 4 MiB (or `max_bytes`, if smaller) and grows
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
        let ghosts = growth.as_ref().map(|g| Arc::clone(&g.ghosts));
        Self {
            entries: Slots::new(estimated, capacity, weight, ghosts),
            growth,
            versions,
            stats: FastStats::default(),
            rotate: std::sync::atomic::AtomicBool::new(false),
            epoch: Instant::now(),
            sources: Sources::new(),
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
        self.entries.len() == 0
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

    /// Writes the reply to an admitted `query` into `out` if the table has a valid one: one
    /// query's [`Lookups`], its stages run back to back. The [`Admitted`] is the front door's
    /// proof: no stored reply goes to a request it did not admit.
    pub fn answer(
        &self,
        admitted: &Admitted,
        query: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut lookups = self.lookups(now);
        let probe = lookups.start(query);
        lookups.prefetch(probe);
        let probe = lookups.locate(probe);
        lookups.answer(admitted, probe, query, out).is_some()
    }

    /// Lookups for a batch of queries received at `now`, in stages ([`Lookups`]).
    pub fn lookups(&self, now: Instant) -> Lookups<'_> {
        Lookups {
            table: self,
            reader: Reader::new(&self.entries),
            now: self.offset(now),
            hits: 0,
            misses: 0,
        }
    }

    /// `instant` in signed nanoseconds from the table's epoch, as entries keep instants.
    fn offset(&self, instant: Instant) -> i64 {
        match instant.checked_duration_since(self.epoch) {
            Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            None => i64::try_from(self.epoch.duration_since(instant).as_nanos())
                .map_or(i64::MIN, |before| -before),
        }
    }

    /// The reply of `stored` for `query`, written to `out`, if it is still valid at `now` (in
    /// [`FastTable::offset`]'s nanoseconds).
    fn reuse(&self, stored: &Stored, query: &[u8], now: i64, out: &mut Vec<u8>) -> Option<Hit> {
        let metadata = stored.metadata();
        let fresh = metadata.stamp == self.versions.stamp(metadata.dependencies)
            && metadata
                .countdown
                .is_none_or(|countdown| now < countdown.until);
        if !fresh {
            return None;
        }
        out.clear();
        out.extend_from_slice(stored.reply());
        out[..2].copy_from_slice(&query[..2]);
        if let Some(countdown) = metadata.countdown {
            let age = u32::try_from(now.saturating_sub(countdown.origin).max(0) / 1_000_000_000)
                .unwrap_or(u32::MAX);
            let elapsed = age.saturating_sub(countdown.encoded_age);
            if elapsed > 0 {
                for offset in stored.ttl_offsets() {
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
        if stored.has_runs() && self.rotate.load(Ordering::Relaxed) {
            // Turned by at least one: the first hit must not repeat the general path's order.
            let turn = TURN.with(|turn| {
                let next = turn.get().wrapping_add(1);
                turn.set(next);
                next
            });
            for run in stored.runs() {
                let start = usize::from(run.start);
                let length = usize::from(run.record_length);
                let count = usize::from(run.count);
                out[start..start + length * count].rotate_left(turn % count * length);
            }
        }
        Some(Hit {
            source: self.sources.name(metadata.source),
            from_cache: metadata.countdown.is_some(),
        })
    }

    /// Starts reading what [`FastTable::store`] will read first for `query`'s reply, the
    /// doorkeeper's line for it, while the general path computes that reply: on a flood of
    /// names asked once the line is a cache miss for every query. The store hashes the key
    /// again (a few ns, `GhostSet::hash` read 0.13% of the core before and 0.17% after), which
    /// is cheaper to keep than a hash carried through the general path's future.
    pub fn prefetch_store(&self, query: &[u8]) {
        if let (Some(growth), Some(key)) = (&self.growth, key_of(query)) {
            growth.prefetch_admits(key);
        }
    }

    /// Stores `reply` as the answer to `query` if its validity allows; `before` is the
    /// versions taken before the reply was computed. `now` is called only for an answer that
    /// expires (a cached one): most general-path answers are local data's, and a clock read
    /// is about 25 ns of a flood's answer.
    pub fn store(
        &self,
        query: &[u8],
        reply: &Reply,
        before: &VersionSnapshot,
        now: impl FnOnce() -> Instant,
    ) {
        let (dependencies, countdown) = match reply.validity {
            Validity::Never => return,
            Validity::UntilChanged(dependencies) => (dependencies, None),
            Validity::Until {
                dependencies,
                origin,
                until,
                encoded_age,
            } => {
                if now() >= until {
                    return;
                }
                (
                    dependencies,
                    Some(Countdown {
                        origin: self.offset(origin),
                        encoded_age,
                        until: self.offset(until),
                    }),
                )
            }
        };
        let Some(key) = key_of(query) else {
            return;
        };
        // A reply on its query's first sight leaves only a ghost ([`Growth::admits`]), before
        // it is walked: most first answers of a flood end here. That holds for local data too:
        // the data is the operator's, but the names are whoever asks, and a flood of random
        // names under a served zone (NXDOMAINs from a zone or the cluster) is as much a flood.
        if self
            .growth
            .as_ref()
            .is_some_and(|growth| !growth.admits(key))
        {
            return;
        }
        let Some(ttl_offsets) = ttl_offsets(&reply.bytes) else {
            return;
        };
        self.stats.stored.fetch_add(1, Ordering::Relaxed);
        if let Some(grown) = self
            .growth
            .as_ref()
            .filter(|growth| growth.on_store(key))
            .and_then(|growth| growth.grown(self.entries.capacity()))
        {
            tracing::info!(
                bytes = grown,
                max = self.growth.as_ref().map_or(grown, Growth::max),
                "fast path: replies evicted are being asked again; its table grows"
            );
            self.entries.set_capacity(grown);
        }
        let metadata = Metadata {
            dependencies,
            stamp: before.stamp(dependencies),
            countdown,
            source: self.sources.index(reply.source),
        };
        let runs = address_runs(&reply.bytes);
        if let Some(stored) = pack(key, &reply.bytes, &ttl_offsets, &runs, metadata) {
            self.entries.insert(stored);
        }
    }
}

/// A batch's lookups in the table, in stages, each run over the whole batch before the next
/// (the `slots` module says why): [`Lookups::start`] hashes a query's key;
/// [`Lookups::prefetch`] takes the read locks of the shards the batch needs (the first call,
/// in ascending order) and starts reading the query's bucket; [`Lookups::locate`] reads the
/// bucket and starts reading the entry; [`Lookups::answer`] checks and copies it. It holds the
/// read locks until it is dropped: drop it before storing in the table.
pub struct Lookups<'t> {
    table: &'t FastTable,
    reader: Reader<'t>,
    now: i64,
    /// Counted here and added to the table's counters once, when the batch is done.
    hits: u64,
    misses: u64,
}

/// One query's lookup between stages: the hash of its key, `None` once it is known to miss
/// (or has no key).
#[derive(Clone, Copy, Debug)]
pub struct Probe(Option<u64>);

impl Lookups<'_> {
    /// Stage 1.
    pub fn start(&mut self, query: &[u8]) -> Probe {
        Probe(key_of(query).map(|key| self.reader.want(key)))
    }

    /// Stage 2.
    pub fn prefetch(&mut self, probe: Probe) {
        // Takes the batch's locks on the first call; nothing is left to take on the others.
        self.reader.lock();
        if let Some(hash) = probe.0 {
            self.reader.prefetch(hash);
        }
    }

    /// Stage 3.
    pub fn locate(&mut self, probe: Probe) -> Probe {
        Probe(probe.0.filter(|&hash| self.reader.locate(hash)))
    }

    /// Stage 4: writes the reply to the admitted `query` into `out` if the table has a valid
    /// one.
    pub fn answer(
        &mut self,
        _admitted: &Admitted,
        probe: Probe,
        query: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Hit> {
        let hit = probe.0.zip(key_of(query)).and_then(|(hash, key)| {
            let stored = self.reader.get(hash, key)?;
            self.table.reuse(stored, query, self.now, out)
        });
        match hit {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        hit
    }
}

impl Drop for Lookups<'_> {
    fn drop(&mut self) {
        let stats = &self.table.stats;
        if self.hits > 0 {
            stats.hits.fetch_add(self.hits, Ordering::Relaxed);
        }
        if self.misses > 0 {
            stats.misses.fetch_add(self.misses, Ordering::Relaxed);
        }
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

mod entry;
mod growth;
mod outbox;
mod slots;
#[cfg(test)]
mod tests;
mod worker;

use entry::{pack, AddressRun, Countdown, Metadata, Sources, Stored};
use growth::Growth;
use slots::{Reader, Slots, Weight};
pub use worker::spawn;
