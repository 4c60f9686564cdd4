//! Hearth: a DNS server that answers from hosts files first, then local zones, then upstreams.
//!
//! # Layout
//!
//! ```text
//!  UDP/TCP listeners (server::udp, server::tcp)          one task per socket, per connection
//!        │ bytes
//!        ▼
//!  server::Engine::handle   parse, check (FORMERR/NOTIMP/BADVERS/REFUSED), EDNS, truncation
//!        │ Question
//!        ▼
//!  chain::Chain::resolve    the operator's order: files → zones → dns, nsswitch actions
//!        │
//!        ├── sources::hosts     hosts(5) files, reloaded on change, PTR from addresses
//!        ├── sources::zones     local authoritative zones (placeholder: NOTFOUND)
//!        └── sources::forward   upstream resolvers, policy, per-attempt timeout, TCP on TC=1
//! ```
//!
//! - [`config`]: the TOML file, validated into runtime types; errors name file, line and key.
//! - [`chain`]: the [`chain::Source`] contract and the ordered walk over sources.
//! - [`sources`]: one module per source.
//! - [`server`]: the transport-independent engine (bytes in, bytes out) and the listeners.
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
