//! One upstream resolver: the exchange, its health and its counters.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::time::Instant;

use super::stream::{ConnectionStats, StreamError, StreamKind, StreamUpstream};
use super::udp::{ExchangeError, SocketPool, UdpUpstream, UPSTREAM_PAYLOAD};
use super::ForwardError;
use super::MAX_FAILS;
use crate::chain::{Answer, Question};
use crate::config::values::{UpstreamSpec, UpstreamTransport};
use crate::metrics::DurationsByRcode;

/// How an attempt at one upstream ended, when it did not give an answer to pass on.
pub enum Failure {
    /// TRYAGAIN: no reply in time.
    Temporary(ForwardError),
    /// UNAVAIL: could not be sent, or the connection failed.
    Permanent(ForwardError),
}

/// Counters and health of one upstream, read by the metrics.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    pub requests: AtomicU64,
    /// Attempts that got no reply (timeouts, unreachable).
    pub failures: AtomicU64,
    /// Sum of the latencies of the attempts that got a reply, in microseconds.
    pub latency_micros: AtomicU64,
    pub replies: AtomicU64,
    /// UDP datagrams from the upstream's address and port whose ID is that of no query in
    /// flight: a reply that came after its query gave up, or a forgery that guessed the port
    /// but not the ID (RFC 5452 §9.1). Dropped.
    pub unmatched_replies: AtomicU64,
    /// UDP datagrams with the ID of a query in flight that are not a reply to it: another
    /// question, not a response, or undecodable (RFC 5452 §9.1). Dropped; the query keeps
    /// waiting for its genuine reply. Many of these mean someone is guessing.
    pub mismatched_replies: AtomicU64,
    /// Round trips of the queries that got a reply, by its RCODE (health checks not
    /// included): the upstream latency histogram.
    pub durations: DurationsByRcode,
    /// Health checks (`. IN NS` to an upstream marked down) that got no reply.
    pub healthcheck_failures: AtomicU64,
    consecutive_failures: AtomicU32,
    down: AtomicBool,
    looping: AtomicBool,
}
impl UpstreamStats {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn is_looping(&self) -> bool {
        self.looping.load(Ordering::Relaxed)
    }

    /// Marks the upstream as leading back to us; returns whether it was not marked before.
    pub fn mark_looping(&self) -> bool {
        !self.looping.swap(true, Ordering::Relaxed)
    }

    /// A reply came back: the upstream is alive, whatever its RCODE.
    pub fn record_success(&self, latency: Duration) {
        self.replies.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.down.store(false, Ordering::Relaxed);
    }

    /// No reply; returns whether this failure marked the upstream down.
    pub fn record_failure(&self) -> bool {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let in_a_row = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        in_a_row >= MAX_FAILS && !self.down.swap(true, Ordering::Relaxed)
    }
}

/// One upstream resolver.
pub struct Upstream {
    /// As configured: where, and over what.
    pub spec: UpstreamSpec,
    transport: Transport,
    /// Counters, shared with the UDP exchanges, which count the replies they drop.
    pub stats: Arc<UpstreamStats>,
    /// Stream connections opened, reused and failed (TCP, TLS, HTTPS upstreams).
    pub connections: Arc<ConnectionStats>,
}

/// How an upstream is asked.
enum Transport {
    /// Plain DNS: a UDP socket of the forwarder's pool per query, lent to it alone (see
    /// `udp`), and a TCP connection of its own for a truncated reply.
    Plain(UdpUpstream),
    /// One persistent connection, pipelined (`stream`): TCP, TLS or HTTPS.
    Stream(StreamUpstream),
}

