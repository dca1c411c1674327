//! The native snapshotter's tree copy ([`copy_tree`]): a parent's whole tree
//! into a new snapshot, in process and on a few threads, keeping everything
//! `cp -a` keeps.
//!
//! Threads share a stack of jobs: "list this directory" and "copy these
//! entries of an open directory" (a big directory is cut into batches so a
//! flat tree still spreads over every thread). Each directory counts its
//! unfinished work (its own listing, its batches, its subdirectories); the
//! thread that brings the count to zero sets the directory's owner, xattrs,
//! mode and times, then counts it off its parent, so a directory's times are
//! set after everything inside it was written and nothing writes into it
//! after its mode is final (a read-only directory is filled while still
//! `0700`).
//!
//! Entries are created and read with `*at` calls on directory fds and never
//! followed: directories are opened `O_NOFOLLOW`, files `O_NOFOLLOW`, and
//! symlinks are read with `readlinkat` and changed with `AT_SYMLINK_NOFOLLOW`.
//! Queued directories are reopened by their path relative to the two roots
//! rather than kept open, so a wide tree cannot exhaust file descriptors; this
//! relies on the source being a committed snapshot (immutable) and the
//! destination being new, both private to the snapshotter.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// At most this many threads copy, however many CPUs there are: past that
/// the copy waits on the file system, not on system calls.
const MAX_THREADS: usize = 8;

/// Non-directory entries per job: small enough that a directory of
/// thousands of files spreads over every thread, large enough that the queue
/// is not the bottleneck.
const BATCH: usize = 256;

/// Bytes per `read`/`write` when the kernel cannot copy between the files.
const BUFFER: usize = 256 * 1024;

/// Copies the contents of `src` into the existing directory `dst`, and
/// `src`'s own owner, mode, xattrs and times onto `dst`, like
/// `cp -a --reflink=auto src/. dst`: file types (directories, regular files,
/// symlinks, fifos, devices, sockets), owners, modes with setuid, setgid and
/// sticky, atime and mtime to the nanosecond, every xattr (the caller sees
/// `trusted.*` only as root), and hardlinks within the tree. File data is
/// cloned (`FICLONE`) where the file system shares extents, else copied in
/// the kernel (`copy_file_range`), else read and written.
///
/// As with `cp -a`, an owner that cannot be kept (not root) is left as the
/// caller's, and then setuid and setgid are dropped; anything else that
/// cannot be copied is an error, and `dst` is left partly filled.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let open_dir = |path: &Path| {
        rustix::fs::openat(CWD, path, dir_flags(), Mode::empty()).map_err(Error::io(path))
    };
    let src_root = open_dir(src)?;
    let dst_root = open_dir(dst)?;
    let root_meta = Meta::from(rustix::fs::fstat(&src_root).map_err(Error::io(src))?);
    let dst_stat = rustix::fs::fstat(&dst_root).map_err(Error::io(dst))?;
    let egid = rustix::process::getegid();
    let copier = Copier {
        src: src.to_path_buf(),
        dst: dst.to_path_buf(),
        src_root,
        dst_root,
        euid: rustix::process::geteuid(),
        egid,
        // A setgid root, or one of another group on a file system mounted
        // `grpid`, gives what is created under it its own group.
        new_get_egid: dst_stat.st_gid == egid.as_raw() && dst_stat.st_mode & 0o2000 == 0,
        queue: Mutex::new(Queue {
            jobs: Vec::new(),
            busy: 0,
        }),
        wake: Condvar::new(),
        links: Mutex::new(HashMap::new()),
        reflink: AtomicBool::new(true),
        copy_range: AtomicBool::new(true),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let root = Arc::new(Node {
        rel: PathBuf::from("."),
        meta: root_meta,
        pending: AtomicUsize::new(1),
        parent: None,
    });
    copier.push(vec![Job::List(root)]);
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_THREADS);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| copier.work());
        }
        copier.work();
    });
    match lock(&copier.error).take() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking copier thread fails the whole copy through the scope; the
    // data behind the lock is still consistent for the others to finish.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the copy needs of an entry's `lstat`.
#[derive(Clone, Copy, Debug)]
struct Meta {
    kind: FileType,
    /// Permission bits with setuid, setgid and sticky.
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
    nlink: u64,
    dev: u64,
    ino: u64,
    atime: (i64, i64),
    mtime: (i64, i64),
}

