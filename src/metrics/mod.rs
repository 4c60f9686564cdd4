//! Prometheus metrics: the per-query recorder, and what every part of the server uses to
//! encode its own metrics at scrape time.
//!
//! ```text
//!  per query (hot path)                         per scrape (GET /metrics, in admin)
//!  ───────────────────                          ─────────────────────────────────
//!  Metrics::record ─► this thread's Shard       Metrics::encode ─► sum the shards
//!    (relaxed atomic adds into fixed arrays:     + the fast table's counters (server::fast)
//!     no lock, no map, no allocation)            + each source's own (Plugin::encode_metrics,
//!                                                  declared and encoded in its folder)
//!                                                ─► prometheus-client text
//! ```
//!
//! This module sits below the server and the sources, and names neither: the scrape that
//! reads them all is assembled above them (`app`, served by `admin`).
//!
//! Why not `prometheus-client`'s `Family<Labels, Counter>` on the query path: each increment
//! hashes the label set and takes a lock, and the fast path answers over half a million queries
//! a second. Every label here has a small fixed set of values, so the counters are plain arrays
//! indexed by (protocol, family, type), one copy per thread (a `Shard`, padded to its own
//! cache lines so two cores never write the same line), summed at scrape time. The crate is
//! used for what it is good at: the exposition format, through a [`Collector`].
//!
//! [`Collector`]: prometheus_client::collector::Collector
//!
//! Every metric is declared once, with its type and help text, in a [`MetricDoc`] list beside
//! the code that counts it ([`NAMES`] here for the per-query ones); the README's table and a
//! test keep the lists and the README in step.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::chain::Transport;

pub mod coredns;
pub mod histogram;

use histogram::{Bounds, Series, Snapshot};

/// One metric as exported: its name without the namespace, its type, and its help text.
pub type MetricDoc = (&'static str, &'static str, &'static str);

/// The query types counted by name; every other type is `other`.
const QUERY_TYPES: [(u16, &str); 15] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (2, "NS"),
    (12, "PTR"),
    (6, "SOA"),
    (33, "SRV"),
    (16, "TXT"),
    (255, "ANY"),
    (65, "HTTPS"),
    (64, "SVCB"),
    (43, "DS"),
    (48, "DNSKEY"),
    (257, "CAA"),
];
const TYPE_SLOTS: usize = QUERY_TYPES.len() + 1;

/// The RCODEs counted by name (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS); others are `other`.
const RCODES: [(u16, &str); 7] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (16, "BADVERS"),
];
const RCODE_SLOTS: usize = RCODES.len() + 1;

const PROTOCOLS: [&str; 2] = ["udp", "tcp"];
const FAMILIES: [&str; 2] = ["ipv4", "ipv6"];

/// The per-query metrics and the configuration's, without the namespace, with their type and
/// help text. The other parts of the server declare their own beside their code.
pub const NAMES: &[MetricDoc] = &[
    ("build_info", "info", "Build information: version."),
    (
        "requests_total",
        "counter",
        "Queries received, by protocol, address family and query type.",
    ),
    ("responses_total", "counter", "Replies sent, by RCODE."),
    (
        "requests_unanswered_total",
        "counter",
        "Queries dropped without a reply (too short, a response, or not answerable).",
    ),
    (
        "request_duration_seconds",
        "histogram",
        "Time from receiving a query to its reply being ready, by protocol.",
    ),
    (
        "fast_path_cache_hits_total",
        "counter",
        "Fast-path hits that reused a cached forwarded answer (also counted in cache_hits_total).",
    ),
    (
        "config_reloads_total",
        "counter",
        "Configuration reloads (SIGHUP or a change seen by `server.watch_config`), by result.",
    ),
    (
        "config_last_reload_timestamp_seconds",
        "gauge",
        "When the configuration was last loaded successfully (Unix time).",
    ),
];

/// The per-query counters of one thread.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    requests: [[[AtomicU64; TYPE_SLOTS]; 2]; 2],
    responses: [AtomicU64; RCODE_SLOTS],
    unanswered: AtomicU64,
    /// By protocol and query type: Hearth's names sum the types, CoreDNS's the protocols.
    durations: [[Series; TYPE_SLOTS]; 2],
    /// Fast-path hits whose stored reply came from the forwarding cache: hits of that cache
    /// which never reached it (see [`Metrics::fast_cache_hits`]).
    fast_cache_hits: AtomicU64,
}

