//! What the fast table holds for one query: its key, the stored reply and what a hit patches
//! in it, packed in **one allocation**.
//!
//! ```text
//!  quick_cache slot ─┬─ key:   Packed ──────────┐
//!                    └─ value: Entry (metadata) ─┤ the same Arc<[u8]>
//!                                                ▼
//!            [ key: query after its ID | reply | TTL offsets (u16 BE) | address runs (3 × u16 BE) ]
//! ```
//!
//! Why: a stored reply used to be four allocations (the key's box, an `Arc`'d entry, the
//! reply's box and the TTL offsets' box), each with its allocator header and rounding, and
//! on a table larger than the CPU's caches (issue 16's hit-tail: a million replies) a hit
//! followed the slot to the key, then the entry, then the reply and the offsets. Now the slot
//! holds the metadata and one pointer leads to the key, with the reply and its offsets right
//! behind it. The memory is what this gained; the time of a hit was already spent elsewhere:
//!
//! Measured on hit-tail (a million replies, a 512 MiB budget, server on one core; BENCHMARKS.md,
//! 2026-12-07): RSS fell from 596 MB to 511 MB. The time of a hit did not move beyond the
//! noise (4.53 / 4.09 / 5.02 µs of the core per answer before, 4.23 / 4.40 / 4.87 after): the
//! lookup's cost is in quick_cache's index, where hashbrown reads the control group and then
//! the bucket, two dependent misses (41% and 46% of the lookup's samples), before the slot.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::time::Instant;

use crate::chain::Dependencies;

/// The table's key: the packed bytes, of which the first `key_length` are the query's bytes
/// after its ID. It hashes and compares as those bytes alone (`Borrow<[u8]>`), so the table is
/// asked with the query's slice and nothing is built for a lookup.
#[derive(Clone, Debug)]
pub(super) struct Packed {
    bytes: Arc<[u8]>,
    key_length: u16,
}

impl Packed {
    pub(super) fn key(&self) -> &[u8] {
        &self.bytes[..usize::from(self.key_length)]
    }
}

impl Borrow<[u8]> for Packed {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

/// As `[u8]` hashes, which `Borrow` requires: a lookup with the query's slice finds the entry.
impl Hash for Packed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Packed {}

/// What a hit checks before it reuses the reply, held in quick_cache's slot itself; the bytes
/// are the key's allocation.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    bytes: Arc<[u8]>,
    key_length: u16,
    reply_length: u16,
    ttl_count: u16,
    pub metadata: Metadata,
}

/// Consecutive A (or AAAA) records of one owner, each encoded in the same number of bytes
/// (same owner bytes, same RDATA length): rotating the records' bytes as a whole is rotating
/// the RRset, which is what the general path does to the records (`chain::shape`). TTLs move
/// with their records, already counted down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AddressRun {
    pub start: u16,
    pub record_length: u16,
    pub count: u16,
}

/// For a reply from the cache: when its TTLs were full, how old they were when encoded, and
/// until when it may be reused.
#[derive(Clone, Copy, Debug)]
pub(super) struct Countdown {
    pub origin: Instant,
    pub encoded_age: u32,
    pub until: Instant,
}

/// What the table needs to know of a reply besides its bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Metadata {
    /// The local data the answer read, and the sum of their versions before it was computed.
    pub dependencies: Dependencies,
    pub stamp: u64,
    pub countdown: Option<Countdown>,
    /// The source that gave the answer, for the query log.
    pub source: Option<&'static str>,
}

/// `key`, `reply`, its TTL offsets and its address runs packed as the table's key and value;
/// `None` if a length does not fit the `u16`s a DNS message's own offsets fit in.
pub(super) fn pack(
    key: &[u8],
    reply: &[u8],
    ttl_offsets: &[u16],
    runs: &[AddressRun],
    metadata: Metadata,
) -> Option<(Packed, Entry)> {
    let key_length = u16::try_from(key.len()).ok()?;
    let reply_length = u16::try_from(reply.len()).ok()?;
    let ttl_count = u16::try_from(ttl_offsets.len()).ok()?;
    let mut packed =
        Vec::with_capacity(key.len() + reply.len() + 2 * ttl_offsets.len() + 6 * runs.len());
    packed.extend_from_slice(key);
    packed.extend_from_slice(reply);
    for offset in ttl_offsets {
        packed.extend_from_slice(&offset.to_be_bytes());
    }
    for run in runs {
        packed.extend_from_slice(&run.start.to_be_bytes());
        packed.extend_from_slice(&run.record_length.to_be_bytes());
        packed.extend_from_slice(&run.count.to_be_bytes());
    }
    let bytes: Arc<[u8]> = Arc::from(packed);
    Some((
        Packed {
            bytes: Arc::clone(&bytes),
            key_length,
        },
        Entry {
            bytes,
            key_length,
            reply_length,
            ttl_count,
            metadata,
        },
    ))
}

