//! The answer cache in front of the upstreams.
//!
//! It sits inside the `dns` source, so only forwarded answers are ever cached: answers from
//! hosts files and zones are computed from their current data on every query, and can never be
//! served stale from here (they reload on their own).
//!
//! - **Key**: the name case-folded, the type, the class, and the DO and CD bits, since each
//!   changes what an upstream answers.
//! - **What is kept**: NOERROR answers for the smallest TTL of their answer records; NODATA and
//!   NXDOMAIN for the negative TTL of RFC 2308 §5, min(SOA TTL, SOA MINIMUM), and not at all
//!   without an SOA ("negative responses without SOA records SHOULD NOT be cached"). SERVFAIL
//!   and timeouts are not kept (RFC 2308 §7 allows up to five minutes; none is simplest and
//!   lets an upstream that recovers be used at once). TTLs are clamped to the configured bounds.
//! - **Counting down**: a hit serves every TTL minus the seconds since the answer was stored.
//! - **Eviction**: quick_cache's S3-FIFO. A new entry enters a small probation queue and is
//!   promoted only if it is asked for again, so a flood of one-time names (random-subdomain
//!   attacks) churns through probation and never evicts the popular names.
//! - **Serve-stale** (RFC 8767): an expired entry is kept for `serve_stale` more; the caller
//!   decides when to use it ([`Lookup::Stale`]).
//! - **Prefetch**: a hit on an entry asked for more than once, in the last tenth of its TTL,
//!   asks the caller to refresh it in the background ([`Lookup::Fresh`]'s `prefetch`).
//!
//! - **Memory**: an entry is kept in wire form, not as hickory `Record`s (about 200 bytes of
//!   structure per record, more than the record itself): the key is the case-folded name's
//!   wire bytes with the type, class and flags packed in front, and the answer is its records
//!   encoded one after the other. Measured with `cargo bench --bench cache_memory` (see
//!   BENCHMARKS.md). A hit decodes the records again, about a microsecond; the UDP fast path,
//!   which answers most hits, never asks the cache at all.
//!
//! Time is `tokio::time::Instant`, passed in, so tests drive it with paused time.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use tokio::time::Instant;

use crate::chain::{Answer, Question, Validity};

/// RFC 8767 §4: "a stale answer ... with a TTL ... of 30 seconds is recommended".
pub const STALE_TTL: u32 = 30;

/// `cache.max_bytes` by default: room for the default 100,000 entries at about 500 bytes each
/// (a typical answer is 100 to 200 bytes of records plus its key and bookkeeping;
/// `benches/cache_memory.rs` measures it).
pub const DEFAULT_MAX_BYTES: u64 = 50 << 20;

/// An answer whose records take more than this is answered but not cached: one huge RRset
/// must not push out hundreds of ordinary answers (Unbound caps an RRset's size too).
pub const MAX_ENTRY_BYTES: usize = 16 << 10;

/// What an entry costs besides its key and records: the `Arc`'d [`Entry`], the allocations'
/// headers, and quick_cache's slot.
const ENTRY_OVERHEAD: u64 = 160;

/// How the cache behaves; from `[cache]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Entries kept at most; 0 turns the cache off.
    pub capacity: usize,
    /// Memory the entries may take at most, counted as their keys, records and bookkeeping:
    /// answers fetched over TCP can be 64 KiB each, so a count alone does not bound memory.
    pub max_bytes: u64,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub negative_max_ttl: Duration,
    /// How long past expiry an entry may still be served when the upstreams fail; zero: never.
    pub serve_stale: Duration,
    /// RFC 8767 §5's failure recheck timer: after a stale answer was served because no
    /// upstream answered in time, how long further questions for it are answered stale at
    /// once instead of waiting on the upstreams again.
    pub stale_recheck: Duration,
    pub prefetch: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            max_bytes: DEFAULT_MAX_BYTES,
            min_ttl: Duration::ZERO,
            max_ttl: Duration::from_secs(3600),
            negative_max_ttl: Duration::from_secs(300),
            serve_stale: Duration::from_secs(3600),
            // RFC 8767 §5: "a failure recheck timer ... 30 seconds is RECOMMENDED"
            stale_recheck: Duration::from_secs(30),
            prefetch: true,
        }
    }
}

