//! The `zones` source through the real server: the repository's example zones, authoritative
//! answers, NXDOMAIN that never leaks upstream, CNAMEs leaving the zone resolved by the rest of
//! the chain, fallthrough, and reload that keeps the last good version.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn repository_zones() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones")
}

fn zones_config(hosts: &Path, zones: &Path, upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "{}[zones]\ndirectory = \"{}\"\nreload_interval = \"100ms\"\n{extra}",
        config(hosts, &[upstream], &["files", "zones", "dns"]),
        zones.display()
    )
}

#[tokio::test]
async fn example_zones_answer_authoritatively() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.99 hosts-only.example\n");
    let upstream = FakeUpstream::start().await;
    upstream.add_a("status.example.net.", Ipv4Addr::new(198, 51, 100, 5));
    let server = start_server(&zones_config(
        &hosts,
        &repository_zones(),
        upstream.addr,
        "",
    ))
    .await;

    let response = ask(server.addr, "www.example.internal.", RecordType::A).await;
    assert_eq!(
        answers(&response),
        ["www.example.internal. 3600 IN A 192.0.2.10"]
    );
    assert!(response.authoritative);

    // NXDOMAIN inside the zone is final: SOA with min(TTL, MINIMUM), and the upstream is not asked.
    let response = ask(server.addr, "nope.example.internal.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert!(response.authoritative);
    assert_eq!(
        response.authorities.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        ["example.internal. 300 IN SOA ns1.example.internal. hostmaster.example.internal. 2026112201 7200 1800 1209600 300"]
    );
    assert_eq!(
        upstream.queries(),
        0,
        "internal names never leak upstream: {:?}",
        upstream.asked()
    );

    // A CNAME leaving the zone: the target is resolved by the rest of the chain.
    let response = ask(server.addr, "status.example.internal.", RecordType::A).await;
    assert_eq!(
        answers(&response),
        [
            "status.example.internal. 3600 IN CNAME status.example.net.",
            "status.example.net. 300 IN A 198.51.100.5"
        ]
    );
    assert!(
        response.authoritative,
        "AA belongs to the first name, which is ours"
    );

    // The reverse zone.
    let response = ask(server.addr, "10.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata(&response), ["www.example.internal."]);

    // A name outside every zone goes on down the chain.
    let response = ask(server.addr, "elsewhere.example.net.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert!(upstream
        .asked()
        .contains(&"elsewhere.example.net.".to_string()));
    server.stop().await;
}

#[tokio::test]
async fn cname_out_of_a_zone_into_the_hosts_file() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.99 target.example\n");
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::write(
        zones.join("corp.test.zone"),
        "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nalias CNAME target.example.\nloop CNAME loop.other.test.\n",
    )
    .unwrap();
    std::fs::write(
        zones.join("other.test.zone"),
        "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nloop CNAME loop.corp.test.\n",
    )
    .unwrap();
    let (_socket, dead) = dead_upstream().await;
    let server = start_server(&zones_config(&hosts, &zones, dead, "")).await;
    let response = ask(server.addr, "alias.corp.test.", RecordType::A).await;
    assert_eq!(
        answers(&response),
        [
            "alias.corp.test. 60 IN CNAME target.example.",
            "target.example. 3600 IN A 192.0.2.99"
        ]
    );
    // A loop across two zones ends quickly with the chain so far.
    let response = ask(server.addr, "loop.corp.test.", RecordType::A).await;
    assert_eq!(
        answers(&response),
        [
            "loop.corp.test. 60 IN CNAME loop.other.test.",
            "loop.other.test. 60 IN CNAME loop.corp.test."
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn fallthrough_turns_nxdomain_into_notfound() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::write(
        zones.join("shared.test.zone"),
        "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nlocal A 192.0.2.1\n",
    )
    .unwrap();
    let upstream = FakeUpstream::start().await;
    upstream.add_a("public.shared.test.", Ipv4Addr::new(198, 51, 100, 1));
    let server = start_server(&zones_config(
        &hosts,
        &zones,
        upstream.addr,
        "fallthrough = [\"shared.test\"]\n",
    ))
    .await;
    assert_eq!(
        rdata(&ask(server.addr, "local.shared.test.", RecordType::A).await),
        ["192.0.2.1"]
    );
    assert_eq!(
        rdata(&ask(server.addr, "public.shared.test.", RecordType::A).await),
        ["198.51.100.1"]
    );
    server.stop().await;
}

#[tokio::test]
async fn changed_zone_files_reload_and_broken_ones_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let file = zones.join("live.test.zone");
    std::fs::write(&file, "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nhost A 192.0.2.1\n").unwrap();
    let (_socket, dead) = dead_upstream().await;
    let server = start_server(&zones_config(&hosts, &zones, dead, "")).await;
    let addr = server.addr;
    assert_eq!(
        rdata(&ask(addr, "host.live.test.", RecordType::A).await),
        ["192.0.2.1"]
    );

    std::fs::write(&file, "$TTL 60\n@ SOA ns hm 2 2 3 4 5\nhost A 192.0.2.2\n").unwrap();
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, "host.live.test.", RecordType::A).await) == ["192.0.2.2"]
        })
        .await,
        "a changed zone file is served"
    );

    // A file that no longer parses: the previous version keeps serving.
    std::fs::write(
        &file,
        "$TTL 60\n@ SOA ns hm 3 2 3 4 5\nhost A 999.0.0.1\nnew A 192.0.2.3\n",
    )
    .unwrap();
    // A new zone added in the same directory shows the reload happened.
    std::fs::write(
        zones.join("added.test.zone"),
        "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nx A 192.0.2.4\n",
    )
    .unwrap();
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, "x.added.test.", RecordType::A).await) == ["192.0.2.4"]
        })
        .await,
        "the new zone is served"
    );
    assert_eq!(
        rdata(&ask(addr, "host.live.test.", RecordType::A).await),
        ["192.0.2.2"]
    );
    let response = ask(addr, "new.live.test.", RecordType::A).await;
    assert_eq!(
        response.response_code,
        ResponseCode::NXDomain,
        "nothing of the broken version is served"
    );
    server.stop().await;
}