/// The per-query counters of the whole server.
pub struct Metrics {
    shards: Box<[Shard]>,
    /// SIGHUP reloads.
    pub config_reloads: ReloadStats,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Hands each thread its shard, round robin, on its first query.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

/// This thread's shard number; reduce it modulo the number of shards.
fn shard_index() -> usize {
    SHARD.with(|index| *index)
}

/// How many shards a sharded counter has: twice the cores. Threads beyond the workers
/// (blocking pool) rarely answer queries, and a shared shard is still correct, only slower.
fn shard_count() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) * 2
}

/// What is recorded of one query.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    pub transport: Transport,
    pub ipv6: bool,
    pub query_type: u16,
    /// The reply's RCODE (extended RCODEs included), or `None` when no reply was sent.
    pub response_code: Option<u16>,
    pub elapsed: Duration,
}

impl Metrics {
    pub fn new() -> Self {
        let count = shard_count();
        Self {
            shards: (0..count).map(|_| Shard::default()).collect(),
            config_reloads: ReloadStats::default(),
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[shard_index() % self.shards.len()]
    }

    /// Counts one query.
    pub fn record(&self, observation: Observation) {
        let shard = self.shard();
        let protocol = protocol_slot(observation.transport);
        shard.requests[protocol][usize::from(observation.ipv6)][type_slot(observation.query_type)]
            .fetch_add(1, Ordering::Relaxed);
        match observation.response_code {
            Some(code) => {
                shard.responses[rcode_slot(code)].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                shard.unanswered.fetch_add(1, Ordering::Relaxed);
            }
        }
        shard.durations[protocol][type_slot(observation.query_type)]
            .observe(observation.elapsed, 1);
    }

    /// Counts a batch of answered queries that share one duration (the UDP fast path's
    /// batches): the shard is found once for the batch, and each query type's histogram is
    /// added to once.
    pub fn record_batch(
        &self,
        transport: Transport,
        elapsed: Duration,
        queries: impl Iterator<Item = BatchItem>,
    ) {
        let shard = self.shard();
        let protocol = protocol_slot(transport);
        let mut per_type = [0u64; TYPE_SLOTS];
        let mut cache_hits = 0u64;
        for item in queries {
            let slot = type_slot(item.query_type);
            shard.requests[protocol][usize::from(item.ipv6)][slot].fetch_add(1, Ordering::Relaxed);
            shard.responses[rcode_slot(item.response_code)].fetch_add(1, Ordering::Relaxed);
            per_type[slot] += 1;
            cache_hits += u64::from(item.from_cache);
        }
        for (slot, count) in per_type.into_iter().enumerate() {
            if count > 0 {
                shard.durations[protocol][slot].observe(elapsed, count);
            }
        }
        if cache_hits > 0 {
            shard
                .fast_cache_hits
                .fetch_add(cache_hits, Ordering::Relaxed);
        }
    }

    /// Fast-path hits whose reply came from the forwarding cache. The forwarding source adds
    /// them to its cache hits: the fast path reused a cached answer without asking the cache,
    /// and a hit ratio that left them out would count 1 miss and 15 repeats as 50%.
    pub fn fast_cache_hits(&self) -> u64 {
        self.sum(|s| &s.fast_cache_hits)
    }

    /// The request-duration histogram of `protocol` and query-type slot, over the shards.
    fn durations(&self, protocol: usize, type_slot: usize) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for shard in self.shards.iter() {
            shard.durations[protocol][type_slot].add_to(&mut snapshot);
        }
        snapshot
    }

