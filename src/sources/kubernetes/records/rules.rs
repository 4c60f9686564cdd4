//! What the specification asks for each object (the table in [`super`]), and the walk over the
//! objects that applies it: [`build_into`].

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{CNAME, NS, TXT};
use hickory_proto::rr::{Name, RData};

use super::entries::{Named, PodEntry, ServiceEntry, ServiceShape, SliceEntry};
use super::order::{Data, Owner, Zone};
use super::{ClusterSettings, ObjectRefs, PodMode, RecordSink, SCHEMA_VERSION};

/// The longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// [`build`](super::build), the zone handed to `sink`: the same records, in the same order.
pub fn build_into(
    objects: &ObjectRefs<'_>,
    settings: &ClusterSettings,
    sink: &mut impl RecordSink,
) {
    let mut domain = settings.domain.to_lowercase();
    domain.set_fqdn(true);
    // Only a pod with a hostname and a subdomain asks which endpoint names there are.
    let endpoint_names = objects
        .pods
        .iter()
        .any(|pod| pod.hostname.is_some() && pod.subdomain.is_some())
        .then(HashSet::new);
    let mut zone = Zone::new(domain, settings.ttl, endpoint_names);
    let (records, reverse) = estimate(objects);
    zone.reserve(records, reverse);

    let services = latest(&objects.services);
    let slices = latest(&objects.endpoint_slices);
    let pods = latest(&objects.pods);
    for namespace in &objects.namespaces {
        match namespace.object.name.as_deref().and_then(label) {
            Some(name) => {
                zone.namespaces.insert(name);
            }
            None => tracing::debug!(?namespace.object.name, "namespace skipped: no valid name"),
        }
    }
    for (namespace, _) in services.keys().chain(slices.keys()).chain(pods.keys()) {
        if !zone.namespaces.contains(namespace) {
            zone.namespaces.insert(namespace.clone());
        }
    }

    zone.apex_records(settings.server_address);
    // Slices by (namespace, service name), in the order of their own names.
    let mut slices_of: BTreeMap<(&str, String), Vec<&SliceEntry>> = BTreeMap::new();
    for ((namespace, _), slice) in &slices {
        let service = slice.service.as_deref().and_then(label);
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
        // Services come in the order of (namespace, name), which is the canonical order of
        // their names, and each one's records are all at or under its name: sorted service by
        // service, the records are in order before the final sort, which then only checks it.
        let first = zone.records.len();
        if zone.service(namespace, name, service, slices) {
            headless.insert(key, *service);
        }
        zone.records.sort_from(first);
    }
    if settings.pods == PodMode::Verified {
        // `<address>.<namespace>.pod.<domain>`: in order namespace by namespace, sorted each.
        let mut first = zone.records.len();
        let mut namespace_now = None;
        for ((namespace, name), pod) in &pods {
            if namespace_now != Some(namespace) {
                zone.records.sort_from(first);
                first = zone.records.len();
                namespace_now = Some(namespace);
            }
            zone.pod_address_records(namespace, name, pod);
        }
        zone.records.sort_from(first);
    }
    for ((namespace, name), pod) in &pods {
        zone.pod_hostname_records(namespace, name, pod, &headless);
    }
    zone.finish(settings.pods, sink);
}

/// About how many records and reverse records `objects` make, a little over rather than
/// under: an address and a PTR for each cluster IP and endpoint address, another address for
/// an endpoint's own name, an SRV per named port, an address per pod address.
fn estimate(objects: &ObjectRefs<'_>) -> (usize, usize) {
    let mut records = 16;
    let mut reverse = 0;
    for service in &objects.services {
        if let ServiceShape::ClusterIps(addresses) = &service.shape {
            records += addresses.len() * (1 + service.ports.len());
            reverse += addresses.len();
        } else {
            records += 1;
        }
    }
    for slice in &objects.endpoint_slices {
        let addresses: usize = slice
            .endpoints
            .iter()
            .map(|endpoint| endpoint.addresses.len())
            .sum();
        records += addresses * (2 + slice.ports.len());
        reverse += addresses;
    }
    for pod in &objects.pods {
        records += 2 * pod.addresses.len();
    }
    (records, reverse)
}

