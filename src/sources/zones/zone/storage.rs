//! How a zone is kept: its names and their records ([`Table`]), and the builder that puts
//! records there ([`TableBuilder`]).
//!
//! Why this way: the cluster zone of 100,000 endpoints is some 90,000 names and 160,000
//! records (and 55,000 reverse names beside it), and was rebuilt whole after every change
//! (`benches/cluster_scale.sh`). Kept as hickory `Record`s in maps of `LowerName`s, the two
//! took 0.25 s to build and 152 MiB of heap: a `Record` is 272 bytes, a `Name` 80 (plus the
//! heap beyond 32 bytes of labels), and each name had two vectors of its own. Here a name is
//! its key ([`NameKey`], from `sources::wire`) and a span of one array of records kept in 24
//! bytes each, the names inside SRV and PTR data in one array of bytes: one allocation a name,
//! 19 MiB in all, and records are made back into hickory's only to answer (a lookup takes
//! 0.95 µs where it took 1.65).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::sources::wire::{
    name_key, parent_key, push_wire_name, same_wire_name, wire_name, KeyMap, NameKey,
};

/// Whether the name keyed `key` is at or below the one keyed `origin` (`Name::zone_of`).
pub(super) fn is_under(key: &[u8], origin: &[u8]) -> bool {
    if !key.ends_with(origin) {
        return false;
    }
    // On a label boundary: `a.bexample.` is not under `example.`.
    let boundary = key.len() - origin.len();
    let mut at = 0;
    while at < boundary {
        at += 1 + usize::from(key[at]);
    }
    at == boundary
}

/// Appends `name`'s wire form as written (see [`push_wire_name`]) to the targets of SRV and
/// PTR records; false (and nothing appended) if it is not fully qualified.
fn push_target(targets: &mut Vec<u8>, name: &Name) -> bool {
    if !name.is_fqdn() {
        return false;
    }
    push_wire_name(targets, name);
    true
}

/// One record, without its owner: the key it is kept under says it, or the name asked, which
/// answers are given in.
#[derive(Clone, Debug)]
pub(super) enum Stored {
    /// Class IN, owner written in lower case (so that glue, which keeps its owner name, can
    /// take it from the key).
    A {
        ttl: u32,
        address: Ipv4Addr,
    },
    Aaaa {
        ttl: u32,
        address: Ipv6Addr,
    },
    /// Class IN; the target, fully qualified, at this offset of [`Table::targets`].
    Srv {
        ttl: u32,
        priority: u16,
        weight: u16,
        port: u16,
        target: u32,
    },
    Ptr {
        ttl: u32,
        target: u32,
    },
    /// Anything else, as it came.
    Full(Box<Record>),
}

impl Stored {
    /// `record`, whose owner is written in lower case if `lower_owner`; SRV and PTR targets go
    /// to the end of `targets`.
    fn new(record: Record, lower_owner: bool, targets: &mut Vec<u8>) -> Self {
        let address_owner = lower_owner && record.name.is_fqdn();
        let compact = (record.dns_class == DNSClass::IN)
            .then(|| Self::compact(&record.data, record.ttl, address_owner, targets))
            .flatten();
        compact.unwrap_or_else(|| Self::Full(Box::new(record)))
    }

    /// A record of class IN of `owner`, written in lower case if `lower_owner`.
    fn from_parts(
        owner: &Name,
        ttl: u32,
        data: RData,
        lower_owner: bool,
        targets: &mut Vec<u8>,
    ) -> Self {
        let address_owner = lower_owner && owner.is_fqdn();
        Self::compact(&data, ttl, address_owner, targets)
            .unwrap_or_else(|| Self::Full(Box::new(Record::from_rdata(owner.clone(), ttl, data))))
    }

