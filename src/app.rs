//! Builds a running server from a [`Config`]: sources, the chain, the engine, the listeners and
//! the background reloads; and stops it.
//!
//! Shutdown is one [`CancellationToken`] and one [`TaskTracker`]: cancelling the token stops
//! every listener from taking new work, and the tracker tells when the queries already taken
//! have been answered.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::DataVersions;
use crate::chain::{Chain, Source};
use crate::config::{Config, ConfigError, Overrides};
use crate::metrics::Metrics;
use crate::server::admission::{Admission, Policy};
use crate::server::fast::{self, FastTable};
use crate::server::tcp::{self, TcpLimits};
use crate::server::{udp, Engine};
use crate::sources::forward::Forwarder;
use crate::sources::hosts::Hosts;
use crate::sources::watch::Reload;
use crate::sources::zones::cluster::Cluster;
use crate::sources::zones::{ZoneVersions, Zones};

/// Memory for the UDP fast path's encoded replies: the hot set, not every name (misses take
/// the general path and are then stored). 4 MiB holds about 16,000 typical replies; with a
/// 65,536-entry count instead, a scan over cold names grew a 100,000-record zone's server from
/// 37 MB to 72 MB (BENCHMARKS.md).
const FAST_TABLE_BYTES: u64 = 4 << 20;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("{origin}: server.listen: cannot listen on {address}/{protocol}: {source}{hint}")]
    Bind {
        origin: String,
        address: SocketAddr,
        protocol: &'static str,
        source: io::Error,
        hint: &'static str,
    },
    #[error("{origin}: admin.listen: cannot listen on {address}/tcp: {source}{hint}")]
    AdminBind {
        origin: String,
        address: SocketAddr,
        source: io::Error,
        hint: &'static str,
    },
}

/// A server that is answering queries.
pub struct Running {
    local_addrs: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    state: Arc<State>,
}

/// What the listeners, the admin endpoints and reloads share.
pub struct State {
    engine: Arc<Engine>,
    /// The version of each kind of local data: sources bump theirs, the fast table reads them.
    versions: Arc<DataVersions>,
    table: Arc<FastTable>,
    metrics: Arc<Metrics>,
    /// The sources serving now, replaced whole by a reload.
    sources: ArcSwap<Sources>,
    /// Set on SIGTERM/SIGINT: `/ready` fails while queries are still answered.
    lameduck: AtomicBool,
    /// Released once every source has loaded; never taken back (a later failed reload keeps
    /// the last good data serving, which is still ready).
    ready_latch: AtomicBool,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// The sources built from one configuration.
pub struct Sources {
    config: Config,
    hosts: Arc<Hosts>,
    zones: Arc<Zones>,
    forwarder: Arc<Forwarder>,
    /// Stops this set's polls when a reload replaces it. This and the two below are children
    /// of the shutdown token, so shutdown stops them all.
    polls: CancellationToken,
    /// Stops the forwarder's loop probe when a reload replaces the forwarder.
    forwarder_tasks: CancellationToken,
    /// Stops the cluster's API watch when a reload replaces the cluster.
    cluster_tasks: CancellationToken,
}

impl Running {
    /// The addresses served, with the ports actually bound (a configured port 0 is resolved),
    /// in the order of `server.listen`. Each is served on UDP and TCP.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The admin endpoint's address, with the port actually bound, if `[admin]` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The `dns` source serving now: its cache and upstream counters.
    pub fn forwarder(&self) -> Arc<Forwarder> {
        Arc::clone(&self.state.sources.load().forwarder)
    }

    /// The front door: its policy can be replaced while serving.
    pub fn admission(&self) -> &Admission {
        self.state.engine.admission()
    }

    /// The UDP fast path's counters.
    pub fn fast_stats(&self) -> &crate::server::fast::FastStats {
        self.state.table.stats()
    }

