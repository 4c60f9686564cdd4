use std::collections::HashSet;
use std::net::Ipv4Addr;

use std::time::Duration;

use hickory_proto::op::Query;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use tokio::task::JoinHandle;

use super::pool::{DEFAULT_PORTS, IDLE_TIMEOUT, MAX_AGE, MAX_USES};
use super::*;

fn question(name: &str) -> Question {
    Question::new(Name::from_ascii(name).unwrap(), RecordType::A)
}

fn stats() -> Arc<UpstreamStats> {
    Arc::new(UpstreamStats::default())
}

fn pool(ports: usize) -> Arc<SocketPool> {
    Arc::new(SocketPool::new(ports))
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

/// Asks `udp` for `name` in a task of its own, so the test can play the upstream meanwhile.
fn ask(
    udp: &Arc<UdpUpstream>,
    name: &'static str,
    deadline: Instant,
) -> JoinHandle<Result<Message, ExchangeError>> {
    let udp = Arc::clone(udp);
    tokio::spawn(async move { udp.exchange(&question(name), deadline).await })
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
    let udp = Arc::new(UdpUpstream::new(
        upstream.address(),
        Arc::clone(&stats),
        pool(DEFAULT_PORTS),
    ));
    let asking = ask(&udp, "www.example.", in_a_second());
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
}

#[tokio::test]
async fn a_query_with_only_wrong_replies_times_out() {
    let upstream = Upstream::start().await;
    let stats = stats();
    let udp = Arc::new(UdpUpstream::new(
        upstream.address(),
        Arc::clone(&stats),
        pool(DEFAULT_PORTS),
    ));
    let asking = ask(
        &udp,
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
}

#[tokio::test]
async fn a_closed_port_fails_at_once() {
    // A port nothing listens on: the kernel answers ICMP port unreachable, which the connected
    // socket reports, and the query fails well before its deadline (failover is immediate).
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let sockets = pool(DEFAULT_PORTS);
    let udp = UdpUpstream::new(closed, stats(), Arc::clone(&sockets));
    let result = udp
        .exchange(
            &question("www.example."),
            Instant::now() + Duration::from_secs(30),
        )
        .await;
    assert!(matches!(result, Err(ExchangeError::Io(_))), "{result:?}");
    assert_eq!(
        sockets.open(),
        0,
        "a socket that had an error is closed, not lent again"
    );
}

#[tokio::test]
async fn concurrent_queries_each_get_their_own_reply_and_port() {
    let upstream = Arc::new(Upstream::start().await);
    let stats = stats();
    let udp = Arc::new(UdpUpstream::new(
        upstream.address(),
        Arc::clone(&stats),
        pool(DEFAULT_PORTS),
    ));
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
        let udp = Arc::clone(&udp);
        async move {
            let index = (i % 250) as u8;
            let reply = udp
                .exchange(&question(&format!("q{index}.example.")), in_a_second())
                .await
                .unwrap();
            assert_eq!(address_in(&reply), Some(Ipv4Addr::new(192, 0, 2, index)));
        }
    });
    futures_util::future::join_all(asks).await;
    let ports = answering.await.unwrap();
    assert_eq!(
        ports.len(),
        QUERIES as usize,
        "queries in flight at once are on different ports"
    );
    assert_eq!(stats.unmatched_replies.load(Ordering::Relaxed), 0);
    assert_eq!(stats.mismatched_replies.load(Ordering::Relaxed), 0);
}

/// The source ports of `count` consecutive queries to one upstream through `sockets` (each
/// waits for its reply before the next is sent), and how many distinct IDs they had.
async fn ports_of_consecutive_queries(sockets: Arc<SocketPool>, count: usize) -> (Vec<u16>, usize) {
    let upstream = Arc::new(Upstream::start().await);
    let udp = UdpUpstream::new(upstream.address(), stats(), sockets);
    let recording = {
        let upstream = Arc::clone(&upstream);
        tokio::spawn(async move {
            let mut ports = Vec::new();
            let mut ids = HashSet::new();
            for _ in 0..count {
                let (query, from) = upstream.next_query().await;
                ports.push(from.port());
                ids.insert(query.metadata.id);
                upstream
                    .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 1)), from)
                    .await;
            }
            (ports, ids.len())
        })
    };
    for _ in 0..count {
        udp.exchange(&question("a.example."), in_a_second())
            .await
            .unwrap();
    }
    recording.await.unwrap()
}

/// The distinct ports among `seen`, and the lowest and highest of them.
fn spread(seen: &[u16]) -> (HashSet<u16>, u16, u16) {
    let distinct: HashSet<u16> = seen.iter().copied().collect();
    let low = seen.iter().min().copied().unwrap_or(0);
    let high = seen.iter().max().copied().unwrap_or(0);
    (distinct, low, high)
}

