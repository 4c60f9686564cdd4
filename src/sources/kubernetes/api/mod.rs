//! The live feed of the cluster zone: a list-then-watch of the Kubernetes API, as CoreDNS's
//! `kubernetes` plugin does, into the same record builder as manifests.
//!
//! ```text
//!  one kube::runtime::watcher per kind, each in its own task (follow.rs):
//!    Services, EndpointSlices (discovery.k8s.io/v1), Namespaces, Pods (pods = "verified")
//!    list (500 a page) -> watch from the list's resourceVersion; a cut stream is watched again
//!    from the last resourceVersion; 410 Gone -> list again; errors -> backoff (0.8 s .. 30 s)
//!        │  Update: listed / applied / deleted objects (as the records' entries, trim.rs),
//!        │  errors, recoveries
//!        ▼  mpsc
//!  Feed (store.rs): one store per kind, namespace/name -> entry; a re-list fills a new store
//!        (sharing the entries that did not change) and replaces the old one when it is
//!        complete, so answers never see half a list; a re-list that changed nothing builds
//!        nothing
//!        │  once every kind has been listed; then COALESCE after a change, or when the
//!        │  build in flight ends
//!        ▼  the `cluster-install` thread
//!  the first time: the whole zone,
//!    ClusterSink::install_objects(the stores' objects, borrowed) -> records::build_into
//!  after watch events, and re-lists that changed something: only the parts of the zone
//!  they touch (records::Part: a service's names, a namespace's pods) and the apex,
//!    ClusterSink::install_parts(those parts, their objects and the namespaces)
//!  -> zone swapped in; the cluster's data version bumped
//! ```
//!
//! Until every kind has completed its first list nothing is installed: names in the cluster
//! domain answer SERVFAIL and the cluster zone is not loaded, so not ready (checklist row 17).
//! While the API is unreachable the last zone keeps serving; the outage is logged once when it
//! begins and once when it ends, and [`ApiStatus`] (status.rs) shows it.
//!
//! The watch feeds the cluster zone through [`ClusterSink`], which the zone implements: the
//! zones source imports this module, never the other way (STYLE.md, rule 13).
//!
//! The API access this needs (the ClusterRole): `list` and `watch` on `services`, `namespaces`
//! and, with `pods = "verified"`, `pods` (core group), and on `endpointslices`
//! (`discovery.k8s.io`). Nothing else: the reachability probe is a `list` too.

mod follow;
mod slim;
mod status;
mod store;
#[cfg(test)]
mod tests;
mod trim;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hickory_proto::rr::Name;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::records::{ObjectRefs, Part};
use crate::sources::kubernetes::config::KubernetesApi;
use follow::follow;
use slim::{NamespaceObject, PodObject, ServiceObject, SliceObject};
use status::unix_seconds;
use store::{Feed, Snapshot};
use trim::Kind;

pub use status::ApiStatus;

/// How long changes are gathered before the parts they touch are rebuilt. Short, because a
/// change shows after this plus the rebuild (benches/cluster_scale.sh at 100,000 endpoints: a
/// change shows in some 20 ms at p99). A burst of events still gives few rebuilds: while one
/// is in flight the changes gather, and the next build takes them all.
const COALESCE: Duration = Duration::from_millis(10);

/// Updates waiting for the feed; a kind's task waits when it is full.
const UPDATE_QUEUE: usize = 4096;

/// What the watch feeds: the cluster zone, as far as the watch needs to know it. The zone
/// (`sources::zones::cluster::Cluster`) implements it, and is handed to [`watch`] as one; so
/// the zones source imports this module, and this module nothing of the zones source.
pub trait ClusterSink: Send + Sync + 'static {
    /// The cluster domain, for the logs.
    fn domain(&self) -> &Name;

    /// How to reach the API, and where to tell how the watch is doing; `None` when the
    /// objects come from manifests, and there is nothing to watch.
    fn api(&self) -> Option<(&KubernetesApi, &ApiStatus)>;

    /// Whether the records are made from Pod objects too (`pods = "verified"`), so that pods
    /// are watched; otherwise they are not, which spares the memory of every pod.
    fn needs_pods(&self) -> bool;

    /// Builds the zone from `objects` and swaps it in whole, bumping the cluster's data version
    /// so that replies built from the old one are no longer reused. False (and the last zone
    /// kept) if the objects give no zone.
    fn install_objects(&self, objects: &ObjectRefs<'_>) -> bool;

    /// Rebuilds `parts` of the zone installed last from `objects` (their objects, and an entry
    /// for every namespace that exists: `records::Part`), and the apex; swaps the result in
    /// and bumps the data version as [`ClusterSink::install_objects`] does. False (and the
    /// last zone kept) if there is no zone to change yet.
    fn install_parts(&self, parts: &[Part], objects: &ObjectRefs<'_>) -> bool;
}

/// How long the watch waits on the API. Why not kube's 290 s and 295 s: a connection that
/// dies without a reset (a node cut off, a load balancer that drops its state) is only noticed
/// when a read times out, and until then the cluster zone stays as it was, with no warning.
/// client-go notices within about 45 s by HTTP/2 pings, which kube's client does not send;
/// with the defaults a dead connection is dropped within a minute, for four light requests a
/// minute (one per watched kind) that a healthy API server answers from its watch cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchTimeouts {
    /// How long one watch request runs (`timeoutSeconds`, in whole seconds, under kube's limit
    /// of 295) before the API server ends it and the watcher starts the next from the last
    /// resourceVersion.
    pub renewal: Duration,
    /// How long a read from the API may wait for a byte before the connection is given up.
    /// Per read, so a long list that keeps streaming is not cut.
    pub read: Duration,
}

