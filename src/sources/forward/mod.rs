//! `dns`: forwards questions to upstream resolvers, through an answer cache.
//!
//! ```text
//! question ─► our own loop probe? ─► mark that upstream looping, UNAVAIL
//!    │
//!    ▼
//! cache ─ fresh ─► answer (prefetch in the background when popular and near expiry)
//!    │ stale ─► refresh; answer fresh if it comes within 1.8 s, else the stale answer (TTL 30)
//!    │ miss
//!    ▼
//! coalesce: one upstream query per question in flight; the others wait for it
//!    │
//!    ▼
//! failed moments ago? ─► SERVFAIL, EDE 13 (the failure cache, `failures`: RFC 9520)
//!    │
//!    ▼
//! the group: the longest [[forward.zone]] holding the name, else [forward] (`group`)
//!    │ its max_concurrent (and, for [forward], a quarter per domain) left? else REFUSED
//!    ▼
//! its upstreams in the policy's order, healthy first
//! ```
//!
//! Each query tries each upstream of its group at most once, each attempt (TCP retry included)
//! bounded by `timeout`, so a query gives up within `timeout × upstreams`. Over UDP each query
//! is lent, alone, one of up to `udp_ports` open sockets drawn at random, each on a random
//! port, and has a random ID (`udp`, `udp::pool`); a reply with the wrong
//! source, ID or question is dropped and counted, so it is never answered nor cached (RFC
//! 5452). A truncated reply (TC=1) is asked again over TCP (RFC 1035 §4.2.1, RFC 7766 §5), with
//! hickory-net. `tcp://`, `tls://` and `https://` upstreams keep one connection open, pipelined
//! (`stream`).
//!
//! How upstream replies map onto the chain's statuses:
//!
//! | upstream said            | status   | why                                                  |
//! |--------------------------|----------|------------------------------------------------------|
//! | NOERROR (data or NODATA) | SUCCESS  | the question is answered                             |
//! | NXDOMAIN                 | NOTFOUND | so `order = ["dns", "files"]` falls back to files    |
//! | SERVFAIL, or no answer   | TRYAGAIN | RFC 2308 §7: a server failure is a temporary state   |
//! | REFUSED, NOTIMP, FORMERR | UNAVAIL  | that upstream will not answer this; try the next     |
//!
//! Health, as CoreDNS's `forward` does it: an upstream that fails [`MAX_FAILS`] times in a row
//! (no reply, or unreachable) is marked down and skipped while another is up; every
//! `health_check` it is asked `. IN NS`, and any reply marks it up again. When all are down,
//! all are tried.
//!
//! DNSSEC (`[dnssec]`, module `dnssec`): with `validate = true`, a question with CD=0 is asked
//! upstream with DO=1 and CD=1 and its answer validated before it is cached; bogus is SERVFAIL.
//! Without validation, the upstream's AD bit is cleared (anyone on a plain path could set it)
//! unless the upstream is reached over TLS or HTTPS and `trust_upstream_ad` says to believe it.
//!
//! Forwarding loops (an upstream that leads back to Hearth, such as a resolver whose upstream is
//! this server): at start, each upstream is asked a name made of a per-process random nonce and
//! its index. If that question ever reaches this source, the query went round: that upstream is
//! disabled with a loud error, and the process keeps running (CoreDNS's `loop` plugin exits
//! instead, which crash-loops a pod).

pub mod dnssec;
mod failures;
mod group;
mod metrics;
mod setup;
pub mod stream;
mod udp;
mod upstream;

pub use setup::{DnsSetup, ForwardConfig, ForwardZone, Policy, UpstreamsFrom};

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::cache::{Cache, CacheKey, CacheStats, Lookup};
use crate::chain::{Answer, ExtendedError, Outcome, Question, Source};
use crate::config::values::UpstreamSpec;
use dnssec::Validator;
pub use dnssec::{DnssecConfig, DnssecStats};
use failures::Failures;
use group::Group;
pub use stream::ConnectionStats;
use udp::SocketPool;
pub use upstream::UpstreamStats;
use upstream::{Failure, Upstream};