/// What makes two questions the same question for the cache: the DO and CD bits, the type and
/// the class, then the case-folded name in wire form, in one allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(Box<[u8]>);

impl CacheKey {
    pub fn new(question: &Question) -> Self {
        let name = question.lower_name();
        // The name's labels as RFC 1035 §3.1 lays them out (length, bytes; the root's empty
        // label last), written here rather than through an encoder, which allocates a buffer
        // of its own for every question.
        let mut key = Vec::with_capacity(6 + name.len());
        key.push(u8::from(question.dnssec_ok) | (u8::from(question.checking_disabled) << 1));
        key.extend_from_slice(&u16::from(question.record_type).to_be_bytes());
        key.extend_from_slice(&u16::from(question.class).to_be_bytes());
        for label in name.iter() {
            // A label is at most 63 bytes (hickory enforces it when the name is made).
            key.push(label.len() as u8);
            key.extend_from_slice(label);
        }
        key.push(0);
        Self(key.into_boxed_slice())
    }
}

/// An answer's three sections in wire form: each record as RFC 1035 §4.1.3 encodes it, names
/// compressed against earlier records of the same entry, TTLs as stored (after clamping).
#[derive(Debug)]
struct WireAnswer {
    records: Box<[u8]>,
    /// Records in the answer, authority and additional sections.
    counts: [u16; 3],
    response_code: u16,
    authoritative: bool,
    authentic_data: bool,
}

impl WireAnswer {
    /// `None` if a record cannot be encoded (then the answer is not cached).
    fn encode(answer: &Answer) -> Option<Self> {
        let mut bytes = Vec::with_capacity(64);
        let mut encoder = BinEncoder::new(&mut bytes);
        let mut counts = [0u16; 3];
        for (count, section) in
            counts
                .iter_mut()
                .zip([&answer.answers, &answer.authorities, &answer.additionals])
        {
            for record in section {
                record.emit(&mut encoder).ok()?;
            }
            *count = u16::try_from(section.len()).ok()?;
        }
        Some(Self {
            records: bytes.into_boxed_slice(),
            counts,
            response_code: u16::from(answer.response_code),
            authoritative: answer.authoritative,
            authentic_data: answer.authentic_data,
        })
    }

    /// The answer, every record's TTL mapped by `ttl`; `None` if the bytes do not decode
    /// (they were encoded by [`WireAnswer::encode`], so only a bug could cause it).
    fn decode(&self, ttl: impl Fn(u32) -> u32) -> Option<Answer> {
        let mut decoder = BinDecoder::new(&self.records);
        let mut sections: [Vec<Record>; 3] = Default::default();
        for (section, count) in sections.iter_mut().zip(self.counts) {
            section.reserve_exact(usize::from(count));
            for _ in 0..count {
                let mut record = Record::read(&mut decoder).ok()?;
                record.ttl = ttl(record.ttl);
                section.push(record);
            }
        }
        let [answers, authorities, additionals] = sections;
        Some(Answer {
            response_code: <ResponseCode as From<u16>>::from(self.response_code),
            authoritative: self.authoritative,
            authentic_data: self.authentic_data,
            answers,
            authorities,
            additionals,
            chase: None,
            validity: Validity::Never,
            extended_error: None,
        })
    }
}

/// One stored answer.
#[derive(Debug)]
struct Entry {
    /// The answer with its TTLs as they were when stored (after clamping).
    answer: WireAnswer,
    stored: Instant,
    /// Seconds the entry is fresh.
    ttl: u32,
    hits: AtomicU32,
    prefetch_started: AtomicBool,
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// A fresh answer, TTLs counted down. `prefetch`: refresh it in the background now.
    Fresh {
        answer: Answer,
        prefetch: bool,
    },
    /// Expired, but within the serve-stale window: TTLs set to [`STALE_TTL`]. Serve it only if
    /// the upstreams fail.
    Stale {
        answer: Answer,
    },
    Miss,
}

/// Counters, read by the metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale_answers: AtomicU64,
    pub prefetches: AtomicU64,
    pub evictions: AtomicU64,
    pub inserts: AtomicU64,
    pub coalesced: AtomicU64,
}

/// Counts evictions; quick_cache calls it as entries leave.
#[derive(Clone)]
struct CountEvictions(Arc<CacheStats>);

