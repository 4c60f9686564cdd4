//! A zone kept in parts, so that a change replaces a part rather than the whole zone: the
//! cluster zone, where a change to one service is a change to the names at and under that
//! service's name (`sources::kubernetes::records::Part`).
//!
//! Why: kept as one table, the cluster zone of 100,000 endpoints was built again for every
//! change, 0.3 s of CPU each, and a change showed after 0.44 to 0.49 s at p99
//! (`benches/cluster_scale.sh`). In parts, a change builds its own part (microseconds) and a
//! new version of the zone shares every other part with the last one: the parts are kept in
//! [`Shards`], maps of which a new version copies only the shards it changes.
//!
//! What answers is the same [`Zone::lookup`] as for any zone, over [`Parted`]: a name is looked
//! for in the part its key falls in (the zone's owner says which, by a function of the key),
//! or else in the apex zone.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::lookup::{Nodes, Zone};
use super::storage::{Span, Table, TableBuilder};
use crate::chain::Answer;
use crate::sources::wire::{key_in, name_key, push_reverse_key, wire_name, KeyMap, NameKey};

/// How many shards a [`Shards`] map has. Why 1,024: a new version copies the 1,024 pointers
/// (some 10 µs) and the shards it changes; at 10,000 services a shard holds some 10 parts, and
/// at 100,000 addresses some 100 reverse names, each a few microseconds to copy.
const SHARDS: usize = 1024;

/// A map by name key, in shards shared between versions: cloning it clones the shards'
/// pointers, and changing it copies the shards changed (`Arc::make_mut`), not the rest.
#[derive(Clone, Debug)]
pub(in crate::sources::zones) struct Shards<V> {
    shards: Vec<Arc<KeyMap<V>>>,
}

impl<V: Clone> Default for Shards<V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Arc::new(KeyMap::default())).collect(),
        }
    }
}

impl<V: Clone> Shards<V> {
    /// The shard of `key`: FNV-1a of its bytes.
    fn shard(key: &[u8]) -> usize {
        let mut hash: u32 = 0x811c_9dc5;
        for &byte in key {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        hash as usize % SHARDS
    }

    pub(in crate::sources::zones) fn get(&self, key: &[u8]) -> Option<&V> {
        self.shards[Self::shard(key)].get(key)
    }

    pub(in crate::sources::zones) fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        Arc::make_mut(&mut self.shards[Self::shard(key)]).get_mut(key)
    }

    pub(in crate::sources::zones) fn insert(&mut self, key: NameKey, value: V) -> Option<V> {
        Arc::make_mut(&mut self.shards[Self::shard(&key)]).insert(key, value)
    }

    pub(in crate::sources::zones) fn remove(&mut self, key: &[u8]) -> Option<V> {
        let shard = &mut self.shards[Self::shard(key)];
        if !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).remove(key)
    }
}

/// One part's names and records.
#[derive(Debug)]
pub(in crate::sources::zones) struct PartTable {
    table: Table,
}

impl PartTable {
    /// How many names the part holds.
    pub(in crate::sources::zones) fn len(&self) -> usize {
        self.table.names.len()
    }
}

/// Builds a [`PartTable`] record by record; records outside the part (not at or under its
/// top name) are left out.
pub(in crate::sources::zones) struct PartBuilder {
    top: NameKey,
    table: TableBuilder,
}

impl PartBuilder {
    /// A part of the names at and under the one keyed `top`.
    pub(in crate::sources::zones) fn new(top: NameKey) -> Self {
        Self {
            top,
            table: TableBuilder::new(8),
        }
    }

    pub(in crate::sources::zones) fn add(&mut self, owner: &Name, ttl: u32, data: RData) {
        self.table.add_parts(owner, ttl, data, &self.top);
    }

    pub(in crate::sources::zones) fn add_address(
        &mut self,
        owner: &Name,
        ttl: u32,
        address: IpAddr,
    ) {
        self.table.add_address(owner, ttl, address, &self.top);
    }

    pub(in crate::sources::zones) fn add_srv(
        &mut self,
        owner: &Name,
        ttl: u32,
        numbers: [u16; 3],
        target: &Name,
    ) {
        self.table.add_srv(owner, ttl, numbers, target, &self.top);
    }

    /// Makes the name keyed `key` exist, with records or not.
    pub(in crate::sources::zones) fn add_name(&mut self, key: &[u8]) {
        self.table.add_name(key);
    }

    pub(in crate::sources::zones) fn finish(self) -> PartTable {
        let mut table = self.table.finish();
        table.names.shrink_to_fit();
        PartTable { table }
    }
}

/// Which part a name falls in: given its key and the length of the zone's origin key, where in
/// the key the part's top name begins; None for the apex zone's names.
pub(in crate::sources::zones) type Route = fn(&[u8], usize) -> Option<usize>;

/// The names of a zone kept in parts, for [`Zone::lookup_in`].
struct Parted<'a> {
    apex: &'a Zone,
    parts: &'a Shards<Arc<PartTable>>,
    route: Route,
}

impl Nodes for Parted<'_> {
    fn node(&self, key: &[u8]) -> Option<(&Table, Span)> {
        match (self.route)(key, self.apex.origin_key_len()) {
            Some(top) => {
                let part = self.parts.get(key.get(top..)?)?;
                part.table.node(key)
            }
            None => self.apex.table().node(key),
        }
    }
}

