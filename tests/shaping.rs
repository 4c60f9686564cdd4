//! Answer shaping through the real server: `resolve.rotate` turns A and AAAA RRsets on every
//! answer, fast path included, and `resolve.filter_aaaa` answers AAAA NODATA.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use common::*;

/// A server answering `web.example.org` with three addresses from a hosts file, plus `extra`
/// configuration.
async fn server_with(dir: &std::path::Path, extra: &str) -> TestServer {
    let hosts = hosts_file(
        dir,
        "192.0.2.1 web.example.org\n192.0.2.2 web.example.org\n192.0.2.3 web.example.org\n\
         2001:db8::1 web.example.org\n",
    );
    start_server(&format!(
        "[resolve]\norder = [\"files\"]\n{extra}\n[files]\npaths = [\"{}\"]\n",
        hosts.display()
    ))
    .await
}

/// The answers to `count` identical queries (the same bytes but the ID, so that after the
/// first they are fast-path hits), in order, sent from one socket (so to one of the server's
/// per-core sockets: each fast-path thread keeps its own turn).
async fn first_addresses(
    server: &TestServer,
    record_type: RecordType,
    count: u16,
) -> Vec<Vec<String>> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buffer = vec![0u8; 65_535];
    let mut orders = Vec::new();
    for id in 0..count {
        let query = query_bytes(id, "web.example.org.", record_type, Some(1232));
        socket.send_to(&query, server.addr).await.unwrap();
        let (length, _) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
                .await
                .expect("a reply in time")
                .unwrap();
        let message = Message::from_vec(&buffer[..length]).unwrap();
        assert_eq!(message.metadata.id, id);
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        orders.push(answers(&message));
    }
    orders
}

#[tokio::test]
async fn rotation_turns_the_rrset_on_every_answer_fast_path_included() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "rotate = true").await;
    let orders = first_addresses(&server, RecordType::A, 7).await;
    let firsts: BTreeSet<&String> = orders.iter().map(|order| &order[0]).collect();
    assert_eq!(
        firsts.len(),
        3,
        "every address comes first in turn: {orders:?}"
    );
    for order in &orders {
        let set: BTreeSet<&String> = order.iter().collect();
        assert_eq!(set.len(), 3, "each answer has the whole RRset: {order:?}");
    }
    // Successive answers differ: each is the one before turned by one.
    for pair in orders.windows(2) {
        let mut turned = pair[0].clone();
        turned.rotate_left(1);
        assert_eq!(pair[1], turned, "{orders:?}");
    }
    let hits = server.running().fast_stats().hits.load(Ordering::Relaxed);
    assert!(hits >= 5, "the repeats were fast-path hits: {hits}");
    server.stop().await;
}

#[tokio::test]
async fn without_rotation_the_order_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "").await;
    let orders = first_addresses(&server, RecordType::A, 5).await;
    assert!(
        orders.windows(2).all(|pair| pair[0] == pair[1]),
        "{orders:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_aaaa_filter_answers_nodata_and_leaves_a_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "filter_aaaa = [\"example.org\"]").await;
    for reply in first_addresses(&server, RecordType::AAAA, 3).await {
        assert!(reply.is_empty(), "AAAA is NODATA: {reply:?}");
    }
    let a = first_addresses(&server, RecordType::A, 1).await;
    assert_eq!(a[0].len(), 3);
    server.stop().await;

    // Outside the filtered domains, AAAA answers.
    let server = server_with(dir.path(), "filter_aaaa = [\"example.net\"]").await;
    let aaaa = first_addresses(&server, RecordType::AAAA, 1).await;
    assert_eq!(aaaa[0], ["web.example.org. 3600 IN AAAA 2001:db8::1"]);
    server.stop().await;
}
