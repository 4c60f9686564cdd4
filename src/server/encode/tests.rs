//! The hand encoder against hickory's: the same message, decoded, over a corpus of answers.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use hickory_proto::serialize::binary::BinEncodable;

use super::Asked;

/// [`super::reply`] into a buffer of its own.
fn reply(
    metadata: &Metadata,
    asked: Asked<'_>,
    sections: [&[Record]; 3],
    edns: Option<&Edns>,
    limit: usize,
) -> Option<Vec<u8>> {
    // Not empty: a reused buffer's old bytes must not show through.
    let mut out = vec![0xAA; 700];
    super::reply(metadata, asked, sections, edns, limit, &mut out).map(|()| out)
}

/// The question as the encoder's callers have it when the query's bytes are gone.
fn asked(query: &Query) -> Asked<'_> {
    Asked { query, bytes: None }
}

/// The question with its section's bytes, as a query from a client holds them.
fn asked_with_bytes<'a>(query: &'a Query, bytes: &'a [u8]) -> Asked<'a> {
    Asked {
        query,
        bytes: Some(bytes),
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a valid name")
}

fn record(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

fn soa() -> Record {
    record(
        "Example.test.",
        300,
        RData::SOA(SOA::new(
            name("ns1.example.test."),
            name("hostmaster.example.test."),
            2026120601,
            7200,
            900,
            1_209_600,
            60,
        )),
    )
}

fn metadata(response_code: ResponseCode) -> Metadata {
    let mut metadata = Metadata::new(0xBEEF, MessageType::Response, OpCode::Query);
    metadata.authoritative = true;
    metadata.recursion_desired = true;
    metadata.recursion_available = true;
    metadata.checking_disabled = true;
    metadata.response_code = response_code;
    metadata
}

fn edns(dnssec_ok: bool) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(1232)
        .set_version(0)
        .set_dnssec_ok(dnssec_ok);
    edns
}

/// What hickory writes for the same parts.
fn hickory(
    metadata: &Metadata,
    query: &Query,
    sections: [&[Record]; 3],
    edns: Option<&Edns>,
) -> Vec<u8> {
    let mut message = Message::new(metadata.id, MessageType::Response, metadata.op_code);
    message.metadata = *metadata;
    message.queries.push(query.clone());
    message.answers = sections[0].to_vec();
    message.authorities = sections[1].to_vec();
    message.additionals = sections[2].to_vec();
    message.edns = edns.cloned();
    message.to_vec().expect("hickory encodes it")
}

/// The corpus: (question, answers, authorities, additionals).
fn corpus() -> Vec<(Query, [Vec<Record>; 3])> {
    let query = |text: &str, record_type| Query::query(name(text), record_type);
    vec![
        // NXDOMAIN from a zone: the SOA's owner is a suffix of the question, in another case.
        (
            query("r1-abc123.example.test.", RecordType::A),
            [vec![], vec![soa()], vec![]],
        ),
        // An address RRset owned by the question as the client wrote it.
        (
            query("WwW.Example.test.", RecordType::A),
            [
                (1..=4)
                    .map(|i| {
                        record(
                            "WwW.Example.test.",
                            60,
                            RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
                        )
                    })
                    .collect(),
                vec![],
                vec![],
            ],
        ),
        (
            query("v6.example.test.", RecordType::AAAA),
            [
                vec![record(
                    "v6.example.test.",
                    60,
                    RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
                )],
                vec![],
                vec![],
            ],
        ),
        // A CNAME chain inside the zone, then out of it.
        (
            query("alias.example.test.", RecordType::A),
            [
                vec![
                    record(
                        "alias.example.test.",
                        300,
                        RData::CNAME(CNAME(name("www.example.test."))),
                    ),
                    record(
                        "www.example.test.",
                        300,
                        RData::CNAME(CNAME(name("cdn.other.test."))),
                    ),
                    record(
                        "cdn.other.test.",
                        30,
                        RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                    ),
                ],
                vec![],
                vec![],
            ],
        ),
        // A referral: NS in authority, glue in additional.
        (
            query("host.sub.example.test.", RecordType::A),
            [
                vec![],
                vec![
                    record(
                        "sub.example.test.",
                        3600,
                        RData::NS(NS(name("ns1.sub.example.test."))),
                    ),
                    record(
                        "sub.example.test.",
                        3600,
                        RData::NS(NS(name("ns.elsewhere.test."))),
                    ),
                ],
                vec![record(
                    "ns1.sub.example.test.",
                    3600,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 53))),
                )],
            ],
        ),
        // SRV (target in full), PTR, a cluster-zone shape.
        (
            query("_http._tcp.web.ns0.svc.cluster.local.", RecordType::SRV),
            [
                vec![record(
                    "_http._tcp.web.ns0.svc.cluster.local.",
                    5,
                    RData::SRV(SRV::new(0, 100, 80, name("web.ns0.svc.cluster.local."))),
                )],
                vec![],
                vec![record(
                    "web.ns0.svc.cluster.local.",
                    5,
                    RData::A(A(Ipv4Addr::new(10, 97, 0, 1))),
                )],
            ],
        ),
        // An SRV target not in the question, then its address: the owner points at the
        // target, which is written in full.
        (
            query("_dns._udp.cluster.local.", RecordType::SRV),
            [
                vec![record(
                    "_dns._udp.cluster.local.",
                    5,
                    RData::SRV(SRV::new(
                        0,
                        100,
                        53,
                        name("kube-dns.kube-system.svc.cluster.local."),
                    )),
                )],
                vec![],
                vec![record(
                    "kube-dns.kube-system.svc.cluster.local.",
                    5,
                    RData::A(A(Ipv4Addr::new(10, 96, 0, 10))),
                )],
            ],
        ),
        // Two SRV targets in full, so `svc.cluster.local.` is written twice, then a name
        // under it: it points at the first place that suffix was written (hickory's order).
        (
            query("_dns._udp.cluster.local.", RecordType::SRV),
            [
                vec![
                    record(
                        "_dns._udp.cluster.local.",
                        5,
                        RData::SRV(SRV::new(0, 100, 53, name("a.svc.cluster.local."))),
                    ),
                    record(
                        "_dns._udp.cluster.local.",
                        5,
                        RData::SRV(SRV::new(0, 100, 53, name("b.svc.cluster.local."))),
                    ),
                ],
                vec![],
                vec![record(
                    "c.svc.cluster.local.",
                    5,
                    RData::A(A(Ipv4Addr::new(10, 96, 0, 10))),
                )],
            ],
        ),
        (
            query("1.0.97.10.in-addr.arpa.", RecordType::PTR),
            [
                vec![record(
                    "1.0.97.10.in-addr.arpa.",
                    5,
                    RData::PTR(PTR(name("web.ns0.svc.cluster.local."))),
                )],
                vec![],
                vec![],
            ],
        ),
        // NODATA at the apex, and the root's own question.
        (
            query("example.test.", RecordType::AAAA),
            [vec![], vec![soa()], vec![]],
        ),
        (query(".", RecordType::NS), [vec![], vec![], vec![]]),
    ]
}