/// Pods "insecure" (CoreDNS): the address written in a pod name, `1-2-3-4.<ns>.pod.<domain>` ->
/// 1.2.3.4; IPv6 as `2001-db8--1` (each `:` a `-`). None if `name` is not of that shape or mode
/// is not Insecure.
///
/// The namespace is checked only for being a label, not against the cluster: current CoreDNS
/// also wants the namespace to exist, which the caller can ask of
/// [`ClusterRecords::empty_names`](super::ClusterRecords::empty_names) (it holds
/// `<ns>.pod.<domain>`, the name's parent, for every namespace there is).
pub fn pod_name_address(name: &Name, settings: &ClusterSettings) -> Option<IpAddr> {
    if settings.pods != PodMode::Insecure || !settings.domain.zone_of(name) {
        return None;
    }
    // `<address>.<namespace>.pod.<domain>`: counted and read without collecting the labels,
    // since every query in the cluster domain asks this first.
    if name.iter().count() != settings.domain.iter().count() + 3 {
        return None;
    }
    let mut labels = name.iter();
    let (address, namespace, pod) = (labels.next()?, labels.next()?, labels.next()?);
    if !pod.eq_ignore_ascii_case(b"pod") {
        return None;
    }
    std::str::from_utf8(namespace).ok().and_then(label)?;
    undashed(std::str::from_utf8(address).ok()?)
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
    let mut text = address.to_string().into_bytes();
    for byte in &mut text {
        if matches!(byte, b':' | b'.') {
            *byte = b'-';
        }
    }
    // ASCII digits, letters and hyphens.
    String::from_utf8(text).unwrap_or_default()
}

/// `text` as a lower-case DNS label of letters, digits and hyphens (RFC 1123 §2.1), which every
/// Kubernetes object name used here is; None for anything else.
pub(super) fn label(text: &str) -> Option<String> {
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
fn latest<'a, T: Named>(objects: &[&'a T]) -> BTreeMap<(String, String), &'a T> {
    let mut by_name = BTreeMap::new();
    for &object in objects {
        let meta = object.object();
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

    /// The port with the owner of its SRV records under `service`: `_<port>._<proto>.<service>`.
    fn owner(self, service: &Owner) -> Option<(Self, Owner)> {
        let owner = service.child(&[self.name.as_bytes(), self.protocol.as_bytes()])?;
        Some((self, owner))
    }
}

impl Zone {
    /// NS and `dns-version`; the SOA comes last, in [`Zone::finish`], as its serial hashes the
    /// rest.
    fn apex_records(&mut self, server_address: Option<IpAddr>) {
        let mut apex = self.apex();
        if let Some(server) = self.name(&["ns", "dns"]) {
            self.add(&mut apex, Data::Other(RData::NS(NS(server))));
        }
        // The NS target's address: this server's own (the downward API's `POD_IP`), as
        // CoreDNS answers `ns.dns.<zone>` with its own address.
        if let (Some(address), Some(mut server)) = (server_address, self.owner(&["ns", "dns"])) {
            self.add_address(&mut server, address);
        }
        if let Some(mut version) = self.owner(&["dns-version"]) {
            let text = TXT::new(vec![SCHEMA_VERSION.to_string()]);
            self.add(&mut version, Data::Other(RData::TXT(text)));
        }
    }

    /// A service's records; true if it is headless (`clusterIP: None`).
    fn service(
        &mut self,
        namespace: &str,
        name: &str,
        service: &ServiceEntry,
        slices: &[&SliceEntry],
    ) -> bool {
        if service.shape == ServiceShape::NoSpec {
            tracing::debug!(namespace, name, "service skipped: no spec");
            return false;
        }
        let Some(mut owner) = self.in_namespace(name, namespace, "svc") else {
            return false;
        };
        // spec §2.5: "<service>.<ns>.svc.<zone>. <ttl> IN CNAME <extname>."
        if let ServiceShape::ExternalName(external_name) = &service.shape {
            let target = external_name
                .as_deref()
                .and_then(|external| Name::from_ascii(external).ok())
                .filter(|target| target.iter().count() > 0);
            match target {
                Some(mut target) => {
                    target.set_fqdn(true);
                    let data = RData::CNAME(CNAME(target.to_lowercase()));
                    self.add(&mut owner, Data::Other(data));
                }
                None => tracing::debug!(namespace, name, "ExternalName service without a name"),
            }
            return false;
        }

        let addresses = match &service.shape {
            ServiceShape::ClusterIps(addresses) => addresses,
            _ => {
                self.headless_service(&mut owner, service.publish_not_ready, slices);
                return true;
            }
        };
        if addresses.is_empty() {
            // A manifest written by hand or by `kubectl create --dry-run`, before the API server
            // allocated an address: no address to give, so no name either.
            tracing::debug!(namespace, name, "service skipped: no cluster IP");
            return false;
        }
        // spec §2.3.1: A/AAAA; §2.3.3: PTR.
        for &address in addresses.iter() {
            self.add_address(&mut owner, address);
            self.add_reverse(address, &mut owner);
        }
        // spec §2.3.2: "_<port>._<proto>.<service>.<ns>.svc.<zone>. <ttl> IN SRV <weight>
        // <priority> <port-number> <service>.<ns>.svc.<zone>."
        for port in service.ports.iter() {
            let named = NamedPort::new(port.name.as_deref(), port.protocol.as_deref(), port.port);
            if let Some((port, mut srv_owner)) = named.and_then(|port| port.owner(&owner)) {
                self.add_srv(&mut srv_owner, port.number, &mut owner);
            }
        }
        false
    }