    /// The record kept compact, if it can be (class IN is the caller's to check).
    fn compact(data: &RData, ttl: u32, address_owner: bool, targets: &mut Vec<u8>) -> Option<Self> {
        if targets.len() > u32::MAX as usize - 256 {
            return None;
        }
        let target = targets.len() as u32;
        match data {
            RData::A(a) if address_owner => Some(Self::A { ttl, address: a.0 }),
            RData::AAAA(aaaa) if address_owner => Some(Self::Aaaa {
                ttl,
                address: aaaa.0,
            }),
            RData::SRV(srv) if push_target(targets, &srv.target) => Some(Self::Srv {
                ttl,
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target,
            }),
            RData::PTR(ptr) if push_target(targets, &ptr.0) => Some(Self::Ptr { ttl, target }),
            _ => None,
        }
    }

    fn record_type(&self) -> RecordType {
        match self {
            Self::A { .. } => RecordType::A,
            Self::Aaaa { .. } => RecordType::AAAA,
            Self::Srv { .. } => RecordType::SRV,
            Self::Ptr { .. } => RecordType::PTR,
            Self::Full(record) => record.record_type(),
        }
    }

    /// The RDATA and TTL.
    fn data(&self, targets: &[u8]) -> (u32, RData) {
        let name_at = |offset: u32| wire_name(targets.get(offset as usize..).unwrap_or_default());
        match self {
            Self::A { ttl, address } => (*ttl, RData::A(A(*address))),
            Self::Aaaa { ttl, address } => (*ttl, RData::AAAA(AAAA(*address))),
            Self::Srv {
                ttl,
                priority,
                weight,
                port,
                target,
            } => (
                *ttl,
                RData::SRV(SRV::new(*priority, *weight, *port, name_at(*target))),
            ),
            Self::Ptr { ttl, target } => (*ttl, RData::PTR(PTR(name_at(*target)))),
            Self::Full(record) => (record.ttl, record.data.clone()),
        }
    }

    /// Whether the RDATA is the same as `other`'s (as `RData` compares: names ignoring case).
    fn same_data(&self, other: &Stored, targets: &[u8]) -> bool {
        let target = |offset: u32| targets.get(offset as usize..).unwrap_or_default();
        match (self, other) {
            (Self::A { address: a, .. }, Self::A { address: b, .. }) => a == b,
            (Self::Aaaa { address: a, .. }, Self::Aaaa { address: b, .. }) => a == b,
            (
                Self::Srv {
                    priority,
                    weight,
                    port,
                    target: a,
                    ..
                },
                Self::Srv {
                    priority: other_priority,
                    weight: other_weight,
                    port: other_port,
                    target: b,
                    ..
                },
            ) => {
                (priority, weight, port) == (other_priority, other_weight, other_port)
                    && same_wire_name(target(*a), target(*b))
            }
            (Self::Ptr { target: a, .. }, Self::Ptr { target: b, .. }) => {
                same_wire_name(target(*a), target(*b))
            }
            (Self::Full(a), Self::Full(b)) => a.data == b.data,
            // Kept whole for its class or its owner's case, beside one kept compact.
            _ => self.data(targets).1 == other.data(targets).1,
        }
    }

    /// The record, owned by `owner` (the name asked).
    fn record(&self, owner: &Name, targets: &[u8]) -> Record {
        if let Self::Full(record) = self {
            let mut record = Record::clone(record);
            record.name = owner.clone();
            return record;
        }
        let (ttl, data) = self.data(targets);
        Record::from_rdata(owner.clone(), ttl, data)
    }

    /// The record with the owner name it came with: `key`'s, unless it was kept whole.
    pub(super) fn original(&self, key: &[u8], targets: &[u8]) -> Record {
        match self {
            Self::Full(record) => Record::clone(record),
            _ => self.record(&wire_name(key), targets),
        }
    }
}

/// Where a name's records are in [`Table::records`]: grouped by type in the order the types
/// came (an RRset each), each RRset in the order its records came. Empty for a name without
/// records.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Span {
    start: u32,
    len: u32,
}

/// The names of a zone and their records.
#[derive(Clone, Debug, Default)]
pub(super) struct Table {
    pub(super) names: KeyMap<Span>,
    records: Vec<Stored>,
    /// SRV and PTR targets in wire form, one after the other.
    pub(super) targets: Vec<u8>,
}

