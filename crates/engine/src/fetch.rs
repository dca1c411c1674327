//! Walking an image's tree into the content store, as containerd's
//! `images.Handlers`: each node is fetched (or found stored), then a handler
//! for its kind decides its children. An index chooses platforms, a manifest
//! queues its config and layers (skipping layers whose snapshots already
//! hold them), a schema 1 manifest is converted; every node is recorded with
//! its GC references. The leaves then download concurrently under the
//! engine's limit.
//!
//! [`Session`] is one pull's state, shared by this module, `download`,
//! `schema1` and the steps in `pull`.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::Poll;

use futures_util::{StreamExt, TryStreamExt};
use hoist_metadata::Labels;
use hoist_oci::manifest::{self, Children};
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{Descriptor, Digest, Platform, PlatformMatcher, Reference};
use hoist_remote::{Repository, Resolver};

use crate::download::Pending;
use crate::feed::{End, Feeds};
use crate::lease::Lease;
use crate::progress::{BlobKind, Event, Progress};
use crate::pull::{Fetched, PlatformSelection, PullOptions, platforms_of};
use crate::unpack::Unpacking;
use crate::{Engine, Error, Result, labels};

/// One pull's state: where from, how, and what it holds.
pub(crate) struct Session<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) reference: &'a Reference,
    pub(crate) repository: Repository,
    /// The engine's registry client with this pull's credentials.
    pub(crate) resolver: Resolver,
    pub(crate) options: &'a PullOptions,
    /// The pull's hold on the store; every blocking task keeps a clone.
    /// `None` only while resolving, which writes nothing.
    pub(crate) lease: Option<Lease>,
    pub(crate) progress: Progress,
    /// Labels every stored blob gets: where it came from.
    pub(crate) source_labels: Labels,
    /// Set when the pull unpacks while it downloads: how the unpacker
    /// follows each blob ([`crate::feed`]).
    pub(crate) feeds: Option<Arc<Feeds>>,
}

/// What the walk has found so far.
#[derive(Default)]
struct Walk {
    /// Manifests and indexes to visit, with whether their layers are wanted.
    queue: Vec<(Descriptor, bool)>,
    seen: HashSet<Digest>,
    /// Configs and layers to download once the walk is done.
    leaves: Vec<Pending>,
    /// The chosen image manifests and their configs.
    manifests: Vec<Descriptor>,
    configs: Vec<Digest>,
    blobs: usize,
    downloaded: u64,
    image_labels: Labels,
    converted_root: Option<Descriptor>,
}

