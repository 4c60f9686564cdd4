//! One scrape of `/metrics`: every part of the server encodes its own metrics through
//! [`Status`], and this adds `ready`, the names' prefix and the exposition format.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::text_format::{self, Format};
use super::Status;
use crate::config::MetricNames;
use crate::metrics::{Encoder, MetricDoc};

/// The metrics this module exports itself.
pub const METRICS: &[MetricDoc] = &[("ready", "gauge", "1 when /ready answers 200.")];

/// The prefix of every name under CoreDNS's names, whatever `admin.namespace` says: a
/// dashboard written for CoreDNS asks for `coredns_*`.
const COREDNS_NAMESPACE: &str = "coredns";

/// The OpenMetrics text of every metric under Hearth's names, under `namespace`.
pub fn render(state: &Arc<dyn Status>, namespace: &str) -> String {
    render_as(state, namespace, MetricNames::Hearth, Format::OpenMetrics)
}

/// The text of every metric, with `names`' names, in `format`.
pub fn render_as(
    state: &Arc<dyn Status>,
    namespace: &str,
    names: MetricNames,
    format: Format,
) -> String {
    let prefix = match names {
        MetricNames::Hearth => namespace,
        MetricNames::Coredns => COREDNS_NAMESPACE,
    };
    let mut registry = Registry::with_prefix(prefix);
    registry.register_collector(Box::new(Collected {
        state: Arc::clone(state),
        names,
    }));
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        // Writing to a String cannot fail; keep the scrape well-formed if it ever does.
        text.clear();
        let _ = writeln!(text, "# EOF");
    }
    match format {
        Format::OpenMetrics => text,
        Format::Prometheus => text_format::to_prometheus(&text),
    }
}

/// The server's state as a prometheus-client collector: read at each scrape, nothing kept.
struct Collected {
    state: Arc<dyn Status>,
    names: MetricNames,
}

impl std::fmt::Debug for Collected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collected")
    }
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        match self.names {
            MetricNames::Hearth => {
                self.state.encode_metrics(&mut encoder)?;
                let ready = self.state.readiness().is_ok();
                Encoder::new(&mut encoder, METRICS).gauge("ready", i64::from(ready))
            }
            // CoreDNS has no readiness metric (its `ready` plugin is an HTTP endpoint only).
            MetricNames::Coredns => self.state.encode_coredns_metrics(&mut encoder),
        }
    }
}
