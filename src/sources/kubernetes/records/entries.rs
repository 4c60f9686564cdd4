//! The objects as the records read them: each kind reduced to what [`build_into`] needs, in
//! compact types, as soon as it arrives.
//!
//! Why not the k8s-openapi structs, even slimmed: they are made for every field the API has.
//! An `Endpoint` is some 400 bytes before its strings, a `Service` over a kilobyte, and
//! `ObjectMeta` alone some 400. With the 100,000 endpoints and 10,000 services of
//! `benches/cluster_scale.sh`, Hearth's RSS after the first sync was 151 MiB with slimmed
//! k8s-openapi objects in the stores, and is 55 MiB with entries (addresses parsed once, names
//! as `Box<str>`, absent lists as empty slices). The API watch keeps only
//! entries; manifests are read as objects and made into entries to be built
//! ([`ClusterEntries::from`]), so both feeds go through the same conversion.
//!
//! What the conversion decides is what the rules used to read off the objects, with the same
//! defaults: an endpoint without `conditions.ready` is ready, a service port without a protocol
//! is TCP (in the rules), a pod without a `Ready` condition is ready, an address that does not
//! parse is skipped with a debug log.
//!
//! [`build_into`]: super::build_into

use std::net::IpAddr;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::objects::ClusterObjects;
use super::SERVICE_NAME_LABEL;

/// A text from an object, kept without the spare capacity of a `String`.
pub type Text = Box<str>;

fn text(value: String) -> Text {
    value.into_boxed_str()
}

/// An object's namespace and name, as written (validated as labels when built).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectName {
    pub namespace: Option<Text>,
    pub name: Option<Text>,
}

impl ObjectName {
    fn of(metadata: &mut ObjectMeta) -> Self {
        Self {
            namespace: metadata.namespace.take().map(text),
            name: metadata.name.take().map(text),
        }
    }
}

/// A Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    pub object: ObjectName,
    pub shape: ServiceShape,
    pub ports: Box<[PortEntry]>,
    /// `spec.publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// `spec.selector`, in key order; empty when absent (a service without a selector selects
    /// every pod that names it as its subdomain, as an empty selector does).
    pub selector: Box<[(Text, Text)]>,
}

/// What kind of name a service is (spec §2.3 to §2.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ServiceShape {
    /// No spec at all: no records.
    #[default]
    NoSpec,
    /// `type: ExternalName`, and the name (as written).
    ExternalName(Option<Text>),
    /// `clusterIP: None` (in `clusterIP` or first in `clusterIPs`).
    Headless,
    /// The cluster IPs that parse (`clusterIPs`, else `clusterIP`); empty before the API server
    /// allocated one.
    ClusterIps(Box<[IpAddr]>),
}

/// A port of a service or an EndpointSlice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortEntry {
    pub name: Option<Text>,
    pub protocol: Option<Text>,
    pub port: Option<i32>,
}

/// An EndpointSlice (discovery.k8s.io/v1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceEntry {
    pub object: ObjectName,
    /// The `kubernetes.io/service-name` label: the service the slice is of.
    pub service: Option<Text>,
    /// `addressType` is IPv4 or IPv6 ("FQDN" is deprecated and has no address to give).
    pub has_addresses: bool,
    pub ports: Box<[PortEntry]>,
    pub endpoints: Box<[EndpointEntry]>,
}

/// An endpoint of a slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointEntry {
    /// The addresses that parse, in order.
    pub addresses: Box<[IpAddr]>,
    pub hostname: Option<Text>,
    /// `conditions.ready`; absent is ready ("nil should be interpreted as true").
    pub ready: bool,
}

/// A Namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceEntry {
    pub object: ObjectName,
}

/// A Pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodEntry {
    pub object: ObjectName,
    /// The labels, in key order, for services' selectors.
    pub labels: Box<[(Text, Text)]>,
    /// Not being deleted and not finished (phase Succeeded or Failed): CoreDNS skips both.
    pub running: bool,
    /// The `Ready` condition; absent counts as ready (a manifest written by hand has none).
    pub ready: bool,
    /// `status.podIPs` (both families), or `status.podIP` from older servers; parsed, repeats
    /// next to each other removed.
    pub addresses: Box<[IpAddr]>,
    pub hostname: Option<Text>,
    pub subdomain: Option<Text>,
}

impl PodEntry {
    /// The value of the label `key`, if the pod has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(label, _)| (**label).cmp(key))
            .ok()
            .map(|at| &*self.labels[at].1)
    }
}

/// Whatever [`super::build_into`] needs of an entry's identity.
pub trait Named {
    fn object(&self) -> &ObjectName;
}

macro_rules! named {
    ($($entry:ty),*) => {$(
        impl Named for $entry {
            fn object(&self) -> &ObjectName {
                &self.object
            }
        }
    )*};
}
named!(ServiceEntry, SliceEntry, NamespaceEntry, PodEntry);

/// An address as written in an object, parsed; None (with a debug log) if it is not one.
pub(super) fn address(text: &str) -> Option<IpAddr> {
    let parsed = IpAddr::from_str(text).ok();
    if parsed.is_none() {
        tracing::debug!(address = text, "skipped: not an IP address");
    }
    parsed
}

