//! The feed: one store of objects per kind, filled from the kinds' [`Update`]s, and the
//! bookkeeping of outages.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::time::Instant;

use super::follow::Update;
use super::status::{unix_seconds, ApiStatus};
use super::trim::{Kind, Object};
use crate::sources::kubernetes::records::ObjectRefs;

type ObjectKey = (String, String);

/// The objects of one kind, by namespace and name.
pub(super) struct Store<K> {
    pub(super) objects: HashMap<ObjectKey, Arc<K>>,
    /// During a (re-)list: the objects listed so far, which replace `objects` when complete.
    pub(super) listing: Option<HashMap<ObjectKey, Arc<K>>>,
    /// A list has completed once.
    pub(super) listed: bool,
}

impl<K: kube::Resource> Store<K> {
    pub(super) fn new() -> Self {
        Self {
            objects: HashMap::new(),
            listing: None,
            listed: false,
        }
    }

    fn key(object: &K) -> ObjectKey {
        let metadata = object.meta();
        (
            metadata.namespace.clone().unwrap_or_default(),
            metadata.name.clone().unwrap_or_default(),
        )
    }

    pub(super) fn begin_list(&mut self) {
        self.listing = Some(HashMap::new());
    }

    pub(super) fn listed(&mut self, object: impl Into<Arc<K>>) {
        let object = object.into();
        self.listing
            .get_or_insert_with(HashMap::new)
            .insert(Self::key(&object), object);
    }

    pub(super) fn end_list(&mut self) {
        if let Some(listing) = self.listing.take() {
            self.objects = listing;
        }
        self.listed = true;
    }

    pub(super) fn apply(&mut self, object: impl Into<Arc<K>>) {
        let object = object.into();
        self.objects.insert(Self::key(&object), object);
    }

    pub(super) fn delete(&mut self, object: &K) {
        self.objects.remove(&Self::key(object));
    }

    fn snapshot(&self) -> Vec<Arc<K>> {
        self.objects.values().cloned().collect()
    }
}

/// The objects of one moment, shared with the stores; the zone is built from them in place.
pub(super) struct Snapshot {
    services: Vec<Arc<Service>>,
    endpoint_slices: Vec<Arc<EndpointSlice>>,
    namespaces: Vec<Arc<Namespace>>,
    pods: Vec<Arc<Pod>>,
}

impl Snapshot {
    /// The objects, borrowed: a copy of them took 60 ms and 67 MiB of each rebuild at 100,000
    /// endpoints (`benches/cluster_scale.sh`).
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
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    namespaces: Store<Namespace>,
    /// `None` when pods are not watched.
    pods: Option<Store<Pod>>,
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
                match kind {
                    Kind::Service => self.services.end_list(),
                    Kind::EndpointSlice => self.endpoint_slices.end_list(),
                    Kind::Namespace => self.namespaces.end_list(),
                    Kind::Pod => self.pods.iter_mut().for_each(Store::end_list),
                }
                tracing::debug!(kind = kind.plural(), "listed");
                true
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
