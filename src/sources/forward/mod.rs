//! `dns`: forwards questions to upstream resolvers.
//!
//! Each query tries the upstreams in the policy's order, each at most once and for at most
//! `timeout`, so a query gives up within `timeout × upstreams`. The exchange itself is
//! hickory-net's `UdpClientStream`, which already does what RFC 5452 asks of a forwarder: a fresh
//! socket on a random port and a random ID for every query, and a reply with the wrong source,
//! ID or question is ignored rather than accepted. A truncated reply (TC=1) is asked again over
//! TCP (RFC 1035 §4.2.1, RFC 7766 §5).
//!
//! How upstream replies map onto the chain's statuses:
//!
//! | upstream said            | status   | why                                                  |
//! |--------------------------|----------|------------------------------------------------------|
//! | NOERROR (data or NODATA) | SUCCESS  | the question is answered                             |
//! | NXDOMAIN                 | NOTFOUND | so `order = ["dns", "files"]` falls back to files    |
//! | SERVFAIL, or no answer   | TRYAGAIN | RFC 2308 §7: a server failure is a temporary state   |
//! | REFUSED, NOTIMP, FORMERR | UNAVAIL  | that upstream will not answer this; try the next     |
//!
//! SERVFAIL and the others make the next upstream be tried first; the status is the chain's
//! only when every upstream failed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsExchange, DnsHandle, FirstAnswer};
use hickory_proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Edns, Message, Query, ResponseCode,
};
use rand::seq::SliceRandom;

use crate::chain::{Answer, Outcome, Question, Source, SourceError, SourceKind};
use crate::config::{ForwardConfig, Policy};

/// The EDNS payload size we advertise upstream: the DNS Flag Day 2020 value, which avoids IP
/// fragmentation on almost every path (RFC 9715).
const UPSTREAM_PAYLOAD: u16 = 1232;

/// One upstream resolver.
struct Upstream {
    address: SocketAddr,
    /// hickory-net's UDP exchange; it opens a new random-port socket per query, so one exchange
    /// serves all concurrent queries to this upstream.
    udp: DnsExchange<TokioRuntimeProvider>,
}

/// The `dns` source.
pub struct Forwarder {
    upstreams: Vec<Upstream>,
    policy: Policy,
    timeout: Duration,
    /// Where the next round-robin query starts.
    next: AtomicUsize,
    /// hickory-net keeps the background tasks of its exchanges in the provider: it must live
    /// as long as the exchanges do, or their tasks are aborted.
    provider: TokioRuntimeProvider,
}

/// How one attempt at one upstream ended, when it did not give an answer to pass on.
enum Failure {
    /// TRYAGAIN: no reply in time, or SERVFAIL.
    Temporary(SourceError),
    /// UNAVAIL: refused, not implemented, or could not be sent.
    Permanent(SourceError),
}

impl Forwarder {
    /// Builds the forwarder. Must run inside the tokio runtime: each exchange spawns its
    /// background task.
    pub fn new(config: &ForwardConfig) -> Self {
        let provider = TokioRuntimeProvider::default();
        let upstreams = config
            .upstreams
            .iter()
            .map(|address| Upstream {
                address: *address,
                udp: UdpClientStream::builder(*address, provider.clone())
                    .with_timeout(Some(config.timeout))
                    // One send per attempt: failover to the next upstream is our retry.
                    .with_max_retries(1)
                    .exchange(),
            })
            .collect();
        Self {
            upstreams,
            policy: config.policy,
            timeout: config.timeout,
            next: AtomicUsize::new(0),
            provider,
        }
    }

    /// The indexes of the upstreams, in the order this query tries them.
    fn attempt_order(&self) -> Vec<usize> {
        let count = self.upstreams.len();
        let mut order: Vec<usize> = (0..count).collect();
        match self.policy {
            Policy::Sequential => {}
            Policy::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed) % count.max(1);
                order.rotate_left(start);
            }
            Policy::Random => order.shuffle(&mut rand::rng()),
        }
        order
    }

    /// One attempt at one upstream: UDP, then TCP if the UDP reply was truncated.
    async fn ask(&self, upstream: &Upstream, question: &Question) -> Result<DnsResponse, Failure> {
        let timed_out = || {
            Failure::Temporary(SourceError::UpstreamTimeout {
                upstream: upstream.address,
                timeout: self.timeout,
            })
        };
        let unreachable = |error: hickory_net::NetError| {
            Failure::Permanent(SourceError::UpstreamUnreachable {
                upstream: upstream.address,
                reason: error.to_string(),
            })
        };
        let request = request_for(question);
        // One deadline for the whole attempt, TCP retry included, so a query is bounded by
        // `timeout × upstreams` as documented.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response =
            tokio::time::timeout_at(deadline, upstream.udp.send(request.clone()).first_answer())
                .await
                .map_err(|_| timed_out())?
                .map_err(|error| match error {
                    hickory_net::NetError::Timeout => timed_out(),
                    other => unreachable(other),
                })?;
        if !response.truncation {
            return Ok(response);
        }
        let over_tcp = async {
            let exchange = TcpClientStream::exchange(
                upstream.address,
                None,
                self.timeout,
                None,
                self.provider.clone(),
            )
            .await?;
            exchange.send(request).first_answer().await
        };
        tokio::time::timeout_at(deadline, over_tcp)
            .await
            .map_err(|_| timed_out())?
            .map_err(unreachable)
    }
}

