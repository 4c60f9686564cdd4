//! `files`: answers from hosts(5) files, the way glibc's `files` service and CoreDNS's `hosts`
//! plugin do.
//!
//! - A name in any file *owns* that name: A and AAAA come from the files, every other type is an
//!   empty NOERROR answer (SUCCESS), so the upstream is never asked about a name the operator
//!   overrode (CoreDNS's hosts plugin answers the same way).
//! - PTR questions under `in-addr.arpa.` and `ip6.arpa.` are answered for addresses in the files.
//! - All files are consulted; their entries are merged in the order the files are listed.
//! - Files are polled for changes ([`Hosts::reload_changed`]); a changed file is re-read and the
//!   whole table replaced in one atomic swap, so a query sees the old table or the new one
//!   (why polling: [`crate::sources::watch`]).

pub mod parse;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::chain::{Answer, Outcome, Question, Source, SourceError, SourceKind, Validity};
use crate::sources::watch::{Fingerprint, Reload, ReloadStats};
use parse::{HostsLine, LineProblem, ParsedHosts};

/// The most names a PTR answer gives for one address. glibc's `gethostbyaddr` returns one line's
/// names; CoreDNS returns every name. Every name is right, until a blocklist puts 100,000 names
/// on `0.0.0.0` and one PTR answer would fill a 64 KiB TCP message: the first names in file
/// order are the useful ones.
const MAX_PTR_NAMES: usize = 16;

/// The largest hosts file read: beyond this it is not a hosts file (or it is `/dev/zero`).
const MAX_FILE_SIZE: u64 = 256 << 20;

/// The merged contents of all hosts files: what queries read.
#[derive(Debug, Default)]
pub struct HostsTable {
    by_name: HashMap<LowerName, Addresses>,
    by_address: HashMap<IpAddr, Vec<Name>>,
    /// Files that have never been read successfully; while any is, a name found in none of the
    /// others is UNAVAIL rather than NOTFOUND, since the unread file might have held it.
    unreadable: Vec<String>,
}

/// The addresses of one name, each family in file order, without repeats.
#[derive(Debug, Default)]
struct Addresses {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

impl HostsTable {
    fn build(files: &[FileState]) -> Self {
        let mut table = HostsTable::default();
        let mut reverse_seen = HashSet::new();
        for file in files {
            match &file.lines {
                Some(lines) => lines
                    .iter()
                    .for_each(|line| table.insert(line, &mut reverse_seen)),
                None => table.unreadable.push(file.path.display().to_string()),
            }
        }
        // Lists grown one push at a time hold room for four entries, and most names have one
        // address and most addresses one name: without this a 100,000-line file took about
        // 1.2 KB a line.
        for addresses in table.by_name.values_mut() {
            addresses.v4.shrink_to_fit();
            addresses.v6.shrink_to_fit();
        }
        for names in table.by_address.values_mut() {
            names.shrink_to_fit();
        }
        table.by_name.shrink_to_fit();
        table.by_address.shrink_to_fit();
        table
    }

    /// Adds one line. `reverse_seen` remembers which names each address already has, so a
    /// blocklist-style file (100,000 names on `0.0.0.0`) loads in linear time.
    fn insert(&mut self, line: &HostsLine, reverse_seen: &mut HashSet<(IpAddr, LowerName)>) {
        for name in &line.names {
            let addresses = self.by_name.entry(LowerName::new(name)).or_default();
            match line.address {
                IpAddr::V4(v4) if !addresses.v4.contains(&v4) => addresses.v4.push(v4),
                IpAddr::V6(v6) if !addresses.v6.contains(&v6) => addresses.v6.push(v6),
                _ => {}
            }
        }
        let names = self.by_address.entry(line.address).or_default();
        for name in &line.names {
            if names.len() < MAX_PTR_NAMES
                && reverse_seen.insert((line.address, LowerName::new(name)))
            {
                names.push(name.clone());
            }
        }
    }

