//! Whiteouts: `.wh.NAME` deletes `NAME`, and `.wh..wh..opq` hides what the
//! lower layers have in its directory. In Delete mode both happen in place
//! (the root holds the lower layers); in Overlay mode they become
//! overlayfs's own marks in the upper: a character device 0:0 named `NAME`,
//! and `trusted.overlay.opaque=y` on the directory.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags};

use crate::error::{Error, Result};
use crate::fsops::{self, file_type, lstat_at, plain};
use crate::name::{RootedPath, is_plain_component};

use super::{Applier, WhiteoutMode, label};

/// Delete mode: the names this layer created, which an opaque whiteout
/// keeps, each as (parent directory's device and inode, name): keyed by the
/// parent's identity rather than its path, so that a directory reached
/// through an in-root symlink is recognized whichever name the tar used.
///
/// Kept as 128-bit keyed hashes, about 20 bytes a name where the names
/// themselves took about 90: a layer of 200,000 files held 18 MB here, past
/// the pull's memory bound. The keys are random for every apply, so no
/// layer can aim for a collision; an accidental one (odds about n² / 2¹²⁹)
/// would keep one lower entry under an opaque whiteout.
pub(super) struct CreatedNames {
    keys: [RandomState; 2],
    hashes: HashSet<u128>,
}

impl CreatedNames {
    pub(super) fn new() -> Self {
        Self {
            keys: [RandomState::new(), RandomState::new()],
            hashes: HashSet::new(),
        }
    }

    fn hash(&self, dev: u64, ino: u64, name: &[u8]) -> u128 {
        let [high, low] = self.keys.each_ref().map(|key| {
            let mut hasher = key.build_hasher();
            hasher.write_u64(dev);
            hasher.write_u64(ino);
            hasher.write(name);
            hasher.finish()
        });
        (u128::from(high) << 64) | u128::from(low)
    }

    pub(super) fn insert(&mut self, dev: u64, ino: u64, name: &[u8]) {
        let hash = self.hash(dev, ino, name);
        self.hashes.insert(hash);
    }

    pub(super) fn contains(&self, dev: u64, ino: u64, name: &[u8]) -> bool {
        self.hashes.contains(&self.hash(dev, ino, name))
    }
}

/// Marks a directory (opened readable) opaque for overlayfs.
pub(super) fn set_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fsetxattr(
        dir,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )?)
}

impl Applier<'_> {
    /// Applies a whiteout entry `dir/.wh.<target>`.
    pub(super) fn whiteout(&mut self, dir: &RootedPath, target: &[u8], raw: &[u8]) -> Result<()> {
        if target == b".wh..opq" {
            return self.opaque(dir, raw);
        }
        if target.starts_with(b".wh.") {
            // Other `.wh..wh.*` names are aufs bookkeeping (`.wh..wh.plnk`, …).
            tracing::debug!(path = %label(raw), "ignoring aufs metadata entry");
            return Ok(());
        }
        // `.wh..` and `.wh...` name `.` and `..`: deleting those would remove
        // the directory itself or its parent (at the root, the root's parent).
        if !is_plain_component(target) {
            tracing::warn!(path = %label(raw), "ignoring whiteout that names no file");
            return Ok(());
        }
        let path = dir.join(target);
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                // The directory is resolved inside the root: a whiteout under a
                // symlink (`link -> ../canary`, `link/.wh.file`) deletes in the
                // tree the symlink means inside the root, if anything.
                let Some(parent) = self.native_dir(dir, false)? else {
                    return Ok(());
                };
                self.remove(&parent, target, &path)?;
            }
            WhiteoutMode::Overlay => {
                // The directory is resolved through the merged view: under a
                // lower layer's `lib -> usr/lib`, `lib/.wh.x` deletes
                // `usr/lib/x`. Under a directory the merged view does not
                // have there is nothing to delete, as in Delete mode.
                let Some(found) = self.walk_merged(dir, false)? else {
                    return Ok(());
                };
                let parent = self.ensure_dir(&found.path)?;
                self.remove(&parent, target, &path)?;
                rustix::fs::mknodat(
                    parent.fd(),
                    plain(target).map_err(io_err)?,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| io_err(e.into()))?;
                self.note_created(&parent, target)?;
            }
        }
        Ok(())
    }

    /// Applies `dir/.wh..wh..opq`.
    fn opaque(&mut self, dir: &RootedPath, raw: &[u8]) -> Result<()> {
        let io_err = |e: io::Error| Error::io(dir.relative(), e);
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                let Some(cached) = self.native_dir(dir, false)? else {
                    return Ok(());
                };
                // Listing needs a readable fd, which the cache may not have.
                let reopened: OwnedFd;
                let fd = if cached.readable() {
                    cached.fd()
                } else {
                    reopened = self
                        .root
                        .open_in(dir, OFlags::RDONLY | OFlags::DIRECTORY)
                        .map_err(io_err)?;
                    reopened.as_fd()
                };
                self.clear_lower(fd, cached.resolved().cloned(), dir)
            }
            WhiteoutMode::Overlay => {
                let Some(found) = self.walk_merged(dir, false)? else {
                    return Ok(());
                };
                // Opened readable by the walk, so `fsetxattr` works on it.
                let cached = self.ensure_dir(&found.path)?;
                set_opaque(cached.fd()).map_err(io_err)?;
                self.cache.attrs_changed(Some(&found.path));
                tracing::trace!(path = %label(raw), "set opaque");
                Ok(())
            }
        }
    }

    /// Removes from the directory `fd` (at `dir`, resolved to `at` where
    /// known) everything this layer did not create, descending into
    /// directories it did create.
    fn clear_lower(
        &mut self,
        fd: BorrowedFd<'_>,
        at: Option<RootedPath>,
        dir: &RootedPath,
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(dir.relative(), e);
        let st = rustix::fs::fstat(fd).map_err(|e| io_err(e.into()))?;
        for name in fsops::list_dir(fd).map_err(io_err)? {
            let child = dir.join(&name);
            if self.created.contains(st.st_dev, st.st_ino, &name) {
                let is_dir = lstat_at(fd, &name)
                    .map_err(io_err)?
                    .is_some_and(|st| file_type(&st) == FileType::Directory);
                if is_dir {
                    let sub = fsops::open_dir_nofollow(fd, &name).map_err(io_err)?;
                    let sub_at = at.as_ref().map(|a| a.join(&name));
                    self.clear_lower(sub.as_fd(), sub_at, &child)?;
                }
            } else {
                self.remove_in(fd, at.as_ref(), &name, &child)?;
            }
        }
        Ok(())
    }
}
