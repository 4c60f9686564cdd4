//! Wire behaviour through the real listeners: EDNS, truncation and the TCP retry, and the
//! bad-input catalogue (`shared/docs/BAD-INPUTS.md`): every malformed or hostile message gets
//! its RCODE or silence, and the server keeps answering afterwards.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long to wait before deciding that no reply is coming. A bound, not a measurement.
const SILENCE: Duration = Duration::from_millis(500);

/// 100 addresses: 1,600+ bytes of answer, more than any UDP reply may hold.
fn big_hosts() -> String {
    let mut text = String::from("192.0.2.1 small.example\n");
    for i in 0..100 {
        text.push_str(&format!("10.0.{}.{} big.example\n", i / 250, i % 250 + 1));
    }
    text
}

struct Fixture {
    server: TestServer,
    upstream: FakeUpstream,
    _dir: tempfile::TempDir,
}

async fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), &big_hosts());
    let upstream = FakeUpstream::start().await;
    upstream.add_a("slow.example.net.", Ipv4Addr::new(198, 51, 100, 1));
    let toml = config(&hosts, &[upstream.addr], &["files", "dns"]);
    // `extra` holds whole tables; `[server]` is not in the base config.
    let server = start_server(&format!("{extra}\n{toml}")).await;
    Fixture {
        server,
        upstream,
        _dir: dir,
    }
}

fn parse(reply: &[u8]) -> Message {
    Message::from_vec(reply).expect("the reply parses")
}

/// The server still answers a plain query: nothing before broke it.
async fn still_answers(server: SocketAddr) {
    let response = ask(server, "small.example.", RecordType::A).await;
    assert_eq!(rdata(&response), ["192.0.2.1"]);
}

#[tokio::test]
async fn edns_is_answered_iff_asked() {
    let f = fixture("").await;
    let with = parse(
        &udp_raw(
            f.server.addr,
            &query_bytes(1, "small.example.", RecordType::A, Some(4096)),
            PATIENCE,
        )
        .await
        .unwrap(),
    );
    let opt = with.edns.expect("OPT in the reply to a query with OPT");
    assert_eq!((opt.max_payload(), opt.version()), (1232, 0));
    let without = parse(
        &udp_raw(
            f.server.addr,
            &query_bytes(2, "small.example.", RecordType::A, None),
            PATIENCE,
        )
        .await
        .unwrap(),
    );
    assert!(
        without.edns.is_none(),
        "no OPT in the reply to a query without one"
    );
}

#[tokio::test]
async fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let f = fixture("").await;
    // (EDNS payload offered, the reply is truncated)
    for (payload, truncated) in [(None, true), (Some(400), true), (Some(4096), true)] {
        let reply = parse(
            &udp_raw(
                f.server.addr,
                &query_bytes(7, "big.example.", RecordType::A, payload),
                PATIENCE,
            )
            .await
            .unwrap(),
        );
        assert_eq!(reply.metadata.truncation, truncated, "payload {payload:?}");
        assert!(
            reply.answers.is_empty(),
            "payload {payload:?}: a truncated reply carries no partial RRset"
        );
        assert_eq!(reply.queries.len(), 1, "the question is echoed");
        assert_eq!(reply.edns.is_some(), payload.is_some());
    }
    // Small answers fit in 512 bytes without EDNS.
    let reply = parse(
        &udp_raw(
            f.server.addr,
            &query_bytes(8, "small.example.", RecordType::A, None),
            PATIENCE,
        )
        .await
        .unwrap(),
    );
    assert!(!reply.metadata.truncation);

    // The same question over TCP gets the whole answer, as a client retrying would.
    let mut client = tcp_client(f.server.addr).await;
    use hickory_net::client::ClientHandle;
    let response = client
        .query(
            name("big.example."),
            hickory_proto::rr::DNSClass::IN,
            RecordType::A,
        )
        .await
        .unwrap();
    assert!(!response.truncation);
    assert_eq!(response.answers.len(), 100);
}

/// Bytes of a query with header fields changed: `flags` replaces bytes 2-3, `counts` bytes 4-11.
fn patched(mut packet: Vec<u8>, flags: Option<[u8; 2]>, counts: Option<[u16; 4]>) -> Vec<u8> {
    if let Some(flags) = flags {
        packet[2..4].copy_from_slice(&flags);
    }
    if let Some(counts) = counts {
        for (i, count) in counts.iter().enumerate() {
            packet[4 + 2 * i..6 + 2 * i].copy_from_slice(&count.to_be_bytes());
        }
    }
    packet
}

