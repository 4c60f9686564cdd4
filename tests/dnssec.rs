//! DNSSEC in forwarding mode (issue 17), end to end.
//!
//! - Without validation, an upstream's AD bit never reaches a client (a fake upstream that
//!   sets AD on everything, and a validating Unbound over plain UDP); over TLS, only with
//!   `trust_upstream_ad = true`.
//! - With validation, over a signed hierarchy built at test time (`common::signed`: a fake
//!   root, `test.` and its children, signed with ldns and served by NSD, resolved by an Unbound
//!   that only iterates), every case is asked of Hearth and of an Unbound that validates with
//!   the same trust anchor, and both must give the same RCODE and AD. Hearth's Extended DNS
//!   Error is checked too.
//! - One intended difference: a CD=1 question for secure data. Unbound validates anyway and
//!   sets AD; Hearth answers unchecked (RFC 4035 §3.2.2) and so never claims AD (§3.2.3):
//!   `a_dnskey_anchor_local_data_and_cd`.
//!
//! Skip rule: without ldns-keygen, ldns-signzone, nsd or unbound the hierarchy tests print a
//! loud `SKIPPED` and pass, unless `HEARTH_REQUIRE_EXTERNAL=1`.

mod common;
#[path = "common/secure_upstream.rs"]
mod secure_upstream;
#[path = "common/signed.rs"]
mod signed;

use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::external::{require, toml_path};
use common::{extended_error, sample, start_server, FakeUpstream, PATIENCE};
use signed::{Hierarchy, COLLIDING_KEYS, EXPIRES_AFTER};

/// The flags a case is asked with.
#[derive(Clone, Copy, Debug)]
struct Flags {
    dnssec_ok: bool,
    checking_disabled: bool,
    authentic_data: bool,
}

const DO: Flags = Flags {
    dnssec_ok: true,
    checking_disabled: false,
    authentic_data: false,
};
const AD: Flags = Flags {
    dnssec_ok: false,
    checking_disabled: false,
    authentic_data: true,
};
const PLAIN: Flags = Flags {
    dnssec_ok: false,
    checking_disabled: false,
    authentic_data: false,
};
const CD_DO: Flags = Flags {
    dnssec_ok: true,
    checking_disabled: true,
    authentic_data: false,
};

fn query(id: u16, name: &str, record_type: RecordType, flags: Flags) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = flags.checking_disabled;
    message.metadata.authentic_data = flags.authentic_data;
    message
        .queries
        .push(Query::query(Name::from_ascii(name).unwrap(), record_type));
    let mut edns = Edns::new();
    edns.set_max_payload(1232).set_dnssec_ok(flags.dnssec_ok);
    message.edns = Some(edns);
    message.to_vec().unwrap()
}

/// One exchange over TCP (answers with signatures outgrow UDP): the reply's bytes.
async fn exchange(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(packet);
        stream.write_all(&framed).await?;
        let length = stream.read_u16().await?;
        let mut reply = vec![0u8; usize::from(length)];
        stream.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    tokio::time::timeout(PATIENCE, attempt)
        .await
        .unwrap_or_else(|_| panic!("{server} did not answer in time"))
        .unwrap_or_else(|e| panic!("{server}: {e}"))
}

#[tokio::test]
async fn without_validation_an_upstream_ad_bit_is_cleared() {
    let upstream = FakeUpstream::start().await;
    upstream.set_authentic_data(true);
    upstream.add_a("signed.example.net.", Ipv4Addr::new(192, 0, 2, 7));
    let config = format!(
        "[resolve]\norder = [\"dns\"]\n[forward]\nupstreams = [\"{}\"]\n\
         [dnssec]\ntrust_upstream_ad = true\n",
        upstream.addr
    );
    let server = start_server(&config).await;
    for flags in [DO, AD] {
        let reply = exchange(
            server.addr,
            &query(7, "signed.example.net.", RecordType::A, flags),
        )
        .await;
        let message = Message::from_vec(&reply).unwrap();
        assert_eq!(message.answers.len(), 1);
        assert!(
            !message.metadata.authentic_data,
            "{flags:?}: AD from a plain-UDP upstream is cleared even with trust_upstream_ad \
             (only TLS and HTTPS upstreams may be trusted)"
        );
    }
}

