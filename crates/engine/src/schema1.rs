//! Docker schema 1 while pulling: refused unless asked for, then converted
//! to schema 2 the way containerd does.

use futures_util::{StreamExt, TryStreamExt};
use hoist_oci::Descriptor;
use hoist_oci::media_type;

use crate::download::Pending;
use crate::fetch::Session;
use crate::progress::BlobKind;
use crate::{Error, Result};

impl Session<'_> {
    pub(crate) fn schema1_refused(&self, descriptor: &Descriptor) -> Error {
        Error::UnsupportedManifest {
            reference: self.reference.to_string(),
            media_type: descriptor.media_type().to_string(),
            hint: "Docker schema 1 images are deprecated; allow schema 1 to convert it to schema 2 while pulling",
        }
    }

    /// Converts a Docker schema 1 manifest to schema 2 the way containerd
    /// does: fetch its layers (their sizes come from the registry, since
    /// schema 1 records none), compute their diffIDs, and store a new config
    /// and manifest. The original manifest is not stored: its digest covers
    /// a payload without signatures, not the bytes served. Returns the
    /// converted manifest's descriptor, which becomes the image's target.
    pub(crate) async fn convert_schema1(&self, descriptor: &Descriptor) -> Result<Descriptor> {
        let body = self
            .resolver
            .fetch_manifest(&self.repository, descriptor)
            .await?;
        let schema1 = hoist_oci::schema1::parse(&body)?;
        let mut layers = Vec::new();
        for digest in schema1.layers() {
            let size = match self.engine.content.info(digest)? {
                Some(info) => info.size,
                None => self.resolver.blob_size(&self.repository, digest).await?,
            };
            layers.push(Descriptor::new(
                media_type::DOCKER_LAYER_GZIP.into(),
                size,
                digest.clone(),
            ));
        }
        let mut unique: Vec<Descriptor> = Vec::new();
        for layer in &layers {
            if !unique.iter().any(|u| u.digest() == layer.digest()) {
                unique.push(layer.clone());
            }
        }
        let concurrency = unique.len().max(1);
        futures_util::stream::iter(unique)
            .map(
                |layer| async move { self.fetch_blob(&Pending::new(layer, BlobKind::Layer)).await },
            )
            .buffer_unordered(concurrency)
            .try_collect::<Vec<u64>>()
            .await?;

        let mut pairs = Vec::with_capacity(layers.len());
        for layer in layers {
            let blob = self.engine.content.open_blob(layer.digest())?;
            let digest = layer.digest().to_string();
            let diff_id = self
                .blocking(move || {
                    hoist_archive::diff_id(
                        std::io::BufReader::with_capacity(256 << 10, blob),
                        hoist_archive::Compression::Gzip,
                    )
                })
                .await?
                .map_err(|source| Error::Unpack {
                    layer: digest,
                    source,
                })?;
            pairs.push((layer, diff_id));
        }
        let converted = schema1.convert(&pairs)?;
        self.protect(converted.config_descriptor.digest()).await?;
        self.store_small(&converted.config_descriptor, converted.config.into())
            .await?;
        self.protect(converted.manifest_descriptor.digest()).await?;
        self.store_small(&converted.manifest_descriptor, converted.manifest.into())
            .await?;
        Ok(converted.manifest_descriptor)
    }
}
