use std::time::Duration;

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::time::Instant;

use super::bogus::BogusMemory;
use super::*;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn a(owner: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::A(A::new(192, 0, 2, 1)))
}

fn nsec(owner: &str, next: &str) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(
            name(next),
            [RecordType::A, RecordType::NSEC],
        ))),
    )
}

#[test]
fn without_do_the_client_gets_no_dnssec_records_unless_it_asked_for_them() {
    let raw = Answer {
        answers: vec![a("www.example.")],
        authorities: vec![nsec("*.example.", "zz.example.")],
        ..Answer::default()
    };
    let plain = Question::new(name("www.example."), RecordType::A);
    let answer = for_client(raw.clone(), &plain);
    assert_eq!(answer.answers.len(), 1);
    assert!(answer.authorities.is_empty(), "RFC 4035 §3.2.1");

    let mut with_do = plain.clone();
    with_do.dnssec_ok = true;
    assert_eq!(for_client(raw.clone(), &with_do), raw, "DO=1: as fetched");

    let asked_nsec = Question::new(name("*.example."), RecordType::NSEC);
    let nodata = Answer {
        answers: vec![nsec("*.example.", "zz.example.")],
        ..Answer::default()
    };
    assert_eq!(
        for_client(nodata.clone(), &asked_nsec),
        nodata,
        "asked for by type: kept"
    );
}

#[test]
fn a_bogus_answer_is_remembered_briefly_and_longer_while_it_stays_bogus() {
    let memory = BogusMemory::default();
    let key = CacheKey::new(&Question::new(name("www.bad.example."), RecordType::A));
    let error = DnssecError::Bogus {
        code: ExtendedError::DNSSEC_BOGUS,
        reason: "test".to_owned(),
    };
    let start = Instant::now();
    assert_eq!(memory.remembered(&key, start), None);
    memory.record(&key, error.clone(), start);
    assert_eq!(memory.remembered(&key, start), Some(error.clone()));
    let later = start + Duration::from_millis(1500);
    assert_eq!(memory.remembered(&key, later), None, "1 s the first time");
    memory.record(&key, error.clone(), later);
    assert!(memory
        .remembered(&key, later + Duration::from_millis(1900))
        .is_some());
    let mut now = later;
    for _ in 0..20 {
        now += Duration::from_secs(1);
        memory.record(&key, error.clone(), now);
    }
    assert!(memory
        .remembered(&key, now + Duration::from_secs(59))
        .is_some());
    assert!(
        memory
            .remembered(&key, now + Duration::from_secs(61))
            .is_none(),
        "at most a minute"
    );
}

#[test]
fn bogus_answers_end_in_servfail_with_their_extended_error() {
    use crate::chain::Failure;
    let expired = DnssecError::Bogus {
        code: ExtendedError::SIGNATURE_EXPIRED,
        reason: "expired".to_owned(),
    };
    assert_eq!(expired.response_code(), ResponseCode::ServFail);
    assert_eq!(expired.extended_error().map(|e| e.code), Some(7));
    assert_eq!(
        DnssecError::TooMuchWork.extended_error().map(|e| e.code),
        Some(6)
    );
    assert_eq!(
        DnssecError::Indeterminate("x")
            .extended_error()
            .map(|e| e.code),
        Some(5)
    );
    assert!(!DnssecError::Indeterminate("x").is_bogus());
}

#[test]
fn negative_trust_anchors_cover_their_domain_and_below() {
    let config = DnssecConfig {
        validate: true,
        negative_trust_anchors: vec![LowerName::new(&name("corp.example."))],
        ..DnssecConfig::default()
    };
    let lower = |text: &str| LowerName::new(&name(text));
    assert!(config.is_negative(&lower("corp.example.")));
    assert!(config.is_negative(&lower("a.b.CORP.example.")));
    assert!(!config.is_negative(&lower("notcorp.example.")));
    assert!(!config.is_negative(&lower("example.")));
}
