//! The front door's limits through the real server, from many client addresses (any address of
//! 127.0.0.0/8 can be bound without privileges, so tests play clients in different /24s):
//! response rate limiting, DNS Cookies (with `dig` and `kdig` too), TCP connection caps under
//! pressure, the per-client limit on queries waiting on upstreams, and the Extended DNS Errors
//! Hearth sends when it fails.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use hearth::app::Running;
use hearth::config::{Config, Overrides};

use common::*;

/// A server on 127.0.0.1 with `hosts` answered from a file, `upstream` behind it, and `extra`
/// (front-door tables) appended to its configuration.
async fn start(dir: &std::path::Path, hosts: &str, upstream: SocketAddr, extra: &str) -> Running {
    let hosts = hosts_file(dir, hosts);
    let text = format!(
        "[resolve]\norder = [\"files\", \"dns\"]\n[files]\npaths = [\"{}\"]\n\
         [forward]\nupstreams = [\"{upstream}\"]\ntimeout = \"500ms\"\n{extra}",
        hosts.display()
    );
    let path = dir.join("hearth.toml");
    std::fs::write(&path, text).unwrap();
    let overrides = Overrides {
        listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
    };
    let config = Config::load(Some(&path), &overrides).expect("config loads");
    hearth::app::start(&config).await.expect("server starts")
}

fn rcode(reply: &[u8]) -> ResponseCode {
    Message::from_vec(reply).unwrap().metadata.response_code
}

fn truncated(reply: &[u8]) -> bool {
    reply.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// `query` with a COOKIE option holding `cookie` appended to its (empty) OPT record.
fn with_cookie(mut query: Vec<u8>, cookie: &[u8]) -> Vec<u8> {
    let length = query.len();
    assert_eq!(&query[length - 2..], &[0, 0], "an OPT with no options");
    query[length - 2..].copy_from_slice(&((4 + cookie.len()) as u16).to_be_bytes());
    query.extend_from_slice(&10u16.to_be_bytes());
    query.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    query.extend_from_slice(cookie);
    query
}

/// The COOKIE option of a reply.
fn reply_cookie(reply: &[u8]) -> Option<Vec<u8>> {
    let message = Message::from_vec(reply).ok()?;
    message
        .edns
        .as_ref()?
        .options()
        .options
        .iter()
        .find_map(|(_, option)| match option {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, data) => Some(data.clone()),
            _ => None,
        })
}

/// What a paced flood from one socket got back.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    bytes_in: usize,
    answered: AtomicUsize,
    slipped: AtomicUsize,
    bytes_out: AtomicUsize,
}

