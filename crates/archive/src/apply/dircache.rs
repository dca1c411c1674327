//! The directories of a layer kept open: each directory an entry names is
//! resolved inside the root once, and its fd serves the entries after it.
//!
//! A tar lists a directory's entries together, so almost every entry's
//! parent is the one before's, or close to it: with a small cache keyed by
//! the parent's normalized path an entry costs no path walk at all. A miss
//! walks down from the longest cached prefix one component at a time, each
//! step [`Root::open_child`] on the directory above (beneath it, following
//! nothing); a step that meets a symlink resolves the whole path with
//! [`Root::open_in`] instead (`openat2(RESOLVE_IN_ROOT)`, or the fallback
//! walker), exactly as an uncached resolution would.
//!
//! # Why a cached fd never escapes, and when it is dropped
//!
//! An fd in the cache is a directory that was inside the root when it was
//! opened. The applier never renames, and a directory has one name, so that
//! inode stays inside the root until it is deleted, after which nothing can
//! be created in it: a stale fd can make an entry fail, never land outside.
//! What the cache must keep right is *which* directory a path means, which
//! changes only when something on the way is removed or, in overlay mode,
//! when the upper starts to hide what a lower had. So every removal, every
//! creation the merged view depends on, and every opaque marker or xattr set
//! on a directory reports to [`DirCache`], which drops:
//! - on removing a directory or symlink at path P: every entry at or below
//!   P, and every entry reached through a symlink (it may have led through
//!   P); if P itself is not known (its parent was reached through a symlink
//!   the kernel resolved), everything;
//! - in overlay mode, on creating or removing anything at a path that an
//!   entry reached through a symlink passed without an upper directory there
//!   (a lower's symlink or directory, an upper symlink): every such entry;
//! - on an opaque marker or xattrs set on directory P: every entry at or
//!   below P (what the lowers show there changed) and every symlinked one.
//!
//! So a layer that creates `a/`, replaces `a` with a symlink to `/` and then
//! writes `a/x` finds no `a` in the cache, and resolves `a` in the root,
//! where `/` is the root.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::fsops;
use crate::lowers::is_opaque;
use crate::name::RootedPath;
use crate::root::Root;

use super::Applier;

/// How many directories stay open besides the root. A tar walks a tree
/// depth first, so what matters is the current directory and its
/// ancestors; the rest is slack for layers that jump around.
const CAPACITY: usize = 128;

/// The longest directory path resolved, in bytes: what a path syscall takes
/// (`PATH_MAX` with its NUL), as resolution by whole paths allowed before.
const PATH_MAX: usize = 4095;

/// An open directory of the root.
pub(super) struct CachedDir {
    fd: OwnedFd,
    /// Its path with every symlink resolved; `None` when the kernel resolved
    /// a symlink on the way (native mode), so the real path is not known.
    /// Always known in overlay mode, whose walk expands symlinks itself.
    resolved: Option<RootedPath>,
    /// Overlay mode: whether the lower layers show below this directory (no
    /// opaque directory or deletion hides them).
    lowers: Cell<bool>,
    /// Opened `O_RDONLY`, else `O_PATH` (a directory the caller may not read).
    readable: bool,
    /// `fstat`, taken once when first needed.
    stat: Cell<Option<DirStat>>,
    /// Whether it has a default ACL, asked once when first needed.
    default_acl: Cell<Option<bool>>,
}

/// What entries created in a directory need to know about it.
#[derive(Clone, Copy, Debug)]
pub(super) struct DirStat {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
}

impl DirStat {
    /// New entries here belong to the directory's group rather than the
    /// creator's, and new directories are setgid too.
    pub(super) fn setgid(&self) -> bool {
        self.mode & 0o2000 != 0
    }
}

