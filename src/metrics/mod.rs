//! Prometheus metrics: what the server counts, and the text `/metrics` serves.
//!
//! ```text
//!  per query (hot path)                         per scrape (GET /metrics)
//!  ───────────────────                          ─────────────────────────
//!  Metrics::record ─► this thread's Shard       Scrape::encode ─► sum the shards
//!    (relaxed atomic adds into fixed arrays:                     + read the sources' own
//!     no lock, no map, no allocation)                              counters (cache, upstreams,
//!                                                                   hosts, zones, cluster)
//!                                                                 ─► prometheus-client text
//! ```
//!
//! Why not `prometheus-client`'s `Family<Labels, Counter>` on the query path: each increment
//! hashes the label set and takes a lock, and the fast path answers over half a million queries
//! a second. Every label here has a small fixed set of values, so the counters are plain arrays
//! indexed by (protocol, family, type), one copy per thread (a `Shard`, padded to its own
//! cache lines so two cores never write the same line), summed at scrape time. The crate is
//! used for what it is good at: the exposition format, through a [`Collector`].
//!
//! Every metric name is listed in [`NAMES`] with its help text, and the README's table and a
//! test keep the three in step.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::chain::Transport;
use crate::server::fast::{FastStats, FastTable};
use crate::sources::forward::Forwarder;
use crate::sources::hosts::Hosts;
use crate::sources::watch::ReloadStats;
use crate::sources::zones::Zones;

/// The content type of what [`Scrape::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// Upper bounds of the duration histogram, in seconds: from a fast-path hit (tens of
/// microseconds) to an upstream timeout (seconds). CoreDNS uses 0.25 ms × 2ⁿ; we start lower
/// because most of our answers are faster than its fastest bucket.
const BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];
const BUCKET_SLOTS: usize = BUCKETS.len() + 1;

/// Every metric this server exports, without the namespace, with its type and help text. The
/// README's metrics table is generated from the same list (a test compares them).
pub const NAMES: &[(&str, &str, &str)] = &[
    ("build_info", "info", "Build information: version."),
    ("requests_total", "counter", "Queries received, by protocol, address family and query type."),
    ("responses_total", "counter", "Replies sent, by RCODE."),
    ("requests_unanswered_total", "counter", "Queries dropped without a reply (too short, a response, or not answerable)."),
    ("request_duration_seconds", "histogram", "Time from receiving a query to its reply being ready, by protocol."),
    ("fast_path_hits_total", "counter", "UDP queries answered from the fast path's encoded replies."),
    ("fast_path_misses_total", "counter", "UDP queries the fast path passed to the general path."),
    ("cache_entries", "gauge", "Answers in the forwarding cache."),
    ("cache_hits_total", "counter", "Forwarded questions answered from the cache."),
    ("cache_misses_total", "counter", "Forwarded questions not in the cache."),
    ("cache_evictions_total", "counter", "Cache entries evicted to make room."),
    ("cache_inserts_total", "counter", "Answers stored in the cache."),
    ("cache_stale_answers_total", "counter", "Expired answers served because every upstream failed (RFC 8767)."),
    ("cache_prefetches_total", "counter", "Popular entries refreshed before they expired."),
    ("cache_coalesced_total", "counter", "Queries that waited for an identical one already in flight upstream."),
    ("upstream_requests_total", "counter", "Queries sent to each upstream."),
    ("upstream_failures_total", "counter", "Upstream queries that got no reply (timeout or unreachable)."),
    ("upstream_replies_total", "counter", "Upstream queries that got a reply."),
    ("upstream_latency_seconds_total", "counter", "Sum of the round-trip times of upstream replies; divide by upstream_replies_total for the mean."),
    ("upstream_healthy", "gauge", "1 if the upstream is up, 0 if marked down or looping."),
    ("upstream_looping", "gauge", "1 if a loop probe sent to the upstream came back to this server."),
    ("hosts_entries", "gauge", "Names in the hosts files."),
    ("hosts_reloads_total", "counter", "Hosts file reads, by result."),
    ("hosts_last_reload_timestamp_seconds", "gauge", "When a hosts file was last read successfully (Unix time)."),
    ("zones_loaded", "gauge", "Zones served from zone files."),
    ("zones_reloads_total", "counter", "Zone directory loads, by result (failure: any file had errors)."),
    ("kubernetes_ready", "gauge", "1 once the cluster zone has loaded its objects."),
    ("kubernetes_reloads_total", "counter", "Cluster object loads (manifests or API), by result."),
    ("kubernetes_api_connected", "gauge", "1 while the Kubernetes API feeds the cluster zone; 0 before the first sync and while it is unreachable (the last state keeps serving)."),
    ("kubernetes_api_watch_errors_total", "counter", "Failed Kubernetes API lists and watches: refused or cut connections, ERROR events, expired watches (410 Gone)."),
    ("kubernetes_api_events_total", "counter", "Objects received from the Kubernetes API: listed, added, modified or deleted."),
    ("kubernetes_api_lists_total", "counter", "Complete lists of one kind from the Kubernetes API (at start, and after a watch expired)."),
    ("kubernetes_api_last_sync_timestamp_seconds", "gauge", "Up to when the cluster zone is known to match the API (Unix time); 0 before the first sync."),
    ("config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result."),
    ("config_last_reload_timestamp_seconds", "gauge", "When the configuration was last loaded successfully (Unix time)."),
    ("ready", "gauge", "1 when /ready answers 200."),
];