/// One case: what is asked, and what Hearth must answer.
struct Case {
    name: &'static str,
    record_type: RecordType,
    flags: Flags,
    response_code: ResponseCode,
    authentic_data: bool,
    /// Hearth's Extended DNS Error, if one is expected.
    extended_error: Option<u16>,
    why: &'static str,
}

fn case(
    name: &'static str,
    record_type: RecordType,
    flags: Flags,
    response_code: ResponseCode,
    authentic_data: bool,
    extended_error: Option<u16>,
    why: &'static str,
) -> Case {
    Case {
        name,
        record_type,
        flags,
        response_code,
        authentic_data,
        extended_error,
        why,
    }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use RecordType::{A, DNSKEY, DS, TXT};
    use ResponseCode::{NXDomain, NoError, ServFail};
    vec![
        case("www.test.", A, DO, NoError, true, None, "secure, DO"),
        case("www.test.", A, AD, NoError, true, None, "secure, AD asked"),
        case("www.test.", A, PLAIN, NoError, false, None, "RFC 6840 §5.8: AD only for DO or AD"),
        case("text.test.", TXT, DO, NoError, true, None, "secure TXT"),
        case("www.signed.test.", A, DO, NoError, true, None, "secure under NSEC3"),
        case("www.insecure.test.", A, DO, NoError, false, None, "insecure delegation, NSEC proof"),
        case("www.unsigned.optout.test.", A, DO, NoError, false, None, "insecure delegation, NSEC3 opt-out proof"),
        case("www.plain.signed.test.", A, DO, NoError, false, None, "insecure delegation, matching NSEC3 proof"),
        case("host.wild.test.", A, DO, NoError, true, None, "wildcard expansion with its NSEC proof"),
        case("nx.test.", A, DO, NXDomain, true, None, "NXDOMAIN, NSEC proof"),
        case("www.test.", TXT, DO, NoError, true, None, "NODATA, NSEC proof"),
        case("nx.signed.test.", A, DO, NXDomain, true, None, "NXDOMAIN, NSEC3 proof"),
        case("www.signed.test.", TXT, DO, NoError, true, None, "NODATA, NSEC3 proof"),
        case("alias.test.", A, DO, NoError, false, None, "CNAME from a secure zone into an insecure one"),
        case("chain.test.", A, DO, NoError, true, None, "CNAME between secure zones"),
        case("www.badsig.test.", A, DO, ServFail, false, Some(6), "bad signature: DNSSEC Bogus"),
        case("www.expired.test.", A, DO, ServFail, false, Some(7), "Signature Expired"),
        case("www.future.test.", A, DO, ServFail, false, Some(8), "Signature Not Yet Valid"),
        case("www.nokey.test.", A, DO, ServFail, false, Some(9), "DNSKEY Missing"),
        case("www.stripped.test.", A, DO, ServFail, false, Some(10), "RRSIGs Missing"),
        case("www.wrongds.test.", A, DO, ServFail, false, Some(9), "a DS that matches no key: DNSKEY Missing"),
        case("nx.iterations.test.", A, DO, NXDomain, false, None, "RFC 9276 §3.2: NSEC3 iterations above 150 are insecure"),
        case("www.iterations.test.", A, DO, NoError, true, None, "a positive answer there is still secure"),
        case("test.", DNSKEY, DO, NoError, true, None, "a DNSKEY set"),
        case("test.", DS, DO, NoError, true, None, "a DS set"),
        case("insecure.test.", DS, DO, NoError, true, None, "no DS: a secure NSEC proof of its absence"),
        case("signed.test.", DS, AD, NoError, true, None, "a DS set, AD asked"),
        case("www.badsig.test.", A, CD_DO, NoError, false, None, "CD=1: the unvalidated answer"),
        case("www.nta.test.", A, DO, NoError, false, None, "RFC 7646: a negative trust anchor"),
    ]
}

