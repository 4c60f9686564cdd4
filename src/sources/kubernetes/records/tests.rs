//! The records, row by row of the checklist (`shared/docs/KUBERNETES-DNS.md`), written as
//! zone-file lines.

use super::*;
use crate::sources::kubernetes::objects::{parse_manifest, read_dir};
use hickory_proto::rr::{RData, Record};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::path::Path;
use std::str::FromStr;

fn settings(pods: PodMode) -> ClusterSettings {
    ClusterSettings {
        domain: Name::from_ascii("cluster.local.").unwrap(),
        ttl: 5,
        pods,
        server_address: None,
    }
}

/// The example cluster of the checklist, as shipped in `zones/cluster/`.
fn example(pods: PodMode) -> ClusterRecords {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster");
    let (objects, problems) = read_dir(&dir).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    build(&objects, &settings(pods))
}

fn from_yaml(text: &str, pods: PodMode) -> ClusterRecords {
    let mut objects = ClusterObjects::default();
    let problems = parse_manifest(text, "test.yaml", &mut objects);
    assert!(problems.is_empty(), "{problems:?}");
    build(&objects, &settings(pods))
}

/// The records owned by `owner`, as zone-file lines.
fn at(records: &[Record], owner: &str) -> Vec<String> {
    let owner = Name::from_ascii(owner).unwrap();
    records
        .iter()
        .filter(|record| record.name == owner)
        .map(ToString::to_string)
        .collect()
}

fn lines(records: &[Record]) -> Vec<String> {
    records.iter().map(ToString::to_string).collect()
}

fn empty_names(built: &ClusterRecords) -> Vec<String> {
    built.empty_names.iter().map(ToString::to_string).collect()
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

#[test]
fn the_whole_example_cluster() {
    let built = example(PodMode::Disabled);
    let serial = match &built.soa().unwrap().data {
        RData::SOA(soa) => soa.serial,
        other => panic!("{other:?}"),
    };
    let expected = [
        "cluster.local. 5 IN NS ns.dns.cluster.local.".to_string(),
        format!("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"),
        "dns-version.cluster.local. 5 IN TXT 1.1.0".to_string(),
        "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1".to_string(),
        "_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local.".to_string(),
        "ext.ns.svc.cluster.local. 5 IN CNAME www.example.com.".to_string(),
        "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2".to_string(),
        "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3".to_string(),
        "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 10-0-0-3.hdls.ns.svc.cluster.local.".to_string(),
        "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 my-pet.hdls.ns.svc.cluster.local.".to_string(),
        "10-0-0-3.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3".to_string(),
        "my-pet.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2".to_string(),
        "subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10".to_string(),
        "busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10".to_string(),
    ];
    let mut got = lines(&built.records);
    let mut expected = expected.to_vec();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(
        lines(&built.reverse),
        [
            "10.0.0.10.in-addr.arpa. 5 IN PTR busybox-1.subdomain.ns.svc.cluster.local.",
            "2.0.0.10.in-addr.arpa. 5 IN PTR my-pet.hdls.ns.svc.cluster.local.",
            "3.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-3.hdls.ns.svc.cluster.local.",
            "1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local.",
        ]
    );
}

#[test]
fn the_name_server_answers_its_own_address_from_pod_ip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster");
    let (objects, _) = read_dir(&dir).unwrap();
    assert!(at(&example(PodMode::Disabled).records, "ns.dns.cluster.local.").is_empty());
    let built = build(
        &objects,
        &ClusterSettings {
            server_address: Some("10.244.0.7".parse().unwrap()),
            ..settings(PodMode::Disabled)
        },
    );
    assert_eq!(
        at(&built.records, "ns.dns.cluster.local."),
        ["ns.dns.cluster.local. 5 IN A 10.244.0.7"]
    );
}

#[test]
fn row_01_dns_version() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.records, "dns-version.cluster.local."),
        ["dns-version.cluster.local. 5 IN TXT 1.1.0"]
    );
}

