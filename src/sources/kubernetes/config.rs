//! `[kubernetes]`: the cluster zone's table, read by the `zones` source that serves it.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::file::{ConfigError, Tables};
use crate::config::values::DomainName;

/// `[kubernetes]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubernetesTable {
    domain: Option<DomainName>,
    manifests: Option<PathBuf>,
    api: Option<String>,
    pods: Option<PodMode>,
    ttl: Option<u32>,
    autopath: Option<bool>,
}

/// `[kubernetes]`: the cluster zone built from Kubernetes objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The cluster domain, fully qualified (`cluster.local.`).
    pub domain: hickory_proto::rr::Name,
    /// Where the Service, EndpointSlice, Pod and Namespace objects come from.
    pub feed: KubernetesFeed,
    pub pods: PodMode,
    pub ttl: u32,
    /// Answer a pod's search-path walk in one round trip (CoreDNS's `autopath @kubernetes`):
    /// the first expansion of an external name gets a CNAME to the name as asked, with its
    /// answer.
    pub autopath: bool,
}

/// The two feeds of the cluster zone; one record builder serves both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubernetesFeed {
    /// A directory of objects (JSON or YAML), polled for changes.
    Manifests(PathBuf),
    /// A live list-and-watch of a Kubernetes API server.
    Api(KubernetesApi),
}

/// How to reach the Kubernetes API (`kubernetes.api`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubernetesApi {
    /// `"in-cluster"`: the pod's service account (token, CA and `KUBERNETES_SERVICE_HOST`).
    InCluster,
    /// A kubeconfig file, at its current context.
    Kubeconfig(PathBuf),
    /// A plain `http://` or `https://` URL, unauthenticated (`kubectl proxy`, tests).
    Url(String),
}

/// Pod records, as CoreDNS's `pods` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodMode {
    /// No `pod.<domain>` records.
    Disabled,
    /// `a-b-c-d.<ns>.pod.<domain>` answers a.b.c.d for any name of that shape, unchecked.
    Insecure,
    /// Only for pods that exist in that namespace with that address.
    Verified,
}

/// Reads `[kubernetes]`, `None` when the file has none.
pub fn configure(tables: &Tables<'_>) -> Result<Option<KubernetesConfig>, ConfigError> {
    let Some(table) = tables.read::<KubernetesTable>("kubernetes")? else {
        return Ok(None);
    };
    let ttl = tables.ttl(table.ttl, 5, "kubernetes.ttl")?;
    let domain = match table.domain {
        Some(domain) => domain.0,
        None => hickory_proto::rr::Name::from_ascii("cluster.local.")
            .map_err(|e| tables.invalid("kubernetes.domain", e.to_string()))?,
    };
    if domain.is_root() {
        return Err(tables.invalid("kubernetes.domain", "the root cannot be the cluster domain"));
    }
    let feed = match (table.manifests, table.api) {
        (Some(_), Some(_)) => {
            return Err(tables.invalid(
                "kubernetes.api",
                "set either kubernetes.manifests or kubernetes.api, not both",
            ))
        }
        (None, None) => {
            return Err(tables.invalid(
                "kubernetes",
                "needs kubernetes.manifests (a directory of objects) or kubernetes.api (\"in-cluster\", a kubeconfig path or a URL)",
            ))
        }
        (Some(directory), None) => KubernetesFeed::Manifests(directory),
        (None, Some(api)) => KubernetesFeed::Api(parse_api(&api, tables)?),
    };
    Ok(Some(KubernetesConfig {
        domain,
        feed,
        pods: table.pods.unwrap_or(PodMode::Insecure),
        ttl,
        autopath: table.autopath.unwrap_or(false),
    }))
}

/// `kubernetes.api`: `"in-cluster"`, an `http(s)://` URL, or else a kubeconfig path.
fn parse_api(value: &str, tables: &Tables<'_>) -> Result<KubernetesApi, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(tables.invalid(
            "kubernetes.api",
            "is empty: use \"in-cluster\", a kubeconfig path or a URL",
        ));
    }
    if value == "in-cluster" {
        return Ok(KubernetesApi::InCluster);
    }
    if let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(tables.invalid("kubernetes.api", format!("{value:?} has no host")));
        }
        return Ok(KubernetesApi::Url(value.to_owned()));
    }
    if value.contains("://") {
        return Err(tables.invalid(
            "kubernetes.api",
            format!("{value:?}: only http:// and https:// URLs are supported"),
        ));
    }
    Ok(KubernetesApi::Kubeconfig(PathBuf::from(value)))
}
