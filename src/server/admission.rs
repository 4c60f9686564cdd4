//! The front door: every decision about a client, made once per request, before any reply.
//!
//! ```text
//!  UDP datagram ──┐                          ┌─ Admit(Admitted) ─► fast table ─► general path
//!  TCP message ───┼─► Policy::decide         ┼─ Refuse ──► REFUSED + EDE 18 (Prohibited)
//!                 │   1. [access] by prefix  ├─ Truncate ► TC=1, no records (the "slip": a
//!                 │   2. UDP: [rate_limit],  │             real client retries over TCP)
//!                 │      unless the client   ├─ BadCookie► BADCOOKIE + a fresh server cookie
//!                 │      holds a valid       │             (the slip, to a cookie client)
//!                 │      server cookie       └─ Drop ────► nothing (TCP: the connection closes)
//!  TCP accept ────┴─► Admission::connect: [access] Drop closes; the global and per-client
//!                     connection caps; above half the slots, idle connections time out fast
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
//! - `[rate_limit]` ([`super::rate_limit`]): UDP responses per client prefix; TCP and clients
//!   with a valid server cookie ([`super::cookies`]) are never limited;
//! - the TCP connection caps (`server.tcp_max_connections`, and per client
//!   `server.tcp_max_connections_per_client`), at accept, and how long an idle connection may
//!   stay ([`Admission::idle_timeout`]).
//!
//! Cost on the hot path: the policy is loaded once per batch of datagrams (an `ArcSwap` load);
//! deciding is a branch per datagram, plus one compare-and-swap on the limiter's table when
//! `[rate_limit]` is on. `benches/engine.rs` (`admission/admit_all`) and BENCHMARKS.md measure
//! it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::cookies::{self, Cookies, Presented};
use super::quick_reply::{self, Shape};
use super::rate_limit::{Limit, RateLimitStats, RateLimiter};
use crate::chain::client::host_key;
use crate::chain::{Client, ExtendedError, Transport};
use crate::config::{AccessAction, AccessConfig, RateLimitConfig};

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
    /// Answer BADCOOKIE with a fresh server cookie (RFC 7873 §5.2.3): the slip for a client
    /// that sent a client cookie; it retries with the server cookie and is then not limited.
    BadCookie,
    /// Send nothing.
    Drop,
}

/// The proof that a request passed the front door. Only [`Admission`] makes one, so nothing
/// that takes it can be reached around the front door.
#[derive(Clone, Copy, Debug)]
pub struct Admitted {
    client: Client,
    at: Instant,
}

impl Admitted {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// When the front door admitted the request: where its answer's duration starts. On the
    /// UDP fast path that is the batch's time, read once for the whole batch, so a general
    /// path answer's duration includes its wait in the batch, as a hit's does.
    pub fn at(&self) -> Instant {
        self.at
    }
}

/// What the front door says about one request, with the proof when it admits.
#[derive(Clone, Copy, Debug)]
pub enum Verdict {
    Admit(Admitted),
    /// Not admitted: `Refuse`, `Truncate`, `BadCookie` or `Drop` (never `Admit`).
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
    /// every listener asks.
    rule: Option<fn(&Client) -> Decision>,
    /// `[rate_limit]`, when on.
    rate_limit: Option<Arc<RateLimiter>>,
    /// The server's cookie secrets, when `server.cookies` is on.
    cookies: Option<Arc<Cookies>>,
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

    /// This policy, with UDP responses limited by `limiter`.
    pub fn with_rate_limit(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.rate_limit = Some(limiter);
        self
    }

    /// This policy, answering DNS Cookies with `cookies`.
    pub fn with_cookies(mut self, cookies: Arc<Cookies>) -> Self {
        self.cookies = Some(cookies);
        self
    }

