//! Issue 5's memory figure: bytes per cached answer beyond its own wire size. A measurement,
//! not a check: `cargo bench --bench cache_memory` (release) prints it. (It was an `#[ignore]`d
//! test; measurements live in benches/.)

use std::time::Instant as StdInstant;

use hearth::cache::{Cache, CacheConfig, CacheKey};
use hearth::chain::{Answer, Question};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

const ENTRIES: usize = 100_000;

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, with nothing to do.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache = Cache::new(CacheConfig {
            capacity: ENTRIES,
            // Room for every entry: this measures what entries cost, not the bound.
            max_bytes: ENTRIES as u64 * 4096,
            ..CacheConfig::default()
        })
        .unwrap();
        let names: Vec<Name> = (0..ENTRIES)
            .map(|i| Name::from_ascii(format!("host-{i:06}.example.com.")).unwrap())
            .collect();
        let answers: Vec<Answer> = names
            .iter()
            .map(|owner| Answer {
                answers: vec![Record::from_rdata(
                    owner.clone(),
                    3600,
                    RData::A(A::new(192, 0, 2, 1)),
                )],
                ..Answer::default()
            })
            .collect();
        let keys: Vec<CacheKey> = names
            .iter()
            .map(|owner| CacheKey::new(&Question::new(owner.clone(), RecordType::A)))
            .collect();
        // What a reply carrying the answer section holds on the wire: the records, each name
        // written out (the cache stores them so).
        let wire: usize = answers
            .iter()
            .map(|answer| answer.answers[0].to_bytes().map_or(0, |b| b.len()))
            .sum();
        let started = StdInstant::now();
        let before = resident_bytes().unwrap_or(0);
        let now = tokio::time::Instant::now();
        for (key, answer) in keys.into_iter().zip(&answers) {
            cache.insert(key, answer, now);
        }
        let after = resident_bytes().unwrap_or(0);
        let per_entry = (after.saturating_sub(before)) as f64 / ENTRIES as f64;
        let wire_per_entry = wire as f64 / ENTRIES as f64;
        println!(
            "{} entries in {:?}: {per_entry:.0} bytes resident per entry, of which \
             {wire_per_entry:.0} are the answer's wire size: {:.0} bytes of overhead",
            cache.len(),
            started.elapsed(),
            per_entry - wire_per_entry
        );
    });
}