impl Table {
    pub(super) fn records(&self, span: Span) -> &[Stored] {
        let start = span.start as usize;
        self.records
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    /// The RRset of `record_type` at the name of `span`.
    pub(super) fn get(&self, span: Span, record_type: RecordType) -> Option<&[Stored]> {
        let records = self.records(span);
        let start = records
            .iter()
            .position(|record| record.record_type() == record_type)?;
        let len = records[start..]
            .iter()
            .take_while(|record| record.record_type() == record_type)
            .count();
        Some(&records[start..start + len])
    }

    /// The first RRset at the name of `span`.
    pub(super) fn first_rrset(&self, span: Span) -> Option<&[Stored]> {
        let record_type = self.records(span).first()?.record_type();
        self.get(span, record_type)
    }

    /// The types at the name of `span`, an RRset each, in order.
    pub(super) fn types(&self, span: Span) -> Vec<RecordType> {
        let mut types: Vec<RecordType> =
            self.records(span).iter().map(Stored::record_type).collect();
        types.dedup();
        types
    }

    /// The records, owned by `owner`.
    pub(super) fn owned(&self, records: &[Stored], owner: &Name) -> Vec<Record> {
        records
            .iter()
            .map(|record| record.record(owner, &self.targets))
            .collect()
    }

    /// Makes every ancestor of every name, up to the one keyed `origin`, a name (RFC 8020:
    /// empty non-terminals exist).
    pub(super) fn add_ancestors(&mut self, origin: &[u8]) {
        let mut missing: Vec<NameKey> = Vec::new();
        for owner in self.names.keys() {
            let mut name = parent_key(owner);
            while let Some(key) = name.filter(|key| is_under(key, origin)) {
                if self.names.contains_key(key) {
                    break;
                }
                missing.push(key.into());
                name = parent_key(key);
            }
        }
        for key in missing {
            self.names.entry(key).or_default();
        }
    }
}

/// Builds a [`Table`] from records in any order. Records of one name next to each other (as in
/// canonical order, which the cluster's come in) cost one key comparison each; otherwise they
/// are put together at the end.
#[derive(Default)]
pub(super) struct TableBuilder {
    /// While building, a name's `Span::start` is its number; see [`TableBuilder::finish`].
    names: KeyMap<Span>,
    /// The records as they came, each with its name's number.
    records: Vec<(u32, Stored)>,
    targets: Vec<u8>,
    /// The last record's name, and its number (None if outside the zone).
    last_key: Vec<u8>,
    last_name: Option<u32>,
    key: Vec<u8>,
    /// Whether the names' numbers have not gone down so far: records of a name together.
    grouped: bool,
}

impl TableBuilder {
    pub(super) fn new(records: usize) -> Self {
        Self {
            names: KeyMap::with_capacity_and_hasher(records / 2, Default::default()),
            records: Vec::with_capacity(records),
            grouped: true,
            ..Self::default()
        }
    }

    /// The number of the name keyed `key`, a new one if it has none.
    fn number(names: &mut KeyMap<Span>, key: &[u8]) -> u32 {
        let next = names.len() as u32;
        match names.get(key) {
            Some(span) => span.start,
            None => {
                names.insert(
                    key.into(),
                    Span {
                        start: next,
                        len: 0,
                    },
                );
                next
            }
        }
    }

    /// The number of the name `owner` if it is at or below the name keyed `origin`, and
    /// whether it is written in lower case.
    fn owner(&mut self, owner: &Name, origin: &[u8]) -> Option<(u32, bool)> {
        let lower = name_key(owner, &mut self.key);
        if !owner.is_fqdn() {
            return None; // never a question's name
        }
        if self.key != self.last_key {
            std::mem::swap(&mut self.key, &mut self.last_key);
            self.last_name = is_under(&self.last_key, origin)
                .then(|| Self::number(&mut self.names, &self.last_key));
        }
        let number = self.last_name?;
        if self.records.last().is_some_and(|(last, _)| *last > number) {
            self.grouped = false;
        }
        Some((number, lower))
    }

