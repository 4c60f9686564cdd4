//! The cluster zone fed by a live Kubernetes API: the real `kube` client listing and watching
//! a fake API server on loopback (`tests/common/apiserver.rs`), through the real server.
//!
//! - The watch itself: nothing answered before every kind has been listed, each event type
//!   changing answers, bookmarks, cut streams, expired watches (410 Gone in the stream and as
//!   the HTTP status), the API going away and coming back, clients that cannot be made.
//! - The checklist of `shared/docs/KUBERNETES-DNS.md` once more, from the example cluster of
//!   `zones/cluster/` served by the API (tests/kubernetes.rs runs it from the manifests).
//!
//! Changes are waited for by polling (`eventually`, up to `PATIENCE`); no test asserts how long
//! anything took.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::apiserver::{FakeApiServer, Resource};
use common::*;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use hearth::chain::{DataVersion, DataVersions};
use hearth::config::{KubernetesApi, KubernetesConfig, KubernetesFeed, PodMode};
use hearth::sources::kubernetes::api;
use hearth::sources::zones::cluster::Cluster;

const SOA: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.";
const KUBERNETES: &str = "kubernetes.default.svc.cluster.local.";

/// The example cluster of the checklist, as `kubectl get -o yaml` prints it.
fn example_yaml() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster");
    ["default.yaml", "ns.yaml"]
        .iter()
        .map(|file| std::fs::read_to_string(dir.join(file)).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

async fn example_api() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    api.apply_yaml(&example_yaml());
    api
}

/// Hearth with `[kubernetes] api = <api>`, its upstream (for `www.example.com`, row 10) and its
/// hosts file.
struct Hearth {
    server: TestServer,
    upstream: FakeUpstream,
    _dir: tempfile::TempDir,
}

