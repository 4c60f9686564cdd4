//! `zones`: local authoritative zones.
//!
//! A placeholder until zone files are read (the zones issue): it holds no zone, so every name
//! is outside every zone, which the [`Source`] contract spells NOTFOUND.

use async_trait::async_trait;

use crate::chain::{Outcome, Question, Source, SourceKind};

/// The `zones` source, holding no zone yet.
#[derive(Debug, Default)]
pub struct Zones;

#[async_trait]
impl Source for Zones {
    fn kind(&self) -> SourceKind {
        SourceKind::Zones
    }

    async fn lookup(&self, _question: &Question) -> Outcome {
        Outcome::not_found()
    }
}
