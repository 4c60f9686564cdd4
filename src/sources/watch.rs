//! Noticing that files changed, by polling.
//!
//! Polling, not inotify: editors and configuration tools replace files by rename and by
//! delete-and-recreate, which an inotify watch on the file itself silently loses, and Kubernetes
//! ConfigMap volumes swap a symlink to a new directory. A poll every second costs one `stat` per
//! file and catches all of them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a source's reloads went, for the metrics: a failure is a reload that found a file it
/// could not use (the last good version keeps serving).
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    /// Unix time in milliseconds of the last success; 0 before the first.
    last_success_millis: AtomicU64,
}

impl ReloadStats {
    pub fn record(&self, success: bool) {
        if success {
            self.successes.fetch_add(1, Ordering::Relaxed);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            self.last_success_millis.store(now, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the time of the last success without counting a reload (the first load).
    pub fn mark_loaded(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_success_millis.store(now, Ordering::Relaxed);
    }

    /// When the last successful reload happened.
    pub fn last_success(&self) -> Option<SystemTime> {
        match self.last_success_millis.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(UNIX_EPOCH + Duration::from_millis(millis)),
        }
    }
}

/// What a poll remembers of a file: replacing by rename changes the inode, an edit in place the
/// size or modification time, `touch` the change time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    modified: Option<SystemTime>,
    length: u64,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Fingerprint {
    /// The file's fingerprint now, or `None` if it cannot be read.
    pub fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Some(Self {
            modified: metadata.modified().ok(),
            length: metadata.len(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
            #[cfg(unix)]
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }
}

/// The fingerprints of a set of files, to compare one poll with the next.
pub type Snapshot = Vec<(PathBuf, Option<Fingerprint>)>;

/// Fingerprints `paths` (sorted, so the same set compares equal).
pub fn snapshot(paths: impl IntoIterator<Item = PathBuf>) -> Snapshot {
    let mut snapshot: Snapshot = paths
        .into_iter()
        .map(|path| {
            let fingerprint = Fingerprint::of(&path);
            (path, fingerprint)
        })
        .collect();
    snapshot.sort_by(|a, b| a.0.cmp(&b.0));
    snapshot.dedup_by(|a, b| a.0 == b.0);
    snapshot
}

/// The files in `dir` whose names end with one of `extensions` (without the dot), sorted.
pub fn files_in(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A source whose data lives in files and is re-read when they change.
pub trait Reload: Send + Sync {
    /// Re-reads what changed since the last call; returns whether anything did. Blocking I/O:
    /// call it off the async runtime's workers.
    fn reload_changed(&self) -> bool;
}
