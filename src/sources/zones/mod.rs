//! `zones`: local authoritative zones, from RFC 1035 master files and (when configured) the
//! Kubernetes cluster zone.
//!
//! - Every `*.zone` file in `zones.directory` is one zone ([`master`] reads it, [`zone`] checks
//!   and answers). Two files claiming one origin: the first by file name is served, the other
//!   refused with a message.
//! - Inside a zone it holds, the zone's answer is final, NXDOMAIN included (SUCCESS in the
//!   chain's terms), so internal names never leak to an upstream; a zone listed in
//!   `zones.fallthrough` turns its NXDOMAIN into NOTFOUND. Names outside every zone are
//!   NOTFOUND.
//! - Files are polled ([`crate::sources::watch`]); on a change every file is read again and the
//!   set of zones swapped in whole. A file that no longer reads or checks keeps its previous
//!   zone serving, with the problem logged as `file:line: reason`.

pub mod cluster;
pub mod master;
mod setup;
pub mod zone;

pub use setup::{ZonesConfig, ZonesSetup};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name};

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::chain::{DataVersion, Dependencies, Failure, Outcome, Question, Source};
use crate::sources::kubernetes::config::KubernetesConfig;
use crate::sources::setup::Background;
use crate::sources::watch::{self, Reload, ReloadStats, Snapshot};
use crate::sources::wire::{key_in, key_of, parent_key, KeyMap};
use cluster::Cluster;
use master::ZoneProblem;
use zone::{Zone, ZoneLoader};

/// The zones queries see: found by walking up from the question's name.
#[derive(Debug, Default)]
struct ZoneSet {
    /// By the origin's key (`sources::wire::NameKey`): the walk up is then a slice of the
    /// question's key for each label, where `LowerName::base_name` made a new name each time
    /// (3% of the core on a random-subdomain flood).
    by_origin: KeyMap<Arc<Zone>>,
    /// The directory could not be read and nothing was ever loaded from it.
    unreadable: Option<String>,
}

impl ZoneSet {
    /// The zone with the longest origin that contains `name`, and `name`'s key, made in
    /// `buffer`: the zone's lookup takes it rather than making it again.
    fn find<'b>(&self, name: &Name, buffer: &'b mut [u8; 256]) -> Option<(&Arc<Zone>, &'b [u8])> {
        if self.by_origin.is_empty() {
            return None;
        }
        let name_key = key_in(name, buffer)?;
        let mut key = name_key;
        loop {
            if let Some(zone) = self.by_origin.get(key) {
                return Some((zone, name_key));
            }
            key = parent_key(key)?;
        }
    }
}

/// What one read of the directory found.
#[derive(Debug, Default)]
pub struct DirectoryLoad {
    /// The zones that loaded, by the file that holds them.
    pub zones: Vec<(PathBuf, Zone)>,
    /// Errors and warnings, each `file:line: reason`.
    pub problems: Vec<ZoneProblem>,
    /// Every file read (zone files and their includes), to notice changes.
    pub files: Vec<PathBuf>,
    /// Zone files that did not load, by path; their previous version keeps serving.
    pub failed: Vec<PathBuf>,
}

/// Reads every zone file in `directory`.
pub fn load_directory(directory: &Path) -> Result<DirectoryLoad, ZoneProblem> {
    let paths = watch::files_in(directory, &["zone"]).map_err(|error| ZoneProblem {
        file: directory.to_owned(),
        line: None,
        reason: format!("cannot read the zones directory: {error}"),
    })?;
    let mut load = DirectoryLoad::default();
    let mut origins: HashMap<LowerName, PathBuf> = HashMap::new();
    for path in paths {
        load.files.push(path.clone());
        // The records go straight into the zone's table as they are read: a 100,000-record
        // zone never exists as a list of records besides.
        let read = master::ZoneFile::open(&path).and_then(|file| {
            let origin = file.origin().clone();
            let mut loader = ZoneLoader::new(&origin);
            let read = file.read(&mut loader)?;
            Ok((origin, loader, read))
        });
        let (origin_name, loader, read) = match read {
            Ok(read) => read,
            Err(problem) => {
                load.problems.push(problem);
                load.failed.push(path);
                continue;
            }
        };
        load.files.extend(read.files.iter().skip(1).cloned());
        let broken = !read.errors.is_empty();
        load.problems.extend(read.errors);
        let origin = LowerName::new(&origin_name);
        if let Some(first) = origins.get(&origin) {
            load.problems.push(ZoneProblem {
                file: path.clone(),
                line: None,
                reason: format!(
                    "the zone {origin_name} is already served from {}; this file is ignored",
                    first.display()
                ),
            });
            continue;
        }
        // Built even when records failed to read, so its other problems are reported too.
        let built = loader.finish(&path);
        load.problems.extend(built.problems);
        match built.zone.filter(|_| !broken) {
            Some(zone) => {
                origins.insert(origin, path.clone());
                load.zones.push((path, zone));
            }
            None => load.failed.push(path),
        }
    }
    Ok(load)
}