impl CachedDir {
    pub(super) fn new(fd: OwnedFd, resolved: Option<RootedPath>, lowers: bool) -> Self {
        Self {
            fd,
            resolved,
            lowers: Cell::new(lowers),
            readable: true,
            stat: Cell::new(None),
            default_acl: Cell::new(None),
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(super) fn lowers(&self) -> bool {
        self.lowers.get()
    }

    pub(super) fn readable(&self) -> bool {
        self.readable
    }

    /// The path with every symlink resolved, if known.
    pub(super) fn resolved(&self) -> Option<&RootedPath> {
        self.resolved.as_ref()
    }

    /// Its resolved path if known, else `lexical`, the path it was reached by.
    pub(super) fn path_or(&self, lexical: &RootedPath) -> RootedPath {
        self.resolved.clone().unwrap_or_else(|| lexical.clone())
    }

    pub(super) fn stat(&self) -> io::Result<DirStat> {
        if let Some(st) = self.stat.get() {
            return Ok(st);
        }
        let st = rustix::fs::fstat(&self.fd)?;
        let st = DirStat {
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
        };
        self.stat.set(Some(st));
        Ok(st)
    }

    /// True if new entries here may get other permissions than asked for
    /// less the umask: the directory has a default ACL, which replaces the
    /// umask, or cannot be asked.
    pub(super) fn default_acl(&self) -> bool {
        if let Some(acl) = self.default_acl.get() {
            return acl;
        }
        let acl = !self.readable
            || match rustix::fs::fgetxattr(&self.fd, "system.posix_acl_default", &mut [0u8; 0][..])
            {
                Ok(_) => true,
                Err(Errno::NODATA | Errno::NOTSUP) => false,
                Err(_) => true,
            };
        self.default_acl.set(Some(acl));
        acl
    }

    /// Forgets what was learned about the directory's attributes.
    fn forget(&self) {
        self.stat.set(None);
        self.default_acl.set(None);
    }
}

/// The open directories, by the path entries named them with.
pub(super) struct DirCache {
    /// The root, never dropped.
    root: Rc<CachedDir>,
    map: HashMap<Vec<u8>, Slot>,
    /// Bumped on every use, for least-recently-used eviction.
    tick: u64,
    /// Overlay mode: resolved paths that entries reached through symlinks
    /// passed without an upper directory there.
    deps: HashSet<Vec<u8>>,
    /// Overlay mode with lower layers.
    has_lowers: bool,
}

struct Slot {
    dir: Rc<CachedDir>,
    used: u64,
}

/// True if `dir`, cached under `key`, was reached through a symlink.
fn is_alias(key: &[u8], dir: &CachedDir) -> bool {
    dir.resolved.as_ref().is_none_or(|r| r.key() != key)
}

impl DirCache {
    pub(super) fn new(root: &mut Root, has_lowers: bool) -> Result<Self> {
        let fd = root
            .open_in(&RootedPath::default(), OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| Error::io(".", e))?;
        let lowers = has_lowers && !is_opaque(fd.as_fd());
        Ok(Self {
            root: Rc::new(CachedDir::new(fd, Some(RootedPath::default()), lowers)),
            map: HashMap::new(),
            tick: 0,
            deps: HashSet::new(),
            has_lowers,
        })
    }

    pub(super) fn root(&self) -> Rc<CachedDir> {
        self.root.clone()
    }

    /// The directory cached under `key`, however it was reached.
    pub(super) fn get(&mut self, key: &[u8]) -> Option<Rc<CachedDir>> {
        if key.is_empty() {
            return Some(self.root.clone());
        }
        self.tick += 1;
        let slot = self.map.get_mut(key)?;
        slot.used = self.tick;
        Some(slot.dir.clone())
    }

    /// The directory at the symlink-free path `key`, if cached as such.
    pub(super) fn get_exact(&mut self, key: &[u8]) -> Option<Rc<CachedDir>> {
        self.get(key).filter(|dir| !is_alias(key, dir))
    }

    /// The deepest cached directory on the way to `path`, and its depth.
    pub(super) fn longest_prefix(&mut self, path: &RootedPath) -> (usize, Rc<CachedDir>) {
        for depth in (1..=path.depth()).rev() {
            if let Some(dir) = self.get(path.prefix_key(depth)) {
                return (depth, dir);
            }
        }
        (0, self.root.clone())
    }

    pub(super) fn insert(&mut self, key: &[u8], dir: Rc<CachedDir>) {
        if key.is_empty() {
            return;
        }
        self.tick += 1;
        let used = self.tick;
        self.map.insert(key.to_vec(), Slot { dir, used });
        if self.map.len() > CAPACITY {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, slot)| slot.used)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            self.map.remove(&oldest);
        }
    }

    /// Overlay mode: caches `dir`, reached from the lexical path `key`
    /// through symlinks, valid while nothing is created at `deps`.
    pub(super) fn insert_alias(&mut self, key: &[u8], dir: Rc<CachedDir>, deps: Vec<RootedPath>) {
        self.deps.extend(deps.into_iter().map(|d| d.key().to_vec()));
        self.insert(key, dir);
    }

