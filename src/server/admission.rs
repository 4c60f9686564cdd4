//! The front door: every decision about a client, made once per request, before any reply.
//!
//! ```text
//!  UDP datagram ──┐                          ┌─ Admit(Admitted) ─► fast table ─► general path
//!  TCP message ───┼─► Policy::decide(client) ┼─ Refuse ──► REFUSED, built from the query bytes
//!                 │                          ├─ Truncate ► TC=1, no records (the client retries
//!  TCP accept ────┴─► Admission::connect     │             over TCP, which proves its address)
//!                     (slot, or close on     └─ Drop ────► nothing (TCP: the connection closes)
//!                      Drop or at the cap)
//! ```
//!
//! Why here and only here: the UDP fast path answers repeated questions from encoded replies
//! before the engine runs, so a check inside the engine would be skipped by every reused reply,
//! and a copy of it inside the fast path would be a second front door that could drift from the
//! first. Every listener asks [`Admission`] first, and the rest of the server can only be
//! reached with the [`Admitted`] it returns: [`super::Engine::answer`] and the fast table's
//! lookup take one, and only this module can make one.
//!
//! What is decided here:
//! - `[access]`: the most specific prefix holding the client says allow, refuse (REFUSED with
//!   Extended DNS Error 18, Prohibited) or deny (nothing; over TCP, closed at accept). Without
//!   `[access]`, loopback and private networks are answered and everyone else refused
//!   (`config::AccessConfig::default`);
//! - the TCP connection cap (`server.tcp_max_connections`), at accept.
//!
//! Cost on the hot path: the policy is loaded once per batch of datagrams (an `ArcSwap` load),
//! and deciding is a branch per datagram; `benches/engine.rs` (`admission/admit_all`) measures
//! it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::chain::{Client, Transport};
use crate::config::{AccessAction, AccessConfig};

/// What the front door does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Answer it.
    Admit,
    /// Answer REFUSED (RFC 1035 §4.1.1: "The name server refuses to perform the specified
    /// operation for policy reasons").
    Refuse,
    /// Answer with TC=1 and no records: a client that is real retries over TCP (RFC 7766 §5),
    /// a spoofed address gets a reply no larger than the query (BIND's RRL "slip").
    Truncate,
    /// Send nothing.
    Drop,
}

/// The proof that a request passed the front door. Only [`Admission`] makes one, so nothing
/// that takes it can be reached around the front door.
#[derive(Clone, Copy, Debug)]
pub struct Admitted {
    client: Client,
}

impl Admitted {
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// What the front door says about one request, with the proof when it admits.
#[derive(Clone, Copy, Debug)]
pub enum Verdict {
    Admit(Admitted),
    /// Not admitted: `Refuse`, `Truncate` or `Drop` (never `Admit`).
    Reject(Decision),
}

impl Verdict {
    /// The proof of admission, if admitted.
    pub fn admitted(self) -> Option<Admitted> {
        match self {
            Self::Admit(admitted) => Some(admitted),
            Self::Reject(_) => None,
        }
    }
}

/// The rules the front door applies; replaced whole on reload, so a batch of datagrams sees one
/// version.
#[derive(Debug, Default)]
pub struct Policy {
    /// `[access]`, most specific prefix first, per family. Empty: everyone admitted.
    ipv4: Vec<(Ipv4Net, Decision)>,
    ipv6: Vec<(Ipv6Net, Decision)>,
    /// A rule over the client that replaces the prefixes: the hook tests use to prove that
    /// every listener asks (and rate limiting will extend).
    rule: Option<fn(&Client) -> Decision>,
}

impl Policy {
    /// Admits every client (tests, benchmarks).
    pub fn admit_all() -> Self {
        Self::default()
    }

    /// A policy that decides by `rule`.
    pub fn with_rule(rule: fn(&Client) -> Decision) -> Self {
        Self {
            rule: Some(rule),
            ..Self::default()
        }
    }

    /// The policy of `[access]`.
    pub fn from_access(access: &AccessConfig) -> Self {
        let decision = |action: AccessAction| match action {
            AccessAction::Allow => Decision::Admit,
            AccessAction::Refuse => Decision::Refuse,
            AccessAction::Deny => Decision::Drop,
        };
        let mut policy = Self::default();
        for (network, action) in &access.rules {
            match network {
                IpNet::V4(network) => policy.ipv4.push((*network, decision(*action))),
                IpNet::V6(network) => policy.ipv6.push((*network, decision(*action))),
            }
        }
        // The first match is the most specific.
        policy
            .ipv4
            .sort_by_key(|(network, _)| std::cmp::Reverse(network.prefix_len()));
        policy
            .ipv6
            .sort_by_key(|(network, _)| std::cmp::Reverse(network.prefix_len()));
        policy
    }

