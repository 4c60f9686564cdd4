//! From a datagram or TCP message to the bytes of the reply, independent of the transport.
//!
//! ```text
//!  listener ──► admission (the front door: admit / refuse / truncate / drop)
//!                  │ Admitted
//!                  ▼
//!  (UDP: fast table hit? ──► the stored reply)
//!                  │ miss
//!                  ▼
//!  bytes ──► Request::parse ──► Question ──► Chain::resolve ──► Answer ──► encode ──► bytes
//!               │                                                            │
//!               └─ RequestError ─► RCODE (FORMERR, NOTIMP, BADVERS, REFUSED) ─┤
//!                  or silence (too short, QR=1)                              └─ UDP: TC=1 when
//!                                                                               over the size
//! ```
//!
//! `encode` writes a reply by hand when its records are of the common types (A, AAAA, CNAME, NS,
//! PTR, SOA, SRV) and its OPT record has no options, byte for byte as hickory would; anything
//! else is hickory's `Message::to_vec`. On the general path (every query of a random-subdomain
//! flood), hickory's encoder had cost more than finding the answer.
//!
//! The listeners ([`udp`], [`fast`], [`tcp`]) only move bytes; every decision about the client
//! is made in [`admission`], and everything a reply depends on is decided here, so a faster UDP
//! path can replace [`udp`] without touching the sources.
//!
//! Why our own listeners and not `hickory_server::Server`: its TCP handler answers a
//! connection's queries one after another (RFC 7766 §6.2.1.1 asks that pipelined queries be
//! answered as each is ready), it has no cap on connections, and it decodes the message before
//! the handler sees it, which hides the bytes a later batched UDP path needs.

pub mod admission;
pub mod cookies;
mod encode;
pub mod fast;
pub mod quick_reply;
pub mod rate_limit;
pub mod tcp;
pub mod udp;
pub mod walk;

#[cfg(test)]
mod request_tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError};
use thiserror::Error;

use crate::chain::{Answer, Chain, ExtendedError, Paused, Question, Resolution, Validity, Waiting};
use crate::metrics::{Metrics, Observation};

/// The UDP payload size we advertise and the most we send over UDP to an EDNS client: the DNS
/// Flag Day 2020 value (RFC 9715), which fits in one unfragmented packet on nearly every path.
pub const UDP_PAYLOAD: u16 = 1232;

/// RFC 1035 §4.2.1: "Messages carried by UDP are restricted to 512 bytes"; also the floor for
/// an EDNS client that advertises less (RFC 6891 §6.2.3).
const CLASSIC_UDP_PAYLOAD: u16 = 512;

/// A DNS message's header (RFC 1035 §4.1.1).
const HEADER_LENGTH: usize = 12;

pub use crate::chain::{Client, Transport};
use admission::{Admission, Admitted, Decision};
use cookies::Presented;

/// Why a message is not answered from the chain. Each maps to the RCODE of the reply, or to no
/// reply at all.
#[derive(Debug, Error)]
pub enum RequestError {
    #[error("message shorter than a DNS header")]
    TooShort,
    #[error("message is a response (QR=1), not a query")]
    NotAQuery,
    #[error("malformed message: {0}")]
    Malformed(#[from] DecodeError),
    #[error("{0} questions; exactly one is allowed")]
    QuestionCount(usize),
    #[error("opcode {0:?} is not implemented")]
    OpCode(OpCode),
    #[error("EDNS version {0} is not supported")]
    EdnsVersion(u8),
    #[error("class {0} is not served")]
    Class(DNSClass),
    #[error("zone transfers ({0}) are refused")]
    Transfer(RecordType),
    #[error("{0} is not a question type")]
    MetaType(RecordType),
    #[error("malformed COOKIE option")]
    CookieOption,
}

impl RequestError {
    /// The RCODE of the reply, or `None` when no reply is sent.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            // Nothing to answer: too short to hold an ID. And never answer a response: that is
            // how reflection loops and amplification start (BAD-INPUTS; RFC 1035 §7.3).
            Self::TooShort | Self::NotAQuery => None,
            // RFC 1035 §4.1.1: "Format error - The name server was unable to interpret the
            // query." RFC 9619: a query with QDCOUNT other than 1 is a format error.
            // RFC 7873 §5.2.2: a COOKIE option of a wrong length "MUST" get FORMERR.
            Self::Malformed(_)
            | Self::QuestionCount(_)
            | Self::MetaType(_)
            | Self::CookieOption => Some(ResponseCode::FormErr),
            // RFC 1035 §4.1.1: "Not Implemented - The name server does not support the
            // requested kind of query."
            Self::OpCode(_) => Some(ResponseCode::NotImp),
            // RFC 6891 §6.1.3: "If a responder does not implement the VERSION level of the
            // request, then it MUST respond with RCODE=BADVERS."
            Self::EdnsVersion(_) => Some(ResponseCode::BADVERS),
            Self::Class(_) | Self::Transfer(_) => Some(ResponseCode::Refused),
        }
    }
}