/// Why the `dns` source could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("upstream {upstream} did not answer within {timeout:?}")]
    UpstreamTimeout {
        upstream: std::net::SocketAddr,
        timeout: Duration,
    },
    #[error("upstream {upstream} answered {response_code}")]
    UpstreamResponse {
        upstream: std::net::SocketAddr,
        response_code: ResponseCode,
    },
    #[error("upstream {upstream} could not be asked: {reason}")]
    UpstreamUnreachable {
        upstream: std::net::SocketAddr,
        reason: String,
    },
    #[error("no upstream is configured")]
    NoUpstreams,
    #[error("max_concurrent upstream queries are in flight")]
    Overloaded,
    #[error("forwarding loop through upstream {upstream}: it is disabled")]
    ForwardingLoop { upstream: std::net::SocketAddr },
    #[error("this client already has {limit} queries waiting on upstreams")]
    TooManyWaiting { limit: u32 },
    #[error("the last attempt to resolve this failed; asked again in {retry_in:?}")]
    CachedFailure { retry_in: Duration },
}

impl crate::chain::Failure for ForwardError {
    /// REFUSED when the upstream queries are at their limit, as CoreDNS's `forward` answers
    /// then; SERVFAIL otherwise.
    fn response_code(&self) -> ResponseCode {
        match self {
            Self::Overloaded => ResponseCode::Refused,
            _ => ResponseCode::ServFail,
        }
    }

    /// RFC 8914: No Reachable Authority (22) when no upstream answered, Network Error (23)
    /// when one could not be asked or answered with an error; Other (0), with a text, for the
    /// limits Hearth itself applies.
    fn extended_error(&self) -> Option<ExtendedError> {
        let (code, text) = match self {
            Self::UpstreamTimeout { .. } => (
                ExtendedError::NO_REACHABLE_AUTHORITY,
                "no upstream answered in time",
            ),
            Self::NoUpstreams => (
                ExtendedError::NO_REACHABLE_AUTHORITY,
                "no upstream is configured",
            ),
            Self::UpstreamResponse { .. } => (
                ExtendedError::NETWORK_ERROR,
                "the upstream answered with an error",
            ),
            Self::UpstreamUnreachable { .. } => (
                ExtendedError::NETWORK_ERROR,
                "the upstream could not be reached",
            ),
            Self::Overloaded => (ExtendedError::OTHER, "too many upstream queries in flight"),
            Self::ForwardingLoop { .. } => (ExtendedError::OTHER, "forwarding loop detected"),
            Self::TooManyWaiting { .. } => (
                ExtendedError::OTHER,
                "too many queries from this client waiting on upstreams",
            ),
            Self::CachedFailure { .. } => (
                ExtendedError::CACHED_ERROR,
                "resolving this failed moments ago (RFC 9520)",
            ),
        };
        Some(ExtendedError::new(code, text))
    }
}

/// Failures in a row that mark an upstream down (CoreDNS's `max_fails` default).
pub const MAX_FAILS: u32 = 2;

/// RFC 8767 §5: "a resolver ... SHOULD ... use a client response timer ... 1.8 seconds": how
/// long a stale answer waits for a fresh one.
const STALE_ANSWER_TIMEOUT: Duration = Duration::from_millis(1800);

/// The label after the nonce in a loop probe; `.invalid` (RFC 6761 §6.4) so a real resolver
/// answers NXDOMAIN at once.
const LOOP_PROBE_SUFFIX: &str = "hearth-loop-check.invalid.";

