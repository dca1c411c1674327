//! The root-wide lock that keeps garbage collection and writers apart.
//!
//! A pull decides "this blob is already stored, skip it" and a collector
//! decides "nothing references this blob, delete it"; if the two interleave
//! the image ends up pointing at a deleted blob. So every writer (pull,
//! unpack) holds `<root>/gc.lock` shared for as long as it runs, and the
//! collector holds it exclusively while it marks and sweeps. Writers run
//! together; a collection waits for the writers in flight and new writers
//! wait for it. It is an `flock`, so it works across processes and is
//! released if a process dies.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::{Error, Result};

/// A held lock on the root; released on drop.
#[derive(Debug)]
pub(crate) struct RootLock {
    _file: File,
}

impl RootLock {
    /// Takes the lock shared (writers), blocking while a collection runs.
    pub(crate) fn shared(root: &Path) -> Result<RootLock> {
        RootLock::take(root, File::lock_shared)
    }

    /// Takes the lock exclusively (the collector), blocking while writers run.
    pub(crate) fn exclusive(root: &Path) -> Result<RootLock> {
        RootLock::take(root, File::lock)
    }

    /// Opens the lock file and takes the lock with `lock`.
    fn take(root: &Path, lock: fn(&File) -> std::io::Result<()>) -> Result<RootLock> {
        let file = open(root)?;
        lock(&file).map_err(|source| Error::Io {
            path: root.join(LOCK_FILE),
            source,
        })?;
        Ok(RootLock { _file: file })
    }
}

const LOCK_FILE: &str = "gc.lock";

fn open(root: &Path) -> Result<File> {
    let path = root.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| Error::Io { path, source })
}