    /// What the admin endpoints read.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Re-reads the configuration at `path` (the embedded default when `None`) and every
    /// source. Atomic: if the configuration does not load, nothing changes; queries in flight
    /// finish on the sources they started with.
    pub async fn reload(
        &self,
        path: Option<&std::path::Path>,
        overrides: &Overrides,
    ) -> Result<(), ConfigError> {
        self.state.reload(path, overrides).await
    }

    /// Lameduck: `/ready` fails from now on, so load balancers stop sending; queries are still
    /// answered until [`Running::shutdown`].
    pub fn enter_lameduck(&self) {
        self.state.lameduck.store(true, Ordering::Release);
    }

    /// Stops taking queries and waits up to `deadline` for those in flight. Returns whether all
    /// finished in time.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        self.state.lameduck.store(true, Ordering::Release);
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

impl State {
    /// Whether every source has loaded, and if not, what is missing.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        if self.lameduck.load(Ordering::Acquire) {
            return Err(vec!["shutting down (lameduck)".to_owned()]);
        }
        if self.ready_latch.load(Ordering::Acquire) {
            return Ok(());
        }
        let sources = self.sources.load();
        let mut waiting = Vec::new();
        if let Some(cluster) = sources.zones.cluster() {
            if !cluster.is_loaded() {
                waiting.push(format!(
                    "kubernetes: the objects of {} have not loaded yet",
                    cluster.domain()
                ));
            }
        }
        if waiting.is_empty() {
            self.ready_latch.store(true, Ordering::Release);
            Ok(())
        } else {
            Err(waiting)
        }
    }

    /// The Prometheus text of every metric, under `namespace`.
    pub fn render_metrics(&self, namespace: &str) -> String {
        let sources = self.sources.load();
        crate::metrics::Scrape {
            namespace: namespace.to_owned(),
            metrics: Arc::clone(&self.metrics),
            fast: Arc::clone(&self.table),
            hosts: Arc::clone(&sources.hosts),
            zones: Arc::clone(&sources.zones),
            forwarder: Arc::clone(&sources.forwarder),
            ready: self.readiness().is_ok(),
        }
        .render()
    }

    async fn reload(
        &self,
        path: Option<&std::path::Path>,
        overrides: &Overrides,
    ) -> Result<(), ConfigError> {
        let _one_at_a_time = self.reloading.lock().await;
        let config = {
            let path = path.map(std::path::Path::to_path_buf);
            let overrides = overrides.clone();
            // Reading the file (and an nsswitch.conf it names) is blocking I/O.
            tokio::task::spawn_blocking(move || Config::load(path.as_deref(), &overrides))
                .await
                .unwrap_or_else(|error| {
                    Err(ConfigError::Read {
                        file: "configuration".to_owned(),
                        source: std::io::Error::other(error),
                    })
                })
        };
        let config = match config {
            Ok(config) => config,
            Err(error) => {
                self.metrics.config_reloads.record(false);
                tracing::error!("{error}; the running configuration keeps serving");
                return Err(error);
            }
        };
        let old = self.sources.load_full();
        warn_about_restart_only_keys(&old.config, &config);
        let sources =
            Arc::new(build_sources(&config, Some(&old), &self.shutdown, &self.versions).await);
        self.engine.replace_chain(chain_for(&config, &sources));
        self.engine.set_log_queries(config.log.queries);
        self.sources.store(Arc::clone(&sources));
        // Another order, other actions or other sources: no stored reply is known to hold.
        self.versions.bump_all();
        // The old set's tasks stop; what was carried over keeps its own.
        old.polls.cancel();
        if !Arc::ptr_eq(&old.forwarder, &sources.forwarder) {
            old.forwarder_tasks.cancel();
        }
        if old.zones.cluster().map(Arc::as_ptr) != sources.zones.cluster().map(Arc::as_ptr) {
            old.cluster_tasks.cancel();
        }
        self.spawn_background(&sources, !Arc::ptr_eq(&old.forwarder, &sources.forwarder));
        self.metrics.config_reloads.record(true);
        tracing::info!(config = %config.origin, "configuration reloaded");
        Ok(())
    }

