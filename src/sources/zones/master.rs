//! RFC 1035 §5 master files, read the way BIND, NSD and Knot read them.
//!
//! Written here rather than taken from `hickory_proto::serialize::txt::Parser` because that
//! parser returns the records without the line each came from, and every load-time problem
//! (a CNAME beside other data, an out-of-zone record, a bad RDATA) must be reported as
//! `file:line: reason`. What hickory does well is reused: `Name::from_ascii` for names and
//! escapes, its RDATA types, `RData::read` for RFC 3597 generic RDATA, and
//! `RData::try_from_str` for the types whose text form holds no domain name.
//!
//! Supported: `$ORIGIN`, `$TTL` (RFC 2308), `$INCLUDE` (relative to the including file, with an
//! optional origin; loops refused), `@`, relative names, omitted owner, TTL and class (in
//! either order), parentheses across lines, `;` comments, quoted strings, `\X` and `\DDD`
//! escapes, TTLs with units (`1h30m`), and `TYPEnnn` / `\# length hex` (RFC 3597).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};
use thiserror::Error;

/// How deep `$INCLUDE` may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

/// A problem in a zone file, at a line when known.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{}{}: {reason}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ZoneProblem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub reason: String,
}

/// Where a record was written: handed to a [`RecordSink`] with each record.
#[derive(Clone, Copy, Debug)]
pub struct Written<'a> {
    pub file: &'a Path,
    pub line: usize,
}

/// Takes the records of a zone file as they are read, so that a large zone is built without
/// holding all of its records first.
pub trait RecordSink {
    fn record(&mut self, at: Written<'_>, record: Record);
}

/// One record and where it was written.
#[cfg(test)]
#[derive(Clone, Debug)]
pub struct SourcedRecord {
    pub file: PathBuf,
    pub line: usize,
    pub record: Record,
}

#[cfg(test)]
impl RecordSink for Vec<SourcedRecord> {
    fn record(&mut self, at: Written<'_>, record: Record) {
        self.push(SourcedRecord {
            file: at.file.to_owned(),
            line: at.line,
            record,
        });
    }
}

/// What reading one zone file (with its includes) found, beside the records.
#[derive(Debug)]
pub struct ZoneFileRead {
    /// Every file read, the zone file and its includes, for change detection.
    pub files: Vec<PathBuf>,
    /// Records that could not be read. Reading goes on past them so that every problem is
    /// reported at once; a zone with any is not served.
    pub errors: Vec<ZoneProblem>,
}

/// What one zone file (with its includes) holds, records collected.
#[cfg(test)]
#[derive(Debug)]
pub struct ParsedZoneFile {
    pub origin: Name,
    pub records: Vec<SourcedRecord>,
    pub files: Vec<PathBuf>,
    pub errors: Vec<ZoneProblem>,
}

/// A token of a logical entry: its text as written (escapes kept, quotes removed), a slice of
/// the file's text, and whether it was quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token<'a> {
    text: &'a str,
    quoted: bool,
}

/// One logical entry: possibly several physical lines joined by parentheses.
#[derive(Debug)]
struct Entry<'a> {
    line: usize,
    /// The entry began with a blank: the owner is the previous one (RFC 1035 §5.1).
    blank_owner: bool,
    tokens: Vec<Token<'a>>,
}

/// Splits master-file text into logical entries, one at a time. Lazy so that a large zone is
/// never held as tokens as well as text and records: the 100,000-record zone of issue 5 took
/// 170 MB at its peak when the whole file was split first. The first error ends the iteration.
struct Entries<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
    at_line_start: bool,
    failed: bool,
}

