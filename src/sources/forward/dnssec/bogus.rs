//! Why an answer failed validation, as an Extended DNS Error (RFC 8914), and the memory of
//! bogus answers (RFC 9520).
//!
//! hickory marks each record Secure, Insecure, Bogus or Indeterminate, but the reason is
//! dropped on the way out ("TODO better error handling" in its `verify_rrset_with_dnskey`).
//! [`diagnose`] looks at the first bogus RRset again, with what the validation fetched, and
//! names the first cause it can show; no signature is checked again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS, RRSIG};
use hickory_proto::op::DnsResponse;
use hickory_proto::rr::{RData, Record};
use quick_cache::sync::Cache as QuickCache;
use tokio::time::Instant;

use super::handle::Work;
use crate::cache::CacheKey;
use crate::chain::ExtendedError;

/// Why a validated answer could not be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnssecError {
    /// RFC 4033 §5: "Bogus: ... a trust anchor and a secure delegation indicating that subsidiary
    /// data is signed, but the response fails to validate".
    #[error("DNSSEC validation failed: {reason}")]
    Bogus { code: u16, reason: String },
    /// Past a bound on the work of one answer (CVE-2023-50387, KeyTrap).
    #[error("DNSSEC validation stopped: too many signatures, keys or questions for one answer")]
    TooMuchWork,
    /// RFC 4033 §5: "Indeterminate: there is no trust anchor ... or the resolver cannot
    /// determine" the state: here, a DS or DNSKEY set the upstreams did not give.
    #[error("DNSSEC validation could not finish: {0}")]
    Indeterminate(&'static str),
}

impl DnssecError {
    /// Bogus answers are remembered; an indeterminate one is an upstream failure.
    pub fn is_bogus(&self) -> bool {
        !matches!(self, Self::Indeterminate(_))
    }
}

impl crate::chain::Failure for DnssecError {
    /// RFC 4035 §5.5: "... the resolver MUST ... SERVFAIL" for bogus data; the trait's default.
    fn extended_error(&self) -> Option<ExtendedError> {
        Some(match self {
            Self::Bogus { code, reason } => ExtendedError::new(*code, reason.clone()),
            Self::TooMuchWork => ExtendedError::new(
                ExtendedError::DNSSEC_BOGUS,
                "too many signatures or keys to check for one answer",
            ),
            Self::Indeterminate(reason) => {
                ExtendedError::new(ExtendedError::DNSSEC_INDETERMINATE, *reason)
            }
        })
    }
}