/// Starts the hierarchy, Hearth's plain upstream, the validating reference and Hearth.
async fn setup(dir: &std::path::Path) -> (Hierarchy, [signed::Recursor; 2], common::TestServer) {
    setup_with(dir, |hierarchy| {
        format!(
            "[dnssec]\nvalidate = true\ntrust_anchors = {}\nnegative_trust_anchors = [\"nta.test\"]\n",
            toml_path(&hierarchy.root_anchor)
        )
    })
    .await
}

/// [`setup`], with Hearth's `[dnssec]` (and anything after it) from `dnssec`.
async fn setup_with(
    dir: &std::path::Path,
    dnssec: impl Fn(&Hierarchy) -> String,
) -> (Hierarchy, [signed::Recursor; 2], common::TestServer) {
    let (hierarchy, iterator, validator) = {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            let hierarchy = Hierarchy::build(&dir);
            let iterator = hierarchy.recursor("iterator", false);
            let validator = hierarchy.recursor("validator", true);
            (hierarchy, iterator, validator)
        })
        .await
        .unwrap()
    };
    let config = format!(
        "[forward]\nupstreams = [\"{}\"]\ntimeout = \"3s\"\n{}",
        iterator.addr,
        dnssec(&hierarchy)
    );
    let server = start_server(&config).await;
    (hierarchy, [iterator, validator], server)
}

