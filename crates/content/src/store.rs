//! The store itself: the on-disk layout, reading committed blobs, and the
//! bookkeeping of ingests (listing and aborting them).

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use oci_spec::image::{Descriptor, Digest};

use crate::error::{Error, IoContext, Result};
use crate::writer::{self, Wait, Writer};

const BLOBS: &str = "blobs";
const INGEST: &str = "ingest";
/// Prefix of ingest directories being removed; they are renamed first so a
/// waiting writer can never recreate files inside a directory being deleted.
const TRASH_PREFIX: &str = ".trash-";

/// A content-addressed blob store rooted at one directory.
///
/// The store holds only paths, so it is cheap to clone and share between
/// threads; all coordination happens on disk through per-ingest file locks.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Whether a commit makes the blob durable (see [`Store::fsync`]).
    fsync: bool,
}

/// What the store knows about one committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The blob's digest, which is also its file name.
    pub digest: Digest,
    /// The blob's length in bytes.
    pub size: u64,
    /// When the blob file was last modified (normally its commit time).
    pub modified: SystemTime,
}

/// What a writer must produce before it may commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The digest the bytes must hash to; its algorithm selects the hash.
    pub digest: Digest,
    /// The exact length, when known in advance (it usually is, from a descriptor).
    pub size: Option<u64>,
}

impl Expected {
    /// Expect `digest`, with `size` if known.
    pub fn new(digest: Digest, size: Option<u64>) -> Self {
        Self { digest, size }
    }
}

impl From<&Descriptor> for Expected {
    fn from(descriptor: &Descriptor) -> Self {
        Self {
            digest: descriptor.digest().clone(),
            size: Some(descriptor.size()),
        }
    }
}

/// The outcome of a successful commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// This writer's bytes became the blob.
    New,
    /// The blob was already committed (by another writer); the ingest was dropped.
    AlreadyExists,
}

/// The state of one in-flight ingest, as seen on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStatus {
    /// The caller-chosen reference naming the ingest.
    pub reference: String,
    /// Bytes written so far; a resumed writer starts here.
    pub offset: u64,
    /// The expected total size, if the writer knew it.
    pub total: Option<u64>,
    /// When data was last written.
    pub updated: SystemTime,
}

