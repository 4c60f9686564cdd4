//! [`read_common`] against hickory's whole-message read: for every query it takes, it must
//! give the question and OPT record `Message::from_vec` gives, or the front of the general
//! path would answer a different question than before.

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::encode::{reply, Asked};
use super::{read_common, HEADER_LENGTH};
use hickory_proto::rr::Record;

/// What the direct read makes of `packet`, if it takes it: the question, the OPT record, and
/// where the question ends.
fn direct(packet: &[u8]) -> Option<(Query, Option<Edns>, usize)> {
    let mut decoder = BinDecoder::new(packet);
    let header = Header::read(&mut decoder).ok()?;
    read_common(&mut decoder, header.metadata.op_code, &header.counts)
}

/// Fails unless hickory reads `packet` to the same question and OPT record as `direct` did,
/// and a reply that copies the question's bytes is the reply written from the parsed question.
fn agrees(packet: &[u8], direct: &(Query, Option<Edns>, usize)) {
    let message = Message::from_vec(packet)
        .unwrap_or_else(|e| panic!("read directly, rejected by hickory ({e}): {packet:02x?}"));
    assert_eq!(message.queries.len(), 1, "{packet:02x?}");
    assert_eq!(message.queries[0], direct.0, "{packet:02x?}");
    assert_eq!(message.edns, direct.1, "{packet:02x?}");
    let metadata = Metadata::new(1, MessageType::Response, OpCode::Query);
    let replies = [Some(&packet[HEADER_LENGTH..direct.2]), None].map(|bytes| {
        let asked = Asked {
            query: &direct.0,
            bytes,
        };
        let mut out = Vec::new();
        let no_records: [&[Record]; 3] = [&[], &[], &[]];
        reply(&metadata, asked, no_records, None, 65_535, &mut out).map(|()| out)
    });
    assert_eq!(replies[0], replies[1], "{packet:02x?}");
}

/// Queries of the common shape and of others, as clients send them.
fn corpus() -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let names = [
        "example.com.",
        "a.b.c.d.e.f.example.",
        ".",
        "xn--bcher-kva.example.",
        "A.Mixed.CASE.",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::ANY,
        RecordType::AXFR,
    ];
    for (i, name) in names.iter().enumerate() {
        for (j, record_type) in types.iter().enumerate() {
            let name = Name::from_ascii(name).expect("a valid name");
            let mut query = Query::query(name, *record_type);
            if i == 1 && j == 1 {
                query.set_query_class(DNSClass::CH);
            }
            for edns in 0..5 {
                let mut message =
                    Message::new(0x1234 + j as u16, MessageType::Query, OpCode::Query);
                message.metadata.recursion_desired = i % 2 == 0;
                message.metadata.checking_disabled = j % 2 == 1;
                message.add_query(query.clone());
                if edns > 0 {
                    let mut opt = Edns::new();
                    opt.set_max_payload(if edns == 1 { 512 } else { 1232 })
                        .set_dnssec_ok(edns >= 3)
                        .set_version(if edns == 4 { 1 } else { 0 });
                    if edns >= 2 {
                        opt.options_mut()
                            .insert(EdnsOption::Unknown(10, vec![7; 8]));
                    }
                    if edns == 3 {
                        opt.options_mut()
                            .insert(EdnsOption::Unknown(12, vec![0; 20]));
                    }
                    message.set_edns(opt);
                }
                out.push((message.to_vec().expect("encodes"), true));
            }
        }
    }
    // Not the common shape: two questions, a record in the answer section, an A record
    // where the OPT would be, and a NOTIFY.
    let query = Query::query(
        Name::from_ascii("example.com.").expect("valid"),
        RecordType::A,
    );
    let mut two = Message::new(1, MessageType::Query, OpCode::Query);
    two.add_query(query.clone()).add_query(query.clone());
    out.push((two.to_vec().expect("encodes"), false));
    let mut notify = Message::new(2, MessageType::Query, OpCode::Notify);
    notify.add_query(query.clone());
    out.push((notify.to_vec().expect("encodes"), false));
    let record = hickory_proto::rr::Record::from_rdata(
        Name::from_ascii("example.com.").expect("valid"),
        60,
        hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
    );
    let mut answer = Message::new(3, MessageType::Query, OpCode::Query);
    answer.add_query(query.clone()).add_answer(record.clone());
    out.push((answer.to_vec().expect("encodes"), false));
    let mut additional = Message::new(4, MessageType::Query, OpCode::Query);
    additional.add_query(query).add_additional(record);
    out.push((additional.to_vec().expect("encodes"), false));
    out
}

#[test]
fn the_direct_read_takes_the_common_query_and_agrees_with_hickory() {
    for (packet, common) in corpus() {
        let read = direct(&packet);
        assert_eq!(read.is_some(), common, "{packet:02x?}");
        if let Some(read) = &read {
            agrees(&packet, read);
            // Bytes after the last record are ignored by both.
            let mut longer = packet.clone();
            longer.extend_from_slice(&[0xff, 0, 1]);
            agrees(&longer, &direct(&longer).expect("still the common shape"));
        }
    }
}

#[test]
fn every_damaged_query_the_direct_read_takes_is_read_alike_by_hickory() {
    let mut taken = 0;
    let mut left = 0;
    for (packet, _) in corpus() {
        // Every truncation, and every byte changed in a few ways (counts, label lengths,
        // compression pointers, types and the OPT record's fields among them).
        let mut damaged: Vec<Vec<u8>> = (0..packet.len()).map(|n| packet[..n].to_vec()).collect();
        for at in 0..packet.len() {
            for flip in [0x01, 0x3f, 0x40, 0x80, 0xc0, 0xff] {
                let mut bytes = packet.clone();
                bytes[at] ^= flip;
                damaged.push(bytes);
            }
        }
        for bytes in damaged {
            match direct(&bytes) {
                Some(read) => {
                    agrees(&bytes, &read);
                    taken += 1;
                }
                None => left += 1,
            }
        }
    }
    // Both kinds occur, so neither branch of the comparison is empty.
    assert!(taken > 1000 && left > 1000, "taken {taken}, left {left}");
}
