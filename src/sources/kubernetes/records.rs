//! The records of the cluster zone, built from the cluster's objects by the Kubernetes
//! DNS-Based Service Discovery specification, schema 1.1.0 (kubernetes/dns,
//! `docs/specification.md`), and CoreDNS's `kubernetes` plugin where the specification leaves a
//! choice. [`build`] is pure: the same objects give the same records, in the same order.
//!
//! | objects | records |
//! |---|---|
//! | (always) | apex SOA and NS; `dns-version.<zone>. TXT "1.1.0"` (spec §2.2) |
//! | ClusterIP service | A/AAAA per cluster IP; SRV per named port; PTR per cluster IP (§2.3) |
//! | headless service | A/AAAA per ready endpoint, at the service and at the endpoint's own name; SRV per ready endpoint × named port; PTR per endpoint address (§2.4) |
//! | ExternalName service | CNAME to the external name (§2.5) |
//! | pod, `pods verified` | `<dashed-ip>.<ns>.pod.<zone>` A/AAAA (CoreDNS) |
//! | pod with `hostname` + `subdomain` | `<hostname>.<subdomain>.<ns>.svc.<zone>` A/AAAA, when a headless service named like the subdomain selects it |
//!
//! "Ready" is the EndpointSlice's `conditions.ready`, where absent means ready (its API
//! documentation: "nil should be interpreted as true"); a service with
//! `publishNotReadyAddresses` publishes every endpoint.
//!
//! Names are lower case. Kubernetes object names are already DNS labels (RFC 1123), but
//! manifests read from files have not been through the API server's validation, so anything
//! that is not a valid label is skipped (with a debug log), never escaped into a strange name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::objects::ClusterObjects;

/// The schema version of the specification implemented, served at `dns-version.<zone>.`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The label that ties an EndpointSlice to its service (discovery.k8s.io/v1).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// SOA timers, CoreDNS's: refresh 2 h, retry 30 min, expire 1 day. Nothing transfers this zone
/// (AXFR is refused), so they are informative; the minimum field is the record TTL, which is also
/// the negative-caching TTL (RFC 2308 §5).
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// The longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// Whether and how `<address>.<ns>.pod.<zone>` names are answered (CoreDNS's `pods` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodMode {
    /// No pod names: they are NXDOMAIN.
    Disabled,
    /// Any well-formed name answers the address written in it, without looking at the pods;
    /// kept for compatibility with kube-dns, as CoreDNS does.
    Insecure,
    /// Only the addresses of pods that exist in that namespace.
    Verified,
}

#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// The cluster domain, fully qualified, e.g. `cluster.local.`.
    pub domain: Name,
    /// The TTL of every record, and the SOA minimum (negative TTL).
    pub ttl: u32,
    pub pods: PodMode,
}

#[derive(Clone, Debug, Default)]
pub struct ClusterRecords {
    /// Every record of the cluster zone (owners at or under `domain`): SOA and NS at the apex,
    /// the `dns-version` TXT, and the service/endpoint/pod records. Sorted in canonical order
    /// (RFC 4034 §6), without repeats.
    pub records: Vec<Record>,
    /// Names that exist without records, so they answer NODATA not NXDOMAIN: `<ns>.svc.<domain>`
    /// for every namespace that exists (from Namespace objects, or any object in that
    /// namespace), and `svc.<domain>`, `pod.<domain>`. Also `<ns>.pod.<domain>` for those
    /// namespaces when pod names are answered, and every other empty non-terminal the records
    /// imply (`_tcp.<svc>.<ns>.svc.<domain>` under an SRV owner, RFC 8020). Sorted, no repeats,
    /// none of them owns a record.
    pub empty_names: Vec<Name>,
    /// PTR records for service ClusterIPs and endpoint addresses (owners under in-addr.arpa. /
    /// ip6.arpa.). Sorted, without repeats. Only cluster addresses are here: a reverse question
    /// for any other address is not this zone's and should go on down the chain.
    pub reverse: Vec<Record>,
}

impl ClusterRecords {
    /// The apex SOA, for the authority section of NXDOMAIN and NODATA answers.
    pub fn soa(&self) -> Option<&Record> {
        self.records
            .iter()
            .find(|record| record.record_type() == RecordType::SOA)
    }
}