#[test]
fn row_02_cluster_ip_service_a_and_dual_stack() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.records, "kubernetes.default.svc.cluster.local."),
        ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]
    );
    let dual = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec:\n  clusterIP: 10.96.0.20\n  clusterIPs: [10.96.0.20, 'fd00:10:96::20']\n  ipFamilies: [IPv4, IPv6]\n",
        PodMode::Disabled,
    );
    assert_eq!(
        at(&dual.records, "web.app.svc.cluster.local."),
        [
            "web.app.svc.cluster.local. 5 IN A 10.96.0.20",
            "web.app.svc.cluster.local. 5 IN AAAA fd00:10:96::20",
        ]
    );
    let v6 = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {clusterIP: 'fd00:10:96::20'}\n",
        PodMode::Disabled,
    );
    assert_eq!(
        at(&v6.records, "web.app.svc.cluster.local."),
        ["web.app.svc.cluster.local. 5 IN AAAA fd00:10:96::20"]
    );
}

#[test]
fn row_03_ipv4_only_service_has_no_aaaa() {
    // The name has records (so it exists: NODATA for AAAA, TXT), none of them AAAA or TXT.
    let built = example(PodMode::Disabled);
    let owner = name("kubernetes.default.svc.cluster.local.");
    let types: Vec<RecordType> = built
        .records
        .iter()
        .filter(|record| record.name == owner)
        .map(Record::record_type)
        .collect();
    assert_eq!(types, [RecordType::A]);
    assert!(!built.empty_names.contains(&owner));
}

#[test]
fn row_04_srv_for_named_ports_only() {
    let built = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec:\n  clusterIP: 10.96.0.20\n  ports:\n  - {name: http, port: 80}\n  - {name: dns, port: 53, protocol: UDP}\n  - {port: 8080}\n",
        PodMode::Disabled,
    );
    let srv: Vec<String> = lines(&built.records)
        .into_iter()
        .filter(|line| line.contains(" SRV "))
        .collect();
    assert_eq!(
        srv,
        [
            "_http._tcp.web.app.svc.cluster.local. 5 IN SRV 0 100 80 web.app.svc.cluster.local.",
            "_dns._udp.web.app.svc.cluster.local. 5 IN SRV 0 100 53 web.app.svc.cluster.local.",
        ]
    );
    let example = example(PodMode::Disabled);
    assert_eq!(
        at(&example.records, "_https._tcp.kubernetes.default.svc.cluster.local."),
        ["_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."]
    );
}

#[test]
fn row_05_ptr_for_cluster_ips() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.reverse, "1.0.96.10.in-addr.arpa."),
        ["1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."]
    );
    let v6 = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {clusterIP: 'fd00::1'}\n",
        PodMode::Disabled,
    );
    assert_eq!(
        lines(&v6.reverse),
        ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN PTR web.app.svc.cluster.local."]
    );
}

/// A headless service `h` in `app` and one slice with the endpoints given (YAML list items).
fn headless(service_extra: &str, endpoints: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: h, namespace: app}}\nspec:\n  clusterIP: None\n  clusterIPs: [None]\n{service_extra}---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\nmetadata:\n  name: h-abc\n  namespace: app\n  labels: {{kubernetes.io/service-name: h}}\nports:\n- {{name: web, port: 8080, protocol: TCP}}\n- {{port: 9090}}\nendpoints:\n{endpoints}"
    )
}