    fn sum(&self, read: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| read(shard).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// A duration histogram per RCODE (those of `RCODES`, and `other`), sharded: upstream
/// round trips by the RCODE of the reply.
#[derive(Debug)]
pub struct DurationsByRcode(histogram::Histograms);

impl Default for DurationsByRcode {
    fn default() -> Self {
        Self(histogram::Histograms::new(RCODE_SLOTS))
    }
}

impl DurationsByRcode {
    pub fn observe(&self, response_code: u16, elapsed: Duration) {
        self.0.observe(rcode_slot(response_code), elapsed);
    }

    /// Each RCODE seen at least once, named as [`rcode_name`] (`other` for the rest), with
    /// its histogram.
    pub fn snapshots(&self) -> Vec<(&'static str, Snapshot)> {
        (0..RCODE_SLOTS)
            .map(|slot| {
                let name = RCODES.get(slot).map_or("other", |(_, name)| *name);
                (name, self.0.snapshot(slot))
            })
            .filter(|(_, snapshot)| snapshot.count() > 0)
            .collect()
    }
}

/// One query of a batch, as [`Metrics::record_batch`] counts it.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem {
    pub ipv6: bool,
    pub query_type: u16,
    pub response_code: u16,
    /// The reply reused an answer from the forwarding cache.
    pub from_cache: bool,
}

/// The name of an RCODE as DNS tools print it (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_name(code: u16) -> std::borrow::Cow<'static, str> {
    match RCODES.iter().find(|(value, _)| *value == code) {
        Some((_, name)) => std::borrow::Cow::Borrowed(name),
        None => std::borrow::Cow::Owned(format!("RCODE{code}")),
    }
}

fn protocol_slot(transport: Transport) -> usize {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    }
}

fn type_slot(query_type: u16) -> usize {
    QUERY_TYPES
        .iter()
        .position(|(code, _)| *code == query_type)
        .unwrap_or(QUERY_TYPES.len())
}

fn rcode_slot(code: u16) -> usize {
    RCODES
        .iter()
        .position(|(value, _)| *value == code)
        .unwrap_or(RCODES.len())
}

/// How a source's reloads went, for the metrics: a failure is a reload that found a file it
/// could not use (the last good version keeps serving).
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    /// Unix time in milliseconds of the last success; 0 before the first.
    last_success_millis: AtomicU64,
}

impl ReloadStats {
    pub fn record(&self, success: bool) {
        if success {
            self.successes.fetch_add(1, Ordering::Relaxed);
            self.mark_loaded();
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the time of the last success without counting a reload (the first load).
    pub fn mark_loaded(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_success_millis.store(now, Ordering::Relaxed);
    }

    /// When the last successful reload happened.
    pub fn last_success(&self) -> Option<SystemTime> {
        match self.last_success_millis.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(UNIX_EPOCH + Duration::from_millis(millis)),
        }
    }
}

/// A sample value: counts are integers, sums of seconds are not.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    Integer(u64),
    Float(f64),
}

/// The help text of `name` in `docs`.
pub fn help_of(docs: &[MetricDoc], name: &str) -> &'static str {
    help(docs, name)
}

/// The help text of `name` in `docs`.
fn help(docs: &[MetricDoc], name: &str) -> &'static str {
    docs.iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, _, help)| *help)
}

pub fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Encodes metrics declared in one [`MetricDoc`] list: each part of the server encodes its own
/// with this, so names and help texts come from the list beside its code.
pub struct Encoder<'e, 'a> {
    encoder: &'e mut DescriptorEncoder<'a>,
    docs: &'static [MetricDoc],
}

impl<'e, 'a> Encoder<'e, 'a> {
    pub fn new(encoder: &'e mut DescriptorEncoder<'a>, docs: &'static [MetricDoc]) -> Self {
        Self { encoder, docs }
    }