    /// Something of `kind` was removed at `at` (`None`: not known where).
    pub(super) fn removed(&mut self, at: Option<&RootedPath>, kind: FileType) {
        let structural = matches!(kind, FileType::Directory | FileType::Symlink);
        match at {
            None if structural => self.clear(),
            Some(at) if structural => {
                self.drop_under(at);
                self.drop_aliases();
            }
            _ => self.created(at),
        }
    }

    /// True if some cached entry depends on what is created where.
    pub(super) fn has_deps(&self) -> bool {
        !self.deps.is_empty()
    }

    /// Something was created at `at` (`None`: not known where).
    pub(super) fn created(&mut self, at: Option<&RootedPath>) {
        if self.deps.is_empty() {
            return;
        }
        if at.is_none_or(|at| self.deps.contains(at.key())) {
            self.drop_aliases();
        }
    }

    /// The directory at `at` (`None`: not known where) got an opaque marker,
    /// xattrs or an owner: what shows below it may differ, and what was
    /// learned about directories' attributes is forgotten.
    pub(super) fn attrs_changed(&mut self, at: Option<&RootedPath>) {
        match at {
            Some(at) => {
                self.drop_under(at);
                self.drop_aliases();
            }
            None => self.clear(),
        }
        for slot in self.map.values() {
            slot.dir.forget();
        }
        self.root.forget();
        self.root
            .lowers
            .set(self.has_lowers && !is_opaque(self.root.fd()));
    }

    /// Closes everything but the root.
    fn clear(&mut self) {
        self.map.clear();
        self.deps.clear();
    }

    fn drop_under(&mut self, at: &RootedPath) {
        self.map.retain(|_, slot| {
            slot.dir
                .resolved
                .as_ref()
                .is_some_and(|r| !r.starts_with(at))
        });
    }

    fn drop_aliases(&mut self) {
        self.map.retain(|key, slot| !is_alias(key, &slot.dir));
        self.deps.clear();
    }
}

/// The parent directory of an entry, open.
pub(super) struct Parent<'p> {
    pub(super) dir: Rc<CachedDir>,
    /// The parent's path as the entry named it.
    pub(super) lexical: RootedPath,
    /// The entry's final name.
    pub(super) name: &'p [u8],
}

impl Parent<'_> {
    /// The entry's path with the parent's symlinks resolved where known
    /// (always in overlay mode), else as named: the key its directory
    /// metadata is kept under until the end.
    pub(super) fn child_path(&self) -> RootedPath {
        self.dir.path_or(&self.lexical).join(self.name)
    }
}

/// `ENOENT` or `ENOTDIR`: the path is not there (as a directory).
pub(super) fn is_absent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == Errno::NOENT.raw_os_error() || c == Errno::NOTDIR.raw_os_error())
}

/// Refuses a directory path longer than a path syscall takes, as resolving
/// it whole did.
pub(super) fn check_length(dir: &RootedPath) -> Result<()> {
    if dir.key().len() > PATH_MAX {
        return Err(Error::io(
            dir.relative(),
            io::Error::from(Errno::NAMETOOLONG),
        ));
    }
    Ok(())
}

