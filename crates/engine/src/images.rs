//! Reading, naming and removing what pulls recorded: images and content.
//!
//! # Pruning images
//!
//! docker calls an image *dangling* when a tag moved away from it and only
//! its `<name>@<digest>` record is left. hoist never creates such records (a
//! moved tag simply points elsewhere; the old content becomes garbage for
//! `hoist gc`), so [`Engine::prune_images`] defines dangling as what hoist
//! can actually leave behind: an image record whose target blob is not
//! stored (for example after `hoist check --repair` deleted a corrupt
//! manifest). With `all`, it also removes every image that is not in use,
//! where "in use" means a view snapshot (`hoist snapshots mounts`) sits on
//! one of its snapshots, the closest thing hoist has to docker's containers.
//! Pruning then removes the snapshots no remaining image needs; blobs stay
//! until `hoist gc`.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use hoist_metadata::{Image, Labels, SnapshotKind};
use hoist_oci::manifest::{self, Children};
use hoist_oci::{Descriptor, Digest, Reference};

use crate::lock::RootLock;
use crate::{Engine, Error, Result, labels};

/// An image as `hoist images ls` shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImageSummary {
    /// The image name (a normalized reference).
    pub name: String,
    /// The root descriptor.
    pub target: Descriptor,
    /// Bytes of all stored blobs the image references.
    pub size: u64,
    /// Platforms whose manifests are stored, formatted (`linux/amd64`).
    pub platforms: Vec<String>,
    /// Labels on the image record.
    pub labels: Labels,
    /// When the name was first recorded.
    pub created_at: SystemTime,
    /// When the name last changed target.
    pub updated_at: SystemTime,
    /// The snapshotters the image is unpacked in: its
    /// `hoist.io/unpacked.<snapshotter>` label is set and every snapshot it
    /// names exists, committed.
    pub unpacked: Vec<String>,
}

/// What pruning images removed.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PrunedImages {
    /// The image names removed.
    pub images: Vec<String>,
    /// Snapshot keys removed because no image needed them any more.
    pub snapshots: Vec<String>,
}

/// Everything stored about one image, as `hoist images inspect` shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImageDetails {
    /// The image name.
    pub name: String,
    /// The root descriptor.
    pub target: Descriptor,
    /// Whether the target blob is stored.
    pub target_stored: bool,
    /// Labels on the image record.
    pub labels: Labels,
    /// When the name was first recorded.
    pub created_at: SystemTime,
    /// When the record was last written.
    pub updated_at: SystemTime,
    /// The stored image manifests below the target (one per pulled platform).
    pub manifests: Vec<ManifestDetails>,
}

/// One stored image manifest of an image.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManifestDetails {
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// Its platform (from the index, or else from the config), formatted.
    pub platform: Option<String>,
    /// The config descriptor.
    pub config: Descriptor,
    /// Whether the config blob is stored.
    pub config_stored: bool,
    /// The layers, bottom first.
    pub layers: Vec<LayerDetails>,
    /// The chainID of each layer prefix (empty when the config is missing).
    pub chain_ids: Vec<Digest>,
    /// For each snapshotter, the chainIDs committed there.
    pub snapshots: BTreeMap<String, Vec<Digest>>,
}

/// One layer of a manifest.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LayerDetails {
    /// The layer's descriptor (digest, size, media type).
    pub descriptor: Descriptor,
    /// Its uncompressed digest, from the config (when the config is stored).
    pub diff_id: Option<Digest>,
    /// Whether the layer blob is stored.
    pub stored: bool,
}

