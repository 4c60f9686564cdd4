//! How large the fast table may grow: it follows the working set, up to the memory it is
//! given (`server.fast_path_memory`).
//!
//! A fixed budget is wrong both ways. 4 MiB (about 13,000 replies) held the hot names, but
//! an authoritative zone of 100,000 names asked in turn, a hosts-file blocklist, or a
//! cluster's search-path expansions never fit, and every one of their queries took the
//! general path (issue 16). A budget sized for them instead grows the process by tens of
//! megabytes for nothing when the traffic is a scan of names asked once (a cold pass, a
//! random-subdomain flood): with a 65,536-reply table a scan over cold names once grew a
//! 100,000-record zone's server from 37 MB to 72 MB.
//!
//! What tells the two apart is whether a reply the table evicted is asked for again. The table
//! remembers a hash of each evicted key in a [`GhostSet`] (the ghost lists of ARC and S3-FIFO,
//! which keep evicted keys, not their values, for the same question); a reply stored again
//! while its ghost is still there "came back". Every [`WINDOW`] stores, if at least one in
//! [`GROW_AT`]'s proportion came back, the budget doubles, up to the configured memory. A scan
//! brings nothing back, so the table stays at its first size under one; a long tail asked
//! again grows it until the tail fits or the memory runs out. It does not shrink by itself (a
//! lower `server.fast_path_memory` on reload shrinks it at once).

use ahash::RandomState;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::memory::HUGE_PAGE;

/// The budget a growing table starts with: the hot set of a busy resolver (about 13,000
/// typical replies).
pub const INITIAL_BYTES: u64 = 4 << 20;

/// Stores between two looks at the ghosts.
const WINDOW: u64 = 4096;

/// Of a window's stores, how many must have come back for the table to grow: one in eight.
/// A cyclic long tail that does not fit brings back most of them; a scan brings back none.
const GROW_AT: u64 = WINDOW / 8;

/// Fingerprints of evicted keys (and of replies seen once, [`Growth::admits`]), kept in
/// lines of one cache line each: a key's hash picks its line, and a new ghost takes the
/// line's next slot in turn, so a ghost lasts for the next [`LINE_SLOTS`] ghosts of its line
/// (first in, first out). It never allocates after it is made.
///
/// One line per key, not slots scattered over the set: the set is up to tens of megabytes (it
/// must remember a whole turn over a long tail), so each read is a cache miss, and the
/// doorkeeper reads the set for every reply on the general path (the UDP thread prefetches the
/// line when it finds the miss, [`Growth::prefetch_admits`]). Two slots anywhere were two
/// misses and two pages a lookup, a line is one of each. (On small pages the two misses
/// overlapped, so the line alone measured no faster; what cut the read from 240-362 ns of CPU a
/// reply on a random-subdomain flood to 156-176 was the huge pages of [`GhostSet::lines`].)
///
/// Several slots per key, not one: in a direct-mapped set, two keys that share a slot and are
/// asked in turn overwrite each other's ghost every time, so the doorkeeper would never see
/// either a second time and never admit them (a test of 1,000 hot names found 6 so shut
/// out). In a line, [`LINE_SLOTS`] other ghosts must land in it between two sightings.
/// First in, first out rather than "overwrite the smaller fingerprint": over 15 slots that
/// rule would keep the largest fingerprints for ever and churn one slot.
///
/// 32-bit fingerprints rather than whole hashes: twice the slots in the same memory. The
/// doorkeeper must remember every name of a turn over the tail (hit-tail's 1,000,000), and
/// with 2 M slots of 8 bytes about a tenth of them had lost their ghost by their second sight.
/// A false "seen" (another key of the same line with the same fingerprint, about one lookup
/// in 2^27) only admits one reply early.
pub struct GhostSet {
    /// The set's lines are `lines[offset..]` ([`GhostSet::lines`]).
    lines: Vec<Line>,
    offset: usize,
    mask: u64,
    /// Keyed per process: which queries collide is not predictable from outside. aHash, as
    /// the table itself hashes: every reply stored is hashed here first, and every query of a
    /// flood of names asked once.
    hasher: RandomState,
}

