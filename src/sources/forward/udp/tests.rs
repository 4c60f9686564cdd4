use std::collections::HashSet;
use std::net::Ipv4Addr;

use std::time::Duration;

use hickory_proto::op::Query;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

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
    let udp = Arc::new(UdpUpstream::new(upstream.address(), Arc::clone(&stats)));
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
    let udp = Arc::new(UdpUpstream::new(upstream.address(), Arc::clone(&stats)));
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
    let udp = UdpUpstream::new(closed, stats());
    let result = udp
        .exchange(
            &question("www.example."),
            Instant::now() + Duration::from_secs(30),
        )
        .await;
    assert!(matches!(result, Err(ExchangeError::Io(_))), "{result:?}");
}

#[tokio::test]
async fn concurrent_queries_each_get_their_own_reply_and_port() {
    let upstream = Arc::new(Upstream::start().await);
    let stats = stats();
    let udp = Arc::new(UdpUpstream::new(upstream.address(), Arc::clone(&stats)));
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

/// Issue 14: "Over 1,000 consecutive queries to one upstream, at least 950 distinct source
/// ports". Each query binds port 0, so the kernel draws from `ip_local_port_range` (28,232
/// ports by default): about 18 repeats are expected in 1,000 draws (the birthday bound).
#[tokio::test]
async fn consecutive_queries_come_from_nearly_all_different_ports() {
    let upstream = Arc::new(Upstream::start().await);
    let udp = UdpUpstream::new(upstream.address(), stats());
    let recording = {
        let upstream = Arc::clone(&upstream);
        tokio::spawn(async move {
            let mut ports = Vec::new();
            let mut ids = HashSet::new();
            for _ in 0..1000 {
                let (query, from) = upstream.next_query().await;
                ports.push(from.port());
                ids.insert(query.metadata.id);
                upstream
                    .send(&reply_to(&query, Ipv4Addr::new(192, 0, 2, 1)), from)
                    .await;
            }
            (ports, ids)
        })
    };
    for _ in 0..1000 {
        udp.exchange(&question("a.example."), in_a_second())
            .await
            .unwrap();
    }
    let (ports, ids) = recording.await.unwrap();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    let (low, high) = (
        ports.iter().min().copied().unwrap_or(0),
        ports.iter().max().copied().unwrap_or(0),
    );
    println!(
        "1,000 queries: {} distinct ports between {low} and {high}, {} distinct IDs",
        distinct.len(),
        ids.len()
    );
    assert!(distinct.len() >= 950, "{} distinct ports", distinct.len());
    assert!(
        high - low > 16_000,
        "drawn from a range of more than 16,000 ports: {low}..{high}"
    );
    assert!(ids.len() >= 980, "random IDs: {} distinct", ids.len());
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
