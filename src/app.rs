//! Builds a running server from a [`Config`]: the sources, the chain, the engine, the
//! listeners and the admin endpoints; reloads it; and stops it. It names no source: the
//! registry (`sources::REGISTRY`) and the [`Plugin`] trait carry everything it needs.
//!
//! Shutdown is one [`CancellationToken`] and one [`TaskTracker`]: cancelling the token stops
//! every listener from taking new work and every background task, and the tracker tells when
//! the queries already taken have been answered.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::DescriptorEncoder;
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::{Chain, DataVersions, Source};
use crate::config::{Config, ConfigError, Overrides};
use crate::metrics::coredns::CorednsLabels;
use crate::metrics::{MetricDoc, Metrics};
use crate::server::admission::{Admission, Policy};
use crate::server::fast::{self, FastTable};
use crate::server::tcp::{self, TcpLimits};
use crate::server::{udp, Engine};
use crate::sources::setup::{Background, BuildContext, Plugin};
use crate::sources::watch::Fingerprint;

/// How often `--config` is checked for changes: one `stat` a second, and a ConfigMap edit is
/// live within about a second of the kubelet writing it (which itself takes up to a minute).
const CONFIG_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long a changed configuration file must hold still before it is read.
const SETTLE: Duration = Duration::from_millis(100);

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
    #[error("{origin}: the {name} source could not be built: {reason}")]
    Source {
        origin: String,
        name: &'static str,
        reason: String,
    },
}

/// Every metric the server exports, without the namespace: the per-query ones, the fast
/// table's, the admin endpoint's, and each registered source's. The README documents each.
pub fn metric_names() -> Vec<MetricDoc> {
    let mut names: Vec<MetricDoc> = crate::metrics::NAMES.to_vec();
    names.extend_from_slice(fast::METRICS);
    names.extend_from_slice(crate::server::rate_limit::METRICS);
    names.extend_from_slice(crate::admin::METRICS);
    for setup in crate::sources::REGISTRY {
        names.extend_from_slice(setup.metrics());
    }
    names
}

