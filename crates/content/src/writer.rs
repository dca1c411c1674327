//! Writing one blob: the ingest lock, resuming, verification, and the atomic
//! commit into `blobs/`.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hoist_oci::Digester;
use oci_spec::image::DigestAlgorithm;

use crate::error::{Error, IoContext, Result};
use crate::store::{Committed, Expected, Store};

/// How to behave when another writer holds the ingest lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Block,
    Try,
}

/// An exclusive writer of one ingest; becomes a blob through [`Writer::commit`].
///
/// Dropping it without committing keeps the bytes written so far, so a later
/// writer with the same reference resumes at [`Writer::offset`], and releases
/// the lock.
pub struct Writer {
    store: Store,
    reference: String,
    expected: Expected,
    dir: PathBuf,
    data_path: PathBuf,
    data: File,
    digester: Digester,
    offset: u64,
    // Held for the writer's lifetime; closing the file releases the flock.
    lock: File,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("reference", &self.reference)
            .field("expected", &self.expected)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// A hasher for `algorithm`, or [`Error::UnsupportedAlgorithm`].
pub(crate) fn digester(algorithm: &DigestAlgorithm) -> Result<Digester> {
    Digester::with_algorithm(algorithm)
        .map_err(|_| Error::UnsupportedAlgorithm(algorithm.to_string()))
}

pub(crate) fn open(
    store: &Store,
    reference: &str,
    expected: Expected,
    wait: Wait,
) -> Result<Option<Writer>> {
    let mut digester = digester(expected.digest.algorithm())?;
    if store.contains(&expected.digest) {
        return Err(Error::AlreadyExists(expected.digest));
    }
    let dir = store.ingest_dir(reference);
    let Some(lock) = lock_ingest(&dir, wait)? else {
        return Ok(None);
    };
    // The writer we may have waited for could have committed the same blob.
    if store.contains(&expected.digest) {
        store.remove_ingest(&dir)?;
        return Err(Error::AlreadyExists(expected.digest));
    }

    let ref_path = dir.join("ref");
    fs::write(&ref_path, reference).at(&ref_path)?;
    let total_path = dir.join("total");
    match expected.size {
        Some(size) => fs::write(&total_path, size.to_string()).at(&total_path)?,
        None => match fs::remove_file(&total_path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: total_path,
                    source: e,
                });
            }
            _ => {}
        },
    }

    let data_path = dir.join("data");
    let mut data = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&data_path)
        .at(&data_path)?;
    let mut len = data.metadata().at(&data_path)?.len();
    if let Some(size) = expected.size
        && len > size
    {
        tracing::debug!(
            reference,
            len,
            size,
            "ingest longer than expected; restarting it"
        );
        data.set_len(0).at(&data_path)?;
        len = 0;
    }
    let offset = hash_prefix(&mut data, &mut digester, len).at(&data_path)?;
    if offset > 0 {
        tracing::debug!(reference, offset, "resuming ingest");
    }

    Ok(Some(Writer {
        store: store.clone(),
        reference: reference.to_owned(),
        expected,
        dir,
        data_path,
        data,
        digester,
        offset,
        lock,
    }))
}

/// Opens and locks `<dir>/lock`, creating the ingest directory if needed.
///
/// A holder that commits or aborts removes the directory, lock file included,
/// so whoever waited on that file wakes up holding a lock on an unlinked
/// inode. Such a lock guards nothing; we check that the path still names the
/// locked file and start over if not.
pub(crate) fn lock_ingest(dir: &Path, wait: Wait) -> Result<Option<File>> {
    let lock_path = dir.join("lock");
    loop {
        // Not create_dir_all: it reports EEXIST when the directory exists but is
        // renamed away (by a concurrent remove) before it can confirm that.
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let parent = dir.parent().expect("an ingest directory has a parent");
                fs::create_dir_all(parent).at(parent)?;
                continue;
            }
            Err(e) => {
                return Err(Error::Io {
                    path: dir.to_owned(),
                    source: e,
                });
            }
        }
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
        {
            Ok(file) => file,
            // The previous holder removed the directory between our mkdir and open.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::Io {
                    path: lock_path,
                    source: e,
                });
            }
        };
        match wait {
            Wait::Block => file.lock().at(&lock_path)?,
            Wait::Try => match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => {
                    return Err(Error::Io {
                        path: lock_path,
                        source: e,
                    });
                }
            },
        }
        if still_linked(&file, &lock_path)? {
            return Ok(Some(file));
        }
    }
}

