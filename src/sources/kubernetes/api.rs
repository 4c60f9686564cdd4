//! The live feed of the cluster zone: a list-then-watch of the Kubernetes API, as CoreDNS's
//! `kubernetes` plugin does, into the same record builder as manifests.
//!
//! ```text
//!  one kube::runtime::watcher per kind, each in its own task:
//!    Services, EndpointSlices (discovery.k8s.io/v1), Namespaces, Pods (pods = "verified")
//!    list (500 a page) -> watch from the list's resourceVersion; a cut stream is watched again
//!    from the last resourceVersion; 410 Gone -> list again; errors -> backoff (0.8 s .. 30 s)
//!        │  Update: listed / applied / deleted objects (slimmed), errors, recoveries
//!        ▼  mpsc
//!  Feed: one store per kind, namespace/name -> object; a re-list fills a new store and
//!        replaces the old one when it is complete, so answers never see half a list
//!        │  once every kind has been listed; then at most every COALESCE after a change
//!        ▼  the `cluster-install` thread
//!  Cluster::install_refs(the stores' objects, borrowed) -> records::build_into -> Zone
//!  swapped in; the cluster's data version bumped
//! ```
//!
//! Until every kind has completed its first list nothing is installed: names in the cluster
//! domain answer SERVFAIL and [`Cluster::is_loaded`] is false (checklist row 17). While the API
//! is unreachable the last zone keeps serving; the outage is logged once when it begins and
//! once when it ends, and [`ApiStatus`] shows it.
//!
//! The API access this needs (the ClusterRole): `list` and `watch` on `services`, `namespaces`
//! and, with `pods = "verified"`, `pods` (core group), and on `endpointslices`
//! (`discovery.k8s.io`). Nothing else: the reachability probe is a `list` too.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{
    Namespace, Pod, PodCondition, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[cfg(test)]
use super::objects::ClusterObjects;
use super::records::ObjectRefs;
use crate::config::KubernetesApi;
use crate::sources::zones::cluster::Cluster;

/// How long changes are gathered before a new zone is built: a burst of events (a rollout, a
/// re-list) gives one rebuild. A change shows after this plus the rebuild, which is the cost at
/// scale (benches/cluster_scale.sh, 2 cores): 0.32 to 0.38 s in all at 100,000 endpoints, of
/// which some 0.25 s in `records::build_into` and the zone it makes.
const COALESCE: Duration = Duration::from_millis(100);

/// Updates waiting for the feed; a kind's task waits when it is full.
const UPDATE_QUEUE: usize = 4096;

/// While a kind's requests fail, how often its API is asked whether it answers again (a `list`
/// of one object), and how long that may take.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one watch request runs (`timeoutSeconds`) before the API server ends it and the
/// watcher starts the next from the last resourceVersion, and how long a read from the API may
/// wait for a byte. Why not kube's 290 s and 295 s: a connection that dies without a reset (a
/// node cut off, a load balancer that drops its state) is only noticed when a read times out,
/// and until then the cluster zone stays as it was, with no warning. client-go notices within
/// about 45 s by HTTP/2 pings, which kube's client does not send; with these a dead connection
/// is dropped within a minute, for four light requests a minute (one per watched kind) that a
/// healthy API server answers from its watch cache. The read timeout is per read, so a long
/// list that keeps streaming is not cut.
const WATCH_TIMEOUT_SECONDS: u32 = 55;
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// After a watch request answered HTTP 410 Gone, the wait before listing again.
const RELIST_DELAY: Duration = Duration::from_secs(1);

/// The label that ties an EndpointSlice to its service (the only one records use).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How the watch of the API is doing, for metrics. Counters only go up; all kinds together.
///
/// Installs (zones built and swapped in) are counted by [`Cluster::reload_stats`], as for
/// manifests; readiness is [`Cluster::is_loaded`].
#[derive(Debug, Default)]
pub struct ApiStatus {
    /// Set once a watch runs for this cluster, so it never runs twice.
    started: AtomicBool,
    connected: AtomicBool,
    watch_errors: AtomicU64,
    events: AtomicU64,
    lists: AtomicU64,
    /// Unix seconds of the first install; 0 before it.
    synced_at: AtomicU64,
    /// Unix seconds when the current outage began; 0 when there is none.
    outage_began: AtomicU64,
}