impl ImageDetails {
    /// The details as JSON (`{:#}` formats it pretty).
    pub fn to_json(&self) -> serde_json::Value {
        let descriptor = |d: &Descriptor| serde_json::to_value(d).unwrap_or_default();
        let manifests: Vec<serde_json::Value> = self
            .manifests
            .iter()
            .map(|m| {
                let layers: Vec<serde_json::Value> = m
                    .layers
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "digest": l.descriptor.digest().to_string(),
                            "size": l.descriptor.size(),
                            "mediaType": l.descriptor.media_type().to_string(),
                            "diffID": l.diff_id.as_ref().map(ToString::to_string),
                            "stored": l.stored,
                        })
                    })
                    .collect();
                let snapshots: serde_json::Map<String, serde_json::Value> = m
                    .snapshots
                    .iter()
                    .map(|(name, keys)| {
                        let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
                        (name.clone(), serde_json::json!(keys))
                    })
                    .collect();
                serde_json::json!({
                    "descriptor": descriptor(&m.descriptor),
                    "platform": m.platform,
                    "config": {
                        "digest": m.config.digest().to_string(),
                        "size": m.config.size(),
                        "mediaType": m.config.media_type().to_string(),
                        "stored": m.config_stored,
                    },
                    "layers": layers,
                    "chainIDs": m.chain_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "snapshots": snapshots,
                })
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "target": descriptor(&self.target),
            "targetStored": self.target_stored,
            "labels": self.labels,
            "createdAt": unix_seconds(self.created_at),
            "updatedAt": unix_seconds(self.updated_at),
            "manifests": manifests,
        })
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What removing an image removed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemovedImage {
    /// The image name removed.
    pub name: String,
    /// Snapshot keys removed because no image needed them any more.
    pub snapshots: Vec<String>,
}

/// A stored blob with its metadata labels.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ContentEntry {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written.
    pub modified: SystemTime,
    /// Its labels (GC references, distribution sources).
    pub labels: Labels,
}

