//! The cluster zone fed by manifests (`[kubernetes] manifests`): the Kubernetes DNS checklist
//! (`shared/docs/KUBERNETES-DNS.md`), whose table of cases is shared with the API feed
//! (tests/common/kubernetes.rs), through the real server; then what only this feed does: a
//! directory that is not there yet, and manifests that change.
//!
//! Answers are compared as zone-file lines, the way `dig` prints them.

mod common;

use common::kubernetes::*;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[tokio::test]
async fn the_checklist_from_manifests() {
    run_checklist(ChecklistFeed::Manifests).await;
}

#[tokio::test]
async fn row_17_servfail_until_the_objects_have_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let hearth = start_hearth(Feed::Manifests(&missing), "insecure").await;
    let addr = hearth.addr();
    let response = ask(addr, KUBERNETES, RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::ServFail);
    assert_eq!(hearth.upstream.queries(), 0, "not forwarded while unknown");

    // The objects arrive: the zone loads and answers.
    std::fs::create_dir(&missing).unwrap();
    std::fs::copy(
        example_cluster().join("default.yaml"),
        missing.join("default.yaml"),
    )
    .unwrap();
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, KUBERNETES, RecordType::A).await) == ["10.96.0.1"]
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
    let hearth = start_hearth(Feed::Manifests(dir.path()), "insecure").await;
    let addr = hearth.addr();
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
