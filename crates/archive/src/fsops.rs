//! Small file system operations on `(parent fd, plain name)` pairs.
//!
//! Every function here acts on one final component relative to a directory fd
//! that was itself resolved inside the root, and never follows a symlink in
//! the final position. That is what keeps removal, metadata changes and
//! recursive deletes confined: a symlink can be removed or re-owned, but
//! nothing is done *through* it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::name::{component_path, is_plain_component};

/// Guards every `*at` call: the name must be a single plain component, so no
/// caller bug can turn it into a multi-component walk that escapes the
/// confinement of the parent fd.
pub(crate) fn plain(name: &[u8]) -> io::Result<&std::path::Path> {
    if is_plain_component(name) {
        Ok(component_path(name))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a plain file name: {:?}", String::from_utf8_lossy(name)),
        ))
    }
}

/// The file type in `st_mode`.
pub(crate) fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// `lstat` of `name` in `dir`; `None` if it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, plain(name)?, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` whatever it is; a directory goes with everything
/// below it. Symlinks are unlinked, never followed. Returns what was there,
/// if anything: removing a directory or a symlink changes how later paths
/// resolve, which the caller's open directories must learn.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<FileType>> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(None);
    };
    let kind = file_type(&st);
    if kind == FileType::Directory {
        remove_tree(dir, name)?;
    } else {
        rustix::fs::unlinkat(dir, plain(name)?, AtFlags::empty())?;
    }
    Ok(Some(kind))
}

/// Removes the directory `name` in `dir` and its whole tree. Each level is
/// opened with `O_NOFOLLOW | O_DIRECTORY` from the level above, so a symlink
/// met on the way is unlinked rather than descended into.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let child = rustix::fs::openat(
        dir,
        plain(name)?,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for entry in list_dir(child.as_fd())? {
        remove_at(child.as_fd(), &entry)?;
    }
    drop(child);
    Ok(rustix::fs::unlinkat(dir, plain(name)?, AtFlags::REMOVEDIR)?)
}

/// The names in the directory `dir` (opened readable), without `.` and `..`.
/// Collected first so that callers may remove entries while going through them.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let fd: OwnedFd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::new(fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// Opens `name` in `dir` as an `O_PATH | O_NOFOLLOW` fd: a handle on the
/// inode itself, whatever its type, that nothing can redirect.
pub(crate) fn open_path_nofollow(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        plain(name)?,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `name` in `dir` readable, refusing a symlink.
pub(crate) fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        plain(name)?,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Sets the permission bits of a fifo or device node given by an `O_PATH`
/// fd. `fchmod` refuses `O_PATH` fds and `fchmodat` would follow a symlink in
/// the final position, so this goes through `/proc/self/fd/N`, a link to the
/// very inode the fd holds (our own fd: it cannot point anywhere else).
/// Opening the node itself to `fchmod` it is not an option either: opening a
/// device has side effects.
pub(crate) fn chmod_opath(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::chmodat(
        rustix::fs::CWD,
        proc_path.as_str(),
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )?)
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`: re-owns a symlink
/// itself, never its target.
pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        dir,
        plain(name)?,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn utimes_at(dir: BorrowedFd<'_>, name: &[u8], times: &Timestamps) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        plain(name)?,
        times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Where an extended attribute is set.
pub(crate) enum XattrTarget<'a> {
    /// An fd opened on the file or directory itself.
    Fd(BorrowedFd<'a>),
    /// A symlink or special file, by parent fd and name: set with `lsetxattr`
    /// on `/proc/self/fd/<parent>/<name>`, which resolves our own parent fd
    /// and does not follow the final component.
    NoFollow(BorrowedFd<'a>, &'a [u8]),
}

/// Sets one extended attribute. A failure that means "not permitted here"
/// (an unprivileged run setting `trusted.*` or `security.*`, a file system
/// without xattrs, `user.*` on a symlink) is logged and skipped, as rootless
/// tools do; any other failure is an error.
pub(crate) fn set_xattr(
    target: &XattrTarget<'_>,
    name: &[u8],
    value: &[u8],
    label: &str,
) -> io::Result<()> {
    // Xattr names are bytes like file names; a NUL cannot reach the syscall.
    let key = std::ffi::OsStr::from_bytes(name);
    let result = if name.is_empty() || name.contains(&0) {
        Err(Errno::INVAL)
    } else {
        match target {
            XattrTarget::Fd(fd) => rustix::fs::fsetxattr(fd, key, value, XattrFlags::empty()),
            XattrTarget::NoFollow(dir, file) => {
                let path = format!("/proc/self/fd/{}/", dir.as_raw_fd());
                let mut path = std::path::PathBuf::from(path);
                path.push(plain(file)?);
                rustix::fs::lsetxattr(&path, key, value, XattrFlags::empty())
            }
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e @ (Errno::PERM | Errno::ACCESS | Errno::NOTSUP | Errno::INVAL)) => {
            tracing::warn!(
                path = %label,
                xattr = %String::from_utf8_lossy(name),
                error = %e,
                "extended attribute not set"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// All extended attributes of an fd opened readable (for copy-up from a
/// lower layer). Overlay's own `trusted.overlay.*` attributes are left out:
/// they describe the lower layer, not the file.
pub(crate) fn get_xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let size = match rustix::fs::flistxattr_query(fd) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut list = vec![0u8; size];
    let n = rustix::fs::flistxattr(fd, &mut list[..])?;
    list.truncate(n);
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let key = std::ffi::OsStr::from_bytes(name);
        let len = match rustix::fs::fgetxattr_query(fd, key) {
            Ok(n) => n,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; len];
        let n = rustix::fs::fgetxattr(fd, key, &mut value[..])?;
        value.truncate(n);
        out.push((name.to_vec(), value));
    }
    Ok(out)
}
