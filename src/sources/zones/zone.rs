//! One authoritative zone in memory, and how it answers (RFC 1034 §4.3.2, RFC 2308, RFC 4592).
//!
//! ```text
//! question name ─► below a delegation (NS under the apex)? ─► referral: AA=0, NS + glue
//!        │ no
//!        ▼
//!   name exists? ──yes──► CNAME there (and type ≠ CNAME)? ─► CNAME, then follow the target
//!        │ no                    │ no                         in this zone, or hand it on
//!        ▼                       ▼                            to the chain (`Answer::chase`)
//!   `*.<closest encloser>`   RRset of the type? ─► answer (AA=1); ANY: one RRset (RFC 8482)
//!   exists? ─► synthesize        │ no
//!        │ no                    ▼
//!        ▼                   NODATA: NOERROR, SOA in authority
//!   NXDOMAIN, SOA in authority
//! ```
//!
//! Every name that exists is a node, empty non-terminals included, so "does this name exist"
//! is one lookup, an empty non-terminal answers NODATA, and a wildcard never matches a name
//! that exists (RFC 4592 §2.2.1). The negative-answer SOA carries TTL = min(SOA TTL, MINIMUM)
//! (RFC 2308 §3).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::master::{RecordSink, Written, ZoneProblem};
use crate::chain::{Answer, MAX_CNAME_CHAIN};
use crate::sources::wire::{key_in, key_of, name_key, same_wire_name, wire_name, NameKey};

// How a zone is kept. The cluster zone of 100,000 endpoints is some 90,000 names and 160,000
// records (and 55,000 reverse names beside it), rebuilt whole after every change
// (`benches/cluster_scale.sh`). Kept as hickory `Record`s in maps of `LowerName`s, the two
// took 0.25 s to build and 152 MiB of heap: a `Record` is 272 bytes, a `Name` 80 (plus the
// heap beyond 32 bytes of labels), and each name had two vectors of its own. Here a name is
// its key ([`NameKey`], from `sources::wire`) and a span of one array of records kept in 24
// bytes each, the names inside SRV and PTR data in one array of bytes: one allocation a name,
// 19 MiB in all, and records are made back into hickory's only to answer (a lookup takes
// 0.95 µs where it took 1.65).

/// The key of the parent name; None for the root.
fn parent(key: &[u8]) -> Option<&[u8]> {
    match key.first() {
        Some(&length) if length > 0 => key.get(1 + usize::from(length)..),
        _ => None,
    }
}

/// `octet` in decimal without leading zeros: the three digits, and how many of them to skip
/// (an in-addr.arpa label, RFC 1035 §3.5).
pub(crate) fn octet_decimal(octet: u8) -> ([u8; 3], usize) {
    let digits = [octet / 100, octet / 10 % 10, octet % 10].map(|d| b'0' + d);
    let skip = match octet {
        100.. => 0,
        10.. => 1,
        _ => 2,
    };
    (digits, skip)
}

/// Appends the key (see [`NameKey`]) of `address`'s reverse name: its octets (IPv4) or
/// nibbles (IPv6) from the last, then `in-addr.arpa.` or `ip6.arpa.`.
fn push_reverse_key(key: &mut Vec<u8>, address: IpAddr) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match address {
        IpAddr::V4(v4) => {
            for octet in v4.octets().into_iter().rev() {
                let (digits, skip) = octet_decimal(octet);
                key.push((3 - skip) as u8);
                key.extend_from_slice(&digits[skip..]);
            }
            key.extend_from_slice(b"\x07in-addr");
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().into_iter().rev() {
                key.extend([
                    1,
                    HEX[usize::from(byte & 0xf)],
                    1,
                    HEX[usize::from(byte >> 4)],
                ]);
            }
            key.extend_from_slice(b"\x03ip6");
        }
    }
    key.extend_from_slice(b"\x04arpa\x00");
}