/// Why `bogus`, a record hickory marked Bogus in `response`, is.
pub fn diagnose(response: &DnsResponse, bogus: &Record, work: &Work) -> DnssecError {
    let name = &bogus.name;
    let kind = bogus.record_type();
    let fail = |code: u16, reason: String| DnssecError::Bogus { code, reason };
    let signatures: Vec<&RRSIG> = response
        .answers
        .iter()
        .chain(&response.authorities)
        .filter(|record| record.name == *name)
        .filter_map(|record| match &record.data {
            RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) if rrsig.input().type_covered == kind => {
                Some(rrsig)
            }
            _ => None,
        })
        .collect();
    if signatures.is_empty() {
        // §4.11: "RRSIGs Missing: ... could not find any RRSIGs" for a signed zone's data.
        return fail(
            ExtendedError::RRSIGS_MISSING,
            format!("{name} {kind} is not signed"),
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as u32;
    // RFC 4034 §3.1.5: serial number arithmetic (RFC 1982) on the times.
    let before = |a: u32, b: u32| (a.wrapping_sub(b) as i32) < 0;
    if signatures
        .iter()
        .all(|sig| before(sig.input().sig_expiration.get(), now))
    {
        // §4.8: "Signature Expired".
        return fail(
            ExtendedError::SIGNATURE_EXPIRED,
            format!("the signatures of {name} {kind} have expired"),
        );
    }
    if signatures
        .iter()
        .all(|sig| before(now, sig.input().sig_inception.get()))
    {
        // §4.9: "Signature Not Yet Valid".
        return fail(
            ExtendedError::SIGNATURE_NOT_YET_VALID,
            format!("the signatures of {name} {kind} are not valid yet"),
        );
    }
    let keys = work.keys.lock().unwrap_or_else(|e| e.into_inner());
    for sig in &signatures {
        let signer = &sig.input().signer_name;
        let zone_keys: Vec<&DNSKEY> = records_of(keys.get(signer), |data| match data {
            DNSSECRData::DNSKEY(key) => Some(key),
            _ => None,
        });
        let tag = sig.input().key_tag;
        if !zone_keys
            .iter()
            .any(|key| key.calculate_key_tag().ok() == Some(tag))
        {
            // §4.10: "DNSKEY Missing: ... no DNSKEY matches the RRSIG".
            return fail(
                ExtendedError::DNSKEY_MISSING,
                format!("{signer} has no DNSKEY with tag {tag}"),
            );
        }
        let digests: Vec<&DS> = records_of(keys.get(signer), |data| match data {
            DNSSECRData::DS(ds) => Some(ds),
            _ => None,
        });
        if !digests.is_empty()
            && !zone_keys.iter().any(|key| {
                digests
                    .iter()
                    .any(|ds| ds.covers(signer, key).unwrap_or(false))
            })
        {
            // §4.10 again: the parent's DS names a key the zone does not publish.
            return fail(
                ExtendedError::DNSKEY_MISSING,
                format!("no DNSKEY of {signer} matches its DS records"),
            );
        }
    }
    // §4.7: "DNSSEC Bogus" for the rest (a signature that does not verify).
    fail(
        ExtendedError::DNSSEC_BOGUS,
        format!("the signature of {name} {kind} does not verify"),
    )
}

/// The DNSSEC data of `records` that `pick` keeps. The DS set of a zone is stored under the
/// zone's name, as is its DNSKEY set ([`Work`]).
fn records_of<'a, T>(
    records: Option<&'a Vec<Record>>,
    pick: impl Fn(&'a DNSSECRData) -> Option<&'a T>,
) -> Vec<&'a T> {
    records
        .into_iter()
        .flatten()
        .filter_map(|record| match &record.data {
            RData::DNSSEC(data) => pick(data),
            _ => None,
        })
        .collect()
}

/// RFC 9520 §3.3: a failure is cached "at least 1 second ... not more than 5 minutes"; a bogus
/// answer is asked again after 1 s, then 2, 4, ... up to [`MAX_BOGUS`] while it stays bogus
/// (Unbound's `val-bogus-ttl` and hickory's bogus cache: 60 s).
const FIRST_BOGUS: Duration = Duration::from_secs(1);
const MAX_BOGUS: Duration = Duration::from_secs(60);

/// Questions remembered at most: a flood of bogus names cannot grow it.
const CAPACITY: usize = 10_000;

#[derive(Clone, Debug)]
struct Remembered {
    until: Instant,
    interval: Duration,
    error: DnssecError,
}

/// Bogus answers, by question, for a short while.
pub struct BogusMemory {
    entries: QuickCache<CacheKey, Remembered>,
}

impl Default for BogusMemory {
    fn default() -> Self {
        Self {
            entries: QuickCache::new(CAPACITY),
        }
    }
}

impl BogusMemory {
    pub fn remembered(&self, key: &CacheKey, now: Instant) -> Option<DnssecError> {
        self.entries
            .get(key)
            .filter(|entry| now < entry.until)
            .map(|entry| entry.error)
    }

    pub fn record(&self, key: &CacheKey, error: DnssecError, now: Instant) {
        let interval = match self.entries.get(key) {
            Some(previous) if now < previous.until + previous.interval => {
                (previous.interval * 2).min(MAX_BOGUS)
            }
            _ => FIRST_BOGUS,
        };
        self.entries.insert(
            key.clone(),
            Remembered {
                until: now + interval,
                interval,
                error,
            },
        );
    }
}
