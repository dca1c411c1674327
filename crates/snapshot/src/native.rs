//! [`Native`]: each snapshot holds a full copy of its tree; works on any
//! file system, unprivileged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_archive::WhiteoutMode;
use hoist_metadata::Db;

use crate::copy::copy_tree;
use crate::error::Result;
use crate::fsutil::usage;
use crate::lock::KeyLock;
use crate::mount::Mount;
use crate::overlay::{active_only, committed_has_no_mounts};
use crate::store::{Snap, Store};
use crate::{ApplyTarget, Info, Kind, Labels, Snapshotter, Usage};

/// The native snapshotter, like containerd's `native`: prepare and view copy
/// the parent's whole tree in process, keeping what `cp -a` keeps (owners,
/// modes, times, xattrs, hardlinks, special files), with reflinks where the
/// file system has them so copy-on-write file systems share the data; layers
/// are applied with whiteouts deleting in place. Mounts are `bind` mounts of the snapshot's `fs/`, rw for active
/// snapshots and ro for views.
#[derive(Debug)]
pub struct Native {
    store: Store,
}

const NAME: &str = "native";

impl Native {
    /// Opens the native snapshotter rooted at `root` (created if needed),
    /// recording snapshots in `db`.
    pub fn open(root: &Path, db: Arc<Db>) -> Result<Native> {
        Ok(Native {
            store: Store::open(NAME, root, db)?,
        })
    }

    /// Whether commit flushes the snapshot's tree first (the default); see
    /// [`crate::open_with`].
    pub fn flush_on_commit(self, flush: bool) -> Native {
        Native {
            store: self.store.flush_on_commit(flush),
        }
    }

    fn mounts_of(&self, snap: &Snap) -> Result<Vec<Mount>> {
        let fs = self.store.fs(snap.id);
        Ok(vec![match snap.info.kind {
            Kind::Active => Mount::bind(&fs, false),
            Kind::View => Mount::bind(&fs, true),
            Kind::Committed => return Err(committed_has_no_mounts(&snap.info.key)),
        }])
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        labels: &Labels,
    ) -> Result<Vec<Mount>> {
        let snap = self.store.create(
            key,
            parent,
            kind,
            labels,
            false,
            |fs, parent| match parent {
                Some(parent) => copy_tree(&self.store.fs(parent.id), fs),
                None => Ok(()),
            },
        )?;
        self.mounts_of(&snap)
    }
}

impl Snapshotter for Native {
    fn name(&self) -> &'static str {
        NAME
    }

    fn stat(&self, key: &str) -> Result<Info> {
        Ok(self.store.get(key)?.info)
    }

    fn list(&self) -> Result<Vec<Info>> {
        self.store.list()
    }

    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::Active, &labels)
    }

    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create(key, parent, Kind::View, &labels)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.mounts_of(&self.store.get(key)?)
    }

    fn apply_target(&self, key: &str) -> Result<ApplyTarget> {
        let snap = self.store.get(key)?;
        if snap.info.kind != Kind::Active {
            return Err(active_only(key, snap.info.kind));
        }
        Ok(ApplyTarget {
            dir: self.store.fs(snap.id),
            whiteouts: WhiteoutMode::Delete,
            lowers: Vec::new(),
        })
    }

    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()> {
        self.store.commit(name, key, &labels)
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.store.remove(key)
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        usage(&self.store.fs(self.store.get(key)?.id))
    }

    fn set_labels(&self, key: &str, labels: Labels) -> Result<Info> {
        self.store.set_labels(key, labels)
    }

    fn fs_dir(&self, key: &str) -> Result<PathBuf> {
        Ok(self.store.fs(self.store.get(key)?.id))
    }

    fn lock(&self, key: &str) -> Result<KeyLock> {
        self.store.lock_key(key)
    }
}
