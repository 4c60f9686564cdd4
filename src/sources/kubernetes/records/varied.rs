//! A generated cluster for tests that compare two ways of building the zone.

use crate::sources::kubernetes::objects::{parse_manifest, ClusterObjects};

/// A cluster of `services` services with a bit of everything the records are made from: dual
/// stack, IPv6 slices, hostnames, endpoints not ready, several ports and none, a service with
/// two slices that say one address twice, names in capitals, ExternalName, services without
/// an address, and pods with addresses, hostnames and subdomains. For tests that compare two
/// ways of building the zone.
pub(crate) fn varied_cluster(services: usize) -> ClusterObjects {
    use serde_json::json;
    let mut documents =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quiet"}})];
    let mut address = 0u32;
    for index in 0..services {
        let namespace = format!("ns-{}", index % 7);
        let name = format!("svc-{index}");
        let headless = index % 2 == 1;
        let cluster_ip = if headless {
            "None".to_owned()
        } else {
            format!("10.96.{}.{}", index / 250, index % 250 + 1)
        };
        let mut spec = json!({"clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
            "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        match index % 13 {
            0 => {
                spec = json!({"type": "ExternalName", "externalName": format!("Www.Ext{index}.Example.COM.")})
            }
            2 => {
                spec["clusterIPs"] = json!([cluster_ip, format!("fd00::{index:x}")]);
                spec["ports"] = json!([{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}, {"port": 9}]);
            }
            3 => {
                spec["publishNotReadyAddresses"] = json!(true);
                spec["ports"] = json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}]);
            }
            7 => {
                spec["clusterIP"] = json!("");
                spec["clusterIPs"] = json!([]);
            }
            _ => {}
        }
        let v6 = index % 13 == 5;
        let written = if index % 17 == 4 {
            name.to_uppercase()
        } else {
            name.clone()
        };
        documents.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": written, "namespace": namespace, "labels": {"app": name}}, "spec": spec}));
        let endpoints: Vec<serde_json::Value> = (0..index % 5 + 1)
            .map(|endpoint| {
                address += 1;
                let ip = if v6 {
                    format!("fd00:10::{address:x}")
                } else {
                    std::net::Ipv4Addr::from(0x0a00_0000 + address).to_string()
                };
                let mut entry =
                    json!({"addresses": [ip], "conditions": {"ready": endpoint % 5 != 2}});
                if endpoint % 4 == 1 {
                    entry["hostname"] = json!(format!("host-{endpoint}"));
                }
                if endpoint % 7 == 3 {
                    entry
                        .as_object_mut()
                        .map(|entry| entry.remove("conditions"));
                }
                entry
            })
            .collect();
        let ports = if index % 3 == 0 {
            json!([{"name": "http", "port": 8080}, {"name": "grpc", "port": 9090}, {"port": 1}])
        } else {
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        };
        documents.push(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-a"), "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name}},
            "addressType": if v6 { "IPv6" } else { "IPv4" }, "endpoints": endpoints, "ports": ports}));
        if index % 11 == 1 {
            let repeated = std::net::Ipv4Addr::from(0x0a00_0000 + address).to_string();
            documents.push(
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-b"), "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "endpoints": [{"addresses": [repeated, "10.200.0.1"]}],
                "ports": [{"name": "http", "port": 8080}]}),
            );
        }
    }
    for index in 0..services {
        let service = format!("svc-{}", (index * 2 + 1) % services.max(1));
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{index}"), "namespace": format!("ns-{}", index % 7),
                "labels": {"app": service}},
            "spec": {"containers": []},
            "status": {"phase": "Running", "podIP": std::net::Ipv4Addr::from(0x0b00_0000 + index as u32).to_string()}});
        if index % 3 == 0 {
            pod["spec"]["hostname"] = json!(format!("ph-{index}"));
            pod["spec"]["subdomain"] = json!(service);
        }
        if index % 5 == 1 {
            pod["status"]["podIPs"] =
                json!([{"ip": pod["status"]["podIP"]}, {"ip": format!("fd00:11::{index:x}")}]);
        }
        if index % 7 == 2 {
            pod["status"]["phase"] = json!("Succeeded");
        }
        documents.push(pod);
    }
    let text: Vec<String> = documents
        .iter()
        .map(|document| serde_yaml::to_string(document).unwrap_or_default())
        .collect();
    let mut objects = ClusterObjects::default();
    let problems = parse_manifest(&text.join("---\n"), "varied.yaml", &mut objects);
    assert!(problems.is_empty(), "{problems:?}");
    objects
}
