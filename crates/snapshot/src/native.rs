//! [`Native`]: each snapshot holds a full copy of its tree; works on any
//! file system, unprivileged.

use std::path::Path;
use std::sync::Arc;

use hoist_archive::WhiteoutMode;
use hoist_metadata::Db;

use crate::copy::copy_tree;
use crate::error::Result;
use crate::mount::Mount;
use crate::overlay::committed_has_no_mounts;
use crate::store::{Snap, Store};
use crate::{ApplyTarget, Kind, Labels};

/// The native snapshotter, like containerd's `native`: prepare and view copy
/// the parent's whole tree in process, keeping what `cp -a` keeps (owners,
/// modes, times, xattrs, hardlinks, special files), with reflinks where the
/// file system has them so copy-on-write file systems share the data; layers
/// are applied with whiteouts deleting in place. Mounts are `bind` mounts of
/// the snapshot's `fs/`, rw for active snapshots and ro for views.
#[derive(Debug)]
pub struct Native {
    store: Store,
}

const NAME: &str = "native";

impl Native {
    /// Where a layer is applied to an active snapshot: its own tree,
    /// whiteouts deleting in place.
    fn target(&self, snap: &Snap) -> Result<ApplyTarget> {
        Ok(ApplyTarget {
            dir: self.store.fs(snap.id),
            whiteouts: WhiteoutMode::Delete,
            lowers: Vec::new(),
        })
    }

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

store_snapshotter!(Native);