    /// What the prefixes say about `ip`: the most specific that holds it; admitted when none
    /// is configured. An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
    fn by_prefix(&self, ip: IpAddr) -> Decision {
        if self.ipv4.is_empty() && self.ipv6.is_empty() {
            return Decision::Admit;
        }
        let found = match ip {
            IpAddr::V4(ip) => self.ipv4.iter().find(|(n, _)| n.contains(&ip)),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(ip) => self.ipv4.iter().find(|(n, _)| n.contains(&ip)),
                None => {
                    return self
                        .ipv6
                        .iter()
                        .find(|(n, _)| n.contains(&ip))
                        .map_or(Decision::Refuse, |(_, d)| *d)
                }
            },
        };
        // No rule holds it (the rules always end in a catch-all; this is the safe side).
        found.map_or(Decision::Refuse, |(_, decision)| *decision)
    }

    /// The decision for one request from `client`. A truncation over TCP admits: TCP has
    /// proven the client's address, which is what a truncated reply asks it to do.
    #[inline]
    pub fn decide(&self, client: &Client) -> Verdict {
        let decision = match self.rule {
            None => self.by_prefix(client.ip()),
            Some(rule) => rule(client),
        };
        match (decision, client.transport) {
            (Decision::Admit, _) | (Decision::Truncate, Transport::Tcp) => {
                Verdict::Admit(Admitted { client: *client })
            }
            (rejected, _) => Verdict::Reject(rejected),
        }
    }
}

/// The front door of one server: the request policy and the TCP connection slots.
pub struct Admission {
    policy: ArcSwap<Policy>,
    /// One permit per open TCP connection: at `server.tcp_max_connections`, more are closed at
    /// accept, so idle connections cannot crowd out the rest.
    tcp_connections: Arc<Semaphore>,
}

/// An admitted TCP connection; its slot is given back when this is dropped.
#[derive(Debug)]
pub struct Connection {
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(policy: Policy, tcp_max_connections: usize) -> Self {
        Self {
            policy: ArcSwap::from_pointee(policy),
            tcp_connections: Arc::new(Semaphore::new(tcp_max_connections)),
        }
    }

    /// Admits everyone, with room for `tcp_max_connections` connections (tests, benchmarks).
    pub fn admit_all(tcp_max_connections: usize) -> Self {
        Self::new(Policy::admit_all(), tcp_max_connections)
    }

    /// The policy now. A listener loads it once per batch and decides each request with it.
    pub fn policy(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// Puts a new policy in place for the requests that arrive from now on (SIGHUP).
    pub fn replace_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// One request from `address` over `transport`.
    pub fn request(&self, address: SocketAddr, transport: Transport) -> Verdict {
        self.policy().decide(&Client::new(address, transport))
    }

    /// A TCP connection from `peer`, at accept: its slot, or `None` to close it at once. A
    /// client whose requests would be dropped is closed here; one that would be refused is
    /// taken, and each of its messages gets its REFUSED (the access-control issue: "deny ...
    /// TCP: closed at accept").
    pub fn connect(&self, peer: SocketAddr) -> Option<Connection> {
        if let Verdict::Reject(Decision::Drop) = self.request(peer, Transport::Tcp) {
            tracing::debug!(%peer, "TCP connection closed at accept");
            return None;
        }
        match Arc::clone(&self.tcp_connections).try_acquire_owned() {
            Ok(slot) => Some(Connection { _slot: slot }),
            Err(_) => {
                tracing::debug!(%peer, "TCP connection closed: at the connection limit");
                None
            }
        }
    }
}

/// The reply for a request the front door did not admit, built from the query's own bytes
/// (no parse beyond the question), or `None` when nothing is sent: a `Drop`, a message too
/// short to answer, a response (never answer one: that is how reflection loops start), or a
/// question that does not walk.
///
/// The reply is the header with QR set, the ID, opcode, RD and CD copied (RFC 1035 §4.1.1,
/// RFC 4035 §3.2.2), RA set, the question echoed, and no records. A refusal to a client that
/// sent EDNS carries an OPT record with Extended DNS Error 18, Prohibited (RFC 8914 §4.19:
/// "the server is unable to respond to the request because the server is not authorized to
/// respond"): 6 bytes more than the query's own OPT, so a refusal is never a useful amplifier.
pub fn rejection(query: &[u8], decision: Decision, out: &mut Vec<u8>) -> bool {
    let rcode = match decision {
        Decision::Admit | Decision::Drop => return false,
        Decision::Refuse => 5,
        Decision::Truncate => 0,
    };
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return false;
    }
    let questions = u16::from_be_bytes([query[4], query[5]]);
    let end = match questions {
        0 => Some(12),
        1 => question_end(query),
        _ => None,
    };
    let Some(end) = end else {
        return false;
    };
    out.clear();
    out.extend_from_slice(&query[..end]);
    // QR=1, opcode and RD kept, AA=0, TC for a truncation.
    out[2] = 0x80
        | (query[2] & 0x79)
        | if decision == Decision::Truncate {
            0x02
        } else {
            0
        };
    // RA=1, Z=0, AD=0, CD kept, the RCODE.
    out[3] = 0x80 | (query[3] & 0x10) | rcode;
    out[6..12].fill(0);
    if decision == Decision::Refuse {
        if let Some(dnssec_ok) = query_opt(query, end) {
            push_prohibited(out, dnssec_ok);
        }
    }
    true
}