/// Issue 14: "Over 1,000 consecutive queries to one upstream, at least 950 distinct source
/// ports". Through the default pool, a query draws one of 16,384 slots: the first draw of a
/// slot opens a socket on a port the kernel draws from `ip_local_port_range` (28,232 ports by
/// default), a slot drawn again lends its socket again. So about 1,000²/(2 × 16,384) = 30
/// repeats are expected in 1,000 queries; with a socket per query (`udp_ports = 0`), about 18
/// (the birthday bound over 28,232).
#[tokio::test]
async fn consecutive_queries_come_from_nearly_all_different_ports() {
    for ports in [DEFAULT_PORTS, 0] {
        let sockets = pool(ports);
        let (seen, ids) = ports_of_consecutive_queries(Arc::clone(&sockets), 1000).await;
        let (distinct, low, high) = spread(&seen);
        println!(
            "udp_ports = {ports}: 1,000 queries, {} distinct ports between {low} and {high}, \
             {ids} distinct IDs, {} sockets opened into the pool, {} reused, {} one-off",
            distinct.len(),
            sockets.stats.opened.load(Ordering::Relaxed),
            sockets.stats.reused.load(Ordering::Relaxed),
            sockets.stats.one_off.load(Ordering::Relaxed),
        );
        assert!(distinct.len() >= 950, "{} distinct ports", distinct.len());
        assert!(
            high - low > 16_000,
            "drawn from a range of more than 16,000 ports: {low}..{high}"
        );
        assert!(ids >= 980, "random IDs: {ids} distinct");
    }
}

/// The pool's ports are a wide spread, not a few sockets used in turn: 20,000 queries through
/// the default pool draw its 16,384 slots at random, so about 16,384 × (1 − e^(−20,000/16,384))
/// = 11,550 distinct slots are expected, each its own port; at least 10,000 must be seen. (Two
/// sockets may hold the same port one after the other when one was replaced, so the count of
/// ports is at most that of slots.)
#[tokio::test]
async fn a_pool_spreads_queries_over_thousands_of_ports() {
    // 16,384 sockets open at once: more than a default soft limit of 1,024 descriptors.
    // `hearth serve` raises it to the hard limit at start; so does this test.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let ports = pool::affordable(DEFAULT_PORTS);
    if ports < DEFAULT_PORTS {
        println!("skipped: the open-files limit ({hard}) allows a pool of {ports} sockets only");
        return;
    }
    let sockets = pool(ports);
    let (seen, _) = ports_of_consecutive_queries(Arc::clone(&sockets), 20_000).await;
    let (distinct, low, high) = spread(&seen);
    println!(
        "20,000 queries through a pool of {ports}: {} distinct ports between {low} and {high}; \
         {} sockets opened, {} reused, {} one-off, {} open at the end",
        distinct.len(),
        sockets.stats.opened.load(Ordering::Relaxed),
        sockets.stats.reused.load(Ordering::Relaxed),
        sockets.stats.one_off.load(Ordering::Relaxed),
        sockets.open(),
    );
    assert!(
        distinct.len() >= 10_000,
        "{} distinct ports",
        distinct.len()
    );
    assert!(high - low > 16_000, "{low}..{high}");
}