/// The per-query counters of one thread.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    requests: [[[AtomicU64; TYPE_SLOTS]; 2]; 2],
    responses: [AtomicU64; RCODE_SLOTS],
    unanswered: AtomicU64,
    /// Per bucket, not cumulative: the scrape accumulates.
    durations: [[AtomicU64; BUCKET_SLOTS]; 2],
    duration_nanos: [AtomicU64; 2],
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
        // Twice the cores: threads beyond the workers (blocking pool) rarely answer queries,
        // and a shared shard is still correct, only slower.
        let count = std::thread::available_parallelism().map_or(2, usize::from) * 2;
        Self {
            shards: (0..count).map(|_| Shard::default()).collect(),
            config_reloads: ReloadStats::default(),
        }
    }

    fn shard(&self) -> &Shard {
        let index = SHARD.with(|index| *index);
        &self.shards[index % self.shards.len()]
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
        let seconds = observation.elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        shard.durations[protocol][bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(observation.elapsed.as_nanos()).unwrap_or(u64::MAX);
        shard.duration_nanos[protocol].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a batch of answered queries that share one duration (the UDP fast path's
    /// batches): the shard and the bucket are found once for the batch. Each item is
    /// (IPv6, query type, RCODE).
    pub fn record_batch(
        &self,
        transport: Transport,
        elapsed: Duration,
        queries: impl Iterator<Item = (bool, u16, u16)>,
    ) {
        let shard = self.shard();
        let protocol = protocol_slot(transport);
        let mut count = 0u64;
        for (ipv6, query_type, response_code) in queries {
            shard.requests[protocol][usize::from(ipv6)][type_slot(query_type)]
                .fetch_add(1, Ordering::Relaxed);
            shard.responses[rcode_slot(response_code)].fetch_add(1, Ordering::Relaxed);
            count += 1;
        }
        if count == 0 {
            return;
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        shard.durations[protocol][bucket].fetch_add(count, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        shard.duration_nanos[protocol].fetch_add(nanos.saturating_mul(count), Ordering::Relaxed);
    }

    fn sum(&self, read: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| read(shard).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
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

/// What one scrape reads: the per-query counters and the sources serving now.
pub struct Scrape {
    pub namespace: String,
    pub metrics: Arc<Metrics>,
    pub fast: Arc<FastTable>,
    pub hosts: Arc<Hosts>,
    pub zones: Arc<Zones>,
    pub forwarder: Arc<Forwarder>,
    pub ready: bool,
}

impl Scrape {
    /// The OpenMetrics text of every metric.
    pub fn render(self) -> String {
        let mut registry = Registry::with_prefix(self.namespace.clone());
        registry.register_collector(Box::new(Collected(self)));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            // Writing to a String cannot fail; keep the scrape well-formed if it ever does.
            text.clear();
            let _ = writeln!(text, "# EOF");
        }
        text
    }
}

struct Collected(Scrape);

/// A sample value: counts are integers, sums of seconds are not.
enum Value {
    Integer(u64),
    Float(f64),
}

impl std::fmt::Debug for Collected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collected")
    }
}

/// Help text of a metric in [`NAMES`].
fn help(name: &str) -> &'static str {
    NAMES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, _, help)| *help)
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Encodes a counter without labels. `name` is as in [`NAMES`], `_total` included; the
/// encoder adds `_total` back.
fn counter(encoder: &mut DescriptorEncoder, name: &str, value: u64) -> std::fmt::Result {
    let base = name.trim_end_matches("_total");
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(base, help(name), None, MetricType::Counter)?)
}

