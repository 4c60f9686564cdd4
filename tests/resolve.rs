//! The chain and the `dns` source through the real server: every order and action the
//! nsswitch semantics allow, forwarding, negative answers, failover and timeouts.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// One scenario: the order, whether the hosts file exists, how the upstream behaves, the name
/// asked, and the RCODE and addresses expected, with whether the upstream was asked.
struct Case {
    order: &'static [&'static str],
    hosts_exists: bool,
    upstream: Behaviour,
    asked: &'static str,
    response_code: ResponseCode,
    addresses: &'static [&'static str],
    upstream_asked: bool,
}

/// The hosts file has `both.example.` (also upstream) and `files-only.example.`; the upstream
/// has `both.example.` and `dns-only.example.`.
async fn run(case: &Case) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = if case.hosts_exists {
        hosts_file(
            dir.path(),
            "192.0.2.1 both.example\n192.0.2.2 files-only.example\n",
        )
    } else {
        dir.path().join("missing-hosts")
    };
    let upstream = FakeUpstream::start().await;
    upstream.add_a("both.example.", Ipv4Addr::new(198, 51, 100, 1));
    upstream.add_a("dns-only.example.", Ipv4Addr::new(198, 51, 100, 2));
    upstream.set_behaviour(case.upstream);
    let server = start_server(&config(&hosts, &[upstream.addr], case.order)).await;

    let response = ask(server.addr, case.asked, RecordType::A).await;
    let what = format!(
        "order {:?}, hosts file {}, upstream {:?}, asked {}",
        case.order,
        if case.hosts_exists {
            "present"
        } else {
            "missing"
        },
        case.upstream,
        case.asked
    );
    assert_eq!(response.response_code, case.response_code, "{what}");
    assert_eq!(rdata(&response), case.addresses, "{what}");
    assert_eq!(
        upstream.queries() > 0,
        case.upstream_asked,
        "{what}: upstream asked {:?}",
        upstream.asked()
    );
    server.stop().await;
}

