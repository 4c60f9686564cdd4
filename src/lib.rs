//! Hearth: a DNS server that answers from hosts files first, then local zones, then upstreams.
//!
//! # Layout
//!
//! ```text
//!  UDP (server::fast)    a thread per SO_REUSEPORT socket, recvmmsg/sendmmsg batches
//!  TCP (server::tcp)     one task per connection (server::udp: the plain UDP listener)
//!        │ bytes + Client
//!        ▼
//!  server::admission     the front door: admit / refuse / truncate / drop, before any reply
//!        │ Admitted
//!        ▼
//!  UDP: fast table       repeated questions answered from encoded replies, valid while the
//!        │ miss           data they read is unchanged (chain::validity)
//!        ▼
//!  server::Engine        parse, check (FORMERR/NOTIMP/BADVERS/REFUSED), EDNS, truncation
//!        │ Question
//!        ▼
//!  chain::Chain          the operator's order: files → zones → dns, nsswitch actions
//!        │
//!        ├── sources::hosts     hosts(5) files, reloaded on change, PTR from addresses
//!        ├── sources::zones     master-file zones, and cluster.local from sources::kubernetes
//!        └── sources::forward   the answer cache, then upstreams: policy, per-attempt timeout,
//!                               TCP on TC=1
//! ```
//!
//! ARCHITECTURE.md has the whole picture, the dependency rule and how to add a source.
//!
//! - [`config`]: the file's top level, validated into runtime types; errors name file, line
//!   and key. Each source reads its own tables.
//! - [`chain`]: the [`chain::Source`] contract, the ordered walk over sources, validity.
//! - [`sources`]: one folder per source, and [`sources::REGISTRY`], the one list of them.
//! - [`server`]: the front door, the transport-independent engine and the listeners.
//! - [`cache`]: the forwarder's answer cache; [`metrics`]: the per-query recorder; [`admin`]:
//!   health, readiness and the scrape.
//! - [`app`]: builds all of the above from a [`config::Config`] and owns shutdown.
//! - [`corefile`]: `hearth import-corefile`, a CoreDNS Corefile translated into `hearth.toml`;
//!   it reads [`config`] to check what it writes, and nothing in the library imports it.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cache;
pub mod chain;
pub mod config;
pub mod corefile;
pub mod memory;
pub mod metrics;
pub mod server;
pub mod sources;