/// Ghost slots in a line; the line's first word is the slot the next ghost takes.
pub const LINE_SLOTS: usize = 15;

/// One cache line: a cursor and [`LINE_SLOTS`] fingerprints (0 is an empty slot).
#[repr(C, align(64))]
struct Line {
    next: AtomicU32,
    slots: [AtomicU32; LINE_SLOTS],
}

impl Line {
    fn new() -> Self {
        Self {
            next: AtomicU32::new(0),
            slots: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl GhostSet {
    /// Two slots for every reply of ~256 bytes that fits in `max_bytes` (so a table at its
    /// largest still sees a reply come back after a full turn), between 2,048 and 8 M words
    /// (32 MiB), in lines of 16 words (15 slots and a cursor).
    pub fn for_budget(max_bytes: u64) -> Self {
        let words = (max_bytes / 128).clamp(2048, 1 << 23).next_power_of_two();
        let count = words as usize / 16;
        let (lines, offset) = Self::lines(count);
        Self {
            lines,
            offset,
            mask: count as u64 - 1,
            hasher: RandomState::new(),
        }
    }

    /// `count` lines, from the returned offset on, on huge pages when there are enough of
    /// them to fill one.
    ///
    /// Why huge pages: every read here is at random over up to 32 MiB, and with 4 KiB pages
    /// each was a TLB miss as well as a cache miss. On a random-subdomain flood the
    /// doorkeeper's read cost 347 ns of CPU a reply, and 156 with huge pages (`perf`,
    /// BENCHMARKS.md). They are asked for before the lines are first written, so that the
    /// first touch faults them in. The kernel backs only whole, aligned huge pages, and the
    /// allocator's block need not start on one: the lines start at the first boundary in a
    /// block one huge page longer. The lines before it are written (a `Vec` is filled from its
    /// start), so up to a huge page of small pages is spent to have the rest on huge ones.
    fn lines(count: usize) -> (Vec<Line>, usize) {
        let line_size = std::mem::size_of::<Line>();
        if count * line_size < HUGE_PAGE {
            return ((0..count).map(|_| Line::new()).collect(), 0);
        }
        let mut lines: Vec<Line> = Vec::with_capacity(count + HUGE_PAGE / line_size);
        crate::memory::advise_huge_pages(lines.spare_capacity_mut());
        let start = lines.as_ptr() as usize;
        let offset = (start.next_multiple_of(HUGE_PAGE) - start) / line_size;
        lines.extend((0..offset + count).map(|_| Line::new()));
        (lines, offset)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The fingerprint of a hash: its high half, never 0 (which marks an empty slot).
    fn fingerprint(hash: u64) -> u32 {
        (hash >> 32) as u32 | 1
    }

    /// The line of a hash, from its low bits (the fingerprint is the high half).
    fn line(&self, hash: u64) -> &Line {
        // The mask keeps the index below the slice's length, a power of two.
        &self.lines[self.offset + (hash & self.mask) as usize]
    }

    pub fn remember(&self, key: &[u8]) {
        self.remember_hash(self.hash(key));
    }

    fn remember_hash(&self, hash: u64) {
        let print = Self::fingerprint(hash);
        let line = self.line(hash);
        if line
            .slots
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) == print)
        {
            return;
        }
        // Racing threads may take the same slot: one ghost is lost, as if evicted.
        let next = line.next.load(Ordering::Relaxed) as usize % LINE_SLOTS;
        line.slots[next].store(print, Ordering::Relaxed);
        line.next
            .store(((next + 1) % LINE_SLOTS) as u32, Ordering::Relaxed);
    }

    /// Whether `key` has a ghost now; unlike [`GhostSet::came_back`], it stays.
    #[cfg(test)]
    pub fn seen(&self, key: &[u8]) -> bool {
        self.seen_hash(self.hash(key))
    }

    fn seen_hash(&self, hash: u64) -> bool {
        let print = Self::fingerprint(hash);
        self.line(hash)
            .slots
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) == print)
    }

