//! Response rate limiting (RRL), with BIND's and Knot's semantics: responses per second per
//! client prefix; beyond the rate, every `slip`-th response goes out truncated (TC=1, no
//! records) and the rest are dropped.
//!
//! Why: a UDP query's source address can be forged, so an open server is an amplifier aimed at
//! whoever the forger names (1,232-byte replies to 40-byte queries: about 30×). Limiting the
//! responses per prefix caps what one victim receives; the slipped TC=1 replies, no larger than
//! the queries, let a real client behind the prefix retry over TCP, which cannot be forged and
//! is never limited. Neither is a client that presents a valid server cookie (RFC 7873 §5.2.5:
//! it has proven it receives our replies at its address), nor an `exempt` prefix.
//!
//! **Fixed memory.** The counts live in a table of [`SLOTS`] 64-bit words, allocated once and
//! indexed by a keyed hash of the prefix, so a flood from millions of spoofed sources cannot
//! grow it. A word holds a tag (28 bits of the hash, to tell prefixes that share a slot apart),
//! the second it counts (12 bits) and the count (24 bits). A prefix that finds its slot taken
//! by another in the same second takes it over, resetting the count: a flood can make the
//! limiter forget a real abuser for a second, never make it limit an innocent prefix. Updates
//! are one compare-and-swap, no lock.
//!
//! Counting happens in the front door, once per admitted UDP request: each is answered once, so
//! requests counted there are responses, fast-path ones included.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::DescriptorEncoder;
use tokio::time::Instant;

use crate::chain::client::{keyed_hash, prefix_key};
use crate::config::RateLimitConfig;
use crate::metrics::{load, Encoder, MetricDoc};

/// Words in the table: 2 MiB, 4 per prefix of a flood from every /24 of a /8.
pub const SLOTS: usize = 1 << 18;

/// What the limiter says of one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Within the rate.
    Pass,
    /// Over the rate: send a truncated reply (or, to a cookie client, BADCOOKIE).
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// The limiter's counters, kept across reloads.
#[derive(Debug, Default)]
pub struct RateLimitStats {
    pub limited: AtomicU64,
    pub slipped: AtomicU64,
    pub dropped: AtomicU64,
}

/// The rate limiter's metrics.
pub const METRICS: &[MetricDoc] = &[
    (
        "rate_limit_limited_total",
        "counter",
        "UDP responses over [rate_limit]'s rate for their client prefix.",
    ),
    (
        "rate_limit_slipped_total",
        "counter",
        "Limited responses sent truncated (TC=1), or BADCOOKIE to a cookie client (slip).",
    ),
    (
        "rate_limit_dropped_total",
        "counter",
        "Limited responses not sent.",
    ),
];

impl RateLimitStats {
    /// Encodes [`METRICS`].
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut out = Encoder::new(encoder, METRICS);
        out.counter("rate_limit_limited_total", load(&self.limited))?;
        out.counter("rate_limit_slipped_total", load(&self.slipped))?;
        out.counter("rate_limit_dropped_total", load(&self.dropped))
    }
}

/// The table and the rules of `[rate_limit]`.
pub struct RateLimiter {
    config: RateLimitConfig,
    slots: Box<[AtomicU64]>,
    key: u64,
    /// Limited responses so far, for the slip cadence.
    limited: AtomicU32,
    /// Seconds are counted from here.
    epoch: Instant,
    stats: Arc<RateLimitStats>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const TAG_BITS: u32 = 28;
const SECOND_BITS: u32 = 12;
const COUNT_BITS: u32 = 24;

impl RateLimiter {
    pub fn new(config: RateLimitConfig, stats: Arc<RateLimitStats>) -> Self {
        Self {
            config,
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            key: rand::random(),
            limited: AtomicU32::new(0),
            epoch: Instant::now(),
            stats,
        }
    }

