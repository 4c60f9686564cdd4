//! The Kubernetes cluster zone (`cluster.local.`), built from Service, EndpointSlice, Pod and
//! Namespace objects ([`crate::sources::kubernetes`]) and answered with the same authoritative
//! code as zone files ([`Zone`]).
//!
//! - The cluster domain is owned from the start: until its objects have loaded, names in it
//!   answer SERVFAIL (checklist row 17), never NXDOMAIN and never a forwarded answer.
//! - Reverse names of service and endpoint addresses are answered with PTR; other reverse
//!   names are not this zone's and go on down the chain.
//! - `pods = "insecure"` answers `a-b-c-d.<ns>.pod.<domain>` for any address, as CoreDNS does;
//!   that name is computed, not stored.
//! - The manifests directory is polled like zone files; a reload builds a whole new zone and
//!   swaps it in. A manifest that no longer parses is logged as `file:line: reason` and the
//!   rest loads.
//! - With `kubernetes.api`, the watch of [`crate::sources::kubernetes::api`] installs a new
//!   zone after each burst of changes; [`Cluster::api_status`] says how the watch is doing.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};

use super::zone::{RecordsByName, RecordsByNameBuilder, Zone, ZoneBuilder};
use crate::chain::{Answer, DataVersion, Dependencies, Outcome, Question};
use crate::sources::kubernetes::api::{ApiStatus, ClusterSink};
use crate::sources::kubernetes::config::{
    KubernetesApi, KubernetesConfig, KubernetesFeed, PodMode as ConfigPodMode,
};
use crate::sources::kubernetes::objects;
use crate::sources::kubernetes::records::{
    self, ClusterSettings, ObjectRefs, PodMode, RecordData, RecordSink,
};
use crate::sources::watch::{self, Reload, ReloadStats, Snapshot};

/// The manifest files read.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// What queries read: one version of the cluster.
struct ClusterState {
    zone: Zone,
    reverse: RecordsByName,
}

/// The cluster zone.
pub struct Cluster {
    settings: ClusterSettings,
    domain: LowerName,
    /// The manifests directory; `None` when the objects come from the API (`kubernetes.api`),
    /// whose watch calls [`Cluster::install`] instead.
    manifests: Option<PathBuf>,
    /// `None` until the objects have loaded once.
    state: ArcSwapOption<ClusterState>,
    snapshot: Mutex<Option<Snapshot>>,
    /// How the loads of objects went (manifests read, or API states installed).
    reload_stats: ReloadStats,
    /// With an API feed: how to reach the API, and how its watch is doing (`None` with
    /// manifests).
    api: Option<(KubernetesApi, ApiStatus)>,
    /// Bumped after every new state is swapped in, by either feed: answers read from the
    /// cluster stop being reused, and nothing else's do.
    version: DataVersion,
}

impl Cluster {
    /// Reads the manifests now; with an API feed, starts empty (SERVFAIL) until
    /// [`Cluster::install`] is first called.
    pub fn load(config: &KubernetesConfig, version: DataVersion) -> Self {
        let cluster = Self {
            settings: ClusterSettings {
                domain: config.domain.clone(),
                ttl: config.ttl,
                pods: match config.pods {
                    ConfigPodMode::Disabled => PodMode::Disabled,
                    ConfigPodMode::Insecure => PodMode::Insecure,
                    ConfigPodMode::Verified => PodMode::Verified,
                },
                server_address: ClusterSettings::server_address_from_environment(),
            },
            domain: LowerName::new(&config.domain),
            manifests: match &config.feed {
                KubernetesFeed::Manifests(directory) => Some(directory.clone()),
                KubernetesFeed::Api(_) => None,
            },
            state: ArcSwapOption::empty(),
            snapshot: Mutex::new(None),
            reload_stats: ReloadStats::default(),
            api: match &config.feed {
                KubernetesFeed::Manifests(_) => None,
                KubernetesFeed::Api(api) => Some((api.clone(), ApiStatus::default())),
            },
            version,
        };
        cluster.reload();
        cluster
    }

    /// The cluster domain.
    pub fn domain(&self) -> &hickory_proto::rr::Name {
        &self.settings.domain
    }

    /// Re-reads the manifests, changed or not (SIGHUP); nothing to do for an API feed, whose
    /// watch is always current.
    pub fn reread(&self) -> bool {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.reload()
    }

    /// How the loads of objects went, for the metrics.
    pub fn reload_stats(&self) -> &ReloadStats {
        &self.reload_stats
    }

    /// Whether the objects have loaded (for readiness). With an API feed: every watched kind
    /// has been listed once and the zone built from them is served.
    pub fn is_loaded(&self) -> bool {
        self.state.load().is_some()
    }

    /// How the watch of the Kubernetes API is doing, for metrics; `None` with manifests.
    pub fn api_status(&self) -> Option<&ApiStatus> {
        self.api.as_ref().map(|(_, status)| status)
    }

