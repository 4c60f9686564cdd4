//! The zone while it is built: every record kept as its sort key, so that sorting, removing
//! repeats and finding the empty non-terminals compare bytes, and the records are handed over
//! in canonical order (RFC 4034 §6), the SOA among them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::serial::serial;
use super::{PodMode, RecordData, RecordSink};
use crate::sources::wire::{push_wire_name, reverse_labels, reverse_name, reverse_suffix};

/// SOA timers, CoreDNS's: refresh 2 h, retry 30 min, expire 1 day. Nothing transfers this zone
/// (AXFR is refused), so they are informative; the minimum field is the record TTL, which is also
/// the negative-caching TTL (RFC 2308 §5).
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// The zone being built.
///
/// Each record is kept as its sort key (see [`Keyed`]) and the index of its owner in `names`,
/// so that sorting, removing repeats and finding the empty non-terminals compare bytes, not
/// hickory `Name`s and `Record`s (`Ord for Record` compares names label by label from the
/// right and encodes both RDATAs anew for every comparison), and no `Record` is made before
/// the records are handed over. At 100,000 endpoints (`benches/cluster_scale.sh`) the build
/// through `Record`s took 1.1 s.
pub(super) struct Zone {
    pub(super) domain: Name,
    pub(super) ttl: u32,
    /// Every owner name and SRV or PTR target, once; records refer to them by index.
    pub(super) names: Vec<Name>,
    /// The owners of `reverse`, by index: their reverse names are made only if asked for.
    pub(super) addresses: Vec<IpAddr>,
    /// Records at or under `domain`, keyed relative to it.
    pub(super) records: Keyed,
    /// PTR records, keyed by their whole owner name.
    pub(super) reverse: Keyed,
    /// Every namespace that exists, to make `<ns>.svc.<domain>` exist.
    pub(super) namespaces: BTreeSet<String>,
    /// The last `<namespace>.<kind>.<domain>` of [`Zone::in_namespace`].
    pub(super) namespace_owner: Option<(String, &'static str, Owner)>,
    /// Keys of the owners of endpoint records under headless services, so a pod's hostname does
    /// not repeat what its EndpointSlice already says (or contradict what it says about
    /// readiness). `None` when there are no pods to ask.
    pub(super) endpoint_names: Option<HashSet<Vec<u8>>>,
}

impl Zone {
    /// An empty zone of `domain` (fully qualified, lower case) whose records all have `ttl`.
    pub(super) fn new(domain: Name, ttl: u32, endpoint_names: Option<HashSet<Vec<u8>>>) -> Self {
        Self {
            domain,
            ttl,
            names: Vec::new(),
            addresses: Vec::new(),
            records: Keyed::default(),
            reverse: Keyed::default(),
            namespaces: BTreeSet::new(),
            namespace_owner: None,
            endpoint_names,
        }
    }

    /// Room for about `records` records and `reverse` reverse records, made before they are
    /// added. Why: grown by doubling, the arrays of a zone of 100,000 endpoints were copied and
    /// their fresh pages faulted in again and again (mimalloc gives freed pages straight back:
    /// `src/main.rs`); room reserved and not used is never touched, so it takes no memory.
    pub(super) fn reserve(&mut self, records: usize, reverse: usize) {
        self.names.reserve(records);
        self.addresses.reserve(reverse);
        self.records.reserve(records, 48);
        self.reverse.reserve(reverse, 40);
    }

    /// `labels` under the domain; None if the result is not a valid name (too long).
    pub(super) fn owner(&self, labels: &[&str]) -> Option<Owner> {
        let name = Name::from_labels(labels.iter().map(|label| label.as_bytes()))
            .and_then(|name| name.append_domain(&self.domain))
            .ok()?;
        let mut key = Vec::new();
        for label in labels.iter().rev() {
            push_label_key(&mut key, label.as_bytes());
        }
        Some(Owner {
            name,
            key,
            index: None,
        })
    }

    /// `<label>.<namespace>.<kind>.<domain>`, as [`Zone::owner`] gives it, from the parent
    /// `<namespace>.<kind>.<domain>` kept from the last call: services and pods come namespace
    /// by namespace.
    pub(super) fn in_namespace(
        &mut self,
        label: &str,
        namespace: &str,
        kind: &'static str,
    ) -> Option<Owner> {
        let cached = self
            .namespace_owner
            .as_ref()
            .is_some_and(|(names, kinds, _)| names == namespace && *kinds == kind);
        if !cached {
            let parent = self.owner(&[namespace, kind])?;
            self.namespace_owner = Some((namespace.to_owned(), kind, parent));
        }
        let (_, _, parent) = self.namespace_owner.as_ref()?;
        parent.child(&[label.as_bytes()])
    }

