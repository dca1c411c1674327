//! File system helpers: disk usage, tree copies, and durability.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Usage;
use crate::error::{Error, Result};

/// Disk usage of the tree at `dir`, like containerd's `fs.DiskUsage`: the
/// allocated bytes (`st_blocks * 512`) and the number of inodes, each inode
/// (hardlinks included) counted once, `dir` itself included. Symlinks are not
/// followed.
pub(crate) fn usage(dir: &Path) -> Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage { size: 0, inodes: 0 };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(Error::io(&path))?;
        if seen.insert((meta.dev(), meta.ino())) {
            usage.inodes += 1;
            usage.size += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(Error::io(&path))? {
                stack.push(entry.map_err(Error::io(&path))?.path());
            }
        }
    }
    Ok(usage)
}

/// Copies the contents of `src` into the existing directory `dst`, keeping
/// everything: file types (devices, fifos, sockets, whiteout devices),
/// modes, owners, times, xattrs (including `security.capability`), hardlinks
/// within the tree, sparse files; with reflinks where the file system can.
///
/// This shells out to GNU `cp -a`. No well-kept Rust crate copies trees with
/// xattrs, hardlinks and reflinks correctly (fs_extra and copy_dir drop
/// owners, xattrs and hardlinks), and coreutils' `cp` is the reference
/// implementation of exactly this. `--preserve=xattr` on top of `-a` makes
/// a failure to copy an xattr an error instead of a silently degraded copy.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let output = Command::new("cp")
        .arg("-a")
        .arg("--preserve=xattr")
        .arg("--reflink=auto")
        .arg("--")
        .arg(src.join("."))
        .arg(dst)
        .output()
        .map_err(Error::io(PathBuf::from("cp")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Io {
            path: dst.to_path_buf(),
            source: std::io::Error::other(format!(
                "cp -a {} {}: {}: {}",
                src.display(),
                dst.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        })
    }
}

/// Flushes the whole file system holding `dir` (`syncfs(2)`), so every file
/// written under it is durable. One call instead of an fsync per file; the
/// kernel reports writeback errors to syncfs since Linux 5.8.
pub(crate) fn sync_fs(dir: &Path) -> Result<()> {
    let file = File::open(dir).map_err(Error::io(dir))?;
    rustix::fs::syncfs(&file).map_err(Error::io(dir))
}

/// Makes the entries of directory `dir` (creations, removals) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(dir))
}
