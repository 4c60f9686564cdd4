//! The feed: one store of objects per kind, filled from the kinds' [`Update`]s, and the
//! bookkeeping of outages.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::follow::Update;
use super::status::{unix_seconds, ApiStatus};
use super::trim::{Kind, Object};
use crate::sources::kubernetes::records::{
    Named, NamespaceEntry, ObjectRefs, PodEntry, ServiceEntry, SliceEntry,
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

    pub(super) fn apply(&mut self, entry: E) {
        self.objects.insert(Self::key(&entry), Arc::new(entry));
    }

    pub(super) fn delete(&mut self, entry: &E) {
        self.objects.remove(&Self::key(entry));
    }

    fn snapshot(&self) -> Vec<Arc<E>> {
        self.objects.values().cloned().collect()
    }
}

/// The entries of one moment, shared with the stores; the zone is built from them in place.
pub(super) struct Snapshot {
    services: Vec<Arc<ServiceEntry>>,
    endpoint_slices: Vec<Arc<SliceEntry>>,
    namespaces: Vec<Arc<NamespaceEntry>>,
    pods: Vec<Arc<PodEntry>>,
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

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            services: self.services.snapshot(),
            endpoint_slices: self.endpoint_slices.snapshot(),
            namespaces: self.namespaces.snapshot(),
            pods: self.pods.as_ref().map(Store::snapshot).unwrap_or_default(),
        }
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
                let changed = match kind {
                    Kind::Service => self.services.end_list(),
                    Kind::EndpointSlice => self.endpoint_slices.end_list(),
                    Kind::Namespace => self.namespaces.end_list(),
                    Kind::Pod => self.pods.as_mut().is_some_and(Store::end_list),
                };
                tracing::debug!(kind = kind.plural(), changed, "listed");
                changed
            }
            Update::Applied(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                let kind = match object {
                    Object::Service(object) => {
                        self.services.apply(object);
                        Kind::Service
                    }
                    Object::EndpointSlice(object) => {
                        self.endpoint_slices.apply(object);
                        Kind::EndpointSlice
                    }
                    Object::Namespace(object) => {
                        self.namespaces.apply(object);
                        Kind::Namespace
                    }
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            pods.apply(object);
                        }
                        Kind::Pod
                    }
                };
                self.answered(kind, status);
                true
            }
            Update::Deleted(object) => {
                status.events.fetch_add(1, Ordering::Relaxed);
                let kind = match object {
                    Object::Service(object) => {
                        self.services.delete(&object);
                        Kind::Service
                    }
                    Object::EndpointSlice(object) => {
                        self.endpoint_slices.delete(&object);
                        Kind::EndpointSlice
                    }
                    Object::Namespace(object) => {
                        self.namespaces.delete(&object);
                        Kind::Namespace
                    }
                    Object::Pod(object) => {
                        if let Some(pods) = &mut self.pods {
                            pods.delete(&object);
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