    pub(super) fn name(&self, labels: &[&str]) -> Option<Name> {
        self.owner(labels).map(|owner| owner.name)
    }

    pub(super) fn apex(&self) -> Owner {
        Owner {
            name: self.domain.clone(),
            key: Vec::new(),
            index: None,
        }
    }

    /// `owner`'s index in [`Zone::names`].
    fn index(&mut self, owner: &mut Owner) -> u32 {
        *owner.index.get_or_insert_with(|| {
            self.names.push(owner.name.clone());
            (self.names.len() - 1) as u32
        })
    }

    pub(super) fn add(&mut self, owner: &mut Owner, data: Data) {
        let index = self.index(owner);
        let key = &owner.key;
        self.records
            .push(&self.names, index, |keys| keys.extend_from_slice(key), data);
    }

    pub(super) fn add_address(&mut self, owner: &mut Owner, address: IpAddr) {
        self.add(owner, Data::Address(address));
    }

    pub(super) fn add_srv(&mut self, owner: &mut Owner, port: u16, target: &mut Owner) {
        let target = self.index(target);
        self.add(owner, Data::Srv { port, target });
    }

    pub(super) fn add_reverse(&mut self, address: IpAddr, target: &mut Owner) {
        let target = self.index(target);
        self.addresses.push(address);
        let owner = (self.addresses.len() - 1) as u32;
        let key = |keys: &mut Vec<u8>| push_reverse_owner_key(keys, address);
        self.reverse
            .push(&self.names, owner, key, Data::Ptr(target));
    }

