//! Unpacking: the layers of a stored manifest become committed snapshots.
//!
//! Each layer's snapshot is named by its chainID (`chain[0] = diffID[0]`,
//! `chain[i] = sha256(chain[i-1] + " " + diffID[i])`), so images that share
//! base layers share snapshots, and a warm re-pull finds every chainID
//! committed and does no work. A layer is applied into a fresh active
//! snapshot, its diffID verified while applying, then committed under its
//! chainID; on any failure the active snapshot is removed, so a committed
//! snapshot is always a verified one.
//!
//! Concurrent unpacks of one chainID (threads or processes) serialize on the
//! snapshotter's per-key lock and re-check after taking it: the layer is
//! unpacked once, as the CRI's duplicate suppression does.
//!
//! A pull unpacks while it downloads ([`Engine::start_unpack`]): each layer
//! is applied from its ingest as the bytes arrive ([`crate::feed`]), and its
//! snapshot is committed only once the applier verified the diffID and the
//! content store verified and committed the blob. A layer already stored,
//! or fetched by another pull, is applied from the store.
//!
//! On a snapshotter that rebases (overlay), the layers of an image apply in
//! parallel, each into its own snapshot, and are committed bottom to top
//! onto their parents ([`order`]); a layer that must look at the layers
//! below it waits for them, so the result is the serial one. Native
//! snapshots start as copies of their parents, so there layers apply one
//! after another (each still while it downloads).

mod order;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hoist_archive::{ApplyOptions, Compression as ArchiveCompression, LateLowers};
use hoist_metadata::LeaseResource;
use hoist_oci::manifest::{self, Children};
use hoist_oci::media_type::{self, Compression, Kind};
use hoist_oci::{Descriptor, Digest};
use hoist_snapshot::{Kind as SnapshotKind, Labels, Snapshotter};

use crate::feed::{End, Feed, Feeds, Follower};
use crate::lease::Lease;
use crate::progress::{Event, Progress};
use crate::pull::{PullOptions, Unpacked};
use crate::{Engine, Error, Result, labels};
use order::Order;

/// Snapshot label: the layer blob a snapshot was unpacked from (BuildKit's
/// `SetBlob` mapping, so a later push or export can find the blob again).
pub(crate) const SNAPSHOT_BLOB_LABEL: &str = "hoist.io/blob";
/// Snapshot label: the layer's uncompressed digest.
pub(crate) const SNAPSHOT_DIFF_ID_LABEL: &str = "hoist.io/diff-id";
/// Snapshot label: the layer blob's media type.
pub(crate) const SNAPSHOT_MEDIA_TYPE_LABEL: &str = "hoist.io/media-type";

/// Progress is reported once per this many compressed bytes applied.
const PROGRESS_STEP: u64 = 1 << 20;

/// The layers of one image manifest, as the unpacker needs them.
pub(crate) struct LayerChain {
    /// Layer descriptors, bottom first.
    pub(crate) layers: Vec<Descriptor>,
    /// The config's `rootfs.diff_ids`, one per layer.
    pub(crate) diff_ids: Vec<Digest>,
    /// The config descriptor (its content record gets the snapshot GC label).
    pub(crate) config: Descriptor,
}

impl LayerChain {
    /// The chainIDs of every prefix of the layer stack, bottom first.
    pub(crate) fn chain_ids(&self) -> Vec<Digest> {
        hoist_oci::digest::chain_ids(&self.diff_ids)
    }
}

/// An unpack running beside the downloads it follows.
pub(crate) struct Unpacking {
    job: tokio::task::JoinHandle<Result<Unpacked>>,
    started: Instant,
}

impl Unpacking {
    /// Waits for the unpack to end; returns what it produced and how long
    /// it ran (overlapping the downloads).
    pub(crate) async fn finish(self) -> Result<(Unpacked, Duration)> {
        let unpacked = self.job.await??;
        Ok((unpacked, self.started.elapsed()))
    }
}

/// Where an applier reads a layer from.
enum Input {
    /// The committed blob in the content store.
    Store,
    /// The ingest, as the download writes it.
    Follow(Follower, Arc<Feed>),
}