impl ApiStatus {
    /// Whether the API is feeding the zone now: every kind has been listed once and no kind's
    /// requests are failing. False before the first sync and during an outage (the API server
    /// unreachable, refusing, or answering errors), true again as soon as the failing kinds'
    /// API answers. A watch that expires (410 Gone) and lists again is not an outage.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Everything that went wrong with a list or a watch: failed requests, cut streams, ERROR
    /// events, expired watches (410 Gone, normal every few minutes on a busy cluster).
    pub fn watch_errors_total(&self) -> u64 {
        self.watch_errors.load(Ordering::Relaxed)
    }

    /// Objects received: listed, added, modified or deleted.
    pub fn events_total(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Complete lists: one per kind at the start, then one per kind for each re-list (after a
    /// 410 Gone). Rising fast means watches keep expiring.
    pub fn lists_total(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// Unix seconds up to which the served zone is known to match the API: now while
    /// [`connected`](Self::connected), the moment the outage began during one, 0 before the
    /// first sync. `time() - this` is how stale the answers may be.
    pub fn last_sync_unix_seconds(&self) -> u64 {
        if self.synced_at.load(Ordering::Acquire) == 0 {
            return 0;
        }
        if self.connected() {
            return unix_seconds(SystemTime::now());
        }
        match self.outage_began.load(Ordering::Acquire) {
            0 => self.synced_at.load(Ordering::Acquire),
            began => began,
        }
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
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
    config.read_timeout = Some(READ_TIMEOUT);
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
pub async fn watch(cluster: Arc<Cluster>, stop: CancellationToken) {
    let (Some(api), Some(status)) = (cluster.api(), cluster.api_status()) else {
        return;
    };
    if status.started.swap(true, Ordering::AcqRel) {
        return;
    }
    let client = tokio::select! {
        _ = stop.cancelled() => return,
        client = client(api) => client,
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
    tokio::spawn(follow::<Service>(
        Api::all(client.clone()),
        sender.clone(),
        kinds_stop.clone(),
    ));
    tokio::spawn(follow::<EndpointSlice>(
        Api::all(client.clone()),
        sender.clone(),
        kinds_stop.clone(),
    ));
    tokio::spawn(follow::<Namespace>(
        Api::all(client.clone()),
        sender.clone(),
        kinds_stop.clone(),
    ));
    if cluster.needs_pods() {
        kinds.push(Kind::Pod);
        tokio::spawn(follow::<Pod>(
            Api::all(client.clone()),
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
                installing = Some(installer.install(feed.snapshot()));
            }
            installed = finished(&mut installing) => {
                installing = None;
                let Ok(installed) = installed else {
                    tracing::error!("the thread that builds the cluster zone is gone");
                    break;
                };
                if installed {
                    if status.synced_at.load(Ordering::Acquire) == 0 {
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
/// this one thread; 270 MiB now (benches/cluster_scale.sh).
struct Installer {
    jobs: std::sync::mpsc::Sender<(Snapshot, oneshot::Sender<bool>)>,
}

impl Installer {
    fn start(cluster: Arc<Cluster>) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<(Snapshot, oneshot::Sender<bool>)>();
        std::thread::Builder::new()
            .name("cluster-install".to_owned())
            .spawn(move || {
                // Ends when the watch drops `jobs`.
                for (snapshot, done) in queue {
                    let _ = done.send(cluster.install_refs(&snapshot.objects()));
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

// ---------------------------------------------------------------------------------------------
// One task per kind.

/// The kinds watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Service,
    EndpointSlice,
    Namespace,
    Pod,
}

impl Kind {
    /// The resource's name in the API (and in a ClusterRole).
    fn plural(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
        }
    }
}

/// An object of a watched kind, slimmed; boxed, as kinds differ much in size.
enum Object {
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Namespace(Box<Namespace>),
    Pod(Box<Pod>),
}

/// What a kind's task tells the feed.
enum Update {
    /// A (re-)list begins: the objects that follow replace the kind's store once complete.
    Listing(Kind),
    Listed(Object),
    ListDone(Kind),
    Applied(Object),
    Deleted(Object),
    /// A request for this kind failed: the API is unreachable, refuses or errs.
    Failed(Kind, String),
    /// Something went wrong that the watch itself recovers from: a cut stream (watched again
    /// from the last resourceVersion) or an expired watch (listed again).
    Recovering(Kind, String),
    /// The kind's API answers again after [`Update::Failed`].
    Answers(Kind),
}

/// A kind the records are built from, and what of it they read.
trait Watched:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const KIND: Kind;

    /// The object reduced to the fields `records::build` reads: a real cluster's objects carry
    /// managed fields, annotations (a `kubectl apply` leaves a copy of the whole object there),
    /// container specs and statuses that would take most of the memory. The `slimmed_objects_*`
    /// tests check that the records are the same.
    fn slim(self) -> Self;

    fn into_object(self) -> Object;
}

/// The metadata records read: namespace, name, deletion time, and the labels `keep_label`
/// keeps.
fn slim_metadata(metadata: ObjectMeta, keep_label: impl Fn(&str) -> bool) -> ObjectMeta {
    ObjectMeta {
        name: metadata.name,
        namespace: metadata.namespace,
        labels: metadata.labels.map(|labels| {
            labels
                .into_iter()
                .filter(|(key, _)| keep_label(key))
                .collect()
        }),
        deletion_timestamp: metadata.deletion_timestamp,
        ..ObjectMeta::default()
    }
}

impl Watched for Service {
    const KIND: Kind = Kind::Service;

    fn slim(self) -> Self {
        Service {
            metadata: slim_metadata(self.metadata, |_| false),
            spec: self.spec.map(|spec| ServiceSpec {
                type_: spec.type_,
                external_name: spec.external_name,
                cluster_ip: spec.cluster_ip,
                cluster_ips: spec.cluster_ips,
                ports: spec.ports.map(|ports| {
                    ports
                        .into_iter()
                        .map(|port| ServicePort {
                            name: port.name,
                            protocol: port.protocol,
                            port: port.port,
                            ..ServicePort::default()
                        })
                        .collect()
                }),
                publish_not_ready_addresses: spec.publish_not_ready_addresses,
                selector: spec.selector,
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn into_object(self) -> Object {
        Object::Service(Box::new(self))
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;

    fn slim(self) -> Self {
        EndpointSlice {
            metadata: slim_metadata(self.metadata, |key| key == SERVICE_NAME_LABEL),
            address_type: self.address_type,
            endpoints: self
                .endpoints
                .into_iter()
                .map(|endpoint| Endpoint {
                    addresses: endpoint.addresses,
                    conditions: endpoint.conditions.map(|conditions| EndpointConditions {
                        ready: conditions.ready,
                        ..EndpointConditions::default()
                    }),
                    hostname: endpoint.hostname,
                    ..Endpoint::default()
                })
                .collect(),
            ports: self.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|port| EndpointPort {
                        name: port.name,
                        protocol: port.protocol,
                        port: port.port,
                        ..EndpointPort::default()
                    })
                    .collect()
            }),
        }
    }

    fn into_object(self) -> Object {
        Object::EndpointSlice(Box::new(self))
    }
}

impl Watched for Namespace {
    const KIND: Kind = Kind::Namespace;

    fn slim(self) -> Self {
        Namespace {
            metadata: slim_metadata(self.metadata, |_| false),
            spec: None,
            status: None,
        }
    }

    fn into_object(self) -> Object {
        Object::Namespace(Box::new(self))
    }
}

impl Watched for Pod {
    const KIND: Kind = Kind::Pod;

    fn slim(self) -> Self {
        Pod {
            metadata: slim_metadata(self.metadata, |_| true),
            spec: self.spec.map(|spec| PodSpec {
                hostname: spec.hostname,
                subdomain: spec.subdomain,
                ..PodSpec::default()
            }),
            status: self.status.map(|status| PodStatus {
                phase: status.phase,
                pod_ip: status.pod_ip,
                pod_ips: status.pod_ips,
                conditions: status.conditions.map(|conditions| {
                    conditions
                        .into_iter()
                        .filter(|condition| condition.type_ == "Ready")
                        .map(|condition| PodCondition {
                            type_: condition.type_,
                            status: condition.status,
                            ..PodCondition::default()
                        })
                        .collect()
                }),
                ..PodStatus::default()
            }),
        }
    }

    fn into_object(self) -> Object {
        Object::Pod(Box::new(self))
    }
}

/// What went wrong with a watch, by what it takes to recover.
enum Trouble {
    /// 410 Gone inside a watch stream, or for a page of a list: the watcher lists again.
    Expired,
    /// 410 Gone as the HTTP status of a watch request: the watcher would ask again from the
    /// same expired resourceVersion forever (kube-runtime 2.0 reads only ERROR events as
    /// expiry), so a new watcher is made, which lists first.
    Gone,
    /// The stream was cut (a restarting API server, a load balancer's idle timeout): the
    /// watcher watches again from the last resourceVersion it saw.
    Cut,
    /// A request failed: the API server is unreachable, refuses (403: the ClusterRole), or errs.
    Failed,
}

impl Trouble {
    fn of(error: &watcher::Error) -> Self {
        use watcher::Error as E;
        match error {
            E::WatchError(status) if status.code == 410 => Trouble::Expired,
            E::InitialListFailed(kube::Error::Api(status)) if status.code == 410 => {
                Trouble::Expired
            }
            E::WatchStartFailed(kube::Error::Api(status))
            | E::WatchFailed(kube::Error::Api(status))
                if status.code == 410 =>
            {
                Trouble::Gone
            }
            // kube reads an HTTP error answer to a watch request as the stream's first item.
            E::WatchFailed(kube::Error::Api(_)) => Trouble::Failed,
            E::WatchFailed(_) => Trouble::Cut,
            _ => Trouble::Failed,
        }
    }
}

/// The watcher of one kind: list, then watch, recovering on its own (with kube's default
/// backoff between attempts).
fn events<K: Watched>(
    api: Api<K>,
) -> impl WatchStreamExt<Item = Result<Event<K>, watcher::Error>> + Send + Unpin {
    let config = watcher::Config::default().timeout(WATCH_TIMEOUT_SECONDS);
    Box::pin(watcher::watcher(api, config).default_backoff())
}

/// The next item of a stream: `StreamExt::next` without depending on `futures`. kube's
/// `WatchStreamExt` is implemented for every `Stream`, and its bound reaches `poll_next`.
async fn next<S: WatchStreamExt + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|context| Pin::new(&mut *stream).poll_next(context)).await
}

type Probe = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// After [`PROBE_INTERVAL`], whether `api` answers a list of one object.
fn probe<K: Watched>(api: Api<K>) -> Probe {
    Box::pin(async move {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let params = ListParams::default().limit(1);
        match tokio::time::timeout(PROBE_TIMEOUT, api.list(&params)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer in {PROBE_TIMEOUT:?}")),
        }
    })
}

/// The result of the probe in flight, if any; never ready without one.
async fn probed(probe: &mut Option<Probe>) -> Result<(), String> {
    match probe {
        Some(probe) => probe.await,
        None => std::future::pending().await,
    }
}

/// Watches one kind and sends what happens to the feed, until `stop`.
async fn follow<K: Watched>(api: Api<K>, updates: mpsc::Sender<Update>, stop: CancellationToken) {
    let mut stream = events(api.clone());
    // While requests fail: the probe that will tell when the API answers again.
    let mut failing: Option<Probe> = None;
    loop {
        let update = tokio::select! {
            _ = stop.cancelled() => return,
            item = next(&mut stream) => match item {
                // The watcher never ends: it retries forever.
                None => return,
                Some(Ok(event)) => {
                    failing = None;
                    match event {
                        Event::Init => Update::Listing(K::KIND),
                        Event::InitApply(object) => Update::Listed(object.slim().into_object()),
                        Event::InitDone => Update::ListDone(K::KIND),
                        Event::Apply(object) => Update::Applied(object.slim().into_object()),
                        Event::Delete(object) => Update::Deleted(object.slim().into_object()),
                    }
                }
                Some(Err(error)) => match Trouble::of(&error) {
                    Trouble::Expired | Trouble::Cut => Update::Recovering(K::KIND, error.to_string()),
                    Trouble::Gone => {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(RELIST_DELAY) => {}
                        }
                        stream = events(api.clone());
                        Update::Recovering(K::KIND, error.to_string())
                    }
                    Trouble::Failed => {
                        if failing.is_none() {
                            failing = Some(probe(api.clone()));
                        }
                        Update::Failed(K::KIND, error.to_string())
                    }
                },
            },
            answered = probed(&mut failing) => match answered {
                Ok(()) => {
                    failing = None;
                    Update::Answers(K::KIND)
                }
                Err(error) => {
                    tracing::debug!(kind = K::KIND.plural(), %error, "the Kubernetes API still fails");
                    failing = Some(probe(api.clone()));
                    continue;
                }
            },
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The feed: the stores, and the outage bookkeeping.

type ObjectKey = (String, String);

/// The objects of one kind, by namespace and name.
struct Store<K> {
    objects: HashMap<ObjectKey, Arc<K>>,
    /// During a (re-)list: the objects listed so far, which replace `objects` when complete.
    listing: Option<HashMap<ObjectKey, Arc<K>>>,
    /// A list has completed once.
    listed: bool,
}

impl<K: kube::Resource> Store<K> {
    fn new() -> Self {
        Self {
            objects: HashMap::new(),
            listing: None,
            listed: false,
        }
    }

    fn key(object: &K) -> ObjectKey {
        let metadata = object.meta();
        (
            metadata.namespace.clone().unwrap_or_default(),
            metadata.name.clone().unwrap_or_default(),
        )
    }

    fn begin_list(&mut self) {
        self.listing = Some(HashMap::new());
    }

    fn listed(&mut self, object: impl Into<Arc<K>>) {
        let object = object.into();
        self.listing
            .get_or_insert_with(HashMap::new)
            .insert(Self::key(&object), object);
    }

    fn end_list(&mut self) {
        if let Some(listing) = self.listing.take() {
            self.objects = listing;
        }
        self.listed = true;
    }

    fn apply(&mut self, object: impl Into<Arc<K>>) {
        let object = object.into();
        self.objects.insert(Self::key(&object), object);
    }

    fn delete(&mut self, object: &K) {
        self.objects.remove(&Self::key(object));
    }

    fn snapshot(&self) -> Vec<Arc<K>> {
        self.objects.values().cloned().collect()
    }
}

/// The objects of one moment, shared with the stores; the zone is built from them in place.
struct Snapshot {
    services: Vec<Arc<Service>>,
    endpoint_slices: Vec<Arc<EndpointSlice>>,
    namespaces: Vec<Arc<Namespace>>,
    pods: Vec<Arc<Pod>>,
}

impl Snapshot {
    /// The objects, borrowed: a copy of them took 60 ms and 67 MiB of each rebuild at 100,000
    /// endpoints (`benches/cluster_scale.sh`).
    fn objects(&self) -> ObjectRefs<'_> {
        fn borrowed<K>(objects: &[Arc<K>]) -> Vec<&K> {
            objects.iter().map(|object| &**object).collect()
        }
        ObjectRefs {
            services: borrowed(&self.services),
            endpoint_slices: borrowed(&self.endpoint_slices),
            pods: borrowed(&self.pods),
            namespaces: borrowed(&self.namespaces),
        }
    }
}

struct Feed {
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    namespaces: Store<Namespace>,
    /// `None` when pods are not watched.
    pods: Option<Store<Pod>>,
    /// The kinds whose requests fail now.
    failing: HashSet<Kind>,
    /// When the current outage began.
    outage: Option<Instant>,
}

impl Feed {
    fn new(kinds: &[Kind]) -> Self {
        Self {
            services: Store::new(),
            endpoint_slices: Store::new(),
            namespaces: Store::new(),
            pods: kinds.contains(&Kind::Pod).then(Store::new),
            failing: HashSet::new(),
            outage: None,
        }
    }

    /// Every kind has completed a list: the zone can be built.
    fn is_listed(&self) -> bool {
        self.services.listed
            && self.endpoint_slices.listed
            && self.namespaces.listed
            && self.pods.as_ref().is_none_or(|pods| pods.listed)
    }

    fn is_connected(&self) -> bool {
        self.is_listed() && self.failing.is_empty()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            services: self.services.snapshot(),
            endpoint_slices: self.endpoint_slices.snapshot(),
            namespaces: self.namespaces.snapshot(),
            pods: self.pods.as_ref().map(Store::snapshot).unwrap_or_default(),
        }
    }

    /// Applies one update; true if the served objects changed.
    fn apply(&mut self, update: Update, status: &ApiStatus) -> bool {
        match update {
            Update::Listing(kind) => {
                self.answered(kind, status);
                match kind {
                    Kind::Service => self.services.begin_list(),
                    Kind::EndpointSlice => self.endpoint_slices.begin_list(),
                    Kind::Namespace => self.namespaces.begin_list(),
                    Kind::Pod => self.pods.iter_mut().for_each(Store::begin_list),
                }
                false
            }
            Update::Listed(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                match object {
                    Object::Service(object) => self.services.listed(object),
                    Object::EndpointSlice(object) => self.endpoint_slices.listed(object),
                    Object::Namespace(object) => self.namespaces.listed(object),
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            pods.listed(object);
                        }
                    }
                }
                false
            }
            Update::ListDone(kind) => {
                status.lists.fetch_add(1, Ordering::Relaxed);
                self.answered(kind, status);
                match kind {
                    Kind::Service => self.services.end_list(),
                    Kind::EndpointSlice => self.endpoint_slices.end_list(),
                    Kind::Namespace => self.namespaces.end_list(),
                    Kind::Pod => self.pods.iter_mut().for_each(Store::end_list),
                }
                tracing::debug!(kind = kind.plural(), "listed");
                true
            }
            Update::Applied(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                let kind = match object {
                    Object::Service(object) => {
                        self.services.apply(object);
                        Kind::Service
                    }
                    Object::EndpointSlice(object) => {
                        self.endpoint_slices.apply(object);
                        Kind::EndpointSlice
                    }
                    Object::Namespace(object) => {
                        self.namespaces.apply(object);
                        Kind::Namespace
                    }
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            pods.apply(object);
                        }
                        Kind::Pod
                    }
                };
                self.answered(kind, status);
                true
            }
            Update::Deleted(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                let kind = match object {
                    Object::Service(object) => {
                        self.services.delete(&object);
                        Kind::Service
                    }
                    Object::EndpointSlice(object) => {
                        self.endpoint_slices.delete(&object);
                        Kind::EndpointSlice
                    }
                    Object::Namespace(object) => {
                        self.namespaces.delete(&object);
                        Kind::Namespace
                    }
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            pods.delete(&object);
                        }
                        Kind::Pod
                    }
                };
                self.answered(kind, status);
                true
            }
            Update::Recovering(kind, error) => {
                status.watch_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(kind = kind.plural(), %error, "watch interrupted; resuming");
                false
            }
            Update::Failed(kind, error) => {
                status.watch_errors.fetch_add(1, Ordering::Relaxed);
                let began = self.failing.is_empty();
                self.failing.insert(kind);
                if began {
                    self.outage = Some(Instant::now());
                    status
                        .outage_began
                        .store(unix_seconds(SystemTime::now()), Ordering::Release);
                    let serving = if status.synced_at.load(Ordering::Acquire) == 0 {
                        "cluster names answer SERVFAIL until the first sync"
                    } else {
                        "cluster names are answered from the last state until it answers again"
                    };
                    tracing::warn!(
                        kind = kind.plural(),
                        %error,
                        "the Kubernetes API fails; {serving}"
                    );
                } else {
                    tracing::debug!(kind = kind.plural(), %error, "the Kubernetes API still fails");
                }
                false
            }
            Update::Answers(kind) => {
                self.answered(kind, status);
                false
            }
        }
    }

    /// `kind`'s API answered: the end of the outage if it was the last kind failing.
    fn answered(&mut self, kind: Kind, status: &ApiStatus) {
        if self.failing.remove(&kind) && self.failing.is_empty() {
            status.outage_began.store(0, Ordering::Release);
            let lasted = self.outage.take().map(|began| began.elapsed());
            tracing::info!(?lasted, "the Kubernetes API answers again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kubernetes::objects::{parse_manifest, read_dir};
    use crate::sources::kubernetes::records::{self, ClusterSettings, PodMode};
    use std::path::Path;

    fn settings(pods: PodMode) -> ClusterSettings {
        ClusterSettings {
            domain: hickory_proto::rr::Name::from_ascii("cluster.local.").unwrap(),
            ttl: 5,
            pods,
        }
    }

    fn slimmed(objects: &ClusterObjects) -> ClusterObjects {
        ClusterObjects {
            services: objects
                .services
                .iter()
                .cloned()
                .map(Watched::slim)
                .collect(),
            endpoint_slices: objects
                .endpoint_slices
                .iter()
                .cloned()
                .map(Watched::slim)
                .collect(),
            pods: objects.pods.iter().cloned().map(Watched::slim).collect(),
            namespaces: objects
                .namespaces
                .iter()
                .cloned()
                .map(Watched::slim)
                .collect(),
        }
    }

    /// The records from `objects` and from their slimmed copies are the same, in every pod
    /// mode: slimming keeps everything `records::build` reads.
    fn assert_slimming_keeps_the_records(objects: &ClusterObjects) {
        let slim = slimmed(objects);
        for pods in [PodMode::Disabled, PodMode::Insecure, PodMode::Verified] {
            let full = records::build(objects, &settings(pods));
            let thin = records::build(&slim, &settings(pods));
            assert_eq!(full.records, thin.records, "{pods:?}");
            assert_eq!(full.empty_names, thin.empty_names, "{pods:?}");
            assert_eq!(full.reverse, thin.reverse, "{pods:?}");
        }
    }

    #[test]
    fn slimmed_objects_give_the_same_records_for_a_live_cluster() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kubernetes/live/cluster.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut objects = ClusterObjects::default();
        let problems = parse_manifest(&text, "cluster.yaml", &mut objects);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            (
                objects.namespaces.len(),
                objects.services.len(),
                objects.endpoint_slices.len(),
                objects.pods.len()
            ),
            (3, 5, 4, 6)
        );
        assert_slimming_keeps_the_records(&objects);
        // And slimming is worth it: what is kept is a fraction of what came.
        let size = |objects: &ClusterObjects| {
            serde_json::to_string(&objects.pods).unwrap().len()
                + serde_json::to_string(&objects.services).unwrap().len()
                + serde_json::to_string(&objects.endpoint_slices)
                    .unwrap()
                    .len()
        };
        let (full, slim) = (size(&objects), size(&slimmed(&objects)));
        assert!(slim * 2 < full, "{slim} bytes of {full}");
    }

    #[test]
    fn slimmed_objects_give_the_same_records_for_the_examples() {
        for dir in ["zones/cluster", "tests/data/kubernetes/example"] {
            let (objects, problems) =
                read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            assert!(!objects.pods.is_empty());
            assert_slimming_keeps_the_records(&objects);
        }
    }

    fn service(name: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    fn names(store: &Store<Service>) -> Vec<String> {
        let mut names: Vec<String> = store.objects.keys().map(|(_, name)| name.clone()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_relist_replaces_the_store_only_when_complete() {
        let mut store = Store::new();
        store.begin_list();
        store.listed(service("a"));
        store.listed(service("b"));
        assert!(
            !store.listed && names(&store).is_empty(),
            "nothing before the list ends"
        );
        store.end_list();
        assert!(store.listed);
        assert_eq!(names(&store), ["a", "b"]);
        store.apply(service("c"));
        store.delete(&service("a"));
        assert_eq!(names(&store), ["b", "c"]);

        // A re-list: the old objects serve until it is complete, then what it did not list
        // is gone.
        store.begin_list();
        store.listed(service("c"));
        store.listed(service("d"));
        assert_eq!(names(&store), ["b", "c"]);
        store.end_list();
        assert_eq!(names(&store), ["c", "d"]);
    }

    #[test]
    fn outages_begin_with_a_failure_and_end_when_every_kind_answers() {
        let status = ApiStatus::default();
        let mut feed = Feed::new(&[Kind::Service, Kind::EndpointSlice, Kind::Namespace]);
        for kind in [Kind::Service, Kind::EndpointSlice, Kind::Namespace] {
            assert!(!feed.is_listed());
            feed.apply(Update::Listing(kind), &status);
            assert!(feed.apply(Update::ListDone(kind), &status));
        }
        assert!(feed.is_connected());
        feed.apply(Update::Recovering(Kind::Service, "cut".into()), &status);
        assert!(feed.is_connected(), "a cut stream is no outage");
        feed.apply(Update::Failed(Kind::Service, "refused".into()), &status);
        feed.apply(Update::Failed(Kind::Namespace, "refused".into()), &status);
        assert!(!feed.is_connected());
        assert!(status.outage_began.load(Ordering::Relaxed) > 0);
        feed.apply(Update::Answers(Kind::Service), &status);
        assert!(!feed.is_connected(), "namespaces still fail");
        feed.apply(Update::Applied(Object::Namespace(Box::default())), &status);
        assert!(feed.is_connected(), "an event is an answer");
        assert_eq!(status.outage_began.load(Ordering::Relaxed), 0);
        assert_eq!(status.watch_errors_total(), 3);
        assert_eq!(status.lists_total(), 3);
    }
}
