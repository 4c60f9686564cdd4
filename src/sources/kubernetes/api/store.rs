//! The feed: one store of objects per kind, filled from the kinds' [`Update`]s, and the
//! bookkeeping of outages.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::follow::Update;
use super::status::{unix_seconds, ApiStatus};
use super::trim::{Kind, Object};
use crate::sources::kubernetes::records::{
    namespace_named, namespace_of, Named, NamespaceEntry, ObjectName, ObjectRefs, Part, PodEntry,
    ServiceEntry, SliceEntry,
};

type ObjectKey = (Box<str>, Box<str>);

/// The entries of one kind, by namespace and name.
pub(super) struct Store<E> {
    pub(super) objects: HashMap<ObjectKey, Arc<E>>,
    /// During a (re-)list: the entries listed so far, which replace `objects` when complete.
    /// An entry listed as it already is shares the one kept, so a re-list of an unchanged
    /// cluster (after a 410 Gone) costs the map, not a second copy of every entry.
    pub(super) listing: Option<HashMap<ObjectKey, Arc<E>>>,
    /// Whether the list in progress found anything different from `objects` so far.
    listing_changed: bool,
    /// A list has completed once.
    pub(super) listed: bool,
}

impl<E: Named + PartialEq> Store<E> {
    pub(super) fn new() -> Self {
        Self {
            objects: HashMap::new(),
            listing: None,
            listing_changed: false,
            listed: false,
        }
    }

    fn key(entry: &E) -> ObjectKey {
        let object = entry.object();
        (
            object.namespace.clone().unwrap_or_default(),
            object.name.clone().unwrap_or_default(),
        )
    }

    pub(super) fn begin_list(&mut self) {
        self.listing = Some(HashMap::with_capacity(self.objects.len()));
        self.listing_changed = false;
    }

    pub(super) fn listed(&mut self, entry: E) {
        let key = Self::key(&entry);
        let entry = match self.objects.get(&key) {
            Some(kept) if **kept == entry => Arc::clone(kept),
            _ => {
                self.listing_changed = true;
                Arc::new(entry)
            }
        };
        if self
            .listing
            .get_or_insert_with(HashMap::new)
            .insert(key, entry)
            .is_some()
        {
            self.listing_changed = true;
        }
    }

    /// The list is complete: it replaces what was kept. True if that changed anything (or was
    /// the first list), so that a re-list of an unchanged cluster builds no new zone.
    pub(super) fn end_list(&mut self) -> bool {
        let first = !self.listed;
        self.listed = true;
        let Some(listing) = self.listing.take() else {
            return first;
        };
        let changed = self.listing_changed || listing.len() != self.objects.len();
        self.objects = listing;
        first || changed
    }

    /// [`Store::end_list`], adding to `parts` the parts (`part_of`) of every entry the list
    /// changed, added or took away, so that a re-list after a 410 Gone rebuilds only those
    /// parts: rebuilt whole, the zone of 100,000 endpoints was built beside the one served,
    /// and the re-list's peak RSS was twice the settled RSS (`benches/cluster_scale.sh`).
    /// Entries listed as they were kept are the same `Arc`, so comparing costs little.
    pub(super) fn end_list_into<P: IntoIterator<Item = Part>>(
        &mut self,
        part_of: impl Fn(&E) -> P,
        parts: &mut HashSet<Part>,
    ) -> bool {
        if let Some(listing) = self.listing.as_ref().filter(|_| self.listed) {
            for (key, listed) in listing {
                match self.objects.get(key) {
                    Some(kept) if Arc::ptr_eq(kept, listed) => {}
                    Some(kept) => {
                        parts.extend(part_of(kept));
                        parts.extend(part_of(listed));
                    }
                    None => parts.extend(part_of(listed)),
                }
            }
            for (key, kept) in &self.objects {
                if !listing.contains_key(key) {
                    parts.extend(part_of(kept));
                }
            }
        }
        self.end_list()
    }