impl Engine {
    /// Starts unpacking `manifests` (stored already) under one of the
    /// engine's `max_concurrent_unpacks` slots, off the runtime (it touches
    /// the disk throughout), holding `lease` until it ends. With `feeds`,
    /// configs and layers may still be downloading: each blob is awaited,
    /// or followed as it arrives.
    pub(crate) fn start_unpack(
        &self,
        manifests: Vec<Descriptor>,
        options: &PullOptions,
        lease: Lease,
        feeds: Option<Arc<Feeds>>,
    ) -> Unpacking {
        let engine = self.clone();
        let snapshotter = options.snapshotter.clone();
        let progress = Progress::new(options.progress.clone());
        let job = tokio::spawn(async move {
            let permit = engine
                .shared
                .unpacks
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                engine.unpack_manifests(
                    snapshotter.as_deref(),
                    &manifests,
                    &lease,
                    &progress,
                    feeds.as_deref(),
                )
            })
            .await?
        });
        Unpacking {
            job,
            started: Instant::now(),
        }
    }

    /// Unpacks every stored manifest of `manifests` into `snapshotter`
    /// (`None`: the default one). With `feeds`, configs and layers may still
    /// be downloading. Blocking: run it on a blocking thread, holding
    /// `lease`.
    pub(crate) fn unpack_manifests(
        &self,
        snapshotter: Option<&str>,
        manifests: &[Descriptor],
        lease: &Lease,
        progress: &Progress,
        feeds: Option<&Feeds>,
    ) -> Result<Unpacked> {
        let snapshotter = self.snapshotter(snapshotter)?;
        let mut chain_ids = Vec::new();
        for manifest in manifests {
            let (config, layers) = self.image_manifest(manifest)?;
            if let Some(feeds) = feeds
                && feeds.get(config.digest()).wait_end() == End::Failed
            {
                return Err(Error::DownloadFailed {
                    digest: config.digest().to_string(),
                });
            }
            let chain = self.chain_of(config, layers)?;
            if chain.layers.is_empty() {
                // An empty image: nothing to unpack.
                continue;
            }
            chain_ids.push(self.unpack_blocking(
                snapshotter.as_ref(),
                &chain,
                lease.id(),
                progress,
                feeds,
            )?);
        }
        Ok(Unpacked {
            snapshotter: snapshotter.name().to_string(),
            chain_ids,
        })
    }

    /// Reads a stored image manifest and its config into a [`LayerChain`].
    pub(crate) fn layer_chain(&self, manifest_descriptor: &Descriptor) -> Result<LayerChain> {
        let (config, layers) = self.image_manifest(manifest_descriptor)?;
        self.chain_of(config, layers)
    }

    /// The config and layer descriptors of a stored image manifest.
    pub(crate) fn image_manifest(
        &self,
        manifest_descriptor: &Descriptor,
    ) -> Result<(Descriptor, Vec<Descriptor>)> {
        let body = self
            .content
            .read_blob(manifest_descriptor.digest(), self.max_manifest_size())?;
        let Children::Manifest { config, layers } =
            manifest::children(manifest_descriptor.media_type().as_ref(), &body)?
        else {
            return Err(Error::InvalidBlob {
                digest: manifest_descriptor.digest().to_string(),
                detail: "not an image manifest".to_string(),
            });
        };
        Ok((config, layers))
    }

    /// A manifest's layers paired with the diffIDs its stored config lists.
    pub(crate) fn chain_of(
        &self,
        config: Descriptor,
        layers: Vec<Descriptor>,
    ) -> Result<LayerChain> {
        let config_body = self
            .content
            .read_blob(config.digest(), self.max_manifest_size())?;
        let diff_ids = diff_ids_of(config.digest(), &config_body)?;
        if diff_ids.len() != layers.len() {
            return Err(Error::InvalidBlob {
                digest: config.digest().to_string(),
                detail: format!(
                    "config lists {} diff_ids but the manifest has {} layers",
                    diff_ids.len(),
                    layers.len()
                ),
            });
        }
        Ok(LayerChain {
            layers,
            diff_ids,
            config,
        })
    }

    /// Unpacks every layer of `chain` into `snapshotter`, returning the top
    /// chainID. Blocking: run it on a blocking thread.
    pub(crate) fn unpack_blocking(
        &self,
        snapshotter: &dyn Snapshotter,
        chain: &LayerChain,
        lease: &str,
        progress: &Progress,
        feeds: Option<&Feeds>,
    ) -> Result<Digest> {
        let chain_ids = chain.chain_ids();
        let top = chain_ids
            .last()
            .cloned()
            .ok_or_else(|| Error::InvalidBlob {
                digest: chain.config.digest().to_string(),
                detail: "image has no layers to unpack".to_string(),
            })?;
        let layers = chain
            .layers
            .iter()
            .enumerate()
            .map(|(i, descriptor)| {
                Ok(Layer {
                    snapshotter,
                    chain_id: &chain_ids[i],
                    parent: i.checked_sub(1).map(|below| chain_ids[below].as_ref()),
                    descriptor,
                    diff_id: &chain.diff_ids[i],
                    compression: layer_compression(descriptor)?,
                    feed: feeds.map(|feeds| feeds.get(descriptor.digest())),
                    order: None,
                    lease,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if is_committed(snapshotter, top.as_ref()) {
            // No snapshot is removed while it has children, so below a
            // committed top every layer is committed too: a warm re-pull
            // reports them without a thread or a lookup per layer.
            for layer in &layers {
                progress.send(Event::LayerAlreadyUnpacked {
                    digest: layer.descriptor.digest().clone(),
                    chain_id: layer.chain_id.clone(),
                });
            }
        } else if snapshotter.rebases() && layers.len() > 1 {
            self.unpack_in_parallel(layers, progress)?;
        } else {
            for layer in &layers {
                self.unpack_layer(layer, progress)?;
            }
        }
        // containerd's GC edge from the config to the image's top snapshot.
        let label = labels::snapshot_ref(snapshotter.name());
        self.db.put_content(
            chain.config.digest(),
            chain.config.size(),
            &Labels::from([(label, top.to_string())]),
        )?;
        Ok(top)
    }

    /// Unpacks `layers` (bottom first) at the same time, each into its own
    /// snapshot, rebased onto the one below when committed; [`Order`] keeps
    /// what must stay bottom to top. As many layers at once as there are
    /// cores, at least two.
    fn unpack_in_parallel(&self, mut layers: Vec<Layer<'_>>, progress: &Progress) -> Result<()> {
        let order = Arc::new(Order::new(layers.len()));
        for (i, layer) in layers.iter_mut().enumerate() {
            layer.order = Some((order.clone(), i));
        }
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8)
            .min(layers.len());
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<Result<()>>>> =
            layers.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(layer) = layers.get(i) else {
                            break;
                        };
                        let result = self.unpack_layer(layer, progress).and_then(|()| {
                            Ok(layer.snapshotter.fs_dir(layer.chain_id.as_ref())?)
                        });
                        let result = match result {
                            Ok(dir) => {
                                order.committed(i, dir);
                                Ok(())
                            }
                            Err(error) => {
                                order.failed(i);
                                order.report(i, None, progress);
                                Err(error)
                            }
                        };
                        *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    }
                });
            }
        });
        // The lowest layer's error is the cause; those above it only saw
        // that a layer below failed.
        for result in results {
            if let Some(Err(error)) = result.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Unpacks one layer into the snapshot named by its chainID, unless it
    /// is committed already.
    fn unpack_layer(&self, layer: &Layer<'_>, progress: &Progress) -> Result<()> {
        let key = layer.chain_id.as_ref();
        let snapshotter = layer.snapshotter;
        // In a parallel unpack, in layer order (see `Order::report`).
        let report = |event: Event| match &layer.order {
            Some((order, i)) => order.report(*i, Some(event), progress),
            None => progress.send(event),
        };
        let already = || {
            report(Event::LayerAlreadyUnpacked {
                digest: layer.descriptor.digest().clone(),
                chain_id: layer.chain_id.clone(),
            });
        };
        if is_committed(snapshotter, key) {
            already();
            return Ok(());
        }
        if let Some((order, i)) = &layer.order {
            order.wait_below_locked(*i).map_err(below_failed)?;
        }
        let _lock = snapshotter.lock(key)?;
        if let Some((order, i)) = &layer.order {
            order.locked(*i);
        }
        // Another pull may have committed it while we waited for the lock.
        if is_committed(snapshotter, key) {
            already();
            return Ok(());
        }
        // The lease keeps the snapshot from a collector, should this process
        // die, until the image record that needs it exists. A snapshot
        // committed already needs none: the collector waits for this pull.
        self.db.add_lease_resource(
            layer.lease,
            &LeaseResource::snapshot(snapshotter.name(), key.to_string()),
        )?;
        match layer.feed.as_ref().and_then(|feed| feed.follow()) {
            Some(follower) => {
                let feed = layer.feed.clone().expect("a follower comes from a feed");
                match self.apply_snapshot(layer, Input::Follow(follower, feed.clone()), progress) {
                    Err(error) if feed.rewound() && feed.wait_end() == End::Stored => {
                        tracing::debug!(
                            layer = %layer.descriptor.digest(), %error,
                            "the layer's download restarted under the unpacker; applying the stored blob"
                        );
                        self.apply_snapshot(layer, Input::Store, progress)?;
                    }
                    other => other?,
                }
            }
            None => {
                if layer
                    .feed
                    .as_ref()
                    .is_some_and(|feed| feed.wait_end() == End::Failed)
                {
                    return Err(Error::DownloadFailed {
                        digest: layer.descriptor.digest().to_string(),
                    });
                }
                self.apply_snapshot(layer, Input::Store, progress)?;
            }
        }
        report(Event::LayerUnpacked {
            digest: layer.descriptor.digest().clone(),
            chain_id: layer.chain_id.clone(),
        });
        Ok(())
    }

    /// Applies a layer into a fresh active snapshot and commits it under
    /// its chainID; on any failure the active snapshot is removed, so a
    /// committed snapshot is always a verified one. In a parallel unpack
    /// the snapshot is prepared without a parent and rebased onto it at
    /// commit.
    fn apply_snapshot(&self, layer: &Layer<'_>, input: Input, progress: &Progress) -> Result<()> {
        let snapshotter = layer.snapshotter;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let active = format!(
            "extract-{}-{nanos}-{}",
            std::process::id(),
            layer.chain_id.digest()
        );
        let prepared_parent = match layer.order {
            Some(_) => None,
            None => layer.parent,
        };
        snapshotter.prepare(&active, prepared_parent, Labels::new())?;
        let applied = self.apply_into(&active, layer, input, progress);
        let committed = applied.and_then(|()| {
            let labels = Labels::from([
                (
                    SNAPSHOT_BLOB_LABEL.to_string(),
                    layer.descriptor.digest().to_string(),
                ),
                (
                    SNAPSHOT_DIFF_ID_LABEL.to_string(),
                    layer.diff_id.to_string(),
                ),
                (
                    SNAPSHOT_MEDIA_TYPE_LABEL.to_string(),
                    layer.descriptor.media_type().to_string(),
                ),
            ]);
            match &layer.order {
                Some((order, i)) => {
                    order.wait_below_committed(*i).map_err(below_failed)?;
                    snapshotter.commit_onto(
                        layer.chain_id.as_ref(),
                        &active,
                        layer.parent,
                        labels,
                    )?;
                }
                None => snapshotter.commit(layer.chain_id.as_ref(), &active, labels)?,
            }
            Ok(())
        });
        if let Err(error) = committed {
            if let Err(cleanup) = snapshotter.remove(&active) {
                tracing::warn!(%cleanup, active, "could not remove a failed unpack's snapshot");
            }
            return Err(error);
        }
        Ok(())
    }

    /// Applies a layer into active snapshot `active`, verifying its diffID;
    /// a followed download must also end with the blob stored.
    fn apply_into(
        &self,
        active: &str,
        layer: &Layer<'_>,
        input: Input,
        progress: &Progress,
    ) -> Result<()> {
        let target = layer.snapshotter.apply_target(active)?;
        let (source, feed): (Box<dyn Read>, _) = match input {
            Input::Store => (
                Box::new(self.content.open_blob(layer.descriptor.digest())?),
                None,
            ),
            Input::Follow(follower, feed) => (Box::new(follower), Some(feed)),
        };
        let reader = ProgressReader {
            inner: std::io::BufReader::with_capacity(256 << 10, source),
            digest: layer.descriptor.digest().clone(),
            total: layer.descriptor.size(),
            current: 0,
            reported: 0,
            progress,
            downloading: feed.clone(),
        };
        let late_lowers = layer
            .order
            .clone()
            .map(|(order, i)| LateLowers::new(move || order.lowers_below(i)));
        let options = ApplyOptions {
            whiteouts: target.whiteouts,
            lowers: target.lowers,
            late_lowers,
            expected_diff_id: Some(layer.diff_id.clone()),
            ..ApplyOptions::default()
        };
        let applied = hoist_archive::apply_layer(&target.dir, reader, layer.compression, &options)
            .map_err(|source| Error::Unpack {
                layer: layer.descriptor.digest().to_string(),
                source,
            })?;
        for skipped in &applied.skipped {
            tracing::warn!(layer = %layer.descriptor.digest(), entry = %skipped, "skipped while unpacking");
        }
        // The applier may stop before the blob's last bytes (tar padding);
        // the snapshot still waits for the blob's own verification, and
        // counts only if the bytes it read are the ones verified (no
        // rewind since).
        if let Some(feed) = feed
            && (feed.wait_end() != End::Stored || feed.rewound())
        {
            return Err(Error::DownloadFailed {
                digest: layer.descriptor.digest().to_string(),
            });
        }
        Ok(())
    }
}

