//! Creation: regular files, directories, symlinks, hardlinks, device nodes
//! and fifos, each made by an `*at` syscall on its parent's fd that never
//! follows the final name, then given its owner, xattrs, mode and times;
//! and, after the last entry, the directories' own modes and times.
//!
//! Each attribute costs a syscall only when creation did not already give
//! it: a new file belongs to the caller (and to the directory's group under
//! a setgid directory), so `chown` is skipped when the tar names that owner;
//! and a mode the umask leaves alone is given at creation, unless it has
//! setuid, setgid or sticky bits (`chown` would clear them, creation may
//! drop them), the file has xattrs (`user.*` needs the file writable until
//! they are set) or the directory has a default ACL (which replaces the
//! umask). Metadata goes on the new file's own fd where there is one.

use std::cmp::Reverse;
use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::fsops::{self, XattrTarget, file_type, lstat_at, plain};
use crate::lowers::Found;
use crate::name::RootedPath;

use super::dircache::{CachedDir, Parent, is_absent};
use super::entry::{Meta, Time};
use super::files::{Job, SharedData};
use super::whiteout::set_opaque;
use super::{Applier, label};

/// Who creates files, and what the umask takes from their modes.
pub(super) struct Ids {
    euid: u32,
    egid: u32,
    /// `None` if it could not be read: every mode is then set explicitly.
    umask: Option<u32>,
}

impl Ids {
    pub(super) fn of_process() -> Self {
        Self {
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
            umask: read_umask(),
        }
    }
}

/// The umask. No syscall reads it without setting it, and setting it even
/// briefly would change the modes of files other threads create; the kernel
/// shows it in `status` (Linux 4.7 and later).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .or_else(|_| std::fs::read_to_string("/proc/self/status"))
        .ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(value.trim(), 8).ok()
}

/// Metadata applied to a directory at the end.
#[derive(Clone, Debug)]
pub(super) struct DirMeta {
    /// `None` when creation already gave the mode.
    mode: Option<u32>,
    times: Option<Timestamps>,
}