impl Hearth {
    fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

async fn hearth_with(api: &str, pods: &str) -> Hearth {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let upstream = FakeUpstream::start().await;
    upstream.add_a("www.example.com.", Ipv4Addr::new(93, 184, 215, 14));
    let toml = format!(
        "{}[kubernetes]\ndomain = \"cluster.local\"\napi = \"{api}\"\npods = \"{pods}\"\nttl = 5\n",
        config(&hosts, &[upstream.addr], &["files", "zones", "dns"]),
    );
    Hearth {
        server: start_server(&toml).await,
        upstream,
        _dir: dir,
    }
}

async fn hearth(api: &FakeApiServer) -> Hearth {
    hearth_with(&api.url(), "insecure").await
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
        let config = KubernetesConfig {
            domain: name("cluster.local."),
            feed: KubernetesFeed::Api(api),
            pods,
            ttl: 5,
        };
        let versions = DataVersions::new();
        let version = versions.register("cluster");
        let cluster = Arc::new(Cluster::load(&config, version.clone()));
        let stop = CancellationToken::new();
        tokio::spawn(api::watch(Arc::clone(&cluster), stop.clone()));
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
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn sorted_answers(response: &DnsResponse) -> Vec<String> {
    let mut lines = answers(response);
    lines.sort();
    lines
}

fn has_soa(response: &DnsResponse) -> bool {
    response.authorities.len() == 1 && response.authorities[0].to_string().starts_with(SOA)
}

/// The RCODE and the sorted answer data.
async fn outcome(
    addr: SocketAddr,
    name: &str,
    record_type: RecordType,
) -> (ResponseCode, Vec<String>) {
    let response = ask(addr, name, record_type).await;
    let mut data = rdata(&response);
    data.sort();
    (response.response_code, data)
}

async fn ask_ok(addr: SocketAddr, name: &str, record_type: RecordType) -> Vec<String> {
    let response = ask(addr, name, record_type).await;
    assert_eq!(
        response.response_code,
        ResponseCode::NoError,
        "{name} {record_type}"
    );
    assert!(response.authoritative, "{name} {record_type}: AA");
    sorted_answers(&response)
}

/// Waits until `name A` answers exactly `addresses` (none: NXDOMAIN).
async fn until_a(addr: SocketAddr, name: &str, addresses: &[&str]) -> bool {
    eventually(|| async move {
        let (code, data) = outcome(addr, name, RecordType::A).await;
        if addresses.is_empty() {
            code == ResponseCode::NXDomain
        } else {
            code == ResponseCode::NoError && data == addresses
        }
    })
    .await
}

/// Waits until the example cluster is served.
async fn synced(addr: SocketAddr) {
    assert!(
        until_a(addr, KUBERNETES, &["10.96.0.1"]).await,
        "the example cluster is served"
    );
}

fn service(namespace: &str, name: &str, cluster_ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}")},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        },
        "status": {"loadBalancer": {}}
    })
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
    assert!(status.last_sync_unix_seconds() > 0);
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
/// stops sending on them but answers new requests, as a fresh connection would reach it.
/// The watch is given up after a minute of silence (`READ_TIMEOUT` in `api.rs`) and the next
/// one, from the last resourceVersion, brings the change; with kube's defaults it took
/// 295 s, past this test's two minutes. This test takes about a minute.
#[tokio::test]
async fn a_silent_watch_is_given_up_within_a_minute() {
    let api = example_api().await;
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    let watches = api.watches(Resource::Services);

    api.set_quiet(true);
    api.apply(service("default", "silent", "10.96.0.92"));
    let served = eventually_within(Duration::from_secs(120), || async {
        let (code, data) = outcome(addr, "silent.default.svc.cluster.local.", RecordType::A).await;
        code == ResponseCode::NoError && data == ["10.96.0.92"]
    })
    .await;
    assert!(served, "the change arrives through a new watch");
    assert!(api.watches(Resource::Services) > watches, "watched again");
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
async fn checklist_rows_01_to_05_services() {
    let api = example_api().await;
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;

    // Row 1.
    let response = ask(addr, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(rdata(&response), ["1.1.0"]);
    // Rows 2 and 15: the ClusterIP, though the service has no endpoints; any case.
    assert_eq!(
        ask_ok(addr, "Kubernetes.Default.SVC.cluster.local.", RecordType::A).await,
        ["Kubernetes.Default.SVC.cluster.local. 5 IN A 10.96.0.1"]
    );
    // Row 3.
    for record_type in [RecordType::AAAA, RecordType::TXT] {
        let response = ask(addr, KUBERNETES, record_type).await;
        assert_eq!(response.response_code, ResponseCode::NoError);
        assert!(
            response.answers.is_empty() && has_soa(&response),
            "{record_type}"
        );
    }
    // Row 4.
    assert_eq!(
        ask_ok(addr, "_https._tcp.kubernetes.default.svc.cluster.local.", RecordType::SRV).await,
        ["_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."]
    );
    // Row 5; other addresses go on down the chain.
    assert_eq!(
        ask_ok(addr, "1.0.96.10.in-addr.arpa.", RecordType::PTR).await,
        ["1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."]
    );
    let response = ask(addr, "99.99.99.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert_eq!(hearth.upstream.asked(), ["99.99.99.10.in-addr.arpa."]);
}

#[tokio::test]
async fn checklist_rows_06_to_09_headless_services() {
    let api = example_api().await;
    api.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "lonely", "namespace": "ns"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }));
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;

    // Row 6.
    assert_eq!(
        ask_ok(addr, "hdls.ns.svc.cluster.local.", RecordType::A).await,
        [
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2",
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3"
        ]
    );
    let response = ask(addr, "lonely.ns.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        response.response_code,
        ResponseCode::NXDomain,
        "no ready endpoints"
    );
    assert!(has_soa(&response));
    // Row 7.
    assert_eq!(
        ask_ok(addr, "my-pet.hdls.ns.svc.cluster.local.", RecordType::A).await,
        ["my-pet.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2"]
    );
    assert_eq!(
        ask_ok(addr, "10-0-0-3.hdls.ns.svc.cluster.local.", RecordType::A).await,
        ["10-0-0-3.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3"]
    );
    // Row 8.
    assert_eq!(
        ask_ok(addr, "_https._tcp.hdls.ns.svc.cluster.local.", RecordType::SRV).await,
        [
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 10-0-0-3.hdls.ns.svc.cluster.local.",
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 my-pet.hdls.ns.svc.cluster.local.",
        ]
    );
    // Row 9.
    assert_eq!(
        ask_ok(addr, "2.0.0.10.in-addr.arpa.", RecordType::PTR).await,
        ["2.0.0.10.in-addr.arpa. 5 IN PTR my-pet.hdls.ns.svc.cluster.local."]
    );
}