/// Extended DNS Error 18, Prohibited (RFC 8914 §5.2).
const EDE_PROHIBITED: u16 = 18;

/// Whether the query's only additional record is an OPT (what a stub's EDNS query carries),
/// and its DO bit (RFC 3225).
fn query_opt(query: &[u8], question_end: usize) -> Option<bool> {
    let additionals = u16::from_be_bytes([query[10], query[11]]);
    let opt = query.get(question_end..question_end + 11)?;
    (additionals == 1 && opt[..3] == [0, 0, 41]).then_some(opt[7] & 0x80 != 0)
}

/// Appends an OPT record holding one EDE option (RFC 6891 §6.1.2, RFC 8914 §2), and counts it.
fn push_prohibited(out: &mut Vec<u8>, dnssec_ok: bool) {
    out.extend_from_slice(&[0, 0, 41]); // root owner, TYPE OPT
    out.extend_from_slice(&crate::server::UDP_PAYLOAD.to_be_bytes()); // CLASS: payload size
    out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]); // RCODE, version, DO
    out.extend_from_slice(&6u16.to_be_bytes()); // RDLENGTH
    out.extend_from_slice(&15u16.to_be_bytes()); // OPTION-CODE: EDE
    out.extend_from_slice(&2u16.to_be_bytes()); // OPTION-LENGTH
    out.extend_from_slice(&EDE_PROHIBITED.to_be_bytes()); // INFO-CODE
    out[11] = 1; // ARCOUNT
}

