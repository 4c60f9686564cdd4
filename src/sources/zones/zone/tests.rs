//! Golden cases: a zone written as a master file, questions, and the answers written as
//! zone-file lines, the way `dig` shows them.

use std::path::Path;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use super::{Zone, ZoneLoader};
use crate::sources::zones::master::ZoneFile;

const ZONE: &str = r#"$ORIGIN example.internal.
$TTL 3600
@        SOA   ns1 hostmaster 1 7200 1800 86400 300
@        NS    ns1
ns1      A     192.0.2.1
www      A     192.0.2.10
www      AAAA  2001:db8::10
alias    CNAME www
chain1   CNAME chain2
chain2   CNAME www
outside  CNAME www.example.net.
loop1    CNAME loop2
loop2    CNAME loop1
a.b.c    A     192.0.2.20
*.wild   A     192.0.2.30
*.wild   TXT   "wild"
exists.wild A  192.0.2.31
sub      NS    ns.sub
ns.sub   A     192.0.2.40
mail     MX    10 www
"#;

fn build(text: &str) -> super::ZoneBuild {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.internal.zone");
    std::fs::write(&path, text).unwrap();
    let file = ZoneFile::open(&path).unwrap();
    let mut loader = ZoneLoader::new(file.origin());
    let read = file.read(&mut loader).unwrap();
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    let mut built = loader.finish(&path);
    for problem in &mut built.problems {
        problem.file = Path::new(problem.file.file_name().unwrap()).to_owned();
    }
    built
}

fn zone() -> Zone {
    let built = build(ZONE);
    assert!(built.problems.is_empty(), "{:?}", built.problems);
    built.zone.unwrap()
}

/// What an answer looks like: RCODE, AA, and each section as zone-file lines.
#[derive(Debug, PartialEq)]
struct Shown {
    response_code: ResponseCode,
    authoritative: bool,
    answers: Vec<String>,
    authorities: Vec<String>,
    additionals: Vec<String>,
    chase: Option<String>,
}

fn ask(zone: &Zone, name: &str, record_type: RecordType) -> Shown {
    let answer = zone.lookup(&Name::from_ascii(name).unwrap(), record_type);
    let lines =
        |records: &[hickory_proto::rr::Record]| records.iter().map(|r| r.to_string()).collect();
    Shown {
        response_code: answer.response_code,
        authoritative: answer.authoritative,
        answers: lines(&answer.answers),
        authorities: lines(&answer.authorities),
        additionals: lines(&answer.additionals),
        chase: answer.chase.map(|n| n.to_string()),
    }
}

const NEGATIVE_SOA: &str = "example.internal. 300 IN SOA ns1.example.internal. hostmaster.example.internal. 1 7200 1800 86400 300";

fn data(answers: &[&str]) -> Shown {
    Shown {
        response_code: ResponseCode::NoError,
        authoritative: true,
        answers: answers.iter().map(|s| s.to_string()).collect(),
        authorities: vec![],
        additionals: vec![],
        chase: None,
    }
}

fn nodata() -> Shown {
    Shown {
        authorities: vec![NEGATIVE_SOA.into()],
        ..data(&[])
    }
}

fn nxdomain(answers: &[&str]) -> Shown {
    Shown {
        response_code: ResponseCode::NXDomain,
        authorities: vec![NEGATIVE_SOA.into()],
        ..data(answers)
    }
}

fn referral() -> Shown {
    Shown {
        authoritative: false,
        authorities: vec!["sub.example.internal. 3600 IN NS ns.sub.example.internal.".into()],
        additionals: vec!["ns.sub.example.internal. 3600 IN A 192.0.2.40".into()],
        ..data(&[])
    }
}

