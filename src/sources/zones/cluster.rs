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
//! - With `kubernetes.api`, the watch of [`crate::sources::kubernetes::api`] installs the zone
//!   whole once, then after each burst of changes rebuilds only the parts they touch
//!   ([`Cluster::install_parts`]); [`Cluster::api_status`] says how the watch is doing.
//!
//! The zone is kept in parts (`zones::zone`'s `PartedZone`): the names at and under each
//! service's name, the pod names of each namespace (`records::Part`), and the apex with the
//! rest. A new version shares every part it did not rebuild with the last one, and the SOA
//! serial, a sum of one hash per record (`records`' `serial.rs`), is made again from the
//! parts' shares. So a change at 100,000 endpoints takes microseconds of building where a
//! whole build took 0.3 s of CPU, and shows in some 20 ms rather than 0.44 to 0.49 s at p99
//! (`benches/cluster_scale.sh`, BENCHMARKS.md). Every version installed bumps the cluster's
//! data version, so replies the fast path keeps from the last one are not served again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::zone::{key, PartBuilder, PartedZone, ReverseNames, Shards, Zone, ZoneBuilder};
use crate::chain::{Answer, DataVersion, Dependencies, Outcome, Question};
use crate::sources::kubernetes::api::{ApiStatus, ClusterSink};
use crate::sources::kubernetes::config::{
    KubernetesApi, KubernetesConfig, KubernetesFeed, PodMode as ConfigPodMode,
};
use crate::sources::kubernetes::objects;
use crate::sources::kubernetes::records::{
    self, ClusterEntries, ClusterSettings, NamespaceEntry, ObjectName, ObjectRefs, Part, PodMode,
    RecordData, RecordSink,
};
use crate::sources::watch::{self, Reload, ReloadStats, Snapshot};
use crate::sources::wire::{name_key, push_wire_name, NameKey};

/// The manifest files read.
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// What queries read: one version of the cluster.
#[derive(Clone)]
struct ClusterState {
    zone: PartedZone,
    reverse: ReverseNames,
}

/// What the installs keep between them, to rebuild some parts without the rest: the last
/// state installed (its maps shared with the one served), and what each part added beside
/// its names.
struct Kept {
    state: ClusterState,
    parts: HashMap<NameKey, PartExtras>,
    /// The sum of the parts' shares of the serial (`records::serial_base`).
    parts_items: u32,
    /// How many names the parts hold, for the log.
    parts_names: usize,
}