/// The `dns` source. Cheap to clone: background refreshes and health checks hold a clone of
/// the inside.
pub struct Forwarder {
    inner: Arc<Inner>,
    /// The server's per-query metrics: the fast path's reuses of cached answers are this
    /// cache's hits too (`Metrics::fast_cache_hits`). `None` outside a running server.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

struct Inner {
    /// Every upstream of every group, each once (an upstream in two groups has one health).
    upstreams: Vec<Arc<Upstream>>,
    /// The plain-UDP upstream sockets, shared by every plain upstream (`udp::pool`).
    udp_sockets: Arc<SocketPool>,
    /// The default group (`[forward]`) first, then the zones, longest domain first.
    groups: Vec<Group>,
    cache: Option<Cache>,
    /// Questions whose resolution failed moments ago (RFC 9520).
    failures: Failures,
    /// Questions being asked upstream now, so that identical ones wait for the same answer.
    in_flight: Mutex<HashMap<CacheKey, Arc<OnceCell<Outcome>>>>,
    /// Random, per process: the first label of this process's loop probes.
    loop_nonce: String,
    /// For the TCP retries (hickory-net), which keep their background tasks in it: it must
    /// live as long as the exchanges do, or their tasks are aborted.
    provider: TokioRuntimeProvider,
    /// `[dnssec] validate = true`: the validator, whose fetches come back here.
    validator: Option<Validator>,
    /// `[dnssec] trust_upstream_ad`: an upstream's AD is passed on (from TLS and HTTPS
    /// upstreams only, and only without validation).
    trust_upstream_ad: bool,
}

/// The validator's way back into the forwarder. Weak: the validator lives in the `Inner` it
/// points to.
struct ForwarderFetch(Weak<Inner>);

impl dnssec::Fetch for ForwarderFetch {
    fn fetch(&self, question: Question) -> futures_util::future::BoxFuture<'static, Outcome> {
        let inner = self.0.upgrade();
        Box::pin(async move {
            match inner {
                Some(inner) => inner.fetch_unvalidated(&question).await,
                None => Outcome::Unavail(ForwardError::NoUpstreams.into()),
            }
        })
    }
}

impl Forwarder {
    /// Builds the forwarder and starts its health checks. Must run inside the tokio runtime.
    pub fn new(config: &ForwardConfig) -> Self {
        let provider = TokioRuntimeProvider::default();
        // The roots were read when the configuration was checked; read again here, a failure
        // now (the file changed since) leaves the TLS upstreams unusable, and says so.
        let tls = config.needs_tls().then(|| {
            stream::tls_config(config.tls_ca.as_deref())
                .map_err(|reason| tracing::error!(%reason, "TLS upstreams cannot be used"))
                .ok()
        });
        let tls = tls.flatten();
        let udp_sockets = Arc::new(SocketPool::new(udp::pool::affordable(config.udp_ports)));
        if udp_sockets.ports() > 0 {
            tokio::spawn(udp::pool::sweep_idle(Arc::downgrade(&udp_sockets)));
        }
        let mut upstreams: Vec<Arc<Upstream>> = Vec::new();
        let mut members = |specs: &[UpstreamSpec]| -> Vec<usize> {
            specs
                .iter()
                .map(|spec| {
                    upstreams
                        .iter()
                        .position(|u| u.spec == *spec)
                        .unwrap_or_else(|| {
                            upstreams.push(Arc::new(Upstream::new(
                                spec,
                                tls.clone(),
                                &udp_sockets,
                            )));
                            upstreams.len() - 1
                        })
                })
                .collect()
        };
        let mut groups = vec![Group::new(
            None,
            members(&config.upstreams),
            config.policy,
            config.timeout,
            config.health_check,
            config.max_concurrent,
        )];
        let mut zones: Vec<&ForwardZone> = config.zones.iter().collect();
        zones.sort_by_key(|zone| std::cmp::Reverse(zone.name.num_labels()));
        for zone in zones {
            groups.push(Group::new(
                Some(zone.name.clone()),
                members(&zone.upstreams),
                zone.policy,
                zone.timeout,
                zone.health_check,
                zone.max_concurrent,
            ));
        }
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            upstreams,
            udp_sockets,
            groups,
            cache: Cache::new(config.cache.clone()),
            failures: Failures::new(config.cache.stale_recheck),
            in_flight: Mutex::new(HashMap::new()),
            loop_nonce: format!("{:016x}", rand::random::<u64>()),
            provider,
            validator: config.dnssec.validate.then(|| {
                Validator::new(
                    config.dnssec.clone(),
                    Arc::new(ForwarderFetch(weak.clone())),
                )
            }),
            trust_upstream_ad: config.dnssec.trust_upstream_ad,
        });
        for index in 0..inner.groups.len() {
            tokio::spawn(health_checks(Arc::downgrade(&inner), index));
        }
        Self {
            inner,
            metrics: None,
        }
    }

    /// The forwarder, reading the fast path's cache hits from `metrics` at scrape time.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Cache hits: the cache's own, and the fast path's reuses of its answers.
    pub fn cache_hits(&self) -> u64 {
        let own = self
            .cache_stats()
            .map_or(0, |c| c.hits.load(Ordering::Relaxed));
        own + self.metrics.as_ref().map_or(0, |m| m.fast_cache_hits())
    }

    /// Queries that found every upstream of their group marked down.
    pub fn all_down(&self) -> u64 {
        self.inner
            .groups
            .iter()
            .map(|g| g.all_down.load(Ordering::Relaxed))
            .sum()
    }

    /// Queries refused at a group's `max_concurrent`.
    pub fn max_concurrent_rejects(&self) -> u64 {
        self.inner
            .groups
            .iter()
            .map(|g| g.max_concurrent_rejects.load(Ordering::Relaxed))
            .sum()
    }

    /// Each upstream's address (CoreDNS's `to` label) and its counters.
    pub fn upstreams_by_address(&self) -> Vec<(String, &UpstreamStats)> {
        self.inner
            .upstreams
            .iter()
            .map(|u| (u.spec.address.to_string(), &*u.stats))
            .collect()
    }

    /// Each upstream, as written in the config, and its connections' counters (for a plain
    /// upstream, the TCP connections of truncated replies).
    pub fn connection_stats(&self) -> Vec<(String, &ConnectionStats)> {
        self.inner
            .upstreams
            .iter()
            .map(|u| (u.spec.to_string(), &*u.connections))
            .collect()
    }

    /// The plain-UDP socket pool: its size, its counters.
    pub fn udp_sockets(&self) -> &SocketPool {
        &self.inner.udp_sockets
    }

    /// Answers from the failure cache so far (RFC 9520).
    pub fn failure_cache_hits(&self) -> u64 {
        self.inner.failures.hits.load(Ordering::Relaxed)
    }

    /// The cache's counters, if there is a cache.
    pub fn cache_stats(&self) -> Option<&CacheStats> {
        self.inner.cache.as_ref().map(Cache::stats)
    }

    /// The validator's counters, if answers are validated.
    pub fn dnssec_stats(&self) -> Option<&DnssecStats> {
        self.inner.validator.as_ref().map(|v| &v.stats)
    }

    /// Entries in the cache now.
    pub fn cache_len(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, Cache::len)
    }

    /// Each upstream, as written in the config, and its counters.
    pub fn upstream_stats(&self) -> Vec<(String, &UpstreamStats)> {
        self.inner
            .upstreams
            .iter()
            .map(|u| (u.spec.to_string(), &*u.stats))
            .collect()
    }

    /// Sends each upstream a loop probe. Run once the listeners are up: a probe that comes back
    /// is seen by [`Source::lookup`].
    pub async fn check_for_loops(&self) {
        for index in 0..self.inner.upstreams.len() {
            self.inner.send_loop_probe(index).await;
        }
    }
}

