//! The kinds watched, and what of their objects is kept: a real cluster's objects carry much
//! that no record is made from, dropped as each object arrives ([`Watched::slim`]).

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{
    Namespace, Pod, PodCondition, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

use crate::sources::kubernetes::records::SERVICE_NAME_LABEL;

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

/// An object of a watched kind, slimmed; boxed, as kinds differ much in size.
pub(super) enum Object {
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Namespace(Box<Namespace>),
    Pod(Box<Pod>),
}

/// A kind the records are built from, and what of it they read.
pub(super) trait Watched:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const KIND: Kind;

    /// The object reduced to the fields `records::build` reads: a real cluster's objects carry
    /// managed fields, annotations (a `kubectl apply` leaves a copy of the whole object there),
    /// container specs and statuses that would take most of the memory. The `slimmed_objects_*`
    /// tests check that the records are the same.
    fn slim(self) -> Self;

    fn into_object(self) -> Object;
}

/// The metadata records read: namespace, name, deletion time, and the labels `keep_label`
/// keeps.
fn slim_metadata(metadata: ObjectMeta, keep_label: impl Fn(&str) -> bool) -> ObjectMeta {
    ObjectMeta {
        name: metadata.name,
        namespace: metadata.namespace,
        labels: metadata.labels.map(|labels| {
            labels
                .into_iter()
                .filter(|(key, _)| keep_label(key))
                .collect()
        }),
        deletion_timestamp: metadata.deletion_timestamp,
        ..ObjectMeta::default()
    }
}

impl Watched for Service {
    const KIND: Kind = Kind::Service;

    fn slim(self) -> Self {
        Service {
            metadata: slim_metadata(self.metadata, |_| false),
            spec: self.spec.map(|spec| ServiceSpec {
                type_: spec.type_,
                external_name: spec.external_name,
                cluster_ip: spec.cluster_ip,
                cluster_ips: spec.cluster_ips,
                ports: spec.ports.map(|ports| {
                    ports
                        .into_iter()
                        .map(|port| ServicePort {
                            name: port.name,
                            protocol: port.protocol,
                            port: port.port,
                            ..ServicePort::default()
                        })
                        .collect()
                }),
                publish_not_ready_addresses: spec.publish_not_ready_addresses,
                selector: spec.selector,
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn into_object(self) -> Object {
        Object::Service(Box::new(self))
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;

    fn slim(self) -> Self {
        EndpointSlice {
            metadata: slim_metadata(self.metadata, |key| key == SERVICE_NAME_LABEL),
            address_type: self.address_type,
            endpoints: self
                .endpoints
                .into_iter()
                .map(|endpoint| Endpoint {
                    addresses: endpoint.addresses,
                    conditions: endpoint.conditions.map(|conditions| EndpointConditions {
                        ready: conditions.ready,
                        ..EndpointConditions::default()
                    }),
                    hostname: endpoint.hostname,
                    ..Endpoint::default()
                })
                .collect(),
            ports: self.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|port| EndpointPort {
                        name: port.name,
                        protocol: port.protocol,
                        port: port.port,
                        ..EndpointPort::default()
                    })
                    .collect()
            }),
        }
    }

    fn into_object(self) -> Object {
        Object::EndpointSlice(Box::new(self))
    }
}

impl Watched for Namespace {
    const KIND: Kind = Kind::Namespace;

    fn slim(self) -> Self {
        Namespace {
            metadata: slim_metadata(self.metadata, |_| false),
            spec: None,
            status: None,
        }
    }

    fn into_object(self) -> Object {
        Object::Namespace(Box::new(self))
    }
}

impl Watched for Pod {
    const KIND: Kind = Kind::Pod;

    fn slim(self) -> Self {
        Pod {
            metadata: slim_metadata(self.metadata, |_| true),
            spec: self.spec.map(|spec| PodSpec {
                hostname: spec.hostname,
                subdomain: spec.subdomain,
                ..PodSpec::default()
            }),
            status: self.status.map(|status| PodStatus {
                phase: status.phase,
                pod_ip: status.pod_ip,
                pod_ips: status.pod_ips,
                conditions: status.conditions.map(|conditions| {
                    conditions
                        .into_iter()
                        .filter(|condition| condition.type_ == "Ready")
                        .map(|condition| PodCondition {
                            type_: condition.type_,
                            status: condition.status,
                            ..PodCondition::default()
                        })
                        .collect()
                }),
                ..PodStatus::default()
            }),
        }
    }

    fn into_object(self) -> Object {
        Object::Pod(Box::new(self))
    }
}