#[test]
fn row_06_headless_service_answers_ready_endpoints() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.records, "hdls.ns.svc.cluster.local."),
        [
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2",
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3",
        ]
    );
    // ready: false is left out, ready absent or null counts as ready.
    let endpoints = "- {addresses: [10.1.0.1], conditions: {ready: true}}\n\
                     - {addresses: [10.1.0.2], conditions: {ready: false}}\n\
                     - {addresses: [10.1.0.3], conditions: {ready: null}}\n\
                     - {addresses: [10.1.0.4]}\n";
    let built = from_yaml(&headless("", endpoints), PodMode::Disabled);
    assert_eq!(
        at(&built.records, "h.app.svc.cluster.local."),
        [
            "h.app.svc.cluster.local. 5 IN A 10.1.0.1",
            "h.app.svc.cluster.local. 5 IN A 10.1.0.3",
            "h.app.svc.cluster.local. 5 IN A 10.1.0.4",
        ]
    );
    // publishNotReadyAddresses: every endpoint.
    let built = from_yaml(
        &headless("  publishNotReadyAddresses: true\n", endpoints),
        PodMode::Disabled,
    );
    assert_eq!(at(&built.records, "h.app.svc.cluster.local.").len(), 4);
    // No ready endpoint: nothing at or under the name, so it is NXDOMAIN.
    let built = from_yaml(
        &headless(
            "",
            "- {addresses: [10.1.0.2], conditions: {ready: false}}\n",
        ),
        PodMode::Disabled,
    );
    let owner = name("h.app.svc.cluster.local.");
    assert!(built
        .records
        .iter()
        .all(|record| !owner.zone_of(&record.name)));
    assert!(built.empty_names.iter().all(|empty| !owner.zone_of(empty)));
    assert!(built.reverse.is_empty());
    // IPv6 slices give AAAA.
    let v6 = headless("", "- {addresses: ['fd00::5'], hostname: six}\n")
        .replace("addressType: IPv4", "addressType: IPv6");
    let built = from_yaml(&v6, PodMode::Disabled);
    assert_eq!(
        at(&built.records, "h.app.svc.cluster.local."),
        ["h.app.svc.cluster.local. 5 IN AAAA fd00::5"]
    );
}

#[test]
fn row_07_endpoint_names() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.records, "my-pet.hdls.ns.svc.cluster.local."),
        ["my-pet.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2"]
    );
    assert_eq!(
        at(&built.records, "10-0-0-3.hdls.ns.svc.cluster.local."),
        ["10-0-0-3.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3"]
    );
    let v6 = headless("", "- {addresses: ['2001:db8::1']}\n")
        .replace("addressType: IPv4", "addressType: IPv6");
    let built = from_yaml(&v6, PodMode::Disabled);
    assert_eq!(
        at(&built.records, "2001-db8--1.h.app.svc.cluster.local."),
        ["2001-db8--1.h.app.svc.cluster.local. 5 IN AAAA 2001:db8::1"]
    );
}

#[test]
fn row_08_headless_srv_per_ready_endpoint_and_named_port() {
    let built = example(PodMode::Disabled);
    // Canonical order compares RDATA in wire form, where a name starts with its first
    // label's length: `my-pet` (6) before `10-0-0-3` (8).
    assert_eq!(
        at(&built.records, "_https._tcp.hdls.ns.svc.cluster.local."),
        [
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 my-pet.hdls.ns.svc.cluster.local.",
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 10-0-0-3.hdls.ns.svc.cluster.local.",
        ]
    );
    let endpoints = "- {addresses: [10.1.0.1], hostname: a}\n\
                     - {addresses: [10.1.0.2], conditions: {ready: false}, hostname: b}\n";
    let built = from_yaml(&headless("", endpoints), PodMode::Disabled);
    let srv: Vec<String> = lines(&built.records)
        .into_iter()
        .filter(|line| line.contains(" SRV "))
        .collect();
    assert_eq!(
        srv,
        ["_web._tcp.h.app.svc.cluster.local. 5 IN SRV 0 100 8080 a.h.app.svc.cluster.local."]
    );
}

#[test]
fn row_09_ptr_for_endpoints() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.reverse, "2.0.0.10.in-addr.arpa."),
        ["2.0.0.10.in-addr.arpa. 5 IN PTR my-pet.hdls.ns.svc.cluster.local."]
    );
    assert_eq!(
        at(&built.reverse, "3.0.0.10.in-addr.arpa."),
        ["3.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-3.hdls.ns.svc.cluster.local."]
    );
}

#[test]
fn row_10_external_name_is_a_cname() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.records, "ext.ns.svc.cluster.local."),
        ["ext.ns.svc.cluster.local. 5 IN CNAME www.example.com."]
    );
    // Written with a final dot or in capitals, the same target.
    let built = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: e, namespace: app}\nspec: {type: ExternalName, externalName: WWW.Example.COM.}\n",
        PodMode::Disabled,
    );
    assert_eq!(
        lines(&built.records)
            .into_iter()
            .filter(|line| line.contains("CNAME"))
            .collect::<Vec<_>>(),
        ["e.app.svc.cluster.local. 5 IN CNAME www.example.com."]
    );
}