impl<'a> Entries<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            chars: text.char_indices().peekable(),
            line: 1,
            at_line_start: true,
            failed: false,
        }
    }

    /// The next entry with tokens, None at the end of the text.
    fn read(&mut self) -> Result<Option<Entry<'a>>, (usize, String)> {
        let text = self.text;
        let mut depth = 0usize;
        let mut paren_line = 0;
        let mut current: Option<Entry<'a>> = None;
        // Where the unquoted token being read began.
        let mut token: Option<usize> = None;
        let end_token = |token: &mut Option<usize>, current: &mut Option<Entry<'a>>, at: usize| {
            if let (Some(start), Some(entry)) = (token.take(), current.as_mut()) {
                entry.tokens.push(Token {
                    text: &text[start..at],
                    quoted: false,
                });
            }
        };

        while let Some((at, c)) = self.chars.next() {
            // An entry starts at the first character of a line (the owner) or with a blank
            // there (the previous owner); a comment or an empty line starts none.
            let starts_entry = current.is_none()
                && !matches!(c, '\n' | '\r' | ';')
                && (self.at_line_start || !c.is_whitespace());
            if starts_entry {
                current = Some(Entry {
                    line: self.line,
                    blank_owner: c == ' ' || c == '\t',
                    tokens: Vec::new(),
                });
            }
            self.at_line_start = false;
            match c {
                '\n' => {
                    end_token(&mut token, &mut current, at);
                    self.line += 1;
                    self.at_line_start = true;
                    if depth == 0 {
                        if let Some(entry) = current.take().filter(|e| !e.tokens.is_empty()) {
                            return Ok(Some(entry));
                        }
                    }
                }
                ';' => {
                    end_token(&mut token, &mut current, at);
                    while self.chars.next_if(|(_, c)| *c != '\n').is_some() {}
                }
                '(' => {
                    end_token(&mut token, &mut current, at);
                    if depth == 0 {
                        paren_line = self.line;
                    }
                    depth += 1;
                }
                ')' => {
                    end_token(&mut token, &mut current, at);
                    if depth == 0 {
                        return Err((self.line, "`)` without `(`".into()));
                    }
                    depth -= 1;
                }
                '"' => {
                    end_token(&mut token, &mut current, at);
                    let start = self.line;
                    let unterminated = || (start, "unterminated quoted string".to_owned());
                    let end = loop {
                        match self.chars.next().ok_or_else(unterminated)? {
                            (end, '"') => break end,
                            (_, '\\') => match self.chars.next() {
                                Some((_, '\n')) => self.line += 1,
                                Some(_) => {}
                                None => return Err(unterminated()),
                            },
                            (_, '\n') => self.line += 1,
                            _ => {}
                        }
                    };
                    if let Some(entry) = current.as_mut() {
                        entry.tokens.push(Token {
                            text: &text[at + 1..end],
                            quoted: true,
                        });
                    }
                }
                ' ' | '\t' | '\r' => end_token(&mut token, &mut current, at),
                '\\' => {
                    self.chars
                        .next()
                        .ok_or((self.line, "`\\` at the end of the file".to_owned()))?;
                    token.get_or_insert(at);
                }
                _ => {
                    token.get_or_insert(at);
                }
            }
        }
        if depth > 0 {
            return Err((paren_line, "`(` without `)`".into()));
        }
        end_token(&mut token, &mut current, text.len());
        Ok(current.filter(|e| !e.tokens.is_empty()))
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, (usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.read().transpose();
        self.failed = matches!(result, Some(Err(_)));
        result
    }
}

/// A TTL: seconds, or BIND's units (`1w2d3h4m5s`).
fn parse_ttl(text: &str) -> Option<u32> {
    if let Ok(seconds) = text.parse::<u32>() {
        return Some(seconds);
    }
    let mut total: u64 = 0;
    let mut number: u64 = 0;
    let mut digits = false;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            number = number.checked_mul(10)?.checked_add(u64::from(d))?;
            digits = true;
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        if !digits {
            return None;
        }
        total = total.checked_add(number.checked_mul(unit)?)?;
        number = 0;
        digits = false;
    }
    if digits {
        return None;
    }
    u32::try_from(total).ok()
}

/// A domain name, relative to `origin` unless it ends with a dot; `@` is the origin.
fn parse_name(text: &str, origin: &Name) -> Result<Name, String> {
    if text == "@" {
        return Ok(origin.clone());
    }
    let name = Name::from_ascii(text).map_err(|e| format!("`{text}` is not a domain name: {e}"))?;
    if name.is_fqdn() {
        Ok(name)
    } else {
        name.append_domain(origin)
            .map_err(|e| format!("`{text}` relative to {origin} is too long: {e}"))
    }
}

fn parse_type(text: &str) -> Option<RecordType> {
    let upper = text.to_ascii_uppercase();
    if let Some(code) = upper.strip_prefix("TYPE") {
        return code.parse::<u16>().ok().map(RecordType::from);
    }
    match RecordType::from_str(&upper) {
        Ok(RecordType::Unknown(_)) | Err(_) => None,
        Ok(known) => Some(known),
    }
}

