//! The Kubernetes DNS checklist (`shared/docs/KUBERNETES-DNS.md`), one test per row, through
//! the real server, from the example cluster shipped in `zones/cluster/` (Service,
//! EndpointSlice, Pod and Namespace objects as the API serves them).
//!
//! Answers are compared as zone-file lines, the way `dig` prints them.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use common::*;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::RecordType;

const SOA: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.";

fn example_cluster() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster")
}

struct Cluster {
    server: TestServer,
    upstream: FakeUpstream,
    _dir: tempfile::TempDir,
}

async fn cluster_with(manifests: &Path, pods: &str) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let upstream = FakeUpstream::start().await;
    upstream.add_a("www.example.com.", Ipv4Addr::new(93, 184, 215, 14));
    let toml = format!(
        "{}[zones]\nreload_interval = \"100ms\"\n[kubernetes]\ndomain = \"cluster.local\"\nmanifests = \"{}\"\npods = \"{pods}\"\nttl = 5\n",
        config(&hosts, &[upstream.addr], &["files", "zones", "dns"]),
        manifests.display()
    );
    Cluster {
        server: start_server(&toml).await,
        upstream,
        _dir: dir,
    }
}

async fn cluster() -> Cluster {
    cluster_with(&example_cluster(), "insecure").await
}

fn sorted_answers(response: &DnsResponse) -> Vec<String> {
    let mut lines = answers(response);
    lines.sort();
    lines
}

/// The authority section holds the cluster SOA (serial aside).
fn has_soa(response: &DnsResponse) -> bool {
    response.authorities.len() == 1 && response.authorities[0].to_string().starts_with(SOA)
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

#[tokio::test]
async fn row_01_dns_version() {
    let c = cluster().await;
    let response = ask(c.server.addr, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(rdata(&response), ["1.1.0"]);
}

#[tokio::test]
async fn row_02_and_15_cluster_ip_service_even_without_endpoints() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(
            c.server.addr,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A
        )
        .await,
        ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]
    );
    // Case-insensitive, owner as asked.
    assert_eq!(
        ask_ok(
            c.server.addr,
            "Kubernetes.Default.SVC.cluster.local.",
            RecordType::A
        )
        .await,
        ["Kubernetes.Default.SVC.cluster.local. 5 IN A 10.96.0.1"]
    );
}

#[tokio::test]
async fn row_03_nodata_for_other_types() {
    let c = cluster().await;
    for record_type in [RecordType::AAAA, RecordType::TXT] {
        let response = ask(
            c.server.addr,
            "kubernetes.default.svc.cluster.local.",
            record_type,
        )
        .await;
        assert_eq!(response.response_code, ResponseCode::NoError);
        assert!(response.answers.is_empty());
        assert!(
            has_soa(&response),
            "{record_type}: {:?}",
            response.authorities
        );
    }
}

#[tokio::test]
async fn row_04_srv_for_named_ports() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(c.server.addr, "_https._tcp.kubernetes.default.svc.cluster.local.", RecordType::SRV).await,
        ["_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."]
    );
}

#[tokio::test]
async fn row_05_ptr_for_a_cluster_ip() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(c.server.addr, "1.0.96.10.in-addr.arpa.", RecordType::PTR).await,
        ["1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."]
    );
    // Reverse names of other addresses are not the cluster's: they go on down the chain.
    let response = ask(c.server.addr, "99.99.99.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert_eq!(c.upstream.asked(), ["99.99.99.10.in-addr.arpa."]);
}

#[tokio::test]
async fn row_06_headless_service_answers_ready_endpoints() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(c.server.addr, "hdls.ns.svc.cluster.local.", RecordType::A).await,
        [
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2",
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3"
        ]
    );
}

#[tokio::test]
async fn row_06_headless_service_without_ready_endpoints_is_nxdomain() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lonely.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: lonely\n  namespace: ns\nspec:\n  clusterIP: None\n  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n",
    )
    .unwrap();
    let c = cluster_with(dir.path(), "insecure").await;
    let response = ask(c.server.addr, "lonely.ns.svc.cluster.local.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert!(has_soa(&response));
}

#[tokio::test]
async fn row_07_endpoint_names() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(
            c.server.addr,
            "my-pet.hdls.ns.svc.cluster.local.",
            RecordType::A
        )
        .await,
        ["my-pet.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2"]
    );
    assert_eq!(
        ask_ok(
            c.server.addr,
            "10-0-0-3.hdls.ns.svc.cluster.local.",
            RecordType::A
        )
        .await,
        ["10-0-0-3.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3"]
    );
}

#[tokio::test]
async fn row_08_headless_srv_per_endpoint() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(c.server.addr, "_https._tcp.hdls.ns.svc.cluster.local.", RecordType::SRV).await,
        [
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 10-0-0-3.hdls.ns.svc.cluster.local.",
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 my-pet.hdls.ns.svc.cluster.local.",
        ]
    );
}

#[tokio::test]
async fn row_09_ptr_for_an_endpoint() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(c.server.addr, "2.0.0.10.in-addr.arpa.", RecordType::PTR).await,
        ["2.0.0.10.in-addr.arpa. 5 IN PTR my-pet.hdls.ns.svc.cluster.local."]
    );
}

