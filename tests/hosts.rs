//! The `files` source through the real server and a real client: hosts(5) answers, PTR,
//! NODATA for other types, several files, bad lines, and reload on change.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// The files own these names; the upstream (which knows nothing) must never be asked about them.
const HOSTS: &str = "\
# a comment\n\
127.0.0.1\tlocalhost\n\
::1 localhost ip6-localhost ip6-loopback\n\
192.0.2.10  web.example.org   web  www.example.org # trailing comment\r\n\
192.0.2.11 WEB.Example.Org\n\
2001:db8::10 web.example.org\n\
192.0.2 short.example.org\n\
192.0.2.20 good-after-bad.example.org";

#[tokio::test]
async fn hosts_answers() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), HOSTS);
    let upstream = FakeUpstream::start().await;
    let server = start_server(&config(&hosts, &[upstream.addr], &["files", "dns"])).await;

    // (name, type) -> the answer section, in zone-file form.
    let cases: &[(&str, RecordType, &[&str])] = &[
        ("localhost.", RecordType::A, &["localhost. 3600 IN A 127.0.0.1"]),
        ("localhost.", RecordType::AAAA, &["localhost. 3600 IN AAAA ::1"]),
        ("ip6-loopback.", RecordType::AAAA, &["ip6-loopback. 3600 IN AAAA ::1"]),
        (
            "web.example.org.",
            RecordType::A,
            &["web.example.org. 3600 IN A 192.0.2.10", "web.example.org. 3600 IN A 192.0.2.11"],
        ),
        // Case-insensitive, and the answer's owner is the name as the client wrote it.
        (
            "WeB.eXample.ORG.",
            RecordType::A,
            &["WeB.eXample.ORG. 3600 IN A 192.0.2.10", "WeB.eXample.ORG. 3600 IN A 192.0.2.11"],
        ),
        ("web.example.org.", RecordType::AAAA, &["web.example.org. 3600 IN AAAA 2001:db8::10"]),
        // Aliases.
        ("web.", RecordType::A, &["web. 3600 IN A 192.0.2.10"]),
        ("www.example.org.", RecordType::A, &["www.example.org. 3600 IN A 192.0.2.10"]),
        // NODATA: the name is the files', the type is not there.
        ("www.example.org.", RecordType::AAAA, &[]),
        ("web.example.org.", RecordType::MX, &[]),
        ("web.example.org.", RecordType::TXT, &[]),
        // A line after a bad line still loads.
        ("good-after-bad.example.org.", RecordType::A, &["good-after-bad.example.org. 3600 IN A 192.0.2.20"]),
        // PTR, IPv4 and IPv6: the canonical name first, then the aliases.
        (
            "10.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            &[
                "10.2.0.192.in-addr.arpa. 3600 IN PTR web.example.org.",
                "10.2.0.192.in-addr.arpa. 3600 IN PTR web.",
                "10.2.0.192.in-addr.arpa. 3600 IN PTR www.example.org.",
            ],
        ),
        (
            "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            RecordType::PTR,
            &["0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 3600 IN PTR web.example.org."],
        ),
    ];
    for (asked, record_type, expected) in cases {
        let response = ask(server.addr, asked, *record_type).await;
        assert_eq!(
            response.response_code,
            ResponseCode::NoError,
            "{asked} {record_type}"
        );
        assert!(
            response.authoritative,
            "{asked} {record_type}: AA is set for hosts answers"
        );
        assert!(
            response.recursion_available,
            "{asked} {record_type}: RA is set"
        );
        assert_eq!(answers(&response), *expected, "{asked} {record_type}");
    }
    assert_eq!(
        upstream.queries(),
        0,
        "the upstream was asked about names the files own: {:?}",
        upstream.asked()
    );

    // Names the files do not have go on to the upstream; the bad line's name is not loaded.
    let response = ask(server.addr, "short.example.org.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.asked(), ["short.example.org."]);
    server.stop().await;
}

#[tokio::test]
async fn several_files_are_all_consulted() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("hosts.a");
    let second = dir.path().join("hosts.b");
    std::fs::write(&first, "192.0.2.1 one.example\n192.0.2.9 both.example\n").unwrap();
    std::fs::write(&second, "192.0.2.2 two.example\n192.0.2.8 both.example\n").unwrap();
    let (_socket, dead) = dead_upstream().await;
    let toml = format!(
        "[files]\npaths = [\"{}\", \"{}\"]\n[forward]\nupstreams = [\"{dead}\"]\ntimeout = \"200ms\"\n",
        first.display(),
        second.display()
    );
    let server = start_server(&toml).await;
    assert_eq!(
        rdata(&ask(server.addr, "one.example.", RecordType::A).await),
        ["192.0.2.1"]
    );
    assert_eq!(
        rdata(&ask(server.addr, "two.example.", RecordType::A).await),
        ["192.0.2.2"]
    );
    assert_eq!(
        rdata(&ask(server.addr, "both.example.", RecordType::A).await),
        ["192.0.2.9", "192.0.2.8"],
        "addresses from every file, in file order"
    );
    server.stop().await;
}

#[tokio::test]
async fn changed_file_is_reloaded_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.1 moving.example\n");
    let (_socket, dead) = dead_upstream().await;
    let server = start_server(&config(
        &hosts,
        &[dead],
        &["files [NOTFOUND=return]", "dns"],
    ))
    .await;
    assert_eq!(
        rdata(&ask(server.addr, "moving.example.", RecordType::A).await),
        ["192.0.2.1"]
    );

    // Edit in place.
    std::fs::write(&hosts, "192.0.2.2 moving.example\n").unwrap();
    let addr = server.addr;
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, "moving.example.", RecordType::A).await) == ["192.0.2.2"]
        })
        .await,
        "an edit in place is picked up"
    );

    // Replace by rename.
    let staged = dir.path().join("hosts.new");
    std::fs::write(
        &staged,
        "192.0.2.3 moving.example\n192.0.2.4 added.example\n",
    )
    .unwrap();
    std::fs::rename(&staged, &hosts).unwrap();
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, "added.example.", RecordType::A).await) == ["192.0.2.4"]
        })
        .await,
        "a replacement by rename is picked up"
    );
    // Atomic: the new file is seen whole.
    assert_eq!(
        rdata(&ask(addr, "moving.example.", RecordType::A).await),
        ["192.0.2.3"]
    );

    // Delete and recreate: the last good contents serve in between, the new ones after.
    std::fs::remove_file(&hosts).unwrap();
    assert_eq!(
        rdata(&ask(addr, "added.example.", RecordType::A).await),
        ["192.0.2.4"]
    );
    std::fs::write(&hosts, "192.0.2.5 recreated.example\n").unwrap();
    assert!(
        eventually(|| async move {
            rdata(&ask(addr, "recreated.example.", RecordType::A).await) == ["192.0.2.5"]
        })
        .await,
        "a recreated file is picked up"
    );
    let gone = ask(addr, "added.example.", RecordType::A).await;
    assert_eq!(
        gone.response_code,
        ResponseCode::NXDomain,
        "names of the old file are gone"
    );
    server.stop().await;
}