impl From<Stat> for Meta {
    #[allow(
        clippy::unnecessary_cast,
        clippy::useless_conversion,
        reason = "struct stat's field types differ between architectures"
    )]
    fn from(st: Stat) -> Meta {
        Meta {
            kind: FileType::from_raw_mode(st.st_mode as _),
            mode: st.st_mode as u32 & 0o7777,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            rdev: st.st_rdev as u64,
            size: st.st_size as u64,
            nlink: st.st_nlink as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            atime: (st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        }
    }
}

impl Meta {
    fn timestamps(&self) -> Timestamps {
        let spec = |(tv_sec, tv_nsec): (i64, i64)| Timespec {
            tv_sec: tv_sec as _,
            tv_nsec: tv_nsec as _,
        };
        Timestamps {
            last_access: spec(self.atime),
            last_modification: spec(self.mtime),
        }
    }
}

/// A directory being copied.
struct Node {
    /// Its path relative to both roots (`.` for the roots).
    rel: PathBuf,
    meta: Meta,
    /// Its listing, its batches not yet copied and its subdirectories not
    /// yet finished; at zero its own metadata is set.
    pending: AtomicUsize,
    parent: Option<Arc<Node>>,
}

/// A directory open on both sides, shared by the batches of its entries.
struct Open {
    node: Arc<Node>,
    src: OwnedFd,
    dst: OwnedFd,
}

/// A non-directory entry to copy.
struct Child {
    name: CString,
    meta: Meta,
}

enum Job {
    /// Create the subdirectories of this directory and copy its entries.
    List(Arc<Node>),
    /// Copy these entries of an open directory.
    Entries(Arc<Open>, Vec<Child>),
}

struct Queue {
    /// Used as a stack: depth first keeps few directories in flight.
    jobs: Vec<Job>,
    /// Jobs taken and not yet done; with an empty stack at zero, the copy is
    /// over.
    busy: usize,
}

/// The first copy of an inode with several links in the tree: its path
/// under the destination root once it is there, `None` while it is being
/// copied (its lock held) or if that failed.
type LinkSlot = Arc<Mutex<Option<PathBuf>>>;

/// Per-thread buffers.
#[derive(Default)]
struct Scratch {
    names: Vec<u8>,
    value: Vec<u8>,
    data: Vec<u8>,
}

