//! The part both snapshotters share: records in the metadata database, the
//! per-snapshot directories on disk, and the rules that keep the two
//! consistent.
//!
//! # Layout
//!
//! ```text
//! <root>/lock                      flock held around each check-then-write of records
//! <root>/locks/<sha256(key)>       KeyLock files
//! <root>/snapshots/<id>/fs         the snapshot's files
//! <root>/snapshots/<id>/work       overlay workdir (overlay active snapshots only)
//! ```
//!
//! `<id>` is a number allocated by `mkdir` (atomic across processes) and
//! kept in the record's labels under [`ID_LABEL`], hidden from
//! [`Info::labels`]. Committing keeps the id, so it moves no data.
//!
//! # Crash consistency
//!
//! - Create: the directory is made (and its parent directory fsynced) before
//!   the record is written. A crash in between leaves a directory without a
//!   record: garbage that a later check can delete, never a record that lies.
//! - Commit: the tree is flushed with `syncfs`, then the committed record is
//!   written, then the active record deleted. The database API has no
//!   multi-statement transaction for snapshots, so a crash between the two
//!   writes leaves both records sharing one id; [`Store::open`] repairs that
//!   by deleting the active one (the commit had completed).
//! - Remove: the record is deleted first, then the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use hoist_metadata::{Db, SnapshotKind, SnapshotRecord};

use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, sync_fs};
use crate::lock::{KeyLock, lock_file, lock_key};
use crate::{Info, Kind, Labels};

/// The reserved label holding a snapshot's directory id.
pub const ID_LABEL: &str = "hoist.io/snapshot.id";

/// A snapshot as stored: its public info and its directory id.
#[derive(Clone, Debug)]
pub(crate) struct Snap {
    pub(crate) info: Info,
    pub(crate) id: u64,
}

/// Records and directories of one snapshotter.
#[derive(Debug)]
pub(crate) struct Store {
    name: &'static str,
    root: PathBuf,
    db: Arc<Db>,
    /// A hint for the next free id; `mkdir` decides.
    next_id: AtomicU64,
    /// Whether commit flushes the tree first (see
    /// [`crate::open_with`]).
    flush: bool,
}

impl From<SnapshotKind> for Kind {
    fn from(kind: SnapshotKind) -> Kind {
        match kind {
            SnapshotKind::View => Kind::View,
            SnapshotKind::Active => Kind::Active,
            SnapshotKind::Committed => Kind::Committed,
        }
    }
}

impl From<Kind> for SnapshotKind {
    fn from(kind: Kind) -> SnapshotKind {
        match kind {
            Kind::View => SnapshotKind::View,
            Kind::Active => SnapshotKind::Active,
            Kind::Committed => SnapshotKind::Committed,
        }
    }
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io(path))
}

fn check_labels(key: &str, labels: &Labels) -> Result<()> {
    if labels.contains_key(ID_LABEL) {
        return Err(Error::state(key, format!("label {ID_LABEL} is reserved")));
    }
    Ok(())
}

impl Store {
    /// Opens the store at `root` (creating its directories) and repairs an
    /// interrupted commit.
    pub(crate) fn open(name: &'static str, root: &Path, db: Arc<Db>) -> Result<Store> {
        let snapshots = root.join("snapshots");
        create_dir(&snapshots)?;
        create_dir(&root.join("locks"))?;
        let mut max = 0;
        for entry in std::fs::read_dir(&snapshots).map_err(Error::io(&snapshots))? {
            let entry = entry.map_err(Error::io(&snapshots))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            {
                max = max.max(id);
            }
        }
        let store = Store {
            name,
            root: root.to_path_buf(),
            db,
            next_id: AtomicU64::new(max + 1),
            flush: true,
        };
        store.repair()?;
        Ok(store)
    }

    /// Whether commit flushes the tree (`syncfs`) before recording it.
    pub(crate) fn flush_on_commit(mut self, flush: bool) -> Store {
        self.flush = flush;
        self
    }

    /// Deletes active records whose directory a committed record also
    /// claims (a commit interrupted between its two writes), and warns about
    /// records whose directory is missing.
    fn repair(&self) -> Result<()> {
        let _guard = self.lock_records()?;
        let snaps = self.list_snaps()?;
        for snap in &snaps {
            let committed_twin = snap.info.kind == Kind::Active
                && snaps
                    .iter()
                    .any(|o| o.id == snap.id && o.info.kind == Kind::Committed);
            if committed_twin {
                tracing::warn!(
                    snapshotter = self.name,
                    key = %snap.info.key,
                    "finishing an interrupted commit: deleting the active record"
                );
                self.db.delete_snapshot(self.name, &snap.info.key)?;
            } else if !self.dir(snap.id).is_dir() {
                tracing::warn!(
                    snapshotter = self.name,
                    key = %snap.info.key,
                    dir = %self.dir(snap.id).display(),
                    "snapshot directory is missing"
                );
            }
        }
        Ok(())
    }