impl Default for WatchTimeouts {
    /// 55 s and 60 s: see [`WatchTimeouts`].
    fn default() -> Self {
        Self {
            renewal: Duration::from_secs(55),
            read: Duration::from_secs(60),
        }
    }
}

impl WatchTimeouts {
    /// [`WatchTimeouts::renewal`] as the API takes it: whole seconds, at least one.
    fn renewal_seconds(&self) -> u32 {
        u32::try_from(self.renewal.as_secs())
            .unwrap_or(u32::MAX)
            .max(1)
    }
}

/// Why no client could be made for `kubernetes.api`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "kubernetes.api = \"in-cluster\": {0} (is Hearth running in a pod with its service \
         account token mounted?)"
    )]
    InCluster(#[source] kube::config::InClusterError),
    #[error("kubernetes.api: the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubernetes.api: {url:?} is not a usable URL: {reason}")]
    Url { url: String, reason: String },
    #[error("kubernetes.api: cannot make a client for {cluster}: {source}")]
    Client {
        cluster: String,
        #[source]
        source: kube::Error,
    },
}

/// A client for the API `api` names: the pod's service account, a kubeconfig file at its
/// current context, or a plain URL without credentials (`kubectl proxy`, tests).
pub async fn client(api: &KubernetesApi) -> Result<Client, ClientError> {
    client_with(api, WatchTimeouts::default()).await
}

/// [`client`], its reads bounded by `timeouts`.
async fn client_with(api: &KubernetesApi, timeouts: WatchTimeouts) -> Result<Client, ClientError> {
    let config = match api {
        KubernetesApi::InCluster => kube::Config::incluster().map_err(ClientError::InCluster)?,
        KubernetesApi::Kubeconfig(path) => {
            let kubeconfig_error = |source| ClientError::Kubeconfig {
                path: path.clone(),
                source,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig_error)?
        }
        KubernetesApi::Url(url) => {
            let uri = url.parse().map_err(|error| ClientError::Url {
                url: url.clone(),
                reason: format!("{error}"),
            })?;
            kube::Config::new(uri)
        }
    };
    let mut config = config;
    config.read_timeout = Some(timeouts.read);
    let cluster = config.cluster_url.to_string();
    Client::try_from(config).map_err(|source| ClientError::Client { cluster, source })
}

/// Feeds `cluster` from the Kubernetes API until `stop` is cancelled; returns at once if the
/// cluster's objects come from manifests, or if a watch already feeds it (so this can be
/// called for every new set of sources). The cluster bumps its own data version with every
/// zone installed, so the UDP fast path forgets replies built from the old one.
///
/// A client that cannot be made (no service account, a broken kubeconfig) is logged as an
/// error naming `kubernetes.api`; the cluster then stays unloaded (SERVFAIL, not ready).
pub async fn watch<C: ClusterSink>(cluster: Arc<C>, stop: CancellationToken) {
    watch_with(cluster, WatchTimeouts::default(), stop).await;
}

/// [`watch`], waiting on the API as `timeouts` say rather than as in production (tests).
pub async fn watch_with<C: ClusterSink>(
    cluster: Arc<C>,
    timeouts: WatchTimeouts,
    stop: CancellationToken,
) {
    follow_the_api(cluster, timeouts, stop).await;
}

