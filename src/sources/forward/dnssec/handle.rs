//! The glue under hickory's validator: its `DnsHandle` trait over the forwarder's own fetch,
//! and the bounds on the work one answer may cause.
//!
//! hickory's `DnssecDnsHandle` asks its inner handle for the answer and then for every DS,
//! DNSKEY and NS set the chain of trust needs. Here each of those questions goes where any
//! forwarded question goes ([`Fetch`]): through the answer cache, coalesced with identical
//! questions in flight, to the upstreams of the group the name belongs to, with DO=1 and CD=1
//! (RFC 4035 §4.6: "a validating resolver ... SHOULD set the CD bit", so an upstream that
//! validates hands over bogus data for us to judge instead of a bare SERVFAIL).
//!
//! Why more than an adapter is needed: hickory caps key-tag collisions per signature (2) and
//! signatures per RRset (8) for ordinary RRsets, but not the signatures over a DNSKEY RRset,
//! nor the number of RRsets, nor the fetches one answer may cause (CVE-2023-50387, KeyTrap).
//! [`Work`] counts what one client question hands the validator and stops it past
//! [`MAX_SIGNATURES`] RRSIGs, [`MAX_FETCHES`] fetches, a DNSKEY RRset with more than
//! [`MAX_KEYS_PER_TAG`] keys of one tag, or more than [`MAX_COSTLY_NSEC3`] DS answers whose
//! NSEC3 hashing is expensive. A signature is checked only against keys of its tag,
//! so one answer costs at most `MAX_SIGNATURES × MAX_KEYS_PER_TAG` signature checks.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, Stream};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::xfer::DnsHandle;
use hickory_net::NetError;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::Verifier;
use hickory_proto::op::{DnsRequest, DnsResponse, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::chain::{Answer, Outcome, Question, SourceError};

/// RRSIGs one client question may hand the validator, over the answer and every DS and DNSKEY
/// answer of its chain. A secure answer three zones deep needs about 10.
pub const MAX_SIGNATURES: u32 = 64;

/// Upstream questions (answer, DS, DNSKEY, NS) one client question may cause while validating:
/// hickory bounds the depth of its walk (26), not its breadth.
pub const MAX_FETCHES: u32 = 64;

/// Keys of one algorithm and key tag a DNSKEY RRset may hold. Tags are 16-bit checksums, so
/// two keys of a zone rarely share one; KeyTrap relies on many doing so.
pub const MAX_KEYS_PER_TAG: usize = 4;

/// RFC 9276 §3.2: NSEC3 iterations above this make a proof insecure (Unbound, BIND, Knot: 150).
pub const NSEC3_INSECURE_ITERATIONS: u16 = 150;

/// DS answers with NSEC3 above [`NSEC3_INSECURE_ITERATIONS`] one question may hand over. hickory
/// checks its iteration limit before hashing in its denial proofs, but not in the proof of an
/// insecure delegation, which hashes the zone name with the record's iterations (up to 65,535;
/// CVE-2023-50868): one such hash per question is allowed, a second stops the validation.
pub const MAX_COSTLY_NSEC3: u32 = 1;

/// How the forwarder asks a question with DO=1 and CD=1, through its cache.
pub trait Fetch: Send + Sync + 'static {
    fn fetch(&self, question: Question) -> BoxFuture<'static, Outcome>;
}

tokio::task_local! {
    /// The work of the client question being validated in this task. hickory's validation
    /// runs inside the task that awaits it (its futures are joined, not spawned), so every
    /// fetch it makes sees the question it is for.
    pub static WORK: Arc<Work>;
}

/// What validating one client question has cost, and what it saw.
#[derive(Debug, Default)]
pub struct Work {
    pub fetches: AtomicU32,
    pub signatures: AtomicU32,
    /// A limit was reached: the answer is bogus, and says why.
    pub exceeded: AtomicBool,
    /// The first fetch: the client's own question, as the upstream answered it.
    pub first: Mutex<Option<Outcome>>,
    /// The DNSKEY and DS records fetched, by owner, to say why an answer is bogus.
    pub keys: Mutex<HashMap<Name, Vec<Record>>>,
    /// DS answers with costly NSEC3 records ([`MAX_COSTLY_NSEC3`]).
    pub costly_nsec3: AtomicU32,
    /// Fetches that failed upstream (no answer, SERVFAIL): the answer is then indeterminate,
    /// not bogus.
    pub failed: AtomicU32,
}

