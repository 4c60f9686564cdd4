//! `kubernetes_objects`: a manifest file (the input as lossy UTF-8: YAML documents, a list, or
//! JSON) through the Kubernetes object reader ([`parse_manifest`]), the record builder
//! ([`records::build`], the Kubernetes DNS specification's rules) and the cluster zone that
//! serves them ([`Cluster::install`], [`Cluster::lookup`]).
//!
//! Checked: no panic, no hang; every problem names the file and a line within it; what
//! `ClusterRecords` promises (records at or under the cluster domain, in canonical order
//! without repeats; reverse records under `in-addr.arpa.` or `ip6.arpa.`; empty names that own
//! no record); and the zone installed from the same objects answers each record's owner and
//! type with records.

use std::collections::HashSet;
use std::sync::OnceLock;

use hickory_proto::rr::{LowerName, Name};

use hearth::chain::{DataVersion, Outcome, Question};
use hearth::sources::kubernetes::config::{
    KubernetesApi, KubernetesConfig, KubernetesFeed, PodMode,
};
use hearth::sources::kubernetes::objects::{parse_manifest, ClusterObjects};
use hearth::sources::kubernetes::records::{self, ClusterSettings};
use hearth::sources::zones::cluster::Cluster;

const FILE: &str = "fuzz.yaml";

fn domain() -> &'static Name {
    static DOMAIN: OnceLock<Name> = OnceLock::new();
    DOMAIN.get_or_init(|| Name::from_ascii("cluster.local.").expect("a name"))
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut objects = ClusterObjects::default();
    // As YAML counts them (YAML 1.1 §5.4; libyaml): `\r` alone, NEL, LS and PS end lines too.
    let lines = 1 + text
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count();
    for problem in parse_manifest(&text, FILE, &mut objects) {
        assert_eq!(
            problem.file, FILE,
            "a problem naming another file: {problem}"
        );
        if let Some(line) = problem.line {
            assert!(
                // Or just past the last line: libyaml's place for an error at the end of the text.
                (1..=lines + 1).contains(&line),
                "a problem at line {line} of {lines}: {problem}"
            );
        }
    }
    if objects.is_empty() {
        return;
    }

    let built = records::build(
        &objects,
        &ClusterSettings {
            domain: domain().clone(),
            ttl: 5,
            pods: records::PodMode::Verified,
            server_address: None,
        },
    );
    let zone_domain = LowerName::new(domain());
    for record in &built.records {
        assert!(
            zone_domain.zone_of(&LowerName::new(&record.name)),
            "a record outside the cluster domain: {record}"
        );
    }
    for pair in built.records.windows(2) {
        assert!(
            pair[0] < pair[1],
            "records out of canonical order or repeated: {} then {}",
            pair[0],
            pair[1]
        );
    }
    let in_addr = LowerName::new(&Name::from_ascii("in-addr.arpa.").expect("a name"));
    let ip6 = LowerName::new(&Name::from_ascii("ip6.arpa.").expect("a name"));
    for record in &built.reverse {
        let owner = LowerName::new(&record.name);
        assert!(
            in_addr.zone_of(&owner) || ip6.zone_of(&owner),
            "a reverse record outside the reverse trees: {record}"
        );
    }
    let owners: HashSet<LowerName> = built
        .records
        .iter()
        .map(|record| LowerName::new(&record.name))
        .collect();
    for name in &built.empty_names {
        assert!(
            !owners.contains(&LowerName::new(name)),
            "{name} is an empty name and owns records"
        );
    }

    let cluster = Cluster::load(
        &KubernetesConfig {
            domain: domain().clone(),
            // Never connected to: the objects are installed by hand, as the watch would.
            feed: KubernetesFeed::Api(KubernetesApi::Url("http://127.0.0.1:9".into())),
            pods: PodMode::Verified,
            ttl: 5,
            autopath: false,
        },
        DataVersion::detached("cluster"),
    );
    if !cluster.install(&objects) {
        return;
    }
    for record in built.records.iter().chain(&built.reverse).take(32) {
        let question = Question::new(record.name.clone(), record.record_type());
        let outcome = cluster.lookup(&question);
        let Some(Outcome::Success(answer)) = &outcome else {
            panic!("{record}: built, and the cluster zone says {outcome:?}");
        };
        assert!(
            !answer.answers.is_empty(),
            "{record}: built, and not answered: {answer:?}"
        );
    }
}
