//! The slimming of objects, the stores and the outage bookkeeping, without an API server.

use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::follow::Update;
use super::store::{Feed, Store};
use super::trim::{Kind, Object, Watched};
use super::ApiStatus;
use crate::sources::kubernetes::objects::{parse_manifest, read_dir, ClusterObjects};
use crate::sources::kubernetes::records::{self, ClusterSettings, PodMode};
use std::path::Path;

fn settings(pods: PodMode) -> ClusterSettings {
    ClusterSettings {
        domain: hickory_proto::rr::Name::from_ascii("cluster.local.").unwrap(),
        ttl: 5,
        pods,
        server_address: None,
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