    /// Adds `record` if its owner is at or below the name keyed `origin`; false if not.
    pub(super) fn add(&mut self, record: Record, origin: &[u8]) -> bool {
        let Some((number, lower)) = self.owner(&record.name, origin) else {
            return false;
        };
        let stored = Stored::new(record, lower, &mut self.targets);
        self.records.push((number, stored));
        true
    }

    /// [`TableBuilder::add`] for a record of class IN given in parts.
    pub(super) fn add_parts(&mut self, owner: &Name, ttl: u32, data: RData, origin: &[u8]) {
        if let Some((number, lower)) = self.owner(owner, origin) {
            let stored = Stored::from_parts(owner, ttl, data, lower, &mut self.targets);
            self.records.push((number, stored));
        }
    }

    /// [`TableBuilder::add_parts`] for an A or AAAA record.
    pub(super) fn add_address(&mut self, owner: &Name, ttl: u32, address: IpAddr, origin: &[u8]) {
        let Some((number, lower)) = self.owner(owner, origin) else {
            return;
        };
        let stored = match address {
            IpAddr::V4(address) if lower => Stored::A { ttl, address },
            IpAddr::V6(address) if lower => Stored::Aaaa { ttl, address },
            _ => {
                let data = RData::from(address);
                Stored::from_parts(owner, ttl, data, lower, &mut self.targets)
            }
        };
        self.records.push((number, stored));
    }

    /// [`TableBuilder::add_parts`] for an SRV record.
    pub(super) fn add_srv(
        &mut self,
        owner: &Name,
        ttl: u32,
        numbers: [u16; 3],
        target: &Name,
        origin: &[u8],
    ) {
        let Some((number, lower)) = self.owner(owner, origin) else {
            return;
        };
        let [priority, weight, port] = numbers;
        let at = self.targets.len();
        let stored = if at <= u32::MAX as usize - 256 && push_target(&mut self.targets, target) {
            Stored::Srv {
                ttl,
                priority,
                weight,
                port,
                target: at as u32,
            }
        } else {
            let data = RData::SRV(SRV::new(priority, weight, port, target.clone()));
            Stored::from_parts(owner, ttl, data, lower, &mut self.targets)
        };
        self.records.push((number, stored));
    }

    /// Makes the name keyed `key` exist, with records or not.
    pub(super) fn add_name(&mut self, key: &[u8]) {
        Self::number(&mut self.names, key);
    }

    /// Puts each name's records together, grouped by type, without repeats (RFC 2181 §5:
    /// an RRset has no two records with the same data).
    pub(super) fn finish(mut self) -> Table {
        if !self.grouped {
            self.records.sort_by_key(|(number, _)| *number);
        }
        let mut spans = vec![Span::default(); self.names.len()];
        let mut records: Vec<Stored> = Vec::with_capacity(self.records.len());
        let mut pending = self.records.into_iter().peekable();
        let mut group: Vec<Option<Stored>> = Vec::new();
        while let Some((number, first)) = pending.next() {
            group.clear();
            group.push(Some(first));
            while let Some((_, stored)) = pending.next_if(|(next, _)| *next == number) {
                group.push(Some(stored));
            }
            let start = records.len();
            // RRsets in the order their types came; repeats within one left out.
            for at in 0..group.len() {
                let Some(record_type) = group[at].as_ref().map(Stored::record_type) else {
                    continue;
                };
                let rrset = records.len();
                for slot in &mut group[at..] {
                    if slot.as_ref().map(Stored::record_type) != Some(record_type) {
                        continue;
                    }
                    if let Some(stored) = slot.take() {
                        let targets = &self.targets;
                        if !records[rrset..]
                            .iter()
                            .any(|r| r.same_data(&stored, targets))
                        {
                            records.push(stored);
                        }
                    }
                }
            }
            if let Some(span) = spans.get_mut(number as usize) {
                *span = Span {
                    start: start as u32,
                    len: (records.len() - start) as u32,
                };
            }
        }
        for span in self.names.values_mut() {
            *span = spans.get(span.start as usize).copied().unwrap_or_default();
        }
        records.shrink_to_fit();
        self.targets.shrink_to_fit();
        Table {
            names: self.names,
            records,
            targets: self.targets,
        }
    }
}
