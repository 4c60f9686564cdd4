//! The stream transports to upstreams (`sources::forward::stream`): TCP (RFC 7766), DNS over TLS
//! (RFC 7858) and DNS over HTTPS (RFC 8484), against an independent server: Debian's `unbound`,
//! on loopback, answering a local zone, with a certificate from a CA made at test time.
//!
//! Without unbound each test skips loudly (a failure under `HEARTH_REQUIRE_EXTERNAL=1`).

mod common;
#[path = "common/secure_upstream.rs"]
mod secure_upstream;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hearth::sources::forward::stream::{
    tls_config, ConnectionStats, StreamError, StreamKind, StreamUpstream,
};
use hickory_proto::op::Query;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Edns, Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use secure_upstream::{address_of, Certificates, Unbound, SERVER_NAME};

/// Each exchange's deadline: a bound on waiting, never a measurement.
const PATIENCE: Duration = Duration::from_secs(5);

/// Each test as a whole.
const TEST_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Transport {
    Tcp,
    Tls,
    Https,
}

/// One test's unbound and certificates (in a directory removed at the end).
struct Setup {
    unbound: Unbound,
    certificates: Certificates,
    _directory: tempfile::TempDir,
}

impl Setup {
    fn start() -> Self {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let certificates = Certificates::make(directory.path());
        let unbound = Unbound::start(directory.path(), &certificates, "");
        Self {
            unbound,
            certificates,
            _directory: directory,
        }
    }

    /// An upstream for `transport`, trusting our CA, asking for `server_name`.
    fn upstream_named(
        &self,
        transport: Transport,
        server_name: &str,
        ca: &std::path::Path,
    ) -> (StreamUpstream, Arc<ConnectionStats>) {
        let stats = Arc::new(ConnectionStats::default());
        let tls = tls_config(Some(ca)).expect("our CA file loads");
        let (address, kind) = match transport {
            Transport::Tcp => (self.unbound.tcp, StreamKind::Tcp),
            Transport::Tls => (
                self.unbound.tls,
                StreamKind::Tls {
                    server_name: server_name.to_owned(),
                },
            ),
            Transport::Https => (
                self.unbound.https,
                StreamKind::Https {
                    server_name: server_name.to_owned(),
                    path: self.unbound.path.to_owned(),
                },
            ),
        };
        let upstream = StreamUpstream::new(address, kind, Some(tls), Arc::clone(&stats));
        (upstream, stats)
    }

    fn upstream(&self, transport: Transport) -> (StreamUpstream, Arc<ConnectionStats>) {
        self.upstream_named(transport, SERVER_NAME, &self.certificates.ca)
    }
}

/// A query for `nN.test. A`, as the forwarder asks: RD=1, EDNS.
fn request(n: u16) -> DnsRequest {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(format!("n{n}.test.")).unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.edns = Some(edns);
    DnsRequest::new(message, DnsRequestOptions::default())
}

/// Asks for `nN.test.` and checks the reply is its own: same ID, same question, its address.
async fn ask(upstream: &StreamUpstream, n: u16) {
    let request = request(n);
    let id = request.metadata.id;
    let reply = upstream
        .exchange(request, Instant::now() + PATIENCE)
        .await
        .unwrap_or_else(|error| panic!("n{n}.test.: {error}"));
    assert_eq!(
        reply.metadata.id, id,
        "n{n}.test.: the reply has the query's ID"
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.queries[0].name().to_string(), format!("n{n}.test."));
    let addresses: Vec<Ipv4Addr> = reply
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(addresses, vec![address_of(n)], "n{n}.test.'s own answer");
}

/// Runs `test` under [`TEST_LIMIT`].
async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test finished within its limit");
}

// ---- each transport answers ------------------------------------------------------------------