/// One layer to unpack, where to, and as what.
struct Layer<'a> {
    snapshotter: &'a dyn Snapshotter,
    /// The name of the snapshot to commit.
    chain_id: &'a Digest,
    parent: Option<&'a str>,
    descriptor: &'a Descriptor,
    diff_id: &'a Digest,
    compression: ArchiveCompression,
    /// Its download, when the pull unpacks while downloading.
    feed: Option<Arc<Feed>>,
    /// In a parallel unpack: the unpack's order and this layer's place in it.
    order: Option<(Arc<Order>, usize)>,
    /// The pull's lease.
    lease: &'a str,
}

/// The error of a layer whose lower layer failed (never the one reported:
/// the lower layer's own error is).
fn below_failed(_: order::BelowFailed) -> Error {
    Error::Task("a layer below failed to unpack".to_string())
}

pub(crate) fn is_committed(snapshotter: &dyn Snapshotter, key: &str) -> bool {
    matches!(snapshotter.stat(key), Ok(info) if info.kind == SnapshotKind::Committed)
}

/// The compression a layer's media type declares; the applier checks it
/// against the stream's magic bytes.
pub(crate) fn layer_compression(layer: &Descriptor) -> Result<ArchiveCompression> {
    let media_type = layer.media_type().to_string();
    if media_type::is_encrypted(&media_type) {
        return Err(Error::UnsupportedLayer {
            layer: layer.digest().to_string(),
            media_type,
            hint: "encrypted layers cannot be unpacked; decryption is not supported",
        });
    }
    match media_type::classify(&media_type) {
        Kind::Layer(Compression::None) => Ok(ArchiveCompression::None),
        Kind::Layer(Compression::Gzip) => Ok(ArchiveCompression::Gzip),
        Kind::Layer(Compression::Zstd) => Ok(ArchiveCompression::Zstd),
        _ => Err(Error::UnsupportedLayer {
            layer: layer.digest().to_string(),
            media_type,
            hint: "not a filesystem layer; pull without unpacking to store it",
        }),
    }
}

