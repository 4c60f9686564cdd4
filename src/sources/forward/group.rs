//! Where a question is forwarded: the default group (`[forward]`) or the `[[forward.zone]]`
//! whose domain is the longest suffix of the name, as dnsmasq's `server=/domain/` and Unbound's
//! `forward-zone` choose. Each group has its own upstreams, policy, timeout, health checks and
//! limit of queries in flight, so a flood under one zone cannot refuse another's misses; the
//! default group also limits each domain under it ([`DomainLimits`]).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use rand::seq::SliceRandom;
use tokio::sync::Semaphore;

use super::setup::Policy;
use super::upstream::Upstream;

/// One set of upstreams and how to use them.
pub struct Group {
    /// The zone this group answers for; `None` for the default group.
    pub zone: Option<LowerName>,
    /// Its upstreams: indexes into the forwarder's list (an upstream named in two groups is
    /// one upstream, with one health state).
    pub members: Vec<usize>,
    pub policy: Policy,
    pub timeout: Duration,
    pub health_check: Duration,
    /// Where the next round-robin query starts.
    next: AtomicUsize,
    /// Upstream queries in flight (`max_concurrent`).
    pub concurrency: Semaphore,
    /// The default group's limit per domain under it.
    pub domains: Option<DomainLimits>,
    /// Queries that found every upstream marked down (and so tried them all).
    pub all_down: AtomicU64,
    /// Queries refused because `max_concurrent` (or a domain's share of it) was reached.
    pub max_concurrent_rejects: AtomicU64,
}

impl Group {
    pub fn new(
        zone: Option<LowerName>,
        members: Vec<usize>,
        policy: Policy,
        timeout: Duration,
        health_check: Duration,
        max_concurrent: usize,
    ) -> Self {
        let domains = zone
            .is_none()
            .then(|| DomainLimits::new(per_domain_limit(max_concurrent)));
        Self {
            zone,
            members,
            policy,
            timeout,
            health_check,
            next: AtomicUsize::new(0),
            all_down: AtomicU64::new(0),
            max_concurrent_rejects: AtomicU64::new(0),
            concurrency: Semaphore::new(max_concurrent),
            domains,
        }
    }

    /// The indexes of the upstreams, in the order this query tries them: not looping, the
    /// healthy ones (or all, when none is healthy), in the policy's order.
    pub fn attempt_order(&self, upstreams: &[Arc<Upstream>]) -> Vec<usize> {
        let usable = |i: &usize| !upstreams[*i].stats.is_looping();
        let mut order: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|i| usable(i) && !upstreams[*i].stats.is_down())
            .collect();
        if order.is_empty() {
            order = self.members.iter().copied().filter(usable).collect();
            // CoreDNS's `healthcheck_broken`: every upstream is down, so all are tried.
            self.all_down.fetch_add(1, Ordering::Relaxed);
        }
        match self.policy {
            Policy::Sequential => {}
            Policy::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed) % order.len().max(1);
                order.rotate_left(start);
            }
            Policy::Random => order.shuffle(&mut rand::rng()),
        }
        order
    }
}

/// The group for `name`: the zone with the longest matching domain, else the default (the
/// first group). `groups[1..]` are sorted longest domain first, so the first match wins.
pub fn route<'a>(groups: &'a [Group], name: &LowerName) -> &'a Group {
    groups[1..]
        .iter()
        .find(|group| group.zone.as_ref().is_some_and(|zone| zone.zone_of(name)))
        .unwrap_or(&groups[0])
}

/// What one domain under the default group may have in flight: a quarter of the group's
/// limit, so a random-subdomain flood under one domain (`<random>.victim.example`) leaves three
/// quarters to everyone else; but never fewer than 16 (or the whole limit, if smaller), so a
/// small limit is not cut into slivers.
fn per_domain_limit(max_concurrent: usize) -> u32 {
    let limit = (max_concurrent / 4).max(max_concurrent.min(16));
    u32::try_from(limit).unwrap_or(u32::MAX)
}

/// Counters of upstream queries in flight per domain (a name's last two labels: `example.com`
/// for `a.b.example.com`; a public suffix of two labels, such as `co.uk`, is shared by its
/// domains, which errs on the side of limiting). A fixed table indexed by a keyed hash, so a
/// flood of random domains cannot grow it; domains that share a counter share its limit.
pub struct DomainLimits {
    counts: Box<[AtomicU32]>,
    limit: u32,
    hasher: RandomState,
}

/// Counters in a [`DomainLimits`] table.
const DOMAIN_SLOTS: usize = 4096;

impl DomainLimits {
    fn new(limit: u32) -> Self {
        Self {
            counts: (0..DOMAIN_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            limit,
            hasher: RandomState::new(),
        }
    }

    /// A place for one more query under `name`'s domain, or `None` at the domain's limit.
    pub fn enter(&self, name: &LowerName) -> Option<DomainSlot<'_>> {
        let name = Name::from(name.clone());
        let domain = name.trim_to(2);
        let index = (self.hasher.hash_one(domain.to_ascii()) as usize) % DOMAIN_SLOTS;
        self.counts[index]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()?;
        Some(DomainSlot {
            count: &self.counts[index],
        })
    }
}

/// A query counted under its domain; the count goes down when this is dropped.
pub struct DomainSlot<'a> {
    count: &'a AtomicU32,
}

impl Drop for DomainSlot<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(text: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(text).unwrap())
    }

    fn group(zone: Option<&str>) -> Group {
        Group::new(
            zone.map(lower),
            Vec::new(),
            Policy::Sequential,
            Duration::from_secs(1),
            Duration::from_secs(1),
            8,
        )
    }

    #[test]
    fn the_longest_matching_zone_wins_and_the_rest_goes_to_the_default() {
        let groups = [
            group(None),
            group(Some("a.corp.example.")),
            group(Some("corp.example.")),
            group(Some("in-addr.arpa.")),
        ];
        let zone_of = |name: &str| {
            route(&groups, &lower(name))
                .zone
                .as_ref()
                .map(ToString::to_string)
        };
        assert_eq!(zone_of("x.a.corp.example."), Some("a.corp.example.".into()));
        assert_eq!(zone_of("b.corp.example."), Some("corp.example.".into()));
        assert_eq!(zone_of("CORP.example."), Some("corp.example.".into()));
        assert_eq!(
            zone_of("10.0.96.10.in-addr.arpa."),
            Some("in-addr.arpa.".into())
        );
        assert_eq!(
            zone_of("notcorp.example."),
            None,
            "a suffix of labels, not of text"
        );
        assert_eq!(zone_of("example.com."), None);
    }

    #[test]
    fn one_domain_gets_a_quarter_of_the_default_groups_flights() {
        assert_eq!(per_domain_limit(1000), 250);
        assert_eq!(per_domain_limit(40), 16);
        assert_eq!(per_domain_limit(2), 2);
        let limits = DomainLimits::new(2);
        let first = limits.enter(&lower("a1.victim.example.")).expect("one");
        let _second = limits.enter(&lower("b2.victim.example.")).expect("two");
        assert!(
            limits.enter(&lower("c3.victim.example.")).is_none(),
            "at the limit"
        );
        assert!(limits.enter(&lower("www.other.example.")).is_some());
        drop(first);
        assert!(limits.enter(&lower("d4.victim.example.")).is_some());
    }
}