    /// Starts the polls of `sources`, and the loop probe of a new forwarder.
    fn spawn_background(&self, sources: &Sources, new_forwarder: bool) {
        self.tracker.spawn(poll(
            Arc::clone(&sources.hosts),
            sources.config.files.reload_interval,
            sources.polls.clone(),
        ));
        self.tracker.spawn(poll(
            Arc::clone(&sources.zones),
            sources.config.zones.reload_interval,
            sources.polls.clone(),
        ));
        // The live Kubernetes API feed; returns at once for manifests or a cluster already
        // watched (carried over by a reload).
        if let Some(cluster) = sources.zones.cluster() {
            self.tracker.spawn(crate::sources::kubernetes::api::watch(
                Arc::clone(cluster),
                sources.cluster_tasks.clone(),
            ));
        }
        // Listeners are up: a loop probe that comes back can now be seen.
        let uses_dns = sources
            .config
            .order
            .iter()
            .any(|e| e.source == crate::chain::SourceKind::Dns);
        if uses_dns && new_forwarder {
            let cancelled = sources.forwarder_tasks.clone();
            let forwarder = Arc::clone(&sources.forwarder);
            self.tracker.spawn(async move {
                tokio::select! {
                    _ = cancelled.cancelled() => {}
                    _ = forwarder.check_for_loops() => {}
                }
            });
        }
    }
}

/// Keys that a reload reads but cannot apply: sockets are bound once.
fn warn_about_restart_only_keys(old: &Config, new: &Config) {
    let server_changed = old.server.listen != new.server.listen
        || old.server.fast_path != new.server.fast_path
        || old.server.tcp_idle_timeout != new.server.tcp_idle_timeout
        || old.server.tcp_max_connections != new.server.tcp_max_connections;
    if server_changed {
        tracing::warn!(config = %new.origin, "[server] changed: listeners are bound at start; restart to apply");
    }
    if old.admin.as_ref().map(|a| (a.listen, &a.namespace))
        != new.admin.as_ref().map(|a| (a.listen, &a.namespace))
    {
        tracing::warn!(config = %new.origin, "[admin] changed: the admin endpoint is bound at start; restart to apply");
    }
}

/// The chain for `config` over `sources`.
fn chain_for(config: &Config, sources: &Sources) -> Chain {
    let list: Vec<Arc<dyn Source>> = vec![
        Arc::clone(&sources.hosts) as Arc<dyn Source>,
        Arc::clone(&sources.zones) as Arc<dyn Source>,
        Arc::clone(&sources.forwarder) as Arc<dyn Source>,
    ];
    Chain::new(&config.order, &list)
}

