//! One scrape of `/metrics`: every part of the server encodes its own metrics through
//! [`Status::encode_metrics`], and this adds `ready` and the exposition format.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::Status;
use crate::metrics::{Encoder, MetricDoc};

/// The content type of what [`render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics this module exports itself.
pub const METRICS: &[MetricDoc] = &[("ready", "gauge", "1 when /ready answers 200.")];

/// The OpenMetrics text of every metric, under `namespace`.
pub fn render(state: &Arc<dyn Status>, namespace: &str) -> String {
    let mut registry = Registry::with_prefix(namespace);
    registry.register_collector(Box::new(Collected(Arc::clone(state))));
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        // Writing to a String cannot fail; keep the scrape well-formed if it ever does.
        text.clear();
        let _ = writeln!(text, "# EOF");
    }
    text
}

/// The server's state as a prometheus-client collector: read at each scrape, nothing kept.
struct Collected(Arc<dyn Status>);

impl std::fmt::Debug for Collected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collected")
    }
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        self.0.encode_metrics(&mut encoder)?;
        let ready = self.0.readiness().is_ok();
        Encoder::new(&mut encoder, METRICS).gauge("ready", i64::from(ready))
    }
}
