//! The Kubernetes DNS checklist (`shared/docs/KUBERNETES-DNS.md`) as one table, [`CHECKLIST`],
//! run by [`run_checklist`] against either feed of the cluster zone: the manifests directory
//! (tests/kubernetes.rs) and the live API, a fake API server serving the same objects
//! (tests/kubernetes_api.rs). And what those tests share: Hearth started with a cluster feed,
//! its upstream, and the questions they ask.
//!
//! A case is a question and the reply as `dig` would show it, in short:
//!
//! ```text
//! ;; NOERROR, aa                                              the RCODE, and AA if set
//! kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1      the answer section
//! ;; AUTHORITY cluster.local. 5 IN SOA ns.dns... SERIAL ...   the authority section
//! ```
//!
//! The records of one RRset are sorted (their order means nothing, RFC 2181 §5); RRsets stay
//! in the order given (a CNAME before its target's records). SOA serials are written `SERIAL`:
//! the cluster's is a hash of its contents. A case also says which names the question sends to
//! the upstream, nearly always none: cluster names are never forwarded.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::op::{DnsResponse, Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use serde_json::{json, Value};

use super::apiserver::FakeApiServer;
use super::{
    answers, ask, config, eventually, hosts_file, query_bytes, rdata, start_server, udp_raw,
    FakeUpstream, TestServer, PATIENCE,
};

/// The SOA of the cluster zone as `has_soa` looks for it (serial and timers aside).
pub const SOA: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.";
/// The API server's own service: answered once the example cluster is served.
pub const KUBERNETES: &str = "kubernetes.default.svc.cluster.local.";

// ---------------------------------------------------------------------------------------------
// The checklist.

/// The cluster's SOA in the authority section of a negative answer: TTL min(SOA TTL, MINIMUM)
/// (RFC 2308 §3), which is the records' TTL.
const AUTHORITY_SOA: &str = ";; AUTHORITY cluster.local. 5 IN SOA ns.dns.cluster.local. \
                             hostmaster.cluster.local. SERIAL 7200 1800 86400 5";
/// The name does not exist: NXDOMAIN, the cluster's SOA in authority.
const NXDOMAIN: &[&str] = &[";; NXDOMAIN, aa", AUTHORITY_SOA];
/// The name exists without records of the type: NOERROR, no answer, the SOA in authority.
const NODATA: &[&str] = &[";; NOERROR, aa", AUTHORITY_SOA];

/// One question of the checklist and its expected reply.
pub struct Case {
    /// The checklist's row (`shared/docs/KUBERNETES-DNS.md`).
    pub row: &'static str,
    /// `pods` in `[kubernetes]`: `insecure` (CoreDNS's default), `disabled` or `verified`.
    pub pods: &'static str,
    /// `name TYPE`.
    pub question: &'static str,
    /// The reply, in the form of the module's documentation.
    pub reply: &'static [&'static str],
    /// The names the upstream is asked because of this question, in order.
    pub forwarded: &'static [&'static str],
}

impl Case {
    const fn new(
        row: &'static str,
        question: &'static str,
        reply: &'static [&'static str],
    ) -> Self {
        Self {
            row,
            pods: "insecure",
            question,
            reply,
            forwarded: &[],
        }
    }

    const fn pods(self, pods: &'static str) -> Self {
        Self { pods, ..self }
    }

    const fn forwarded(self, forwarded: &'static [&'static str]) -> Self {
        Self { forwarded, ..self }
    }
}

