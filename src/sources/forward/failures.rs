//! Remembered failures (RFC 9520) and the stale-answer recheck timer (RFC 8767 §5).
//!
//! RFC 9520 §3.2: "A resolver MUST implement a resolution failure cache"; a question whose
//! resolution failed (every upstream timed out, answered SERVFAIL or refused) is answered from
//! here, SERVFAIL with Extended DNS Error 13 (Cached Error), for a short interval that grows
//! while the failures repeat: from [`FIRST_INTERVAL`], doubling, up to [`MAX_INTERVAL`]
//! (§3.3: "... not less than 1 second ... not more than 5 minutes"). So a client retrying a
//! broken name does not make an upstream query each time, and an outage does not multiply
//! the load on the upstreams.
//!
//! RFC 8767 §5: "the resolver SHOULD ... [use] a failure recheck timer": once a stale answer
//! has been served because no upstream answered in time, further questions for it are
//! answered stale at once, without waiting 1.8 s again, for `cache.stale_recheck` (30 s by
//! default, as the RFC recommends).
//!
//! Bounded: at most [`CAPACITY`] questions are remembered (a flood of random names that all
//! fail cannot grow it); the least recently failed are forgotten first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quick_cache::sync::Cache as QuickCache;
use tokio::time::Instant;

use crate::cache::CacheKey;

/// RFC 9520 §3.3: at least a second.
const FIRST_INTERVAL: Duration = Duration::from_secs(1);

/// RFC 9520 §3.3: at most five minutes.
const MAX_INTERVAL: Duration = Duration::from_secs(300);

/// Questions remembered at most.
const CAPACITY: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failed {
    /// Until when the failure is answered from here.
    until: Instant,
    /// How long the last interval was: the next failure doubles it.
    interval: Duration,
    /// Until when a stale answer is served at once.
    stale_until: Option<Instant>,
}

/// The failure cache.
pub struct Failures {
    entries: QuickCache<CacheKey, Failed>,
    /// Questions answered from here.
    pub hits: AtomicU64,
    /// `cache.stale_recheck`.
    stale_recheck: Duration,
}

impl Failures {
    /// A failure cache whose stale answers are served at once for `stale_recheck`.
    pub fn new(stale_recheck: Duration) -> Self {
        Self {
            entries: QuickCache::new(CAPACITY),
            hits: AtomicU64::new(0),
            stale_recheck,
        }
    }

    /// How long `key` is still a remembered failure, counted as a hit; `None` if it is not.
    pub fn remembered(&self, key: &CacheKey, now: Instant) -> Option<Duration> {
        let failed = self.entries.get(key)?;
        let left = failed.until.checked_duration_since(now)?;
        if left.is_zero() {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(left)
    }

    /// Remembers that resolving `key` failed at `now`: for a second the first time, twice as
    /// long each time it fails again soon after, at most five minutes.
    pub fn record(&self, key: &CacheKey, now: Instant) {
        let previous = self.entries.get(key);
        let interval = match previous {
            // Failing again within twice the last interval: the failure goes on.
            Some(failed) if now < failed.until + failed.interval => {
                (failed.interval * 2).min(MAX_INTERVAL)
            }
            _ => FIRST_INTERVAL,
        };
        self.entries.insert(
            key.clone(),
            Failed {
                until: now + interval,
                interval,
                stale_until: previous.and_then(|f| f.stale_until),
            },
        );
    }

    /// Resolving `key` succeeded: forget its failures.
    pub fn forget(&self, key: &CacheKey) {
        self.entries.remove(key);
    }

    /// A stale answer for `key` was served because no fresh one came in time.
    pub fn served_stale(&self, key: &CacheKey, now: Instant) {
        let failed = self.entries.get(key).unwrap_or(Failed {
            until: now,
            interval: Duration::ZERO,
            stale_until: None,
        });
        self.entries.insert(
            key.clone(),
            Failed {
                stale_until: Some(now + self.stale_recheck),
                ..failed
            },
        );
    }

    /// Whether a stale answer for `key` is to be served at once.
    pub fn serve_stale_now(&self, key: &CacheKey, now: Instant) -> bool {
        self.entries
            .get(key)
            .and_then(|failed| failed.stale_until)
            .is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Question;
    use hickory_proto::rr::{Name, RecordType};

    fn key(name: &str) -> CacheKey {
        CacheKey::new(&Question::new(
            Name::from_ascii(name).unwrap(),
            RecordType::A,
        ))
    }

    #[test]
    fn failures_are_remembered_for_a_growing_interval() {
        let failures = Failures::new(Duration::from_secs(30));
        let broken = key("broken.example.");
        let start = Instant::now();
        assert_eq!(failures.remembered(&broken, start), None);
        failures.record(&broken, start);
        assert_eq!(
            failures.remembered(&broken, start),
            Some(Duration::from_secs(1))
        );
        let later = start + Duration::from_millis(1500);
        assert_eq!(failures.remembered(&broken, later), None, "expired");
        failures.record(&broken, later);
        assert_eq!(
            failures.remembered(&broken, later),
            Some(Duration::from_secs(2)),
            "failed again soon after: doubled"
        );
        let mut now = later;
        for _ in 0..20 {
            now += Duration::from_secs(1);
            failures.record(&broken, now);
        }
        assert_eq!(failures.remembered(&broken, now), Some(MAX_INTERVAL));
        failures.forget(&broken);
        assert_eq!(failures.remembered(&broken, now), None);
        let after_a_while = now + Duration::from_secs(3600);
        failures.record(&broken, after_a_while);
        assert_eq!(
            failures.remembered(&broken, after_a_while),
            Some(FIRST_INTERVAL),
            "a new outage starts over"
        );
    }

    #[test]
    fn a_stale_answer_served_once_is_served_at_once_for_30_seconds() {
        let failures = Failures::new(Duration::from_secs(30));
        let name = key("stale.example.");
        let start = Instant::now();
        assert!(!failures.serve_stale_now(&name, start));
        failures.served_stale(&name, start);
        assert!(failures.serve_stale_now(&name, start + Duration::from_secs(29)));
        assert!(!failures.serve_stale_now(&name, start + Duration::from_secs(31)));
        assert_eq!(
            failures.remembered(&name, start),
            None,
            "serving stale is not a failure to answer"
        );
    }

    #[test]
    fn the_recheck_timer_is_the_configured_one() {
        let failures = Failures::new(Duration::from_secs(5));
        let name = key("stale.example.");
        let start = Instant::now();
        failures.served_stale(&name, start);
        assert!(failures.serve_stale_now(&name, start + Duration::from_secs(4)));
        assert!(!failures.serve_stale_now(&name, start + Duration::from_secs(6)));
    }
}
