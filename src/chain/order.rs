//! The nsswitch-like order: which sources are asked, in what order, and what each status does.
//!
//! The syntax is nsswitch.conf(5)'s, so that an operator can copy a `hosts:` line:
//!
//! ```text
//! files [NOTFOUND=return] dns
//! files [!UNAVAIL=return] zones dns
//! ```
//!
//! A bracket after a service holds one or more `STATUS=ACTION` items (case-insensitive);
//! `!STATUS=ACTION` applies the action to every status but STATUS. Statuses are `SUCCESS`,
//! `NOTFOUND`, `UNAVAIL` and `TRYAGAIN`; actions are `return` and `continue`. glibc's `merge`
//! action only makes sense for group databases, so it is rejected rather than silently ignored.

use std::fmt;
use std::path::Path;

use thiserror::Error;

use super::{Action, Status};

/// What to do after a source answered with each of the four statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actions {
    on: [Action; 4],
}

impl Default for Actions {
    /// nsswitch.conf(5): "The default action is `[SUCCESS=return NOTFOUND=continue
    /// UNAVAIL=continue TRYAGAIN=continue]`".
    fn default() -> Self {
        Self {
            on: [
                Action::Return,
                Action::Continue,
                Action::Continue,
                Action::Continue,
            ],
        }
    }
}

impl Actions {
    /// The action taken after `status`.
    pub fn after(&self, status: Status) -> Action {
        self.on[status as usize]
    }

    fn set(&mut self, status: Status, action: Action) {
        self.on[status as usize] = action;
    }
}

/// One source in the order, with its actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEntry {
    /// The source's name, lower-cased. Which names exist is the source registry's to say
    /// (`sources::REGISTRY`): [`check_order`] is given the list.
    pub source: String,
    pub actions: Actions,
}

impl OrderEntry {
    /// `source` with nsswitch's default actions.
    pub fn plain(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            actions: Actions::default(),
        }
    }
}

impl fmt::Display for OrderEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        let default = Actions::default();
        let changed: Vec<String> = Status::ALL
            .iter()
            .filter(|status| self.actions.after(**status) != default.after(**status))
            .map(|status| format!("{status}={}", self.actions.after(*status)))
            .collect();
        if !changed.is_empty() {
            write!(f, " [{}]", changed.join(" "))?;
        }
        Ok(())
    }
}

/// Why an order could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OrderError {
    #[error("unknown source `{0}` (expected {1})")]
    UnknownSource(String, String),
    #[error("`{0}`: one source per entry (write them as separate strings)")]
    SeveralSources(String),
    #[error("`[` without a source before it")]
    ActionWithoutSource,
    #[error("unclosed `[`")]
    Unclosed,
    #[error("`{0}` is not STATUS=ACTION")]
    BadItem(String),
    #[error("unknown status `{0}` (expected SUCCESS, NOTFOUND, UNAVAIL or TRYAGAIN)")]
    UnknownStatus(String),
    #[error("unknown action `{0}` (expected return or continue)")]
    UnknownAction(String),
    #[error("the `merge` action is for group databases and has no meaning for hosts")]
    MergeUnsupported,
    #[error("`{0}` appears twice in the order")]
    Duplicate(String),
    #[error("the order is empty")]
    Empty,
    #[error("no service Hearth has (files, dns) on the line")]
    NoKnownSource,
}

/// A service name as written and the actions that follow it; the name is not yet checked
/// against the sources Hearth has, because nsswitch.conf names services it does not have.
#[derive(Debug, PartialEq, Eq)]
struct Service<'a> {
    name: &'a str,
    actions: Actions,
}

/// Splits a `hosts:`-style line into services and their bracketed actions.
fn parse_services(line: &str) -> Result<Vec<Service<'_>>, OrderError> {
    let mut services: Vec<Service<'_>> = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if let Some(after_bracket) = rest.strip_prefix('[') {
            let Some(end) = after_bracket.find(']') else {
                return Err(OrderError::Unclosed);
            };
            let Some(service) = services.last_mut() else {
                return Err(OrderError::ActionWithoutSource);
            };
            parse_actions(&after_bracket[..end], &mut service.actions)?;
            rest = after_bracket[end + 1..].trim_start();
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '[')
                .unwrap_or(rest.len());
            services.push(Service {
                name: &rest[..end],
                actions: Actions::default(),
            });
            rest = rest[end..].trim_start();
        }
    }
    Ok(services)
}