/// The example cluster of the checklist: service `kubernetes` (ClusterIP 10.96.0.1, no
/// endpoints), headless `hdls` (10.0.0.2 with hostname `my-pet`, 10.0.0.3 without), headless
/// `lonely` without endpoints, ExternalName `ext` (www.example.com), headless `subdomain`
/// whose slice names pod `busybox-1`, and that pod at 10.0.0.10 ([`checklist_manifests`]).
pub const CHECKLIST: &[Case] = &[
    Case::new("1", "dns-version.cluster.local. TXT", &[
        ";; NOERROR, aa",
        "dns-version.cluster.local. 5 IN TXT 1.1.0",
    ]),
    // A ClusterIP service without endpoints answers its ClusterIP all the same (row 15).
    Case::new("2, 15", "kubernetes.default.svc.cluster.local. A", &[
        ";; NOERROR, aa",
        "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1",
    ]),
    // Names compare ignoring case; the answer is owned by the name as asked.
    Case::new("2, 15", "Kubernetes.Default.SVC.cluster.local. A", &[
        ";; NOERROR, aa",
        "Kubernetes.Default.SVC.cluster.local. 5 IN A 10.96.0.1",
    ]),
    Case::new("3", "kubernetes.default.svc.cluster.local. AAAA", NODATA),
    Case::new("3", "kubernetes.default.svc.cluster.local. TXT", NODATA),
    Case::new("4", "_https._tcp.kubernetes.default.svc.cluster.local. SRV", &[
        ";; NOERROR, aa",
        "_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local.",
    ]),
    Case::new("5", "1.0.96.10.in-addr.arpa. PTR", &[
        ";; NOERROR, aa",
        "1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local.",
    ]),
    // The reverse name of an address that is not the cluster's goes on down the chain. The
    // SOA's TTL is the negative TTL, min(TTL, MINIMUM) (RFC 2308 §3), as the cache keeps it.
    Case::new("5", "99.99.99.10.in-addr.arpa. PTR", &[
        ";; NXDOMAIN",
        ";; AUTHORITY example.net. 60 IN SOA ns.example.net. hostmaster.example.net. SERIAL 7200 1800 86400 60",
    ])
    .forwarded(&["99.99.99.10.in-addr.arpa."]),
    Case::new("6", "hdls.ns.svc.cluster.local. A", &[
        ";; NOERROR, aa",
        "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2",
        "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3",
    ]),
    // A headless service without ready endpoints has no name.
    Case::new("6", "lonely.ns.svc.cluster.local. A", NXDOMAIN),
    Case::new("7", "my-pet.hdls.ns.svc.cluster.local. A", &[
        ";; NOERROR, aa",
        "my-pet.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2",
    ]),
    // An endpoint without a hostname is named by its dashed address.
    Case::new("7", "10-0-0-3.hdls.ns.svc.cluster.local. A", &[
        ";; NOERROR, aa",
        "10-0-0-3.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3",
    ]),
    Case::new("8", "_https._tcp.hdls.ns.svc.cluster.local. SRV", &[
        ";; NOERROR, aa",
        "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 10-0-0-3.hdls.ns.svc.cluster.local.",
        "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 my-pet.hdls.ns.svc.cluster.local.",
    ]),
    Case::new("9", "2.0.0.10.in-addr.arpa. PTR", &[
        ";; NOERROR, aa",
        "2.0.0.10.in-addr.arpa. 5 IN PTR my-pet.hdls.ns.svc.cluster.local.",
    ]),
    // The CNAME's target is resolved through the rest of the chain: the upstream here.
    Case::new("10", "ext.ns.svc.cluster.local. A", &[
        ";; NOERROR, aa",
        "ext.ns.svc.cluster.local. 5 IN CNAME www.example.com.",
        "www.example.com. 300 IN A 93.184.215.14",
    ])
    .forwarded(&["www.example.com."]),
    Case::new("11", "1-2-3-4.ns.pod.cluster.local. A", &[
        ";; NOERROR, aa",
        "1-2-3-4.ns.pod.cluster.local. 5 IN A 1.2.3.4",
    ]),
    // Insecure, but only in a namespace that exists.
    Case::new("11", "1-2-3-4.nonexistent.pod.cluster.local. A", NXDOMAIN),
    Case::new("11", "1-2-3-4.ns.pod.cluster.local. A", NXDOMAIN).pods("disabled"),
    Case::new("11", "10-0-0-10.ns.pod.cluster.local. A", &[
        ";; NOERROR, aa",
        "10-0-0-10.ns.pod.cluster.local. 5 IN A 10.0.0.10",
    ])
    .pods("verified"),
    // Verified: there is no such pod.
    Case::new("11", "1-2-3-4.ns.pod.cluster.local. A", NXDOMAIN).pods("verified"),
    Case::new("12", "busybox-1.subdomain.ns.svc.cluster.local. A", &[
        ";; NOERROR, aa",
        "busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10",
    ]),
    Case::new("13", "nope.default.svc.cluster.local. A", NXDOMAIN),
    Case::new("13", "kubernetes.nonexistent.svc.cluster.local. A", NXDOMAIN),
    // An ndots:5 search-path expansion of an outside name: NXDOMAIN at once, never forwarded.
    Case::new("13", "www.example.com.ns.svc.cluster.local. A", NXDOMAIN),
    Case::new("14", "svc.cluster.local. A", NODATA),
    Case::new("14", "pod.cluster.local. A", NODATA),
    Case::new("14", "ns.svc.cluster.local. A", NODATA),
    Case::new("14", "default.svc.cluster.local. A", NODATA),
    Case::new("16", "cluster.local. SOA", &[
        ";; NOERROR, aa",
        "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5",
    ]),
    Case::new("16", "cluster.local. NS", &[
        ";; NOERROR, aa",
        "cluster.local. 5 IN NS ns.dns.cluster.local.",
    ]),
    Case::new("16", "cluster.local. AXFR", &[";; REFUSED"]),
];

