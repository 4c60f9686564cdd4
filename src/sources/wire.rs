//! Names kept in wire form (RFC 1035 §3.1: each label as a length octet and its bytes, ending in
//! the root's zero octet), for the sources whose tables hold many names.
//!
//! Why not hickory's `Name`: it is 80 bytes before its labels spill to the heap, and a
//! `LowerName` key is another 80. A table of 100,000 names kept as `Name`s took 0.45 KB a
//! name (the hosts table) to 1.5 KB (the zone, with its records); in wire form a name is its
//! length plus two bytes, in one allocation or none. Names are made back into `Name`s only to
//! answer.

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// A name as the tables' maps key it: its wire form in lower case, since names compare
/// ignoring case (RFC 4343 §3). A parent's key is its child's without the first label.
pub(crate) type NameKey = Box<[u8]>;

/// `name`'s key (see [`NameKey`]) in `key`, and whether `name` was in lower case already.
pub(crate) fn name_key(name: &Name, key: &mut Vec<u8>) -> bool {
    key.clear();
    let mut lower = true;
    for label in name.iter() {
        key.push(label.len() as u8);
        for &byte in label {
            lower &= !byte.is_ascii_uppercase();
            key.push(byte.to_ascii_lowercase());
        }
    }
    key.push(0);
    lower
}

/// `name`'s key (see [`NameKey`]).
pub(crate) fn key_of(name: &Name) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 2);
    name_key(name, &mut key);
    key
}

/// `name`'s key (see [`NameKey`]) written into `buffer`, for a lookup without an allocation. A
/// name's wire form is at most 255 bytes (RFC 1035 §3.1), so it fits; `None` if it did not.
pub(crate) fn key_in<'b>(name: &Name, buffer: &'b mut [u8; 256]) -> Option<&'b [u8]> {
    let mut at = 0;
    for label in name.iter() {
        let end = at + 1 + label.len();
        let slot = buffer.get_mut(at..end)?;
        slot[0] = label.len() as u8;
        for (to, from) in slot[1..].iter_mut().zip(label) {
            *to = from.to_ascii_lowercase();
        }
        at = end;
    }
    *buffer.get_mut(at)? = 0;
    buffer.get(..=at)
}

/// Appends the wire form of `text`, a dotted name already checked to be one (labels of 1 to
/// 63 bytes, 253 bytes in all, no final dot), lower-cased if `lower`.
pub(crate) fn push_text_name(wire: &mut Vec<u8>, text: &str, lower: bool) {
    for label in text.split('.') {
        wire.push(label.len() as u8);
        if lower {
            wire.extend(label.bytes().map(|byte| byte.to_ascii_lowercase()));
        } else {
            wire.extend_from_slice(label.as_bytes());
        }
    }
    wire.push(0);
}

/// The name written in wire form at the start of `wire` (a key, or a name kept in a table's
/// array of names), fully qualified.
pub(crate) fn wire_name(wire: &[u8]) -> Name {
    // Written from a valid name, so it reads back; the root otherwise.
    Name::read(&mut BinDecoder::new(wire)).unwrap_or_else(|_| Name::root())
}

/// Whether the names written in wire form at the start of `a` and `b` are the same, as `Name`
/// compares: ignoring case.
pub(crate) fn same_wire_name(a: &[u8], b: &[u8]) -> bool {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.first(), b.first()) {
            (Some(0), Some(0)) => return true,
            (Some(&x), Some(&y)) if x == y => {
                let length = 1 + usize::from(x);
                match (a.get(..length), b.get(..length)) {
                    (Some(label_a), Some(label_b)) if label_a.eq_ignore_ascii_case(label_b) => {
                        a = &a[length..];
                        b = &b[length..];
                    }
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_match_hickorys_wire_form() {
        for text in [
            "a",
            "Web.Example.ORG",
            "_srv._tcp.x-y.example",
            &"a".repeat(63),
        ] {
            let name = Name::from_ascii(format!("{text}.")).unwrap();
            let mut written = Vec::new();
            push_text_name(&mut written, text, false);
            assert_eq!(wire_name(&written), name);
            assert_eq!(
                wire_name(&written).to_string(),
                name.to_string(),
                "case kept"
            );
            let mut lower = Vec::new();
            push_text_name(&mut lower, text, true);
            assert_eq!(lower, key_of(&name));
            assert_eq!(key_in(&name, &mut [0; 256]), Some(lower.as_slice()));
            assert!(same_wire_name(&written, &lower));
        }
    }
}