/// Sends `query` from `source` every `every` for `count` queries, counting the replies.
async fn flood(
    source: Ipv4Addr,
    server: SocketAddr,
    query: Vec<u8>,
    every: Duration,
    count: usize,
) -> Tally {
    let socket = Arc::new(UdpSocket::bind((source, 0)).await.unwrap());
    let tally = Arc::new(Tally::default());
    let receiver = {
        let (socket, tally) = (Arc::clone(&socket), Arc::clone(&tally));
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok(Ok(length)) =
                tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buffer)).await
            {
                let reply = &buffer[..length];
                tally.bytes_out.fetch_add(length, Ordering::Relaxed);
                if truncated(reply) {
                    tally.slipped.fetch_add(1, Ordering::Relaxed);
                } else if rcode(reply) == ResponseCode::NoError {
                    tally.answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut ticks = tokio::time::interval(every);
    for _ in 0..count {
        ticks.tick().await;
        socket.send_to(&query, server).await.unwrap();
    }
    receiver.await.unwrap();
    let mut tally = Arc::try_unwrap(tally).unwrap();
    tally.sent = count;
    tally.bytes_in = count * query.len();
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_at_ten_times_its_rate_gets_its_rate_and_a_quiet_one_everything() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "[rate_limit]\nresponses_per_second = 20\nipv4_prefix = 24\nslip = 2\nexempt = []\n",
    )
    .await;
    let server = running.local_addrs()[0];
    let query = query_bytes(7, "web.example.org.", RecordType::A, Some(1232));

    // 200 queries a second for 5 s from 127.0.9.0/24 (10× its rate); meanwhile 5 a second from
    // 127.0.10.0/24, each of which must be answered.
    let loud = tokio::spawn(flood(
        Ipv4Addr::new(127, 0, 9, 1),
        server,
        query.clone(),
        Duration::from_millis(5),
        1000,
    ));
    let mut quiet_answered = 0;
    for _ in 0..25 {
        let reply = udp_from(
            Ipv4Addr::new(127, 0, 10, 1),
            server,
            &query,
            Duration::from_secs(1),
        )
        .await;
        if reply.is_some_and(|r| !truncated(&r) && rcode(&r) == ResponseCode::NoError) {
            quiet_answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let loud = loud.await.unwrap();
    let answered = loud.answered.load(Ordering::Relaxed);
    let slipped = loud.slipped.load(Ordering::Relaxed);
    let bytes_out = loud.bytes_out.load(Ordering::Relaxed);
    println!(
        "loud: sent {} answered {answered} slipped {slipped}, bytes in {} out {bytes_out}",
        loud.sent, loud.bytes_in
    );
    assert_eq!(quiet_answered, 25, "the quiet /24 is not limited");
    // 20 a second over 5 to 7 one-second windows (the run takes at least 5 s; the windows
    // are whole seconds of the server's clock).
    assert!(
        (80..=160).contains(&answered),
        "answers close to the rate: {answered}"
    );
    let stats = running.admission().rate_stats();
    let limited = stats.limited.load(Ordering::Relaxed) as usize;
    assert_eq!(
        answered + limited,
        loud.sent,
        "every query answered or limited"
    );
    assert_eq!(
        stats.slipped.load(Ordering::Relaxed) as usize,
        slipped,
        "every slip arrived"
    );
    assert!(
        slipped.abs_diff(limited / 2) <= 1,
        "slip = 2: every 2nd limited reply truncated ({slipped} of {limited})"
    );
    assert!(
        bytes_out <= loud.bytes_in,
        "no amplification: {bytes_out} bytes out for {} in",
        loud.bytes_in
    );
    let metrics = running.render_metrics("hearth");
    assert_eq!(
        sample(&metrics, "hearth_rate_limit_limited_total"),
        Some(limited as f64)
    );
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_client_with_a_valid_server_cookie_is_never_limited() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "[rate_limit]\nresponses_per_second = 2\nslip = 1\n",
    )
    .await;
    let server = running.local_addrs()[0];
    let client = Ipv4Addr::new(127, 0, 20, 1);
    let client_cookie = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
    let plain = query_bytes(9, "web.example.org.", RecordType::A, Some(1232));
    let first = udp_from(
        client,
        server,
        &with_cookie(plain.clone(), &client_cookie),
        Duration::from_secs(1),
    )
    .await
    .expect("answered");
    assert_eq!(rcode(&first), ResponseCode::NoError);
    let cookie = reply_cookie(&first).expect("a server cookie in the reply");
    assert_eq!(
        cookie.len(),
        24,
        "the client cookie and a 16-byte server cookie"
    );
    assert_eq!(&cookie[..8], &client_cookie, "the client cookie echoed");
    assert_eq!(cookie[8], 1, "RFC 9018 version 1");

    // With the server cookie: every one answered, far over the rate.
    let proven = with_cookie(plain.clone(), &cookie);
    for _ in 0..20 {
        let reply = udp_from(client, server, &proven, Duration::from_secs(1))
            .await
            .expect("answered");
        assert_eq!(rcode(&reply), ResponseCode::NoError);
        assert!(!truncated(&reply));
        assert_eq!(
            reply_cookie(&reply).map(|c| c[..8].to_vec()),
            Some(client_cookie.to_vec()),
            "a fresh server cookie every time"
        );
    }
    // The same prefix without a valid cookie is limited: a forged server cookie or only the
    // client cookie gets BADCOOKIE with a fresh cookie (slip = 1); no cookie gets TC=1.
    let mut forged = cookie.clone();
    forged[23] ^= 0xff;
    let reply = udp_from(
        client,
        server,
        &with_cookie(plain.clone(), &forged),
        Duration::from_secs(1),
    )
    .await
    .expect("a slip");
    assert_eq!(rcode(&reply), ResponseCode::BADCOOKIE);
    let fresh = reply_cookie(&reply).expect("BADCOOKIE carries a fresh server cookie");
    let reply = udp_from(
        client,
        server,
        &with_cookie(plain.clone(), &fresh),
        Duration::from_secs(1),
    )
    .await
    .expect("answered");
    assert_eq!(
        rcode(&reply),
        ResponseCode::NoError,
        "the fresh cookie works"
    );
    let reply = udp_from(client, server, &plain, Duration::from_secs(1))
        .await
        .expect("a slip");
    assert!(truncated(&reply));
    // TCP is never limited.
    let mut tcp = TcpStream::connect(server).await.unwrap();
    for _ in 0..5 {
        let reply = tcp_exchange(&mut tcp, &plain).await.expect("answered");
        assert_eq!(rcode(&reply), ResponseCode::NoError);
    }
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_malformed_cookie_option_gets_formerr() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "",
    )
    .await;
    let server = running.local_addrs()[0];
    let plain = query_bytes(9, "web.example.org.", RecordType::A, Some(1232));
    for length in [0, 7, 9, 15, 41] {
        let reply = udp_from(
            Ipv4Addr::LOCALHOST,
            server,
            &with_cookie(plain.clone(), &vec![1; length]),
            Duration::from_secs(1),
        )
        .await
        .expect("a reply");
        assert_eq!(
            rcode(&reply),
            ResponseCode::FormErr,
            "COOKIE of {length} bytes"
        );
    }
    // A server cookie that is not ours (wrong size for ours, but a legal length) is answered,
    // with a fresh one (RFC 7873 §5.2.4).
    let reply = udp_from(
        Ipv4Addr::LOCALHOST,
        server,
        &with_cookie(plain.clone(), &[7; 40]),
        Duration::from_secs(1),
    )
    .await
    .expect("answered");
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(reply_cookie(&reply).map(|c| c.len()), Some(24));
    running.shutdown(Duration::from_secs(5)).await;
}

