//! Extended DNS Errors (RFC 8914): why Hearth itself refused, failed or answered stale.
//!
//! A source or the front door says which error applies; the engine writes it into the reply's
//! OPT record, and only when the client sent one: RFC 8914 §3, "the EDE option ... MUST NOT be
//! included in a response to a query that did not contain an OPT". The codes are those of the
//! IANA registry ("Extended DNS Error Codes"); the EXTRA-TEXT is short, for a person reading
//! `dig`'s output, and never echoes anything a client sent.

use std::borrow::Cow;

/// One Extended DNS Error: its INFO-CODE and EXTRA-TEXT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedError {
    pub code: u16,
    pub text: Cow<'static, str>,
}

impl ExtendedError {
    /// RFC 8914 §4.1: "Other Error ... the error in question falls into a category that does
    /// not match known extended error codes".
    pub const OTHER: u16 = 0;
    /// §4.4: "Stale Answer: the resolver was unable to resolve the answer within its time
    /// limits and decided to answer with previously cached data" (RFC 8767).
    pub const STALE_ANSWER: u16 = 3;
    /// §4.6: "DNSSEC Indeterminate: the resolver attempted to perform DNSSEC validation, but
    /// validation ended in the Indeterminate state" (RFC 4035).
    pub const DNSSEC_INDETERMINATE: u16 = 5;
    /// §4.7: "DNSSEC Bogus: the resolver attempted to perform DNSSEC validation, but validation
    /// ended in the Bogus state".
    pub const DNSSEC_BOGUS: u16 = 6;
    /// §4.8: "Signature Expired: ... no signatures are presently valid and some (often all) are
    /// expired".
    pub const SIGNATURE_EXPIRED: u16 = 7;
    /// §4.9: "Signature Not Yet Valid: ... no signatures are presently valid and at least some
    /// are not yet valid".
    pub const SIGNATURE_NOT_YET_VALID: u16 = 8;
    /// §4.10: "DNSKEY Missing: a DS record existed at a parent, but no supported matching DNSKEY
    /// record could be found for the child".
    pub const DNSKEY_MISSING: u16 = 9;
    /// §4.11: "RRSIGs Missing: ... no RRSIGs could be found for at least one RRset where RRSIGs
    /// were expected".
    pub const RRSIGS_MISSING: u16 = 10;
    /// §4.13: "NSEC Missing: the requested data was missing and a covering NSEC or NSEC3 was not
    /// provided".
    pub const NSEC_MISSING: u16 = 12;
    /// §4.14: "Cached Error: the resolver has cached SERVFAIL for this query" (RFC 9520).
    pub const CACHED_ERROR: u16 = 13;
    /// §4.15: "Not Ready: the server is unable to answer the query, as it was not fully
    /// functional when the query was received" (the cluster zone before its objects load).
    pub const NOT_READY: u16 = 14;
    /// §4.19: "Prohibited: the server is unable to respond to the request because the server is
    /// not authorized to respond" (`[access]`).
    pub const PROHIBITED: u16 = 18;
    /// §4.23: "No Reachable Authority: the resolver could not reach any of the authoritative
    /// name servers (or they potentially refused to reply)": for a forwarder, its upstreams.
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    /// §4.24: "Network Error: an unrecoverable error occurred while communicating with another
    /// server."
    pub const NETWORK_ERROR: u16 = 23;

    pub fn new(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// The option's data (RFC 8914 §2): INFO-CODE, then EXTRA-TEXT in UTF-8, not terminated.
    pub fn option_data(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(2 + self.text.len());
        data.extend_from_slice(&self.code.to_be_bytes());
        data.extend_from_slice(self.text.as_bytes());
        data
    }
}

/// The EDNS option code of an Extended DNS Error (RFC 8914 §2).
pub const OPTION_CODE: u16 = 15;