#[tokio::test]
async fn a_late_reply_left_on_a_reused_socket_is_dropped_and_counted() {
    let upstream = Upstream::start().await;
    let stats = stats();
    // One slot: the second query is lent the first one's socket.
    let sockets = pool(1);
    let udp = Arc::new(UdpUpstream::new(
        upstream.address(),
        Arc::clone(&stats),
        Arc::clone(&sockets),
    ));
    let first = ask(
        &udp,
        "first.example.",
        Instant::now() + Duration::from_millis(100),
    );
    let (late, first_from) = upstream.next_query().await;
    assert!(matches!(first.await.unwrap(), Err(ExchangeError::TimedOut)));
    // The reply to the first query comes after it gave up, and waits in the socket.
    upstream
        .send(&reply_to(&late, Ipv4Addr::new(203, 0, 113, 66)), first_from)
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let second = ask(&udp, "second.example.", in_a_second());
    let (query, from) = upstream.next_query().await;
    assert_eq!(from, first_from, "the socket was lent again");
    upstream
        .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 1)), from)
        .await;
    let answer = second.await.unwrap().expect("its own reply");
    assert_eq!(address_in(&answer), Some(Ipv4Addr::new(192, 0, 2, 1)));
    // Under the first query's ID (or, once in 65,536, the same ID and another question).
    let dropped = stats.unmatched_replies.load(Ordering::Relaxed)
        + stats.mismatched_replies.load(Ordering::Relaxed);
    assert_eq!(dropped, 1, "the late reply was dropped and counted");
    assert_eq!(sockets.stats.opened.load(Ordering::Relaxed), 1);
    assert_eq!(sockets.stats.reused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_socket_is_lent_to_one_query_at_a_time() {
    let upstream = Upstream::start().await;
    let sockets = pool(1);
    let udp = Arc::new(UdpUpstream::new(
        upstream.address(),
        stats(),
        Arc::clone(&sockets),
    ));
    let first = ask(&udp, "first.example.", in_a_second());
    let (first_query, first_from) = upstream.next_query().await;
    // The only slot is lent: the second query opens a socket of its own.
    let second = ask(&udp, "second.example.", in_a_second());
    let (second_query, second_from) = upstream.next_query().await;
    assert_ne!(first_from, second_from);
    assert_eq!(sockets.stats.one_off.load(Ordering::Relaxed), 1);
    // Each reply sent to the other's port too: only its own is taken.
    for (query, address) in [
        (&first_query, Ipv4Addr::new(192, 0, 2, 1)),
        (&second_query, Ipv4Addr::new(192, 0, 2, 2)),
    ] {
        for to in [first_from, second_from] {
            upstream.send(&reply_to(query, address), to).await;
        }
    }
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    assert_eq!(address_in(&first), Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(address_in(&second), Some(Ipv4Addr::new(192, 0, 2, 2)));
    assert_eq!(
        sockets.open(),
        1,
        "the one-off socket closed, the pooled one is back"
    );
}

#[tokio::test]
async fn a_socket_is_replaced_for_another_upstream_and_when_old_worn_or_idle() {
    let (one, two) = (Upstream::start().await, Upstream::start().await);
    let sockets = pool(1);
    let to_one = Arc::new(UdpUpstream::new(
        one.address(),
        stats(),
        Arc::clone(&sockets),
    ));
    let to_two = Arc::new(UdpUpstream::new(
        two.address(),
        stats(),
        Arc::clone(&sockets),
    ));
    async fn served(udp: &Arc<UdpUpstream>, upstream: &Upstream) -> SocketAddr {
        let asking = ask(udp, "a.example.", in_a_second());
        let (query, from) = upstream.next_query().await;
        upstream
            .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 1)), from)
            .await;
        asking.await.unwrap().unwrap();
        from
    }
    let first = served(&to_one, &one).await;
    assert_eq!(served(&to_one, &one).await, first, "reused");
    // Another upstream: a new socket (Linux fixed the old one's source address).
    served(&to_two, &two).await;
    assert_eq!(sockets.stats.opened.load(Ordering::Relaxed), 2);
    assert_eq!(sockets.stats.reused.load(Ordering::Relaxed), 1);
    assert_eq!(sockets.open(), 1);

    // The sweep closes what has been idle too long or lived too long, and only that.
    assert_eq!(sockets.sweep(Instant::now()), 0);
    assert_eq!(sockets.sweep(Instant::now() + IDLE_TIMEOUT), 1);
    assert_eq!(sockets.open(), 0);
    served(&to_one, &one).await;
    assert_eq!(sockets.sweep(Instant::now() + MAX_AGE), 1);

    // Worn out: after MAX_USES queries, the next one opens a new socket.
    let before = sockets.stats.opened.load(Ordering::Relaxed);
    for _ in 0..=MAX_USES {
        served(&to_one, &one).await;
    }
    assert_eq!(sockets.stats.opened.load(Ordering::Relaxed), before + 2);
}

#[test]
fn check_reply_takes_only_a_response_to_the_question_under_the_id() {
    let question = question("www.example.");
    let mut query = Message::new(7, MessageType::Query, OpCode::Query);
    query
        .queries
        .push(Query::query(question.name.clone(), RecordType::A));
    let reply = reply_to(&query, Ipv4Addr::new(192, 0, 2, 1))
        .to_vec()
        .unwrap();
    assert!(matches!(
        check_reply(&reply, 7, &question),
        Checked::Reply(_)
    ));
    assert!(matches!(
        check_reply(&reply, 8, &question),
        Checked::Unmatched
    ));
    assert!(matches!(check_reply(&[], 7, &question), Checked::Unmatched));
    assert!(matches!(
        check_reply(&[0, 7], 7, &question),
        Checked::Mismatched
    ));
    assert!(matches!(
        check_reply(&reply, 7, &self::question("other.example.")),
        Checked::Mismatched
    ));
}
