//! The `dns` source's place in the server: its `[forward]` and `[cache]` tables, its build,
//! its metrics and its loop probe.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;
use serde::Deserialize;

use super::dnssec::DnssecConfig;
use super::Forwarder;
use crate::cache::CacheConfig;
use crate::config::file::{ConfigError, Tables, MAX_TTL};
use hickory_proto::rr::LowerName;

use crate::config::values::{DomainName, HumanDuration, UpstreamSpec, UpstreamTransport};
use crate::metrics::{load, Encoder, MetricDoc, Value};
use crate::sources::setup::{Background, BuildContext, Plugin, SourceConfig, SourceSetup};

/// Upstream queries in flight: each holds a socket, so far below any file-descriptor limit.
const MAX_CONCURRENT_UPSTREAM: usize = 100_000;

/// A query waits at most this long for one upstream: a DNS client gives up long before.
const MAX_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// `[forward]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardTable {
    upstreams: Option<Vec<UpstreamSpec>>,
    policy: Option<Policy>,
    timeout: Option<HumanDuration>,
    max_concurrent: Option<usize>,
    health_check: Option<HumanDuration>,
    tls_ca: Option<PathBuf>,
    udp_ports: Option<usize>,
    zone: Option<Vec<ZoneTable>>,
}

/// `[[forward.zone]]` as written: a domain with upstreams of its own; every other key of
/// `[forward]` may be set per zone, and falls back to `[forward]`'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneTable {
    name: DomainName,
    upstreams: Vec<UpstreamSpec>,
    policy: Option<Policy>,
    timeout: Option<HumanDuration>,
    max_concurrent: Option<usize>,
    health_check: Option<HumanDuration>,
}

/// The longest `cache.stale_recheck`.
const MAX_STALE_RECHECK: Duration = Duration::from_secs(3600);

/// `[cache]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheTable {
    capacity: Option<usize>,
    max_bytes: Option<u64>,
    min_ttl: Option<HumanDuration>,
    max_ttl: Option<HumanDuration>,
    negative_max_ttl: Option<HumanDuration>,
    serve_stale: Option<HumanDuration>,
    stale_recheck: Option<HumanDuration>,
    prefetch: Option<bool>,
}

/// `[forward]` and `[cache]`, validated. The top-level keys are the default group's: what no
/// `[[forward.zone]]` matches goes there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    pub upstreams: Vec<UpstreamSpec>,
    /// Where `upstreams` came from, for the startup log.
    pub upstreams_from: UpstreamsFrom,
    pub policy: Policy,
    /// The longest one attempt at one upstream may take.
    pub timeout: Duration,
    /// Upstream queries in flight at most; beyond, queries are REFUSED (as CoreDNS does).
    pub max_concurrent: usize,
    /// How often an upstream marked down is probed.
    pub health_check: Duration,
    /// The answer cache in front of the upstreams.
    pub cache: CacheConfig,
    /// CA certificates (PEM) TLS and HTTPS upstreams are checked against; `None`: the system's.
    pub tls_ca: Option<PathBuf>,
    /// Plain-UDP upstream sockets kept open at most, each on its own random port: a query's
    /// port is drawn from these (`udp::pool`). 0: a new socket per query.
    pub udp_ports: usize,
    /// `[[forward.zone]]`: domains with upstreams of their own; the longest match wins.
    pub zones: Vec<ForwardZone>,
    /// `[dnssec]`: validation of the answers, and whether an upstream's AD bit is believed.
    pub dnssec: DnssecConfig,
}

/// One `[[forward.zone]]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardZone {
    /// The domain, lower-cased: it and every name under it go to this zone's upstreams.
    pub name: LowerName,
    pub upstreams: Vec<UpstreamSpec>,
    pub policy: Policy,
    pub timeout: Duration,
    pub max_concurrent: usize,
    pub health_check: Duration,
}

impl ForwardConfig {
    /// Whether any upstream is reached over TLS or HTTPS (and so needs the CA roots).
    pub fn needs_tls(&self) -> bool {
        self.upstreams
            .iter()
            .chain(self.zones.iter().flat_map(|zone| zone.upstreams.iter()))
            .any(|spec| {
                matches!(
                    spec.transport,
                    UpstreamTransport::Tls { .. } | UpstreamTransport::Https { .. }
                )
            })
    }
}

/// Which upstream is tried first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Always the first; the next only when one fails.
    Sequential,
    /// A random order for every query.
    Random,
    /// Each query starts one further along the list.
    RoundRobin,
}