/// ldnsutils, nsd and unbound (the last two in /usr/sbin, which a non-root PATH may lack).
fn have_tools() -> bool {
    signed::TOOLS.iter().all(|tool| match *tool {
        "unbound" => secure_upstream::require_unbound(),
        tool => require(tool),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_validates_as_unbound_does() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_hierarchy, [_iterator, validator], server) = setup(dir.path()).await;
    let mut failures = Vec::new();
    for (index, case) in cases().iter().enumerate() {
        let packet = query(100 + index as u16, case.name, case.record_type, case.flags);
        let hearth = exchange(server.addr, &packet).await;
        let unbound = exchange(validator.addr, &packet).await;
        let (ours, theirs) = (
            Message::from_vec(&hearth).unwrap(),
            Message::from_vec(&unbound).unwrap(),
        );
        let line = format!(
            "{} {} ({}): Hearth {} AD={} EDE={:?}; Unbound {} AD={}",
            case.name,
            case.record_type,
            case.why,
            ours.metadata.response_code,
            ours.metadata.authentic_data,
            extended_error(&hearth),
            theirs.metadata.response_code,
            theirs.metadata.authentic_data,
        );
        if ours.metadata.response_code != case.response_code
            || ours.metadata.authentic_data != case.authentic_data
            || (case.extended_error.is_some()
                && extended_error(&hearth).map(|e| e.0) != case.extended_error)
            || ours.metadata.response_code != theirs.metadata.response_code
            || ours.metadata.authentic_data != theirs.metadata.authentic_data
        {
            failures.push(line);
        } else {
            eprintln!("ok: {line}");
        }
    }
    assert!(
        failures.is_empty(),
        "cases that failed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_gets_the_signatures_and_without_do_none() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_hierarchy, [iterator, _validator], server) = setup(dir.path()).await;
    let upstream_requests = || {
        let metrics = server.running().render_metrics("hearth");
        sample(
            &metrics,
            &format!(
                "hearth_upstream_requests_total{{upstream=\"{}\"}}",
                iterator.addr
            ),
        )
        .unwrap_or(0.0)
    };
    let with_do =
        Message::from_vec(&exchange(server.addr, &query(1, "www.test.", RecordType::A, DO)).await)
            .unwrap();
    assert!(with_do
        .answers
        .iter()
        .any(|r| r.record_type() == RecordType::RRSIG));
    let without =
        Message::from_vec(&exchange(server.addr, &query(2, "www.test.", RecordType::A, AD)).await)
            .unwrap();
    assert!(without.metadata.authentic_data);
    assert!(without
        .answers
        .iter()
        .all(|r| r.record_type() == RecordType::A));
    // The chain of trust is reused: another name of the same zone costs one upstream
    // question, its own (the DNSKEY and DS sets are cached, and so are their verdicts).
    let before = upstream_requests();
    let text = Message::from_vec(
        &exchange(server.addr, &query(3, "text.test.", RecordType::TXT, DO)).await,
    )
    .unwrap();
    assert!(text.metadata.authentic_data);
    assert_eq!(
        upstream_requests() - before,
        1.0,
        "only text.test. TXT was asked"
    );
    // The cache keeps the verdict: asked again (over UDP, so the fast path may answer from the
    // reply's bytes), still AD=1.
    for id in [4, 5, 6] {
        let reply = common::udp_raw(
            server.addr,
            &query(id, "www.test.", RecordType::A, AD),
            PATIENCE,
        )
        .await
        .expect("a reply");
        assert!(Message::from_vec(&reply).unwrap().metadata.authentic_data);
    }
    let metrics = server.running().render_metrics("hearth");
    assert!(sample(&metrics, "hearth_cache_hits_total").unwrap_or(0.0) >= 1.0);
    // A bogus answer is remembered briefly (RFC 9520): asked again at once, the same SERVFAIL
    // without fetching anything.
    let packet = query(3, "www.badsig.test.", RecordType::A, DO);
    let first = exchange(server.addr, &packet).await;
    let again = exchange(server.addr, &packet).await;
    assert_eq!(extended_error(&first).map(|e| e.0), Some(6));
    assert_eq!(extended_error(&again).map(|e| e.0), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_colliding_key_tags_are_answered_with_bounded_work() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_hierarchy, [_iterator, validator], server) = setup(dir.path()).await;
    let packet = query(1, "www.collide.test.", RecordType::A, DO);
    let reply = exchange(server.addr, &packet).await;
    let message = Message::from_vec(&reply).unwrap();
    let theirs = Message::from_vec(&exchange(validator.addr, &packet).await).unwrap();
    eprintln!(
        "www.collide.test. A: Hearth {} EDE={:?}; Unbound {} AD={}",
        message.metadata.response_code,
        extended_error(&reply),
        theirs.metadata.response_code,
        theirs.metadata.authentic_data
    );
    assert_eq!(message.metadata.response_code, ResponseCode::ServFail);
    assert!(!message.metadata.authentic_data);
    assert_eq!(
        theirs.metadata.response_code,
        ResponseCode::ServFail,
        "Unbound refuses it too"
    );
    let metrics = server.running().render_metrics("hearth");
    let signatures = sample(&metrics, "hearth_dnssec_signatures_total").unwrap_or(f64::MAX);
    assert!(
        signatures <= 64.0,
        "{signatures} signatures handed to the validator for one answer over {COLLIDING_KEYS} colliding keys"
    );
    assert!(sample(&metrics, "hearth_dnssec_limited_total").unwrap_or(0.0) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dnskey_anchor_local_data_and_cd() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "192.0.2.9 local.test\n").unwrap();
    let hosts_path = toml_path(&hosts);
    let (_hierarchy, [_iterator, validator], server) = setup_with(dir.path(), |hierarchy| {
        format!(
            "[dnssec]\nvalidate = true\ntrust_anchors = {}\n\
             [resolve]\norder = [\"files\", \"dns\"]\n[files]\npaths = [{hosts_path}]\n",
            toml_path(&hierarchy.root_key)
        )
    })
    .await;
    let ask = |name: &'static str, flags: Flags| {
        let server = server.addr;
        async move {
            Message::from_vec(&exchange(server, &query(9, name, RecordType::A, flags)).await)
                .unwrap()
        }
    };
    let secure = ask("www.test.", DO).await;
    assert!(
        secure.metadata.authentic_data,
        "the root's DNSKEY as the anchor"
    );
    let local = ask("local.test.", DO).await;
    assert_eq!(local.metadata.response_code, ResponseCode::NoError);
    assert!(local.metadata.authoritative, "from the hosts file");
    assert!(
        !local.metadata.authentic_data,
        "local data is Hearth's own: not validated, no AD"
    );
    // CD=1: the data unchecked, with its signatures. RFC 4035 §3.2.2: with CD set the server
    // "SHOULD NOT ... check"; Hearth then never claims AD. Unbound validates anyway and sets AD
    // on secure data: an intended difference (RFC 4035 §3.2.3 lets AD be set only for data
    // "the name server side considers ... authentic", and unchecked data is not).
    let unchecked = ask("www.test.", CD_DO).await;
    assert_eq!(unchecked.metadata.response_code, ResponseCode::NoError);
    assert!(!unchecked.metadata.authentic_data);
    assert!(unchecked
        .answers
        .iter()
        .any(|r| r.record_type() == RecordType::RRSIG));
    let theirs = Message::from_vec(
        &exchange(validator.addr, &query(9, "www.test.", RecordType::A, CD_DO)).await,
    )
    .unwrap();
    eprintln!(
        "CD=1 DO=1 www.test. A: Unbound {} AD={}",
        theirs.metadata.response_code, theirs.metadata.authentic_data
    );
    assert_eq!(theirs.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_validation_a_validating_upstreams_ad_is_cleared() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_hierarchy, [_iterator, validator], _server) = setup(dir.path()).await;
    let from_unbound = Message::from_vec(
        &exchange(validator.addr, &query(1, "www.test.", RecordType::A, DO)).await,
    )
    .unwrap();
    assert!(from_unbound.metadata.authentic_data, "Unbound says secure");
    for dnssec in ["", "[dnssec]\ntrust_upstream_ad = true\n"] {
        let config = format!(
            "[resolve]\norder = [\"dns\"]\n[forward]\nupstreams = [\"{}\"]\n{dnssec}",
            validator.addr
        );
        let server = start_server(&config).await;
        for flags in [DO, AD] {
            let reply = Message::from_vec(
                &exchange(server.addr, &query(2, "www.test.", RecordType::A, flags)).await,
            )
            .unwrap();
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert!(
                !reply.metadata.authentic_data,
                "{dnssec:?} {flags:?}: AD over plain UDP is never passed on"
            );
        }
    }
}

#[tokio::test]
async fn a_ds_question_goes_to_the_upstreams_of_the_parent_zone() {
    let default = FakeUpstream::start().await;
    let corp = FakeUpstream::start().await;
    let config = format!(
        "[resolve]\norder = [\"dns\"]\n[forward]\nupstreams = [\"{}\"]\n\
         [[forward.zone]]\nname = \"corp.example\"\nupstreams = [\"{}\"]\n",
        default.addr, corp.addr
    );
    let server = start_server(&config).await;
    for (name, record_type) in [
        ("corp.example.", RecordType::DS),
        ("www.corp.example.", RecordType::DS),
        ("corp.example.", RecordType::DNSKEY),
    ] {
        let _ = exchange(server.addr, &query(1, name, record_type, DO)).await;
    }
    assert_eq!(
        default.asked(),
        ["corp.example."],
        "RFC 4034 §5: the DS of a zone is in its parent"
    );
    assert_eq!(corp.asked(), ["www.corp.example.", "corp.example."]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stale_never_turns_a_bogus_answer_into_a_stale_success() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let built = std::time::Instant::now();
    let (hierarchy, iterator) = {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let hierarchy = Hierarchy::build(&dir);
            let iterator = hierarchy.recursor("iterator", false);
            (hierarchy, iterator)
        })
        .await
        .unwrap()
    };
    let config = format!(
        "[resolve]\norder = [\"dns\"]\n[forward]\nupstreams = [\"{}\"]\n\
         [cache]\nmax_ttl = \"1s\"\nserve_stale = \"1h\"\nprefetch = false\n\
         [dnssec]\nvalidate = true\ntrust_anchors = {}\n",
        iterator.addr,
        toml_path(&hierarchy.root_anchor)
    );
    let server = start_server(&config).await;
    let packet = query(1, "www.later.test.", RecordType::A, DO);
    let first = Message::from_vec(&exchange(server.addr, &packet).await).unwrap();
    assert!(first.metadata.authentic_data, "secure at first, and cached");
    // Past the signatures' expiry, the cached answer (TTL 1 s) is stale and its refresh bogus.
    let expired = built + EXPIRES_AFTER + std::time::Duration::from_secs(2);
    tokio::time::sleep_until(expired.into()).await;
    for _ in 0..3 {
        let reply = exchange(server.addr, &packet).await;
        let message = Message::from_vec(&reply).unwrap();
        assert_eq!(
            message.metadata.response_code,
            ResponseCode::ServFail,
            "the stale (once secure) answer is not served in place of a bogus one: EDE {:?}",
            extended_error(&reply)
        );
        assert_eq!(
            extended_error(&reply).map(|e| e.0),
            Some(7),
            "Signature Expired"
        );
    }
}