    fn reload(&self) -> bool {
        let Some(manifests) = &self.manifests else {
            return false;
        };
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        let files = watch::files_in(manifests, MANIFEST_EXTENSIONS).unwrap_or_default();
        let now = watch::snapshot(files.into_iter().chain([manifests.clone()]));
        if snapshot.as_ref() == Some(&now) {
            return false;
        }
        *snapshot = Some(now);
        let (objects, problems) = match objects::read_dir(manifests) {
            Ok(read) => read,
            Err(problem) => {
                tracing::warn!("{problem}; the cluster zone keeps its last state");
                self.reload_stats.record(false);
                return false;
            }
        };
        for problem in &problems {
            tracing::warn!("{problem}");
        }
        self.install(&objects)
    }

    /// Builds the zone from `objects` and swaps it in whole; queries see the old version or
    /// the new, never a mix. Both feeds end here: the manifests poll and the API watch.
    /// Returns false (and keeps the last state) if the objects give no zone.
    pub fn install(&self, objects: &objects::ClusterObjects) -> bool {
        self.install_refs(&ObjectRefs::from(objects))
    }

    /// [`Cluster::install`] from borrowed objects.
    pub fn install_refs(&self, objects: &ObjectRefs<'_>) -> bool {
        let mut building = Building {
            domain: self.settings.domain.clone(),
            zone: None,
            reverse: None,
        };
        records::build_into(objects, &self.settings, &mut building);
        let (Some(zone), Some(reverse)) = (building.zone, building.reverse) else {
            tracing::error!(domain = %self.settings.domain, "the cluster records have no SOA; not served");
            self.reload_stats.record(false);
            return false;
        };
        let (zone, reverse) = (zone.finish(), reverse.finish());
        // A live cluster changes every few seconds: after its first load, the API feed's
        // installs are logged at debug (`reload_stats` counts them).
        let routine = self.api.is_some() && self.is_loaded();
        let names = zone.len();
        let (services, endpoint_slices, pods) = (
            objects.services.len(),
            objects.endpoint_slices.len(),
            objects.pods.len(),
        );
        let domain = &self.settings.domain;
        if routine {
            tracing::debug!(%domain, services, endpoint_slices, pods, names, "cluster zone loaded");
        } else {
            tracing::info!(%domain, services, endpoint_slices, pods, names, "cluster zone loaded");
        }
        self.state
            .store(Some(Arc::new(ClusterState { zone, reverse })));
        self.version.bump();
        self.reload_stats.record(true);
        true
    }

    /// What an answer read from the cluster depends on (a reverse name's NOTFOUND included:
    /// whether the cluster holds an address is cluster data).
    pub fn dependencies(&self) -> Dependencies {
        self.version.dependencies()
    }

    /// The answer if `question` is the cluster's, `None` if it is not.
    pub fn lookup(&self, question: &Question) -> Option<Outcome> {
        self.lookup_unstamped(question)
            .map(|outcome| outcome.read_from(self.dependencies()))
    }

    fn lookup_unstamped(&self, question: &Question) -> Option<Outcome> {
        let in_domain = self.domain.zone_of(&question.lower_name);
        let state = self.state.load();
        let Some(state) = state.as_ref() else {
            // Row 17: owned, but not known yet (SERVFAIL, with Extended DNS Error 14).
            return in_domain.then(Outcome::not_ready);
        };
        if in_domain {
            // As CoreDNS does, an insecure pod name answers only in a namespace that exists
            // (`<ns>.pod.<domain>` is a name of the zone).
            let address = records::pod_name_address(&question.name, &self.settings)
                .filter(|_| state.zone.has_name(&question.lower_name.base_name()));
            if let Some(address) = address {
                return Some(Outcome::Success(self.pod_answer(
                    &state.zone,
                    question,
                    address,
                )));
            }
            return Some(Outcome::Success(
                state.zone.lookup(&question.name, question.record_type),
            ));
        }
        let ptrs = state.reverse.get(&question.lower_name, &question.name)?;
        let answers = if matches!(question.record_type, RecordType::PTR | RecordType::ANY) {
            ptrs
        } else {
            Vec::new()
        };
        Some(Outcome::Success(Answer {
            authoritative: true,
            answers,
            ..Answer::default()
        }))
    }

    /// `pods insecure`: the address in the name, for its own family; NODATA for other types.
    fn pod_answer(&self, zone: &Zone, question: &Question, address: IpAddr) -> Answer {
        let data = match (question.record_type, address) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        };
        match data {
            Some(data) => Answer {
                authoritative: true,
                answers: vec![Record::from_rdata(
                    question.name.clone(),
                    self.settings.ttl,
                    data,
                )],
                ..Answer::default()
            },
            None => Answer {
                response_code: ResponseCode::NoError,
                authoritative: true,
                authorities: vec![zone.negative_soa()],
                ..Answer::default()
            },
        }
    }
}

/// The cluster zone as [`records::build_into`] hands it over: made straight into the zone's own
/// form, without a hickory `Record` for each (`benches/cluster_scale.sh`: at 100,000 endpoints,
/// that was some 100 ms of each rebuild).
struct Building {
    domain: hickory_proto::rr::Name,
    /// Both begun at the SOA.
    zone: Option<ZoneBuilder>,
    reverse: Option<RecordsByNameBuilder>,
}