impl Inner {
    /// Asks upstream `index` this process's loop probe for it; the answer does not matter,
    /// only whether the question comes back to [`Source::lookup`].
    async fn send_loop_probe(&self, index: usize) {
        let Ok(name) = Name::from_ascii(format!("{}-{index}.{LOOP_PROBE_SUFFIX}", self.loop_nonce))
        else {
            return;
        };
        let probe = Question::new(name, RecordType::A);
        let timeout = self.groups[0].timeout;
        let _ = self.upstreams[index]
            .ask(&probe, timeout, &self.provider)
            .await;
    }

    /// If `question` is one of this process's loop probes, the index of the upstream it was
    /// sent to.
    ///
    /// Every forwarded question passes here, so it looks at the labels as they are, with no
    /// string built (formatting the name was 2-4% of a cache hit's time in the hit-tail
    /// profile): a probe is `NONCE-INDEX.hearth-loop-check.invalid.`, three labels.
    fn loop_probe_index(&self, question: &Question) -> Option<usize> {
        let name = question.lower_name();
        let mut labels = name.iter();
        // Three labels, the last one ending the probe's suffix: one label read turns away
        // almost every other name before the whole test below.
        let suffix = LOOP_PROBE_SUFFIX.trim_end_matches('.');
        if labels.len() != 3
            || !name
                .iter()
                .next_back()
                .is_some_and(|last| suffix.as_bytes().ends_with(last))
        {
            return None;
        }
        let first = labels.next()?;
        let expected = suffix.split('.');
        if !labels.eq(expected.map(str::as_bytes)) {
            return None;
        }
        let first = std::str::from_utf8(first).ok()?;
        first
            .strip_prefix(&self.loop_nonce)?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// Asks `group`'s upstreams, in order, until one gives an answer to pass on.
    async fn ask_upstreams(&self, group: &Group, question: &Question) -> Outcome {
        let mut temporary = None;
        let mut permanent = None;
        for index in group.attempt_order(&self.upstreams) {
            let upstream = &self.upstreams[index];
            match upstream.ask(question, group.timeout, &self.provider).await {
                Ok(response) => {
                    let response_code = response.metadata.response_code;
                    // RFC 6840 §5.7: AD is believed only from a resolver trusted over a secure
                    // path; while validating, our own verdict sets it.
                    let trust_ad = self.trust_upstream_ad
                        && self.validator.is_none()
                        && upstream.is_authenticated();
                    let answer = upstream::answer_from(response, question.dnssec_ok, trust_ad);
                    match response_code {
                        ResponseCode::NoError => return Outcome::Success(answer),
                        ResponseCode::NXDomain => return Outcome::NotFound(answer),
                        response_code => {
                            let error = ForwardError::UpstreamResponse {
                                upstream: upstream.spec.address,
                                response_code,
                            };
                            tracing::debug!(name = %question.name, %error, "trying the next upstream");
                            if response_code == ResponseCode::ServFail {
                                temporary = Some(error);
                            } else {
                                permanent = Some(error);
                            }
                        }
                    }
                }
                Err(Failure::Temporary(error)) => {
                    tracing::debug!(name = %question.name, %error, "trying the next upstream");
                    temporary = Some(error);
                }
                Err(Failure::Permanent(error)) => {
                    tracing::debug!(name = %question.name, %error, "trying the next upstream");
                    permanent = Some(error);
                }
            }
        }
        match (temporary, permanent) {
            (Some(error), _) => Outcome::TryAgain(error.into()),
            (None, Some(error)) => Outcome::Unavail(error.into()),
            (None, None) => Outcome::Unavail(ForwardError::NoUpstreams.into()),
        }
    }

    /// Asks upstream, sharing the answer with every identical question asked meanwhile, and
    /// caches it.
    async fn resolve(&self, question: &Question, key: CacheKey) -> Outcome {
        if let Some(retry_in) = self.failures.remembered(&key, Instant::now()) {
            return Outcome::TryAgain(ForwardError::CachedFailure { retry_in }.into());
        }
        // `server.max_waiting_per_client`: counted before joining a shared fetch too, since a
        // joined query waits as long as the one that asked. Answered at once when over.
        let _waiting = match question.waiting.as_ref().map(|slot| (slot.enter(), slot)) {
            Some((None, slot)) => {
                return Outcome::TryAgain(
                    ForwardError::TooManyWaiting {
                        limit: slot.limit(),
                    }
                    .into(),
                )
            }
            Some((guard, _)) => guard,
            None => None,
        };
        let cell = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(in_flight.entry(key.clone()).or_default())
        };
        let mut asked = false;
        let outcome = cell
            .get_or_init(|| {
                asked = true;
                self.resolve_now(question, &key)
            })
            .await
            .clone();
        if !asked {
            if let Some(cache) = &self.cache {
                cache.stats().coalesced.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            in_flight.remove(&key);
        }
        outcome
    }

    /// A question asked with DO=1 and CD=1 for the validator: from the cache when fresh, else
    /// upstream, coalesced and cached as any question. Never validated itself (CD=1).
    async fn fetch_unvalidated(&self, question: &Question) -> Outcome {
        let key = CacheKey::new(question);
        if let Some(cache) = &self.cache {
            if let Lookup::Fresh { answer, .. } = cache.get(&key, Instant::now()) {
                return outcome_of(answer);
            }
        }
        Box::pin(self.resolve(question, key)).await
    }

    /// A bogus answer remembered for `key` (RFC 9520): never replaced by a stale one.
    fn bogus_now(&self, key: &CacheKey) -> Option<Outcome> {
        self.validator.as_ref()?.remembered(key)
    }

    /// One upstream resolution, within its group's limits, validated when `[dnssec]` says
    /// so; the answer is cached, and a failure remembered.
    async fn resolve_now(&self, question: &Question, key: &CacheKey) -> Outcome {
        let mut outcome = match &self.validator {
            Some(validator) if validator.applies(question) => {
                validator.resolve(question, key).await
            }
            // While validating, what is not validated is asked with CD=1 too (RFC 4035 §3.2.2):
            // a validating upstream must not fail a name under a negative trust anchor.
            Some(_) => {
                let mut unchecked = question.clone();
                unchecked.checking_disabled = true;
                self.ask_group(&unchecked).await
            }
            None => self.ask_group(question).await,
        };
        self.remember(key, &mut outcome);
        outcome
    }

    /// Asks the group `question` belongs to, within its limits.
    async fn ask_group(&self, question: &Question) -> Outcome {
        // RFC 4034 §5: the DS set lives in the parent zone, so it is asked where the parent
        // name would be (the validator's DS fetches, and a client's DS questions alike).
        let routed = if question.record_type == RecordType::DS && !question.lower_name().is_root() {
            question.lower_name().base_name()
        } else {
            question.lower_name().clone()
        };
        let group = group::route(&self.groups, &routed);
        let overloaded = || {
            group.max_concurrent_rejects.fetch_add(1, Ordering::Relaxed);
            Outcome::TryAgain(ForwardError::Overloaded.into())
        };
        let Ok(_permit) = group.concurrency.try_acquire() else {
            return overloaded();
        };
        let _domain = match &group.domains {
            Some(domains) => match domains.enter(question.lower_name()) {
                Some(slot) => Some(slot),
                None => return overloaded(),
            },
            None => None,
        };
        self.ask_upstreams(group, question).await
    }

    /// Caches a resolution's answer, or remembers its failure.
    fn remember(&self, key: &CacheKey, outcome: &mut Outcome) {
        match &*outcome {
            Outcome::Success(_) | Outcome::NotFound(_) => self.failures.forget(key),
            // The upstreams failed (not a limit of ours): remembered (RFC 9520).
            Outcome::TryAgain(error) | Outcome::Unavail(error)
                if matches!(
                    error.downcast_ref(),
                    Some(
                        ForwardError::UpstreamTimeout { .. }
                            | ForwardError::UpstreamResponse { .. }
                            | ForwardError::UpstreamUnreachable { .. }
                    )
                ) =>
            {
                self.failures.record(key, Instant::now());
            }
            _ => {}
        }
        if let (Some(cache), Outcome::Success(answer) | Outcome::NotFound(answer)) =
            (&self.cache, outcome)
        {
            // The first answer is clamped as its cached copies will be.
            if let Some(clamped) = cache.store(key.clone(), answer, Instant::now()) {
                *answer = clamped;
            }
        }
    }

    /// The outcome of a fresh cache hit, with its prefetch started if the cache asks for one.
    fn fresh(
        self: &Arc<Self>,
        cache: &Cache,
        question: &Question,
        key: CacheKey,
        answer: Answer,
        prefetch: bool,
    ) -> Outcome {
        if prefetch {
            cache.stats().prefetches.fetch_add(1, Ordering::Relaxed);
            let inner = Arc::clone(self);
            // The prefetch is the server's, not the client's: not counted against it.
            let mut question = question.clone();
            question.waiting = None;
            tokio::spawn(async move { inner.resolve(&question, key).await });
        }
        outcome_of(answer)
    }
}

/// The outcome of a cached answer: NXDOMAIN is NOTFOUND, the rest SUCCESS.
fn outcome_of(answer: Answer) -> Outcome {
    if answer.response_code == ResponseCode::NXDomain {
        Outcome::NotFound(answer)
    } else {
        Outcome::Success(answer)
    }
}

#[async_trait]
impl Source for Forwarder {
    fn name(&self) -> &'static str {
        "dns"
    }