async fn answers(transport: Transport) {
    if !secure_upstream::require_unbound() {
        return;
    }
    let setup = Setup::start();
    let (upstream, stats) = setup.upstream(transport);
    bounded(ask(&upstream, 1)).await;
    assert_eq!(stats.opened.load(Ordering::Relaxed), 1, "{transport:?}");
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0, "{transport:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_answers_a_local_name() {
    answers(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_answers_a_local_name() {
    answers(Transport::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_a_local_name() {
    answers(Transport::Https).await;
}

// ---- one connection, reused and pipelined ----------------------------------------------------

/// 100 queries one after another, then 100 at once (names with different answers): one
/// connection carries them all, and each query gets its own answer.
async fn one_connection_for_many_queries(transport: Transport) {
    if !secure_upstream::require_unbound() {
        return;
    }
    let setup = Setup::start();
    let (upstream, stats) = setup.upstream(transport);
    let upstream = Arc::new(upstream);
    bounded(async {
        for n in 0..100 {
            ask(&upstream, n).await;
        }
        let mut concurrent = Vec::new();
        for n in 100..200 {
            let upstream = Arc::clone(&upstream);
            concurrent.push(tokio::spawn(async move { ask(&upstream, n).await }));
        }
        for query in concurrent {
            query.await.expect("the query's task");
        }
    })
    .await;
    assert_eq!(
        stats.opened.load(Ordering::Relaxed),
        1,
        "{transport:?}: one connection; unbound's log:\n{}",
        setup.unbound.log()
    );
    assert_eq!(stats.reused.load(Ordering::Relaxed), 199, "{transport:?}");
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0, "{transport:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_one_connection_carries_sequential_and_pipelined_queries() {
    one_connection_for_many_queries(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_one_connection_carries_sequential_and_pipelined_queries() {
    one_connection_for_many_queries(Transport::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_one_connection_carries_sequential_and_concurrent_streams() {
    one_connection_for_many_queries(Transport::Https).await;
}

// ---- certificates that do not verify ---------------------------------------------------------

/// Asks over `transport` with `server_name` and trusting `ca`; the error, which must come well
/// before the deadline.
async fn refused(
    setup: &Setup,
    transport: Transport,
    server_name: &str,
    ca: &std::path::Path,
) -> String {
    let (upstream, stats) = setup.upstream_named(transport, server_name, ca);
    let started = Instant::now();
    let error = upstream
        .exchange(request(1), started + PATIENCE)
        .await
        .expect_err("the certificate must not verify");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{transport:?}: failed at once, not at the deadline ({:?})",
        started.elapsed()
    );
    assert!(
        matches!(error, StreamError::Tls(_)),
        "{transport:?}: {error:?}"
    );
    assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.opened.load(Ordering::Relaxed), 0);
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_a_ca_not_trusted_is_refused_and_says_so() {
    if !secure_upstream::require_unbound() {
        return;
    }
    let setup = Setup::start();
    for transport in [Transport::Tls, Transport::Https] {
        let other_ca = setup.certificates.other_ca.clone();
        let error = bounded_result(refused(&setup, transport, SERVER_NAME, &other_ca)).await;
        assert_eq!(
            error,
            "certificate of 127.0.0.1 for dns.test not trusted: its issuer is not among the \
             trusted CAs",
            "{transport:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_not_in_the_certificate_is_refused_and_says_so() {
    if !secure_upstream::require_unbound() {
        return;
    }
    let setup = Setup::start();
    for transport in [Transport::Tls, Transport::Https] {
        let ca = setup.certificates.ca.clone();
        let error = bounded_result(refused(&setup, transport, "dns.example", &ca)).await;
        assert!(
            error.starts_with(
                "certificate of 127.0.0.1 not valid for name dns.example: it is valid only for "
            ),
            "{transport:?}: {error}"
        );
        assert!(
            error.contains("dns.test"),
            "names what the certificate is for: {error}"
        );
    }
}

async fn bounded_result<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test finished within its limit")
}

// ---- a connection the server closes ----------------------------------------------------------

/// unbound is stopped and started again on the same ports: the next query opens a new
/// connection and is answered.
async fn reopened_after_the_server_restarts(transport: Transport) {
    if !secure_upstream::require_unbound() {
        return;
    }
    let mut setup = Setup::start();
    let (upstream, stats) = setup.upstream(transport);
    bounded(ask(&upstream, 1)).await;
    assert_eq!(stats.opened.load(Ordering::Relaxed), 1);
    tokio::task::block_in_place(|| setup.unbound.restart());
    bounded(ask(&upstream, 2)).await;
    assert_eq!(
        stats.opened.load(Ordering::Relaxed),
        2,
        "{transport:?}: the closed connection was replaced"
    );
    bounded(ask(&upstream, 3)).await;
    assert_eq!(
        stats.opened.load(Ordering::Relaxed),
        2,
        "{transport:?}: and kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connection_is_reopened_after_the_server_restarts() {
    reopened_after_the_server_restarts(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connection_is_reopened_after_the_server_restarts() {
    reopened_after_the_server_restarts(Transport::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_connection_is_reopened_after_the_server_restarts() {
    reopened_after_the_server_restarts(Transport::Https).await;
}

/// While it is down, a query fails at once with the reason, and counts as a failed opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_refuses_the_connection() {
    if !secure_upstream::require_unbound() {
        return;
    }
    let mut setup = Setup::start();
    for transport in [Transport::Tcp, Transport::Tls, Transport::Https] {
        let (upstream, stats) = setup.upstream(transport);
        bounded(ask(&upstream, 1)).await;
        tokio::task::block_in_place(|| setup.unbound.stop());
        let error = upstream
            .exchange(request(2), Instant::now() + PATIENCE)
            .await
            .expect_err("nothing listens");
        assert_eq!(
            error,
            StreamError::Connect("connection refused".to_owned()),
            "{transport:?}"
        );
        assert_eq!(stats.failed.load(Ordering::Relaxed), 1, "{transport:?}");
        tokio::task::block_in_place(|| setup.unbound.restart());
    }
}

/// Through the whole server, as an operator configures it: `tls://` for the default group and
/// `https://` for a zone, both checked against the test CA (`forward.tls_ca`), and a zone whose
/// server's certificate does not name it, which fails (SERVFAIL) with the reason logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_forwards_over_tls_and_https_as_configured() {
    if !secure_upstream::require_unbound() {
        return;
    }
    bounded(async {
        let setup = Setup::start();
        let unbound = &setup.unbound;
        let dir = tempfile::tempdir().unwrap();
        let hosts = common::hosts_file(dir.path(), "");
        let toml = format!(
            "[resolve]\norder = [\"files\", \"dns\"]\n[files]\npaths = [\"{hosts}\"]\n\
             [forward]\nupstreams = [\"tls://{tls}#{name}\"]\ntls_ca = \"{ca}\"\ntimeout = \"2s\"\n\
             [[forward.zone]]\nname = \"n7.test\"\nupstreams = [\"https://{name}:{https_port}{path}#127.0.0.1\"]\n\
             [[forward.zone]]\nname = \"n8.test\"\nupstreams = [\"tls://{tls}#wrong.example\"]\n",
            hosts = hosts.display(),
            tls = unbound.tls,
            name = SERVER_NAME,
            ca = setup.certificates.ca.display(),
            https_port = unbound.https.port(),
            path = unbound.path,
        );
        let server = common::start_server(&toml).await;
        for n in [1u16, 7, 1, 7] {
            let response = common::ask(server.addr, &format!("n{n}.test."), RecordType::A).await;
            assert_eq!(
                common::rdata(&response),
                [address_of(n).to_string()],
                "n{n}.test"
            );
        }
        let failed = common::ask(server.addr, "n8.test.", RecordType::A).await;
        assert_eq!(failed.response_code, ResponseCode::ServFail);
        let metrics = server.running().render_metrics("hearth");
        let opened = |label: String| {
            common::sample(
                &metrics,
                &format!("hearth_upstream_connections_opened_total{{upstream=\"{label}\"}}"),
            )
        };
        assert_eq!(
            opened(format!("tls://{}#{SERVER_NAME}", unbound.tls)),
            Some(1.0),
            "one TLS connection for the default group's queries"
        );
        assert_eq!(
            opened(format!(
                "https://{SERVER_NAME}:{}{}#127.0.0.1",
                unbound.https.port(),
                unbound.path
            )),
            Some(1.0)
        );
    })
    .await;
}
