//! The cluster zone kept in parts answers as the zone of the records built whole, and a zone
//! changed part by part answers as one installed whole from the same objects.

use std::collections::{BTreeSet, HashSet};

use hickory_proto::rr::Name;

use super::*;
use crate::chain::DataVersion;
use crate::sources::kubernetes::objects::{parse_manifest, ClusterObjects};
use crate::sources::kubernetes::records::{
    namespace_named, namespace_of, varied_cluster, Named, NamespaceEntry, ObjectName, PodEntry,
    ServiceEntry, SliceEntry,
};

const MODES: [ConfigPodMode; 3] = [
    ConfigPodMode::Disabled,
    ConfigPodMode::Insecure,
    ConfigPodMode::Verified,
];

/// A cluster fed by an API (never reached: objects are installed by hand).
fn cluster(pods: ConfigPodMode) -> Cluster {
    let config = KubernetesConfig {
        domain: Name::from_ascii("Cluster.Local.").unwrap(),
        feed: KubernetesFeed::Api(KubernetesApi::Url("http://127.0.0.1:9".into())),
        pods,
        ttl: 5,
        autopath: false,
    };
    Cluster::load(&config, DataVersion::detached("cluster"))
}

fn whole(objects: &ClusterObjects, pods: ConfigPodMode) -> Cluster {
    let cluster = cluster(pods);
    assert!(cluster.install(objects));
    cluster
}

/// The parts whose objects differ between `before` and `after`, as the API feed finds them
/// from its events: the parts of an object's old version and of its new one.
fn changed_parts(before: &ClusterEntries, after: &ClusterEntries) -> HashSet<Part> {
    fn changed<E: Named + PartialEq, P: IntoIterator<Item = Part>>(
        before: &[E],
        after: &[E],
        part_of: impl Fn(&E) -> P,
        parts: &mut HashSet<Part>,
    ) {
        let key = |entry: &E| entry.object().clone();
        for entry in before.iter().chain(after) {
            let old = before.iter().find(|other| key(other) == key(entry));
            let new = after.iter().find(|other| key(other) == key(entry));
            if old != new {
                parts.extend(part_of(entry));
            }
        }
    }
    let mut parts = HashSet::new();
    changed(
        &before.services,
        &after.services,
        Part::of_service,
        &mut parts,
    );
    changed(
        &before.endpoint_slices,
        &after.endpoint_slices,
        Part::of_slice,
        &mut parts,
    );
    changed(&before.pods, &after.pods, Part::of_pod, &mut parts);
    parts
}

/// A zone installed whole from `before`, then changed to `after` part by part, as the API
/// feed does (`kubernetes::api`'s `Feed::take_changes`): the objects of the parts changed and
/// an entry for every namespace of `after`.
fn changed(before: &ClusterObjects, after: &ClusterObjects, pods: ConfigPodMode) -> Cluster {
    let cluster = whole(before, pods);
    let (old, new) = (ClusterEntries::from(before), ClusterEntries::from(after));
    let parts = changed_parts(&old, &new);
    let touched = |of: Vec<Part>| of.iter().any(|part| parts.contains(part));
    let services: Vec<&ServiceEntry> = new
        .services
        .iter()
        .filter(|entry| touched(Part::of_service(entry).into_iter().collect()))
        .collect();
    let endpoint_slices: Vec<&SliceEntry> = new
        .endpoint_slices
        .iter()
        .filter(|entry| touched(Part::of_slice(entry).into_iter().collect()))
        .collect();
    let pod_entries: Vec<&PodEntry> = new
        .pods
        .iter()
        .filter(|entry| touched(Part::of_pod(entry)))
        .collect();
    let mut namespaces: BTreeSet<String> =
        new.namespaces.iter().filter_map(namespace_named).collect();
    namespaces.extend(new.services.iter().filter_map(namespace_of));
    namespaces.extend(new.endpoint_slices.iter().filter_map(namespace_of));
    namespaces.extend(new.pods.iter().filter_map(namespace_of));
    let namespace_entries: Vec<NamespaceEntry> = namespaces
        .into_iter()
        .map(|name| NamespaceEntry {
            object: ObjectName {
                namespace: None,
                name: Some(name.into()),
            },
        })
        .collect();
    let objects = ObjectRefs {
        services,
        endpoint_slices,
        pods: pod_entries,
        namespaces: namespace_entries.iter().collect(),
    };
    let parts: Vec<Part> = parts.into_iter().collect();
    assert!(cluster.install_parts(&parts, &objects));
    cluster
}

