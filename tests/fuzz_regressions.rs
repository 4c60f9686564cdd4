//! The fuzz targets' checks under `cargo test`, with no nightly compiler and no cargo-fuzz:
//! every seed of `fuzz/corpus/<target>/`, and every input a fuzzer crashed Hearth with, go
//! through the very code the fuzz targets run (`fuzz/src/`, included here), so a crash that was
//! fixed stays fixed. fuzz/README.md says how the targets run and how to add a crash here.
//!
//! A crash whose fix belongs to code the fuzz work does not own is an `#[ignore]`d test: it
//! documents the input and fails until the fix lands; then the `#[ignore]` goes.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

/// Runs every seed of `target` through `run`; the file's name is printed, so a failure says
/// which seed it was.
fn run_seeds(target: &str, run: fn(&[u8])) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{target} has no seeds");
    for seed in seeds {
        println!("{}", seed.display());
        run(&std::fs::read(&seed).expect("a seed"));
    }
}

#[test]
fn engine_seeds() {
    run_seeds("engine", harness::engine::run);
}

#[test]
fn tcp_framing_seeds() {
    run_seeds("tcp_framing", harness::tcp_framing::run);
}

#[test]
fn upstream_reply_seeds() {
    run_seeds("upstream_reply", harness::upstream_reply::run);
}

#[test]
fn master_file_seeds() {
    run_seeds("master_file", harness::master_file::run);
}

#[test]
fn hosts_seeds() {
    run_seeds("hosts", harness::hosts::run);
}

#[test]
fn config_seeds() {
    run_seeds("config", harness::config::run);
}

#[test]
fn kubernetes_objects_seeds() {
    run_seeds("kubernetes_objects", harness::kubernetes_objects::run);
}

// ---------------------------------------------------------------------------------------------
// Crashes found by the fuzzers, each with the smallest input that shows it.

/// `master_file`: RFC 3597 generic RDATA whose "hex" holds a character that is not ASCII.
/// The digits were paired by slicing the text two bytes at a time, and a slice that ended
/// inside `é` panicked: a zone file could crash the server at load or at a reload. Now: the
/// record is refused as not hex, and the zone reports it.
#[test]
fn generic_rdata_that_is_not_ascii_is_refused_not_a_panic() {
    harness::master_file::run("@ 60 TYPE1 \\# 2 0é0\n".as_bytes());
}

/// `kubernetes_objects`: a name with a label that hickory writes escaped (`\-s`, a namespace
/// starting with `-`) made the SOA serial's text `10-0-0-210-0-0-2.\-s.pod...`: the fast path
/// wrote the labels before the escaped one, and the fallback wrote the whole name after them.
/// A debug assertion caught it; in a release build the serial hashed the wrong text.
#[test]
fn a_name_written_escaped_is_hashed_once_in_the_serial() {
    harness::kubernetes_objects::run(
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: \"-s\"\n\
          spec:\n  containers: []\nstatus:\n  podIP: 10.0.0.2\n",
    );
}

/// A query whose name is `labels` labels of 63 `a`s: over 255 octets from 5 labels on.
fn query_with_long_name(labels: usize) -> Vec<u8> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..labels {
        query.push(63);
        query.extend_from_slice(&[b'a'; 63]);
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

/// `engine`: the front door's REFUSED (and TC=1, BADCOOKIE) echo a question whose name is over
/// 255 octets (RFC 1035 §2.3.4), which no client can read: `quick_reply::question_end` walks
/// labels with no total. BAD-INPUTS: such a name is FORMERR (or no reply). The fix belongs in
/// `src/server/quick_reply.rs` (fixed: `question_end` counts the name's octets), and
/// `fuzz/src/engine.rs` checks the rejections of every input.
#[test]
fn a_refusal_never_echoes_a_name_over_255_octets() {
    harness::engine::rejections(&query_with_long_name(4));
}

/// `engine`: the same walk makes a REFUSED reply over 512 bytes to a client without EDNS, from
/// a 593-byte "question" (9 labels of 63): larger than the client allowed.
#[test]
fn a_refusal_is_never_larger_than_the_client_allowed() {
    harness::engine::rejections(&query_with_long_name(9));
}
