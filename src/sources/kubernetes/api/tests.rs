//! What the feed keeps of objects, the stores and the outage bookkeeping, without an API server.

use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::follow::Update;
use super::store::{Feed, Store};
use super::trim::{Kind, Object, Watched};
use super::ApiStatus;
use crate::sources::kubernetes::objects::{parse_manifest, read_dir, ClusterObjects};
use crate::sources::kubernetes::records::{
    self, ClusterSettings, NamespaceEntry, PodMode, ServiceEntry,
};
use std::path::Path;

fn settings(pods: PodMode) -> ClusterSettings {
    ClusterSettings {
        domain: hickory_proto::rr::Name::from_ascii("cluster.local.").unwrap(),
        ttl: 5,
        pods,
        server_address: None,
    }
}

/// The records built from what the feed keeps (the entries of listed objects, through a
/// snapshot of its stores) are those of the objects, in every pod mode.
fn assert_the_feed_keeps_the_records(objects: &ClusterObjects) {
    let status = ApiStatus::default();
    let kinds = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Namespace,
        Kind::Pod,
    ];
    let mut feed = Feed::new(&kinds);
    for kind in kinds {
        feed.apply(Update::Listing(kind), &status);
    }
    let listed = objects
        .services
        .iter()
        .cloned()
        .map(Watched::entry)
        .chain(objects.endpoint_slices.iter().cloned().map(Watched::entry))
        .chain(objects.namespaces.iter().cloned().map(Watched::entry))
        .chain(objects.pods.iter().cloned().map(Watched::entry));
    for object in listed {
        feed.apply(Update::Listed(object), &status);
    }
    for kind in kinds {
        assert!(feed.apply(Update::ListDone(kind), &status), "a first list");
    }
    let snapshot = feed.snapshot();
    for pods in [PodMode::Disabled, PodMode::Insecure, PodMode::Verified] {
        let expected = records::build(objects, &settings(pods));
        let mut fed = records::ClusterRecords::default();
        records::build_into(&snapshot.objects(), &settings(pods), &mut fed);
        assert_eq!(expected.records, fed.records, "{pods:?}");
        assert_eq!(expected.empty_names, fed.empty_names, "{pods:?}");
        assert_eq!(expected.reverse, fed.reverse, "{pods:?}");
    }
}

#[test]
fn the_feed_keeps_the_records_of_a_live_cluster() {
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
    assert_the_feed_keeps_the_records(&objects);
}

#[test]
fn the_feed_keeps_the_records_of_the_examples() {
    for dir in ["zones/cluster", "tests/data/kubernetes/example"] {
        let (objects, problems) =
            read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!objects.pods.is_empty());
        assert_the_feed_keeps_the_records(&objects);
    }
}

/// What a store keeps per object stays small: an endpoint is its addresses, hostname and
/// readiness (a k8s-openapi `Endpoint` is some 400 bytes before its strings).
#[test]
fn entries_are_compact() {
    use crate::sources::kubernetes::records::{EndpointEntry, SliceEntry};
    assert!(std::mem::size_of::<EndpointEntry>() <= 40);
    assert!(std::mem::size_of::<SliceEntry>() <= 112);
    assert!(std::mem::size_of::<ServiceEntry>() <= 112);
}

fn service(name: &str) -> ServiceEntry {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        ..Service::default()
    }
    .into()
}

fn names(store: &Store<ServiceEntry>) -> Vec<String> {
    let mut names: Vec<String> = store
        .objects
        .keys()
        .map(|(_, name)| name.to_string())
        .collect();
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
    assert!(store.end_list(), "the first list");
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
    assert!(store.end_list());
    assert_eq!(names(&store), ["c", "d"]);
}

/// After a 410 Gone every kind is listed again; when nothing changed meanwhile, the new list
/// shares the entries already kept (no second copy while it runs) and asks for no new zone.
#[test]
fn a_relist_of_unchanged_objects_shares_them_and_changes_nothing() {
    let mut store = Store::new();
    store.begin_list();
    store.listed(service("a"));
    store.listed(service("b"));
    assert!(store.end_list());
    let kept = std::sync::Arc::clone(&store.objects[&("default".into(), "a".into())]);

    store.begin_list();
    store.listed(service("a"));
    store.listed(service("b"));
    let listing = store.listing.as_ref().unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &listing[&("default".into(), "a".into())],
        &kept
    ));
    assert!(!store.end_list(), "the same objects: no rebuild");

    // One gone, or one changed, or one more: a rebuild.
    store.begin_list();
    store.listed(service("a"));
    assert!(store.end_list());
    store.begin_list();
    store.listed(service("a"));
    store.listed(service("b"));
    assert!(store.end_list());
    store.begin_list();
    let mut changed = service("a");
    changed.publish_not_ready = true;
    store.listed(changed);
    store.listed(service("b"));
    assert!(store.end_list());
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
    feed.apply(
        Update::Applied(Object::Namespace(NamespaceEntry::default())),
        &status,
    );
    assert!(feed.is_connected(), "an event is an answer");
    assert_eq!(status.outage_began.load(Ordering::Relaxed), 0);
    assert_eq!(status.watch_errors_total(), 3);
    assert_eq!(status.lists_total(), 3);
}

/// The records under `top` (and the PTRs to them) of `built`, as text.
fn records_under(built: &records::ClusterRecords, top: &hickory_proto::rr::Name) -> Vec<String> {
    let ptr_to_top = |record: &hickory_proto::rr::Record| match &record.data {
        hickory_proto::rr::RData::PTR(target) => top.zone_of(&target.0),
        _ => false,
    };
    built
        .records
        .iter()
        .filter(|record| top.zone_of(&record.name))
        .chain(built.reverse.iter().filter(|record| ptr_to_top(record)))
        .map(ToString::to_string)
        .chain(
            built
                .empty_names
                .iter()
                .filter(|name| top.zone_of(name))
                .map(ToString::to_string),
        )
        .collect()
}