/// The objects of the checklist as manifests: the example cluster shipped in `zones/cluster/`
/// and a headless service without endpoints.
pub fn checklist_manifests() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![
        root.join("zones/cluster/default.yaml"),
        root.join("zones/cluster/ns.yaml"),
        root.join("tests/data/kubernetes/checklist/lonely.yaml"),
    ]
}

/// Where the checklist's objects come from.
#[derive(Clone, Copy, Debug)]
pub enum ChecklistFeed {
    /// A directory holding [`checklist_manifests`].
    Manifests,
    /// A fake API server serving the same objects.
    Api,
}

/// Asks every case of [`CHECKLIST`] of Hearth fed by `feed`, one Hearth for each `pods` mode,
/// and fails listing every case that was answered otherwise.
pub async fn run_checklist(feed: ChecklistFeed) {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApiServer::start().await;
    for manifest in checklist_manifests() {
        let file = manifest.file_name().unwrap();
        std::fs::copy(&manifest, dir.path().join(file)).unwrap();
        api.apply_yaml(&std::fs::read_to_string(&manifest).unwrap());
    }
    let url = api.url();
    let mut failures = Vec::new();
    for pods in ["insecure", "disabled", "verified"] {
        let source = match feed {
            ChecklistFeed::Manifests => Feed::Manifests(dir.path()),
            ChecklistFeed::Api => Feed::Api(&url),
        };
        let hearth = start_hearth(source, pods).await;
        synced(hearth.addr()).await;
        for case in CHECKLIST.iter().filter(|case| case.pods == pods) {
            let asked_before = hearth.upstream.asked().len();
            let reply = dig(hearth.addr(), case.question).await;
            let forwarded = hearth.upstream.asked().split_off(asked_before);
            if reply != case.reply || forwarded != case.forwarded {
                failures.push(format!(
                    "row {} (pods {pods}): {}\n  expected {:#?}, forwarding {:?}\n  got {reply:#?}, \
                     forwarding {forwarded:?}",
                    case.row, case.question, case.reply, case.forwarded
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{feed:?}: {} of {} cases answered otherwise:\n{}",
        failures.len(),
        CHECKLIST.len(),
        failures.join("\n")
    );
}

/// The reply to `question` (`name TYPE`) in the form of the module's documentation. AXFR is
/// asked over UDP as raw bytes (hickory's client does not send it that way).
pub async fn dig(addr: SocketAddr, question: &str) -> Vec<String> {
    let (name, record_type) = question
        .split_once(' ')
        .unwrap_or_else(|| panic!("`name TYPE`: {question}"));
    let record_type = RecordType::from_str(record_type).unwrap();
    if record_type == RecordType::AXFR {
        let packet = query_bytes(9, name, record_type, None);
        let reply = udp_raw(addr, &packet, PATIENCE).await.expect("a reply");
        shown(&Message::from_vec(&reply).unwrap())
    } else {
        shown(&Message::from(ask(addr, name, record_type).await))
    }
}

fn shown(message: &Message) -> Vec<String> {
    // `NoError` as dig writes it: NOERROR (and NXDOMAIN, SERVFAIL, REFUSED).
    let response_code = format!("{:?}", message.metadata.response_code).to_uppercase();
    let mut lines = vec![format!(
        ";; {response_code}{}",
        if message.metadata.authoritative {
            ", aa"
        } else {
            ""
        }
    )];
    // RRset by RRset, in the order they came; each sorted.
    let mut rrset: Vec<String> = Vec::new();
    let mut last = None;
    for record in &message.answers {
        let key = (record.name.to_lowercase(), record.record_type());
        if last.as_ref() != Some(&key) {
            rrset.sort();
            lines.append(&mut rrset);
            last = Some(key);
        }
        rrset.push(record_text(record));
    }
    rrset.sort();
    lines.append(&mut rrset);
    lines.extend(
        message
            .authorities
            .iter()
            .map(|record| format!(";; AUTHORITY {}", record_text(record))),
    );
    lines
}

/// A record as a zone-file line; an SOA's serial written `SERIAL`.
fn record_text(record: &Record) -> String {
    match &record.data {
        RData::SOA(soa) => format!(
            "{} {} {} SOA {} {} SERIAL {} {} {} {}",
            record.name,
            record.ttl,
            record.dns_class,
            soa.mname,
            soa.rname,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        _ => record.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Hearth with a cluster feed.

/// The example cluster shipped in `zones/cluster/`.
pub fn example_cluster() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster")
}

/// The example cluster as `kubectl get -o yaml` prints it.
pub fn example_yaml() -> String {
    let dir = example_cluster();
    ["default.yaml", "ns.yaml"]
        .iter()
        .map(|file| std::fs::read_to_string(dir.join(file)).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// A fake API server serving the example cluster.
pub async fn example_api() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    api.apply_yaml(&example_yaml());
    api
}

/// A ClusterIP Service object as the API serves it, with one named port (`http`, 80/TCP).
pub fn service(namespace: &str, name: &str, cluster_ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}")},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        },
        "status": {"loadBalancer": {}}
    })
}

/// Where Hearth's cluster zone comes from.
#[derive(Clone, Copy, Debug)]
pub enum Feed<'a> {
    /// `[kubernetes] manifests = <directory>`.
    Manifests(&'a Path),
    /// `[kubernetes] api = <URL, kubeconfig or "in-cluster">`.
    Api(&'a str),
}

/// Hearth with a cluster feed, its upstream (which knows `www.example.com`, row 10) and its
/// hosts file.
pub struct Hearth {
    pub server: TestServer,
    pub upstream: FakeUpstream,
    _dir: tempfile::TempDir,
}

impl Hearth {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

/// Starts Hearth on `feed`, with `pods` (`insecure`, `disabled` or `verified`) and a TTL of 5.
pub async fn start_hearth(feed: Feed<'_>, pods: &str) -> Hearth {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let upstream = FakeUpstream::start().await;
    upstream.add_a("www.example.com.", Ipv4Addr::new(93, 184, 215, 14));
    let base = config(&hosts, &[upstream.addr], &["files", "zones", "dns"]);
    let toml = match feed {
        Feed::Manifests(directory) => format!(
            "{base}[zones]\nreload_interval = \"100ms\"\n[kubernetes]\ndomain = \"cluster.local\"\n\
             manifests = \"{}\"\npods = \"{pods}\"\nttl = 5\n",
            directory.display()
        ),
        Feed::Api(api) => format!(
            "{base}[kubernetes]\ndomain = \"cluster.local\"\napi = \"{api}\"\npods = \"{pods}\"\n\
             ttl = 5\n"
        ),
    };
    Hearth {
        server: start_server(&toml).await,
        upstream,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------------
// Questions.

pub fn sorted_answers(response: &DnsResponse) -> Vec<String> {
    let mut lines = answers(response);
    lines.sort();
    lines
}

/// The authority section holds the cluster SOA (serial aside).
pub fn has_soa(response: &DnsResponse) -> bool {
    response.authorities.len() == 1 && response.authorities[0].to_string().starts_with(SOA)
}

/// The RCODE and the sorted answer data.
pub async fn outcome(
    addr: SocketAddr,
    name: &str,
    record_type: RecordType,
) -> (ResponseCode, Vec<String>) {
    let response = ask(addr, name, record_type).await;
    let mut data = rdata(&response);
    data.sort();
    (response.response_code, data)
}

/// The sorted answer lines of an authoritative NOERROR answer.
pub async fn ask_ok(addr: SocketAddr, name: &str, record_type: RecordType) -> Vec<String> {
    let response = ask(addr, name, record_type).await;
    assert_eq!(
        response.response_code,
        ResponseCode::NoError,
        "{name} {record_type}"
    );
    assert!(response.authoritative, "{name} {record_type}: AA");
    sorted_answers(&response)
}

/// Waits until `name A` answers exactly `addresses` (none: NXDOMAIN).
pub async fn until_a(addr: SocketAddr, name: &str, addresses: &[&str]) -> bool {
    eventually(|| async move {
        let (code, data) = outcome(addr, name, RecordType::A).await;
        if addresses.is_empty() {
            code == ResponseCode::NXDomain
        } else {
            code == ResponseCode::NoError && data == addresses
        }
    })
    .await
}

/// Waits until the example cluster is served.
pub async fn synced(addr: SocketAddr) {
    assert!(
        until_a(addr, KUBERNETES, &["10.96.0.1"]).await,
        "the example cluster is served"
    );
}
