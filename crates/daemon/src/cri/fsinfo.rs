//! `ImageFsInfo`: how much disk the images take, measured by walking the
//! store and cached for `stats_collect_period`.
//!
//! As containerd reports it, there is one `image_filesystems` entry per
//! snapshotter in use, the default snapshotter's first (the kubelet reads
//! only the first), each with the snapshotter's directory as its
//! `fs_id.mountpoint`. hoist keeps its content store (compressed blobs and
//! in-flight downloads) beside the snapshots under the same root, on the
//! same filesystem, so the default entry counts `<root>/content` too
//! (containerd leaves its content store out, with a TODO); other
//! snapshotters count only their own directory. `container_filesystems`
//! repeats the default entry: containers' writable layers live in the same
//! snapshotter, and an identical mountpoint tells the kubelet the image
//! and container filesystems are not split.
//!
//! Usage is measured as `du` does (and containerd's `fs.DiskUsage`):
//! allocated blocks × 512, each inode once (hard links), without following
//! symbolic links; `inodes_used` counts distinct inodes.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;

use super::proto::{FilesystemIdentifier, FilesystemUsage, ImageFsInfoResponse, UInt64Value};

/// Bytes and inodes under some directories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Allocated bytes (blocks × 512).
    pub(crate) bytes: u64,
    /// Distinct inodes.
    pub(crate) inodes: u64,
}

/// The disk usage of everything under `roots` (missing ones count nothing;
/// files that vanish during the walk are skipped). Blocking.
pub(crate) fn disk_usage(roots: &[PathBuf]) -> Usage {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut usage = Usage::default();
    let mut pending: Vec<PathBuf> = roots.to_vec();
    while let Some(path) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if seen.insert((metadata.dev(), metadata.ino())) {
            usage.bytes += metadata.blocks() * 512;
            usage.inodes += 1;
        }
        if metadata.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.filter_map(|entry| entry.ok().map(|e| e.path())));
        }
    }
    usage
}

/// One filesystem entry to report: its mountpoint and what to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Measured {
    /// The snapshotter directory reported as the mountpoint.
    pub(crate) mountpoint: PathBuf,
    /// The directories whose usage is summed.
    pub(crate) paths: Vec<PathBuf>,
}

/// What to measure under `root`: the default snapshotter's directory plus
/// the content store first, then every other snapshotter directory that
/// exists, in name order.
pub(crate) fn layout(root: &Path, default_snapshotter: &str) -> Vec<Measured> {
    let snapshots = root.join("snapshots");
    let mut measured = vec![Measured {
        mountpoint: snapshots.join(default_snapshotter),
        paths: vec![snapshots.join(default_snapshotter), root.join("content")],
    }];
    let mut others: Vec<&str> = hoist_engine::SNAPSHOTTERS
        .iter()
        .copied()
        .filter(|name| *name != default_snapshotter && snapshots.join(name).is_dir())
        .collect();
    others.sort_unstable();
    measured.extend(others.into_iter().map(|name| Measured {
        mountpoint: snapshots.join(name),
        paths: vec![snapshots.join(name)],
    }));
    measured
}

/// Measures `layout` now. Blocking.
pub(crate) fn measure(layout: &[Measured]) -> ImageFsInfoResponse {
    let entries: Vec<FilesystemUsage> = layout
        .iter()
        .map(|entry| {
            let usage = disk_usage(&entry.paths);
            FilesystemUsage {
                timestamp: unix_nanos(SystemTime::now()),
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: entry.mountpoint.display().to_string(),
                }),
                used_bytes: Some(UInt64Value { value: usage.bytes }),
                inodes_used: Some(UInt64Value {
                    value: usage.inodes,
                }),
            }
        })
        .collect();
    ImageFsInfoResponse {
        container_filesystems: entries.first().cloned().into_iter().collect(),
        image_filesystems: entries,
    }
}

fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(1)
        .max(1)
}

/// The last measurement, reused for `period`. One walk runs at a time;
/// callers meanwhile wait for its result instead of walking again.
#[derive(Debug)]
pub(crate) struct Cache {
    period: Duration,
    last: Mutex<Option<(Instant, ImageFsInfoResponse)>>,
}

impl Cache {
    /// A cache keeping measurements for `period` (zero: measure every time).
    pub(crate) fn new(period: Duration) -> Cache {
        Cache {
            period,
            last: Mutex::new(None),
        }
    }

    /// The cached measurement if fresh, else `measure()` run on a blocking
    /// thread.
    pub(crate) async fn get<F>(
        &self,
        measure: F,
    ) -> Result<ImageFsInfoResponse, tokio::task::JoinError>
    where
        F: FnOnce() -> ImageFsInfoResponse + Send + 'static,
    {
        let mut last = self.last.lock().await;
        if let Some((at, response)) = &*last
            && at.elapsed() < self.period
        {
            return Ok(response.clone());
        }
        let response = tokio::task::spawn_blocking(measure).await?;
        *last = Some((Instant::now(), response.clone()));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_and_inodes_once_per_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let empty = disk_usage(&[dir.path().to_path_buf()]);
        assert_eq!(empty.inodes, 1);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), vec![7u8; 64 * 1024]).unwrap();
        std::fs::hard_link(dir.path().join("sub/file"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root-link")).unwrap();
        let usage = disk_usage(&[dir.path().to_path_buf()]);
        // dir, sub, file (twice linked), symlink (not followed).
        assert_eq!(usage.inodes, 4);
        assert!(usage.bytes >= 64 * 1024, "{usage:?}");
        assert!(
            usage.bytes < 1 << 20,
            "the symlink was not followed: {usage:?}"
        );
        // A missing root counts nothing.
        assert_eq!(disk_usage(&[dir.path().join("missing")]), Usage::default());
    }

    #[test]
    fn default_snapshotter_first_with_the_content_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("snapshots/native")).unwrap();
        std::fs::create_dir_all(root.join("snapshots/overlay")).unwrap();
        let measured = layout(root, "overlay");
        assert_eq!(measured.len(), 2);
        assert_eq!(measured[0].mountpoint, root.join("snapshots/overlay"));
        assert!(measured[0].paths.contains(&root.join("content")));
        assert_eq!(measured[1].paths, vec![root.join("snapshots/native")]);

        std::fs::create_dir_all(root.join("content/blobs")).unwrap();
        std::fs::write(root.join("content/blobs/x"), vec![1u8; 8192]).unwrap();
        let response = measure(&measured);
        assert_eq!(response.image_filesystems.len(), 2);
        assert_eq!(
            response.container_filesystems,
            response.image_filesystems[..1]
        );
        let first = &response.image_filesystems[0];
        assert!(first.timestamp > 0);
        assert!(first.used_bytes.unwrap().value >= 8192);
        assert!(first.inodes_used.unwrap().value >= 4);
    }

    #[tokio::test]
    async fn cache_reuses_a_fresh_measurement() {
        let cache = Cache::new(Duration::from_secs(3600));
        let first = cache.get(|| response(1)).await.unwrap();
        let second = cache.get(|| response(2)).await.unwrap();
        assert_eq!(first, second);
        let uncached = Cache::new(Duration::ZERO);
        uncached.get(|| response(1)).await.unwrap();
        assert_eq!(uncached.get(|| response(2)).await.unwrap(), response(2));
    }

    fn response(timestamp: i64) -> ImageFsInfoResponse {
        ImageFsInfoResponse {
            image_filesystems: vec![FilesystemUsage {
                timestamp,
                ..FilesystemUsage::default()
            }],
            container_filesystems: Vec::new(),
        }
    }
}
