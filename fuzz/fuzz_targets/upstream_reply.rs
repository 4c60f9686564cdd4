#![no_main]
//! See `hearth_fuzz::upstream_reply` (fuzz/src/upstream_reply.rs) for what is fed in and what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_fuzz::upstream_reply::run(data));