/// Builds the zone from `objects`.
///
/// The SOA serial is the 32-bit FNV-1a hash of every other record, reverse record and empty
/// name, in their sorted text form: it changes exactly when what the zone answers changes, and
/// is the same on every replica that has seen the same objects. It is not increasing (RFC 1982
/// serial arithmetic) since nothing transfers this zone; whoever needs it to increase can replace
/// it when it changes.
pub fn build(objects: &ClusterObjects, settings: &ClusterSettings) -> ClusterRecords {
    let mut domain = settings.domain.to_lowercase();
    domain.set_fqdn(true);
    let mut zone = Zone {
        domain,
        ttl: settings.ttl,
        records: Vec::new(),
        reverse: Vec::new(),
        namespaces: BTreeSet::new(),
        endpoint_names: BTreeSet::new(),
    };

    let services = latest(&objects.services, |service| &service.metadata);
    let slices = latest(&objects.endpoint_slices, |slice| &slice.metadata);
    let pods = latest(&objects.pods, |pod| &pod.metadata);
    for namespace in &objects.namespaces {
        match namespace.metadata.name.as_deref().and_then(label) {
            Some(name) => {
                zone.namespaces.insert(name);
            }
            None => tracing::debug!(?namespace.metadata.name, "namespace skipped: no valid name"),
        }
    }
    for (namespace, _) in services.keys().chain(slices.keys()).chain(pods.keys()) {
        zone.namespaces.insert(namespace.clone());
    }

    zone.apex_records();
    // Slices by (namespace, service name), in the order of their own names.
    let mut slices_of: BTreeMap<(&str, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for ((namespace, _), slice) in &slices {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
            .and_then(|name| label(name));
        if let Some(service) = service {
            slices_of
                .entry((namespace.as_str(), service))
                .or_default()
                .push(slice);
        }
    }
    let mut headless = BTreeMap::new();
    for ((namespace, name), service) in &services {
        let key = (namespace.as_str(), name.clone());
        let slices = slices_of.get(&key).map(Vec::as_slice).unwrap_or_default();
        if zone.service(namespace, name, service, slices) {
            headless.insert(key, *service);
        }
    }
    for ((namespace, name), pod) in &pods {
        if settings.pods == PodMode::Verified {
            zone.pod_address_records(namespace, name, pod);
        }
        zone.pod_hostname_records(namespace, name, pod, &headless);
    }
    zone.finish(settings.pods)
}

/// Pods "insecure" (CoreDNS): the address written in a pod name, `1-2-3-4.<ns>.pod.<domain>` ->
/// 1.2.3.4; IPv6 as `2001-db8--1` (each `:` a `-`). None if `name` is not of that shape or mode
/// is not Insecure.
///
/// The namespace is checked only for being a label, not against the cluster: current CoreDNS
/// also wants the namespace to exist, which the caller can ask of [`ClusterRecords::empty_names`]
/// (it holds `<ns>.pod.<domain>`, the name's parent, for every namespace there is).
pub fn pod_name_address(name: &Name, settings: &ClusterSettings) -> Option<IpAddr> {
    if settings.pods != PodMode::Insecure || !settings.domain.zone_of(name) {
        return None;
    }
    let labels: Vec<&[u8]> = name.iter().collect();
    let domain_labels = settings.domain.iter().count();
    if labels.len() != domain_labels + 3 || !labels[2].eq_ignore_ascii_case(b"pod") {
        return None;
    }
    std::str::from_utf8(labels[1]).ok().and_then(label)?;
    let address = std::str::from_utf8(labels[0]).ok()?;
    undashed(address)
}

/// The address a dashed label stands for: `10-0-0-3` or `2001-db8--1`. The way CoreDNS tells
/// them apart: three dashes and no `--` is IPv4.
fn undashed(text: &str) -> Option<IpAddr> {
    if text.bytes().filter(|byte| *byte == b'-').count() == 3 && !text.contains("--") {
        Ipv4Addr::from_str(&text.replace('-', "."))
            .ok()
            .map(IpAddr::V4)
    } else {
        Ipv6Addr::from_str(&text.replace('-', ":"))
            .ok()
            .map(IpAddr::V6)
    }
}

/// An address as one label: `10.0.0.3` -> `10-0-0-3`, `2001:db8::1` -> `2001-db8--1`, from the
/// RFC 5952 text form the API server also writes.
fn dashed(address: IpAddr) -> String {
    address.to_string().replace([':', '.'], "-")
}

/// `text` as a lower-case DNS label of letters, digits and hyphens (RFC 1123 §2.1), which every
/// Kubernetes object name used here is; None for anything else.
fn label(text: &str) -> Option<String> {
    let valid = !text.is_empty()
        && text.len() <= MAX_LABEL
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    valid.then(|| text.to_ascii_lowercase())
}

/// The objects by (namespace, name), the last of any repeated one winning (as with
/// `kubectl apply` of the files in order). Objects without a valid namespace and name are
/// skipped: the namespace is never guessed.
fn latest<T>(
    objects: &[T],
    metadata: impl Fn(&T) -> &ObjectMeta,
) -> BTreeMap<(String, String), &T> {
    let mut by_name = BTreeMap::new();
    for object in objects {
        let meta = metadata(object);
        let namespace = meta.namespace.as_deref().and_then(label);
        let name = meta.name.as_deref().and_then(label);
        match (namespace, name) {
            (Some(namespace), Some(name)) => {
                if by_name.insert((namespace, name), object).is_some() {
                    tracing::debug!(?meta.namespace, ?meta.name, "object repeated; the last is used");
                }
            }
            _ => tracing::debug!(
                ?meta.namespace,
                ?meta.name,
                "object skipped: no valid namespace and name"
            ),
        }
    }
    by_name
}

/// The address of a service, endpoint or pod, parsed; None (with a debug log) if it is not one.
fn address(text: &str) -> Option<IpAddr> {
    let parsed = IpAddr::from_str(text).ok();
    if parsed.is_none() {
        tracing::debug!(address = text, "skipped: not an IP address");
    }
    parsed
}

/// A named port: its label (`_https`, `_tcp`), number. Unnamed ports have no SRV (spec §2.3.2).
struct NamedPort {
    name: String,
    protocol: String,
    number: u16,
}

impl NamedPort {
    fn new(name: Option<&str>, protocol: Option<&str>, number: Option<i32>) -> Option<Self> {
        let name = label(name.filter(|name| !name.is_empty())?)?;
        // "protocol ... Default is TCP" (ServicePort and EndpointPort API documentation).
        let protocol = label(protocol.unwrap_or("TCP"))?;
        let number = u16::try_from(number?).ok()?;
        Some(Self {
            name: format!("_{name}"),
            protocol: format!("_{protocol}"),
            number,
        })
    }
}

/// The zone being built.
struct Zone {
    domain: Name,
    ttl: u32,
    records: Vec<Record>,
    reverse: Vec<Record>,
    /// Every namespace that exists, to make `<ns>.svc.<domain>` exist.
    namespaces: BTreeSet<String>,
    /// Owners of endpoint records under headless services, so a pod's hostname does not repeat
    /// what its EndpointSlice already says (or contradict what it says about readiness).
    endpoint_names: BTreeSet<Name>,
}

impl Zone {
    /// `labels` under the domain; None if the result is not a valid name (too long).
    fn name(&self, labels: &[&str]) -> Option<Name> {
        Name::from_labels(labels.iter().map(|label| label.as_bytes()))
            .and_then(|name| name.append_domain(&self.domain))
            .ok()
    }

    fn add(&mut self, owner: &Name, data: RData) {
        self.records
            .push(Record::from_rdata(owner.clone(), self.ttl, data));
    }

    fn add_address(&mut self, owner: &Name, address: IpAddr) {
        let data = match address {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.add(owner, data);
    }

    fn add_reverse(&mut self, address: IpAddr, target: &Name) {
        self.reverse.push(Record::from_rdata(
            Name::from(address),
            self.ttl,
            RData::PTR(PTR(target.clone())),
        ));
    }

    /// NS and `dns-version`; the SOA comes last, in [`Zone::finish`], as its serial hashes the
    /// rest.
    fn apex_records(&mut self) {
        let apex = self.domain.clone();
        if let Some(server) = self.name(&["ns", "dns"]) {
            self.add(&apex, RData::NS(NS(server)));
        }
        if let Some(version) = self.name(&["dns-version"]) {
            self.add(
                &version,
                RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
            );
        }
    }

    /// A service's records; true if it is headless (`clusterIP: None`).
    fn service(
        &mut self,
        namespace: &str,
        name: &str,
        service: &Service,
        slices: &[&EndpointSlice],
    ) -> bool {
        let Some(spec) = service.spec.as_ref() else {
            tracing::debug!(namespace, name, "service skipped: no spec");
            return false;
        };
        let Some(owner) = self.name(&[name, namespace, "svc"]) else {
            return false;
        };
        // spec §2.5: "<service>.<ns>.svc.<zone>. <ttl> IN CNAME <extname>."
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec
                .external_name
                .as_deref()
                .and_then(|external| Name::from_ascii(external).ok())
                .filter(|target| target.iter().count() > 0);
            match target {
                Some(mut target) => {
                    target.set_fqdn(true);
                    self.add(&owner, RData::CNAME(CNAME(target.to_lowercase())));
                }
                None => tracing::debug!(namespace, name, "ExternalName service without a name"),
            }
            return false;
        }

        // `clusterIPs` holds `clusterIP` first, then the other family's (dual stack);
        // "None" in either means headless.
        let cluster_ips: Vec<&str> = match spec.cluster_ips.as_deref() {
            Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
            _ => spec.cluster_ip.as_deref().into_iter().collect(),
        };
        if cluster_ips.first() == Some(&"None") || spec.cluster_ip.as_deref() == Some("None") {
            self.headless_service(&owner, spec.publish_not_ready_addresses, slices);
            return true;
        }
        let addresses: Vec<IpAddr> = cluster_ips
            .into_iter()
            .filter(|ip| !ip.is_empty())
            .filter_map(address)
            .collect();
        if addresses.is_empty() {
            // A manifest written by hand or by `kubectl create --dry-run`, before the API server
            // allocated an address: no address to give, so no name either.
            tracing::debug!(namespace, name, "service skipped: no cluster IP");
            return false;
        }
        // spec §2.3.1: A/AAAA; §2.3.3: PTR.
        for &address in &addresses {
            self.add_address(&owner, address);
            self.add_reverse(address, &owner);
        }
        // spec §2.3.2: "_<port>._<proto>.<service>.<ns>.svc.<zone>. <ttl> IN SRV <weight>
        // <priority> <port-number> <service>.<ns>.svc.<zone>."
        for port in spec.ports.iter().flatten() {
            let named = NamedPort::new(
                port.name.as_deref(),
                port.protocol.as_deref(),
                Some(port.port),
            );
            if let Some(port) = named {
                self.add_srv(&owner, &port, &owner);
            }
        }
        false
    }

    fn add_srv(&mut self, service: &Name, port: &NamedPort, target: &Name) {
        let owner = Name::from_labels([port.name.as_bytes(), port.protocol.as_bytes()])
            .and_then(|labels| labels.append_domain(service));
        if let Ok(owner) = owner {
            self.add(
                &owner,
                RData::SRV(SRV::new(0, 100, port.number, target.clone())),
            );
        }
    }

    /// spec §2.4: a headless service's ready endpoints. None ready, no records: the name does
    /// not exist (NXDOMAIN), as in CoreDNS.
    fn headless_service(
        &mut self,
        owner: &Name,
        publish_not_ready: Option<bool>,
        slices: &[&EndpointSlice],
    ) {
        let publish_not_ready = publish_not_ready.unwrap_or(false);
        for slice in slices {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue; // "FQDN" is deprecated and has no address to give
            }
            let ports: Vec<NamedPort> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|port| {
                    NamedPort::new(port.name.as_deref(), port.protocol.as_deref(), port.port)
                })
                .collect();
            for endpoint in &slice.endpoints {
                let ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|conditions| conditions.ready)
                    .unwrap_or(true);
                if !ready && !publish_not_ready {
                    continue;
                }
                let hostname = endpoint.hostname.as_deref().and_then(label);
                for address in endpoint.addresses.iter().filter_map(|text| address(text)) {
                    // spec §2.4.1: `<hostname>.<service>...`; without a hostname, CoreDNS's
                    // dashed address.
                    let endpoint_label = hostname.clone().unwrap_or_else(|| dashed(address));
                    let Some(endpoint_name) = Name::from_labels([endpoint_label.as_bytes()])
                        .and_then(|label| label.append_domain(owner))
                        .ok()
                    else {
                        continue;
                    };
                    self.add_address(owner, address);
                    self.add_address(&endpoint_name, address);
                    self.add_reverse(address, &endpoint_name);
                    for port in &ports {
                        self.add_srv(owner, port, &endpoint_name);
                    }
                    self.endpoint_names.insert(endpoint_name);
                }
            }
        }
    }

    /// `pods verified`: `<dashed-ip>.<ns>.pod.<domain>` for each address of a pod that is there.
    fn pod_address_records(&mut self, namespace: &str, name: &str, pod: &Pod) {
        if !is_running(pod) {
            return;
        }
        for address in pod_addresses(pod) {
            let dashed = dashed(address);
            if let Some(owner) = self.name(&[&dashed, namespace, "pod"]) {
                self.add_address(&owner, address);
            } else {
                tracing::debug!(namespace, name, "pod address skipped: not a valid name");
            }
        }
    }

    /// Row 12 of the checklist: a pod with `hostname` and `subdomain` is
    /// `<hostname>.<subdomain>.<ns>.svc.<domain>` when a headless service of that name in its
    /// namespace selects it (spec §2.4.1 through the pod's EndpointSlice entry; this covers
    /// manifests that hold the pod but not the slice the controller would have written). When
    /// the slice has that name already, the slice decides, readiness included.
    fn pod_hostname_records(
        &mut self,
        namespace: &str,
        name: &str,
        pod: &Pod,
        headless: &BTreeMap<(&str, String), &Service>,
    ) {
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let hostname = spec.hostname.as_deref().and_then(label);
        let subdomain = spec.subdomain.as_deref().and_then(label);
        let (Some(hostname), Some(subdomain)) = (hostname, subdomain) else {
            return;
        };
        let Some(service) = headless.get(&(namespace, subdomain.clone())) else {
            return;
        };
        let service_spec = service.spec.as_ref();
        let publish_not_ready = service_spec
            .and_then(|spec| spec.publish_not_ready_addresses)
            .unwrap_or(false);
        if !selects(service, pod) || !is_running(pod) || !(publish_not_ready || is_ready(pod)) {
            return;
        }
        let Some(owner) = self.name(&[&hostname, &subdomain, namespace, "svc"]) else {
            return;
        };
        if self.endpoint_names.contains(&owner) {
            return;
        }
        tracing::debug!(namespace, name, %owner, "pod hostname from the pod itself");
        for address in pod_addresses(pod) {
            self.add_address(&owner, address);
        }
    }

    /// Sorts, removes repeats, works out the empty names, and adds the SOA.
    fn finish(mut self, pods: PodMode) -> ClusterRecords {
        self.records.sort();
        self.records.dedup();
        self.reverse.sort();
        self.reverse.dedup();

        let owners: BTreeSet<Name> = self.records.iter().map(|r| r.name.clone()).collect();
        let mut empty = BTreeSet::new();
        empty.extend(self.name(&["svc"]));
        empty.extend(self.name(&["pod"]));
        for namespace in &self.namespaces {
            empty.extend(self.name(&[namespace, "svc"]));
            if pods != PodMode::Disabled {
                empty.extend(self.name(&[namespace, "pod"]));
            }
        }
        // RFC 8020 §2: a name with names under it exists, so it is NODATA, not NXDOMAIN.
        for owner in &owners {
            let mut parent = owner.base_name();
            while parent.num_labels() > self.domain.num_labels() {
                empty.insert(parent.clone());
                parent = parent.base_name();
            }
        }
        let empty_names: Vec<Name> = empty
            .into_iter()
            .filter(|name| !owners.contains(name))
            .collect();

        let serial = serial(&self.records, &self.reverse, &empty_names);
        let apex = self.domain.clone();
        let server = self.name(&["ns", "dns"]).unwrap_or_else(|| apex.clone());
        let hostmaster = Name::from_labels([b"hostmaster".as_slice()])
            .and_then(|label| label.append_domain(&apex))
            .unwrap_or_else(|_| apex.clone());
        let soa = SOA::new(
            server,
            hostmaster,
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.ttl,
        );
        self.add(&apex, RData::SOA(soa));
        self.records.sort();

        ClusterRecords {
            records: self.records,
            empty_names,
            reverse: self.reverse,
        }
    }
}

