//! Duration histograms that cost a query two relaxed atomic adds on its own thread's cache
//! lines: no lock, and no counter shared by every core.
//!
//! Why not `prometheus_client::metrics::histogram::Histogram`: it keeps one set of buckets
//! behind a lock (a `parking_lot::RwLock` around the sum, count and buckets), which every core
//! would take on every query. Here each thread writes its own shard (the same round-robin
//! shard as the per-query counters, `super::shard_index`), and a scrape sums the shards.
//!
//! The buckets are counted per bucket (not cumulatively, so one add per observation); the
//! exposition format's cumulative `le` buckets are built at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// The smallest upper bound, in nanoseconds; each next bound doubles it.
const FIRST_BOUND_NANOS: u64 = 31_250;

/// Upper bounds of every duration histogram, in seconds: CoreDNS's `plugin.TimeBuckets`
/// (`prometheus.ExponentialBuckets(0.00025, 2, 16)`: 0.25 ms to 8.192 s), with the same
/// doubling continued three steps down (31.25, 62.5 and 125 µs) because a fast-path hit takes
/// tens of microseconds and would otherwise all land in one bucket. CoreDNS's names export its
/// sixteen only: `le` is cumulative, so the three below fold into its first.
pub const BUCKETS: [f64; 19] = [
    0.000_031_25,
    0.000_062_5,
    0.000_125,
    0.000_25,
    0.000_5,
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.024,
    2.048,
    4.096,
    8.192,
];

/// The buckets and the `+Inf` one.
pub const BUCKET_SLOTS: usize = BUCKETS.len() + 1;

/// Where CoreDNS's first bucket (0.25 ms) is in [`BUCKETS`].
const COREDNS_FIRST: usize = 3;

/// Which bounds a histogram is exported with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bounds {
    /// All of [`BUCKETS`].
    Hearth,
    /// CoreDNS's `plugin.TimeBuckets`, so its dashboards and alerts see what they expect.
    Coredns,
}

/// The bucket that holds `elapsed`: the first whose bound is at least it (`le` is inclusive),
/// or `+Inf`. Integer arithmetic: the bounds are 31,250 ns × 2ⁿ.
pub fn bucket_of(elapsed: Duration) -> usize {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    let multiples = nanos.saturating_sub(1) / FIRST_BOUND_NANOS;
    let bucket = (u64::BITS - multiples.leading_zeros()) as usize;
    bucket.min(BUCKETS.len())
}

/// One series of one shard: a count per bucket and the sum of the durations.
#[derive(Debug, Default)]
pub struct Series {
    buckets: [AtomicU64; BUCKET_SLOTS],
    nanos: AtomicU64,
}

impl Series {
    /// Counts `count` observations of `elapsed` (a batch that shares one duration).
    pub fn observe(&self, elapsed: Duration, count: u64) {
        self.buckets[bucket_of(elapsed)].fetch_add(count, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos
            .fetch_add(nanos.saturating_mul(count), Ordering::Relaxed);
    }

    /// Adds this series' counts into `into`.
    pub fn add_to(&self, into: &mut Snapshot) {
        for (total, bucket) in into.buckets.iter_mut().zip(&self.buckets) {
            *total = total.wrapping_add(bucket.load(Ordering::Relaxed));
        }
        into.nanos = into.nanos.wrapping_add(self.nanos.load(Ordering::Relaxed));
    }
}

/// A histogram summed over shards (and perhaps over series), ready to encode.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Per bucket, not cumulative.
    pub buckets: [u64; BUCKET_SLOTS],
    pub nanos: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0, |sum, n| sum.wrapping_add(*n))
    }

    pub fn sum_seconds(&self) -> f64 {
        self.nanos as f64 / 1e9
    }

    pub fn add(&mut self, other: &Snapshot) {
        for (total, bucket) in self.buckets.iter_mut().zip(&other.buckets) {
            *total = total.wrapping_add(*bucket);
        }
        self.nanos = self.nanos.wrapping_add(other.nanos);
    }

    /// (upper bound, count in that bucket) as prometheus-client takes them, which accumulates
    /// them itself and writes `+Inf` for `f64::MAX`.
    fn buckets(&self, bounds: Bounds) -> Vec<(f64, u64)> {
        let first = match bounds {
            Bounds::Hearth => 0,
            Bounds::Coredns => COREDNS_FIRST,
        };
        let below: u64 = self.buckets[..first].iter().sum();
        let mut buckets = Vec::with_capacity(BUCKET_SLOTS - first);
        for slot in first..BUCKET_SLOTS {
            let mut count = self.buckets[slot];
            if slot == first {
                count += below;
            }
            buckets.push((BUCKETS.get(slot).copied().unwrap_or(f64::MAX), count));
        }
        buckets
    }
}