#[tokio::test]
async fn checklist_row_10_external_name() {
    let api = example_api().await;
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    let response = ask(addr, "ext.ns.svc.cluster.local.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&response),
        [
            "ext.ns.svc.cluster.local. 5 IN CNAME www.example.com.",
            "www.example.com. 300 IN A 93.184.215.14"
        ]
    );
}

#[tokio::test]
async fn checklist_row_11_pod_names_by_mode() {
    let api = example_api().await;
    let insecure = hearth(&api).await;
    synced(insecure.addr()).await;
    assert_eq!(
        ask_ok(
            insecure.addr(),
            "1-2-3-4.ns.pod.cluster.local.",
            RecordType::A
        )
        .await,
        ["1-2-3-4.ns.pod.cluster.local. 5 IN A 1.2.3.4"]
    );
    let response = ask(
        insecure.addr(),
        "1-2-3-4.nonexistent.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert_eq!(api.lists(Resource::Pods), 0, "insecure needs no pods");

    let disabled = hearth_with(&api.url(), "disabled").await;
    synced(disabled.addr()).await;
    let response = ask(
        disabled.addr(),
        "1-2-3-4.ns.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);

    let verified = hearth_with(&api.url(), "verified").await;
    let addr = verified.addr();
    synced(addr).await;
    assert!(api.lists(Resource::Pods) >= 1, "verified watches pods");
    assert_eq!(
        ask_ok(addr, "10-0-0-10.ns.pod.cluster.local.", RecordType::A).await,
        ["10-0-0-10.ns.pod.cluster.local. 5 IN A 10.0.0.10"]
    );
    let response = ask(addr, "1-2-3-4.ns.pod.cluster.local.", RecordType::A).await;
    assert_eq!(
        response.response_code,
        ResponseCode::NXDomain,
        "verified: no such pod"
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

#[tokio::test]
async fn checklist_row_12_pod_hostname_and_subdomain_from_the_slice() {
    // The EndpointSlice controller writes the pod's hostname into the slice of the headless
    // service its subdomain names; that is where the API feed finds it, pods unwatched.
    let api = example_api().await;
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;
    assert_eq!(
        ask_ok(
            addr,
            "busybox-1.subdomain.ns.svc.cluster.local.",
            RecordType::A
        )
        .await,
        ["busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10"]
    );
    assert_eq!(api.lists(Resource::Pods), 0);
}

#[tokio::test]
async fn checklist_rows_13_14_16_names_that_do_not_exist_empty_names_and_the_apex() {
    let api = example_api().await;
    let hearth = hearth(&api).await;
    let addr = hearth.addr();
    synced(addr).await;

    // Row 13: NXDOMAIN with the SOA, never forwarded.
    for name in [
        "nope.default.svc.cluster.local.",
        "kubernetes.nonexistent.svc.cluster.local.",
        "www.example.com.ns.svc.cluster.local.",
    ] {
        let response = ask(addr, name, RecordType::A).await;
        assert_eq!(response.response_code, ResponseCode::NXDomain, "{name}");
        assert!(has_soa(&response), "{name}");
    }
    assert_eq!(hearth.upstream.queries(), 0);
    // Row 14.
    for name in [
        "svc.cluster.local.",
        "pod.cluster.local.",
        "ns.svc.cluster.local.",
        "default.svc.cluster.local.",
    ] {
        let response = ask(addr, name, RecordType::A).await;
        assert_eq!(response.response_code, ResponseCode::NoError, "{name}");
        assert!(response.answers.is_empty() && has_soa(&response), "{name}");
    }
    // Row 16.
    let soa = ask_ok(addr, "cluster.local.", RecordType::SOA).await;
    assert!(
        soa.len() == 1 && soa[0].starts_with(SOA) && soa[0].ends_with(" 7200 1800 86400 5"),
        "{soa:?}"
    );
    assert_eq!(
        ask_ok(addr, "cluster.local.", RecordType::NS).await,
        ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    );
    let transfer = udp_raw(
        addr,
        &query_bytes(9, "cluster.local.", RecordType::AXFR, None),
        PATIENCE,
    )
    .await
    .unwrap();
    assert_eq!(transfer[3] & 0x0f, 5, "AXFR is REFUSED");
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

    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let upstream = FakeUpstream::start().await;
    let toml = format!(
        "{}[kubernetes]\ndomain = \"cluster.local\"\nmanifests = \"{}\"\npods = \"verified\"\nttl = 5\n",
        config(&hosts, &[upstream.addr], &["files", "zones", "dns"]),
        live.display()
    );
    let from_manifests = start_server(&toml).await;

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
        let file_response = ask(from_manifests.addr, name, record_type).await;
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

// ---------------------------------------------------------------------------------------------
// Scale: `benches/cluster_scale.sh` runs this (release build, `--ignored --nocapture`).

/// The generated cluster: `services` services over 100 namespaces, each with one EndpointSlice
/// of `endpoints` endpoints (so 10,000 x 10 = 100,000 endpoints), every other service headless;
/// objects carry what the API server adds (uid, timestamps, managedFields, ownerReferences,
/// targetRef, nodeName, zone), which the feed must drop. `pods` > 0 adds that many pods and
/// switches to `pods = "verified"`, which watches them.
fn generate_cluster(api: &FakeApiServer, services: usize, endpoints: usize, pods: usize) {
    const NAMESPACES: usize = 100;
    for namespace in 0..NAMESPACES {
        api.apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": format!("ns-{namespace}"), "uid": format!("ns-uid-{namespace}"),
            "labels": {"kubernetes.io/metadata.name": format!("ns-{namespace}")},
            "creationTimestamp": "2026-11-01T09:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        );
    }
    let mut address = 0u32;
    for index in 0..services {
        let namespace = format!("ns-{}", index % NAMESPACES);
        let name = format!("svc-{index}");
        let headless = index % 2 == 1;
        let cluster_ip = if headless {
            "None".to_owned()
        } else {
            format!("10.96.{}.{}", index / 250, index % 250 + 1)
        };
        api.apply(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": name, "namespace": namespace, "uid": format!("svc-uid-{index}"),
                "creationTimestamp": "2026-11-01T09:00:00Z", "labels": {"app": name},
                "managedFields": [{"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl",
                    "operation": "Update", "time": "2026-11-01T09:00:00Z",
                    "fieldsV1": {"f:spec": {"f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                        "f:selector": {}, "f:sessionAffinity": {}, "f:type": {}}}}]
            },
            "spec": {
                "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "type": "ClusterIP",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
            },
            "status": {"loadBalancer": {}}
        }));
        let endpoint_list: Vec<Value> = (0..endpoints)
            .map(|endpoint| {
                address += 1;
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + address);
                json!({
                    "addresses": [ip.to_string()],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "nodeName": format!("node-{}", address % 500),
                    "zone": format!("zone-{}", address % 3),
                    "targetRef": {"kind": "Pod", "name": format!("{name}-{endpoint}"),
                        "namespace": namespace, "uid": format!("pod-uid-{address}")}
                })
            })
            .collect();
        api.apply(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-abcde"), "namespace": namespace,
                "uid": format!("slice-uid-{index}"), "generateName": format!("{name}-"),
                "labels": {"kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                    "uid": format!("svc-uid-{index}"), "controller": true, "blockOwnerDeletion": true}]
            },
            "addressType": "IPv4",
            "endpoints": endpoint_list,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }));
    }
    for index in 0..pods {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + 1 + index as u32);
        api.apply(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{index}"), "namespace": format!("ns-{}", index % NAMESPACES),
                "uid": format!("pod-uid-{index}"), "labels": {"app": "generated"}},
            "spec": {"nodeName": format!("node-{}", index % 500),
                "containers": [{"name": "app", "image": "registry.example/app:1.0",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
                "hostIP": "192.168.0.1", "qosClass": "Burstable",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                    "image": "registry.example/app:1.0", "imageID": "sha256:00",
                    "state": {"running": {"startedAt": "2026-11-01T09:00:00Z"}}}]}
        }));
    }
}

