//! The cluster zone fed by a live Kubernetes API: the real `kube` client listing and watching
//! a fake API server on loopback (`tests/common/apiserver.rs`), through the real server.
//!
//! - The watch itself: nothing answered before every kind has been listed, each event type
//!   changing answers, bookmarks, silent connections, cut streams, expired watches (410 Gone in
//!   the stream and as the HTTP status), the API going away and coming back, clients that
//!   cannot be made.
//! - The checklist of `shared/docs/KUBERNETES-DNS.md`, the same table of cases as the manifests
//!   feed runs (tests/common/kubernetes.rs), from the same objects served by the API; then
//!   what only this feed shows: which kinds are watched, and pods coming and going.
//!
//! Changes are waited for by polling (`eventually`, up to `PATIENCE`); no test asserts how long
//! anything took, but for the silent watch, which runs in paused time. The scale measurement is
//! `benches/cluster_scale.rs`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::apiserver::{FakeApiServer, Resource};
use common::kubernetes::*;
use common::*;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use hearth::chain::{DataVersion, DataVersions, Outcome, Question};
use hearth::sources::kubernetes::api::{self, WatchTimeouts};
use hearth::sources::kubernetes::config::{
    KubernetesApi, KubernetesConfig, KubernetesFeed, PodMode,
};
use hearth::sources::zones::cluster::Cluster;

async fn hearth(api: &FakeApiServer) -> Hearth {
    start_hearth(Feed::Api(&api.url()), "insecure").await
}

async fn hearth_with(api: &str, pods: &str) -> Hearth {
    start_hearth(Feed::Api(api), pods).await
}

/// The cluster zone alone, fed by `api::watch`, for what the DNS answers cannot show: the
/// readiness (`is_loaded`) and the watch's status.
struct Watched {
    cluster: Arc<Cluster>,
    versions: Arc<DataVersions>,
    version: DataVersion,
    stop: CancellationToken,
}

impl Watched {
    fn start(api: KubernetesApi, pods: PodMode) -> Self {
        Self::start_with(api, pods, WatchTimeouts::default())
    }

    /// With the watch waiting on the API as `timeouts` say.
    fn start_with(api: KubernetesApi, pods: PodMode, timeouts: WatchTimeouts) -> Self {
        let config = KubernetesConfig {
            domain: name("cluster.local."),
            feed: KubernetesFeed::Api(api),
            pods,
            ttl: 5,
            autopath: false,
        };
        let versions = DataVersions::new();
        let version = versions.register("cluster");
        let cluster = Arc::new(Cluster::load(&config, version.clone()));
        let stop = CancellationToken::new();
        tokio::spawn(api::watch_with(
            Arc::clone(&cluster),
            timeouts,
            stop.clone(),
        ));
        Self {
            cluster,
            versions,
            version,
            stop,
        }
    }

    /// The cluster's data version: how many zones were installed.
    fn installed(&self) -> u64 {
        self.versions.stamp(self.version.dependencies())
    }

    fn status(&self) -> &api::ApiStatus {
        self.cluster.api_status().expect("an API feed has a status")
    }

