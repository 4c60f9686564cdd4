#![no_main]
//! See `hearth_fuzz::tcp_framing` (fuzz/src/tcp_framing.rs) for what is fed in and what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_fuzz::tcp_framing::run(data));
