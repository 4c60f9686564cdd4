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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
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
    let mut built = ClusterRecords::default();
    build_into(&ObjectRefs::from(objects), settings, &mut built);
    built
}

/// The objects [`build_into`] reads, borrowed: a feed that keeps its objects (the API watch's
/// stores) need not copy them for each build. At 100,000 endpoints a copy took 60 ms and
/// 67 MiB (`benches/cluster_scale.sh`).
#[derive(Clone, Debug, Default)]
pub struct ObjectRefs<'a> {
    pub services: Vec<&'a Service>,
    pub endpoint_slices: Vec<&'a EndpointSlice>,
    pub pods: Vec<&'a Pod>,
    pub namespaces: Vec<&'a Namespace>,
}

impl<'a> From<&'a ClusterObjects> for ObjectRefs<'a> {
    fn from(objects: &'a ClusterObjects) -> Self {
        Self {
            services: objects.services.iter().collect(),
            endpoint_slices: objects.endpoint_slices.iter().collect(),
            pods: objects.pods.iter().collect(),
            namespaces: objects.namespaces.iter().collect(),
        }
    }
}

/// Where [`build_into`] hands the zone over, for a consumer that keeps it in a form of its own
/// (the cluster zone's `zones::zone`) rather than as [`ClusterRecords`].
pub trait RecordSink {
    /// First: the apex SOA (it comes again among the records, in its place), and how many
    /// records and reverse records follow.
    fn start(&mut self, soa: &Record, records: usize, reverse: usize);
    /// Each record at or under the domain, in canonical order (RFC 4034 §6), once.
    fn record(&mut self, owner: &Name, ttl: u32, data: RecordData<'_>);
    /// Each PTR record of a cluster address (owned by its reverse name, RFC 1035 §3.5 and
    /// RFC 3596 §2.5), in canonical order, once.
    fn reverse(&mut self, address: IpAddr, ttl: u32, target: &Name);
    /// Each name that exists without records, in canonical order.
    fn empty_name(&mut self, name: &Name);
}

impl RecordSink for ClusterRecords {
    fn start(&mut self, _: &Record, records: usize, reverse: usize) {
        self.records.reserve_exact(records);
        self.reverse.reserve_exact(reverse);
    }

    fn record(&mut self, owner: &Name, ttl: u32, data: RecordData<'_>) {
        self.records
            .push(Record::from_rdata(owner.clone(), ttl, data.into_rdata()));
    }

    fn reverse(&mut self, address: IpAddr, ttl: u32, target: &Name) {
        let data = RData::PTR(PTR(target.clone()));
        self.reverse
            .push(Record::from_rdata(reverse_name(address), ttl, data));
    }

    fn empty_name(&mut self, name: &Name) {
        self.empty_names.push(name.clone());
    }
}

/// A record's data as [`build_into`] hands it over, names borrowed.
pub enum RecordData<'a> {
    /// A or AAAA.
    Address(IpAddr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: &'a Name,
    },
    Other(RData),
}

impl RecordData<'_> {
    pub fn into_rdata(self) -> RData {
        match self {
            Self::Address(IpAddr::V4(v4)) => RData::A(A(v4)),
            Self::Address(IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
            Self::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(priority, weight, port, target.clone())),
            Self::Other(data) => data,
        }
    }
}

