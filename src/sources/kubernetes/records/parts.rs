//! The parts the cluster zone is kept in, so that a change rebuilds its parts and not the
//! whole zone.
//!
//! Every record of the zone but the apex's is at or under one of two kinds of names, and is
//! made from a few objects only (the rules of `rules.rs`):
//!
//! | part | its names | made from |
//! |---|---|---|
//! | [`Part::Service`] | `<service>.<ns>.svc.<domain>` and under it, and the PTRs to them | the Service, the EndpointSlices labelled with its name, the pods whose `subdomain` is its name |
//! | [`Part::Pods`] | `<address>.<ns>.pod.<domain>` (`pods = "verified"`) | the namespace's pods |
//!
//! The rest (SOA, NS, `ns.dns`, `dns-version`, and the empty names `svc`, `pod`,
//! `<ns>.svc`, `<ns>.pod`) is the apex's, made from the set of namespaces alone. So building
//! [`build_into`](super::build_into) from a part's objects and every namespace gives that
//! part's records exactly as a build of the whole cluster does, and nothing of any other
//! part's but what its own objects would add there.

use super::entries::{Named, NamespaceEntry, PodEntry, ServiceEntry, SliceEntry};
use super::rules::label;

/// A part of the cluster zone (see the module's table), by its names as labels: lower case,
/// and valid, as the rules take them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Service { namespace: String, name: String },
    Pods { namespace: String },
}

impl Part {
    /// The part of a service's records; None if the rules skip it (no valid namespace and
    /// name).
    pub fn of_service(service: &ServiceEntry) -> Option<Part> {
        let (namespace, name) = names(service)?;
        Some(Part::Service { namespace, name })
    }

    /// The part of a slice's records: its service's.
    pub fn of_slice(slice: &SliceEntry) -> Option<Part> {
        let (namespace, _) = names(slice)?;
        let name = slice.service.as_deref().and_then(label)?;
        Some(Part::Service { namespace, name })
    }

    /// The parts a pod's records can fall in: its namespace's pods, and the service its
    /// `subdomain` names when it has a hostname too.
    pub fn of_pod(pod: &PodEntry) -> Vec<Part> {
        let Some((namespace, _)) = names(pod) else {
            return Vec::new();
        };
        let mut parts = Vec::with_capacity(2);
        let subdomain = pod.subdomain.as_deref().and_then(label);
        let hostname = pod.hostname.as_deref().and_then(label);
        if let (Some(name), Some(_)) = (subdomain, hostname) {
            parts.push(Part::Service {
                namespace: namespace.clone(),
                name,
            });
        }
        parts.push(Part::Pods { namespace });
        parts
    }

    /// The namespace the part is of.
    pub fn namespace(&self) -> &str {
        match self {
            Part::Service { namespace, .. } | Part::Pods { namespace } => namespace,
        }
    }

    /// The labels of the part's top name below the domain, from the leftmost:
    /// `[service, namespace, "svc"]` or `[namespace, "pod"]`.
    pub fn labels(&self) -> Vec<&str> {
        match self {
            Part::Service { namespace, name } => vec![name, namespace, "svc"],
            Part::Pods { namespace } => vec![namespace, "pod"],
        }
    }
}

/// The namespace a Service, EndpointSlice or Pod makes exist (`<ns>.svc.<domain>`), if the
/// rules read it (a valid namespace and name).
pub fn namespace_of<T: Named>(entry: &T) -> Option<String> {
    names(entry).map(|(namespace, _)| namespace)
}

/// The namespace a Namespace object makes exist, if its name is a label.
pub fn namespace_named(namespace: &NamespaceEntry) -> Option<String> {
    namespace.object.name.as_deref().and_then(label)
}

/// An object's namespace and name as labels, if both are.
fn names<T: Named>(entry: &T) -> Option<(String, String)> {
    let object = entry.object();
    let namespace = object.namespace.as_deref().and_then(label)?;
    let name = object.name.as_deref().and_then(label)?;
    Some((namespace, name))
}