fn two_questions() -> Vec<u8> {
    let mut message =
        Message::from_vec(&query_bytes(0x4242, "small.example.", RecordType::A, None)).unwrap();
    message.queries.push(hickory_proto::op::Query::query(
        name("big.example."),
        RecordType::A,
    ));
    message.to_vec().unwrap()
}

/// A query for `small.example. A` written by hand, so names can be made malformed.
fn hand_query(id: u16, qname: &[u8], extra: &[u8], additional_count: u16) -> Vec<u8> {
    let mut packet = id.to_be_bytes().to_vec();
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0]);
    packet.extend_from_slice(&additional_count.to_be_bytes());
    packet.extend_from_slice(qname);
    packet.extend_from_slice(&[0, 1, 0, 1]);
    packet.extend_from_slice(extra);
    packet
}

/// An OPT record: root owner, type 41, payload 1232, extended RCODE 0, `version`, no options.
fn opt_record(version: u8) -> Vec<u8> {
    vec![0, 0, 41, 0x04, 0xd0, 0, version, 0, 0, 0, 0]
}

#[tokio::test]
async fn bad_input_gets_its_rcode() {
    let f = fixture("").await;
    let addr = f.server.addr;
    let base = || query_bytes(0x4242, "small.example.", RecordType::A, None);
    let label_64 = {
        let mut name = vec![64];
        name.extend(std::iter::repeat_n(b'a', 64));
        name.push(0);
        name
    };
    let name_255 = {
        // 3 labels of 63 + 1 label of 61 + lengths + root = 255 octets.
        let mut name = Vec::new();
        for length in [63u8, 63, 63, 61] {
            name.push(length);
            name.extend(std::iter::repeat_n(b'x', usize::from(length)));
        }
        name.push(0);
        assert_eq!(name.len(), 255);
        name
    };
    let cases: Vec<(&str, Vec<u8>, ResponseCode)> = vec![
        (
            "QDCOUNT 0",
            patched(base(), None, Some([0, 0, 0, 0])),
            ResponseCode::FormErr,
        ),
        (
            "QDCOUNT 2, one question present",
            patched(base(), None, Some([2, 0, 0, 0])),
            ResponseCode::FormErr,
        ),
        (
            "QDCOUNT 2, both questions present (RFC 9619)",
            two_questions(),
            ResponseCode::FormErr,
        ),
        (
            "counts promise records that are not there",
            patched(base(), None, Some([1, 3, 0, 0])),
            ResponseCode::FormErr,
        ),
        (
            "question cut short",
            base()[..20].to_vec(),
            ResponseCode::FormErr,
        ),
        (
            "compression pointer to itself",
            hand_query(0x4242, &[0xc0, 12], &[], 0),
            ResponseCode::FormErr,
        ),
        (
            "compression pointer forward",
            hand_query(0x4242, &[0xc0, 40], &[], 0),
            ResponseCode::FormErr,
        ),
        (
            "label type 0x40",
            hand_query(0x4242, &[0x40, 0], &[], 0),
            ResponseCode::FormErr,
        ),
        (
            "label over 63 octets",
            hand_query(0x4242, &label_64, &[], 0),
            ResponseCode::FormErr,
        ),
        (
            "two OPT records",
            hand_query(
                0x4242,
                b"\x05small\x07example\x00",
                &[opt_record(0), opt_record(0)].concat(),
                2,
            ),
            ResponseCode::FormErr,
        ),
        (
            "opcode IQUERY",
            patched(base(), Some([0x08 | 0x01, 0]), None),
            ResponseCode::NotImp,
        ),
        (
            "opcode STATUS",
            patched(base(), Some([0x10 | 0x01, 0]), None),
            ResponseCode::NotImp,
        ),
        (
            "opcode NOTIFY",
            patched(base(), Some([0x20, 0]), None),
            ResponseCode::NotImp,
        ),
        (
            "opcode UPDATE",
            patched(base(), Some([0x28, 0]), None),
            ResponseCode::NotImp,
        ),
        (
            "opcode 15",
            patched(base(), Some([0x78, 0]), None),
            ResponseCode::NotImp,
        ),
        (
            "EDNS version 1",
            hand_query(0x4242, b"\x05small\x07example\x00", &opt_record(1), 1),
            ResponseCode::BADVERS,
        ),
        (
            "class CH",
            {
                let mut p = base();
                let n = p.len();
                p[n - 1] = 3;
                p
            },
            ResponseCode::Refused,
        ),
        (
            "class ANY",
            {
                let mut p = base();
                let n = p.len();
                p[n - 1] = 255;
                p
            },
            ResponseCode::Refused,
        ),
        (
            "AXFR",
            query_bytes(0x4242, "small.example.", RecordType::AXFR, None),
            ResponseCode::Refused,
        ),
        (
            "IXFR",
            query_bytes(0x4242, "small.example.", RecordType::IXFR, None),
            ResponseCode::Refused,
        ),
        (
            "a name of exactly 255 octets is legal",
            hand_query(0x4242, &name_255, &[], 0),
            ResponseCode::NXDomain,
        ),
        (
            "unknown type: NODATA, not FORMERR",
            query_bytes(0x4242, "small.example.", RecordType::Unknown(65280), None),
            ResponseCode::NoError,
        ),
        (
            "Z, AA, TC, AD and an RCODE set in a query",
            patched(base(), Some([0x01 | 0x04 | 0x02, 0x40 | 0x20 | 0x05]), None),
            ResponseCode::NoError,
        ),
    ];
    for (what, packet, expected) in cases {
        let reply = udp_raw(addr, &packet, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("{what}: no reply"));
        // The header is always readable, even when the rest is not what hickory accepts.
        assert_eq!(&reply[..2], &[0x42, 0x42], "{what}: the ID is echoed");
        assert_eq!(reply[2] & 0x80, 0x80, "{what}: QR is set");
        let rcode_low = reply[3] & 0x0f;
        let message = Message::from_vec(&reply);
        let rcode = match &message {
            Ok(message) => message.metadata.response_code,
            Err(_) => ResponseCode::from(0, rcode_low),
        };
        // RCODE 16 is both BADVERS and TSIG's BADSIG: compare the numbers.
        assert_eq!(
            u16::from(rcode),
            u16::from(expected),
            "{what}: {rcode} instead of {expected}"
        );
        if expected == ResponseCode::BADVERS {
            let message = message.unwrap();
            assert_eq!(
                message.edns.as_ref().map(|e| e.version()),
                Some(0),
                "{what}: OPT of version 0"
            );
            assert!(message.answers.is_empty());
        }
        if what.starts_with("Z, AA") {
            assert_eq!(reply[3] & 0x40, 0, "{what}: the Z bit is not copied");
            assert_eq!(reply[3] & 0x20, 0, "{what}: AD is not copied");
            assert_eq!(reply[2] & 0x02, 0, "{what}: TC is not copied");
        }
    }
    still_answers(addr).await;
}

