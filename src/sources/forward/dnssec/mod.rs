//! DNSSEC validation of forwarded answers (RFC 4033-4035), as Unbound and dnsmasq do it behind
//! a forwarder.
//!
//! ```text
//! client question, CD=0, not under a negative trust anchor
//!    │
//!    ▼
//! bogus moments ago? ─► SERVFAIL with the same Extended DNS Error (RFC 9520)
//!    │
//!    ▼
//! hickory's DnssecDnsHandle ─► UpstreamHandle (handle) ─► the forwarder's fetch: cache,
//!    │   the answer, then DS / DNSKEY / NS       coalescing, the name's upstreams, DO=1 CD=1
//!    ▼
//! a proof per record ─► secure: AD=1 · insecure, indeterminate: AD=0 · bogus: SERVFAIL + EDE
//! ```
//!
//! The chain walk, the signature checks, NSEC and NSEC3 denial proofs (RFC 4035 §5.4,
//! RFC 5155 §8), wildcard proofs, and a cache of validated DNSKEY and DS sets are hickory's
//! (`hickory_net::dnssec::DnssecDnsHandle`). Written here, and why:
//! - [`handle`]: the `DnsHandle` it runs over, and limits hickory lacks (KeyTrap);
//! - trust anchors given as DS records: hickory's `TrustAnchors` holds keys only, so a DS
//!   anchor (the form IANA and Debian's root.key publish) is turned into the keys it matches
//!   once, at the first validation, by fetching the zone's DNSKEY set;
//! - [`bogus`]: why an answer is bogus, as an Extended DNS Error (RFC 8914 §4.7-4.13). hickory
//!   gives a proof per record but drops the reason, so the failed RRset is looked at again;
//! - negative trust anchors (RFC 7646), which hickory does not know.
//!
//! NSEC3 (RFC 9276 §3.2): "validating resolvers MAY return an insecure response when
//! processing NSEC3 records with iterations larger than 0"; above [`NSEC3_INSECURE_ITERATIONS`]
//! (Unbound's and BIND's 150) an NSEC3 proof makes the answer insecure, before any hash is
//! computed. hickory's hard limit, above which the answer is bogus, is set to the largest count,
//! so no count is bogus only for being high.

pub mod bogus;
pub mod config;
pub mod handle;
mod wildcard;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hickory_net::dnssec::DnssecDnsHandle;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_net::{DnsError, NetError};
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::{Proof, TrustAnchors};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::cache::CacheKey;
use crate::chain::{Answer, ExtendedError, Outcome, Question};
pub use bogus::DnssecError;
use bogus::{diagnose, BogusMemory};
use config::AnchorKind;
pub use config::DnssecConfig;
pub use handle::{Fetch, NSEC3_INSECURE_ITERATIONS};
use handle::{UpstreamHandle, Work, WORK};

/// hickory's cache of validated RRsets (DNSKEY and DS sets above all), in entries: its default
/// (1,048,576) would outgrow the answer cache it sits beside; this is a fifth of the answer
/// cache's default capacity, plenty for the DNSKEY and DS sets of the zones in use.
const VALIDATION_CACHE_ENTRIES: usize = 20_000;

/// Counters, read by the metrics.
#[derive(Debug, Default)]
pub struct DnssecStats {
    pub secure: AtomicU64,
    pub insecure: AtomicU64,
    pub bogus: AtomicU64,
    pub indeterminate: AtomicU64,
    /// RRSIGs handed to the validator: each costs at most [`handle::MAX_KEYS_PER_TAG`] checks.
    pub signatures: AtomicU64,
    /// Questions stopped by a bound of [`handle`] (KeyTrap).
    pub limited: AtomicU64,
}

/// The validator of one forwarder.
pub struct Validator {
    config: DnssecConfig,
    fetch: Arc<dyn Fetch>,
    /// Built at the first validation: DS anchors need their keys fetched.
    handle: OnceCell<DnssecDnsHandle<UpstreamHandle>>,
    bogus: BogusMemory,
    pub stats: DnssecStats,
}

/// What validation concluded (RFC 4033 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    Secure,
    /// Insecure, or indeterminate with an answer: no AD.
    Insecure,
}

impl Validator {
    pub fn new(config: DnssecConfig, fetch: Arc<dyn Fetch>) -> Self {
        Self {
            config,
            fetch,
            handle: OnceCell::new(),
            bogus: BogusMemory::default(),
            stats: DnssecStats::default(),
        }
    }

    /// Whether `question` is validated: RFC 4035 §3.2.2, a client's CD=1 asks for the data
    /// unchecked; RFC 7646 §2, names under a negative trust anchor are not validated.
    pub fn applies(&self, question: &Question) -> bool {
        !question.checking_disabled && !self.config.is_negative(question.lower_name())
    }

    /// A bogus answer for `key` remembered now, if there is one (RFC 9520).
    pub fn remembered(&self, key: &CacheKey) -> Option<Outcome> {
        self.bogus
            .remembered(key, Instant::now())
            .map(|error| Outcome::TryAgain(error.into()))
    }

