//! Answer shaping after the chain: round-robin of address RRsets (`resolve.rotate`, CoreDNS's
//! `loadbalance`) and the AAAA filter (`resolve.filter_aaaa`).
//!
//! Both act on whatever source answered (hosts files, zones, the cluster zone, upstreams), as
//! CoreDNS's plugins act on the whole server block, and both run inside [`super::Chain`], so
//! that they change with the chain on a reload.
//!
//! The UDP fast path reuses encoded replies; it rotates the same RRsets in the stored bytes
//! itself (`server::fast`), so a hot name is rotated on every answer too.

use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::svcb::SvcParamKey;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::validity::{Dependencies, Validity};
use super::{Answer, Question};

/// `[resolve]`'s `rotate` and `filter_aaaa`: how answers are shaped after a source gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerShaping {
    /// Round-robin the records of A and AAAA RRsets between successive answers, as CoreDNS's
    /// `loadbalance`: clients that take the first address then spread over all of them.
    pub rotate: bool,
    /// AAAA questions for names at or under these domains are answered NODATA, and
    /// `ipv6hint` is stripped from HTTPS and SVCB answers (the root filters every name): on
    /// an IPv4-only network a AAAA answer is useless, and its lookups (each a search-path
    /// walk of its own) are about half the queries and most of the SERVFAILs.
    pub filter_aaaa: Vec<Name>,
    /// `kubernetes.autopath`: the cluster domain and the host's search domains, set from the
    /// source that serves the cluster zone.
    pub autopath: Option<Autopath>,
}

/// A pod's search path, walked here so the pod's first query gets the answer (CoreDNS's
/// `autopath @kubernetes`).
///
/// A pod with `dnsPolicy: ClusterFirst` has `search <ns>.svc.<domain> svc.<domain> <domain>`
/// and the node's own search domains, with `ndots:5`, so `api.example.com` is asked as
/// `api.example.com.<ns>.svc.<domain>` first: four NXDOMAINs before the name itself. CoreDNS
/// maps the client's IP to its pod to learn `<ns>`, which needs every pod watched (`pods
/// verified`, its memory cost) and fails behind a node-local cache, where every client is
/// the cache. The namespace is in the question already: a name `X.<ns>.svc.<domain>` that is
/// NXDOMAIN is the first step of exactly that walk for `X`, whoever asks, and the rest of the
/// walk follows from the name alone. What is asked is what glibc would ask next, in its
/// order, so the answer is the one the client's own walk would end with.
///
/// The one difference, which CoreDNS's `autopath` shares: a client that asks for such a name
/// literally (not by search) gets `X`'s answer behind a CNAME instead of NXDOMAIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autopath {
    /// The cluster domain (`cluster.local.`).
    pub domain: Name,
    /// The node's search domains after the cluster's (from Hearth's own resolv.conf, which
    /// in a pod with `dnsPolicy: Default` is the node's), as kubelet appends them to a pod's.
    pub search: Vec<Name>,
}

impl Autopath {
    /// For `X.<ns>.svc.<domain>`, the rest of the walk: `X.svc.<domain>`, `X.<domain>`,
    /// `X.<search>` for each node search domain, and `X.` itself. `None` for any other name.
    pub fn candidates(&self, name: &Name) -> Option<Vec<Name>> {
        let domain_labels = usize::from(self.domain.num_labels());
        let labels = usize::from(name.num_labels());
        // X (at least one label), the namespace, `svc`, the domain.
        if labels < domain_labels + 3 || !self.domain.zone_of(name) {
            return None;
        }
        let all: Vec<&[u8]> = name.iter().collect();
        let head = labels - domain_labels - 2;
        if !all[head + 1].eq_ignore_ascii_case(b"svc") {
            return None;
        }
        let mut base = Name::from_labels(all[..head].iter().copied()).ok()?;
        base.set_fqdn(true);
        let svc = Name::from_labels([&b"svc"[..]]).ok()?;
        let mut candidates = vec![
            base.clone()
                .append_domain(&svc.append_domain(&self.domain).ok()?)
                .ok()?,
            base.clone().append_domain(&self.domain).ok()?,
        ];
        for domain in &self.search {
            if let Ok(candidate) = base.clone().append_domain(domain) {
                candidates.push(candidate);
            }
        }
        candidates.push(base);
        Some(candidates)
    }
}

