//! `master_file`: a zone file (the input as lossy UTF-8) through the zones source's loader,
//! [`load_directory`]: the master-file reader (`zones::master`), the zone's load-time checks
//! (`zones::zone::loader`), then lookups in the zone that loaded.
//!
//! The file is `fuzz.example.zone` in a scratch directory (its origin is `fuzz.example.` unless
//! it starts with `$ORIGIN`), beside two files it may `$INCLUDE`: `records.db` (two records) and
//! `loop.db` (which includes itself). An input that has both `$INCLUDE` and a `/` is skipped:
//! `$INCLUDE` takes any path, and reading `/dev/zero` or the machine's files is not what is
//! being tested.
//!
//! Checked: no panic, no hang; every problem names a line of a file that was read or no line;
//! every record the reader gave at the apex of a zone that loaded is answered there.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use hickory_proto::rr::{Name, Record, RecordType};

use hearth::sources::zones::load_directory;
use hearth::sources::zones::master::{RecordSink, Written, ZoneFile};

use super::common::scratch_directory;

/// The scratch directory, with the files an input may include.
fn directory() -> &'static PathBuf {
    static DIRECTORY: OnceLock<PathBuf> = OnceLock::new();
    DIRECTORY.get_or_init(|| {
        let directory = scratch_directory("master_file");
        std::fs::write(
            directory.join("records.db"),
            "included 300 IN A 192.0.2.7\n 300 TXT \"from an include\"\n",
        )
        .expect("an include file");
        std::fs::write(directory.join("loop.db"), "$INCLUDE loop.db\n").expect("an include file");
        directory
    })
}

/// The records as read, their owners and types (the first few).
#[derive(Default)]
struct Owners(Vec<(Name, RecordType)>);

impl RecordSink for Owners {
    fn record(&mut self, _at: Written<'_>, record: Record) {
        if self.0.len() < 32 {
            self.0.push((record.name.clone(), record.record_type()));
        }
    }
}

fn has_include(data: &[u8]) -> bool {
    data.windows(8)
        .any(|window| window.eq_ignore_ascii_case(b"$include"))
}

pub fn run(data: &[u8]) {
    if has_include(data) && data.contains(&b'/') {
        return;
    }
    // One input at a time: they share the file.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let directory = directory();
    let path = directory.join("fuzz.example.zone");
    std::fs::write(&path, String::from_utf8_lossy(data).as_bytes()).expect("the zone file");

    let load = load_directory(directory).expect("the scratch directory reads");
    for problem in &load.problems {
        assert!(
            problem.line.is_none() || problem.file.starts_with(directory),
            "a problem outside the files read: {problem}"
        );
        assert!(problem.line != Some(0), "a problem at line 0: {problem}");
    }
    let Some((_, zone)) = load.zones.first() else {
        return;
    };
    let origin = zone.origin().clone();
    let mut owners = Owners::default();
    if let Ok(file) = ZoneFile::open(&path) {
        let _ = file.read(&mut owners);
    }
    for probe in ["www", "*", "a.b", "no-such-name"] {
        if let Ok(name) = Name::from_ascii(probe).and_then(|name| name.append_domain(&origin)) {
            for record_type in [RecordType::A, RecordType::TXT, RecordType::ANY] {
                zone.lookup(&name, record_type);
            }
        }
    }
    for (owner, record_type) in &owners.0 {
        let answer = zone.lookup(owner, *record_type);
        zone.lookup(owner, RecordType::A);
        zone.lookup(owner, RecordType::CNAME);
        if owner == &origin {
            assert!(
                !answer.answers.is_empty(),
                "{owner} {record_type} is in the zone file at the apex, and not answered: \
                 {answer:?}"
            );
        }
    }
}