/// A query that passed every check.
struct Request {
    metadata: Metadata,
    query: Query,
    edns: Option<Edns>,
    /// The COOKIE option of the reply (the client cookie and a fresh server cookie), when the
    /// query had a client cookie and cookies are on.
    cookie: Option<[u8; 24]>,
    /// Where the question section ends in the packet (it starts after the 12-byte header),
    /// when the common read took it: the reply can copy it ([`Request::question_bytes`]).
    question_end: Option<usize>,
}

/// What is known of a message that failed a check, to shape the error reply.
struct Rejected {
    error: RequestError,
    metadata: Option<Metadata>,
    query: Option<Query>,
    edns: Option<Edns>,
}

impl Request {
    /// The checked request, or what is known of a rejected one (boxed: the error path is the
    /// rare one, and should not make every `Result` as large as a question and an OPT record).
    /// `cookies`: the secrets and the client's address, when cookies are on and the client is
    /// known.
    fn parse(
        packet: &[u8],
        cookies: Option<(&cookies::Cookies, IpAddr)>,
    ) -> Result<Self, Box<Rejected>> {
        let reject = |error, metadata, query: Option<&Query>, edns: Option<&Edns>| {
            Box::new(Rejected {
                error,
                metadata,
                query: query.cloned(),
                edns: edns.cloned(),
            })
        };
        let mut decoder = BinDecoder::new(packet);
        let Header { metadata, counts } = Header::read(&mut decoder)
            .map_err(|_| reject(RequestError::TooShort, None, None, None))?;
        if metadata.message_type == MessageType::Response {
            return Err(reject(RequestError::NotAQuery, None, None, None));
        }
        // The common query is read directly; anything else (and anything the direct read
        // cannot take) is read whole by hickory, so that what is rejected, and why, stays its.
        let (query, edns, question_end) = match read_common(&mut decoder, metadata.op_code, &counts)
        {
            Some((query, edns, end)) => (query, edns, Some(end)),
            None => {
                let message = Message::from_vec(packet);
                if metadata.op_code != OpCode::Query {
                    let message = message.as_ref().ok();
                    return Err(reject(
                        RequestError::OpCode(metadata.op_code),
                        Some(metadata),
                        message.and_then(|m| m.queries.first()),
                        message.and_then(|m| m.edns.as_ref()),
                    ));
                }
                let mut message =
                    message.map_err(|error| reject(error.into(), Some(metadata), None, None))?;
                if message.queries.len() != 1 {
                    return Err(reject(
                        RequestError::QuestionCount(message.queries.len()),
                        Some(metadata),
                        message.queries.first(),
                        message.edns.as_ref(),
                    ));
                }
                (message.queries.swap_remove(0), message.edns, None)
            }
        };
        let error = if let Some(version) = edns.as_ref().map(Edns::version).filter(|v| *v > 0) {
            Some(RequestError::EdnsVersion(version))
        } else if query.query_class() != DNSClass::IN {
            Some(RequestError::Class(query.query_class()))
        } else if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
            Some(RequestError::Transfer(query.query_type()))
        } else if query.query_type() == RecordType::OPT {
            Some(RequestError::MetaType(query.query_type()))
        } else {
            None
        };
        if let Some(error) = error {
            return Err(reject(error, Some(metadata), Some(&query), edns.as_ref()));
        }
        let presented = edns
            .is_some()
            .then(|| Presented::in_query(packet))
            .flatten();
        if presented == Some(Presented::Malformed) {
            return Err(reject(
                RequestError::CookieOption,
                Some(metadata),
                Some(&query),
                edns.as_ref(),
            ));
        }
        let cookie = match (presented, cookies) {
            (Some(Presented::Cookie { client, .. }), Some((cookies, ip))) => {
                Some(cookies.reply_option(client, ip, cookies::now()))
            }
            _ => None,
        };
        Ok(Self {
            metadata,
            query,
            edns,
            cookie,
            question_end,
        })
    }

    /// The question section as `packet` (this request's) holds it, for the reply to copy:
    /// hickory read the question from these bytes, and writes it back the same, byte for byte,
    /// when its name holds no compression pointer (`encode` checks that).
    fn question_bytes<'p>(&self, packet: &'p [u8]) -> Option<&'p [u8]> {
        packet.get(HEADER_LENGTH..self.question_end?)
    }

    fn question(&self) -> Question {
        let mut question = Question::new(self.query.name().clone(), self.query.query_type());
        question.class = self.query.query_class();
        question.dnssec_ok = self.dnssec_ok();
        question.checking_disabled = self.metadata.checking_disabled;
        question
    }

    fn dnssec_ok(&self) -> bool {
        self.edns
            .as_ref()
            .is_some_and(|edns| edns.flags().dnssec_ok)
    }
}

