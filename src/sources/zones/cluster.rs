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

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};

use super::zone::Zone;
use crate::chain::{Answer, Outcome, Question, Validity};
use crate::config::{KubernetesApi, KubernetesConfig, KubernetesFeed, PodMode as ConfigPodMode};
use crate::sources::kubernetes::api::ApiStatus;
use crate::sources::kubernetes::objects;
use crate::sources::kubernetes::records::{self, ClusterSettings, PodMode};
use crate::sources::watch::{self, Reload, ReloadStats, Snapshot};

/// The manifest files read.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// What queries read: one version of the cluster.
struct ClusterState {
    zone: Zone,
    reverse: HashMap<LowerName, Vec<Record>>,
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
}

impl Cluster {
    /// Reads the manifests now; with an API feed, starts empty (SERVFAIL) until
    /// [`Cluster::install`] is first called.
    pub fn load(config: &KubernetesConfig) -> Self {
        let cluster = Self {
            settings: ClusterSettings {
                domain: config.domain.clone(),
                ttl: config.ttl,
                pods: match config.pods {
                    ConfigPodMode::Disabled => PodMode::Disabled,
                    ConfigPodMode::Insecure => PodMode::Insecure,
                    ConfigPodMode::Verified => PodMode::Verified,
                },
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

    /// Where the objects come from when it is the API (`kubernetes.api`).
    pub(crate) fn api(&self) -> Option<&KubernetesApi> {
        self.api.as_ref().map(|(api, _)| api)
    }

    /// Whether the records need Pod objects from the API: only `pods = "verified"` answers from
    /// them. Row 12's `<hostname>.<subdomain>` names come from the EndpointSlice, where the
    /// EndpointSlice controller writes the pod's hostname when its subdomain names a headless
    /// service (records::build only falls back on pods for manifests that lack that slice).
    pub(crate) fn needs_pods(&self) -> bool {
        self.settings.pods == PodMode::Verified
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
        let built = records::build(objects, &self.settings);
        let soa = built
            .records
            .iter()
            .find(|r| r.record_type() == RecordType::SOA && LowerName::new(&r.name) == self.domain)
            .cloned();
        let Some(soa) = soa else {
            tracing::error!(domain = %self.settings.domain, "the cluster records have no SOA; not served");
            self.reload_stats.record(false);
            return false;
        };
        let mut reverse: HashMap<LowerName, Vec<Record>> = HashMap::new();
        for record in built.reverse {
            reverse
                .entry(LowerName::new(&record.name))
                .or_default()
                .push(record);
        }
        let zone = Zone::from_records(
            self.settings.domain.clone(),
            soa,
            built.records,
            &built.empty_names,
        );
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
        self.reload_stats.record(true);
        true
    }

    /// The answer if `question` is the cluster's, `None` if it is not.
    pub fn lookup(&self, question: &Question) -> Option<Outcome> {
        let in_domain = self.domain.zone_of(&question.lower_name);
        let state = self.state.load();
        let Some(state) = state.as_ref() else {
            // Row 17: owned, but not known yet.
            return in_domain.then(|| Outcome::Success(Answer::server_failure()));
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
        let ptrs = state.reverse.get(&question.lower_name)?;
        let answers = if matches!(question.record_type, RecordType::PTR | RecordType::ANY) {
            ptrs.iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.name = question.name.clone();
                    r
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(Outcome::Success(Answer {
            authoritative: true,
            answers,
            validity: Validity::UntilReload,
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

impl Reload for Cluster {
    fn reload_changed(&self) -> bool {
        self.reload()
    }
}