impl Walk {
    /// What the fetch stored, once the leaves (`downloaded` bytes) are in.
    fn fetched(self, root: &Descriptor, downloaded: u64) -> Fetched {
        Fetched {
            target: self.converted_root.unwrap_or_else(|| root.clone()),
            blobs: self.blobs,
            downloaded: self.downloaded + downloaded,
            manifests: self.manifests,
            configs: self.configs,
            image_labels: self.image_labels,
        }
    }
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        reference: &'a Reference,
        options: &'a PullOptions,
        lease: Option<Lease>,
    ) -> Session<'a> {
        let repository = Repository {
            domain: reference.domain().to_string(),
            name: reference.repository().to_string(),
        };
        let source_labels = Labels::from([(
            labels::distribution_source(reference.domain()),
            reference.repository().to_string(),
        )]);
        Session {
            engine,
            reference,
            repository,
            resolver: engine
                .shared
                .resolver
                .with_credentials(options.credentials.clone()),
            options,
            lease,
            progress: Progress::new(options.progress.clone()),
            source_labels,
            feeds: None,
        }
    }

    /// Resolves the reference; a stored digest reference needs no network
    /// (as BuildKit's puller does).
    pub(crate) async fn resolve(&self) -> Result<Descriptor> {
        let reference = self.reference.to_string();
        self.progress.send(Event::Resolving {
            reference: reference.clone(),
        });
        let descriptor = match self.stored_descriptor().await? {
            Some(descriptor) => descriptor,
            None => {
                self.resolver
                    .resolve(&self.repository, &self.reference.object())
                    .await?
            }
        };
        self.progress.send(Event::Resolved {
            reference,
            descriptor: Box::new(descriptor.clone()),
        });
        Ok(descriptor)
    }

    async fn stored_descriptor(&self) -> Result<Option<Descriptor>> {
        let Some(digest) = self.reference.digest().cloned() else {
            return Ok(None);
        };
        // A manifest is read and hashed: off the runtime.
        let store = self.engine.content.clone();
        let limit = self.engine.max_manifest_size();
        self.blocking(move || -> Result<Option<Descriptor>> {
            let Some(info) = store.info(&digest)? else {
                return Ok(None);
            };
            let body = store.read_blob(&digest, limit)?;
            Ok(manifest::detect_media_type(&body).map(|media_type| {
                Descriptor::new(media_type.as_str().into(), info.size, digest.clone())
            }))
        })
        .await?
    }

    /// Walks the tree below `root`: manifests are fetched one by one (they
    /// are small and decide what comes next), then configs and layers of all
    /// chosen manifests download concurrently. With `all_metadata`, the
    /// manifests and configs of every platform are fetched too, but only the
    /// chosen platforms' layers.
    pub(crate) async fn fetch_tree(&self, root: &Descriptor) -> Result<Fetched> {
        let mut walk = self.walk_manifests(root).await?;
        let downloaded = self.fetch_leaves(&mut walk, || {}).await?;
        Ok(walk.fetched(root, downloaded))
    }

    /// Like [`fetch_tree`](Self::fetch_tree), applying each layer into its
    /// snapshot while it downloads: once the manifests are known, the
    /// unpacker starts and follows the downloads through their feeds.
    pub(crate) async fn fetch_tree_unpacking(
        &mut self,
        root: &Descriptor,
    ) -> Result<(Fetched, Unpacking)> {
        let feeds = Arc::new(Feeds::default());
        self.feeds = Some(feeds.clone());
        let mut walk = self.walk_manifests(root).await?;
        let manifests = walk.manifests.clone();
        let lease = self.lease.clone().expect("writes run under a lease");
        let mut unpacking = None;
        // The unpacker starts once every blob has been looked at, so that
        // its events come after the store's "already exists" ones (the
        // docker forms decide "Pulling fs layer" from those).
        let downloaded = self
            .fetch_leaves(&mut walk, || {
                unpacking = Some(self.engine.start_unpack(
                    manifests,
                    self.options,
                    lease,
                    Some(feeds.clone()),
                ));
            })
            .await;
        let unpacking = unpacking.expect("started after the first poll");
        // Whatever the unpacker still waits for is stored now, or never
        // will be.
        feeds.close(if downloaded.is_ok() {
            End::Stored
        } else {
            End::Failed
        });
        let downloaded = downloaded?;
        Ok((walk.fetched(root, downloaded), unpacking))
    }

    /// Walks the manifests below `root`, fetching each, to the configs and
    /// layers to download.
    async fn walk_manifests(&self, root: &Descriptor) -> Result<Walk> {
        let mut walk = Walk {
            queue: vec![(root.clone(), true)],
            ..Walk::default()
        };
        while let Some((descriptor, wanted)) = walk.queue.pop() {
            if !walk.seen.insert(descriptor.digest().clone()) {
                continue;
            }
            if media_type::classify(descriptor.media_type().as_ref()) == Kind::Schema1Manifest {
                // Only a root can be schema 1: indexes list schema 2 manifests.
                if !self.options.allow_schema1 || descriptor.digest() != root.digest() {
                    return Err(self.schema1_refused(&descriptor));
                }
                let converted = self.convert_schema1(&descriptor).await?;
                walk.converted_root = Some(converted.clone());
                walk.queue.push((converted, wanted));
                continue;
            }
            walk.blobs += 1;
            let (body, bytes) = self.fetch_manifest(&descriptor).await?;
            walk.downloaded += bytes;
            if descriptor.digest() == root.digest() {
                walk.image_labels = artifact_labels(&body);
            }
            let gc_labels = match manifest::children(descriptor.media_type().as_ref(), &body)? {
                Children::Index(children) => {
                    let name = self.reference.to_string();
                    let (gc_labels, queued) = index_edges(self.options, &name, &children, wanted)?;
                    walk.queue.extend(queued);
                    gc_labels
                }
                Children::Manifest { config, layers } => {
                    let stored = bytes == 0;
                    self.handle_manifest(&descriptor, config, layers, wanted, stored, &mut walk)
                        .await?
                }
                _ => Labels::new(),
            };
            self.record_content(&descriptor, gc_labels).await?;
        }
        Ok(walk)
    }

    /// An image manifest: queue its config, and its layers when the
    /// platform is wanted (but not the layers whose snapshots already hold
    /// them while their blobs were discarded); returns its GC labels.
    async fn handle_manifest(
        &self,
        descriptor: &Descriptor,
        config: Descriptor,
        layers: Vec<Descriptor>,
        wanted: bool,
        stored: bool,
        walk: &mut Walk,
    ) -> Result<Labels> {
        let unpacked = wanted && self.options.unpack;
        let name = self.reference.to_string();
        let mut gc_labels = manifest_gc_labels(&config, &layers, unpacked, &name)?;
        walk.leaves
            .push(Pending::new(config.clone(), BlobKind::Config));
        if !wanted {
            return Ok(gc_labels);
        }
        walk.manifests.push(descriptor.clone());
        walk.configs.push(config.digest().clone());
        let unpacked = if stored {
            self.unpacked_layers(descriptor, &config, &layers).await?
        } else {
            // A manifest new to this store has no snapshots yet.
            0
        };
        for (i, layer) in layers.into_iter().enumerate() {
            if i < unpacked && !self.engine.content.contains(layer.digest()) {
                // Its snapshot already holds it (the blob was discarded), so
                // this pull needs no bytes of it, as containerd's unpacker
                // skips it.
                self.progress.send(Event::AlreadyExists {
                    digest: layer.digest().clone(),
                    kind: BlobKind::Layer,
                    size: layer.size(),
                });
                continue;
            }
            gc_labels.insert(labels::layer_ref(i), layer.digest().to_string());
            walk.leaves.push(self.layer_pending(layer)?);
        }
        Ok(gc_labels)
    }

    /// Downloads every config and layer the walk found, each once; returns
    /// the bytes downloaded. `started` runs once every blob has been looked
    /// at (the stored ones have said "already exists"), before any is
    /// waited for.
    async fn fetch_leaves(&self, walk: &mut Walk, started: impl FnOnce()) -> Result<u64> {
        let mut leaves = std::mem::take(&mut walk.leaves);
        leaves.retain(|pending| walk.seen.insert(pending.descriptor.digest().clone()));
        walk.blobs += leaves.len();
        for pending in &leaves {
            self.progress.send(Event::Waiting {
                digest: pending.descriptor.digest().clone(),
                kind: pending.kind,
                size: pending.descriptor.size(),
            });
        }
        // What is stored already is reported at once and recorded in one
        // metadata transaction (rather than one per blob), while the rest
        // starts.
        let (stored, leaves): (Vec<_>, Vec<_>) = leaves
            .into_iter()
            .partition(|pending| self.engine.content.contains(pending.descriptor.digest()));
        let recorded = self.already_stored(&stored);
        // Every other blob gets a future at once; the engine's semaphore
        // bounds downloads.
        let concurrency = leaves.len().max(1);
        let downloads = futures_util::stream::iter(leaves)
            .map(|pending| async move { self.fetch_blob(&pending).await })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<u64>>();
        let mut downloads = std::pin::pin!(downloads);
        // The first poll polls every blob's future once (collecting goes on
        // until all are pending), and a stored blob reports it in its first.
        let first = std::future::poll_fn(|cx| Poll::Ready(downloads.as_mut().poll(cx))).await;
        started();
        let bytes = match first {
            Poll::Ready(bytes) => bytes?,
            Poll::Pending => downloads.await?,
        };
        if let Some(recorded) = recorded {
            recorded.await??;
        }
        Ok(bytes.iter().sum())
    }

    /// Reports blobs found in the store as already there, tells the
    /// unpacker to read them from the store, and records them on a blocking
    /// thread, whose handle it returns (`None` when there are none).
    fn already_stored(&self, stored: &[Pending]) -> Option<tokio::task::JoinHandle<Result<()>>> {
        if stored.is_empty() {
            return None;
        }
        for pending in stored {
            self.progress.send(Event::AlreadyExists {
                digest: pending.descriptor.digest().clone(),
                kind: pending.kind,
                size: pending.descriptor.size(),
            });
        }
        let blobs = stored
            .iter()
            .map(|pending| {
                (
                    pending.descriptor.digest().clone(),
                    pending.descriptor.size(),
                )
            })
            .collect::<Vec<_>>();
        if let Some(feeds) = &self.feeds {
            for pending in stored {
                feeds.source(pending.descriptor.digest()).end(End::Stored);
            }
        }
        let db = self.engine.db.clone();
        let labels = self.source_labels.clone();
        Some(self.blocking(move || Ok(db.put_contents(&blobs, &labels)?)))
    }

    /// How many bottom layers of a stored manifest need no blob because
    /// this pull unpacks and their chainID snapshot is committed already:
    /// only asked when a layer blob is missing (discarded after unpacking),
    /// and then it costs fetching the config first.
    async fn unpacked_layers(
        &self,
        manifest: &Descriptor,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> Result<usize> {
        if !self.options.unpack
            || layers
                .iter()
                .all(|l| self.engine.content.contains(l.digest()))
        {
            return Ok(0);
        }
        self.fetch_blob(&Pending::new(config.clone(), BlobKind::Config))
            .await?;
        let engine = self.engine.clone();
        let manifest = manifest.clone();
        let snapshotter = self.options.snapshotter.clone();
        self.blocking(move || -> Result<usize> {
            let chain = engine.layer_chain(&manifest)?;
            let snapshotter = engine.snapshotter(snapshotter.as_deref())?;
            let chain_ids = chain.chain_ids();
            Ok(chain_ids
                .iter()
                .rposition(|id| crate::unpack::is_committed(snapshotter.as_ref(), id.as_ref()))
                .map_or(0, |top| top + 1))
        })
        .await?
    }

    /// A layer to download. Non-distributable ("foreign") layers come from
    /// the URLs in their descriptor, and only when the user allows it.
    fn layer_pending(&self, layer: Descriptor) -> Result<Pending> {
        let kind = layer_kind(&layer);
        let foreign = media_type::is_nondistributable(layer.media_type().as_ref());
        if foreign && !self.options.allow_nondistributable {
            return Err(Error::ForeignLayer {
                layer: layer.digest().to_string(),
                urls: layer.urls().clone().unwrap_or_default(),
            });
        }
        Ok(Pending {
            descriptor: layer,
            kind,
            foreign,
        })
    }

    /// Records a stored blob in the metadata store with where it came from
    /// and `gc_labels`, merged into any labels it has; off the runtime.
    pub(crate) async fn record_content(
        &self,
        descriptor: &Descriptor,
        gc_labels: Labels,
    ) -> Result<()> {
        let mut labels = self.source_labels.clone();
        labels.extend(gc_labels);
        let db = self.engine.db.clone();
        let digest = descriptor.digest().clone();
        let size = descriptor.size();
        self.blocking(move || db.put_content(&digest, size, &labels))
            .await??;
        Ok(())
    }

    /// Runs blocking work (disk, flock, applying layers) off the runtime,
    /// holding the pull's lease (and so the root lock) for as long as it
    /// runs.
    pub(crate) fn blocking<F, R>(&self, work: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let held = self.lease.clone();
        tokio::task::spawn_blocking(move || {
            let _held = held;
            work()
        })
    }

    /// Adds a blob to the pull's lease before any byte of it is written, so
    /// a garbage collector running meanwhile leaves the ingest and the blob.
    pub(crate) async fn protect(&self, digest: &Digest) -> Result<()> {
        let lease = self.lease.clone().expect("writes run under a lease");
        let digest = digest.clone();
        self.blocking(move || lease.protect_blocking(&digest))
            .await?
    }
}