/// After the first list the whole zone is built; after a watch event only the parts it
/// touches, from their objects and every namespace, and those give the part's records as the
/// whole build does; after a re-list, only the parts of what it changed.
#[test]
fn after_an_event_only_its_parts_are_built_and_give_the_same_records() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kubernetes/live/cluster.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut objects = ClusterObjects::default();
    assert!(parse_manifest(&text, "cluster.yaml", &mut objects).is_empty());
    let status = ApiStatus::default();
    let kinds = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Namespace,
        Kind::Pod,
    ];
    let mut feed = Feed::new(&kinds);
    for kind in kinds {
        feed.apply(Update::Listing(kind), &status);
    }
    let listed = objects
        .services
        .iter()
        .cloned()
        .map(Watched::entry)
        .chain(objects.endpoint_slices.iter().cloned().map(Watched::entry))
        .chain(objects.namespaces.iter().cloned().map(Watched::entry))
        .chain(objects.pods.iter().cloned().map(Watched::entry));
    for object in listed {
        feed.apply(Update::Listed(object), &status);
    }
    for kind in kinds {
        feed.apply(Update::ListDone(kind), &status);
    }
    assert!(
        feed.take_changes().parts.is_none(),
        "the first build is whole"
    );

    let settings = settings(PodMode::Verified);
    let mut every_namespace: Vec<String> = Vec::new();
    for service in &objects.services {
        // The service changes: its records then come from its part alone.
        let mut changed = service.clone();
        if let Some(spec) = changed.spec.as_mut() {
            spec.publish_not_ready_addresses = Some(true);
        }
        assert!(feed.apply(Update::Applied(changed.clone().entry()), &status));
        let snapshot = feed.take_changes();
        let parts = snapshot.parts.clone().expect("a change builds parts");
        let part = records::Part::of_service(&changed.clone().into()).unwrap();
        assert!(parts.contains(&part), "{parts:?}");
        let refs = snapshot.objects();
        assert!(refs.services.len() <= parts.len());
        let namespaces: Vec<String> = refs
            .namespaces
            .iter()
            .filter_map(|namespace| namespace.object.name.as_deref().map(str::to_owned))
            .collect();
        if every_namespace.is_empty() {
            every_namespace = namespaces.clone();
        }
        assert_eq!(namespaces, every_namespace, "every namespace, every time");

        let mut whole_objects = objects.clone();
        for kept in &mut whole_objects.services {
            if kept.metadata.name == changed.metadata.name
                && kept.metadata.namespace == changed.metadata.namespace
            {
                *kept = changed.clone();
            }
        }
        let whole = records::build(&whole_objects, &settings);
        let mut built = records::ClusterRecords::default();
        records::build_into(&refs, &settings, &mut built);
        let top = hickory_proto::rr::Name::from_ascii(format!(
            "{}.svc.cluster.local.",
            part.labels()[..2].join(".")
        ))
        .unwrap();
        assert_eq!(
            records_under(&built, &top),
            records_under(&whole, &top),
            "{top}"
        );
        // Back as it was.
        feed.apply(Update::Applied(service.clone().entry()), &status);
        feed.take_changes();
    }

    // A re-list that takes a service away: its part, and only it.
    feed.apply(Update::Listing(Kind::Service), &status);
    for service in objects.services.iter().skip(1) {
        feed.apply(Update::Listed(service.clone().entry()), &status);
    }
    assert!(feed.apply(Update::ListDone(Kind::Service), &status));
    let gone = records::Part::of_service(&objects.services[0].clone().into()).unwrap();
    assert_eq!(feed.take_changes().parts, Some(vec![gone]));
    // A re-list of the same objects: nothing to build.
    feed.apply(Update::Listing(Kind::Service), &status);
    for service in objects.services.iter().skip(1) {
        feed.apply(Update::Listed(service.clone().entry()), &status);
    }
    assert!(!feed.apply(Update::ListDone(Kind::Service), &status));
    // An install that failed: the next build is whole.
    feed.not_installed();
    assert!(feed.take_changes().parts.is_none());
}

/// What the watch reads of an object (`slim.rs`) makes the same entry as the whole object.
#[test]
fn objects_read_slim_make_the_same_entries() {
    use super::slim::{NamespaceObject, PodObject, ServiceObject, SliceObject};
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kubernetes/live/cluster.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut objects = ClusterObjects::default();
    assert!(parse_manifest(&text, "cluster.yaml", &mut objects).is_empty());
    fn same<Full, Slim>(objects: &[Full])
    where
        Full: Watched + serde::Serialize,
        Slim: Watched,
    {
        assert!(!objects.is_empty());
        for object in objects {
            let json = serde_json::to_string(object).unwrap();
            let slim: Slim = serde_json::from_str(&json).unwrap();
            assert_eq!(
                format!("{:?}", slim.entry()),
                format!("{:?}", object.clone().entry()),
                "{json}"
            );
        }
    }
    same::<Service, ServiceObject>(&objects.services);
    same::<k8s_openapi::api::discovery::v1::EndpointSlice, SliceObject>(&objects.endpoint_slices);
    same::<k8s_openapi::api::core::v1::Namespace, NamespaceObject>(&objects.namespaces);
    same::<k8s_openapi::api::core::v1::Pod, PodObject>(&objects.pods);
}