#[test]
fn row_11_pod_names_insecure() {
    let insecure = settings(PodMode::Insecure);
    let cases = [
        ("1-2-3-4.ns.pod.cluster.local.", Some("1.2.3.4")),
        ("1-2-3-4.NS.Pod.Cluster.Local.", Some("1.2.3.4")),
        ("2001-db8--1.ns.pod.cluster.local.", Some("2001:db8::1")),
        (
            "fd00-10-244-1--5.ns.pod.cluster.local.",
            Some("fd00:10:244:1::5"),
        ),
        ("1-2-3.ns.pod.cluster.local.", None),
        ("1-2-3-256.ns.pod.cluster.local.", None),
        ("01-2-3-4.ns.pod.cluster.local.", None),
        ("busybox.ns.pod.cluster.local.", None),
        ("1-2-3-4.pod.cluster.local.", None),
        ("1-2-3-4.a.ns.pod.cluster.local.", None),
        ("1-2-3-4.ns.svc.cluster.local.", None),
        ("1-2-3-4.ns.pod.cluster.example.", None),
        ("1-2-3-4.n_s.pod.cluster.local.", None),
    ];
    for (query, expected) in cases {
        let got = pod_name_address(&name(query), &insecure);
        let expected = expected.map(|text| IpAddr::from_str(text).unwrap());
        assert_eq!(got, expected, "{query}");
    }
    let query = name("1-2-3-4.ns.pod.cluster.local.");
    assert_eq!(pod_name_address(&query, &settings(PodMode::Disabled)), None);
    assert_eq!(pod_name_address(&query, &settings(PodMode::Verified)), None);
    // Neither Disabled nor Insecure writes pod records.
    for mode in [PodMode::Disabled, PodMode::Insecure] {
        let built = example(mode);
        assert!(built
            .records
            .iter()
            .all(|record| !name("pod.cluster.local.").zone_of(&record.name)));
    }
}

#[test]
fn row_11_pod_names_verified() {
    let built = example(PodMode::Verified);
    let pod_records: Vec<String> = lines(&built.records)
        .into_iter()
        .filter(|line| line.contains(".pod.cluster.local."))
        .collect();
    assert_eq!(
        pod_records,
        [
            "10-0-0-10.ns.pod.cluster.local. 5 IN A 10.0.0.10",
            "10-0-0-2.ns.pod.cluster.local. 5 IN A 10.0.0.2",
            "10-0-0-3.ns.pod.cluster.local. 5 IN A 10.0.0.3",
        ]
    );
    // Finished and deleted pods are not there.
    let built = from_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: done, namespace: app}\nstatus: {phase: Succeeded, podIP: 10.2.0.1}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: going, namespace: app, deletionTimestamp: '2025-01-01T00:00:00Z'}\nstatus: {phase: Running, podIP: 10.2.0.2}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: dual, namespace: app}\nstatus: {phase: Running, podIP: 10.2.0.3, podIPs: [{ip: 10.2.0.3}, {ip: 'fd00::3'}]}\n",
        PodMode::Verified,
    );
    let pod_records: Vec<String> = lines(&built.records)
        .into_iter()
        .filter(|line| line.contains(".pod.cluster.local."))
        .collect();
    assert_eq!(
        pod_records,
        [
            "10-2-0-3.app.pod.cluster.local. 5 IN A 10.2.0.3",
            "fd00--3.app.pod.cluster.local. 5 IN AAAA fd00::3",
        ]
    );
}

const SUBDOMAIN_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: subdomain, namespace: ns}\nspec: {clusterIP: None, selector: {app: subdomain}}\n";

fn pod(labels: &str, ready: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: busybox-1, namespace: ns, labels: {{{labels}}}}}\n\
         spec: {{hostname: busybox-1, subdomain: subdomain, containers: [{{name: b, image: busybox}}]}}\n\
         status: {{phase: Running, podIP: 10.0.0.10, conditions: [{{type: Ready, status: '{ready}'}}]}}\n"
    )
}

