//! The pull pipeline, readable top to bottom in [`Engine::pull`].
//!
//! A pull resolves a reference to a root descriptor, walks the tree below it
//! (index → manifests of the chosen platforms → config and layers), stores
//! every blob verified in the content store, records the GC references
//! between blobs, and finally registers the image. Details live in the
//! `Session` helpers below; the order of steps lives in `pull` alone.
//!
//! Crash ordering: a blob becomes visible only by the content store's atomic
//! rename after verification; the image record is written only after every
//! blob it needs is stored. A killed pull leaves ingests the next pull
//! resumes by offset, and a lease that marks its blobs as in use.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use hoist_content::{Committed, Expected, Writer};
use hoist_metadata::{Image, Labels, LeaseResource};
use hoist_oci::manifest::{self, Children};
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{Descriptor, Digest, Platform, PlatformMatcher, Reference};
use hoist_remote::{CredentialProvider, Repository, Resolver};
use tokio::sync::{Semaphore, mpsc};

use crate::lock::RootLock;
use crate::progress::{BlobKind, Event, Progress};
use crate::{Engine, EngineOptions, Error, Result, labels};

/// Manifests, indexes and configs are read whole; this bounds them.
pub(crate) const MAX_MANIFEST_SIZE: u64 = 8 << 20;

/// How often one blob download may resume after a broken stream.
const MAX_RESUMES: u32 = 5;

/// Progress for a blob is reported at most once per this many bytes, so a
/// fast link does not flood the channel...
const PROGRESS_STEP: u64 = 256 << 10;

/// ...or when this long passed since the last report, so a slow but moving
/// download still shows (and a progress timeout sees) that it moves.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What every pull of one engine shares: the registry client (connection
/// pools, token cache), the download and unpack limits, and the blobs being
/// fetched right now, so that concurrent pulls in one process fetch each
/// blob once.
pub(crate) struct Shared {
    resolver: Resolver,
    downloads: Arc<Semaphore>,
    pub(crate) unpacks: Arc<Semaphore>,
    in_flight: InFlight,
}

impl Shared {
    pub(crate) fn new(options: &EngineOptions) -> Result<Shared> {
        Ok(Shared {
            resolver: Resolver::new(options.registry.clone())?,
            downloads: Arc::new(Semaphore::new(options.max_concurrent_downloads.max(1))),
            unpacks: Arc::new(Semaphore::new(options.max_concurrent_unpacks.max(1))),
            in_flight: InFlight::default(),
        })
    }
}

/// One async lock per blob being fetched in this process. The content
/// store's ingest lock already keeps processes apart; this keeps tasks of
/// one process from even asking the registry twice (a manifest has no
/// ingest to wait on), and waiting on it holds no thread.
#[derive(Default)]
struct InFlight {
    locks: Mutex<HashMap<Digest, Weak<tokio::sync::Mutex<()>>>>,
}

impl InFlight {
    async fn lock(&self, digest: &Digest) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(digest).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(digest.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// Which platforms of a multi-platform image to pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlatformSelection {
    /// The best match for the machine hoist runs on.
    #[default]
    Host,
    /// The best match for each of these platforms.
    Only(Vec<Platform>),
    /// Every manifest of the index.
    All,
}

/// How to pull. How to reach registries and how many downloads run at once
/// are the engine's ([`EngineOptions`]), shared by all its pulls.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Which platforms to fetch from an index.
    pub platforms: PlatformSelection,
    /// This pull's credentials, asked before docker's `config.json` (a
    /// daemon passes each request's auth here).
    pub credentials: Option<Arc<dyn CredentialProvider>>,
    /// Also fetch the manifests and configs of every platform (layers of
    /// the chosen platforms only), as containerd's `--all-metadata`.
    pub all_metadata: bool,
    /// Convert a Docker schema 1 manifest to schema 2 while pulling (as
    /// containerd does); without it schema 1 is refused, as moby does.
    pub allow_schema1: bool,
    /// Fetch non-distributable ("foreign") layers from the URLs their
    /// descriptors list (https only, never with registry credentials);
    /// without it such a layer fails the pull.
    pub allow_nondistributable: bool,
    /// Unpack the layers into snapshots after fetching (`ctr`'s default).
    pub unpack: bool,
    /// After unpacking, let garbage collection drop the compressed layer
    /// blobs (the CRI's `discard_unpacked_layers`).
    pub discard_unpacked_layers: bool,
    /// The snapshotter to unpack into (`overlay` or `native`); `None` picks
    /// overlay where the kernel can mount it, native otherwise.
    pub snapshotter: Option<String>,
    /// Where progress events go; `None` to pull silently.
    pub progress: Option<mpsc::UnboundedSender<Event>>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platforms: PlatformSelection::Host,
            credentials: None,
            all_metadata: false,
            allow_schema1: false,
            allow_nondistributable: false,
            unpack: true,
            discard_unpacked_layers: false,
            snapshotter: None,
            progress: None,
        }
    }
}

