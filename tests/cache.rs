//! The answer cache and resilient forwarding through the real server, against a local upstream
//! that counts what it is asked and misbehaves on demand: caching, coalescing, serve-stale,
//! failover and health, the concurrency limit, loop detection, and that no forged answer is
//! ever served or cached.

mod common;

use hearth::sources::forward::Forwarder;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// A server with an empty hosts file, forwarding to `upstreams`; `extra` adds keys to
/// `[forward]` and may add tables after it.
async fn forwarding_server(
    upstreams: &[std::net::SocketAddr],
    extra: &str,
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let toml = config(&hosts, upstreams, &["files", "dns"]) + extra;
    (start_server(&toml).await, dir)
}

#[tokio::test]
async fn many_client_queries_one_upstream_query_and_ttls_count_down() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a("cached.example.net.", Ipv4Addr::new(198, 51, 100, 1));
    let (server, _dir) = forwarding_server(&[upstream.addr], "").await;
    let first = ask(server.addr, "cached.example.net.", RecordType::A).await;
    assert_eq!(
        answers(&first),
        ["cached.example.net. 300 IN A 198.51.100.1"]
    );
    for _ in 0..20 {
        let again = ask(server.addr, "Cached.Example.Net.", RecordType::A).await;
        assert_eq!(rdata(&again), ["198.51.100.1"]);
    }
    assert_eq!(
        upstream.queries(),
        1,
        "one upstream query for 21 client queries"
    );

    // The TTL counts down as the entry ages.
    let addr = server.addr;
    assert!(
        eventually(|| async move {
            let ttl = ask(addr, "cached.example.net.", RecordType::A)
                .await
                .answers[0]
                .ttl;
            ttl < 300
        })
        .await,
        "a later answer shows a smaller TTL"
    );
    // Negative answers are cached too, with the SOA's negative TTL.
    for _ in 0..3 {
        let response = ask(server.addr, "missing.example.net.", RecordType::A).await;
        assert_eq!(response.response_code, ResponseCode::NXDomain);
        assert_eq!(response.authorities.len(), 1);
    }
    assert_eq!(upstream.queries(), 2);
    // Hits are answered by the cache, or by the UDP fast path from the cache's encoded answer.
    let running = server.running();
    let cache_hits = running
        .source::<Forwarder>()
        .expect("the dns source")
        .cache_stats()
        .unwrap()
        .hits
        .load(Ordering::Relaxed);
    let fast_hits = running.fast_stats().hits.load(Ordering::Relaxed);
    assert!(
        cache_hits + fast_hits >= 22,
        "{cache_hits} cache hits, {fast_hits} fast hits"
    );
    assert!(
        fast_hits >= 15,
        "the fast path answered repeats: {fast_hits}"
    );
}

#[tokio::test]
async fn identical_questions_in_flight_are_asked_once() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a("slow.example.net.", Ipv4Addr::new(198, 51, 100, 2));
    upstream.set_delay(Duration::from_millis(300));
    let (server, _dir) = forwarding_server(&[upstream.addr], "").await;
    let asks = (0..20).map(|_| ask(server.addr, "slow.example.net.", RecordType::A));
    let responses = futures_util::future::join_all(asks).await;
    for response in &responses {
        assert_eq!(rdata(response), ["198.51.100.2"]);
    }
    assert_eq!(
        upstream.queries(),
        1,
        "20 identical questions at once, one upstream query"
    );
    let coalesced = server
        .running()
        .source::<Forwarder>()
        .expect("the dns source")
        .cache_stats()
        .unwrap()
        .coalesced
        .load(Ordering::Relaxed);
    assert_eq!(coalesced, 19);
}

#[tokio::test]
async fn expired_answers_are_served_stale_during_an_outage() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a_ttl("flaky.example.net.", Ipv4Addr::new(198, 51, 100, 3), 1);
    let (server, _dir) = forwarding_server(&[upstream.addr], "").await;
    assert_eq!(
        rdata(&ask(server.addr, "flaky.example.net.", RecordType::A).await),
        ["198.51.100.3"]
    );

    // The upstream goes silent and the entry expires (TTL 1).
    upstream.set_behaviour(Behaviour::Silent);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = ask(server.addr, "flaky.example.net.", RecordType::A).await;
    assert_eq!(stale.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&stale),
        ["flaky.example.net. 30 IN A 198.51.100.3"],
        "RFC 8767: TTL 30"
    );
    let forwarder = server
        .running()
        .source::<Forwarder>()
        .expect("the dns source");
    let stats = forwarder.cache_stats().unwrap();
    assert!(stats.stale_answers.load(Ordering::Relaxed) >= 1);

    // The upstream comes back: once RFC 8767 §5's failure recheck timer (30 s) has run out,
    // a fresh answer replaces the stale one; until then the stale answer comes at once.
    upstream.set_behaviour(Behaviour::Answer);
    let addr = server.addr;
    assert!(
        eventually_within(Duration::from_secs(45), || async move {
            ask(addr, "flaky.example.net.", RecordType::A).await.answers[0].ttl != 30
        })
        .await,
        "refreshed once the upstream answers"
    );
}