    /// Sorts, removes repeats, works out the empty names and the SOA, and hands it all over.
    pub(super) fn finish(mut self, pods: PodMode, sink: &mut impl RecordSink) {
        self.records.sort();
        self.reverse.sort();
        let names = &self.names;

        // The owners, each once, in order: records of one owner are next to each other.
        let mut owners: Vec<(&[u8], &Name)> = Vec::new();
        for &number in &self.records.order {
            let key = self.records.owner_key(number);
            if owners.last().is_none_or(|(last, _)| *last != key) {
                owners.push((key, &names[self.records.owner(number) as usize]));
            }
        }
        // Keyed like owners, so in canonical order; an ancestor of every name in it is in it.
        let mut empty: BTreeMap<Vec<u8>, Name> = BTreeMap::new();
        let mut add_empty = |owner: Option<Owner>| {
            if let Some(owner) = owner {
                empty.insert(owner.key, owner.name);
            }
        };
        add_empty(self.owner(&["svc"]));
        add_empty(self.owner(&["pod"]));
        for namespace in &self.namespaces {
            add_empty(self.owner(&[namespace, "svc"]));
            if pods != PodMode::Disabled {
                add_empty(self.owner(&[namespace, "pod"]));
            }
        }
        // RFC 8020 §2: a name with names under it exists, so it is NODATA, not NXDOMAIN.
        // Owners in order come in runs of siblings: a parent just seen is not looked up again.
        let mut last_parent: &[u8] = &[];
        for (owner_key, owner) in &owners {
            let mut key = parent_key(owner_key);
            if key == last_parent {
                continue;
            }
            last_parent = key;
            let mut name: Option<Name> = None;
            while !key.is_empty() && !empty.contains_key(key) {
                let parent = name.as_ref().unwrap_or(owner).base_name();
                empty.insert(key.to_vec(), parent.clone());
                name = Some(parent);
                key = parent_key(key);
            }
        }
        // Both in order: the empty names are those not among the owners.
        let mut owner_keys = owners.iter().map(|(key, _)| *key).peekable();
        let empty_names: Vec<Name> = empty
            .into_iter()
            .filter(|(key, _)| {
                while owner_keys
                    .next_if(|owner| *owner < key.as_slice())
                    .is_some()
                {}
                owner_keys.peek() != Some(&key.as_slice())
            })
            .map(|(_, name)| name)
            .collect();

        let (serial, items) = serial(&self, &empty_names);
        let soa = soa(&self.domain, self.ttl, serial);
        let mut soa_key = vec![0];
        soa_key.extend(u16::from(RecordType::SOA).to_be_bytes());
        emit_rdata(&mut soa_key, &soa.data);

        sink.start(&soa, self.records.order.len() + 1, self.reverse.order.len());
        // The SOA where its key falls: after the apex's NS. Its item is 0: the serial is not
        // a hash of itself.
        let records = &self.records;
        let at = records
            .order
            .partition_point(|number| records.key(*number) < soa_key.as_slice());
        for (position, &number) in records.order.iter().enumerate() {
            if position == at {
                sink.record(&soa.name, soa.ttl, RecordData::Other(soa.data.clone()), 0);
            }
            records.check(names, number);
            let owner = &names[records.owner(number) as usize];
            sink.record(
                owner,
                self.ttl,
                records.data(names, number),
                items.records[position],
            );
        }
        if at >= records.order.len() {
            sink.record(&soa.name, soa.ttl, RecordData::Other(soa.data), 0);
        }
        for (position, &number) in self.reverse.order.iter().enumerate() {
            self.reverse.check(names, number);
            let address = self.addresses[self.reverse.owner(number) as usize];
            let target = &names[self.reverse.target(number) as usize];
            sink.reverse(address, self.ttl, target, items.reverse[position]);
        }
        for (name, item) in empty_names.iter().zip(items.empty) {
            sink.empty_name(name, item);
        }
    }
}

/// The apex SOA of the cluster zone of `domain` (fully qualified, lower case) whose records
/// have `ttl`, with `serial`.
pub fn soa(domain: &Name, ttl: u32, serial: u32) -> Record {
    let in_domain = |labels: &[&[u8]]| {
        Name::from_labels(labels.iter().copied())
            .and_then(|name| name.append_domain(domain))
            .unwrap_or_else(|_| domain.clone())
    };
    let soa = SOA::new(
        in_domain(&[b"ns", b"dns"]),
        in_domain(&[b"hostmaster"]),
        serial,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        ttl,
    );
    Record::from_rdata(domain.clone(), ttl, RData::SOA(soa))
}

/// A name under the domain, with its key: the labels below the domain from the top down, each
/// in lower case and ended by a 0 byte (a 0 or 1 byte inside a label is written 1 1 or 1 2).
/// Comparing keys byte by byte is comparing names in canonical order, RFC 4034 §6.1: "ordered by
/// treating individual labels as unsigned left-justified octet strings. The absence of a octet
/// sorts before a zero value octet", from the most significant label on. The domain is left
/// out: every name here is under it.
pub(super) struct Owner {
    pub(super) name: Name,
    pub(super) key: Vec<u8>,
    /// Its index in [`Zone::names`], once a record has it.
    pub(super) index: Option<u32>,
}

impl Owner {
    /// `labels` (first the leftmost) under this name; None if the result is not a valid name.
    pub(super) fn child(&self, labels: &[&[u8]]) -> Option<Owner> {
        // As `Name::from_labels(labels).append_domain(&self.name)`, without its copies.
        let mut name: Option<Name> = None;
        let mut key = Vec::with_capacity(self.key.len() + 32);
        key.extend_from_slice(&self.key);
        for label in labels.iter().rev() {
            name = Some(
                name.as_ref()
                    .unwrap_or(&self.name)
                    .prepend_label(*label)
                    .ok()?,
            );
            push_label_key(&mut key, label);
        }
        Some(Owner {
            name: name.unwrap_or_else(|| self.name.clone()),
            key,
            index: None,
        })
    }
}

/// Appends one label to a name key (see [`Owner`]).
fn push_label_key(key: &mut Vec<u8>, label: &[u8]) {
    for &byte in label {
        match byte {
            0 | 1 => key.extend([1, byte + 1]),
            _ => key.push(byte.to_ascii_lowercase()),
        }
    }
    key.push(0);
}

/// What a record says, when it is added to [`Keyed`].
pub(super) enum Data {
    Address(IpAddr),
    /// SRV to the name at this index of [`Zone::names`].
    Srv {
        port: u16,
        target: u32,
    },
    /// PTR to the name at this index of [`Zone::names`].
    Ptr(u32),
    Other(RData),
}

/// Where a record's key is in [`Keyed::keys`], and what of it is not in the key.
struct Entry {
    start: u32,
    /// Where the owner's part ends: a 0 byte, the type and the RDATA follow.
    owner_end: u32,
    end: u32,
    /// The owner's index in [`Zone::names`].
    owner: u32,
    /// An SRV or PTR target's index in [`Zone::names`].
    target: u32,
}

/// Records as their sort keys: the owner's key (see [`Owner`]), a 0 byte that ends it, the
/// type, and the RDATA in wire form. Byte order of the keys is hickory's `Ord for Record`, the
/// canonical order of RFC 4034 §6 (class and TTL are the same for every record of the zone).
/// The key holds the record, but for the names inside SRV and PTR (an index of their own) and
/// for types other than A, AAAA, SRV and PTR (kept as they are).
#[derive(Default)]
pub(super) struct Keyed {
    /// Every key, one after the other.
    keys: Vec<u8>,
    entries: Vec<Entry>,
    /// The RDATA of records of other types, by record number, in that order.
    kept: Vec<(u32, RData)>,
    /// The record numbers, sorted by [`Keyed::sort_from`] and [`Keyed::sort`].
    pub(super) order: Vec<u32>,
}

impl Keyed {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Room for `records` records whose keys take about `key_bytes` each.
    fn reserve(&mut self, records: usize, key_bytes: usize) {
        self.keys.reserve(records.saturating_mul(key_bytes));
        self.entries.reserve(records);
        self.order.reserve(records);
    }

