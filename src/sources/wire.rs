//! Names kept in wire form (RFC 1035 §3.1: each label as a length octet and its bytes, ending in
//! the root's zero octet), for the sources whose tables hold many names.
//!
//! Why not hickory's `Name`: it is 80 bytes before its labels spill to the heap, and a
//! `LowerName` key is another 80. A table of 100,000 names kept as `Name`s took 0.45 KB a
//! name (the hosts table) to 1.5 KB (the zone, with its records); in wire form a name is its
//! length plus two bytes, in one allocation or none. Names are made back into `Name`s only to
//! answer.

use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// A name as the tables' maps key it: its wire form in lower case, since names compare
/// ignoring case (RFC 4343 §3). A parent's key is its child's without the first label.
pub(crate) type NameKey = Box<[u8]>;

/// A map by [`NameKey`]. Its lookups hash names the clients chose, so the hash is keyed at
/// random per map (a flood of names cannot be made to collide), but with aHash rather than
/// std's SipHash-1-3: on a random-subdomain flood against a zone, SipHash was 3.3% of the
/// core (three lookups a query: the name, its closest encloser, the wildcard below it) and
/// aHash is about a third of that. quick_cache hashes with it already.
pub(crate) type KeyMap<V> = std::collections::HashMap<NameKey, V, ahash::RandomState>;

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