/// Every metric the server exports under CoreDNS's names (`admin.metrics = "coredns"`),
/// without the `coredns_` prefix. The README documents each.
pub fn coredns_metric_names() -> Vec<MetricDoc> {
    let mut names: Vec<MetricDoc> = crate::metrics::coredns::NAMES.to_vec();
    for setup in crate::sources::REGISTRY {
        names.extend_from_slice(setup.coredns_metrics());
    }
    names
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

/// The sources built from one configuration, in the registry's order.
pub struct Sources {
    config: Config,
    running: Vec<Arc<dyn Plugin>>,
}

impl Sources {
    /// The running source named `name`.
    fn named(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.running.iter().find(|source| source.name() == name)
    }
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

    /// The source serving now whose type is `T` (its counters, for tests and tools).
    pub fn source<T: Plugin + 'static>(&self) -> Option<Arc<T>> {
        self.state
            .sources
            .load()
            .running
            .iter()
            .find_map(|source| Arc::clone(source).into_any().downcast::<T>().ok())
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

    /// The text `/metrics` serves, under `namespace`.
    pub fn render_metrics(&self, namespace: &str) -> String {
        let status: Arc<dyn crate::admin::Status> = Arc::clone(&self.state) as _;
        crate::admin::render(&status, namespace)
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

    /// Watches the configuration file at `path` and reloads it when it changes, while the
    /// running configuration's `server.watch_config` is on (CoreDNS's `reload` plugin: a
    /// ConfigMap edit takes effect without a rollout, and the image has no shell to send
    /// SIGHUP from). The task ends with the server.
    ///
    /// Polled, as the sources poll their files (`sources::watch` says why not inotify): the
    /// kubelet updates a ConfigMap volume by pointing a `..data` symlink at a new directory,
    /// and `metadata` follows the symlinks to the file itself, whose inode then changes. A
    /// reload that fails is logged as `file:line: reason` and counted, the old configuration
    /// keeps serving, and the same broken file is not tried again until it changes.
    pub fn watch_config_file(&self, path: PathBuf, overrides: Overrides) {
        self.watch_config_file_every(path, overrides, CONFIG_POLL_INTERVAL);
    }

    /// [`Running::watch_config_file`], polling every `interval`.
    pub fn watch_config_file_every(&self, path: PathBuf, overrides: Overrides, interval: Duration) {
        let state = Arc::clone(&self.state);
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let mut seen = Fingerprint::of(&path);
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                if !state.sources.load().config.server.watch_config {
                    continue;
                }
                let now = Fingerprint::of(&path);
                if now == seen || now.is_none() {
                    // Unchanged, or gone for a moment (a swap in progress): nothing to read.
                    continue;
                }
                // A file written in place can be caught half-written: read it once it has
                // held still for a short while.
                tokio::time::sleep(SETTLE).await;
                let settled = Fingerprint::of(&path);
                if settled != now {
                    continue;
                }
                seen = settled;
                tracing::info!(config = %path.display(), "the configuration file changed: reloading");
                // Errors are logged and counted by `reload`; the running configuration serves on.
                let _ = state.reload(Some(&path), &overrides).await;
            }
        });
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

impl crate::admin::Status for State {
    /// Whether every source has loaded, and if not, what is missing.
    fn readiness(&self) -> Result<(), Vec<String>> {
        if self.lameduck.load(Ordering::Acquire) {
            return Err(vec!["shutting down (lameduck)".to_owned()]);
        }
        if self.ready_latch.load(Ordering::Acquire) {
            return Ok(());
        }
        let waiting: Vec<String> = self
            .sources
            .load()
            .running
            .iter()
            .filter_map(|source| source.readiness().err())
            .collect();
        if waiting.is_empty() {
            self.ready_latch.store(true, Ordering::Release);
            Ok(())
        } else {
            Err(waiting)
        }
    }

    fn encode_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        self.metrics.encode(encoder)?;
        self.table.stats().encode(encoder)?;
        self.engine.admission().rate_stats().encode(encoder)?;
        for source in &self.sources.load().running {
            source.encode_metrics(encoder)?;
        }
        Ok(())
    }

    fn encode_coredns_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let sources = self.sources.load();
        let labels = CorednsLabels::new(&sources.config.server.listen);
        self.metrics.encode_coredns(encoder, &labels)?;
        for source in &sources.running {
            source.encode_coredns_metrics(encoder, &labels)?;
        }
        Ok(())
    }
}

impl State {
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
        let (sources, built) =
            build_sources(&config, Some(&old), &self.versions, &self.metrics).await;
        let sources = Arc::new(sources);
        self.engine.replace_chain(chain_for(&config, &sources));
        self.engine.set_log_queries(config.log.queries);
        self.table.set_rotate(config.answers.rotate);
        self.table.set_max_memory(config.server.fast_path_memory);
        if config.access != old.config.access {
            log_access(&config);
        }
        if config.rate_limit != old.config.rate_limit {
            log_rate_limit(&config);
        }
        self.engine.admission().configure(
            &config.access,
            config.rate_limit.as_ref(),
            config.server.cookies,
        );
        self.sources.store(Arc::clone(&sources));
        // Another order, other actions or other sources: no stored reply is known to hold.
        self.versions.bump_all();
        // The sources kept run on; the new ones start. A replaced source's tasks end with it.
        self.start(&sources, &built);
        self.metrics.config_reloads.record(true);
        tracing::info!(config = %config.origin, "configuration reloaded");
        Ok(())
    }

    /// Starts the background tasks of the sources that were `built` (not kept).
    fn start(&self, sources: &Sources, built: &[bool]) {
        for (source, _) in sources
            .running
            .iter()
            .zip(built)
            .filter(|(_, built)| **built)
        {
            let background = Background::new(
                self.tracker.clone(),
                self.shutdown.clone(),
                sources.config.in_order(source.name()),
            );
            Arc::clone(source).start(&background);
        }
    }
}

/// The effective `[access]` policy, in the log at start and when a reload changes it; a warning
/// when a listener reachable from other hosts answers everyone (an open resolver).
/// How often the server cookie secret is replaced. RFC 9018 §4.4 asks that the secret change
/// "on a regular basis"; the previous one stays valid until the next rotation, which is longer
/// than a cookie's hour of life, so no client ever holds a cookie made with a secret gone.
const COOKIE_ROTATION: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

