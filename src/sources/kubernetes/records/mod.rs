//! The records of the cluster zone, built from the cluster's objects by the Kubernetes
//! DNS-Based Service Discovery specification, schema 1.1.0 (kubernetes/dns,
//! `docs/specification.md`), and CoreDNS's `kubernetes` plugin where the specification leaves a
//! choice. [`build`] is pure: the same objects give the same records, in the same order.
//!
//! | objects | records |
//! |---|---|
//! | (always) | apex SOA and NS; `dns-version.<zone>. TXT "1.1.0"` (spec §2.2); `ns.dns.<zone>` A/AAAA from `POD_IP`, when set (CoreDNS) |
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
//!
//! # Layout
//!
//! - `entries.rs`: the objects as the rules read them, in compact types: what the API watch
//!   keeps, and what manifests are made into before a build.
//! - `rules.rs`: what the specification asks for each object, and [`build_into`], which walks
//!   the objects through those rules.
//! - `order.rs`: the zone while it is built, each record kept as its sort key, so that the
//!   records come out in canonical order (RFC 4034 §6) without repeats, with the empty
//!   non-terminals and the SOA worked out from them.
//! - `serial.rs`: the SOA serial, a sum of one hash per record, so that it can be made again
//!   when only some parts of the zone are rebuilt.
//! - `parts.rs`: the parts the zone is kept in ([`Part`]: a service's names, a namespace's pod
//!   names), which objects make each, and so which a change rebuilds.
//! - `tests.rs`: the checklist rows, record by record.

mod entries;
mod order;
mod parts;
mod rules;
mod serial;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod varied;

use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::objects::ClusterObjects;
use crate::sources::wire::reverse_name;

pub use entries::{
    ClusterEntries, EndpointEntry, Named, NamespaceEntry, ObjectName, PodEntry, PortEntry,
    ServiceEntry, ServiceShape, SliceEntry,
};
pub use order::soa;
pub use parts::{namespace_named, namespace_of, Part};
pub use rules::{build_into, pod_name_address};
pub use serial::serial_base;
#[cfg(test)]
pub(crate) use varied::varied_cluster;

/// The schema version of the specification implemented, served at `dns-version.<zone>.`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The label that ties an EndpointSlice to its service (discovery.k8s.io/v1): the only label of
/// a slice the records read, and so the only one the API watch keeps of it.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

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
    /// This server's own address, answered at `ns.dns.<zone>` (the apex NS target): from the
    /// downward API's `POD_IP` in a pod.
    pub server_address: Option<IpAddr>,
}

impl ClusterSettings {
    /// This server's address from the environment's `POD_IP` (the manifests set it from the
    /// downward API, `status.podIP`), if it is set and an address.
    pub fn server_address_from_environment() -> Option<IpAddr> {
        let value = std::env::var("POD_IP").ok()?;
        match value.trim().parse() {
            Ok(address) => Some(address),
            Err(_) => {
                tracing::warn!(
                    value,
                    "POD_IP is not an address: ns.dns.<zone> has no A record"
                );
                None
            }
        }
    }
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
/// The SOA serial is a base made of the domain and the TTL plus, for every other record,
/// reverse record and empty name, the 32-bit FNV-1a hash of the wire form it is sorted by
/// (`serial.rs`): it changes exactly when what the zone answers changes, and
/// is the same on every replica that has seen the same objects. It is not increasing (RFC 1982
/// serial arithmetic) since nothing transfers this zone; whoever needs it to increase can replace
/// it when it changes.
pub fn build(objects: &ClusterObjects, settings: &ClusterSettings) -> ClusterRecords {
    let mut built = ClusterRecords::default();
    build_into(
        &ObjectRefs::from(&ClusterEntries::from(objects)),
        settings,
        &mut built,
    );
    built
}

/// The entries [`build_into`] reads, borrowed: a feed that keeps its entries (the API watch's
/// stores) need not copy them for each build. At 100,000 endpoints a copy of the objects took
/// 60 ms and 67 MiB (`benches/cluster_scale.sh`).
#[derive(Clone, Debug, Default)]
pub struct ObjectRefs<'a> {
    pub services: Vec<&'a ServiceEntry>,
    pub endpoint_slices: Vec<&'a SliceEntry>,
    pub pods: Vec<&'a PodEntry>,
    pub namespaces: Vec<&'a NamespaceEntry>,
}

impl<'a> From<&'a ClusterEntries> for ObjectRefs<'a> {
    fn from(objects: &'a ClusterEntries) -> Self {
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
    /// Each record at or under the domain, in canonical order (RFC 4034 §6), once. `item` is
    /// its share of the SOA serial (0 for the SOA itself): the serial is [`serial_base`] plus
    /// every item, so a consumer that keeps the zone in parts can make the serial of the
    /// whole again when it replaces one part (`serial.rs`).
    fn record(&mut self, owner: &Name, ttl: u32, data: RecordData<'_>, item: u32);
    /// Each PTR record of a cluster address (owned by its reverse name, RFC 1035 §3.5 and
    /// RFC 3596 §2.5), in canonical order, once; `item` as for [`RecordSink::record`].
    fn reverse(&mut self, address: IpAddr, ttl: u32, target: &Name, item: u32);
    /// Each name that exists without records, in canonical order; `item` as for
    /// [`RecordSink::record`].
    fn empty_name(&mut self, name: &Name, item: u32);
}

impl RecordSink for ClusterRecords {
    fn start(&mut self, _: &Record, records: usize, reverse: usize) {
        self.records.reserve_exact(records);
        self.reverse.reserve_exact(reverse);
    }

    fn record(&mut self, owner: &Name, ttl: u32, data: RecordData<'_>, _: u32) {
        self.records
            .push(Record::from_rdata(owner.clone(), ttl, data.into_rdata()));
    }

    fn reverse(&mut self, address: IpAddr, ttl: u32, target: &Name, _: u32) {
        let data = RData::PTR(PTR(target.clone()));
        self.reverse
            .push(Record::from_rdata(reverse_name(address), ttl, data));
    }

    fn empty_name(&mut self, name: &Name, _: u32) {
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