/// The question and OPT record of the common query: a QUERY with one question, no answer or
/// authority records, and no additional record but an OPT. `decoder` stands after the header.
/// `None` for any other message, or when a read fails: the caller then reads it whole. With
/// them, where the question ends in the packet.
///
/// Why not always `Message::from_vec`: for this shape it reads the same records the same way
/// (the question, then the OPT record turned into an [`Edns`]), but it also builds a
/// [`Message`] with a vector per section and copies it out, which was about 4% of a core on
/// the general path of a long tail of distinct names (issue 16's profile of an NXDOMAIN
/// flood). Both reads are compared over a corpus of queries in this module's tests.
fn read_common(
    decoder: &mut BinDecoder<'_>,
    op_code: OpCode,
    counts: &HeaderCounts,
) -> Option<(Query, Option<Edns>, usize)> {
    if op_code != OpCode::Query
        || counts.queries != 1
        || counts.answers != 0
        || counts.authorities != 0
        || counts.additionals > 1
    {
        return None;
    }
    let query = Query::read(decoder).ok()?;
    let question_end = decoder.index();
    let edns = if counts.additionals == 1 {
        let record = Record::read(decoder).ok()?;
        // The same test as `Message::read_records`: these data, and only these, are the OPT.
        match record.data {
            RData::OPT(_) | RData::Update0(RecordType::OPT) => Some(Edns::from(&record)),
            _ => return None,
        }
    } else {
        None
    };
    Some((query, edns, question_end))
}

/// The OPT record of a reply: RFC 6891 §6.1.1, a responder "MUST include an OPT record" iff the
/// request had one; version 0, our payload size, and DO copied from the query (RFC 3225 §3).
fn reply_edns(request_edns: Option<&Edns>) -> Option<Edns> {
    request_edns.map(|request| {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD)
            .set_version(0)
            .set_dnssec_ok(request.flags().dnssec_ok);
        edns
    })
}

/// [`reply_edns`], with the reply's COOKIE (RFC 7873 §5.2.3) and Extended DNS Error (RFC 8914)
/// options. Both only when the request had an OPT record.
fn reply_edns_with(
    request_edns: Option<&Edns>,
    cookie: Option<&[u8; 24]>,
    extended_error: Option<&ExtendedError>,
) -> Option<Edns> {
    let mut edns = reply_edns(request_edns)?;
    if let Some(cookie) = cookie {
        edns.options_mut()
            .insert(EdnsOption::Unknown(cookies::OPTION_CODE, cookie.to_vec()));
    }
    if let Some(error) = extended_error {
        edns.options_mut().insert(EdnsOption::Unknown(
            crate::chain::ede::OPTION_CODE,
            error.option_data(),
        ));
    }
    Some(edns)
}

/// The most a reply may hold on `transport` for a query with `edns`.
fn size_limit(transport: Transport, edns: Option<&Edns>) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => usize::from(CLASSIC_UDP_PAYLOAD),
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.max_payload().clamp(CLASSIC_UDP_PAYLOAD, UDP_PAYLOAD))
        }
    }
}