/// The `rootfs.diff_ids` of an image config.
fn diff_ids_of(config: &Digest, body: &[u8]) -> Result<Vec<Digest>> {
    let invalid = |detail: String| Error::InvalidBlob {
        digest: config.to_string(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("config is not JSON: {e}")))?;
    let ids = value
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .ok_or_else(|| invalid("config has no rootfs.diff_ids".to_string()))?;
    ids.iter()
        .map(|id| {
            let text = id
                .as_str()
                .ok_or_else(|| invalid("a diff_id is not a string".to_string()))?;
            hoist_oci::digest::parse_digest(text).map_err(Error::from)
        })
        .collect()
}

/// Counts compressed bytes as the applier reads them, for progress.
struct ProgressReader<'a, R> {
    inner: R,
    digest: Digest,
    total: u64,
    current: u64,
    reported: u64,
    progress: &'a Progress,
    /// While this download runs, extraction is not reported: renderers
    /// (docker's status lines above all) show a layer downloading, then
    /// extracting, as the applier catches up.
    downloading: Option<Arc<Feed>>,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.current += n as u64;
        if (self.current - self.reported >= PROGRESS_STEP
            || (n == 0 && self.current != self.reported))
            && self.downloading.as_ref().is_none_or(|feed| feed.ended())
        {
            self.reported = self.current;
            self.progress.send(Event::Extracting {
                digest: self.digest.clone(),
                current: self.current,
                total: self.total,
            });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_oci::sha256_digest;

    #[test]
    fn diff_ids_are_read_from_the_config() {
        let a = sha256_digest(b"a");
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{a}"]}}}}"#);
        let ids = diff_ids_of(&sha256_digest(config.as_bytes()), config.as_bytes()).unwrap();
        assert_eq!(ids, vec![a]);
    }

    #[test]
    fn config_without_diff_ids_is_invalid() {
        let config = br#"{"rootfs":{}}"#;
        let error = diff_ids_of(&sha256_digest(config), config).unwrap_err();
        assert!(error.to_string().contains("rootfs.diff_ids"), "{error}");
    }
}
