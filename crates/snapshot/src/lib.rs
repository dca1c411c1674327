//! Snapshots: the directory trees image layers are unpacked into and
//! containers run on, shaped like containerd's `core/snapshots`.
//!
//! # Terms
//!
//! - A **snapshot** is a directory tree managed by a [`Snapshotter`],
//!   recorded in the metadata database under a **key** unique per
//!   snapshotter.
//! - An **active** snapshot ([`Kind::Active`], made by
//!   [`prepare`](Snapshotter::prepare)) is writable: a layer is applied into
//!   it (see [`apply_target`](Snapshotter::apply_target)) or a container
//!   writes to it.
//! - [`commit`](Snapshotter::commit) turns an active snapshot into a
//!   **committed** one ([`Kind::Committed`]) under a new key, its **name**
//!   (for layers, the chain ID). Committed snapshots are immutable and are the
//!   only snapshots that can be a **parent**.
//! - A **view** ([`Kind::View`]) is a read-only snapshot of a parent, e.g. to
//!   look at an image's root file system. It cannot be committed.
//! - A snapshot's **mounts** ([`Mount`]) say how to mount it; the
//!   snapshotter never mounts anything itself.
//!
//! Two snapshotters implement the trait: [`Overlay`] (each snapshot holds
//! only its layer, stacked by overlayfs; needs privilege) and [`Native`] (each
//! snapshot holds a full copy; works anywhere). [`open`] picks one by name,
//! [`default_name`] picks the best one for a root.
//!
//! # Example
//!
//! Import a layer, stack the next one on it, and view the result:
//!
//! ```
//! use std::sync::Arc;
//! use hoist_archive::{ApplyOptions, Compression, apply_layer};
//! use hoist_metadata::Db;
//! use hoist_snapshot::{Kind, Labels, Native, Snapshotter};
//!
//! # fn layer(files: &[(&str, &str)]) -> Vec<u8> {
//! #     let mut builder = tar::Builder::new(Vec::new());
//! #     for (path, body) in files {
//! #         let mut header = tar::Header::new_gnu();
//! #         header.set_size(body.len() as u64);
//! #         header.set_mode(0o644);
//! #         builder.append_data(&mut header, path, body.as_bytes()).unwrap();
//! #     }
//! #     builder.into_inner().unwrap()
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = tempfile::tempdir()?;
//! let db = Arc::new(Db::open(&home.path().join("metadata.db"))?);
//! let snapshotter = Native::open(&home.path().join("snapshots/native"), db)?;
//!
//! // Unpack one layer into an active snapshot, and commit it under its name.
//! let apply = |key: &str, tar: &[u8]| -> Result<(), Box<dyn std::error::Error>> {
//!     let target = snapshotter.apply_target(key)?;
//!     let options = ApplyOptions {
//!         whiteouts: target.whiteouts,
//!         lowers: target.lowers,
//!         ..ApplyOptions::default()
//!     };
//!     apply_layer(&target.dir, tar, Compression::None, &options)?;
//!     Ok(())
//! };
//! snapshotter.prepare("extract-1", None, Labels::new())?;
//! apply("extract-1", &layer(&[("etc/os-release", "v1"), ("bin/sh", "#!")]))?;
//! snapshotter.commit("layer-1", "extract-1", Labels::new())?;
//!
//! // Stack the next layer on the first.
//! snapshotter.prepare("extract-2", Some("layer-1"), Labels::new())?;
//! apply("extract-2", &layer(&[("etc/os-release", "v2")]))?;
//! snapshotter.commit("layer-2", "extract-2", Labels::new())?;
//! assert_eq!(snapshotter.stat("layer-2")?.parent.as_deref(), Some("layer-1"));
//! assert_eq!(snapshotter.stat("layer-2")?.kind, Kind::Committed);
//!
//! // View the result, read-only. Mounting needs privilege; the native
//! // snapshotter's tree can also be read directly.
//! let mounts = snapshotter.view("rootfs", Some("layer-2"), Labels::new())?;
//! assert_eq!(mounts[0].kind, "bind");
//! assert!(mounts[0].to_command("/mnt".as_ref()).starts_with("mount --rbind -o ro "));
//! let tree = snapshotter.fs_dir("rootfs")?;
//! assert_eq!(std::fs::read_to_string(tree.join("etc/os-release"))?, "v2");
//! assert_eq!(std::fs::read_to_string(tree.join("bin/sh"))?, "#!");
//! # Ok(())
//! # }
//! ```
//!
//! # Storage and consistency
//!
//! A snapshotter named `N` lives in `<hoist-root>/snapshots/N`; each snapshot
//! is a directory `snapshots/<id>/` there, and a record in the metadata
//! database (`snapshotter` = `N`). The directory is always made before the
//! record and removed after it, so a crash leaves at most a directory without
//! a record (garbage), never a record without its files. Commit flushes the
//! tree with `syncfs` before recording it as committed (unless opened
//! otherwise with [`open_with`]), and moves no data.
#![deny(missing_docs)]

