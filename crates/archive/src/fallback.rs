//! The path walker used only when the kernel lacks `openat2` (`ENOSYS`).
//!
//! It opens one component at a time with `openat(O_NOFOLLOW)`, so it follows
//! no symlink at all, not even one that would stay inside the root: refusing
//! is the simple way to be sure, at the price that a layer writing through an
//! in-root symlinked directory fails on such kernels. `..` never reaches it
//! ([`RootedPath`] has none), and it refuses one anyway in case that changes.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::name::{RootedPath, component_path, is_plain_component};

/// Opens `path` below `root` with `flags` on the final component, following
/// no symlink: a symlink anywhere on the path gives `ELOOP` or `ENOTDIR`.
pub(crate) fn open_beneath(
    root: BorrowedFd<'_>,
    path: &RootedPath,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let components: Vec<&[u8]> = path.components().collect();
    let Some((last, dirs)) = components.split_last() else {
        // The root itself.
        return Ok(rustix::fs::openat(
            root,
            ".",
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    };
    let mut dir: Option<OwnedFd> = None;
    for name in dirs {
        check(name)?;
        let parent = dir.as_ref().map_or(root, |d| std::os::fd::AsFd::as_fd(d));
        // O_NOFOLLOW with O_PATH would open a symlink itself; O_DIRECTORY then
        // makes that an error, so a symlinked directory is never entered.
        let next = rustix::fs::openat(
            parent,
            component_path(name),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        dir = Some(next);
    }
    check(last)?;
    let parent = dir.as_ref().map_or(root, |d| std::os::fd::AsFd::as_fd(d));
    let fd = rustix::fs::openat(
        parent,
        component_path(last),
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // `O_PATH | O_NOFOLLOW` opens a final symlink itself rather than failing;
    // this walker promises never to hand out a symlink where a file was asked for.
    if flags.contains(OFlags::PATH) && rustix::fs::fstat(&fd)?.st_mode & 0o170000 == 0o120000 {
        return Err(Errno::LOOP.into());
    }
    Ok(fd)
}

/// Refuses anything but a plain name (`..` above the root, `/`, empty).
fn check(name: &[u8]) -> io::Result<()> {
    if is_plain_component(name) {
        Ok(())
    } else {
        Err(Errno::XDEV.into())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::root::Root;

    fn open(root: &Root, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
        open_beneath(
            root.fd().as_fd(),
            &RootedPath::parse(name.as_bytes()).unwrap(),
            flags,
        )
    }

    #[test]
    fn walks_plain_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), b"x").unwrap();
        let root = Root::open(dir.path()).unwrap();
        open(&root, "a/b", OFlags::PATH | OFlags::DIRECTORY).unwrap();
        open(&root, "a/b/f", OFlags::RDONLY).unwrap();
        open(&root, "", OFlags::PATH | OFlags::DIRECTORY).unwrap();
        // `..` was clamped away by normalization: this is `f` at the root.
        let err = open(&root, "a/../../f", OFlags::RDONLY).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::NOENT.raw_os_error()));
    }

    #[test]
    fn refuses_symlinks_anywhere() {
        let outer = tempfile::tempdir().unwrap();
        let rootdir = outer.path().join("root");
        std::fs::create_dir_all(rootdir.join("real")).unwrap();
        std::fs::create_dir_all(outer.path().join("canary")).unwrap();
        std::fs::write(outer.path().join("canary/file"), b"c").unwrap();
        symlink("../canary", rootdir.join("out")).unwrap();
        symlink("real", rootdir.join("inside")).unwrap();
        symlink("/", rootdir.join("abs")).unwrap();
        let root = Root::open(&rootdir).unwrap();
        for (name, flags) in [
            ("out/file", OFlags::RDONLY),
            ("out", OFlags::PATH | OFlags::DIRECTORY),
            ("out", OFlags::PATH),
            ("inside", OFlags::PATH | OFlags::DIRECTORY),
            ("abs/etc", OFlags::PATH | OFlags::DIRECTORY),
        ] {
            let err = open(&root, name, flags).unwrap_err();
            let code = err.raw_os_error().unwrap();
            assert!(
                code == Errno::LOOP.raw_os_error() || code == Errno::NOTDIR.raw_os_error(),
                "{name}: {err}"
            );
        }
    }
}