#[tokio::test]
async fn a_failing_upstream_is_marked_down_skipped_and_probed_back() {
    let first = FakeUpstream::start().await;
    first.set_behaviour(Behaviour::Silent);
    let second = FakeUpstream::start().await;
    for i in 0..10 {
        second.add_a(
            &format!("h{i}.example.net."),
            Ipv4Addr::new(198, 51, 100, i),
        );
    }
    let (server, _dir) =
        forwarding_server(&[first.addr, second.addr], "health_check = \"100ms\"\n").await;
    for i in 0..10 {
        let response = ask(server.addr, &format!("h{i}.example.net."), RecordType::A).await;
        assert_eq!(rdata(&response), [format!("198.51.100.{i}")], "failover");
    }
    assert!(
        first.queries() <= 2,
        "down after two failures, then skipped: asked {}",
        first.queries()
    );
    assert_eq!(second.queries(), 10);
    let forwarder = server
        .running()
        .source::<Forwarder>()
        .expect("the dns source");
    let stats = forwarder.upstream_stats();
    assert!(stats[0].1.is_down());

    // It answers again: the health check (`. NS`) marks it up, and it is first again.
    first.set_behaviour(Behaviour::Answer);
    first.add_a("back.example.net.", Ipv4Addr::new(198, 51, 100, 99));
    let running = server.running();
    assert!(
        eventually(|| async {
            !running
                .source::<Forwarder>()
                .expect("the dns source")
                .upstream_stats()[0]
                .1
                .is_down()
        })
        .await,
        "probed back up"
    );
    assert!(first.probes() >= 1);
    assert_eq!(
        rdata(&ask(server.addr, "back.example.net.", RecordType::A).await),
        ["198.51.100.99"]
    );
}

#[tokio::test]
async fn forged_replies_are_never_served_nor_cached() {
    for forgery in [
        Behaviour::WrongId,
        Behaviour::WrongQuestion,
        Behaviour::Garbage,
    ] {
        let upstream = FakeUpstream::start().await;
        upstream.add_a("target.example.net.", Ipv4Addr::new(198, 51, 100, 7));
        upstream.set_behaviour(forgery);
        let (server, _dir) = forwarding_server(&[upstream.addr], "").await;
        let response = ask(server.addr, "target.example.net.", RecordType::A).await;
        assert_eq!(
            response.response_code,
            ResponseCode::ServFail,
            "{forgery:?}: ignored, so no answer"
        );
        assert!(!rdata(&response).contains(&POISON.to_string()));
        // Once the upstream answers genuinely (and the failure cache's second is over), the
        // genuine answer is served: nothing was cached.
        upstream.set_behaviour(Behaviour::Answer);
        let addr = server.addr;
        assert!(
            eventually(|| async move {
                rdata(&ask(addr, "target.example.net.", RecordType::A).await) == ["198.51.100.7"]
            })
            .await,
            "{forgery:?}"
        );
        assert!(
            !rdata(&ask(server.addr, "poison.example.", RecordType::A).await)
                .contains(&POISON.to_string()),
            "{forgery:?}: records of another question are not cached"
        );
    }

    // A forged reply racing the genuine one loses.
    let upstream = FakeUpstream::start().await;
    upstream.add_a("raced.example.net.", Ipv4Addr::new(198, 51, 100, 8));
    upstream.set_behaviour(Behaviour::SpoofThenAnswer);
    let (server, _dir) = forwarding_server(&[upstream.addr], "").await;
    for _ in 0..3 {
        assert_eq!(
            rdata(&ask(server.addr, "raced.example.net.", RecordType::A).await),
            ["198.51.100.8"]
        );
    }
}

#[tokio::test]
async fn beyond_max_concurrent_queries_are_refused() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(Duration::from_millis(400));
    for i in 0..4 {
        upstream.add_a(
            &format!("c{i}.example.net."),
            Ipv4Addr::new(198, 51, 100, i),
        );
    }
    let (server, _dir) = forwarding_server(&[upstream.addr], "max_concurrent = 2\n").await;
    let names: Vec<String> = (0..4).map(|i| format!("c{i}.example.net.")).collect();
    let asks = names
        .iter()
        .map(|name| ask(server.addr, name, RecordType::A));
    let codes: Vec<ResponseCode> = futures_util::future::join_all(asks)
        .await
        .iter()
        .map(|r| r.response_code)
        .collect();
    let refused = codes
        .iter()
        .filter(|c| **c == ResponseCode::Refused)
        .count();
    let answered = codes
        .iter()
        .filter(|c| **c == ResponseCode::NoError)
        .count();
    assert_eq!((answered, refused), (2, 2), "{codes:?}");
}

