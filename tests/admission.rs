//! The front door: every listener asks the admission step before any reply, the fast path's
//! reused replies included, and a decision is carried out the same way on UDP and TCP.
//!
//! The policy is "admit all" until access control fills it in; these tests install a rule
//! through the hook (`Policy::with_rule`) and watch what a real client gets.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth::server::admission::{Decision, Policy};
use hearth::server::Client;
use hickory_net::client::ClientHandle;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use common::{ask, hosts_file, query_bytes, start_server, tcp_client, udp_raw, TestServer};

async fn server(fast_path: bool) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.10 web.example.org\n");
    let server = start_server(&format!(
        "[server]\nfast_path = {fast_path}\n[resolve]\norder = [\"files\"]\n[files]\npaths = [\"{}\"]\n",
        hosts.display()
    ))
    .await;
    (server, dir)
}

fn refuse_loopback(client: &Client) -> Decision {
    if client.ip().is_loopback() {
        Decision::Refuse
    } else {
        Decision::Admit
    }
}

fn truncate_everyone(_: &Client) -> Decision {
    Decision::Truncate
}

fn drop_everyone(_: &Client) -> Decision {
    Decision::Drop
}

async fn udp(server: &TestServer, id: u16) -> Option<Message> {
    let query = query_bytes(id, "web.example.org.", RecordType::A, Some(1232));
    udp_raw(server.addr, &query, Duration::from_millis(500))
        .await
        .map(|bytes| Message::from_vec(&bytes).expect("a DNS message"))
}

/// The RCODE and addresses of a TCP query, or why there was no reply.
async fn over_tcp(server: &TestServer) -> Result<(ResponseCode, Vec<String>), String> {
    let connect = tokio::time::timeout(Duration::from_secs(5), async {
        let mut client = tcp_client(server.addr).await;
        client
            .query(
                common::name("web.example.org."),
                DNSClass::IN,
                RecordType::A,
            )
            .await
    });
    match connect.await {
        Ok(Ok(response)) => Ok((response.metadata.response_code, common::rdata(&response))),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn every_decision_on_every_listener(fast_path: bool) {
    let (server, _dir) = server(fast_path).await;
    // Admitted: answered, and (with the fast path) the repeat is a reused reply.
    for id in 1..=3 {
        let reply = udp(&server, id).await.expect("answered");
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.answers.len(), 1);
    }
    let hits = || server.running().fast_stats().hits.load(Ordering::Relaxed);
    let hits_before = hits();
    if fast_path {
        assert!(hits_before >= 1, "the repeat came from the fast table");
    }

    // Refused: REFUSED over UDP, before the fast table (its hit count does not move), and
    // over TCP.
    server
        .running()
        .admission()
        .replace_policy(Policy::with_rule(refuse_loopback));
    let reply = udp(&server, 4).await.expect("a refusal is a reply");
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert_eq!(reply.metadata.id, 4);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.queries[0].name().to_ascii(), "web.example.org.");
    assert_eq!(
        hits(),
        hits_before,
        "no reused reply went to a refused client"
    );
    assert_eq!(
        over_tcp(&server).await.map(|(rcode, _)| rcode),
        Ok(ResponseCode::Refused)
    );

    // Truncated: TC=1 and no records over UDP; TCP, which proves the address, is answered.
    server
        .running()
        .admission()
        .replace_policy(Policy::with_rule(truncate_everyone));
    let reply = udp(&server, 5).await.expect("a truncated reply");
    assert!(reply.metadata.truncation);
    assert!(reply.answers.is_empty());
    assert_eq!(
        over_tcp(&server).await,
        Ok((ResponseCode::NoError, vec!["192.0.2.10".to_owned()]))
    );

    // Dropped: no reply at all over UDP; over TCP the connection is closed at accept.
    server
        .running()
        .admission()
        .replace_policy(Policy::with_rule(drop_everyone));
    assert!(udp(&server, 6).await.is_none());
    assert!(over_tcp(&server).await.is_err());
    assert_eq!(hits(), hits_before);

    // Admit all again: the same client is answered, from the table as before.
    server
        .running()
        .admission()
        .replace_policy(Policy::admit_all());
    let response = ask(server.addr, "web.example.org.", RecordType::A).await;
    assert_eq!(common::rdata(&response), ["192.0.2.10"]);
    server.stop().await;
}

#[tokio::test]
async fn the_fast_path_asks_the_front_door_first() {
    every_decision_on_every_listener(true).await;
}

#[tokio::test]
async fn the_plain_udp_listener_asks_the_front_door_first() {
    every_decision_on_every_listener(false).await;
}
