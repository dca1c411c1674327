//! Overlay mode's path resolution: through the merged view overlayfs will
//! show, the root (the upper directory) over the lower layers, topmost
//! first, with the symlinks of either expanded as in-root paths; and the
//! copy-up a hardlink to a lower layer's file needs.
//!
//! Directories found in the upper are kept in the [`DirCache`] under their
//! symlink-free path, and a path reached through symlinks under its own
//! name too, with the places that must stay as they are for that to hold.
//!
//! [`DirCache`]: super::dircache::DirCache

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::fsops::{self, XattrTarget, file_type, lstat_at};
use crate::lowers::{is_opaque, is_whiteout};
use crate::name::{RootedPath, component_path};

use super::Applier;
use super::dircache::{CachedDir, check_length};
use super::entry::Time;
use super::whiteout::set_opaque;

/// How many symlinks one merged-view walk expands before giving up with
/// `ELOOP`, as the kernel does.
const MAX_SYMLINKS: usize = 40;

/// A directory found by a merged-view walk.
pub(super) struct Merged {
    /// It in the upper; `None` if only a lower layer has it.
    pub(super) dir: Option<Rc<CachedDir>>,
    /// Its path, every symlink resolved.
    pub(super) path: RootedPath,
    /// Whether the lowers show below it.
    pub(super) lowers: bool,
}

/// One directory on the way of a merged-view walk.
struct Level {
    dir: Option<Rc<CachedDir>>,
    lowers: bool,
}

impl Level {
    fn of(dir: Rc<CachedDir>) -> Self {
        Self {
            lowers: dir.lowers(),
            dir: Some(dir),
        }
    }
}

/// The end of a merged-view walk at a missing directory: an error if it was
/// to be created (only a symlink's target is never created), else `None`.
fn missing(create: bool, path: &RootedPath) -> Result<Option<Merged>> {
    if create {
        Err(Error::io(path.relative(), io::Error::from(Errno::NOENT)))
    } else {
        Ok(None)
    }
}

