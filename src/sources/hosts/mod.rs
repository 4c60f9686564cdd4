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
mod setup;

pub use setup::{FilesConfig, FilesSetup};

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::chain::{Answer, DataVersion, Failure, Outcome, Question, Source};
use crate::sources::watch::{Fingerprint, Reload, ReloadStats};
use crate::sources::wire::{self, key_in, push_text_name, same_wire_name, wire_name, KeyMap};
use parse::LineProblem;

/// The most names a PTR answer gives for one address. glibc's `gethostbyaddr` returns one line's
/// names; CoreDNS returns every name. Every name is right, until a blocklist puts 100,000 names
/// on `0.0.0.0` and one PTR answer would fill a 64 KiB TCP message: the first names in file
/// order are the useful ones.
const MAX_PTR_NAMES: usize = 16;

/// The most addresses of one family a name keeps. A 64 KiB message holds some 4,000 A records,
/// so no answer could carry more; the bound keeps a span's length in 16 bits.
const MAX_ADDRESSES: usize = u16::MAX as usize;

/// The largest hosts file read: beyond this it is not a hosts file (or it is `/dev/zero`).
const MAX_FILE_SIZE: u64 = 256 << 20;

// How the table is kept. Hosts files run to blocklists of 100,000 lines and more, and dnsmasq
// holds one in a few bytes over its text. Kept as hickory `Name`s (80 bytes each, before their
// labels spill to the heap) in a map of `LowerName`s, with the parsed lines beside it for
// rebuilds, a 100,000-line file took 56 MB of RSS, 0.45 KB a line. Here a name is its key
// ([`NameKey`]) and a span of one array of addresses per family; the names a PTR answer gives
// are kept once, as written, in one array of bytes; and a file is kept as the bytes it was
// read as, parsed again when another file's change rebuilds the table.

/// The merged contents of all hosts files: what queries read.
#[derive(Debug, Default)]
pub struct HostsTable {
    /// Every name in the files, and its number: where its addresses' [`Span`] is in `spans`.
    /// (A number is 4 bytes where a `Span` is 12, so a slot of the map is 24 bytes rather
    /// than 32, and the map is built once, not again once the spans are known.)
    by_name: KeyMap<u32>,
    spans: Vec<Span>,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    /// Every address in the files, and where the names of its PTR answer are in `ptr_names`.
    by_address: HashMap<IpAddr, (u32, u8)>,
    /// Offsets into `written`.
    ptr_names: Vec<u32>,
    /// Names in wire form as the files wrote them (case kept), for PTR answers.
    written: Vec<u8>,
    /// Files that have never been read successfully; while any is, a name found in none of the
    /// others is UNAVAIL rather than NOTFOUND, since the unread file might have held it.
    unreadable: Vec<String>,
}

/// Where a name's addresses are: each family in file order, without repeats.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    v4: u32,
    v6: u32,
    v4_len: u16,
    v6_len: u16,
}