    /// The validated outcome of `question`: the upstream's answer with AD set if secure, or
    /// SERVFAIL with why if bogus.
    pub async fn resolve(&self, question: &Question, key: &CacheKey) -> Outcome {
        if let Some(outcome) = self.remembered(key) {
            return outcome;
        }
        let handle = match self.handle.get_or_try_init(|| self.build()).await {
            Ok(handle) => handle.clone(),
            Err(outcome) => return outcome,
        };
        let work = Arc::new(Work::default());
        let mut query = Query::query(question.name.clone(), question.record_type);
        query.set_query_class(question.class);
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.edns_set_dnssec_ok = true;
        let request = DnsRequest::from_query(query, options);
        let result = WORK
            // `send` inside the scope: the first fetch happens in it.
            .scope(Arc::clone(&work), async move {
                handle.send(request).first_answer().await
            })
            .await;
        self.stats.signatures.fetch_add(
            u64::from(work.signatures.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let first = work.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        let raw = match first {
            Some(Outcome::Success(answer) | Outcome::NotFound(answer)) => answer,
            // The upstreams failed for the question itself: that failure, as unvalidated.
            Some(failure) => return failure,
            None => return self.indeterminate("the question could not be asked"),
        };
        let security = match self.judge(question, &result, &work) {
            Ok(security) => security,
            Err(error) => {
                let error = self.missing_key(error, &question.name, &work).await;
                if error.is_bogus() {
                    self.stats.bogus.fetch_add(1, Ordering::Relaxed);
                    self.bogus.record(key, error.clone(), Instant::now());
                } else {
                    self.stats.indeterminate.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(name = %question.name, %error, "DNSSEC validation failed");
                return Outcome::TryAgain(error.into());
            }
        };
        let counter = match security {
            Security::Secure => &self.stats.secure,
            Security::Insecure => &self.stats.insecure,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut answer = for_client(raw, question);
        answer.authentic_data = security == Security::Secure;
        if answer.response_code == ResponseCode::NXDomain {
            Outcome::NotFound(answer)
        } else {
            Outcome::Success(answer)
        }
    }

    /// Data without signatures in a zone whose DS exists: RFC 8914 §4.10, DNSKEY Missing, if
    /// the zone publishes no key at all (the walk to the data never fetched the zone's keys,
    /// so they are asked for here, from the cache), else RRSIGs Missing as diagnosed.
    async fn missing_key(
        &self,
        error: DnssecError,
        name: &hickory_proto::rr::Name,
        work: &Work,
    ) -> DnssecError {
        if !matches!(&error, DnssecError::Bogus { code, .. } if *code == ExtendedError::RRSIGS_MISSING)
        {
            return error;
        }
        let zone = {
            let keys = work.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter()
                .filter(|(owner, records)| {
                    owner.zone_of(name) && records.iter().any(|r| r.record_type() == RecordType::DS)
                })
                .map(|(owner, _)| owner.clone())
                .max_by_key(|owner| owner.num_labels())
        };
        let Some(zone) = zone else { return error };
        let mut question = Question::new(zone.clone(), RecordType::DNSKEY);
        question.dnssec_ok = true;
        question.checking_disabled = true;
        match self.fetch.fetch(question).await {
            Outcome::Success(answer) | Outcome::NotFound(answer)
                if !answer
                    .answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::DNSKEY) =>
            {
                DnssecError::Bogus {
                    code: ExtendedError::DNSKEY_MISSING,
                    reason: format!("{zone} has a DS record but no DNSKEY"),
                }
            }
            _ => error,
        }
    }

    fn indeterminate(&self, reason: &'static str) -> Outcome {
        self.stats.indeterminate.fetch_add(1, Ordering::Relaxed);
        Outcome::TryAgain(DnssecError::Indeterminate(reason).into())
    }

    /// Reads hickory's verdict.
    fn judge(
        &self,
        question: &Question,
        result: &Result<DnsResponse, NetError>,
        work: &Work,
    ) -> Result<Security, DnssecError> {
        if work.exceeded.load(Ordering::Relaxed) {
            self.stats.limited.fetch_add(1, Ordering::Relaxed);
            return Err(DnssecError::TooMuchWork);
        }
        match result {
            Ok(response) => self.security_of(response, work),
            // An NSEC or NSEC3 proof that did not prove: insecure when the zone is (NSEC3
            // iterations over the limit, an opt-out span), else bogus.
            Err(NetError::Dns(DnsError::Nsec {
                proof, response, ..
            })) => match proof {
                Proof::Secure | Proof::Insecure | Proof::Indeterminate => Ok(Security::Insecure),
                Proof::Bogus => match self.security_of(response, work) {
                    Err(error) => Err(error),
                    Ok(security) if wildcard::proves_expansion(&question.name, response) => {
                        Ok(security)
                    }
                    Ok(_) => Err(DnssecError::Bogus {
                        code: ExtendedError::NSEC_MISSING,
                        reason: format!(
                            "no proof that {} {} does not exist",
                            question.name, question.record_type
                        ),
                    }),
                },
            },
            Err(error) if work.failed.load(Ordering::Relaxed) > 0 => {
                tracing::debug!(%error, "a DS or DNSKEY set could not be fetched");
                Err(DnssecError::Indeterminate(
                    "the DS or DNSKEY records could not be fetched from the upstreams",
                ))
            }
            Err(error) => Err(DnssecError::Bogus {
                code: ExtendedError::DNSSEC_BOGUS,
                reason: error.to_string(),
            }),
        }
    }

    /// Secure if every RRset of the answer and authority sections is (RFC 4035 §3.2.3: AD
    /// "only if ... all RRsets in the Answer and Authority sections ... [are] authentic");
    /// bogus if one is.
    fn security_of(&self, response: &DnsResponse, work: &Work) -> Result<Security, DnssecError> {
        let mut security = Security::Secure;
        let mut seen = false;
        for record in response.answers.iter().chain(&response.authorities) {
            if record.record_type() == RecordType::RRSIG {
                continue;
            }
            seen = true;
            let trusted_negative = self.config.is_negative(&LowerName::new(&record.name));
            match record.proof {
                Proof::Secure => {}
                _ if trusted_negative => security = Security::Insecure,
                Proof::Insecure | Proof::Indeterminate => security = Security::Insecure,
                Proof::Bogus => return Err(diagnose(response, record, work)),
            }
        }
        Ok(if seen { security } else { Security::Insecure })
    }

    /// The validating handle, with the trust anchors as keys.
    async fn build(&self) -> Result<DnssecDnsHandle<UpstreamHandle>, Outcome> {
        let mut anchors = TrustAnchors::empty();
        for anchor in &self.config.trust_anchors {
            let zone = LowerName::new(&anchor.zone);
            match &anchor.kind {
                AnchorKind::Key(key) => {
                    anchors.insert_with_name(key.public_key(), zone);
                }
                AnchorKind::Digest(_) => {}
            }
        }
        let mut digest_zones: Vec<&hickory_proto::rr::Name> = Vec::new();
        for anchor in &self.config.trust_anchors {
            if matches!(anchor.kind, AnchorKind::Digest(_)) && !digest_zones.contains(&&anchor.zone)
            {
                digest_zones.push(&anchor.zone);
            }
        }
        for zone in digest_zones {
            let mut question = Question::new(zone.clone(), RecordType::DNSKEY);
            question.dnssec_ok = true;
            question.checking_disabled = true;
            let keys = match self.fetch.fetch(question).await {
                Outcome::Success(answer) => answer.answers,
                failure @ (Outcome::TryAgain(_) | Outcome::Unavail(_)) => return Err(failure),
                Outcome::NotFound(_) => Vec::new(),
            };
            let mut matched = 0;
            for key in keys.iter().filter_map(|record| match &record.data {
                RData::DNSSEC(DNSSECRData::DNSKEY(key)) if record.name == *zone => Some(key),
                _ => None,
            }) {
                let covered = self.config.trust_anchors.iter().any(|anchor| {
                    anchor.zone == *zone
                        && matches!(&anchor.kind, AnchorKind::Digest(ds) if ds.covers(zone, key).unwrap_or(false))
                });
                if covered {
                    anchors.insert_with_name(key.public_key(), LowerName::new(zone));
                    matched += 1;
                }
            }
            if matched == 0 {
                tracing::error!(%zone, "no DNSKEY of the zone matches its DS trust anchor: answers are not validated until one does");
                return Err(Outcome::TryAgain(
                    DnssecError::Bogus {
                        code: ExtendedError::DNSKEY_MISSING,
                        reason: format!("no DNSKEY of {zone} matches its trust anchor"),
                    }
                    .into(),
                ));
            }
        }
        Ok(DnssecDnsHandle::with_trust_anchor(
            UpstreamHandle {
                fetch: Arc::clone(&self.fetch),
            },
            Arc::new(anchors),
        )
        .nsec3_iteration_limits(Some(NSEC3_INSECURE_ITERATIONS), Some(u16::MAX))
        .validation_cache_size(VALIDATION_CACHE_ENTRIES))
    }
}

/// The answer as the client asked it. RFC 4035 §3.2.1: without DO, "the name server MUST NOT
/// include" RRSIG, NSEC or NSEC3 records unless they were asked for; and a positive answer
/// loses its authority and additional sections, as `upstream::answer_from` does.
fn for_client(mut answer: Answer, question: &Question) -> Answer {
    if question.dnssec_ok {
        return answer;
    }
    let asked = question.record_type;
    let keep = |record: &Record| {
        let kind = record.record_type();
        kind == asked
            || !matches!(
                kind,
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )
    };
    answer.answers.retain(keep);
    answer.authorities.retain(keep);
    answer.additionals.retain(keep);
    if answer.response_code == ResponseCode::NoError && !answer.answers.is_empty() {
        answer.authorities.clear();
        answer.additionals.clear();
    }
    answer
}

#[cfg(test)]
mod tests;