/// The key of a name's parent: its key without the first label; `None` for the root's (`[0]`).
pub(crate) fn parent_key(key: &[u8]) -> Option<&[u8]> {
    match key.first() {
        Some(&length) if length > 0 => key.get(1 + usize::from(length)..),
        _ => None,
    }
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

/// Appends the wire form of `name` as written, case kept (RFC 1035 §3.1: "a sequence of labels,
/// where each label consists of a length octet followed by that number of octets", ended by
/// the root's zero octet). That is also what hickory writes for a name in RDATA encoded alone
/// (an SRV or PTR target), and the form the tables keep targets in.
pub(crate) fn push_wire_name(wire: &mut Vec<u8>, name: &Name) {
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
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

// ---------------------------------------------------------------------------------------------
// Reverse names.
//
// RFC 1035 §3.5: "The domain begins at IN-ADDR.ARPA and has four labels below it. Each label
// represents one octet of an Internet address, and is expressed as a character string for a
// decimal value in the range 0-255 (with leading zeros omitted except in the case of a zero
// octet which is represented by a single zero). [...] the order of octets is reversed", so
// 10.2.0.52 is `52.0.2.10.in-addr.arpa.`.
//
// RFC 3596 §2.5: "An IPv6 address is represented as a name in the IP6.ARPA domain by a sequence
// of nibbles separated by dots with the suffix ".IP6.ARPA". The sequence of nibbles is encoded
// in reverse order, i.e., the low-order nibble is encoded first, followed by the next low-order
// nibble and so on. Each nibble is represented by a hexadecimal digit."

/// Lower-case hexadecimal digits: what hickory writes, and what a lower-case key needs.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// One label of a reverse name below `in-addr.arpa.` or `ip6.arpa.`: an octet in decimal
/// without leading zeros, or a nibble as a hexadecimal digit. Made without an allocation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReverseLabel {
    bytes: [u8; 3],
    len: u8,
}

impl ReverseLabel {
    /// An octet in decimal, leading zeros omitted (RFC 1035 §3.5).
    fn decimal(octet: u8) -> Self {
        let digits = [octet / 100, octet / 10 % 10, octet % 10].map(|digit| b'0' + digit);
        let skip = match octet {
            100.. => 0,
            10.. => 1,
            _ => 2,
        };
        let mut bytes = [0; 3];
        bytes[..3 - skip].copy_from_slice(&digits[skip..]);
        Self {
            bytes,
            len: (3 - skip) as u8,
        }
    }

    /// A nibble as one hexadecimal digit (RFC 3596 §2.5).
    fn nibble(nibble: u8) -> Self {
        Self {
            bytes: [HEX[usize::from(nibble & 0xf)], 0, 0],
            len: 1,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The labels of `address`'s reverse name above the suffix, in the order the name is written:
/// the least significant octet or nibble first. `.rev()` gives them from the most significant,
/// the order in which names compare (RFC 4034 §6.1).
pub(crate) fn reverse_labels(
    address: IpAddr,
) -> impl DoubleEndedIterator<Item = ReverseLabel> + ExactSizeIterator {
    let (octets, count) = match address {
        IpAddr::V4(v4) => {
            let mut octets = [0; 16];
            octets[..4].copy_from_slice(&v4.octets());
            (octets, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 32),
    };
    (0..count).map(move |index| match address {
        IpAddr::V4(_) => ReverseLabel::decimal(octets[3 - index]),
        IpAddr::V6(_) => {
            let byte = octets[15 - index / 2];
            ReverseLabel::nibble(if index % 2 == 0 { byte } else { byte >> 4 })
        }
    })
}

/// The suffix of `address`'s reverse name, in the order it is written: `in-addr` or `ip6`,
/// then `arpa`.
pub(crate) fn reverse_suffix(address: IpAddr) -> [&'static [u8]; 2] {
    match address {
        IpAddr::V4(_) => [b"in-addr", b"arpa"],
        IpAddr::V6(_) => [b"ip6", b"arpa"],
    }
}

/// The reverse name of `address` (RFC 1035 §3.5, RFC 3596 §2.5), as `Name::from(address)`
/// writes it but without a string for each label.
pub(crate) fn reverse_name(address: IpAddr) -> Name {
    let labels = || -> Result<Name, hickory_proto::ProtoError> {
        let mut name = Name::root();
        for label in reverse_labels(address) {
            name = name.append_label(label.as_bytes())?;
        }
        for label in reverse_suffix(address) {
            name = name.append_label(label)?;
        }
        Ok(name)
    };
    // Short labels, 34 at most, that always fit; hickory's own way otherwise all the same.
    let name = labels().unwrap_or_else(|_| Name::from(address));
    debug_assert_eq!(name.to_string(), Name::from(address).to_string());
    name
}

/// Appends the key (see [`NameKey`]) of `address`'s reverse name: its labels are lower case
/// already.
pub(crate) fn push_reverse_key(key: &mut Vec<u8>, address: IpAddr) {
    for label in reverse_labels(address) {
        key.push(label.len);
        key.extend_from_slice(label.as_bytes());
    }
    for label in reverse_suffix(address) {
        key.push(label.len() as u8);
        key.extend_from_slice(label);
    }
    key.push(0);
}

/// The address a reverse name stands for, the other way: `4.3.2.1.in-addr.arpa.` is 1.2.3.4,
/// and the 32-nibble `ip6.arpa.` name an IPv6 address (RFC 1035 §3.5, RFC 3596 §2.5). Shorter
/// names (networks) are not addresses, and neither is any spelling but the canonical one.
pub(crate) fn reverse_address(name: &Name) -> Option<IpAddr> {
    // Only these lengths can name an address (4 octets or 32 nibbles, then `in-addr.arpa.` or
    // `ip6.arpa.`): every other name, nearly all a server is asked, skips hickory's parse,
    // which read 0.23% of the core on a random-subdomain flood, where no name is reverse.
    if !matches!(name.num_labels(), 6 | 34) {
        return None;
    }
    let network = name.parse_arpa_name().ok()?;
    if network.prefix_len() != network.max_prefix_len() {
        return None;
    }
    // hickory reads `01` and `+1` as labels of 1; only the canonical spelling is that address.
    let address = network.addr();
    (LowerName::new(&Name::from(address)) == LowerName::new(name)).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::serialize::binary::BinEncodable;

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

    #[test]
    fn wire_names_are_hickorys() {
        for text in ["a.", "Web.Example.ORG.", "_srv._tcp.x-y.example.", "."] {
            let name = Name::from_ascii(text).unwrap();
            let mut written = Vec::new();
            push_wire_name(&mut written, &name);
            assert_eq!(written, name.to_bytes().unwrap(), "{text}");
        }
    }

    #[test]
    fn reverse_names_go_both_ways() {
        let addresses: Vec<IpAddr> = [
            "0.0.0.0",
            "10.96.0.1",
            "192.168.100.9",
            "255.255.255.255",
            "::",
            "2001:db8::1",
            "fd00:10:96::a5f",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ]
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
        for address in addresses {
            let name = reverse_name(address);
            assert_eq!(name, Name::from(address), "{address}");
            assert_eq!(name.to_string(), Name::from(address).to_string());
            let mut key = Vec::new();
            push_reverse_key(&mut key, address);
            assert_eq!(key, key_of(&name), "{address}");
            assert_eq!(reverse_address(&name), Some(address));
            assert_eq!(
                reverse_labels(address).len() + 2,
                name.num_labels() as usize
            );
        }
        assert_eq!(
            reverse_name("10.2.0.52".parse().unwrap()).to_string(),
            "52.0.2.10.in-addr.arpa."
        );
        for not_an_address in ["2.10.in-addr.arpa.", "01.0.0.10.in-addr.arpa.", "example."] {
            let name = Name::from_ascii(not_an_address).unwrap();
            assert_eq!(reverse_address(&name), None, "{not_an_address}");
        }
    }
}
