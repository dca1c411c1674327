//! File system helpers: disk usage and durability.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
