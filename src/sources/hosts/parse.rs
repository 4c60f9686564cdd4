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

use thiserror::Error;

/// The longest name in text form without the final dot (RFC 1035 §2.3.4: 255 octets on the
/// wire, which is 253 characters of text).
const MAX_NAME_TEXT: usize = 253;
/// RFC 1035 §2.3.4: "labels 63 octets or less".
const MAX_LABEL: usize = 63;

/// One usable line: an address and its names, canonical name first. It borrows the file's
/// text: the table is built straight from it, without a `Name` per name (see
/// `sources::wire`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostsLine<'a> {
    pub line: usize,
    pub address: IpAddr,
    /// The names, checked, as written: separated by blanks, each perhaps with a final dot.
    names: &'a str,
}

impl<'a> HostsLine<'a> {
    /// The names in file order, canonical name first, each as written (case kept) without a
    /// final dot. All are valid names: [`lines`] checked them.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.names
            .split_ascii_whitespace()
            .map(|name| name.strip_suffix('.').unwrap_or(name))
    }
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

/// The lines of a hosts file, in order: each usable line, or why it was skipped. Blank and
/// comment-only lines give nothing.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Result<HostsLine<'_>, LineProblem>> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(index, raw)| {
            let line = index + 1;
            let content = match raw.iter().position(|b| *b == b'#') {
                Some(hash) => &raw[..hash],
                None => raw,
            };
            match parse_line(content) {
                Ok(Some((address, names))) => Some(Ok(HostsLine {
                    line,
                    address,
                    names,
                })),
                Ok(None) => None,
                Err(error) => Some(Err(LineProblem { line, error })),
            }
        })
}

/// The problems of a hosts file, for the log and `hearth check`.
pub fn problems(bytes: &[u8]) -> Vec<LineProblem> {
    lines(bytes).filter_map(Result::err).collect()
}

/// One line, comment already removed. `Ok(None)` for a blank line.
fn parse_line(content: &[u8]) -> Result<Option<(IpAddr, &str)>, LineError> {
    if content.iter().any(|b| *b == 0 || !b.is_ascii()) {
        return Err(LineError::NotText);
    }
    // Checked above: every byte is ASCII, so this cannot fail.
    let text = std::str::from_utf8(content).map_err(|_| LineError::NotText)?;
    // Blanks as `split_ascii_whitespace` sees them, so the `\r` of a CRLF line end is one, as
    // in glibc.
    let text = text.trim_ascii();
    let Some(address_text) = text.split_ascii_whitespace().next() else {
        return Ok(None);
    };
    let address: IpAddr = address_text
        .parse()
        .map_err(|_| LineError::BadAddress(shorten(address_text)))?;
    let names = text[address_text.len()..].trim_ascii_start();
    if names.is_empty() {
        return Err(LineError::NoNames(address_text.to_owned()));
    }
    for name in names.split_ascii_whitespace() {
        check_name(name)?;
    }
    Ok(Some((address, names)))
}

/// Whether `text` is a host name: letters, digits, `-` and `_` in labels of 1 to 63 bytes, not
/// beginning with `-` (RFC 952; hickory's `Name::from_ascii`, which this once called, refuses it
/// too), 253 bytes in all, perhaps with a final dot. Its wire form is then at most 255 bytes
/// (RFC 1035 §2.3.4), so the table writes it without another check.
fn check_name(text: &str) -> Result<(), LineError> {
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
        if label.starts_with('-') {
            return Err(bad("a label begins with `-`"));
        }
        // Letters, digits and hyphens (RFC 952/1123), plus `_`, which real hosts files use.
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, `-` and `_` are allowed"));
        }
    }
    Ok(())
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
        line.names().map(str::to_owned).collect()
    }

    /// The usable lines and the problems, apart.
    fn parse(bytes: &[u8]) -> (Vec<HostsLine<'_>>, Vec<LineProblem>) {
        let (mut usable, mut problems) = (Vec::new(), Vec::new());
        for line in lines(bytes) {
            match line {
                Ok(line) => usable.push(line),
                Err(problem) => problems.push(problem),
            }
        }
        (usable, problems)
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
        let (usable, problems) = parse(text);
        assert_eq!(problems, []);
        let lines: Vec<(usize, String, Vec<String>)> = usable
            .iter()
            .map(|l| (l.line, l.address.to_string(), names(l)))
            .collect();
        assert_eq!(
            lines,
            [
                (2, "127.0.0.1".into(), vec!["localhost".to_string()]),
                (
                    3,
                    "::1".into(),
                    vec![
                        "localhost".to_string(),
                        "ip6-localhost".into(),
                        "ip6-loopback".into()
                    ]
                ),
                (
                    6,
                    "192.0.2.10".into(),
                    vec!["Web.Example.ORG".to_string(), "web".into()]
                ),
                (
                    7,
                    "2001:db8::10".into(),
                    vec!["web.example.org".to_string()]
                ),
                (8, "192.0.2.11".into(), vec!["last.example.org".to_string()]),
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
        let (usable, problems) = parse(text.as_bytes());
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(problems[0].error, LineError::BadAddress("192.0.2".into()));
        assert_eq!(problems[3].error, LineError::NoNames("192.0.2.1".into()));
        assert_eq!(usable.len(), 1);
        assert_eq!(usable[0].line, 11);
        assert_eq!(problems, super::problems(text.as_bytes()));
    }

    #[test]
    fn overlong_tokens_are_shortened_in_messages() {
        let token = "x".repeat(10_000);
        let problems = problems(format!("{token} name\n").as_bytes());
        let message = problems[0].error.to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn names_are_bounded_as_dns_names_are() {
        let longest = vec!["abcdefghi"; 25].join(".") + ".abc"; // 253 characters
        assert_eq!(longest.len(), 253);
        let text = format!("192.0.2.1 {longest}. a.\r\n");
        let (usable, none) = parse(text.as_bytes());
        assert_eq!(none, []);
        assert_eq!(names(&usable[0]), [longest.as_str(), "a"]);

        for bad in [
            format!("{longest}x"),
            "-a".into(),
            "a.-b".into(),
            "-".into(),
        ] {
            let problems = super::problems(format!("192.0.2.1 {bad}\n").as_bytes());
            assert!(
                matches!(
                    problems[..],
                    [LineProblem {
                        line: 1,
                        error: LineError::BadName { .. }
                    }]
                ),
                "{bad}: {problems:?}"
            );
        }
        // A hyphen inside or at the end of a label is what real hosts files hold.
        assert_eq!(super::problems(b"192.0.2.1 a-b.c- x--y\n"), []);
    }

    #[test]
    fn trailing_dot_and_underscore_are_accepted() {
        let (usable, problems) = parse(b"192.0.2.1 host.example. _service.example\n");
        assert_eq!(problems, []);
        assert_eq!(names(&usable[0]), ["host.example", "_service.example"]);
    }
}