    /// The cookie secrets, when cookies are on.
    pub fn cookies(&self) -> Option<&Arc<Cookies>> {
        self.cookies.as_ref()
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

    /// The decision for `query` from `client` at `now`. A truncation over TCP admits: TCP has
    /// proven the client's address, which is what a truncated reply asks it to do.
    #[inline]
    pub fn decide(&self, client: &Client, query: &[u8], now: Instant) -> Verdict {
        let decision = match self.rule {
            None => self.by_prefix(client.ip()),
            Some(rule) => rule(client),
        };
        let decision = match (decision, client.transport, &self.rate_limit) {
            (Decision::Admit, Transport::Udp, Some(limiter)) => {
                self.limit(limiter, client.ip(), query, now)
            }
            (decision, _, _) => decision,
        };
        match (decision, client.transport) {
            (Decision::Admit, _) | (Decision::Truncate, Transport::Tcp) => {
                Verdict::Admit(Admitted {
                    client: *client,
                    at: now,
                })
            }
            (rejected, _) => Verdict::Reject(rejected),
        }
    }

    /// `[rate_limit]` for one UDP response. The cookie is read only for a response over the
    /// rate, so the common case costs one table update.
    fn limit(&self, limiter: &RateLimiter, ip: IpAddr, query: &[u8], now: Instant) -> Decision {
        let second = now.duration_since(limiter.epoch()).as_secs();
        let proven = || {
            self.cookies
                .as_ref()
                .is_some_and(|cookies| cookies.query_has_valid(query, ip, cookies::now()))
        };
        match limiter.count(ip, second, proven) {
            Limit::Pass => Decision::Admit,
            Limit::Drop => Decision::Drop,
            Limit::Slip => match (&self.cookies, Presented::in_query(query)) {
                (Some(_), Some(Presented::Cookie { .. })) => Decision::BadCookie,
                _ => Decision::Truncate,
            },
        }
    }
}

/// Extended DNS Error 18 (RFC 8914 §4.19) for `[access]` refusals, without EXTRA-TEXT: a
/// refusal goes to anyone, spoofed sources included, so it stays 6 bytes larger than the
/// query's own OPT and never becomes a useful amplifier.
fn prohibited() -> &'static ExtendedError {
    static PROHIBITED: std::sync::LazyLock<ExtendedError> =
        std::sync::LazyLock::new(|| ExtendedError::new(ExtendedError::PROHIBITED, ""));
    &PROHIBITED
}

/// Writes into `out` the reply for a request the front door did not admit, built from the
/// query's own bytes ([`quick_reply`]); false when nothing is to be sent (a `Drop`, or a
/// message that cannot be answered). A refusal carries Extended DNS Error 18 (Prohibited) for
/// an EDNS client: RFC 8914 §4.19, "the server is unable to respond to the request because the
/// server is not authorized to respond"; a BADCOOKIE carries a fresh server cookie.
pub fn rejection(
    query: &[u8],
    decision: Decision,
    client: IpAddr,
    cookies: Option<&Cookies>,
    out: &mut Vec<u8>,
) -> bool {
    let shape = |rcode, truncated| Shape {
        rcode,
        truncated,
        extended_error: None,
        cookie: None,
    };
    match decision {
        Decision::Admit | Decision::Drop => false,
        Decision::Refuse => quick_reply::build(
            query,
            Shape {
                extended_error: Some(prohibited()),
                ..shape(quick_reply::REFUSED, false)
            },
            out,
        ),
        Decision::Truncate => quick_reply::build(query, shape(0, true), out),
        Decision::BadCookie => {
            let (Some(cookies), Some(Presented::Cookie { client: mine, .. })) =
                (cookies, Presented::in_query(query))
            else {
                return quick_reply::build(query, shape(0, true), out);
            };
            let cookie = cookies.reply_option(mine, client, cookies::now());
            quick_reply::build(
                query,
                Shape {
                    cookie: Some(&cookie),
                    ..shape(quick_reply::BADCOOKIE, false)
                },
                out,
            )
        }
    }
}

/// The front door of one server: the request policy and the TCP connection slots.
pub struct Admission {
    policy: ArcSwap<Policy>,
    tcp: Arc<TcpSlots>,
    /// The cookie secrets: one set for the process, kept across reloads so that a SIGHUP does
    /// not turn every client's cookie stale.
    cookies: Arc<Cookies>,
    /// The rate limiter's counters, kept across reloads.
    rate_stats: Arc<RateLimitStats>,
}