fn gauge<V>(encoder: &mut DescriptorEncoder, name: &str, value: V) -> std::fmt::Result
where
    V: prometheus_client::encoding::EncodeGaugeValue + Send + Sync + std::fmt::Debug + 'static,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help(name), None, MetricType::Gauge)?)
}

/// A counter family with one `result` label: success and failure.
fn reloads(encoder: &mut DescriptorEncoder, name: &str, stats: &ReloadStats) -> std::fmt::Result {
    let base = name.trim_end_matches("_total");
    let mut family = encoder.encode_descriptor(base, help(name), None, MetricType::Counter)?;
    for (result, value) in [
        ("success", load(&stats.successes)),
        ("failure", load(&stats.failures)),
    ] {
        ConstCounter::new(value).encode(family.encode_family(&[("result", result)])?)?;
    }
    Ok(())
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let scrape = &self.0;
        let metrics = &scrape.metrics;

        {
            let mut info =
                encoder.encode_descriptor("build", help("build_info"), None, MetricType::Info)?;
            info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        }

        {
            let mut family = encoder.encode_descriptor(
                "requests",
                help("requests_total"),
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
                help("responses_total"),
                None,
                MetricType::Counter,
            )?;
            for slot in 0..RCODE_SLOTS {
                let value = metrics.sum(|s| &s.responses[slot]);
                let rcode = RCODES.get(slot).map_or("other", |(_, name)| name);
                ConstCounter::new(value).encode(family.encode_family(&[("rcode", rcode)])?)?;
            }
        }
        counter(
            &mut encoder,
            "requests_unanswered_total",
            metrics.sum(|s| &s.unanswered),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "request_duration",
                help("request_duration_seconds"),
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (p, protocol) in PROTOCOLS.iter().enumerate() {
                // Per bucket: the encoder accumulates them into `le` buckets itself.
                let mut count = 0;
                let mut buckets = Vec::with_capacity(BUCKET_SLOTS);
                for slot in 0..BUCKET_SLOTS {
                    let in_bucket = metrics.sum(|s| &s.durations[p][slot]);
                    count += in_bucket;
                    // prometheus-client writes `+Inf` for f64::MAX.
                    buckets.push((BUCKETS.get(slot).copied().unwrap_or(f64::MAX), in_bucket));
                }
                let sum = metrics.sum(|s| &s.duration_nanos[p]) as f64 / 1e9;
                family
                    .encode_family(&[("protocol", *protocol)])?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum, count, &buckets, None,
                )?;
            }
        }

        let fast: &FastStats = scrape.fast.stats();
        counter(&mut encoder, "fast_path_hits_total", load(&fast.hits))?;
        counter(&mut encoder, "fast_path_misses_total", load(&fast.misses))?;

        let forwarder = &scrape.forwarder;
        gauge(&mut encoder, "cache_entries", forwarder.cache_len() as i64)?;
        let cache = forwarder.cache_stats();
        let read =
            |pick: fn(&crate::cache::CacheStats) -> &AtomicU64| cache.map_or(0, |c| load(pick(c)));
        counter(&mut encoder, "cache_hits_total", read(|c| &c.hits))?;
        counter(&mut encoder, "cache_misses_total", read(|c| &c.misses))?;
        counter(
            &mut encoder,
            "cache_evictions_total",
            read(|c| &c.evictions),
        )?;
        counter(&mut encoder, "cache_inserts_total", read(|c| &c.inserts))?;
        counter(
            &mut encoder,
            "cache_stale_answers_total",
            read(|c| &c.stale_answers),
        )?;
        counter(
            &mut encoder,
            "cache_prefetches_total",
            read(|c| &c.prefetches),
        )?;
        counter(
            &mut encoder,
            "cache_coalesced_total",
            read(|c| &c.coalesced),
        )?;

        let upstreams = forwarder.upstream_stats();
        let per_upstream = |encoder: &mut DescriptorEncoder,
                            name: &str,
                            counter: bool,
                            value: &dyn Fn(&crate::sources::forward::UpstreamStats) -> Value|
         -> std::fmt::Result {
            let (base, kind) = if counter {
                (name.trim_end_matches("_total"), MetricType::Counter)
            } else {
                (name, MetricType::Gauge)
            };
            let mut family = encoder.encode_descriptor(base, help(name), None, kind)?;
            for (address, stats) in &upstreams {
                let label = address.to_string();
                let labels = [("upstream", label.as_str())];
                let metric = family.encode_family(&labels)?;
                match (counter, value(stats)) {
                    (true, Value::Integer(v)) => ConstCounter::new(v).encode(metric)?,
                    (true, Value::Float(v)) => ConstCounter::new(v).encode(metric)?,
                    (false, Value::Integer(v)) => ConstGauge::new(v as i64).encode(metric)?,
                    (false, Value::Float(v)) => ConstGauge::new(v).encode(metric)?,
                }
            }
            Ok(())
        };
        per_upstream(&mut encoder, "upstream_requests_total", true, &|s| {
            Value::Integer(load(&s.requests))
        })?;
        per_upstream(&mut encoder, "upstream_failures_total", true, &|s| {
            Value::Integer(load(&s.failures))
        })?;
        per_upstream(&mut encoder, "upstream_replies_total", true, &|s| {
            Value::Integer(load(&s.replies))
        })?;
        per_upstream(&mut encoder, "upstream_latency_seconds_total", true, &|s| {
            Value::Float(load(&s.latency_micros) as f64 / 1e6)
        })?;
        per_upstream(&mut encoder, "upstream_healthy", false, &|s| {
            Value::Integer(u64::from(!s.is_down() && !s.is_looping()))
        })?;
        per_upstream(&mut encoder, "upstream_looping", false, &|s| {
            Value::Integer(u64::from(s.is_looping()))
        })?;

        let hosts = &scrape.hosts;
        gauge(&mut encoder, "hosts_entries", hosts.table().len() as i64)?;
        reloads(&mut encoder, "hosts_reloads_total", hosts.reload_stats())?;
        gauge(
            &mut encoder,
            "hosts_last_reload_timestamp_seconds",
            hosts
                .reload_stats()
                .last_success()
                .map_or(0.0, unix_seconds),
        )?;

        let zones = &scrape.zones;
        gauge(&mut encoder, "zones_loaded", zones.zone_count() as i64)?;
        reloads(&mut encoder, "zones_reloads_total", zones.reload_stats())?;
        let cluster = zones.cluster();
        gauge(
            &mut encoder,
            "kubernetes_ready",
            i64::from(cluster.is_some_and(|c| c.is_loaded())),
        )?;
        let empty = ReloadStats::default();
        reloads(
            &mut encoder,
            "kubernetes_reloads_total",
            cluster.map_or(&empty, |c| c.reload_stats()),
        )?;

        let api = cluster.and_then(|c| c.api_status());
        gauge(
            &mut encoder,
            "kubernetes_api_connected",
            i64::from(api.is_some_and(|a| a.connected())),
        )?;
        counter(
            &mut encoder,
            "kubernetes_api_watch_errors_total",
            api.map_or(0, |a| a.watch_errors_total()),
        )?;
        counter(
            &mut encoder,
            "kubernetes_api_events_total",
            api.map_or(0, |a| a.events_total()),
        )?;
        counter(
            &mut encoder,
            "kubernetes_api_lists_total",
            api.map_or(0, |a| a.lists_total()),
        )?;
        gauge(
            &mut encoder,
            "kubernetes_api_last_sync_timestamp_seconds",
            api.map_or(0, |a| {
                i64::try_from(a.last_sync_unix_seconds()).unwrap_or(i64::MAX)
            }),
        )?;

        reloads(
            &mut encoder,
            "config_reloads_total",
            &metrics.config_reloads,
        )?;
        gauge(
            &mut encoder,
            "config_last_reload_timestamp_seconds",
            metrics
                .config_reloads
                .last_success()
                .map_or(0.0, unix_seconds),
        )?;
        gauge(&mut encoder, "ready", i64::from(scrape.ready))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
