//! Replies encoded by hand, straight into their buffer, for the record types most answers hold.
//!
//! Why by hand: hickory's `Message::to_vec` is general, and its name compression keeps a copy
//! of every suffix it writes (an allocation each) and compares them one by one. On a
//! random-subdomain flood against a zone, where every query takes the general path, encoding
//! was 13% of the server's core, and 16% on the cluster zone's search-path NXDOMAINs: more
//! than finding the answer. Here the compression table is an array on the stack of the
//! offsets already written, and a reply takes one buffer and no other allocation.
//!
//! What is written here: a reply whose records are all A, AAAA, CNAME, NS, PTR, SOA or SRV,
//! and whose OPT record, if any, has no options. Anything else (another type, DNSSEC records,
//! a COOKIE or an Extended DNS Error option, an extended RCODE) returns `None`, and the caller
//! has hickory encode it. Both write the same bytes: the compression below is hickory's (the
//! longest suffix already written, in the order written, compared byte for byte), and a test
//! compares the two over a corpus of answers, byte for byte. So a reply is the same whichever
//! wrote it, and the fast path's stored replies are what they were.
//!
//! Compression, RFC 1035 §4.1.4: "a domain name in a message can be represented as either a
//! sequence of labels ending in a zero octet, a pointer, or a sequence of labels ending with a
//! pointer". Names are compared byte for byte, as hickory compares them, so a name keeps the
//! case it has (an answer's owner is written as the client wrote it; it points into the
//! question only where the bytes are the same). RFC 3597 §4: only the names in the RDATA of
//! the types RFC 1035 defines may be compressed (NS, CNAME, PTR and SOA here); an SRV target is
//! written in full (RFC 2782: "name compression is not to be used for this field").

use hickory_proto::op::{Edns, MessageType, Metadata, Query};
use hickory_proto::rr::{Name, RData, Record};

/// Offsets a name may be pointed at: 14 bits (RFC 1035 §4.1.4).
const POINTER_LIMIT: usize = 0x4000;

/// Labels remembered for compression; names after that are still compressed against them, but
/// not remembered themselves. A reply of local data names a handful. hickory's limit too
/// (though it counts offsets a little differently past 16 KiB, so in a very large reply the
/// two may compress differently; both are correct).
const REMEMBERED: usize = 64;

/// Names compressed at most in one reply; later ones are written in full. hickory's limit,
/// which it took from Unbound's fix for CVE-2024-8508 (a reply of many names made name
/// compression the cost of answering).
const COMPRESSED_NAMES: usize = 120;

/// Labels of a name written here; a longer name (up to 127 labels) goes to hickory.
const MAX_LABELS: usize = 32;

/// The OPT record's type (RFC 6891 §6.1.1).
const OPT: u16 = 41;

/// The question a reply repeats: the parsed query, and the question section as the query's
/// packet holds it, when the caller has it.
#[derive(Clone, Copy)]
pub(super) struct Asked<'a> {
    pub query: &'a Query,
    /// The question section's bytes in the query (name, type, class). Copied as they are when
    /// the name holds no compression pointer: hickory read `query` from them, and writes it
    /// back byte for byte (names keep their case), so the reply is the same either way, with
    /// no walk over the name's labels (on a long tail's NXDOMAIN flood, writing the question's
    /// name was a fifth of the encoder's instructions).
    pub bytes: Option<&'a [u8]>,
}

/// The message `metadata` heads, with the question `asked`, the three sections and the OPT
/// record `edns`, if every part is one written here and it fits in 65,535 bytes; when it is
/// larger than `limit`, the header, the question and the OPT record with TC=1 instead (RFC
/// 2181 §9), written over `out` (a buffer the caller reuses: the UDP thread lends its reply
/// slot's, so a reply takes no allocation). `None`: hickory encodes it (`out` then holds
/// nothing of use).
pub(super) fn reply(
    metadata: &Metadata,
    asked: Asked<'_>,
    sections: [&[Record]; 3],
    edns: Option<&Edns>,
    limit: usize,
    out: &mut Vec<u8>,
) -> Option<()> {
    let response_code = u16::from(metadata.response_code);
    if response_code > 0x0F || edns.is_some_and(|edns| !edns.options().options.is_empty()) {
        return None;
    }
    let mut writer = Writer::new(out);
    writer.header(metadata, false);
    if asked
        .bytes
        .and_then(|bytes| writer.question(bytes))
        .is_none()
    {
        let query = asked.query;
        writer.name(query.name(), true)?;
        writer.u16(u16::from(query.query_type()));
        writer.u16(u16::from(query.query_class()));
    }
    let question_end = writer.out.len();
    let mut counts = [0u16; 3];
    for (count, section) in counts.iter_mut().zip(sections) {
        for record in section {
            writer.record(record)?;
        }
        *count = u16::try_from(section.len()).ok()?;
    }
    let additionals = counts[2].checked_add(u16::from(edns.is_some()))?;
    if let Some(edns) = edns {
        writer.opt(edns);
    }
    if writer.out.len() > usize::from(u16::MAX) {
        return None;
    }
    if writer.out.len() > limit {
        // Too large for this transport: the client asks again over TCP (RFC 7766 §5).
        writer.out.truncate(question_end);
        writer.header(metadata, true);
        writer.counts([1, 0, 0, u16::from(edns.is_some())]);
        if let Some(edns) = edns {
            writer.opt(edns);
        }
        return Some(());
    }
    writer.counts([1, counts[0], counts[1], additionals]);
    Some(())
}

