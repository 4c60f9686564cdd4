//! Hearth: a DNS server that answers from hosts files first, then local zones, then upstreams.
//!
//! # Layout
//!
//! ```text
//!  UDP (server::fast)   a thread per SO_REUSEPORT socket, recvmmsg/sendmmsg batches,
//!        │               repeated questions answered from encoded replies
//!        │               (server::udp instead when server.fast_path = false)
//!  TCP (server::tcp)     one task per connection
//!        │ bytes (a miss, or TCP)
//!        ▼
//!  server::Engine::handle   parse, check (FORMERR/NOTIMP/BADVERS/REFUSED), EDNS, truncation
//!        │ Question
//!        ▼
//!  chain::Chain::resolve    the operator's order: files → zones → dns, nsswitch actions
//!        │
//!        ├── sources::hosts     hosts(5) files, reloaded on change, PTR from addresses
//!        ├── sources::zones     master-file zones, and cluster.local from sources::kubernetes
//!        └── sources::forward   the answer cache, then upstreams: policy, per-attempt timeout,
//!                               TCP on TC=1
//! ```
//!
//! ARCHITECTURE.md has the whole picture and the reasons for it.
//!
//! - [`config`]: the TOML file, validated into runtime types; errors name file, line and key.
//! - [`chain`]: the [`chain::Source`] contract and the ordered walk over sources.
//! - [`sources`]: one module per source.
//! - [`server`]: the transport-independent engine (bytes in, bytes out) and the listeners.
//! - [`cache`]: the forwarder's answer cache; [`admin`] and [`metrics`]: health, readiness and
//!   Prometheus metrics.
//! - [`app`]: builds all of the above from a [`config::Config`] and owns shutdown.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cache;
pub mod chain;
pub mod config;
pub mod metrics;
pub mod server;
pub mod sources;