    /// Where the seconds [`RateLimiter::count`] is given are counted from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Counts one response to `ip` in second `second` (any clock that counts seconds), and says
    /// whether it may be sent. `proven` is asked only for a response over the rate: whether the
    /// client has proven its address (a valid server cookie), which exempts it.
    #[inline]
    pub fn count(&self, ip: IpAddr, second: u64, proven: impl FnOnce() -> bool) -> Limit {
        let prefix = prefix_key(ip, self.config.ipv4_prefix, self.config.ipv6_prefix);
        let hash = keyed_hash(prefix, self.key);
        let slot = &self.slots[(hash as usize) & (SLOTS - 1)];
        let tag = hash >> (64 - TAG_BITS);
        let second = second & ((1 << SECOND_BITS) - 1);
        let mut old = slot.load(Ordering::Relaxed);
        loop {
            let same = old >> (SECOND_BITS + COUNT_BITS) == tag
                && (old >> COUNT_BITS) & ((1 << SECOND_BITS) - 1) == second;
            let count = if same {
                old & ((1 << COUNT_BITS) - 1)
            } else {
                0
            };
            if count >= u64::from(self.config.responses_per_second) {
                break;
            }
            let new = (tag << (SECOND_BITS + COUNT_BITS)) | (second << COUNT_BITS) | (count + 1);
            match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Limit::Pass,
                Err(now) => old = now,
            }
        }
        if proven() || self.is_exempt(ip) {
            return Limit::Pass;
        }
        self.stats.limited.fetch_add(1, Ordering::Relaxed);
        let n = self.limited.fetch_add(1, Ordering::Relaxed);
        if self.config.slip > 0 && n % self.config.slip == 0 {
            self.stats.slipped.fetch_add(1, Ordering::Relaxed);
            Limit::Slip
        } else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            Limit::Drop
        }
    }

    fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.config
            .exempt
            .iter()
            .any(|network| network.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, slip: u32, exempt: &[&str]) -> RateLimiter {
        RateLimiter::new(
            RateLimitConfig {
                responses_per_second: rate,
                ipv4_prefix: 24,
                ipv6_prefix: 56,
                slip,
                exempt: exempt.iter().map(|n| n.parse().unwrap()).collect(),
            },
            Arc::default(),
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_prefix_gets_its_rate_per_second_and_no_more() {
        let limiter = limiter(10, 2, &[]);
        let passed = (0..100)
            .filter(|i| limiter.count(ip(&format!("192.0.2.{i}")), 7, || false) == Limit::Pass)
            .count();
        assert_eq!(passed, 10, "the /24 shares one rate");
        assert_eq!(
            limiter.count(ip("192.0.3.1"), 7, || false),
            Limit::Pass,
            "another /24 is apart"
        );
        assert_eq!(
            limiter.count(ip("192.0.2.1"), 8, || false),
            Limit::Pass,
            "a new second"
        );
        let stats = &limiter.stats;
        assert_eq!(stats.limited.load(Ordering::Relaxed), 90);
        assert_eq!(stats.slipped.load(Ordering::Relaxed), 45, "every 2nd slips");
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 45);
    }

    #[test]
    fn slip_zero_drops_all_and_one_slips_all() {
        for (slip, expected) in [(0, Limit::Drop), (1, Limit::Slip)] {
            let limiter = limiter(1, slip, &[]);
            assert_eq!(limiter.count(ip("192.0.2.1"), 1, || false), Limit::Pass);
            for _ in 0..5 {
                assert_eq!(limiter.count(ip("192.0.2.1"), 1, || false), expected);
            }
        }
    }

    #[test]
    fn proven_and_exempt_clients_are_never_limited() {
        let limiter = limiter(1, 2, &["127.0.0.0/8"]);
        for _ in 0..10 {
            assert_eq!(limiter.count(ip("127.0.0.1"), 1, || false), Limit::Pass);
            assert_eq!(
                limiter.count(ip("::ffff:127.0.0.1"), 1, || false),
                Limit::Pass
            );
        }
        limiter.count(ip("192.0.2.1"), 1, || false);
        for _ in 0..10 {
            assert_eq!(limiter.count(ip("192.0.2.1"), 1, || true), Limit::Pass);
        }
        assert_eq!(limiter.stats.limited.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn ipv6_clients_share_their_prefix() {
        let limiter = limiter(2, 0, &[]);
        assert_eq!(
            limiter.count(ip("2001:db8:0:1::1"), 1, || false),
            Limit::Pass
        );
        assert_eq!(
            limiter.count(ip("2001:db8:0:ff::2"), 1, || false),
            Limit::Pass
        );
        assert_eq!(
            limiter.count(ip("2001:db8:0:1::3"), 1, || false),
            Limit::Drop,
            "the same /56"
        );
        assert_eq!(limiter.count(ip("2001:db8:1::1"), 1, || false), Limit::Pass);
    }
}
