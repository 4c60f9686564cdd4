//! What the fast table holds for one query: a header of what a hit checks, the key, the stored
//! reply and what a hit patches in it, packed in **one allocation**, which a bucket of the
//! table points to ([`super::slots`]).
//!
//! ```text
//!  bucket way ──► [ header (40 bytes) | key: query after its ID | reply
//!                   | TTL offsets (u16 BE) | address runs (3 × u16 BE) ]
//! ```
//!
//! Why one allocation with the header in it: on a table larger than the CPU's caches (issue
//! 16's long tails: 100,000 to a million replies) every allocation a hit reads is a cache miss,
//! and misses that depend on each other cannot overlap. A hit reads the bucket, then this; the
//! worker starts both reads for a whole batch before it uses either ([`super::slots::Reader`]).
//! The header holds what the hit checks (data versions, expiry) in bytes rather than as Rust
//! fields beside a pointer, so that nothing sits between the bucket and the bytes: instants are
//! kept as signed nanoseconds from the table's epoch, and the answering source as a small index
//! ([`Sources`]).

use std::sync::OnceLock;

use crate::chain::Dependencies;

/// The header's length and where each field is in it (little-endian; the DNS bytes behind it
/// keep their network order).
const HEADER: usize = 40;
const KEY_LENGTH: usize = 0;
const REPLY_LENGTH: usize = 2;
const TTL_COUNT: usize = 4;
const DEPENDENCIES: usize = 6;
const STAMP: usize = 8;
const FLAGS: usize = 16;
const SOURCE: usize = 17;
const ENCODED_AGE: usize = 18;
const ORIGIN: usize = 24;
const UNTIL: usize = 32;

/// `FLAGS`: the reply is from the cache and counts down.
const COUNTS_DOWN: u8 = 1;

/// One stored reply and all a hit needs of it. It is only made by [`pack`], so its bytes always
/// hold a whole header and the lengths in it fit them.
#[derive(Debug)]
pub(super) struct Stored(Box<[u8]>);

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

/// For a reply from the cache, in nanoseconds from the table's epoch: when its TTLs were full,
/// and until when it may be reused; and how old it was (whole seconds) when encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Countdown {
    pub origin: i64,
    pub encoded_age: u32,
    pub until: i64,
}

/// What the table needs to know of a reply besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Metadata {
    /// The local data the answer read, and the sum of their versions before it was computed.
    pub dependencies: Dependencies,
    pub stamp: u64,
    pub countdown: Option<Countdown>,
    /// The source that gave the answer ([`Sources`]; 0 for none).
    pub source: u8,
}

/// `key`, `reply`, its TTL offsets and its address runs packed behind their header; `None` if a
/// length does not fit the `u16`s a DNS message's own offsets fit in.
pub(super) fn pack(
    key: &[u8],
    reply: &[u8],
    ttl_offsets: &[u16],
    runs: &[AddressRun],
    metadata: Metadata,
) -> Option<Stored> {
    let key_length = u16::try_from(key.len()).ok()?;
    let reply_length = u16::try_from(reply.len()).ok()?;
    let ttl_count = u16::try_from(ttl_offsets.len()).ok()?;
    let mut packed = Vec::with_capacity(
        HEADER + key.len() + reply.len() + 2 * ttl_offsets.len() + 6 * runs.len(),
    );
    let countdown = metadata.countdown.unwrap_or(Countdown {
        origin: 0,
        encoded_age: 0,
        until: 0,
    });
    packed.extend_from_slice(&key_length.to_le_bytes());
    packed.extend_from_slice(&reply_length.to_le_bytes());
    packed.extend_from_slice(&ttl_count.to_le_bytes());
    packed.extend_from_slice(&metadata.dependencies.bits().to_le_bytes());
    packed.extend_from_slice(&metadata.stamp.to_le_bytes());
    packed.push(if metadata.countdown.is_some() {
        COUNTS_DOWN
    } else {
        0
    });
    packed.push(metadata.source);
    packed.extend_from_slice(&countdown.encoded_age.to_le_bytes());
    packed.extend_from_slice(&[0, 0]);
    packed.extend_from_slice(&countdown.origin.to_le_bytes());
    packed.extend_from_slice(&countdown.until.to_le_bytes());
    debug_assert_eq!(packed.len(), HEADER);
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
    Some(Stored(packed.into_boxed_slice()))
}