/// Implements [`Snapshotter`] for a snapshotter kept in a [`store::Store`]
/// (a `store` field) with the given `NAME`: everything but how a layer is
/// applied is the store's, so only the type's inherent `create`,
/// `mounts_of` and `target` (the apply target of an active snapshot)
/// differ between `Native` and `Overlay`, and the trait methods given after
/// a `;` (those only one of them overrides).
macro_rules! store_snapshotter {
    ($type:ty $(; $($own:tt)*)?) => {
        impl $crate::Snapshotter for $type {
            $($($own)*)?

            fn name(&self) -> &'static str {
                NAME
            }

            fn stat(&self, key: &str) -> $crate::Result<$crate::Info> {
                Ok(self.store.get(key)?.info)
            }

            fn list(&self) -> $crate::Result<Vec<$crate::Info>> {
                self.store.list()
            }

            fn prepare(
                &self,
                key: &str,
                parent: Option<&str>,
                labels: $crate::Labels,
            ) -> $crate::Result<Vec<$crate::Mount>> {
                self.create(key, parent, $crate::Kind::Active, &labels)
            }

            fn view(
                &self,
                key: &str,
                parent: Option<&str>,
                labels: $crate::Labels,
            ) -> $crate::Result<Vec<$crate::Mount>> {
                self.create(key, parent, $crate::Kind::View, &labels)
            }

            fn mounts(&self, key: &str) -> $crate::Result<Vec<$crate::Mount>> {
                self.mounts_of(&self.store.get(key)?)
            }

            fn apply_target(&self, key: &str) -> $crate::Result<$crate::ApplyTarget> {
                let snap = self.store.get(key)?;
                if snap.info.kind != $crate::Kind::Active {
                    return Err($crate::overlay::active_only(key, snap.info.kind));
                }
                self.target(&snap)
            }

            fn commit(&self, name: &str, key: &str, labels: $crate::Labels) -> $crate::Result<()> {
                self.store.commit(name, key, &labels)
            }

            fn remove(&self, key: &str) -> $crate::Result<()> {
                self.store.remove(key)
            }

            fn usage(&self, key: &str) -> $crate::Result<$crate::Usage> {
                $crate::fsutil::usage(&self.store.fs(self.store.get(key)?.id))
            }

            fn set_labels(
                &self,
                key: &str,
                labels: $crate::Labels,
            ) -> $crate::Result<$crate::Info> {
                self.store.set_labels(key, labels)
            }

            fn fs_dir(&self, key: &str) -> $crate::Result<std::path::PathBuf> {
                Ok(self.store.fs(self.store.get(key)?.id))
            }

            fn lock(&self, key: &str) -> $crate::Result<$crate::KeyLock> {
                self.store.lock_key(key)
            }
        }
    };
}

