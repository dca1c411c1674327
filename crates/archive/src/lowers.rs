//! Lookups in the lower layers of an overlay snapshot.
//!
//! In [`WhiteoutMode::Overlay`](crate::WhiteoutMode::Overlay) the root is an
//! empty upper directory, so two things the layer refers to may live only in
//! a lower layer: the target of a hardlink, and the metadata of a parent
//! directory the tar does not list. Both are found here, topmost lower first,
//! honouring overlay's rules: a whiteout (char device 0:0) hides the path in
//! every lower below it, and an opaque directory hides the lowers below it.
//!
//! Lower layers came from tars too, so their symlinks are as untrusted as the
//! layer's: the walk here goes one plain component at a time with
//! `O_NOFOLLOW` from each lower's root fd, and follows no symlink at all. A
//! symlink found here is expanded by the caller's merged-view walk, as an
//! in-root path.

use std::cell::OnceCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{FileType, Stat};
use rustix::io::Errno;

use crate::LateLowers;
use crate::fsops::{file_type, lstat_at, open_dir_nofollow};
use crate::name::RootedPath;
use crate::root::Root;

/// A path found in a lower layer.
pub(crate) struct Found {
    /// The lower directory it was found in, for messages.
    pub(crate) lower: PathBuf,
    /// Its parent directory in that lower, opened readable.
    pub(crate) parent: OwnedFd,
    /// Its `lstat`.
    pub(crate) stat: Stat,
}

/// The lower layer directories, topmost first.
pub(crate) struct Lowers {
    /// Opened on first use when the lowers are given late.
    layers: OnceCell<Vec<(PathBuf, Root)>>,
    late: Option<LateLowers>,
}

impl Lowers {
    /// Lowers that `late` gives when first looked at.
    pub(crate) fn late(late: LateLowers) -> Self {
        Self {
            layers: OnceCell::new(),
            late: Some(late),
        }
    }

    /// The opened lowers, waiting for late ones the first time.
    fn layers(&self) -> io::Result<&[(PathBuf, Root)]> {
        if let Some(layers) = self.layers.get() {
            return Ok(layers);
        }
        let paths = match &self.late {
            Some(late) => late.wait()?,
            None => Vec::new(),
        };
        let layers = open_all(&paths).map_err(io::Error::other)?;
        Ok(self.layers.get_or_init(|| layers))
    }

    /// Opens each lower directory.
    pub(crate) fn open(paths: &[PathBuf]) -> crate::Result<Self> {
        Ok(Self {
            layers: OnceCell::from(open_all(paths)?),
            late: None,
        })
    }

    /// True if there are no lower layers (late ones always count as some).
    pub(crate) fn is_empty(&self) -> bool {
        self.late.is_none() && self.layers.get().is_none_or(Vec::is_empty)
    }

    /// Finds `path` (not the root) in the topmost lower that has it, unless
    /// a whiteout or an opaque directory above hides it.
    pub(crate) fn lookup(&self, path: &RootedPath) -> io::Result<Option<Found>> {
        let components: Vec<&[u8]> = path.components().collect();
        let Some((last, dirs)) = components.split_last() else {
            return Ok(None);
        };
        for (lower, root) in self.layers()? {
            let mut dir = rustix::fs::openat(
                root.fd(),
                ".",
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            let mut opaque = false;
            let mut present = true;
            for name in dirs {
                match lstat_at(dir.as_fd(), name)? {
                    Some(st) if is_whiteout(&st) => return Ok(None),
                    Some(st) if file_type(&st) == FileType::Directory => {
                        dir = open_dir_nofollow(dir.as_fd(), name)?;
                        opaque |= is_opaque(dir.as_fd());
                    }
                    // A non-directory (a symlink included) where a directory
                    // should be: overlay stops merging at a non-directory, so
                    // it hides this path in every lower below too.
                    Some(_) => return Ok(None),
                    // Missing: the path is not in this lower.
                    None => {
                        present = false;
                        break;
                    }
                }
            }
            if present {
                match lstat_at(dir.as_fd(), last)? {
                    Some(st) if is_whiteout(&st) => return Ok(None),
                    Some(stat) => {
                        return Ok(Some(Found {
                            lower: lower.clone(),
                            parent: dir,
                            stat,
                        }));
                    }
                    None => {}
                }
            }
            if opaque {
                return Ok(None);
            }
        }
        Ok(None)
    }
}

fn open_all(paths: &[PathBuf]) -> crate::Result<Vec<(PathBuf, Root)>> {
    paths
        .iter()
        .map(|p| {
            Root::open(p)
                .map(|r| (p.clone(), r))
                .map_err(|e| crate::Error::io(p, e))
        })
        .collect()
}

/// Overlay's whiteout: a character device with device number 0:0.
pub(crate) fn is_whiteout(st: &Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// True if the directory (opened readable) carries `trusted.overlay.opaque=y`.
pub(crate) fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4];
    match rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut buf[..]) {
        Ok(n) => &buf[..n] == b"y",
        Err(Errno::NODATA | Errno::NOTSUP | Errno::RANGE) => false,
        Err(_) => false,
    }
}