/// Where the upstreams came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamsFrom {
    Config,
    ResolvConf,
    /// Neither the config nor resolv.conf named one.
    Fallback,
}

/// The metrics of the `dns` source: its cache and its upstreams.
pub const METRICS: &[MetricDoc] = &[
    ("cache_entries", "gauge", "Answers in the forwarding cache."),
    ("cache_hits_total", "counter", "Forwarded questions answered from the cache, by the fast path included."),
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
    ("upstream_request_duration_seconds", "histogram", "Round-trip times of upstream queries that got a reply, by upstream and the reply's RCODE (health checks not included)."),
    ("upstream_healthy", "gauge", "1 if the upstream is up, 0 if marked down or looping."),
    ("upstream_looping", "gauge", "1 if a loop probe sent to the upstream came back to this server."),
    ("upstream_unmatched_replies_total", "counter", "UDP datagrams from the upstream whose ID matched no query in flight (late, or a forgery that missed): dropped."),
    ("upstream_mismatched_replies_total", "counter", "UDP datagrams with the ID of a query in flight that were not its reply (another question, or garbage): dropped."),
    ("upstream_connections_opened_total", "counter", "Connections opened to the upstream over TCP, TLS or HTTPS (for a plain upstream, the TCP retries of truncated replies)."),
    ("upstream_connections_reused_total", "counter", "Queries sent on a connection to the upstream already open."),
    ("upstream_connections_failed_total", "counter", "Connections to the upstream that could not be opened or broke."),
    ("upstream_udp_sockets", "gauge", "Plain-UDP upstream sockets open in the pool (at most forward.udp_ports), each on a port drawn at random."),
    ("upstream_udp_sockets_opened_total", "counter", "Plain-UDP upstream sockets opened into the pool, each on a new random port (replacements included)."),
    ("upstream_udp_socket_reuses_total", "counter", "Plain-UDP upstream queries sent on a pooled socket already open."),
    ("upstream_udp_one_off_sockets_total", "counter", "Plain-UDP upstream queries sent on a socket of their own, closed after it (forward.udp_ports = 0, or every slot drawn was in use)."),
    ("failure_cache_hits_total", "counter", "Questions answered SERVFAIL from the failure cache because resolving them failed moments ago (RFC 9520)."),
    ("dnssec_answers_total", "counter", "Validated answers by result: secure, insecure, bogus (SERVFAIL), indeterminate (SERVFAIL)."),
    ("dnssec_signatures_total", "counter", "RRSIGs handed to the validator; each is checked against at most 4 keys (KeyTrap bound)."),
    ("dnssec_limited_total", "counter", "Questions whose validation stopped at a bound on signatures, keys or fetches (KeyTrap, CVE-2023-50387)."),
];

/// The `dns` source in the registry.
pub struct DnsSetup;