impl Applier<'_> {
    /// Opens the parent of `path` (creating missing directories) and returns
    /// it with the final name. `None` for the root itself.
    pub(super) fn parent_of<'p>(&mut self, path: &'p RootedPath) -> Result<Option<Parent<'p>>> {
        let Some((lexical, name)) = path.split_last() else {
            return Ok(None);
        };
        let dir = self.ensure_dir(&lexical)?;
        Ok(Some(Parent { dir, lexical, name }))
    }

    /// Opens the directory `dir` inside the root, creating it and any missing
    /// ancestor. Existing symlinks on the way are followed *inside the root*
    /// (a layer writing `lib/x` over an earlier `lib -> usr/lib` writes
    /// `usr/lib/x`, as docker does), never out of it. In overlay mode the
    /// walk goes through the merged view ([`Self::walk_merged`]), so a symlink
    /// or directory that only a lower layer has counts too.
    pub(super) fn ensure_dir(&mut self, dir: &RootedPath) -> Result<Rc<CachedDir>> {
        if self.overlay() {
            let found = self.walk_merged(dir, true)?.expect("created");
            return Ok(found.dir.expect("created in the upper"));
        }
        Ok(self.native_dir(dir, true)?.expect("created"))
    }

    /// Opens the directory `dir` inside the root (Delete mode, or any mode
    /// where the lowers do not matter), creating missing ones with `create`;
    /// without, a directory that is not there gives `None`.
    pub(super) fn native_dir(
        &mut self,
        dir: &RootedPath,
        create: bool,
    ) -> Result<Option<Rc<CachedDir>>> {
        check_length(dir)?;
        let (mut depth, mut current) = self.cache.longest_prefix(dir);
        let total = dir.depth();
        while depth < total {
            depth += 1;
            let next = dir.prefix(depth);
            let (_, name) = next.split_key().expect("not the root");
            let io_err = |e: io::Error| Error::io(next.relative(), e);
            let step = self
                .root
                .open_child(current.fd(), name, OFlags::RDONLY | OFlags::DIRECTORY);
            let opened = match step {
                Ok(fd) => {
                    CachedDir::new(fd, current.resolved.as_ref().map(|r| r.join(name)), false)
                }
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) && create => {
                    let fd = self.make_implicit_dir(&current, &next, name, None)?;
                    CachedDir::new(fd, current.resolved.as_ref().map(|r| r.join(name)), false)
                }
                Err(e) if !create && is_absent(&e) => return Ok(None),
                Err(e) if e.raw_os_error() == Some(Errno::ACCESS.raw_os_error()) => {
                    // Not readable by an unprivileged caller: an `O_PATH` fd
                    // still anchors `*at` calls.
                    let fd = self
                        .root
                        .open_child(current.fd(), name, OFlags::PATH | OFlags::DIRECTORY)
                        .map_err(io_err)?;
                    let mut dir =
                        CachedDir::new(fd, current.resolved.as_ref().map(|r| r.join(name)), false);
                    dir.readable = false;
                    dir
                }
                Err(e) if matches!(e.raw_os_error(), Some(c) if c == Errno::LOOP.raw_os_error() || c == Errno::NOTDIR.raw_os_error()) =>
                {
                    // A symlink (or a non-directory): the kernel resolves
                    // the path whole, inside the root.
                    match self.open_whole(&next) {
                        Ok(dir) => dir,
                        Err(e) if !create && is_absent(&e) => return Ok(None),
                        Err(e) => return Err(io_err(e)),
                    }
                }
                Err(e) => return Err(io_err(e)),
            };
            current = Rc::new(opened);
            self.cache.insert(next.key(), current.clone());
        }
        Ok(Some(current))
    }

    /// Opens the directory `path` by resolving it whole inside the root,
    /// readable if the caller may read it.
    fn open_whole(&mut self, path: &RootedPath) -> io::Result<CachedDir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        match self.root.open_in(path, flags) {
            Ok(fd) => Ok(CachedDir::new(fd, None, false)),
            Err(e) if e.raw_os_error() == Some(Errno::ACCESS.raw_os_error()) => {
                let fd = self.root.open_in(path, OFlags::PATH | OFlags::DIRECTORY)?;
                let mut dir = CachedDir::new(fd, None, false);
                dir.readable = false;
                Ok(dir)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes `name` in `parent` whatever it is (see [`fsops::remove_at`])
    /// and tells the cache.
    pub(super) fn remove(
        &mut self,
        parent: &CachedDir,
        name: &[u8],
        path: &RootedPath,
    ) -> Result<Option<FileType>> {
        self.remove_in(parent.fd(), parent.resolved.as_ref(), name, path)
    }

    /// [`Self::remove`] in a directory fd whose resolved path is `at`.
    pub(super) fn remove_in(
        &mut self,
        dir: BorrowedFd<'_>,
        at: Option<&RootedPath>,
        name: &[u8],
        path: &RootedPath,
    ) -> Result<Option<FileType>> {
        let kind = fsops::remove_at(dir, name).map_err(|e| Error::io(path.relative(), e))?;
        if let Some(kind) = kind {
            let removed = at.map(|at| at.join(name));
            self.cache.removed(removed.as_ref(), kind);
        }
        Ok(kind)
    }

    /// Tells the cache that `name` was created in `parent`, and records it
    /// for Delete mode's opaque whiteouts.
    pub(super) fn note_created(&mut self, parent: &CachedDir, name: &[u8]) -> Result<()> {
        if !self.overlay() {
            let st = parent.stat().map_err(|e| Error::io(name_path(name), e))?;
            self.created.insert(st.dev, st.ino, name);
        } else if self.cache.has_deps() {
            let at = parent.resolved.as_ref().map(|r| r.join(name));
            self.cache.created(at.as_ref());
        }
        Ok(())
    }
}

/// A final name as a path, for messages.
fn name_path(name: &[u8]) -> std::path::PathBuf {
    crate::name::component_path(name).to_path_buf()
}
