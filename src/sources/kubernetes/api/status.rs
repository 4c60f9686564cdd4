//! How the watch is doing, for metrics and logs: [`ApiStatus`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How the watch of the API is doing, for metrics. Counters only go up; all kinds together.
///
/// Installs (zones built and swapped in) are counted by the cluster zone itself, as for
/// manifests, and so is readiness: whatever implements [`super::ClusterSink`] keeps them.
#[derive(Debug, Default)]
pub struct ApiStatus {
    /// Set once a watch runs for this cluster, so it never runs twice.
    pub(super) started: AtomicBool,
    pub(super) connected: AtomicBool,
    pub(super) watch_errors: AtomicU64,
    pub(super) events: AtomicU64,
    pub(super) lists: AtomicU64,
    /// Unix seconds of the first install; 0 before it.
    pub(super) synced_at: AtomicU64,
    /// Unix seconds when the current outage began; 0 when there is none.
    pub(super) outage_began: AtomicU64,
}

impl ApiStatus {
    /// Whether the API is feeding the zone now: every kind has been listed once and no kind's
    /// requests are failing. False before the first sync and during an outage (the API server
    /// unreachable, refusing, or answering errors), true again as soon as the failing kinds'
    /// API answers. A watch that expires (410 Gone) and lists again is not an outage.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Everything that went wrong with a list or a watch: failed requests, cut streams, ERROR
    /// events, expired watches (410 Gone, normal every few minutes on a busy cluster).
    pub fn watch_errors_total(&self) -> u64 {
        self.watch_errors.load(Ordering::Relaxed)
    }

    /// Objects received: listed, added, modified or deleted.
    pub fn events_total(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Complete lists: one per kind at the start, then one per kind for each re-list (after a
    /// 410 Gone). Rising fast means watches keep expiring.
    pub fn lists_total(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// Unix seconds up to which the served zone is known to match the API: now while
    /// [`connected`](Self::connected), the moment the outage began during one, 0 before the
    /// first sync. `time() - this` is how stale the answers may be.
    pub fn last_sync_unix_seconds(&self) -> u64 {
        if self.synced_at.load(Ordering::Acquire) == 0 {
            return 0;
        }
        if self.connected() {
            return unix_seconds(SystemTime::now());
        }
        match self.outage_began.load(Ordering::Acquire) {
            0 => self.synced_at.load(Ordering::Acquire),
            began => began,
        }
    }
}

pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
