use std::collections::HashSet;
use std::net::Ipv4Addr;

use hickory_proto::op::Query;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};

use tokio::task::JoinHandle;

use super::*;

fn question(name: &str) -> Question {
    Question::new(Name::from_ascii(name).unwrap(), RecordType::A)
}

fn stats() -> Arc<UpstreamStats> {
    Arc::new(UpstreamStats::default())
}

/// A stand-in upstream: a socket the test reads queries from and writes replies with.
struct Upstream {
    socket: UdpSocket,
}

impl Upstream {
    async fn start() -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn address(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// The next query, and the address it came from.
    async fn next_query(&self) -> (Message, SocketAddr) {
        let mut buffer = [0u8; 512];
        let (length, from) = self.socket.recv_from(&mut buffer).await.unwrap();
        (Message::from_vec(&buffer[..length]).unwrap(), from)
    }

    async fn send(&self, reply: &Message, to: SocketAddr) {
        self.socket
            .send_to(&reply.to_vec().unwrap(), to)
            .await
            .unwrap();
    }
}

/// The genuine reply to `query`: its ID and question, one A record with `address`.
fn reply_to(query: &Message, address: Ipv4Addr) -> Message {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.queries = query.queries.clone();
    reply.answers.push(Record::from_rdata(
        query.queries[0].name().clone(),
        60,
        RData::A(A(address)),
    ));
    reply
}

fn address_in(message: &Message) -> Option<Ipv4Addr> {
    message
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
}

fn in_a_second() -> Instant {
    Instant::now() + Duration::from_secs(1)
}

/// Asks `pool` for `name` in a task of its own, so the test can play the upstream meanwhile.
fn ask(
    pool: &Arc<Pool>,
    name: &'static str,
    deadline: Instant,
) -> JoinHandle<Result<Message, ExchangeError>> {
    let pool = Arc::clone(pool);
    tokio::spawn(async move { pool.exchange(&question(name), deadline).await })
}

/// Answers every query `upstream` receives with 192.0.2.1, until the task is aborted.
fn answer_every_query(upstream: &Arc<Upstream>) -> JoinHandle<()> {
    let upstream = Arc::clone(upstream);
    tokio::spawn(async move {
        loop {
            let (query, from) = upstream.next_query().await;
            upstream
                .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 1)), from)
                .await;
        }
    })
}

fn waiting(pool: &Pool) -> usize {
    pool.slots
        .iter()
        .filter_map(|slot| slot.load_full())
        .map(|socket| socket.lock().by_id.len())
        .sum()
}

#[test]
fn the_query_carries_the_id_rd_cd_do_payload_and_the_name_as_written() {
    let mut question = question("Example.COM.");
    question.record_type = RecordType::MX;
    question.dnssec_ok = true;
    question.checking_disabled = true;
    let mut buffer = Vec::new();
    encode_query(&mut buffer, 0xbeef, &question).unwrap();
    assert!(buffer.len() <= MAX_QUERY);
    let message = Message::from_vec(&buffer).unwrap();
    assert_eq!(message.metadata.id, 0xbeef);
    assert_eq!(message.metadata.message_type, MessageType::Query);
    assert!(message.metadata.recursion_desired);
    assert!(message.metadata.checking_disabled);
    let edns = message.edns.as_ref().unwrap();
    assert!(edns.flags().dnssec_ok);
    assert_eq!(edns.max_payload(), UPSTREAM_PAYLOAD);
    assert_eq!(message.queries.len(), 1);
    assert!(message.queries[0].name().eq_case(&question.name));
    assert_eq!(message.queries[0].query_type(), RecordType::MX);
    assert_eq!(message.queries[0].query_class(), DNSClass::IN);
    assert!(message.answers.is_empty() && message.additionals.is_empty());

    // Without DO or CD, and the longest name fits the buffer size we allow for.
    let long = format!(
        "{}.",
        vec!["a".repeat(63); 3].join(".") + "." + &"b".repeat(61)
    );
    let plain = self::question(&long);
    encode_query(&mut buffer, 1, &plain).unwrap();
    assert_eq!(buffer.len(), MAX_QUERY);
    let message = Message::from_vec(&buffer).unwrap();
    assert!(!message.metadata.checking_disabled);
    assert!(!message.edns.as_ref().unwrap().flags().dnssec_ok);
}

