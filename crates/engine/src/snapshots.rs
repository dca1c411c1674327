//! What the engine offers on top of snapshots: flattened root filesystems,
//! listing and mounting snapshots, and removing the ones no image uses.

use std::collections::HashSet;
use std::path::Path;

use hoist_archive::{ApplyOptions, WhiteoutMode};
use hoist_oci::manifest;
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{Descriptor, Platform, PlatformMatcher};
use hoist_snapshot::{Kind as SnapshotKind, Labels, Mount, Snapshotter};

use crate::labels::GC_ROOT;
use crate::lock::RootLock;
use crate::{Engine, Error, Result};

use hoist_snapshot::NAMES as SNAPSHOTTERS;

impl Engine {
    /// Writes the flattened root filesystem of a pulled image to `dest`
    /// (like `umoci unpack`'s rootfs): every layer of the manifest for
    /// `platform` (this host's by default) applied in order, whiteouts
    /// applied as deletions, each diffID verified. `dest` must be absent or
    /// empty. Blocking.
    pub fn export_rootfs(
        &self,
        reference: &str,
        platform: Option<&Platform>,
        dest: &Path,
    ) -> Result<()> {
        // Keep a collector from deleting the blobs while they are read.
        let _reading = RootLock::shared(&self.root)?;
        let image = self.image(reference)?;
        let manifest = self.stored_manifest_for(&image.target, platform)?;
        let chain = self.layer_chain(&manifest)?;
        prepare_empty_dir(dest)?;
        for (layer, diff_id) in chain.layers.iter().zip(&chain.diff_ids) {
            let compression = crate::unpack::layer_compression(layer)?;
            let blob = match self.content.open_blob(layer.digest()) {
                Err(hoist_content::Error::NotFound(_)) => {
                    return Err(Error::InvalidBlob {
                        digest: layer.digest().to_string(),
                        detail: format!(
                            "layer blob is not stored (discarded after unpacking?); pulling {reference} without unpacking fetches it again"
                        ),
                    });
                }
                opened => opened?,
            };
            let options = ApplyOptions {
                whiteouts: WhiteoutMode::Delete,
                expected_diff_id: Some(diff_id.clone()),
                ..ApplyOptions::default()
            };
            hoist_archive::apply_layer(
                dest,
                std::io::BufReader::with_capacity(256 << 10, blob),
                compression,
                &options,
            )
            .map_err(|source| Error::Unpack {
                layer: layer.digest().to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// The snapshots of `snapshotter` (the default one when `None`).
    pub fn snapshots(&self, snapshotter: Option<&str>) -> Result<Vec<hoist_snapshot::Info>> {
        Ok(self.snapshotter(snapshotter)?.list()?)
    }

    /// The mounts that show snapshot `key`. A committed snapshot cannot be
    /// mounted itself, so a read-only view of it (`view:<key>`) is created
    /// once and its mounts returned, the way `ctr snapshots view` would.
    pub fn snapshot_mounts(&self, snapshotter: Option<&str>, key: &str) -> Result<Vec<Mount>> {
        let snapshotter = self.snapshotter(snapshotter)?;
        let info = snapshotter.stat(key)?;
        if info.kind != SnapshotKind::Committed {
            return Ok(snapshotter.mounts(key)?);
        }
        let view = format!("view:{key}");
        match snapshotter.stat(&view) {
            Ok(_) => Ok(snapshotter.mounts(&view)?),
            Err(_) => {
                // Someone may mount it: a collection must keep it, and with
                // it its parents, until it is removed by name.
                let _writing = RootLock::shared(&self.root)?;
                let labels = Labels::from([(GC_ROOT.to_string(), "view".to_string())]);
                Ok(snapshotter.view(&view, Some(key), labels)?)
            }
        }
    }

    /// Removes snapshot `key` (a view made by [`Engine::snapshot_mounts`],
    /// say); refused while other snapshots name it as their parent.
    pub fn remove_snapshot(&self, snapshotter: Option<&str>, key: &str) -> Result<()> {
        let _writing = RootLock::shared(&self.root)?;
        Ok(self.snapshotter(snapshotter)?.remove(key)?)
    }

    /// Removes committed snapshots that no recorded image needs any more,
    /// children before parents, in every snapshotter that has been used.
    /// Snapshots under an active snapshot or a view are kept. Returns the
    /// removed keys.
    pub fn prune_snapshots(&self) -> Result<Vec<String>> {
        let needed = self.needed_chain_ids()?;
        let mut removed = Vec::new();
        for name in SNAPSHOTTERS {
            if !self.root.join("snapshots").join(name).exists() {
                continue;
            }
            let snapshotter = self.snapshotter(Some(name))?;
            removed.extend(prune(snapshotter.as_ref(), &needed)?);
        }
        Ok(removed)
    }

    /// Every chainID (each layer prefix) of every recorded image's stored
    /// manifests.
    fn needed_chain_ids(&self) -> Result<HashSet<String>> {
        let mut needed = HashSet::new();
        for image in self.db.list_images()? {
            for manifest in self.stored_manifests(&image.target)? {
                // A manifest whose config is missing has no snapshots to keep.
                if let Ok(chain) = self.layer_chain(&manifest) {
                    needed.extend(chain.chain_ids().iter().map(ToString::to_string));
                }
            }
        }
        Ok(needed)
    }

    /// The image manifests below `target` that are stored.
    pub(crate) fn stored_manifests(&self, target: &Descriptor) -> Result<Vec<Descriptor>> {
        let is = |descriptor: &Descriptor, kind: Kind| {
            media_type::classify(descriptor.media_type().as_ref()) == kind
                && self.content.contains(descriptor.digest())
        };
        // Only indexes are read: the manifests themselves are what we want.
        let read = |descriptor: &Descriptor| -> Result<Option<Vec<u8>>> {
            if !is(descriptor, Kind::Index) {
                return Ok(None);
            }
            let body = self
                .content
                .read_blob(descriptor.digest(), self.max_manifest_size())?;
            Ok(Some(body))
        };
        let mut manifests = Vec::new();
        for node in manifest::Walk::new(target.clone(), read) {
            let node = node?;
            if is(&node.descriptor, Kind::Manifest) {
                manifests.push(node.descriptor);
            }
        }
        Ok(manifests)
    }

    /// The stored manifest of an image that best matches `platform` (this
    /// host when `None`).
    fn stored_manifest_for(
        &self,
        target: &Descriptor,
        platform: Option<&Platform>,
    ) -> Result<Descriptor> {
        let manifests = self.stored_manifests(target)?;
        if media_type::classify(target.media_type().as_ref()) == Kind::Manifest {
            return manifests
                .into_iter()
                .next()
                .ok_or_else(|| Error::InvalidBlob {
                    digest: target.digest().to_string(),
                    detail: "the image manifest is not stored".to_string(),
                });
        }
        let wanted = platform.cloned().unwrap_or_else(Platform::host);
        let matcher = PlatformMatcher::only(wanted.clone());
        matcher
            .best_match(&manifests)
            .first()
            .map(|d| (*d).clone())
            .ok_or_else(|| Error::NoMatchingPlatform {
                reference: target.digest().to_string(),
                wanted: wanted.to_string(),
                available: crate::pull::platforms_of(&manifests),
            })
    }
}

/// Removes the committed snapshots of one snapshotter not in `needed`,
/// leaves first, keeping every ancestor of an active snapshot or view.
fn prune(snapshotter: &dyn Snapshotter, needed: &HashSet<String>) -> Result<Vec<String>> {
    let all = snapshotter.list()?;
    let mut keep: HashSet<String> = needed.clone();
    for info in &all {
        if info.kind != SnapshotKind::Committed {
            keep.insert(info.key.clone());
        }
    }
    // Ancestors of anything kept are kept.
    let parent_of = |key: &str| {
        all.iter()
            .find(|i| i.key == key)
            .and_then(|i| i.parent.clone())
    };
    for key in keep.clone() {
        let mut next = parent_of(&key);
        while let Some(parent) = next {
            next = parent_of(&parent);
            keep.insert(parent);
        }
    }
    let mut doomed: Vec<&hoist_snapshot::Info> =
        all.iter().filter(|i| !keep.contains(&i.key)).collect();
    let mut removed = Vec::new();
    // Remove leaves first: a snapshot goes once nothing left names it parent.
    while !doomed.is_empty() {
        let before = doomed.len();
        let mut remaining = Vec::new();
        for info in doomed.iter().copied() {
            let has_child = doomed
                .iter()
                .any(|other| other.parent.as_deref() == Some(info.key.as_str()));
            if has_child {
                remaining.push(info);
            } else {
                snapshotter.remove(&info.key)?;
                removed.push(info.key.clone());
            }
        }
        doomed = remaining;
        if doomed.len() == before {
            break;
        }
    }
    Ok(removed)
}

fn prepare_empty_dir(dest: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: dest.to_path_buf(),
        source,
    };
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "destination is not empty",
                )));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(io)
        }
        Err(error) => Err(io(error)),
    }
}