    /// How many names the table holds.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn lookup(&self, question: &Question, ttl: u32) -> Outcome {
        let record = |data: RData| Record::from_rdata(question.name.clone(), ttl, data);
        if let Some(addresses) = self.by_name.get(&question.lower_name) {
            let want_v4 = matches!(question.record_type, RecordType::A | RecordType::ANY);
            let want_v6 = matches!(question.record_type, RecordType::AAAA | RecordType::ANY);
            let mut answers = Vec::new();
            if want_v4 {
                answers.extend(addresses.v4.iter().map(|ip| record(RData::A(A(*ip)))));
            }
            if want_v6 {
                answers.extend(addresses.v6.iter().map(|ip| record(RData::AAAA(AAAA(*ip)))));
            }
            return Outcome::Success(owned_answer(answers));
        }
        if let Some(names) = reverse_address(&question.name).and_then(|ip| self.by_address.get(&ip))
        {
            let answers = if matches!(question.record_type, RecordType::PTR | RecordType::ANY) {
                names
                    .iter()
                    .map(|name| record(RData::PTR(PTR(name.clone()))))
                    .collect()
            } else {
                Vec::new()
            };
            return Outcome::Success(owned_answer(answers));
        }
        if self.unreadable.is_empty() {
            Outcome::not_found()
        } else {
            Outcome::Unavail(SourceError::FilesUnreadable(self.unreadable.join(", ")))
        }
    }
}

/// The answer for a name the files own: AA set, as CoreDNS's hosts plugin and dnsmasq do for
/// names they hold; empty `answers` is NODATA.
fn owned_answer(answers: Vec<Record>) -> Answer {
    Answer {
        authoritative: true,
        answers,
        validity: Validity::UntilReload,
        ..Answer::default()
    }
}

/// The address a reverse name stands for: `4.3.2.1.in-addr.arpa.` is 1.2.3.4, and the 32-nibble
/// `ip6.arpa.` name an IPv6 address (RFC 1035 §3.5, RFC 3596 §2.5). Shorter names (networks)
/// are not addresses.
fn reverse_address(name: &Name) -> Option<IpAddr> {
    let network = name.parse_arpa_name().ok()?;
    if network.prefix_len() != network.max_prefix_len() {
        return None;
    }
    // hickory reads `01` and `+1` as labels of 1; only the canonical spelling is that address.
    let address = network.addr();
    (LowerName::new(&Name::from(address)) == LowerName::new(name)).then_some(address)
}

/// One configured file and its last good contents.
#[derive(Debug)]
struct FileState {
    path: PathBuf,
    fingerprint: Option<Fingerprint>,
    /// `None` until the file has been read once. After that, a file that cannot be read keeps
    /// its last good contents: a running server keeps serving its last good state.
    lines: Option<Arc<Vec<HostsLine>>>,
}

/// The `files` source.
pub struct Hosts {
    table: ArcSwap<HostsTable>,
    files: Mutex<Vec<FileState>>,
    ttl: u32,
    reload_stats: ReloadStats,
}

impl Hosts {
    /// Reads every file now. A file that cannot be read is logged and makes the source UNAVAIL
    /// for names found in no other file, until it can be read.
    pub fn load(paths: &[PathBuf], ttl: u32) -> Self {
        let hosts = Self {
            table: ArcSwap::from_pointee(HostsTable::default()),
            files: Mutex::new(
                paths
                    .iter()
                    .map(|path| FileState {
                        path: path.clone(),
                        fingerprint: None,
                        lines: None,
                    })
                    .collect(),
            ),
            ttl,
            reload_stats: ReloadStats::default(),
        };
        hosts.reload(true);
        hosts
    }