impl SourceSetup for DnsSetup {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["forward", "cache", "dnssec"]
    }

    fn metrics(&self) -> &'static [MetricDoc] {
        METRICS
    }

    fn coredns_metrics(&self) -> &'static [MetricDoc] {
        super::metrics::COREDNS_METRICS
    }

    fn configure(&self, tables: &Tables<'_>) -> Result<Arc<dyn SourceConfig>, ConfigError> {
        let forward: ForwardTable = tables.read_or_default("forward")?;
        let cache: CacheTable = tables.read_or_default("cache")?;
        let timeout = tables.bounded(
            forward.timeout,
            Duration::from_secs(2),
            MAX_FORWARD_TIMEOUT,
            "forward.timeout",
        )?;
        let (upstreams, upstreams_from) = match forward.upstreams {
            Some(list) if list.is_empty() => return Err(tables.invalid(
                "forward.upstreams",
                "is empty: list at least one upstream, or remove the key to use /etc/resolv.conf",
            )),
            Some(list) => (list, UpstreamsFrom::Config),
            None => default_upstreams(tables.listen()),
        };
        check_not_self(tables, "forward.upstreams", &upstreams)?;
        let max_concurrent = forward.max_concurrent.unwrap_or(1000);
        check_concurrency(tables, "forward.max_concurrent", max_concurrent)?;
        let udp_ports = forward.udp_ports.unwrap_or(super::udp::pool::DEFAULT_PORTS);
        if udp_ports > usize::from(u16::MAX) {
            return Err(tables.invalid(
                "forward.udp_ports",
                "must be at most 65535 (0: a new socket for every upstream query)",
            ));
        }
        let policy = forward.policy.unwrap_or(Policy::Sequential);
        let health_check = tables.bounded(
            forward.health_check,
            Duration::from_millis(500),
            Duration::from_secs(3600),
            "forward.health_check",
        )?;
        let mut zones: Vec<ForwardZone> = Vec::new();
        for (index, zone) in forward.zone.unwrap_or_default().into_iter().enumerate() {
            let key = |name: &str| format!("forward.zone[{index}].{name}");
            let name = LowerName::new(&zone.name.0);
            if zones.iter().any(|other| other.name == name) {
                return Err(tables.invalid(&key("name"), format!("{name} is listed twice")));
            }
            if zone.upstreams.is_empty() {
                return Err(
                    tables.invalid(&key("upstreams"), "is empty: list at least one upstream")
                );
            }
            check_not_self(tables, &key("upstreams"), &zone.upstreams)?;
            let max_concurrent = zone.max_concurrent.unwrap_or(max_concurrent);
            check_concurrency(tables, &key("max_concurrent"), max_concurrent)?;
            zones.push(ForwardZone {
                name,
                upstreams: zone.upstreams,
                policy: zone.policy.unwrap_or(policy),
                timeout: match zone.timeout {
                    None => timeout,
                    value => {
                        tables.bounded(value, timeout, MAX_FORWARD_TIMEOUT, &key("timeout"))?
                    }
                },
                max_concurrent,
                health_check: match zone.health_check {
                    None => health_check,
                    value => tables.bounded(
                        value,
                        health_check,
                        Duration::from_secs(3600),
                        &key("health_check"),
                    )?,
                },
            });
        }
        let defaults = CacheConfig::default();
        let duration =
            |value: Option<HumanDuration>, default: Duration| value.map_or(default, |v| v.0);
        let cache = CacheConfig {
            capacity: cache.capacity.unwrap_or(defaults.capacity),
            max_bytes: cache.max_bytes.unwrap_or(defaults.max_bytes),
            min_ttl: duration(cache.min_ttl, defaults.min_ttl),
            max_ttl: duration(cache.max_ttl, defaults.max_ttl),
            negative_max_ttl: duration(cache.negative_max_ttl, defaults.negative_max_ttl),
            serve_stale: duration(cache.serve_stale, defaults.serve_stale),
            stale_recheck: duration(cache.stale_recheck, defaults.stale_recheck),
            prefetch: cache.prefetch.unwrap_or(defaults.prefetch),
        };
        if cache.stale_recheck > MAX_STALE_RECHECK {
            return Err(tables.invalid(
                "cache.stale_recheck",
                "must be at most 1h: past that, an upstream that came back would go unasked for too long",
            ));
        }
        for (key, value) in [
            ("cache.min_ttl", cache.min_ttl),
            ("cache.max_ttl", cache.max_ttl),
            ("cache.negative_max_ttl", cache.negative_max_ttl),
        ] {
            if value.as_secs() > u64::from(MAX_TTL) {
                return Err(
                    tables.invalid(key, format!("must be at most {MAX_TTL}s (RFC 2181 §8)"))
                );
            }
        }
        if cache.capacity > 0 && cache.max_bytes < 64 << 10 {
            return Err(tables.invalid(
                "cache.max_bytes",
                "must be at least 65536 (set cache.capacity = 0 to turn the cache off)",
            ));
        }
        if cache.min_ttl > cache.max_ttl {
            return Err(tables.invalid("cache.min_ttl", "is above cache.max_ttl"));
        }
        let config = ForwardConfig {
            upstreams,
            upstreams_from,
            policy,
            timeout,
            max_concurrent,
            health_check,
            cache,
            tls_ca: forward.tls_ca,
            udp_ports,
            zones,
            dnssec: DnssecConfig::read(tables)?,
        };
        if config.needs_tls() {
            // Read the roots now, so a bad tls_ca is an error of the file, with its key.
            if let Err(reason) = super::stream::tls_config(config.tls_ca.as_deref()) {
                return Err(tables.invalid("forward.tls_ca", reason));
            }
        }
        Ok(Arc::new(config))
    }
}

/// An upstream that is Hearth's own listen address would loop.
fn check_not_self(
    tables: &Tables<'_>,
    key: &str,
    upstreams: &[UpstreamSpec],
) -> Result<(), ConfigError> {
    for upstream in upstreams {
        if tables
            .listen()
            .iter()
            .any(|listen| is_same_socket(*listen, upstream.address))
        {
            return Err(tables.invalid(
                key,
                format!("{upstream} is Hearth's own listen address: forwarding to it would loop"),
            ));
        }
    }
    Ok(())
}