#[tokio::test]
async fn orders_and_actions() {
    use Behaviour::{Answer, ServFail, Silent};
    use ResponseCode::{NXDomain, NoError, ServFail as SERVFAIL};
    let cases = [
        // files first: the file's answer wins, the upstream is not asked.
        Case {
            order: &["files", "dns"],
            hosts_exists: true,
            upstream: Answer,
            asked: "both.example.",
            response_code: NoError,
            addresses: &["192.0.2.1"],
            upstream_asked: false,
        },
        // NOTFOUND in files continues to dns.
        Case {
            order: &["files", "dns"],
            hosts_exists: true,
            upstream: Answer,
            asked: "dns-only.example.",
            response_code: NoError,
            addresses: &["198.51.100.2"],
            upstream_asked: true,
        },
        // Nobody has it: NXDOMAIN from the last source.
        Case {
            order: &["files", "dns"],
            hosts_exists: true,
            upstream: Answer,
            asked: "nowhere.example.",
            response_code: NXDomain,
            addresses: &[],
            upstream_asked: true,
        },
        // [NOTFOUND=return] stops at files.
        Case {
            order: &["files [NOTFOUND=return]", "dns"],
            hosts_exists: true,
            upstream: Answer,
            asked: "dns-only.example.",
            response_code: NXDomain,
            addresses: &[],
            upstream_asked: false,
        },
        // A missing file is UNAVAIL, which continues by default...
        Case {
            order: &["files [NOTFOUND=return]", "dns"],
            hosts_exists: false,
            upstream: Answer,
            asked: "dns-only.example.",
            response_code: NoError,
            addresses: &["198.51.100.2"],
            upstream_asked: true,
        },
        // ...and with [UNAVAIL=return] ends as SERVFAIL.
        Case {
            order: &["files [UNAVAIL=return]", "dns"],
            hosts_exists: false,
            upstream: Answer,
            asked: "dns-only.example.",
            response_code: SERVFAIL,
            addresses: &[],
            upstream_asked: false,
        },
        // dns first: its answer wins over the file's.
        Case {
            order: &["dns", "files"],
            hosts_exists: true,
            upstream: Answer,
            asked: "both.example.",
            response_code: NoError,
            addresses: &["198.51.100.1"],
            upstream_asked: true,
        },
        // `hosts: dns files`: NXDOMAIN upstream is NOTFOUND, so the file answers.
        Case {
            order: &["dns", "files"],
            hosts_exists: true,
            upstream: Answer,
            asked: "files-only.example.",
            response_code: NoError,
            addresses: &["192.0.2.2"],
            upstream_asked: true,
        },
        // ...unless [NOTFOUND=return].
        Case {
            order: &["dns [NOTFOUND=return]", "files"],
            hosts_exists: true,
            upstream: Answer,
            asked: "files-only.example.",
            response_code: NXDomain,
            addresses: &[],
            upstream_asked: true,
        },
        // A silent upstream is TRYAGAIN: continues to files...
        Case {
            order: &["dns", "files"],
            hosts_exists: true,
            upstream: Silent,
            asked: "files-only.example.",
            response_code: NoError,
            addresses: &["192.0.2.2"],
            upstream_asked: true,
        },
        // ...or, with [TRYAGAIN=return], SERVFAIL.
        Case {
            order: &["dns [TRYAGAIN=return]", "files"],
            hosts_exists: true,
            upstream: Silent,
            asked: "files-only.example.",
            response_code: SERVFAIL,
            addresses: &[],
            upstream_asked: true,
        },
        // An upstream SERVFAIL after files' NOTFOUND: the chain ends on TRYAGAIN, SERVFAIL.
        Case {
            order: &["files", "dns"],
            hosts_exists: true,
            upstream: ServFail,
            asked: "dns-only.example.",
            response_code: SERVFAIL,
            addresses: &[],
            upstream_asked: true,
        },
        // zones holds nothing yet: NOTFOUND, and the chain goes on.
        Case {
            order: &["zones", "files", "dns"],
            hosts_exists: true,
            upstream: Answer,
            asked: "files-only.example.",
            response_code: NoError,
            addresses: &["192.0.2.2"],
            upstream_asked: false,
        },
        // [SUCCESS=continue]: glibc semantics, the last source consulted decides.
        Case {
            order: &["files [SUCCESS=continue]", "dns"],
            hosts_exists: true,
            upstream: Answer,
            asked: "files-only.example.",
            response_code: NXDomain,
            addresses: &[],
            upstream_asked: true,
        },
    ];
    for case in &cases {
        run(case).await;
    }
}

