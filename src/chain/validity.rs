//! How long an answer stays the answer to its question, and what can end that.
//!
//! The UDP fast path ([`crate::server`]'s table of encoded replies) reuses a reply only while
//! everything the general path consulted to build it is unchanged. Two things can change:
//!
//! - **local data**: a hosts file, the zone files, the cluster's objects. Each kind of data has
//!   a [`DataVersion`], a counter its owner bumps after every change it swaps in. An answer
//!   records which versions it read ([`Dependencies`]); the table stamps the entry with those
//!   counters as they were *before* the answer was computed, and a hit needs them unchanged.
//!   So a cluster change never evicts a hosts answer, and a zone file edit never evicts a
//!   forwarded answer (which depends only on the zones' *origins*, through its NOTFOUND).
//! - **time**: a cached forwarded answer expires; its TTLs count down ([`Validity::Until`]).
//!
//! ```text
//!   source A reads data v7 ─┐
//!   source B reads data v3 ─┼─► Validity::UntilChanged({A, B}) ─► table entry stamped A+B
//!   (order, actions)        ┘                                      hit: A+B still the same?
//! ```
//!
//! Why a sum for the stamp: every counter only grows, so the sum over a set of counters is
//! unchanged exactly when each of them is. One add per dependency on a hit, and an entry holds
//! one `u64` whatever it depends on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many kinds of local data can be told apart. Hearth registers four (hosts, zone origins,
/// zone data, cluster); a bit each in a [`Dependencies`].
pub const MAX_DATA_VERSIONS: usize = 16;

/// The version counters of every kind of local data, shared by the sources that bump them and
/// the fast table that reads them.
#[derive(Debug, Default)]
pub struct DataVersions {
    counters: [AtomicU64; MAX_DATA_VERSIONS],
    /// The name of each registered slot, in slot order.
    names: Mutex<Vec<&'static str>>,
}

impl DataVersions {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The version counter named `name`: the same slot every time the name is asked for, so a
    /// source rebuilt by a configuration reload keeps its slot.
    ///
    /// # Panics
    /// If more than [`MAX_DATA_VERSIONS`] names are registered: a programming error, since the
    /// names are constants of the sources.
    pub fn register(self: &Arc<Self>, name: &'static str) -> DataVersion {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match names.iter().position(|n| *n == name) {
            Some(slot) => slot,
            None => {
                assert!(names.len() < MAX_DATA_VERSIONS, "too many data versions");
                names.push(name);
                names.len() - 1
            }
        };
        DataVersion {
            versions: Arc::clone(self),
            slot: slot as u8,
        }
    }

    /// Ends the validity of every answer computed so far (a new configuration: another order,
    /// other actions, other sources).
    pub fn bump_all(&self) {
        for counter in &self.counters {
            counter.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The counters now. Take it *before* computing an answer that may be stored, so that a
    /// change swapped in while it is computed makes the stored answer stale at once.
    pub fn snapshot(&self) -> VersionSnapshot {
        VersionSnapshot(std::array::from_fn(|slot| {
            self.counters[slot].load(Ordering::Acquire)
        }))
    }

    /// The stamp of `dependencies` now; compare with [`VersionSnapshot::stamp`].
    pub fn stamp(&self, dependencies: Dependencies) -> u64 {
        dependencies
            .slots()
            .map(|slot| self.counters[slot].load(Ordering::Acquire))
            .fold(0, u64::wrapping_add)
    }
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct VersionSnapshot([u64; MAX_DATA_VERSIONS]);

impl VersionSnapshot {
    /// The stamp of `dependencies` at the snapshot's moment.
    pub fn stamp(&self, dependencies: Dependencies) -> u64 {
        dependencies
            .slots()
            .map(|slot| self.0[slot])
            .fold(0, u64::wrapping_add)
    }
}

/// One kind of local data's version counter. Its owner calls [`DataVersion::bump`] after it
/// swaps in changed data (never before: an answer computed from the old data between a bump
/// and the swap would be stamped with the new version).
#[derive(Clone, Debug)]
pub struct DataVersion {
    versions: Arc<DataVersions>,
    slot: u8,
}

impl DataVersion {
    /// A counter in a registry of its own: for a source built outside a server (tests,
    /// benchmarks, `hearth check`), whose answers no table stores.
    pub fn detached(name: &'static str) -> Self {
        DataVersions::new().register(name)
    }

    pub fn bump(&self) {
        self.versions.counters[usize::from(self.slot)].fetch_add(1, Ordering::AcqRel);
    }

    /// What an answer read from this data depends on.
    pub fn dependencies(&self) -> Dependencies {
        Dependencies(1 << self.slot)
    }
}

/// The kinds of local data an answer was read from: a set of [`DataVersion`] slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dependencies(u16);

impl Dependencies {
    /// Read from no local data.
    pub const NONE: Dependencies = Dependencies(0);

    pub fn union(self, other: Dependencies) -> Dependencies {
        Dependencies(self.0 | other.0)
    }

    /// The set as bits, for a table that keeps it in bytes (the fast table's entries).
    pub fn bits(self) -> u16 {
        self.0
    }

    /// The set [`Dependencies::bits`] gave.
    pub fn from_bits(bits: u16) -> Dependencies {
        Dependencies(bits)
    }

    /// The slots in the set, lowest first: one step per member, not per possible slot (this
    /// runs on every fast-path hit).
    fn slots(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let slot = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(slot)
        })
    }
}

