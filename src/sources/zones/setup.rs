//! The `zones` source's place in the server: its `[zones]` table (and `[kubernetes]`, the
//! cluster zone it serves), its build, its metrics, its readiness and its polls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;
use serde::Deserialize;

use super::cluster::Cluster;
use super::{ClusterHandle, ZoneVersions, Zones};
use crate::chain::shape::Autopath;
use crate::config::file::{ConfigError, Tables};
use crate::config::values::{DomainName, HumanDuration};
use crate::metrics::{Encoder, MetricDoc, ReloadStats};
use crate::sources::kubernetes::config::{self as kubernetes, KubernetesConfig, KubernetesFeed};
use crate::sources::setup::{Background, BuildContext, Plugin, SourceConfig, SourceSetup};

/// `[zones]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesTable {
    directory: Option<PathBuf>,
    fallthrough: Option<Vec<DomainName>>,
    reload_interval: Option<HumanDuration>,
}

/// `[zones]`, validated, with the cluster zone of `[kubernetes]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonesConfig {
    /// Every `*.zone` file in it is one zone; `None`: no zone files.
    pub directory: Option<PathBuf>,
    /// Zones whose NXDOMAIN is NOTFOUND, so the chain goes on (CoreDNS's `fallthrough`).
    pub fallthrough: Vec<hickory_proto::rr::Name>,
    /// How often zone files and manifests are checked for changes.
    pub reload_interval: Duration,
    /// `[kubernetes]`, when present.
    pub kubernetes: Option<KubernetesConfig>,
}

impl Default for ZonesConfig {
    /// No zones.
    fn default() -> Self {
        Self {
            directory: None,
            fallthrough: Vec::new(),
            reload_interval: Duration::from_secs(1),
            kubernetes: None,
        }
    }
}

/// The metrics of the `zones` source and its cluster zone.
pub const METRICS: &[MetricDoc] = &[
    ("zones_loaded", "gauge", "Zones served from zone files."),
    ("zones_reloads_total", "counter", "Zone directory loads, by result (failure: any file had errors)."),
    ("kubernetes_ready", "gauge", "1 once the cluster zone has loaded its objects."),
    ("kubernetes_reloads_total", "counter", "Cluster object loads (manifests or API), by result."),
    ("kubernetes_api_connected", "gauge", "1 while the Kubernetes API feeds the cluster zone; 0 before the first sync and while it is unreachable (the last state keeps serving)."),
    ("kubernetes_api_watch_errors_total", "counter", "Failed Kubernetes API lists and watches: refused or cut connections, ERROR events, expired watches (410 Gone)."),
    ("kubernetes_api_events_total", "counter", "Objects received from the Kubernetes API: listed, added, modified or deleted."),
    ("kubernetes_api_lists_total", "counter", "Complete lists of one kind from the Kubernetes API (at start, and after a watch expired)."),
    ("kubernetes_api_last_sync_timestamp_seconds", "gauge", "Up to when the cluster zone is known to match the API (Unix time); 0 before the first sync."),
];

/// The `zones` source in the registry.
pub struct ZonesSetup;

impl SourceSetup for ZonesSetup {
    fn name(&self) -> &'static str {
        "zones"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["zones", "kubernetes"]
    }

    fn metrics(&self) -> &'static [MetricDoc] {
        METRICS
    }

    fn configure(&self, tables: &Tables<'_>) -> Result<Arc<dyn SourceConfig>, ConfigError> {
        let table: ZonesTable = tables.read_or_default("zones")?;
        Ok(Arc::new(ZonesConfig {
            directory: table.directory,
            fallthrough: table
                .fallthrough
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.0)
                .collect(),
            reload_interval: tables.positive(
                table.reload_interval,
                Duration::from_secs(1),
                "zones.reload_interval",
            )?,
            kubernetes: kubernetes::configure(tables)?,
        }))
    }
}