#[test]
fn row_12_pod_hostname_and_subdomain() {
    // From the shipped example, where the pod's EndpointSlice says it too: once.
    let built = example(PodMode::Disabled);
    assert_eq!(
        at(&built.records, "busybox-1.subdomain.ns.svc.cluster.local."),
        ["busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10"]
    );
    // From the pod alone.
    let text = format!("{SUBDOMAIN_SERVICE}{}", pod("app: subdomain", "True"));
    let built = from_yaml(&text, PodMode::Disabled);
    assert_eq!(
        lines(&built.records)
            .into_iter()
            .filter(|line| line.contains("subdomain"))
            .collect::<Vec<_>>(),
        ["busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10"]
    );
    // Not selected, not ready, or no such headless service: nothing.
    for text in [
        format!("{SUBDOMAIN_SERVICE}{}", pod("app: other", "True")),
        format!("{SUBDOMAIN_SERVICE}{}", pod("app: subdomain", "False")),
        format!(
            "{}{}",
            SUBDOMAIN_SERVICE.replace("None", "10.96.0.5"),
            pod("app: subdomain", "True")
        ),
        pod("app: subdomain", "True"),
    ] {
        let built = from_yaml(&text, PodMode::Disabled);
        assert!(
            at(&built.records, "busybox-1.subdomain.ns.svc.cluster.local.").is_empty(),
            "{text}"
        );
    }
}

#[test]
fn row_13_what_does_not_exist_has_no_name() {
    let built = example(PodMode::Insecure);
    for missing in [
        "nope.default.svc.cluster.local.",
        "nope.svc.cluster.local.",
        "kubernetes.nope.svc.cluster.local.",
        "www.example.com.ns.svc.cluster.local.",
        "nope.hdls.ns.svc.cluster.local.",
        "nope.cluster.local.",
    ] {
        let missing = name(missing);
        assert!(built.records.iter().all(|r| r.name != missing), "{missing}");
        assert!(!built.empty_names.contains(&missing), "{missing}");
    }
}

#[test]
fn row_14_empty_non_terminals() {
    let built = example(PodMode::Disabled);
    assert_eq!(
        empty_names(&built),
        [
            "pod.cluster.local.",
            "svc.cluster.local.",
            "default.svc.cluster.local.",
            "_tcp.kubernetes.default.svc.cluster.local.",
            "ns.svc.cluster.local.",
            "_tcp.hdls.ns.svc.cluster.local.",
        ]
    );
    // A namespace with no objects in it, and pod namespaces when pod names are answered.
    let built = from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: quiet}\n",
        PodMode::Insecure,
    );
    assert_eq!(
        empty_names(&built),
        [
            "pod.cluster.local.",
            "quiet.pod.cluster.local.",
            "svc.cluster.local.",
            "quiet.svc.cluster.local.",
        ]
    );
}

#[test]
fn row_15_cluster_ip_service_without_endpoints() {
    let built = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: lonely, namespace: app}\nspec: {clusterIP: 10.96.0.9, selector: {app: none}}\n",
        PodMode::Disabled,
    );
    assert_eq!(
        at(&built.records, "lonely.app.svc.cluster.local."),
        ["lonely.app.svc.cluster.local. 5 IN A 10.96.0.9"]
    );
}

#[test]
fn row_16_apex_soa_and_ns() {
    let built = build(&ClusterObjects::default(), &settings(PodMode::Disabled));
    let apex = at(&built.records, "cluster.local.");
    assert_eq!(apex.len(), 2);
    assert_eq!(apex[0], "cluster.local. 5 IN NS ns.dns.cluster.local.");
    assert!(
        apex[1].starts_with(
            "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
        ),
        "{}",
        apex[1]
    );
    assert!(apex[1].ends_with(" 7200 1800 86400 5"), "{}", apex[1]);
    assert!(built.soa().is_some());
}