#[tokio::test]
async fn row_10_external_name_is_a_cname_resolved_through_the_chain() {
    let c = cluster().await;
    let response = ask(c.server.addr, "ext.ns.svc.cluster.local.", RecordType::A).await;
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
async fn row_11_pod_names_by_mode() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(
            c.server.addr,
            "1-2-3-4.ns.pod.cluster.local.",
            RecordType::A
        )
        .await,
        ["1-2-3-4.ns.pod.cluster.local. 5 IN A 1.2.3.4"]
    );
    let response = ask(
        c.server.addr,
        "1-2-3-4.nonexistent.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        response.response_code,
        ResponseCode::NXDomain,
        "insecure, but only in a namespace that exists"
    );
    let disabled = cluster_with(&example_cluster(), "disabled").await;
    let response = ask(
        disabled.server.addr,
        "1-2-3-4.ns.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    let verified = cluster_with(&example_cluster(), "verified").await;
    assert_eq!(
        ask_ok(
            verified.server.addr,
            "10-0-0-10.ns.pod.cluster.local.",
            RecordType::A
        )
        .await,
        ["10-0-0-10.ns.pod.cluster.local. 5 IN A 10.0.0.10"]
    );
    let response = ask(
        verified.server.addr,
        "1-2-3-4.ns.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        response.response_code,
        ResponseCode::NXDomain,
        "verified: no such pod"
    );
}

#[tokio::test]
async fn row_12_pod_hostname_and_subdomain() {
    let c = cluster().await;
    assert_eq!(
        ask_ok(
            c.server.addr,
            "busybox-1.subdomain.ns.svc.cluster.local.",
            RecordType::A
        )
        .await,
        ["busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10"]
    );
}

#[tokio::test]
async fn row_13_what_does_not_exist_is_nxdomain_and_never_leaks() {
    let c = cluster().await;
    for name in [
        "nope.default.svc.cluster.local.",
        "kubernetes.nonexistent.svc.cluster.local.",
        "www.example.com.ns.svc.cluster.local.", // an ndots:5 search-path expansion
    ] {
        let response = ask(c.server.addr, name, RecordType::A).await;
        assert_eq!(response.response_code, ResponseCode::NXDomain, "{name}");
        assert!(has_soa(&response), "{name}");
    }
    assert_eq!(
        c.upstream.queries(),
        0,
        "cluster names never reach the upstream"
    );
}

#[tokio::test]
async fn row_14_empty_non_terminals_are_nodata() {
    let c = cluster().await;
    for name in [
        "svc.cluster.local.",
        "pod.cluster.local.",
        "ns.svc.cluster.local.",
        "default.svc.cluster.local.",
    ] {
        let response = ask(c.server.addr, name, RecordType::A).await;
        assert_eq!(response.response_code, ResponseCode::NoError, "{name}");
        assert!(response.answers.is_empty(), "{name}");
        assert!(has_soa(&response), "{name}");
    }
}

#[tokio::test]
async fn row_16_apex_soa_and_ns() {
    let c = cluster().await;
    let soa = ask_ok(c.server.addr, "cluster.local.", RecordType::SOA).await;
    assert!(
        soa.len() == 1 && soa[0].starts_with(SOA) && soa[0].ends_with(" 7200 1800 86400 5"),
        "{soa:?}"
    );
    assert_eq!(
        ask_ok(c.server.addr, "cluster.local.", RecordType::NS).await,
        ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    );
    let transfer = udp_raw(
        c.server.addr,
        &query_bytes(9, "cluster.local.", RecordType::AXFR, None),
        PATIENCE,
    )
    .await
    .unwrap();
    assert_eq!(transfer[3] & 0x0f, 5, "AXFR is REFUSED");
}

#[tokio::test]
async fn row_17_servfail_until_the_objects_have_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let c = cluster_with(&missing, "insecure").await;
    let addr = c.server.addr;
    let response = ask(addr, "kubernetes.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::ServFail);
    assert_eq!(c.upstream.queries(), 0, "not forwarded while unknown");

    // The objects arrive: the zone loads and answers.
    std::fs::create_dir(&missing).unwrap();
    std::fs::copy(
        example_cluster().join("default.yaml"),
        missing.join("default.yaml"),
    )
    .unwrap();
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, "kubernetes.default.svc.cluster.local.", RecordType::A).await)
                == ["10.96.0.1"]
        })
        .await,
        "the cluster zone loads once its objects are there"
    );
}

#[tokio::test]
async fn changed_manifests_are_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        example_cluster().join("default.yaml"),
        dir.path().join("default.yaml"),
    )
    .unwrap();
    let c = cluster_with(dir.path(), "insecure").await;
    let addr = c.server.addr;
    let response = ask(addr, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    std::fs::write(
        dir.path().join("web.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\nspec:\n  clusterIP: 10.96.0.80\n  clusterIPs: [10.96.0.80]\n  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n",
    )
    .unwrap();
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, "web.default.svc.cluster.local.", RecordType::A).await)
                == ["10.96.0.80"]
        })
        .await,
        "a new Service shows up"
    );
}