impl Applier<'_> {
    /// The owner a new entry in `parent` gets without `chown`.
    fn owner_of_new(&self, parent: &CachedDir) -> io::Result<(u32, u32)> {
        let st = parent.stat()?;
        let gid = if st.setgid() { st.gid } else { self.ids.egid };
        Ok((self.ids.euid, gid))
    }

    /// True if the owner `meta` asks for must be set on a new entry.
    fn needs_chown(&self, parent: &CachedDir, meta: &Meta) -> io::Result<bool> {
        Ok(self.options.same_owner && self.owner_of_new(parent)? != (meta.uid, meta.gid))
    }

    /// The permission bits to create a node in `parent` with so that it
    /// ends up with exactly `mode`; `None` if creation cannot promise that.
    fn exact_mode(&self, parent: &CachedDir, mode: u32) -> Option<u32> {
        let umask = self.ids.umask?;
        (mode & 0o7000 == 0 && mode & umask == 0 && !parent.default_acl()).then_some(mode)
    }

    /// [`Self::exact_mode`] for a directory, which must also stay writable
    /// by its owner until the end (for an unprivileged run to fill it) and
    /// not sit in a setgid directory (which makes it setgid too).
    fn exact_dir_mode(&self, parent: &CachedDir, mode: u32) -> io::Result<Option<u32>> {
        if mode & 0o700 != 0o700 {
            return Ok(None);
        }
        let Some(mode) = self.exact_mode(parent, mode) else {
            return Ok(None);
        };
        Ok((!parent.stat()?.setgid()).then_some(mode))
    }

    /// Runs `make`, a creating `*at` call on the parent's fd; if the name is
    /// taken, removes whatever is there and runs it again. An existing file
    /// is unlinked rather than written through: it may be a hardlink shared
    /// with a lower layer, or a symlink.
    fn make_at<T>(
        &mut self,
        parent: &Parent<'_>,
        path: &RootedPath,
        make: impl Fn(BorrowedFd<'_>) -> rustix::io::Result<T>,
    ) -> Result<rustix::io::Result<T>> {
        match make(parent.dir.fd()) {
            Err(Errno::EXIST) => {
                self.remove(&parent.dir, parent.name, path)?;
                Ok(make(parent.dir.fd()))
            }
            other => Ok(other),
        }
    }

    fn set_xattrs(
        &self,
        target: &XattrTarget<'_>,
        meta: &Meta,
        path: &RootedPath,
        raw: &[u8],
    ) -> Result<()> {
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        let label = label(raw);
        for (k, v) in &meta.xattrs {
            fsops::set_xattr(target, k, v, &label).map_err(|e| Error::io(path.relative(), e))?;
        }
        Ok(())
    }

    pub(super) fn directory(&mut self, path: &RootedPath, meta: &Meta, raw: &[u8]) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let Some(parent) = self.parent_of(path)? else {
            // An entry naming the root (`.`, `/`) only updates its metadata;
            // the root itself is never replaced or removed.
            let root = self.cache.root();
            let mut changed = !meta.xattrs.is_empty();
            if self.options.same_owner {
                let st = root.stat().map_err(io_err)?;
                if (st.uid, st.gid) != (meta.uid, meta.gid) {
                    fchown(root.fd(), meta).map_err(io_err)?;
                    changed = true;
                }
            }
            self.set_xattrs(&XattrTarget::Fd(root.fd()), meta, path, raw)?;
            if changed {
                self.cache.attrs_changed(Some(&RootedPath::default()));
            }
            self.defer_dir(path, meta, true);
            return Ok(());
        };
        let name = parent.name;
        let resolved = parent.child_path();
        // Where the cache knows it, for telling it what changed.
        let known = parent.dir.resolved().map(|r| r.join(name));
        let exact = self
            .exact_dir_mode(&parent.dir, meta.mode)
            .map_err(io_err)?;
        // Owner-writable until the end unless created with its final mode,
        // so that an unprivileged run can fill a directory whose final mode
        // is read-only.
        let mkdir = |dir: BorrowedFd<'_>| {
            rustix::fs::mkdirat(
                dir,
                plain(name).map_err(|_| Errno::INVAL)?,
                Mode::from_raw_mode(exact.unwrap_or(0o700)),
            )
        };
        let (made, replaced, existing) = match mkdir(parent.dir.fd()) {
            Ok(()) => (true, false, None),
            Err(Errno::EXIST) => match lstat_at(parent.dir.fd(), name).map_err(io_err)? {
                // A directory over a directory keeps it (and what lower
                // layers put in it) and only updates its metadata.
                Some(st) if file_type(&st) == FileType::Directory => (false, false, Some(st)),
                other => {
                    if other.is_some() {
                        self.remove(&parent.dir, name, path)?;
                    }
                    mkdir(parent.dir.fd()).map_err(|e| io_err(e.into()))?;
                    (true, other.is_some(), None)
                }
            },
            Err(e) => return Err(io_err(e.into())),
        };
        // Overlay: the upper starts empty, so anything this directory
        // replaced there (a whiteout, a file, a symlink) was put by this
        // layer, which so deleted whatever the lowers have at this path. If
        // that is a directory, overlay would merge it back under the new one
        // unless the new one is opaque. (An upper directory over a lower
        // non-directory hides it anyway.)
        let opaque = replaced && self.lower_is_dir(parent.dir.lowers(), &resolved)?;
        self.note_created(&parent.dir, name)?;
        if self.options.same_owner {
            let owned = match &existing {
                Some(st) => (st.st_uid, st.st_gid) == (meta.uid, meta.gid),
                None => !self.needs_chown(&parent.dir, meta).map_err(io_err)?,
            };
            if !owned {
                fsops::chown_at(parent.dir.fd(), name, meta.uid, meta.gid).map_err(io_err)?;
                if existing.is_some() {
                    // It may be open in the cache, which knows its group.
                    self.cache.attrs_changed(known.as_ref());
                }
            }
        }
        if opaque || !meta.xattrs.is_empty() {
            let dir = self
                .root
                .open_child(parent.dir.fd(), name, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(io_err)?;
            if opaque {
                set_opaque(dir.as_fd()).map_err(io_err)?;
            }
            self.set_xattrs(&XattrTarget::Fd(dir.as_fd()), meta, path, raw)?;
            if existing.is_some() {
                // An opaque marker, a default ACL: what was learned about
                // it while it was open may have changed. (A new directory
                // was not open yet.)
                self.cache.attrs_changed(known.as_ref());
            }
        }
        // Keyed by the resolved path: `finish_dirs` finds it there even when
        // the entry's name went through a lower layer's symlink.
        self.defer_dir(&resolved, meta, !(made && exact.is_some()));
        Ok(())
    }

    fn defer_dir(&mut self, path: &RootedPath, meta: &Meta, set_mode: bool) {
        self.dirs.insert(
            path.clone(),
            DirMeta {
                mode: set_mode.then_some(meta.mode),
                times: Some(meta.mtime.timestamps()),
            },
        );
    }

    /// Creates a directory the tar did not list and returns it opened
    /// readable: mode 0755 as docker does, or, given the same directory in a
    /// lower layer (overlay mode), with its owner, mode, times and xattrs (an
    /// upper directory's attributes hide the lower one's in the merged view,
    /// so defaults would change it).
    pub(super) fn make_implicit_dir(
        &mut self,
        parent: &CachedDir,
        path: &RootedPath,
        name: &[u8],
        lower: Option<&Found>,
    ) -> Result<OwnedFd> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let exact = match lower {
            None => self.exact_dir_mode(parent, 0o755).map_err(io_err)?,
            Some(_) => None,
        };
        rustix::fs::mkdirat(
            parent.fd(),
            plain(name).map_err(io_err)?,
            Mode::from_raw_mode(exact.unwrap_or(0o700)),
        )
        .map_err(|e| io_err(e.into()))?;
        self.note_created(parent, name)?;
        let dir = self
            .root
            .open_child(parent.fd(), name, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(io_err)?;
        match lower {
            Some(found) => {
                let lower_dir = fsops::open_dir_nofollow(found.parent.as_fd(), name)
                    .map_err(|e| Error::io(&found.lower, e))?;
                let owner = (found.stat.st_uid, found.stat.st_gid);
                if self.options.same_owner && self.owner_of_new(parent).map_err(io_err)? != owner {
                    rustix::fs::fchown(
                        &dir,
                        Some(rustix::fs::Uid::from_raw(owner.0)),
                        Some(rustix::fs::Gid::from_raw(owner.1)),
                    )
                    .map_err(|e| io_err(e.into()))?;
                }
                let label = String::from_utf8_lossy(path.key()).into_owned();
                for (k, v) in
                    fsops::get_xattrs(lower_dir.as_fd()).map_err(|e| Error::io(&found.lower, e))?
                {
                    fsops::set_xattr(&XattrTarget::Fd(dir.as_fd()), &k, &v, &label)
                        .map_err(io_err)?;
                }
                self.dirs.insert(
                    path.clone(),
                    DirMeta {
                        mode: Some(found.stat.st_mode & 0o7777),
                        times: Some(Time::of_stat(&found.stat)),
                    },
                );
            }
            None if exact.is_none() => {
                // mkdirat's mode is cut by the umask; set 0755 exactly.
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o755))
                    .map_err(|e| io_err(e.into()))?;
            }
            None => {}
        }
        Ok(dir)
    }

    /// Creates a regular file; `data` hands its data, chunk by chunk, to the
    /// writer it is given.
    pub(super) fn regular(
        &mut self,
        path: &RootedPath,
        meta: &Meta,
        raw: &[u8],
        data: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let Some(parent) = self.parent_of(path)? else {
            self.skip(raw, "a file cannot replace the root");
            return Ok(());
        };
        let exact = if meta.xattrs.is_empty() {
            self.exact_mode(&parent.dir, meta.mode)
        } else {
            None
        };
        let name = parent.name;
        let mut file = File::from(self.create_file(&parent, path, exact)?);
        data(&mut |chunk| file.write_all(chunk).map_err(io_err))?;
        if self.needs_chown(&parent.dir, meta).map_err(io_err)? {
            fchown(file.as_fd(), meta).map_err(io_err)?;
        }
        self.set_xattrs(&XattrTarget::Fd(file.as_fd()), meta, path, raw)?;
        if exact.is_none() {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
                .map_err(|e| io_err(e.into()))?;
        }
        rustix::fs::futimens(&file, &meta.mtime.timestamps()).map_err(|e| io_err(e.into()))?;
        drop(file);
        self.note_created(&parent.dir, name)
    }

    /// Creates the regular file `parent.name` for writing, with the mode
    /// `exact` (else 0600 until its mode is set). `O_EXCL`: the name is new,
    /// so nothing (a symlink planted earlier, a hardlink into a lower layer)
    /// can be written through.
    fn create_file(
        &mut self,
        parent: &Parent<'_>,
        path: &RootedPath,
        exact: Option<u32>,
    ) -> Result<OwnedFd> {
        let name = parent.name;
        self.make_at(parent, path, |dir| {
            rustix::fs::openat(
                dir,
                plain(name).map_err(|_| Errno::INVAL)?,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(exact.unwrap_or(0o600)),
            )
        })?
        .map_err(|e| Error::io(path.relative(), io::Error::from(e)))
    }

    /// [`Self::regular`] for a file whose data is in a batch: the file is
    /// created here, and its data and attributes are finished on the files
    /// thread.
    pub(super) fn regular_deferred(
        &mut self,
        path: RootedPath,
        meta: &Meta,
        raw: &[u8],
        data: &SharedData,
        range: Range<usize>,
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let Some(parent) = self.parent_of(&path)? else {
            self.skip(raw, "a file cannot replace the root");
            return Ok(());
        };
        let exact = self.exact_mode(&parent.dir, meta.mode);
        let name = parent.name;
        let file = self.create_file(&parent, &path, exact)?;
        let owner = self
            .needs_chown(&parent.dir, meta)
            .map_err(io_err)?
            .then_some((meta.uid, meta.gid));
        self.note_created(&parent.dir, name)?;
        let job = Job {
            index: self.entries,
            path,
            file,
            data: data.clone(),
            range,
            owner,
            mode: exact.is_none().then_some(meta.mode),
            times: meta.mtime.timestamps(),
        };
        self.files.push(job).map_err(|(_, error)| error)
    }

    pub(super) fn symlink(
        &mut self,
        path: &RootedPath,
        target: &[u8],
        meta: &Meta,
        raw: &[u8],
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        if target.contains(&0) {
            return Err(Error::malformed(format!(
                "symlink {}: target contains a NUL byte",
                label(raw)
            )));
        }
        let Some(parent) = self.parent_of(path)? else {
            self.skip(raw, "a symlink cannot replace the root");
            return Ok(());
        };
        let name = parent.name;
        // The target is stored verbatim: a symlink may point anywhere, and it
        // only matters when followed, which every later resolution does
        // inside the root.
        self.make_at(&parent, path, |dir| {
            rustix::fs::symlinkat(
                std::ffi::OsStr::from_bytes(target),
                dir,
                plain(name).map_err(|_| Errno::INVAL)?,
            )
        })?
        .map_err(|e| io_err(e.into()))?;
        let dir = parent.dir.fd();
        if self.needs_chown(&parent.dir, meta).map_err(io_err)? {
            fsops::chown_at(dir, name, meta.uid, meta.gid).map_err(io_err)?;
        }
        self.set_xattrs(&XattrTarget::NoFollow(dir, name), meta, path, raw)?;
        fsops::utimes_at(dir, name, &meta.mtime.timestamps()).map_err(io_err)?;
        self.note_created(&parent.dir, name)
    }

    pub(super) fn hardlink(&mut self, path: &RootedPath, target: &[u8], raw: &[u8]) -> Result<()> {
        let target = RootedPath::parse(target)?;
        let Some((target_parent, target_name)) = target.split_last() else {
            return Err(Error::malformed(format!(
                "hardlink {} points at the root",
                label(raw)
            )));
        };
        if path.is_root() {
            self.skip(raw, "a hardlink cannot replace the root");
            return Ok(());
        }
        if target == *path {
            // A link to itself: nothing to do (removing it first would lose it).
            return Ok(());
        }
        let target_err = |e: io::Error| Error::io(target.relative(), e);
        // The target is resolved inside the root like any name, so `../x`
        // and `/etc/passwd` name files of this tree, never the host's.
        // In overlay mode it is looked up in the merged view (copied up from
        // a lower layer if only one has it).
        let (source, source_stat) = if self.overlay() {
            match self.find_merged(&target_parent, target_name)? {
                Some((dir, st)) => (dir, Some(st)),
                None => return Err(target_err(Errno::NOENT.into())),
            }
        } else {
            match self.native_dir(&target_parent, false)? {
                Some(dir) => (dir, None),
                None => return Err(target_err(Errno::NOENT.into())),
            }
        };
        let points_at_dir =
            || Error::malformed(format!("hardlink {} points at a directory", label(raw)));
        if source_stat
            .as_ref()
            .is_some_and(|st| file_type(st) == FileType::Directory)
        {
            return Err(points_at_dir());
        }
        let parent = self.parent_of(path)?.expect("not the root");
        let name = parent.name;
        // Flags 0: a symlink target is linked itself, never followed.
        let link = |dir: BorrowedFd<'_>| {
            rustix::fs::linkat(
                source.fd(),
                plain(target_name).map_err(|_| Errno::INVAL)?,
                dir,
                plain(name).map_err(|_| Errno::INVAL)?,
                AtFlags::empty(),
            )
        };
        let mut result = link(parent.dir.fd());
        if result == Err(Errno::EXIST) {
            let existing =
                lstat_at(parent.dir.fd(), name).map_err(|e| Error::io(path.relative(), e))?;
            let source_stat = match source_stat {
                Some(st) => Some(st),
                None => lstat_at(source.fd(), target_name).map_err(target_err)?,
            };
            if let (Some(a), Some(b)) = (&existing, &source_stat)
                && (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
            {
                return Ok(());
            }
            self.remove(&parent.dir, name, path)?;
            result = link(parent.dir.fd());
        }
        match result {
            Ok(()) => {}
            Err(Errno::NOENT) => return Err(target_err(Errno::NOENT.into())),
            // Linking a directory is refused with EPERM.
            Err(Errno::PERM)
                if lstat_at(source.fd(), target_name)
                    .ok()
                    .flatten()
                    .is_some_and(|st| file_type(&st) == FileType::Directory) =>
            {
                return Err(points_at_dir());
            }
            Err(e) => return Err(Error::io(path.relative(), io::Error::from(e))),
        }
        self.note_created(&parent.dir, name)
    }

    pub(super) fn special(
        &mut self,
        path: &RootedPath,
        kind: FileType,
        dev: Result<rustix::fs::Dev>,
        meta: &Meta,
        raw: &[u8],
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let device = matches!(kind, FileType::CharacterDevice | FileType::BlockDevice);
        if device && !self.tuning.can_mknod {
            // Rootless tools (rootless podman, buildah) skip device nodes the
            // same way: an unprivileged user cannot create them.
            self.skip(raw, "device nodes need privileges");
            return Ok(());
        }
        let dev = dev?;
        let Some(parent) = self.parent_of(path)? else {
            self.skip(raw, "a special file cannot replace the root");
            return Ok(());
        };
        let name = parent.name;
        let exact = self.exact_mode(&parent.dir, meta.mode);
        let made = self.make_at(&parent, path, |dir| {
            rustix::fs::mknodat(
                dir,
                plain(name).map_err(|_| Errno::INVAL)?,
                kind,
                Mode::from_raw_mode(exact.unwrap_or(meta.mode & 0o777)),
                dev,
            )
        })?;
        match made {
            Ok(()) => {}
            // Root in a user namespace has no CAP_MKNOD over the host's devices.
            Err(Errno::PERM) if device => {
                self.skip(raw, "device node creation not permitted");
                return Ok(());
            }
            Err(e) => return Err(io_err(e.into())),
        }
        let dir = parent.dir.fd();
        if self.needs_chown(&parent.dir, meta).map_err(io_err)? {
            fsops::chown_at(dir, name, meta.uid, meta.gid).map_err(io_err)?;
        }
        if exact.is_none() {
            let node = fsops::open_path_nofollow(dir, name).map_err(io_err)?;
            fsops::chmod_opath(node.as_fd(), meta.mode).map_err(io_err)?;
        }
        self.set_xattrs(&XattrTarget::NoFollow(dir, name), meta, path, raw)?;
        fsops::utimes_at(dir, name, &meta.mtime.timestamps()).map_err(io_err)?;
        self.note_created(&parent.dir, name)
    }

    /// Applies directory modes and times, deepest first so that setting a
    /// child's metadata does not disturb its parent's mtime.
    pub(super) fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs: Vec<(RootedPath, DirMeta)> = self.dirs.drain().collect();
        dirs.sort_by_cached_key(|(path, _)| Reverse(path.depth()));
        for (path, meta) in dirs {
            if meta.mode.is_none() && meta.times.is_none() {
                continue;
            }
            let io_err = |e: io::Error| Error::io(path.relative(), e);
            let cached = self
                .cache
                .get_exact(path.key())
                .filter(|dir| dir.readable());
            let opened;
            let fd = match &cached {
                Some(dir) => dir.fd(),
                None => {
                    // O_NOFOLLOW: if a later entry replaced the directory
                    // with a symlink, its metadata is not applied through
                    // that symlink.
                    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
                    opened = match self.root.open_in(&path, flags) {
                        Ok(fd) => fd,
                        Err(e)
                            if is_absent(&e)
                                || e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) =>
                        {
                            continue;
                        }
                        Err(e) => return Err(io_err(e)),
                    };
                    opened.as_fd()
                }
            };
            if let Some(mode) = meta.mode {
                rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(|e| io_err(e.into()))?;
            }
            if let Some(times) = &meta.times {
                rustix::fs::futimens(fd, times).map_err(|e| io_err(e.into()))?;
            }
        }
        Ok(())
    }
}

fn fchown(fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
    Ok(rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(meta.uid)),
        Some(rustix::fs::Gid::from_raw(meta.gid)),
    )?)
}