/// The query sent upstream: the client's question with RD=1, a fresh random ID (set by
/// `Message::query`), and EDNS with the client's DO and CD bits.
fn request_for(question: &Question) -> DnsRequest {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = question.checking_disabled;
    let mut query = Query::query(question.name.clone(), question.record_type);
    query.set_query_class(question.class);
    message.queries.push(query);
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD)
        .set_dnssec_ok(question.dnssec_ok);
    message.edns = Some(edns);

    let mut options = DnsRequestOptions::default();
    options.recursion_desired = true;
    options.use_edns = true;
    options.edns_payload_len = UPSTREAM_PAYLOAD;
    options.edns_set_dnssec_ok = question.dnssec_ok;
    DnsRequest::new(message, options)
}

/// The sections of an upstream reply, passed on as they came: answers (CNAME chains
/// included), the authority section (the SOA of a negative answer), additionals. The OPT record
/// is not among them (hickory keeps it apart): RFC 6891 §6.1.1, OPT "MUST NOT be cached,
/// forwarded".
fn answer_from(response: DnsResponse) -> Answer {
    let message = response.into_message();
    Answer {
        response_code: message.metadata.response_code,
        authoritative: false,
        authentic_data: message.metadata.authentic_data,
        answers: message.answers,
        authorities: message.authorities,
        additionals: message.additionals,
        chase: None,
    }
}

#[async_trait]
impl Source for Forwarder {
    fn kind(&self) -> SourceKind {
        SourceKind::Dns
    }

    async fn lookup(&self, question: &Question) -> Outcome {
        let mut temporary = None;
        let mut permanent = None;
        for index in self.attempt_order() {
            let upstream = &self.upstreams[index];
            match self.ask(upstream, question).await {
                Ok(response) => match response.response_code {
                    ResponseCode::NoError => return Outcome::Success(answer_from(response)),
                    ResponseCode::NXDomain => return Outcome::NotFound(answer_from(response)),
                    response_code => {
                        let error = SourceError::UpstreamResponse {
                            upstream: upstream.address,
                            response_code,
                        };
                        tracing::debug!(name = %question.name, %error, "trying the next upstream");
                        if response_code == ResponseCode::ServFail {
                            temporary = Some(error);
                        } else {
                            permanent = Some(error);
                        }
                    }
                },
                Err(Failure::Temporary(error)) => {
                    tracing::debug!(name = %question.name, %error, "trying the next upstream");
                    temporary = Some(error);
                }
                Err(Failure::Permanent(error)) => {
                    tracing::debug!(name = %question.name, %error, "trying the next upstream");
                    permanent = Some(error);
                }
            }
        }
        match (temporary, permanent) {
            (Some(error), _) => Outcome::TryAgain(error),
            (None, Some(error)) => Outcome::Unavail(error),
            (None, None) => Outcome::Unavail(SourceError::NoUpstreams),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamsFrom;

    fn forwarder(policy: Policy, count: usize) -> Forwarder {
        let config = ForwardConfig {
            upstreams: (0..count)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)))
                .collect(),
            upstreams_from: UpstreamsFrom::Config,
            policy,
            timeout: Duration::from_millis(100),
        };
        Forwarder::new(&config)
    }

    #[tokio::test]
    async fn policies_order_the_upstreams() {
        let sequential = forwarder(Policy::Sequential, 3);
        assert_eq!(sequential.attempt_order(), [0, 1, 2]);
        assert_eq!(sequential.attempt_order(), [0, 1, 2]);

        let round_robin = forwarder(Policy::RoundRobin, 3);
        let starts: Vec<usize> = (0..4).map(|_| round_robin.attempt_order()[0]).collect();
        assert_eq!(starts, [0, 1, 2, 0]);
        assert_eq!(round_robin.attempt_order(), [1, 2, 0]);

        let random = forwarder(Policy::Random, 3);
        let mut first_seen = [false; 3];
        for _ in 0..200 {
            let mut order = random.attempt_order();
            first_seen[order[0]] = true;
            order.sort();
            assert_eq!(order, [0, 1, 2], "every upstream exactly once");
        }
        assert_eq!(first_seen, [true; 3]);
    }

    #[test]
    fn request_carries_rd_do_cd_and_a_fresh_id() {
        let mut question = Question::new(
            hickory_proto::rr::Name::from_ascii("Example.COM.").unwrap(),
            hickory_proto::rr::RecordType::MX,
        );
        question.dnssec_ok = true;
        question.checking_disabled = true;
        let first = request_for(&question);
        let (message, _) = first.into_parts();
        assert!(message.metadata.recursion_desired);
        assert!(message.metadata.checking_disabled);
        assert!(message.edns.as_ref().unwrap().flags().dnssec_ok);
        assert_eq!(message.queries[0].name().to_string(), "Example.COM.");
        let ids: std::collections::HashSet<u16> = (0..50)
            .map(|_| request_for(&question).into_parts().0.metadata.id)
            .collect();
        assert!(ids.len() > 40, "IDs are random: {ids:?}");
    }
}