/// Answers DNS messages: parse, check, ask the chain, encode.
pub struct Engine {
    /// Swapped whole on reload, so a query runs on one chain from start to end.
    chain: ArcSwap<Chain>,
    metrics: Arc<Metrics>,
    /// `log.queries`: one INFO line per query. Changed by a reload.
    log_queries: AtomicBool,
    /// The front door every listener asks first.
    admission: Admission,
    /// `server.max_waiting_per_client`: each client's queries waiting on upstreams.
    waiting: Option<Arc<Waiting>>,
}

/// What the engine did with one message, for the metrics and the query log.
struct Handled {
    reply: Option<Reply>,
    query_type: u16,
    name: Option<Name>,
    source: Option<&'static str>,
}

impl Engine {
    /// An engine that admits everyone, with metrics of its own and no query log (tests,
    /// benchmarks).
    pub fn new(chain: Chain) -> Self {
        Self::with_metrics(
            chain,
            Arc::new(Metrics::new()),
            false,
            Admission::admit_all(1024),
        )
    }

    pub fn with_metrics(
        chain: Chain,
        metrics: Arc<Metrics>,
        log_queries: bool,
        admission: Admission,
    ) -> Self {
        Self {
            chain: ArcSwap::from_pointee(chain),
            metrics,
            log_queries: AtomicBool::new(log_queries),
            admission,
            waiting: None,
        }
    }

    /// This engine, letting each client have at most `limit` queries waiting on upstreams.
    pub fn with_waiting_limit(mut self, limit: u32) -> Self {
        self.waiting = Some(Waiting::new(limit));
        self
    }

    /// The front door: listeners ask it about every request before anything else.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Puts a new chain in place for the queries that start from now on; queries already
    /// running finish on the chain they started with.
    pub fn replace_chain(&self, chain: Chain) {
        self.chain.store(Arc::new(chain));
    }

    pub fn set_log_queries(&self, on: bool) {
        self.log_queries.store(on, Ordering::Relaxed);
    }

