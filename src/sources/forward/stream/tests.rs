//! `stream` against scripted servers in this process (the real ones, Unbound over TCP, TLS and
//! HTTPS, are in tests/forward_transports.rs).

use std::net::Ipv4Addr;

use hickory_proto::op::{DnsRequestOptions, Edns, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream as Socket};

use super::*;

const PATIENCE: Duration = Duration::from_secs(5);

fn request(name: &str) -> DnsRequest {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    message.edns = Some(Edns::new());
    DnsRequest::new(message, DnsRequestOptions::default())
}

/// The address the scripted servers answer for `name`: 10.0.0.N for `nN.test.`.
fn address_of(name: &Name) -> Ipv4Addr {
    let label = name.to_string();
    let number: u8 = label[1..label.find('.').unwrap()].parse().unwrap();
    Ipv4Addr::new(10, 0, 0, number)
}

fn reply_to(query: &Message) -> Message {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.queries = query.queries.clone();
    let name = query.queries[0].name().clone();
    let address = address_of(&name);
    reply.add_answer(Record::from_rdata(name, 60, RData::A(A(address))));
    reply
}

fn answer(reply: &Message) -> Ipv4Addr {
    match &reply.answers[0].data {
        RData::A(a) => a.0,
        other => panic!("not an A record: {other:?}"),
    }
}

async fn read_message(socket: &mut Socket) -> Option<Message> {
    let mut length = [0u8; 2];
    socket.read_exact(&mut length).await.ok()?;
    let mut bytes = vec![0; usize::from(u16::from_be_bytes(length))];
    socket.read_exact(&mut bytes).await.ok()?;
    Some(Message::from_vec(&bytes).expect("a DNS message"))
}

async fn write_message(socket: &mut Socket, message: &Message) {
    let bytes = message.to_vec().unwrap();
    let length = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    socket
        .write_all(&[&length[..], &bytes].concat())
        .await
        .unwrap();
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

fn tcp_upstream(address: SocketAddr) -> (StreamUpstream, Arc<ConnectionStats>) {
    let stats = Arc::new(ConnectionStats::default());
    let upstream = StreamUpstream::new(address, StreamKind::Tcp, None, Arc::clone(&stats));
    (upstream, stats)
}

fn deadline() -> Instant {
    Instant::now() + PATIENCE
}

#[tokio::test]
async fn pipelined_queries_get_their_own_replies_in_any_order_on_one_connection() {
    let (listener, address) = listener().await;
    const QUERIES: u8 = 20;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut queries = Vec::new();
        for _ in 0..QUERIES {
            queries.push(read_message(&mut socket).await.unwrap());
        }
        // All of them read before any is answered: they were pipelined. Answered last first.
        for query in queries.iter().rev() {
            write_message(&mut socket, &reply_to(query)).await;
        }
        socket
    });
    let (upstream, stats) = tcp_upstream(address);
    let upstream = Arc::new(upstream);
    let mut asking = Vec::new();
    for n in 0..QUERIES {
        let upstream = Arc::clone(&upstream);
        asking.push(tokio::spawn(async move {
            let request = request(&format!("n{n}.test."));
            let id = request.metadata.id;
            let reply = upstream.exchange(request, deadline()).await.unwrap();
            assert_eq!(reply.metadata.id, id, "the reply carries the request's ID");
            (n, answer(&reply))
        }));
    }
    for asked in asking {
        let (n, address) = asked.await.unwrap();
        assert_eq!(address, Ipv4Addr::new(10, 0, 0, n));
    }
    let _socket = server.await.unwrap();
    assert_eq!(stats.opened.load(Ordering::Relaxed), 1);
    assert_eq!(stats.reused.load(Ordering::Relaxed), u64::from(QUERIES) - 1);
}

#[tokio::test]
async fn a_reply_to_another_question_is_dropped_and_the_query_keeps_waiting() {
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let query = read_message(&mut socket).await.unwrap();
        // Its ID, another question: what a late reply to an ID used again looks like.
        let mut other = query.clone();
        other.queries = vec![Query::query(
            Name::from_ascii("n9.test.").unwrap(),
            RecordType::A,
        )];
        write_message(&mut socket, &reply_to(&other)).await;
        write_message(&mut socket, &reply_to(&query)).await;
        let _ = read_message(&mut socket).await;
    });
    let (upstream, _) = tcp_upstream(address);
    let reply = upstream
        .exchange(request("n1.test."), deadline())
        .await
        .unwrap();
    assert_eq!(answer(&reply), Ipv4Addr::new(10, 0, 0, 1));
}