impl Entry {
    pub(super) fn reply(&self) -> &[u8] {
        let start = usize::from(self.key_length);
        &self.bytes[start..start + usize::from(self.reply_length)]
    }

    /// Where each of the reply's TTLs is.
    pub(super) fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.bytes[self.offsets_start()..self.runs_start()]
            .chunks_exact(2)
            .map(|pair| usize::from(u16::from_be_bytes([pair[0], pair[1]])))
    }

    pub(super) fn has_runs(&self) -> bool {
        self.runs_start() < self.bytes.len()
    }

    pub(super) fn runs(&self) -> impl Iterator<Item = AddressRun> + '_ {
        self.bytes[self.runs_start()..]
            .chunks_exact(6)
            .map(|run| AddressRun {
                start: u16::from_be_bytes([run[0], run[1]]),
                record_length: u16::from_be_bytes([run[2], run[3]]),
                count: u16::from_be_bytes([run[4], run[5]]),
            })
    }

    /// The bytes of key, reply, offsets and runs together, for the table's weight.
    pub(super) fn packed_length(&self) -> usize {
        self.bytes.len()
    }

    fn offsets_start(&self) -> usize {
        usize::from(self.key_length) + usize::from(self.reply_length)
    }

    fn runs_start(&self) -> usize {
        self.offsets_start() + 2 * usize::from(self.ttl_count)
    }
}

/// What one entry costs besides its packed bytes, counted: quick_cache's slot (the key and the
/// entry, with its own words) and its index, the `Arc`'s two counts, and the allocator's
/// rounding of the packed bytes (16 on average).
pub(super) const ENTRY_OVERHEAD: u64 = (std::mem::size_of::<Packed>()
    + std::mem::size_of::<Entry>()
    + 16 // the slot's own words
    + 16 // the index
    + 16 // the Arc's counts
    + 16) as u64; // rounding

#[cfg(test)]
mod tests {
    use super::*;

    fn no_metadata() -> Metadata {
        Metadata {
            dependencies: Dependencies::NONE,
            stamp: 0,
            countdown: None,
            source: None,
        }
    }

    /// Whatever is packed reads back, and the key compares and hashes as its bytes alone.
    #[test]
    fn what_is_packed_reads_back() {
        let runs = [AddressRun {
            start: 40,
            record_length: 16,
            count: 3,
        }];
        let (key, entry) = pack(
            b"query-key",
            b"the reply bytes",
            &[7, 300, 65535],
            &runs,
            Metadata {
                dependencies: Dependencies::NONE,
                stamp: 9,
                countdown: None,
                source: Some("zones"),
            },
        )
        .expect("small enough");
        assert_eq!(key.key(), b"query-key");
        assert_eq!(entry.reply(), b"the reply bytes");
        assert_eq!(entry.ttl_offsets().collect::<Vec<_>>(), [7, 300, 65535]);
        assert!(entry.has_runs());
        assert_eq!(entry.runs().collect::<Vec<_>>(), runs);
        assert_eq!(entry.packed_length(), 9 + 15 + 6 + 6);

        let hash = |value: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            value(&mut hasher);
            hasher.finish()
        };
        let slice: &[u8] = b"query-key";
        assert_eq!(hash(&|h| key.hash(h)), hash(&|h| slice.hash(h)));
        let (other, other_entry) =
            pack(b"query-key", b"another reply", &[], &[], no_metadata()).expect("small enough");
        assert_eq!(key, other);
        assert_eq!(other_entry.ttl_offsets().count(), 0);
        assert!(!other_entry.has_runs());
    }

    /// A reply too long for a `u16` length is not packed (the table then does not store it).
    #[test]
    fn an_oversized_reply_is_not_packed() {
        let reply = vec![0u8; 70_000];
        let packed = pack(b"k", &reply, &[], &[], no_metadata());
        assert!(packed.is_none());
    }
}