impl HostsTable {
    fn build(files: &[FileState]) -> Self {
        let mut builder = Builder::default();
        for file in files {
            match &file.contents {
                Contents::Kept(bytes) => parse::lines(bytes)
                    .flatten()
                    .for_each(|line| builder.insert(&line)),
                // Only the table built from it holds it, and this build replaces that table:
                // never reached, since a file's contents are dropped only when it is the only
                // file, and a table is then built only after a new read of it.
                Contents::InTableOnly => debug_assert!(
                    false,
                    "a hosts file's text was dropped, yet the table is rebuilt without a new read"
                ),
                Contents::Unread => builder
                    .table
                    .unreadable
                    .push(file.path.display().to_string()),
            }
        }
        builder.finish()
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
        let mut buffer = [0; 256];
        // No key made when there are no names: `files` comes first in the default order, and
        // with no hosts file every query would make one for nothing.
        let span = (!self.by_name.is_empty())
            .then(|| key_in(&question.name, &mut buffer))
            .flatten()
            .and_then(|key| self.by_name.get(key))
            .and_then(|&n| self.spans.get(n as usize));
        if let Some(span) = span {
            let want_v4 = matches!(question.record_type, RecordType::A | RecordType::ANY);
            let want_v6 = matches!(question.record_type, RecordType::AAAA | RecordType::ANY);
            let mut answers = Vec::new();
            if want_v4 {
                let v4 = range(span.v4, span.v4_len);
                answers.extend(self.v4[v4].iter().map(|ip| record(RData::A(A(*ip)))));
            }
            if want_v6 {
                let v6 = range(span.v6, span.v6_len);
                answers.extend(self.v6[v6].iter().map(|ip| record(RData::AAAA(AAAA(*ip)))));
            }
            return Outcome::Success(owned_answer(answers));
        }
        // As for the key above: no address read from the name when no address is held.
        if let Some(&(start, count)) = (!self.by_address.is_empty())
            .then(|| reverse_address(&question.name))
            .flatten()
            .and_then(|ip| self.by_address.get(&ip))
        {
            let answers = if matches!(question.record_type, RecordType::PTR | RecordType::ANY) {
                self.ptr_names[range(start, u16::from(count))]
                    .iter()
                    .map(|&at| {
                        let name = wire_name(&self.written[at as usize..]);
                        record(RData::PTR(PTR(name)))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            return Outcome::Success(owned_answer(answers));
        }
        if self.unreadable.is_empty() {
            Outcome::not_found()
        } else {
            Outcome::Unavail(HostsError::Unreadable(self.unreadable.join(", ")).into())
        }
    }
}

fn range(start: u32, length: u16) -> std::ops::Range<usize> {
    let start = start as usize;
    start..start + usize::from(length)
}

/// Builds a [`HostsTable`] from lines in file order.
#[derive(Default)]
struct Builder {
    /// Names are numbered in `table.by_name` in the order they first appear.
    table: HostsTable,
    /// (name number, address) in file order; grouped by name in [`Builder::finish`].
    v4: Vec<(u32, Ipv4Addr)>,
    v6: Vec<(u32, Ipv6Addr)>,
    /// Each address's PTR names, as offsets into `table.written`.
    reverse: HashMap<IpAddr, Vec<u32>>,
    key: Vec<u8>,
}

impl Builder {
    fn insert(&mut self, line: &parse::HostsLine) {
        let ptr_names = self.reverse.entry(line.address).or_default();
        for name in line.names() {
            self.key.clear();
            push_text_name(&mut self.key, name, true);
            let by_name = &mut self.table.by_name;
            let number = match by_name.get(self.key.as_slice()) {
                Some(&number) => number,
                None => {
                    // A name is at least 3 bytes of a file of at most 256 MiB; 2^32 names
                    // would take 64 such files.
                    let Ok(number) = u32::try_from(by_name.len()) else {
                        continue;
                    };
                    by_name.insert(self.key.as_slice().into(), number);
                    number
                }
            };
            match line.address {
                IpAddr::V4(v4) => push_pair(&mut self.v4, (number, v4)),
                IpAddr::V6(v6) => push_pair(&mut self.v6, (number, v6)),
            }
            // At most MAX_PTR_NAMES names are compared, so a blocklist of 100,000 names on
            // `0.0.0.0` loads in linear time.
            let written = &mut self.table.written;
            let Ok(at) = u32::try_from(written.len()) else {
                continue;
            };
            if ptr_names.len() < MAX_PTR_NAMES
                && !ptr_names
                    .iter()
                    .any(|&at| same_wire_name(&written[at as usize..], &self.key))
            {
                ptr_names.push(at);
                push_text_name(written, name, false);
            }
        }
    }

    fn finish(self) -> HostsTable {
        let Builder {
            mut table,
            v4,
            v6,
            reverse,
            ..
        } = self;
        let mut spans = vec![Span::default(); table.by_name.len()];
        table.v4 = group(v4, |number, start, length| {
            if let Some(span) = spans.get_mut(number) {
                span.v4 = start;
                span.v4_len = length;
            }
        });
        table.v6 = group(v6, |number, start, length| {
            if let Some(span) = spans.get_mut(number) {
                span.v6 = start;
                span.v6_len = length;
            }
        });
        table.spans = spans;
        table.by_name.shrink_to_fit();
        let mut by_address = HashMap::with_capacity(reverse.len());
        for (address, names) in reverse {
            // An address's PTR names are at most MAX_PTR_NAMES (16); beyond 2^32 of them in
            // all (some 270 million addresses), an address has none.
            let Ok(start) = u32::try_from(table.ptr_names.len()) else {
                continue;
            };
            table.ptr_names.extend_from_slice(&names);
            by_address.insert(address, (start, names.len() as u8));
        }
        table.by_address = by_address;
        table.ptr_names.shrink_to_fit();
        table.written.shrink_to_fit();
        table
    }
}

/// Adds a (name number, address) pair, unless it repeats the last one (`1.1.1.1 a a a ...`
/// would otherwise hold a pair per repeat until [`group`]) or 2^32 pairs are held already
/// ([`group`] numbers them in 32 bits).
fn push_pair<T: PartialEq>(pairs: &mut Vec<(u32, T)>, pair: (u32, T)) {
    if pairs.last() != Some(&pair) && pairs.len() < u32::MAX as usize {
        pairs.push(pair);
    }
}

/// Groups (name number, address) pairs by name into one array, keeping each name's addresses in
/// file order without repeats, and tells `span` where each name's are. Sorting, rather than
/// looking for each address among the name's earlier ones, keeps a name with 100,000
/// addresses from taking quadratic time.
fn group<T: Copy + Ord>(pairs: Vec<(u32, T)>, mut span: impl FnMut(usize, u32, u16)) -> Vec<T> {
    // (name, address, position in the file): sorted, the first of each (name, address) is
    // the one to keep; sorted again by position, they are back in file order.
    let mut tagged: Vec<(u32, T, u32)> = pairs
        .into_iter()
        .zip(0u32..)
        .map(|((number, address), position)| (number, address, position))
        .collect();
    tagged.sort_unstable();
    tagged.dedup_by_key(|(number, address, _)| (*number, *address));
    tagged.sort_unstable_by_key(|(number, _, position)| (*number, *position));

    let mut addresses = Vec::with_capacity(tagged.len());
    for same_name in tagged.chunk_by(|a, b| a.0 == b.0) {
        let start = addresses.len();
        let kept = same_name.len().min(MAX_ADDRESSES);
        addresses.extend(same_name[..kept].iter().map(|(_, address, _)| *address));
        // At most 2^32 - 1 pairs ([`push_pair`]), so `start` fits; `kept` is bounded.
        span(same_name[0].0 as usize, start as u32, kept as u16);
    }
    addresses.shrink_to_fit();
    addresses
}

/// The answer for a name the files own: AA set, as CoreDNS's hosts plugin and dnsmasq do for
/// names they hold; empty `answers` is NODATA.
fn owned_answer(answers: Vec<Record>) -> Answer {
    Answer {
        authoritative: true,
        answers,
        // The source stamps the version of the table it read (`Outcome::read_from`).
        ..Answer::default()
    }
}

/// The address a reverse name stands for (`4.3.2.1.in-addr.arpa.` is 1.2.3.4): one shared with
/// the other sources, in [`crate::sources::wire`].
fn reverse_address(name: &Name) -> Option<IpAddr> {
    wire::reverse_address(name)
}

/// One configured file and its last good contents.
#[derive(Debug)]
struct FileState {
    path: PathBuf,
    fingerprint: Option<Fingerprint>,
    contents: Contents,
}

/// A file's last good contents. Once a file has been read, a read that fails keeps them: a
/// running server keeps serving its last good state.
#[derive(Debug)]
enum Contents {
    /// Never read successfully.
    Unread,
    /// As read, parsed again when another file's change rebuilds the table: the text is
    /// smaller than any parsed form of it.
    Kept(Box<[u8]>),
    /// In the table only. With one file, nothing but a new read of it rebuilds the table, so
    /// its text need not be kept (3 MB for a 100,000-line blocklist).
    InTableOnly,
}

impl Contents {
    fn is_read(&self) -> bool {
        !matches!(self, Contents::Unread)
    }
}

/// Why the `files` source could not be consulted.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("hosts file not readable: {0}")]
    Unreadable(String),
}

impl Failure for HostsError {}

/// The `files` source.
pub struct Hosts {
    table: ArcSwap<HostsTable>,
    files: Mutex<Vec<FileState>>,
    ttl: u32,
    /// How often the files are polled for changes.
    reload_interval: std::time::Duration,
    reload_stats: ReloadStats,
    /// Bumped after every new table is swapped in: answers read from the old one stop being
    /// reused, and nothing else does.
    version: DataVersion,
}

impl Hosts {
    /// Reads every file now. A file that cannot be read is logged and makes the source UNAVAIL
    /// for names found in no other file, until it can be read.
    pub fn load(config: &FilesConfig, version: DataVersion) -> Self {
        let (paths, ttl) = (&config.paths, config.ttl);
        let hosts = Self {
            table: ArcSwap::from_pointee(HostsTable::default()),
            files: Mutex::new(
                paths
                    .iter()
                    .map(|path| FileState {
                        path: path.clone(),
                        fingerprint: None,
                        contents: Contents::Unread,
                    })
                    .collect(),
            ),
            ttl,
            reload_interval: config.reload_interval,
            reload_stats: ReloadStats::default(),
            version,
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
                Ok(bytes) => {
                    let (mut entries, mut skipped) = (0, 0);
                    for line in parse::lines(&bytes) {
                        match line {
                            Ok(_) => entries += 1,
                            Err(problem) => {
                                skipped += 1;
                                log_problem(&file.path, &problem);
                            }
                        }
                    }
                    tracing::info!(
                        file = %file.path.display(),
                        entries,
                        skipped,
                        "hosts file loaded"
                    );
                    file.contents = Contents::Kept(bytes);
                    changed = true;
                }
                Err(error) if file.contents.is_read() => tracing::warn!(
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
            self.version.bump();
            if let [only] = files.as_mut_slice() {
                if only.contents.is_read() {
                    only.contents = Contents::InTableOnly;
                }
            }
        }
        changed
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
    fn name(&self) -> &'static str {
        "files"
    }

    async fn lookup(&self, question: &Question) -> Outcome {
        self.answer(question)
    }

    /// The table is in memory: every lookup answers at once.
    fn lookup_now(&self, question: &Question) -> Option<Outcome> {
        Some(self.answer(question))
    }
}

impl Hosts {
    /// [`Source::lookup`]'s answer, from the table loaded now.
    fn answer(&self, question: &Question) -> Outcome {
        self.table
            .load()
            .lookup(question, self.ttl)
            .read_from(self.version.dependencies())
    }
}

/// Reads a hosts file: a regular file only (a FIFO would block the reload forever), of a sane
/// size.
fn read_file(path: &Path) -> std::io::Result<Box<[u8]>> {
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
    Ok(bytes.into_boxed_slice())
}

fn log_problem(path: &Path, problem: &LineProblem) {
    tracing::warn!(
        "{}:{}: {} (line skipped)",
        path.display(),
        problem.line,
        problem.error
    );
}

/// For `hearth check`: every problem in `path` as `file:line: reason`.
pub fn check_file(path: &Path) -> Vec<String> {
    match read_file(path) {
        Ok(bytes) => parse::problems(&bytes)
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

    fn config(paths: &[PathBuf]) -> FilesConfig {
        FilesConfig {
            paths: paths.to_vec(),
            ttl: 60,
            reload_interval: std::time::Duration::from_secs(1),
        }
    }

    fn table(text: &str) -> HostsTable {
        HostsTable::build(&[FileState {
            path: PathBuf::from("hosts"),
            fingerprint: None,
            contents: Contents::Kept(text.as_bytes().into()),
        }])
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
            // A reverse name the files own: NODATA for other types, every PTR for ANY.
            ("11.2.0.192.in-addr.arpa.", RecordType::A, Status::Success, &[]),
            (
                "11.2.0.192.in-addr.arpa.",
                RecordType::ANY,
                Status::Success,
                &["11.2.0.192.in-addr.arpa. 60 IN PTR web.example.org."],
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
    fn addresses_keep_file_order_without_repeats() {
        let table = table(
            "192.0.2.3 multi.example\n\
             2001:db8::2 multi.example\n\
             192.0.2.1 multi.example other.example\n\
             192.0.2.3 MULTI.example\n\
             2001:db8::1 multi.example\n\
             2001:db8::2 multi.example\n\
             192.0.2.2 multi.example\n",
        );
        let (_, records) = ask(&table, "Multi.Example.", RecordType::ANY);
        assert_eq!(
            records,
            [
                "Multi.Example. 60 IN A 192.0.2.3",
                "Multi.Example. 60 IN A 192.0.2.1",
                "Multi.Example. 60 IN A 192.0.2.2",
                "Multi.Example. 60 IN AAAA 2001:db8::2",
                "Multi.Example. 60 IN AAAA 2001:db8::1",
            ]
        );
        let (_, records) = ask(&table, "other.example.", RecordType::A);
        assert_eq!(records, ["other.example. 60 IN A 192.0.2.1"]);
    }

    #[test]
    fn ptr_names_are_each_lines_spelling_once_and_bounded() {
        let mut text =
            String::from("192.0.2.1 First.Example first.example\n192.0.2.1 FIRST.example\n");
        text.push_str("192.0.2.2 second.example\n192.0.2.1 second.EXAMPLE\n");
        for i in 0..40 {
            text.push_str(&format!("0.0.0.0 blocked{i}.example\n"));
        }
        let table = table(&text);
        let (_, records) = ask(&table, "1.2.0.192.in-addr.arpa.", RecordType::PTR);
        assert_eq!(
            records,
            [
                "1.2.0.192.in-addr.arpa. 60 IN PTR First.Example.",
                "1.2.0.192.in-addr.arpa. 60 IN PTR second.EXAMPLE.",
            ]
        );
        let (_, records) = ask(&table, "2.2.0.192.in-addr.arpa.", RecordType::PTR);
        assert_eq!(
            records,
            ["2.2.0.192.in-addr.arpa. 60 IN PTR second.example."]
        );
        let (_, records) = ask(&table, "0.0.0.0.in-addr.arpa.", RecordType::PTR);
        assert_eq!(records.len(), MAX_PTR_NAMES);
        assert_eq!(
            records[0],
            "0.0.0.0.in-addr.arpa. 60 IN PTR blocked0.example."
        );
        assert_eq!(table.len(), 42);
    }

    #[test]
    fn later_files_add_to_earlier_ones() {
        let file = |text: &str| FileState {
            path: PathBuf::from("hosts"),
            fingerprint: None,
            contents: Contents::Kept(text.as_bytes().into()),
        };
        let table = HostsTable::build(&[
            file("192.0.2.1 shared.example\n"),
            file("192.0.2.2 shared.example\n192.0.2.1 shared.example\n"),
        ]);
        let (_, records) = ask(&table, "shared.example.", RecordType::A);
        assert_eq!(
            records,
            [
                "shared.example. 60 IN A 192.0.2.1",
                "shared.example. 60 IN A 192.0.2.2"
            ]
        );
    }

    #[test]
    fn unread_file_makes_misses_unavail() {
        let missing = PathBuf::from("/nonexistent/hearth/hosts");
        let hosts = Hosts::load(&config(&[missing]), DataVersion::detached("files"));
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
        let hosts = Hosts::load(
            &config(std::slice::from_ref(&path)),
            DataVersion::detached("files"),
        );
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

        // Deleted: the last good contents keep serving, after a poll and after SIGHUP (the
        // file's text is no longer kept: it is the only file).
        std::fs::remove_file(&path).unwrap();
        hosts.reload_changed();
        assert!(!hosts.reread(), "nothing to rebuild from");
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

    #[test]
    fn a_deleted_file_still_counts_when_another_changes() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        std::fs::write(&first, "192.0.2.1 one.example\n").unwrap();
        std::fs::write(&second, "192.0.2.2 two.example\n").unwrap();
        let hosts = Hosts::load(
            &config(&[first.clone(), second.clone()]),
            DataVersion::detached("files"),
        );
        std::fs::remove_file(&first).unwrap();
        hosts.reload_changed();

        // A rebuild for the second file's change uses the first's last good text.
        let next = dir.path().join("second.new");
        std::fs::write(&next, "192.0.2.3 three.example\n").unwrap();
        std::fs::rename(&next, &second).unwrap();
        assert!(hosts.reload_changed());
        let table = hosts.table();
        assert_eq!(
            ask(&table, "one.example.", RecordType::A).0,
            Status::Success
        );
        assert_eq!(
            ask(&table, "two.example.", RecordType::A).0,
            Status::NotFound
        );
        assert_eq!(
            ask(&table, "three.example.", RecordType::A).0,
            Status::Success
        );
        // SIGHUP rereads both; the first still cannot be read, and still counts.
        assert!(hosts.reread());
        assert_eq!(
            ask(&hosts.table(), "one.example.", RecordType::A).0,
            Status::Success
        );
    }
}