    pub fn log_queries(&self) -> bool {
        self.log_queries.load(Ordering::Relaxed)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The reply to an admitted message, counted in the metrics and, when `log.queries` is
    /// on, logged. What the listeners call once the front door has admitted the request.
    pub async fn answer(&self, packet: &[u8], admitted: &Admitted) -> Option<Reply> {
        match self.answer_now(packet, admitted, Vec::new()) {
            Ok(reply) => reply,
            Err(later) => self.answer_later(later, admitted).await,
        }
    }

    /// [`Engine::answer`] without waiting: the reply when every source the question reaches
    /// answers from memory (and for a message that gets an error reply or none), or what
    /// [`Engine::answer_later`] goes on from. The UDP thread asks this first, and builds a
    /// future only for a query that must wait ([`crate::chain::Chain::resolve_now`] says why).
    ///
    /// The reply is written over `buffer` when the hand encoder takes it (`encode`), so a
    /// caller that keeps its buffers (the UDP thread's reply slots) lends one and gets it back
    /// as the reply's bytes, with no allocation and no copy.
    pub fn answer_now(
        &self,
        packet: &[u8],
        admitted: &Admitted,
        buffer: Vec<u8>,
    ) -> Result<Option<Reply>, Later> {
        let client = admitted.client();
        match self.process_now(packet, client.transport, Some(client.ip()), buffer) {
            Ok(handled) => Ok(self.count(handled, admitted)),
            Err(later) => Err(later),
        }
    }

    /// Goes on with a query [`Engine::answer_now`] could not finish, to the reply
    /// [`Engine::answer`] gives.
    pub async fn answer_later(&self, later: Later, admitted: &Admitted) -> Option<Reply> {
        let handled = Self::process_later(later).await;
        self.count(handled, admitted)
    }

    /// Counts `handled` in the metrics and logs it, its duration from the admission on.
    fn count(&self, handled: Handled, admitted: &Admitted) -> Option<Reply> {
        let Client {
            address: peer,
            transport,
        } = *admitted.client();
        let response_code = handled.reply.as_ref().map(|r| reply_rcode(&r.bytes));
        let elapsed = admitted.at().into_std().elapsed();
        self.metrics.record(Observation {
            transport,
            ipv6: peer.is_ipv6(),
            query_type: handled.query_type,
            response_code,
            elapsed,
        });
        if self.log_queries() {
            log_query(
                peer,
                transport,
                handled.name.as_ref(),
                handled.query_type,
                response_code,
                elapsed,
                handled.source,
            );
        }
        handled.reply
    }

    /// Writes into `out` the reply for a request the front door did not admit, counting and
    /// logging it as [`Engine::answer`] does; false when nothing is to be sent.
    pub fn reject(
        &self,
        packet: &[u8],
        client: &Client,
        decision: Decision,
        out: &mut Vec<u8>,
    ) -> bool {
        let policy = self.admission.policy();
        let sent = admission::rejection(
            packet,
            decision,
            client.ip(),
            policy.cookies().map(|c| &**c),
            out,
        );
        self.record_quick_reply(packet, client, sent.then(|| reply_rcode(out)), "admission");
        sent
    }

    /// Writes into `out` the SERVFAIL, with an Extended DNS Error, for a query a listener sheds
    /// because its general path is at its limit of queries in flight: the hits behind it keep
    /// being answered, and the client learns at once to try another server. Counted and logged
    /// as [`Engine::answer`] does; false when nothing is to be sent.
    pub fn shed(&self, packet: &[u8], client: &Client, out: &mut Vec<u8>) -> bool {
        static BUSY: std::sync::LazyLock<ExtendedError> = std::sync::LazyLock::new(|| {
            ExtendedError::new(
                ExtendedError::OTHER,
                "server busy: too many queries in flight",
            )
        });
        let shape = quick_reply::Shape {
            rcode: quick_reply::SERVFAIL,
            truncated: false,
            extended_error: Some(&BUSY),
            cookie: None,
        };
        let sent = quick_reply::build(packet, shape, out);
        self.record_quick_reply(packet, client, sent.then(|| reply_rcode(out)), "shed");
        sent
    }

    fn record_quick_reply(
        &self,
        packet: &[u8],
        client: &Client,
        response_code: Option<u16>,
        source: &'static str,
    ) {
        self.metrics.record(Observation {
            transport: client.transport,
            ipv6: client.address.is_ipv6(),
            query_type: fast::query_type(packet),
            response_code,
            elapsed: std::time::Duration::ZERO,
        });
        if self.log_queries() {
            log_query(
                client.address,
                client.transport,
                None,
                fast::query_type(packet),
                response_code,
                std::time::Duration::ZERO,
                Some(source),
            );
        }
    }

    /// The reply to `packet`, or `None` when the message must not be answered (and, over TCP,
    /// the connection should be closed). No client, so no front door, no metrics and no log:
    /// for tests and benchmarks of the general path itself.
    pub async fn handle(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.handle_reply(packet, transport)
            .await
            .map(|reply| reply.bytes)
    }

    /// [`Engine::handle`], with how long the same query bytes would get the same reply.
    /// Neither counted nor logged: [`Engine::answer`] is.
    pub async fn handle_reply(&self, packet: &[u8], transport: Transport) -> Option<Reply> {
        self.process(packet, transport, None).await.reply
    }

    /// `client`: the sender's address, for its server cookie and its count of waiting queries;
    /// `None` for [`Engine::handle`].
    async fn process(
        &self,
        packet: &[u8],
        transport: Transport,
        client: Option<IpAddr>,
    ) -> Handled {
        match self.process_now(packet, transport, client, Vec::new()) {
            Ok(handled) => handled,
            Err(later) => Self::process_later(later).await,
        }
    }

    /// [`Engine::process`] as far as it goes without waiting; the reply is written over
    /// `buffer`.
    fn process_now(
        &self,
        packet: &[u8],
        transport: Transport,
        client: Option<IpAddr>,
        buffer: Vec<u8>,
    ) -> Result<Handled, Later> {
        let policy = self.admission.policy();
        let cookies = policy.cookies().zip(client).map(|(c, ip)| (&**c, ip));
        let request = match Request::parse(packet, cookies) {
            Ok(request) => request,
            Err(rejected) => {
                tracing::debug!(error = %rejected.error, "query rejected");
                let query_type = rejected
                    .query
                    .as_ref()
                    .map_or(0, |q| u16::from(q.query_type()));
                let name = rejected.query.as_ref().map(|q| q.name().clone());
                let reply = error_reply(*rejected).map(|bytes| Reply {
                    bytes,
                    validity: Validity::Never,
                    source: None,
                });
                return Ok(Handled {
                    reply,
                    query_type,
                    name,
                    source: None,
                });
            }
        };
        drop(policy);
        let mut question = request.question();
        question.waiting = self.waiting.as_ref().zip(client).map(|(w, ip)| w.slot(ip));
        let chain = self.chain.load_full();
        match chain.resolve_now(&question) {
            Ok(resolution) => Ok(answered(
                &request,
                request.question_bytes(packet),
                question,
                resolution,
                transport,
                buffer,
            )),
            Err(paused) => Err(Later(Box::new(Unfinished {
                request,
                question,
                chain,
                paused,
                transport,
                buffer,
            }))),
        }
    }

    /// The rest of [`Engine::process`] for a query that must wait.
    async fn process_later(later: Later) -> Handled {
        let unfinished = *later.0;
        let resolution = (unfinished.chain)
            .resume(&unfinished.question, unfinished.paused)
            .await;
        // The packet is not kept for a query that waited: its question is written from the
        // parsed name.
        answered(
            &unfinished.request,
            None,
            unfinished.question,
            resolution,
            unfinished.transport,
            unfinished.buffer,
        )
    }
}

/// A query [`Engine::answer_now`] could not finish, because a source must wait (an upstream):
/// its checked request and where the chain stopped, for [`Engine::answer_later`].
pub struct Later(Box<Unfinished>);

struct Unfinished {
    request: Request,
    question: Question,
    /// The chain the query started on: a reload meanwhile does not change it halfway.
    chain: Arc<Chain>,
    paused: Paused,
    transport: Transport,
    buffer: Vec<u8>,
}

/// The reply to `request` from the chain's `resolution`, written over `buffer`;
/// `question_bytes`, the request's question section as it came, when the reply may copy it.
fn answered(
    request: &Request,
    question_bytes: Option<&[u8]>,
    question: Question,
    resolution: Resolution,
    transport: Transport,
    buffer: Vec<u8>,
) -> Handled {
    tracing::debug!(
        name = %question.name,
        record_type = %question.record_type,
        status = %resolution.status,
        source = ?resolution.source,
        response_code = %resolution.answer.response_code,
        "answered"
    );
    // A reply with a server cookie is the client's own (the cookie is made for its address
    // and time), so it is not reused for the same bytes from anyone else.
    let reusable = matches!(
        resolution.answer.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    ) && request.cookie.is_none();
    let validity = if reusable {
        resolution.answer.validity
    } else {
        Validity::Never
    };
    let source = resolution.source;
    let bytes = encode_answer(
        request,
        question_bytes,
        resolution.answer,
        transport,
        buffer,
    );
    // A truncated reply is not reused: the same query over TCP must get the whole answer.
    let truncated = bytes.get(2).is_some_and(|flags| flags & 0x02 != 0);
    Handled {
        reply: Some(Reply {
            bytes,
            validity: if truncated { Validity::Never } else { validity },
            source,
        }),
        query_type: u16::from(question.record_type),
        name: Some(question.name),
        source,
    }
}

/// A reply and how long it stays the reply to the same query bytes.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub validity: Validity,
    /// The source whose answer this is (for the query log), if the chain answered.
    pub source: Option<&'static str>,
}