/// [`AnswerShaping`] at work: the settings and the rotation's counter.
#[derive(Debug, Default)]
pub(super) struct Shaper {
    shaping: AnswerShaping,
    /// Advanced once per rotated answer. Shared by all questions: CoreDNS's `loadbalance`
    /// shuffles at random; a counter gives each RRset every order in turn, which spreads
    /// clients at least as evenly and is cheaper.
    turn: AtomicUsize,
}

impl Shaper {
    pub(super) fn new(shaping: AnswerShaping) -> Self {
        Self {
            shaping,
            turn: AtomicUsize::new(0),
        }
    }

    /// The rest of a search-path walk for `name`, when autopath is on and `name` is the first
    /// step of one.
    pub(super) fn search_walk(&self, name: &Name) -> Option<Vec<Name>> {
        self.shaping.autopath.as_ref()?.candidates(name)
    }

    /// Whether `name` is at or under a domain of `filter_aaaa`.
    fn filtered(&self, name: &Name) -> bool {
        self.shaping
            .filter_aaaa
            .iter()
            .any(|domain| domain.zone_of(name))
    }

    /// The answer to a question the AAAA filter takes: NODATA, with no SOA (there is no zone
    /// to take one from, as CoreDNS's `template ... AAAA { rcode NOERROR }` answers), valid
    /// until the configuration changes.
    pub(super) fn filter(&self, question: &Question) -> Option<Answer> {
        (question.record_type == RecordType::AAAA && self.filtered(&question.name)).then(|| {
            Answer {
                response_code: ResponseCode::NoError,
                validity: Validity::UntilChanged(Dependencies::NONE),
                ..Answer::default()
            }
        })
    }

    /// Shapes a final answer in place: strips `ipv6hint` where the filter covers the owner,
    /// and rotates each run of A or AAAA records of one owner.
    pub(super) fn shape(&self, answer: &mut Answer) {
        if !self.shaping.filter_aaaa.is_empty() {
            for record in answer
                .answers
                .iter_mut()
                .chain(answer.additionals.iter_mut())
            {
                if self.filtered(&record.name) {
                    strip_ipv6_hint(record);
                }
            }
        }
        if self.shaping.rotate {
            let mut turn = None;
            for run in address_runs(&answer.answers) {
                let turn = *turn.get_or_insert_with(|| self.turn.fetch_add(1, Ordering::Relaxed));
                let records = &mut answer.answers[run];
                let count = records.len();
                records.rotate_left(turn % count);
            }
        }
    }
}

/// Removes `ipv6hint` from an HTTPS or SVCB record (RFC 9460 §7.3: a hint the client may
/// use instead of an AAAA lookup).
fn strip_ipv6_hint(record: &mut Record) {
    let svcb = match &mut record.data {
        RData::SVCB(svcb) => svcb,
        RData::HTTPS(https) => &mut https.0,
        _ => return,
    };
    svcb.svc_params
        .retain(|(key, _)| *key != SvcParamKey::Ipv6Hint);
}