/// The TCP connections open, in all and per client.
struct TcpSlots {
    /// One permit per open connection: at `server.tcp_max_connections`, more are closed at
    /// accept, so idle connections cannot crowd out the rest.
    all: Arc<Semaphore>,
    max: usize,
    open: AtomicUsize,
    /// Open connections per client host (its /32, or /64 for IPv6). Touched at accept and
    /// close only, so a lock is cheap enough.
    per_client: Mutex<HashMap<u128, usize>>,
    max_per_client: usize,
    /// Woken when the slots pass half full: idle connections then look at their timeout again.
    pressure: Notify,
}

/// Above half the slots, an idle connection is closed after this instead of
/// `server.tcp_idle_timeout`, as Unbound does (its `TCP_QUERY_TIMEOUT_MINIMUM`, 200 ms), so
/// under pressure the slots go to clients that send queries.
pub const PRESSURE_IDLE_TIMEOUT: Duration = Duration::from_millis(200);

/// An admitted TCP connection; its slots are given back when this is dropped.
pub struct Connection {
    _slot: OwnedSemaphorePermit,
    client: u128,
    tcp: Arc<TcpSlots>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.tcp.open.fetch_sub(1, Ordering::Relaxed);
        let mut per_client = self
            .tcp
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

impl Admission {
    /// A front door with `policy`, room for `tcp_max_connections` connections in all and
    /// `tcp_max_connections_per_client` from one client.
    pub fn new(
        policy: Policy,
        tcp_max_connections: usize,
        tcp_max_connections_per_client: usize,
    ) -> Self {
        Self {
            policy: ArcSwap::from_pointee(policy),
            tcp: Arc::new(TcpSlots {
                all: Arc::new(Semaphore::new(tcp_max_connections)),
                max: tcp_max_connections,
                open: AtomicUsize::new(0),
                per_client: Mutex::new(HashMap::new()),
                max_per_client: tcp_max_connections_per_client,
                pressure: Notify::new(),
            }),
            cookies: Arc::new(Cookies::default()),
            rate_stats: Arc::default(),
        }
    }

    /// Admits everyone, with room for `tcp_max_connections` connections, all of which one
    /// client may hold (tests, benchmarks).
    pub fn admit_all(tcp_max_connections: usize) -> Self {
        Self::new(
            Policy::admit_all(),
            tcp_max_connections,
            tcp_max_connections,
        )
    }

    /// The policy now. A listener loads it once per batch and decides each request with it.
    pub fn policy(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// Puts a new policy in place for the requests that arrive from now on (SIGHUP).
    pub fn replace_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// Builds and puts in place the policy of `[access]`, `[rate_limit]` and `server.cookies`.
    /// An unchanged `[rate_limit]` keeps its limiter, so a reload does not hand every client a
    /// fresh second of responses; the cookie secrets are the process's.
    pub fn configure(
        &self,
        access: &AccessConfig,
        rate_limit: Option<&RateLimitConfig>,
        cookies: bool,
    ) {
        let mut policy = Policy::from_access(access);
        if let Some(config) = rate_limit {
            let current = self.policy().rate_limit.clone();
            let limiter = match current {
                Some(limiter) if limiter.config() == config => limiter,
                _ => Arc::new(RateLimiter::new(
                    config.clone(),
                    Arc::clone(&self.rate_stats),
                )),
            };
            policy = policy.with_rate_limit(limiter);
        }
        if cookies {
            policy = policy.with_cookies(Arc::clone(&self.cookies));
        }
        self.replace_policy(policy);
    }

    /// The cookie secrets (rotated by the server's background task).
    pub fn cookies(&self) -> &Arc<Cookies> {
        &self.cookies
    }

    /// The rate limiter's counters.
    pub fn rate_stats(&self) -> &RateLimitStats {
        &self.rate_stats
    }

    /// One request (`query`, its bytes) from `address` over `transport`.
    pub fn request(&self, address: SocketAddr, transport: Transport, query: &[u8]) -> Verdict {
        self.policy()
            .decide(&Client::new(address, transport), query, Instant::now())
    }

    /// A TCP connection from `peer`, at accept: its slot, or `None` to close it at once. A
    /// client whose requests would be dropped is closed here; one that would be refused is
    /// taken, and each of its messages gets its REFUSED (the access-control issue: "deny ...
    /// TCP: closed at accept"). A client at `tcp_max_connections_per_client` is closed, and so
    /// is everyone at `tcp_max_connections`; past half of that, idle connections are told to
    /// close soon ([`Admission::idle_timeout`]).
    pub fn connect(&self, peer: SocketAddr) -> Option<Connection> {
        let policy = self.policy();
        let decision = match policy.rule {
            None => policy.by_prefix(peer.ip()),
            Some(rule) => rule(&Client::new(peer, Transport::Tcp)),
        };
        if decision == Decision::Drop {
            tracing::debug!(%peer, "TCP connection closed at accept");
            return None;
        }
        let client = host_key(peer.ip());
        {
            let mut per_client = self
                .tcp
                .per_client
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let count = per_client.entry(client).or_insert(0);
            if *count >= self.tcp.max_per_client {
                tracing::debug!(%peer, "TCP connection closed: the client is at its connection limit");
                return None;
            }
            *count += 1;
        }
        let slot = match Arc::clone(&self.tcp.all).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let mut per_client = self
                    .tcp
                    .per_client
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if let Some(count) = per_client.get_mut(&client) {
                    *count -= 1;
                    if *count == 0 {
                        per_client.remove(&client);
                    }
                }
                tracing::debug!(%peer, "TCP connection closed: at the connection limit");
                return None;
            }
        };
        // Crossing half full: the idle connections waiting with the long timeout look again.
        // (Only at the crossing: those that start waiting later see the pressure themselves.)
        let open = self.tcp.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open == self.tcp.max / 2 + 1 {
            self.tcp.pressure.notify_waiters();
        }
        Some(Connection {
            _slot: slot,
            client,
            tcp: Arc::clone(&self.tcp),
        })
    }