mod copy;
mod error;
mod fsutil;
mod lock;
mod mount;
mod native;
mod overlay;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use error::{Error, Result};
pub use hoist_archive::WhiteoutMode;
pub use lock::KeyLock;
pub use mount::Mount;
pub use native::Native;
pub use overlay::Overlay;
pub use store::ID_LABEL;

/// Key/value metadata attached to snapshots.
pub type Labels = std::collections::BTreeMap<String, String>;

/// The lifecycle state of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Read-only, on a committed parent; cannot be committed.
    View,
    /// Writable; becomes committed by [`Snapshotter::commit`].
    Active,
    /// Immutable; the only kind that can be a parent.
    Committed,
}

/// What is known about one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The key (for a committed snapshot, the name it was committed as).
    pub key: String,
    /// The key of the parent, always a committed snapshot.
    pub parent: Option<String>,
    /// The lifecycle state.
    pub kind: Kind,
    /// Labels ([`ID_LABEL`] is reserved and never shown).
    pub labels: Labels,
    /// When the snapshot was created (for a committed one: committed).
    pub created_at: SystemTime,
    /// When its record was last written.
    pub updated_at: SystemTime,
}

/// Disk space used by a snapshot's own directory (see
/// [`Snapshotter::usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Allocated bytes (`st_blocks * 512`), each inode counted once.
    pub size: u64,
    /// Distinct inodes, the directory itself included.
    pub inodes: u64,
}

/// Where and how the applier writes a layer into an active snapshot; maps
/// onto `hoist_archive::ApplyOptions { whiteouts, lowers, .. }` with `dir` as
/// the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyTarget {
    /// The directory to apply the layer into.
    pub dir: PathBuf,
    /// How whiteouts are applied there.
    pub whiteouts: WhiteoutMode,
    /// The lower layer directories, topmost first (overlay only; empty for native).
    pub lowers: Vec<PathBuf>,
}

/// A snapshotter: stores snapshots and says how to mount them, like
/// containerd's `snapshots.Snapshotter`.
pub trait Snapshotter: Send + Sync {
    /// The snapshotter's name: `"overlay"` or `"native"`.
    fn name(&self) -> &'static str;

    /// The snapshot `key`; `NotFound` if there is none.
    fn stat(&self, key: &str) -> Result<Info>;

    /// Every snapshot, ordered by key.
    fn list(&self) -> Result<Vec<Info>>;

    /// Creates the active snapshot `key` on `parent`, which must be
    /// committed, and returns its mounts. `AlreadyExists` if `key` is taken,
    /// `NotFound` if `parent` is missing, `InvalidState` if it is not committed.
    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>>;

    /// Creates the read-only view `key` of `parent` (committed) and returns
    /// its mounts. Errors as [`prepare`](Self::prepare).
    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>>;

    /// The mounts of an active snapshot or view (`InvalidState` for a
    /// committed one).
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;

    /// Where to apply a layer into active snapshot `key`: for overlay its
    /// upper directory with overlay whiteouts and the parent chain as lowers
    /// (topmost first); for native its full tree with whiteouts deleting.
    /// `InvalidState` unless `key` is active.
    fn apply_target(&self, key: &str) -> Result<ApplyTarget>;

    /// Commits active `key` as `name`, merging nothing: the committed
    /// snapshot has `labels`. The tree is flushed (`syncfs`) first, so a
    /// crash cannot leave a committed snapshot with missing data. `key`
    /// disappears. `NotFound` if `key` is missing, `InvalidState` if it is
    /// not active, `AlreadyExists` if `name` is taken.
    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()>;

    /// Whether [`commit_onto`](Self::commit_onto) works here: a layer's
    /// snapshot can then be prepared and applied before its parent is
    /// committed, so the layers of an image apply in parallel. True for
    /// overlay (a snapshot holds only its own layer); false for native (a
    /// snapshot starts as a copy of its parent).
    fn rebases(&self) -> bool {
        false
    }