/// How long an answer stays the answer to its question.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Validity {
    /// Not reusable: a failure, a stale answer, a computed one. The default.
    #[default]
    Never,
    /// Until one of the local data it was read from changes.
    UntilChanged(Dependencies),
    /// Until `until`, with TTLs counting down from `origin` (the moment the TTLs were full)
    /// and `encoded_age` whole seconds already counted off: an answer from the cache. It may
    /// also depend on local data (the NOTFOUNDs of the sources before the cache).
    Until {
        dependencies: Dependencies,
        origin: tokio::time::Instant,
        encoded_age: u32,
        until: tokio::time::Instant,
    },
}

impl Validity {
    /// An answer from a cache, reusable until `until`: depends on no local data itself.
    pub fn until(
        origin: tokio::time::Instant,
        encoded_age: u32,
        until: tokio::time::Instant,
    ) -> Self {
        Self::Until {
            dependencies: Dependencies::NONE,
            origin,
            encoded_age,
            until,
        }
    }

    /// The validity of an answer built from two: it ends when either ends.
    pub fn meet(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Never, _) | (_, Never) => Never,
            (UntilChanged(a), UntilChanged(b)) => UntilChanged(a.union(b)),
            (
                UntilChanged(a),
                Until {
                    dependencies,
                    origin,
                    encoded_age,
                    until,
                },
            )
            | (
                Until {
                    dependencies,
                    origin,
                    encoded_age,
                    until,
                },
                UntilChanged(a),
            ) => Until {
                dependencies: dependencies.union(a),
                origin,
                encoded_age,
                until,
            },
            (
                Until {
                    dependencies: a,
                    origin: x,
                    encoded_age,
                    until: ux,
                },
                Until {
                    dependencies: b,
                    origin: y,
                    until: uy,
                    ..
                },
            ) if x == y => Until {
                dependencies: a.union(b),
                origin: x,
                encoded_age,
                until: ux.min(uy),
            },
            // Two countdowns from different moments cannot be patched as one.
            (Until { .. }, Until { .. }) => Never,
        }
    }

    /// The local data this answer depends on; `None` if it is never reused.
    pub fn dependencies(&self) -> Option<Dependencies> {
        match self {
            Self::Never => None,
            Self::UntilChanged(dependencies) | Self::Until { dependencies, .. } => {
                Some(*dependencies)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_changes_only_with_what_it_depends_on() {
        let versions = DataVersions::new();
        let hosts = versions.register("files");
        let cluster = versions.register("cluster");
        assert_eq!(
            versions.register("files").dependencies(),
            hosts.dependencies()
        );
        let before = versions.snapshot();
        cluster.bump();
        assert_eq!(
            versions.stamp(hosts.dependencies()),
            before.stamp(hosts.dependencies()),
            "a cluster change leaves a hosts answer valid"
        );
        let both = hosts.dependencies().union(cluster.dependencies());
        assert_ne!(versions.stamp(both), before.stamp(both));
        versions.bump_all();
        assert_ne!(
            versions.stamp(hosts.dependencies()),
            before.stamp(hosts.dependencies())
        );
        assert_eq!(versions.stamp(Dependencies::NONE), 0);
    }

    #[test]
    fn meet_keeps_every_dependency_and_the_shorter_time() {
        let versions = DataVersions::new();
        let a = versions.register("a").dependencies();
        let b = versions.register("b").dependencies();
        let now = tokio::time::Instant::now();
        let later = now + std::time::Duration::from_secs(5);
        let cached = Validity::until(now, 0, later);
        assert_eq!(
            Validity::UntilChanged(a).meet(Validity::UntilChanged(b)),
            Validity::UntilChanged(a.union(b))
        );
        assert_eq!(
            Validity::UntilChanged(a).meet(cached).dependencies(),
            Some(a)
        );
        assert_eq!(Validity::Never.meet(cached), Validity::Never);
        let other = Validity::until(later, 0, later);
        assert_eq!(cached.meet(other), Validity::Never);
    }
}