    /// A fresh cache hit, answered without waiting; anything else (a loop probe coming back,
    /// no cache, a stale entry, a miss) is `lookup`'s. `Cache::get_fresh` counts nothing when
    /// it finds no fresh answer, so the `get` in `lookup` counts each miss once.
    fn lookup_now(&self, question: &Question) -> Option<Outcome> {
        let inner = &self.inner;
        let cache = inner.cache.as_ref()?;
        if inner.loop_probe_index(question).is_some() {
            return None;
        }
        let key = CacheKey::new(question);
        let (answer, prefetch) = cache.get_fresh(&key, Instant::now())?;
        Some(inner.fresh(cache, question, key, answer, prefetch))
    }

    async fn lookup(&self, question: &Question) -> Outcome {
        let inner = &self.inner;
        if let Some(index) = inner.loop_probe_index(question) {
            let Some(upstream) = inner.upstreams.get(index) else {
                return Outcome::Unavail(ForwardError::NoUpstreams.into());
            };
            if upstream.stats.mark_looping() {
                tracing::error!(
                    upstream = %upstream.spec,
                    "forwarding loop: a query sent to this upstream came back to Hearth; the upstream is disabled. \
                     Point forward.upstreams at a resolver that does not forward to Hearth"
                );
            }
            return Outcome::Unavail(
                ForwardError::ForwardingLoop {
                    upstream: upstream.spec.address,
                }
                .into(),
            );
        }
        let key = CacheKey::new(question);
        // The asking is boxed, here and on a miss below: its future holds the exchange's
        // receive buffer (kilobytes), and inline it would make this whole future that large,
        // copied into its box on every lookup, cache hits included (issue 16's profile of
        // cache hits on the general path: `memmove` 6.6%, most of it here).
        let Some(cache) = &inner.cache else {
            return Box::pin(inner.resolve(question, key)).await;
        };
        match cache.get(&key, Instant::now()) {
            Lookup::Fresh { answer, prefetch } => {
                inner.fresh(cache, question, key, answer, prefetch)
            }
            Lookup::Stale { answer } => {
                // A bogus answer is never turned into a stale success.
                if let Some(bogus) = inner.bogus_now(&key) {
                    return bogus;
                }
                let stale = |mut answer: Answer| {
                    cache.stats().stale_answers.fetch_add(1, Ordering::Relaxed);
                    // RFC 8914 §4.4, Stale Answer, as RFC 8767 §6 suggests.
                    answer.extended_error = Some(Box::new(ExtendedError::new(
                        ExtendedError::STALE_ANSWER,
                        "the upstreams did not answer in time: cached data past its TTL",
                    )));
                    outcome_of(answer)
                };
                // RFC 8767 §5's failure recheck timer: served stale moments ago, so again at
                // once, without asking; the first question after the timer refreshes again.
                if inner.failures.serve_stale_now(&key, Instant::now()) {
                    return stale(answer);
                }
                // RFC 8767 §5: refresh, and answer stale only if no fresh answer comes in time.
                let stale_key = key.clone();
                let refresh = {
                    let inner = Arc::clone(inner);
                    let question = question.clone();
                    tokio::spawn(async move { inner.resolve(&question, key).await })
                };
                match tokio::time::timeout(STALE_ANSWER_TIMEOUT, refresh).await {
                    Ok(Ok(outcome @ (Outcome::Success(_) | Outcome::NotFound(_)))) => outcome,
                    Ok(Ok(outcome)) if inner.bogus_now(&stale_key).is_some() => outcome,
                    _ => {
                        inner.failures.served_stale(&stale_key, Instant::now());
                        stale(answer)
                    }
                }
            }
            Lookup::Miss => Box::pin(inner.resolve(question, key)).await,
        }
    }
}

