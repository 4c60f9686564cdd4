//! `admin.metrics = "coredns"`: the per-query metrics under the names and labels of CoreDNS's
//! `prometheus` plugin, so that the CoreDNS mixin's alerts and dashboards, kube-prometheus's
//! rules, Datadog, Netdata and the OpenTelemetry collector read Hearth unchanged.
//!
//! The same counters as Hearth's own names (the shards of [`Metrics`]), only summed and
//! labelled as CoreDNS does:
//! - `server` is the listener as CoreDNS writes it (`dns://:53`), `zone` the server block's
//!   zone (Hearth has one, the root, `.`), `view` empty (Hearth has no views);
//! - `family` is the address family number (`1` IPv4, `2` IPv6), as CoreDNS's `request.Family`;
//! - `type` is one of the types CoreDNS counts by name, else `other`;
//! - the duration histograms use CoreDNS's buckets (`plugin.TimeBuckets`).
//!
//! Each part of the server declares its CoreDNS names beside its Hearth names: [`NAMES`] here,
//! the cache and forward names in the forwarding source.

use std::net::SocketAddr;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::histogram::{self, Bounds, Snapshot};
use super::{
    help, MetricDoc, Metrics, FAMILIES, PROTOCOLS, QUERY_TYPES, RCODES, RCODE_SLOTS, TYPE_SLOTS,
};

/// The types CoreDNS's `plugin/metrics/vars` counts by name; any other is `other`.
const COREDNS_TYPES: [&str; 18] = [
    "A", "AAAA", "MX", "SOA", "CNAME", "PTR", "TXT", "NS", "SRV", "DS", "DNSKEY", "RRSIG", "NSEC",
    "NSEC3", "HTTPS", "IXFR", "AXFR", "ANY",
];

/// The per-query and process metrics under CoreDNS's names (without the `coredns_` prefix).
pub const NAMES: &[MetricDoc] = &[
    (
        "build_info",
        "gauge",
        "Always 1; labelled with the version of Hearth answering under CoreDNS's names.",
    ),
    (
        "panics_total",
        "counter",
        "Panics counted by CoreDNS's recover handler; Hearth has none to count, always 0.",
    ),
    (
        "dns_requests_total",
        "counter",
        "Queries received, by server, zone, view, protocol, address family and query type.",
    ),
    (
        "dns_responses_total",
        "counter",
        "Replies sent, by server, zone, view, RCODE and plugin.",
    ),
    (
        "dns_request_duration_seconds",
        "histogram",
        "Time from receiving a query to its reply being ready, by server, zone, view and query type.",
    ),
    (
        "reload_failed_total",
        "counter",
        "Configuration reloads that failed (the previous configuration kept serving).",
    ),
];

/// The labels every CoreDNS metric of a server block carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorednsLabels {
    /// `dns://:53` for a listener on every address, `dns://127.0.0.1:53` otherwise.
    pub server: String,
    /// The server block's zone: Hearth answers for everything in one block, `.`.
    pub zone: &'static str,
    /// CoreDNS's `view` plugin; Hearth has none, so always empty.
    pub view: &'static str,
}

impl CorednsLabels {
    /// The labels of a server listening on `listen`. CoreDNS has one server per listener;
    /// Hearth's counters are not kept per listener, so the first address names them all.
    pub fn new(listen: &[SocketAddr]) -> Self {
        let server = match listen.first() {
            Some(address) if address.ip().is_unspecified() => format!("dns://:{}", address.port()),
            Some(address) => format!("dns://{address}"),
            None => "dns://:53".to_owned(),
        };
        Self {
            server,
            zone: ".",
            view: "",
        }
    }
}

