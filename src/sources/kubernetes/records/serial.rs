//! The SOA serial: a hash of the zone's contents (see [`super::build`]), made on every rebuild.
//!
//! Why from the sort keys and not from the records' text, as it was: the keys are already
//! made (they order the records), say everything a record says (repeats are found by them),
//! and hashing them is a walk over bytes; writing 215,000 records out as text to hash them was
//! a fifth of each rebuild at 100,000 endpoints (`benches/cluster_scale.sh`, `perf`).
//!
//! Why a sum of one hash per record rather than one hash over them all in order: the cluster
//! zone is kept in parts (a service's names, a namespace's pods) and a change rebuilds only its
//! parts (`sources::zones::cluster`). With a sum, the serial of the whole is the serial of the
//! parts taken together, whichever were rebuilt when: take the old part's items out, put the
//! new part's in. It still changes when any record changes (unless two 32-bit hashes collide),
//! and is the same on every replica that has seen the same objects.

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

/// What kind of item a hash is of, so that a record and an empty name with the same bytes
/// differ.
#[derive(Clone, Copy)]
pub(super) enum Item {
    Record = b'r' as isize,
    Reverse = b'p' as isize,
    Empty = b'e' as isize,
}

/// The hash of one item: a record's or reverse record's sort key (owner, type and RDATA in
/// wire form), or an empty name's labels.
pub(super) fn item(kind: Item, key: &[u8]) -> u32 {
    let mut hash = Fnv(Fnv::OFFSET_BASIS);
    hash.add(&[kind as u8]);
    hash.add_field(key);
    hash.0
}

/// The hash of an empty name (see [`item`]).
pub(super) fn empty_item(name: &Name) -> u32 {
    item(Item::Empty, &name_bytes(name))
}

/// What every serial of a zone of `domain` whose records have `ttl` starts from: the sum of
/// the items is added to it.
pub fn serial_base(domain: &Name, ttl: u32) -> u32 {
    let mut hash = Fnv(Fnv::OFFSET_BASIS);
    hash.add_field(&name_bytes(domain));
    hash.add(&ttl.to_be_bytes());
    hash.0
}

/// The items' hashes of the zone, in the order [`Zone::finish`] hands them over: records,
/// reverse records, empty names.
pub(super) struct Items {
    pub(super) records: Vec<u32>,
    pub(super) reverse: Vec<u32>,
    pub(super) empty: Vec<u32>,
}

/// The serial of the zone (see [`build`](super::build)): [`serial_base`], plus the hash of
/// every record's and reverse record's sort key but the SOA's, and of every empty name; with
/// those hashes.
pub(super) fn serial(zone: &Zone, empty_names: &[Name]) -> (u32, Items) {
    let hashes = |kind: Item, keyed: &super::order::Keyed| -> Vec<u32> {
        keyed
            .order
            .iter()
            .map(|&number| item(kind, keyed.key(number)))
            .collect()
    };
    let items = Items {
        records: hashes(Item::Record, &zone.records),
        reverse: hashes(Item::Reverse, &zone.reverse),
        empty: empty_names.iter().map(empty_item).collect(),
    };
    let mut serial = serial_base(&zone.domain, zone.ttl);
    for hash in items
        .records
        .iter()
        .chain(&items.reverse)
        .chain(&items.empty)
    {
        serial = serial.wrapping_add(*hash);
    }
    (serial, items)
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
