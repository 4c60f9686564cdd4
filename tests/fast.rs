//! The UDP fast path answers byte for byte what the general path answers, over a corpus that
//! covers every source (hosts, zones, forwarded answers from the cache) and every kind of answer
//! (data, NODATA, NXDOMAIN, CNAME chains, wildcards, referrals, EDNS or not, DO or not), also
//! after time has passed (TTLs counted down) and after a reload (nothing stale reused).

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::RecordType;
use tokio::time::Instant;

use hearth::chain::order::parse_entry;
use hearth::chain::DataVersions;
use hearth::chain::{Chain, Source};
use hearth::config::values::UpstreamSpec;
use hearth::server::fast::FastTable;
use hearth::server::{Engine, Transport};
use hearth::sources::forward::Forwarder;
use hearth::sources::forward::{ForwardConfig, Policy, UpstreamsFrom};
use hearth::sources::hosts::FilesConfig;
use hearth::sources::hosts::Hosts;
use hearth::sources::zones::ZonesConfig;
use hearth::sources::zones::{ZoneVersions, Zones};

/// A query as bytes: `edns` None for none, Some(do_bit) for an OPT record.
fn query_bytes(id: u16, name_text: &str, record_type: RecordType, edns: Option<bool>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message
        .queries
        .push(Query::query(name(name_text), record_type));
    if let Some(dnssec_ok) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232).set_dnssec_ok(dnssec_ok);
        message.edns = Some(opt);
    }
    message.to_vec().unwrap()
}

fn with_id(mut bytes: Vec<u8>, id: u16) -> Vec<u8> {
    bytes[..2].copy_from_slice(&id.to_be_bytes());
    bytes
}