#[tokio::test]
async fn forwarded_answers_pass_through() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a("www.example.net.", Ipv4Addr::new(198, 51, 100, 7));
    upstream.add_cname("alias.example.net.", "www.example.net.");
    upstream.add_cname("dangling.example.net.", "gone.example.net.");
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let server = start_server(&config(&hosts, &[upstream.addr], &["files", "dns"])).await;

    let response = ask(server.addr, "www.example.net.", RecordType::A).await;
    assert_eq!(
        answers(&response),
        ["www.example.net. 300 IN A 198.51.100.7"]
    );
    assert!(response.recursion_available, "RA is set");
    assert!(
        !response.authoritative,
        "forwarded answers are not authoritative"
    );

    // A CNAME chain comes through whole.
    let response = ask(server.addr, "alias.example.net.", RecordType::A).await;
    assert_eq!(
        answers(&response),
        [
            "alias.example.net. 300 IN CNAME www.example.net.",
            "www.example.net. 300 IN A 198.51.100.7"
        ]
    );

    // NXDOMAIN comes with the upstream's SOA, so resolvers can cache it (RFC 2308).
    let response = ask(server.addr, "missing.example.net.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert_eq!(response.authorities, [upstream_soa()]);

    // NXDOMAIN at the end of a CNAME chain keeps the chain and the SOA; its records live as
    // long as the negative answer (the SOA's minimum, 60), in the first answer as in the cache.
    let response = ask(server.addr, "dangling.example.net.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert_eq!(
        answers(&response),
        ["dangling.example.net. 60 IN CNAME gone.example.net."]
    );
    assert_eq!(response.authorities, [upstream_soa()]);

    // NODATA is SUCCESS and keeps its SOA.
    let response = ask(server.addr, "www.example.net.", RecordType::AAAA).await;
    assert_eq!(response.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert_eq!(response.authorities, [upstream_soa()]);
    server.stop().await;
}

#[tokio::test]
async fn dead_upstream_gives_servfail_within_the_timeout() {
    let (_socket, dead) = dead_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let server = start_server(&config(&hosts, &[dead], &["files", "dns"])).await;
    // The client waits 5 s; the server's 500 ms timeout must answer well before that.
    let response = ask(server.addr, "anything.example.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::ServFail);
    server.stop().await;
}

#[tokio::test]
async fn failover_to_the_next_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    for bad in [Behaviour::Silent, Behaviour::ServFail, Behaviour::Refused] {
        let first = FakeUpstream::start().await;
        first.set_behaviour(bad);
        let second = FakeUpstream::start().await;
        second.add_a("www.example.net.", Ipv4Addr::new(198, 51, 100, 9));
        let server = start_server(&config(
            &hosts,
            &[first.addr, second.addr],
            &["files", "dns"],
        ))
        .await;
        let response = ask(server.addr, "www.example.net.", RecordType::A).await;
        assert_eq!(rdata(&response), ["198.51.100.9"], "first upstream {bad:?}");
        assert_eq!(
            (first.queries(), second.queries()),
            (1, 1),
            "first upstream {bad:?}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn round_robin_spreads_queries() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let first = FakeUpstream::start().await;
    let second = FakeUpstream::start().await;
    for upstream in [&first, &second] {
        upstream.add_a("www.example.net.", Ipv4Addr::new(198, 51, 100, 9));
    }
    let toml = config(&hosts, &[first.addr, second.addr], &["dns"]) + "policy = \"round_robin\"\n";
    let server = start_server(&toml).await;
    // Ten different names: the same one would be answered from the cache after the first.
    for i in 0..10 {
        ask(server.addr, &format!("host{i}.example.net."), RecordType::A).await;
    }
    assert_eq!((first.queries(), second.queries()), (5, 5));
    server.stop().await;
}

#[tokio::test]
async fn truncated_upstream_reply_is_asked_again_over_tcp() {
    let upstream = FakeUpstream::start().await;
    // 40 A records: over 512 bytes, so the upstream truncates over UDP.
    for i in 0..40 {
        upstream.add_a("big.example.net.", Ipv4Addr::new(198, 51, 100, i));
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let server = start_server(&config(&hosts, &[upstream.addr], &["dns"])).await;
    // Over TCP to Hearth, so Hearth's own reply is not truncated either.
    let mut client = tcp_client(server.addr).await;
    use hickory_net::client::ClientHandle;
    let response = client
        .query(
            name("big.example.net."),
            hickory_proto::rr::DNSClass::IN,
            RecordType::A,
        )
        .await
        .unwrap();
    assert_eq!(response.answers.len(), 40);
    assert!(!response.truncation);
    assert_eq!((upstream.udp_queries(), upstream.tcp_queries()), (1, 1));
    server.stop().await;
}

#[tokio::test]
async fn slow_upstream_within_the_timeout_is_waited_for() {
    let upstream = FakeUpstream::start().await;
    upstream.add_a("slow.example.net.", Ipv4Addr::new(198, 51, 100, 3));
    upstream.set_delay(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let server = start_server(&config(&hosts, &[upstream.addr], &["dns"])).await;
    let response = ask(server.addr, "slow.example.net.", RecordType::A).await;
    assert_eq!(rdata(&response), ["198.51.100.3"]);
    server.stop().await;
}