    /// Keeps `entry`; the one it replaces, if any.
    pub(super) fn apply(&mut self, entry: E) -> Option<Arc<E>> {
        self.objects.insert(Self::key(&entry), Arc::new(entry))
    }

    /// Forgets the object of `entry`; the entry that was kept, if any.
    pub(super) fn delete(&mut self, entry: &E) -> Option<Arc<E>> {
        self.objects.remove(&Self::key(entry))
    }

    /// Adds the namespaces its objects make exist (`records::namespace_of`) to `namespaces`,
    /// skipping those in `seen`, and adds them there.
    fn namespaces<'a>(&'a self, seen: &mut HashSet<&'a str>, namespaces: &mut BTreeSet<String>) {
        for ((namespace, _), entry) in &self.objects {
            if seen.contains(&**namespace) {
                continue;
            }
            if let Some(label) = namespace_of(&**entry) {
                namespaces.insert(label);
                seen.insert(namespace);
            }
        }
    }

    /// The entries whose parts (`part_of`) are among `parts`. Entries of other namespaces
    /// are passed over without working out their parts (which makes their labels): a change
    /// asks this of every object.
    fn in_parts<P: IntoIterator<Item = Part>>(
        &self,
        parts: &HashSet<Part>,
        part_of: impl Fn(&E) -> P,
    ) -> Vec<Arc<E>> {
        let namespaces: HashSet<&str> = parts.iter().map(Part::namespace).collect();
        self.objects
            .iter()
            .filter(|((namespace, _), _)| {
                // Labels are lower case: a namespace written otherwise is worked out in full.
                namespaces.contains(&**namespace)
                    || namespace.bytes().any(|byte| byte.is_ascii_uppercase())
            })
            .map(|(_, entry)| entry)
            .filter(|entry| part_of(entry).into_iter().any(|part| parts.contains(&part)))
            .cloned()
            .collect()
    }

    fn snapshot(&self) -> Vec<Arc<E>> {
        self.objects.values().cloned().collect()
    }
}

/// The entries of one moment, shared with the stores; the zone is built from them in place.
/// With `parts`, only the entries of those parts, and a namespace entry for every namespace
/// that exists: what rebuilds those parts and the apex (`records::Part`).
pub(super) struct Snapshot {
    services: Vec<Arc<ServiceEntry>>,
    endpoint_slices: Vec<Arc<SliceEntry>>,
    namespaces: Vec<Arc<NamespaceEntry>>,
    pods: Vec<Arc<PodEntry>>,
    pub(super) parts: Option<Vec<Part>>,
}

impl Snapshot {
    /// The entries, borrowed: a copy of the objects took 60 ms and 67 MiB of each rebuild at
    /// 100,000 endpoints (`benches/cluster_scale.sh`).
    pub(super) fn objects(&self) -> ObjectRefs<'_> {
        fn borrowed<K>(objects: &[Arc<K>]) -> Vec<&K> {
            objects.iter().map(|object| &**object).collect()
        }
        ObjectRefs {
            services: borrowed(&self.services),
            endpoint_slices: borrowed(&self.endpoint_slices),
            pods: borrowed(&self.pods),
            namespaces: borrowed(&self.namespaces),
        }
    }
}

pub(super) struct Feed {
    services: Store<ServiceEntry>,
    endpoint_slices: Store<SliceEntry>,
    namespaces: Store<NamespaceEntry>,
    /// `None` when pods are not watched.
    pods: Option<Store<PodEntry>>,
    /// The kinds whose requests fail now.
    failing: HashSet<Kind>,
    /// When the current outage began.
    outage: Option<Instant>,
    /// The parts of the zone changed since the last snapshot (`records::Part`).
    changed: HashSet<Part>,
    /// Whether the next build must be of the whole zone: none was installed yet (or the last
    /// was not).
    whole: bool,
}