    /// spec §2.4: a headless service's ready endpoints. None ready, no records: the name does
    /// not exist (NXDOMAIN), as in CoreDNS.
    fn headless_service(
        &mut self,
        owner: &mut Owner,
        publish_not_ready: bool,
        slices: &[&SliceEntry],
    ) {
        for slice in slices {
            if !slice.has_addresses {
                continue; // "FQDN" is deprecated and has no address to give
            }
            // Each named port with the owner of its SRV records, `_<port>._<proto>.<service>`.
            let mut ports: Vec<(NamedPort, Owner)> = slice
                .ports
                .iter()
                .filter_map(|port| {
                    NamedPort::new(port.name.as_deref(), port.protocol.as_deref(), port.port)
                })
                .filter_map(|port| port.owner(owner))
                .collect();
            for endpoint in slice.endpoints.iter() {
                if !endpoint.ready && !publish_not_ready {
                    continue;
                }
                let hostname = endpoint.hostname.as_deref().and_then(label);
                for &address in endpoint.addresses.iter() {
                    // spec §2.4.1: `<hostname>.<service>...`; without a hostname, CoreDNS's
                    // dashed address.
                    let endpoint_label = hostname.clone().unwrap_or_else(|| dashed(address));
                    let Some(mut endpoint_name) = owner.child(&[endpoint_label.as_bytes()]) else {
                        continue;
                    };
                    self.add_address(owner, address);
                    self.add_address(&mut endpoint_name, address);
                    self.add_reverse(address, &mut endpoint_name);
                    for (port, srv_owner) in &mut ports {
                        self.add_srv(srv_owner, port.number, &mut endpoint_name);
                    }
                    if let Some(endpoint_names) = &mut self.endpoint_names {
                        endpoint_names.insert(endpoint_name.key);
                    }
                }
            }
        }
    }

    /// `pods verified`: `<dashed-ip>.<ns>.pod.<domain>` for each address of a pod that is there.
    fn pod_address_records(&mut self, namespace: &str, name: &str, pod: &PodEntry) {
        if !pod.running {
            return;
        }
        for &address in pod.addresses.iter() {
            let dashed = dashed(address);
            if let Some(mut owner) = self.in_namespace(&dashed, namespace, "pod") {
                self.add_address(&mut owner, address);
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
        pod: &PodEntry,
        headless: &BTreeMap<(&str, String), &ServiceEntry>,
    ) {
        let hostname = pod.hostname.as_deref().and_then(label);
        let subdomain = pod.subdomain.as_deref().and_then(label);
        let (Some(hostname), Some(subdomain)) = (hostname, subdomain) else {
            return;
        };
        let Some(service) = headless.get(&(namespace, subdomain.clone())) else {
            return;
        };
        let publish_not_ready = service.publish_not_ready;
        if !selects(service, pod) || !pod.running || !(publish_not_ready || pod.ready) {
            return;
        }
        let Some(mut owner) = self.owner(&[&hostname, &subdomain, namespace, "svc"]) else {
            return;
        };
        let endpoint_names = self.endpoint_names.as_ref();
        if endpoint_names.is_some_and(|names| names.contains(&owner.key)) {
            return;
        }
        tracing::debug!(namespace, name, owner = %owner.name, "pod hostname from the pod itself");
        for &address in pod.addresses.iter() {
            self.add_address(&mut owner, address);
        }
    }
}

/// Whether the service's selector picks the pod. A service without a selector takes its
/// endpoints from elsewhere; the pod naming it as its subdomain is taken as enough.
fn selects(service: &ServiceEntry, pod: &PodEntry) -> bool {
    service
        .selector
        .iter()
        .all(|(key, value)| pod.label(key) == Some(&**value))
}
