//! The objects as the watch reads them off the API: the fields the records' entries are made
//! from, and nothing else. The rest of each object (managed fields, annotations, owner
//! references, an endpoint's target, node and zone, a pod's containers and their statuses) is
//! skipped while the JSON is read, never made into k8s-openapi's structs.
//!
//! Why: made into k8s-openapi's structs and then into entries, the first list of 10,000
//! Services and 10,000 EndpointSlices of 10 endpoints took 0.47 s of CPU
//! (`benches/cluster_scale.sh`, `perf`: allocating every field of every object, then freeing
//! it); the first sync is to take at most 1 s in all. Each type here is the k8s-openapi type's
//! resource for kube (same kind, group, version, plural), so the API is asked exactly as
//! before, and is made into the same entry through the k8s-openapi type (a test compares).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Namespace, Pod, PodCondition, PodIP, PodSpec, PodStatus, Service, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer};

/// The metadata kept: identity, the resourceVersion the watch resumes from, the labels (a
/// slice's service, a pod's for selectors) and whether a pod is being deleted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    deletion_timestamp: Option<Time>,
}

fn metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let read = Metadata::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: read.name,
        namespace: read.namespace,
        resource_version: read.resource_version,
        labels: read.labels,
        deletion_timestamp: read.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

/// kube's view of a type here: that of the k8s-openapi type it stands for.
macro_rules! resource_of {
    ($slim:ty, $full:ty) => {
        impl kube::Resource for $slim {
            type DynamicType = ();
            type Scope = <$full as kube::Resource>::Scope;

            fn kind(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::kind(dt)
            }

            fn group(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::group(dt)
            }

            fn version(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::version(dt)
            }

            fn api_version(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::api_version(dt)
            }

            fn plural(dt: &()) -> Cow<'_, str> {
                <$full as kube::Resource>::plural(dt)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A Service: its spec is small, and read whole.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct ServiceObject {
    #[serde(default, deserialize_with = "metadata")]
    metadata: ObjectMeta,
    spec: Option<ServiceSpec>,
}
resource_of!(ServiceObject, Service);

impl From<ServiceObject> for Service {
    fn from(object: ServiceObject) -> Self {
        Service {
            metadata: object.metadata,
            spec: object.spec,
            status: None,
        }
    }
}

/// An endpoint: its addresses, hostname and readiness.
#[derive(Deserialize)]
struct EndpointRead {
    #[serde(default)]
    addresses: Vec<String>,
    conditions: Option<ConditionsRead>,
    hostname: Option<String>,
}

#[derive(Deserialize)]
struct ConditionsRead {
    ready: Option<bool>,
}

fn endpoints<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Endpoint>, D::Error> {
    let read = Option::<Vec<EndpointRead>>::deserialize(deserializer)?;
    Ok(read
        .unwrap_or_default()
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
        .collect())
}

/// An EndpointSlice (discovery.k8s.io/v1).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SliceObject {
    #[serde(default, deserialize_with = "metadata")]
    metadata: ObjectMeta,
    #[serde(default)]
    address_type: String,
    #[serde(default, deserialize_with = "endpoints")]
    endpoints: Vec<Endpoint>,
    ports: Option<Vec<EndpointPort>>,
}
resource_of!(SliceObject, EndpointSlice);

impl From<SliceObject> for EndpointSlice {
    fn from(object: SliceObject) -> Self {
        EndpointSlice {
            metadata: object.metadata,
            address_type: object.address_type,
            endpoints: object.endpoints,
            ports: object.ports,
        }
    }
}

/// A Namespace: its name.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct NamespaceObject {
    #[serde(default, deserialize_with = "metadata")]
    metadata: ObjectMeta,
}
resource_of!(NamespaceObject, Namespace);

impl From<NamespaceObject> for Namespace {
    fn from(object: NamespaceObject) -> Self {
        Namespace {
            metadata: object.metadata,
            ..Namespace::default()
        }
    }
}

#[derive(Deserialize)]
struct PodSpecRead {
    hostname: Option<String>,
    subdomain: Option<String>,
}

fn pod_spec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PodSpec>, D::Error> {
    let read = Option::<PodSpecRead>::deserialize(deserializer)?;
    Ok(read.map(|spec| PodSpec {
        hostname: spec.hostname,
        subdomain: spec.subdomain,
        ..PodSpec::default()
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatusRead {
    conditions: Option<Vec<PodCondition>>,
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIP>>,
}

fn pod_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PodStatus>, D::Error> {
    let read = Option::<PodStatusRead>::deserialize(deserializer)?;
    Ok(read.map(|status| PodStatus {
        conditions: status.conditions,
        phase: status.phase,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        ..PodStatus::default()
    }))
}

/// A Pod: its addresses, readiness, phase, hostname and subdomain, and labels.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct PodObject {
    #[serde(default, deserialize_with = "metadata")]
    metadata: ObjectMeta,
    #[serde(default, deserialize_with = "pod_spec")]
    spec: Option<PodSpec>,
    #[serde(default, deserialize_with = "pod_status")]
    status: Option<PodStatus>,
}
resource_of!(PodObject, Pod);

impl From<PodObject> for Pod {
    fn from(object: PodObject) -> Self {
        Pod {
            metadata: object.metadata,
            spec: object.spec,
            status: object.status,
        }
    }
}