impl Feed {
    pub(super) fn new(kinds: &[Kind]) -> Self {
        Self {
            services: Store::new(),
            endpoint_slices: Store::new(),
            namespaces: Store::new(),
            pods: kinds.contains(&Kind::Pod).then(Store::new),
            failing: HashSet::new(),
            outage: None,
            changed: HashSet::new(),
            whole: true,
        }
    }

    /// Every kind has completed a list: the zone can be built.
    pub(super) fn is_listed(&self) -> bool {
        self.services.listed
            && self.endpoint_slices.listed
            && self.namespaces.listed
            && self.pods.as_ref().is_none_or(|pods| pods.listed)
    }

    pub(super) fn is_connected(&self) -> bool {
        self.is_listed() && self.failing.is_empty()
    }

    /// Every entry, for a build of the whole zone.
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            services: self.services.snapshot(),
            endpoint_slices: self.endpoint_slices.snapshot(),
            namespaces: self.namespaces.snapshot(),
            pods: self.pods.as_ref().map(Store::snapshot).unwrap_or_default(),
            parts: None,
        }
    }

    /// What the next build needs, and forgets the changes: every entry if the whole zone is
    /// due, else the entries of the parts changed and every namespace. Why not always the
    /// whole: at 100,000 endpoints a whole build took 0.3 s of CPU for each change, and a part
    /// takes microseconds (`benches/cluster_scale.sh`).
    pub(super) fn take_changes(&mut self) -> Snapshot {
        if std::mem::take(&mut self.whole) {
            self.changed.clear();
            return self.snapshot();
        }
        let changed = std::mem::take(&mut self.changed);
        // Every namespace that exists, as the rules count them: the apex's empty names.
        let mut namespaces = BTreeSet::new();
        namespaces.extend(
            self.namespaces
                .objects
                .values()
                .filter_map(|entry| namespace_named(entry)),
        );
        // Of any other object the rules read; each namespace's objects asked until one counts.
        let mut seen: HashSet<&str> = HashSet::new();
        self.services.namespaces(&mut seen, &mut namespaces);
        self.endpoint_slices.namespaces(&mut seen, &mut namespaces);
        if let Some(pods) = &self.pods {
            pods.namespaces(&mut seen, &mut namespaces);
        }
        let namespaces = namespaces
            .into_iter()
            .map(|name| {
                Arc::new(NamespaceEntry {
                    object: ObjectName {
                        namespace: None,
                        name: Some(name.into()),
                    },
                })
            })
            .collect();
        Snapshot {
            services: self.services.in_parts(&changed, Part::of_service),
            endpoint_slices: self.endpoint_slices.in_parts(&changed, Part::of_slice),
            namespaces,
            pods: self
                .pods
                .as_ref()
                .map(|pods| pods.in_parts(&changed, Part::of_pod))
                .unwrap_or_default(),
            parts: Some(changed.into_iter().collect()),
        }
    }

    /// The last build was not installed: the next one is of the whole zone.
    pub(super) fn not_installed(&mut self) {
        self.whole = true;
    }

    /// Applies one update; true if the served objects changed.
    pub(super) fn apply(&mut self, update: Update, status: &ApiStatus) -> bool {
        match update {
            Update::Listing(kind) => {
                self.answered(kind, status);
                match kind {
                    Kind::Service => self.services.begin_list(),
                    Kind::EndpointSlice => self.endpoint_slices.begin_list(),
                    Kind::Namespace => self.namespaces.begin_list(),
                    Kind::Pod => self.pods.iter_mut().for_each(Store::begin_list),
                }
                false
            }
            Update::Listed(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                match object {
                    Object::Service(object) => self.services.listed(object),
                    Object::EndpointSlice(object) => self.endpoint_slices.listed(object),
                    Object::Namespace(object) => self.namespaces.listed(object),
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            pods.listed(object);
                        }
                    }
                }
                false
            }
            Update::ListDone(kind) => {
                status.lists.fetch_add(1, Ordering::Relaxed);
                self.answered(kind, status);
                let parts = &mut self.changed;
                let changed = match kind {
                    Kind::Service => self.services.end_list_into(Part::of_service, parts),
                    Kind::EndpointSlice => {
                        self.endpoint_slices.end_list_into(Part::of_slice, parts)
                    }
                    Kind::Namespace => self.namespaces.end_list(),
                    Kind::Pod => self
                        .pods
                        .as_mut()
                        .is_some_and(|pods| pods.end_list_into(Part::of_pod, parts)),
                };
                tracing::debug!(kind = kind.plural(), changed, "listed");
                changed
            }
            Update::Applied(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                let changed = &mut self.changed;
                let kind = match object {
                    Object::Service(object) => {
                        changed.extend(Part::of_service(&object));
                        let old = self.services.apply(object);
                        changed.extend(old.and_then(|old| Part::of_service(&old)));
                        Kind::Service
                    }
                    Object::EndpointSlice(object) => {
                        changed.extend(Part::of_slice(&object));
                        let old = self.endpoint_slices.apply(object);
                        changed.extend(old.and_then(|old| Part::of_slice(&old)));
                        Kind::EndpointSlice
                    }
                    Object::Namespace(object) => {
                        self.namespaces.apply(object);
                        Kind::Namespace
                    }
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            changed.extend(Part::of_pod(&object));
                            let old = pods.apply(object);
                            changed.extend(old.map(|old| Part::of_pod(&old)).unwrap_or_default());
                        }
                        Kind::Pod
                    }
                };
                self.answered(kind, status);
                true
            }
            Update::Deleted(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                let changed = &mut self.changed;
                let kind = match object {
                    Object::Service(object) => {
                        changed.extend(Part::of_service(&object));
                        let old = self.services.delete(&object);
                        changed.extend(old.and_then(|old| Part::of_service(&old)));
                        Kind::Service
                    }
                    Object::EndpointSlice(object) => {
                        changed.extend(Part::of_slice(&object));
                        let old = self.endpoint_slices.delete(&object);
                        changed.extend(old.and_then(|old| Part::of_slice(&old)));
                        Kind::EndpointSlice
                    }
                    Object::Namespace(object) => {
                        self.namespaces.delete(&object);
                        Kind::Namespace
                    }
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            changed.extend(Part::of_pod(&object));
                            let old = pods.delete(&object);
                            changed.extend(old.map(|old| Part::of_pod(&old)).unwrap_or_default());
                        }
                        Kind::Pod
                    }
                };
                self.answered(kind, status);
                true
            }
            Update::Recovering(kind, error) => {
                status.watch_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(kind = kind.plural(), %error, "watch interrupted; resuming");
                false
            }
            Update::Failed(kind, error) => {
                status.watch_errors.fetch_add(1, Ordering::Relaxed);
                let began = self.failing.is_empty();
                self.failing.insert(kind);
                if began {
                    self.outage = Some(Instant::now());
                    status
                        .outage_began
                        .store(unix_seconds(SystemTime::now()), Ordering::Release);
                    let serving = if status.synced_at.load(Ordering::Acquire) == 0 {
                        "cluster names answer SERVFAIL until the first sync"
                    } else {
                        "cluster names are answered from the last state until it answers again"
                    };
                    tracing::warn!(
                        kind = kind.plural(),
                        %error,
                        "the Kubernetes API fails; {serving}"
                    );
                } else {
                    tracing::debug!(kind = kind.plural(), %error, "the Kubernetes API still fails");
                }
                false
            }
            Update::Answers(kind) => {
                self.answered(kind, status);
                false
            }
        }
    }

    /// `kind`'s API answered: the end of the outage if it was the last kind failing.
    fn answered(&mut self, kind: Kind, status: &ApiStatus) {
        if self.failing.remove(&kind) && self.failing.is_empty() {
            status.outage_began.store(0, Ordering::Release);
            let lasted = self.outage.take().map(|began| began.elapsed());
            tracing::info!(?lasted, "the Kubernetes API answers again");
        }
    }
}