#[test]
fn the_query_is_what_hickory_encodes_for_the_same_message() {
    for (name, record_type, dnssec_ok, checking_disabled) in [
        ("www.Example.com.", RecordType::A, false, false),
        ("example.org.", RecordType::DNSKEY, true, true),
        (".", RecordType::NS, false, false),
    ] {
        let mut question = question(name);
        question.record_type = record_type;
        question.dnssec_ok = dnssec_ok;
        question.checking_disabled = checking_disabled;
        let mut ours = Vec::new();
        encode_query(&mut ours, 4242, &question).unwrap();

        let mut message = Message::new(4242, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.metadata.checking_disabled = checking_disabled;
        message
            .queries
            .push(Query::query(question.name.clone(), record_type));
        let mut edns = Edns::new();
        edns.set_max_payload(UPSTREAM_PAYLOAD)
            .set_dnssec_ok(dnssec_ok);
        message.edns = Some(edns);
        assert_eq!(ours, message.to_vec().unwrap(), "{name} {record_type}");
    }
}

#[tokio::test]
async fn a_reply_is_matched_to_its_query_by_id_and_question() {
    let upstream = Upstream::start().await;
    let stats = stats();
    let pool = Arc::new(Pool::new(upstream.address(), Arc::clone(&stats)));
    let asking = ask(&pool, "www.example.", in_a_second());
    let (query, from) = upstream.next_query().await;
    let genuine = reply_to(&query, Ipv4Addr::new(192, 0, 2, 1));

    // Wrong ID: dropped, counted.
    let mut forged = reply_to(&query, Ipv4Addr::new(203, 0, 113, 66));
    forged.metadata.id ^= 0x5a5a;
    upstream.send(&forged, from).await;
    // Right ID, another question (RFC 5452 §9.1): dropped, counted.
    let mut other = reply_to(&query, Ipv4Addr::new(203, 0, 113, 66));
    other.queries = vec![Query::query(
        Name::from_ascii("poison.example.").unwrap(),
        RecordType::A,
    )];
    upstream.send(&other, from).await;
    // Right ID and name, another type.
    let mut other_type = reply_to(&query, Ipv4Addr::new(203, 0, 113, 66));
    other_type.queries[0].set_query_type(RecordType::AAAA);
    upstream.send(&other_type, from).await;
    // Right ID and question, but a query, not a response.
    let mut not_a_response = reply_to(&query, Ipv4Addr::new(203, 0, 113, 66));
    not_a_response.metadata.message_type = MessageType::Query;
    upstream.send(&not_a_response, from).await;
    // Right ID, then garbage.
    let mut garbage = query.metadata.id.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\x81\x80 not DNS");
    upstream.socket.send_to(&garbage, from).await.unwrap();
    // Right ID and question from another port: the connected socket never sees it.
    let elsewhere = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut spoofed = genuine.clone();
    spoofed.answers[0].data = RData::A(A(Ipv4Addr::new(203, 0, 113, 66)));
    elsewhere
        .send_to(&spoofed.to_vec().unwrap(), from)
        .await
        .unwrap();
    // The genuine reply, the name in another case (RFC 4343): taken.
    let mut genuine_upper = genuine.clone();
    genuine_upper.queries[0].set_name(Name::from_ascii("WWW.Example.").unwrap());
    upstream.send(&genuine_upper, from).await;

    let answer = asking.await.unwrap().expect("the genuine reply");
    assert_eq!(address_in(&answer), Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(stats.unmatched_replies.load(Ordering::Relaxed), 1);
    assert_eq!(stats.mismatched_replies.load(Ordering::Relaxed), 4);
    assert_eq!(waiting(&pool), 0, "answered: unregistered");
}

#[tokio::test]
async fn a_query_with_only_wrong_replies_times_out() {
    let upstream = Upstream::start().await;
    let stats = stats();
    let pool = Arc::new(Pool::new(upstream.address(), Arc::clone(&stats)));
    let asking = ask(
        &pool,
        "www.example.",
        Instant::now() + Duration::from_millis(300),
    );
    let (query, from) = upstream.next_query().await;
    let mut forged = reply_to(&query, Ipv4Addr::new(203, 0, 113, 66));
    forged.queries[0].set_name(Name::from_ascii("poison.example.").unwrap());
    upstream.send(&forged, from).await;
    assert!(matches!(
        asking.await.unwrap(),
        Err(ExchangeError::TimedOut)
    ));
    assert_eq!(stats.mismatched_replies.load(Ordering::Relaxed), 1);
    assert_eq!(waiting(&pool), 0, "timed out: unregistered");
}

#[tokio::test]
async fn a_reply_after_the_timeout_is_dropped_and_counted() {
    let upstream = Upstream::start().await;
    let stats = stats();
    let pool = Pool::new(upstream.address(), Arc::clone(&stats));
    let deadline = Instant::now() + Duration::from_millis(100);
    let late = question("late.example.");
    let (result, (query, from)) =
        tokio::join!(pool.exchange(&late, deadline), upstream.next_query());
    assert!(matches!(result, Err(ExchangeError::TimedOut)));
    assert_eq!(waiting(&pool), 0);
    upstream
        .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 9)), from)
        .await;
    // The next exchange on the same pool works, and the late reply has been counted.
    for _ in 0..100 {
        if stats.unmatched_replies.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.unmatched_replies.load(Ordering::Relaxed), 1);
    let next = question("next.example.");
    let (result, ()) = tokio::join!(pool.exchange(&next, in_a_second()), async {
        let (query, from) = upstream.next_query().await;
        upstream
            .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 10)), from)
            .await;
    });
    assert_eq!(
        address_in(&result.unwrap()),
        Some(Ipv4Addr::new(192, 0, 2, 10))
    );
}

