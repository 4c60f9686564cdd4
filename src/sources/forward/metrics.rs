//! The forwarding source's metrics under CoreDNS's names (`admin.metrics = "coredns"`): its
//! cache as CoreDNS's `cache` plugin counts, its upstreams as `forward` (and, since CoreDNS
//! 1.11, `plugin/pkg/proxy`) count. Hearth's own names are declared in `setup` ([`METRICS`]).
//!
//! Meanings, where Hearth's counters are not exactly CoreDNS's:
//! - cache hits include the fast path's reuses of cached answers (they are hits the cache
//!   never saw), so `hits / (hits + misses)` is the real ratio;
//! - Hearth's cache does not tell positive answers from negative ones: every entry and hit
//!   is `type="success"`, and `type="denial"` is always 0 (the sums over `type` are exact);
//! - `healthcheck_failures_total` counts Hearth's health checks (`. IN NS` to an upstream
//!   marked down, every `health_check`) that got no reply, as CoreDNS's count its own;
//! - `healthcheck_broken_total` counts queries that found every upstream marked down, when
//!   both servers fall back to trying them all;
//! - `forward_requests_total` counts attempts (a query tries the next upstream after a
//!   failure, each attempt counted against its upstream), `forward_responses_total` and the
//!   duration histograms the attempts that got a reply, by its RCODE.
//!
//! [`METRICS`]: super::setup::METRICS

use prometheus_client::encoding::DescriptorEncoder;

use super::{Forwarder, UpstreamStats};
use crate::metrics::coredns::{counters, gauges, histograms, CorednsLabels};
use crate::metrics::{load, MetricDoc};

/// The names, without the `coredns_` prefix, with their type and help text.
#[rustfmt::skip]
pub const COREDNS_METRICS: &[MetricDoc] = &[
    ("cache_entries", "gauge", "Answers in the cache, by type (success; denial is not told apart and is 0)."),
    ("cache_hits_total", "counter", "Questions answered from the cache (the fast path's reuses included), by type."),
    ("cache_misses_total", "counter", "Questions not answered from the cache."),
    ("cache_requests_total", "counter", "Questions looked up in the cache: hits and misses."),
    ("cache_prefetch_total", "counter", "Popular entries refreshed before they expired."),
    ("cache_served_stale_total", "counter", "Expired answers served because every upstream failed (RFC 8767)."),
    ("forward_requests_total", "counter", "Queries sent to each upstream."),
    ("forward_responses_total", "counter", "Replies received from each upstream, by RCODE."),
    ("forward_request_duration_seconds", "histogram", "Round-trip times of upstream queries that got a reply, by upstream and RCODE."),
    ("forward_healthcheck_failures_total", "counter", "Health checks of an upstream marked down that got no reply."),
    ("forward_healthcheck_broken_total", "counter", "Queries that found every upstream marked down, and so tried them all."),
    ("forward_max_concurrent_rejects_total", "counter", "Queries refused because max_concurrent queries were already waiting on upstreams."),
    ("proxy_request_duration_seconds", "histogram", "Round-trip times of upstream queries that got a reply, by proxy, upstream and RCODE (CoreDNS 1.11 and later)."),
    ("proxy_healthcheck_failures_total", "counter", "Health checks of an upstream marked down that got no reply, by proxy (CoreDNS 1.11 and later)."),
];

/// CoreDNS's `proxy_name` of the forward plugin's upstreams.
const PROXY_NAME: &str = "forward";

/// Encodes [`COREDNS_METRICS`].
pub fn encode_coredns(
    forwarder: &Forwarder,
    encoder: &mut DescriptorEncoder<'_>,
    labels: &CorednsLabels,
) -> std::fmt::Result {
    let docs = COREDNS_METRICS;
    if let Some(cache) = forwarder.cache_stats() {
        // The cache plugin's labels: `zones` is its zones, all of them for Hearth's one cache.
        let block = |extra: Option<(&'static str, &str)>| {
            let mut all = vec![("server", labels.server.clone())];
            all.extend(extra.map(|(key, value)| (key, value.to_owned())));
            all.push(("zones", labels.zone.to_owned()));
            all.push(("view", labels.view.to_owned()));
            all
        };
        let entries = i64::try_from(forwarder.cache_len()).unwrap_or(i64::MAX);
        gauges(
            encoder,
            docs,
            "cache_entries",
            [
                (block(Some(("type", "success"))), entries),
                (block(Some(("type", "denial"))), 0),
            ],
        )?;
        let hits = forwarder.cache_hits();
        counters(
            encoder,
            docs,
            "cache_hits_total",
            [
                (block(Some(("type", "success"))), hits),
                (block(Some(("type", "denial"))), 0),
            ],
        )?;
        let misses = load(&cache.misses);
        counters(encoder, docs, "cache_misses_total", [(block(None), misses)])?;
        counters(
            encoder,
            docs,
            "cache_requests_total",
            [(block(None), hits + misses)],
        )?;
        counters(
            encoder,
            docs,
            "cache_prefetch_total",
            [(block(None), load(&cache.prefetches))],
        )?;
        counters(
            encoder,
            docs,
            "cache_served_stale_total",
            [(block(None), load(&cache.stale_answers))],
        )?;
    }

    let upstreams = forwarder.upstreams_by_address();
    let per_upstream = |value: fn(&UpstreamStats) -> u64| {
        upstreams
            .iter()
            .map(move |(to, stats)| (vec![("to", to.clone())], value(stats)))
            .collect::<Vec<_>>()
    };
    counters(
        encoder,
        docs,
        "forward_requests_total",
        per_upstream(|s| load(&s.requests)),
    )?;
    let by_rcode: Vec<_> = upstreams
        .iter()
        .flat_map(|(to, stats)| {
            stats
                .durations
                .snapshots()
                .into_iter()
                .map(move |(rcode, snapshot)| (to.clone(), rcode, snapshot))
        })
        .collect();
    counters(
        encoder,
        docs,
        "forward_responses_total",
        by_rcode.iter().map(|(to, rcode, snapshot)| {
            (
                vec![("to", to.clone()), ("rcode", (*rcode).to_owned())],
                snapshot.count(),
            )
        }),
    )?;
    histograms(
        encoder,
        docs,
        "forward_request_duration_seconds",
        by_rcode.iter().map(|(to, rcode, snapshot)| {
            (
                vec![("to", to.clone()), ("rcode", (*rcode).to_owned())],
                *snapshot,
            )
        }),
    )?;
    counters(
        encoder,
        docs,
        "forward_healthcheck_failures_total",
        per_upstream(|s| load(&s.healthcheck_failures)),
    )?;
    counters(
        encoder,
        docs,
        "forward_healthcheck_broken_total",
        [(Vec::new(), forwarder.all_down())],
    )?;
    counters(
        encoder,
        docs,
        "forward_max_concurrent_rejects_total",
        [(Vec::new(), forwarder.max_concurrent_rejects())],
    )?;
    histograms(
        encoder,
        docs,
        "proxy_request_duration_seconds",
        by_rcode.iter().map(|(to, rcode, snapshot)| {
            (
                vec![
                    ("proxy_name", PROXY_NAME.to_owned()),
                    ("to", to.clone()),
                    ("rcode", (*rcode).to_owned()),
                ],
                *snapshot,
            )
        }),
    )?;
    counters(
        encoder,
        docs,
        "proxy_healthcheck_failures_total",
        upstreams.iter().map(|(to, stats)| {
            (
                vec![("proxy_name", PROXY_NAME.to_owned()), ("to", to.clone())],
                load(&stats.healthcheck_failures),
            )
        }),
    )
}
