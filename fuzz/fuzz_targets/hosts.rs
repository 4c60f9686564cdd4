#![no_main]
//! See `hearth_fuzz::hosts` (fuzz/src/hosts.rs) for what is fed in and what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_fuzz::hosts::run(data));