    /// The encoder underneath, for a family this type has no helper for (histograms).
    pub fn descriptors(&mut self) -> &mut DescriptorEncoder<'a> {
        self.encoder
    }

    /// A counter without labels. `name` is as declared, `_total` included; the encoder adds
    /// `_total` back.
    pub fn counter(&mut self, name: &str, value: u64) -> std::fmt::Result {
        let base = name.trim_end_matches("_total");
        let help = help(self.docs, name);
        ConstCounter::new(value).encode(self.encoder.encode_descriptor(
            base,
            help,
            None,
            MetricType::Counter,
        )?)
    }

    /// A gauge without labels.
    pub fn gauge<V>(&mut self, name: &str, value: V) -> std::fmt::Result
    where
        V: prometheus_client::encoding::EncodeGaugeValue + Send + Sync + std::fmt::Debug + 'static,
    {
        let help = help(self.docs, name);
        ConstGauge::new(value).encode(self.encoder.encode_descriptor(
            name,
            help,
            None,
            MetricType::Gauge,
        )?)
    }

    /// A counter family with one `result` label: success and failure.
    pub fn reloads(&mut self, name: &str, stats: &ReloadStats) -> std::fmt::Result {
        let base = name.trim_end_matches("_total");
        let help = help(self.docs, name);
        let mut family = self
            .encoder
            .encode_descriptor(base, help, None, MetricType::Counter)?;
        for (result, value) in [
            ("success", load(&stats.successes)),
            ("failure", load(&stats.failures)),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }

    /// A family with one label, `label`, and a sample per `(label value, sample)`: a counter
    /// when `name` ends in `_total`, else a gauge.
    pub fn labelled(
        &mut self,
        name: &str,
        label: &str,
        samples: impl Iterator<Item = (String, Value)>,
    ) -> std::fmt::Result {
        let counter = name.ends_with("_total");
        let (base, kind) = if counter {
            (name.trim_end_matches("_total"), MetricType::Counter)
        } else {
            (name, MetricType::Gauge)
        };
        let help = help(self.docs, name);
        let mut family = self.encoder.encode_descriptor(base, help, None, kind)?;
        for (value_of_label, sample) in samples {
            let labels = [(label, value_of_label.as_str())];
            let metric = family.encode_family(&labels)?;
            match (counter, sample) {
                (true, Value::Integer(v)) => ConstCounter::new(v).encode(metric)?,
                (true, Value::Float(v)) => ConstCounter::new(v).encode(metric)?,
                (false, Value::Integer(v)) => {
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(metric)?
                }
                (false, Value::Float(v)) => ConstGauge::new(v).encode(metric)?,
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// Encodes the per-query metrics ([`NAMES`]).
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let metrics = self;
        {
            let mut info = encoder.encode_descriptor(
                "build",
                help(NAMES, "build_info"),
                None,
                MetricType::Info,
            )?;
            info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        }

        {
            let mut family = encoder.encode_descriptor(
                "requests",
                help(NAMES, "requests_total"),
                None,
                MetricType::Counter,
            )?;
            for (p, protocol) in PROTOCOLS.iter().enumerate() {
                for (f, address_family) in FAMILIES.iter().enumerate() {
                    for t in 0..TYPE_SLOTS {
                        let value = metrics.sum(|s| &s.requests[p][f][t]);
                        if value == 0 {
                            continue;
                        }
                        let query_type = QUERY_TYPES.get(t).map_or("other", |(_, name)| name);
                        ConstCounter::new(value).encode(family.encode_family(&[
                            ("protocol", *protocol),
                            ("family", *address_family),
                            ("type", query_type),
                        ])?)?;
                    }
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "responses",
                help(NAMES, "responses_total"),
                None,
                MetricType::Counter,
            )?;
            for slot in 0..RCODE_SLOTS {
                let value = metrics.sum(|s| &s.responses[slot]);
                let rcode = RCODES.get(slot).map_or("other", |(_, name)| name);
                ConstCounter::new(value).encode(family.encode_family(&[("rcode", rcode)])?)?;
            }
        }
        Encoder::new(encoder, NAMES)
            .counter("requests_unanswered_total", metrics.sum(|s| &s.unanswered))?;
        histogram::encode(
            encoder,
            "request_duration",
            help(NAMES, "request_duration_seconds"),
            Bounds::Hearth,
            PROTOCOLS.iter().enumerate().map(|(p, protocol)| {
                let mut snapshot = Snapshot::default();
                for t in 0..TYPE_SLOTS {
                    snapshot.add(&metrics.durations(p, t));
                }
                ([("protocol", *protocol)], snapshot)
            }),
        )?;

        let mut out = Encoder::new(encoder, NAMES);
        out.counter("fast_path_cache_hits_total", metrics.fast_cache_hits())?;
        out.reloads("config_reloads_total", &metrics.config_reloads)?;
        out.gauge(
            "config_last_reload_timestamp_seconds",
            metrics
                .config_reloads
                .last_success()
                .map_or(0.0, unix_seconds),
        )
    }
}

#[cfg(test)]
mod tests;