/// Every question about the names of `objects`' records (and their parents, children and
/// reverse names) is answered the same by `a` and `b`.
fn assert_same_answers(a: &Cluster, b: &Cluster, objects: &[&ClusterObjects]) {
    let settings = &a.settings;
    let mut names: BTreeSet<Name> = BTreeSet::new();
    let mut reverse: BTreeSet<Name> = BTreeSet::new();
    for objects in objects {
        let built = records::build(objects, settings);
        for record in &built.records {
            names.insert(record.name.clone());
            names.insert(record.name.base_name());
            for label in ["nope", "*", "10-0-0-1"] {
                names.extend(record.name.prepend_label(label).ok());
            }
        }
        names.extend(built.empty_names.iter().cloned());
        reverse.extend(built.reverse.iter().map(|record| record.name.clone()));
    }
    names.insert(Name::from_ascii("SVC-1.NS-1.SVC.CLUSTER.LOCAL.").unwrap());
    names.insert(Name::from_ascii("10-0-0-1.ns-1.pod.cluster.local.").unwrap());
    reverse.insert(Name::from_ascii("9.9.9.9.in-addr.arpa.").unwrap());
    let (a, b) = (a.state.load(), b.state.load());
    let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
    for name in &names {
        let lower = LowerName::new(name);
        assert_eq!(a.zone.has_name(&lower), b.zone.has_name(&lower), "{name}");
        for record_type in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::CNAME,
            RecordType::TXT,
            RecordType::NS,
            RecordType::SOA,
            RecordType::ANY,
            RecordType::MX,
        ] {
            assert_eq!(
                format!("{:?}", a.zone.lookup(name, record_type)),
                format!("{:?}", b.zone.lookup(name, record_type)),
                "{name} {record_type}"
            );
        }
    }
    for name in &reverse {
        let lower = LowerName::new(name);
        assert_eq!(
            format!("{:?}", a.reverse.get(&lower, name)),
            format!("{:?}", b.reverse.get(&lower, name)),
            "{name}"
        );
    }
}

fn from_yaml(text: &str) -> ClusterObjects {
    let mut objects = ClusterObjects::default();
    let problems = parse_manifest(text, "test.yaml", &mut objects);
    assert!(problems.is_empty(), "{problems:?}");
    objects
}

/// For every pod mode: the zone changed from `before` to `after` part by part answers as the
/// one installed whole from `after`.
fn assert_change_as_whole(before: &ClusterObjects, after: &ClusterObjects) {
    for pods in MODES {
        let changed = changed(before, after, pods);
        let whole = whole(after, pods);
        assert_same_answers(&changed, &whole, &[before, after]);
    }
}

/// The zone kept in parts answers as the zone made from the records of `records::build`,
/// whatever the question.
#[test]
fn the_zone_in_parts_answers_as_one_from_records() {
    let objects = varied_cluster(60);
    for pods in MODES {
        let cluster = whole(&objects, pods);
        let settings = &cluster.settings;
        let built = records::build(&objects, settings);
        let soa = built.soa().unwrap().clone();
        let expected = Zone::from_records(
            settings.domain.clone(),
            soa,
            built.records.clone(),
            &built.empty_names,
        );
        let state = cluster.state.load();
        let state = state.as_ref().unwrap();
        let mut names: Vec<Name> = built.empty_names.clone();
        for record in &built.records {
            names.push(record.name.clone());
            names.push(record.name.base_name());
            for label in ["nope", "*", "10-0-0-1"] {
                names.extend(record.name.prepend_label(label).ok());
            }
        }
        names.push(Name::from_ascii("SVC-1.NS-1.SVC.CLUSTER.LOCAL.").unwrap());
        for name in &names {
            for record_type in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::SRV,
                RecordType::CNAME,
                RecordType::TXT,
                RecordType::NS,
                RecordType::SOA,
                RecordType::ANY,
                RecordType::MX,
            ] {
                assert_eq!(
                    format!("{:?}", state.zone.lookup(name, record_type)),
                    format!("{:?}", expected.lookup(name, record_type)),
                    "{name} {record_type} ({pods:?})"
                );
            }
        }
        for record in &built.reverse {
            let asked = LowerName::new(&record.name);
            let answers = state.reverse.get(&asked, &record.name).unwrap();
            let expected: Vec<&Record> = built
                .reverse
                .iter()
                .filter(|other| other.name == record.name)
                .collect();
            assert_eq!(format!("{answers:?}"), format!("{expected:?}"));
        }
        let elsewhere = Name::from_ascii("9.9.9.9.in-addr.arpa.").unwrap();
        assert!(state
            .reverse
            .get(&LowerName::new(&elsewhere), &elsewhere)
            .is_none());
    }
}