impl Upstream {
    /// Must run inside the tokio runtime. `tls`: the
    /// client configuration for TLS and HTTPS upstreams; without one they cannot connect, and
    /// each attempt fails saying so. `udp_sockets`: where a plain upstream's queries take
    /// their sockets.
    pub fn new(
        spec: &UpstreamSpec,
        tls: Option<Arc<rustls::ClientConfig>>,
        udp_sockets: &Arc<SocketPool>,
    ) -> Self {
        let stats = Arc::new(UpstreamStats::default());
        let connections = Arc::new(ConnectionStats::default());
        let kind = match &spec.transport {
            UpstreamTransport::Udp => None,
            UpstreamTransport::Tcp => Some(StreamKind::Tcp),
            UpstreamTransport::Tls { server_name } => Some(StreamKind::Tls {
                server_name: server_name.clone(),
            }),
            UpstreamTransport::Https { server_name, path } => Some(StreamKind::Https {
                server_name: server_name.clone(),
                path: path.clone(),
            }),
        };
        let transport = match kind {
            None => Transport::Plain(UdpUpstream::new(
                spec.address,
                Arc::clone(&stats),
                Arc::clone(udp_sockets),
            )),
            Some(kind) => Transport::Stream(StreamUpstream::new(
                spec.address,
                kind,
                tls,
                Arc::clone(&connections),
            )),
        };
        Self {
            spec: spec.clone(),
            transport,
            stats,
            connections,
        }
    }

