//! Replies built from a query's own bytes, without a parse: what the front door sends instead of
//! an answer (REFUSED, a truncated "slip", BADCOOKIE), and what a listener sends when it sheds
//! load (SERVFAIL). They must cost nearly nothing, since they are sent when the server is under
//! attack or overloaded, and never be larger than a useful amplifier.
//!
//! Every one is the header with QR set, the ID, opcode, RD and CD copied (RFC 1035 §4.1.1,
//! RFC 4035 §3.2.2), RA set, the question echoed, and no records; then, only if the query had
//! an OPT record (RFC 6891 §7: "lack of presence of an OPT record in a request MUST be taken as
//! an indication that the requestor does not implement any part of this specification"), an
//! OPT with our payload size, the query's DO bit, the upper bits of an extended RCODE, and the
//! options given (an Extended DNS Error, a COOKIE).

use crate::chain::ede::{self, ExtendedError};

use super::cookies;

/// The DNS header's RCODEs used here, and BADCOOKIE (RFC 7873 §8), an extended RCODE.
pub const SERVFAIL: u16 = 2;
pub const REFUSED: u16 = 5;
pub const BADCOOKIE: u16 = 23;

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    /// The RCODE, up to 12 bits (the upper 8 go in the OPT record).
    pub rcode: u16,
    /// TC=1: the client should ask again over TCP.
    pub truncated: bool,
    pub extended_error: Option<&'a ExtendedError>,
    /// A COOKIE option's data: the client cookie and a fresh server cookie.
    pub cookie: Option<&'a [u8]>,
}

/// Writes the reply of `shape` to `query` into `out`; false (nothing to send) when the message
/// is too short to answer, is a response (never answer one: that is how reflection loops
/// start), or its question does not walk.
pub fn build(query: &[u8], shape: Shape<'_>, out: &mut Vec<u8>) -> bool {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return false;
    }
    let questions = u16::from_be_bytes([query[4], query[5]]);
    let end = match questions {
        0 => Some(12),
        1 => question_end(query),
        _ => None,
    };
    let Some(end) = end else {
        return false;
    };
    out.clear();
    out.extend_from_slice(&query[..end]);
    // QR=1, opcode and RD kept, AA=0, TC as asked.
    out[2] = 0x80 | (query[2] & 0x79) | if shape.truncated { 0x02 } else { 0 };
    // RA=1, Z=0, AD=0, CD kept, the RCODE's lower four bits.
    out[3] = 0x80 | (query[3] & 0x10) | (shape.rcode & 0x0f) as u8;
    out[6..12].fill(0);
    if let Some(flags) = cookies::opt_flags(query) {
        let dnssec_ok = flags[2] & 0x80 != 0;
        let ede = shape.extended_error.map(ExtendedError::option_data);
        let options: [Option<(u16, &[u8])>; 2] = [
            shape.cookie.map(|c| (cookies::OPTION_CODE, c)),
            ede.as_deref().map(|e| (ede::OPTION_CODE, e)),
        ];
        push_opt(
            out,
            (shape.rcode >> 4) as u8,
            dnssec_ok,
            options.iter().flatten(),
        );
    }
    true
}