#[tokio::test]
async fn some_input_gets_no_reply_at_all() {
    let f = fixture("").await;
    let addr = f.server.addr;
    let base = query_bytes(0x4242, "small.example.", RecordType::A, None);
    let response_bit = patched(base.clone(), Some([0x81, 0x80]), None);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty datagram", vec![]),
        ("11 bytes", base[..11].to_vec()),
        ("a response (QR=1)", response_bit),
        (
            "a response with an error RCODE",
            patched(base.clone(), Some([0x81, 0x82]), None),
        ),
    ];
    for (what, packet) in cases {
        assert_eq!(
            udp_raw(addr, &packet, SILENCE).await,
            None,
            "{what}: must not be answered"
        );
    }
    // A 65,000-byte datagram: answered with FORMERR or dropped, never a large reply.
    let mut huge = base.clone();
    huge.resize(65_000, 0);
    huge[10..12].copy_from_slice(&500u16.to_be_bytes());
    if let Some(reply) = udp_raw(addr, &huge, SILENCE).await {
        assert!(reply.len() < 512, "a huge query gets a small reply");
    }
    still_answers(addr).await;
}

async fn tcp_send(stream: &mut TcpStream, packet: &[u8]) {
    let mut frame = (packet.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(packet);
    stream.write_all(&frame).await.unwrap();
}

/// Reads one reply, or `None` if the server closed the connection.
async fn tcp_read(stream: &mut TcpStream) -> Option<Message> {
    let read = async {
        let length = stream.read_u16().await.ok()?;
        let mut reply = vec![0u8; usize::from(length)];
        stream.read_exact(&mut reply).await.ok()?;
        Some(parse(&reply))
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the server replies or closes in time")
}

#[tokio::test]
async fn tcp_pipelined_queries_are_answered_as_each_is_ready() {
    let f = fixture("").await;
    f.upstream.set_delay(Duration::from_millis(300));
    let mut stream = TcpStream::connect(f.server.addr).await.unwrap();
    // One write, two queries: a slow forwarded one first, then a local one.
    let mut both = Vec::new();
    for packet in [
        query_bytes(1, "slow.example.net.", RecordType::A, None),
        query_bytes(2, "small.example.", RecordType::A, None),
    ] {
        both.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        both.extend_from_slice(&packet);
    }
    stream.write_all(&both).await.unwrap();
    let first = tcp_read(&mut stream).await.unwrap();
    let second = tcp_read(&mut stream).await.unwrap();
    assert_eq!(
        (first.metadata.id, second.metadata.id),
        (2, 1),
        "the local answer is not held behind the slow one"
    );
    assert_eq!(second.answers.len(), 1);
}

#[tokio::test]
async fn tcp_half_closed_client_still_gets_its_answer() {
    let f = fixture("").await;
    let mut stream = TcpStream::connect(f.server.addr).await.unwrap();
    tcp_send(
        &mut stream,
        &query_bytes(3, "small.example.", RecordType::A, None),
    )
    .await;
    stream.shutdown().await.unwrap();
    let reply = tcp_read(&mut stream)
        .await
        .expect("an answer after the half-close");
    assert_eq!(reply.metadata.id, 3);
    assert_eq!(
        tcp_read(&mut stream).await.map(|m| m.metadata.id),
        None,
        "then the server closes"
    );
}

#[tokio::test]
async fn tcp_bad_frames_close_the_connection() {
    let f = fixture("[server]\ntcp_idle_timeout = \"300ms\"\n").await;
    let base = query_bytes(4, "small.example.", RecordType::A, None);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a response (QR=1)",
            patched(base.clone(), Some([0x81, 0x80]), None),
        ),
        ("a frame shorter than a header", base[..5].to_vec()),
        ("a zero-length frame", vec![]),
    ];
    for (what, packet) in cases {
        let mut stream = TcpStream::connect(f.server.addr).await.unwrap();
        tcp_send(&mut stream, &packet).await;
        assert!(
            tcp_read(&mut stream).await.is_none(),
            "{what}: closed without a reply"
        );
    }
    // A length prefix promising more than arrives: closed once the idle timeout passes.
    let mut stream = TcpStream::connect(f.server.addr).await.unwrap();
    stream.write_all(&[0x01, 0x00, 0xab]).await.unwrap();
    assert!(
        tcp_read(&mut stream).await.is_none(),
        "a short message is closed after the idle timeout"
    );
    still_answers(f.server.addr).await;
}