    /// The data of the A records the cluster zone answers for `name`, asked of the zone itself
    /// (no server, no socket); none for anything but a NOERROR answer.
    fn addresses(&self, name: &str) -> Vec<String> {
        let question = Question::new(common::name(name), RecordType::A);
        match self.cluster.lookup(&question) {
            Some(Outcome::Success(answer)) if answer.response_code == ResponseCode::NoError => {
                answer
                    .answers
                    .iter()
                    .map(|record| record.data.to_string())
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The headless `hdls` service's EndpointSlice with these (address, hostname, ready) endpoints.
fn hdls_slice(endpoints: &[(&str, Option<&str>, bool)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(address, hostname, ready)| {
            let mut endpoint = json!({
                "addresses": [address],
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
                "nodeName": "node-1"
            });
            if let Some(hostname) = hostname {
                endpoint["hostname"] = json!(hostname);
            }
            endpoint
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "hdls-7k2xq",
            "namespace": "ns",
            "labels": {"kubernetes.io/service-name": "hdls"}
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]
    })
}

// ---------------------------------------------------------------------------------------------
// The watch.

#[tokio::test]
async fn nothing_is_answered_until_every_kind_is_listed() {
    let api = example_api().await;
    api.hold_lists(Resource::EndpointSlices);
    let watched = Watched::start(KubernetesApi::Url(api.url()), PodMode::Insecure);
    let hearth = hearth(&api).await;
    let addr = hearth.addr();

    // Services and namespaces are listed, EndpointSlices are not: still nothing.
    assert!(
        eventually(|| async {
            api.lists(Resource::Services) >= 2 && api.lists(Resource::Namespaces) >= 2
        })
        .await,
        "both watches list services and namespaces"
    );
    let response = ask(addr, KUBERNETES, RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::ServFail, "row 17");
    let raw = udp_raw(
        addr,
        &query_bytes(77, KUBERNETES, RecordType::A, Some(1232)),
        PATIENCE,
    )
    .await
    .expect("a reply");
    assert_eq!(
        extended_error(&raw).map(|(code, _)| code),
        Some(14),
        "Not Ready (RFC 8914 §4.15)"
    );
    let response = ask(addr, "nothing.nowhere.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        response.response_code,
        ResponseCode::ServFail,
        "not NXDOMAIN either"
    );
    assert_eq!(
        hearth.upstream.queries(),
        0,
        "cluster names are never forwarded"
    );
    assert!(!watched.cluster.is_loaded(), "not ready");
    assert!(!watched.status().connected());
    assert_eq!(watched.status().last_sync_unix_seconds(), 0);
    assert_eq!(watched.installed(), 0, "nothing installed");

    api.release_lists(Resource::EndpointSlices);
    synced(addr).await;
    assert!(eventually(|| async { watched.cluster.is_loaded() }).await);
    let status = watched.status();
    assert!(eventually(|| async { status.connected() }).await);
    // The zone is swapped in (`is_loaded`) on the installer's thread before the watch's loop
    // hears of it and records the sync's time, so that time may trail by a moment.
    assert!(eventually(|| async { status.last_sync_unix_seconds() > 0 }).await);
    assert_eq!(
        status.lists_total(),
        3,
        "services, endpointslices, namespaces"
    );
    assert_eq!(
        status.events_total(),
        8,
        "2 namespaces, 4 services, 2 slices"
    );
    assert!(watched.installed() >= 1, "the fast path is told");
    assert_eq!(
        api.lists(Resource::Pods),
        0,
        "pods are not watched unless verified"
    );
}

#[tokio::test]
async fn added_modified_and_deleted_objects_change_the_answers() {
    let api = example_api().await;
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    let web = "web.default.svc.cluster.local.";
    assert!(until_a(addr, web, &[]).await);

    // ADDED
    api.apply(service("default", "web", "10.96.0.80"));
    assert!(
        until_a(addr, web, &["10.96.0.80"]).await,
        "a new Service shows up"
    );
    assert_eq!(
        ask_ok(addr, "80.0.96.10.in-addr.arpa.", RecordType::PTR).await,
        ["80.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."]
    );

    // MODIFIED
    api.apply(service("default", "web", "10.96.0.81"));
    assert!(
        until_a(addr, web, &["10.96.0.81"]).await,
        "a changed Service"
    );

    // DELETED
    api.delete("Service", "default", "web");
    assert!(until_a(addr, web, &[]).await, "a deleted Service is gone");
    let response = ask(addr, web, RecordType::A).await;
    assert!(has_soa(&response));

    // An endpoint stops being ready; then the slice goes.
    let hdls = "hdls.ns.svc.cluster.local.";
    assert!(until_a(addr, hdls, &["10.0.0.2", "10.0.0.3"]).await);
    api.apply(hdls_slice(&[
        ("10.0.0.2", Some("my-pet"), true),
        ("10.0.0.3", None, false),
    ]));
    assert!(
        until_a(addr, hdls, &["10.0.0.2"]).await,
        "not ready, not answered"
    );
    api.delete("EndpointSlice", "ns", "hdls-7k2xq");
    assert!(
        until_a(addr, hdls, &[]).await,
        "no ready endpoints: NXDOMAIN (row 6)"
    );

    // A namespace of its own makes `<ns>.svc` exist.
    let namespace = "fresh.svc.cluster.local.";
    assert_eq!(
        outcome(addr, namespace, RecordType::A).await.0,
        ResponseCode::NXDomain
    );
    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}}));
    assert!(
        eventually(|| async {
            outcome(addr, namespace, RecordType::A).await == (ResponseCode::NoError, vec![])
        })
        .await,
        "a new Namespace is NODATA (row 14)"
    );
}