impl Store {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let store = Store {
            root: root.into(),
            fsync: true,
        };
        let sha256 = store.root.join(BLOBS).join("sha256");
        fs::create_dir_all(&sha256).at(&sha256)?;
        let ingest = store.ingest_root();
        fs::create_dir_all(&ingest).at(&ingest)?;
        store.sweep_trash();
        Ok(store)
    }

    /// Whether a commit fsyncs the blob and its directory before it counts
    /// as stored (the default), so a power loss cannot leave a committed
    /// blob incomplete. Without it, commits still verify and still become
    /// visible atomically (a killed process loses nothing, the page cache
    /// survives it), but the blob reaches the disk when the kernel flushes.
    pub fn fsync(mut self, fsync: bool) -> Store {
        self.fsync = fsync;
        self
    }

    pub(crate) fn fsyncs(&self) -> bool {
        self.fsync
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (or would live) on disk.
    ///
    /// Digest syntax admits no `/` or `..`, so the path always stays under the root.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(BLOBS)
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// Size and modification time of a committed blob, or `None` if absent.
    pub fn info(&self, digest: &Digest) -> Result<Option<Info>> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(Info {
                digest: digest.clone(),
                size: meta.len(),
                modified: meta.modified().at(&path)?,
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Whether the blob is committed.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File> {
        let path = self.blob_path(digest);
        match fs::File::open(&path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::NotFound(digest.clone())),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Reads a whole blob of at most `max_size` bytes and checks its digest again.
    ///
    /// Meant for manifests and configs, which are parsed whole; the bound keeps
    /// a hostile or corrupt blob from exhausting memory.
    pub fn read_blob(&self, digest: &Digest, max_size: u64) -> Result<Vec<u8>> {
        let mut digester = writer::digester(digest.algorithm())?;
        let path = self.blob_path(digest);
        let file = self.open_blob(digest)?;
        let len = file.metadata().at(&path)?.len();
        if len > max_size {
            return Err(Error::TooLarge { limit: max_size });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        // Read one byte past the limit so a file that grew after the size check is still caught.
        file.take(max_size.saturating_add(1))
            .read_to_end(&mut bytes)
            .at(&path)?;
        if bytes.len() as u64 > max_size {
            return Err(Error::TooLarge { limit: max_size });
        }
        digester.update(&bytes);
        let actual = digester.finalize();
        if &actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Every committed blob, sorted by digest.
    pub fn list(&self) -> Result<Vec<Info>> {
        let blobs = self.root.join(BLOBS);
        let mut infos = Vec::new();
        for algorithm in read_dir_or_empty(&blobs)? {
            let algorithm = algorithm.at(&blobs)?;
            let Some(alg_name) = algorithm.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let alg_dir = algorithm.path();
            if !alg_dir.is_dir() {
                continue;
            }
            for entry in read_dir_or_empty(&alg_dir)? {
                let entry = entry.at(&alg_dir)?;
                let name = entry.file_name();
                let Ok(digest) = Digest::try_from(format!("{alg_name}:{}", name.to_string_lossy()))
                else {
                    tracing::warn!(path = %entry.path().display(), "ignoring a file that is not named by a digest");
                    continue;
                };
                // A blob deleted while we list it is simply no longer there.
                if let Some(info) = self.info(&digest)? {
                    infos.push(info);
                }
            }
        }
        infos.sort_by(|a, b| a.digest.as_ref().cmp(b.digest.as_ref()));
        Ok(infos)
    }

    /// Removes a committed blob; `false` if it was not there.
    pub fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(%digest, "deleted blob");
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Starts or resumes the ingest `reference`, waiting while another writer holds it.
    ///
    /// Returns [`Error::AlreadyExists`] if the blob is committed, whether before
    /// the call or by the writer we waited for.
    pub fn writer(&self, reference: &str, expected: Expected) -> Result<Writer> {
        writer::open(self, reference, expected, Wait::Block)
            .map(|w| w.expect("a blocking open always yields a writer"))
    }

    /// Like [`Store::writer`], but returns `None` at once if another writer holds the ingest.
    pub fn try_writer(&self, reference: &str, expected: Expected) -> Result<Option<Writer>> {
        writer::open(self, reference, expected, Wait::Try)
    }

    /// Every ingest on disk, sorted by reference.
    pub fn ingests(&self) -> Result<Vec<IngestStatus>> {
        let root = self.ingest_root();
        let mut statuses = Vec::new();
        for entry in read_dir_or_empty(&root)? {
            let entry = entry.at(&root)?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Some(status) = read_status(&entry.path())? {
                statuses.push(status);
            }
        }
        statuses.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(statuses)
    }

    /// Deletes the ingest `reference` and its bytes. Aborting an absent ingest succeeds.
    ///
    /// Returns [`Error::Locked`] if a writer currently holds it.
    pub fn abort(&self, reference: &str) -> Result<()> {
        let dir = self.ingest_dir(reference);
        if !dir.exists() {
            return Ok(());
        }
        let Some(lock) = writer::lock_ingest(&dir, Wait::Try)? else {
            return Err(Error::Locked(reference.to_owned()));
        };
        self.remove_ingest(&dir)?;
        drop(lock);
        tracing::debug!(reference, "aborted ingest");
        Ok(())
    }

    pub(crate) fn ingest_root(&self) -> PathBuf {
        self.root.join(INGEST)
    }

    /// Hashing the reference gives a fixed-length, path-safe directory name for any string.
    pub(crate) fn ingest_dir(&self, reference: &str) -> PathBuf {
        self.ingest_root()
            .join(hoist_oci::digest::sha256_hex(reference.as_bytes()))
    }

    /// Removes an ingest directory; the caller must hold its lock.
    pub(crate) fn remove_ingest(&self, dir: &Path) -> Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let trash = self.ingest_root().join(format!(
            "{TRASH_PREFIX}{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::rename(dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::Io {
                    path: dir.to_owned(),
                    source: e,
                });
            }
        }
        // Once renamed, the ingest is gone for everyone, so failing to delete
        // the trash is not an error: the next `Store::open` sweeps it.
        remove_trash(&trash);
        Ok(())
    }

    /// Removes leftovers of removals interrupted by a crash; nothing ever reuses them.
    fn sweep_trash(&self) {
        let root = self.ingest_root();
        let Ok(entries) = fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(TRASH_PREFIX)
            {
                remove_trash(&entry.path());
            }
        }
    }
}

/// Deletes a renamed-away ingest directory.
///
/// A writer that resolved the old path just before the rename can still create
/// a `lock` file inside it, so a removal racing with it is retried.
fn remove_trash(trash: &Path) {
    let mut attempts = 0;
    loop {
        match fs::remove_dir_all(trash) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty && attempts < 8 => attempts += 1,
            Err(error) => {
                tracing::warn!(path = %trash.display(), %error, "could not remove ingest trash");
                return;
            }
        }
    }
}

fn read_dir_or_empty(dir: &Path) -> Result<impl Iterator<Item = std::io::Result<fs::DirEntry>>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries).into_iter().flatten()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None.into_iter().flatten()),
        Err(e) => Err(Error::Io {
            path: dir.to_owned(),
            source: e,
        }),
    }
}

/// Reads one ingest directory; `None` while it is being created or removed.
fn read_status(dir: &Path) -> Result<Option<IngestStatus>> {
    let ref_path = dir.join("ref");
    let reference = match fs::read_to_string(&ref_path) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                path: ref_path,
                source: e,
            });
        }
    };
    let data = dir.join("data");
    let (offset, updated) = match fs::metadata(&data) {
        Ok(meta) => (meta.len(), meta.modified().at(&data)?),
        Err(e) if e.kind() == ErrorKind::NotFound => match fs::metadata(dir) {
            Ok(meta) => (0, meta.modified().at(dir)?),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    path: dir.to_owned(),
                    source: e,
                });
            }
        },
        Err(e) => {
            return Err(Error::Io {
                path: data,
                source: e,
            });
        }
    };
    let total = fs::read_to_string(dir.join("total"))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    Ok(Some(IngestStatus {
        reference,
        offset,
        total,
        updated,
    }))
}