/// 32-bit FNV-1a over the zone's contents in text form (see [`build`]).
fn serial(records: &[Record], reverse: &[Record], empty_names: &[Name]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let lines = records
        .iter()
        .chain(reverse)
        .map(ToString::to_string)
        .chain(empty_names.iter().map(ToString::to_string));
    let mut hash = OFFSET_BASIS;
    for line in lines {
        for byte in line.bytes().chain([b'\n']) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// A pod's addresses: `status.podIPs` (both families), or `status.podIP` from older servers.
fn pod_addresses(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut texts: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|pod_ip| pod_ip.ip.as_str())
        .collect();
    if texts.is_empty() {
        texts.extend(status.pod_ip.as_deref());
    }
    let mut addresses: Vec<IpAddr> = texts.into_iter().filter_map(address).collect();
    addresses.dedup();
    addresses
}

/// Whether the pod is there to answer: not being deleted, not finished (CoreDNS skips both).
fn is_running(pod: &Pod) -> bool {
    let finished = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
    pod.metadata.deletion_timestamp.is_none() && !finished
}

/// The pod's `Ready` condition, where absent counts as ready (as for endpoints): a manifest
/// written by hand has no status conditions.
fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"))
        .is_none_or(|ready| ready.status != "False")
}

/// Whether the service's selector picks the pod. A service without a selector takes its
/// endpoints from elsewhere; the pod naming it as its subdomain is taken as enough.
fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.as_ref())
    else {
        return true;
    };
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(key, value)| labels.and_then(|labels| labels.get(key)) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kubernetes::objects::{parse_manifest, read_dir};
    use std::path::Path;

    fn settings(pods: PodMode) -> ClusterSettings {
        ClusterSettings {
            domain: Name::from_ascii("cluster.local.").unwrap(),
            ttl: 5,
            pods,
        }
    }

    /// The example cluster of the checklist, as shipped in `zones/cluster/`.
    fn example(pods: PodMode) -> ClusterRecords {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster");
        let (objects, problems) = read_dir(&dir).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        build(&objects, &settings(pods))
    }

    fn from_yaml(text: &str, pods: PodMode) -> ClusterRecords {
        let mut objects = ClusterObjects::default();
        let problems = parse_manifest(text, "test.yaml", &mut objects);
        assert!(problems.is_empty(), "{problems:?}");
        build(&objects, &settings(pods))
    }

    /// The records owned by `owner`, as zone-file lines.
    fn at(records: &[Record], owner: &str) -> Vec<String> {
        let owner = Name::from_ascii(owner).unwrap();
        records
            .iter()
            .filter(|record| record.name == owner)
            .map(ToString::to_string)
            .collect()
    }

    fn lines(records: &[Record]) -> Vec<String> {
        records.iter().map(ToString::to_string).collect()
    }

    fn empty_names(built: &ClusterRecords) -> Vec<String> {
        built.empty_names.iter().map(ToString::to_string).collect()
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn the_whole_example_cluster() {
        let built = example(PodMode::Disabled);
        let serial = match &built.soa().unwrap().data {
            RData::SOA(soa) => soa.serial,
            other => panic!("{other:?}"),
        };
        let expected = [
            "cluster.local. 5 IN NS ns.dns.cluster.local.".to_string(),
            format!("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"),
            "dns-version.cluster.local. 5 IN TXT 1.1.0".to_string(),
            "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1".to_string(),
            "_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local.".to_string(),
            "ext.ns.svc.cluster.local. 5 IN CNAME www.example.com.".to_string(),
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2".to_string(),
            "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3".to_string(),
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 10-0-0-3.hdls.ns.svc.cluster.local.".to_string(),
            "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 my-pet.hdls.ns.svc.cluster.local.".to_string(),
            "10-0-0-3.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3".to_string(),
            "my-pet.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2".to_string(),
            "subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10".to_string(),
            "busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10".to_string(),
        ];
        let mut got = lines(&built.records);
        let mut expected = expected.to_vec();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!(
            lines(&built.reverse),
            [
                "10.0.0.10.in-addr.arpa. 5 IN PTR busybox-1.subdomain.ns.svc.cluster.local.",
                "2.0.0.10.in-addr.arpa. 5 IN PTR my-pet.hdls.ns.svc.cluster.local.",
                "3.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-3.hdls.ns.svc.cluster.local.",
                "1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local.",
            ]
        );
    }

    #[test]
    fn row_01_dns_version() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.records, "dns-version.cluster.local."),
            ["dns-version.cluster.local. 5 IN TXT 1.1.0"]
        );
    }

    #[test]
    fn row_02_cluster_ip_service_a_and_dual_stack() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.records, "kubernetes.default.svc.cluster.local."),
            ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]
        );
        let dual = from_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec:\n  clusterIP: 10.96.0.20\n  clusterIPs: [10.96.0.20, 'fd00:10:96::20']\n  ipFamilies: [IPv4, IPv6]\n",
            PodMode::Disabled,
        );
        assert_eq!(
            at(&dual.records, "web.app.svc.cluster.local."),
            [
                "web.app.svc.cluster.local. 5 IN A 10.96.0.20",
                "web.app.svc.cluster.local. 5 IN AAAA fd00:10:96::20",
            ]
        );
        let v6 = from_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {clusterIP: 'fd00:10:96::20'}\n",
            PodMode::Disabled,
        );
        assert_eq!(
            at(&v6.records, "web.app.svc.cluster.local."),
            ["web.app.svc.cluster.local. 5 IN AAAA fd00:10:96::20"]
        );
    }

    #[test]
    fn row_03_ipv4_only_service_has_no_aaaa() {
        // The name has records (so it exists: NODATA for AAAA, TXT), none of them AAAA or TXT.
        let built = example(PodMode::Disabled);
        let owner = name("kubernetes.default.svc.cluster.local.");
        let types: Vec<RecordType> = built
            .records
            .iter()
            .filter(|record| record.name == owner)
            .map(Record::record_type)
            .collect();
        assert_eq!(types, [RecordType::A]);
        assert!(!built.empty_names.contains(&owner));
    }

    #[test]
    fn row_04_srv_for_named_ports_only() {
        let built = from_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec:\n  clusterIP: 10.96.0.20\n  ports:\n  - {name: http, port: 80}\n  - {name: dns, port: 53, protocol: UDP}\n  - {port: 8080}\n",
            PodMode::Disabled,
        );
        let srv: Vec<String> = lines(&built.records)
            .into_iter()
            .filter(|line| line.contains(" SRV "))
            .collect();
        assert_eq!(
            srv,
            [
                "_http._tcp.web.app.svc.cluster.local. 5 IN SRV 0 100 80 web.app.svc.cluster.local.",
                "_dns._udp.web.app.svc.cluster.local. 5 IN SRV 0 100 53 web.app.svc.cluster.local.",
            ]
        );
        let example = example(PodMode::Disabled);
        assert_eq!(
            at(&example.records, "_https._tcp.kubernetes.default.svc.cluster.local."),
            ["_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."]
        );
    }

    #[test]
    fn row_05_ptr_for_cluster_ips() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.reverse, "1.0.96.10.in-addr.arpa."),
            ["1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."]
        );
        let v6 = from_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {clusterIP: 'fd00::1'}\n",
            PodMode::Disabled,
        );
        assert_eq!(
            lines(&v6.reverse),
            ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN PTR web.app.svc.cluster.local."]
        );
    }

    /// A headless service `h` in `app` and one slice with the endpoints given (YAML list items).
    fn headless(service_extra: &str, endpoints: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: h, namespace: app}}\nspec:\n  clusterIP: None\n  clusterIPs: [None]\n{service_extra}---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\nmetadata:\n  name: h-abc\n  namespace: app\n  labels: {{kubernetes.io/service-name: h}}\nports:\n- {{name: web, port: 8080, protocol: TCP}}\n- {{port: 9090}}\nendpoints:\n{endpoints}"
        )
    }

    #[test]
    fn row_06_headless_service_answers_ready_endpoints() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.records, "hdls.ns.svc.cluster.local."),
            [
                "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2",
                "hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3",
            ]
        );
        // ready: false is left out, ready absent or null counts as ready.
        let endpoints = "- {addresses: [10.1.0.1], conditions: {ready: true}}\n\
                         - {addresses: [10.1.0.2], conditions: {ready: false}}\n\
                         - {addresses: [10.1.0.3], conditions: {ready: null}}\n\
                         - {addresses: [10.1.0.4]}\n";
        let built = from_yaml(&headless("", endpoints), PodMode::Disabled);
        assert_eq!(
            at(&built.records, "h.app.svc.cluster.local."),
            [
                "h.app.svc.cluster.local. 5 IN A 10.1.0.1",
                "h.app.svc.cluster.local. 5 IN A 10.1.0.3",
                "h.app.svc.cluster.local. 5 IN A 10.1.0.4",
            ]
        );
        // publishNotReadyAddresses: every endpoint.
        let built = from_yaml(
            &headless("  publishNotReadyAddresses: true\n", endpoints),
            PodMode::Disabled,
        );
        assert_eq!(at(&built.records, "h.app.svc.cluster.local.").len(), 4);
        // No ready endpoint: nothing at or under the name, so it is NXDOMAIN.
        let built = from_yaml(
            &headless(
                "",
                "- {addresses: [10.1.0.2], conditions: {ready: false}}\n",
            ),
            PodMode::Disabled,
        );
        let owner = name("h.app.svc.cluster.local.");
        assert!(built
            .records
            .iter()
            .all(|record| !owner.zone_of(&record.name)));
        assert!(built.empty_names.iter().all(|empty| !owner.zone_of(empty)));
        assert!(built.reverse.is_empty());
        // IPv6 slices give AAAA.
        let v6 = headless("", "- {addresses: ['fd00::5'], hostname: six}\n")
            .replace("addressType: IPv4", "addressType: IPv6");
        let built = from_yaml(&v6, PodMode::Disabled);
        assert_eq!(
            at(&built.records, "h.app.svc.cluster.local."),
            ["h.app.svc.cluster.local. 5 IN AAAA fd00::5"]
        );
    }

    #[test]
    fn row_07_endpoint_names() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.records, "my-pet.hdls.ns.svc.cluster.local."),
            ["my-pet.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.2"]
        );
        assert_eq!(
            at(&built.records, "10-0-0-3.hdls.ns.svc.cluster.local."),
            ["10-0-0-3.hdls.ns.svc.cluster.local. 5 IN A 10.0.0.3"]
        );
        let v6 = headless("", "- {addresses: ['2001:db8::1']}\n")
            .replace("addressType: IPv4", "addressType: IPv6");
        let built = from_yaml(&v6, PodMode::Disabled);
        assert_eq!(
            at(&built.records, "2001-db8--1.h.app.svc.cluster.local."),
            ["2001-db8--1.h.app.svc.cluster.local. 5 IN AAAA 2001:db8::1"]
        );
    }

    #[test]
    fn row_08_headless_srv_per_ready_endpoint_and_named_port() {
        let built = example(PodMode::Disabled);
        // Canonical order compares RDATA in wire form, where a name starts with its first
        // label's length: `my-pet` (6) before `10-0-0-3` (8).
        assert_eq!(
            at(&built.records, "_https._tcp.hdls.ns.svc.cluster.local."),
            [
                "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 my-pet.hdls.ns.svc.cluster.local.",
                "_https._tcp.hdls.ns.svc.cluster.local. 5 IN SRV 0 100 443 10-0-0-3.hdls.ns.svc.cluster.local.",
            ]
        );
        let endpoints = "- {addresses: [10.1.0.1], hostname: a}\n\
                         - {addresses: [10.1.0.2], conditions: {ready: false}, hostname: b}\n";
        let built = from_yaml(&headless("", endpoints), PodMode::Disabled);
        let srv: Vec<String> = lines(&built.records)
            .into_iter()
            .filter(|line| line.contains(" SRV "))
            .collect();
        assert_eq!(
            srv,
            ["_web._tcp.h.app.svc.cluster.local. 5 IN SRV 0 100 8080 a.h.app.svc.cluster.local."]
        );
    }

    #[test]
    fn row_09_ptr_for_endpoints() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.reverse, "2.0.0.10.in-addr.arpa."),
            ["2.0.0.10.in-addr.arpa. 5 IN PTR my-pet.hdls.ns.svc.cluster.local."]
        );
        assert_eq!(
            at(&built.reverse, "3.0.0.10.in-addr.arpa."),
            ["3.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-3.hdls.ns.svc.cluster.local."]
        );
    }

    #[test]
    fn row_10_external_name_is_a_cname() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.records, "ext.ns.svc.cluster.local."),
            ["ext.ns.svc.cluster.local. 5 IN CNAME www.example.com."]
        );
        // Written with a final dot or in capitals, the same target.
        let built = from_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: e, namespace: app}\nspec: {type: ExternalName, externalName: WWW.Example.COM.}\n",
            PodMode::Disabled,
        );
        assert_eq!(
            lines(&built.records)
                .into_iter()
                .filter(|line| line.contains("CNAME"))
                .collect::<Vec<_>>(),
            ["e.app.svc.cluster.local. 5 IN CNAME www.example.com."]
        );
    }

    #[test]
    fn row_11_pod_names_insecure() {
        let insecure = settings(PodMode::Insecure);
        let cases = [
            ("1-2-3-4.ns.pod.cluster.local.", Some("1.2.3.4")),
            ("1-2-3-4.NS.Pod.Cluster.Local.", Some("1.2.3.4")),
            ("2001-db8--1.ns.pod.cluster.local.", Some("2001:db8::1")),
            (
                "fd00-10-244-1--5.ns.pod.cluster.local.",
                Some("fd00:10:244:1::5"),
            ),
            ("1-2-3.ns.pod.cluster.local.", None),
            ("1-2-3-256.ns.pod.cluster.local.", None),
            ("01-2-3-4.ns.pod.cluster.local.", None),
            ("busybox.ns.pod.cluster.local.", None),
            ("1-2-3-4.pod.cluster.local.", None),
            ("1-2-3-4.a.ns.pod.cluster.local.", None),
            ("1-2-3-4.ns.svc.cluster.local.", None),
            ("1-2-3-4.ns.pod.cluster.example.", None),
            ("1-2-3-4.n_s.pod.cluster.local.", None),
        ];
        for (query, expected) in cases {
            let got = pod_name_address(&name(query), &insecure);
            let expected = expected.map(|text| IpAddr::from_str(text).unwrap());
            assert_eq!(got, expected, "{query}");
        }
        let query = name("1-2-3-4.ns.pod.cluster.local.");
        assert_eq!(pod_name_address(&query, &settings(PodMode::Disabled)), None);
        assert_eq!(pod_name_address(&query, &settings(PodMode::Verified)), None);
        // Neither Disabled nor Insecure writes pod records.
        for mode in [PodMode::Disabled, PodMode::Insecure] {
            let built = example(mode);
            assert!(built
                .records
                .iter()
                .all(|record| !name("pod.cluster.local.").zone_of(&record.name)));
        }
    }

    #[test]
    fn row_11_pod_names_verified() {
        let built = example(PodMode::Verified);
        let pod_records: Vec<String> = lines(&built.records)
            .into_iter()
            .filter(|line| line.contains(".pod.cluster.local."))
            .collect();
        assert_eq!(
            pod_records,
            [
                "10-0-0-10.ns.pod.cluster.local. 5 IN A 10.0.0.10",
                "10-0-0-2.ns.pod.cluster.local. 5 IN A 10.0.0.2",
                "10-0-0-3.ns.pod.cluster.local. 5 IN A 10.0.0.3",
            ]
        );
        // Finished and deleted pods are not there.
        let built = from_yaml(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: done, namespace: app}\nstatus: {phase: Succeeded, podIP: 10.2.0.1}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: going, namespace: app, deletionTimestamp: '2025-01-01T00:00:00Z'}\nstatus: {phase: Running, podIP: 10.2.0.2}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: dual, namespace: app}\nstatus: {phase: Running, podIP: 10.2.0.3, podIPs: [{ip: 10.2.0.3}, {ip: 'fd00::3'}]}\n",
            PodMode::Verified,
        );
        let pod_records: Vec<String> = lines(&built.records)
            .into_iter()
            .filter(|line| line.contains(".pod.cluster.local."))
            .collect();
        assert_eq!(
            pod_records,
            [
                "10-2-0-3.app.pod.cluster.local. 5 IN A 10.2.0.3",
                "fd00--3.app.pod.cluster.local. 5 IN AAAA fd00::3",
            ]
        );
    }

    const SUBDOMAIN_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: subdomain, namespace: ns}\nspec: {clusterIP: None, selector: {app: subdomain}}\n";

    fn pod(labels: &str, ready: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: busybox-1, namespace: ns, labels: {{{labels}}}}}\n\
             spec: {{hostname: busybox-1, subdomain: subdomain, containers: [{{name: b, image: busybox}}]}}\n\
             status: {{phase: Running, podIP: 10.0.0.10, conditions: [{{type: Ready, status: '{ready}'}}]}}\n"
        )
    }

    #[test]
    fn row_12_pod_hostname_and_subdomain() {
        // From the shipped example, where the pod's EndpointSlice says it too: once.
        let built = example(PodMode::Disabled);
        assert_eq!(
            at(&built.records, "busybox-1.subdomain.ns.svc.cluster.local."),
            ["busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10"]
        );
        // From the pod alone.
        let text = format!("{SUBDOMAIN_SERVICE}{}", pod("app: subdomain", "True"));
        let built = from_yaml(&text, PodMode::Disabled);
        assert_eq!(
            lines(&built.records)
                .into_iter()
                .filter(|line| line.contains("subdomain"))
                .collect::<Vec<_>>(),
            ["busybox-1.subdomain.ns.svc.cluster.local. 5 IN A 10.0.0.10"]
        );
        // Not selected, not ready, or no such headless service: nothing.
        for text in [
            format!("{SUBDOMAIN_SERVICE}{}", pod("app: other", "True")),
            format!("{SUBDOMAIN_SERVICE}{}", pod("app: subdomain", "False")),
            format!(
                "{}{}",
                SUBDOMAIN_SERVICE.replace("None", "10.96.0.5"),
                pod("app: subdomain", "True")
            ),
            pod("app: subdomain", "True"),
        ] {
            let built = from_yaml(&text, PodMode::Disabled);
            assert!(
                at(&built.records, "busybox-1.subdomain.ns.svc.cluster.local.").is_empty(),
                "{text}"
            );
        }
    }

    #[test]
    fn row_13_what_does_not_exist_has_no_name() {
        let built = example(PodMode::Insecure);
        for missing in [
            "nope.default.svc.cluster.local.",
            "nope.svc.cluster.local.",
            "kubernetes.nope.svc.cluster.local.",
            "www.example.com.ns.svc.cluster.local.",
            "nope.hdls.ns.svc.cluster.local.",
            "nope.cluster.local.",
        ] {
            let missing = name(missing);
            assert!(built.records.iter().all(|r| r.name != missing), "{missing}");
            assert!(!built.empty_names.contains(&missing), "{missing}");
        }
    }

    #[test]
    fn row_14_empty_non_terminals() {
        let built = example(PodMode::Disabled);
        assert_eq!(
            empty_names(&built),
            [
                "pod.cluster.local.",
                "svc.cluster.local.",
                "default.svc.cluster.local.",
                "_tcp.kubernetes.default.svc.cluster.local.",
                "ns.svc.cluster.local.",
                "_tcp.hdls.ns.svc.cluster.local.",
            ]
        );
        // A namespace with no objects in it, and pod namespaces when pod names are answered.
        let built = from_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: quiet}\n",
            PodMode::Insecure,
        );
        assert_eq!(
            empty_names(&built),
            [
                "pod.cluster.local.",
                "quiet.pod.cluster.local.",
                "svc.cluster.local.",
                "quiet.svc.cluster.local.",
            ]
        );
    }

    #[test]
    fn row_15_cluster_ip_service_without_endpoints() {
        let built = from_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: lonely, namespace: app}\nspec: {clusterIP: 10.96.0.9, selector: {app: none}}\n",
            PodMode::Disabled,
        );
        assert_eq!(
            at(&built.records, "lonely.app.svc.cluster.local."),
            ["lonely.app.svc.cluster.local. 5 IN A 10.96.0.9"]
        );
    }

    #[test]
    fn row_16_apex_soa_and_ns() {
        let built = build(&ClusterObjects::default(), &settings(PodMode::Disabled));
        let apex = at(&built.records, "cluster.local.");
        assert_eq!(apex.len(), 2);
        assert_eq!(apex[0], "cluster.local. 5 IN NS ns.dns.cluster.local.");
        assert!(
            apex[1].starts_with(
                "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
            ),
            "{}",
            apex[1]
        );
        assert!(apex[1].ends_with(" 7200 1800 86400 5"), "{}", apex[1]);
        assert!(built.soa().is_some());
    }

    #[test]
    fn serial_follows_the_contents() {
        let serial = |built: &ClusterRecords| match built.soa().map(|record| &record.data) {
            Some(RData::SOA(soa)) => soa.serial,
            _ => panic!("no SOA"),
        };
        let first = example(PodMode::Disabled);
        assert_eq!(serial(&first), serial(&example(PodMode::Disabled)));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster");
        let (mut objects, _) = read_dir(&dir).unwrap();
        objects.services.pop();
        assert_ne!(
            serial(&first),
            serial(&build(&objects, &settings(PodMode::Disabled)))
        );
    }

    #[test]
    fn names_are_lower_case_and_repeats_removed() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: Web, namespace: App}\nspec: {clusterIP: 10.96.0.7, ports: [{name: HTTP, port: 80, protocol: TCP}]}\n---\n\
                    apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\nspec: {clusterIP: 10.96.0.7, ports: [{name: http, port: 80}]}\n";
        let built = from_yaml(text, PodMode::Disabled);
        assert_eq!(
            lines(&built.records)
                .into_iter()
                .filter(|line| line.contains("web"))
                .collect::<Vec<_>>(),
            [
                "web.app.svc.cluster.local. 5 IN A 10.96.0.7",
                "_http._tcp.web.app.svc.cluster.local. 5 IN SRV 0 100 80 web.app.svc.cluster.local.",
            ]
        );
        assert_eq!(built.reverse.len(), 1);
        // The domain as configured, in capitals: answers in lower case all the same.
        let mut objects = ClusterObjects::default();
        parse_manifest(text, "t.yaml", &mut objects);
        let upper = ClusterSettings {
            domain: Name::from_ascii("Cluster.Local").unwrap(),
            ..settings(PodMode::Disabled)
        };
        let built = build(&objects, &upper);
        assert!(lines(&built.records)
            .iter()
            .all(|line| line.contains("cluster.local.")));
    }

    #[test]
    fn missing_fields_and_odd_values_do_not_panic() {
        use k8s_openapi::api::core::v1::{Namespace, ServiceSpec};
        use k8s_openapi::api::discovery::v1::Endpoint;
        let mut objects = ClusterObjects::default();
        objects.services.push(Service::default());
        objects.services.push(Service {
            metadata: ObjectMeta {
                name: Some("x".repeat(200)),
                namespace: Some("y".repeat(63)),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.0.0.1".into()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
        objects.services.push(Service {
            metadata: ObjectMeta {
                name: Some("a".into()),
                namespace: Some("b".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ips: Some(vec!["not-an-ip".into(), "".into()]),
                type_: Some("ExternalName".into()),
                external_name: Some("".into()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
        objects.endpoint_slices.push(EndpointSlice {
            address_type: "FQDN".into(),
            endpoints: vec![Endpoint::default()],
            ..EndpointSlice::default()
        });
        objects.pods.push(Pod::default());
        objects.namespaces.push(Namespace::default());
        let long = ClusterSettings {
            domain: Name::from_ascii(format!("{}.{}.", "d".repeat(63), "e".repeat(63))).unwrap(),
            ..settings(PodMode::Verified)
        };
        let built = build(&objects, &long);
        assert!(built.soa().is_some());
        let built = build(&objects, &settings(PodMode::Verified));
        assert_eq!(built.records.len(), 3, "{:?}", lines(&built.records));
    }
}