#[tokio::test]
async fn bookmarks_are_harmless() {
    let api = example_api().await;
    let watched = Watched::start(KubernetesApi::Url(api.url()), PodMode::Insecure);
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    assert!(eventually(|| async { watched.status().connected() }).await);
    let events = watched.status().events_total();
    let errors = watched.status().watch_errors_total();

    api.bookmark();
    api.apply(service("default", "after-bookmark", "10.96.0.90"));
    api.bookmark();
    assert!(
        until_a(
            addr,
            "after-bookmark.default.svc.cluster.local.",
            &["10.96.0.90"]
        )
        .await
    );
    assert_eq!(
        rdata(&ask(addr, KUBERNETES, RecordType::A).await),
        ["10.96.0.1"]
    );
    assert!(eventually(|| async { watched.status().events_total() == events + 1 }).await);
    assert_eq!(
        watched.status().watch_errors_total(),
        errors,
        "a bookmark is no error"
    );
    assert_eq!(
        watched.status().lists_total(),
        3,
        "nor a reason to list again"
    );
}

/// A connection that dies without a reset (a node cut off, a load balancer dropping its
/// state): the open watches go silent, and only a read timeout can tell. The API server here
/// stops sending on them but answers new requests, as a fresh connection would reach it. With
/// the production timeouts, the watch is given up after a minute of silence and the next one,
/// from the last resourceVersion, brings the change; with kube's defaults it took 295 s.
///
/// The minute passes in paused time: a virtual step at a time, each followed by a real
/// millisecond in the blocking pool (`settle`), during which tokio does not move the paused
/// clock, so that the thread that builds the zone keeps up with it.
#[tokio::test]
async fn a_silent_watch_is_given_up_within_a_minute() {
    let timeouts = WatchTimeouts::default();
    assert!(timeouts.read <= Duration::from_secs(60), "{timeouts:?}");
    let api = example_api().await;
    let watched = Watched::start_with(KubernetesApi::Url(api.url()), PodMode::Insecure, timeouts);
    assert!(
        eventually(|| async { watched.addresses(KUBERNETES) == ["10.96.0.1"] }).await,
        "the example cluster is served"
    );
    let watches = api.watches(Resource::Services);

    tokio::time::pause();
    let silent_since = tokio::time::Instant::now();
    api.set_quiet(true);
    let silent = "silent.default.svc.cluster.local.";
    api.apply(service("default", "silent", "10.96.0.92"));
    let zone = &watched;
    let arrived = |within: Duration| async move {
        let deadline = silent_since + within;
        while tokio::time::Instant::now() < deadline {
            if zone.addresses(silent) == ["10.96.0.92"] {
                return true;
            }
            settle().await;
        }
        false
    };
    assert!(
        !arrived(timeouts.read / 2).await,
        "nothing comes through a silent watch"
    );
    assert!(
        arrived(Duration::from_secs(120)).await,
        "the change arrives through a new watch"
    );
    let took = silent_since.elapsed();
    assert!(
        took <= timeouts.read + Duration::from_secs(10),
        "given up within a minute: {took:?}"
    );
    assert!(api.watches(Resource::Services) > watches, "watched again");
    assert_eq!(
        watched.addresses(KUBERNETES),
        ["10.96.0.1"],
        "and nothing lost"
    );
}

/// In paused time: moves the clock on by a step, then waits a real millisecond in which it
/// stands still (tokio does not auto-advance while a blocking task runs), for what works on
/// threads of its own.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(250)).await;
    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cut_stream_is_watched_again_from_where_it_was() {
    let api = example_api().await;
    let watched = Watched::start(KubernetesApi::Url(api.url()), PodMode::Insecure);
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    assert!(eventually(|| async { watched.status().connected() }).await);
    let lists = api.lists(Resource::Services);
    let watches = api.watches(Resource::Services);

    // The change reaches no open stream; the streams are cut; the watches started again from
    // their last resourceVersion get it from the history.
    api.set_quiet(true);
    api.apply(service("default", "missed", "10.96.0.91"));
    api.cut_watches();
    api.set_quiet(false);
    for _ in 0..5 {
        assert_eq!(
            rdata(&ask(addr, KUBERNETES, RecordType::A).await),
            ["10.96.0.1"]
        );
    }
    assert!(until_a(addr, "missed.default.svc.cluster.local.", &["10.96.0.91"]).await);
    assert!(api.watches(Resource::Services) > watches, "watched again");
    assert_eq!(
        api.lists(Resource::Services),
        lists,
        "without listing again"
    );
    assert!(watched.cluster.is_loaded());
}