/// Whether the name keyed `key` is at or below the one keyed `origin` (`Name::zone_of`).
fn is_under(key: &[u8], origin: &[u8]) -> bool {
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

/// Appends `name`'s wire form as written; false (and nothing appended) if it is not fully
/// qualified.
fn push_wire_name(wire: &mut Vec<u8>, name: &Name) -> bool {
    if !name.is_fqdn() {
        return false;
    }
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    true
}

/// One record, without its owner: the key it is kept under says it, or the name asked, which
/// answers are given in.
#[derive(Clone, Debug)]
enum Stored {
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
            RData::SRV(srv) if push_wire_name(targets, &srv.target) => Some(Self::Srv {
                ttl,
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target,
            }),
            RData::PTR(ptr) if push_wire_name(targets, &ptr.0) => Some(Self::Ptr { ttl, target }),
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
    fn original(&self, key: &[u8], targets: &[u8]) -> Record {
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
struct Span {
    start: u32,
    len: u32,
}

/// The names of a zone and their records.
#[derive(Clone, Debug, Default)]
struct Table {
    names: HashMap<NameKey, Span>,
    records: Vec<Stored>,
    /// SRV and PTR targets in wire form, one after the other.
    targets: Vec<u8>,
}

impl Table {
    fn records(&self, span: Span) -> &[Stored] {
        let start = span.start as usize;
        self.records
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    /// The RRset of `record_type` at the name of `span`.
    fn get(&self, span: Span, record_type: RecordType) -> Option<&[Stored]> {
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
    fn first_rrset(&self, span: Span) -> Option<&[Stored]> {
        let record_type = self.records(span).first()?.record_type();
        self.get(span, record_type)
    }

    /// The types at the name of `span`, an RRset each, in order.
    fn types(&self, span: Span) -> Vec<RecordType> {
        let mut types: Vec<RecordType> =
            self.records(span).iter().map(Stored::record_type).collect();
        types.dedup();
        types
    }

    /// The records, owned by `owner`.
    fn owned(&self, records: &[Stored], owner: &Name) -> Vec<Record> {
        records
            .iter()
            .map(|record| record.record(owner, &self.targets))
            .collect()
    }

    /// Makes every ancestor of every name, up to the one keyed `origin`, a name (RFC 8020:
    /// empty non-terminals exist).
    fn add_ancestors(&mut self, origin: &[u8]) {
        let mut missing: Vec<NameKey> = Vec::new();
        for owner in self.names.keys() {
            let mut name = parent(owner);
            while let Some(key) = name.filter(|key| is_under(key, origin)) {
                if self.names.contains_key(key) {
                    break;
                }
                missing.push(key.into());
                name = parent(key);
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
struct TableBuilder {
    /// While building, a name's `Span::start` is its number; see [`TableBuilder::finish`].
    names: HashMap<NameKey, Span>,
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
    fn new(records: usize) -> Self {
        Self {
            names: HashMap::with_capacity(records / 2),
            records: Vec::with_capacity(records),
            grouped: true,
            ..Self::default()
        }
    }

    /// The number of the name keyed `key`, a new one if it has none.
    fn number(names: &mut HashMap<NameKey, Span>, key: &[u8]) -> u32 {
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
    fn add(&mut self, record: Record, origin: &[u8]) -> bool {
        let Some((number, lower)) = self.owner(&record.name, origin) else {
            return false;
        };
        let stored = Stored::new(record, lower, &mut self.targets);
        self.records.push((number, stored));
        true
    }

    /// [`TableBuilder::add`] for a record of class IN given in parts.
    fn add_parts(&mut self, owner: &Name, ttl: u32, data: RData, origin: &[u8]) {
        if let Some((number, lower)) = self.owner(owner, origin) {
            let stored = Stored::from_parts(owner, ttl, data, lower, &mut self.targets);
            self.records.push((number, stored));
        }
    }

    /// [`TableBuilder::add_parts`] for an A or AAAA record.
    fn add_address(&mut self, owner: &Name, ttl: u32, address: IpAddr, origin: &[u8]) {
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
    fn add_srv(&mut self, owner: &Name, ttl: u32, numbers: [u16; 3], target: &Name, origin: &[u8]) {
        let Some((number, lower)) = self.owner(owner, origin) else {
            return;
        };
        let [priority, weight, port] = numbers;
        let at = self.targets.len();
        let stored = if at <= u32::MAX as usize - 256 && push_wire_name(&mut self.targets, target) {
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

    /// A PTR record at `address`'s reverse name (RFC 1035 §3.5, RFC 3596 §2.5).
    fn add_ptr(&mut self, address: IpAddr, ttl: u32, target: &Name) {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        push_reverse_key(&mut key, address);
        debug_assert_eq!(key, key_of(&Name::from(address)));
        let number = Self::number(&mut self.names, &key);
        self.key = key;
        if self.records.last().is_some_and(|(last, _)| *last > number) {
            self.grouped = false;
        }
        let at = self.targets.len();
        let stored = if at <= u32::MAX as usize - 256 && push_wire_name(&mut self.targets, target) {
            Stored::Ptr {
                ttl,
                target: at as u32,
            }
        } else {
            let data = RData::PTR(PTR(target.clone()));
            Stored::from_parts(&Name::from(address), ttl, data, true, &mut self.targets)
        };
        self.records.push((number, stored));
    }

    /// Makes the name keyed `key` exist, with records or not.
    fn add_name(&mut self, key: &[u8]) {
        Self::number(&mut self.names, key);
    }

    /// Puts each name's records together, grouped by type, without repeats (RFC 2181 §5:
    /// an RRset has no two records with the same data).
    fn finish(mut self) -> Table {
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

/// Records by owner name, kept as a zone keeps them, for names answered beside a zone (the
/// cluster's reverse names).
#[derive(Debug, Default)]
pub(super) struct RecordsByName {
    table: Table,
}

impl RecordsByName {
    pub(super) fn builder(records: usize) -> RecordsByNameBuilder {
        RecordsByNameBuilder(TableBuilder::new(records))
    }

    /// The records at `name`, owned by `owner` (the name as asked); None if there are none.
    pub(super) fn get(&self, name: &LowerName, owner: &Name) -> Option<Vec<Record>> {
        let name: &Name = name;
        if !name.is_fqdn() {
            return None;
        }
        let mut buffer = [0; 256];
        let span = *self.table.names.get(key_in(name, &mut buffer)?)?;
        Some(self.table.owned(self.table.records(span), owner))
    }
}

/// Builds [`RecordsByName`] record by record.
pub(super) struct RecordsByNameBuilder(TableBuilder);

impl RecordsByNameBuilder {
    /// Adds a PTR record of class IN at `address`'s reverse name.
    pub(super) fn add_ptr(&mut self, address: IpAddr, ttl: u32, target: &Name) {
        self.0.add_ptr(address, ttl, target);
    }

    pub(super) fn finish(self) -> RecordsByName {
        RecordsByName {
            table: self.0.finish(),
        }
    }
}

/// Builds a [`Zone`] record by record, for a generated zone (the cluster's) that need not be
/// made into hickory `Record`s first: the same zone as [`Zone::from_records`] gives.
pub struct ZoneBuilder {
    origin: Name,
    origin_key: Vec<u8>,
    soa: Record,
    table: TableBuilder,
}

impl ZoneBuilder {
    /// A zone of `origin` whose SOA is `soa` (the first record at the apex); `records` is how
    /// many records are expected.
    pub fn new(origin: Name, soa: Record, records: usize) -> Self {
        let origin_key = key_of(&origin);
        let mut table = TableBuilder::new(records + 1);
        table.add(soa.clone(), &origin_key);
        Self {
            origin,
            origin_key,
            soa,
            table,
        }
    }

    /// Adds a record of class IN; one outside the zone is left out.
    pub fn add(&mut self, owner: &Name, ttl: u32, data: RData) {
        self.table.add_parts(owner, ttl, data, &self.origin_key);
    }

    /// Adds an A or AAAA record of class IN; one outside the zone is left out.
    pub fn add_address(&mut self, owner: &Name, ttl: u32, address: IpAddr) {
        self.table
            .add_address(owner, ttl, address, &self.origin_key);
    }

    /// Adds an SRV record of class IN (priority, weight, port, target); one outside the zone
    /// is left out.
    pub fn add_srv(&mut self, owner: &Name, ttl: u32, numbers: [u16; 3], target: &Name) {
        self.table
            .add_srv(owner, ttl, numbers, target, &self.origin_key);
    }

    /// Adds a record; one outside the zone is left out.
    pub fn add_record(&mut self, record: Record) {
        self.table.add(record, &self.origin_key);
    }

    /// Makes `name` exist, with records or not; left out if it is outside the zone.
    pub fn add_name(&mut self, name: &Name) {
        let mut key = Vec::new();
        name_key(name, &mut key);
        if name.is_fqdn() && is_under(&key, &self.origin_key) {
            self.table.add_name(&key);
        }
    }

    pub fn finish(self) -> Zone {
        Zone::from_table(
            self.origin.clone(),
            LowerName::new(&self.origin),
            self.origin_key.into_boxed_slice(),
            self.soa,
            self.table.finish(),
        )
    }
}

/// A zone ready to answer.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    lower_origin: LowerName,
    origin_key: NameKey,
    soa: Record,
    table: Table,
    /// Whether any NS exists below the apex; when none does, the walk for delegations is skipped.
    has_delegations: bool,
}

/// A problem that keeps a zone from loading, or a record that was left out.
#[derive(Debug)]
pub struct ZoneBuild {
    pub zone: Option<Zone>,
    /// Errors (the zone did not load) and warnings (records ignored).
    pub problems: Vec<ZoneProblem>,
}

/// Builds a zone from a master file's records as they are read, checking what BIND and NSD
/// check at load time. Out-of-zone records are dropped with a warning; no SOA at the apex, more
/// than one, or a CNAME beside other data (RFC 2181 §10.1) keeps the zone from loading.
///
/// Only where each CNAME and SOA was written is remembered, for those checks; the records
/// themselves go straight into the table, so a zone's load never holds them twice.
pub struct ZoneLoader {
    origin: Name,
    origin_key: Vec<u8>,
    builder: TableBuilder,
    problems: Vec<ZoneProblem>,
    /// The first line of each CNAME and SOA RRset, with the owner as written.
    first_line: HashMap<(NameKey, RecordType), (PathBuf, usize, Name)>,
    key: Vec<u8>,
}

impl ZoneLoader {
    pub fn new(origin: &Name) -> Self {
        Self {
            origin: origin.clone(),
            origin_key: key_of(origin),
            builder: TableBuilder::new(0),
            problems: Vec::new(),
            first_line: HashMap::new(),
            key: Vec::new(),
        }
    }

    /// The zone, or why it did not load; `file` is the zone file, named by problems that
    /// belong to no line.
    pub fn finish(self, file: &Path) -> ZoneBuild {
        let Self {
            origin,
            origin_key,
            builder,
            mut problems,
            first_line,
            ..
        } = self;
        let table = builder.finish();
        let at = |(file, line, _): &(PathBuf, usize, Name), reason: String| ZoneProblem {
            file: file.clone(),
            line: Some(*line),
            reason,
        };
        let mut fatal = false;
        for ((owner, record_type), written) in &first_line {
            if *record_type != RecordType::CNAME {
                continue;
            }
            let name = &written.2;
            let span = table.names.get(owner).copied().unwrap_or_default();
            let types = table.types(span);
            if types.len() > 1 {
                let others: Vec<String> = types
                    .iter()
                    .filter(|t| **t != RecordType::CNAME)
                    .map(|t| t.to_string())
                    .collect();
                problems.push(at(
                    written,
                    format!(
                        "CNAME at {name} beside other data ({}): RFC 2181 §10.1 forbids it",
                        others.join(", ")
                    ),
                ));
                fatal = true;
            } else if table
                .get(span, RecordType::CNAME)
                .is_some_and(|c| c.len() > 1)
            {
                problems.push(at(written, format!("more than one CNAME at {name}")));
                fatal = true;
            }
        }
        let apex = table.names.get(origin_key.as_slice()).copied();
        let soa = match apex.and_then(|span| table.get(span, RecordType::SOA)) {
            Some([soa]) => Some(soa.original(&origin_key, &table.targets)),
            Some(_) => {
                problems.push(ZoneProblem {
                    file: file.to_owned(),
                    line: first_line
                        .get(&(origin_key.as_slice().into(), RecordType::SOA))
                        .map(|(_, line, _)| *line),
                    reason: format!("more than one SOA at the apex {origin}"),
                });
                None
            }
            None => {
                problems.push(ZoneProblem {
                    file: file.to_owned(),
                    line: None,
                    reason: format!("no SOA record at the apex {origin}"),
                });
                None
            }
        };
        let Some(soa) = soa.filter(|_| !fatal) else {
            return ZoneBuild {
                zone: None,
                problems,
            };
        };
        problems.sort_by_key(|p| (p.file.clone(), p.line));
        let lower_origin = LowerName::new(&origin);
        ZoneBuild {
            zone: Some(Zone::from_table(
                origin,
                lower_origin,
                origin_key.into_boxed_slice(),
                soa,
                table,
            )),
            problems,
        }
    }
}

impl RecordSink for ZoneLoader {
    fn record(&mut self, at: Written<'_>, record: Record) {
        name_key(&record.name, &mut self.key);
        if !record.name.is_fqdn() || !is_under(&self.key, &self.origin_key) {
            self.problems.push(ZoneProblem {
                file: at.file.to_owned(),
                line: Some(at.line),
                reason: format!(
                    "{} is outside the zone {}; ignored",
                    record.name, self.origin
                ),
            });
            return;
        }
        let record_type = record.record_type();
        if matches!(record_type, RecordType::CNAME | RecordType::SOA) {
            self.first_line
                .entry((self.key.as_slice().into(), record_type))
                .or_insert_with(|| (at.file.to_owned(), at.line, record.name.clone()));
        }
        self.builder.add(record, &self.origin_key);
    }
}

impl Zone {
    /// Builds a zone from records that are known to be sound (generated ones, such as the
    /// cluster zone), plus names that exist without records. Records outside the zone are
    /// dropped.
    pub fn from_records(
        origin: Name,
        soa: Record,
        records: Vec<Record>,
        empty_names: &[Name],
    ) -> Self {
        let mut builder = ZoneBuilder::new(origin, soa, records.len());
        for record in records {
            builder.add_record(record);
        }
        for name in empty_names {
            builder.add_name(name);
        }
        builder.finish()
    }

    fn from_table(
        origin: Name,
        lower_origin: LowerName,
        origin_key: NameKey,
        soa: Record,
        mut table: Table,
    ) -> Self {
        // Every ancestor of a name, up to the apex, exists: empty non-terminals are names.
        table.add_ancestors(&origin_key);
        table.names.shrink_to_fit();
        let has_delegations = table
            .names
            .iter()
            .any(|(name, span)| *name != origin_key && table.get(*span, RecordType::NS).is_some());
        Self {
            origin,
            lower_origin,
            origin_key,
            soa,
            table,
            has_delegations,
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// How many names (nodes) the zone holds.
    pub fn len(&self) -> usize {
        self.table.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.names.is_empty()
    }

    /// The records of `name`, if it exists; names in a zone are fully qualified.
    fn node(&self, name: &Name) -> Option<Span> {
        if !name.is_fqdn() {
            return None;
        }
        let mut buffer = [0; 256];
        self.table.names.get(key_in(name, &mut buffer)?).copied()
    }

    /// Whether `name` exists in the zone (with records, or as an empty non-terminal).
    pub fn has_name(&self, name: &LowerName) -> bool {
        self.node(name).is_some()
    }

    /// Whether `name` is at or below the apex.
    pub fn contains(&self, name: &LowerName) -> bool {
        self.lower_origin.zone_of(name)
    }

    /// The SOA for a negative answer: RFC 2308 §3, "the TTL of this record is set from the
    /// minimum of the MINIMUM field of the SOA record and the TTL of the SOA itself".
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &self.soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    /// The delegation point at or above `name` (strictly below the apex), if any. DS lives on
    /// the parent side of a cut (RFC 4034 §5; RFC 4035 §3.1.4.1: the parent answers DS
    /// authoritatively), so for DS the cut at `name` itself does not count.
    fn delegation(&self, name: &Name, record_type: RecordType) -> Option<Vec<Record>> {
        if !self.has_delegations {
            return None;
        }
        let key = key_of(name);
        // `name` itself only if fully qualified: its parents always are (`Name::base_name`).
        let mut current = if record_type == RecordType::DS || !name.is_fqdn() {
            parent(&key)
        } else {
            Some(key.as_slice())
        };
        let mut ancestors = Vec::new();
        while let Some(ancestor) = current {
            if ancestor.len() <= self.origin_key.len() || !is_under(ancestor, &self.origin_key) {
                break;
            }
            ancestors.push(ancestor);
            current = parent(ancestor);
        }
        // From the top down: the highest cut wins.
        ancestors.into_iter().rev().find_map(|ancestor| {
            let span = *self.table.names.get(ancestor)?;
            let name_servers = self.table.get(span, RecordType::NS)?;
            Some(
                name_servers
                    .iter()
                    .map(|ns| ns.original(ancestor, &self.table.targets))
                    .collect(),
            )
        })
    }

    /// Glue: the zone's A and AAAA records for the name servers of a referral.
    fn glue(&self, name_servers: &[Record]) -> Vec<Record> {
        let mut glue = Vec::new();
        for ns in name_servers {
            let RData::NS(target) = &ns.data else {
                continue;
            };
            if let Some(span) = self.node(&target.0) {
                let key = key_of(&target.0);
                for record_type in [RecordType::A, RecordType::AAAA] {
                    let records = self.table.get(span, record_type).unwrap_or_default();
                    glue.extend(
                        records
                            .iter()
                            .map(|record| record.original(&key, &self.table.targets)),
                    );
                }
            }
        }
        glue
    }

    /// The closest encloser's wildcard for a name that does not exist (RFC 4592 §3.3.1).
    fn wildcard_for(&self, name: &Name) -> Option<Span> {
        let key = key_of(name);
        let mut encloser = parent(&key).unwrap_or(&key);
        while !self.table.names.contains_key(encloser) {
            if !is_under(encloser, &self.origin_key) {
                return None;
            }
            encloser = parent(encloser)?;
        }
        let mut wildcard = Vec::with_capacity(encloser.len() + 2);
        wildcard.extend_from_slice(&[1, b'*']);
        wildcard.extend_from_slice(encloser);
        self.table.names.get(wildcard.as_slice()).copied()
    }

    /// Answers `name`/`record_type`, a name at or below the apex. `owner` is the name as the
    /// client wrote it: answers for it are owned by it.
    pub fn lookup(&self, owner: &Name, record_type: RecordType) -> Answer {
        let mut answer = Answer {
            authoritative: true,
            // Its owner (the zones source, the cluster) stamps the version it read.
            ..Answer::default()
        };
        let mut current = owner.clone();
        let mut seen: Vec<LowerName> = Vec::new();
        loop {
            if let Some(name_servers) = self.delegation(&current, record_type) {
                // RFC 1034 §4.3.2 step 3b: a referral, not authoritative. Inside a CNAME chain
                // the answer so far stands (AA belongs to the first owner name, RFC 1035
                // §4.1.1) and the rest is the referral.
                if answer.answers.is_empty() {
                    answer.authoritative = false;
                }
                answer.additionals = self.glue(&name_servers);
                answer.authorities = name_servers;
                return answer;
            }
            let node = match self.node(&current) {
                Some(span) => Some(span),
                None => self.wildcard_for(&current),
            };
            let Some(node) = node else {
                answer.response_code = ResponseCode::NXDomain;
                answer.authorities = vec![self.negative_soa()];
                return answer;
            };
            if record_type != RecordType::CNAME {
                if let Some(cname) = self.table.get(node, RecordType::CNAME) {
                    let first = answer.answers.len();
                    answer.answers.extend(self.table.owned(cname, &current));
                    let Some(RData::CNAME(target)) = answer.answers.get(first).map(|r| &r.data)
                    else {
                        return answer;
                    };
                    let target = target.0.clone();
                    seen.push(LowerName::new(&current));
                    let target_lower = LowerName::new(&target);
                    if seen.contains(&target_lower) || seen.len() >= MAX_CNAME_CHAIN {
                        // A loop or an over-long chain: the chain so far, and no more.
                        return answer;
                    }
                    if !self.lower_origin.zone_of(&target_lower) {
                        answer.chase = Some(target);
                        return answer;
                    }
                    current = target;
                    continue;
                }
            }
            if record_type == RecordType::ANY {
                // RFC 8482 §4.2: answer with one RRset rather than all of them.
                if let Some(records) = self.table.first_rrset(node) {
                    answer.answers.extend(self.table.owned(records, &current));
                    return answer;
                }
            } else if let Some(records) = self.table.get(node, record_type) {
                answer.answers.extend(self.table.owned(records, &current));
                return answer;
            }
            answer.authorities = vec![self.negative_soa()];
            return answer;
        }
    }
}

#[cfg(test)]
mod tests;
