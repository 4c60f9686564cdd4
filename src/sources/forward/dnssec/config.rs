//! `[dnssec]`: whether forwarded answers are validated, what is trusted, and what is not
//! checked. Read by the `dns` source's setup (it owns the table), validated here into
//! [`DnssecConfig`]; a bad trust anchor is reported with its file and line.

use std::path::{Path, PathBuf};

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, PublicKeyBuf, Verifier};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use serde::Deserialize;

use crate::config::file::{ConfigError, Location, Tables};
use crate::config::values::DomainName;

/// `[dnssec]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecTable {
    validate: Option<bool>,
    trust_anchors: Option<PathBuf>,
    negative_trust_anchors: Option<Vec<DomainName>>,
    trust_upstream_ad: Option<bool>,
}

/// `[dnssec]`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnssecConfig {
    /// Validate forwarded answers (RFC 4035 §5); off by default, as CoreDNS and dnsmasq.
    pub validate: bool,
    /// What the chain of trust starts from.
    pub trust_anchors: Vec<TrustAnchor>,
    /// RFC 7646: domains whose answers are not validated (known unsigned or broken); a name
    /// at or under one is answered as if insecure.
    pub negative_trust_anchors: Vec<LowerName>,
    /// Without validation, pass the AD bit of an upstream reached over TLS or HTTPS (RFC 6840
    /// §5.7: a stub may trust AD only "over a secure transport" from a resolver it trusts).
    /// Over plain UDP or TCP, AD is always cleared: anyone on the path could set it.
    pub trust_upstream_ad: bool,
}

/// One trust anchor: a key of a zone, or a digest of one (RFC 4034 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustAnchor {
    pub zone: Name,
    pub kind: AnchorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnchorKind {
    Key(DNSKEY),
    Digest(DS),
}

/// The root zone's key-signing keys, as IANA publishes them (root-anchors.xml): KSK-2017
/// (tag 20326) and KSK-2024 (tag 38696). hickory carries both (`TrustAnchors::default`);
/// written out here so the default is a list of anchors like any file's.
const ROOT_ANCHORS: &str = "\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
";

impl DnssecConfig {
    /// Reads `[dnssec]` from `tables`.
    pub fn read(tables: &Tables<'_>) -> Result<Self, ConfigError> {
        let table: DnssecTable = tables.read_or_default("dnssec")?;
        let trust_anchors = match &table.trust_anchors {
            None => parse_anchors(ROOT_ANCHORS, "(built-in root anchors)")?,
            Some(path) => read_anchors(tables, path)?,
        };
        let mut negative_trust_anchors: Vec<LowerName> = Vec::new();
        for domain in table.negative_trust_anchors.unwrap_or_default() {
            let domain = LowerName::new(&domain.0);
            if domain.is_root() {
                // RFC 7646 §2: an NTA is for "a specific domain"; the root would switch
                // validation off, which `validate = false` says plainly.
                return Err(tables.invalid(
                    "dnssec.negative_trust_anchors",
                    "the root cannot be a negative trust anchor: set dnssec.validate = false",
                ));
            }
            if !negative_trust_anchors.contains(&domain) {
                negative_trust_anchors.push(domain);
            }
        }
        Ok(Self {
            validate: table.validate.unwrap_or(false),
            trust_anchors,
            negative_trust_anchors,
            trust_upstream_ad: table.trust_upstream_ad.unwrap_or(false),
        })
    }

    /// Whether `name` is at or under a negative trust anchor (RFC 7646 §2.1: "... all
    /// names at or below that domain").
    pub fn is_negative(&self, name: &LowerName) -> bool {
        self.negative_trust_anchors
            .iter()
            .any(|domain| domain.zone_of(name))
    }
}

fn read_anchors(tables: &Tables<'_>, path: &Path) -> Result<Vec<TrustAnchor>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        tables.invalid(
            "dnssec.trust_anchors",
            format!("cannot read {}: {error}", path.display()),
        )
    })?;
    let file = path.display().to_string();
    let anchors = parse_anchors(&text, &file)?;
    if anchors.is_empty() {
        return Err(tables.invalid(
            "dnssec.trust_anchors",
            format!("{file} holds no DS or DNSKEY record"),
        ));
    }
    Ok(anchors)
}

/// Parses a file of trust anchors: one record a line, `owner [TTL] [IN] DS|DNSKEY rdata`, as
/// Unbound's `trust-anchor-file` and Debian's `/usr/share/dns/root.key` write them; `;`
/// starts a comment. Owners are absolute (a missing final dot is added).
pub fn parse_anchors(text: &str, file: &str) -> Result<Vec<TrustAnchor>, ConfigError> {
    let mut anchors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fail = |reason: String| ConfigError::Value {
            location: Location {
                file: file.to_owned(),
                line: Some(index + 1),
            },
            key: "dnssec.trust_anchors".to_owned(),
            reason,
        };
        let anchor = parse_anchor(line).map_err(fail)?;
        anchors.push(anchor);
    }
    Ok(anchors)
}

