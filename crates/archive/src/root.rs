//! Confined path resolution: every path of an entry is opened relative to the
//! root with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
//!
//! `RESOLVE_IN_ROOT` makes the kernel treat the root fd as `/` for the whole
//! walk: an absolute symlink target, or a `..` at the root, stays inside. So a
//! symlink planted by an earlier entry (`evil -> /`, `evil -> ../canary`) can
//! never redirect a later write out of the root; it is resolved as if the
//! layer were already the container's file system. `RESOLVE_NO_MAGICLINKS`
//! refuses `/proc/<pid>/fd/*`-style links, which would jump anywhere.
//!
//! Only *directories* are opened this way. The final component of an entry is
//! then created, removed or changed with an `*at` syscall on the parent fd and
//! a single plain name, with "don't follow" semantics, so a symlink in the
//! final position is replaced or changed itself, never followed.
//!
//! A directory below one already open (the applier keeps a layer's
//! directories open) is opened from it by one plain name with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` ([`Root::open_child`]): the same
//! resolution one step at a time, which meets any symlink as an error, so
//! that the caller resolves that path whole, as above.
//!
//! On a kernel without `openat2` (`ENOSYS`, before 5.6) the walk falls back to
//! [`crate::fallback`], which follows no symlink at all.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::fallback;
use crate::name::{RootedPath, component_path, is_plain_component};

/// How many times to retry `openat2` on `EAGAIN`, which `RESOLVE_IN_ROOT`
/// returns when a concurrent rename could have made `..` resolution unsafe.
const EAGAIN_RETRIES: usize = 16;

/// An open root directory that paths are resolved inside.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    /// Set once `openat2` reported `ENOSYS` (or forced by tests).
    use_fallback: bool,
}

impl Root {
    /// Opens the root directory itself. The root's own path is the caller's
    /// and trusted; only paths *below* it come from the layer.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            use_fallback: false,
        })
    }

    /// Makes every later resolution use the `openat2`-less walker.
    pub(crate) fn force_fallback(&mut self) {
        self.use_fallback = true;
    }

    /// False once resolution uses the `openat2`-less walker, which follows
    /// no symlink: a walk that expands symlinks itself must then refuse them
    /// too, so that both walks agree on what a layer may do.
    pub(crate) fn follows_symlinks(&self) -> bool {
        !self.use_fallback
    }

    /// The root directory's fd (opened read-only, so usable for `fstat`,
    /// `fchown`, `fsetxattr` and listing).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `path` inside the root with `flags` (`O_CLOEXEC` is added).
    /// Symlinks on the way, and in the final position unless `flags` has
    /// `O_NOFOLLOW`, are resolved as if the root were `/`.
    pub(crate) fn open_in(&mut self, path: &RootedPath, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        if !self.use_fallback {
            let mut tries = 0;
            loop {
                match rustix::fs::openat2(
                    &self.fd,
                    path.as_path(),
                    flags,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Ok(fd) => return Ok(fd),
                    Err(Errno::AGAIN) if tries < EAGAIN_RETRIES => tries += 1,
                    Err(Errno::NOSYS) => {
                        tracing::warn!(
                            "openat2 is not available; resolving paths without following symlinks"
                        );
                        self.use_fallback = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        fallback::open_beneath(self.fd.as_fd(), path, flags)
    }

    /// Opens `name`, a plain name, in `parent`, a directory already opened
    /// inside the root, following no symlink at all: one step of a walk
    /// whose earlier steps are cached. A symlink gives `ELOOP` (`ENOTDIR`
    /// from the fallback, which cannot tell), so the caller can resolve the
    /// whole path with [`Self::open_in`] instead.
    ///
    /// The kernel keeps the result beneath `parent` (`RESOLVE_BENEATH`), and
    /// `parent` is inside the root, so the result is too.
    pub(crate) fn open_child(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        flags: OFlags,
    ) -> io::Result<OwnedFd> {
        if !is_plain_component(name) {
            return Err(Errno::INVAL.into());
        }
        let flags = flags | OFlags::CLOEXEC;
        if !self.use_fallback {
            match rustix::fs::openat2(
                parent,
                component_path(name),
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::NOSYS) => {
                    tracing::warn!(
                        "openat2 is not available; resolving paths without following symlinks"
                    );
                    self.use_fallback = true;
                }
                // A plain name has no `..`, so no `EAGAIN` to retry.
                result => return Ok(result?),
            }
        }
        Ok(rustix::fs::openat(
            parent,
            component_path(name),
            flags | OFlags::NOFOLLOW,
            Mode::empty(),
        )?)
    }
}