/// Probes group `index`'s upstreams marked down every `health_check` until the forwarder is
/// dropped.
async fn health_checks(inner: Weak<Inner>, index: usize) {
    let Some(interval) = inner
        .upgrade()
        .map(|inner| inner.groups[index].health_check)
    else {
        return;
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let group = &inner.groups[index];
        for &member in &group.members {
            let upstream = &inner.upstreams[member];
            if !upstream.stats.is_down() || upstream.stats.is_looping() {
                continue;
            }
            let timeout = group.timeout.min(interval.max(Duration::from_millis(200)));
            if upstream.probe(timeout, &inner.provider).await {
                // Back up, perhaps as a different server: check it does not lead back to us.
                let inner = Arc::clone(&inner);
                tokio::spawn(async move { inner.send_loop_probe(member).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarder(policy: Policy, count: usize) -> Forwarder {
        let config = ForwardConfig {
            upstreams: (0..count)
                .map(|i| {
                    UpstreamSpec::udp(std::net::SocketAddr::from((
                        [127, 0, 0, 1],
                        1000 + i as u16,
                    )))
                })
                .collect(),
            upstreams_from: UpstreamsFrom::Config,
            policy,
            timeout: Duration::from_millis(100),
            max_concurrent: 10,
            health_check: Duration::from_secs(60),
            cache: Default::default(),
            tls_ca: None,
            udp_ports: 4,
            zones: Vec::new(),
            dnssec: DnssecConfig::default(),
        };
        Forwarder::new(&config)
    }

    impl Inner {
        fn attempt_order(&self) -> Vec<usize> {
            self.groups[0].attempt_order(&self.upstreams)
        }
    }

    #[tokio::test]
    async fn policies_order_the_upstreams() {
        let sequential = forwarder(Policy::Sequential, 3);
        assert_eq!(sequential.inner.attempt_order(), [0, 1, 2]);
        assert_eq!(sequential.inner.attempt_order(), [0, 1, 2]);

        let round_robin = forwarder(Policy::RoundRobin, 3);
        let starts: Vec<usize> = (0..4)
            .map(|_| round_robin.inner.attempt_order()[0])
            .collect();
        assert_eq!(starts, [0, 1, 2, 0]);
        assert_eq!(round_robin.inner.attempt_order(), [1, 2, 0]);

        let random = forwarder(Policy::Random, 3);
        let mut first_seen = [false; 3];
        for _ in 0..200 {
            let mut order = random.inner.attempt_order();
            first_seen[order[0]] = true;
            order.sort();
            assert_eq!(order, [0, 1, 2], "every upstream exactly once");
        }
        assert_eq!(first_seen, [true; 3]);
    }

    #[tokio::test]
    async fn down_and_looping_upstreams_are_skipped() {
        let forwarder = forwarder(Policy::Sequential, 3);
        let stats = |i: usize| &forwarder.inner.upstreams[i].stats;
        for _ in 0..MAX_FAILS {
            stats(0).record_failure();
        }
        assert!(stats(0).is_down());
        assert_eq!(
            forwarder.inner.attempt_order(),
            [1, 2],
            "down: skipped while others are up"
        );
        stats(1).mark_looping();
        assert_eq!(forwarder.inner.attempt_order(), [2], "looping: never used");
        for _ in 0..MAX_FAILS {
            stats(2).record_failure();
        }
        assert_eq!(
            forwarder.inner.attempt_order(),
            [0, 2],
            "all down: all but the looping one"
        );
        stats(0).record_success(Duration::from_millis(1));
        assert_eq!(forwarder.inner.attempt_order(), [0]);
    }

    #[tokio::test]
    async fn loop_probes_are_recognised() {
        let forwarder = forwarder(Policy::Sequential, 2);
        let nonce = &forwarder.inner.loop_nonce;
        let probe = |text: &str| Question::new(Name::from_ascii(text).unwrap(), RecordType::A);
        let ours = probe(&format!("{nonce}-1.{LOOP_PROBE_SUFFIX}"));
        assert_eq!(forwarder.inner.loop_probe_index(&ours), Some(1));
        assert_eq!(
            forwarder
                .inner
                .loop_probe_index(&probe(&format!("0000000000000000-1.{LOOP_PROBE_SUFFIX}"))),
            None
        );
        assert_eq!(
            forwarder.inner.loop_probe_index(&probe("www.example.")),
            None
        );
        let outcome = forwarder.lookup(&ours).await;
        assert!(matches!(
            &outcome,
            Outcome::Unavail(error)
                if matches!(error.downcast_ref(), Some(ForwardError::ForwardingLoop { .. }))
        ));
        assert!(forwarder.inner.upstreams[1].stats.is_looping());
        assert_eq!(forwarder.inner.attempt_order(), [0]);
    }
}