#[tokio::test]
async fn cache_capacity_bounds_memory() {
    let upstream = FakeUpstream::start().await;
    let (server, _dir) = forwarding_server(&[upstream.addr], "[cache]\ncapacity = 50\n").await;
    for i in 0..300 {
        ask(
            server.addr,
            &format!("flood{i}.example.net."),
            RecordType::A,
        )
        .await;
    }
    let forwarder = server
        .running()
        .source::<Forwarder>()
        .expect("the dns source");
    assert!(
        forwarder.cache_len() <= 55,
        "{} entries for a capacity of 50",
        forwarder.cache_len()
    );
    assert!(
        forwarder
            .cache_stats()
            .unwrap()
            .evictions
            .load(Ordering::Relaxed)
            >= 245
    );
}

#[tokio::test]
async fn a_forwarding_loop_disables_the_upstream_without_stopping_the_server() {
    // No loop first: third -> second -> first -> real, a chain of forwarders, is not a loop.
    let real = FakeUpstream::start().await;
    real.add_a("www.example.net.", Ipv4Addr::new(198, 51, 100, 10));
    let first = start_server(&format!(
        "[files]\npaths = []\n[forward]\nupstreams = [\"{}\"]\ntimeout = \"300ms\"\n",
        real.addr
    ))
    .await;
    let second = start_server(&format!(
        "[files]\npaths = []\n[forward]\nupstreams = [\"{}\", \"{}\"]\ntimeout = \"300ms\"\n",
        first.addr, real.addr
    ))
    .await;
    let third = start_server(&format!(
        "[files]\npaths = []\n[forward]\nupstreams = [\"{}\", \"{}\"]\ntimeout = \"300ms\"\n",
        second.addr, real.addr
    ))
    .await;
    let no_loop = third.running();
    let response = ask(third.addr, "www.example.net.", RecordType::A).await;
    assert_eq!(rdata(&response), ["198.51.100.10"]);
    assert!(!no_loop
        .source::<Forwarder>()
        .expect("the dns source")
        .upstream_stats()[0]
        .1
        .is_looping());

    // A real loop: two servers that forward to each other (each also has the real upstream).
    let [port_a, port_b] = [free_port(), free_port()];
    let start_at = |port: u16, upstream: u16| {
        let toml = format!(
            "[files]\npaths = []\n[forward]\nupstreams = [\"127.0.0.1:{upstream}\", \"{}\"]\ntimeout = \"300ms\"\n",
            real.addr
        );
        let overrides = hearth::config::Overrides {
            listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))],
        };
        let config = hearth::config::Config::from_toml(&toml, "loop.toml", &overrides).unwrap();
        async move { hearth::app::start(&config).await.expect("starts") }
    };
    let a = start_at(port_a, port_b).await;
    let b = start_at(port_b, port_a).await;
    // B's probe goes to A, which forwards it to B: B sees its own probe come back. Unless A,
    // whose own probe at its start found B not listening yet, still has B marked down when
    // B's probe arrives and forwards it to the real upstream instead: then A's health check
    // brings B back, A probes B again (`send_loop_probe` on recovery), and A sees its own
    // probe come back through B. Which of the two notices is a matter of timing (a loaded CI
    // machine saw the second); one of them must.
    let looping = |server: &hearth::app::Running| {
        server
            .source::<Forwarder>()
            .expect("the dns source")
            .upstream_stats()[0]
            .1
            .is_looping()
    };
    assert!(
        eventually(|| async { looping(&a) || looping(&b) }).await,
        "the loop between A and B is detected by one of them"
    );
    // Both keep serving, through the real upstream.
    for port in [port_a, port_b] {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(
            rdata(&ask(addr, "www.example.net.", RecordType::A).await),
            ["198.51.100.10"]
        );
    }
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
}

/// A port free on 127.0.0.1 for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Issue 14: the first answer (the miss) is clamped as its cached copies are, positive by
/// `max_ttl` and negative by `negative_max_ttl`.
#[tokio::test]
async fn the_first_answer_is_clamped_like_the_cached_ones() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a_ttl("long.example.net.", Ipv4Addr::new(198, 51, 100, 9), 86_400);
    let (server, _dir) = forwarding_server(
        &[upstream.addr],
        "[cache]\nmax_ttl = \"1h\"\nnegative_max_ttl = \"30s\"\n",
    )
    .await;
    let first = ask(server.addr, "long.example.net.", RecordType::A).await;
    assert_eq!(first.answers[0].ttl, 3600, "the miss, clamped");
    let again = ask(server.addr, "long.example.net.", RecordType::A).await;
    assert!(again.answers[0].ttl <= 3600, "the cached copy");
    let missing = ask(server.addr, "missing.example.net.", RecordType::A).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    let soa_ttl = missing.authorities[0].ttl;
    assert_eq!(soa_ttl, 30, "negative_max_ttl clamps the first NXDOMAIN");
    assert_eq!(upstream.queries(), 2);
}
