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

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::master::{SourcedRecord, ZoneProblem};
use crate::chain::{Answer, MAX_CNAME_CHAIN};

/// The records at one name, grouped by type.
#[derive(Clone, Debug, Default)]
struct Node {
    rrsets: Vec<(RecordType, Vec<Record>)>,
}

impl Node {
    fn get(&self, record_type: RecordType) -> Option<&[Record]> {
        self.rrsets
            .iter()
            .find(|(t, _)| *t == record_type)
            .map(|(_, records)| records.as_slice())
    }

    fn add(&mut self, record: Record) {
        let record_type = record.record_type();
        match self.rrsets.iter_mut().find(|(t, _)| *t == record_type) {
            Some((_, records)) => {
                if !records.iter().any(|r| r.data == record.data) {
                    records.push(record);
                }
            }
            None => self.rrsets.push((record_type, vec![record])),
        }
    }
}

/// A zone ready to answer.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    lower_origin: LowerName,
    soa: Record,
    nodes: HashMap<LowerName, Node>,
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

fn problem_at(record: &SourcedRecord, reason: String) -> ZoneProblem {
    ZoneProblem {
        file: record.file.clone(),
        line: Some(record.line),
        reason,
    }
}

impl Zone {
    /// Builds a zone from records, checking what BIND and NSD check at load time. Out-of-zone
    /// records are dropped with a warning; no SOA at the apex, more than one, or a CNAME beside
    /// other data (RFC 2181 §10.1) keeps the zone from loading.
    pub fn build(origin: &Name, records: Vec<SourcedRecord>, file: &std::path::Path) -> ZoneBuild {
        let lower_origin = LowerName::new(origin);
        let mut problems = Vec::new();
        let mut nodes: HashMap<LowerName, Node> = HashMap::new();
        let mut first_line: HashMap<(LowerName, RecordType), SourcedRecord> = HashMap::new();
        for sourced in records {
            let owner = LowerName::new(&sourced.record.name);
            if !lower_origin.zone_of(&owner) {
                problems.push(problem_at(
                    &sourced,
                    format!(
                        "{} is outside the zone {origin}; ignored",
                        sourced.record.name
                    ),
                ));
                continue;
            }
            let record_type = sourced.record.record_type();
            first_line
                .entry((owner.clone(), record_type))
                .or_insert_with(|| sourced.clone());
            nodes.entry(owner).or_default().add(sourced.record);
        }

        let mut fatal = false;
        for ((owner, record_type), sourced) in &first_line {
            if *record_type != RecordType::CNAME {
                continue;
            }
            let node = &nodes[owner];
            if node.rrsets.len() > 1 {
                let others: Vec<String> = node
                    .rrsets
                    .iter()
                    .filter(|(t, _)| *t != RecordType::CNAME)
                    .map(|(t, _)| t.to_string())
                    .collect();
                problems.push(problem_at(
                    sourced,
                    format!(
                        "CNAME at {} beside other data ({}): RFC 2181 §10.1 forbids it",
                        sourced.record.name,
                        others.join(", ")
                    ),
                ));
                fatal = true;
            } else if node.get(RecordType::CNAME).is_some_and(|c| c.len() > 1) {
                problems.push(problem_at(
                    sourced,
                    format!("more than one CNAME at {}", sourced.record.name),
                ));
                fatal = true;
            }
        }
        let soa = match nodes
            .get(&lower_origin)
            .and_then(|n| n.get(RecordType::SOA))
        {
            Some([soa]) => Some(soa.clone()),
            Some(_) => {
                problems.push(ZoneProblem {
                    file: file.to_owned(),
                    line: first_line
                        .get(&(lower_origin.clone(), RecordType::SOA))
                        .map(|r| r.line),
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
        ZoneBuild {
            zone: Some(Self::from_nodes(origin.clone(), soa, nodes)),
            problems,
        }
    }

    /// Builds a zone from records that are known to be sound (generated ones, such as the
    /// cluster zone), plus names that exist without records. Records outside the zone are
    /// dropped.
    pub fn from_records(
        origin: Name,
        soa: Record,
        records: Vec<Record>,
        empty_names: &[Name],
    ) -> Self {
        let lower_origin = LowerName::new(&origin);
        let mut nodes: HashMap<LowerName, Node> = HashMap::new();
        for record in std::iter::once(soa.clone()).chain(records) {
            let owner = LowerName::new(&record.name);
            if lower_origin.zone_of(&owner) {
                nodes.entry(owner).or_default().add(record);
            }
        }
        for name in empty_names {
            let owner = LowerName::new(name);
            if lower_origin.zone_of(&owner) {
                nodes.entry(owner).or_default();
            }
        }
        Self::from_nodes(origin, soa, nodes)
    }

    fn from_nodes(origin: Name, soa: Record, mut nodes: HashMap<LowerName, Node>) -> Self {
        let lower_origin = LowerName::new(&origin);
        // Every ancestor of a name, up to the apex, exists: empty non-terminals are nodes.
        let owners: Vec<LowerName> = nodes.keys().cloned().collect();
        for owner in owners {
            let mut name = owner.base_name();
            while lower_origin.zone_of(&name) && !nodes.contains_key(&name) {
                nodes.insert(name.clone(), Node::default());
                name = name.base_name();
            }
        }
        let has_delegations = nodes
            .iter()
            .any(|(name, node)| *name != lower_origin && node.get(RecordType::NS).is_some());
        Self {
            origin,
            lower_origin,
            soa,
            nodes,
            has_delegations,
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// How many names (nodes) the zone holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `name` exists in the zone (with records, or as an empty non-terminal).
    pub fn has_name(&self, name: &LowerName) -> bool {
        self.nodes.contains_key(name)
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
    fn delegation(&self, name: &LowerName, record_type: RecordType) -> Option<&[Record]> {
        if !self.has_delegations {
            return None;
        }
        let mut ancestors = Vec::new();
        let mut current = if record_type == RecordType::DS {
            name.base_name()
        } else {
            name.clone()
        };
        while current != self.lower_origin && self.lower_origin.zone_of(&current) {
            ancestors.push(current.clone());
            current = current.base_name();
        }
        // From the top down: the highest cut wins.
        ancestors
            .into_iter()
            .rev()
            .find_map(|ancestor| self.nodes.get(&ancestor)?.get(RecordType::NS))
    }

    /// Glue: the zone's A and AAAA records for the name servers of a referral.
    fn glue(&self, name_servers: &[Record]) -> Vec<Record> {
        let mut glue = Vec::new();
        for ns in name_servers {
            let RData::NS(target) = &ns.data else {
                continue;
            };
            if let Some(node) = self.nodes.get(&LowerName::new(&target.0)) {
                for record_type in [RecordType::A, RecordType::AAAA] {
                    glue.extend(node.get(record_type).unwrap_or_default().iter().cloned());
                }
            }
        }
        glue
    }

    /// The closest encloser's wildcard for a name that does not exist (RFC 4592 §3.3.1).
    fn wildcard_for(&self, name: &LowerName) -> Option<&Node> {
        let mut encloser = name.base_name();
        while !self.nodes.contains_key(&encloser) {
            if !self.lower_origin.zone_of(&encloser) || encloser.is_root() {
                return None;
            }
            encloser = encloser.base_name();
        }
        let wildcard = LowerName::new(&Name::from(encloser).prepend_label("*").ok()?);
        self.nodes.get(&wildcard)
    }

    /// Answers `name`/`record_type`, a name at or below the apex. `owner` is the name as the
    /// client wrote it: answers for it are owned by it.
    pub fn lookup(&self, owner: &Name, record_type: RecordType) -> Answer {
        let mut answer = Answer {
            authoritative: true,
            validity: crate::chain::Validity::UntilReload,
            ..Answer::default()
        };
        let mut current = owner.clone();
        let mut seen: Vec<LowerName> = Vec::new();
        loop {
            let lower = LowerName::new(&current);
            if let Some(name_servers) = self.delegation(&lower, record_type) {
                // RFC 1034 §4.3.2 step 3b: a referral, not authoritative. Inside a CNAME chain
                // the answer so far stands (AA belongs to the first owner name, RFC 1035
                // §4.1.1) and the rest is the referral.
                if answer.answers.is_empty() {
                    answer.authoritative = false;
                }
                answer.authorities = name_servers.to_vec();
                answer.additionals = self.glue(name_servers);
                return answer;
            }
            let node = match self.nodes.get(&lower) {
                Some(node) => Some(node),
                None => self.wildcard_for(&lower),
            };
            let Some(node) = node else {
                answer.response_code = ResponseCode::NXDomain;
                answer.authorities = vec![self.negative_soa()];
                return answer;
            };
            let owned = |records: &[Record]| -> Vec<Record> {
                records
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.name = current.clone();
                        r
                    })
                    .collect()
            };
            if record_type != RecordType::CNAME {
                if let Some(cname) = node.get(RecordType::CNAME) {
                    answer.answers.extend(owned(cname));
                    let RData::CNAME(target) = &cname[0].data else {
                        return answer;
                    };
                    seen.push(lower);
                    let target_lower = LowerName::new(&target.0);
                    if seen.contains(&target_lower) || seen.len() >= MAX_CNAME_CHAIN {
                        // A loop or an over-long chain: the chain so far, and no more.
                        return answer;
                    }
                    if !self.lower_origin.zone_of(&target_lower) {
                        answer.chase = Some(target.0.clone());
                        return answer;
                    }
                    current = target.0.clone();
                    continue;
                }
            }
            if record_type == RecordType::ANY {
                // RFC 8482 §4.2: answer with one RRset rather than all of them.
                if let Some((_, records)) = node.rrsets.first() {
                    answer.answers.extend(owned(records));
                    return answer;
                }
            } else if let Some(records) = node.get(record_type) {
                answer.answers.extend(owned(records));
                return answer;
            }
            answer.authorities = vec![self.negative_soa()];
            return answer;
        }
    }
}

#[cfg(test)]
mod tests;