/// Where the single question of `query` ends, if it walks: an uncompressed name (a query's
/// first name has nothing to point back to), then type and class.
fn question_end(query: &[u8]) -> Option<usize> {
    let mut position = 12;
    loop {
        let length = usize::from(*query.get(position)?);
        match length {
            0 => break,
            1..=63 => position += 1 + length,
            _ => return None,
        }
    }
    let end = position + 1 + 4;
    (end <= query.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Vec<u8> {
        // ID 0xabcd, RD and CD set, one question: example. A IN, then an OPT record.
        let mut q = vec![0xab, 0xcd, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        q
    }

    #[test]
    fn a_refusal_echoes_the_question_and_nothing_else() {
        let mut out = Vec::new();
        assert!(rejection(&query(), Decision::Refuse, &mut out));
        assert_eq!(
            &out[..4],
            &[0xab, 0xcd, 0x81, 0x95],
            "QR RD / RA CD REFUSED"
        );
        assert_eq!(
            &out[4..12],
            &[0, 1, 0, 0, 0, 0, 0, 1],
            "one question, the OPT"
        );
        assert_eq!(
            out.len(),
            12 + 13 + 17,
            "the question and an OPT with EDE 18"
        );
        assert_eq!(&out[out.len() - 6..], &[0, 15, 0, 2, 0, 18]);
        let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(
            parsed.metadata.response_code,
            hickory_proto::op::ResponseCode::Refused
        );
        assert_eq!(parsed.queries[0].name().to_ascii(), "example.");
    }

    #[test]
    fn a_truncation_sets_tc_with_no_error() {
        let mut out = Vec::new();
        assert!(rejection(&query(), Decision::Truncate, &mut out));
        let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert!(parsed.metadata.truncation);
        assert_eq!(
            parsed.metadata.response_code,
            hickory_proto::op::ResponseCode::NoError
        );
        assert!(parsed.answers.is_empty());
    }

    #[test]
    fn nothing_is_sent_for_a_drop_a_response_or_garbage() {
        let mut out = Vec::new();
        assert!(!rejection(&query(), Decision::Drop, &mut out));
        let mut response = query();
        response[2] |= 0x80;
        assert!(!rejection(&response, Decision::Refuse, &mut out));
        assert!(!rejection(&[0; 11], Decision::Refuse, &mut out));
        let mut compressed = query();
        compressed[12] = 0xc0;
        assert!(!rejection(&compressed, Decision::Refuse, &mut out));
        let cut = &query()[..20];
        assert!(!rejection(cut, Decision::Refuse, &mut out));
    }

    #[test]
    fn admit_all_admits_and_counts_tcp_slots() {
        let admission = Admission::admit_all(2);
        let peer: SocketAddr = "192.0.2.1:5300".parse().unwrap();
        assert!(matches!(
            admission.request(peer, Transport::Udp),
            Verdict::Admit(admitted) if admitted.client().address == peer
        ));
        let first = admission.connect(peer).expect("a slot");
        let _second = admission.connect(peer).expect("a slot");
        assert!(admission.connect(peer).is_none(), "at the cap: closed");
        drop(first);
        assert!(admission.connect(peer).is_some(), "a slot given back");
    }

    fn decision(policy: &Policy, address: &str) -> Decision {
        let client = Client::new(
            SocketAddr::new(address.parse().unwrap(), 5300),
            Transport::Udp,
        );
        match policy.decide(&client) {
            Verdict::Admit(_) => Decision::Admit,
            Verdict::Reject(decision) => decision,
        }
    }

    #[test]
    fn without_access_private_networks_are_answered_and_the_world_refused() {
        let policy = Policy::from_access(&AccessConfig::default());
        for (address, expected) in [
            ("127.0.0.1", Decision::Admit),
            ("10.1.2.3", Decision::Admit),
            ("172.31.255.255", Decision::Admit),
            ("172.32.0.1", Decision::Refuse),
            ("192.168.1.1", Decision::Admit),
            ("100.64.0.10", Decision::Admit),
            ("169.254.20.10", Decision::Admit),
            ("8.8.8.8", Decision::Refuse),
            ("198.51.100.7", Decision::Refuse),
            ("::1", Decision::Admit),
            ("fd00::1", Decision::Admit),
            ("fe80::1", Decision::Admit),
            ("2001:db8::1", Decision::Refuse),
            ("::ffff:10.0.0.1", Decision::Admit),
            ("::ffff:8.8.8.8", Decision::Refuse),
        ] {
            assert_eq!(decision(&policy, address), expected, "{address}");
        }
    }

    #[test]
    fn the_most_specific_prefix_decides() {
        let rules = [
            ("10.0.0.0/8", AccessAction::Allow),
            ("10.1.0.0/16", AccessAction::Refuse),
            ("10.1.2.0/24", AccessAction::Deny),
            ("10.1.2.3/32", AccessAction::Allow),
            ("0.0.0.0/0", AccessAction::Refuse),
            ("::/0", AccessAction::Deny),
        ];
        let access = AccessConfig {
            rules: rules
                .iter()
                .map(|(network, action)| (network.parse().unwrap(), *action))
                .collect(),
            built_in: false,
        };
        let policy = Policy::from_access(&access);
        for (address, expected) in [
            ("10.9.9.9", Decision::Admit),
            ("10.1.9.9", Decision::Refuse),
            ("10.1.2.9", Decision::Drop),
            ("10.1.2.3", Decision::Admit),
            ("11.0.0.1", Decision::Refuse),
            ("2001:db8::1", Decision::Drop),
        ] {
            assert_eq!(decision(&policy, address), expected, "{address}");
        }
    }

    #[test]
    fn tcp_closes_at_accept_only_what_is_dropped() {
        let admission = Admission::admit_all(8);
        let peer: SocketAddr = "192.0.2.1:5300".parse().unwrap();
        admission.replace_policy(Policy::with_rule(|_| Decision::Refuse));
        assert!(
            admission.connect(peer).is_some(),
            "refused: taken, each message answered REFUSED"
        );
        assert!(matches!(
            admission.request(peer, Transport::Tcp),
            Verdict::Reject(Decision::Refuse)
        ));
        admission.replace_policy(Policy::with_rule(|_| Decision::Truncate));
        assert!(
            matches!(admission.request(peer, Transport::Tcp), Verdict::Admit(_)),
            "TCP has proven the address a truncation asks for"
        );
        assert!(matches!(
            admission.request(peer, Transport::Udp),
            Verdict::Reject(Decision::Truncate)
        ));
        admission.replace_policy(Policy::with_rule(|_| Decision::Drop));
        assert!(
            admission.connect(peer).is_none(),
            "dropped: closed at accept"
        );
    }
}