#[test]
fn serial_follows_the_contents() {
    let serial = |built: &ClusterRecords| match built.soa().map(|record| &record.data) {
        Some(RData::SOA(soa)) => soa.serial,
        _ => panic!("no SOA"),
    };
    let first = example(PodMode::Disabled);
    assert_eq!(serial(&first), serial(&example(PodMode::Disabled)));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster");
    let (mut objects, _) = read_dir(&dir).unwrap();
    objects.services.pop();
    assert_ne!(
        serial(&first),
        serial(&build(&objects, &settings(PodMode::Disabled)))
    );
}

#[test]
fn names_are_lower_case_and_repeats_removed() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: Web, namespace: App}\nspec: {clusterIP: 10.96.0.7, ports: [{name: HTTP, port: 80, protocol: TCP}]}\n---\n\
                apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {clusterIP: 10.96.0.7, ports: [{name: http, port: 80}]}\n";
    let built = from_yaml(text, PodMode::Disabled);
    assert_eq!(
        lines(&built.records)
            .into_iter()
            .filter(|line| line.contains("web"))
            .collect::<Vec<_>>(),
        [
            "web.app.svc.cluster.local. 5 IN A 10.96.0.7",
            "_http._tcp.web.app.svc.cluster.local. 5 IN SRV 0 100 80 web.app.svc.cluster.local.",
        ]
    );
    assert_eq!(built.reverse.len(), 1);
    // The domain as configured, in capitals: answers in lower case all the same.
    let mut objects = ClusterObjects::default();
    parse_manifest(text, "t.yaml", &mut objects);
    let upper = ClusterSettings {
        domain: Name::from_ascii("Cluster.Local").unwrap(),
        ..settings(PodMode::Disabled)
    };
    let built = build(&objects, &upper);
    assert!(lines(&built.records)
        .iter()
        .all(|line| line.contains("cluster.local.")));
}

#[test]
fn missing_fields_and_odd_values_do_not_panic() {
    use k8s_openapi::api::core::v1::{Namespace, ServiceSpec};
    use k8s_openapi::api::discovery::v1::Endpoint;
    let mut objects = ClusterObjects::default();
    objects.services.push(Service::default());
    objects.services.push(Service {
        metadata: ObjectMeta {
            name: Some("x".repeat(200)),
            namespace: Some("y".repeat(63)),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.0.0.1".into()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    });
    objects.services.push(Service {
        metadata: ObjectMeta {
            name: Some("a".into()),
            namespace: Some("b".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ips: Some(vec!["not-an-ip".into(), "".into()]),
            type_: Some("ExternalName".into()),
            external_name: Some("".into()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    });
    objects.endpoint_slices.push(EndpointSlice {
        address_type: "FQDN".into(),
        endpoints: vec![Endpoint::default()],
        ..EndpointSlice::default()
    });
    objects.pods.push(Pod::default());
    objects.namespaces.push(Namespace::default());
    let long = ClusterSettings {
        domain: Name::from_ascii(format!("{}.{}.", "d".repeat(63), "e".repeat(63))).unwrap(),
        ..settings(PodMode::Verified)
    };
    let built = build(&objects, &long);
    assert!(built.soa().is_some());
    let built = build(&objects, &settings(PodMode::Verified));
    assert_eq!(built.records.len(), 3, "{:?}", lines(&built.records));
}

#[test]
fn records_are_in_canonical_order_without_repeats() {
    let objects = varied_cluster(60);
    for mode in [PodMode::Disabled, PodMode::Insecure, PodMode::Verified] {
        let built = build(&objects, &settings(mode));
        assert!(built.records.len() > 200, "{}", built.records.len());
        // hickory's `Ord for Record` is the canonical order (RFC 4034 §6).
        for pair in built.records.windows(2).chain(built.reverse.windows(2)) {
            assert!(pair[0] < pair[1], "{} / {}", pair[0], pair[1]);
        }
        for pair in built.empty_names.windows(2) {
            assert!(pair[0] < pair[1], "{} / {}", pair[0], pair[1]);
        }
        assert_eq!(
            built.soa().map(|soa| soa.name.clone()),
            Some(name("cluster.local."))
        );
    }
}