    /// The directory of snapshot `id`.
    pub(crate) fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    /// The `fs` directory of snapshot `id`.
    pub(crate) fn fs(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// The overlay `work` directory of snapshot `id`.
    pub(crate) fn work(&self, id: u64) -> PathBuf {
        self.dir(id).join("work")
    }

    /// Holds the record lock: every check-then-write of records runs under it.
    fn lock_records(&self) -> Result<std::fs::File> {
        lock_file(&self.root.join("lock"))
    }

    /// Takes the caller-facing lock of `key`.
    pub(crate) fn lock_key(&self, key: &str) -> Result<KeyLock> {
        lock_key(&self.root.join("locks"), key)
    }

    fn decode(&self, record: SnapshotRecord) -> Result<Snap> {
        let mut labels = record.labels;
        let id = labels
            .remove(ID_LABEL)
            .and_then(|id| id.parse::<u64>().ok())
            .ok_or_else(|| Error::state(&record.key, format!("record has no valid {ID_LABEL}")))?;
        Ok(Snap {
            info: Info {
                key: record.key,
                parent: record.parent,
                kind: record.kind.into(),
                labels,
                created_at: record.created_at,
                updated_at: record.updated_at,
            },
            id,
        })
    }

    /// The snapshot `key`, or `NotFound`.
    pub(crate) fn get(&self, key: &str) -> Result<Snap> {
        self.find(key)?
            .ok_or_else(|| Error::NotFound { key: key.into() })
    }

    fn find(&self, key: &str) -> Result<Option<Snap>> {
        self.db
            .get_snapshot(self.name, key)?
            .map(|r| self.decode(r))
            .transpose()
    }

    fn list_snaps(&self) -> Result<Vec<Snap>> {
        self.db
            .list_snapshots(self.name)?
            .into_iter()
            .map(|r| self.decode(r))
            .collect()
    }

    /// Every snapshot, ordered by key.
    pub(crate) fn list(&self) -> Result<Vec<Info>> {
        Ok(self.list_snaps()?.into_iter().map(|s| s.info).collect())
    }

    /// The ancestors of `snap`, parent first.
    pub(crate) fn ancestors(&self, snap: &Snap) -> Result<Vec<Snap>> {
        let mut chain = Vec::new();
        let mut next = snap.info.parent.clone();
        while let Some(key) = next {
            let parent = self.get(&key)?;
            next = parent.info.parent.clone();
            chain.push(parent);
        }
        Ok(chain)
    }

    fn write(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        labels: &Labels,
        id: u64,
    ) -> Result<()> {
        let mut labels = labels.clone();
        labels.insert(ID_LABEL.into(), id.to_string());
        let now = SystemTime::now();
        self.db.put_snapshot(&SnapshotRecord {
            snapshotter: self.name.into(),
            key: key.into(),
            parent: parent.map(Into::into),
            kind: kind.into(),
            labels,
            created_at: now,
            updated_at: now,
        })?;
        Ok(())
    }

    /// Checks that `key` is free and `parent`, if any, is committed.
    fn check_new(&self, key: &str, parent: Option<&str>) -> Result<Option<Snap>> {
        if self.find(key)?.is_some() {
            return Err(Error::AlreadyExists { key: key.into() });
        }
        let Some(parent) = parent else {
            return Ok(None);
        };
        let snap = self.get(parent)?;
        if snap.info.kind != Kind::Committed {
            return Err(Error::state(
                parent,
                format!("parent must be committed, is {:?}", snap.info.kind),
            ));
        }
        Ok(Some(snap))
    }

    /// Allocates a fresh id by creating its directory.
    fn alloc_dir(&self) -> Result<u64> {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let dir = self.dir(id);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(dir)(e)),
            }
        }
    }

    /// Creates snapshot `key` of `kind` (active or view) on `parent`:
    /// directory first (with `fs/`, and `work/` when `work`), then
    /// `populate(fs, parent)` (outside the record lock, as it may copy a
    /// whole tree), then the record. Undoes the directory on failure.
    pub(crate) fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        labels: &Labels,
        work: bool,
        populate: impl FnOnce(&Path, Option<&Snap>) -> Result<()>,
    ) -> Result<Snap> {
        if key.is_empty() {
            return Err(Error::state(key, "empty key"));
        }
        check_labels(key, labels)?;
        let (id, parent_snap) = {
            let _guard = self.lock_records()?;
            let parent_snap = self.check_new(key, parent)?;
            (self.alloc_dir()?, parent_snap)
        };
        let dir = self.dir(id);
        let result = (|| {
            create_dir(&self.fs(id))?;
            if work {
                create_dir(&self.work(id))?;
            }
            populate(&self.fs(id), parent_snap.as_ref())?;
            fsync_dir(&dir)?;
            fsync_dir(&self.root.join("snapshots"))?;
            let _guard = self.lock_records()?;
            // Again under the lock: another process may have taken the key or
            // removed the parent meanwhile.
            self.check_new(key, parent)?;
            self.write(key, parent, kind, labels, id)
        })();
        match result {
            Ok(()) => self.get(key),
            Err(e) => {
                if let Err(rm) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %rm, "cannot remove the directory of a failed snapshot");
                }
                Err(e)
            }
        }
    }

    /// Commits active `key` as `name`: flush, write the committed record,
    /// delete the active one (see the module docs for a crash in between).
    pub(crate) fn commit(&self, name: &str, key: &str, labels: &Labels) -> Result<()> {
        self.commit_as(name, key, labels, None)
    }

    /// Commits active `key`, which has no parent, as `name` on `parent`.
    pub(crate) fn commit_onto(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
        labels: &Labels,
    ) -> Result<()> {
        self.commit_as(name, key, labels, Some(parent))
    }

    /// [`commit`](Self::commit), with `rebase` the new parent if any.
    fn commit_as(
        &self,
        name: &str,
        key: &str,
        labels: &Labels,
        rebase: Option<Option<&str>>,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(Error::state(name, "empty name"));
        }
        check_labels(name, labels)?;
        let active = |snap: &Snap| {
            if snap.info.kind == Kind::Active {
                Ok(())
            } else {
                Err(Error::state(
                    key,
                    format!(
                        "only an active snapshot can be committed, is {:?}",
                        snap.info.kind
                    ),
                ))
            }
        };
        let snap = self.get(key)?;
        active(&snap)?;
        // Flush before the committed record exists, outside the record lock.
        if self.flush {
            sync_fs(&self.fs(snap.id))?;
        }
        let _guard = self.lock_records()?;
        let snap = self.get(key)?;
        active(&snap)?;
        if self.find(name)?.is_some() {
            return Err(Error::AlreadyExists { key: name.into() });
        }
        let parent = match rebase {
            None => snap.info.parent.as_deref(),
            Some(_) if snap.info.parent.is_some() => {
                return Err(Error::state(
                    key,
                    "only a snapshot without a parent is rebased",
                ));
            }
            Some(parent) => {
                if let Some(parent) = parent {
                    let committed = self.find(parent)?.map(|p| p.info.kind);
                    if committed != Some(Kind::Committed) {
                        return Err(Error::state(
                            parent,
                            format!("a parent must be committed, is {committed:?}"),
                        ));
                    }
                }
                parent
            }
        };
        self.write(name, parent, Kind::Committed, labels, snap.id)?;
        self.db.delete_snapshot(self.name, key)?;
        Ok(())
    }

    /// Removes `key` unless another snapshot has it as parent: the record,
    /// then the directory. If deleting the directory fails the error is
    /// returned, but the snapshot is already gone (the directory is garbage).
    pub(crate) fn remove(&self, key: &str) -> Result<()> {
        let (snap, shared) = {
            let _guard = self.lock_records()?;
            let snap = self.get(key)?;
            let has_children = self
                .list_snaps()?
                .iter()
                .any(|s| s.info.parent.as_deref() == Some(key));
            if has_children {
                return Err(Error::HasChildren { key: key.into() });
            }
            // Another record may share the id after an interrupted commit;
            // then the directory is not ours alone to delete.
            self.db.delete_snapshot(self.name, key)?;
            let shared = self.list_snaps()?.iter().any(|s| s.id == snap.id);
            (snap, shared)
        };
        if !shared {
            let dir = self.dir(snap.id);
            std::fs::remove_dir_all(&dir).map_err(Error::io(dir))?;
        }
        Ok(())
    }

    /// Merges `labels` into the labels of `key`.
    pub(crate) fn set_labels(&self, key: &str, labels: Labels) -> Result<Info> {
        check_labels(key, &labels)?;
        {
            let _guard = self.lock_records()?;
            let snap = self.get(key)?;
            let mut merged = snap.info.labels;
            merged.extend(labels);
            merged.insert(ID_LABEL.into(), snap.id.to_string());
            self.db.put_snapshot(&SnapshotRecord {
                snapshotter: self.name.into(),
                key: key.into(),
                parent: snap.info.parent,
                kind: snap.info.kind.into(),
                labels: merged,
                created_at: snap.info.created_at,
                updated_at: SystemTime::now(),
            })?;
        }
        Ok(self.get(key)?.info)
    }
}