/// Reads the inside of one bracket, e.g. `NOTFOUND=return !UNAVAIL = continue`.
fn parse_actions(inside: &str, actions: &mut Actions) -> Result<(), OrderError> {
    // Spaces around `=` are tolerated, as glibc does: join them away before splitting items.
    let normalised = inside
        .split('=')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("=");
    for item in normalised.split_whitespace() {
        let Some((status, action)) = item.split_once('=') else {
            return Err(OrderError::BadItem(item.to_owned()));
        };
        let (negated, status) = match status.strip_prefix('!') {
            Some(status) => (true, status),
            None => (false, status),
        };
        let status = Status::from_name(status)
            .ok_or_else(|| OrderError::UnknownStatus(status.to_owned()))?;
        let action = match action.to_ascii_lowercase().as_str() {
            "return" => Action::Return,
            "continue" => Action::Continue,
            "merge" => return Err(OrderError::MergeUnsupported),
            _ => return Err(OrderError::UnknownAction(action.to_owned())),
        };
        for each in Status::ALL {
            if (each == status) != negated {
                actions.set(each, action);
            }
        }
    }
    Ok(())
}

/// Reads one entry of `resolve.order`, e.g. `"files [NOTFOUND=return]"`. The syntax only:
/// whether the source exists is [`check_source`]'s question.
pub fn parse_entry(text: &str) -> Result<OrderEntry, OrderError> {
    let services = parse_services(text)?;
    match services.as_slice() {
        [] => Err(OrderError::Empty),
        [service] => Ok(OrderEntry {
            source: service.name.to_ascii_lowercase(),
            actions: service.actions,
        }),
        [_, second, ..] => Err(OrderError::SeveralSources(second.name.to_owned())),
    }
}

/// Whether `entry` names one of the `known` sources.
pub fn check_source(entry: &OrderEntry, known: &[&str]) -> Result<(), OrderError> {
    if known.contains(&entry.source.as_str()) {
        Ok(())
    } else {
        Err(OrderError::UnknownSource(
            entry.source.clone(),
            expected(known),
        ))
    }
}

