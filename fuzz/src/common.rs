//! What several targets share: where the repository's data is, a scratch directory, the chain
//! the engine answers from, and what BAD-INPUTS asks of every reply.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::Name;

use hearth::chain::order::parse_entry;
use hearth::chain::{Chain, DataVersions, Source};
use hearth::sources::hosts::{FilesConfig, Hosts};
use hearth::sources::kubernetes::config::{KubernetesConfig, KubernetesFeed, PodMode};
use hearth::sources::zones::cluster::Cluster;
use hearth::sources::zones::{ClusterHandle, ZoneVersions, Zones, ZonesConfig};

/// The repository's root: this crate is `fuzz/` in it, and `tests/fuzz_regressions.rs`, which
/// includes these modules, is compiled as part of the root crate.
pub fn repository() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("fuzz_targets").is_dir() {
        manifest.parent().expect("fuzz/ has a parent").to_owned()
    } else {
        manifest.to_owned()
    }
}

/// A directory of this process's own for `target`'s files (readers that take a path), made
/// empty on first use. Under the system's temporary directory: a few small files per process.
pub fn scratch_directory(target: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("hearth-fuzz-{}-{target}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("a scratch directory");
    directory
}

/// The most bytes a UDP reply to `query` may hold (RFC 1035 §4.2.1, RFC 6891 §6.2.3-5): 512
/// without EDNS (or when the query cannot be read), else the client's payload size between 512
/// and our 1,232.
pub fn udp_limit(query: &[u8]) -> usize {
    let payload = Message::from_vec(query)
        .ok()
        .and_then(|message| message.edns.map(|edns| edns.max_payload()));
    match payload {
        None => 512,
        Some(payload) => usize::from(payload.clamp(512, hearth::server::UDP_PAYLOAD)),
    }
}

/// What is true of every reply to `query` that is sent: a whole header, QR=1, the query's ID,
/// and a message a client can read. `what` names the path in the panic.
pub fn check_reply(query: &[u8], reply: &[u8], what: &str) {
    check_reply_header(query, reply, what);
    if let Err(error) = Message::from_vec(reply) {
        panic!("{what}: a reply a client cannot read ({error}): {reply:02x?}");
    }
}

/// [`check_reply`] without the last check: the header only.
pub fn check_reply_header(query: &[u8], reply: &[u8], what: &str) {
    assert!(
        query.len() >= 12,
        "{what}: a reply to a message shorter than a header"
    );
    assert_eq!(
        query[2] & 0x80,
        0,
        "{what}: a reply to a response (QR=1): {reply:02x?}"
    );
    assert!(reply.len() >= 12, "{what}: a reply shorter than a header");
    assert_eq!(
        reply[..2],
        query[..2],
        "{what}: the reply's ID is not the query's"
    );
    assert_ne!(reply[2] & 0x80, 0, "{what}: the reply has QR=0");
}

/// The engine's chain: the hosts file `fuzz/data/hosts`, the zones of `zones/` and the cluster
/// zone of `zones/cluster/`, in that order. No forwarder: nothing leaves the machine.
/// A current-thread runtime with I/O and timers: the one every target that runs the server's
/// async code drives it with.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

pub fn local_chain(versions: &Arc<DataVersions>) -> Chain {
    let root = repository();
    let hosts: Arc<dyn Source> = Arc::new(Hosts::load(
        &FilesConfig {
            paths: vec![root.join("fuzz/data/hosts")],
            ttl: 3600,
            reload_interval: Duration::from_secs(3600),
        },
        versions.register("files"),
    ));
    let kubernetes = KubernetesConfig {
        domain: Name::from_ascii("cluster.local.").expect("a name"),
        feed: KubernetesFeed::Manifests(root.join("zones/cluster")),
        pods: PodMode::Verified,
        ttl: 5,
        autopath: false,
    };
    let cluster = ClusterHandle::new(
        Arc::new(Cluster::load(&kubernetes, versions.register("cluster"))),
        kubernetes.clone(),
    );
    let zones: Arc<dyn Source> = Arc::new(Zones::load(
        &ZonesConfig {
            directory: Some(root.join("zones")),
            reload_interval: Duration::from_secs(3600),
            kubernetes: Some(kubernetes),
            ..ZonesConfig::default()
        },
        Some(cluster),
        ZoneVersions {
            origins: versions.register("zone origins"),
            data: versions.register("zone data"),
        },
    ));
    let order: Vec<_> = ["files", "zones"]
        .iter()
        .map(|entry| parse_entry(entry).expect("an order entry"))
        .collect();
    Chain::new(&order, &[hosts, zones])
}