#[tokio::test]
async fn fast_answers_are_the_general_paths_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let hosts_path = hosts_file(
        dir.path(),
        "192.0.2.10 web.example.org web\n2001:db8::10 web.example.org\n",
    );
    let upstream = FakeUpstream::start().await;
    upstream.add_a("www.example.net.", Ipv4Addr::new(198, 51, 100, 1));
    upstream.add_cname("alias.example.net.", "www.example.net.");

    let versions = DataVersions::new();
    let hosts: Arc<dyn Source> = Arc::new(Hosts::load(
        &FilesConfig {
            paths: vec![hosts_path.clone()],
            ttl: 3600,
            reload_interval: Duration::from_secs(1),
        },
        versions.register("files"),
    ));
    let zones: Arc<dyn Source> = Arc::new(Zones::load(
        &ZonesConfig {
            directory: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("zones")),
            ..ZonesConfig::default()
        },
        None,
        ZoneVersions {
            origins: versions.register("zone origins"),
            data: versions.register("zone data"),
        },
    ));
    let forward: Arc<dyn Source> = Arc::new(Forwarder::new(&ForwardConfig {
        upstreams: vec![UpstreamSpec::udp(upstream.addr)],
        upstreams_from: UpstreamsFrom::Config,
        policy: Policy::Sequential,
        timeout: Duration::from_secs(2),
        max_concurrent: 100,
        health_check: Duration::from_secs(60),
        cache: Default::default(),
        tls_ca: None,
        udp_ports: 16,
        zones: Vec::new(),
        dnssec: Default::default(),
    }));
    let order: Vec<_> = ["files", "zones", "dns"]
        .iter()
        .map(|e| parse_entry(e).unwrap())
        .collect();
    let engine = Engine::new(Chain::new(&order, &[hosts, zones, forward]));
    let table = FastTable::new(1000, Arc::clone(&versions));
    let admitted = hearth::server::admission::Admission::admit_all(1)
        .request(
            "192.0.2.1:5300".parse().unwrap(),
            hearth::server::Transport::Udp,
            &[],
        )
        .admitted()
        .unwrap();

    let corpus: Vec<(&str, RecordType, Option<bool>)> = vec![
        ("web.example.org.", RecordType::A, Some(false)),
        ("web.example.org.", RecordType::A, None),
        ("WEB.Example.org.", RecordType::AAAA, Some(false)),
        ("web.example.org.", RecordType::MX, Some(false)),
        ("10.2.0.192.in-addr.arpa.", RecordType::PTR, Some(false)),
        ("www.example.internal.", RecordType::A, Some(false)),
        ("www.example.internal.", RecordType::AAAA, None),
        ("nope.example.internal.", RecordType::A, Some(false)),
        ("www.example.internal.", RecordType::MX, Some(false)),
        ("docs.example.internal.", RecordType::A, Some(false)),
        ("any.apps.example.internal.", RecordType::TXT, Some(false)),
        ("deep.lab.example.internal.", RecordType::A, Some(false)),
        ("eu.example.internal.", RecordType::A, Some(false)),
        ("www.example.net.", RecordType::A, Some(false)),
        ("www.example.net.", RecordType::A, Some(true)),
        ("www.example.net.", RecordType::A, None),
        ("alias.example.net.", RecordType::A, Some(false)),
        ("missing.example.net.", RecordType::A, Some(false)),
        ("www.example.net.", RecordType::AAAA, Some(false)),
    ];

    // Prime: a forwarded answer is reusable from its first cache hit on.
    for (name_text, record_type, edns) in &corpus {
        engine
            .handle_reply(
                &query_bytes(1, name_text, *record_type, *edns),
                Transport::Udp,
            )
            .await;
    }
    tokio::time::pause();
    let check = |moment: &str| format!("at {moment}");
    for (round, moment) in [(0u16, "the start"), (1, "50 s later")] {
        if round == 1 {
            // Within every lifetime in the corpus (the shortest: a 60 s negative answer).
            tokio::time::advance(Duration::from_secs(50)).await;
        }
        for (index, (name_text, record_type, edns)) in corpus.iter().enumerate() {
            let what = format!("{name_text} {record_type} edns {edns:?} {}", check(moment));
            let query = query_bytes(100 + index as u16, name_text, *record_type, *edns);
            let versions_before = table.versions();
            let general = engine
                .handle_reply(&query, Transport::Udp)
                .await
                .expect("answered");
            if round == 0 {
                assert_ne!(
                    general.validity,
                    hearth::chain::Validity::Never,
                    "{what}: reusable"
                );
                table.store(&query, &general, &versions_before, Instant::now);
            }
            let mut fast = Vec::new();
            let asked = with_id(query.clone(), 0x7777);
            assert!(
                table.answer(&admitted, &asked, Instant::now(), &mut fast),
                "{what}: a fast hit"
            );
            assert_eq!(
                fast,
                with_id(general.bytes.clone(), 0x7777),
                "{what}: byte for byte"
            );
        }
    }
    let stored = table
        .stats()
        .stored
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stored, corpus.len() as u64);

    // Each change evicts only the answers that read the data changed.
    let hit = |name: &str| {
        let query = query_bytes(1, name, RecordType::A, Some(false));
        table.answer(&admitted, &query, Instant::now(), &mut Vec::new())
    };
    // A zone edit (the origins unchanged): zone answers go, hosts and forwarded answers stay
    // (a forwarded answer read only which origins the zones serve, through their NOTFOUND).
    versions.register("zone data").bump();
    assert!(
        !hit("docs.example.internal."),
        "a zone answer read the zone data"
    );
    assert!(hit("web.example.org."), "a hosts answer did not");
    assert!(hit("www.example.net."), "nor did a forwarded one");
    // The cluster (not configured here, but registered by any server with [kubernetes]).
    versions.register("cluster").bump();
    assert!(hit("web.example.org.") && hit("www.example.net."));
    // A change to the hosts files: everything after files in the order read its NOTFOUND.
    versions.register("files").bump();
    assert!(!hit("web.example.org."));
    assert!(
        !hit("www.example.net."),
        "forwarded after the files' NOTFOUND"
    );
    // A reload of the configuration: nothing computed before is reused.
    versions.bump_all();
    assert!(!hit("docs.example.internal."));
}

#[tokio::test]
async fn the_real_server_answers_repeats_from_the_fast_path() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.10 web.example.org\n");
    let (_socket, dead) = dead_upstream().await;
    let server = start_server(&config(&hosts, &[dead], &["files", "dns"])).await;
    let first = udp_raw(
        server.addr,
        &query_bytes(1, "web.example.org.", RecordType::A, Some(false)),
        PATIENCE,
    )
    .await
    .unwrap();
    for id in 2..12u16 {
        let again = udp_raw(
            server.addr,
            &query_bytes(id, "web.example.org.", RecordType::A, Some(false)),
            PATIENCE,
        )
        .await
        .unwrap();
        assert_eq!(again, with_id(first.clone(), id));
    }
    let hits = server
        .running()
        .fast_stats()
        .hits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(hits >= 9, "{hits} fast hits");
    server.stop().await;
}
