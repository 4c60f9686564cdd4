//! The SOA serial: a hash of the zone's contents (see [`super::build`]), made on every rebuild.
//!
//! Why from the sort keys and not from the records' text, as it was: the keys are already
//! made (they order the records), say everything a record says (repeats are found by them),
//! and hashing them is a walk over bytes; writing 215,000 records out as text to hash them was
//! a fifth of each rebuild at 100,000 endpoints (`benches/cluster_scale.sh`, `perf`).

use hickory_proto::rr::Name;

use super::order::Zone;

/// 32-bit FNV-1a.
struct Fnv(u32);

impl Fnv {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;

    fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u32::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// `bytes`, after their length: one key's end cannot pass for the next one's start.
    fn add_field(&mut self, bytes: &[u8]) {
        self.add(&(bytes.len() as u32).to_be_bytes());
        self.add(bytes);
    }
}

/// 32-bit FNV-1a over what the zone answers (see [`build`](super::build)): the domain and the
/// TTL, then every record's and reverse record's sort key but the SOA's (owner, type and RDATA
/// in wire form), and the empty names, each in order.
pub(super) fn serial(zone: &Zone, empty_names: &[Name]) -> u32 {
    let mut hash = Fnv(Fnv::OFFSET_BASIS);
    hash.add_field(&name_bytes(&zone.domain));
    hash.add(&zone.ttl.to_be_bytes());
    for (part, keyed) in [(b'r', &zone.records), (b'p', &zone.reverse)] {
        hash.add(&[part]);
        for &number in &keyed.order {
            hash.add_field(keyed.key(number));
        }
    }
    hash.add(b"e");
    for name in empty_names {
        hash.add_field(&name_bytes(name));
    }
    hash.0
}

/// A name's labels in lower case, each after its length.
fn name_bytes(name: &Name) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    for label in name.iter() {
        bytes.push(label.len() as u8);
        bytes.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    bytes
}
