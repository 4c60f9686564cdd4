#![no_main]
//! See `hearth_fuzz::master_file` (fuzz/src/master_file.rs) for what is fed in and what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_fuzz::master_file::run(data));