/// Builds the sources of `config`. On a reload (`previous`), a source whose configuration did
/// not change is kept and re-read, so the answer cache, upstream health and a live cluster
/// watch survive, and a file that no longer parses keeps its last good version; a source
/// whose configuration changed is built anew.
async fn build_sources(
    config: &Config,
    previous: Option<&Sources>,
    shutdown: &CancellationToken,
    versions: &Arc<DataVersions>,
) -> Sources {
    // Reading files is blocking I/O: keep it off the runtime's worker threads.
    let hosts = match previous.filter(|p| p.config.files == config.files) {
        Some(previous) => {
            let hosts = Arc::clone(&previous.hosts);
            let reread = Arc::clone(&hosts);
            let _ = tokio::task::spawn_blocking(move || reread.reread()).await;
            hosts
        }
        None => {
            let paths = config.files.paths.clone();
            let ttl = config.files.ttl;
            let version = versions.register("files");
            let loaded = {
                let (paths, version) = (paths.clone(), version.clone());
                tokio::task::spawn_blocking(move || Hosts::load(&paths, ttl, version)).await
            };
            Arc::new(loaded.unwrap_or_else(|_| Hosts::unavailable(&paths, ttl, version)))
        }
    };
    let previous_cluster = previous
        .filter(|p| p.config.kubernetes == config.kubernetes)
        .and_then(|p| p.zones.cluster().cloned());
    let cluster_tasks = match (&previous_cluster, previous) {
        (Some(_), Some(previous)) => previous.cluster_tasks.clone(),
        _ => shutdown.child_token(),
    };
    let zones = match previous
        .filter(|p| p.config.zones == config.zones && p.config.kubernetes == config.kubernetes)
    {
        Some(previous) => {
            let zones = Arc::clone(&previous.zones);
            let reread = Arc::clone(&zones);
            let _ = tokio::task::spawn_blocking(move || reread.reread()).await;
            zones
        }
        None => {
            let zones_config = config.zones.clone();
            let kubernetes = config.kubernetes.clone();
            let zone_versions = ZoneVersions {
                origins: versions.register("zone origins"),
                data: versions.register("zone data"),
            };
            let cluster_version = versions.register("cluster");
            let fallback_versions = zone_versions.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let cluster = previous_cluster.or_else(|| {
                    kubernetes
                        .as_ref()
                        .map(|k| Arc::new(Cluster::load(k, cluster_version)))
                });
                Zones::load(&zones_config, cluster, zone_versions)
            })
            .await;
            Arc::new(
                loaded
                    .unwrap_or_else(|_| Zones::load(&Default::default(), None, fallback_versions)),
            )
        }
    };
    let (forwarder, forwarder_tasks) = match previous.filter(|p| p.config.forward == config.forward)
    {
        Some(previous) => (
            Arc::clone(&previous.forwarder),
            previous.forwarder_tasks.clone(),
        ),
        None => (
            Arc::new(Forwarder::new(&config.forward)),
            shutdown.child_token(),
        ),
    };
    Sources {
        config: config.clone(),
        hosts,
        zones,
        forwarder,
        polls: shutdown.child_token(),
        forwarder_tasks,
        cluster_tasks,
    }
}

/// Starts serving `config`. Must run inside a tokio runtime.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let versions = DataVersions::new();
    let sources = build_sources(config, None, &shutdown, &versions).await;
    let metrics = Arc::new(Metrics::new());
    metrics.config_reloads.mark_loaded();
    let engine = Arc::new(Engine::with_metrics(
        chain_for(config, &sources),
        Arc::clone(&metrics),
        config.log.queries,
        Admission::new(Policy::admit_all(), config.server.tcp_max_connections),
    ));

    // Bind everything before serving anything, so a failure leaves nothing half-started.
    // With the fast path, one UDP socket per core (SO_REUSEPORT), each drained by its own task.
    let fast = config.server.fast_path;
    let per_address = if fast {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        1
    };
    let mut sockets = Vec::new();
    for address in &config.server.listen {
        sockets.push(bind_pair(*address, &config.origin, fast, per_address)?);
    }
    let admin_listener =
        match &config.admin {
            Some(admin) => Some(TcpListener::bind(admin.listen).await.map_err(|source| {
                StartError::AdminBind {
                    origin: config.origin.clone(),
                    address: admin.listen,
                    hint: hint_for(&source, admin.listen),
                    source,
                }
            })?),
            None => None,
        };
    let limits = TcpLimits {
        idle_timeout: config.server.tcp_idle_timeout,
    };
    let table = Arc::new(FastTable::with_memory(
        FAST_TABLE_BYTES,
        Arc::clone(&versions),
    ));
    let mut local_addrs = Vec::new();
    for (udp_sockets, tcp_listener, address) in sockets {
        local_addrs.push(address);
        let udp_error = |source| StartError::Bind {
            origin: config.origin.clone(),
            address,
            protocol: "udp",
            hint: "",
            source,
        };
        for udp_socket in udp_sockets {
            if fast {
                fast::spawn(
                    udp_socket,
                    Arc::clone(&engine),
                    Arc::clone(&table),
                    shutdown.clone(),
                    tracker.clone(),
                    tokio::runtime::Handle::current(),
                )
                .map_err(udp_error)?;
            } else {
                tracker.spawn(udp::serve(
                    UdpSocket::from_std(udp_socket).map_err(udp_error)?,
                    Arc::clone(&engine),
                    shutdown.clone(),
                    tracker.clone(),
                ));
            }
        }
        tracker.spawn(tcp::serve(
            tcp_listener,
            Arc::clone(&engine),
            limits,
            shutdown.clone(),
            tracker.clone(),
        ));
    }

    let state = Arc::new(State {
        engine,
        versions,
        table,
        metrics,
        sources: ArcSwap::from_pointee(sources),
        lameduck: AtomicBool::new(false),
        ready_latch: AtomicBool::new(false),
        reloading: tokio::sync::Mutex::new(()),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    });
    state.spawn_background(&state.sources.load(), true);
    let mut admin_addr = None;
    if let (Some(listener), Some(admin)) = (admin_listener, &config.admin) {
        admin_addr = listener.local_addr().ok();
        tracker.spawn(crate::admin::serve(
            listener,
            Arc::clone(&state),
            admin.namespace.clone(),
            shutdown.clone(),
        ));
    }

    let order: Vec<String> = config.order.iter().map(ToString::to_string).collect();
    tracing::info!(
        config = %config.origin,
        listen = ?local_addrs,
        admin = ?admin_addr,
        order = ?order,
        upstreams = ?config.forward.upstreams,
        upstreams_from = ?config.forward.upstreams_from,
        "hearth is serving"
    );
    Ok(Running {
        local_addrs,
        admin_addr,
        shutdown,
        tracker,
        state,
    })
}