fn check_concurrency(tables: &Tables<'_>, key: &str, value: usize) -> Result<(), ConfigError> {
    if (1..=MAX_CONCURRENT_UPSTREAM).contains(&value) {
        Ok(())
    } else {
        Err(tables.invalid(
            key,
            format!("must be between 1 and {MAX_CONCURRENT_UPSTREAM}"),
        ))
    }
}

/// Whether a packet sent to `upstream` would arrive at a socket bound to `listen`. An IPv6
/// socket is IPv6-only (`server::udp::bind`), so `[::]` never receives what is sent to
/// 127.0.0.1. (A wildcard listener also receives what is sent to the host's own interface
/// addresses; that loop is not caught here.)
fn is_same_socket(listen: SocketAddr, upstream: SocketAddr) -> bool {
    listen.port() == upstream.port()
        && listen.is_ipv4() == upstream.is_ipv4()
        && (listen.ip() == upstream.ip()
            || (listen.ip().is_unspecified() && upstream.ip().is_loopback()))
}

/// The nameservers of /etc/resolv.conf, less any that are Hearth itself (a host whose
/// resolv.conf already points at Hearth must not forward to itself); 8.8.8.8 when none is left.
fn default_upstreams(listen: &[SocketAddr]) -> (Vec<UpstreamSpec>, UpstreamsFrom) {
    let from_resolv_conf: Vec<SocketAddr> = match hickory_resolver::system_conf::read_system_conf()
    {
        Ok((config, _)) => config
            .name_servers()
            .iter()
            .map(|server| SocketAddr::new(server.ip, 53))
            .filter(|upstream| {
                let is_self = listen.iter().any(|l| is_same_socket(*l, *upstream));
                if is_self {
                    tracing::warn!(%upstream, "a nameserver of /etc/resolv.conf may be Hearth itself; not used as an upstream (set forward.upstreams to use it)");
                }
                !is_self
            })
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read /etc/resolv.conf for default upstreams");
            Vec::new()
        }
    };
    if from_resolv_conf.is_empty() {
        (
            vec![UpstreamSpec::udp(SocketAddr::from((
                Ipv4Addr::new(8, 8, 8, 8),
                53,
            )))],
            UpstreamsFrom::Fallback,
        )
    } else {
        (
            from_resolv_conf
                .into_iter()
                .map(UpstreamSpec::udp)
                .collect(),
            UpstreamsFrom::ResolvConf,
        )
    }
}

impl SourceConfig for ForwardConfig {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn answer_memory(&self) -> u64 {
        if self.cache.capacity == 0 {
            0
        } else {
            self.cache.max_bytes
        }
    }

    fn build(
        &self,
        context: &BuildContext,
        _previous: Option<&Arc<dyn Plugin>>,
    ) -> Arc<dyn Plugin> {
        Arc::new(Forwarder::new(self).with_metrics(Arc::clone(&context.metrics)))
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let list = |upstreams: &[UpstreamSpec]| {
            upstreams
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut described = vec![
            ("upstreams", list(&self.upstreams)),
            ("upstreams_from", format!("{:?}", self.upstreams_from)),
        ];
        for zone in &self.zones {
            described.push((
                "zone",
                format!("{} -> {}", zone.name, list(&zone.upstreams)),
            ));
        }
        described
    }
}

impl Plugin for Forwarder {
    fn encode_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut out = Encoder::new(encoder, METRICS);
        out.gauge("cache_entries", self.cache_len() as i64)?;
        let cache = self.cache_stats();
        let read = |pick: fn(&crate::cache::CacheStats) -> &std::sync::atomic::AtomicU64| {
            cache.map_or(0, |c| load(pick(c)))
        };
        out.counter("cache_hits_total", self.cache_hits())?;
        out.counter("cache_misses_total", read(|c| &c.misses))?;
        out.counter("cache_evictions_total", read(|c| &c.evictions))?;
        out.counter("cache_inserts_total", read(|c| &c.inserts))?;
        out.counter("cache_stale_answers_total", read(|c| &c.stale_answers))?;
        out.counter("cache_prefetches_total", read(|c| &c.prefetches))?;
        out.counter("cache_coalesced_total", read(|c| &c.coalesced))?;