#[tokio::test]
async fn an_expired_watch_lists_again_without_losing_state() {
    let api = example_api().await;
    let watched = Watched::start(KubernetesApi::Url(api.url()), PodMode::Insecure);
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    assert!(eventually(|| async { watched.status().connected() }).await);
    let lists = api.lists(Resource::Services);
    let lists_total = watched.status().lists_total();

    // Changes the watches miss; then the history is compacted and every watch gets an ERROR
    // event, 410 Gone: only a new list can tell what happened.
    api.set_quiet(true);
    api.delete("Service", "ns", "ext");
    api.apply(service("default", "relisted", "10.96.0.92"));
    api.expire_watches();
    api.set_quiet(false);
    // While the watches list again, the last state keeps answering.
    let relisted = "relisted.default.svc.cluster.local.";
    assert!(
        eventually(|| async {
            assert_eq!(
                rdata(&ask(addr, KUBERNETES, RecordType::A).await),
                ["10.96.0.1"],
                "the state is never lost"
            );
            outcome(addr, relisted, RecordType::A).await.1 == ["10.96.0.92"]
        })
        .await,
        "the re-list brings the missed Service"
    );
    assert!(
        until_a(addr, "ext.ns.svc.cluster.local.", &[]).await,
        "and the missed deletion"
    );
    assert!(api.lists(Resource::Services) > lists, "listed again");
    assert!(eventually(|| async { watched.status().lists_total() >= lists_total + 3 }).await);
    assert!(
        watched.status().watch_errors_total() >= 3,
        "each expiry is counted"
    );
    assert!(watched.status().connected(), "an expiry is no outage");
}

/// A 410 Gone over a cluster where nothing changed: every kind lists again, the lists share
/// the entries already kept, and no zone is built (at 100,000 endpoints a build is a peak of
/// memory and CPU for nothing); the watch goes on, and the next change shows.
#[tokio::test]
async fn a_relist_of_an_unchanged_cluster_builds_no_zone() {
    let api = example_api().await;
    let watched = Watched::start(KubernetesApi::Url(api.url()), PodMode::Insecure);
    let kubernetes = "kubernetes.default.svc.cluster.local.";
    assert!(eventually(|| async { watched.addresses(kubernetes) == ["10.96.0.1"] }).await);
    assert!(eventually(|| async { watched.status().connected() }).await);
    // Settled: the first list's zone is in, and nothing else is coming.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let installed = watched.installed();
    let lists_total = watched.status().lists_total();

    api.expire_watches();
    assert!(
        eventually(|| async { watched.status().lists_total() >= lists_total + 3 }).await,
        "every kind listed again"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        watched.installed(),
        installed,
        "the same objects: no new zone"
    );
    assert_eq!(watched.addresses(kubernetes), ["10.96.0.1"]);
    assert!(watched.status().connected(), "an expiry is no outage");

    api.apply(service("default", "after", "10.96.0.95"));
    let after = "after.default.svc.cluster.local.";
    assert!(eventually(|| async { watched.addresses(after) == ["10.96.0.95"] }).await);
    assert!(watched.installed() > installed);
}

#[tokio::test]
async fn a_watch_answered_http_410_lists_again() {
    let api = example_api().await;
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    let lists = api.lists(Resource::Services);

    // A change the watches miss; the history is compacted; the streams are cut, and watching
    // again from where they were is answered HTTP 410 Gone (not an ERROR event): only a new
    // list can tell what happened.
    api.set_expired_as_http(true);
    api.set_quiet(true);
    api.apply(service("default", "gone", "10.96.0.93"));
    api.compact();
    api.cut_watches();
    api.set_quiet(false);
    assert!(until_a(addr, "gone.default.svc.cluster.local.", &["10.96.0.93"]).await);
    assert!(
        api.lists(Resource::Services) > lists,
        "listed again, not stuck on 410"
    );
    assert_eq!(
        rdata(&ask(addr, KUBERNETES, RecordType::A).await),
        ["10.96.0.1"]
    );
    // And it goes on watching.
    api.apply(service("default", "later", "10.96.0.94"));
    assert!(until_a(addr, "later.default.svc.cluster.local.", &["10.96.0.94"]).await);
}

