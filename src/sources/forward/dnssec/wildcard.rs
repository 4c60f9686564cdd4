//! The proof of a wildcard expansion (RFC 4035 §5.3.4), where hickory's check fails.
//!
//! hickory 0.26's `verify_nsec` looks for an NSEC that *covers* the wildcard name itself. In the
//! usual layout the NSEC that proves the expansion is the wildcard's own (`*.w.example. NSEC
//! next`), which matches the wildcard rather than covering it, so every such answer comes out
//! bogus. Here the proof is checked as RFC 4035 §5.3.4 states it: the RRSIG's Labels field
//! names the wildcard's parent (the closest encloser), and an authenticated NSEC "proves that
//! no closer match exists": it covers the next closer name (the closest encloser plus one label
//! of the question), and nothing exists below that name (the NSEC's next name is not under it,
//! which would make it an empty non-terminal).

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::Proof;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// Whether `response` to `name` is a wildcard expansion whose signatures hickory accepted and
/// whose NSEC proof holds.
pub fn proves_expansion(name: &Name, response: &DnsResponse) -> bool {
    if response.response_code != ResponseCode::NoError {
        return false;
    }
    // The answer's wildcard signature, accepted by hickory: its Labels field.
    let Some(labels) = response
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::DNSSEC(DNSSECRData::RRSIG(rrsig))
                if record.proof == Proof::Secure
                    && record.name == *name
                    && rrsig.input().num_labels < name.num_labels() =>
            {
                Some(rrsig.input().num_labels)
            }
            _ => None,
        })
    else {
        return false;
    };
    let next_closer = name.trim_to(usize::from(labels) + 1);
    response.authorities.iter().any(|record| {
        let RData::DNSSEC(DNSSECRData::NSEC(nsec)) = &record.data else {
            return false;
        };
        if record.proof != Proof::Secure || record.record_type() != RecordType::NSEC {
            return false;
        }
        let (owner, next) = (&record.name, nsec.next_domain_name());
        // RFC 6840 §4.1: an NSEC at a zone cut does not deny names below it.
        let delegation =
            nsec.type_set().contains(RecordType::NS) && !nsec.type_set().contains(RecordType::SOA);
        let covers = next_closer > *owner && (next_closer < *next || next <= owner);
        covers && !(delegation && owner.zone_of(&next_closer)) && !next_closer.zone_of(next)
    })
}