/// `VmRSS` and `VmHWM` (the peak) of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| {
        status
            .lines()
            .find(|line| line.starts_with(key))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Asks `name A` once over UDP: the RCODE and how many answers, or `None` without a reply.
async fn probe_a(addr: SocketAddr, name: &str) -> Option<(ResponseCode, usize)> {
    let reply = udp_raw(
        addr,
        &query_bytes(7, name, RecordType::A, Some(1232)),
        Duration::from_millis(200),
    )
    .await?;
    let message = hickory_proto::op::Message::from_vec(&reply).ok()?;
    Some((message.metadata.response_code, message.answers.len()))
}

/// Polls until `name A` has `count` answers (0: NXDOMAIN); how long that took.
async fn time_until(addr: SocketAddr, name: &str, count: usize) -> Duration {
    let began = std::time::Instant::now();
    loop {
        let expected = if count == 0 {
            Some((ResponseCode::NXDomain, 0))
        } else {
            Some((ResponseCode::NoError, count))
        };
        if probe_a(addr, name).await == expected {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "{name} never answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: benches/cluster_scale.sh"]
async fn scale_services_and_endpoints() {
    use common::external::{free_port, Process};
    let count = |variable: &str, default: usize| {
        std::env::var(variable)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let services = count("HEARTH_SCALE_SERVICES", 10_000);
    let endpoints = count("HEARTH_SCALE_ENDPOINTS_PER_SERVICE", 10);
    let pods = count("HEARTH_SCALE_PODS", 0);

    let api = FakeApiServer::start().await;
    let generating = std::time::Instant::now();
    generate_cluster(&api, services, endpoints, pods);
    eprintln!(
        "generated {services} services, {} endpoints, {pods} pods in {:.1?}",
        services * endpoints,
        generating.elapsed()
    );

    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let (_dead, upstream) = dead_upstream().await;
    let mode = if pods > 0 { "verified" } else { "insecure" };
    let toml = format!(
        "{}[kubernetes]\ndomain = \"cluster.local\"\napi = \"{}\"\npods = \"{mode}\"\n",
        config(&hosts, &[upstream], &["files", "zones", "dns"]),
        api.url()
    );
    let config_path = dir.path().join("hearth.toml");
    std::fs::write(&config_path, toml).unwrap();
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let log = std::fs::File::create(dir.path().join("hearth.log")).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .args(["--listen", &addr.to_string()])
        .env("HEARTH_LOG", "info")
        .stderr(log);
    let started = std::time::Instant::now();
    let hearth = Process::spawn("hearth", command);
    let (idle_rss, _) = {
        // Serving, not yet synced: cluster names SERVFAIL.
        while probe_a(addr, "svc-0.ns-0.svc.cluster.local.")
            .await
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        memory_mib(hearth.pid())
    };
    let last = format!(
        "svc-{}.ns-{}.svc.cluster.local.",
        services - 1,
        (services - 1) % 100
    );
    let expected = if (services - 1) % 2 == 1 {
        endpoints
    } else {
        1
    };
    time_until(addr, &last, expected).await;
    let first_sync = started.elapsed();
    let (rss, peak) = memory_mib(hearth.pid());
    let cpu = cpu_seconds(hearth.pid());

    // Changes at full size: a service added, then deleted, a few times.
    let mut changes = Vec::new();
    for _ in 0..count("HEARTH_SCALE_CHANGES", 3) {
        api.apply(service("ns-0", "scale-probe", "10.97.0.1"));
        changes.push(time_until(addr, "scale-probe.ns-0.svc.cluster.local.", 1).await);
        api.delete("Service", "ns-0", "scale-probe");
        changes.push(time_until(addr, "scale-probe.ns-0.svc.cluster.local.", 0).await);
    }
    let (rss_after, peak_after) = memory_mib(hearth.pid());

    let logged = std::fs::read_to_string(dir.path().join("hearth.log")).unwrap_or_default();
    let sync_line = logged
        .lines()
        .find(|line| line.contains("first sync"))
        .unwrap_or("(no first-sync line)")
        .to_owned();
    eprintln!(
        "--- {services} services, {} endpoints, {pods} pods (pods = {mode}) ---",
        services * endpoints
    );
    eprintln!("time to first sync (process start -> last service answered): {first_sync:.2?}");
    eprintln!("hearth's own log: {sync_line}");
    eprintln!(
        "RSS before sync {idle_rss:.1} MiB; after first sync {rss:.1} MiB (peak {peak:.1} MiB)"
    );
    eprintln!("CPU used up to the first sync: {cpu:.2} s");
    let shown: Vec<String> = changes.iter().map(|took| format!("{took:.2?}")).collect();
    eprintln!("a change at full size shows after: {}", shown.join(", "));
    eprintln!(
        "RSS after {} more rebuilds {rss_after:.1} MiB (peak {peak_after:.1} MiB)",
        changes.len()
    );
    drop(hearth);
}