/// A counter family with any labels, named as declared in `docs` (`_total` included).
pub fn counters<'l>(
    encoder: &mut DescriptorEncoder<'_>,
    docs: &[MetricDoc],
    name: &str,
    samples: impl IntoIterator<Item = (Vec<(&'l str, String)>, u64)>,
) -> std::fmt::Result {
    let base = name.trim_end_matches("_total");
    let mut family =
        encoder.encode_descriptor(base, help(docs, name), None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family with any labels.
pub fn gauges<'l>(
    encoder: &mut DescriptorEncoder<'_>,
    docs: &[MetricDoc],
    name: &str,
    samples: impl IntoIterator<Item = (Vec<(&'l str, String)>, i64)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help(docs, name), None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram family in CoreDNS's buckets; `name` as declared (`_seconds` included).
pub fn histograms<'l>(
    encoder: &mut DescriptorEncoder<'_>,
    docs: &[MetricDoc],
    name: &str,
    series: impl IntoIterator<Item = (Vec<(&'l str, String)>, Snapshot)>,
) -> std::fmt::Result {
    let base = name.trim_end_matches("_seconds");
    histogram::encode(encoder, base, help(docs, name), Bounds::Coredns, series)
}

/// CoreDNS's name for one of Hearth's query-type slots.
fn coredns_type(slot: usize) -> &'static str {
    QUERY_TYPES
        .get(slot)
        .map(|(_, name)| *name)
        .filter(|name| COREDNS_TYPES.contains(name))
        .unwrap_or("other")
}

impl Metrics {
    /// Encodes [`NAMES`] (the caller's registry adds the `coredns_` prefix).
    pub fn encode_coredns(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        labels: &CorednsLabels,
    ) -> std::fmt::Result {
        let block = |extra: Vec<(&'static str, String)>| {
            let mut all = vec![
                ("server", labels.server.clone()),
                ("zone", labels.zone.to_owned()),
                ("view", labels.view.to_owned()),
            ];
            all.extend(extra);
            all
        };
        gauges(
            encoder,
            NAMES,
            "build_info",
            [(
                vec![
                    ("version", env!("CARGO_PKG_VERSION").to_owned()),
                    ("revision", String::new()),
                    ("goversion", String::new()),
                ],
                1,
            )],
        )?;
        counters(encoder, NAMES, "panics_total", [(Vec::new(), 0)])?;

        // Hearth's types that CoreDNS lumps into `other` are added into it.
        let mut requests = Vec::new();
        for (p, protocol) in PROTOCOLS.iter().enumerate() {
            for (f, family) in FAMILIES.iter().enumerate() {
                let mut by_type: Vec<(&'static str, u64)> = Vec::new();
                for t in 0..TYPE_SLOTS {
                    let value = self.sum(|s| &s.requests[p][f][t]);
                    if value == 0 {
                        continue;
                    }
                    let name = coredns_type(t);
                    match by_type.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, total)) => *total += value,
                        None => by_type.push((name, value)),
                    }
                }
                let family_number = if *family == "ipv6" { "2" } else { "1" };
                for (query_type, value) in by_type {
                    requests.push((
                        block(vec![
                            ("proto", (*protocol).to_owned()),
                            ("family", family_number.to_owned()),
                            ("type", query_type.to_owned()),
                        ]),
                        value,
                    ));
                }
            }
        }
        counters(encoder, NAMES, "dns_requests_total", requests)?;

        // `plugin` names the plugin that wrote the reply; Hearth does not record which
        // source answered per reply, so it is empty, as CoreDNS leaves it when none did.
        let responses = (0..RCODE_SLOTS).filter_map(|slot| {
            let value = self.sum(|s| &s.responses[slot]);
            let rcode = RCODES.get(slot).map_or("other", |(_, name)| name);
            (value > 0).then(|| {
                (
                    block(vec![("rcode", rcode.to_owned()), ("plugin", String::new())]),
                    value,
                )
            })
        });
        counters(encoder, NAMES, "dns_responses_total", responses)?;

        let mut durations: Vec<(&'static str, Snapshot)> = Vec::new();
        for t in 0..TYPE_SLOTS {
            let mut snapshot = Snapshot::default();
            for p in 0..PROTOCOLS.len() {
                snapshot.add(&self.durations(p, t));
            }
            if snapshot.count() == 0 {
                continue;
            }
            let name = coredns_type(t);
            match durations.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => total.add(&snapshot),
                None => durations.push((name, snapshot)),
            }
        }
        histograms(
            encoder,
            NAMES,
            "dns_request_duration_seconds",
            durations.into_iter().map(|(query_type, snapshot)| {
                (block(vec![("type", query_type.to_owned())]), snapshot)
            }),
        )?;
        counters(
            encoder,
            NAMES,
            "reload_failed_total",
            [(Vec::new(), super::load(&self.config_reloads.failures))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_label_is_written_as_coredns_writes_it() {
        let labels = CorednsLabels::new(&["0.0.0.0:53".parse().unwrap()]);
        assert_eq!(labels.server, "dns://:53");
        let labels = CorednsLabels::new(&["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(labels.server, "dns://127.0.0.1:5353");
        let labels = CorednsLabels::new(&["[::]:53".parse().unwrap()]);
        assert_eq!(labels.server, "dns://:53");
        assert_eq!((labels.zone, labels.view), (".", ""));
    }

    #[test]
    fn types_coredns_does_not_name_are_other() {
        let slot = |code: u16| {
            QUERY_TYPES
                .iter()
                .position(|(c, _)| *c == code)
                .unwrap_or(QUERY_TYPES.len())
        };
        assert_eq!(coredns_type(slot(1)), "A");
        assert_eq!(coredns_type(slot(65)), "HTTPS");
        assert_eq!(coredns_type(slot(64)), "other", "SVCB");
        assert_eq!(coredns_type(slot(257)), "other", "CAA");
        assert_eq!(coredns_type(QUERY_TYPES.len()), "other");
    }
}
