//! Reading and removing what pulls recorded: images and content.

use std::collections::HashSet;
use std::time::SystemTime;

use hoist_metadata::Labels;
use hoist_oci::manifest::{self, Children};
use hoist_oci::{Descriptor, Digest, Reference};

use crate::{Engine, Error, Result};

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
    pub fn remove_image(&self, reference: &str) -> Result<RemovedImage> {
        let name = normalized_name(reference)?;
        if !self.db.delete_image(&name)? {
            return Err(Error::ImageNotFound(name));
        }
        let snapshots = self.prune_snapshots()?;
        Ok(RemovedImage { name, snapshots })
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
        Ok(ImageSummary {
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
        let mut size = 0;
        let mut platforms = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(target.clone(), None)];
        while let Some((descriptor, platform)) = stack.pop() {
            if !seen.insert(descriptor.digest().clone()) {
                continue;
            }
            let Some(info) = self.content.info(descriptor.digest())? else {
                continue;
            };
            size += info.size;
            let media_type = descriptor.media_type().to_string();
            let body = match hoist_oci::media_type::classify(&media_type) {
                hoist_oci::media_type::Kind::Index | hoist_oci::media_type::Kind::Manifest => {
                    self.content.read_blob(descriptor.digest(), 8 << 20)?
                }
                _ => continue,
            };
            match manifest::children(&media_type, &body)? {
                Children::Index(children) => {
                    for child in children {
                        let platform = manifest::platform_of(&child).map(|p| p.to_string());
                        stack.push((child, platform));
                    }
                }
                Children::Manifest { config, layers } => {
                    let platform = platform.or_else(|| self.config_platform(&config));
                    if let Some(platform) = platform
                        && !platforms.contains(&platform)
                    {
                        platforms.push(platform);
                    }
                    stack.push((config, None));
                    stack.extend(layers.into_iter().map(|layer| (layer, None)));
                }
                _ => {}
            }
        }
        platforms.sort();
        Ok((size, platforms))
    }

    /// A single-platform image names its platform only in its config.
    fn config_platform(&self, config: &Descriptor) -> Option<String> {
        let body = self.content.read_blob(config.digest(), 8 << 20).ok()?;
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