#[tokio::test]
async fn the_last_state_serves_while_the_api_is_away() {
    let api = example_api().await;
    let watched = Watched::start(KubernetesApi::Url(api.url()), PodMode::Insecure);
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    let status = watched.status();
    assert!(eventually(|| async { status.connected() }).await);

    api.stop();
    assert!(
        eventually(|| async {
            assert_eq!(
                rdata(&ask(addr, KUBERNETES, RecordType::A).await),
                ["10.96.0.1"],
                "answers keep coming from the last state"
            );
            !status.connected()
        })
        .await,
        "the outage shows"
    );
    assert!(status.watch_errors_total() > 0);
    let last_sync = status.last_sync_unix_seconds();
    assert!(last_sync > 0);
    for _ in 0..5 {
        assert_eq!(
            ask_ok(addr, "_https._tcp.kubernetes.default.svc.cluster.local.", RecordType::SRV).await,
            ["_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        watched.cluster.is_loaded(),
        "still ready: the last state serves"
    );
    assert_eq!(
        status.last_sync_unix_seconds(),
        last_sync,
        "the state is as of the outage"
    );

    // It comes back, having changed meanwhile.
    api.apply(service("default", "meanwhile", "10.96.0.95"));
    api.restart().await;
    assert!(
        until_a(
            addr,
            "meanwhile.default.svc.cluster.local.",
            &["10.96.0.95"]
        )
        .await
    );
    assert!(
        eventually(|| async { status.connected() }).await,
        "connected again"
    );
    assert!(status.last_sync_unix_seconds() >= last_sync);
}

#[tokio::test]
async fn an_unreachable_api_at_start_is_servfail_until_it_answers() {
    let api = example_api().await;
    api.stop();
    let watched = Watched::start(KubernetesApi::Url(api.url()), PodMode::Insecure);
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    assert!(eventually(|| async { watched.status().watch_errors_total() > 0 }).await);
    let response = ask(addr, KUBERNETES, RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::ServFail);
    assert!(!watched.cluster.is_loaded());
    assert!(!watched.status().connected());

    api.restart().await;
    synced(addr).await;
    assert!(
        eventually(|| async { watched.cluster.is_loaded() && watched.status().connected() }).await
    );
}

#[tokio::test]
async fn a_client_that_cannot_be_made_leaves_the_cluster_servfail() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-kubeconfig");
    let hearth = hearth_with(&missing.display().to_string(), "insecure").await;
    let watched = Watched::start(KubernetesApi::Kubeconfig(missing), PodMode::Insecure);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = ask(hearth.addr(), KUBERNETES, RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::ServFail);
    assert!(!watched.cluster.is_loaded());
    assert_eq!(watched.status().watch_errors_total(), 0, "no watch at all");

    // A kubeconfig that is not one.
    let broken = dir.path().join("broken-kubeconfig");
    std::fs::write(&broken, "clusters: [[[\n").unwrap();
    let error = api::client(&KubernetesApi::Kubeconfig(broken.clone()))
        .await
        .err()
        .expect("no client from a broken kubeconfig");
    assert!(
        error.to_string().starts_with(&format!(
            "kubernetes.api: the kubeconfig {}",
            broken.display()
        )),
        "{error}"
    );
    // Not in a pod.
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        let error = api::client(&KubernetesApi::InCluster)
            .await
            .err()
            .expect("not in a pod");
        assert!(
            error
                .to_string()
                .starts_with("kubernetes.api = \"in-cluster\""),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_kubeconfig_file_reaches_the_api() {
    let api = example_api().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
             current-context: test\nusers:\n- name: test\n  user: {{}}\n",
            api.url()
        ),
    )
    .unwrap();
    let hearth = hearth_with(&kubeconfig.display().to_string(), "insecure").await;
    synced(hearth.addr()).await;
}

// ---------------------------------------------------------------------------------------------
// The checklist (shared/docs/KUBERNETES-DNS.md) through the API feed.

#[tokio::test]
async fn the_checklist_from_the_api() {
    run_checklist(ChecklistFeed::Api).await;
}

/// Pods are watched only when the records need them (`pods = "verified"`): row 12's name comes
/// from the EndpointSlice, where the EndpointSlice controller writes the pod's hostname, and
/// `insecure` reads the address from the name. Verified, they come and go.
#[tokio::test]
async fn pods_are_watched_only_when_verified() {
    let api = example_api().await;
    let insecure = hearth(&api).await;
    synced(insecure.addr()).await;
    assert_eq!(
        ask_ok(
            insecure.addr(),
            "busybox-1.subdomain.ns.svc.cluster.local.",
            RecordType::A
        )
        .await,
        ["busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10"],
        "row 12, from the slice"
    );
    assert_eq!(
        ask_ok(
            insecure.addr(),
            "1-2-3-4.ns.pod.cluster.local.",
            RecordType::A
        )
        .await,
        ["1-2-3-4.ns.pod.cluster.local. 5 IN A 1.2.3.4"]
    );
    assert_eq!(api.lists(Resource::Pods), 0, "insecure needs no pods");

    let disabled = hearth_with(&api.url(), "disabled").await;
    synced(disabled.addr()).await;
    assert_eq!(api.lists(Resource::Pods), 0, "nor does disabled");

    let verified = hearth_with(&api.url(), "verified").await;
    let addr = verified.addr();
    synced(addr).await;
    assert!(api.lists(Resource::Pods) >= 1, "verified watches pods");
    assert_eq!(
        ask_ok(addr, "10-0-0-10.ns.pod.cluster.local.", RecordType::A).await,
        ["10-0-0-10.ns.pod.cluster.local. 5 IN A 10.0.0.10"]
    );
    // Pods come and go.
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "newcomer", "namespace": "ns", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.44", "podIPs": [{"ip": "10.0.0.44"}],
                   "conditions": [{"type": "Ready", "status": "True"}]}
    });
    api.apply(pod.clone());
    assert!(until_a(addr, "10-0-0-44.ns.pod.cluster.local.", &["10.0.0.44"]).await);
    pod["status"]["phase"] = json!("Succeeded");
    api.apply(pod);
    assert!(
        until_a(addr, "10-0-0-44.ns.pod.cluster.local.", &[]).await,
        "a finished pod"
    );
}