/// A message being written, and where its names are.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// The offset of every label written in full so far: each starts a name that can be
    /// pointed at (the rest of that name, through any pointer that ends it).
    labels: [u16; REMEMBERED],
    /// How many labels the name at each of `labels` has, through any pointer that ends it: a
    /// name of `n` labels can only be the suffix of `n` labels of another, so each offset is
    /// compared with one suffix at most (see [`Writer::longest_written_suffix`]).
    label_counts: [u8; REMEMBERED],
    remembered: usize,
    /// Names written with compression so far.
    compressed: usize,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.clear();
        // A typical reply fits; hickory starts at 512 too.
        out.reserve(512);
        Self {
            out,
            labels: [0; REMEMBERED],
            label_counts: [0; REMEMBERED],
            remembered: 0,
            compressed: 0,
        }
    }

    fn u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    /// The 12-byte header at the start (RFC 1035 §4.1.1), its counts left at zero.
    fn header(&mut self, metadata: &Metadata, truncated: bool) {
        let mut first = u8::from(metadata.op_code) << 3;
        first |= u8::from(metadata.message_type == MessageType::Response) << 7;
        first |= u8::from(metadata.authoritative) << 2;
        first |= u8::from(metadata.truncation || truncated) << 1;
        first |= u8::from(metadata.recursion_desired);
        let mut second = metadata.response_code.low();
        second |= u8::from(metadata.recursion_available) << 7;
        second |= u8::from(metadata.authentic_data) << 5;
        second |= u8::from(metadata.checking_disabled) << 4;
        let [id_high, id_low] = metadata.id.to_be_bytes();
        let header = [id_high, id_low, first, second, 0, 0, 0, 0, 0, 0, 0, 0];
        if self.out.len() < 12 {
            self.out.clear();
            self.out.extend_from_slice(&header);
        } else {
            self.out[..12].copy_from_slice(&header);
        }
    }

    /// QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
    fn counts(&mut self, counts: [u16; 4]) {
        for (at, count) in counts.into_iter().enumerate() {
            self.out[4 + 2 * at..6 + 2 * at].copy_from_slice(&count.to_be_bytes());
        }
    }

    /// Copies the question section `bytes` (a name, a type and a class) and remembers its
    /// name's labels, as [`Writer::name`] would have written and remembered them; `None`, with
    /// nothing written, unless the name is labels of at most 63 bytes ending in the root (no
    /// pointer), at most [`MAX_LABELS`] of them, followed by exactly four bytes.
    fn question(&mut self, bytes: &[u8]) -> Option<()> {
        let mut at = 0;
        let mut count = 0;
        loop {
            let length = usize::from(*bytes.get(at)?);
            if length == 0 {
                break;
            }
            if length > 63 {
                return None;
            }
            count += 1;
            at += 1 + length;
        }
        if count > MAX_LABELS || bytes.len() != at + 1 + 4 {
            return None;
        }
        // The question is the first name: compressed against nothing, but counted as one
        // compressed, as `name` counts it.
        self.compressed += 1;
        let base = self.out.len();
        let mut at = 0;
        for left in (1..=count).rev() {
            let start = base + at;
            if start < POINTER_LIMIT && self.remembered < REMEMBERED {
                self.labels[self.remembered] = start as u16;
                // At most MAX_LABELS (32) labels.
                self.label_counts[self.remembered] = left as u8;
                self.remembered += 1;
            }
            at += 1 + usize::from(bytes[at]);
        }
        self.out.extend_from_slice(bytes);
        Some(())
    }

    /// Writes `name`, ending in a pointer to the longest suffix already written if `compress`;
    /// `None` if it has more than [`MAX_LABELS`] labels (hickory writes those) or a label longer
    /// than 63 bytes (RFC 1035 §2.3.4), which no `Name` holds.
    fn name(&mut self, name: &Name, compress: bool) -> Option<()> {
        // The labels on the stack: a name with more is rare enough to leave to hickory.
        let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
        let mut count = 0;
        for label in name.iter() {
            *labels.get_mut(count)? = label;
            count += 1;
        }
        let labels = &labels[..count];
        // Past COMPRESSED_NAMES names, no more searching: a reply of thousands of records
        // (over TCP) would otherwise cost a search each (Unbound's CVE-2024-8508).
        let compress = compress && self.compressed < COMPRESSED_NAMES;
        self.compressed += usize::from(compress);
        let found = if compress {
            self.longest_written_suffix(labels)
        } else {
            None
        };
        let written = found.map_or(labels.len(), |(first, _, _)| first);
        // The labels after those written here: the pointer's name's, or none (the root).
        let after = found.map_or(0, |(_, _, count)| usize::from(count));
        for (index, label) in labels[..written].iter().enumerate() {
            if label.len() > 63 {
                return None;
            }
            let start = self.out.len();
            // Remembered even when not compressed itself (an SRV target), as hickory does: a
            // later name may point at it.
            if start < POINTER_LIMIT && self.remembered < REMEMBERED {
                self.labels[self.remembered] = start as u16;
                // At most MAX_LABELS (32) labels here, and a pointer's name is one of them.
                self.label_counts[self.remembered] = (written - index + after) as u8;
                self.remembered += 1;
            }
            self.out.push(label.len() as u8);
            self.out.extend_from_slice(label);
        }
        match found {
            Some((_, offset, _)) => self.u16(0xC000 | offset),
            None => self.out.push(0),
        }
        Some(())
    }

    /// The longest suffix of `labels` (the whole name included) already written, as `(first,
    /// offset, count)`: the suffix `labels[first..]`, where it was written, and its label
    /// count. The root alone is never pointed at (it is one byte; a pointer is two): every
    /// remembered name has at least one label.
    ///
    /// hickory's order, which the tests hold this to: the longest suffix wins, and of the
    /// places one suffix was written, the first remembered. Each remembered name is compared
    /// only with the suffix of its own label count, the one suffix it could equal, rather than
    /// every suffix with every remembered name: a reply's names are compared once each.
    fn longest_written_suffix(&self, labels: &[&[u8]]) -> Option<(usize, u16, u8)> {
        let mut best: Option<(usize, u16, u8)> = None;
        for (&offset, &count) in self.labels[..self.remembered]
            .iter()
            .zip(&self.label_counts[..self.remembered])
        {
            let Some(first) = labels.len().checked_sub(usize::from(count)) else {
                continue;
            };
            if best.is_some_and(|(longest, _, _)| first >= longest) {
                continue;
            }
            if self.name_at_is(usize::from(offset), &labels[first..]) {
                best = Some((first, offset, count));
                if first == 0 {
                    break;
                }
            }
        }
        best
    }

    /// Whether the name written at `offset` is `labels`, byte for byte, then the root.
    fn name_at_is(&self, mut offset: usize, labels: &[&[u8]]) -> bool {
        let mut labels = labels.iter();
        // Each pointer goes back (RFC 1035 §4.1.4, a "prior occurence"), so the walk ends; the
        // bound is for safety only.
        for _ in 0..256 {
            let Some(&length) = self.out.get(offset) else {
                return false;
            };
            if length & 0xC0 == 0xC0 {
                let Some(&low) = self.out.get(offset + 1) else {
                    return false;
                };
                offset = (usize::from(length & 0x3F) << 8) | usize::from(low);
                continue;
            }
            if length == 0 {
                return labels.next().is_none();
            }
            let start = offset + 1;
            let end = start + usize::from(length);
            match labels.next() {
                Some(label) if self.out.get(start..end) == Some(label) => offset = end,
                _ => return false,
            }
        }
        false
    }

    /// One record (RFC 1035 §4.1.3); `None` if its type is not one written here.
    fn record(&mut self, record: &Record) -> Option<()> {
        self.name(&record.name, true)?;
        self.u16(u16::from(record.record_type()));
        self.u16(u16::from(record.dns_class));
        self.u32(record.ttl);
        let length_at = self.out.len();
        self.u16(0);
        match &record.data {
            RData::A(address) => self.out.extend_from_slice(&address.0.octets()),
            RData::AAAA(address) => self.out.extend_from_slice(&address.0.octets()),
            RData::CNAME(target) => self.name(&target.0, true)?,
            RData::NS(target) => self.name(&target.0, true)?,
            RData::PTR(target) => self.name(&target.0, true)?,
            RData::SOA(soa) => {
                self.name(&soa.mname, true)?;
                self.name(&soa.rname, true)?;
                self.u32(soa.serial);
                self.u32(soa.refresh as u32);
                self.u32(soa.retry as u32);
                self.u32(soa.expire as u32);
                self.u32(soa.minimum);
            }
            RData::SRV(srv) => {
                self.u16(srv.priority);
                self.u16(srv.weight);
                self.u16(srv.port);
                self.name(&srv.target, false)?;
            }
            _ => return None,
        }
        let length = u16::try_from(self.out.len() - length_at - 2).ok()?;
        self.out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
        Some(())
    }

    /// The OPT record of `edns`, which has no options (RFC 6891 §6.1.2, §6.1.3): the root, the
    /// payload size in the class field (at least 512), the extended RCODE (0 here), version
    /// and flags in the TTL field.
    fn opt(&mut self, edns: &Edns) {
        self.out.push(0);
        self.u16(OPT);
        self.u16(edns.max_payload().max(512));
        self.u32((u32::from(edns.version()) << 16) | u32::from(u16::from(*edns.flags())));
        self.u16(0);
    }
}

#[cfg(test)]
mod tests;