    fn reload(&self, first: bool) -> bool {
        // A poisoned lock only means a previous reload panicked; the states are still usable.
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for file in files.iter_mut() {
            let fingerprint = Fingerprint::of(&file.path);
            if !first && fingerprint == file.fingerprint {
                continue;
            }
            let read = read_file(&file.path);
            if !first && Fingerprint::of(&file.path) != fingerprint {
                // Changed while being read (a write in progress): read it at the next poll.
                continue;
            }
            file.fingerprint = fingerprint;
            self.reload_stats.record(read.is_ok());
            match read {
                Ok(parsed) => {
                    log_problems(&file.path, &parsed.problems);
                    tracing::info!(
                        file = %file.path.display(),
                        entries = parsed.lines.len(),
                        skipped = parsed.problems.len(),
                        "hosts file loaded"
                    );
                    file.lines = Some(Arc::new(parsed.lines));
                    changed = true;
                }
                Err(error) if file.lines.is_some() => tracing::warn!(
                    file = %file.path.display(),
                    %error,
                    "hosts file cannot be read; still serving its last good contents"
                ),
                Err(error) => {
                    tracing::warn!(
                        file = %file.path.display(),
                        %error,
                        "hosts file cannot be read; the files source is UNAVAIL for names not in other files"
                    );
                    changed |= first;
                }
            }
        }
        if changed {
            self.table.store(Arc::new(HostsTable::build(&files)));
        }
        changed
    }

    /// A source whose files could not be loaded at all: UNAVAIL for every name.
    pub fn unavailable(paths: &[PathBuf], ttl: u32) -> Self {
        let files: Vec<FileState> = paths
            .iter()
            .map(|path| FileState {
                path: path.clone(),
                fingerprint: None,
                lines: None,
            })
            .collect();
        let mut table = HostsTable::build(&files);
        if table.unreadable.is_empty() {
            table
                .unreadable
                .push("the hosts files failed to load".into());
        }
        Self {
            table: ArcSwap::from_pointee(table),
            files: Mutex::new(files),
            ttl,
            reload_stats: ReloadStats::default(),
        }
    }

    /// Re-reads every file, changed or not (SIGHUP). A file that cannot be read keeps its
    /// last good contents. Returns whether the table was rebuilt.
    pub fn reread(&self) -> bool {
        self.reload(true)
    }

    /// How the file reads went.
    pub fn reload_stats(&self) -> &ReloadStats {
        &self.reload_stats
    }

    /// The table queries see now.
    pub fn table(&self) -> Arc<HostsTable> {
        self.table.load_full()
    }
}

impl Reload for Hosts {
    /// Re-reads the files that changed since the last look; returns whether the table changed.
    fn reload_changed(&self) -> bool {
        self.reload(false)
    }
}

#[async_trait]
impl Source for Hosts {
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }

    async fn lookup(&self, question: &Question) -> Outcome {
        self.table.load().lookup(question, self.ttl)
    }
}

/// Reads a hosts file: a regular file only (a FIFO would block the reload forever), of a sane
/// size.
fn read_file(path: &Path) -> std::io::Result<ParsedHosts> {
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0).min(1 << 20));
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_SIZE} bytes"
        )));
    }
    Ok(parse::parse(&bytes))
}

fn log_problems(path: &Path, problems: &[LineProblem]) {
    for problem in problems {
        tracing::warn!(
            "{}:{}: {} (line skipped)",
            path.display(),
            problem.line,
            problem.error
        );
    }
}

