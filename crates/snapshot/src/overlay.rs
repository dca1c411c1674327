//! [`Overlay`]: each snapshot holds only its own layer; an active snapshot is
//! an overlayfs upper directory on top of its committed ancestors.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use hoist_archive::WhiteoutMode;
use hoist_metadata::Db;

use crate::error::{Error, Result};
use crate::mount::Mount;
use crate::store::{Snap, Store};
use crate::{ApplyTarget, Kind, Labels};

/// The overlayfs snapshotter, like containerd's `overlayfs`.
///
/// - Active, no parent: `bind` rw of its `fs/`.
/// - Active with parents: `overlay` with `lowerdir=` the ancestors' `fs/`
///   (parent first), `upperdir=` its `fs/`, `workdir=` its `work/`. Layers
///   are applied into the upper with overlay whiteouts.
/// - View of one layer: `bind` ro of that layer; of several: `overlay` with
///   only `lowerdir` (read-only); of none: `bind` ro of an empty `fs/`.
#[derive(Debug)]
pub struct Overlay {
    store: Store,
}

const NAME: &str = "overlay";

/// Probe results by file system (device number), so each file system is
/// probed once per process: choosing the default snapshotter probes
/// `<root>/snapshots`, opening it `<root>/snapshots/overlay`, and a probe
/// costs a mount, an unmount and six directories.
fn probes() -> &'static Mutex<HashMap<u64, Result<(), String>>> {
    static PROBES: OnceLock<Mutex<HashMap<u64, Result<(), String>>>> = OnceLock::new();
    PROBES.get_or_init(Default::default)
}

/// Probes once per file system and process whether overlayfs works under
/// `root`.
fn probe_cached(root: &Path) -> Result<(), String> {
    // overlayfs splits its mount data at `,` and its lowerdir list at `:`;
    // a root path holding either would be cut apart, so such a root cannot
    // host overlay snapshots (the native snapshotter still can).
    if root.to_string_lossy().contains([',', ':']) {
        return Err(format!(
            "the path {} contains ',' or ':', which overlay mount options cannot carry",
            root.display()
        ));
    }
    let device = std::fs::create_dir_all(root)
        .and_then(|()| std::fs::metadata(root))
        .map_err(|e| error_chain(&Error::io(root)(e)))?
        .dev();
    let mut probes = probes().lock().unwrap_or_else(PoisonError::into_inner);
    probes
        .entry(device)
        .or_insert_with(|| probe(root).map_err(|e| error_chain(&e)))
        .clone()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Mounts a two-lower overlay with an upper in a temporary directory under
/// `root` (so the file system that will hold the layers is the one tested),
/// checks a lower file shows through, and unmounts. `root` exists (the
/// caller made it to learn its file system).
fn probe(root: &Path) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix(".overlay-probe-")
        .tempdir_in(root)
        .map_err(Error::io(root))?;
    let dir = |name: &str| -> Result<PathBuf> {
        let path = tmp.path().join(name);
        std::fs::create_dir(&path).map_err(Error::io(&path))?;
        Ok(path)
    };
    let (l1, l2, upper, work, merged) = (dir("l1")?, dir("l2")?, dir("u")?, dir("w")?, dir("m")?);
    std::fs::write(l1.join("f"), b"x").map_err(Error::io(&l1))?;
    Mount::overlay(&[&l2, &l1], Some((&upper, &work))).mount(&merged)?;
    let visible = merged.join("f").is_file();
    Mount::unmount(&merged)?;
    if visible {
        Ok(())
    } else {
        Err(Error::Unsupported {
            detail: "a lower file is not visible through the probe overlay".into(),
        })
    }
}

impl Overlay {
    /// Where a layer is applied to an active snapshot: its upper dir,
    /// whiteouts as overlayfs marks, over its parents' layers.
    fn target(&self, snap: &Snap) -> Result<ApplyTarget> {
        Ok(ApplyTarget {
            dir: self.store.fs(snap.id),
            whiteouts: WhiteoutMode::Overlay,
            lowers: self.lowers(snap)?,
        })
    }

    /// Opens the overlay snapshotter rooted at `root` (created if needed),
    /// recording snapshots in `db`. `Unsupported` when overlayfs cannot be
    /// mounted there (not root, no overlay module, an unsuitable file system).
    pub fn open(root: &Path, db: Arc<Db>) -> Result<Overlay> {
        if let Err(why) = probe_cached(root) {
            // Snapshots made earlier (say as root) must stay listable and
            // removable where overlayfs cannot be mounted now; only a new
            // overlay root is refused.
            if !root.join("snapshots").is_dir() {
                return Err(Error::Unsupported {
                    detail: format!(
                        "overlayfs cannot be mounted under {}: {why}",
                        root.display()
                    ),
                });
            }
            tracing::warn!(root = %root.display(), %why, "overlayfs cannot be mounted here; managing existing snapshots only");
        }
        Ok(Overlay {
            store: Store::open(NAME, root, db)?,
        })
    }

    /// Whether commit flushes the snapshot's tree first (the default); see
    /// [`crate::open_with`].
    pub fn flush_on_commit(self, flush: bool) -> Overlay {
        Overlay {
            store: self.store.flush_on_commit(flush),
        }
    }

    /// Whether overlayfs can be mounted under `root`: probed once per root
    /// and process by mounting a tiny overlay in a temporary directory under
    /// `root` (created if missing) and unmounting it. The temporary
    /// directory is removed afterwards.
    pub fn supported(root: &Path) -> bool {
        probe_cached(root).is_ok()
    }

    fn lowers(&self, snap: &Snap) -> Result<Vec<PathBuf>> {
        Ok(self
            .store
            .ancestors(snap)?
            .iter()
            .map(|a| self.store.fs(a.id))
            .collect())
    }

    fn mounts_of(&self, snap: &Snap) -> Result<Vec<Mount>> {
        let lowers = self.lowers(snap)?;
        let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        let fs = self.store.fs(snap.id);
        let mount = match (snap.info.kind, lower_refs.as_slice()) {
            (Kind::Active, []) => Mount::bind(&fs, false),
            (Kind::Active, lowers) => {
                Mount::overlay(lowers, Some((&fs, &self.store.work(snap.id))))
            }
            (Kind::View, []) => Mount::bind(&fs, true),
            (Kind::View, [only]) => Mount::bind(only, true),
            (Kind::View, lowers) => Mount::overlay(lowers, None),
            (Kind::Committed, _) => return Err(committed_has_no_mounts(&snap.info.key)),
        };
        Ok(vec![mount])
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        labels: &Labels,
    ) -> Result<Vec<Mount>> {
        let work = kind == Kind::Active;
        let snap = self
            .store
            .create(key, parent, kind, labels, work, |_, _| Ok(()))?;
        self.mounts_of(&snap)
    }
}

pub(crate) fn committed_has_no_mounts(key: &str) -> Error {
    Error::state(
        key,
        "a committed snapshot has no mounts; view or prepare on it",
    )
}

pub(crate) fn active_only(key: &str, kind: Kind) -> Error {
    Error::state(
        key,
        format!("only an active snapshot can be applied to, is {kind:?}"),
    )
}

store_snapshotter!(Overlay;
    fn rebases(&self) -> bool {
        true
    }

    fn commit_onto(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<()> {
        self.store.commit_onto(name, key, parent, &labels)
    }
);