/// What the reloads remember between polls.
#[derive(Debug, Default)]
struct ReloadState {
    snapshot: Snapshot,
    /// The last zone each file gave that loaded, to keep serving when the file breaks.
    last_good: HashMap<PathBuf, Arc<Zone>>,
}

/// Why the `zones` source could not be consulted.
#[derive(Debug, thiserror::Error)]
pub enum ZonesError {
    #[error("zones not readable: {0}")]
    Unreadable(String),
}

impl Failure for ZonesError {}

/// The cluster zone as the `zones` source holds it: shared with the next `Zones` a reload
/// builds while `[kubernetes]` is unchanged, and its API watch with it. The watch stops when
/// the last `Zones` holding the cluster is gone (or at shutdown).
#[derive(Clone)]
pub struct ClusterHandle {
    cluster: Arc<Cluster>,
    config: KubernetesConfig,
    watch: CancellationToken,
    _stop_watch: Arc<DropGuard>,
}

impl ClusterHandle {
    pub fn new(cluster: Arc<Cluster>, config: KubernetesConfig) -> Self {
        let watch = CancellationToken::new();
        Self {
            cluster,
            config,
            _stop_watch: Arc::new(watch.clone().drop_guard()),
            watch,
        }
    }

    /// The `[kubernetes]` it was built from.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    /// Starts the live API watch; nothing for manifests or a cluster already watched.
    fn watch(&self, background: &Background) {
        background.spawn(crate::sources::kubernetes::api::watch(
            Arc::clone(&self.cluster),
            self.watch.clone(),
        ));
    }
}

/// The `zones` source.
pub struct Zones {
    set: ArcSwap<ZoneSet>,
    directory: Option<PathBuf>,
    fallthrough: Vec<LowerName>,
    /// How often the zone files and manifests are polled.
    reload_interval: std::time::Duration,
    state: Mutex<ReloadState>,
    cluster: Option<ClusterHandle>,
    reload_stats: ReloadStats,
    versions: ZoneVersions,
}

/// The two versions of the zone files' data. Kept apart because most answers depend on only
/// one: a name outside every zone (what is forwarded) depends on which origins are served, not
/// on what the zones hold, so an edit inside a zone leaves forwarded answers reusable.
#[derive(Clone, Debug)]
pub struct ZoneVersions {
    /// Bumped when the set of origins served changes.
    pub origins: DataVersion,
    /// Bumped when any zone's contents change.
    pub data: DataVersion,
}

impl ZoneVersions {
    /// Versions no fast table reads (tests, `hearth check`).
    pub fn detached() -> Self {
        Self {
            origins: DataVersion::detached("zone origins"),
            data: DataVersion::detached("zone data"),
        }
    }
}

impl Zones {
    /// Loads the zone files now (logging every problem) and takes the cluster zone, if any.
    pub fn load(
        config: &ZonesConfig,
        cluster: Option<ClusterHandle>,
        versions: ZoneVersions,
    ) -> Self {
        let zones = Self {
            set: ArcSwap::from_pointee(ZoneSet::default()),
            directory: config.directory.clone(),
            fallthrough: config.fallthrough.iter().map(LowerName::new).collect(),
            reload_interval: config.reload_interval,
            state: Mutex::new(ReloadState::default()),
            cluster,
            reload_stats: ReloadStats::default(),
            versions,
        };
        zones.reload(true);
        zones
    }

    /// Re-reads the zone directory and the cluster's manifests, changed or not (SIGHUP). A
    /// file that no longer loads keeps its last good version serving.
    pub fn reread(&self) -> bool {
        if self.directory.is_some() {
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .snapshot = Snapshot::default();
        }
        let files = self.reload(false);
        let cluster = self.cluster().is_some_and(|c| c.reread());
        files || cluster
    }

    /// How often the files are polled.
    pub fn reload_interval(&self) -> std::time::Duration {
        self.reload_interval
    }

    /// The cluster zone and its watch, to carry over to a rebuilt `Zones`.
    pub fn cluster_handle(&self) -> Option<&ClusterHandle> {
        self.cluster.as_ref()
    }

    /// How the zone directory loads went.
    pub fn reload_stats(&self) -> &ReloadStats {
        &self.reload_stats
    }

