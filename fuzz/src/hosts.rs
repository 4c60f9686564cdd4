//! `hosts`: a hosts file (the input's bytes as they are: the parser takes bytes) through the
//! parser ([`parse::lines`]) and through the `files` source that serves it ([`Hosts`]).
//!
//! Checked: every line the parser keeps has names that are valid DNS names in text form (at
//! most 253 characters without the final dot, labels of 1 to 63 letters, digits, `-` and `_`,
//! not starting with `-`); the line numbers are those of the file; and the source, loaded from
//! the same bytes, owns every such name (SUCCESS for A and AAAA, and the address among the
//! records of its family) and answers the PTR of every address.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use tokio::runtime::Runtime;

use hearth::chain::{DataVersion, Outcome, Question, Source};
use hearth::sources::hosts::{parse, FilesConfig, Hosts};

use super::common::scratch_directory;

struct State {
    runtime: Runtime,
    path: PathBuf,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| State {
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime"),
        path: scratch_directory("hosts").join("hosts"),
    })
}

fn check_name(name: &str, line: usize) {
    let what = || format!("line {line}: name {name:?}");
    assert!(!name.is_empty() && name.len() <= 253, "{}: length", what());
    assert!(!name.ends_with('.'), "{}: the final dot is kept", what());
    for label in name.split('.') {
        assert!(
            (1..=63).contains(&label.len()),
            "{}: a label of {} bytes",
            what(),
            label.len()
        );
        assert!(!label.starts_with('-'), "{}: a label starts with -", what());
        assert!(
            label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{}: a byte that is not a letter, digit, - or _",
            what()
        );
    }
}

/// The reverse name of `address` (RFC 1035 §3.5, RFC 3596 §2.5).
fn reverse_name(address: IpAddr) -> Name {
    Name::from(address)
}

pub fn run(data: &[u8]) {
    let lines_in_file = data.split(|b| *b == b'\n').count();
    let mut kept = Vec::new();
    for line in parse::lines(data) {
        let line_number = match &line {
            Ok(line) => line.line,
            Err(problem) => problem.line,
        };
        assert!(
            (1..=lines_in_file).contains(&line_number),
            "line {line_number} of a file of {lines_in_file}"
        );
        if let Ok(line) = line {
            let names: Vec<&str> = line.names().collect();
            assert!(!names.is_empty(), "line {line_number}: kept without a name");
            for name in &names {
                check_name(name, line_number);
            }
            if kept.len() < 16 {
                kept.push((line.address, names[0].to_owned()));
            }
        }
    }

    // One input at a time: they share the file.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let state = state();
    std::fs::write(&state.path, data).expect("the hosts file");
    let hosts = Hosts::load(
        &FilesConfig {
            paths: vec![state.path.clone()],
            ttl: 60,
            reload_interval: Duration::from_secs(3600),
        },
        DataVersion::detached("files"),
    );
    state.runtime.block_on(async {
        for (address, name) in kept {
            let Ok(name) = Name::from_ascii(&name) else {
                panic!("{name:?} was kept but is not a name");
            };
            let name = name
                .append_domain(&Name::root())
                .expect("a name of 253 characters");
            let record_type = match address {
                IpAddr::V4(_) => RecordType::A,
                IpAddr::V6(_) => RecordType::AAAA,
            };
            let outcome = hosts
                .lookup(&Question::new(name.clone(), record_type))
                .await;
            let Outcome::Success(answer) = &outcome else {
                panic!("{name} {record_type}: the hosts file has it, and {outcome:?}");
            };
            assert!(
                answer.answers.iter().any(|record| match &record.data {
                    RData::A(a) => IpAddr::V4(a.0) == address,
                    RData::AAAA(aaaa) => IpAddr::V6(aaaa.0) == address,
                    _ => false,
                }),
                "{name} {record_type}: {address} is not among {:?}",
                answer.answers
            );
            let reverse = reverse_name(address);
            let outcome = hosts
                .lookup(&Question::new(reverse.clone(), RecordType::PTR))
                .await;
            let Outcome::Success(answer) = &outcome else {
                panic!("{reverse} PTR: the hosts file has {address}, and {outcome:?}");
            };
            assert!(
                !answer.answers.is_empty(),
                "{reverse} PTR: the hosts file has {address}, and no PTR"
            );
        }
    });
}