fn parse_class(text: &str) -> Option<DNSClass> {
    let upper = text.to_ascii_uppercase();
    if let Some(code) = upper.strip_prefix("CLASS") {
        return code.parse::<u16>().ok().map(DNSClass::from);
    }
    match upper.as_str() {
        "IN" => Some(DNSClass::IN),
        "CH" => Some(DNSClass::CH),
        "HS" => Some(DNSClass::HS),
        _ => None,
    }
}

/// Undoes `\X` and `\DDD` escapes of a character-string.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        match (digits, bytes.get(i + 1)) {
            (Some(digits), _) => {
                let value: u32 = digits.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0'));
                out.push(
                    u8::try_from(value).map_err(|_| format!("escape `\\{value}` is above 255"))?,
                );
                i += 4;
            }
            (None, Some(next)) => {
                out.push(*next);
                i += 2;
            }
            (None, None) => return Err("`\\` at the end of a string".into()),
        }
    }
    Ok(out)
}

fn number<T: FromStr>(token: Option<&Token>, what: &str) -> Result<T, String> {
    let token = token.ok_or_else(|| format!("missing {what}"))?;
    token
        .text
        .parse()
        .map_err(|_| format!("`{}` is not a valid {what}", token.text))
}

fn name_field(token: Option<&Token>, what: &str, origin: &Name) -> Result<Name, String> {
    let token = token.ok_or_else(|| format!("missing {what}"))?;
    parse_name(token.text, origin)
}