    /// Commits active `key`, prepared without a parent, as `name` on
    /// `parent` (committed by now), as containerd's rebase capability does;
    /// the layer's directory is kept as it is. The applier must have been
    /// given the parent's layers as lowers (`hoist_archive::LateLowers`).
    /// `Unsupported` unless [`rebases`](Self::rebases); otherwise errors as
    /// [`commit`](Self::commit), and `InvalidState` if `key` has a parent or
    /// `parent` is not committed.
    fn commit_onto(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<()> {
        let _ = (name, key, parent, labels);
        Err(Error::Unsupported {
            detail: format!("the {} snapshotter cannot rebase a snapshot", self.name()),
        })
    }

    /// Removes snapshot `key` and its files; `HasChildren` if any snapshot
    /// has it as parent. The caller unmounts it first.
    fn remove(&self, key: &str) -> Result<()>;

    /// The disk usage of the snapshot's own directory (overlay: its layer;
    /// native: its full tree), like containerd's `Usage`.
    fn usage(&self, key: &str) -> Result<Usage>;

    /// Merges `labels` into the snapshot's labels and returns its new info.
    fn set_labels(&self, key: &str, labels: Labels) -> Result<Info>;

    /// The directory holding the snapshot's own files (committed or active):
    /// overlay → its layer directory; native → its full tree. For tests and
    /// root file system export.
    fn fs_dir(&self, key: &str) -> Result<PathBuf>;

    /// Serializes work on one key across threads and processes (`flock` on
    /// a lock file). The engine takes it around "check committed → prepare →
    /// apply → commit" so concurrent pulls sharing a layer unpack it once.
    /// Blocks until acquired; released when the [`KeyLock`] drops. The key
    /// need not name an existing snapshot.
    fn lock(&self, key: &str) -> Result<KeyLock>;
}

/// The snapshotters hoist has, in the order they are looked at; each
/// lives in `<hoist-root>/snapshots/<name>`.
pub const NAMES: [&str; 2] = ["overlay", "native"];

/// Opens the snapshotter `name` (`"overlay"` or `"native"`) at `root`
/// (normally `<hoist-root>/snapshots/<name>`). `Unsupported` for another
/// name, or for overlay where overlayfs cannot be mounted.
pub fn open(name: &str, root: &Path, db: Arc<hoist_metadata::Db>) -> Result<Box<dyn Snapshotter>> {
    open_with(name, root, db, true)
}

/// [`open`], choosing whether commit flushes the snapshot's tree with
/// `syncfs` before recording it committed (the default, and what [`open`]
/// does): with it, a power loss cannot leave a committed snapshot with
/// missing data. Without it (containerd's default for overlay), a committed
/// snapshot reaches the disk when the kernel flushes it; a killed process
/// loses nothing either way, and the records stay consistent.
pub fn open_with(
    name: &str,
    root: &Path,
    db: Arc<hoist_metadata::Db>,
    flush_on_commit: bool,
) -> Result<Box<dyn Snapshotter>> {
    match name {
        "overlay" => Ok(Box::new(
            Overlay::open(root, db)?.flush_on_commit(flush_on_commit),
        )),
        "native" => Ok(Box::new(
            Native::open(root, db)?.flush_on_commit(flush_on_commit),
        )),
        other => Err(Error::Unsupported {
            detail: format!("unknown snapshotter {other:?} (expected \"overlay\" or \"native\")"),
        }),
    }
}

/// The best snapshotter for `root` (any directory on the file system that
/// will hold the snapshots, e.g. `<hoist-root>/snapshots`; created if
/// missing): `"overlay"` if [`Overlay::supported`], else `"native"`.
pub fn default_name(root: &Path) -> &'static str {
    if Overlay::supported(root) {
        "overlay"
    } else {
        "native"
    }
}