    /// Adds a record of the owner numbered `owner` (an index of [`Zone::names`], or of
    /// [`Zone::addresses`] for reverse records), whose key `owner_key` writes.
    fn push(
        &mut self,
        names: &[Name],
        owner: u32,
        owner_key: impl FnOnce(&mut Vec<u8>),
        data: Data,
    ) {
        let start = self.keys.len();
        owner_key(&mut self.keys);
        let owner_end = self.keys.len();
        self.keys.push(0);
        let record_type = match &data {
            Data::Address(IpAddr::V4(_)) => RecordType::A,
            Data::Address(IpAddr::V6(_)) => RecordType::AAAA,
            Data::Srv { .. } => RecordType::SRV,
            Data::Ptr(_) => RecordType::PTR,
            Data::Other(data) => data.record_type(),
        };
        self.keys.extend(u16::from(record_type).to_be_bytes());
        let mut target = u32::MAX;
        match data {
            Data::Address(IpAddr::V4(v4)) => self.keys.extend(v4.octets()),
            Data::Address(IpAddr::V6(v6)) => self.keys.extend(v6.octets()),
            Data::Srv { port, target: name } => {
                for field in [SRV_PRIORITY, SRV_WEIGHT, port] {
                    self.keys.extend(field.to_be_bytes());
                }
                push_wire_name(&mut self.keys, &names[name as usize]);
                target = name;
            }
            Data::Ptr(name) => {
                push_wire_name(&mut self.keys, &names[name as usize]);
                target = name;
            }
            Data::Other(data) => {
                emit_rdata(&mut self.keys, &data);
                self.kept.push((self.entries.len() as u32, data));
            }
        }
        // Offsets fit in 32 bits: 4 GiB of keys is far beyond any cluster.
        self.order.push(self.entries.len() as u32);
        self.entries.push(Entry {
            start: start as u32,
            owner_end: owner_end as u32,
            end: self.keys.len() as u32,
            owner,
            target,
        });
    }

    pub(super) fn key(&self, number: u32) -> &[u8] {
        let entry = &self.entries[number as usize];
        &self.keys[entry.start as usize..entry.end as usize]
    }

    fn owner_key(&self, number: u32) -> &[u8] {
        let entry = &self.entries[number as usize];
        &self.keys[entry.start as usize..entry.owner_end as usize]
    }