/// [`watch_with`] for any [`ClusterSink`], compiled once rather than once for each.
async fn follow_the_api(
    cluster: Arc<dyn ClusterSink>,
    timeouts: WatchTimeouts,
    stop: CancellationToken,
) {
    let Some((api, status)) = cluster.api() else {
        return;
    };
    if status.started.swap(true, Ordering::AcqRel) {
        return;
    }
    let client = tokio::select! {
        _ = stop.cancelled() => return,
        client = client_with(api, timeouts) => client,
    };
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(
                domain = %cluster.domain(),
                "{error}; names in the cluster domain answer SERVFAIL"
            );
            return;
        }
    };

    let installer = match Installer::start(Arc::clone(&cluster)) {
        Ok(installer) => installer,
        Err(error) => {
            tracing::error!(%error, "cannot start the thread that builds the cluster zone");
            return;
        }
    };
    // The kinds' tasks end with this function, however it ends.
    let kinds_stop = stop.child_token();
    let _stop_kinds = kinds_stop.clone().drop_guard();
    let (sender, mut updates) = mpsc::channel(UPDATE_QUEUE);
    let mut kinds = vec![Kind::Service, Kind::EndpointSlice, Kind::Namespace];
    tokio::spawn(follow::<ServiceObject>(
        Api::all(client.clone()),
        timeouts,
        sender.clone(),
        kinds_stop.clone(),
    ));
    tokio::spawn(follow::<SliceObject>(
        Api::all(client.clone()),
        timeouts,
        sender.clone(),
        kinds_stop.clone(),
    ));
    tokio::spawn(follow::<NamespaceObject>(
        Api::all(client.clone()),
        timeouts,
        sender.clone(),
        kinds_stop.clone(),
    ));
    if cluster.needs_pods() {
        kinds.push(Kind::Pod);
        tokio::spawn(follow::<PodObject>(
            Api::all(client.clone()),
            timeouts,
            sender.clone(),
            kinds_stop.clone(),
        ));
    }
    drop(sender);
    tracing::info!(
        domain = %cluster.domain(),
        ?api,
        kinds = ?kinds.iter().map(|kind| kind.plural()).collect::<Vec<_>>(),
        "watching the Kubernetes API"
    );

    let began = Instant::now();
    let mut feed = Feed::new(&kinds);
    let mut due: Option<Instant> = None;
    let mut installing: Option<oneshot::Receiver<bool>> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            update = updates.recv() => {
                let Some(update) = update else { break };
                if feed.apply(update, status) && due.is_none() {
                    due = Some(Instant::now() + COALESCE);
                }
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)),
                if due.is_some() && installing.is_none() && feed.is_listed() =>
            {
                due = None;
                installing = Some(installer.install(feed.take_changes()));
            }
            installed = finished(&mut installing) => {
                installing = None;
                let Ok(installed) = installed else {
                    tracing::error!("the thread that builds the cluster zone is gone");
                    break;
                };
                if !installed {
                    feed.not_installed();
                }
                if installed && status.synced_at.load(Ordering::Acquire) == 0 {
                    status
                        .synced_at
                        .store(unix_seconds(SystemTime::now()), Ordering::Release);
                    tracing::info!(
                        domain = %cluster.domain(),
                        elapsed = ?began.elapsed(),
                        "first sync with the Kubernetes API: cluster names are answered"
                    );
                }
            }
        }
        status
            .connected
            .store(feed.is_connected(), Ordering::Release);
    }
}

/// Waits for the install in flight, if any; never ready without one.
async fn finished(
    installing: &mut Option<oneshot::Receiver<bool>>,
) -> Result<bool, oneshot::error::RecvError> {
    match installing {
        Some(installed) => installed.await,
        None => std::future::pending().await,
    }
}

/// Builds zones and swaps them in, on one thread of its own for the life of the watch.
///
/// Not the blocking pool: glibc gives each thread its own malloc arena, and a build at
/// 100,000 endpoints frees its temporaries (some 70 MiB; 220 MiB when the zone was made of
/// hickory `Record`s) into whichever arena it ran in. Spread over the pool's threads, each
/// arena kept a build's worth: RSS 958 MiB after 12 rebuilds of the `Record` zone, 545 MiB on
/// this one thread; with mimalloc and the stores kept as entries, 55 MiB after 100 rebuilds
/// (benches/cluster_scale.sh).
struct Installer {
    jobs: std::sync::mpsc::Sender<(Snapshot, oneshot::Sender<bool>)>,
}

impl Installer {
    fn start(cluster: Arc<dyn ClusterSink>) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<(Snapshot, oneshot::Sender<bool>)>();
        std::thread::Builder::new()
            .name("cluster-install".to_owned())
            .spawn(move || {
                // Ends when the watch drops `jobs`.
                for (snapshot, done) in queue {
                    let installed = match &snapshot.parts {
                        None => cluster.install_objects(&snapshot.objects()),
                        Some(parts) => cluster.install_parts(parts, &snapshot.objects()),
                    };
                    let _ = done.send(installed);
                    crate::memory::release_after_load();
                }
            })?;
        Ok(Self { jobs })
    }

    /// Starts building `snapshot`; the receiver tells whether it was installed.
    fn install(&self, snapshot: Snapshot) -> oneshot::Receiver<bool> {
        let (done, installed) = oneshot::channel();
        // If the thread is gone, `done` is dropped with the job and `installed` says so.
        let _ = self.jobs.send((snapshot, done));
        installed
    }
}