/// [`build`], the zone handed to `sink`: the same records, in the same order.
pub fn build_into(
    objects: &ObjectRefs<'_>,
    settings: &ClusterSettings,
    sink: &mut impl RecordSink,
) {
    let mut domain = settings.domain.to_lowercase();
    domain.set_fqdn(true);
    let mut zone = Zone {
        domain,
        ttl: settings.ttl,
        names: Vec::new(),
        addresses: Vec::new(),
        records: Keyed::default(),
        reverse: Keyed::default(),
        namespaces: BTreeSet::new(),
        namespace_owner: None,
        // Only a pod with a hostname and a subdomain asks which endpoint names there are.
        endpoint_names: objects
            .pods
            .iter()
            .filter_map(|pod| pod.spec.as_ref())
            .any(|spec| spec.hostname.is_some() && spec.subdomain.is_some())
            .then(HashSet::new),
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
        if !zone.namespaces.contains(namespace) {
            zone.namespaces.insert(namespace.clone());
        }
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
    let mut text = address.to_string().into_bytes();
    for byte in &mut text {
        if matches!(byte, b':' | b'.') {
            *byte = b'-';
        }
    }
    // ASCII digits, letters and hyphens.
    String::from_utf8(text).unwrap_or_default()
}

/// The reverse name of `address` (RFC 1035 §3.5, RFC 3596 §2.5), as `Name::from(address)`
/// writes it but without a string for each label.
fn reverse_name(address: IpAddr) -> Name {
    let labels = || -> Result<Name, hickory_proto::ProtoError> {
        let mut name = Name::root();
        match address {
            IpAddr::V4(v4) => {
                for octet in v4.octets().into_iter().rev() {
                    let (digits, skip) = crate::sources::zones::zone::octet_decimal(octet);
                    name = name.append_label(&digits[skip..])?;
                }
                name = name.append_label(b"in-addr".as_slice())?;
            }
            IpAddr::V6(v6) => {
                for byte in v6.octets().into_iter().rev() {
                    name = name.append_label(&[HEX[usize::from(byte & 0xf)]][..])?;
                    name = name.append_label(&[HEX[usize::from(byte >> 4)]][..])?;
                }
                name = name.append_label(b"ip6".as_slice())?;
            }
        }
        name.append_label(b"arpa".as_slice())
    };
    // Short labels that always fit; hickory's own way otherwise all the same.
    let name = labels().unwrap_or_else(|_| Name::from(address));
    debug_assert_eq!(name.to_string(), Name::from(address).to_string());
    name
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
fn latest<'a, T>(
    objects: &[&'a T],
    metadata: impl Fn(&T) -> &ObjectMeta,
) -> BTreeMap<(String, String), &'a T> {
    let mut by_name = BTreeMap::new();
    for &object in objects {
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

    /// The port with the owner of its SRV records under `service`: `_<port>._<proto>.<service>`.
    fn owner(self, service: &Owner) -> Option<(Self, Owner)> {
        let owner = service.child(&[self.name.as_bytes(), self.protocol.as_bytes()])?;
        Some((self, owner))
    }
}

/// The zone being built.
///
/// Each record is kept as its sort key (see [`Keyed`]) and the index of its owner in `names`,
/// so that sorting, removing repeats and finding the empty non-terminals compare bytes, not
/// hickory `Name`s and `Record`s (`Ord for Record` compares names label by label from the
/// right and encodes both RDATAs anew for every comparison), and no `Record` is made before
/// the records are handed over. At 100,000 endpoints (`benches/cluster_scale.sh`) the build
/// through `Record`s took 1.1 s.
struct Zone {
    domain: Name,
    ttl: u32,
    /// Every owner name and SRV or PTR target, once; records refer to them by index.
    names: Vec<Name>,
    /// The owners of `reverse`, by index: their reverse names are made only if asked for.
    addresses: Vec<IpAddr>,
    /// Records at or under `domain`, keyed relative to it.
    records: Keyed,
    /// PTR records, keyed by their whole owner name.
    reverse: Keyed,
    /// Every namespace that exists, to make `<ns>.svc.<domain>` exist.
    namespaces: BTreeSet<String>,
    /// The last `<namespace>.<kind>.<domain>` of [`Zone::in_namespace`].
    namespace_owner: Option<(String, &'static str, Owner)>,
    /// Keys of the owners of endpoint records under headless services, so a pod's hostname does
    /// not repeat what its EndpointSlice already says (or contradict what it says about
    /// readiness). `None` when there are no pods to ask.
    endpoint_names: Option<HashSet<Vec<u8>>>,
}

/// A name under the domain, with its key: the labels below the domain from the top down, each
/// in lower case and ended by a 0 byte (a 0 or 1 byte inside a label is written 1 1 or 1 2).
/// Comparing keys byte by byte is comparing names in canonical order, RFC 4034 §6.1: "ordered by
/// treating individual labels as unsigned left-justified octet strings. The absence of a octet
/// sorts before a zero value octet", from the most significant label on. The domain is left
/// out: every name here is under it.
struct Owner {
    name: Name,
    key: Vec<u8>,
    /// Its index in [`Zone::names`], once a record has it.
    index: Option<u32>,
}

impl Owner {
    /// `labels` (first the leftmost) under this name; None if the result is not a valid name.
    fn child(&self, labels: &[&[u8]]) -> Option<Owner> {
        // As `Name::from_labels(labels).append_domain(&self.name)`, without its copies.
        let mut name: Option<Name> = None;
        let mut key = Vec::with_capacity(self.key.len() + 32);
        key.extend_from_slice(&self.key);
        for label in labels.iter().rev() {
            name = Some(
                name.as_ref()
                    .unwrap_or(&self.name)
                    .prepend_label(*label)
                    .ok()?,
            );
            push_label_key(&mut key, label);
        }
        Some(Owner {
            name: name.unwrap_or_else(|| self.name.clone()),
            key,
            index: None,
        })
    }
}

/// Appends one label to a name key (see [`Owner`]).
fn push_label_key(key: &mut Vec<u8>, label: &[u8]) {
    for &byte in label {
        match byte {
            0 | 1 => key.extend([1, byte + 1]),
            _ => key.push(byte.to_ascii_lowercase()),
        }
    }
    key.push(0);
}

/// What a record says, when it is added to [`Keyed`].
enum Data {
    Address(IpAddr),
    /// SRV to the name at this index of [`Zone::names`].
    Srv {
        port: u16,
        target: u32,
    },
    /// PTR to the name at this index of [`Zone::names`].
    Ptr(u32),
    Other(RData),
}

/// Where a record's key is in [`Keyed::keys`], and what of it is not in the key.
struct Entry {
    start: u32,
    /// Where the owner's part ends: a 0 byte, the type and the RDATA follow.
    owner_end: u32,
    end: u32,
    /// The owner's index in [`Zone::names`].
    owner: u32,
    /// An SRV or PTR target's index in [`Zone::names`].
    target: u32,
}

/// Records as their sort keys: the owner's key (see [`Owner`]), a 0 byte that ends it, the
/// type, and the RDATA in wire form. Byte order of the keys is hickory's `Ord for Record`, the
/// canonical order of RFC 4034 §6 (class and TTL are the same for every record of the zone).
/// The key holds the record, but for the names inside SRV and PTR (an index of their own) and
/// for types other than A, AAAA, SRV and PTR (kept as they are).
#[derive(Default)]
struct Keyed {
    /// Every key, one after the other.
    keys: Vec<u8>,
    entries: Vec<Entry>,
    /// The RDATA of records of other types, by record number, in that order.
    kept: Vec<(u32, RData)>,
    /// The record numbers, sorted by [`Keyed::sort_from`] and [`Keyed::sort`].
    order: Vec<u32>,
}

impl Keyed {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a record of the owner numbered `owner` (an index of [`Zone::names`], or of
    /// [`Zone::addresses`] for reverse records), whose key `owner_key` writes.
    fn push(
        &mut self,
        names: &[Name],
        owner: u32,
        owner_key: impl FnOnce(&mut Vec<u8>),
        data: Data,
    ) {
        let start = self.keys.len();
        owner_key(&mut self.keys);
        let owner_end = self.keys.len();
        self.keys.push(0);
        let record_type = match &data {
            Data::Address(IpAddr::V4(_)) => RecordType::A,
            Data::Address(IpAddr::V6(_)) => RecordType::AAAA,
            Data::Srv { .. } => RecordType::SRV,
            Data::Ptr(_) => RecordType::PTR,
            Data::Other(data) => data.record_type(),
        };
        self.keys.extend(u16::from(record_type).to_be_bytes());
        let mut target = u32::MAX;
        match data {
            Data::Address(IpAddr::V4(v4)) => self.keys.extend(v4.octets()),
            Data::Address(IpAddr::V6(v6)) => self.keys.extend(v6.octets()),
            Data::Srv { port, target: name } => {
                for field in [SRV_PRIORITY, SRV_WEIGHT, port] {
                    self.keys.extend(field.to_be_bytes());
                }
                push_wire_name(&mut self.keys, &names[name as usize]);
                target = name;
            }
            Data::Ptr(name) => {
                push_wire_name(&mut self.keys, &names[name as usize]);
                target = name;
            }
            Data::Other(data) => {
                emit_rdata(&mut self.keys, &data);
                self.kept.push((self.entries.len() as u32, data));
            }
        }
        // Offsets fit in 32 bits: 4 GiB of keys is far beyond any cluster.
        self.order.push(self.entries.len() as u32);
        self.entries.push(Entry {
            start: start as u32,
            owner_end: owner_end as u32,
            end: self.keys.len() as u32,
            owner,
            target,
        });
    }

    fn key(&self, number: u32) -> &[u8] {
        let entry = &self.entries[number as usize];
        &self.keys[entry.start as usize..entry.end as usize]
    }

    fn owner_key(&self, number: u32) -> &[u8] {
        let entry = &self.entries[number as usize];
        &self.keys[entry.start as usize..entry.owner_end as usize]
    }

    /// The record's data, from its key and what is kept.
    fn data<'a>(&self, names: &'a [Name], number: u32) -> RecordData<'a> {
        let entry = &self.entries[number as usize];
        let key = &self.keys[entry.owner_end as usize + 1..entry.end as usize];
        let (record_type, rdata) = key.split_at(2);
        let target = names.get(entry.target as usize);
        match (
            RecordType::from(u16::from_be_bytes([record_type[0], record_type[1]])),
            target,
        ) {
            (RecordType::A, _) if rdata.len() == 4 => RecordData::Address(IpAddr::V4(
                Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]),
            )),
            (RecordType::AAAA, _) if rdata.len() == 16 => RecordData::Address(IpAddr::V6(
                Ipv6Addr::from(<[u8; 16]>::try_from(rdata).unwrap_or_default()),
            )),
            (RecordType::SRV, Some(target)) if rdata.len() >= 6 => {
                let field = |at: usize| u16::from_be_bytes([rdata[at], rdata[at + 1]]);
                RecordData::Srv {
                    priority: field(0),
                    weight: field(2),
                    port: field(4),
                    target,
                }
            }
            (RecordType::PTR, Some(target)) => RecordData::Other(RData::PTR(PTR(target.clone()))),
            _ => RecordData::Other(
                self.kept
                    .binary_search_by_key(&number, |(kept, _)| *kept)
                    .map(|at| self.kept[at].1.clone())
                    .unwrap_or(RData::Update0(RecordType::NULL)),
            ),
        }
    }

    /// The index of the target of a PTR record.
    fn target(&self, number: u32) -> u32 {
        self.entries[number as usize].target
    }

    /// The owner's number (see [`Keyed::push`]).
    fn owner(&self, number: u32) -> u32 {
        self.entries[number as usize].owner
    }

    /// Sorts the records added since `first` (their own run of the final order).
    fn sort_from(&mut self, first: usize) {
        let mut order = std::mem::take(&mut self.order);
        order[first..].sort_unstable_by(|a, b| self.key(*a).cmp(self.key(*b)));
        self.order = order;
    }

    /// Sorts and removes repeats. Stable, so runs already sorted cost one comparison a record.
    fn sort(&mut self) {
        let mut order = std::mem::take(&mut self.order);
        order.sort_by(|a, b| self.key(*a).cmp(self.key(*b)));
        order.dedup_by(|a, b| self.key(*a) == self.key(*b));
        self.order = order;
    }

    /// Checks, in debug builds, that the record's key is what its data gives.
    fn check(&self, names: &[Name], number: u32) {
        if cfg!(debug_assertions) {
            let data = self.data(names, number).into_rdata();
            let mut key = self.owner_key(number).to_vec();
            key.push(0);
            key.extend(u16::from(data.record_type()).to_be_bytes());
            emit_rdata(&mut key, &data);
            assert_eq!(self.key(number), key.as_slice());
        }
    }
}