async fn rotate_cookie_secret(
    cookies: Arc<crate::server::cookies::Cookies>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(COOKIE_ROTATION) => cookies.rotate(),
        }
    }
}

/// Logs `[rate_limit]` as it is now.
fn log_rate_limit(config: &Config) {
    match &config.rate_limit {
        None => tracing::info!(config = %config.origin, "rate_limit: off"),
        Some(limit) => tracing::info!(
            config = %config.origin,
            responses_per_second = limit.responses_per_second,
            ipv4_prefix = limit.ipv4_prefix,
            ipv6_prefix = limit.ipv6_prefix,
            slip = limit.slip,
            exempt = ?limit.exempt,
            "rate_limit: UDP responses per client prefix"
        ),
    }
}

fn log_access(config: &Config) {
    let rules: Vec<String> = config
        .access
        .rules
        .iter()
        .map(|(network, action)| format!("{network} {action:?}").to_lowercase())
        .collect();
    tracing::info!(
        config = %config.origin,
        built_in = config.access.built_in,
        rules = ?rules,
        "access: the most specific prefix decides"
    );
    let exposed = config
        .server
        .listen
        .iter()
        .any(|address| !address.ip().is_loopback());
    if exposed && config.access.allows_everyone() {
        tracing::warn!(
            config = %config.origin,
            listen = ?config.server.listen,
            "[access] allows 0.0.0.0/0 or ::/0 on a listener other hosts can reach: this is an \
             open resolver, usable for amplification attacks; allow only your clients' networks"
        );
    }
}

/// Keys that a reload reads but cannot apply: sockets are bound once.
fn warn_about_restart_only_keys(old: &Config, new: &Config) {
    let server_changed = old.server.listen != new.server.listen
        || old.server.fast_path != new.server.fast_path
        || old.server.tcp_idle_timeout != new.server.tcp_idle_timeout
        || old.server.tcp_max_connections != new.server.tcp_max_connections
        || old.server.tcp_max_connections_per_client != new.server.tcp_max_connections_per_client
        || old.server.max_waiting_per_client != new.server.max_waiting_per_client
        || old.server.max_in_flight != new.server.max_in_flight;
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
    let list: Vec<Arc<dyn Source>> = sources
        .running
        .iter()
        .map(|source| Arc::clone(source).as_source())
        .collect();
    let mut shaping = config.answers.clone();
    shaping.autopath = config.sources.iter().find_map(|source| source.autopath());
    Chain::new(&config.order, &list).with_shaping(shaping)
}

/// Builds the sources of `config`, and says which were built (rather than kept). On a reload
/// (`previous`), a source whose configuration did not change is kept and re-reads its files, so
/// the answer cache, upstream health and a live cluster watch survive, and a file that no
/// longer parses keeps its last good version; a source whose configuration changed is built
/// anew, handed the old one to carry over what it can. A build that panics keeps the old
/// source on a reload; at start it is an error.
async fn build_sources(
    config: &Config,
    previous: Option<&Sources>,
    versions: &Arc<DataVersions>,
    metrics: &Arc<Metrics>,
) -> (Sources, Vec<bool>) {
    let mut running = Vec::with_capacity(config.sources.len());
    let mut built = Vec::with_capacity(config.sources.len());
    for source_config in &config.sources {
        let name = source_config.name();
        let old = previous.and_then(|p| {
            let old_config = p.config.source_named(name)?;
            Some((p.named(name)?, old_config))
        });
        if let Some((old, _)) = old.filter(|(_, c)| c.same_as(&**source_config)) {
            let reread = Arc::clone(old);
            // Reading files is blocking I/O: keep it off the runtime's worker threads.
            let _ = tokio::task::spawn_blocking(move || {
                reread.reread();
                crate::memory::release_after_load();
            })
            .await;
            running.push(Arc::clone(old));
            built.push(false);
            continue;
        }
        let context = BuildContext {
            versions: Arc::clone(versions),
            metrics: Arc::clone(metrics),
        };
        let previous_source = old.map(|(source, _)| Arc::clone(source));
        let to_build = Arc::clone(source_config);
        let result = tokio::task::spawn_blocking(move || {
            let source = to_build.build(&context, previous_source.as_ref());
            crate::memory::release_after_load();
            source
        })
        .await;
        match (result, old) {
            (Ok(source), _) => {
                running.push(source);
                built.push(true);
            }
            (Err(error), Some((old, _))) => {
                tracing::error!(source = name, %error, "building the source failed; the running one keeps serving");
                running.push(Arc::clone(old));
                built.push(false);
            }
            (Err(error), None) => {
                tracing::error!(source = name, %error, "building the source failed");
            }
        }
    }
    (
        Sources {
            config: config.clone(),
            running,
        },
        built,
    )
}

