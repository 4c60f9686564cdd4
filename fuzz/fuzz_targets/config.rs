#![no_main]
//! See `hearth_fuzz::config` (fuzz/src/config.rs) for what is fed in and what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_fuzz::config::run(data));