    /// How long an idle connection may stay now: `configured`, or [`PRESSURE_IDLE_TIMEOUT`]
    /// when more than half the slots are taken.
    pub fn idle_timeout(&self, configured: Duration) -> Duration {
        if self.tcp.open.load(Ordering::Relaxed) > self.tcp.max / 2 {
            configured.min(PRESSURE_IDLE_TIMEOUT)
        } else {
            configured
        }
    }

    /// Resolves when the slots pass half full.
    pub async fn pressure(&self) {
        self.tcp.pressure.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Vec<u8> {
        super::quick_reply::test_query()
    }

    #[test]
    fn admit_all_admits_and_counts_tcp_slots() {
        let admission = Admission::admit_all(2);
        let peer: SocketAddr = "192.0.2.1:5300".parse().unwrap();
        assert!(matches!(
            admission.request(peer, Transport::Udp, &[]),
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
        match policy.decide(&client, &[], Instant::now()) {
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
            admission.request(peer, Transport::Tcp, &[]),
            Verdict::Reject(Decision::Refuse)
        ));
        admission.replace_policy(Policy::with_rule(|_| Decision::Truncate));
        assert!(
            matches!(
                admission.request(peer, Transport::Tcp, &[]),
                Verdict::Admit(_)
            ),
            "TCP has proven the address a truncation asks for"
        );
        assert!(matches!(
            admission.request(peer, Transport::Udp, &[]),
            Verdict::Reject(Decision::Truncate)
        ));
        admission.replace_policy(Policy::with_rule(|_| Decision::Drop));
        assert!(
            admission.connect(peer).is_none(),
            "dropped: closed at accept"
        );
    }

    fn rate_limited(rate: u32, slip: u32, cookies: bool) -> Admission {
        let admission = Admission::new(Policy::admit_all(), 8, 8);
        let config = RateLimitConfig {
            responses_per_second: rate,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            slip,
            exempt: Vec::new(),
        };
        let everyone = AccessConfig {
            rules: vec![("0.0.0.0/0".parse().unwrap(), AccessAction::Allow)],
            built_in: false,
        };
        admission.configure(&everyone, Some(&config), cookies);
        admission
    }

    fn with_cookie(cookie: &[u8]) -> Vec<u8> {
        let mut q = query();
        let length = q.len();
        q[length - 2..].copy_from_slice(&((4 + cookie.len()) as u16).to_be_bytes());
        q.extend_from_slice(&[0, 10]);
        q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
        q.extend_from_slice(cookie);
        q
    }

    #[test]
    fn over_the_rate_udp_slips_or_drops_and_tcp_is_never_limited() {
        let admission = rate_limited(2, 2, false);
        let peer: SocketAddr = "192.0.2.1:5300".parse().unwrap();
        let decisions: Vec<Decision> = (0..6)
            .map(
                |_| match admission.request(peer, Transport::Udp, &query()) {
                    Verdict::Admit(_) => Decision::Admit,
                    Verdict::Reject(decision) => decision,
                },
            )
            .collect();
        assert_eq!(
            decisions,
            [
                Decision::Admit,
                Decision::Admit,
                Decision::Truncate,
                Decision::Drop,
                Decision::Truncate,
                Decision::Drop
            ]
        );
        assert!(matches!(
            admission.request(peer, Transport::Tcp, &query()),
            Verdict::Admit(_)
        ));
        let stats = admission.rate_stats();
        assert_eq!(stats.limited.load(Ordering::Relaxed), 4);
        assert_eq!(stats.slipped.load(Ordering::Relaxed), 2);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_valid_server_cookie_exempts_and_a_client_cookie_slips_as_badcookie() {
        let admission = rate_limited(1, 1, true);
        let peer: SocketAddr = "192.0.2.1:5300".parse().unwrap();
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        let server = admission
            .cookies()
            .server_cookie(&client, peer.ip(), cookies::now());
        let mut valid = client.to_vec();
        valid.extend_from_slice(&server);
        let mut forged = valid.clone();
        forged[20] ^= 0xff;
        assert!(matches!(
            admission.request(peer, Transport::Udp, &query()),
            Verdict::Admit(_)
        ));
        for _ in 0..5 {
            assert!(matches!(
                admission.request(peer, Transport::Udp, &with_cookie(&valid)),
                Verdict::Admit(_)
            ));
        }
        assert!(matches!(
            admission.request(peer, Transport::Udp, &with_cookie(&forged)),
            Verdict::Reject(Decision::BadCookie)
        ));
        assert!(matches!(
            admission.request(peer, Transport::Udp, &with_cookie(&client)),
            Verdict::Reject(Decision::BadCookie)
        ));
        assert!(matches!(
            admission.request(peer, Transport::Udp, &query()),
            Verdict::Reject(Decision::Truncate)
        ));
        let mut out = Vec::new();
        assert!(rejection(
            &with_cookie(&client),
            Decision::BadCookie,
            peer.ip(),
            Some(admission.cookies()),
            &mut out
        ));
        let reply = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(
            reply.metadata.response_code,
            hickory_proto::op::ResponseCode::BADCOOKIE
        );
        let option = cookies::option_in(&out, cookies::OPTION_CODE).unwrap();
        assert!(admission
            .cookies()
            .is_valid(&client, &option[8..], peer.ip(), cookies::now()));
    }

    #[test]
    fn one_client_cannot_take_every_tcp_slot_and_pressure_shortens_idling() {
        let admission = Admission::new(Policy::admit_all(), 4, 2);
        let greedy: SocketAddr = "192.0.2.1:5300".parse().unwrap();
        let same_host: SocketAddr = "192.0.2.1:5301".parse().unwrap();
        let other: SocketAddr = "192.0.2.2:5300".parse().unwrap();
        let idle = Duration::from_secs(10);
        let first = admission.connect(greedy).expect("a slot");
        let _second = admission.connect(same_host).expect("a slot");
        assert_eq!(admission.idle_timeout(idle), idle, "half full: no pressure");
        assert!(admission.connect(greedy).is_none(), "at the per-client cap");
        let _third = admission.connect(other).expect("another client gets in");
        assert_eq!(
            admission.idle_timeout(idle),
            PRESSURE_IDLE_TIMEOUT,
            "past half: idle connections go fast"
        );
        drop(first);
        let _again = admission.connect(greedy).expect("its slot given back");
        let v6_a: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        let v6_b: SocketAddr = "[2001:db8::2]:53".parse().unwrap();
        let _v6 = admission.connect(v6_a).expect("a slot");
        assert!(
            admission.connect(v6_b).is_none(),
            "at the global cap (and the same /64)"
        );
    }
}