#[test]
fn the_hand_encoder_writes_the_message_hickory_writes() {
    for (query, [answers, authorities, additionals]) in corpus() {
        for response_code in [ResponseCode::NoError, ResponseCode::NXDomain] {
            for edns in [None, Some(edns(false)), Some(edns(true))] {
                let metadata = metadata(response_code);
                let sections = [answers.as_slice(), &authorities, &additionals];
                let theirs = hickory(&metadata, &query, sections, edns.as_ref());
                let expected = Message::from_vec(&theirs).expect("theirs decodes");
                // The question written from the parsed query, and copied from its bytes.
                let bytes = query.to_bytes().expect("the question encodes");
                for asked in [asked(&query), asked_with_bytes(&query, &bytes)] {
                    let copied = asked.bytes.is_some();
                    let ours = reply(&metadata, asked, sections, edns.as_ref(), 65_535)
                        .unwrap_or_else(|| panic!("{query}: written here"));
                    let decoded = Message::from_vec(&ours).expect("ours decodes");
                    let what = format!("{query} {response_code:?} {edns:?} copied: {copied}");
                    assert_eq!(decoded, expected, "{what}");
                    assert_eq!(ours, theirs, "{what}");
                }
            }
        }
    }
}

#[test]
fn a_reply_too_large_for_its_transport_is_the_question_with_tc() {
    let query = Query::query(name("many.example.test."), RecordType::A);
    let answers: Vec<Record> = (0..100u8)
        .map(|i| {
            record(
                "many.example.test.",
                60,
                RData::A(A(Ipv4Addr::new(10, 1, 0, i))),
            )
        })
        .collect();
    let metadata = metadata(ResponseCode::NoError);
    let sections = [answers.as_slice(), &[], &[]];
    for edns in [None, Some(edns(true))] {
        let ours =
            reply(&metadata, asked(&query), sections, edns.as_ref(), 512).expect("written here");
        let decoded = Message::from_vec(&ours).expect("it decodes");
        assert!(decoded.metadata.truncation);
        assert_eq!(decoded.queries, vec![query.clone()]);
        assert!(decoded.answers.is_empty() && decoded.additionals.is_empty());
        assert_eq!(decoded.edns.is_some(), edns.is_some());
        assert_eq!(
            decoded.edns.map(|e| e.flags().dnssec_ok),
            edns.map(|e| e.flags().dnssec_ok)
        );
    }
}