#[tokio::test]
async fn a_connection_the_server_closed_is_opened_again() {
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        // One query per connection, then the server closes it.
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            if let Some(query) = read_message(&mut socket).await {
                write_message(&mut socket, &reply_to(&query)).await;
            }
        }
    });
    let (upstream, stats) = tcp_upstream(address);
    for n in 1..=3 {
        let reply = upstream
            .exchange(request(&format!("n{n}.test.")), deadline())
            .await
            .unwrap();
        assert_eq!(answer(&reply), Ipv4Addr::new(10, 0, 0, n));
    }
    assert_eq!(stats.opened.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn keepalive_is_asked_for_and_the_servers_idle_timeout_closes_the_connection() {
    let (listener, address) = listener().await;
    let (report, reported) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let query = read_message(&mut socket).await.unwrap();
        let asked = query
            .edns
            .as_ref()
            .and_then(|edns| edns.option(EdnsCode::Keepalive))
            .cloned();
        let mut reply = reply_to(&query);
        let mut edns = Edns::new();
        // TIMEOUT 20: two seconds (closed after 1.8 s: a margin for a busy machine's timers).
        edns.options_mut()
            .insert(EdnsOption::Unknown(EdnsCode::Keepalive.into(), vec![0, 20]));
        reply.edns = Some(edns);
        write_message(&mut socket, &reply).await;
        let answered = Instant::now();
        let closed = read_message(&mut socket).await.is_none();
        let _ = report.send((asked, closed, answered.elapsed()));
    });
    let (upstream, _) = tcp_upstream(address);
    upstream
        .exchange(request("n1.test."), deadline())
        .await
        .unwrap();
    let (asked, closed, after) = tokio::time::timeout(PATIENCE, reported)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        asked,
        Some(EdnsOption::Unknown(11, Vec::new())),
        "RFC 7828: the option, empty"
    );
    assert!(closed, "the client closed the idle connection");
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(2),
        "closed {after:?} after the reply: before the 2 s keepalive expires, not long before"
    );
}

#[tokio::test]
async fn a_keepalive_of_zero_sends_the_next_query_on_a_new_connection() {
    let (listener, address) = listener().await;
    let (report, reported) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.unwrap();
        let query = read_message(&mut first).await.unwrap();
        let mut reply = reply_to(&query);
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(EdnsCode::Keepalive.into(), vec![0, 0]));
        reply.edns = Some(edns);
        write_message(&mut first, &reply).await;
        let (mut second, _) = listener.accept().await.unwrap();
        let query = read_message(&mut second).await.unwrap();
        write_message(&mut second, &reply_to(&query)).await;
        let first_closed = read_message(&mut first).await.is_none();
        let _ = report.send(first_closed);
        let _ = read_message(&mut second).await;
    });
    let (upstream, stats) = tcp_upstream(address);
    upstream
        .exchange(request("n1.test."), deadline())
        .await
        .unwrap();
    let reply = upstream
        .exchange(request("n2.test."), deadline())
        .await
        .unwrap();
    assert_eq!(answer(&reply), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(stats.opened.load(Ordering::Relaxed), 2);
    let first_closed = tokio::time::timeout(PATIENCE, reported)
        .await
        .unwrap()
        .unwrap();
    assert!(
        first_closed,
        "the connection the server asked to close was closed"
    );
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let (listener, address) = listener().await;
    drop(listener);
    let (upstream, stats) = tcp_upstream(address);
    let error = upstream
        .exchange(request("n1.test."), deadline())
        .await
        .unwrap_err();
    assert_eq!(error, StreamError::Connect("connection refused".to_owned()));
    assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn no_reply_is_a_timeout_at_the_deadline() {
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        while read_message(&mut socket).await.is_some() {}
    });
    let (upstream, _) = tcp_upstream(address);
    let started = Instant::now();
    let error = upstream
        .exchange(request("n1.test."), started + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(error, StreamError::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_tls_handshake_that_never_ends_stops_at_the_deadline_and_says_so() {
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        // Accepts, and says nothing.
        let (_socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(PATIENCE).await;
    });
    let stats = Arc::new(ConnectionStats::default());
    let upstream = StreamUpstream::new(
        address,
        StreamKind::Tls {
            server_name: "dns.test".to_owned(),
        },
        Some(test_tls_config()),
        stats,
    );
    let started = Instant::now();
    let error = upstream
        .exchange(request("n1.test."), started + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StreamError::SetupTimedOut("TLS handshake did not finish within 300ms".to_owned())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// A config trusting a CA of its own (no server here gets that far).
fn test_tls_config() -> Arc<ClientConfig> {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("ca.pem");
    std::fs::write(&path, ca_pem()).unwrap();
    tls_config(Some(&path)).unwrap()
}

fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn the_ca_file_is_read_and_its_problems_name_it() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("missing.pem");
    let error = tls_config(Some(&missing)).unwrap_err();
    assert!(
        error.starts_with(&format!("{}: ", missing.display())) && error.contains("No such file"),
        "{error}"
    );

    let empty = directory.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let error = tls_config(Some(&empty)).unwrap_err();
    assert_eq!(
        error,
        format!(
            "{}: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
            empty.display()
        )
    );

    let good = directory.path().join("ca.pem");
    std::fs::write(&good, ca_pem()).unwrap();
    tls_config(Some(&good)).unwrap();
}
