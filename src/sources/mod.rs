//! The sources of answers, one module each, all behind [`crate::chain::Source`].

pub mod forward;
pub mod hosts;
pub mod kubernetes;
pub mod watch;
pub(crate) mod wire;
pub mod zones;