/// The index ranges of the runs of two or more consecutive A (or AAAA) records with one owner.
fn address_runs(records: &[Record]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let first = &records[start];
        let mut end = start + 1;
        if matches!(first.record_type(), RecordType::A | RecordType::AAAA) {
            while end < records.len()
                && records[end].record_type() == first.record_type()
                && records[end].name == first.name
            {
                end += 1;
            }
            if end - start > 1 {
                runs.push(start..end);
            }
        }
        start = end;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::rr::rdata::svcb::{IpHint, SvcParamValue, SVCB};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, HTTPS};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn a(owner: &str, last: u8) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::new(192, 0, 2, last))))
    }

    fn lasts(answer: &Answer) -> Vec<String> {
        answer.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn rotation_turns_each_address_run_and_leaves_the_rest() {
        let shaper = Shaper::new(AnswerShaping {
            rotate: true,
            ..AnswerShaping::default()
        });
        let cname = Record::from_rdata(
            name("www.example."),
            60,
            RData::CNAME(CNAME(name("web.example."))),
        );
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut answer = Answer {
                answers: vec![
                    cname.clone(),
                    a("web.example.", 1),
                    a("web.example.", 2),
                    a("web.example.", 3),
                ],
                ..Answer::default()
            };
            shaper.shape(&mut answer);
            assert_eq!(answer.answers[0], cname, "the CNAME stays first");
            seen.push(lasts(&answer)[1..].join(" "));
        }
        assert_eq!(
            seen,
            [
                "192.0.2.1 192.0.2.2 192.0.2.3",
                "192.0.2.2 192.0.2.3 192.0.2.1",
                "192.0.2.3 192.0.2.1 192.0.2.2"
            ]
        );
    }

    #[test]
    fn without_rotation_nothing_moves() {
        let shaper = Shaper::new(AnswerShaping::default());
        let mut answer = Answer {
            answers: vec![a("web.example.", 1), a("web.example.", 2)],
            ..Answer::default()
        };
        shaper.shape(&mut answer);
        shaper.shape(&mut answer);
        assert_eq!(lasts(&answer), ["192.0.2.1", "192.0.2.2"]);
    }

    #[test]
    fn the_aaaa_filter_takes_aaaa_under_its_domains_only() {
        let shaper = Shaper::new(AnswerShaping {
            filter_aaaa: vec![name("corp.example.")],
            ..AnswerShaping::default()
        });
        let question = |text: &str, record_type| Question::new(name(text), record_type);
        let nodata = shaper
            .filter(&question("db.corp.example.", RecordType::AAAA))
            .expect("filtered");
        assert_eq!(nodata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty() && nodata.authorities.is_empty());
        assert!(shaper
            .filter(&question("corp.example.", RecordType::AAAA))
            .is_some());
        assert!(shaper
            .filter(&question("db.corp.example.", RecordType::A))
            .is_none());
        assert!(shaper
            .filter(&question("notcorp.example.", RecordType::AAAA))
            .is_none());
        let everything = Shaper::new(AnswerShaping {
            filter_aaaa: vec![Name::root()],
            ..AnswerShaping::default()
        });
        assert!(everything
            .filter(&question("api.github.com.", RecordType::AAAA))
            .is_some());
    }

    #[test]
    fn the_aaaa_filter_strips_ipv6_hints() {
        let shaper = Shaper::new(AnswerShaping {
            filter_aaaa: vec![Name::root()],
            ..AnswerShaping::default()
        });
        let https = Record::from_rdata(
            name("svc.example."),
            60,
            RData::HTTPS(HTTPS(SVCB::new(
                1,
                Name::root(),
                vec![
                    (
                        SvcParamKey::Ipv4Hint,
                        SvcParamValue::Ipv4Hint(IpHint(vec![A(Ipv4Addr::new(192, 0, 2, 1))])),
                    ),
                    (
                        SvcParamKey::Ipv6Hint,
                        SvcParamValue::Ipv6Hint(IpHint(vec![AAAA(Ipv6Addr::LOCALHOST)])),
                    ),
                ],
            ))),
        );
        let mut answer = Answer {
            answers: vec![https],
            ..Answer::default()
        };
        shaper.shape(&mut answer);
        let text = answer.answers[0].data.to_string();
        assert!(text.contains("ipv4hint"), "{text}");
        assert!(!text.contains("ipv6hint"), "{text}");
    }

    #[test]
    fn autopath_walks_what_glibc_would_ask_next() {
        let autopath = Autopath {
            domain: name("cluster.local."),
            search: vec![name("ec2.internal.")],
        };
        let walk = |text: &str| {
            autopath
                .candidates(&name(text))
                .map(|names| names.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            walk("api.example.com.shop.svc.cluster.local.").unwrap(),
            [
                "api.example.com.svc.cluster.local.",
                "api.example.com.cluster.local.",
                "api.example.com.ec2.internal.",
                "api.example.com.",
            ]
        );
        assert_eq!(
            walk("Redis.Shop.SVC.Cluster.Local.").unwrap(),
            [
                "Redis.svc.cluster.local.",
                "Redis.cluster.local.",
                "Redis.ec2.internal.",
                "Redis."
            ]
        );
        // Not the first step of a pod's walk.
        assert_eq!(walk("shop.svc.cluster.local."), None);
        assert_eq!(walk("api.example.com.cluster.local."), None);
        assert_eq!(walk("a.b.pod.cluster.local."), None);
        assert_eq!(walk("api.example.com."), None);
        assert_eq!(walk("x.shop.svc.cluster.example."), None);
    }
}