/// For `hearth check`: every problem in `path` as `file:line: reason`.
pub fn check_file(path: &Path) -> Vec<String> {
    match read_file(path) {
        Ok(parsed) => parsed
            .problems
            .iter()
            .map(|p| format!("{}:{}: {}", path.display(), p.line, p.error))
            .collect(),
        Err(error) => vec![format!("{}: cannot read: {error}", path.display())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Status;
    use hickory_proto::op::ResponseCode;

    fn table(text: &str) -> HostsTable {
        let parsed = parse::parse(text.as_bytes());
        let mut table = HostsTable::default();
        let mut seen = HashSet::new();
        parsed
            .lines
            .iter()
            .for_each(|line| table.insert(line, &mut seen));
        table
    }

    fn ask(table: &HostsTable, name: &str, record_type: RecordType) -> (Status, Vec<String>) {
        let question = Question::new(Name::from_ascii(name).unwrap(), record_type);
        let outcome = table.lookup(&question, 60);
        let status = outcome.status();
        let answer = outcome.into_answer();
        let records = answer.answers.iter().map(|r| r.to_string()).collect();
        (status, records)
    }

    const HOSTS: &str = "\
        127.0.0.1 localhost\n\
        ::1 localhost ip6-localhost\n\
        192.0.2.10 web.example.org web\n\
        192.0.2.11 web.example.org\n\
        2001:db8::10 web.example.org\n";

    #[test]
    fn answers_like_a_zone_of_a_and_aaaa() {
        let table = table(HOSTS);
        let cases: &[(&str, RecordType, Status, &[&str])] = &[
            ("localhost.", RecordType::A, Status::Success, &["localhost. 60 IN A 127.0.0.1"]),
            ("LOCALHOST.", RecordType::AAAA, Status::Success, &["LOCALHOST. 60 IN AAAA ::1"]),
            (
                "web.example.org.",
                RecordType::A,
                Status::Success,
                &["web.example.org. 60 IN A 192.0.2.10", "web.example.org. 60 IN A 192.0.2.11"],
            ),
            ("web.", RecordType::AAAA, Status::Success, &[]),
            ("web.example.org.", RecordType::MX, Status::Success, &[]),
            ("other.example.org.", RecordType::A, Status::NotFound, &[]),
            (
                "10.2.0.192.in-addr.arpa.",
                RecordType::PTR,
                Status::Success,
                &[
                    "10.2.0.192.in-addr.arpa. 60 IN PTR web.example.org.",
                    "10.2.0.192.in-addr.arpa. 60 IN PTR web.",
                ],
            ),
            (
                "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
                RecordType::PTR,
                Status::Success,
                &["0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 60 IN PTR web.example.org."],
            ),
            ("99.2.0.192.in-addr.arpa.", RecordType::PTR, Status::NotFound, &[]),
            ("2.0.192.in-addr.arpa.", RecordType::PTR, Status::NotFound, &[]),
            // Not the canonical spelling of 192.0.2.10.
            ("010.2.0.192.in-addr.arpa.", RecordType::PTR, Status::NotFound, &[]),
        ];
        for (name, record_type, status, records) in cases {
            let (got_status, got_records) = ask(&table, name, *record_type);
            let expected: Vec<String> = records.iter().map(|r| r.to_string()).collect();
            assert_eq!(
                (got_status, got_records),
                (*status, expected),
                "{name} {record_type}"
            );
        }
    }

    #[test]
    fn unread_file_makes_misses_unavail() {
        let missing = PathBuf::from("/nonexistent/hearth/hosts");
        let hosts = Hosts::load(&[missing], 60);
        let (status, _) = ask(&hosts.table(), "web.example.org.", RecordType::A);
        assert_eq!(status, Status::Unavail);
        let question = Question::new(Name::from_ascii("x.").unwrap(), RecordType::A);
        let answer = hosts.table().lookup(&question, 60).into_answer();
        assert_eq!(answer.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn reload_picks_up_edits_and_keeps_last_good_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "192.0.2.1 one.example\n").unwrap();
        let hosts = Hosts::load(std::slice::from_ref(&path), 60);
        assert_eq!(
            ask(&hosts.table(), "one.example.", RecordType::A).0,
            Status::Success
        );
        assert!(!hosts.reload_changed(), "nothing changed");

        // Replace by rename, as editors do.
        let next = dir.path().join("hosts.new");
        std::fs::write(&next, "192.0.2.2 two.example\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(hosts.reload_changed());
        assert_eq!(
            ask(&hosts.table(), "one.example.", RecordType::A).0,
            Status::NotFound
        );
        assert_eq!(
            ask(&hosts.table(), "two.example.", RecordType::A).0,
            Status::Success
        );

        // Deleted: the last good contents keep serving.
        std::fs::remove_file(&path).unwrap();
        hosts.reload_changed();
        assert_eq!(
            ask(&hosts.table(), "two.example.", RecordType::A).0,
            Status::Success
        );

        // Recreated: read again.
        std::fs::write(&path, "192.0.2.3 three.example\n").unwrap();
        assert!(hosts.reload_changed());
        assert_eq!(
            ask(&hosts.table(), "three.example.", RecordType::A).0,
            Status::Success
        );
    }
}
