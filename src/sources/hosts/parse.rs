//! A pure hosts(5) reader: bytes in, entries and per-line problems out. No I/O.
//!
//! hosts(5): "one line per IP address ... IP_address canonical_hostname [aliases...]. Fields of
//! the entry are separated by any number of blanks and/or tab characters. Text from a `#`
//! character until the end of the line is a comment". On top of that, what glibc tolerates is
//! tolerated here: CRLF line ends, no final newline, upper case. What glibc would turn into
//! something surprising is refused with a reason instead: `inet_aton` short forms such as
//! `192.0.2` (glibc reads them as 192.0.0.2), IPv6 zone indexes, names that are not valid DNS
//! names (empty or over-long labels, non-ASCII bytes, NUL).

use std::net::IpAddr;

use hickory_proto::rr::Name;
use thiserror::Error;

/// The longest name in text form without the final dot (RFC 1035 §2.3.4: 255 octets on the
/// wire, which is 253 characters of text).
const MAX_NAME_TEXT: usize = 253;
/// RFC 1035 §2.3.4: "labels 63 octets or less".
const MAX_LABEL: usize = 63;

/// One usable line: an address and its names, canonical name first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsLine {
    pub line: usize,
    pub address: IpAddr,
    /// Fully qualified, as written (case kept).
    pub names: Vec<Name>,
}

/// A line that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    pub error: LineError,
}

/// Why a line was skipped.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LineError {
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("address `{0}` has no host name after it")]
    NoNames(String),
    #[error("`{name}` is not a valid host name: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("the line holds a NUL byte or bytes that are not ASCII")]
    NotText,
}

/// What a hosts file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedHosts {
    pub lines: Vec<HostsLine>,
    pub problems: Vec<LineProblem>,
}

/// Reads a whole hosts file.
pub fn parse(bytes: &[u8]) -> ParsedHosts {
    let mut parsed = ParsedHosts::default();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let content = match raw.iter().position(|b| *b == b'#') {
            Some(hash) => &raw[..hash],
            None => raw,
        };
        match parse_line(content) {
            Ok(Some((address, names))) => parsed.lines.push(HostsLine {
                line,
                address,
                names,
            }),
            Ok(None) => {}
            Err(error) => parsed.problems.push(LineProblem { line, error }),
        }
    }
    parsed
}

/// One line, comment already removed. `Ok(None)` for a blank line.
fn parse_line(content: &[u8]) -> Result<Option<(IpAddr, Vec<Name>)>, LineError> {
    if content.iter().any(|b| *b == 0 || !b.is_ascii()) {
        return Err(LineError::NotText);
    }
    // Checked above: every byte is ASCII, so this cannot fail.
    let text = std::str::from_utf8(content).map_err(|_| LineError::NotText)?;
    // `split_ascii_whitespace` treats the `\r` of a CRLF line end as a blank, like glibc.
    let mut fields = text.split_ascii_whitespace();
    let Some(address_text) = fields.next() else {
        return Ok(None);
    };
    let address: IpAddr = address_text
        .parse()
        .map_err(|_| LineError::BadAddress(shorten(address_text)))?;
    let mut names = fields.map(parse_name).collect::<Result<Vec<Name>, _>>()?;
    // Collected without a size hint, the list holds room for four names; most lines have one,
    // and a 100,000-line file keeps every line (for rebuilds when another file changes).
    names.shrink_to_fit();
    if names.is_empty() {
        return Err(LineError::NoNames(address_text.to_owned()));
    }
    Ok(Some((address, names)))
}

fn parse_name(text: &str) -> Result<Name, LineError> {
    let bad = |reason| LineError::BadName {
        name: shorten(text),
        reason,
    };
    let bare = text.strip_suffix('.').unwrap_or(text);
    if bare.is_empty() {
        return Err(bad("it is empty"));
    }
    if bare.len() > MAX_NAME_TEXT {
        return Err(bad("it is longer than 253 characters"));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(bad("it has an empty label"));
        }
        if label.len() > MAX_LABEL {
            return Err(bad("a label is longer than 63 characters"));
        }
        // Letters, digits and hyphens (RFC 952/1123), plus `_`, which real hosts files use.
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, `-` and `_` are allowed"));
        }
    }
    let mut name = Name::from_ascii(bare).map_err(|_| bad("it does not parse as a DNS name"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// Keeps a hostile, very long token from flooding the log.
fn shorten(token: &str) -> String {
    const LIMIT: usize = 80;
    if token.len() <= LIMIT {
        token.to_owned()
    } else {
        format!("{}...", &token[..LIMIT])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &HostsLine) -> Vec<String> {
        line.names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn reads_what_glibc_reads() {
        let text = b"# comment line\n\
            127.0.0.1\tlocalhost\n\
            ::1     localhost ip6-localhost ip6-loopback   # trailing comment\r\n\
            \n   \t \n\
            192.0.2.10 Web.Example.ORG web\r\n\
            2001:db8::10 web.example.org\n\
            192.0.2.11 last.example.org";
        let parsed = parse(text);
        assert_eq!(parsed.problems, []);
        let lines: Vec<(usize, String, Vec<String>)> = parsed
            .lines
            .iter()
            .map(|l| (l.line, l.address.to_string(), names(l)))
            .collect();
        assert_eq!(
            lines,
            [
                (2, "127.0.0.1".into(), vec!["localhost.".to_string()]),
                (
                    3,
                    "::1".into(),
                    vec![
                        "localhost.".to_string(),
                        "ip6-localhost.".into(),
                        "ip6-loopback.".into()
                    ]
                ),
                (
                    6,
                    "192.0.2.10".into(),
                    vec!["Web.Example.ORG.".to_string(), "web.".into()]
                ),
                (
                    7,
                    "2001:db8::10".into(),
                    vec!["web.example.org.".to_string()]
                ),
                (
                    8,
                    "192.0.2.11".into(),
                    vec!["last.example.org.".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn bad_lines_are_skipped_with_their_line_number() {
        let long_label = "a".repeat(64);
        let long_name = vec!["abcdefghi"; 26].join(".");
        let text = format!(
            "192.0.2 short.example\n\
             999.1.1.1 big.example\n\
             fe80::1%eth0 zoned.example\n\
             192.0.2.1\n\
             192.0.2.2 a..b\n\
             192.0.2.3 {long_label}.example\n\
             192.0.2.4 {long_name}\n\
             192.0.2.5 caf\u{e9}.example\n\
             192.0.2.6 nul\0.example\n\
             192.0.2.7 sl/ash.example\n\
             192.0.2.8 good.example\n"
        );
        let parsed = parse(text.as_bytes());
        let lines: Vec<usize> = parsed.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(
            parsed.problems[0].error,
            LineError::BadAddress("192.0.2".into())
        );
        assert_eq!(
            parsed.problems[3].error,
            LineError::NoNames("192.0.2.1".into())
        );
        assert_eq!(parsed.lines.len(), 1);
        assert_eq!(parsed.lines[0].line, 11);
    }

    #[test]
    fn overlong_tokens_are_shortened_in_messages() {
        let token = "x".repeat(10_000);
        let parsed = parse(format!("{token} name\n").as_bytes());
        let message = parsed.problems[0].error.to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn trailing_dot_and_underscore_are_accepted() {
        let parsed = parse(b"192.0.2.1 host.example. _service.example\n");
        assert_eq!(parsed.problems, []);
        assert_eq!(
            names(&parsed.lines[0]),
            ["host.example.", "_service.example."]
        );
    }
}