/// Every SRV record of the zone has priority 0 and weight 100, as CoreDNS's.
const SRV_PRIORITY: u16 = 0;
const SRV_WEIGHT: u16 = 100;

/// Appends `data` in wire form, as hickory's `Ord for RData` compares it (`RData::to_bytes`).
fn emit_rdata(key: &mut Vec<u8>, data: &RData) {
    // An encoder writes from the start of its buffer: a buffer of its own, as in `to_bytes`.
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    if let Err(error) = data.emit(&mut encoder) {
        // hickory's own comparison goes on the same way with what was written.
        tracing::debug!(%error, ?data, "RDATA not encodable");
    }
    key.extend_from_slice(&bytes);
}

/// A name in wire form, as written (RFC 1035 §3.1); what hickory writes for the target of an
/// SRV or PTR encoded alone.
fn push_wire_name(key: &mut Vec<u8>, name: &Name) {
    for label in name.iter() {
        key.push(label.len() as u8);
        key.extend_from_slice(label);
    }
    key.push(0);
}

/// Appends the key of a whole name (see [`Owner`]), for the reverse names.
fn push_full_name_key(key: &mut Vec<u8>, name: &Name) {
    for label in name.iter().rev() {
        push_label_key(key, label);
    }
}

/// The key of a name's parent: the last label taken off (see [`Owner`]).
fn parent_key(key: &[u8]) -> &[u8] {
    let without_end = &key[..key.len().saturating_sub(1)];
    match without_end.iter().rposition(|byte| *byte == 0) {
        Some(end) => &key[..=end],
        None => &[],
    }
}