/// `dig +cookie` checks the server cookie it gets back: the client cookie must be echoed, and
/// on a second query it sends the server cookie, which must be accepted ("good").
#[tokio::test]
async fn dig_and_kdig_exchange_cookies() {
    let have_dig = external::require("dig");
    let have_kdig = external::require("kdig");
    if !have_dig && !have_kdig {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "",
    )
    .await;
    let server = running.local_addrs()[0];
    let port = server.port().to_string();
    if have_dig {
        let output = tokio::task::spawn_blocking({
            let port = port.clone();
            move || {
                std::process::Command::new("dig")
                    .args(["+cookie", "+tries=1", "+time=2", "-p", &port, "@127.0.0.1"])
                    .args(["web.example.org", "A"])
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        println!("{text}");
        assert!(text.contains("status: NOERROR"), "{text}");
        assert!(text.contains("192.0.2.10"), "{text}");
        let cookie_line = text
            .lines()
            .find(|line| line.contains("COOKIE:"))
            .unwrap_or_else(|| panic!("dig shows the cookie: {text}"));
        assert!(
            cookie_line.contains("(good)"),
            "dig accepts the server cookie: {cookie_line}"
        );
        // Again, sending the server cookie it learnt.
        let cookie = cookie_line
            .split_whitespace()
            .nth(2)
            .expect("the cookie's hex")
            .to_owned();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("dig")
                .arg(format!("+cookie={cookie}"))
                .args(["+tries=1", "+time=2", "-p", &port, "@127.0.0.1"])
                .args(["web.example.org", "A"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("status: NOERROR"), "{text}");
        assert!(
            text.lines()
                .any(|line| line.contains("COOKIE:") && line.contains("(good)")),
            "{text}"
        );
    }
    if have_kdig {
        let port = server.port().to_string();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("kdig")
                .args([
                    "+cookie",
                    "+retry=0",
                    "+timeout=2",
                    "-p",
                    &port,
                    "@127.0.0.1",
                ])
                .args(["web.example.org", "A"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let errors = String::from_utf8_lossy(&output.stderr);
        println!("{text}{errors}");
        assert!(text.contains("NOERROR"), "{text}");
        assert!(text.contains("192.0.2.10"), "{text}");
        assert!(
            text.lines().any(|line| line.contains("COOKIE")),
            "kdig shows the cookie: {text}"
        );
        assert!(
            !errors.contains("cookie") && !text.to_lowercase().contains("bad cookie"),
            "kdig accepts it: {errors}"
        );
    }
    running.shutdown(Duration::from_secs(5)).await;
}

/// One length-framed exchange on an open TCP connection.
async fn tcp_exchange(stream: &mut TcpStream, query: &[u8]) -> Option<Vec<u8>> {
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

async fn tcp_connect_from(source: Ipv4Addr, server: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
    socket.connect(server).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_do_not_keep_out_another() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "[server]\ntcp_idle_timeout = \"60s\"\n",
    )
    .await;
    let server = running.local_addrs()[0];
    let query = query_bytes(3, "web.example.org.", RecordType::A, None);

    // 1,100 connections from one address, held idle: it gets its 64, the rest are closed.
    let greedy = Ipv4Addr::new(127, 0, 30, 1);
    let mut held = Vec::new();
    for _ in 0..1100 {
        if let Some(stream) = tcp_connect_from(greedy, server).await {
            held.push(stream);
        }
    }
    let mut open = 0;
    for stream in &mut held {
        let mut byte = [0u8; 1];
        // A closed connection reads end-of-stream at once; an open idle one has nothing.
        if tokio::time::timeout(Duration::from_millis(5), stream.read(&mut byte))
            .await
            .is_err()
        {
            open += 1;
        }
    }
    assert_eq!(open, 64, "tcp_max_connections_per_client (default 64)");
    let mut other = tcp_connect_from(Ipv4Addr::new(127, 0, 31, 1), server)
        .await
        .expect("connected");
    let reply = tcp_exchange(&mut other, &query)
        .await
        .expect("another address is answered");
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    drop(held);
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_pressure_idle_connections_are_closed_first() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "[server]\ntcp_idle_timeout = \"60s\"\ntcp_max_connections = 40\n\
         tcp_max_connections_per_client = 10\n",
    )
    .await;
    let server = running.local_addrs()[0];
    let query = query_bytes(3, "web.example.org.", RecordType::A, None);
    // Four addresses fill every slot with idle connections (60 s idle timeout).
    let mut idle = Vec::new();
    for host in 1..=4 {
        for _ in 0..10 {
            idle.push(
                tcp_connect_from(Ipv4Addr::new(127, 0, 40, host), server)
                    .await
                    .unwrap(),
            );
        }
    }
    // Past half full, an idle connection may stay 200 ms: they are closed, and a client with
    // a query gets a slot (retrying, as a resolver does after a refused connection).
    let mut answered = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(mut stream) = tcp_connect_from(Ipv4Addr::new(127, 0, 41, 1), server).await {
            if let Some(reply) = tcp_exchange(&mut stream, &query).await {
                answered = Some(reply);
                break;
            }
        }
    }
    let reply = answered.expect("a query got through");
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 20, "idle connections were closed: {closed} of 40");
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_waiting_limit_gets_servfail_at_once_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    for index in 0..20 {
        upstream.add_a(
            &format!("slow{index}.example.net."),
            Ipv4Addr::new(198, 51, 100, index),
        );
    }
    upstream.set_delay(Duration::from_millis(300));
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "[server]\nmax_waiting_per_client = 5\n[cache]\nserve_stale = \"0s\"\n",
    )
    .await;
    let server = running.local_addrs()[0];
    let greedy = Ipv4Addr::new(127, 0, 50, 1);
    let socket = Arc::new(UdpSocket::bind((greedy, 0)).await.unwrap());
    for index in 0..12u16 {
        let query = query_bytes(
            100 + index,
            &format!("slow{index}.example.net."),
            RecordType::A,
            Some(1232),
        );
        socket.send_to(&query, server).await.unwrap();
    }
    // Another client's upstream-bound query is not affected.
    let other = tokio::spawn(async move {
        let query = query_bytes(200, "slow19.example.net.", RecordType::A, Some(1232));
        udp_from(
            Ipv4Addr::new(127, 0, 51, 1),
            server,
            &query,
            Duration::from_secs(5),
        )
        .await
    });
    let mut failed_at_once = 0;
    let mut answered = 0;
    let mut buffer = vec![0u8; 4096];
    while let Ok(Ok(length)) =
        tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buffer)).await
    {
        let reply = &buffer[..length];
        match rcode(reply) {
            ResponseCode::ServFail => {
                let (code, text) = extended_error(reply).expect("an Extended DNS Error");
                assert_eq!(code, 0, "Other");
                assert!(text.contains("waiting"), "{text}");
                // Sent before the upstream answered anyone: nothing was answered yet.
                assert_eq!(answered, 0, "the SERVFAILs came first, without waiting");
                failed_at_once += 1;
            }
            ResponseCode::NoError => answered += 1,
            other => panic!("unexpected {other:?}"),
        }
        if failed_at_once + answered == 12 {
            break;
        }
    }
    assert_eq!(failed_at_once, 7, "beyond 5 waiting");
    assert_eq!(
        answered, 5,
        "the 5 within the limit waited and were answered"
    );
    let reply = other.await.unwrap().expect("the other client is answered");
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_stale_answers_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    upstream.add_a_ttl("short.example.net.", Ipv4Addr::new(198, 51, 100, 1), 1);
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "",
    )
    .await;
    let server = running.local_addrs()[0];
    let ask = |name: &str, edns: Option<u16>| query_bytes(5, name, RecordType::A, edns);

    // A cached answer, then its upstream goes silent and the answer expires: stale, EDE 3.
    let reply = udp_from(
        Ipv4Addr::LOCALHOST,
        server,
        &ask("short.example.net.", Some(1232)),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(extended_error(&reply), None, "a fresh answer has no EDE");
    upstream.set_behaviour(Behaviour::Silent);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = udp_from(
        Ipv4Addr::LOCALHOST,
        server,
        &ask("short.example.net.", Some(1232)),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(extended_error(&reply).map(|e| e.0), Some(3), "Stale Answer");

    // No upstream answers: SERVFAIL with No Reachable Authority (22).
    let reply = udp_from(
        Ipv4Addr::LOCALHOST,
        server,
        &ask("gone.example.net.", Some(1232)),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    assert_eq!(extended_error(&reply).map(|e| e.0), Some(22));
    // The same without EDNS: no OPT, so no EDE (RFC 8914 §3).
    let reply = udp_from(
        Ipv4Addr::LOCALHOST,
        server,
        &ask("gone2.example.net.", None),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    assert!(Message::from_vec(&reply).unwrap().edns.is_none());

    // The upstream answers SERVFAIL: Network Error (23).
    upstream.set_behaviour(Behaviour::ServFail);
    let reply = udp_from(
        Ipv4Addr::LOCALHOST,
        server,
        &ask("broken.example.net.", Some(1232)),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(rcode(&reply), ResponseCode::ServFail);
    assert_eq!(extended_error(&reply).map(|e| e.0), Some(23));
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_are_answered_while_misses_beyond_the_limit_are_shed() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start().await;
    for index in 0..8 {
        upstream.add_a(
            &format!("slow{index}.example.net."),
            Ipv4Addr::new(198, 51, 100, index),
        );
    }
    upstream.set_delay(Duration::from_millis(300));
    let running = start(
        dir.path(),
        "192.0.2.10 web.example.org\n",
        upstream.addr,
        "[server]\nmax_in_flight = 2\n",
    )
    .await;
    let server = running.local_addrs()[0];
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let hit = query_bytes(1, "web.example.org.", RecordType::A, Some(1232));
    let mut buffer = vec![0u8; 4096];
    // The hit, twice: the second comes from the fast table.
    for _ in 0..2 {
        socket.send_to(&hit, server).await.unwrap();
        let length = tokio::time::timeout(PATIENCE, socket.recv(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rcode(&buffer[..length]), ResponseCode::NoError);
    }
    // Six misses on a slow upstream, then the hit.
    for index in 0..6u16 {
        let query = query_bytes(
            10 + index,
            &format!("slow{index}.example.net."),
            RecordType::A,
            Some(1232),
        );
        socket.send_to(&query, server).await.unwrap();
    }
    socket.send_to(&hit, server).await.unwrap();
    let mut order = Vec::new();
    while order.len() < 7 {
        let Ok(Ok(length)) =
            tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer)).await
        else {
            break;
        };
        let reply = &buffer[..length];
        let id = u16::from_be_bytes([reply[0], reply[1]]);
        if rcode(reply) == ResponseCode::ServFail {
            let (code, text) = extended_error(reply).expect("an EDE");
            assert_eq!(code, 0);
            assert!(text.contains("busy"), "{text}");
        }
        order.push((id, rcode(reply)));
    }
    println!("{order:?}");
    let shed = order
        .iter()
        .filter(|(_, rcode)| *rcode == ResponseCode::ServFail)
        .count();
    // At most two in flight: four shed, or five if the primer's task had not yet given its
    // place back (it sends its reply first).
    assert!(
        (4..=5).contains(&shed),
        "two misses in flight, the rest shed: {shed}"
    );
    assert_eq!(order.len(), 7, "every query got a reply");
    let hit_at = order
        .iter()
        .position(|(id, _)| *id == 1)
        .expect("the hit was answered");
    let first_answer = order
        .iter()
        .position(|(id, rcode)| *id != 1 && *rcode == ResponseCode::NoError)
        .expect("the misses in flight were answered");
    assert!(
        hit_at < first_answer,
        "the hit did not wait for the slow misses: {order:?}"
    );
    running.shutdown(Duration::from_secs(5)).await;
}
