#![no_main]
//! See `hearth_fuzz::engine` (fuzz/src/engine.rs) for what is fed in and what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_fuzz::engine::run(data));