/// What a successful pull produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Pulled {
    /// The image name as recorded (the normalized reference).
    pub name: String,
    /// The root descriptor: an index or a manifest.
    pub target: Descriptor,
    /// How many blobs the image has for the chosen platforms.
    pub blobs: usize,
    /// How many bytes were downloaded by this pull (0 when all was stored).
    pub downloaded: u64,
    /// The snapshotter the image was unpacked into, if it was unpacked.
    pub snapshotter: Option<String>,
    /// The top chainID of each unpacked manifest: the snapshot to mount.
    pub chain_ids: Vec<Digest>,
    /// The config digest of each chosen manifest, in the order pulled: the
    /// image id the CRI and docker report.
    pub configs: Vec<Digest>,
    /// How long unpacking took, if the pull unpacked.
    pub unpack_time: Option<Duration>,
    /// The compressed layers were let go after unpacking
    /// (`discard_unpacked_layers`): a garbage collection frees them.
    pub discarded_layers: bool,
}

impl Engine {
    /// Pulls `reference` into this engine's root.
    ///
    /// The reference is normalized the way docker does (`alpine` →
    /// `docker.io/library/alpine:latest`). A digest reference whose manifest
    /// is already stored resolves without touching the network.
    pub async fn pull(&self, reference: &str, options: PullOptions) -> Result<Pulled> {
        let reference = Reference::parse(reference)?;

        // 0. Keep garbage collection out while this pull writes. Blocking
        //    work the pull starts holds the lock too, so a pull cancelled
        //    mid-way keeps it until that work is done.
        let root = self.root.clone();
        let writing =
            Arc::new(tokio::task::spawn_blocking(move || RootLock::shared(&root)).await??);
        let session = Session::new(self, &reference, &options, writing);

        // 1. Resolve the reference to the root descriptor.
        let resolved = session.resolve().await?;

        // 2. Hold a lease while we write. It ends when the pull returns,
        //    success or failure; a pull cancelled or killed mid-way leaves it
        //    to expire, so a collector keeps what it wrote until then.
        let lease = session.begin_lease().await?;
        let pulled = async {
            // 3. Fetch the root, walk to the chosen manifests, fetch their blobs.
            let fetched = session.fetch_tree(&resolved, &lease).await?;

            // 4. Unpack the chosen manifests' layers into snapshots.
            let unpack_started = Instant::now();
            let unpacked = if options.unpack {
                Some(session.unpack(&fetched.manifests, &lease).await?)
            } else {
                None
            };
            let unpack_time = unpacked.is_some().then(|| unpack_started.elapsed());
            let discarded = options.discard_unpacked_layers && unpacked.is_some();
            if discarded {
                session.discard_layers(&fetched.manifests).await?;
            }

            // 5. Register the image; only now does it point at complete
            //    content. A schema 1 image is registered under its converted
            //    manifest.
            let target = fetched.converted_root.clone().unwrap_or(resolved);
            let name = reference.to_string();
            let up_to_date = session
                .register_image(&name, &target, unpacked.as_ref(), &fetched)
                .await?;
            Ok::<_, Error>((name, target, fetched, unpacked, up_to_date, unpack_time, discarded))
        }
        .await;
        session.end_lease(&lease).await;
        let (name, target, fetched, unpacked, up_to_date, unpack_time, discarded_layers) = pulled?;
        session.progress.send(Event::ImageDone {
            name: name.clone(),
            digest: target.digest().clone(),
            up_to_date,
        });
        let (snapshotter, chain_ids) = unpacked.unzip();
        Ok(Pulled {
            name,
            target,
            blobs: fetched.blobs,
            downloaded: fetched.downloaded,
            snapshotter,
            chain_ids: chain_ids.unwrap_or_default(),
            configs: fetched.configs,
            unpack_time,
            discarded_layers,
        })
    }
}

