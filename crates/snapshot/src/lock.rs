//! File locks: [`KeyLock`], held by callers around work on one key, and the
//! snapshotter's own short lock around each check-then-write of records.
//!
//! Both are `flock(2)` locks on files under the snapshotter root. A lock
//! belongs to an open file description, so each acquisition opens the file
//! anew: two threads of one process exclude each other exactly like two
//! processes do. Lock files are never deleted (deleting a locked file would
//! let a third party lock a new file of the same name).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::{Error, Result};

/// An exclusive lock on one snapshot key, from
/// [`Snapshotter::lock`](crate::Snapshotter::lock); released on drop.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
    path: PathBuf,
}

impl KeyLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens (creating) `path` and blocks until it holds an exclusive flock on it.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io(path))?;
    rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(Error::io(path))?;
    Ok(file)
}

/// Blocks until it holds the lock of `key` in `dir`; the file is named by
/// sha256 of the key, so any key string makes a safe file name.
pub(crate) fn lock_key(dir: &Path, key: &str) -> Result<KeyLock> {
    let path = dir.join(hoist_oci::digest::sha256_hex(key.as_bytes()));
    let file = lock_file(&path)?;
    Ok(KeyLock { _file: file, path })
}
