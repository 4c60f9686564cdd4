//! What fills a zone's table: a master file's records, checked as they are read
//! ([`ZoneLoader`]); generated records ([`ZoneBuilder`], the cluster zone's apex).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::lookup::Zone;
use super::storage::{is_under, TableBuilder};
use crate::sources::wire::{key_of, name_key, NameKey};
use crate::sources::zones::master::{RecordSink, Written, ZoneProblem};

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
}
