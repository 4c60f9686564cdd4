//! Forwarding as deployments use it (issue 14), through the real server against local fake
//! upstreams that count what they are asked: per-domain zones with the longest match, reverse
//! zones, per-zone health and limits, `tcp://` upstreams with one connection kept, the failure
//! cache and the stale recheck timer.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use common::*;

/// A server forwarding to `default`, with `zones` appended (`[[forward.zone]]` tables).
async fn server(default: SocketAddr, extra: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let toml = config(&hosts, &[default], &["files", "dns"]) + extra;
    (start_server(&toml).await, dir)
}

#[tokio::test]
async fn the_longest_matching_zone_gets_the_question_reverse_zones_included() {
    let default = FakeUpstream::start().await;
    let corp = FakeUpstream::start().await;
    let inner = FakeUpstream::start().await;
    let cluster = FakeUpstream::start().await;
    default.add_a("www.example.com.", Ipv4Addr::new(192, 0, 2, 1));
    corp.add_a("wiki.corp.example.", Ipv4Addr::new(10, 0, 0, 1));
    inner.add_a("db.inner.corp.example.", Ipv4Addr::new(10, 0, 1, 1));
    let zones = format!(
        "[[forward.zone]]\nname = \"corp.example\"\nupstreams = [\"{}\"]\n\
         [[forward.zone]]\nname = \"inner.corp.example\"\nupstreams = [\"{}\"]\n\
         [[forward.zone]]\nname = \"10.in-addr.arpa\"\nupstreams = [\"{}\"]\n",
        corp.addr, inner.addr, cluster.addr
    );
    let (server, _dir) = server(default.addr, &zones).await;
    let answer =
        |name: &'static str, record_type| async move { ask(server.addr, name, record_type).await };
    assert_eq!(
        rdata(&answer("www.example.com.", RecordType::A).await),
        ["192.0.2.1"]
    );
    assert_eq!(
        rdata(&answer("wiki.corp.example.", RecordType::A).await),
        ["10.0.0.1"]
    );
    assert_eq!(
        rdata(&answer("DB.Inner.Corp.Example.", RecordType::A).await),
        ["10.0.1.1"],
        "the longer zone, whatever the case"
    );
    let reverse = answer("10.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(reverse.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(default.asked(), ["www.example.com."]);
    assert_eq!(corp.asked(), ["wiki.corp.example."]);
    assert_eq!(
        inner.asked(),
        ["DB.Inner.Corp.Example."],
        "asked as the client wrote it"
    );
    assert_eq!(cluster.asked(), ["10.0.96.10.in-addr.arpa."]);
}

#[tokio::test]
async fn a_zone_fails_over_within_its_own_upstreams() {
    let default = FakeUpstream::start().await;
    let (_dead_socket, dead) = dead_upstream().await;
    let second = FakeUpstream::start().await;
    second.add_a("app.corp.example.", Ipv4Addr::new(10, 0, 0, 9));
    default.add_a("app.corp.example.", Ipv4Addr::new(192, 0, 2, 99));
    let zones = format!(
        "[[forward.zone]]\nname = \"corp.example\"\nupstreams = [\"{dead}\", \"{}\"]\n\
         timeout = \"200ms\"\n",
        second.addr
    );
    let (server, _dir) = server(default.addr, &zones).await;
    let response = ask(server.addr, "app.corp.example.", RecordType::A).await;
    assert_eq!(rdata(&response), ["10.0.0.9"], "the zone's second upstream");
    assert_eq!(default.queries(), 0, "never the default group's");
}

#[tokio::test]
async fn tcp_upstreams_keep_one_connection() {
    let upstream = FakeUpstream::start().await;
    for index in 0..10 {
        upstream.add_a(
            &format!("n{index}.example.net."),
            Ipv4Addr::new(198, 51, 100, index),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let toml = format!(
        "[resolve]\norder = [\"files\", \"dns\"]\n[files]\npaths = [\"{}\"]\n\
         [forward]\nupstreams = [\"tcp://{}\"]\ntimeout = \"2s\"\n",
        hosts.display(),
        upstream.addr
    );
    let server = start_server(&toml).await;
    for index in 0..10 {
        let name = format!("n{index}.example.net.");
        let response = ask(server.addr, &name, RecordType::A).await;
        assert_eq!(rdata(&response), [format!("198.51.100.{index}")]);
    }
    assert_eq!(upstream.udp_queries(), 0, "tcp:// never uses UDP");
    assert_eq!(upstream.tcp_queries(), 10);
    assert_eq!(upstream.tcp_connections(), 1, "one connection, reused");
    let metrics = server.running().render_metrics("hearth");
    let label = format!("tcp://{}", upstream.addr);
    assert_eq!(
        sample(
            &metrics,
            &format!("hearth_upstream_connections_opened_total{{upstream=\"{label}\"}}")
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_failure_is_remembered_and_answered_without_asking_again() {
    let upstream = FakeUpstream::start().await;
    upstream.set_behaviour(Behaviour::ServFail);
    let (server, _dir) = server(upstream.addr, "").await;
    let query = query_bytes(1, "broken.example.net.", RecordType::A, Some(1232));
    let reply = udp_raw(server.addr, &query, PATIENCE)
        .await
        .expect("a reply");
    assert_eq!(
        hickory_proto::op::Message::from_vec(&reply)
            .unwrap()
            .metadata
            .response_code,
        ResponseCode::ServFail
    );
    assert_eq!(
        extended_error(&reply).map(|e| e.0),
        Some(23),
        "Network Error"
    );
    let asked = upstream.queries();
    for _ in 0..5 {
        let reply = udp_raw(server.addr, &query, PATIENCE)
            .await
            .expect("a reply");
        let (code, _) = extended_error(&reply).expect("an EDE");
        if code != 13 {
            // The second passed: the failure was asked again, which doubles its interval.
            continue;
        }
        assert_eq!(code, 13, "Cached Error");
    }
    assert!(
        upstream.queries() <= asked + 1,
        "retries within the interval are answered from the failure cache ({} more asked)",
        upstream.queries() - asked
    );
    let metrics = server.running().render_metrics("hearth");
    assert!(sample(&metrics, "hearth_failure_cache_hits_total").unwrap_or(0.0) >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_under_one_zone_leaves_another_zones_misses_answered() {
    let default = FakeUpstream::start().await;
    let flooded = FakeUpstream::start().await;
    flooded.set_behaviour(Behaviour::Silent);
    let quiet = FakeUpstream::start().await;
    quiet.add_a("ok.quiet.example.", Ipv4Addr::new(10, 9, 9, 9));
    let zones = format!(
        "[[forward.zone]]\nname = \"victim.example\"\nupstreams = [\"{}\"]\nmax_concurrent = 4\n\
         timeout = \"1s\"\n\
         [[forward.zone]]\nname = \"quiet.example\"\nupstreams = [\"{}\"]\nmax_concurrent = 4\n",
        flooded.addr, quiet.addr
    );
    let (server, _dir) = server(default.addr, &zones).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for index in 0..40u16 {
        let query = query_bytes(
            index,
            &format!("r{index}.victim.example."),
            RecordType::A,
            None,
        );
        socket.send_to(&query, server.addr).await.unwrap();
    }
    let response = ask(server.addr, "ok.quiet.example.", RecordType::A).await;
    assert_eq!(rdata(&response), ["10.9.9.9"], "the other zone is answered");
    let mut refused = 0;
    let mut buffer = vec![0u8; 4096];
    while let Ok(Ok(length)) =
        tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buffer)).await
    {
        if buffer[..length][3] & 0x0f == 5 {
            refused += 1;
        }
    }
    assert!(
        refused >= 36,
        "beyond the zone's 4 in flight, REFUSED at once: {refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_domain_under_the_default_group_takes_at_most_a_quarter() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a("www.other.example.", Ipv4Addr::new(192, 0, 2, 7));
    upstream.set_delay(Duration::from_millis(300));
    let (server, _dir) = server(upstream.addr, "max_concurrent = 100\n").await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for index in 0..40u16 {
        let query = query_bytes(
            index,
            &format!("r{index}.victim.example."),
            RecordType::A,
            None,
        );
        socket.send_to(&query, server.addr).await.unwrap();
    }
    let response = ask(server.addr, "www.other.example.", RecordType::A).await;
    assert_eq!(rdata(&response), ["192.0.2.7"]);
    let mut refused = 0;
    let mut buffer = vec![0u8; 4096];
    while let Ok(Ok(length)) =
        tokio::time::timeout(Duration::from_millis(1500), socket.recv(&mut buffer)).await
    {
        if buffer[..length][3] & 0x0f == 5 {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 15,
        "25 of victim.example's 40 in flight (100 / 4), the rest REFUSED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_served_stale_a_name_is_served_stale_at_once_for_a_while() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a_ttl("short.example.net.", Ipv4Addr::new(198, 51, 100, 1), 1);
    let (server, _dir) = server(upstream.addr, "").await;
    let first = ask(server.addr, "short.example.net.", RecordType::A).await;
    assert_eq!(rdata(&first), ["198.51.100.1"]);
    upstream.set_behaviour(Behaviour::Silent);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Expired, the upstream silent: stale after waiting (RFC 8767's 1.8 s).
    let stale = ask(server.addr, "short.example.net.", RecordType::A).await;
    assert_eq!(rdata(&stale), ["198.51.100.1"]);
    assert_eq!(stale.answers[0].ttl, 30);
    let asked = upstream.queries();
    // Within the recheck timer: stale at once, and the upstream is not asked.
    for _ in 0..5 {
        let again = ask(server.addr, "short.example.net.", RecordType::A).await;
        assert_eq!(rdata(&again), ["198.51.100.1"]);
    }
    assert_eq!(
        upstream.queries(),
        asked,
        "no refresh during the recheck timer"
    );
}