impl Lifecycle<CacheKey, Arc<Entry>> for CountEvictions {
    type RequestState = ();
    fn begin_request(&self) -> Self::RequestState {}
    fn on_evict(&self, _state: &mut (), _key: CacheKey, _value: Arc<Entry>) {
        self.0.evictions.fetch_add(1, Ordering::Relaxed);
    }
}

/// How much an entry weighs: its bytes, but never less than `max_bytes / capacity`, so that
/// one weight bounds both the memory and the number of entries.
#[derive(Clone)]
struct EntryWeight {
    floor: u64,
}

impl Weighter<CacheKey, Arc<Entry>> for EntryWeight {
    fn weight(&self, key: &CacheKey, entry: &Arc<Entry>) -> u64 {
        let bytes = (key.0.len() + entry.answer.records.len()) as u64 + ENTRY_OVERHEAD;
        bytes.max(self.floor)
    }
}

/// The answer cache.
pub struct Cache {
    entries: QuickCache<CacheKey, Arc<Entry>, EntryWeight, DefaultHashBuilder, CountEvictions>,
    config: CacheConfig,
    stats: Arc<CacheStats>,
}

fn seconds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

impl Cache {
    /// A cache for `config.capacity` entries; `None` when the capacity is 0.
    pub fn new(config: CacheConfig) -> Option<Self> {
        if config.capacity == 0 {
            return None;
        }
        let stats = Arc::new(CacheStats::default());
        let max_bytes = config.max_bytes.max(1);
        let floor = (max_bytes / config.capacity as u64).max(1);
        let entries = QuickCache::with(
            config.capacity,
            max_bytes,
            EntryWeight { floor },
            DefaultHashBuilder::default(),
            CountEvictions(Arc::clone(&stats)),
        );
        Some(Self {
            entries,
            config,
            stats,
        })
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Entries held now (fresh and stale).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// Looks `key` up at `now`.
    pub fn get(&self, key: &CacheKey, now: Instant) -> Lookup {
        let Some(entry) = self.entries.get(key) else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(entry.stored);
        let age_seconds = seconds(age);
        if age_seconds < entry.ttl {
            let Some((answer, prefetch)) = self.fresh(&entry, age_seconds) else {
                self.entries.remove(key);
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return Lookup::Miss;
            };
            return Lookup::Fresh { answer, prefetch };
        }
        if age < Duration::from_secs(u64::from(entry.ttl)) + self.config.serve_stale {
            if let Some(answer) = entry.answer.decode(|_| STALE_TTL) {
                return Lookup::Stale { answer };
            }
        }
        self.entries.remove(key);
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
    }

    /// [`Cache::get`] for a fresh answer only: `Some` exactly when `get` would give
    /// [`Lookup::Fresh`], counted as the same hit. For anything else (no entry, an expired
    /// one) it counts and changes nothing, and the caller asks `get`, which counts the miss
    /// once. What a caller asks first when it answers a fresh hit without waiting (the
    /// forwarder's `Source::lookup_now`).
    pub fn get_fresh(&self, key: &CacheKey, now: Instant) -> Option<(Answer, bool)> {
        let entry = self.entries.get(key)?;
        let age_seconds = seconds(now.saturating_duration_since(entry.stored));
        if age_seconds >= entry.ttl {
            return None;
        }
        let fresh = self.fresh(&entry, age_seconds);
        if fresh.is_none() {
            // It does not decode: dropped, as `get` drops it, and the `get` that follows
            // counts the miss, so the counts are what `get` alone would have made.
            self.entries.remove(key);
        }
        fresh
    }

    /// The hit on `entry`, fresh at `age_seconds`: the answer, TTLs counted down, and whether
    /// to prefetch it now. `None` if it does not decode.
    fn fresh(&self, entry: &Entry, age_seconds: u32) -> Option<(Answer, bool)> {
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        let hits = entry.hits.fetch_add(1, Ordering::Relaxed) + 1;
        let remaining = entry.ttl - age_seconds;
        let prefetch = self.config.prefetch
            && hits >= 2
            && entry.ttl >= 10
            && remaining <= entry.ttl / 10
            && !entry.prefetch_started.swap(true, Ordering::Relaxed);
        let mut answer = entry.answer.decode(|ttl| ttl.saturating_sub(age_seconds))?;
        answer.validity = self.reusable(entry.stored, age_seconds, entry.ttl);
        Some((answer, prefetch))
    }

    /// How long an answer stored at `stored` for `ttl` seconds, encoded `age` seconds later,
    /// may be reused from its encoded bytes (the UDP fast path): until it expires, or until
    /// the point where a hit may ask for a prefetch, so that a reuse never hides the hit that
    /// keeps a popular entry fresh.
    fn reusable(&self, stored: Instant, age: u32, ttl: u32) -> Validity {
        let reusable_for = if self.config.prefetch && ttl >= 10 {
            ttl - ttl / 10
        } else {
            ttl
        };
        Validity::until(
            stored,
            age,
            stored + Duration::from_secs(u64::from(reusable_for)),
        )
    }

    /// Stores `answer` for `key` if it may be cached; returns whether it was.
    pub fn insert(&self, key: CacheKey, answer: &Answer, now: Instant) -> bool {
        self.store(key, answer, now).is_some()
    }

    /// Stores `answer` for `key` if it may be cached, and returns it as stored: its TTLs
    /// clamped by `min_ttl`, `max_ttl` and `negative_max_ttl`. The first answer goes out so
    /// too, so a client never sees a TTL above `max_ttl` because it asked first.
    ///
    /// The answer returned is reusable as a hit on the new entry would be, so the fast path
    /// sees its reply (and admits it on the name's second sight, `server::fast::growth`).
    /// Without this, a long tail asked twice (issue 16's hit-tail) never reached the table on
    /// its second pass: the table saw each name once, as a scan, and never grew.
    pub fn store(&self, key: CacheKey, answer: &Answer, now: Instant) -> Option<Answer> {
        let (ttl, mut clamped) = self.cacheable(answer)?;
        let stored = WireAnswer::encode(&clamped)?;
        if stored.records.len() > MAX_ENTRY_BYTES {
            return None;
        }
        self.stats.inserts.fetch_add(1, Ordering::Relaxed);
        clamped.validity = self.reusable(now, 0, ttl);
        self.entries.insert(
            key,
            Arc::new(Entry {
                answer: stored,
                stored: now,
                ttl,
                hits: AtomicU32::new(0),
                prefetch_started: AtomicBool::new(false),
            }),
        );
        Some(clamped)
    }

    /// The lifetime of `answer` in the cache and the answer as stored (TTLs clamped), or `None`
    /// when it must not be cached.
    fn cacheable(&self, answer: &Answer) -> Option<(u32, Answer)> {
        if answer.chase.is_some() {
            return None;
        }
        let min_ttl = seconds(self.config.min_ttl);
        let positive = answer.response_code == ResponseCode::NoError && !answer.answers.is_empty();
        let negative = matches!(
            answer.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) && !positive;
        let ttl = if positive {
            let max_ttl = seconds(self.config.max_ttl);
            let clamp = |ttl: u32| ttl.clamp(min_ttl, max_ttl.max(min_ttl));
            let stored = with_ttls(answer, clamp);
            let ttl = stored.answers.iter().map(|r| r.ttl).min()?;
            return (ttl > 0).then_some((ttl, stored));
        } else if negative {
            // RFC 2308 §5: the negative TTL is taken from the SOA of the authority section.
            let soa = answer
                .authorities
                .iter()
                .find_map(|record| match &record.data {
                    RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
                    _ => None,
                })?;
            soa.clamp(min_ttl, seconds(self.config.negative_max_ttl).max(min_ttl))
        } else {
            return None;
        };
        if ttl == 0 {
            return None;
        }
        // Every record of a negative answer lives as long as the negative answer does.
        Some((ttl, with_ttls(answer, |_| ttl)))
    }
}

/// `answer` with every record's TTL mapped by `ttl`.
fn with_ttls(answer: &Answer, ttl: impl Fn(u32) -> u32) -> Answer {
    let map = |records: &[Record]| -> Vec<Record> {
        records
            .iter()
            .map(|record| {
                let mut record = record.clone();
                record.ttl = ttl(record.ttl);
                record
            })
            .collect()
    };
    Answer {
        response_code: answer.response_code,
        authoritative: answer.authoritative,
        authentic_data: answer.authentic_data,
        answers: map(&answer.answers),
        authorities: map(&answer.authorities),
        additionals: map(&answer.additionals),
        chase: None,
        validity: Validity::Never,
        extended_error: None,
    }
}

#[cfg(test)]
mod tests;