struct Copier {
    src: PathBuf,
    dst: PathBuf,
    src_root: OwnedFd,
    dst_root: OwnedFd,
    euid: Uid,
    egid: Gid,
    /// Whether what this copy creates has our egid as its group: every
    /// directory it makes is `0700`, not setgid, until its contents are
    /// copied, so that depends on the destination root alone.
    new_get_egid: bool,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// `(st_dev, st_ino)` of sources with `st_nlink > 1` → their first copy.
    links: Mutex<HashMap<(u64, u64), LinkSlot>>,
    /// Cleared once `FICLONE` says this file system cannot share extents.
    reflink: AtomicBool,
    /// Cleared once `copy_file_range` says it cannot copy here.
    copy_range: AtomicBool,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Copier {
    fn push(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let n = jobs.len();
        lock(&self.queue).jobs.extend(jobs);
        if n == 1 {
            self.wake.notify_one();
        } else {
            self.wake.notify_all();
        }
    }

    /// One thread's loop: take a job, do it, until the stack is empty and
    /// no thread is busy (no job can appear any more) or a job failed.
    fn work(&self) {
        let mut scratch = Scratch::default();
        loop {
            let job = {
                let mut queue = lock(&self.queue);
                loop {
                    if self.failed.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(job) = queue.jobs.pop() {
                        queue.busy += 1;
                        break job;
                    }
                    if queue.busy == 0 {
                        self.wake.notify_all();
                        return;
                    }
                    queue = self
                        .wake
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            let result = match job {
                Job::List(node) => self.list(node, &mut scratch),
                Job::Entries(open, children) => self.entries(&open, &children, &mut scratch),
            };
            if let Err(error) = result {
                lock(&self.error).get_or_insert(error);
                self.failed.store(true, Ordering::Relaxed);
            }
            let mut queue = lock(&self.queue);
            queue.busy -= 1;
            if self.failed.load(Ordering::Relaxed) || (queue.busy == 0 && queue.jobs.is_empty()) {
                self.wake.notify_all();
            }
        }
    }

    fn src_path(&self, rel: &Path, name: &CStr) -> PathBuf {
        join(&self.src, rel, name)
    }

    fn dst_path(&self, rel: &Path, name: &CStr) -> PathBuf {
        join(&self.dst, rel, name)
    }

    /// Opens directory `rel` on both sides.
    fn open(&self, node: &Arc<Node>) -> Result<Open> {
        let open = |root: &OwnedFd, base: &Path| {
            rustix::fs::openat(root, &node.rel, dir_flags(), Mode::empty())
                .map_err(Error::io(base.join(&node.rel)))
        };
        Ok(Open {
            node: Arc::clone(node),
            src: open(&self.src_root, &self.src)?,
            dst: open(&self.dst_root, &self.dst)?,
        })
    }

    /// Reads directory `node`, creates its subdirectories (queued for
    /// listing), and copies its other entries, in batches when many.
    fn list(&self, node: Arc<Node>, scratch: &mut Scratch) -> Result<()> {
        let open = self.open(&node)?;
        let src_dir = self.src.join(&node.rel);
        let mut names = Vec::new();
        let mut dir = Dir::read_from(&open.src).map_err(Error::io(&src_dir))?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(Error::io(&src_dir))?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        drop(dir);

        let mut subdirs = Vec::new();
        let mut children = Vec::new();
        for name in names {
            let meta = rustix::fs::statat(&open.src, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Error::io(self.src_path(&node.rel, &name))(e))?;
            let meta = Meta::from(meta);
            if meta.kind == FileType::Directory {
                // Owner-only until its metadata is set, so this copy can fill
                // it whatever its final mode.
                rustix::fs::mkdirat(&open.dst, &name, Mode::RWXU)
                    .map_err(|e| Error::io(self.dst_path(&node.rel, &name))(e))?;
                subdirs.push(Job::List(Arc::new(Node {
                    rel: child_rel(&node.rel, &name),
                    meta,
                    pending: AtomicUsize::new(1),
                    parent: Some(Arc::clone(&node)),
                })));
            } else {
                children.push(Child { name, meta });
            }
        }

        let open = Arc::new(open);
        let mut batches = Vec::new();
        while children.len() > BATCH {
            let rest = children.split_off(BATCH);
            batches.push(Job::Entries(Arc::clone(&open), children));
            children = rest;
        }
        node.pending
            .fetch_add(subdirs.len() + batches.len(), Ordering::Relaxed);
        self.push(subdirs);
        self.push(batches);
        let inline = self.copy_children(&open, &children, scratch);
        drop(open);
        inline?;
        self.done(&node, scratch)
    }

    fn entries(&self, open: &Arc<Open>, children: &[Child], scratch: &mut Scratch) -> Result<()> {
        self.copy_children(open, children, scratch)?;
        self.done(&open.node, scratch)
    }

    fn copy_children(&self, open: &Open, children: &[Child], scratch: &mut Scratch) -> Result<()> {
        for child in children {
            if self.failed.load(Ordering::Relaxed) {
                // Another thread failed; its error is the one reported.
                return Ok(());
            }
            self.copy_linked(open, child, scratch)?;
        }
        Ok(())
    }

    /// Counts one piece of `node`'s work done; when it was the last, sets
    /// the directory's metadata and counts it off its parent, and so on up.
    fn done(&self, node: &Arc<Node>, scratch: &mut Scratch) -> Result<()> {
        let mut node = Arc::clone(node);
        loop {
            if self.failed.load(Ordering::Relaxed) {
                // The copy is abandoned: no directory needs finishing.
                return Ok(());
            }
            if node.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
                return Ok(());
            }
            self.finish_dir(&node, scratch)?;
            match &node.parent {
                Some(parent) => node = Arc::clone(parent),
                None => return Ok(()),
            }
        }
    }

    /// Sets directory `node`'s owner, xattrs, mode and times, its contents
    /// being complete.
    fn finish_dir(&self, node: &Node, scratch: &mut Scratch) -> Result<()> {
        let src = rustix::fs::openat(&self.src_root, &node.rel, dir_flags(), Mode::empty())
            .map_err(Error::io(self.src.join(&node.rel)))?;
        let dst = rustix::fs::openat(&self.dst_root, &node.rel, dir_flags(), Mode::empty())
            .map_err(Error::io(self.dst.join(&node.rel)))?;
        let at = self.dst.join(&node.rel);
        let mode = self.chown_fd(&dst, &node.meta).map_err(Error::io(&at))?;
        copy_xattrs_fd(&src, &dst, scratch).map_err(Error::io(&at))?;
        rustix::fs::fchmod(&dst, Mode::from_raw_mode(mode as _)).map_err(Error::io(&at))?;
        rustix::fs::futimens(&dst, &node.meta.timestamps()).map_err(Error::io(&at))
    }

    /// Copies one non-directory entry, as a hardlink to an earlier copy of
    /// its inode when there is one.
    fn copy_linked(&self, open: &Open, child: &Child, scratch: &mut Scratch) -> Result<()> {
        if child.meta.nlink < 2 {
            return self.copy_entry(open, child, scratch);
        }
        let slot = Arc::clone(
            lock(&self.links)
                .entry((child.meta.dev, child.meta.ino))
                .or_default(),
        );
        // Whichever thread takes the slot first while it is empty copies the
        // inode (holding the slot, so the others wait for it); the others
        // link to that copy. Copying one file waits on nothing else, so
        // this cannot deadlock.
        let mut copied = lock(&slot);
        let rel = child_rel(&open.node.rel, &child.name);
        match copied.as_deref() {
            Some(existing) => rustix::fs::linkat(
                &self.dst_root,
                existing,
                &open.dst,
                &child.name,
                AtFlags::empty(),
            )
            .map_err(Error::io(self.dst.join(&rel))),
            None => {
                self.copy_entry(open, child, scratch)?;
                *copied = Some(rel);
                Ok(())
            }
        }
    }

    /// Creates the copy of one non-directory entry with its metadata.
    fn copy_entry(&self, open: &Open, child: &Child, scratch: &mut Scratch) -> Result<()> {
        let rel = &open.node.rel;
        let name = child.name.as_c_str();
        let meta = &child.meta;
        let dst_err = |e: Errno| Error::io(self.dst_path(rel, name))(e);
        match meta.kind {
            FileType::RegularFile => {
                let src = File::from(
                    rustix::fs::openat(
                        &open.src,
                        name,
                        // O_NONBLOCK: were the entry swapped for a fifo, the
                        // open fails instead of waiting for a writer.
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| Error::io(self.src_path(rel, name))(e))?,
                );
                let dst = File::from(
                    rustix::fs::openat(
                        &open.dst,
                        name,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                        Mode::RUSR | Mode::WUSR,
                    )
                    .map_err(dst_err)?,
                );
                let at = || self.dst_path(rel, name);
                if meta.size > 0 {
                    self.copy_data(&src, &dst, meta.size, scratch)
                        .map_err(|e| Error::io(at())(e))?;
                }
                // chown before the xattrs (it drops security.capability)
                // and before chmod (it drops setuid and setgid).
                let mode = self.chown_fd(&dst, meta).map_err(dst_err)?;
                copy_xattrs_fd(&src, &dst, scratch).map_err(|e| Error::io(at())(e))?;
                rustix::fs::fchmod(&dst, Mode::from_raw_mode(mode as _)).map_err(dst_err)?;
                rustix::fs::futimens(&dst, &meta.timestamps()).map_err(dst_err)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&open.src, name, Vec::new())
                    .map_err(|e| Error::io(self.src_path(rel, name))(e))?;
                rustix::fs::symlinkat(&target, &open.dst, name).map_err(dst_err)?;
                self.finish_at(open, name, meta, scratch)
            }
            // Fifos, devices, and sockets, which `cp -a` and containerd's
            // copy both recreate with mknod (a socket inode has no listener
            // in the copy, as in the source once its server is gone).
            kind => {
                rustix::fs::mknodat(&open.dst, name, kind, Mode::empty(), meta.rdev as _)
                    .map_err(dst_err)?;
                self.finish_at(open, name, meta, scratch)
            }
        }
    }

    /// Gives entry `name`, just made in `open.dst` and not a regular file
    /// (so reached by its name only), the owner, xattrs, mode (a symlink has
    /// none of its own) and times of `meta`, in the order a regular file
    /// gets them.
    fn finish_at(
        &self,
        open: &Open,
        name: &CStr,
        meta: &Meta,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let rel = &open.node.rel;
        let dst_err = |e: Errno| Error::io(self.dst_path(rel, name))(e);
        let mode = self.chown_at(&open.dst, name, meta).map_err(dst_err)?;
        copy_xattrs_path(
            &self.src_path(rel, name),
            &self.dst_path(rel, name),
            scratch,
        )
        .map_err(|e| Error::io(self.dst_path(rel, name))(e))?;
        if meta.kind != FileType::Symlink {
            // The entry was just made here and is not a symlink, so
            // following is moot (and AT_SYMLINK_NOFOLLOW is refused by
            // fchmodat before Linux 6.6).
            rustix::fs::chmodat(
                &open.dst,
                name,
                Mode::from_raw_mode(mode as _),
                AtFlags::empty(),
            )
            .map_err(dst_err)?;
        }
        rustix::fs::utimensat(
            &open.dst,
            name,
            &meta.timestamps(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(dst_err)
    }

    /// Whether an entry this copy created already has the owner of `meta`
    /// (our euid, and our egid where [`new_get_egid`](Self::new_get_egid)),
    /// so chown can be skipped.
    fn owned_already(&self, meta: &Meta) -> bool {
        self.new_get_egid && meta.uid == self.euid.as_raw() && meta.gid == self.egid.as_raw()
    }

    /// The mode to set after the owner: `meta`'s, without setuid and setgid
    /// when the owner could not be kept (`cp -a` does the same: an
    /// unprivileged copy must not make a setuid file of the caller's).
    fn mode_after_chown(
        &self,
        meta: &Meta,
        result: rustix::io::Result<()>,
    ) -> rustix::io::Result<u32> {
        match result {
            Ok(()) => Ok(meta.mode),
            Err(Errno::PERM) if !self.euid.is_root() => Ok(meta.mode & !0o6000),
            Err(e) => Err(e),
        }
    }

    /// `fchown`s `fd` to `meta`'s owner; the mode to set afterwards.
    fn chown_fd(&self, fd: &impl AsFd, meta: &Meta) -> rustix::io::Result<u32> {
        if self.owned_already(meta) {
            return Ok(meta.mode);
        }
        let result = rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        );
        self.mode_after_chown(meta, result)
    }

    /// `lchown`s entry `name` of `dir` to `meta`'s owner; the mode to set
    /// afterwards.
    fn chown_at(&self, dir: &OwnedFd, name: &CStr, meta: &Meta) -> rustix::io::Result<u32> {
        if self.owned_already(meta) {
            return Ok(meta.mode);
        }
        let result = rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        self.mode_after_chown(meta, result)
    }

    /// Copies `size` bytes of `src` into the empty `dst`: a clone where the
    /// file system can, else `copy_file_range`, else read and write.
    fn copy_data(
        &self,
        src: &File,
        dst: &File,
        size: u64,
        scratch: &mut Scratch,
    ) -> io::Result<()> {
        if self.reflink.load(Ordering::Relaxed) {
            match rustix::fs::ioctl_ficlone(dst, src) {
                Ok(()) => return Ok(()),
                // The file system (or the pair) cannot clone: stop asking.
                Err(
                    Errno::OPNOTSUPP | Errno::XDEV | Errno::NOTTY | Errno::INVAL | Errno::NOSYS,
                ) => {
                    self.reflink.store(false, Ordering::Relaxed);
                }
                // Anything else (say EPERM on an append-only target) is
                // this file's; a plain copy reports it if it matters.
                Err(_) => {}
            }
        }
        let mut left = size;
        if self.copy_range.load(Ordering::Relaxed) {
            while left > 0 {
                let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
                match rustix::fs::copy_file_range(src, None, dst, None, chunk) {
                    // The source is shorter than it was: the copy is too.
                    Ok(0) => return Ok(()),
                    Ok(n) => left -= n as u64,
                    Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP)
                        if left == size =>
                    {
                        self.copy_range.store(false, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if left == 0 {
                return Ok(());
            }
        }
        if scratch.data.len() < BUFFER {
            scratch.data.resize(BUFFER, 0);
        }
        let (mut src, mut dst) = (src, dst);
        loop {
            let n = match src.read(&mut scratch.data) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            dst.write_all(&scratch.data[..n])?;
        }
    }
}

fn os_str(name: &CStr) -> &OsStr {
    OsStr::from_bytes(name.to_bytes())
}

/// The path of entry `name` of directory `rel` (`.` for the root) relative
/// to the root.
fn child_rel(rel: &Path, name: &CStr) -> PathBuf {
    if rel == Path::new(".") {
        PathBuf::from(os_str(name))
    } else {
        rel.join(os_str(name))
    }
}

/// `root/rel/name`, for error messages and path-based calls.
fn join(root: &Path, rel: &Path, name: &CStr) -> PathBuf {
    root.join(child_rel(rel, name))
}

/// The NUL-terminated names in an xattr list.
fn names(list: &[u8]) -> impl Iterator<Item = &CStr> {
    list.split_inclusive(|&b| b == 0)
        .filter_map(|name| CStr::from_bytes_with_nul(name).ok())
        .filter(|name| !name.is_empty())
}

/// Fills `buf` by `call`, growing it to the size `query` reports while the
/// value does not fit (it may grow in between).
fn fill(
    buf: &mut Vec<u8>,
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
    mut query: impl FnMut() -> rustix::io::Result<usize>,
) -> rustix::io::Result<usize> {
    if buf.len() < 256 {
        buf.resize(256, 0);
    }
    loop {
        match call(buf) {
            Err(Errno::RANGE) => {
                let needed = query()?;
                buf.resize(needed.max(buf.len() * 2), 0);
            }
            other => return other,
        }
    }
}

/// Copies every xattr of open file `src` onto `dst`.
fn copy_xattrs_fd(src: &impl AsFd, dst: &impl AsFd, scratch: &mut Scratch) -> io::Result<()> {
    let (src, dst): (BorrowedFd<'_>, BorrowedFd<'_>) = (src.as_fd(), dst.as_fd());
    copy_xattrs(
        scratch,
        XattrCalls {
            list: |buf: &mut [u8]| rustix::fs::flistxattr(src, buf),
            list_len: || rustix::fs::flistxattr_query(src),
            get: |name: &CStr, buf: &mut [u8]| rustix::fs::fgetxattr(src, name, buf),
            get_len: |name: &CStr| rustix::fs::fgetxattr_query(src, name),
            set: |name: &CStr, value: &[u8]| {
                rustix::fs::fsetxattr(dst, name, value, XattrFlags::empty())
            },
        },
    )
}

/// Copies every xattr of `src` onto `dst`, neither followed if a symlink.
fn copy_xattrs_path(src: &Path, dst: &Path, scratch: &mut Scratch) -> io::Result<()> {
    copy_xattrs(
        scratch,
        XattrCalls {
            list: |buf: &mut [u8]| rustix::fs::llistxattr(src, buf),
            list_len: || rustix::fs::llistxattr_query(src),
            get: |name: &CStr, buf: &mut [u8]| rustix::fs::lgetxattr(src, name, buf),
            get_len: |name: &CStr| rustix::fs::lgetxattr_query(src, name),
            set: |name: &CStr, value: &[u8]| {
                rustix::fs::lsetxattr(dst, name, value, XattrFlags::empty())
            },
        },
    )
}

/// The xattr calls on one source and one destination, by fd or by path.
struct XattrCalls<L, LL, G, GL, S> {
    list: L,
    list_len: LL,
    get: G,
    get_len: GL,
    set: S,
}

/// Copies every xattr `calls` list from their source to their destination.
fn copy_xattrs<L, LL, G, GL, S>(
    scratch: &mut Scratch,
    mut calls: XattrCalls<L, LL, G, GL, S>,
) -> io::Result<()>
where
    L: FnMut(&mut [u8]) -> rustix::io::Result<usize>,
    LL: FnMut() -> rustix::io::Result<usize>,
    G: FnMut(&CStr, &mut [u8]) -> rustix::io::Result<usize>,
    GL: FnMut(&CStr) -> rustix::io::Result<usize>,
    S: FnMut(&CStr, &[u8]) -> rustix::io::Result<()>,
{
    let Scratch {
        names: list, value, ..
    } = scratch;
    let n = match fill(list, &mut calls.list, &mut calls.list_len) {
        Ok(n) => n,
        // A file system without xattrs has none to copy.
        Err(Errno::OPNOTSUPP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names(&list[..n]) {
        let len = match fill(
            value,
            |buf| (calls.get)(name, buf),
            || (calls.get_len)(name),
        ) {
            Ok(len) => len,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        (calls.set)(name, &value[..len])?;
    }
    Ok(())
}