/// Starts serving `config`. Must run inside a tokio runtime.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let versions = DataVersions::new();
    let metrics = Arc::new(Metrics::new());
    let (sources, built) = build_sources(config, None, &versions, &metrics).await;
    if let Some(missing) = config
        .sources
        .iter()
        .find(|c| sources.named(c.name()).is_none())
    {
        return Err(StartError::Source {
            origin: config.origin.clone(),
            name: missing.name(),
            reason: "its build panicked (see the log)".to_owned(),
        });
    }
    metrics.config_reloads.mark_loaded();
    let admission = Admission::new(
        Policy::admit_all(),
        config.server.tcp_max_connections,
        config.server.tcp_max_connections_per_client,
    );
    admission.configure(
        &config.access,
        config.rate_limit.as_ref(),
        config.server.cookies,
    );
    let engine = Arc::new(
        Engine::with_metrics(
            chain_for(config, &sources),
            Arc::clone(&metrics),
            config.log.queries,
            admission,
        )
        .with_waiting_limit(config.server.max_waiting_per_client),
    );

    // Bind everything before serving anything, so a failure leaves nothing half-started.
    // With the fast path, one UDP socket per core (SO_REUSEPORT), each drained by its own task.
    let fast = config.server.fast_path;
    let per_address = if fast {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        1
    };
    // SO_REUSEPORT only when there are several sockets to share the address. A lone socket
    // gains nothing from it and pays twice: the kernel runs its reuseport selection (a hash
    // of the 4-tuple) for every datagram it delivers, about 1% of the sender's core on a
    // loopback benchmark, and another process of the same user could bind the port beside
    // it and take a share of the queries.
    let shared = fast && per_address > 1;
    let mut sockets = Vec::new();
    for address in &config.server.listen {
        sockets.push(bind_pair(*address, &config.origin, shared, per_address)?);
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
    let table = Arc::new(FastTable::growing(
        config.server.fast_path_memory,
        Arc::clone(&versions),
    ));
    table.set_rotate(config.answers.rotate);
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
                    config.server.max_in_flight,
                )
                .map_err(udp_error)?;
            } else {
                tracker.spawn(udp::serve(
                    UdpSocket::from_std(udp_socket).map_err(udp_error)?,
                    Arc::clone(&engine),
                    shutdown.clone(),
                    tracker.clone(),
                    config.server.max_in_flight,
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
    state.start(&state.sources.load(), &built);
    let mut admin_addr = None;
    if let (Some(listener), Some(admin)) = (admin_listener, &config.admin) {
        admin_addr = listener.local_addr().ok();
        tracker.spawn(crate::admin::serve(
            listener,
            Arc::clone(&state) as Arc<dyn crate::admin::Status>,
            admin.namespace.clone(),
            admin.metrics,
            shutdown.clone(),
        ));
    }

    tracker.spawn(rotate_cookie_secret(
        Arc::clone(state.engine.admission().cookies()),
        shutdown.clone(),
    ));
    log_access(config);
    if config.rate_limit.is_some() {
        log_rate_limit(config);
    }
    let order: Vec<String> = config.order.iter().map(ToString::to_string).collect();
    let sources: Vec<String> = config
        .sources
        .iter()
        .flat_map(|source| source.describe())
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    tracing::info!(
        config = %config.origin,
        listen = ?local_addrs,
        admin = ?admin_addr,
        order = ?order,
        sources = ?sources,
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