/// The GC labels an image manifest's record starts with (the edge to its
/// config), once a manifest to unpack has passed [`check_unpackable`]; a
/// pull and a layout import both begin a manifest with this.
pub(crate) fn manifest_gc_labels(
    config: &Descriptor,
    layers: &[Descriptor],
    unpacked: bool,
    name: &str,
) -> Result<Labels> {
    if unpacked {
        check_unpackable(config, layers, name)?;
    }
    Ok(Labels::from([(
        labels::config_ref(),
        config.digest().to_string(),
    )]))
}

/// The kind of blob a manifest's layer descriptor is: a filesystem layer,
/// or something else a manifest lists as a layer (an artifact's blob).
pub(crate) fn layer_kind(layer: &Descriptor) -> BlobKind {
    match media_type::classify(layer.media_type().as_ref()) {
        Kind::Layer(_) => BlobKind::Layer,
        _ => BlobKind::Other,
    }
}

/// Refuses, before any layer is fetched, an image that will not unpack: an
/// artifact (its config is not an image config), or a layer that is
/// encrypted or not a filesystem layer. `name` names the image in errors.
fn check_unpackable(config: &Descriptor, layers: &[Descriptor], name: &str) -> Result<()> {
    if media_type::classify(config.media_type().as_ref()) != Kind::Config {
        return Err(Error::NotAnImage {
            reference: name.to_string(),
            config_media_type: config.media_type().to_string(),
        });
    }
    for layer in layers {
        crate::unpack::layer_compression(layer)?;
    }
    Ok(())
}