impl Engine {
    /// The tags of `reference`'s repository, as the registry lists them
    /// (for `pull --all-tags`; moby pulls every tag this way).
    pub async fn list_tags(
        &self,
        reference: &str,
        credentials: Option<Arc<dyn CredentialProvider>>,
    ) -> Result<Vec<String>> {
        let reference = Reference::parse(reference)?;
        let repository = Repository {
            domain: reference.domain().to_string(),
            name: reference.repository().to_string(),
        };
        let resolver = self.shared.resolver.with_credentials(credentials);
        Ok(resolver.tags(&repository).await?)
    }
}

/// One pull's state: where from, how, and the limits it runs under.
struct Session<'a> {
    engine: &'a Engine,
    reference: &'a Reference,
    repository: Repository,
    resolver: Resolver,
    options: &'a PullOptions,
    /// The root's GC lock, held shared; every blocking task holds a clone.
    writing: Arc<RootLock>,
    progress: Progress,
    /// Labels every stored blob gets: where it came from.
    source_labels: Labels,
}

/// What walking and fetching an image's tree produced.
struct Fetched {
    /// How many blobs the chosen platforms need.
    blobs: usize,
    /// Bytes downloaded by this pull.
    downloaded: u64,
    /// The image manifests chosen (one per platform), for unpacking.
    manifests: Vec<Descriptor>,
    /// The config of each chosen manifest.
    configs: Vec<Digest>,
    /// Labels the image record gets from its root manifest (OCI 1.1
    /// `artifactType` and `subject`).
    image_labels: Labels,
    /// The schema 2 manifest a schema 1 root was converted to; it replaces
    /// the resolved descriptor as the image's target.
    converted_root: Option<Descriptor>,
}

/// Whether opening an ingest waits for another writer of the blob.
#[derive(Clone, Copy)]
enum Wait {
    Block,
    Try,
}

/// What opening a blob's ingest found; short-lived, so the writer is not
/// boxed.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per download, never stored"
)]
enum Opened {
    /// The ingest is ours to write.
    Writer(Writer),
    /// Another writer holds it (only with [`Wait::Try`]).
    Busy,
    /// The blob is stored: someone finished it.
    Stored,
}

/// A blob to download, with its role in the image.
#[derive(Clone)]
struct Pending {
    descriptor: Descriptor,
    kind: BlobKind,
    /// Fetched from the descriptor's URLs rather than the registry.
    foreign: bool,
}

impl Pending {
    fn new(descriptor: Descriptor, kind: BlobKind) -> Pending {
        Pending {
            descriptor,
            kind,
            foreign: false,
        }
    }
}

