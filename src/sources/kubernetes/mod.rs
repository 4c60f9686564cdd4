//! `cluster.local`: the records the Kubernetes DNS-Based Service Discovery specification (schema
//! 1.1.0) asks for, built from Service, EndpointSlice, Pod and Namespace objects exactly as the
//! Kubernetes API serves them, with CoreDNS's behaviour where the specification is silent.
//!
//! ```text
//!   manifests (*.yaml, *.yml, *.json: one object,     the Kubernetes API (kubernetes.api)
//!   `---` documents, or a List)                       api::watch: list-then-watch per kind,
//!        │  objects::read_dir / parse_manifest        re-list on 410 Gone, backoff; a store
//!        │  problems: `file:line: reason`             per kind; after a change, its parts of
//!        │                                            the zone rebuilt (records::Part)
//!        └──────────────────────┬───────────────────────────┘
//!                               ▼
//!   ClusterObjects { services, endpoint_slices, pods, namespaces }
//!        │  records::build (pure: same objects, same records)
//!        ▼
//!   ClusterRecords { records (SOA, NS, dns-version TXT, services, endpoints, pods),
//!                    empty_names (NODATA, not NXDOMAIN), reverse (PTR) }
//! ```
//!
//! `pods insecure` names (`1-2-3-4.<ns>.pod.<domain>`) are not records: any address can be
//! written that way, so they are answered on demand by [`records::pod_name_address`].
//!
//! The cluster zone that serves these records (`sources::zones::cluster`) imports this module;
//! this module imports nothing of it. The API watch knows the zone only as an
//! [`api::ClusterSink`], and the names' wire forms come from `sources::wire`.

pub mod api;
pub mod config;
pub mod objects;
pub mod records;