/// The manifests of an index that match `selection`: the best match per
/// requested platform (containerd's ordering), or all of them. `name`
/// names the image in the error when a platform has no match.
pub(crate) fn choose_platforms(
    selection: &PlatformSelection,
    children: &[Descriptor],
    name: &str,
) -> Result<Vec<Descriptor>> {
    let wanted = match selection {
        PlatformSelection::All => return Ok(children.to_vec()),
        PlatformSelection::Host => vec![Platform::host()],
        PlatformSelection::Only(platforms) => platforms.clone(),
    };
    let mut chosen: Vec<Descriptor> = Vec::new();
    for platform in &wanted {
        let matcher = PlatformMatcher::only(platform.clone());
        let Some(best) = matcher.best_match(children).first().map(|d| (*d).clone()) else {
            return Err(Error::NoMatchingPlatform {
                reference: name.to_string(),
                wanted: platform.to_string(),
                available: platforms_of(children),
            });
        };
        if !chosen.iter().any(|c| c.digest() == best.digest()) {
            chosen.push(best);
        }
    }
    Ok(chosen)
}

/// An index's GC labels and the manifests to visit next, each with whether
/// its layers are wanted: the ones `options.platforms` chooses ([`choose_platforms`];
/// all of them with `options.all_metadata`, layers only for the chosen).
/// Edges are numbered by position in the whole index, so pulling another
/// platform later adds an edge instead of overwriting one. `name` names
/// the image in the error when a platform has no match.
pub(crate) fn index_edges(
    options: &PullOptions,
    name: &str,
    children: &[Descriptor],
    wanted: bool,
) -> Result<(Labels, Vec<(Descriptor, bool)>)> {
    let selected = &choose_platforms(&options.platforms, children, name)?;
    let visited = if options.all_metadata {
        children
    } else {
        selected
    };
    let mut gc_labels = Labels::new();
    let mut queue = Vec::new();
    for child in visited {
        let i = children
            .iter()
            .position(|c| c.digest() == child.digest())
            .unwrap_or_default();
        gc_labels.insert(labels::manifest_ref(i), child.digest().to_string());
        let wanted = wanted && selected.iter().any(|s| s.digest() == child.digest());
        queue.push((child.clone(), wanted));
    }
    Ok((gc_labels, queue))
}

/// The image labels an OCI 1.1 manifest carries: its `artifactType` and
/// the digest of its `subject`, so they survive in the metadata store.
pub(crate) fn artifact_labels(body: &[u8]) -> Labels {
    let mut found = Labels::new();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return found;
    };
    if let Some(artifact_type) = value.get("artifactType").and_then(|v| v.as_str()) {
        found.insert(labels::ARTIFACT_TYPE.to_string(), artifact_type.to_string());
    }
    if let Some(subject) = value.pointer("/subject/digest").and_then(|v| v.as_str()) {
        found.insert(labels::SUBJECT.to_string(), subject.to_string());
    }
    found
}