/// Binds UDP (`udp_count` sockets, shared with SO_REUSEPORT when `shared`) and TCP on one
/// address. With port 0 (tests), the first UDP socket picks the port and the others take the
/// same one; if TCP finds it taken, another port is tried.
fn bind_pair(
    address: SocketAddr,
    origin: &str,
    shared: bool,
    udp_count: usize,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener, SocketAddr), StartError> {
    let error = |protocol, source: io::Error| StartError::Bind {
        origin: origin.to_owned(),
        address,
        protocol,
        hint: hint_for(&source, address),
        source,
    };
    const ATTEMPTS: usize = 16;
    for attempt in 1..=ATTEMPTS {
        let first = udp::bind(address, shared).map_err(|e| error("udp", e))?;
        let bound = first.local_addr().map_err(|e| error("udp", e))?;
        let mut udp_sockets = vec![first];
        for _ in 1..udp_count {
            udp_sockets.push(udp::bind(bound, shared).map_err(|e| error("udp", e))?);
        }
        match tcp::bind(bound) {
            Ok(listener) => return Ok((udp_sockets, listener, bound)),
            Err(e)
                if address.port() == 0
                    && e.kind() == io::ErrorKind::AddrInUse
                    && attempt < ATTEMPTS =>
            {
                continue
            }
            Err(e) => return Err(error("tcp", e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// What to do about a bind error, for the operator.
fn hint_for(error: &io::Error, address: SocketAddr) -> &'static str {
    match error.kind() {
        io::ErrorKind::PermissionDenied if address.port() < 1024 => {
            "; ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: run \
             `sudo setcap cap_net_bind_service=+ep $(command -v hearth)`, or listen on a port \
             above 1023, e.g. --listen 127.0.0.1:5353"
        }
        io::ErrorKind::AddrInUse => {
            "; another process holds this address (another DNS server such as systemd-resolved \
             or dnsmasq?): `ss -lunp` shows which, or choose another with --listen"
        }
        io::ErrorKind::AddrNotAvailable => "; no interface of this host has that address",
        _ => "",
    }
}

/// Re-reads what changed in `source`'s files every `interval` until shutdown; the source
/// bumps its own data version on a change, so no reply computed from the old data is reused.
async fn poll(source: Arc<impl Reload + 'static>, interval: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks.tick().await; // the first tick is immediate; the files were just read.
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                let source = Arc::clone(&source);
                let _ = tokio::task::spawn_blocking(move || source.reload_changed()).await;
            }
        }
    }
}