/// What a part added beside its names.
struct PartExtras {
    /// Its PTRs: the address and the target in wire form.
    ptrs: Box<[(IpAddr, Box<[u8]>)]>,
    /// Its share of the serial.
    items: u32,
    names: usize,
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
    /// The parts of the last state installed, for the next install of some parts; `None`
    /// until one was installed whole.
    kept: Mutex<Option<Kept>>,
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
            kept: Mutex::new(None),
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
        self.install_refs(&ObjectRefs::from(&ClusterEntries::from(objects)))
    }

    /// [`Cluster::install`] from borrowed objects.
    pub fn install_refs(&self, objects: &ObjectRefs<'_>) -> bool {
        // What the last whole build kept is of no use to this one: freed before it, not after,
        // so that a re-list's peak does not hold both (the state served is not in it).
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let Some(building) = self.build_in_halves(objects) else {
            tracing::error!(domain = %self.settings.domain, "the cluster zone's build failed; not served");
            self.reload_stats.record(false);
            return false;
        };
        if !building.started {
            tracing::error!(domain = %self.settings.domain, "the cluster records have no SOA; not served");
            self.reload_stats.record(false);
            return false;
        }
        let mut kept = Kept {
            state: ClusterState {
                zone: PartedZone {
                    apex: Zone::from_records(
                        self.settings.domain.clone(),
                        records::soa(&building.domain, self.settings.ttl, 0),
                        Vec::new(),
                        &[],
                    ),
                    parts: Shards::default(),
                    route: part_of,
                },
                reverse: ReverseNames::new(self.settings.ttl),
            },
            parts: HashMap::with_capacity(building.parts.len()),
            parts_items: 0,
            parts_names: 0,
        };
        self.publish(&mut kept, building, objects);
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = Some(kept);
        true
    }

    /// The whole zone built from `objects` in two halves at once, on this thread and another:
    /// the namespaces split in two, each half given every namespace (so both make the same
    /// apex) and the objects of its own. Parts never cross namespaces, so the halves' parts
    /// are the whole build's. Why: the first sync waits for this build (0.3 s of CPU at
    /// 100,000 endpoints, `benches/cluster_scale.sh`), and the lists before it leave the
    /// cores idle. None if the other thread failed.
    fn build_in_halves(&self, objects: &ObjectRefs<'_>) -> Option<Building> {
        let mut namespaces: BTreeSet<String> = objects
            .namespaces
            .iter()
            .filter_map(|namespace| records::namespace_named(namespace))
            .collect();
        namespaces.extend(
            objects
                .services
                .iter()
                .filter_map(|entry| records::namespace_of(*entry)),
        );
        namespaces.extend(
            objects
                .endpoint_slices
                .iter()
                .filter_map(|entry| records::namespace_of(*entry)),
        );
        namespaces.extend(
            objects
                .pods
                .iter()
                .filter_map(|entry| records::namespace_of(*entry)),
        );
        let every_namespace: Vec<NamespaceEntry> = namespaces
            .into_iter()
            .map(|name| NamespaceEntry {
                object: ObjectName {
                    namespace: None,
                    name: Some(name.into()),
                },
            })
            .collect();
        // By the namespace as a label would be (lower case), so that one namespace's objects
        // are all in one half.
        let second = |object: &ObjectName| {
            let namespace = object.namespace.as_deref().unwrap_or_default();
            namespace.bytes().fold(0u32, |hash, byte| {
                (hash ^ u32::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0193)
            }) % 2
                == 1
        };
        let mut halves = [ObjectRefs::default(), ObjectRefs::default()];
        for half in &mut halves {
            half.namespaces = every_namespace.iter().collect();
        }
        for service in &objects.services {
            halves[usize::from(second(&service.object))]
                .services
                .push(service);
        }
        for slice in &objects.endpoint_slices {
            halves[usize::from(second(&slice.object))]
                .endpoint_slices
                .push(slice);
        }
        for pod in &objects.pods {
            halves[usize::from(second(&pod.object))].pods.push(pod);
        }
        let [first_half, second_half] = halves;
        let build = |half: &ObjectRefs<'_>| {
            let mut building = Building::new(&self.settings, None);
            records::build_into(half, &self.settings, &mut building);
            building
        };
        let (mut building, other) = std::thread::scope(|scope| {
            let other = std::thread::Builder::new()
                .name("cluster-install".to_owned())
                .spawn_scoped(scope, || build(&second_half));
            let building = build(&first_half);
            (building, other.ok().map(|other| other.join()))
        });
        let other = match other {
            Some(Ok(other)) => other,
            // No second thread to be had: the other half here.
            None => build(&second_half),
            Some(Err(_)) => return None,
        };
        building.started &= other.started;
        building.parts.extend(other.parts);
        Some(building)
    }

    /// Rebuilds `parts` of the last state installed from `objects` (see
    /// [`ClusterSink::install_parts`]), and the apex; the other parts are shared with the last
    /// state. False if no state was installed whole yet.
    pub fn install_parts(&self, parts: &[Part], objects: &ObjectRefs<'_>) -> bool {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let Some(kept) = kept.as_mut() else {
            return false;
        };
        let tops: HashSet<NameKey> = parts
            .iter()
            .filter_map(|part| part_key(&self.settings.domain, part))
            .collect();
        let mut building = Building::new(&self.settings, Some(tops));
        records::build_into(objects, &self.settings, &mut building);
        if !building.started {
            self.reload_stats.record(false);
            return false;
        }
        for top in building.only.iter().flatten() {
            let Some(old) = kept.parts.remove(top) else {
                continue;
            };
            for (address, target) in old.ptrs.iter() {
                kept.state.reverse.remove(*address, target);
            }
            kept.parts_items = kept.parts_items.wrapping_sub(old.items);
            kept.parts_names -= old.names;
            kept.state.zone.parts.remove(top);
        }
        self.publish(kept, building, objects);
        true
    }

    /// Puts the parts built into `kept`, makes the apex, and swaps the result in.
    fn publish(&self, kept: &mut Kept, building: Building, objects: &ObjectRefs<'_>) {
        let Building {
            domain,
            apex_records,
            apex_names,
            apex_items,
            parts,
            ..
        } = building;
        let whole = kept.parts.is_empty();
        if whole {
            // All at once: each reverse name written once, not once for each of its PTRs.
            kept.state.reverse.add_all(
                parts
                    .iter()
                    .flat_map(|(_, _, extras)| extras.ptrs.iter())
                    .map(|(address, target)| (*address, &**target)),
            );
        }
        for (top, table, extras) in parts {
            let table = table.finish();
            if !whole {
                for (address, target) in extras.ptrs.iter() {
                    kept.state.reverse.add(*address, target);
                }
            }
            kept.parts_items = kept.parts_items.wrapping_add(extras.items);
            let names = table.len();
            kept.parts_names += names;
            kept.state.zone.parts.insert(top.clone(), Arc::new(table));
            kept.parts.insert(
                top,
                PartExtras {
                    ptrs: extras.ptrs.into_boxed_slice(),
                    items: extras.items,
                    names,
                },
            );
        }
        let ttl = self.settings.ttl;
        let serial = records::serial_base(&domain, ttl)
            .wrapping_add(apex_items)
            .wrapping_add(kept.parts_items);
        let soa = records::soa(&domain, ttl, serial);
        let mut apex = ZoneBuilder::new(self.settings.domain.clone(), soa, apex_records.len());
        for (owner, ttl, data) in apex_records {
            apex.add(&owner, ttl, data);
        }
        for name in &apex_names {
            apex.add_name(name);
        }
        kept.state.zone.apex = apex.finish();

        // A live cluster changes every few seconds: after its first load, the API feed's
        // installs are logged at debug (`reload_stats` counts them).
        let routine = self.api.is_some() && self.is_loaded();
        let names = kept.state.zone.apex.len() + kept.parts_names;
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
        self.state.store(Some(Arc::new(kept.state.clone())));
        self.version.bump();
        self.reload_stats.record(true);
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
        // `Name::zone_of` compares case-insensitively: no lower-cased copy of the name needed here.
        let in_domain = Name::zone_of(&self.domain, &question.name);
        let state = self.state.load();
        let Some(state) = state.as_ref() else {
            // Row 17: owned, but not known yet (SERVFAIL, with Extended DNS Error 14).
            return in_domain.then(Outcome::not_ready);
        };
        if in_domain {
            // As CoreDNS does, an insecure pod name answers only in a namespace that exists
            // (`<ns>.pod.<domain>` is a name of the zone).
            let address = records::pod_name_address(&question.name, &self.settings)
                .filter(|_| state.zone.has_name(&question.lower_name().base_name()));
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
        let ptrs = state.reverse.get(question.lower_name(), &question.name)?;
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
    fn pod_answer(&self, zone: &PartedZone, question: &Question, address: IpAddr) -> Answer {
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

/// Where in a name's key (`sources::wire::NameKey`) under the cluster domain, whose key is
/// `origin_len` bytes, the top of its part begins (`records::Part`): `<service>.<ns>.svc` for
/// names of three labels or more under `svc`, `<ns>.pod` for those under `pod`; None for the
/// apex's names (the apex, `ns.dns`, `dns-version`, `svc`, `<ns>.svc`, `pod`, `<ns>.pod`).
fn part_of(key: &[u8], origin_len: usize) -> Option<usize> {
    let relative = key.len().checked_sub(origin_len)?;
    // The starts of the last three labels above the domain.
    let mut starts = [usize::MAX; 3];
    let mut at = 0;
    let mut count = 0;
    while at < relative {
        starts = [at, starts[0], starts[1]];
        count += 1;
        at += 1 + usize::from(key[at]);
    }
    if at != relative || count < 3 {
        return None;
    }
    let [kind, namespace, service] = starts;
    match key.get(kind..relative)? {
        b"\x03svc" => Some(service),
        b"\x03pod" => Some(namespace),
        _ => None,
    }
}

/// The key of the top name of `part` in the cluster `domain` (see [`part_of`]).
fn part_key(domain: &Name, part: &Part) -> Option<NameKey> {
    let top = Name::from_labels(part.labels().iter().map(|label| label.as_bytes()))
        .and_then(|name| name.append_domain(domain))
        .ok()?;
    Some(key(&top).into_boxed_slice())
}

/// Where a record being built goes.
enum Where<'a> {
    /// The apex zone's: the name is in no part.
    Apex,
    /// Nowhere: its part is not one being rebuilt.
    LeftOut,
    /// Into this part.
    Part(&'a mut (NameKey, PartBuilder, ExtrasBuilding)),
}

/// What a part being built adds beside its names.
#[derive(Default)]
struct ExtrasBuilding {
    ptrs: Vec<(IpAddr, Box<[u8]>)>,
    items: u32,
}

/// The cluster zone as [`records::build_into`] hands it over, put in parts as it comes: made
/// straight into the zone's own form, without a hickory `Record` for each
/// (`benches/cluster_scale.sh`: at 100,000 endpoints, that was some 100 ms of each rebuild).
struct Building {
    /// The domain in lower case, fully qualified, as the records have it.
    domain: Name,
    origin_len: usize,
    /// Whether the build began (it has an SOA).
    started: bool,
    /// Only these parts are kept, by their top's key (see [`part_of`]); all with None.
    only: Option<HashSet<NameKey>>,
    /// The apex's records but its SOA, and its empty names.
    apex_records: Vec<(Name, u32, RData)>,
    apex_names: Vec<Name>,
    /// The apex's share of the serial.
    apex_items: u32,
    /// The parts built, and where each is in `parts` by its top's key.
    parts: Vec<(NameKey, PartBuilder, ExtrasBuilding)>,
    part_at: HashMap<NameKey, usize>,
    /// The last part asked for: records come in canonical order, so a part's come together
    /// and the map is asked once a part rather than once a record.
    last: Option<usize>,
    key: Vec<u8>,
}

impl Building {
    fn new(settings: &ClusterSettings, only: Option<HashSet<NameKey>>) -> Self {
        let mut domain = settings.domain.to_lowercase();
        domain.set_fqdn(true);
        let origin_len = key(&domain).len();
        Self {
            domain,
            origin_len,
            started: false,
            only,
            apex_records: Vec::new(),
            apex_names: Vec::new(),
            apex_items: 0,
            parts: Vec::new(),
            part_at: HashMap::new(),
            last: None,
            key: Vec::new(),
        }
    }

    /// Where the records of `name` go: the part being built that it falls in, if that part is
    /// kept.
    fn part(&mut self, name: &Name) -> Where<'_> {
        name_key(name, &mut self.key);
        let Some(top) = part_of(&self.key, self.origin_len) else {
            return Where::Apex;
        };
        let top = &self.key[top..];
        if let Some(last) = self.last.filter(|last| *self.parts[*last].0 == *top) {
            return Where::Part(&mut self.parts[last]);
        }
        if self.only.as_ref().is_some_and(|only| !only.contains(top)) {
            return Where::LeftOut;
        }
        let at = match self.part_at.get(top) {
            Some(at) => *at,
            None => {
                let top: NameKey = top.into();
                let builder = PartBuilder::new(top.clone());
                self.parts
                    .push((top.clone(), builder, ExtrasBuilding::default()));
                self.part_at.insert(top, self.parts.len() - 1);
                self.parts.len() - 1
            }
        };
        self.last = Some(at);
        Where::Part(&mut self.parts[at])
    }
}

impl RecordSink for Building {
    fn start(&mut self, _: &Record, records: usize, _: usize) {
        self.started = true;
        if self.only.is_none() {
            self.parts.reserve(records / 16);
        }
    }

    fn record(&mut self, owner: &Name, ttl: u32, data: RecordData<'_>, item: u32) {
        match self.part(owner) {
            Where::Apex => {
                let data = data.into_rdata();
                // The SOA is made anew when the parts are put together (its serial).
                if data.record_type() != RecordType::SOA {
                    self.apex_records.push((owner.clone(), ttl, data));
                    self.apex_items = self.apex_items.wrapping_add(item);
                }
            }
            Where::LeftOut => {}
            Where::Part((_, part, extras)) => {
                extras.items = extras.items.wrapping_add(item);
                match data {
                    RecordData::Address(address) => part.add_address(owner, ttl, address),
                    RecordData::Srv {
                        priority,
                        weight,
                        port,
                        target,
                    } => part.add_srv(owner, ttl, [priority, weight, port], target),
                    RecordData::Other(data) => part.add(owner, ttl, data),
                }
            }
        }
    }

    fn reverse(&mut self, address: IpAddr, _: u32, target: &Name, item: u32) {
        match self.part(target) {
            Where::Part((_, _, extras)) => {
                let mut wire = Vec::with_capacity(target.len() + 2);
                push_wire_name(&mut wire, target);
                extras.ptrs.push((address, wire.into_boxed_slice()));
                extras.items = extras.items.wrapping_add(item);
            }
            Where::LeftOut => {}
            // The rules give PTRs only to the names of services and their endpoints.
            Where::Apex => tracing::debug!(%address, %target, "PTR to a name in no part; left out"),
        }
    }

    fn empty_name(&mut self, name: &Name, item: u32) {
        match self.part(name) {
            Where::Apex => {
                self.apex_names.push(name.clone());
                self.apex_items = self.apex_items.wrapping_add(item);
            }
            Where::LeftOut => {}
            Where::Part((_, part, extras)) => {
                extras.items = extras.items.wrapping_add(item);
                let mut key = Vec::new();
                name_key(name, &mut key);
                part.add_name(&key);
            }
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

    fn install_parts(&self, parts: &[Part], objects: &ObjectRefs<'_>) -> bool {
        Cluster::install_parts(self, parts, objects)
    }
}

impl Reload for Cluster {
    fn reload_changed(&self) -> bool {
        self.reload()
    }
}

#[cfg(test)]
mod tests;