impl Engine {
    /// Every recorded image, by name.
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        self.db
            .list_images()?
            .into_iter()
            .map(|image| self.summarize(image))
            .collect()
    }

    /// The image recorded under `reference` (normalized first, so `alpine`
    /// finds `docker.io/library/alpine:latest`).
    pub fn image(&self, reference: &str) -> Result<ImageSummary> {
        let name = normalized_name(reference)?;
        match self.db.get_image(&name)? {
            Some(image) => self.summarize(image),
            None => Err(Error::ImageNotFound(name)),
        }
    }

    /// Removes the image record named by `reference`, then the snapshots
    /// no remaining image needs. Blobs stay until garbage collection, since
    /// other images may share them.
    ///
    /// Pruning holds the root's GC lock exclusively, so it waits for running
    /// pulls (whose fresh snapshots no image names yet). Blocking.
    pub fn remove_image(&self, reference: &str) -> Result<RemovedImage> {
        let name = normalized_name(reference)?;
        if !self.db.delete_image(&name)? {
            return Err(Error::ImageNotFound(name));
        }
        let _pruning = RootLock::exclusive(&self.root)?;
        let snapshots = self.prune_snapshots()?;
        Ok(RemovedImage { name, snapshots })
    }

    /// Records `dst` as another name for the image `src` (same target and
    /// labels), like `ctr images tag` and `docker tag`; an existing `dst`
    /// is replaced. A digest reference must name the target's digest.
    pub fn tag_image(&self, src: &str, dst: &str) -> Result<ImageSummary> {
        let src_name = normalized_name(src)?;
        let dst_reference = Reference::parse(dst)?;
        // Keep a collection out between reading the source and writing.
        let _writing = RootLock::shared(&self.root)?;
        let source = self
            .db
            .get_image(&src_name)?
            .ok_or_else(|| Error::ImageNotFound(src_name.clone()))?;
        if let Some(digest) = dst_reference.digest()
            && digest != source.target.digest()
        {
            return Err(Error::TagDigestMismatch {
                reference: dst_reference.to_string(),
                target: source.target.digest().to_string(),
            });
        }
        let now = SystemTime::now();
        let image = Image {
            name: dst_reference.to_string(),
            target: source.target,
            labels: source.labels,
            created_at: now,
            updated_at: now,
        };
        self.db.put_image(&image)?;
        self.summarize(image)
    }

    /// Everything stored about the image `reference`: its descriptor and
    /// labels, and per stored manifest its platform, config, layers (with
    /// diffIDs), chainIDs and the snapshots that exist for them.
    pub fn inspect_image(&self, reference: &str) -> Result<ImageDetails> {
        let name = normalized_name(reference)?;
        let image = self
            .db
            .get_image(&name)?
            .ok_or_else(|| Error::ImageNotFound(name.clone()))?;
        let mut manifests = Vec::new();
        for descriptor in self.stored_manifests(&image.target)? {
            manifests.push(self.manifest_details(descriptor)?);
        }
        Ok(ImageDetails {
            target_stored: self.content.contains(image.target.digest()),
            name: image.name,
            target: image.target,
            labels: image.labels,
            created_at: image.created_at,
            updated_at: image.updated_at,
            manifests,
        })
    }

    /// Removes dangling image records (target blob not stored) and, with
    /// `all`, every image not in use by a view snapshot; then the snapshots
    /// no remaining image needs. See the module docs for the semantics.
    /// Blocking: holds the GC lock exclusively.
    pub fn prune_images(&self, all: bool) -> Result<PrunedImages> {
        let _pruning = RootLock::exclusive(&self.root)?;
        // The snapshot keys views sit on, per snapshotter.
        let mut viewed: HashSet<(String, String)> = HashSet::new();
        for name in self.existing_snapshotters() {
            for record in self.db.list_snapshots(name)? {
                if record.kind == SnapshotKind::View
                    && let Some(parent) = record.parent
                {
                    viewed.insert((name.to_string(), parent));
                }
            }
        }
        let mut pruned = PrunedImages::default();
        for image in self.db.list_images()? {
            let dangling = !self.content.contains(image.target.digest());
            let remove = dangling || (all && !self.image_in_use(&image.target, &viewed)?);
            if remove && self.db.delete_image(&image.name)? {
                tracing::debug!(image = image.name, dangling, "pruned image");
                pruned.images.push(image.name);
            }
        }
        pruned.snapshots = self.prune_snapshots()?;
        Ok(pruned)
    }

    fn image_in_use(
        &self,
        target: &Descriptor,
        viewed: &HashSet<(String, String)>,
    ) -> Result<bool> {
        if viewed.is_empty() {
            return Ok(false);
        }
        for manifest in self.stored_manifests(target)? {
            let Ok(chain) = self.layer_chain(&manifest) else {
                continue;
            };
            for chain_id in chain.chain_ids() {
                let key = chain_id.to_string();
                if viewed.iter().any(|(_, parent)| *parent == key) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn manifest_details(&self, descriptor: Descriptor) -> Result<ManifestDetails> {
        let (config, layers) = self.image_manifest(&descriptor)?;
        // A missing or broken config leaves the diffIDs unknown, not an error.
        let chain = self.chain_of(config.clone(), layers.clone()).ok();
        let diff_ids: Vec<Option<Digest>> = match &chain {
            Some(chain) => chain.diff_ids.iter().cloned().map(Some).collect(),
            None => vec![None; layers.len()],
        };
        let chain_ids = chain.as_ref().map(|c| c.chain_ids()).unwrap_or_default();
        let mut snapshots = BTreeMap::new();
        for name in self.existing_snapshotters() {
            let mut present = Vec::new();
            for chain_id in &chain_ids {
                if self.is_committed_snapshot(name, chain_id.as_ref())? {
                    present.push(chain_id.clone());
                }
            }
            if !present.is_empty() {
                snapshots.insert(name.to_string(), present);
            }
        }
        let platform = manifest::platform_of(&descriptor)
            .map(|p| p.to_string())
            .or_else(|| self.config_platform(&config));
        Ok(ManifestDetails {
            platform,
            config_stored: self.content.contains(config.digest()),
            layers: layers
                .into_iter()
                .zip(diff_ids)
                .map(|(layer, diff_id)| LayerDetails {
                    stored: self.content.contains(layer.digest()),
                    descriptor: layer,
                    diff_id,
                })
                .collect(),
            config,
            chain_ids,
            snapshots,
            descriptor,
        })
    }

    fn is_committed_snapshot(&self, snapshotter: &str, key: &str) -> Result<bool> {
        Ok(self
            .db
            .get_snapshot(snapshotter, key)?
            .is_some_and(|s| s.kind == SnapshotKind::Committed))
    }

    /// The snapshotters whose `hoist.io/unpacked.<name>` label on `labels`
    /// names only committed snapshots.
    fn unpacked_in(&self, image_labels: &Labels) -> Result<Vec<String>> {
        let mut unpacked = Vec::new();
        let prefix = format!("{}.", labels::UNPACKED);
        for (key, value) in image_labels {
            let Some(snapshotter) = key.strip_prefix(&prefix) else {
                continue;
            };
            let mut keys = value.split(',').filter(|k| !k.is_empty()).peekable();
            if keys.peek().is_none() {
                continue;
            }
            let mut all = true;
            for key in keys {
                if !self.is_committed_snapshot(snapshotter, key)? {
                    all = false;
                    break;
                }
            }
            if all {
                unpacked.push(snapshotter.to_string());
            }
        }
        Ok(unpacked)
    }

    /// Every blob in the content store with its labels.
    pub fn content_entries(&self) -> Result<Vec<ContentEntry>> {
        let mut entries = Vec::new();
        for info in self.content.list()? {
            let labels = self
                .db
                .get_content(&info.digest)?
                .map(|record| record.labels)
                .unwrap_or_default();
            entries.push(ContentEntry {
                digest: info.digest,
                size: info.size,
                modified: info.modified,
                labels,
            });
        }
        entries.sort_by_key(|entry| entry.digest.to_string());
        Ok(entries)
    }

    fn summarize(&self, image: hoist_metadata::Image) -> Result<ImageSummary> {
        let (size, platforms) = self.stored_tree(&image.target)?;
        let unpacked = self.unpacked_in(&image.labels)?;
        Ok(ImageSummary {
            unpacked,
            name: image.name,
            target: image.target,
            size,
            platforms,
            labels: image.labels,
            created_at: image.created_at,
            updated_at: image.updated_at,
        })
    }

    /// Walks the stored part of an image's tree: the total size of the blobs
    /// present and the platforms of the manifests present.
    fn stored_tree(&self, target: &Descriptor) -> Result<(u64, Vec<String>)> {
        let read = |descriptor: &Descriptor| -> Result<Option<Vec<u8>>> {
            if !self.content.contains(descriptor.digest()) {
                return Ok(None);
            }
            match self
                .content
                .read_blob(descriptor.digest(), self.max_manifest_size())
            {
                Ok(body) => Ok(Some(body)),
                // A corrupt manifest is `hoist check`'s to report.
                Err(hoist_content::Error::DigestMismatch { .. }) => Ok(None),
                Err(error) => Err(error.into()),
            }
        };
        let mut size = 0;
        let mut platforms = Vec::new();
        for node in manifest::Walk::new(target.clone(), read) {
            let node = node?;
            let Some(info) = self.content.info(node.descriptor.digest())? else {
                continue;
            };
            size += info.size;
            if let Children::Manifest { config, .. } = &node.children {
                let platform = node
                    .is_index_child()
                    .then(|| manifest::platform_of(&node.descriptor))
                    .flatten()
                    .map(|p| p.to_string())
                    .or_else(|| self.config_platform(config));
                if let Some(platform) = platform
                    && !platforms.contains(&platform)
                {
                    platforms.push(platform);
                }
            }
        }
        platforms.sort();
        Ok((size, platforms))
    }

    /// A single-platform image names its platform only in its config.
    fn config_platform(&self, config: &Descriptor) -> Option<String> {
        let body = self
            .content
            .read_blob(config.digest(), self.max_manifest_size())
            .ok()?;
        let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let os = value.get("os")?.as_str()?;
        let architecture = value.get("architecture")?.as_str()?;
        let mut platform = format!("{os}/{architecture}");
        if let Some(variant) = value.get("variant").and_then(|v| v.as_str()) {
            platform = format!("{platform}/{variant}");
        }
        Some(platform)
    }
}

fn normalized_name(reference: &str) -> Result<String> {
    Ok(Reference::parse(reference)?.to_string())
}
