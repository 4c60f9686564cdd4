//! A zone ready to answer, and how it answers: RFC 1034 §4.3.2's algorithm (see the drawing in
//! [`super`]), with wildcards (RFC 4592), negative answers (RFC 2308) and ANY (RFC 8482).

use std::borrow::Cow;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::storage::{is_under, Span, Table};
use crate::chain::{Answer, MAX_CNAME_CHAIN};
use crate::sources::wire::{key_in, key_of, parent_key, NameKey};

/// Where the names of a zone are found: the zone's own table, or a zone kept in parts
/// (`parts.rs`, the cluster zone), whose every change replaces one part rather than the whole.
pub(super) trait Nodes {
    /// The table holding the name keyed `key` (see `sources::wire::NameKey`) and its records
    /// there, if the name exists.
    fn node(&self, key: &[u8]) -> Option<(&Table, Span)>;
}

impl Nodes for Table {
    fn node(&self, key: &[u8]) -> Option<(&Table, Span)> {
        self.names.get(key).map(|span| (self, *span))
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

impl Zone {
    pub(super) fn from_table(
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

    /// The length of the origin's key: where the names of a zone kept in parts are routed
    /// from (`parts.rs`).
    pub(super) fn origin_key_len(&self) -> usize {
        self.origin_key.len()
    }

    pub(super) fn table(&self) -> &Table {
        &self.table
    }

    /// How many names (nodes) the zone holds.
    pub fn len(&self) -> usize {
        self.table.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.names.is_empty()
    }

    /// The records of `name`, if it exists; names in a zone are fully qualified.
    fn node<'n>(nodes: &'n impl Nodes, name: &Name) -> Option<(&'n Table, Span)> {
        let mut buffer = [0; 256];
        Self::node_keyed(nodes, name, key_in(name, &mut buffer)?)
    }

    /// [`Zone::node`] for a name whose key the caller has made already (`key`).
    fn node_keyed<'n>(nodes: &'n impl Nodes, name: &Name, key: &[u8]) -> Option<(&'n Table, Span)> {
        if !name.is_fqdn() {
            return None;
        }
        nodes.node(key)
    }

    /// Whether `name` exists in the zone (with records, or as an empty non-terminal).
    pub fn has_name(&self, name: &LowerName) -> bool {
        Self::node(&self.table, name).is_some()
    }

    /// [`Zone::has_name`] where the names are `nodes`.
    pub(super) fn has_name_in(nodes: &impl Nodes, name: &LowerName) -> bool {
        Self::node(nodes, name).is_some()
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
    fn delegation(
        &self,
        nodes: &impl Nodes,
        name: &Name,
        record_type: RecordType,
    ) -> Option<Vec<Record>> {
        if !self.has_delegations {
            return None;
        }
        let key = key_of(name);
        // `name` itself only if fully qualified: its parents always are (`Name::base_name`).
        let mut current = if record_type == RecordType::DS || !name.is_fqdn() {
            parent_key(&key)
        } else {
            Some(key.as_slice())
        };
        let mut ancestors = Vec::new();
        while let Some(ancestor) = current {
            if ancestor.len() <= self.origin_key.len() || !is_under(ancestor, &self.origin_key) {
                break;
            }
            ancestors.push(ancestor);
            current = parent_key(ancestor);
        }
        // From the top down: the highest cut wins.
        ancestors.into_iter().rev().find_map(|ancestor| {
            let (table, span) = nodes.node(ancestor)?;
            let name_servers = table.get(span, RecordType::NS)?;
            Some(
                name_servers
                    .iter()
                    .map(|ns| ns.original(ancestor, &table.targets))
                    .collect(),
            )
        })
    }

    /// Glue: the zone's A and AAAA records for the name servers of a referral.
    fn glue(nodes: &impl Nodes, name_servers: &[Record]) -> Vec<Record> {
        let mut glue = Vec::new();
        for ns in name_servers {
            let RData::NS(target) = &ns.data else {
                continue;
            };
            if let Some((table, span)) = Self::node(nodes, &target.0) {
                let key = key_of(&target.0);
                for record_type in [RecordType::A, RecordType::AAAA] {
                    let records = table.get(span, record_type).unwrap_or_default();
                    glue.extend(
                        records
                            .iter()
                            .map(|record| record.original(&key, &table.targets)),
                    );
                }
            }
        }
        glue
    }

    /// The closest encloser's wildcard for a name that does not exist, keyed `key` (RFC 4592
    /// §3.3.1).
    fn wildcard_for<'n>(&self, nodes: &'n impl Nodes, key: &[u8]) -> Option<(&'n Table, Span)> {
        // Both keys on the stack, and the name's the one its lookup made: every NXDOMAIN asks
        // this, and a random-subdomain flood is made of nothing else.
        let mut encloser = parent_key(key).unwrap_or(key);
        while nodes.node(encloser).is_none() {
            if !is_under(encloser, &self.origin_key) {
                return None;
            }
            encloser = parent_key(encloser)?;
        }
        // `*.` and the encloser, a proper suffix of a name of at most 255 bytes.
        let mut wildcard = [0; 258];
        let length = 2 + encloser.len();
        wildcard[..2].copy_from_slice(&[1, b'*']);
        wildcard.get_mut(2..length)?.copy_from_slice(encloser);
        nodes.node(&wildcard[..length])
    }

    /// Answers `name`/`record_type`, a name at or below the apex. `owner` is the name as the
    /// client wrote it: answers for it are owned by it.
    pub fn lookup(&self, owner: &Name, record_type: RecordType) -> Answer {
        self.lookup_in(&self.table, owner, None, record_type)
    }

    /// [`Zone::lookup`] with `owner`'s key (`sources::wire::NameKey`) made already: finding
    /// the zone made it.
    pub fn lookup_keyed(&self, owner: &Name, key: &[u8], record_type: RecordType) -> Answer {
        self.lookup_in(&self.table, owner, Some(key), record_type)
    }

    /// [`Zone::lookup`] where the names are `nodes` rather than this zone's own table (which
    /// then holds the apex); this zone gives the origin, the SOA and whether there are
    /// delegations. `owner_key`: `owner`'s key, if the caller has it.
    pub(super) fn lookup_in(
        &self,
        nodes: &impl Nodes,
        owner: &Name,
        mut owner_key: Option<&[u8]>,
        record_type: RecordType,
    ) -> Answer {
        let mut answer = Answer {
            authoritative: true,
            // Its owner (the zones source, the cluster) stamps the version it read.
            ..Answer::default()
        };
        // Borrowed until a CNAME leads on: most answers never copy the name.
        let mut current = Cow::Borrowed(owner);
        let mut seen: Vec<LowerName> = Vec::new();
        loop {
            if let Some(name_servers) = self.delegation(nodes, &current, record_type) {
                // RFC 1034 §4.3.2 step 3b: a referral, not authoritative. Inside a CNAME chain
                // the answer so far stands (AA belongs to the first owner name, RFC 1035
                // §4.1.1) and the rest is the referral.
                if answer.answers.is_empty() {
                    answer.authoritative = false;
                }
                answer.additionals = Self::glue(nodes, &name_servers);
                answer.authorities = name_servers;
                return answer;
            }
            // The name's key made once, for its node and, if it has none, for its wildcard;
            // the owner's may be made already.
            let mut buffer = [0; 256];
            let key = match owner_key.take() {
                Some(key) => Some(key),
                None => key_in(&current, &mut buffer),
            };
            let node = key.and_then(|key| {
                Self::node_keyed(nodes, &current, key).or_else(|| self.wildcard_for(nodes, key))
            });
            let Some((table, node)) = node else {
                answer.response_code = ResponseCode::NXDomain;
                answer.authorities = vec![self.negative_soa()];
                return answer;
            };
            if record_type != RecordType::CNAME {
                if let Some(cname) = table.get(node, RecordType::CNAME) {
                    let first = answer.answers.len();
                    answer.answers.extend(table.owned(cname, &current));
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
                        answer.chase = Some(Box::new(target));
                        return answer;
                    }
                    current = Cow::Owned(target);
                    continue;
                }
            }
            if record_type == RecordType::ANY {
                // RFC 8482 §4.2: answer with one RRset rather than all of them.
                if let Some(records) = table.first_rrset(node) {
                    answer.answers.extend(table.owned(records, &current));
                    return answer;
                }
            } else if let Some(records) = table.get(node, record_type) {
                answer.answers.extend(table.owned(records, &current));
                return answer;
            }
            answer.authorities = vec![self.negative_soa()];
            return answer;
        }
    }
}