fn parse_anchor(line: &str) -> Result<TrustAnchor, String> {
    let mut tokens = line.split_whitespace().peekable();
    let owner = tokens.next().ok_or("no owner name")?;
    let owner = if owner.ends_with('.') {
        owner.to_owned()
    } else {
        format!("{owner}.")
    };
    let zone = Name::from_ascii(&owner).map_err(|error| format!("{owner}: {error}"))?;
    // Optional TTL and class, in either order (RFC 1035 §5.1).
    for _ in 0..2 {
        match tokens.peek() {
            Some(token) if token.eq_ignore_ascii_case("IN") => {
                tokens.next();
            }
            Some(token) if token.bytes().all(|b| b.is_ascii_digit()) => {
                tokens.next();
            }
            _ => {}
        }
    }
    let record_type = tokens.next().ok_or("no record type")?;
    let rest: Vec<&str> = tokens.collect();
    let kind = if record_type.eq_ignore_ascii_case("DS") {
        match RData::try_from_str(RecordType::DS, &rest.join(" ")) {
            Ok(RData::DNSSEC(DNSSECRData::DS(ds))) => AnchorKind::Digest(ds),
            Ok(_) => return Err("not a DS record".to_owned()),
            Err(error) => return Err(format!("bad DS record: {error}")),
        }
    } else if record_type.eq_ignore_ascii_case("DNSKEY") {
        AnchorKind::Key(parse_dnskey(&rest)?)
    } else {
        return Err(format!(
            "{record_type}: a trust anchor is a DS or DNSKEY record"
        ));
    };
    let algorithm = match &kind {
        AnchorKind::Key(key) => key.algorithm(),
        AnchorKind::Digest(ds) => ds.algorithm(),
    };
    if !algorithm.is_supported() {
        return Err(format!("algorithm {algorithm} is not supported"));
    }
    Ok(TrustAnchor { zone, kind })
}

/// DNSKEY presentation format (RFC 4034 §2.2): flags, protocol (3), algorithm, the key in
/// Base64, possibly split by spaces. hickory's text parser refuses DNSKEY ("should be
/// dynamically generated"), so this small one is ours.
fn parse_dnskey(tokens: &[&str]) -> Result<DNSKEY, String> {
    let [flags, protocol, algorithm, key @ ..] = tokens else {
        return Err("a DNSKEY needs flags, protocol, algorithm and key".to_owned());
    };
    let flags: u16 = flags.parse().map_err(|_| format!("bad flags {flags}"))?;
    if *protocol != "3" {
        return Err(format!("protocol {protocol}: RFC 4034 §2.1.2 says 3"));
    }
    let algorithm: u8 = algorithm
        .parse()
        .map_err(|_| format!("bad algorithm {algorithm}"))?;
    if key.is_empty() {
        return Err("no public key".to_owned());
    }
    let key = data_encoding::BASE64
        .decode(key.concat().as_bytes())
        .map_err(|error| format!("the public key is not Base64: {error}"))?;
    // RFC 4034 §2.1.1: bit 7, Zone Key; a key without it "MUST NOT be used to verify RRSIGs".
    if flags & 0x0100 == 0 {
        return Err("the Zone Key flag (256) is not set".to_owned());
    }
    Ok(DNSKEY::with_flags(
        flags,
        PublicKeyBuf::new(key, Algorithm::from_u8(algorithm)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_anchors_are_the_two_root_ksks() {
        let anchors = parse_anchors(ROOT_ANCHORS, "built-in").unwrap();
        let tags: Vec<u16> = anchors
            .iter()
            .map(|anchor| match &anchor.kind {
                AnchorKind::Digest(ds) => ds.key_tag(),
                AnchorKind::Key(_) => 0,
            })
            .collect();
        assert_eq!(tags, [20326, 38696]);
        assert!(anchors.iter().all(|anchor| anchor.zone.is_root()));
        // Each digest matches one of the root keys hickory carries (its `roots/` files).
        let hickory = hickory_proto::dnssec::TrustAnchors::default();
        for anchor in &anchors {
            let AnchorKind::Digest(ds) = &anchor.kind else {
                panic!("a DS anchor")
            };
            let matched = (0..hickory.len())
                .filter_map(|i| hickory.get(i))
                .any(|key| {
                    let key = DNSKEY::with_flags(257, key.clone());
                    ds.covers(&Name::root(), &key).unwrap_or(false)
                });
            assert!(matched, "DS {} matches a root KSK", ds.key_tag());
        }
    }

    #[test]
    fn ds_and_dnskey_lines_parse_and_bad_ones_name_their_line() {
        let text = "; a comment\n\
            example. 3600 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\
            example IN 86400 DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0d xCjjnopKl+GqJxpVXckHAeF+KkxLbxIL fDLUT0rAK9iUzy1L53eKGQ==\n";
        let anchors = parse_anchors(text, "anchors.txt").unwrap();
        assert_eq!(anchors.len(), 2);
        assert!(matches!(anchors[1].kind, AnchorKind::Key(ref key) if key.flags() == 257));

        let error = parse_anchors("\n. IN DS 1 8 2 XYZ\n", "anchors.txt")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("anchors.txt:2: dnssec.trust_anchors: bad DS record"),
            "{error}"
        );
        let error = parse_anchors(". IN A 192.0.2.1\n", "a.txt")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a.txt:1:") && error.contains("DS or DNSKEY"),
            "{error}"
        );
        let error = parse_anchors(". IN DNSKEY 257 3 13 !!!\n", "a.txt")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not Base64"), "{error}");
        let error = parse_anchors(". IN DNSKEY 1 3 13 AAAA\n", "a.txt")
            .unwrap_err()
            .to_string();
        assert!(error.contains("Zone Key"), "{error}");
    }
}