    /// Starts reading `key`'s line, which [`GhostSet::seen_or_remember`] will read and write
    /// when the key's reply is stored ([`crate::memory::prefetch`]).
    fn prefetch(&self, key: &[u8]) {
        crate::memory::prefetch(self.line(self.hash(key)));
    }

    /// Whether `key` has a ghost; if not, it gets one (the key hashed once for both).
    pub fn seen_or_remember(&self, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let seen = self.seen_hash(hash);
        if !seen {
            self.remember_hash(hash);
        }
        seen
    }

    /// Whether `key` was evicted recently; its ghost is forgotten, so it counts once.
    pub fn came_back(&self, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let print = Self::fingerprint(hash);
        self.line(hash).slots.iter().any(|slot| {
            slot.compare_exchange(print, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }
}

/// A growing table's budget and what decides it.
pub struct Growth {
    pub ghosts: Arc<GhostSet>,
    /// `server.fast_path_memory`, changed by a reload.
    max: AtomicU64,
    stored: AtomicU64,
    came_back: AtomicU64,
}

impl Growth {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            ghosts: Arc::new(GhostSet::for_budget(max_bytes)),
            max: AtomicU64::new(max_bytes),
            stored: AtomicU64::new(0),
            came_back: AtomicU64::new(0),
        }
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn set_max(&self, max_bytes: u64) {
        self.max.store(max_bytes, Ordering::Relaxed);
    }

    /// Whether the reply for `key` is stored now: only on its second sight, as TinyLFU's
    /// doorkeeper admits. The first time, the key is only remembered, as a ghost.
    ///
    /// An upstream's first answer is reusable at once (`cache::Cache::store`), and local data's
    /// always is, but most first answers of a flood of random names are never asked again, and
    /// storing each cost a miss 4-5% of its time (an entry's allocations, an insert that
    /// evicts, the eviction's frees) and churned the table's probation queue. Over a served
    /// zone larger than the table, every name new, the table's share was 8.5% of the core, and
    /// the pass ran 34% faster with ghosts (BENCHMARKS.md). A ghost costs a hash and a
    /// store into a slot that is already there. The second sight stores the reply and counts as
    /// a reply that came back, which is what it is: the table saw it and did not keep it. So a
    /// long tail asked twice grows the table on its second turn, as it did when first answers
    /// were stored.
    pub fn admits(&self, key: &[u8]) -> bool {
        self.ghosts.seen_or_remember(key)
    }

    /// Starts reading what [`Growth::admits`] will read for `key`.
    pub fn prefetch_admits(&self, key: &[u8]) {
        self.ghosts.prefetch(key);
    }

    /// Called as `key`'s reply is stored: whether a window just ended in which enough replies
    /// came back for the table to grow. (The table's capacity is read only then: reading it
    /// takes every shard's lock.)
    pub fn on_store(&self, key: &[u8]) -> bool {
        if self.ghosts.came_back(key) {
            self.came_back.fetch_add(1, Ordering::Relaxed);
        }
        let stored = self.stored.fetch_add(1, Ordering::Relaxed) + 1;
        stored % WINDOW == 0 && self.came_back.swap(0, Ordering::Relaxed) >= GROW_AT
    }

    /// What a table of `capacity` bytes grows to: twice that, within the memory it is given;
    /// `None` when it is there already.
    pub fn grown(&self, capacity: u64) -> Option<u64> {
        let max = self.max();
        (capacity < max).then(|| capacity.saturating_mul(2).min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ghost_comes_back_once() {
        let ghosts = GhostSet::for_budget(1 << 20);
        assert!(!ghosts.came_back(b"never evicted"));
        ghosts.remember(b"evicted");
        assert!(ghosts.came_back(b"evicted"));
        assert!(!ghosts.came_back(b"evicted"), "counted once");
    }

    #[test]
    fn a_ghost_lasts_for_its_lines_next_fifteen() {
        let ghosts = GhostSet::for_budget(1 << 20);
        // Hashes with the same low bits share a line; the high half (odd, as a fingerprint is) tells them apart.
        let in_line = |n: u64| (2 * n + 1) << 32;
        ghosts.remember_hash(in_line(0));
        for n in 1..LINE_SLOTS as u64 {
            ghosts.remember_hash(in_line(n));
            assert!(ghosts.seen_hash(in_line(0)), "after {n} others");
        }
        // A ghost already there takes no slot.
        ghosts.remember_hash(in_line(3));
        assert!(ghosts.seen_hash(in_line(0)));
        ghosts.remember_hash(in_line(LINE_SLOTS as u64));
        assert!(!ghosts.seen_hash(in_line(0)), "the oldest goes first");
        assert!(ghosts.seen_hash(in_line(1)));
        // Another line is untouched.
        assert!(!ghosts.seen_hash(in_line(1) | 1));
    }

    #[test]
    fn a_turn_over_names_that_fit_admits_every_one() {
        // 100,000 names asked in turn, in a set with room for about 4 ghosts each: none is
        // shut out by others of its line.
        let growth = Growth::new(64 << 20);
        let names: Vec<String> = (0..100_000).map(|n| format!("name{n}.test")).collect();
        for name in &names {
            assert!(!growth.admits(name.as_bytes()));
        }
        let admitted = names.iter().filter(|n| growth.admits(n.as_bytes())).count();
        assert_eq!(admitted, names.len());
    }

    #[test]
    fn a_large_set_starts_on_a_huge_page() {
        // 64 MiB of budget: 2 MiB of lines, one huge page.
        let ghosts = GhostSet::for_budget(64 << 20);
        let lines = &ghosts.lines[ghosts.offset..];
        assert_eq!(std::mem::size_of_val(lines), HUGE_PAGE);
        assert_eq!(lines.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(ghosts.offset < HUGE_PAGE / std::mem::size_of::<Line>());
        // A small one is not padded.
        let small = GhostSet::for_budget(1 << 20);
        assert_eq!((small.offset, small.lines.len()), (0, 512));
    }

    #[test]
    fn a_reply_is_admitted_on_its_second_sight() {
        let growth = Growth::new(64 << 20);
        assert!(
            !growth.admits(b"asked once"),
            "the first sight leaves a ghost"
        );
        assert!(growth.admits(b"asked once"), "the second is stored");
        // Storing it takes the ghost back (a reply that came back), so a later eviction and
        // first sight start over.
        assert!(!growth.on_store(b"asked once"));
        assert!(!growth.ghosts.seen(b"asked once"));
        assert!(!growth.admits(b"asked once"));
    }

    #[test]
    fn a_scan_never_grows_the_table_and_a_returning_tail_does() {
        let growth = Growth::new(64 << 20);
        // A scan: every key new, none evicted before.
        for n in 0..(4 * WINDOW) {
            assert!(!growth.on_store(format!("scan{n}").as_bytes()));
        }
        // A tail asked again: each key was evicted before it is stored again.
        let mut grow = false;
        for n in 0..WINDOW {
            let key = format!("tail{n}");
            growth.ghosts.remember(key.as_bytes());
            grow |= growth.on_store(key.as_bytes());
        }
        assert!(grow);
        assert_eq!(growth.grown(4 << 20), Some(8 << 20));
        // Never past the memory it is given.
        growth.set_max(6 << 20);
        assert_eq!(growth.grown(4 << 20), Some(6 << 20));
        assert_eq!(growth.grown(6 << 20), None);
    }
}