#[tokio::test]
async fn a_dropped_query_unregisters_and_its_reply_is_ignored() {
    let upstream = Upstream::start().await;
    let stats = stats();
    let pool = Pool::new(upstream.address(), Arc::clone(&stats));
    // The client's query is cancelled (its task dropped) while waiting.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        pool.exchange(&question("gone.example."), in_a_second()),
    )
    .await;
    assert!(cancelled.is_err());
    assert_eq!(waiting(&pool), 0);
    let (query, from) = upstream.next_query().await;
    upstream
        .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 3)), from)
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(stats.unmatched_replies.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn ids_are_unique_among_the_queries_in_flight_on_a_socket() {
    let socket = PoolSocket::bind("127.0.0.1:53".parse().unwrap()).unwrap();
    let question = question("www.example.");
    let mut ids = HashSet::new();
    let mut receivers = Vec::new();
    // Every ID of the 16-bit space, each drawn at random until a free one comes up.
    for _ in 0..=u16::MAX {
        let (id, _, receiver) = socket.register(&question).expect("a free ID");
        assert!(ids.insert(id), "{id} given twice");
        receivers.push(receiver);
    }
    assert!(
        socket.register(&question).is_none(),
        "all 65,536 in flight: no ID left"
    );
}

#[tokio::test]
async fn an_unregistration_never_removes_a_later_query_with_the_same_id() {
    let socket = Arc::new(PoolSocket::bind("127.0.0.1:53".parse().unwrap()).unwrap());
    let (id, sequence, _first) = socket.register(&question("first.example.")).unwrap();
    let first = Registration {
        socket: Arc::clone(&socket),
        id,
        sequence,
    };
    // The first query is answered (its entry removed), and a second one draws the same ID.
    socket.lock().by_id.remove(&id);
    let (sender, _second) = oneshot::channel();
    let mut waiters = socket.lock();
    let sequence = waiters.next_sequence;
    waiters.next_sequence += 1;
    waiters.by_id.insert(
        id,
        Waiter {
            sequence,
            name: Name::from_ascii("second.example.").unwrap(),
            record_type: RecordType::A,
            class: DNSClass::IN,
            reply: sender,
        },
    );
    drop(waiters);
    drop(first);
    assert_eq!(
        socket.lock().by_id.get(&id).map(|waiter| waiter.sequence),
        Some(sequence),
        "the second query is still registered"
    );
}

#[tokio::test]
async fn concurrent_queries_each_get_their_own_reply() {
    let upstream = Arc::new(Upstream::start().await);
    let stats = stats();
    let pool = Arc::new(Pool::new(upstream.address(), Arc::clone(&stats)));
    const QUERIES: u32 = 300;
    // Replies go back in reverse order of arrival, in batches of 50.
    let answering = {
        let upstream = Arc::clone(&upstream);
        tokio::spawn(async move {
            let mut ports = HashSet::new();
            for _ in 0..QUERIES / 50 {
                let mut batch = Vec::new();
                for _ in 0..50 {
                    batch.push(upstream.next_query().await);
                }
                for (query, from) in batch.into_iter().rev() {
                    ports.insert(from.port());
                    let name = query.queries[0].name().to_string();
                    let index: u8 = name[1..name.find('.').unwrap()].parse().unwrap();
                    upstream
                        .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, index)), from)
                        .await;
                }
            }
            ports
        })
    };
    let asks = (0..QUERIES).map(|i| {
        let pool = Arc::clone(&pool);
        async move {
            let index = (i % 250) as u8;
            let reply = pool
                .exchange(&question(&format!("q{index}.example.")), in_a_second())
                .await
                .unwrap();
            assert_eq!(address_in(&reply), Some(Ipv4Addr::new(192, 0, 2, index)));
        }
    });
    futures_util::future::join_all(asks).await;
    let ports = answering.await.unwrap();
    assert!(ports.len() > 8, "queries spread over the pool: {ports:?}");
    assert_eq!(stats.unmatched_replies.load(Ordering::Relaxed), 0);
    assert_eq!(stats.mismatched_replies.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn sockets_are_renewed_on_new_ports_and_retired_ones_close() {
    let upstream = Arc::new(Upstream::start().await);
    let pool = Arc::new(Pool::new(upstream.address(), stats()));
    let answering = answer_every_query(&upstream);
    // Fill every slot, and keep one socket to watch it being retired.
    for _ in 0..SOCKETS * 8 {
        pool.exchange(&question("a.example."), in_a_second())
            .await
            .unwrap();
    }
    let first: Vec<Arc<PoolSocket>> = pool.slots.iter().filter_map(|s| s.load_full()).collect();
    assert!(first.len() > SOCKETS / 2);
    let watched = Arc::clone(&first[0]);
    // Enough queries that every socket is due at least once.
    for _ in 0..(QUERIES_PER_SOCKET as usize) * SOCKETS * 2 {
        pool.exchange(&question("a.example."), in_a_second())
            .await
            .unwrap();
    }
    for slot in pool.slots.iter() {
        let now = slot.load_full().expect("every slot in use");
        assert!(
            !first.iter().any(|old| Arc::ptr_eq(old, &now)),
            "every socket renewed"
        );
    }
    let ports: HashSet<u16> = pool.ports().into_iter().collect();
    assert!(ports.len() > SOCKETS / 2, "on random ports: {ports:?}");
    // Retired and idle: its receive task has stopped, and it takes no query.
    for _ in 0..100 {
        if watched.lock().closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(watched.lock().retired && watched.lock().closed);
    assert!(watched.register(&question("a.example.")).is_none());
    answering.abort();
}

#[tokio::test]
async fn a_socket_older_than_its_lifetime_is_renewed() {
    tokio::time::pause();
    let upstream = Upstream::start().await;
    let pool = Pool::new(upstream.address(), stats());
    let first = pool.socket_in(&pool.slots[0]).unwrap();
    assert!(!first.is_due());
    tokio::time::advance(SOCKET_LIFETIME).await;
    assert!(first.is_due());
}

#[tokio::test]
async fn a_closed_socket_in_a_slot_is_replaced() {
    let upstream = Arc::new(Upstream::start().await);
    let pool = Pool::new(upstream.address(), stats());
    let answering = answer_every_query(&upstream);
    let mut closed = Vec::new();
    for slot in pool.slots.iter() {
        let socket = pool.socket_in(slot).unwrap();
        // As if its receive task had stopped.
        socket.lock().closed = true;
        closed.push(socket);
    }
    let answer = pool
        .exchange(&question("a.example."), in_a_second())
        .await
        .expect("answered on a new socket");
    assert_eq!(address_in(&answer), Some(Ipv4Addr::new(192, 0, 2, 1)));
    let replaced = pool
        .slots
        .iter()
        .filter(|slot| {
            let now = slot.load_full().unwrap();
            !closed.iter().any(|old| Arc::ptr_eq(old, &now))
        })
        .count();
    assert_eq!(replaced, 1);
    answering.abort();
}