#[test]
fn dnssec_configuration_errors_name_the_file_the_line_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("anchors.txt");
    std::fs::write(&anchors, "; the root\n. IN DS 20326 8 2 NOT-HEX\n").unwrap();
    let overrides = hearth::config::Overrides::default();
    let load = |text: String| {
        hearth::config::Config::from_toml(&text, "hearth.toml", &overrides)
            .err()
            .map(|error| error.to_string())
    };
    let error = load(format!(
        "[dnssec]\nvalidate = true\ntrust_anchors = {}\n",
        toml_path(&anchors)
    ))
    .expect("a bad anchor is refused");
    assert!(
        error.contains("anchors.txt:2: dnssec.trust_anchors: bad DS record"),
        "{error}"
    );
    let error = load("[dnssec]\nvalidate = true\nvalidation = true\n".to_owned())
        .expect("an unknown key is refused");
    assert!(
        error.contains("hearth.toml:3") && error.contains("validation"),
        "{error}"
    );
    let error = load("[dnssec]\nnegative_trust_anchors = [\".\"]\n".to_owned())
        .expect("the root as a negative trust anchor is refused");
    assert!(error.contains("dnssec.negative_trust_anchors"), "{error}");
    let error = load("[dnssec]\ntrust_anchors = \"/nonexistent/root.key\"\n".to_owned())
        .expect("a missing file is refused");
    assert!(
        error.contains("cannot read /nonexistent/root.key"),
        "{error}"
    );
    assert_eq!(
        load("[dnssec]\nvalidate = true\n".to_owned()),
        None,
        "the built-in root anchors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_tls_upstreams_ad_is_passed_on_when_the_operator_says_so() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certificates = secure_upstream::Certificates::make(dir.path());
    let tls_port = common::external::free_port();
    let tweaks = format!(
        "    interface: 127.0.0.1@{tls_port}\n    tls-port: {tls_port}\n    tls-service-key: \"{}\"\n    tls-service-pem: \"{}\"\n",
        certificates.server_key.display(),
        certificates.server_certificate.display()
    );
    let (_hierarchy, _validator) = {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let hierarchy = Hierarchy::build(&dir);
            let validator = hierarchy.recursor_with("validator", true, &tweaks);
            (hierarchy, validator)
        })
        .await
        .unwrap()
    };
    for (trust, expected) in [("false", false), ("true", true)] {
        let config = format!(
            "[resolve]\norder = [\"dns\"]\n[forward]\n\
             upstreams = [\"tls://127.0.0.1:{tls_port}#{}\"]\ntls_ca = {}\n\
             [dnssec]\ntrust_upstream_ad = {trust}\n",
            secure_upstream::SERVER_NAME,
            toml_path(&certificates.ca)
        );
        let server = start_server(&config).await;
        let reply = Message::from_vec(
            &exchange(server.addr, &query(1, "www.test.", RecordType::A, DO)).await,
        )
        .unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            reply.metadata.authentic_data, expected,
            "trust_upstream_ad = {trust}: a validating upstream over TLS"
        );
        server.stop().await;
    }
}