/// Appends an OPT record (RFC 6891 §6.1.2) and counts it in ARCOUNT.
fn push_opt<'a>(
    out: &mut Vec<u8>,
    extended_rcode: u8,
    dnssec_ok: bool,
    options: impl Iterator<Item = &'a (u16, &'a [u8])> + Clone,
) {
    let length: usize = options.clone().map(|(_, data)| 4 + data.len()).sum();
    out.extend_from_slice(&[0, 0, 41]); // root owner, TYPE OPT
    out.extend_from_slice(&super::UDP_PAYLOAD.to_be_bytes()); // CLASS: payload size
    out.extend_from_slice(&[extended_rcode, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    out.extend_from_slice(&(length as u16).to_be_bytes()); // RDLENGTH
    for (code, data) in options {
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    out[11] = 1; // ARCOUNT
}

/// Where the single question of `query` ends, if it walks: an uncompressed name of at most
/// 255 octets (RFC 1035 §3.1; a query's first name has nothing to point back to), then type
/// and class. (Found by the `engine` fuzz target: a longer name was echoed, which no client
/// can have sent in a valid query.)
fn question_end(query: &[u8]) -> Option<usize> {
    /// RFC 1035 §2.3.4: "names ... 255 octets or less", length octets and the root included.
    const MAX_NAME: usize = 255;
    let mut position = 12;
    loop {
        let length = usize::from(*query.get(position)?);
        match length {
            0 => break,
            1..=63 => position += 1 + length,
            _ => return None,
        }
        if position + 1 - 12 > MAX_NAME {
            return None;
        }
    }
    let end = position + 1 + 4;
    (end <= query.len()).then_some(end)
}

/// A query's bytes for the server's unit tests: ID 0xabcd, RD and CD set, one question
/// (`example. A IN`), then an OPT record with no options.
#[cfg(test)]
pub(crate) fn test_query() -> Vec<u8> {
    let mut q = vec![0xab, 0xcd, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Vec<u8> {
        test_query()
    }

    fn refusal() -> Shape<'static> {
        static PROHIBITED: std::sync::LazyLock<ExtendedError> =
            std::sync::LazyLock::new(|| ExtendedError::new(ExtendedError::PROHIBITED, ""));
        Shape {
            rcode: REFUSED,
            truncated: false,
            extended_error: Some(&PROHIBITED),
            cookie: None,
        }
    }

    #[test]
    fn a_refusal_echoes_the_question_and_nothing_else() {
        let mut out = Vec::new();
        assert!(build(&query(), refusal(), &mut out));
        assert_eq!(
            &out[..4],
            &[0xab, 0xcd, 0x81, 0x95],
            "QR RD / RA CD REFUSED"
        );
        assert_eq!(
            &out[4..12],
            &[0, 1, 0, 0, 0, 0, 0, 1],
            "one question, the OPT"
        );
        assert_eq!(
            out.len(),
            12 + 13 + 17,
            "the question and an OPT with EDE 18"
        );
        assert_eq!(&out[out.len() - 6..], &[0, 15, 0, 2, 0, 18]);
        let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(
            parsed.metadata.response_code,
            hickory_proto::op::ResponseCode::Refused
        );
        assert_eq!(parsed.queries[0].name().to_ascii(), "example.");
    }

    #[test]
    fn a_truncation_sets_tc_with_no_error_and_is_no_larger_than_the_query() {
        let mut out = Vec::new();
        let shape = Shape {
            rcode: 0,
            truncated: true,
            extended_error: None,
            cookie: None,
        };
        assert!(build(&query(), shape, &mut out));
        assert!(out.len() <= query().len());
        let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert!(parsed.metadata.truncation);
        assert!(parsed.edns.is_some(), "an EDNS query gets an OPT back");
        assert_eq!(
            parsed.metadata.response_code,
            hickory_proto::op::ResponseCode::NoError
        );
        assert!(parsed.answers.is_empty());
    }

    #[test]
    fn badcookie_is_an_extended_rcode_with_the_cookie() {
        let mut out = Vec::new();
        let cookie = [9u8; 24];
        let shape = Shape {
            rcode: BADCOOKIE,
            truncated: false,
            extended_error: None,
            cookie: Some(&cookie),
        };
        assert!(build(&query(), shape, &mut out));
        let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(
            parsed.metadata.response_code,
            hickory_proto::op::ResponseCode::BADCOOKIE
        );
        assert_eq!(
            cookies::option_in(&out, cookies::OPTION_CODE),
            Some(&cookie[..])
        );
    }

    #[test]
    fn nothing_is_sent_for_a_response_or_garbage() {
        let mut out = Vec::new();
        let mut response = query();
        response[2] |= 0x80;
        assert!(!build(&response, refusal(), &mut out));
        assert!(!build(&[0; 11], refusal(), &mut out));
        let mut compressed = query();
        compressed[12] = 0xc0;
        assert!(!build(&compressed, refusal(), &mut out));
        let cut = &query()[..20];
        assert!(!build(cut, refusal(), &mut out));
    }
}
