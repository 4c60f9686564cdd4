//! Builds a running server from a [`Config`]: sources, the chain, the engine, the listeners and
//! the background reloads; and stops it.
//!
//! Shutdown is one [`CancellationToken`] and one [`TaskTracker`]: cancelling the token stops
//! every listener from taking new work, and the tracker tells when the queries already taken
//! have been answered.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::{Chain, Source};
use crate::config::Config;
use crate::server::fast::{self, FastTable, Generation};
use crate::server::tcp::{self, TcpLimits};
use crate::server::{udp, Engine};
use crate::sources::forward::Forwarder;
use crate::sources::hosts::Hosts;
use crate::sources::watch::Reload;
use crate::sources::zones::cluster::Cluster;
use crate::sources::zones::Zones;

/// Encoded replies kept for the UDP fast path: the hot set, not every name (misses take the
/// general path and are then stored).
const FAST_TABLE_CAPACITY: usize = 65_536;

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
}

/// A server that is answering queries.
pub struct Running {
    local_addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    forwarder: Arc<Forwarder>,
    fast_table: Arc<FastTable>,
}

impl Running {
    /// The addresses served, with the ports actually bound (a configured port 0 is resolved),
    /// in the order of `server.listen`. Each is served on UDP and TCP.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The `dns` source: its cache and upstream counters.
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// The UDP fast path's counters.
    pub fn fast_stats(&self) -> &crate::server::fast::FastStats {
        self.fast_table.stats()
    }

    /// Stops taking queries and waits up to `deadline` for those in flight. Returns whether all
    /// finished in time.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Starts serving `config`. Must run inside a tokio runtime.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let hosts = {
        let paths = config.files.paths.clone();
        let ttl = config.files.ttl;
        // Reading files is blocking I/O: keep it off the runtime's worker threads.
        let loaded = {
            let paths = paths.clone();
            tokio::task::spawn_blocking(move || Hosts::load(&paths, ttl)).await
        };
        Arc::new(loaded.unwrap_or_else(|_| Hosts::unavailable(&paths, ttl)))
    };
    let zones = {
        let zones_config = config.zones.clone();
        let kubernetes = config.kubernetes.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let cluster = kubernetes.as_ref().map(|k| Arc::new(Cluster::load(k)));
            Zones::load(&zones_config, cluster)
        })
        .await;
        Arc::new(loaded.unwrap_or_else(|_| Zones::load(&Default::default(), None)))
    };
    let forwarder = Arc::new(Forwarder::new(&config.forward));
    let sources: Vec<Arc<dyn Source>> = vec![
        Arc::clone(&hosts) as Arc<dyn Source>,
        Arc::clone(&zones) as Arc<dyn Source>,
        Arc::clone(&forwarder) as Arc<dyn Source>,
    ];
    let engine = Arc::new(Engine::new(Chain::new(&config.order, &sources)));

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
    let limits = TcpLimits {
        idle_timeout: config.server.tcp_idle_timeout,
        max_connections: config.server.tcp_max_connections,
    };
    let generation = Arc::new(Generation::default());
    let table = Arc::new(FastTable::new(FAST_TABLE_CAPACITY, Arc::clone(&generation)));
    let mut local_addrs = Vec::new();
    for (udp_sockets, tcp_listener, address) in sockets {
        local_addrs.push(address);
        for udp_socket in udp_sockets {
            if fast {
                tracker.spawn(fast::serve(
                    udp_socket,
                    Arc::clone(&engine),
                    Arc::clone(&table),
                    shutdown.clone(),
                    tracker.clone(),
                ));
            } else {
                tracker.spawn(udp::serve(
                    udp_socket,
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
    tracker.spawn(poll(
        hosts,
        config.files.reload_interval,
        Arc::clone(&generation),
        shutdown.clone(),
    ));
    tracker.spawn(poll(
        zones,
        config.zones.reload_interval,
        Arc::clone(&generation),
        shutdown.clone(),
    ));
    // Listeners are up: a loop probe that comes back can now be seen.
    let uses_dns = config
        .order
        .iter()
        .any(|e| e.source == crate::chain::SourceKind::Dns);
    if uses_dns {
        let cancelled = shutdown.clone();
        let forwarder = Arc::clone(&forwarder);
        tracker.spawn(async move {
            tokio::select! {
                _ = cancelled.cancelled() => {}
                _ = forwarder.check_for_loops() => {}
            }
        });
    }

    let order: Vec<String> = config.order.iter().map(ToString::to_string).collect();
    tracing::info!(
        config = %config.origin,
        listen = ?local_addrs,
        order = ?order,
        upstreams = ?config.forward.upstreams,
        upstreams_from = ?config.forward.upstreams_from,
        "hearth is serving"
    );
    Ok(Running {
        local_addrs,
        shutdown,
        tracker,
        forwarder,
        fast_table: table,
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
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), StartError> {
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

/// Re-reads what changed in `source`'s files every `interval` until shutdown; a change bumps
/// the data `generation`, so no reply computed from the old data is reused.
async fn poll(
    source: Arc<impl Reload + 'static>,
    interval: Duration,
    generation: Arc<Generation>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks.tick().await; // the first tick is immediate; the files were just read.
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                let source = Arc::clone(&source);
                if let Ok(true) = tokio::task::spawn_blocking(move || source.reload_changed()).await {
                    generation.bump();
                }
            }
        }
    }
}
