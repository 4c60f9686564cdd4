//! Three calls about memory that only the binary can make: giving the memory a load freed back
//! to the system, asking for huge pages under a large table read at random, and starting to
//! read a cache line of such a table before it is needed.
//!
//! The allocator is the binary's choice (`src/main.rs` picks mimalloc), and this library
//! forbids `unsafe`, so the binary installs the calls that do it ([`set_release`],
//! [`set_huge_pages`], [`set_prefetch`]) and the library calls [`release_after_load`] where a
//! large load has just finished, [`advise_huge_pages`] where it makes such a table and
//! [`prefetch`] where it knows ahead which line of it a query will read.
//!
//! Why it is needed: mimalloc purges a freed page (gives it back with `madvise`) only after a
//! delay, and only when the thread that freed it calls the allocator again. The query threads
//! call it all the time, so their pages are purged within the delay; a thread that has just
//! loaded a zone, a hosts file or the cluster's records frees the last load's memory and then
//! goes idle, so without this its pages would stay resident until the next load. A delay of 0
//! avoided that but cost every cache miss a page fault and a half (1.6 faults per miss, 20-30%
//! of the miss rate; `src/main.rs` has the numbers).

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Installs the call that returns freed memory to the system; the first call wins.
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Returns what this thread (and the allocator's shared arenas) freed to the system now.
/// Called on the thread that did a load, right after it; a no-op unless the binary installed
/// a release.
pub fn release_after_load() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}

/// The size of a transparent huge page on x86-64 (and on arm64 with 4 KiB pages).
pub const HUGE_PAGE: usize = 2 << 20;

static HUGE_PAGES: OnceLock<fn(usize, usize)> = OnceLock::new();

/// Installs the call that asks the kernel for transparent huge pages over a range of memory
/// (`madvise(MADV_HUGEPAGE)` on the whole 2 MiB pages in it); the first call wins.
pub fn set_huge_pages(advise: fn(address: usize, length: usize)) {
    let _ = HUGE_PAGES.set(advise);
}

/// Asks for huge pages under `region`, before it is first written: a no-op unless the binary
/// installed the call, or when the region holds no whole huge page. The kernel may say no
/// (THP `never`, or no free huge page): then the region keeps small pages and works the same.
///
/// Why: a table of tens of megabytes read at random (the fast table's ghosts) costs a TLB miss
/// on almost every read as well as a cache miss, and in a virtual machine a TLB miss walks two
/// page tables. The binary's allocator does not ask for huge pages itself (`no_thp`, for the
/// small heap's RSS, `src/main.rs`), so the few tables that want them ask here.
pub fn advise_huge_pages<T>(region: &[T]) {
    if let Some(advise) = HUGE_PAGES.get() {
        advise(region.as_ptr() as usize, std::mem::size_of_val(region));
    }
}

static PREFETCH: OnceLock<fn(usize)> = OnceLock::new();

/// Installs the call that starts reading the cache line at an address (a prefetch hint, which
/// never faults and changes nothing the program can see); the first call wins.
pub fn set_prefetch(prefetch: fn(address: usize)) {
    let _ = PREFETCH.set(prefetch);
}

/// Starts reading `item`'s cache line into the cache, so that a use of it a few hundred
/// nanoseconds later does not wait on memory: a no-op unless the binary installed the call.
///
/// Why: a line read at random from a table of tens of megabytes is a miss of about 100 ns,
/// and the CPU cannot start it early by itself when the address is only known after other
/// work (a hash of the query) and the read sits behind a lot of unrelated work.
#[inline]
pub fn prefetch<T>(item: &T) {
    if let Some(prefetch) = PREFETCH.get() {
        prefetch(std::ptr::from_ref(item) as usize);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    std::thread_local! {
        /// Per thread: other tests' loads, on their own threads, also run the installed release
        /// once it is installed, and must not move this test's count.
        static RELEASED: Cell<usize> = const { Cell::new(0) };
    }

    fn count() {
        RELEASED.with(|released| released.set(released.get() + 1));
    }

    /// The installed release runs once per finished load, on the loading thread; a second
    /// install does not replace it.
    #[test]
    fn a_load_runs_the_installed_release() {
        set_release(count);
        set_release(|| panic!("the first install wins"));
        release_after_load();
        release_after_load();
        assert_eq!(RELEASED.with(Cell::get), 2);
    }

    std::thread_local! {
        /// The addresses this thread's prefetches were given, per thread as above.
        static PREFETCHED: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// The installed prefetch is given the address of the item itself, not of a copy.
    #[test]
    fn a_prefetch_is_given_the_items_address() {
        set_prefetch(|address| PREFETCHED.with(|last| last.set(Some(address))));
        let lines = [[0u64; 8]; 4];
        prefetch(&lines[3]);
        assert_eq!(
            PREFETCHED.with(Cell::get),
            Some(std::ptr::from_ref(&lines[3]) as usize)
        );
    }
}
