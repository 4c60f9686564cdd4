//! Noticing that files changed, by polling.
//!
//! Polling, not inotify: editors and configuration tools replace files by rename and by
//! delete-and-recreate, which an inotify watch on the file itself silently loses, and Kubernetes
//! ConfigMap volumes swap a symlink to a new directory. A poll every second costs one `stat` per
//! file and catches all of them.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Kept here too for the sources that count their reloads; it lives with the other metrics.
pub use crate::metrics::ReloadStats;

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