/// "files, zones or dns".
fn expected(known: &[&str]) -> String {
    match known {
        [] => "none".to_owned(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Checks a whole order: not empty, every source one of the `known`, none twice.
pub fn check_order(entries: &[OrderEntry], known: &[&str]) -> Result<(), OrderError> {
    if entries.is_empty() {
        return Err(OrderError::Empty);
    }
    for (index, entry) in entries.iter().enumerate() {
        check_source(entry, known)?;
        if entries[..index].iter().any(|e| e.source == entry.source) {
            return Err(OrderError::Duplicate(entry.source.clone()));
        }
    }
    Ok(())
}

/// The order read from an nsswitch.conf `hosts:` line.
#[derive(Debug)]
pub struct NsswitchOrder {
    pub entries: Vec<OrderEntry>,
    /// Line number of the `hosts:` line, for messages.
    pub line: usize,
    /// Services on the line that Hearth does not have (`mdns4_minimal`, `myhostname`, ...).
    /// They are skipped, as glibc skips a service whose module is missing.
    pub skipped: Vec<String>,
}

/// Why an nsswitch.conf could not give an order.
#[derive(Debug, Error)]
pub enum NsswitchError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: no `hosts:` line")]
    NoHostsLine { file: String },
    #[error("{file}:{line}: {reason}")]
    Line {
        file: String,
        line: usize,
        reason: OrderError,
    },
}

/// Reads the `hosts:` line of an nsswitch.conf; `known` are the sources Hearth has. glibc's
/// `files` and `dns` are Hearth's sources of the same names; `zones`, which nsswitch.conf has
/// no name for, is placed just before `dns` (or last when there is no `dns`): local
/// authoritative data is answered before anything is forwarded, and hosts files still come
/// first when listed first. Services Hearth does not have are skipped.
pub fn read_nsswitch(path: &Path, known: &[&str]) -> Result<NsswitchOrder, NsswitchError> {
    use std::io::Read as _;
    let file = path.display().to_string();
    let read_error = |source| NsswitchError::Read {
        file: file.clone(),
        source,
    };
    // A regular file, read up to a limit: `resolve.nsswitch = "/dev/zero"` (or a FIFO) must be
    // an error, not a hang or an unbounded read (found by the `config` fuzz target's review).
    let opened = std::fs::File::open(path).map_err(read_error)?;
    let metadata = opened.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(read_error(std::io::Error::other("not a regular file")));
    }
    let mut text = String::new();
    opened
        .take(MAX_NSSWITCH_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_NSSWITCH_BYTES {
        return Err(read_error(std::io::Error::other(format!(
            "larger than {MAX_NSSWITCH_BYTES} bytes; an nsswitch.conf is a few hundred"
        ))));
    }
    parse_nsswitch(&text, &file, known)
}

/// The most of an nsswitch.conf that is read.
const MAX_NSSWITCH_BYTES: u64 = 1 << 20;

/// The source nsswitch.conf has no name for (see [`read_nsswitch`]).
const ZONES: &str = "zones";

/// [`read_nsswitch`] on text already read; `file` names it in errors.
pub fn parse_nsswitch(
    text: &str,
    file: &str,
    known: &[&str],
) -> Result<NsswitchOrder, NsswitchError> {
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("hosts:") else {
            continue;
        };
        let line_number = index + 1;
        let at_line = |reason| NsswitchError::Line {
            file: file.to_owned(),
            line: line_number,
            reason,
        };
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        let has_zones = known.contains(&ZONES);
        for service in parse_services(rest).map_err(at_line)? {
            let name = service.name.to_ascii_lowercase();
            if !known.contains(&name.as_str()) {
                skipped.push(service.name.to_owned());
                continue;
            }
            if name == "dns" && has_zones && !entries.iter().any(is_zones) {
                entries.push(OrderEntry::plain(ZONES));
            }
            entries.push(OrderEntry {
                source: name,
                actions: service.actions,
            });
        }
        if has_zones && !entries.iter().any(is_zones) {
            entries.push(OrderEntry::plain(ZONES));
        }
        // A line of services Hearth does not have (`hosts: resolve myhostname`) leaves only
        // `zones`: every name outside the zones would be NXDOMAIN. Better refused.
        if !entries.iter().any(|e| !is_zones(e)) {
            return Err(at_line(OrderError::NoKnownSource));
        }
        check_order(&entries, known).map_err(at_line)?;
        return Ok(NsswitchOrder {
            entries,
            line: line_number,
            skipped,
        });
    }
    Err(NsswitchError::NoHostsLine {
        file: file.to_owned(),
    })
}

fn is_zones(entry: &OrderEntry) -> bool {
    entry.source == ZONES
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Continue, Return};
    use Status::{NotFound, Success, TryAgain, Unavail};

    const KNOWN: &[&str] = &["files", "zones", "dns"];

    fn actions(entry: &OrderEntry) -> [Action; 4] {
        Status::ALL.map(|status| entry.actions.after(status))
    }

    #[test]
    fn plain_source_has_nsswitch_defaults() {
        let entry = parse_entry("files").unwrap();
        assert_eq!(entry.source, "files");
        assert_eq!(actions(&entry), [Return, Continue, Continue, Continue]);
    }

    #[test]
    fn actions_are_read_case_insensitively_with_spaces() {
        let entry = parse_entry("DNS [notfound = Return  TRYAGAIN=return]").unwrap();
        assert_eq!(entry.source, "dns");
        assert_eq!(entry.actions.after(NotFound), Return);
        assert_eq!(entry.actions.after(TryAgain), Return);
        assert_eq!(entry.actions.after(Unavail), Continue);
    }

    #[test]
    fn negation_applies_to_every_other_status() {
        let entry = parse_entry("files [!UNAVAIL=return]").unwrap();
        assert_eq!(actions(&entry), [Return, Return, Continue, Return]);
        let entry = parse_entry("files [SUCCESS=continue]").unwrap();
        assert_eq!(entry.actions.after(Success), Continue);
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            check_source(&parse_entry("nis").unwrap(), KNOWN),
            Err(OrderError::UnknownSource(
                "nis".into(),
                "files, zones or dns".into()
            ))
        );
        assert_eq!(
            OrderError::UnknownSource("nis".into(), expected(KNOWN)).to_string(),
            "unknown source `nis` (expected files, zones or dns)"
        );
        assert_eq!(
            parse_entry("files [NOTFOUND=return"),
            Err(OrderError::Unclosed)
        );
        assert_eq!(
            parse_entry("files [NOTFOUND]"),
            Err(OrderError::BadItem("NOTFOUND".into()))
        );
        assert_eq!(
            parse_entry("files [FOUND=return]"),
            Err(OrderError::UnknownStatus("FOUND".into()))
        );
        assert_eq!(
            parse_entry("files [NOTFOUND=stop]"),
            Err(OrderError::UnknownAction("stop".into()))
        );
        assert_eq!(
            parse_entry("files [SUCCESS=merge]"),
            Err(OrderError::MergeUnsupported)
        );
        assert_eq!(
            parse_entry("[NOTFOUND=return]"),
            Err(OrderError::ActionWithoutSource)
        );
        assert!(matches!(
            parse_entry("files dns"),
            Err(OrderError::SeveralSources(_))
        ));
        assert_eq!(parse_entry("  "), Err(OrderError::Empty));
    }

    #[test]
    fn duplicates_and_empty_orders_are_rejected() {
        let files = parse_entry("files").unwrap();
        assert_eq!(
            check_order(&[files.clone(), files], KNOWN),
            Err(OrderError::Duplicate("files".into()))
        );
        assert_eq!(check_order(&[], KNOWN), Err(OrderError::Empty));
    }

    #[test]
    fn nsswitch_hosts_line_is_read_and_zones_goes_before_dns() {
        let text = "# comment\npasswd: files\nhosts:  files mdns4_minimal [NOTFOUND=return] dns myhostname # trailing\n";
        let order = parse_nsswitch(text, "nsswitch.conf", KNOWN).unwrap();
        assert_eq!(order.line, 3);
        let names: Vec<_> = order.entries.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(names, ["files", "zones", "dns"]);
        // The action belonged to mdns4_minimal, which is skipped with it.
        assert_eq!(order.entries[0].actions, Actions::default());
        assert_eq!(order.skipped, ["mdns4_minimal", "myhostname"]);
    }

    #[test]
    fn nsswitch_dns_first_keeps_its_actions() {
        let order = parse_nsswitch("hosts: dns [NOTFOUND=return] files\n", "x", KNOWN).unwrap();
        let shown: Vec<String> = order.entries.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown, ["zones", "dns [NOTFOUND=return]", "files"]);
    }

    #[test]
    fn nsswitch_errors_name_file_and_line() {
        let error = parse_nsswitch(
            "\nhosts: files [BOGUS=return]\n",
            "/etc/nsswitch.conf",
            KNOWN,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "/etc/nsswitch.conf:2: unknown status `BOGUS` (expected SUCCESS, NOTFOUND, UNAVAIL or TRYAGAIN)"
        );
        assert!(parse_nsswitch("passwd: files\n", "f", KNOWN).is_err());
        let error = parse_nsswitch("hosts: resolve [!UNAVAIL=return] myhostname\n", "f", KNOWN)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "f:1: no service Hearth has (files, dns) on the line"
        );
    }

    #[test]
    fn a_device_or_a_huge_file_is_refused_not_read() {
        let known = ["files", "zones", "dns"];
        let error = read_nsswitch(Path::new("/dev/zero"), &known).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let dir = std::env::temp_dir().join(format!("hearth-nsswitch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let huge = dir.join("nsswitch.conf");
        std::fs::write(&huge, "#".repeat((MAX_NSSWITCH_BYTES + 10) as usize)).unwrap();
        let error = read_nsswitch(&huge, &known).unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
