//! The sources of answers, one folder each, all behind [`crate::chain::Source`] and
//! [`setup::Plugin`]; this file is the one place that lists them.
//!
//! Adding a source is its folder (its `Source` impl, its config table and checks, its metrics,
//! its readiness and background tasks, behind [`setup::SourceSetup`] and [`setup::Plugin`])
//! and one line in [`REGISTRY`].

pub mod forward;
pub mod hosts;
pub mod kubernetes;
pub mod setup;
pub mod watch;
pub(crate) mod wire;
pub mod zones;

use setup::SourceSetup;

/// Every source Hearth has. Their tables and metrics are listed in this order; the order in
/// which they are asked is the operator's (`resolve.order`), decided by the chain alone.
pub static REGISTRY: &[&dyn SourceSetup] =
    &[&hosts::FilesSetup, &zones::ZonesSetup, &forward::DnsSetup];

/// The names the order may use.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|setup| setup.name()).collect()
}