#[test]
fn what_is_not_written_here_is_left_to_hickory() {
    let query = Query::query(name("example.test."), RecordType::MX);
    let plain = metadata(ResponseCode::NoError);
    let mx = [record(
        "example.test.",
        60,
        RData::MX(MX::new(10, name("mail.example.test."))),
    )];
    assert!(reply(&plain, asked(&query), [&mx, &[], &[]], None, 65_535).is_none());
    let txt = [record(
        "example.test.",
        60,
        RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
    )];
    assert!(reply(&plain, asked(&query), [&txt, &[], &[]], None, 65_535).is_none());
    // An OPT record with an option (a COOKIE, an Extended DNS Error): hickory writes it.
    let mut with_option = edns(false);
    with_option
        .options_mut()
        .insert(EdnsOption::Unknown(15, vec![0, 0]));
    assert!(reply(
        &plain,
        asked(&query),
        [&[], &[], &[]],
        Some(&with_option),
        65_535
    )
    .is_none());
    // An extended RCODE lives in the OPT record: hickory writes it.
    let bad_version = metadata(ResponseCode::BADVERS);
    assert!(reply(
        &bad_version,
        asked(&query),
        [&[], &[], &[]],
        Some(&edns(false)),
        65_535
    )
    .is_none());
}

#[test]
fn a_name_is_never_pointed_at_a_different_case() {
    // The owner as the client wrote it; the SOA owner as the zone has it. Only equal bytes
    // are pointed at, so each keeps its own case.
    let query = Query::query(name("x.EXAMPLE.test."), RecordType::A);
    let metadata = metadata(ResponseCode::NXDomain);
    let authorities = [soa()];
    let ours = reply(
        &metadata,
        asked(&query),
        [&[], &authorities, &[]],
        None,
        65_535,
    )
    .expect("written");
    let decoded = Message::from_vec(&ours).expect("it decodes");
    assert_eq!(decoded.authorities[0].name.to_string(), "Example.test.");
    assert_eq!(decoded.queries[0].name().to_string(), "x.EXAMPLE.test.");
}

#[test]
fn a_reply_of_many_names_stops_compressing_where_hickory_does() {
    // 300 CNAMEs of one owner (over TCP): past 120 names both write names in full.
    let query = Query::query(name("big.example.test."), RecordType::CNAME);
    let answers: Vec<Record> = (0..300)
        .map(|i| {
            record(
                "big.example.test.",
                60,
                RData::CNAME(CNAME(name(&format!("t{i}.example.test.")))),
            )
        })
        .collect();
    let metadata = metadata(ResponseCode::NoError);
    let sections = [answers.as_slice(), &[], &[]];
    let ours = reply(&metadata, asked(&query), sections, None, 65_535).expect("written here");
    assert_eq!(ours, hickory(&metadata, &query, sections, None));
}

#[test]
fn a_question_is_copied_only_when_it_is_a_plain_name_type_and_class() {
    let query = Query::query(name("www.example.test."), RecordType::A);
    let metadata = metadata(ResponseCode::NoError);
    let sections: [&[Record]; 3] = [&[], &[], &[]];
    let expected = hickory(&metadata, &query, sections, None);
    let plain = query.to_bytes().expect("the question encodes");
    // A pointer where a label should be, a label over 63 bytes, bytes missing or left over:
    // each is refused, and the question is written from the parsed query instead.
    let mut pointer = vec![3, b'w', b'w', b'w', 0xC0, 12];
    pointer.extend_from_slice(&plain[plain.len() - 4..]);
    let mut long = vec![64];
    long.extend_from_slice(&[b'a'; 64]);
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    let short = &plain[..plain.len() - 1];
    let mut over = plain.clone();
    over.push(0);
    for bytes in [pointer.as_slice(), &long, short, &over, &[]] {
        let ours = reply(
            &metadata,
            asked_with_bytes(&query, bytes),
            sections,
            None,
            65_535,
        )
        .expect("written here");
        assert_eq!(ours, expected, "{bytes:02x?}");
    }
}