fn service_port(port: ServicePort) -> PortEntry {
    PortEntry {
        name: port.name.map(text),
        protocol: port.protocol.map(text),
        port: Some(port.port),
    }
}

fn endpoint_port(port: EndpointPort) -> PortEntry {
    PortEntry {
        name: port.name.map(text),
        protocol: port.protocol.map(text),
        port: port.port,
    }
}

impl From<Service> for ServiceEntry {
    fn from(mut service: Service) -> Self {
        let object = ObjectName::of(&mut service.metadata);
        let Some(spec) = service.spec else {
            return Self {
                object,
                ..Self::default()
            };
        };
        let shape = if spec.type_.as_deref() == Some("ExternalName") {
            ServiceShape::ExternalName(spec.external_name.map(text))
        } else {
            // `clusterIPs` holds `clusterIP` first, then the other family's (dual stack);
            // "None" in either means headless.
            let cluster_ips: Vec<String> = match spec.cluster_ips {
                Some(ips) if !ips.is_empty() => ips,
                _ => spec.cluster_ip.clone().into_iter().collect(),
            };
            let headless = cluster_ips.first().map(String::as_str) == Some("None")
                || spec.cluster_ip.as_deref() == Some("None");
            if headless {
                ServiceShape::Headless
            } else {
                ServiceShape::ClusterIps(
                    cluster_ips
                        .iter()
                        .filter(|ip| !ip.is_empty())
                        .filter_map(|ip| address(ip))
                        .collect(),
                )
            }
        };
        Self {
            object,
            shape,
            ports: spec.ports.into_iter().flatten().map(service_port).collect(),
            publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
            selector: spec
                .selector
                .into_iter()
                .flatten()
                .map(|(key, value)| (text(key), text(value)))
                .collect(),
        }
    }
}

impl From<EndpointSlice> for SliceEntry {
    fn from(mut slice: EndpointSlice) -> Self {
        let object = ObjectName::of(&mut slice.metadata);
        let service = slice
            .metadata
            .labels
            .and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL))
            .map(text);
        let has_addresses = matches!(slice.address_type.as_str(), "IPv4" | "IPv6");
        let endpoints = if has_addresses {
            slice
                .endpoints
                .into_iter()
                .map(|endpoint| EndpointEntry {
                    addresses: endpoint
                        .addresses
                        .iter()
                        .filter_map(|text| address(text))
                        .collect(),
                    hostname: endpoint.hostname.map(text),
                    ready: endpoint
                        .conditions
                        .and_then(|conditions| conditions.ready)
                        .unwrap_or(true),
                })
                .collect()
        } else {
            Box::default()
        };
        Self {
            object,
            service,
            has_addresses,
            ports: slice
                .ports
                .into_iter()
                .flatten()
                .map(endpoint_port)
                .collect(),
            endpoints,
        }
    }
}

impl From<Namespace> for NamespaceEntry {
    fn from(mut namespace: Namespace) -> Self {
        Self {
            object: ObjectName::of(&mut namespace.metadata),
        }
    }
}

impl From<Pod> for PodEntry {
    fn from(mut pod: Pod) -> Self {
        let object = ObjectName::of(&mut pod.metadata);
        let status = pod.status.unwrap_or_default();
        let finished = status
            .phase
            .as_deref()
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|condition| condition.type_ == "Ready")
            .is_none_or(|ready| ready.status != "False");
        let mut texts: Vec<String> = status
            .pod_ips
            .into_iter()
            .flatten()
            .map(|pod_ip| pod_ip.ip)
            .collect();
        if texts.is_empty() {
            texts.extend(status.pod_ip);
        }
        let mut addresses: Vec<IpAddr> = texts.iter().filter_map(|text| address(text)).collect();
        addresses.dedup();
        let spec = pod.spec.unwrap_or_default();
        Self {
            object,
            labels: pod
                .metadata
                .labels
                .into_iter()
                .flatten()
                .map(|(key, value)| (text(key), text(value)))
                .collect(),
            running: pod.metadata.deletion_timestamp.is_none() && !finished,
            ready,
            addresses: addresses.into_boxed_slice(),
            hostname: spec.hostname.map(text),
            subdomain: spec.subdomain.map(text),
        }
    }
}

/// A cluster's objects as entries, owned: what the manifests feed builds from.
#[derive(Clone, Debug, Default)]
pub struct ClusterEntries {
    pub services: Vec<ServiceEntry>,
    pub endpoint_slices: Vec<SliceEntry>,
    pub pods: Vec<PodEntry>,
    pub namespaces: Vec<NamespaceEntry>,
}

impl From<&ClusterObjects> for ClusterEntries {
    fn from(objects: &ClusterObjects) -> Self {
        fn entries<K: Clone, E: From<K>>(objects: &[K]) -> Vec<E> {
            objects.iter().cloned().map(E::from).collect()
        }
        Self {
            services: entries(&objects.services),
            endpoint_slices: entries(&objects.endpoint_slices),
            pods: entries(&objects.pods),
            namespaces: entries(&objects.namespaces),
        }
    }
}