        let upstreams = self.upstream_stats();
        let per_upstream = |value: &dyn Fn(&super::UpstreamStats) -> Value| {
            upstreams
                .iter()
                .map(|(address, stats)| (address.to_string(), value(stats)))
                .collect::<Vec<_>>()
                .into_iter()
        };
        out.labelled(
            "upstream_requests_total",
            "upstream",
            per_upstream(&|s| Value::Integer(load(&s.requests))),
        )?;
        out.labelled(
            "upstream_failures_total",
            "upstream",
            per_upstream(&|s| Value::Integer(load(&s.failures))),
        )?;
        out.labelled(
            "upstream_replies_total",
            "upstream",
            per_upstream(&|s| Value::Integer(load(&s.replies))),
        )?;
        out.labelled(
            "upstream_latency_seconds_total",
            "upstream",
            per_upstream(&|s| Value::Float(load(&s.latency_micros) as f64 / 1e6)),
        )?;
        crate::metrics::histogram::encode(
            out.descriptors(),
            "upstream_request_duration",
            crate::metrics::help_of(METRICS, "upstream_request_duration_seconds"),
            crate::metrics::histogram::Bounds::Hearth,
            upstreams.iter().flat_map(|(address, stats)| {
                stats
                    .durations
                    .snapshots()
                    .into_iter()
                    .map(move |(rcode, snapshot)| {
                        (
                            [("upstream", address.clone()), ("rcode", rcode.to_owned())],
                            snapshot,
                        )
                    })
            }),
        )?;
        out.labelled(
            "upstream_healthy",
            "upstream",
            per_upstream(&|s| Value::Integer(u64::from(!s.is_down() && !s.is_looping()))),
        )?;
        out.labelled(
            "upstream_looping",
            "upstream",
            per_upstream(&|s| Value::Integer(u64::from(s.is_looping()))),
        )?;
        out.labelled(
            "upstream_unmatched_replies_total",
            "upstream",
            per_upstream(&|s| Value::Integer(load(&s.unmatched_replies))),
        )?;
        out.labelled(
            "upstream_mismatched_replies_total",
            "upstream",
            per_upstream(&|s| Value::Integer(load(&s.mismatched_replies))),
        )?;
        let connections = self.connection_stats();
        let per_connection = |value: fn(&super::ConnectionStats) -> u64| {
            connections
                .iter()
                .map(|(label, stats)| (label.clone(), Value::Integer(value(stats))))
                .collect::<Vec<_>>()
                .into_iter()
        };
        out.labelled(
            "upstream_connections_opened_total",
            "upstream",
            per_connection(|c| load(&c.opened)),
        )?;
        out.labelled(
            "upstream_connections_reused_total",
            "upstream",
            per_connection(|c| load(&c.reused)),
        )?;
        out.labelled(
            "upstream_connections_failed_total",
            "upstream",
            per_connection(|c| load(&c.failed)),
        )?;
        let udp_sockets = self.udp_sockets();
        out.gauge("upstream_udp_sockets", udp_sockets.open() as i64)?;
        out.counter(
            "upstream_udp_sockets_opened_total",
            load(&udp_sockets.stats.opened),
        )?;
        out.counter(
            "upstream_udp_socket_reuses_total",
            load(&udp_sockets.stats.reused),
        )?;
        out.counter(
            "upstream_udp_one_off_sockets_total",
            load(&udp_sockets.stats.one_off),
        )?;
        out.counter("failure_cache_hits_total", self.failure_cache_hits())?;
        let dnssec = self.dnssec_stats();
        let read = |pick: fn(&super::DnssecStats) -> &std::sync::atomic::AtomicU64| {
            dnssec.map_or(0, |s| load(pick(s)))
        };
        out.labelled(
            "dnssec_answers_total",
            "result",
            [
                ("secure".to_owned(), Value::Integer(read(|s| &s.secure))),
                ("insecure".to_owned(), Value::Integer(read(|s| &s.insecure))),
                ("bogus".to_owned(), Value::Integer(read(|s| &s.bogus))),
                (
                    "indeterminate".to_owned(),
                    Value::Integer(read(|s| &s.indeterminate)),
                ),
            ]
            .into_iter(),
        )?;
        out.counter("dnssec_signatures_total", read(|s| &s.signatures))?;
        out.counter("dnssec_limited_total", read(|s| &s.limited))
    }

    fn encode_coredns_metrics(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        labels: &crate::metrics::coredns::CorednsLabels,
    ) -> std::fmt::Result {
        super::metrics::encode_coredns(self, encoder, labels)
    }

    /// The loop probe, once the listeners are up so that a probe that comes back can be seen;
    /// only when the order uses this source.
    fn start(self: Arc<Self>, background: &Background) {
        if background.in_order {
            background.spawn(async move { self.check_for_loops().await });
        }
    }
}
