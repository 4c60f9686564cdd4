//! `hearth import-corefile`: a CoreDNS Corefile in, an equivalent `hearth.toml` out, with a
//! comment on every choice saying which Corefile line it came from and how it maps.
//!
//! ```text
//!  Corefile text ──parse──▶ server blocks, directives (each with its line)
//!                 ──translate──▶ one Hearth configuration: tables, keys, comments
//!                 ──render──▶ TOML text, checked by loading it as `hearth serve` would
//! ```
//!
//! # What maps, and what is refused
//!
//! CoreDNS runs one plugin chain per server block; Hearth serves one set of listen addresses
//! through one nsswitch-like order (`files`, `zones`, `dns`). The Corefile's `.` block becomes
//! that order, in the order CoreDNS's `plugin.cfg` runs the plugins: `hosts` (files), then
//! `kubernetes` (zones), then `forward` (dns). Another block is merged only when all it does is
//! forward (a stub domain): it becomes a `[[forward.zone]]`, and everything else it has must be
//! what the `.` block has too, since Hearth has one cache, one log, one admin port.
//!
//! The rule for what cannot be expressed:
//!
//! - **An error, naming the line and the reason**, whenever Hearth would answer differently:
//!   a plugin with no Hearth equivalent (`rewrite`, `template`, `file`, `dnssec`, ...), an option
//!   Hearth has no key for, server blocks on different ports, blocks that do more than forward.
//!   Nothing is silently dropped, and nothing is guessed.
//! - **A comment saying it was dropped and why**, only for what has no effect on any answer:
//!   `debug` and `pprof` (debugging aids), `errors` (Hearth logs errors anyway), `bufsize`
//!   (it changes when a UDP answer is truncated, never what the answer is, and clients retry
//!   over TCP), connection-reuse timers (`expire`).
//!
//! Where CoreDNS's behaviour and Hearth's default differ, the importer writes CoreDNS's: no
//! lameduck without `lameduck`, no stale answers without `serve_stale`, no prefetching without
//! `prefetch`, no cache without `cache`, no file watch without `reload`. One exception, for
//! safety: without an `acl`, CoreDNS answers everyone, and the importer leaves `[access]` out,
//! so Hearth answers private networks only (the comment says how to widen it).
//!
//! `import` (other files) and `{$VAR}` (CoreDNS's environment) are errors: the importer reads
//! one file and does not guess what another process would see.

mod parse;
mod plugins;
mod render;
mod translate;
mod upstreams;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use thiserror::Error;

pub use parse::{parse, Directive, ServerBlock, Token};

/// A Corefile that cannot be imported: the line and the reason.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {kind}")]
pub struct CorefileError {
    /// 1-based line of the Corefile; 0 when the problem has no line (the generated file).
    pub line: usize,
    pub kind: ErrorKind,
}

impl CorefileError {
    pub(crate) fn new(line: usize, kind: ErrorKind) -> Self {
        Self { line, kind }
    }

    pub(crate) fn syntax(line: usize, reason: impl Into<String>) -> Self {
        Self::new(line, ErrorKind::Syntax(reason.into()))
    }

    pub(crate) fn no_equivalent(line: usize, plugin: &str, reason: impl Into<String>) -> Self {
        Self::new(
            line,
            ErrorKind::NoEquivalent {
                plugin: plugin.to_owned(),
                reason: reason.into(),
            },
        )
    }

    pub(crate) fn unsupported(line: usize, plugin: &str, reason: impl Into<String>) -> Self {
        Self::new(
            line,
            ErrorKind::Unsupported {
                plugin: plugin.to_owned(),
                reason: reason.into(),
            },
        )
    }

    pub(crate) fn conflict(line: usize, reason: impl Into<String>) -> Self {
        Self::new(line, ErrorKind::Conflict(reason.into()))
    }
}

/// Why a Corefile cannot be imported.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not a Corefile.
    #[error("{0}")]
    Syntax(String),
    /// `import` pulls in other files, which the importer does not read.
    #[error("`import` is not supported: the importer reads one Corefile; paste the imported snippet in its place (for AKS's and k3s's `custom/*.override` and `*.server`, the coredns-custom ConfigMap's entries), or remove the line if nothing is imported")]
    Import,
    /// `{$VAR}`: its value is in CoreDNS's environment, not the importer's.
    #[error("{0:?} names an environment variable: write its value in place")]
    Environment(String),
    /// A whole plugin Hearth has nothing for.
    #[error("plugin `{plugin}` has no Hearth equivalent: {reason}")]
    NoEquivalent { plugin: String, reason: String },
    /// A plugin Hearth has, used with an argument or option it cannot express.
    #[error("{plugin}: {reason}")]
    Unsupported { plugin: String, reason: String },
    /// Server blocks Hearth's one listener set and one order cannot merge.
    #[error("{0}")]
    Conflict(String),
    /// The generated configuration does not load: a bug of the importer.
    #[error("the generated configuration does not load (a bug of the importer): {0}")]
    Generated(String),
}

/// Choices the Corefile alone cannot make.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Where the inline entries of a `hosts { ... }` block are to be written, as a hosts(5)
    /// file: Hearth reads hosts files, not entries in its configuration. Without it, inline
    /// entries are an error.
    pub inline_hosts: Option<PathBuf>,
}

/// What the import produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The `hearth.toml` text, with its comments.
    pub toml: String,
    /// The inline `hosts` entries, as a hosts(5) file to write to
    /// [`ImportOptions::inline_hosts`]; `None` when there were none.
    pub inline_hosts: Option<String>,
}

/// Translates Corefile text into `hearth.toml` text. The result is loaded as `hearth serve`
/// would load it (without reading the files it names), so what is returned is a valid
/// configuration.
pub fn import(text: &str, options: &ImportOptions) -> Result<Imported, CorefileError> {
    let blocks = parse(text)?;
    let plan = translate::translate(&blocks, options)?;
    let toml = render::render(&plan);
    crate::config::Config::from_toml(
        &toml,
        "generated hearth.toml",
        &crate::config::Overrides::default(),
    )
    .map_err(|error| CorefileError::new(0, ErrorKind::Generated(error.to_string())))?;
    Ok(Imported {
        toml,
        inline_hosts: plan.inline_hosts,
    })
}