    /// One attempt: UDP, then TCP if the UDP reply was truncated, all within `timeout`.
    pub async fn ask(
        &self,
        question: &Question,
        timeout: Duration,
        provider: &TokioRuntimeProvider,
    ) -> Result<Message, Failure> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self
            .exchange(question, started + timeout, timeout, provider)
            .await;
        match &result {
            Ok(reply) => {
                let elapsed = started.elapsed();
                self.stats.record_success(elapsed);
                let response_code = u16::from(reply.metadata.response_code);
                self.stats.durations.observe(response_code, elapsed);
            }
            Err(_) => {
                if self.stats.record_failure() {
                    let reason = match &result {
                        Err(Failure::Temporary(error) | Failure::Permanent(error)) => {
                            error.to_string()
                        }
                        Ok(_) => String::new(),
                    };
                    tracing::warn!(upstream = %self.spec, %reason, "upstream marked down after {MAX_FAILS} failures in a row; probing it until it answers");
                }
            }
        }
        result
    }

    async fn exchange(
        &self,
        question: &Question,
        deadline: Instant,
        timeout: Duration,
        provider: &TokioRuntimeProvider,
    ) -> Result<Message, Failure> {
        let address = self.spec.address;
        let timed_out = || {
            Failure::Temporary(ForwardError::UpstreamTimeout {
                upstream: address,
                timeout,
            })
        };
        let unreachable = |reason: String| {
            Failure::Permanent(ForwardError::UpstreamUnreachable {
                upstream: address,
                reason,
            })
        };
        let udp = match &self.transport {
            Transport::Plain(udp) => udp,
            Transport::Stream(stream) => {
                return stream
                    .exchange(request_for(question), deadline)
                    .await
                    .map_err(|error| match error {
                        StreamError::TimedOut => timed_out(),
                        // Temporary, as a timeout is, with the slow step named.
                        StreamError::SetupTimedOut(reason) => {
                            Failure::Temporary(ForwardError::UpstreamUnreachable {
                                upstream: address,
                                reason,
                            })
                        }
                        other => unreachable(other.to_string()),
                    });
            }
        };
        let response = udp
            .exchange(question, deadline)
            .await
            .map_err(|error| match error {
                ExchangeError::TimedOut => timed_out(),
                ExchangeError::Io(error) => unreachable(error.to_string()),
            })?;
        if !response.metadata.truncation {
            return Ok(response);
        }
        // RFC 7766 §5: a truncated UDP reply is asked again over TCP. Rare enough that a
        // connection per query (hickory-net's) is fine.
        self.connections.opened.fetch_add(1, Ordering::Relaxed);
        let over_tcp = async {
            let exchange =
                TcpClientStream::exchange(address, None, timeout, None, provider.clone()).await?;
            exchange.send(request_for(question)).first_answer().await
        };
        let result = tokio::time::timeout_at(deadline, over_tcp)
            .await
            .map_err(|_| timed_out())
            .and_then(|reply| {
                reply
                    .map(DnsResponse::into_message)
                    .map_err(|error| unreachable(error.to_string()))
            });
        if result.is_err() {
            self.connections.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Whether the upstream is reached over a channel that authenticates it (TLS, HTTPS): the
    /// only kind whose AD bit `[dnssec] trust_upstream_ad` lets through.
    pub fn is_authenticated(&self) -> bool {
        matches!(
            self.spec.transport,
            UpstreamTransport::Tls { .. } | UpstreamTransport::Https { .. }
        )
    }

    /// A health check: `. IN NS`, as CoreDNS asks. Any reply marks the upstream up; returns
    /// whether one came.
    pub async fn probe(&self, timeout: Duration, provider: &TokioRuntimeProvider) -> bool {
        let question = Question::new(Name::root(), RecordType::NS);
        let started = Instant::now();
        if self
            .exchange(&question, started + timeout, timeout, provider)
            .await
            .is_ok()
        {
            self.stats.record_success(started.elapsed());
            tracing::info!(upstream = %self.spec, "upstream answers again; marked up");
            return true;
        }
        self.stats
            .healthcheck_failures
            .fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// The query sent upstream over TCP: the client's question with RD=1, a fresh random ID (set
/// by `Message::query`), and EDNS with the client's DO and CD bits, as `udp::encode_query`
/// writes it for UDP.
pub fn request_for(question: &Question) -> DnsRequest {
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

/// The sections of an upstream reply: answers (CNAME chains included), the authority section
/// (the SOA of a negative answer), additionals. The OPT record is not among them (hickory keeps
/// it apart): RFC 6891 §6.1.1, OPT "MUST NOT be cached, forwarded".
///
/// Minimal responses, as Unbound's default `minimal-responses: yes`: a positive answer drops the
/// authority and additional sections (an upstream's NS set and glue), which no stub resolver
/// uses and which would double what the cache holds. With DO set they stay: a wildcard answer's
/// NSEC proof is in the authority section.
///
/// AD is kept only when `trust_ad`: RFC 4035 §4.9.3, a stub "SHOULD NOT trust the AD bit
/// unless it trusts the security-aware recursive name server ... and the channel", and
/// Hearth's clients are stubs that believe what Hearth says.
pub fn answer_from(mut message: Message, dnssec_ok: bool, trust_ad: bool) -> Answer {
    let positive = message.metadata.response_code == hickory_proto::op::ResponseCode::NoError
        && !message.answers.is_empty();
    if positive && !dnssec_ok {
        message.authorities.clear();
        message.additionals.clear();
    }
    Answer {
        response_code: message.metadata.response_code,
        authoritative: false,
        authentic_data: trust_ad && message.metadata.authentic_data,
        answers: message.answers,
        authorities: message.authorities,
        additionals: message.additionals,
        chase: None,
        // TTLs as the upstream gave them, before the cache's clamps: not for reuse. The next
        // question is answered from the cache, and that answer is.
        validity: crate::chain::Validity::Never,
        extended_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_rd_do_cd_and_a_fresh_id() {
        let mut question = Question::new(Name::from_ascii("Example.COM.").unwrap(), RecordType::MX);
        question.dnssec_ok = true;
        question.checking_disabled = true;
        let (message, _) = request_for(&question).into_parts();
        assert!(message.metadata.recursion_desired);
        assert!(message.metadata.checking_disabled);
        assert!(message.edns.as_ref().unwrap().flags().dnssec_ok);
        assert_eq!(message.queries[0].name().to_string(), "Example.COM.");
        let ids: std::collections::HashSet<u16> = (0..50)
            .map(|_| request_for(&question).into_parts().0.metadata.id)
            .collect();
        assert!(ids.len() > 40, "IDs are random: {ids:?}");
    }

    #[test]
    fn the_upstream_ad_bit_is_kept_only_when_trusted() {
        let mut message = Message::query();
        message.metadata.response_code = hickory_proto::op::ResponseCode::NoError;
        message.metadata.authentic_data = true;
        assert!(!answer_from(message.clone(), true, false).authentic_data);
        assert!(answer_from(message.clone(), true, true).authentic_data);
        message.metadata.authentic_data = false;
        assert!(!answer_from(message, true, true).authentic_data);
    }

    #[test]
    fn two_failures_in_a_row_mark_down_and_a_reply_marks_up() {
        let stats = UpstreamStats::default();
        assert!(!stats.record_failure());
        stats.record_success(Duration::from_millis(3));
        assert!(!stats.record_failure(), "not in a row");
        assert!(stats.record_failure(), "the second in a row marks it down");
        assert!(!stats.record_failure(), "reported once");
        assert!(stats.is_down());
        stats.record_success(Duration::from_millis(3));
        assert!(!stats.is_down());
    }
}