impl Zone {
    /// `labels` under the domain; None if the result is not a valid name (too long).
    fn owner(&self, labels: &[&str]) -> Option<Owner> {
        let name = Name::from_labels(labels.iter().map(|label| label.as_bytes()))
            .and_then(|name| name.append_domain(&self.domain))
            .ok()?;
        let mut key = Vec::new();
        for label in labels.iter().rev() {
            push_label_key(&mut key, label.as_bytes());
        }
        Some(Owner {
            name,
            key,
            index: None,
        })
    }

    /// `<label>.<namespace>.<kind>.<domain>`, as [`Zone::owner`] gives it, from the parent
    /// `<namespace>.<kind>.<domain>` kept from the last call: services and pods come namespace
    /// by namespace.
    fn in_namespace(&mut self, label: &str, namespace: &str, kind: &'static str) -> Option<Owner> {
        let cached = self
            .namespace_owner
            .as_ref()
            .is_some_and(|(names, kinds, _)| names == namespace && *kinds == kind);
        if !cached {
            let parent = self.owner(&[namespace, kind])?;
            self.namespace_owner = Some((namespace.to_owned(), kind, parent));
        }
        let (_, _, parent) = self.namespace_owner.as_ref()?;
        parent.child(&[label.as_bytes()])
    }

    fn name(&self, labels: &[&str]) -> Option<Name> {
        self.owner(labels).map(|owner| owner.name)
    }

    fn apex(&self) -> Owner {
        Owner {
            name: self.domain.clone(),
            key: Vec::new(),
            index: None,
        }
    }

    /// `owner`'s index in [`Zone::names`].
    fn index(&mut self, owner: &mut Owner) -> u32 {
        *owner.index.get_or_insert_with(|| {
            self.names.push(owner.name.clone());
            (self.names.len() - 1) as u32
        })
    }