    /// The cluster zone, when `[kubernetes]` is configured.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref().map(|handle| &handle.cluster)
    }

    /// How many zones are served from files.
    pub fn zone_count(&self) -> usize {
        self.set.load().by_origin.len()
    }

    fn reload(&self, first: bool) -> bool {
        let Some(directory) = &self.directory else {
            return false;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !first {
            let mut paths: Vec<PathBuf> = state.snapshot.iter().map(|(p, _)| p.clone()).collect();
            paths.extend(watch::files_in(directory, &["zone"]).unwrap_or_default());
            if watch::snapshot(paths) == state.snapshot {
                return false;
            }
        }
        let load = match load_directory(directory) {
            Ok(load) => load,
            Err(problem) => {
                tracing::warn!("{problem}");
                self.reload_stats.record(false);
                if first {
                    self.set.store(Arc::new(ZoneSet {
                        by_origin: KeyMap::default(),
                        unreadable: Some(problem.to_string()),
                    }));
                    self.versions.origins.bump();
                }
                state.snapshot = watch::snapshot([directory.clone()]);
                return first;
            }
        };
        for problem in &load.problems {
            tracing::warn!("{problem}");
        }
        self.reload_stats.record(load.failed.is_empty());
        let mut by_origin = KeyMap::default();
        let mut last_good = HashMap::new();
        for (path, zone) in load.zones {
            tracing::info!(file = %path.display(), origin = %zone.origin(), names = zone.len(), "zone loaded");
            let zone = Arc::new(zone);
            by_origin.insert(key_of(zone.origin()).into(), Arc::clone(&zone));
            last_good.insert(path, zone);
        }
        for path in &load.failed {
            if let Some(previous) = state.last_good.get(path) {
                let origin = key_of(previous.origin()).into();
                if let std::collections::hash_map::Entry::Vacant(slot) = by_origin.entry(origin) {
                    tracing::warn!(file = %path.display(), origin = %previous.origin(), "zone file has errors; its previous version keeps serving");
                    slot.insert(Arc::clone(previous));
                    last_good.insert(path.clone(), Arc::clone(previous));
                }
            }
        }
        state.last_good = last_good;
        state.snapshot = watch::snapshot(load.files);
        let previous = self.set.swap(Arc::new(ZoneSet {
            by_origin,
            unreadable: None,
        }));
        let set = self.set.load();
        let same_origins = previous.unreadable.is_none()
            && previous.by_origin.len() == set.by_origin.len()
            && previous
                .by_origin
                .keys()
                .all(|o| set.by_origin.contains_key(o));
        self.versions.data.bump();
        if !same_origins {
            self.versions.origins.bump();
        }
        true
    }
}

impl Reload for Zones {
    fn reload_changed(&self) -> bool {
        let files = self.reload(false);
        let cluster = self.cluster().is_some_and(|c| c.reload_changed());
        files || cluster
    }
}

#[async_trait]
impl Source for Zones {
    fn name(&self) -> &'static str {
        "zones"
    }

    async fn lookup(&self, question: &Question) -> Outcome {
        self.answer(question)
    }

    /// Zone files and the cluster's objects are in memory: every lookup answers at once.
    fn lookup_now(&self, question: &Question) -> Option<Outcome> {
        Some(self.answer(question))
    }
}

impl Zones {
    /// [`Source::lookup`]'s answer: the cluster domain first, then the zone that holds the
    /// name, from the data loaded now.
    fn answer(&self, question: &Question) -> Outcome {
        if let Some(outcome) = self.cluster().and_then(|c| c.lookup(question)) {
            return outcome;
        }
        let set = self.set.load();
        let mut buffer = [0; 256];
        let Some((zone, key)) = set.find(&question.name, &mut buffer) else {
            return match &set.unreadable {
                Some(reason) => Outcome::Unavail(ZonesError::Unreadable(reason.clone()).into()),
                None => Outcome::not_found().read_from(self.outside_dependencies(question)),
            };
        };
        let read = self
            .versions
            .origins
            .dependencies()
            .union(self.versions.data.dependencies());
        let answer = zone.lookup_keyed(&question.name, key, question.record_type);
        let falls_through = answer.response_code == ResponseCode::NXDomain
            && self
                .fallthrough
                .iter()
                .any(|origin| origin == &LowerName::new(zone.origin()));
        let outcome = if falls_through {
            Outcome::NotFound(answer)
        } else {
            Outcome::Success(answer)
        };
        outcome.read_from(read)
    }

    /// What "no zone here" depends on: which origins are served, and for a reverse name also
    /// the cluster's addresses (the cluster answers PTR for the addresses it holds and passes
    /// the rest on).
    fn outside_dependencies(&self, question: &Question) -> Dependencies {
        let origins = self.versions.origins.dependencies();
        match self.cluster() {
            Some(cluster) if is_reverse(&question.name) => origins.union(cluster.dependencies()),
            _ => origins,
        }
    }
}

/// Whether `name` is under `arpa.`, where reverse names live (RFC 1035 §3.5, RFC 3596 §2.5).
fn is_reverse(name: &hickory_proto::rr::Name) -> bool {
    name.iter()
        .next_back()
        .is_some_and(|top| top.eq_ignore_ascii_case(b"arpa"))
}

/// For `hearth check`: every problem in the zones directory as `file:line: reason`.
pub fn check_directory(directory: &Path) -> Vec<String> {
    match load_directory(directory) {
        Ok(load) => load.problems.iter().map(ToString::to_string).collect(),
        Err(problem) => vec![problem.to_string()],
    }
}