/// RFC 3597 §5: `\# <length> <hex>...`.
fn generic_rdata(record_type: RecordType, tokens: &[Token]) -> Result<RData, String> {
    let length: usize = number(tokens.get(1), "RDATA length")?;
    let hex: String = tokens[2.min(tokens.len())..]
        .iter()
        .map(|t| t.text)
        .collect();
    // Checked before the digits are paired: a character that is not ASCII would be split
    // between two pairs (a panic when slicing), and `from_str_radix` takes a sign (`+f`).
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{hex}` is not hex"));
    }
    if hex.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| format!("`{hex}` is not hex")))
        .collect::<Result<Vec<u8>, String>>()?;
    if bytes.len() != length {
        return Err(format!(
            "RDATA length {length} but {} bytes given",
            bytes.len()
        ));
    }
    let length = u16::try_from(length).map_err(|_| "RDATA longer than 65535 bytes".to_owned())?;
    let mut decoder = BinDecoder::new(&bytes);
    let rdata = RData::read(&mut decoder, record_type, Restrict::new(length))
        .map_err(|e| format!("RDATA does not decode as {record_type}: {e}"))?;
    if !decoder.is_empty() {
        return Err(format!(
            "RDATA has bytes left over after the {record_type} data"
        ));
    }
    Ok(rdata)
}

fn parse_rdata(record_type: RecordType, tokens: &[Token], origin: &Name) -> Result<RData, String> {
    if tokens.first().is_some_and(|t| t.text == "\\#" && !t.quoted) {
        return generic_rdata(record_type, tokens);
    }
    let exactly = |count: usize| {
        if tokens.len() == count {
            Ok(())
        } else {
            Err(format!(
                "{record_type} takes {count} field(s), {} given",
                tokens.len()
            ))
        }
    };
    let first = tokens.first();
    Ok(match record_type {
        RecordType::A => {
            exactly(1)?;
            RData::A(A(number::<Ipv4Addr>(first, "IPv4 address")?))
        }
        RecordType::AAAA => {
            exactly(1)?;
            RData::AAAA(AAAA(number::<Ipv6Addr>(first, "IPv6 address")?))
        }
        RecordType::CNAME => {
            exactly(1)?;
            RData::CNAME(CNAME(name_field(first, "target", origin)?))
        }
        RecordType::NS => {
            exactly(1)?;
            RData::NS(NS(name_field(first, "name server", origin)?))
        }
        RecordType::PTR => {
            exactly(1)?;
            RData::PTR(PTR(name_field(first, "target", origin)?))
        }
        RecordType::MX => {
            exactly(2)?;
            RData::MX(MX::new(
                number(first, "preference")?,
                name_field(tokens.get(1), "exchange", origin)?,
            ))
        }
        RecordType::SRV => {
            exactly(4)?;
            RData::SRV(SRV::new(
                number(first, "priority")?,
                number(tokens.get(1), "weight")?,
                number(tokens.get(2), "port")?,
                name_field(tokens.get(3), "target", origin)?,
            ))
        }
        RecordType::SOA => {
            exactly(7)?;
            let duration = |index: usize, what: &str| {
                let token = tokens.get(index).ok_or_else(|| format!("missing {what}"))?;
                parse_ttl(token.text)
                    .ok_or_else(|| format!("`{}` is not a valid {what}", token.text))
            };
            RData::SOA(SOA::new(
                name_field(first, "primary name server", origin)?,
                name_field(tokens.get(1), "mailbox", origin)?,
                number(tokens.get(2), "serial")?,
                i32::try_from(duration(3, "refresh")?)
                    .map_err(|_| "refresh too large".to_owned())?,
                i32::try_from(duration(4, "retry")?).map_err(|_| "retry too large".to_owned())?,
                i32::try_from(duration(5, "expire")?).map_err(|_| "expire too large".to_owned())?,
                duration(6, "minimum")?,
            ))
        }
        RecordType::TXT => {
            if tokens.is_empty() {
                return Err("TXT needs at least one string".into());
            }
            let strings = tokens
                .iter()
                .map(|t| unescape(t.text))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(long) = strings.iter().find(|s| s.len() > 255) {
                return Err(format!("a TXT string is {} bytes; at most 255", long.len()));
            }
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        }
        // Types whose text form holds no domain name: hickory reads them (CAA, SSHFP, TLSA, ...).
        other => {
            let text: Vec<String> = tokens
                .iter()
                .map(|t| {
                    if t.quoted {
                        format!("\"{}\"", t.text)
                    } else {
                        t.text.to_owned()
                    }
                })
                .collect();
            RData::try_from_str(other, &text.join(" "))
                .map_err(|e| format!("bad {other} RDATA: {e}"))?
        }
    })
}

/// The state of reading: what relative names and omitted fields mean at this point.
struct Reader<'a> {
    origin: Name,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
    stack: Vec<PathBuf>,
    files: Vec<PathBuf>,
    sink: &'a mut dyn RecordSink,
    errors: Vec<ZoneProblem>,
}

impl Reader<'_> {
    fn read_file(&mut self, path: &Path, text: Option<&str>) -> Result<(), ZoneProblem> {
        let problem = |line: Option<usize>, reason: String| ZoneProblem {
            file: path.to_owned(),
            line,
            reason,
        };
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        if self.stack.contains(&canonical) {
            return Err(problem(
                None,
                "$INCLUDE loop: the file includes itself".into(),
            ));
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(problem(
                None,
                format!("$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH}"),
            ));
        }
        let read;
        let text = match text {
            Some(text) => text,
            None => {
                read = std::fs::read_to_string(path)
                    .map_err(|e| problem(None, format!("cannot read: {e}")))?;
                read.as_str()
            }
        };
        self.stack.push(canonical);
        self.files.push(path.to_owned());
        for entry in Entries::new(text) {
            let entry = entry.map_err(|(line, reason)| problem(Some(line), reason))?;
            if let Err(reason) = self.read_entry(path, &entry) {
                self.errors.push(problem(Some(entry.line), reason));
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn read_entry(&mut self, path: &Path, entry: &Entry) -> Result<(), String> {
        let tokens = &entry.tokens;
        let first = &tokens[0];
        if !entry.blank_owner && !first.quoted && first.text.starts_with('$') {
            return self.read_directive(path, tokens);
        }
        let (owner, mut rest) = if entry.blank_owner {
            let owner = self
                .last_owner
                .clone()
                .ok_or("the first record has no owner name")?;
            (owner, &tokens[..])
        } else {
            (parse_name(first.text, &self.origin)?, &tokens[1..])
        };
        let mut ttl = None;
        let mut class = None;
        let record_type = loop {
            let token = rest.first().ok_or("missing record type")?;
            if token.quoted {
                return Err(format!(
                    "expected a TTL, class or type, found \"{}\"",
                    token.text
                ));
            }
            if ttl.is_none() && token.text.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(
                    parse_ttl(token.text)
                        .ok_or_else(|| format!("`{}` is not a valid TTL", token.text))?,
                );
            } else if let Some(found) = class.is_none().then(|| parse_class(token.text)).flatten() {
                class = Some(found);
            } else if let Some(found) = parse_type(token.text) {
                break found;
            } else {
                return Err(format!(
                    "`{}` is not a TTL, class or record type",
                    token.text
                ));
            }
            rest = &rest[1..];
        };
        let rdata_tokens = &rest[1..];
        if let Some(class) = class.filter(|c| *c != DNSClass::IN) {
            return Err(format!("class {class} is not served; only IN"));
        }
        let rdata = parse_rdata(record_type, rdata_tokens, &self.origin)?;
        // RFC 2308 §4: $TTL, else (RFC 1035 §5.1) the last TTL given; an SOA without either takes
        // its MINIMUM, as BIND does.
        let ttl = match (ttl, self.default_ttl, self.last_ttl, &rdata) {
            (Some(ttl), ..) => ttl,
            (None, Some(ttl), ..) => ttl,
            (None, None, Some(ttl), _) => ttl,
            (None, None, None, RData::SOA(soa)) => soa.minimum,
            (None, None, None, _) => return Err("no TTL: give one, or set $TTL first".into()),
        };
        if ttl > crate::config::file::MAX_TTL {
            return Err(format!(
                "TTL {ttl} is above {} (RFC 2181 §8)",
                crate::config::file::MAX_TTL
            ));
        }
        self.last_ttl = Some(ttl);
        self.last_owner = Some(owner.clone());
        let at = Written {
            file: path,
            line: entry.line,
        };
        self.sink.record(at, Record::from_rdata(owner, ttl, rdata));
        Ok(())
    }

    fn read_directive(&mut self, path: &Path, tokens: &[Token]) -> Result<(), String> {
        let directive = tokens[0].text.to_ascii_uppercase();
        match directive.as_str() {
            "$ORIGIN" => {
                let [_, name] = tokens else {
                    return Err("$ORIGIN takes one domain name".into());
                };
                self.origin = parse_name(name.text, &self.origin)?;
                if !self.origin.is_fqdn() {
                    return Err("$ORIGIN must be absolute".into());
                }
            }
            "$TTL" => {
                let [_, ttl] = tokens else {
                    return Err("$TTL takes one TTL".into());
                };
                self.default_ttl = Some(
                    parse_ttl(ttl.text)
                        .ok_or_else(|| format!("`{}` is not a valid TTL", ttl.text))?,
                );
            }
            "$INCLUDE" => {
                let (file, origin) = match tokens {
                    [_, file] => (file, None),
                    [_, file, origin] => (file, Some(parse_name(origin.text, &self.origin)?)),
                    _ => return Err("$INCLUDE takes a file name and an optional origin".into()),
                };
                let included = path.parent().unwrap_or(Path::new(".")).join(file.text);
                // RFC 1035 §5.1: "$INCLUDE ... never changes the relative origin of the parent file".
                let saved_origin = self.origin.clone();
                let saved_owner = self.last_owner.clone();
                if let Some(origin) = origin {
                    self.origin = origin;
                }
                let result = self.read_file(&included, None);
                self.origin = saved_origin;
                self.last_owner = saved_owner;
                // A problem inside the included file names its own file and line.
                result.map_err(|problem| format!("in $INCLUDE: {problem}"))?;
            }
            other => return Err(format!("unknown directive {other}")),
        }
        Ok(())
    }
}

/// The origin a zone file's name gives: `example.internal.zone` is `example.internal.`.
pub fn origin_from_file_name(path: &Path) -> Option<Name> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".zone")?;
    let mut name = Name::from_ascii(stem).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// A zone file opened and its origin found, ready to be read.
pub struct ZoneFile {
    path: PathBuf,
    text: String,
    origin: Name,
}

impl ZoneFile {
    /// Reads the file and fixes the zone's origin: a leading `$ORIGIN` (before any record, a
    /// `$TTL` aside) names it, else the file's name does.
    pub fn open(path: &Path) -> Result<Self, ZoneProblem> {
        let problem = |reason: String| ZoneProblem {
            file: path.to_owned(),
            line: None,
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read: {e}")))?;
        let leading_origin = Entries::new(&text)
            .map_while(Result::ok)
            .find(|e| !e.tokens[0].text.eq_ignore_ascii_case("$TTL"))
            .and_then(|first| match first.tokens.as_slice() {
                [directive, name] if directive.text.eq_ignore_ascii_case("$ORIGIN") => {
                    parse_name(name.text, &Name::root()).ok()
                }
                _ => None,
            });
        let origin = leading_origin
            .or_else(|| origin_from_file_name(path))
            .ok_or_else(|| {
                problem("no origin: start the file with $ORIGIN, or name it <origin>.zone".into())
            })?;
        Ok(Self {
            path: path.to_owned(),
            text,
            origin,
        })
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Reads the records, the includes' too, handing each to `sink` as it is read. An error
    /// is a file that could not be read or split into entries; a bad record is in
    /// [`ZoneFileRead::errors`], and reading goes on past it.
    pub fn read(self, sink: &mut dyn RecordSink) -> Result<ZoneFileRead, ZoneProblem> {
        let mut reader = Reader {
            origin: self.origin.clone(),
            default_ttl: None,
            last_ttl: None,
            last_owner: None,
            stack: Vec::new(),
            files: Vec::new(),
            sink,
            errors: Vec::new(),
        };
        reader.read_file(&self.path, Some(&self.text))?;
        Ok(ZoneFileRead {
            files: reader.files,
            errors: reader.errors,
        })
    }
}

/// Reads a zone file and its includes, collecting the records.
#[cfg(test)]
pub fn read_zone_file(path: &Path) -> Result<ParsedZoneFile, ZoneProblem> {
    let file = ZoneFile::open(path)?;
    let origin = file.origin().clone();
    let mut records = Vec::new();
    let read = file.read(&mut records)?;
    Ok(ParsedZoneFile {
        origin,
        records,
        files: read.files,
        errors: read.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, file_name: &str) -> Result<ParsedZoneFile, ZoneProblem> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name);
        std::fs::write(&path, text).unwrap();
        // A record error is reported like a file error; paths are made independent of the
        // temp dir.
        let result = read_zone_file(&path).and_then(|parsed| match parsed.errors.first() {
            Some(first) => Err(first.clone()),
            None => Ok(parsed),
        });
        result.map_err(|mut p| {
            p.file = PathBuf::from(p.file.file_name().unwrap());
            p
        })
    }

    fn lines(parsed: &ParsedZoneFile) -> Vec<String> {
        parsed
            .records
            .iter()
            .map(|r| format!("{} {}", r.line, r.record))
            .collect()
    }

    #[test]
    fn reads_what_bind_reads() {
        let text = r#"$TTL 1h
@   IN  SOA ns1 hostmaster ( 2026112201 ; serial
            2h 30m 2w 60 )
    IN  NS  ns1
ns1     A   192.0.2.1
        AAAA 2001:db8::1
www 300 IN CNAME web
web IN 300 A 192.0.2.10 ; class then TTL
mail    MX  10 mx.example.net.
_sip._tcp SRV 0 5 5060 www
txt TXT "two words" plain "quote \" and \059 semicolon"
caa CAA 0 issue "letsencrypt.org"
generic TYPE65280 \# 4 0a000001
known-generic A \# 4 C0000202
Upper.Case A 192.0.2.99
"#;
        let parsed = read(text, "example.internal.zone").unwrap();
        assert_eq!(parsed.origin.to_string(), "example.internal.");
        assert_eq!(
            lines(&parsed),
            [
                "2 example.internal. 3600 IN SOA ns1.example.internal. hostmaster.example.internal. 2026112201 7200 1800 1209600 60",
                "4 example.internal. 3600 IN NS ns1.example.internal.",
                "5 ns1.example.internal. 3600 IN A 192.0.2.1",
                "6 ns1.example.internal. 3600 IN AAAA 2001:db8::1",
                "7 www.example.internal. 300 IN CNAME web.example.internal.",
                "8 web.example.internal. 300 IN A 192.0.2.10",
                "9 mail.example.internal. 3600 IN MX 10 mx.example.net.",
                "10 _sip._tcp.example.internal. 3600 IN SRV 0 5 5060 www.example.internal.",
                // hickory shows TXT strings joined; their boundaries are checked below.
                "11 txt.example.internal. 3600 IN TXT two wordsplainquote \" and ; semicolon",
                "12 caa.example.internal. 3600 IN CAA 0 issue \"letsencrypt.org\"",
                "13 generic.example.internal. 3600 IN Unknown CgAAAQ==",
                "14 known-generic.example.internal. 3600 IN A 192.0.2.2",
                "15 Upper.Case.example.internal. 3600 IN A 192.0.2.99",
            ]
        );
        let RData::TXT(txt) = &parsed.records[8].record.data else {
            panic!("TXT")
        };
        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
        assert_eq!(
            strings,
            [&b"two words"[..], b"plain", b"quote \" and ; semicolon"]
        );
        let generic = &parsed.records[10].record;
        assert_eq!(u16::from(generic.record_type()), 65280);
        let mut wire = Vec::new();
        let mut encoder = hickory_proto::serialize::binary::BinEncoder::new(&mut wire);
        hickory_proto::serialize::binary::BinEncodable::emit(&generic.data, &mut encoder).unwrap();
        assert_eq!(wire, [0x0a, 0, 0, 1]);
    }

    #[test]
    fn origin_directive_and_includes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts.inc"), "a A 192.0.2.1\n").unwrap();
        std::fs::write(
            dir.path().join("anything.zone"),
            "$ORIGIN example.org.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n$INCLUDE hosts.inc sub\nb A 192.0.2.2\n",
        )
        .unwrap();
        let parsed = read_zone_file(&dir.path().join("anything.zone")).unwrap();
        assert_eq!(parsed.origin.to_string(), "example.org.");
        let names: Vec<String> = parsed
            .records
            .iter()
            .map(|r| r.record.name.to_string())
            .collect();
        assert_eq!(
            names,
            ["example.org.", "a.sub.example.org.", "b.example.org."]
        );
        assert_eq!(parsed.files.len(), 2);
        assert!(parsed.records[1].file.ends_with("hosts.inc"));
    }

    #[test]
    fn include_loops_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("loop.zone"),
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n$INCLUDE loop.zone\n",
        )
        .unwrap();
        let parsed = read_zone_file(&dir.path().join("loop.zone")).unwrap();
        let error = parsed.errors[0].to_string();
        assert!(
            error.contains("loop.zone:3: in $INCLUDE") && error.contains("loop"),
            "{error}"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nbad A 999.1.1.1\n",
                "z.zone:3: `999.1.1.1` is not a valid IPv4 address",
            ),
            ("$TTL 60\nx A\n", "z.zone:2: A takes 1 field(s), 0 given"),
            (
                "$TTL 60\nx BOGUS 1\n",
                "z.zone:2: `BOGUS` is not a TTL, class or record type",
            ),
            (
                "$TTL 60\nx CH A 192.0.2.1\n",
                "z.zone:2: class CH is not served",
            ),
            ("x A 192.0.2.1\n", "z.zone:1: no TTL"),
            (
                "$TTL 60\n@ SOA ns hm ( 1 2 3 4 5\n",
                "z.zone:2: `(` without `)`",
            ),
            (
                "$TTL 60\nx TXT \"open\n",
                "z.zone:2: unterminated quoted string",
            ),
            (
                "$TTL 60\nx TYPE65280 \\# 3 0a0000\nx TYPE1 \\# 3 0a0000\n",
                "z.zone:3: RDATA does not decode as A",
            ),
            (
                "$TTL 60\n  A 192.0.2.1\n",
                "z.zone:2: the first record has no owner name",
            ),
            ("$BOGUS\n", "z.zone:1: unknown directive $BOGUS"),
        ];
        for (text, expected) in cases {
            let error = read(text, "z.zone").unwrap_err().to_string();
            assert!(
                error.starts_with(expected),
                "{text:?}\n  gave {error}\n  expected {expected}"
            );
        }
    }

    #[test]
    fn every_bad_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        std::fs::write(
            &path,
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\na A 1.2.3\nb A 192.0.2.1\nc AAAA 1.2.3.4\n",
        )
        .unwrap();
        let parsed = read_zone_file(&path).unwrap();
        let lines: Vec<Option<usize>> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(3), Some(5)]);
        assert_eq!(parsed.records.len(), 2, "the good records are read");
    }

    #[test]
    fn ttls_with_units() {
        assert_eq!(parse_ttl("3600"), Some(3600));
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1W"), Some(604_800));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("10x"), None);
        assert_eq!(parse_ttl("99999999999"), None);
    }
}