impl RecordSink for Building {
    fn start(&mut self, soa: &Record, records: usize, reverse: usize) {
        self.zone = Some(ZoneBuilder::new(self.domain.clone(), soa.clone(), records));
        self.reverse = Some(RecordsByName::builder(reverse));
    }

    fn record(&mut self, owner: &hickory_proto::rr::Name, ttl: u32, data: RecordData<'_>) {
        let Some(zone) = &mut self.zone else {
            return;
        };
        match data {
            RecordData::Address(address) => zone.add_address(owner, ttl, address),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => zone.add_srv(owner, ttl, [priority, weight, port], target),
            RecordData::Other(data) => zone.add(owner, ttl, data),
        }
    }

    fn reverse(&mut self, address: IpAddr, ttl: u32, target: &hickory_proto::rr::Name) {
        if let Some(reverse) = &mut self.reverse {
            reverse.add_ptr(address, ttl, target);
        }
    }

    fn empty_name(&mut self, name: &hickory_proto::rr::Name) {
        if let Some(zone) = &mut self.zone {
            zone.add_name(name);
        }
    }
}

/// The API watch feeds the cluster through this: it knows the cluster only as a
/// [`ClusterSink`], so the imports run one way, from here to the Kubernetes source.
impl ClusterSink for Cluster {
    fn domain(&self) -> &hickory_proto::rr::Name {
        &self.settings.domain
    }

    fn api(&self) -> Option<(&KubernetesApi, &ApiStatus)> {
        self.api.as_ref().map(|(api, status)| (api, status))
    }

    /// Only `pods = "verified"` answers from Pod objects. Row 12's `<hostname>.<subdomain>`
    /// names come from the EndpointSlice, where the EndpointSlice controller writes the pod's
    /// hostname when its subdomain names a headless service (records::build only falls back on
    /// pods for manifests that lack that slice).
    fn needs_pods(&self) -> bool {
        self.settings.pods == PodMode::Verified
    }

    fn install_objects(&self, objects: &ObjectRefs<'_>) -> bool {
        self.install_refs(objects)
    }
}

impl Reload for Cluster {
    fn reload_changed(&self) -> bool {
        self.reload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kubernetes::records::varied_cluster;
    use hickory_proto::rr::Name;

    /// The zone made in place from what `records::build_into` hands over answers as the one
    /// made from the records of `records::build`, whatever the question.
    #[test]
    fn the_zone_built_in_place_answers_as_one_from_records() {
        let objects = varied_cluster(60);
        for pods in [PodMode::Disabled, PodMode::Insecure, PodMode::Verified] {
            let settings = ClusterSettings {
                domain: Name::from_ascii("Cluster.Local.").unwrap(),
                ttl: 5,
                pods,
                server_address: None,
            };
            let built = records::build(&objects, &settings);
            let soa = built.soa().unwrap().clone();
            let expected = Zone::from_records(
                settings.domain.clone(),
                soa,
                built.records.clone(),
                &built.empty_names,
            );
            let mut building = Building {
                domain: settings.domain.clone(),
                zone: None,
                reverse: None,
            };
            records::build_into(&ObjectRefs::from(&objects), &settings, &mut building);
            let zone = building.zone.unwrap().finish();
            let reverse = building.reverse.unwrap().finish();
            assert_eq!(zone.len(), expected.len());

            let mut names: Vec<Name> = built.empty_names.clone();
            for record in &built.records {
                names.push(record.name.clone());
                names.push(record.name.base_name());
                for label in ["nope", "*", "10-0-0-1"] {
                    names.extend(record.name.prepend_label(label).ok());
                }
            }
            names.push(Name::from_ascii("SVC-1.NS-1.SVC.CLUSTER.LOCAL.").unwrap());
            for name in &names {
                for record_type in [
                    RecordType::A,
                    RecordType::AAAA,
                    RecordType::SRV,
                    RecordType::CNAME,
                    RecordType::TXT,
                    RecordType::NS,
                    RecordType::SOA,
                    RecordType::ANY,
                    RecordType::MX,
                ] {
                    assert_eq!(
                        format!("{:?}", zone.lookup(name, record_type)),
                        format!("{:?}", expected.lookup(name, record_type)),
                        "{name} {record_type} ({pods:?})"
                    );
                }
            }
            for record in &built.reverse {
                let asked = LowerName::new(&record.name);
                let answers = reverse.get(&asked, &record.name).unwrap();
                let expected: Vec<&Record> = built
                    .reverse
                    .iter()
                    .filter(|other| other.name == record.name)
                    .collect();
                assert_eq!(format!("{answers:?}"), format!("{expected:?}"));
            }
            let elsewhere = Name::from_ascii("9.9.9.9.in-addr.arpa.").unwrap();
            assert!(reverse
                .get(&LowerName::new(&elsewhere), &elsewhere)
                .is_none());
        }
    }
}
