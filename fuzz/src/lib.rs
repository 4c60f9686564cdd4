//! What each fuzz target feeds in and what it checks, one module per target.
//!
//! The targets in `fuzz_targets/` are one line each: they hand libFuzzer's bytes to `run` here.
//! `tests/fuzz_regressions.rs` includes this same code (by `#[path]`), so `cargo test` runs every
//! seed of `corpus/` and every crash found since through the checks the fuzzer ran, with no
//! nightly compiler and no cargo-fuzz.
//!
//! Every check is a panic: libFuzzer reports it as a crash and saves the input. The properties
//! are BAD-INPUTS' (shared/docs/BAD-INPUTS.md): no crash, no hang, never a reply to a response,
//! never a UDP reply larger than the client allowed, the reply's ID the query's, and the fast
//! path's answer the general path's byte for byte.
//!
//! Nothing here sends a packet anywhere but to loopback: the engine's chain is hosts files and
//! zones only, and the forwarder of `upstream_reply` asks a fake upstream on 127.0.0.1.

pub mod common;
pub mod config;
pub mod engine;
pub mod hosts;
pub mod kubernetes_objects;
pub mod master_file;
pub mod tcp_framing;
pub mod upstream_reply;