    /// The record's data, from its key and what is kept.
    pub(super) fn data<'a>(&self, names: &'a [Name], number: u32) -> RecordData<'a> {
        let entry = &self.entries[number as usize];
        let key = &self.keys[entry.owner_end as usize + 1..entry.end as usize];
        let (record_type, rdata) = key.split_at(2);
        let target = names.get(entry.target as usize);
        match (
            RecordType::from(u16::from_be_bytes([record_type[0], record_type[1]])),
            target,
        ) {
            (RecordType::A, _) if rdata.len() == 4 => RecordData::Address(IpAddr::V4(
                Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]),
            )),
            (RecordType::AAAA, _) if rdata.len() == 16 => RecordData::Address(IpAddr::V6(
                Ipv6Addr::from(<[u8; 16]>::try_from(rdata).unwrap_or_default()),
            )),
            (RecordType::SRV, Some(target)) if rdata.len() >= 6 => {
                let field = |at: usize| u16::from_be_bytes([rdata[at], rdata[at + 1]]);
                RecordData::Srv {
                    priority: field(0),
                    weight: field(2),
                    port: field(4),
                    target,
                }
            }
            (RecordType::PTR, Some(target)) => RecordData::Other(RData::PTR(PTR(target.clone()))),
            _ => RecordData::Other(
                self.kept
                    .binary_search_by_key(&number, |(kept, _)| *kept)
                    .map(|at| self.kept[at].1.clone())
                    .unwrap_or(RData::Update0(RecordType::NULL)),
            ),
        }
    }

    /// The index of the target of a PTR record.
    pub(super) fn target(&self, number: u32) -> u32 {
        self.entries[number as usize].target
    }

    /// The owner's number (see [`Keyed::push`]).
    pub(super) fn owner(&self, number: u32) -> u32 {
        self.entries[number as usize].owner
    }

    /// Sorts the records added since `first` (their own run of the final order).
    pub(super) fn sort_from(&mut self, first: usize) {
        let mut order = std::mem::take(&mut self.order);
        order[first..].sort_unstable_by(|a, b| self.key(*a).cmp(self.key(*b)));
        self.order = order;
    }

    /// Sorts and removes repeats. Stable, so runs already sorted cost one comparison a record.
    fn sort(&mut self) {
        let mut order = std::mem::take(&mut self.order);
        order.sort_by(|a, b| self.key(*a).cmp(self.key(*b)));
        order.dedup_by(|a, b| self.key(*a) == self.key(*b));
        self.order = order;
    }

    /// Checks, in debug builds, that the record's key is what its data gives.
    fn check(&self, names: &[Name], number: u32) {
        if cfg!(debug_assertions) {
            let data = self.data(names, number).into_rdata();
            let mut key = self.owner_key(number).to_vec();
            key.push(0);
            key.extend(u16::from(data.record_type()).to_be_bytes());
            emit_rdata(&mut key, &data);
            assert_eq!(self.key(number), key.as_slice());
        }
    }
}

/// Every SRV record of the zone has priority 0 and weight 100, as CoreDNS's.
const SRV_PRIORITY: u16 = 0;
const SRV_WEIGHT: u16 = 100;

/// Appends `data` in wire form, as hickory's `Ord for RData` compares it (`RData::to_bytes`).
fn emit_rdata(key: &mut Vec<u8>, data: &RData) {
    // An encoder writes from the start of its buffer: a buffer of its own, as in `to_bytes`.
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    if let Err(error) = data.emit(&mut encoder) {
        // hickory's own comparison goes on the same way with what was written.
        tracing::debug!(%error, ?data, "RDATA not encodable");
    }
    key.extend_from_slice(&bytes);
}

/// Appends the key of a whole name (see [`Owner`]), for the reverse names.
fn push_full_name_key(key: &mut Vec<u8>, name: &Name) {
    for label in name.iter().rev() {
        push_label_key(key, label);
    }
}

/// The key of a name's parent: the last label taken off (see [`Owner`]).
fn parent_key(key: &[u8]) -> &[u8] {
    let without_end = &key[..key.len().saturating_sub(1)];
    match without_end.iter().rposition(|byte| *byte == 0) {
        Some(end) => &key[..=end],
        None => &[],
    }
}

/// Appends the key of `address`'s reverse name (see [`Owner`]), as [`push_full_name_key`]
/// would of [`reverse_name`]: from the most significant label.
fn push_reverse_owner_key(key: &mut Vec<u8>, address: IpAddr) {
    let start = key.len();
    for label in reverse_suffix(address).into_iter().rev() {
        push_label_key(key, label);
    }
    for label in reverse_labels(address).rev() {
        push_label_key(key, label.as_bytes());
    }
    debug_assert_eq!(
        key[start..],
        {
            let mut full = Vec::new();
            push_full_name_key(&mut full, &reverse_name(address));
            full
        }[..]
    );
}