#[cfg(unix)]
fn still_linked(file: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata().at(path)?;
    match fs::metadata(path) {
        Ok(current) => Ok(held.dev() == current.dev() && held.ino() == current.ino()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

#[cfg(not(unix))]
fn still_linked(_file: &File, path: &Path) -> Result<bool> {
    // Without inode numbers, existence is the best available check.
    Ok(path.exists())
}

/// Feeds the first `len` bytes of `file` to `digester` and leaves the cursor
/// after them; returns how many bytes there were.
fn hash_prefix(file: &mut File, digester: &mut Digester, len: u64) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut reader = (&mut *file).take(len);
    let mut read = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        digester.update(&buf[..n]);
        read += n as u64;
    }
    file.seek(SeekFrom::Start(read))?;
    Ok(read)
}

impl Writer {
    /// Bytes already in the ingest: where the caller's source must continue from.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The reference naming this ingest.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// What the bytes must match at commit.
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// The ingest's data file: its first [`offset`](Self::offset) bytes are
    /// written. For a reader that follows the download (the unpacker applies
    /// a layer while it arrives); a handle opened on it stays valid after
    /// [`commit`](Self::commit), which links this very file into `blobs/`.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Drops everything after `offset` (e.g. 0 when a server ignored a Range
    /// request) and re-hashes the kept prefix.
    pub fn truncate(&mut self, offset: u64) -> Result<()> {
        if offset > self.offset {
            return Err(Error::InvalidOffset {
                requested: offset,
                available: self.offset,
            });
        }
        self.data.set_len(offset).at(&self.data_path)?;
        let mut digester = digester(self.expected.digest.algorithm())?;
        self.offset = hash_prefix(&mut self.data, &mut digester, offset).at(&self.data_path)?;
        self.digester = digester;
        Ok(())
    }

    /// Verifies size and digest, makes the bytes durable, and moves them into
    /// `blobs/` atomically; the ingest is removed either way.
    ///
    /// On [`Error::SizeMismatch`] or [`Error::DigestMismatch`] the ingest's
    /// bytes are deleted, since they can never become the expected blob.
    pub fn commit(self) -> Result<Committed> {
        let store = &self.store;
        if let Some(size) = self.expected.size
            && self.offset != size
        {
            discard(store, &self.dir, &self.reference);
            return Err(Error::SizeMismatch {
                expected: size,
                actual: self.offset,
            });
        }
        let actual = self.digester.finalize();
        if actual != self.expected.digest {
            discard(store, &self.dir, &self.reference);
            return Err(Error::DigestMismatch {
                expected: self.expected.digest,
                actual,
            });
        }

        if store.fsyncs() {
            self.data.sync_all().at(&self.data_path)?;
        }
        let target = store.blob_path(&actual);
        let parent = target
            .parent()
            .expect("a blob path has a parent")
            .to_owned();
        fs::create_dir_all(&parent).at(&parent)?;
        // A hard link fails if the target exists, so a blob is never replaced
        // and we learn whether another writer got there first.
        let outcome = match fs::hard_link(&self.data_path, &target) {
            Ok(()) => Committed::New,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Committed::AlreadyExists,
            Err(e) => {
                tracing::debug!(error = %e, "hard link failed; falling back to rename");
                if target.exists() {
                    Committed::AlreadyExists
                } else {
                    fs::rename(&self.data_path, &target).at(&target)?;
                    Committed::New
                }
            }
        };
        if store.fsyncs() {
            File::open(&parent).and_then(|d| d.sync_all()).at(&parent)?;
        }
        if outcome == Committed::New {
            // Blobs are immutable; read-only permissions make accidental writes fail loudly.
            let mut perms = self.data.metadata().at(&target)?.permissions();
            perms.set_readonly(true);
            if let Err(error) = self.data.set_permissions(perms) {
                tracing::debug!(%error, "could not make blob read-only");
            }
        }
        drop(self.data);
        // The blob is committed; a leftover ingest is only clutter, so do not fail for it.
        if let Err(error) = store.remove_ingest(&self.dir) {
            tracing::warn!(self.reference, %error, "could not remove committed ingest");
        }
        drop(self.lock);
        tracing::debug!(digest = %actual, size = self.offset, ?outcome, "committed blob");
        Ok(outcome)
    }

    /// Appends bytes, refusing any that would run past the expected size.
    fn append(&mut self, buf: &[u8]) -> Result<usize> {
        if let Some(size) = self.expected.size {
            let end = self.offset + buf.len() as u64;
            if end > size {
                return Err(Error::SizeMismatch {
                    expected: size,
                    actual: end,
                });
            }
        }
        let n = self.data.write(buf).at(&self.data_path)?;
        self.digester.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    /// Deletes the ingest's bytes, consuming the writer.
    fn discard(self) {
        discard(&self.store, &self.dir, &self.reference);
    }
}

fn discard(store: &Store, dir: &Path, reference: &str) {
    if let Err(error) = store.remove_ingest(dir) {
        tracing::warn!(reference, %error, "could not remove rejected ingest");
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf).map_err(|e| match e {
            Error::Io { source, .. } => source,
            other => io::Error::new(ErrorKind::InvalidData, other),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.data.flush()
    }
}

/// Streams `reader` into `writer` and commits, like containerd's `content.Copy`.
///
/// `reader` must start at [`Writer::offset`]: a resumed writer already holds
/// the bytes before it. A read error leaves the ingest in place for a later
/// resume; a stream longer than the expected size deletes it.
pub fn copy<R: Read>(mut writer: Writer, mut reader: R) -> Result<Committed> {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            match writer.append(chunk) {
                Ok(0) => {
                    return Err(Error::Io {
                        path: writer.data_path.clone(),
                        source: ErrorKind::WriteZero.into(),
                    });
                }
                Ok(written) => chunk = &chunk[written..],
                Err(Error::Io { source, .. }) if source.kind() == ErrorKind::Interrupted => {}
                Err(e @ Error::SizeMismatch { .. }) => {
                    writer.discard();
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
    writer.commit()
}
