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
//!
//! # Layout
//!
//! - `storage.rs`: how a zone is kept: names as wire-form keys, each with a span of one array
//!   of compact records (`Table`), and the builder that puts records in it.
//! - `loader.rs`: what fills a table: a master file's records checked as BIND and NSD check
//!   them ([`ZoneLoader`]), generated records ([`ZoneBuilder`], the cluster zone's apex).
//! - `lookup.rs`: the [`Zone`] and how it answers, RFC 1034 §4.3.2's algorithm as drawn above,
//!   over the zone's own table or over any other source of its names (`Nodes`).
//! - `parts.rs`: a zone kept in parts (the cluster zone), so that a change replaces a part and
//!   a new version shares the others with the last; answered by the same lookup.

mod loader;
mod lookup;
mod parts;
mod storage;

pub use loader::{ZoneBuild, ZoneBuilder, ZoneLoader};
pub use lookup::Zone;
pub(super) use parts::{key, PartBuilder, PartedZone, ReverseNames, Shards};

#[cfg(test)]
mod tests;