impl Work {
    /// Counts one fetch; `false` past the limit.
    fn fetch_started(&self) -> bool {
        let fetches = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        self.allow(fetches <= MAX_FETCHES)
    }

    fn allow(&self, within: bool) -> bool {
        if !within {
            self.exceeded.store(true, Ordering::Relaxed);
        }
        within
    }

    /// Counts the signatures of `answer` and checks its DNSKEY RRsets; `false` past a limit.
    fn examine(&self, question: &Question, answer: &Answer) -> bool {
        let records = || {
            answer
                .answers
                .iter()
                .chain(&answer.authorities)
                .chain(&answer.additionals)
        };
        let signatures = records()
            .filter(|record| record.record_type() == RecordType::RRSIG)
            .count();
        let signatures = u32::try_from(signatures).unwrap_or(u32::MAX);
        let total = self
            .signatures
            .fetch_add(signatures, Ordering::Relaxed)
            .saturating_add(signatures);
        if !self.allow(total <= MAX_SIGNATURES) {
            return false;
        }
        let costly = records().any(|record| {
            matches!(&record.data, RData::DNSSEC(DNSSECRData::NSEC3(nsec3))
                if nsec3.iterations() > NSEC3_INSECURE_ITERATIONS)
        });
        if costly && question.record_type == RecordType::DS {
            let seen = self.costly_nsec3.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.allow(seen <= MAX_COSTLY_NSEC3) {
                return false;
            }
        }
        if matches!(question.record_type, RecordType::DNSKEY | RecordType::DS) {
            let mut per_tag: HashMap<(u8, u16), usize> = HashMap::new();
            for record in records() {
                if let RData::DNSSEC(DNSSECRData::DNSKEY(key)) = &record.data {
                    let tag = key.calculate_key_tag().unwrap_or_default();
                    let count = per_tag.entry((key.algorithm().into(), tag)).or_default();
                    *count += 1;
                    if !self.allow(*count <= MAX_KEYS_PER_TAG) {
                        return false;
                    }
                }
            }
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            let found = keys.entry(question.name.clone()).or_default();
            found.retain(|r| r.record_type() != question.record_type);
            found.extend(
                answer
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == question.record_type)
                    .cloned(),
            );
        }
        true
    }
}

/// hickory's `DnsHandle` over the forwarder.
#[derive(Clone)]
pub struct UpstreamHandle {
    pub fetch: Arc<dyn Fetch>,
}

impl DnsHandle for UpstreamHandle {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let work = WORK.try_with(Arc::clone).ok();
        let fetch = Arc::clone(&self.fetch);
        Box::pin(stream::once(async move {
            let query = request
                .queries
                .first()
                .cloned()
                .ok_or_else(|| NetError::from("no question"))?;
            let mut question = Question::new(query.name().clone(), query.query_type());
            question.class = query.query_class();
            question.dnssec_ok = true;
            question.checking_disabled = true;
            if let Some(work) = &work {
                if !work.fetch_started() {
                    return Err(NetError::from("too many questions for one answer"));
                }
            }
            let outcome = fetch.fetch(question.clone()).await;
            if let Some(work) = &work {
                let mut first = work.first.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    *first = Some(outcome.clone());
                }
            }
            let answer = match outcome {
                Outcome::Success(answer) | Outcome::NotFound(answer) => answer,
                Outcome::Unavail(error) | Outcome::TryAgain(error) => {
                    if let Some(work) = &work {
                        work.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    return Err(upstream_failure(&error));
                }
            };
            if let Some(work) = &work {
                if !work.examine(&question, &answer) {
                    return Err(NetError::from("too much DNSSEC work for one answer"));
                }
            }
            response_to(query, answer)
        }))
    }
}

fn upstream_failure(error: &SourceError) -> NetError {
    NetError::from(format!("upstream: {error}"))
}

/// The answer as the message hickory expects back.
fn response_to(query: Query, answer: Answer) -> Result<DnsResponse, NetError> {
    let mut message = Message::new(0, MessageType::Response, OpCode::Query);
    message.metadata.response_code = answer.response_code;
    message.metadata.recursion_available = true;
    message.queries.push(query);
    message.answers = answer.answers;
    message.authorities = answer.authorities;
    message.additionals = answer.additionals;
    DnsResponse::from_message(message).map_err(|error| NetError::from(error.to_string()))
}
