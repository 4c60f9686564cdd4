//! `[access]` through the real server, from many client addresses: Linux lets a socket bind any
//! address of 127.0.0.0/8, so the tests play clients in different /24s without privileges.
//! Each decision is checked on UDP hits already in the fast table, UDP misses, and TCP, and a
//! reload (SIGHUP) changes the policy of a running server.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use hearth::app::Running;
use hearth::config::{Config, Overrides};

use common::*;

const ALLOWED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const REFUSED: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
/// Inside the refused /24, but allowed by a /32: the most specific prefix decides.
const EXCEPTION: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 5);
const DENIED: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 1);
/// In no /24 rule: the /8's refusal holds it.
const UNLISTED: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 1);

fn toml(hosts: &std::path::Path, upstream: SocketAddr, access: &str) -> String {
    format!(
        "[resolve]\norder = [\"files\", \"dns\"]\n[files]\npaths = [\"{}\"]\n\
         [forward]\nupstreams = [\"{upstream}\"]\ntimeout = \"500ms\"\n{access}",
        hosts.display()
    )
}

/// Loopback is answered unless a rule for `127.0.0.0/8` itself says otherwise; this one does,
/// so that the other /24s of loopback can play clients from elsewhere.
const POLICY: &str = "[access]\nallow = [\"127.0.0.0/24\", \"127.0.1.5\"]\n\
                      refuse = [\"127.0.0.0/8\", \"127.0.1.0/24\"]\ndeny = [\"127.0.2.0/24\"]\n";

async fn start(path: &std::path::Path) -> Running {
    let overrides = Overrides {
        listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
    };
    let config = Config::load(Some(path), &overrides).expect("config loads");
    hearth::app::start(&config).await.expect("server starts")
}

/// A query over TCP from `source`; the reply, or `None` if the connection closed without one.
async fn tcp_from(source: Ipv4Addr, server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let exchange = async {
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).await.ok()?;
        let length = stream.read_u16().await.ok()?;
        let mut reply = vec![0u8; usize::from(length)];
        stream.read_exact(&mut reply).await.ok()?;
        Some(reply)
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .ok()
        .flatten()
}

fn rcode(reply: &[u8]) -> ResponseCode {
    Message::from_vec(reply).unwrap().metadata.response_code
}

/// Whether a reply carries Extended DNS Error 18 (Prohibited).
fn prohibited(reply: &[u8]) -> bool {
    extended_error(reply).is_some_and(|(code, _)| code == 18)
}

#[tokio::test]
async fn each_client_gets_what_the_most_specific_prefix_says_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.10 web.example.org\n");
    let upstream = FakeUpstream::start().await;
    upstream.add_a("far.example.net.", Ipv4Addr::new(198, 51, 100, 7));
    upstream.add_a("new.example.net.", Ipv4Addr::new(198, 51, 100, 8));
    let path = dir.path().join("hearth.toml");
    std::fs::write(&path, toml(&hosts, upstream.addr, POLICY)).unwrap();
    let running = start(&path).await;
    let server = running.local_addrs()[0];
    let hit = query_bytes(1, "web.example.org.", RecordType::A, Some(1232));
    let forwarded = query_bytes(2, "far.example.net.", RecordType::A, Some(1232));

    // An allowed client fills the fast table with a local and a forwarded answer.
    for _ in 0..3 {
        for query in [&hit, &forwarded] {
            let reply = udp_from(ALLOWED, server, query, Duration::from_millis(400))
                .await
                .expect("answered");
            assert_eq!(rcode(&reply), ResponseCode::NoError);
        }
    }
    let hits = || running.fast_stats().hits.load(Ordering::Relaxed);
    let hits_before = hits();
    assert!(hits_before >= 2, "the repeats came from the fast table");
    let asked = upstream.queries();

    // Refused, on a fast-table hit, on a miss (never forwarded), and over TCP.
    for query in [&hit, &forwarded] {
        let reply = udp_from(REFUSED, server, query, Duration::from_millis(400))
            .await
            .expect("a refusal");
        assert_eq!(rcode(&reply), ResponseCode::Refused);
        assert!(prohibited(&reply), "EDE 18 for an EDNS client");
        assert!(Message::from_vec(&reply).unwrap().answers.is_empty());
    }
    let miss = query_bytes(3, "new.example.net.", RecordType::A, None);
    let reply = udp_from(UNLISTED, server, &miss, Duration::from_millis(400))
        .await
        .expect("a refusal");
    assert_eq!(rcode(&reply), ResponseCode::Refused);
    assert!(!prohibited(&reply), "no OPT for a client without EDNS");
    let reply = tcp_from(REFUSED, server, &hit)
        .await
        .expect("a reply over TCP");
    assert_eq!(rcode(&reply), ResponseCode::Refused);
    assert!(prohibited(&reply));
    assert_eq!(
        hits(),
        hits_before,
        "no reused reply went to a refused client"
    );
    assert_eq!(upstream.queries(), asked, "nothing was forwarded for them");

    // Denied: nothing over UDP, the connection closed over TCP.
    assert!(udp_from(DENIED, server, &hit, Duration::from_millis(400))
        .await
        .is_none());
    assert!(udp_from(DENIED, server, &miss, Duration::from_millis(400))
        .await
        .is_none());
    assert!(tcp_from(DENIED, server, &hit).await.is_none());
    assert_eq!(hits(), hits_before);

    // The /32 inside the refused /24 is answered, from the table and over TCP.
    let reply = udp_from(EXCEPTION, server, &hit, Duration::from_millis(400))
        .await
        .expect("answered");
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(hits(), hits_before + 1);
    let reply = tcp_from(EXCEPTION, server, &forwarded)
        .await
        .expect("answered");
    assert_eq!(rcode(&reply), ResponseCode::NoError);

    // A reload (SIGHUP) that allows everyone in 127.0.0.0/8 takes effect at once.
    let reloaded = "[access]\nallow = [\"127.0.0.0/8\"]\n";
    std::fs::write(&path, toml(&hosts, upstream.addr, reloaded)).unwrap();
    running
        .reload(
            Some(&path),
            &Overrides {
                listen: vec![server],
            },
        )
        .await
        .expect("reloads");
    for client in [REFUSED, DENIED, UNLISTED] {
        let reply = udp_from(client, server, &hit, Duration::from_millis(400))
            .await
            .expect("answered now");
        assert_eq!(rcode(&reply), ResponseCode::NoError, "{client}");
    }
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn without_access_loopback_is_answered() {
    // The built-in policy answers private networks and refuses the rest; loopback is private.
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.10 web.example.org\n");
    let (_socket, upstream) = dead_upstream().await;
    let path = dir.path().join("hearth.toml");
    std::fs::write(&path, toml(&hosts, upstream, "")).unwrap();
    let running = start(&path).await;
    let server = running.local_addrs()[0];
    let hit = query_bytes(1, "web.example.org.", RecordType::A, Some(1232));
    for client in [ALLOWED, REFUSED, DENIED] {
        let reply = udp_from(client, server, &hit, Duration::from_millis(400))
            .await
            .expect("answered");
        assert_eq!(rcode(&reply), ResponseCode::NoError);
    }
    running.shutdown(Duration::from_secs(5)).await;
}