/// A zone kept in parts: the apex zone (the origin, the SOA, and the names in no part) and
/// the parts, by the key of their top name.
#[derive(Clone, Debug)]
pub(in crate::sources::zones) struct PartedZone {
    pub(in crate::sources::zones) apex: Zone,
    pub(in crate::sources::zones) parts: Shards<Arc<PartTable>>,
    pub(in crate::sources::zones) route: Route,
}

impl PartedZone {
    fn nodes(&self) -> Parted<'_> {
        Parted {
            apex: &self.apex,
            parts: &self.parts,
            route: self.route,
        }
    }

    /// As [`Zone::lookup`].
    pub(in crate::sources::zones) fn lookup(
        &self,
        owner: &Name,
        record_type: RecordType,
    ) -> Answer {
        self.apex.lookup_in(&self.nodes(), owner, None, record_type)
    }

    /// As [`Zone::has_name`].
    pub(in crate::sources::zones) fn has_name(&self, name: &LowerName) -> bool {
        Zone::has_name_in(&self.nodes(), name)
    }

    pub(in crate::sources::zones) fn negative_soa(&self) -> Record {
        self.apex.negative_soa()
    }
}

/// PTR records by reverse name, each name's targets from whichever parts hold the address, so
/// that a part's PTRs can be taken out and put back on their own.
#[derive(Clone, Debug, Default)]
pub(in crate::sources::zones) struct ReverseNames {
    /// By the reverse name's key: the targets in wire form, one after the other, in canonical
    /// order (RFC 4034 §6.3: RDATA as octet strings) and without repeats.
    names: Shards<Box<[u8]>>,
    ttl: u32,
}

/// The names written one after the other in wire form.
fn wire_names(mut wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let mut at = 0;
        while let Some(&length) = wire.get(at) {
            at += 1 + usize::from(length);
            if length == 0 {
                let (name, rest) = wire.split_at(at.min(wire.len()));
                wire = rest;
                return Some(name);
            }
        }
        None
    })
}

impl ReverseNames {
    pub(in crate::sources::zones) fn new(ttl: u32) -> Self {
        Self {
            names: Shards::default(),
            ttl,
        }
    }

    fn key(address: IpAddr) -> Vec<u8> {
        let mut key = Vec::with_capacity(80);
        push_reverse_key(&mut key, address);
        key
    }

    /// Adds a PTR from `address`'s reverse name to `target` (in wire form).
    pub(in crate::sources::zones) fn add(&mut self, address: IpAddr, target: &[u8]) {
        self.add_wire(&Self::key(address), target);
    }

    /// [`ReverseNames::add`] for the reverse name keyed `key`.
    fn add_wire(&mut self, key: &[u8], target: &[u8]) {
        let joined = match self.names.get(key) {
            Some(targets) => {
                let mut all: Vec<&[u8]> = wire_names(targets).collect();
                match all.binary_search(&target) {
                    Ok(_) => return,
                    Err(at) => all.insert(at, target),
                }
                all.concat()
            }
            None => target.to_vec(),
        };
        self.names.insert(key.into(), joined.into_boxed_slice());
    }

    /// Adds every PTR of `ptrs` (address, target in wire form) to an empty map: each reverse
    /// name is written once, not once for each of its targets (a whole build).
    pub(in crate::sources::zones) fn add_all<'a>(
        &mut self,
        ptrs: impl Iterator<Item = (IpAddr, &'a [u8])>,
    ) {
        let mut all: Vec<(Vec<u8>, &[u8])> = ptrs
            .map(|(address, target)| (Self::key(address), target))
            .collect();
        all.sort_unstable();
        all.dedup();
        let mut at = 0;
        while at < all.len() {
            let key = &all[at].0;
            let end = at
                + all[at..]
                    .iter()
                    .take_while(|(other, _)| other == key)
                    .count();
            let mut joined = Vec::new();
            match self.names.get(key) {
                // Not empty after all: one by one.
                Some(_) => {
                    for (_, target) in &all[at..end] {
                        self.add_wire(key, target);
                    }
                }
                None => {
                    for (_, target) in &all[at..end] {
                        joined.extend_from_slice(target);
                    }
                    self.names
                        .insert(key.as_slice().into(), joined.into_boxed_slice());
                }
            }
            at = end;
        }
    }

    /// Takes out the PTR from `address`'s reverse name to `target`.
    pub(in crate::sources::zones) fn remove(&mut self, address: IpAddr, target: &[u8]) {
        let key = Self::key(address);
        let Some(targets) = self.names.get_mut(&key) else {
            return;
        };
        let rest: Vec<u8> = wire_names(targets)
            .filter(|name| *name != target)
            .flatten()
            .copied()
            .collect();
        if rest.is_empty() {
            self.names.remove(&key);
        } else {
            *targets = rest.into_boxed_slice();
        }
    }

    /// The PTR records at `name`, owned by `owner` (the name as asked); None if there are none.
    pub(in crate::sources::zones) fn get(
        &self,
        name: &LowerName,
        owner: &Name,
    ) -> Option<Vec<Record>> {
        let name: &Name = name;
        if !name.is_fqdn() {
            return None;
        }
        let mut buffer = [0; 256];
        let targets = self.names.get(key_in(name, &mut buffer)?)?;
        Some(
            wire_names(targets)
                .map(|target| {
                    Record::from_rdata(owner.clone(), self.ttl, RData::PTR(PTR(wire_name(target))))
                })
                .collect(),
        )
    }
}

/// `name`'s key (see [`NameKey`]).
pub(in crate::sources::zones) fn key(name: &Name) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    name_key(name, &mut key);
    key
}