/// The RCODE of an encoded reply: the header's four bits, plus the OPT record's upper eight
/// (RFC 6891 §6.1.3) when that is the only additional record, as in every reply we build
/// with an extended RCODE (BADVERS: header, question, OPT).
pub fn reply_rcode(reply: &[u8]) -> u16 {
    let low = u16::from(reply.get(3).map_or(0, |b| b & 0x0F));
    let counts = |at: usize| {
        reply
            .get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    if counts(6) == 0 && counts(8) == 0 && counts(10) == 1 && reply.len() >= 11 {
        // The OPT record ends the message: root name (1), TYPE (2), CLASS (2), then the
        // extended RCODE, version, flags (4) and RDLENGTH (2).
        let opt = reply.len() - 11;
        if reply[opt] == 0 && reply[opt + 1..opt + 3] == [0, 41] {
            return (u16::from(reply[opt + 5]) << 4) | low;
        }
    }
    low
}

/// The `log.queries` line. CoreDNS's `log` plugin logs the same facts.
pub fn log_query(
    peer: SocketAddr,
    transport: Transport,
    name: Option<&Name>,
    query_type: u16,
    response_code: Option<u16>,
    elapsed: std::time::Duration,
    source: Option<&str>,
) {
    let record_type = RecordType::from(query_type);
    tracing::info!(
        target: "hearth::query",
        client = %peer,
        protocol = %transport.name(),
        name = %name.map_or_else(|| "-".to_owned(), ToString::to_string),
        record_type = %record_type,
        rcode = %response_code.map_or(std::borrow::Cow::Borrowed("dropped"), crate::metrics::rcode_name),
        duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        source = %source.unwrap_or("-"),
        "query"
    );
}

/// The header of every reply: the request's ID, opcode, RD and CD copied (RFC 1035 §4.1.1,
/// RFC 4035 §3.2.2); RA set, since recursion is what we offer. Other bits of the query (Z, AA,
/// TC, AD) are not copied (RFC 8906 §3.1.3).
fn reply_metadata(request: &Metadata, response_code: ResponseCode) -> Metadata {
    let mut metadata = Metadata::response_from_request(request);
    metadata.recursion_available = true;
    metadata.response_code = response_code;
    metadata
}

/// The reply's bytes, written over `buffer` when the hand encoder takes it.
fn encode_answer(
    request: &Request,
    question_bytes: Option<&[u8]>,
    answer: Answer,
    transport: Transport,
    mut buffer: Vec<u8>,
) -> Vec<u8> {
    let mut metadata = reply_metadata(&request.metadata, answer.response_code);
    metadata.authoritative = answer.authoritative;
    // RFC 6840 §5.8: AD only for a client that showed it understands it (AD or DO set).
    metadata.authentic_data =
        answer.authentic_data && (request.metadata.authentic_data || request.dnssec_ok());
    let edns = reply_edns_with(
        request.edns.as_ref(),
        request.cookie.as_ref(),
        answer.extended_error.as_deref(),
    );
    let limit = size_limit(transport, request.edns.as_ref());
    let sections = [
        answer.answers.as_slice(),
        &answer.authorities,
        &answer.additionals,
    ];
    let question = encode::Asked {
        query: &request.query,
        bytes: question_bytes,
    };
    let written = encode::reply(
        &metadata,
        question,
        sections,
        edns.as_ref(),
        limit,
        &mut buffer,
    );
    if written.is_some() {
        return buffer;
    }
    let mut message = Message::new(metadata.id, MessageType::Response, metadata.op_code);
    message.metadata = metadata;
    message.queries.push(request.query.clone());
    message.answers = answer.answers;
    message.authorities = answer.authorities;
    message.additionals = answer.additionals;
    message.edns = edns;

    match message.to_vec() {
        Ok(bytes) if bytes.len() <= limit => bytes,
        Ok(_) => {
            // RFC 2181 §9 and RFC 7766 §5: too large for this transport. Send the header, the
            // question and the OPT record with TC=1; the client asks again over TCP.
            message.metadata.truncation = true;
            message.answers.clear();
            message.authorities.clear();
            message.additionals.clear();
            encode_or_server_failure(&message)
        }
        Err(error) => {
            tracing::warn!(name = %request.query.name(), %error, "answer could not be encoded");
            message.metadata.response_code = ResponseCode::ServFail;
            message.answers.clear();
            message.authorities.clear();
            message.additionals.clear();
            encode_or_server_failure(&message)
        }
    }
}

/// Encodes a message with no records. Only an impossible question could make this fail; then
/// a bare SERVFAIL header goes out.
fn encode_or_server_failure(message: &Message) -> Vec<u8> {
    message.to_vec().unwrap_or_else(|_| {
        let mut bare = Message::new(
            message.metadata.id,
            MessageType::Response,
            message.metadata.op_code,
        );
        bare.metadata.response_code = ResponseCode::ServFail;
        bare.to_vec().unwrap_or_default()
    })
}

fn error_reply(rejected: Rejected) -> Option<Vec<u8>> {
    let response_code = rejected.error.response_code()?;
    let request_metadata = rejected.metadata?;
    let mut message = Message::new(
        request_metadata.id,
        MessageType::Response,
        request_metadata.op_code,
    );
    message.metadata = reply_metadata(&request_metadata, response_code);
    message.queries.extend(rejected.query);
    // BADVERS is an extended RCODE: it needs the OPT record to be expressed (RFC 6891 §6.1.3).
    message.edns = reply_edns(rejected.edns.as_ref());
    Some(encode_or_server_failure(&message))
}