impl Stored {
    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }

    fn u64_at(&self, at: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(bytes)
    }

    fn key_end(&self) -> usize {
        HEADER + usize::from(self.u16_at(KEY_LENGTH))
    }

    fn reply_end(&self) -> usize {
        self.key_end() + usize::from(self.u16_at(REPLY_LENGTH))
    }

    fn runs_start(&self) -> usize {
        self.reply_end() + 2 * usize::from(self.u16_at(TTL_COUNT))
    }

    /// The query's bytes after its ID, which this reply answers.
    pub(super) fn key(&self) -> &[u8] {
        &self.0[HEADER..self.key_end()]
    }

    pub(super) fn reply(&self) -> &[u8] {
        &self.0[self.key_end()..self.reply_end()]
    }

    pub(super) fn metadata(&self) -> Metadata {
        let countdown = (self.0[FLAGS] & COUNTS_DOWN != 0).then(|| Countdown {
            origin: self.u64_at(ORIGIN) as i64,
            encoded_age: self.u32_at(ENCODED_AGE),
            until: self.u64_at(UNTIL) as i64,
        });
        Metadata {
            dependencies: Dependencies::from_bits(self.u16_at(DEPENDENCIES)),
            stamp: self.u64_at(STAMP),
            countdown,
            source: self.0[SOURCE],
        }
    }

    /// Where each of the reply's TTLs is.
    pub(super) fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.0[self.reply_end()..self.runs_start()]
            .chunks_exact(2)
            .map(|pair| usize::from(u16::from_be_bytes([pair[0], pair[1]])))
    }

    pub(super) fn has_runs(&self) -> bool {
        self.runs_start() < self.0.len()
    }

    pub(super) fn runs(&self) -> impl Iterator<Item = AddressRun> + '_ {
        self.0[self.runs_start()..]
            .chunks_exact(6)
            .map(|run| AddressRun {
                start: u16::from_be_bytes([run[0], run[1]]),
                record_length: u16::from_be_bytes([run[2], run[3]]),
                count: u16::from_be_bytes([run[4], run[5]]),
            })
    }

    /// Every byte of the allocation, for the table's weight.
    pub(super) fn packed_length(&self) -> usize {
        self.0.len()
    }

    /// Starts reading the lines a hit reads: the header, the key and the reply's start
    /// ([`crate::memory::prefetch`]).
    pub(super) fn prefetch(&self) {
        let bytes = &self.0;
        crate::memory::prefetch(&bytes[0]);
        for line in [64, 128] {
            if let Some(byte) = bytes.get(line) {
                crate::memory::prefetch(byte);
            }
        }
    }
}

/// What one entry costs besides its packed bytes, counted: its bucket way (a tag and a pointer,
/// 18 bytes, at a load that may fall to three eighths just after the table doubles,
/// [`super::slots`]) and the allocator's rounding of the packed bytes (16 on average).
pub(super) const ENTRY_OVERHEAD: u64 = 48 + 16;

/// The answering sources' names, each given a one-byte index the first time a reply from it
/// is stored, so that an entry's header names its source in a byte. Sources are a handful of
/// `&'static str`s (`hosts`, `zones`, `dns`, ...); past 255 of them a reply's source is not
/// kept (it only feeds the query log). Lock-free to read: the query log looks a name up per
/// logged hit.
pub(super) struct Sources([OnceLock<&'static str>; 255]);

impl Sources {
    pub(super) fn new() -> Self {
        Self(std::array::from_fn(|_| OnceLock::new()))
    }

    /// The index of `source`, 0 for none.
    pub(super) fn index(&self, source: Option<&'static str>) -> u8 {
        let Some(source) = source else {
            return 0;
        };
        for (index, slot) in self.0.iter().enumerate() {
            // A racing thread may fill the slot first: then it is checked like the others.
            let name = *slot.get_or_init(|| source);
            if name == source {
                return u8::try_from(index + 1).unwrap_or(0);
            }
        }
        0
    }

    pub(super) fn name(&self, index: u8) -> Option<&'static str> {
        let slot = usize::from(index).checked_sub(1)?;
        self.0.get(slot)?.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_metadata() -> Metadata {
        Metadata {
            dependencies: Dependencies::NONE,
            stamp: 0,
            countdown: None,
            source: 0,
        }
    }

    /// Whatever is packed reads back.
    #[test]
    fn what_is_packed_reads_back() {
        let runs = [AddressRun {
            start: 40,
            record_length: 16,
            count: 3,
        }];
        let metadata = Metadata {
            dependencies: Dependencies::from_bits(0b101),
            stamp: u64::MAX - 7,
            countdown: Some(Countdown {
                origin: -1_000_000_007,
                encoded_age: 86_400,
                until: i64::MAX - 3,
            }),
            source: 3,
        };
        let stored = pack(
            b"query-key",
            b"the reply bytes",
            &[7, 300, 65535],
            &runs,
            metadata,
        )
        .expect("small enough");
        assert_eq!(stored.key(), b"query-key");
        assert_eq!(stored.reply(), b"the reply bytes");
        assert_eq!(stored.metadata(), metadata);
        assert_eq!(stored.ttl_offsets().collect::<Vec<_>>(), [7, 300, 65535]);
        assert!(stored.has_runs());
        assert_eq!(stored.runs().collect::<Vec<_>>(), runs);
        assert_eq!(stored.packed_length(), HEADER + 9 + 15 + 6 + 6);

        let other =
            pack(b"query-key", b"another reply", &[], &[], no_metadata()).expect("small enough");
        assert_eq!(other.metadata(), no_metadata());
        assert_eq!(other.ttl_offsets().count(), 0);
        assert!(!other.has_runs());
    }

    /// A reply too long for a `u16` length is not packed (the table then does not store it).
    #[test]
    fn an_oversized_reply_is_not_packed() {
        let reply = vec![0u8; 70_000];
        let packed = pack(b"k", &reply, &[], &[], no_metadata());
        assert!(packed.is_none());
    }

    #[test]
    fn a_source_keeps_its_index() {
        let sources = Sources::new();
        assert_eq!(sources.index(None), 0);
        let zones = sources.index(Some("zones"));
        let hosts = sources.index(Some("hosts"));
        assert_ne!(zones, hosts);
        assert_eq!(sources.index(Some("zones")), zones);
        assert_eq!(sources.name(zones), Some("zones"));
        assert_eq!(sources.name(hosts), Some("hosts"));
        assert_eq!(sources.name(0), None);
        assert_eq!(sources.name(200), None);
    }
}