const BASE: &str = "\
apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: apps}\n\
spec: {clusterIP: 10.96.0.7, ports: [{name: http, port: 80, protocol: TCP}]}\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: apps}\n\
spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}\n---\n\
apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
metadata: {name: db-a, namespace: apps, labels: {kubernetes.io/service-name: db}}\n\
addressType: IPv4\nports: [{name: pg, port: 5432, protocol: TCP}]\n\
endpoints: [{addresses: [10.244.0.1], hostname: db-0}, {addresses: [10.244.0.2], conditions: {ready: false}}]\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: apps}\n\
spec: {clusterIP: None}\n---\n\
apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
metadata: {name: other-a, namespace: apps, labels: {kubernetes.io/service-name: other}}\n\
addressType: IPv4\nendpoints: [{addresses: [10.244.0.1], hostname: db-0}]\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: apps, labels: {app: db}}\n\
spec: {hostname: db-0, subdomain: db, containers: []}\nstatus: {phase: Running, podIP: 10.244.0.1}\n";

/// A service updated (its address and ports) is answered as after a whole build.
#[test]
fn an_updated_service_is_answered_as_after_a_whole_build() {
    let before = from_yaml(BASE);
    let after = from_yaml(&BASE.replace(
        "clusterIP: 10.96.0.7, ports: [{name: http, port: 80, protocol: TCP}]",
        "clusterIP: 10.96.0.8, ports: [{name: https, port: 443}]",
    ));
    assert_change_as_whole(&before, &after);
}

/// A service deleted, and one added in a namespace no object had before.
#[test]
fn a_deleted_service_and_a_new_namespace_are_answered_as_after_a_whole_build() {
    let before = from_yaml(BASE);
    let mut after = before.clone();
    after
        .services
        .retain(|service| service.metadata.name.as_deref() != Some("web"));
    let added = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: new, namespace: fresh}\n\
         spec: {clusterIP: 10.96.9.9}\n",
    );
    after.services.extend(added.services);
    assert_change_as_whole(&before, &after);
    assert_change_as_whole(&after, &before);
}

/// A service that moves to another namespace (deleted in one, made in the other), leaving its
/// old namespace without objects.
#[test]
fn a_service_moving_namespace_is_answered_as_after_a_whole_build() {
    let before = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: old}\n\
         spec: {clusterIP: 10.96.0.7, ports: [{name: http, port: 80}]}\n",
    );
    let after = from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: new}\n\
         spec: {clusterIP: 10.96.0.7, ports: [{name: http, port: 80}]}\n",
    );
    assert_change_as_whole(&before, &after);
    let (whole_before, whole_after) = (
        whole(&before, ConfigPodMode::Disabled),
        whole(&after, ConfigPodMode::Disabled),
    );
    let moved = changed(&before, &after, ConfigPodMode::Disabled);
    let old_namespace = LowerName::from(Name::from_ascii("old.svc.cluster.local.").unwrap());
    let state = moved.state.load();
    assert!(!state.as_ref().unwrap().zone.has_name(&old_namespace));
    // The serial follows: as the whole build's after, not as before.
    let soa = |cluster: &Cluster| {
        format!(
            "{:?}",
            cluster.state.load().as_ref().unwrap().zone.negative_soa()
        )
    };
    assert_eq!(soa(&moved), soa(&whole_after));
    assert_ne!(soa(&moved), soa(&whole_before));
}

/// A headless service's endpoints change: one becomes ready, one goes, one comes with a new
/// hostname, and an address it shares with another service keeps that service's PTR.
#[test]
fn a_headless_services_endpoints_changing_are_answered_as_after_a_whole_build() {
    let before = from_yaml(BASE);
    let after = from_yaml(&BASE.replace(
        "endpoints: [{addresses: [10.244.0.1], hostname: db-0}, {addresses: [10.244.0.2], conditions: {ready: false}}]",
        "endpoints: [{addresses: [10.244.0.2]}, {addresses: [10.244.0.3], hostname: db-2}]",
    ));
    assert_change_as_whole(&before, &after);
    assert_change_as_whole(&after, &before);
    // The slice gone altogether: the pod's own hostname answers for it.
    let mut without = before.clone();
    without
        .endpoint_slices
        .retain(|slice| slice.metadata.name.as_deref() != Some("db-a"));
    assert_change_as_whole(&before, &without);
}

/// Many changes of every kind at once, on a varied cluster, in both directions.
#[test]
fn changes_of_every_kind_are_answered_as_after_a_whole_build() {
    let before = varied_cluster(40);
    let mut after = varied_cluster(44);
    after.services.retain(|service| {
        !service
            .metadata
            .name
            .as_deref()
            .is_some_and(|name| name.ends_with('3'))
    });
    after
        .endpoint_slices
        .iter_mut()
        .step_by(5)
        .for_each(|slice| {
            slice.endpoints.truncate(1);
        });
    after.pods.iter_mut().step_by(3).for_each(|pod| {
        pod.metadata.namespace = Some("elsewhere".into());
    });
    assert_change_as_whole(&before, &after);
    assert_change_as_whole(&after, &before);
}