#[tokio::test]
async fn tcp_idle_connections_are_closed_and_capped() {
    let f = fixture("[server]\ntcp_idle_timeout = \"300ms\"\ntcp_max_connections = 2\n").await;
    // Idle: closed by the server.
    let mut idle = TcpStream::connect(f.server.addr).await.unwrap();
    assert!(
        tcp_read(&mut idle).await.is_none(),
        "an idle connection is closed"
    );

    // Capped: two held open, the third is shed; UDP keeps working throughout.
    let mut held = Vec::new();
    for id in 10..12 {
        let mut stream = TcpStream::connect(f.server.addr).await.unwrap();
        tcp_send(
            &mut stream,
            &query_bytes(id, "small.example.", RecordType::A, None),
        )
        .await;
        assert_eq!(tcp_read(&mut stream).await.map(|m| m.metadata.id), Some(id));
        held.push(stream);
    }
    let mut third = TcpStream::connect(f.server.addr).await.unwrap();
    tcp_send(
        &mut third,
        &query_bytes(12, "small.example.", RecordType::A, None),
    )
    .await;
    assert!(
        tcp_read(&mut third).await.is_none(),
        "the third connection is shed"
    );
    still_answers(f.server.addr).await;
}

#[tokio::test]
async fn tcp_client_that_never_reads_loses_its_connection() {
    let f = fixture("[server]\ntcp_idle_timeout = \"300ms\"\ntcp_max_connections = 1\n").await;
    // Pipeline far more answer bytes than the socket buffers hold, and never read them.
    let mut greedy = TcpStream::connect(f.server.addr).await.unwrap();
    let mut frames = Vec::new();
    for id in 0..3000u16 {
        let packet = query_bytes(id, "big.example.", RecordType::A, Some(65_535));
        frames.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        frames.extend_from_slice(&packet);
    }
    // The server stops reading once its replies back up, so this write may never finish.
    let _ = tokio::time::timeout(Duration::from_secs(2), greedy.write_all(&frames)).await;

    // The only connection slot must come free: the stuck writes time out and close it.
    let addr = f.server.addr;
    let freed = eventually(|| async move {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            return false;
        };
        tcp_send(
            &mut stream,
            &query_bytes(1, "small.example.", RecordType::A, None),
        )
        .await;
        tcp_read(&mut stream).await.is_some()
    })
    .await;
    assert!(
        freed,
        "a client that never reads holds its connection slot forever"
    );
    drop(greedy);
}