    fn add(&mut self, owner: &mut Owner, data: Data) {
        let index = self.index(owner);
        let key = &owner.key;
        self.records
            .push(&self.names, index, |keys| keys.extend_from_slice(key), data);
    }

    fn add_address(&mut self, owner: &mut Owner, address: IpAddr) {
        self.add(owner, Data::Address(address));
    }

    fn add_srv(&mut self, owner: &mut Owner, port: u16, target: &mut Owner) {
        let target = self.index(target);
        self.add(owner, Data::Srv { port, target });
    }

    fn add_reverse(&mut self, address: IpAddr, target: &mut Owner) {
        let target = self.index(target);
        self.addresses.push(address);
        let owner = (self.addresses.len() - 1) as u32;
        let key = |keys: &mut Vec<u8>| push_reverse_key(keys, address);
        self.reverse
            .push(&self.names, owner, key, Data::Ptr(target));
    }

    /// NS and `dns-version`; the SOA comes last, in [`Zone::finish`], as its serial hashes the
    /// rest.
    fn apex_records(&mut self) {
        let mut apex = self.apex();
        if let Some(server) = self.name(&["ns", "dns"]) {
            self.add(&mut apex, Data::Other(RData::NS(NS(server))));
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
        service: &Service,
        slices: &[&EndpointSlice],
    ) -> bool {
        let Some(spec) = service.spec.as_ref() else {
            tracing::debug!(namespace, name, "service skipped: no spec");
            return false;
        };
        let Some(mut owner) = self.in_namespace(name, namespace, "svc") else {
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
                    let data = RData::CNAME(CNAME(target.to_lowercase()));
                    self.add(&mut owner, Data::Other(data));
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
            self.headless_service(&mut owner, spec.publish_not_ready_addresses, slices);
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
            self.add_address(&mut owner, address);
            self.add_reverse(address, &mut owner);
        }
        // spec §2.3.2: "_<port>._<proto>.<service>.<ns>.svc.<zone>. <ttl> IN SRV <weight>
        // <priority> <port-number> <service>.<ns>.svc.<zone>."
        for port in spec.ports.iter().flatten() {
            let named = NamedPort::new(
                port.name.as_deref(),
                port.protocol.as_deref(),
                Some(port.port),
            );
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
        publish_not_ready: Option<bool>,
        slices: &[&EndpointSlice],
    ) {
        let publish_not_ready = publish_not_ready.unwrap_or(false);
        for slice in slices {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue; // "FQDN" is deprecated and has no address to give
            }
            // Each named port with the owner of its SRV records, `_<port>._<proto>.<service>`.
            let mut ports: Vec<(NamedPort, Owner)> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|port| {
                    NamedPort::new(port.name.as_deref(), port.protocol.as_deref(), port.port)
                })
                .filter_map(|port| port.owner(owner))
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
    fn pod_address_records(&mut self, namespace: &str, name: &str, pod: &Pod) {
        if !is_running(pod) {
            return;
        }
        for address in pod_addresses(pod) {
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
        let Some(mut owner) = self.owner(&[&hostname, &subdomain, namespace, "svc"]) else {
            return;
        };
        let endpoint_names = self.endpoint_names.as_ref();
        if endpoint_names.is_some_and(|names| names.contains(&owner.key)) {
            return;
        }
        tracing::debug!(namespace, name, owner = %owner.name, "pod hostname from the pod itself");
        for address in pod_addresses(pod) {
            self.add_address(&mut owner, address);
        }
    }

    /// Sorts, removes repeats, works out the empty names and the SOA, and hands it all over.
    fn finish(mut self, pods: PodMode, sink: &mut impl RecordSink) {
        self.records.sort();
        self.reverse.sort();
        let names = &self.names;

        // The owners, each once, in order: records of one owner are next to each other.
        let mut owners: Vec<(&[u8], &Name)> = Vec::new();
        for &number in &self.records.order {
            let key = self.records.owner_key(number);
            if owners.last().is_none_or(|(last, _)| *last != key) {
                owners.push((key, &names[self.records.owner(number) as usize]));
            }
        }
        // Keyed like owners, so in canonical order; an ancestor of every name in it is in it.
        let mut empty: BTreeMap<Vec<u8>, Name> = BTreeMap::new();
        let mut add_empty = |owner: Option<Owner>| {
            if let Some(owner) = owner {
                empty.insert(owner.key, owner.name);
            }
        };
        add_empty(self.owner(&["svc"]));
        add_empty(self.owner(&["pod"]));
        for namespace in &self.namespaces {
            add_empty(self.owner(&[namespace, "svc"]));
            if pods != PodMode::Disabled {
                add_empty(self.owner(&[namespace, "pod"]));
            }
        }
        // RFC 8020 §2: a name with names under it exists, so it is NODATA, not NXDOMAIN.
        // Owners in order come in runs of siblings: a parent just seen is not looked up again.
        let mut last_parent: &[u8] = &[];
        for (owner_key, owner) in &owners {
            let mut key = parent_key(owner_key);
            if key == last_parent {
                continue;
            }
            last_parent = key;
            let mut name: Option<Name> = None;
            while !key.is_empty() && !empty.contains_key(key) {
                let parent = name.as_ref().unwrap_or(owner).base_name();
                empty.insert(key.to_vec(), parent.clone());
                name = Some(parent);
                key = parent_key(key);
            }
        }
        // Both in order: the empty names are those not among the owners.
        let mut owner_keys = owners.iter().map(|(key, _)| *key).peekable();
        let empty_names: Vec<Name> = empty
            .into_iter()
            .filter(|(key, _)| {
                while owner_keys
                    .next_if(|owner| *owner < key.as_slice())
                    .is_some()
                {}
                owner_keys.peek() != Some(&key.as_slice())
            })
            .map(|(_, name)| name)
            .collect();

        let serial = serial(&self, &empty_names);
        let apex = self.apex();
        let server = self
            .name(&["ns", "dns"])
            .unwrap_or_else(|| apex.name.clone());
        let hostmaster = Name::from_labels([b"hostmaster".as_slice()])
            .and_then(|label| label.append_domain(&apex.name))
            .unwrap_or_else(|_| apex.name.clone());
        let soa = SOA::new(
            server,
            hostmaster,
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.ttl,
        );
        let soa = Record::from_rdata(apex.name, self.ttl, RData::SOA(soa));
        let mut soa_key = vec![0];
        soa_key.extend(u16::from(RecordType::SOA).to_be_bytes());
        emit_rdata(&mut soa_key, &soa.data);

        sink.start(&soa, self.records.order.len() + 1, self.reverse.order.len());
        // The SOA where its key falls: after the apex's NS.
        let records = &self.records;
        let at = records
            .order
            .partition_point(|number| records.key(*number) < soa_key.as_slice());
        for (position, &number) in records.order.iter().enumerate() {
            if position == at {
                sink.record(&soa.name, soa.ttl, RecordData::Other(soa.data.clone()));
            }
            records.check(names, number);
            let owner = &names[records.owner(number) as usize];
            sink.record(owner, self.ttl, records.data(names, number));
        }
        if at >= records.order.len() {
            sink.record(&soa.name, soa.ttl, RecordData::Other(soa.data));
        }
        for &number in &self.reverse.order {
            self.reverse.check(names, number);
            let address = self.addresses[self.reverse.owner(number) as usize];
            let target = &names[self.reverse.target(number) as usize];
            sink.reverse(address, self.ttl, target);
        }
        for name in &empty_names {
            sink.empty_name(name);
        }
    }
}

/// 32-bit FNV-1a over the zone's contents in text form (see [`build`]): every record and reverse
/// record but the SOA, and the empty names, a line each, in order.
fn serial(zone: &Zone, empty_names: &[Name]) -> u32 {
    use std::fmt::Write;
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let mut hash = OFFSET_BASIS;
    let mut add = |line: &str| {
        for byte in line.bytes().chain([b'\n']) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    let mut line = String::new();
    // The text up to the data (`<owner> <ttl> IN <type> `), of the last owner and type.
    let mut head = String::new();
    let mut last_head: Option<(u32, RecordType)> = None;
    let records = &zone.records;
    for &number in &records.order {
        let owner = &zone.names[records.owner(number) as usize];
        let data = records.data(&zone.names, number);
        let record_type = match &data {
            RecordData::Address(IpAddr::V4(_)) => RecordType::A,
            RecordData::Address(IpAddr::V6(_)) => RecordType::AAAA,
            RecordData::Srv { .. } => RecordType::SRV,
            RecordData::Other(data) => data.record_type(),
        };
        if last_head != Some((records.owner(number), record_type)) {
            head.clear();
            if !push_name_text(&mut head, owner) {
                let _ = write!(head, "{owner}");
            }
            let _ = write!(head, " {} {} {record_type} ", zone.ttl, DNSClass::IN);
            last_head = Some((records.owner(number), record_type));
        }
        line.clear();
        line.push_str(&head);
        let direct = match &data {
            RecordData::Address(address) => {
                push_address_text(&mut line, *address);
                true
            }
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                for number in [priority, weight, port] {
                    push_number_text(&mut line, u32::from(*number));
                    line.push(' ');
                }
                push_name_text(&mut line, target)
            }
            RecordData::Other(_) => false,
        };
        if !direct {
            line.truncate(head.len());
            let _ = write!(line, "{}", data.into_rdata());
        }
        debug_assert_eq!(
            line,
            Record::from_rdata(
                owner.clone(),
                zone.ttl,
                records.data(&zone.names, number).into_rdata()
            )
            .to_string()
        );
        add(&line);
    }
    let middle = format!(" {} {} {} ", zone.ttl, DNSClass::IN, RecordType::PTR);
    for &number in &zone.reverse.order {
        let address = zone.addresses[zone.reverse.owner(number) as usize];
        let target = &zone.names[zone.reverse.target(number) as usize];
        line.clear();
        push_reverse_text(&mut line, address);
        line.push_str(&middle);
        let before_target = line.len();
        if !push_name_text(&mut line, target) {
            line.truncate(before_target);
            let _ = write!(line, "{target}");
        }
        debug_assert_eq!(
            line,
            Record::from_rdata(
                reverse_name(address),
                zone.ttl,
                RData::PTR(PTR(target.clone()))
            )
            .to_string()
        );
        add(&line);
    }
    for name in empty_names {
        line.clear();
        if !push_name_text(&mut line, name) {
            let _ = write!(line, "{name}");
        }
        add(&line);
    }
    hash
}

/// Appends `number` in decimal.
fn push_number_text(line: &mut String, number: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    line.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// Appends `address` as `Display` writes it (RFC 5952 for IPv6).
fn push_address_text(line: &mut String, address: IpAddr) {
    use std::fmt::Write;
    match address {
        IpAddr::V4(v4) => {
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    line.push('.');
                }
                push_number_text(line, u32::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(line, "{v6}");
        }
    }
}

/// Lower-case hexadecimal digits, for reverse names.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The labels of `address`'s reverse name (see [`reverse_name`]), from the most significant,
/// without `in-addr.arpa.` or `ip6.arpa.`, to `label`.
fn reverse_labels(address: IpAddr, mut label: impl FnMut(&[u8])) {
    match address {
        IpAddr::V4(v4) => {
            for octet in v4.octets() {
                let digits = [octet / 100, octet / 10 % 10, octet % 10].map(|d| b'0' + d);
                let skip = if octet >= 100 {
                    0
                } else if octet >= 10 {
                    1
                } else {
                    2
                };
                label(&digits[skip..]);
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets() {
                label(&[HEX[usize::from(byte >> 4)]]);
                label(&[HEX[usize::from(byte & 0xf)]]);
            }
        }
    }
}

/// The reverse name's suffix, from the root: `arpa`, then `in-addr` or `ip6`.
fn reverse_suffix(address: IpAddr) -> [&'static [u8]; 2] {
    match address {
        IpAddr::V4(_) => [b"arpa", b"in-addr"],
        IpAddr::V6(_) => [b"arpa", b"ip6"],
    }
}

/// Appends the key of `address`'s reverse name (see [`Owner`]), as [`push_full_name_key`]
/// would of [`reverse_name`].
fn push_reverse_key(key: &mut Vec<u8>, address: IpAddr) {
    let start = key.len();
    for label in reverse_suffix(address) {
        push_label_key(key, label);
    }
    reverse_labels(address, |label| push_label_key(key, label));
    debug_assert_eq!(
        key[start..],
        {
            let mut full = Vec::new();
            push_full_name_key(&mut full, &reverse_name(address));
            full
        }[..]
    );
}

/// Appends `address`'s reverse name as `Display` writes it.
fn push_reverse_text(line: &mut String, address: IpAddr) {
    let mut labels: Vec<[u8; 3]> = Vec::with_capacity(32);
    let mut lengths: Vec<usize> = Vec::with_capacity(32);
    reverse_labels(address, |label| {
        let mut bytes = [0; 3];
        bytes[..label.len()].copy_from_slice(label);
        labels.push(bytes);
        lengths.push(label.len());
    });
    for (label, length) in labels.iter().zip(&lengths).rev() {
        line.push_str(std::str::from_utf8(&label[..*length]).unwrap_or_default());
        line.push('.');
    }
    let [arpa, middle] = reverse_suffix(address);
    for label in [middle, arpa] {
        line.push_str(std::str::from_utf8(label).unwrap_or_default());
        line.push('.');
    }
}

/// Appends `name` as hickory's `Display` writes it, if no label needs escaping or IDNA
/// (`Label::write_ascii`: letters, digits, `_`, and `-` but not first); false (and maybe part
/// written) otherwise. Through `fmt`, the serial's text took 0.2 s at 100,000 endpoints.
fn push_name_text(line: &mut String, name: &Name) -> bool {
    for (index, label) in name.iter().enumerate() {
        let plain = !label.starts_with(b"xn--")
            && label.iter().enumerate().all(|(at, byte)| {
                byte.is_ascii_alphanumeric() || *byte == b'_' || (*byte == b'-' && at > 0)
            });
        if !plain {
            return false;
        }
        if index > 0 {
            line.push('.');
        }
        // ASCII, as checked.
        line.push_str(std::str::from_utf8(label).unwrap_or_default());
    }
    if name.is_root() || name.is_fqdn() {
        line.push('.');
    }
    true
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

/// A cluster of `services` services with a bit of everything the records are made from: dual
/// stack, IPv6 slices, hostnames, endpoints not ready, several ports and none, a service with
/// two slices that say one address twice, names in capitals, ExternalName, services without
/// an address, and pods with addresses, hostnames and subdomains. For tests that compare two
/// ways of building the zone.
#[cfg(test)]
pub(crate) fn varied_cluster(services: usize) -> ClusterObjects {
    use serde_json::json;
    let mut documents =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quiet"}})];
    let mut address = 0u32;
    for index in 0..services {
        let namespace = format!("ns-{}", index % 7);
        let name = format!("svc-{index}");
        let headless = index % 2 == 1;
        let cluster_ip = if headless {
            "None".to_owned()
        } else {
            format!("10.96.{}.{}", index / 250, index % 250 + 1)
        };
        let mut spec = json!({"clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
            "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        match index % 13 {
            0 => {
                spec = json!({"type": "ExternalName", "externalName": format!("Www.Ext{index}.Example.COM.")})
            }
            2 => {
                spec["clusterIPs"] = json!([cluster_ip, format!("fd00::{index:x}")]);
                spec["ports"] = json!([{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}, {"port": 9}]);
            }
            3 => {
                spec["publishNotReadyAddresses"] = json!(true);
                spec["ports"] = json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}]);
            }
            7 => {
                spec["clusterIP"] = json!("");
                spec["clusterIPs"] = json!([]);
            }
            _ => {}
        }
        let v6 = index % 13 == 5;
        let written = if index % 17 == 4 {
            name.to_uppercase()
        } else {
            name.clone()
        };
        documents.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": written, "namespace": namespace, "labels": {"app": name}}, "spec": spec}));
        let endpoints: Vec<serde_json::Value> = (0..index % 5 + 1)
            .map(|endpoint| {
                address += 1;
                let ip = if v6 {
                    format!("fd00:10::{address:x}")
                } else {
                    std::net::Ipv4Addr::from(0x0a00_0000 + address).to_string()
                };
                let mut entry =
                    json!({"addresses": [ip], "conditions": {"ready": endpoint % 5 != 2}});
                if endpoint % 4 == 1 {
                    entry["hostname"] = json!(format!("host-{endpoint}"));
                }
                if endpoint % 7 == 3 {
                    entry
                        .as_object_mut()
                        .map(|entry| entry.remove("conditions"));
                }
                entry
            })
            .collect();
        let ports = if index % 3 == 0 {
            json!([{"name": "http", "port": 8080}, {"name": "grpc", "port": 9090}, {"port": 1}])
        } else {
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        };
        documents.push(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-a"), "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name}},
            "addressType": if v6 { "IPv6" } else { "IPv4" }, "endpoints": endpoints, "ports": ports}));
        if index % 11 == 1 {
            let repeated = std::net::Ipv4Addr::from(0x0a00_0000 + address).to_string();
            documents.push(
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-b"), "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "endpoints": [{"addresses": [repeated, "10.200.0.1"]}],
                "ports": [{"name": "http", "port": 8080}]}),
            );
        }
    }
    for index in 0..services {
        let service = format!("svc-{}", (index * 2 + 1) % services.max(1));
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{index}"), "namespace": format!("ns-{}", index % 7),
                "labels": {"app": service}},
            "spec": {"containers": []},
            "status": {"phase": "Running", "podIP": std::net::Ipv4Addr::from(0x0b00_0000 + index as u32).to_string()}});
        if index % 3 == 0 {
            pod["spec"]["hostname"] = json!(format!("ph-{index}"));
            pod["spec"]["subdomain"] = json!(service);
        }
        if index % 5 == 1 {
            pod["status"]["podIPs"] =
                json!([{"ip": pod["status"]["podIP"]}, {"ip": format!("fd00:11::{index:x}")}]);
        }
        if index % 7 == 2 {
            pod["status"]["phase"] = json!("Succeeded");
        }
        documents.push(pod);
    }
    let text: Vec<String> = documents
        .iter()
        .map(|document| serde_yaml::to_string(document).unwrap_or_default())
        .collect();
    let mut objects = ClusterObjects::default();
    let problems = super::objects::parse_manifest(&text.join("---\n"), "varied.yaml", &mut objects);
    assert!(problems.is_empty(), "{problems:?}");
    objects
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

    #[test]
    fn records_are_in_canonical_order_without_repeats() {
        let objects = varied_cluster(60);
        for mode in [PodMode::Disabled, PodMode::Insecure, PodMode::Verified] {
            let built = build(&objects, &settings(mode));
            assert!(built.records.len() > 200, "{}", built.records.len());
            // hickory's `Ord for Record` is the canonical order (RFC 4034 §6).
            for pair in built.records.windows(2).chain(built.reverse.windows(2)) {
                assert!(pair[0] < pair[1], "{} / {}", pair[0], pair[1]);
            }
            for pair in built.empty_names.windows(2) {
                assert!(pair[0] < pair[1], "{} / {}", pair[0], pair[1]);
            }
            assert_eq!(
                built.soa().map(|soa| soa.name.clone()),
                Some(name("cluster.local."))
            );
        }
    }
}