impl SourceConfig for ZonesConfig {
    fn name(&self) -> &'static str {
        "zones"
    }

    /// A cluster zone whose `[kubernetes]` did not change is carried over from `previous`, with
    /// its live watch, so a reload of the zone files does not re-list the cluster.
    fn build(&self, context: &BuildContext, previous: Option<&Arc<dyn Plugin>>) -> Arc<dyn Plugin> {
        let versions = ZoneVersions {
            origins: context.versions.register("zone origins"),
            data: context.versions.register("zone data"),
        };
        let carried = previous
            .and_then(|p| p.as_any().downcast_ref::<Zones>())
            .and_then(|zones| zones.cluster_handle())
            .filter(|handle| Some(handle.config()) == self.kubernetes.as_ref())
            .cloned();
        let cluster = carried.or_else(|| {
            self.kubernetes.as_ref().map(|kubernetes| {
                ClusterHandle::new(
                    Arc::new(Cluster::load(
                        kubernetes,
                        context.versions.register("cluster"),
                    )),
                    kubernetes.clone(),
                )
            })
        });
        Arc::new(Zones::load(self, cluster, versions))
    }

    /// The cluster domain, and the node's search domains from resolv.conf (in a pod with
    /// `dnsPolicy: Default`, the node's), outside the cluster domain.
    fn autopath(&self) -> Option<Autopath> {
        let kubernetes = self.kubernetes.as_ref().filter(|k| k.autopath)?;
        let search = match hickory_resolver::system_conf::read_system_conf() {
            Ok((resolver, _)) => resolver
                .search()
                .iter()
                .filter(|domain| !kubernetes.domain.zone_of(domain))
                .cloned()
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read resolv.conf: autopath walks the cluster's search domains only");
                Vec::new()
            }
        };
        Some(Autopath {
            domain: kubernetes.domain.clone(),
            search,
        })
    }

    fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(directory) = &self.directory {
            problems.extend(super::check_directory(directory));
        }
        if let Some(KubernetesFeed::Manifests(directory)) =
            self.kubernetes.as_ref().map(|k| &k.feed)
        {
            match crate::sources::kubernetes::objects::read_dir(directory) {
                Ok((_, found)) => problems.extend(found.iter().map(ToString::to_string)),
                Err(problem) => problems.push(problem.to_string()),
            }
        }
        problems
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("zones_directory", format!("{:?}", self.directory))];
        if let Some(kubernetes) = &self.kubernetes {
            facts.push(("cluster_domain", kubernetes.domain.to_string()));
        }
        facts
    }
}

impl Plugin for Zones {
    /// Ready once the cluster zone, if any, has its objects.
    fn readiness(&self) -> Result<(), String> {
        match self.cluster() {
            Some(cluster) if !cluster.is_loaded() => Err(format!(
                "kubernetes: the objects of {} have not loaded yet",
                cluster.domain()
            )),
            _ => Ok(()),
        }
    }

    fn encode_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut out = Encoder::new(encoder, METRICS);
        out.gauge("zones_loaded", self.zone_count() as i64)?;
        out.reloads("zones_reloads_total", self.reload_stats())?;
        let cluster = self.cluster();
        out.gauge(
            "kubernetes_ready",
            i64::from(cluster.is_some_and(|c| c.is_loaded())),
        )?;
        let empty = ReloadStats::default();
        out.reloads(
            "kubernetes_reloads_total",
            cluster.map_or(&empty, |c| c.reload_stats()),
        )?;
        let api = cluster.and_then(|c| c.api_status());
        out.gauge(
            "kubernetes_api_connected",
            i64::from(api.is_some_and(|a| a.connected())),
        )?;
        out.counter(
            "kubernetes_api_watch_errors_total",
            api.map_or(0, |a| a.watch_errors_total()),
        )?;
        out.counter(
            "kubernetes_api_events_total",
            api.map_or(0, |a| a.events_total()),
        )?;
        out.counter(
            "kubernetes_api_lists_total",
            api.map_or(0, |a| a.lists_total()),
        )?;
        out.gauge(
            "kubernetes_api_last_sync_timestamp_seconds",
            api.map_or(0, |a| {
                i64::try_from(a.last_sync_unix_seconds()).unwrap_or(i64::MAX)
            }),
        )
    }

    /// Polls the zone files and the manifests; with a live API, watches it (once per cluster:
    /// a cluster carried over by a reload is watched already).
    fn start(self: Arc<Self>, background: &Background) {
        let interval = self.reload_interval();
        background.poll(&self, interval);
        if let Some(handle) = self.cluster_handle() {
            handle.watch(background);
        }
    }

    fn reread(&self) {
        Zones::reread(self);
    }
}
