#![no_main]
//! See `hearth_fuzz::kubernetes_objects` (fuzz/src/kubernetes_objects.rs) for what is fed in and what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_fuzz::kubernetes_objects::run(data));