impl Applier<'_> {
    /// Resolves the directory `dir` through overlay's merged view: the root
    /// (the upper directory) over the lower layers, topmost first.
    ///
    /// Per component: what the upper has wins (a directory is entered, a
    /// symlink expanded, a whiteout means deleted); else the lowers are asked,
    /// unless an opaque upper directory on the way hides them. A symlink,
    /// wherever it lives, is expanded as an in-root path: an absolute target
    /// starts again at the root, a relative one at the directory holding the
    /// link, `..` stops at the root, and at most [`MAX_SYMLINKS`] expansions
    /// are made. Every directory of the upper is opened from the one above
    /// it by a plain name, following nothing ([`crate::root::Root::open_child`]),
    /// every lower one component at a time without following anything, so
    /// nothing outside the root or the lowers is ever reached. The walk
    /// starts at the deepest directory on the way the cache has open.
    ///
    /// With `create`, directories missing from the upper are made there: a
    /// lower layer's one with its owner, mode, times and xattrs (so the
    /// merged view does not change), one missing everywhere (or deleted by
    /// this layer) plain; the result then has an fd. Names that come from a
    /// symlink's target must exist, as they must for `RESOLVE_IN_ROOT`.
    /// Without `create`, a directory the merged view does not have (missing,
    /// deleted, or a non-directory there) gives `None`.
    pub(super) fn walk_merged(&mut self, dir: &RootedPath, create: bool) -> Result<Option<Merged>> {
        check_length(dir)?;
        let (start, base) = self.cache.longest_prefix(dir);
        let mut current = base
            .resolved()
            .expect("overlay mode knows every cached directory's path")
            .clone();
        if start == dir.depth() {
            return Ok(Some(Merged {
                lowers: base.lowers(),
                dir: Some(base),
                path: current,
            }));
        }
        // `levels[0]` is where the walk starts, which need not be the root:
        // a `..` above it walks down to the parent again from the root.
        let mut levels = vec![Level::of(base)];
        // Names still to walk, the next one last; `true` marks a name from a
        // symlink's target.
        let mut todo: Vec<(Vec<u8>, bool)> = dir
            .components()
            .skip(start)
            .map(|c| (c.to_vec(), false))
            .collect();
        todo.reverse();
        // Where the walk passed something other than an upper directory: if
        // the upper gets something there, a path cached as resolved through
        // it may resolve elsewhere.
        let mut deps: Vec<RootedPath> = Vec::new();
        let mut expansions = 0;
        while let Some((name, from_link)) = todo.pop() {
            if name == b".." {
                // Clamped at the root, like `RESOLVE_IN_ROOT`.
                if levels.len() > 1 {
                    levels.pop();
                    current = current.split_last().expect("below the root").0;
                } else if let Some((parent, _)) = current.split_last() {
                    todo.extend(parent.components().rev().map(|c| (c.to_vec(), true)));
                    levels = vec![Level::of(self.cache.root())];
                    current = RootedPath::default();
                }
                continue;
            }
            let next = current.join(&name);
            let err = |e: io::Error| Error::io(next.relative(), e);
            let level = levels.last().expect("the first level stays");
            let lowers_here = level.lowers;
            let parent = level.dir.clone();
            if parent.is_some()
                && let Some(hit) = self.cache.get_exact(next.key())
            {
                levels.push(Level::of(hit));
                current = next;
                continue;
            }
            let upper = match &parent {
                Some(dir) => lstat_at(dir.fd(), &name).map_err(err)?,
                None => None,
            };
            let link = match upper {
                Some(st) if file_type(&st) == FileType::Directory => {
                    let dir = parent.expect("the upper has it");
                    let fd = self
                        .root
                        .open_child(dir.fd(), &name, OFlags::RDONLY | OFlags::DIRECTORY)
                        .map_err(err)?;
                    let lowers = lowers_here && !is_opaque(fd.as_fd());
                    levels.push(self.cached(&next, fd, lowers));
                    current = next;
                    continue;
                }
                Some(st) if file_type(&st) == FileType::Symlink => {
                    let dir = parent.expect("the upper has it");
                    deps.push(next.clone());
                    rustix::fs::readlinkat(dir.fd(), component_path(&name), Vec::new())
                        .map_err(|e| err(e.into()))?
                        .into_bytes()
                }
                Some(st) if is_whiteout(&st) => {
                    // Deleted by this layer: a new directory here must not
                    // let the lowers' one show through.
                    if !create || from_link {
                        return missing(create, &next);
                    }
                    let dir = parent.expect("the upper has it");
                    self.remove(&dir, &name, &next)?;
                    let shadowed = self.lower_is_dir(lowers_here, &next)?;
                    let made = self.make_implicit_dir(&dir, &next, &name, None)?;
                    if shadowed {
                        set_opaque(made.as_fd()).map_err(err)?;
                    }
                    levels.push(self.cached(&next, made, false));
                    current = next;
                    continue;
                }
                Some(_) if create => return Err(err(Errno::NOTDIR.into())),
                Some(_) => return Ok(None),
                None => {
                    let found = if lowers_here {
                        self.lowers.lookup(&next).map_err(err)?
                    } else {
                        None
                    };
                    match found {
                        Some(found) if file_type(&found.stat) == FileType::Directory => {
                            match parent {
                                Some(dir) if create => {
                                    let made =
                                        self.make_implicit_dir(&dir, &next, &name, Some(&found))?;
                                    levels.push(self.cached(&next, made, true));
                                }
                                _ => {
                                    deps.push(next.clone());
                                    levels.push(Level {
                                        dir: None,
                                        lowers: true,
                                    });
                                }
                            }
                            current = next;
                            continue;
                        }
                        Some(found) if file_type(&found.stat) == FileType::Symlink => {
                            deps.push(next.clone());
                            rustix::fs::readlinkat(&found.parent, component_path(&name), Vec::new())
                                .map_err(|e| Error::io(&found.lower, io::Error::from(e)))?
                                .into_bytes()
                        }
                        Some(_) if create => return Err(err(Errno::NOTDIR.into())),
                        Some(_) => return Ok(None),
                        None => {
                            let Some(dir) = parent.filter(|_| create && !from_link) else {
                                return missing(create, &next);
                            };
                            let made = self.make_implicit_dir(&dir, &next, &name, None)?;
                            levels.push(self.cached(&next, made, false));
                            current = next;
                            continue;
                        }
                    }
                }
            };
            // A symlink: its target is walked instead, as an in-root path.
            expansions += 1;
            if !self.root.follows_symlinks() || expansions > MAX_SYMLINKS {
                return Err(err(Errno::LOOP.into()));
            }
            if link.starts_with(b"/") {
                levels = vec![Level::of(self.cache.root())];
                current = RootedPath::default();
            }
            for part in link.split(|&b| b == b'/').rev() {
                if !part.is_empty() && part != b"." {
                    todo.push((part.to_vec(), true));
                }
            }
        }
        let level = levels.pop().expect("the first level stays");
        if let Some(found) = &level.dir
            && current != *dir
        {
            self.cache.insert_alias(dir.key(), found.clone(), deps);
        }
        Ok(Some(Merged {
            dir: level.dir,
            path: current,
            lowers: level.lowers,
        }))
    }

    /// Caches the upper directory `fd` at the symlink-free `path`.
    fn cached(&mut self, path: &RootedPath, fd: OwnedFd, lowers: bool) -> Level {
        let dir = Rc::new(CachedDir::new(fd, Some(path.clone()), lowers));
        self.cache.insert(path.key(), dir.clone());
        Level::of(dir)
    }

    /// True if the lowers (when visible here) have a directory at `path`.
    pub(super) fn lower_is_dir(&self, visible: bool, path: &RootedPath) -> Result<bool> {
        if !visible {
            return Ok(false);
        }
        let found = self
            .lowers
            .lookup(path)
            .map_err(|e| Error::io(path.relative(), e))?;
        Ok(found.is_some_and(|f| file_type(&f.stat) == FileType::Directory))
    }

    /// The upper directory holding `parent/name` in the merged view and its
    /// `lstat`, if it exists there. Symlinks on the way resolve through the
    /// merged view too; a whiteout means deleted; a file only a lower layer
    /// has is copied up first, as overlay cannot link across layers.
    pub(super) fn find_merged(
        &mut self,
        parent: &RootedPath,
        name: &[u8],
    ) -> Result<Option<(Rc<CachedDir>, Stat)>> {
        let Some(dir) = self.walk_merged(parent, false)? else {
            return Ok(None);
        };
        let resolved = dir.path.join(name);
        let err = |e: io::Error| Error::io(resolved.relative(), e);
        if let Some(upper) = &dir.dir {
            match lstat_at(upper.fd(), name).map_err(err)? {
                Some(st) if is_whiteout(&st) => return Ok(None),
                Some(st) => return Ok(Some((upper.clone(), st))),
                None => {}
            }
        }
        if !dir.lowers || !self.copy_up(&resolved)? {
            return Ok(None);
        }
        let upper = self.ensure_dir(&dir.path)?;
        Ok(lstat_at(upper.fd(), name)
            .map_err(err)?
            .map(|st| (upper, st)))
    }

    /// Copies `target` (a path with every symlink resolved, not hidden
    /// in the merged view by the upper) from the topmost lower layer that has
    /// it into the root, so that a hardlink to it can be made (overlay cannot
    /// link across layers). False, and nothing done, if no lower has it.
    fn copy_up(&mut self, target: &RootedPath) -> Result<bool> {
        let io_err = |e: io::Error| Error::io(target.relative(), e);
        let Some(found) = self.lowers.lookup(target).map_err(io_err)? else {
            return Ok(false);
        };
        let lower_err = |e: io::Error| Error::io(found.lower.join(target.relative()), e);
        let parent = self.parent_of(target)?.expect("not the root");
        let (dir, name) = (parent.dir.fd(), parent.name);
        let st = &found.stat;
        let times = Time::of_stat(st);
        let owner = (
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
        );
        match file_type(st) {
            FileType::RegularFile => {
                let src = rustix::fs::openat(
                    &found.parent,
                    component_path(name),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| lower_err(e.into()))?;
                let dst = rustix::fs::openat(
                    dir,
                    fsops::plain(name).map_err(io_err)?,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err(e.into()))?;
                let mut src = std::fs::File::from(src);
                let mut dst = std::fs::File::from(dst);
                io::copy(&mut src, &mut dst).map_err(io_err)?;
                if self.options.same_owner {
                    rustix::fs::fchown(&dst, owner.0, owner.1).map_err(|e| io_err(e.into()))?;
                }
                let label = String::from_utf8_lossy(target.key()).into_owned();
                for (k, v) in fsops::get_xattrs(src.as_fd()).map_err(lower_err)? {
                    fsops::set_xattr(&XattrTarget::Fd(dst.as_fd()), &k, &v, &label)
                        .map_err(io_err)?;
                }
                rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))
                    .map_err(|e| io_err(e.into()))?;
                rustix::fs::futimens(&dst, &times).map_err(|e| io_err(e.into()))?;
            }
            FileType::Symlink => {
                let link = rustix::fs::readlinkat(&found.parent, component_path(name), Vec::new())
                    .map_err(|e| lower_err(e.into()))?;
                rustix::fs::symlinkat(link.as_c_str(), dir, fsops::plain(name).map_err(io_err)?)
                    .map_err(|e| io_err(e.into()))?;
                if self.options.same_owner {
                    fsops::chown_at(dir, name, st.st_uid, st.st_gid).map_err(io_err)?;
                }
                fsops::utimes_at(dir, name, &times).map_err(io_err)?;
            }
            other => {
                return Err(Error::Unsupported {
                    detail: format!(
                        "hardlink to {} in a lower layer, which is a {other:?}",
                        target.relative().display()
                    ),
                });
            }
        }
        self.note_created(&parent.dir, name)?;
        Ok(true)
    }
}
