//! The `files` source's place in the server: its `[files]` table, its build, its metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;
use serde::Deserialize;

use super::Hosts;
use crate::config::file::{ConfigError, Tables};
use crate::config::values::HumanDuration;
use crate::metrics::{unix_seconds, Encoder, MetricDoc};
use crate::sources::setup::{Background, BuildContext, Plugin, SourceConfig, SourceSetup};

/// `[files]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesTable {
    paths: Option<Vec<PathBuf>>,
    ttl: Option<u32>,
    reload_interval: Option<HumanDuration>,
}

/// `[files]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesConfig {
    pub paths: Vec<PathBuf>,
    pub ttl: u32,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
}

/// The metrics of the `files` source.
pub const METRICS: &[MetricDoc] = &[
    ("hosts_entries", "gauge", "Names in the hosts files."),
    (
        "hosts_reloads_total",
        "counter",
        "Hosts file reads, by result.",
    ),
    (
        "hosts_last_reload_timestamp_seconds",
        "gauge",
        "When a hosts file was last read successfully (Unix time).",
    ),
];

/// The `files` source in the registry.
pub struct FilesSetup;

impl SourceSetup for FilesSetup {
    fn name(&self) -> &'static str {
        "files"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["files"]
    }

    fn metrics(&self) -> &'static [MetricDoc] {
        METRICS
    }

    fn configure(&self, tables: &Tables<'_>) -> Result<Arc<dyn SourceConfig>, ConfigError> {
        let table: FilesTable = tables.read_or_default("files")?;
        Ok(Arc::new(FilesConfig {
            paths: table
                .paths
                .unwrap_or_else(|| vec![PathBuf::from("/etc/hosts")]),
            ttl: tables.ttl(table.ttl, 3600, "files.ttl")?,
            reload_interval: tables.positive(
                table.reload_interval,
                Duration::from_secs(1),
                "files.reload_interval",
            )?,
        }))
    }
}

impl SourceConfig for FilesConfig {
    fn name(&self) -> &'static str {
        "files"
    }

    fn build(
        &self,
        context: &BuildContext,
        _previous: Option<&Arc<dyn Plugin>>,
    ) -> Arc<dyn Plugin> {
        let version = context.versions.register("files");
        Arc::new(Hosts::load(self, version))
    }

    fn check(&self) -> Vec<String> {
        self.paths
            .iter()
            .flat_map(|path| super::check_file(path))
            .collect()
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("hosts_files", format!("{:?}", self.paths))]
    }
}

impl Plugin for Hosts {
    fn encode_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut out = Encoder::new(encoder, METRICS);
        out.gauge("hosts_entries", self.table().len() as i64)?;
        out.reloads("hosts_reloads_total", self.reload_stats())?;
        out.gauge(
            "hosts_last_reload_timestamp_seconds",
            self.reload_stats().last_success().map_or(0.0, unix_seconds),
        )
    }

    fn start(self: Arc<Self>, background: &Background) {
        let interval = self.reload_interval;
        background.poll(&self, interval);
    }

    fn reread(&self) {
        Hosts::reread(self);
    }
}