#[test]
fn authoritative_answers() {
    let zone = zone();
    use RecordType::*;
    let cases: Vec<(&str, RecordType, Shown)> = vec![
        (
            "www.example.internal.",
            A,
            data(&["www.example.internal. 3600 IN A 192.0.2.10"]),
        ),
        (
            "WWW.Example.INTERNAL.",
            AAAA,
            data(&["WWW.Example.INTERNAL. 3600 IN AAAA 2001:db8::10"]),
        ),
        ("www.example.internal.", MX, nodata()),
        ("nope.example.internal.", A, nxdomain(&[])),
        // Empty non-terminals: NODATA, not NXDOMAIN (RFC 8020's reasoning, RFC 4592 §2.2.2).
        ("c.example.internal.", A, nodata()),
        ("b.c.example.internal.", TXT, nodata()),
        (
            "a.b.c.example.internal.",
            A,
            data(&["a.b.c.example.internal. 3600 IN A 192.0.2.20"]),
        ),
        ("x.a.b.c.example.internal.", A, nxdomain(&[])),
        // CNAME chains, followed inside the zone.
        (
            "alias.example.internal.",
            A,
            data(&[
                "alias.example.internal. 3600 IN CNAME www.example.internal.",
                "www.example.internal. 3600 IN A 192.0.2.10",
            ]),
        ),
        (
            "alias.example.internal.",
            CNAME,
            data(&["alias.example.internal. 3600 IN CNAME www.example.internal."]),
        ),
        (
            "alias.example.internal.",
            MX,
            Shown {
                authorities: vec![NEGATIVE_SOA.into()],
                ..data(&["alias.example.internal. 3600 IN CNAME www.example.internal."])
            },
        ),
        (
            "chain1.example.internal.",
            A,
            data(&[
                "chain1.example.internal. 3600 IN CNAME chain2.example.internal.",
                "chain2.example.internal. 3600 IN CNAME www.example.internal.",
                "www.example.internal. 3600 IN A 192.0.2.10",
            ]),
        ),
        // Leaving the zone: handed to the chain.
        (
            "outside.example.internal.",
            A,
            Shown {
                chase: Some("www.example.net.".into()),
                ..data(&["outside.example.internal. 3600 IN CNAME www.example.net."])
            },
        ),
        // A loop ends with the chain so far.
        (
            "loop1.example.internal.",
            A,
            data(&[
                "loop1.example.internal. 3600 IN CNAME loop2.example.internal.",
                "loop2.example.internal. 3600 IN CNAME loop1.example.internal.",
            ]),
        ),
        // Wildcards (RFC 4592): synthesized for names that do not exist, owned by the name asked.
        (
            "any.wild.example.internal.",
            A,
            data(&["any.wild.example.internal. 3600 IN A 192.0.2.30"]),
        ),
        (
            "any.wild.example.internal.",
            TXT,
            data(&["any.wild.example.internal. 3600 IN TXT wild"]),
        ),
        ("any.wild.example.internal.", MX, nodata()),
        ("exists.wild.example.internal.", TXT, nodata()),
        ("below.exists.wild.example.internal.", A, nxdomain(&[])),
        ("wild.example.internal.", A, nodata()),
        // Delegations: a referral with glue, for the cut and everything below it.
        ("sub.example.internal.", A, referral()),
        ("deep.sub.example.internal.", A, referral()),
        ("ns.sub.example.internal.", A, referral()),
        // DS is the parent's: answered at the cut, not referred (RFC 4035 §3.1.4.1).
        ("sub.example.internal.", DS, nodata()),
        ("deep.sub.example.internal.", DS, referral()),
        // The apex.
        (
            "example.internal.",
            NS,
            data(&["example.internal. 3600 IN NS ns1.example.internal."]),
        ),
        (
            "example.internal.",
            ANY,
            data(&[&NEGATIVE_SOA.replace(" 300 IN", " 3600 IN")]),
        ),
        (
            "mail.example.internal.",
            MX,
            data(&["mail.example.internal. 3600 IN MX 10 www.example.internal."]),
        ),
    ];
    for (name, record_type, expected) in cases {
        assert_eq!(
            ask(&zone, name, record_type),
            expected,
            "{name} {record_type}"
        );
    }
}

#[test]
fn load_time_checks() {
    let soa = "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n";
    let cases = [
        ("$TTL 60\nwww A 192.0.2.1\n", "example.internal.zone: no SOA record at the apex example.internal.", false),
        (
            &format!("{soa}www CNAME other\nwww A 192.0.2.1\n") as &str,
            "example.internal.zone:3: CNAME at www.example.internal. beside other data (A): RFC 2181 §10.1 forbids it",
            false,
        ),
        (
            &format!("{soa}www A 192.0.2.1\nstray.example.org. A 192.0.2.2\n"),
            "example.internal.zone:4: stray.example.org. is outside the zone example.internal.; ignored",
            true,
        ),
        (
            &format!("{soa}@ SOA ns hm 2 2 3 4 5\n"),
            "example.internal.zone:2: more than one SOA at the apex example.internal.",
            false,
        ),
    ];
    for (text, expected, loads) in cases {
        let built = build(text);
        let problems: Vec<String> = built.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems, [expected], "{text}");
        assert_eq!(built.zone.is_some(), loads, "{text}");
    }
}