/// A histogram per series (the index of a label value, such as an RCODE's slot), one copy per
/// thread shard.
pub struct Histograms {
    shards: Box<[Shard]>,
    series: usize,
}

/// One thread's series, on cache lines of their own.
#[repr(align(128))]
struct Shard(Box<[Series]>);

impl std::fmt::Debug for Histograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histograms")
            .field("series", &self.series)
            .finish_non_exhaustive()
    }
}

impl Histograms {
    /// `series` histograms, each sharded like the per-query counters.
    pub fn new(series: usize) -> Self {
        let shards = (0..super::shard_count())
            .map(|_| Shard((0..series).map(|_| Series::default()).collect()))
            .collect();
        Self { shards, series }
    }

    /// Counts one observation in `series` (ignored if out of range).
    pub fn observe(&self, series: usize, elapsed: Duration) {
        let shard = &self.shards[super::shard_index() % self.shards.len()];
        if let Some(series) = shard.0.get(series) {
            series.observe(elapsed, 1);
        }
    }

    /// `series` summed over the shards.
    pub fn snapshot(&self, series: usize) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for shard in self.shards.iter() {
            if let Some(series) = shard.0.get(series) {
                series.add_to(&mut snapshot);
            }
        }
        snapshot
    }
}

/// Encodes a histogram family: `name` without its unit (`_seconds` is added), one sample set
/// per `(labels, snapshot)`.
pub fn encode<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    bounds: Bounds,
    series: impl IntoIterator<Item = (L, Snapshot)>,
) -> std::fmt::Result {
    let mut family =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, snapshot) in series {
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(
                snapshot.sum_seconds(),
                snapshot.count(),
                &snapshot.buckets(bounds),
                None,
            )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        for (slot, bound) in BUCKETS.iter().enumerate() {
            let nanos = (bound * 1e9).round() as u64;
            assert_eq!(bucket_of(Duration::from_nanos(nanos)), slot, "{bound}");
            assert_eq!(
                bucket_of(Duration::from_nanos(nanos + 1)),
                slot + 1,
                "{bound}+"
            );
        }
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_secs(3600)), BUCKETS.len());
    }

    #[test]
    fn the_bounds_are_coredns_time_buckets_continued_downwards() {
        // prometheus.ExponentialBuckets(0.00025, 2, 16).
        let coredns: Vec<f64> = (0..16).map(|n| 0.00025 * 2f64.powi(n)).collect();
        assert_eq!(&BUCKETS[COREDNS_FIRST..], coredns.as_slice());
        for pair in BUCKETS.windows(2) {
            assert_eq!(pair[1], pair[0] * 2.0);
        }
    }

    #[test]
    fn coredns_bounds_fold_the_lower_buckets_into_their_first() {
        let histograms = Histograms::new(2);
        histograms.observe(1, Duration::from_micros(20));
        histograms.observe(1, Duration::from_micros(200));
        histograms.observe(1, Duration::from_millis(3));
        histograms.observe(1, Duration::from_secs(20));
        let snapshot = histograms.snapshot(1);
        assert_eq!(snapshot.count(), 4);
        assert_eq!(histograms.snapshot(0).count(), 0);
        let coredns = snapshot.buckets(Bounds::Coredns);
        assert_eq!(coredns.len(), 17);
        assert_eq!(coredns[0], (0.00025, 2));
        assert_eq!(coredns[16], (f64::MAX, 1));
        let hearth = snapshot.buckets(Bounds::Hearth);
        assert_eq!(hearth.len(), 20);
        assert_eq!(hearth[0], (0.000_031_25, 1));
    }
}
