//! What a source carries besides its answers: its configuration table, how it is built and
//! rebuilt, its metrics, its readiness and its background tasks. CoreDNS's plugin shape: the
//! server core knows these traits, and only the registry (`sources/mod.rs`) knows the sources.
//!
//! ```text
//!  config file ──► SourceSetup::configure(tables) ──► SourceConfig (validated, comparable)
//!                                                          │ build (blocking: reads files)
//!                                                          ▼
//!  chain ◄── Plugin (chain::Source + readiness + metrics + start + reread)
//! ```
//!
//! A reload compares each source's new configuration with the running one
//! ([`ComparableConfig::same_as`]): the same, and the running source is kept and re-reads its
//! files ([`Plugin::reread`]), so caches, upstream health and a live watch survive; different,
//! and a new source is built, given the old one to carry over what it can.
//!
//! Background tasks live as long as their source: [`Background::poll`] holds the source weakly
//! and ends once a reload has replaced it and the last query using it has finished, and every
//! task ends at shutdown.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::{DataVersions, Source};
use crate::config::file::{ConfigError, Tables};
use crate::metrics::coredns::CorednsLabels;
use crate::metrics::{MetricDoc, Metrics};
use crate::sources::watch::Reload;

/// One kind of source, as listed in the registry.
pub trait SourceSetup: Sync {
    /// Its name in `resolve.order`.
    fn name(&self) -> &'static str;

    /// The top-level tables of the configuration file it reads (`[files]`; `[forward]` and
    /// `[cache]`).
    fn tables(&self) -> &'static [&'static str];

    /// Every metric it exports, without the namespace.
    fn metrics(&self) -> &'static [MetricDoc];

    /// Every metric it exports under CoreDNS's names (`admin.metrics = "coredns"`), without
    /// the `coredns_` prefix: none unless it has a CoreDNS counterpart with metrics.
    fn coredns_metrics(&self) -> &'static [MetricDoc] {
        &[]
    }

    /// Reads and checks its tables. Absent tables mean the defaults.
    fn configure(&self, tables: &Tables<'_>) -> Result<Arc<dyn SourceConfig>, ConfigError>;
}

/// A source's validated configuration. [`ComparableConfig`] comes with it for any type that
/// is `PartialEq`.
pub trait SourceConfig: ComparableConfig + fmt::Debug + Send + Sync + 'static {
    /// The name of the source it configures.
    fn name(&self) -> &'static str;

    /// Builds the source and loads its data; blocking I/O. `previous` is the running source
    /// this one replaces, whose long-lived parts (a cluster watch) it may take over.
    fn build(&self, context: &BuildContext, previous: Option<&Arc<dyn Plugin>>) -> Arc<dyn Plugin>;

    /// For `hearth check`: every problem in the data it would load, each `file:line: reason`,
    /// and a short account of what it would serve.
    fn check(&self) -> Vec<String> {
        Vec::new()
    }

    /// The memory, in bytes, this configuration gives to answers the source keeps (the `dns`
    /// source: `cache.max_bytes`); the fast path's default budget follows it
    /// (`config::default_fast_path_memory`). None by default.
    fn answer_memory(&self) -> u64 {
        0
    }

    /// Key facts for the startup log (`("upstreams", "[192.0.2.1:53]")`).
    fn describe(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The search path the chain walks for pods (`kubernetes.autopath`), from the source that
    /// serves the cluster zone; `None` from every other.
    fn autopath(&self) -> Option<crate::chain::shape::Autopath> {
        None
    }
}

/// What the server needs to compare configurations of unknown types; implemented for every
/// `PartialEq` type, so a source's config only derives `PartialEq`.
pub trait ComparableConfig {
    /// Whether `other` configures the source the same way: a reload then keeps it running.
    fn same_as(&self, other: &dyn SourceConfig) -> bool;

    fn as_any(&self) -> &dyn Any;
}

impl<T: SourceConfig + PartialEq> ComparableConfig for T {
    fn same_as(&self, other: &dyn SourceConfig) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl dyn SourceConfig {
    /// The configuration as its own type, when it is one.
    pub fn downcast_ref<T: SourceConfig>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }
}

/// What a source is built with.
pub struct BuildContext {
    /// Where each kind of local data registers its version (see `chain::validity`).
    pub versions: Arc<DataVersions>,
    /// The per-query metrics, read at scrape time by a source whose work the fast path
    /// does for it (the forwarding cache's hits that the fast path reused).
    pub metrics: Arc<Metrics>,
}

/// A running source: the chain's [`Source`], and what it carries besides. [`SharedSource`]
/// comes with it for every source type.
pub trait Plugin: Source + SharedSource {
    /// Ready once its data has loaded; the reason when not. A source whose data is read at
    /// build time is always ready (a file that fails keeps the last good version or is
    /// UNAVAIL, which is an answer).
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }

    /// Encodes its metrics (those of [`SourceSetup::metrics`]).
    fn encode_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result;

    /// Encodes its metrics under CoreDNS's names and labels (`admin.metrics = "coredns"`), as
    /// the CoreDNS plugin doing its job would: only sources with a CoreDNS counterpart that
    /// has metrics (the forwarding source: `cache` and `forward`) have any.
    fn encode_coredns_metrics(
        &self,
        _encoder: &mut DescriptorEncoder<'_>,
        _labels: &CorednsLabels,
    ) -> fmt::Result {
        Ok(())
    }

    /// Starts its background tasks (polls, watches, probes); called once, after the listeners
    /// are up, for a source that was built (not for one kept by a reload).
    fn start(self: Arc<Self>, background: &Background);

    /// Re-reads its data, changed or not (SIGHUP with its configuration unchanged); blocking.
    fn reread(&self) {}
}

/// A running source seen as its own type or as the chain sees it; implemented for every
/// source.
pub trait SharedSource {
    fn as_any(&self) -> &dyn Any;

    /// As its own type, shared (tests and tools that read a source's counters).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// As the chain sees it.
    fn as_source(self: Arc<Self>) -> Arc<dyn Source>;
}

impl<T: Source + 'static> SharedSource for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn as_source(self: Arc<Self>) -> Arc<dyn Source> {
        self
    }
}

/// Where background tasks run: the server's tracker (so shutdown waits for them) and its
/// shutdown token.
#[derive(Clone)]
pub struct Background {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Whether the source is in the order. A source that is not is still built (its metrics
    /// and `hearth check` see it), but need not probe anything.
    pub in_order: bool,
}

impl Background {
    pub fn new(tracker: TaskTracker, shutdown: CancellationToken, in_order: bool) -> Self {
        Self {
            tracker,
            shutdown,
            in_order,
        }
    }

    /// Runs `task` until it ends or the server shuts down.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Calls `source.reload_changed()` every `interval` (off the runtime's workers: it reads
    /// files) for as long as the source exists.
    pub fn poll<S: Reload + 'static>(&self, source: &Arc<S>, interval: Duration) {
        let source: Weak<S> = Arc::downgrade(source);
        self.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ticks.tick().await; // the first tick is immediate; the files were just read.
            loop {
                ticks.tick().await;
                let Some(source) = source.upgrade() else {
                    break; // replaced by a reload, and no query uses it any more.
                };
                let _ = tokio::task::spawn_blocking(move || {
                    if source.reload_changed() {
                        crate::memory::release_after_load();
                    }
                })
                .await;
            }
        });
    }
}