// ---------------------------------------------------------------------------------------------
// One record builder, two feeds.

#[tokio::test]
async fn the_api_and_the_manifests_give_the_same_answers() {
    // A live cluster's objects, with everything the API server adds, in both feeds.
    let live = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kubernetes/live");
    let api = FakeApiServer::start().await;
    api.apply_yaml(&std::fs::read_to_string(live.join("cluster.yaml")).unwrap());
    let from_api = hearth_with(&api.url(), "verified").await;
    synced(from_api.addr()).await;
    let from_manifests = start_hearth(Feed::Manifests(&live), "verified").await;

    let questions = [
        ("web.apps.svc.cluster.local.", RecordType::A),
        ("web.apps.svc.cluster.local.", RecordType::AAAA),
        ("_http._tcp.web.apps.svc.cluster.local.", RecordType::SRV),
        ("5.100.96.10.in-addr.arpa.", RecordType::PTR),
        (
            "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.",
            RecordType::PTR,
        ),
        ("db.apps.svc.cluster.local.", RecordType::A),
        ("db.apps.svc.cluster.local.", RecordType::AAAA),
        ("db-0.db.apps.svc.cluster.local.", RecordType::AAAA),
        ("db-1.db.apps.svc.cluster.local.", RecordType::A),
        ("_postgres._tcp.db.apps.svc.cluster.local.", RecordType::SRV),
        ("10.2.244.10.in-addr.arpa.", RecordType::PTR),
        ("cache.apps.svc.cluster.local.", RecordType::A),
        ("cache-1.cache.apps.svc.cluster.local.", RecordType::A),
        ("10-244-1-22.cache.apps.svc.cluster.local.", RecordType::A),
        ("docs.apps.svc.cluster.local.", RecordType::CNAME),
        ("10-244-2-10.apps.pod.cluster.local.", RecordType::A),
        ("10-244-2-30.apps.pod.cluster.local.", RecordType::A),
        ("10-244-3-40.apps.pod.cluster.local.", RecordType::A),
        ("empty.svc.cluster.local.", RecordType::A),
        ("kubernetes.default.svc.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::SOA),
    ];
    let mut answered = 0;
    for (name, record_type) in questions {
        let api_response = ask(from_api.addr(), name, record_type).await;
        let file_response = ask(from_manifests.addr(), name, record_type).await;
        let shown = |response: &DnsResponse| {
            let authorities: Vec<String> = response
                .authorities
                .iter()
                .map(ToString::to_string)
                .collect();
            (
                response.response_code,
                sorted_answers(response),
                authorities,
            )
        };
        assert_eq!(
            shown(&api_response),
            shown(&file_response),
            "{name} {record_type}"
        );
        answered += usize::from(!api_response.answers.is_empty());
    }
    assert_eq!(
        answered, 18,
        "all answered but the finished pod, the pod being deleted and the empty namespace"
    );
}
