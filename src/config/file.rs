//! The parts of reading a configuration file that every table shares: where a problem is
//! ([`Location`]), what it is ([`ConfigError`]), and each top-level table of the file handed to
//! its owner with its place in the text kept ([`Tables`]).
//!
//! Why tables are handed out one by one: each source owns its table (its serde type with
//! `deny_unknown_fields`, its defaults, its checks) in its own folder, and the top level of the
//! file (`config/mod.rs`) names none of them. toml's `DeTable` keeps every value's span, so a
//! table deserialized on its own still reports `file:line: table.key: reason`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use thiserror::Error;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::values::HumanDuration;
use crate::chain::order::NsswitchError;

/// The largest TTL a record may carry: RFC 2181 §8, "a 32 bit unsigned integer ... with the most
/// significant bit zero"; values with that bit set are treated as zero by resolvers.
pub const MAX_TTL: u32 = i32::MAX as u32;

/// A place in a config file: the file, and the line when it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// Why a configuration was refused. Every variant names the file; all but `Read` name the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{location}: {reason}")]
    Syntax { location: Location, reason: String },
    #[error("{location}: {key}: {reason}")]
    Value {
        location: Location,
        key: String,
        reason: String,
    },
    #[error("{0}")]
    Nsswitch(#[from] NsswitchError),
}

impl ConfigError {
    /// A value that read but is not allowed, found after reading (no line).
    pub fn invalid(file: &str, key: &str, reason: impl Into<String>) -> Self {
        Self::Value {
            location: Location {
                file: file.to_owned(),
                line: None,
            },
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Line number (from 1) of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The top-level tables of one configuration file, each with its span, and what every table's
/// checks may need to know of the file.
pub struct Tables<'a> {
    file: &'a str,
    text: &'a str,
    tables: BTreeMap<String, Spanned<DeValue<'a>>>,
    /// `server.listen` as validated (a forwarder must not forward to Hearth itself).
    listen: Vec<SocketAddr>,
}

impl<'a> Tables<'a> {
    /// Parses `text`; a syntax error is reported with its line.
    pub fn parse(text: &'a str, file: &'a str) -> Result<Self, ConfigError> {
        let root = DeTable::parse(text).map_err(|error| ConfigError::Syntax {
            location: Location {
                file: file.to_owned(),
                line: error.span().map(|span| line_of(text, span.start)),
            },
            reason: error.message().to_owned(),
        })?;
        let tables = root
            .into_inner()
            .into_iter()
            .map(|(key, value)| (key.into_inner().to_string(), value))
            .collect();
        Ok(Self {
            file,
            text,
            tables,
            listen: Vec::new(),
        })
    }

    /// The file's name, for messages.
    pub fn file(&self) -> &str {
        self.file
    }

    /// The top-level keys of the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// The line a top-level key is on.
    pub fn line_of(&self, name: &str) -> Option<usize> {
        self.tables
            .get(name)
            .map(|value| line_of(self.text, value.span().start))
    }

    /// Reads the table `name` as `T`, or `None` when the file has no such table. A key `T` does
    /// not know, or a value it refuses, is reported as `file:line: name.key: reason`.
    pub fn read<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.tables.get(name) else {
            return Ok(None);
        };
        let deserializer = ValueDeserializer::from(value.clone());
        serde_path_to_error::deserialize(deserializer)
            .map(Some)
            .map_err(|error| {
                let path = error.path().to_string();
                let key = if path == "." || path.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name}.{path}")
                };
                let inner = error.into_inner();
                ConfigError::Value {
                    location: Location {
                        file: self.file.to_owned(),
                        line: inner.span().map(|span| line_of(self.text, span.start)),
                    },
                    key,
                    reason: inner.message().to_owned(),
                }
            })
    }

    /// [`Tables::read`], with the type's default when the table is absent.
    pub fn read_or_default<T: DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, ConfigError> {
        Ok(self.read(name)?.unwrap_or_default())
    }

    /// A value of this file that is not allowed, found after reading.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.file, key, reason)
    }

    /// `server.listen` as validated.
    pub fn listen(&self) -> &[SocketAddr] {
        &self.listen
    }

    pub(super) fn set_listen(&mut self, listen: Vec<SocketAddr>) {
        self.listen = listen;
    }

    /// A duration that must be above zero, or `default` when absent.
    pub fn positive(
        &self,
        value: Option<HumanDuration>,
        default: Duration,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(HumanDuration(duration)) if duration.is_zero() => {
                Err(self.invalid(key, "must be longer than zero"))
            }
            Some(HumanDuration(duration)) => Ok(duration),
        }
    }

    /// A duration within `(0, max]`, or `default` when absent.
    pub fn bounded(
        &self,
        value: Option<HumanDuration>,
        default: Duration,
        max: Duration,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        let duration = self.positive(value, default, key)?;
        if duration > max {
            return Err(self.invalid(
                key,
                format!("must be at most {}", humantime::format_duration(max)),
            ));
        }
        Ok(duration)
    }

    /// A TTL within RFC 2181 §8's range.
    pub fn ttl(&self, value: Option<u32>, default: u32, key: &str) -> Result<u32, ConfigError> {
        let ttl = value.unwrap_or(default);
        if ttl > MAX_TTL {
            return Err(self.invalid(
                key,
                format!("{ttl} is above the largest TTL, {MAX_TTL} (RFC 2181 §8)"),
            ));
        }
        Ok(ttl)
    }
}
