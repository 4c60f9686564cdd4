//! The kinds watched, and what of their objects is kept: only the entry the records read
//! (`records::entries`), made as each object arrives ([`Watched::entry`]) from what was read
//! of it (`slim.rs`). A real cluster's
//! objects carry managed fields, annotations (a `kubectl apply` leaves a copy of the whole
//! object there), container specs and statuses; even slimmed, k8s-openapi's structs kept
//! Hearth at 151 MiB RSS at 100,000 endpoints, where with entries it is at 55
//! (`benches/cluster_scale.sh`).

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;

use super::slim::{NamespaceObject, PodObject, ServiceObject, SliceObject};
use crate::sources::kubernetes::records::{NamespaceEntry, PodEntry, ServiceEntry, SliceEntry};

/// The kinds watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Service,
    EndpointSlice,
    Namespace,
    Pod,
}

impl Kind {
    /// The resource's name in the API (and in a ClusterRole).
    pub(super) fn plural(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
        }
    }
}

/// An object of a watched kind, as its entry.
#[derive(Debug)]
pub(super) enum Object {
    Service(ServiceEntry),
    EndpointSlice(SliceEntry),
    Namespace(NamespaceEntry),
    Pod(PodEntry),
}

/// A kind the records are built from.
pub(super) trait Watched:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const KIND: Kind;

    /// The object as the records read it; the rest of it is dropped here.
    fn entry(self) -> Object;
}

impl Watched for Service {
    const KIND: Kind = Kind::Service;

    fn entry(self) -> Object {
        Object::Service(self.into())
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;

    fn entry(self) -> Object {
        Object::EndpointSlice(self.into())
    }
}

impl Watched for Namespace {
    const KIND: Kind = Kind::Namespace;

    fn entry(self) -> Object {
        Object::Namespace(self.into())
    }
}

impl Watched for Pod {
    const KIND: Kind = Kind::Pod;

    fn entry(self) -> Object {
        Object::Pod(self.into())
    }
}

/// What the watch reads (`slim.rs`): the same entries, through the k8s-openapi types.
macro_rules! watched_as {
    ($slim:ty, $full:ty, $kind:ident) => {
        impl Watched for $slim {
            const KIND: Kind = Kind::$kind;

            fn entry(self) -> Object {
                <$full>::from(self).entry()
            }
        }
    };
}
watched_as!(ServiceObject, Service, Service);
watched_as!(SliceObject, EndpointSlice, EndpointSlice);
watched_as!(NamespaceObject, Namespace, Namespace);
watched_as!(PodObject, Pod, Pod);