impl<'a> Session<'a> {
    fn new(
        engine: &'a Engine,
        reference: &'a Reference,
        options: &'a PullOptions,
        writing: Arc<RootLock>,
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
            writing,
            progress: Progress::new(options.progress.clone()),
            source_labels,
        }
    }

    /// Resolves the reference; a stored digest reference needs no network
    /// (as BuildKit's puller does).
    async fn resolve(&self) -> Result<Descriptor> {
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
        self.blocking(move || -> Result<Option<Descriptor>> {
            let Some(info) = store.info(&digest)? else {
                return Ok(None);
            };
            let body = store.read_blob(&digest, MAX_MANIFEST_SIZE)?;
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
    async fn fetch_tree(&self, root: &Descriptor, lease: &str) -> Result<Fetched> {
        // (descriptor, whether its layers are wanted)
        let mut manifests = vec![(root.clone(), true)];
        let mut chosen = Vec::new();
        let mut configs = Vec::new();
        let mut leaves: Vec<Pending> = Vec::new();
        let mut seen = HashSet::new();
        let mut count = 0;
        let mut downloaded = 0;
        let mut image_labels = Labels::new();
        let mut converted_root = None;
        while let Some((descriptor, wanted)) = manifests.pop() {
            if !seen.insert(descriptor.digest().clone()) {
                continue;
            }
            if media_type::classify(descriptor.media_type().as_ref()) == Kind::Schema1Manifest {
                // Only a root can be schema 1: indexes list schema 2 manifests.
                if !self.options.allow_schema1 || descriptor.digest() != root.digest() {
                    return Err(self.schema1_refused(&descriptor));
                }
                let converted = self.convert_schema1(&descriptor, lease).await?;
                converted_root = Some(converted.clone());
                manifests.push((converted, wanted));
                continue;
            }
            count += 1;
            let (body, bytes) = self.fetch_manifest(&descriptor, lease).await?;
            downloaded += bytes;
            if descriptor.digest() == root.digest() {
                image_labels = artifact_labels(&body);
            }
            let media_type = descriptor.media_type().to_string();
            let mut gc_labels = Labels::new();
            match manifest::children(&media_type, &body)? {
                Children::Index(children) => {
                    let selected = self.select_platforms(&children)?;
                    let fetched: Vec<Descriptor> = if self.options.all_metadata {
                        children.clone()
                    } else {
                        selected.clone()
                    };
                    for child in fetched {
                        // Numbered by position in the whole index, so pulling
                        // another platform later adds an edge instead of
                        // overwriting this one.
                        let i = children
                            .iter()
                            .position(|c| c.digest() == child.digest())
                            .unwrap_or_default();
                        gc_labels.insert(labels::manifest_ref(i), child.digest().to_string());
                        let wanted =
                            wanted && selected.iter().any(|s| s.digest() == child.digest());
                        manifests.push((child, wanted));
                    }
                }
                Children::Manifest { config, layers } => {
                    gc_labels.insert(labels::config_ref(), config.digest().to_string());
                    let config_kind = media_type::classify(config.media_type().as_ref());
                    if wanted && self.options.unpack && config_kind != Kind::Config {
                        return Err(Error::NotAnImage {
                            reference: self.reference.to_string(),
                            config_media_type: config.media_type().to_string(),
                        });
                    }
                    leaves.push(Pending::new(config.clone(), BlobKind::Config));
                    if wanted {
                        chosen.push(descriptor.clone());
                        configs.push(config.digest().clone());
                        let unpacked = if bytes == 0 {
                            self.unpacked_layers(&descriptor, &config, &layers, lease)
                                .await?
                        } else {
                            // A manifest new to this store has no snapshots yet.
                            0
                        };
                        for (i, layer) in layers.into_iter().enumerate() {
                            if i < unpacked && !self.engine.content.contains(layer.digest()) {
                                // Its snapshot already holds it (the blob was
                                // discarded), so this pull needs no bytes of
                                // it, as containerd's unpacker skips it.
                                self.progress.send(Event::AlreadyExists {
                                    digest: layer.digest().clone(),
                                    kind: BlobKind::Layer,
                                    size: layer.size(),
                                });
                                continue;
                            }
                            gc_labels.insert(labels::layer_ref(i), layer.digest().to_string());
                            leaves.push(self.layer_pending(layer)?);
                        }
                    }
                }
                _ => {}
            }
            self.record_content(&descriptor, gc_labels).await?;
        }

        leaves.retain(|pending| seen.insert(pending.descriptor.digest().clone()));
        count += leaves.len();
        for pending in &leaves {
            self.progress.send(Event::Waiting {
                digest: pending.descriptor.digest().clone(),
                kind: pending.kind,
                size: pending.descriptor.size(),
            });
        }
        // Every blob gets a future at once (so each can report "already
        // exists" immediately); the semaphore in `fetch_blob` bounds downloads.
        let concurrency = leaves.len().max(1);
        let bytes: Vec<u64> = futures_util::stream::iter(leaves)
            .map(|pending| async move { self.fetch_blob(&pending, lease).await })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        downloaded += bytes.iter().sum::<u64>();
        Ok(Fetched {
            blobs: count,
            downloaded,
            manifests: chosen,
            configs,
            image_labels,
            converted_root,
        })
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
        lease: &str,
    ) -> Result<usize> {
        if !self.options.unpack
            || layers
                .iter()
                .all(|l| self.engine.content.contains(l.digest()))
        {
            return Ok(0);
        }
        self.fetch_blob(&Pending::new(config.clone(), BlobKind::Config), lease)
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
        let kind = match media_type::classify(layer.media_type().as_ref()) {
            Kind::Layer(_) => BlobKind::Layer,
            _ => BlobKind::Other,
        };
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

    /// Unpacks each chosen manifest into the snapshotter; returns the
    /// snapshotter's name and the top chainID of each manifest.
    async fn unpack(&self, manifests: &[Descriptor], lease: &str) -> Result<(String, Vec<Digest>)> {
        // Everything here touches the disk (opening a snapshotter probes the
        // kernel once; reading configs; applying layers), so it runs off the
        // runtime as one blocking task.
        let engine = self.engine.clone();
        let snapshotter = self.options.snapshotter.clone();
        let manifests = manifests.to_vec();
        let progress = self.progress.clone();
        let lease = lease.to_string();
        // One of the engine's `max_concurrent_unpacks` slots, for all of
        // this pull's layers (they apply one after another).
        let permit = self
            .engine
            .shared
            .unpacks
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        self.blocking(move || {
            let _permit = permit;
            let snapshotter = engine.snapshotter(snapshotter.as_deref())?;
            let mut tops = Vec::new();
            for manifest in &manifests {
                let chain = engine.layer_chain(manifest)?;
                if chain.layers.is_empty() {
                    // An empty image: nothing to unpack.
                    continue;
                }
                tops.push(engine.unpack_blocking(
                    snapshotter.as_ref(),
                    &chain,
                    &lease,
                    &progress,
                )?);
            }
            Ok((snapshotter.name().to_string(), tops))
        })
        .await?
    }

    /// Chooses the manifests of an index that match the platform selection:
    /// the best match per requested platform, or all of them.
    fn select_platforms(&self, children: &[Descriptor]) -> Result<Vec<Descriptor>> {
        let wanted = match &self.options.platforms {
            PlatformSelection::All => return Ok(children.to_vec()),
            PlatformSelection::Host => vec![Platform::host()],
            PlatformSelection::Only(platforms) => platforms.clone(),
        };
        let mut chosen: Vec<Descriptor> = Vec::new();
        for platform in &wanted {
            let matcher = PlatformMatcher::only(platform.clone());
            match matcher.best_match(children).first() {
                Some(best) => {
                    if !chosen.iter().any(|c| c.digest() == best.digest()) {
                        chosen.push((*best).clone());
                    }
                }
                None => {
                    return Err(Error::NoMatchingPlatform {
                        reference: self.reference.to_string(),
                        wanted: platform.to_string(),
                        available: platforms_of(children),
                    });
                }
            }
        }
        Ok(chosen)
    }

    /// Fetches an index or manifest into the content store (or reads the
    /// stored copy) and returns its body and the bytes downloaded.
    async fn fetch_manifest(&self, descriptor: &Descriptor, lease: &str) -> Result<(Bytes, u64)> {
        let digest = descriptor.digest().clone();
        let kind = match media_type::classify(descriptor.media_type().as_ref()) {
            Kind::Index => BlobKind::Index,
            Kind::Manifest => BlobKind::Manifest,
            Kind::Schema1Manifest => return Err(self.schema1_refused(descriptor)),
            _ => BlobKind::Other,
        };
        if self.engine.content.contains(&digest) {
            // Up to MAX_MANIFEST_SIZE read and hashed again: off the runtime.
            let store = self.engine.content.clone();
            let stored = digest.clone();
            let body = self
                .blocking(move || store.read_blob(&stored, MAX_MANIFEST_SIZE))
                .await??;
            self.progress.send(Event::AlreadyExists {
                digest,
                kind,
                size: descriptor.size(),
            });
            return Ok((body.into(), 0));
        }
        self.protect(lease, &digest).await?;
        let in_flight = self.engine.shared.in_flight.lock(&digest).await;
        if self.engine.content.contains(&digest) {
            // Another pull of this process stored it meanwhile.
            drop(in_flight);
            return Box::pin(self.fetch_manifest(descriptor, lease)).await;
        }
        let body = self
            .resolver
            .fetch_manifest(&self.repository, descriptor)
            .await?;
        self.store_small(descriptor, body.clone()).await?;
        drop(in_flight);
        self.progress.send(Event::Done {
            digest,
            kind,
            size: descriptor.size(),
        });
        Ok((body.clone(), body.len() as u64))
    }

    /// Writes a small blob held in memory (a manifest, a converted config)
    /// into the content store, verified like any other.
    async fn store_small(&self, descriptor: &Descriptor, body: Bytes) -> Result<()> {
        let store = self.engine.content.clone();
        let expected = expected_of(descriptor);
        let ingest = ingest_ref(descriptor);
        self.blocking(move || -> Result<Committed> {
            let expected_digest = expected.digest.clone();
            match store.writer(&ingest, expected) {
                Ok(mut writer) => {
                    writer.truncate(0)?;
                    writer.write_all(&body).map_err(|source| Error::Write {
                        digest: expected_digest.to_string(),
                        source,
                    })?;
                    Ok(writer.commit()?)
                }
                Err(hoist_content::Error::AlreadyExists(_)) => Ok(Committed::AlreadyExists),
                Err(error) => Err(error.into()),
            }
        })
        .await??;
        Ok(())
    }

    fn schema1_refused(&self, descriptor: &Descriptor) -> Error {
        Error::UnsupportedManifest {
            reference: self.reference.to_string(),
            media_type: descriptor.media_type().to_string(),
            hint: "Docker schema 1 images are deprecated; pass --allow-schema1 to convert it to schema 2 while pulling",
        }
    }

    /// Converts a Docker schema 1 manifest to schema 2 the way containerd
    /// does: fetch its layers (their sizes come from the registry, since
    /// schema 1 records none), compute their diffIDs, and store a new config
    /// and manifest. The original manifest is not stored: its digest covers
    /// a payload without signatures, not the bytes served. Returns the
    /// converted manifest's descriptor, which becomes the image's target.
    async fn convert_schema1(&self, descriptor: &Descriptor, lease: &str) -> Result<Descriptor> {
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
            .map(|layer| async move {
                self.fetch_blob(&Pending::new(layer, BlobKind::Layer), lease)
                    .await
            })
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
        self.protect(lease, converted.config_descriptor.digest()).await?;
        self.store_small(&converted.config_descriptor, converted.config.into())
            .await?;
        self.protect(lease, converted.manifest_descriptor.digest()).await?;
        self.store_small(&converted.manifest_descriptor, converted.manifest.into())
            .await?;
        Ok(converted.manifest_descriptor)
    }

    /// Downloads one config or layer into the content store, streaming,
    /// resuming after broken connections at the ingest's offset. Returns the
    /// bytes downloaded (0 when the blob was already stored).
    async fn fetch_blob(&self, pending: &Pending, lease: &str) -> Result<u64> {
        let descriptor = &pending.descriptor;
        let digest = descriptor.digest().clone();
        let size = descriptor.size();
        let already = || async {
            self.progress.send(Event::AlreadyExists {
                digest: digest.clone(),
                kind: pending.kind,
                size,
            });
            self.record_content(descriptor, Labels::new()).await?;
            Ok(0)
        };
        if self.engine.content.contains(&digest) {
            return already().await;
        }
        self.protect(lease, &digest).await?;
        // Another pull of this process fetching the same blob finishes
        // first; then it is stored and this one downloads nothing.
        let _in_flight = self.engine.shared.in_flight.lock(&digest).await;
        if self.engine.content.contains(&digest) {
            return already().await;
        }
        let mut permit = self.download_slot().await?;
        let writer = match self.open_writer(descriptor, Wait::Try).await? {
            Opened::Writer(writer) => writer,
            Opened::Stored => return already().await,
            Opened::Busy => {
                // Another process is downloading this blob: wait for it
                // without holding a download slot others could use.
                drop(permit);
                let writer = match self.open_writer(descriptor, Wait::Block).await? {
                    Opened::Writer(writer) => writer,
                    _ => return already().await,
                };
                permit = self.download_slot().await?;
                writer
            }
        };
        let _permit = permit;
        let mut resumed_at = writer.offset();
        match self.download(pending, writer).await {
            Ok(()) => {}
            // A resumed ingest may hold bytes of an earlier, corrupt download;
            // the failed commit threw them away, so start once more from 0.
            Err(Error::Content(
                hoist_content::Error::DigestMismatch { .. }
                | hoist_content::Error::SizeMismatch { .. },
            )) if resumed_at > 0 => {
                tracing::warn!(%digest, resumed_at, "resumed ingest did not verify; downloading again");
                let Opened::Writer(writer) = self.open_writer(descriptor, Wait::Block).await?
                else {
                    return already().await;
                };
                resumed_at = writer.offset();
                self.download(pending, writer).await?;
            }
            Err(error) => return Err(error),
        }
        self.record_content(descriptor, Labels::new()).await?;
        self.progress.send(Event::Done {
            digest,
            kind: pending.kind,
            size,
        });
        Ok(size.saturating_sub(resumed_at))
    }

    /// One of the engine's `max_concurrent_downloads` slots.
    async fn download_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.engine
            .shared
            .downloads
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Task(e.to_string()))
    }

    /// Opens the blob's ingest. Every writer of a blob, in this process or
    /// another, takes the same ingest lock; with [`Wait::Block`] this waits
    /// for the current holder, with [`Wait::Try`] it reports it busy.
    async fn open_writer(&self, descriptor: &Descriptor, wait: Wait) -> Result<Opened> {
        let store = self.engine.content.clone();
        let expected = expected_of(descriptor);
        let ingest = ingest_ref(descriptor);
        let opened = self
            .blocking(move || match wait {
                Wait::Block => store.writer(&ingest, expected).map(Some),
                Wait::Try => store.try_writer(&ingest, expected),
            })
            .await?;
        match opened {
            Ok(Some(writer)) => Ok(Opened::Writer(writer)),
            Ok(None) => Ok(Opened::Busy),
            Err(hoist_content::Error::AlreadyExists(_)) => Ok(Opened::Stored),
            Err(error) => Err(error.into()),
        }
    }

    /// Streams the rest of a blob into its ingest, resuming at the ingest's
    /// offset after a broken stream, then verifies and commits it. An ingest
    /// that already holds every byte (a pull killed before its commit) is
    /// committed without touching the network.
    async fn download(&self, pending: &Pending, mut writer: Writer) -> Result<()> {
        let digest = pending.descriptor.digest().clone();
        let mut attempt = 1;
        while writer.offset() < pending.descriptor.size() {
            let offset = writer.offset();
            let (returned, outcome) = self.stream_attempt(pending, writer, offset).await?;
            writer = returned;
            match outcome {
                Ok(()) => break,
                Err(error) if attempt < MAX_RESUMES && is_retryable(&error) => {
                    attempt += 1;
                    tracing::debug!(%digest, attempt, %error, "blob stream broke; resuming");
                    let delay = Duration::from_millis(100 * u64::from(attempt));
                    self.progress.send(Event::Retrying {
                        digest: digest.clone(),
                        attempt,
                        offset: writer.offset(),
                        delay,
                    });
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
        self.progress.send(Event::Verifying {
            digest,
            kind: pending.kind,
        });
        self.blocking(move || writer.commit()).await??;
        Ok(())
    }

    /// One attempt at streaming a blob from `offset` into `writer`. The
    /// network side runs here; the disk side runs on a blocking thread fed
    /// through a small bounded channel, so memory stays bounded and the
    /// runtime never blocks on disk. The writer comes back either way, so a
    /// failed attempt can resume where it stopped.
    async fn stream_attempt(
        &self,
        pending: &Pending,
        mut writer: Writer,
        offset: u64,
    ) -> Result<(Writer, Result<()>)> {
        let descriptor = &pending.descriptor;
        let stream = if pending.foreign {
            self.resolver.fetch_foreign(descriptor, offset).await
        } else {
            self.resolver
                .fetch_blob(&self.repository, descriptor, offset)
                .await
        };
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(error) => return Ok((writer, Err(error.into()))),
        };
        if stream.offset() != offset {
            // The server ignored our Range request and starts from the top.
            let start = stream.offset();
            writer = self
                .blocking(move || -> Result<Writer> {
                    writer.truncate(start)?;
                    Ok(writer)
                })
                .await??;
        }

        let (chunks, mut received) = mpsc::channel::<Bytes>(16);
        let sink = self.blocking(move || {
            let mut result = Ok(());
            while let Some(chunk) = received.blocking_recv() {
                if let Err(error) = writer.write_all(&chunk) {
                    result = Err(error);
                    break;
                }
            }
            (writer, result)
        });

        let total = descriptor.size();
        let mut current = stream.offset();
        let mut reported = current;
        let mut reported_at = Instant::now();
        let pumped: Result<()> = async {
            while let Some(chunk) = stream.next_chunk().await? {
                current += chunk.len() as u64;
                if current > total {
                    return Err(Error::InvalidBlob {
                        digest: descriptor.digest().to_string(),
                        detail: format!(
                            "registry sent more than the {total} bytes the descriptor names"
                        ),
                    });
                }
                if chunks.send(chunk).await.is_err() {
                    // The disk side stopped; its error is reported below.
                    break;
                }
                if current - reported >= PROGRESS_STEP
                    || current == total
                    || reported_at.elapsed() >= PROGRESS_INTERVAL
                {
                    reported = current;
                    reported_at = Instant::now();
                    self.progress.send(Event::Downloading {
                        digest: descriptor.digest().clone(),
                        kind: pending.kind,
                        current,
                        total,
                    });
                }
            }
            Ok(())
        }
        .await;
        drop(chunks);
        let (writer, written) = sink.await?;
        if let Err(source) = written {
            // A disk error (full disk, I/O error) is not worth a retry.
            return Err(Error::Write {
                digest: descriptor.digest().to_string(),
                source,
            });
        }
        Ok((writer, pumped))
    }

    /// Records a stored blob in the metadata store with where it came from
    /// and `gc_labels`, merged into any labels it has; off the runtime.
    async fn record_content(&self, descriptor: &Descriptor, gc_labels: Labels) -> Result<()> {
        let mut labels = self.source_labels.clone();
        labels.extend(gc_labels);
        let db = self.engine.db.clone();
        let digest = descriptor.digest().clone();
        let size = descriptor.size();
        self.blocking(move || db.put_content(&digest, size, &labels))
            .await??;
        Ok(())
    }

    async fn begin_lease(&self) -> Result<String> {
        let now = SystemTime::now();
        let nanos = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let id = format!("hoist-pull-{}-{nanos}", std::process::id());
        let lease_labels = Labels::from([("hoist.pull".to_string(), self.reference.to_string())]);
        // A lease outlives a killed pull for a day at most.
        let expires = now + Duration::from_secs(24 * 3600);
        let db = self.engine.db.clone();
        let created = id.clone();
        self.blocking(move || db.create_lease(&created, &lease_labels, Some(expires)))
            .await??;
        Ok(id)
    }

    async fn end_lease(&self, lease: &str) {
        let db = self.engine.db.clone();
        let id = lease.to_string();
        let deleted = self.blocking(move || db.delete_lease(&id)).await;
        match deleted {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, lease, "could not delete the pull's lease"),
            Err(error) => tracing::warn!(%error, lease, "could not delete the pull's lease"),
        }
    }

    /// Runs blocking work (disk, flock, applying layers) off the runtime,
    /// holding the root lock for as long as it runs.
    fn blocking<F, R>(&self, work: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let writing = self.writing.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = writing;
            work()
        })
    }

    /// Adds a blob to the pull's lease before any byte of it is written, so
    /// a garbage collector running meanwhile leaves the ingest and the blob.
    async fn protect(&self, lease: &str, digest: &Digest) -> Result<()> {
        let db = self.engine.db.clone();
        let lease = lease.to_string();
        let resource = LeaseResource::content(digest);
        self.blocking(move || db.add_lease_resource(&lease, &resource))
            .await??;
        Ok(())
    }

    /// Drops the GC edges from each unpacked manifest to its layer blobs,
    /// so the next collection frees the compressed layers; the snapshots
    /// hold the data now (the CRI's `discard_unpacked_layers`).
    async fn discard_layers(&self, manifests: &[Descriptor]) -> Result<()> {
        let db = self.engine.db.clone();
        let digests: Vec<Digest> = manifests.iter().map(|m| m.digest().clone()).collect();
        self.blocking(move || -> Result<()> {
            for digest in &digests {
                db.remove_content_labels(digest, &labels::layer_ref_prefix())?;
            }
            Ok(())
        })
        .await?
    }

    /// Records `name → target`. Labels of an earlier record with the same
    /// target are kept (a `--no-unpack` re-pull does not forget snapshots)
    /// and merged in one transaction, so concurrent pulls of one name keep
    /// each other's; an unpack adds `hoist.io/unpacked.<snapshotter>` = its
    /// chainIDs, and an OCI 1.1 root its artifact labels. Returns whether the
    /// name already pointed here and nothing was downloaded (docker's "up to
    /// date").
    async fn register_image(
        &self,
        name: &str,
        target: &Descriptor,
        unpacked: Option<&(String, Vec<Digest>)>,
        fetched: &Fetched,
    ) -> Result<bool> {
        let now = SystemTime::now();
        let mut image_labels = fetched.image_labels.clone();
        if let Some((snapshotter, chain_ids)) = unpacked {
            let chain_ids: Vec<String> = chain_ids.iter().map(ToString::to_string).collect();
            image_labels.insert(labels::unpacked(snapshotter), chain_ids.join(","));
        }
        let db = self.engine.db.clone();
        let image = Image {
            name: name.to_string(),
            target: target.clone(),
            labels: image_labels,
            created_at: now,
            updated_at: now,
        };
        let previous = self.blocking(move || db.record_image(&image)).await??;
        let same_target = previous.is_some_and(|p| p == target.digest().to_string());
        Ok(same_target && fetched.downloaded == 0)
    }
}

/// The ingest of a blob is named by its digest, so every writer of that
/// blob, in this process or another, takes the same ingest lock.
fn ingest_ref(descriptor: &Descriptor) -> String {
    descriptor.digest().to_string()
}

fn expected_of(descriptor: &Descriptor) -> Expected {
    Expected {
        digest: descriptor.digest().clone(),
        size: Some(descriptor.size()),
    }
}

/// The platforms an index's manifests declare, formatted, for errors.
pub(crate) fn platforms_of(manifests: &[Descriptor]) -> Vec<String> {
    manifests
        .iter()
        .filter_map(manifest::platform_of)
        .map(|p| p.to_string())
        .collect()
}

/// The image labels an OCI 1.1 manifest carries: its `artifactType` and
/// the digest of its `subject`, so they survive in the metadata store.
fn artifact_labels(body: &[u8]) -> Labels {
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

/// Whether a failed blob stream is worth resuming: network trouble is,
/// a lying registry or a full disk is not.
fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Remote(error) => error.is_retryable(),
        _ => false,
    }
}
