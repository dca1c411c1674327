//! The pull pipeline, readable top to bottom in [`Engine::pull`], and the
//! steps it is made of, each public so that an embedder (a builder, say, as
//! BuildKit drives containerd) can run them one by one:
//!
//! 1. [`Engine::resolve`]: a reference becomes a name and a root descriptor
//!    (from the store for a stored digest reference, without network);
//! 2. [`Engine::lease`]: a hold on the store while writing;
//! 3. [`Engine::fetch`]: the tree below the root into the content store,
//!    verified, with the GC references between blobs (`fetch`, `download`,
//!    `schema1`);
//! 4. [`Engine::unpack`]: stored manifests into snapshots named by chainID
//!    (`unpack`);
//! 5. [`Engine::register`]: a name for the image.
//!
//! [`Engine::pull`] runs steps 3 and 4 together: unpacking starts once the
//! manifests are known, and each layer is applied while it downloads.
//!
//! Crash ordering: a blob becomes visible only by the content store's atomic
//! rename after verification; the image record is written only after every
//! blob it needs is stored. A killed pull leaves ingests the next pull
//! resumes by offset, and a lease that marks its blobs as in use.
//!
//! ```no_run
//! # async fn example() -> Result<(), hoist_engine::Error> {
//! use hoist_engine::{Engine, Labels, PullOptions};
//!
//! let engine = Engine::open("/var/lib/hoist")?;
//! let options = PullOptions::default();
//! let resolved = engine.resolve("alpine:3.20", &options).await?;
//! let lease = engine.lease(&resolved.name).await?;
//! let fetched = engine.fetch(&resolved, &options, &lease).await?;
//! let unpacked = engine.unpack(&fetched.manifests, &options, &lease).await?;
//! println!("mount {}", unpacked.chain_ids[0]);
//! engine.register(&resolved.name, &fetched.target, Labels::new()).await?;
//! lease.release().await;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hoist_metadata::{Image, Labels};
use hoist_oci::manifest;
use hoist_oci::{Descriptor, Digest, Platform, Reference};
use hoist_remote::{CredentialProvider, Repository, Resolver};
use tokio::sync::{Semaphore, mpsc};

use crate::download::InFlight;
use crate::fetch::Session;
use crate::lease::Lease;
use crate::progress::{Event, Progress};
use crate::{Engine, EngineOptions, Error, Result, labels};

/// What every pull of one engine shares: the registry client (connection
/// pools, token cache), the download and unpack limits, and the blobs being
/// fetched right now, so that concurrent pulls in one process fetch each
/// blob once.
pub(crate) struct Shared {
    pub(crate) resolver: Resolver,
    pub(crate) downloads: Arc<Semaphore>,
    pub(crate) unpacks: Arc<Semaphore>,
    pub(crate) in_flight: InFlight,
    /// Manifests, indexes and configs are read whole; this bounds them,
    /// from the network and from the store alike
    /// (`RegistryOptions::max_manifest_size`).
    pub(crate) max_manifest_size: u64,
    pub(crate) sync: crate::SyncPolicy,
}

impl Shared {
    pub(crate) fn new(options: &EngineOptions) -> Result<Shared> {
        Ok(Shared {
            resolver: Resolver::new(options.registry.clone())?,
            downloads: Arc::new(Semaphore::new(options.max_concurrent_downloads.max(1))),
            unpacks: Arc::new(Semaphore::new(options.max_concurrent_unpacks.max(1))),
            in_flight: InFlight::default(),
            max_manifest_size: options.registry.max_manifest_size,
            sync: options.sync,
        })
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
    /// How long unpacking took, if the pull unpacked (it overlaps the
    /// downloads: from the manifests being known to the last snapshot).
    pub unpack_time: Option<Duration>,
    /// The compressed layers were let go after unpacking
    /// (`discard_unpacked_layers`): a garbage collection frees them.
    pub discarded_layers: bool,
}

impl Pulled {
    /// What pulling `name` produced, from its steps' results.
    pub(crate) fn new(
        name: String,
        fetched: Fetched,
        unpacked: Option<Unpacked>,
        unpack_time: Option<Duration>,
        discarded_layers: bool,
    ) -> Pulled {
        let (snapshotter, chain_ids) = unpacked
            .map(|u| (Some(u.snapshotter), u.chain_ids))
            .unwrap_or_default();
        Pulled {
            name,
            target: fetched.target,
            blobs: fetched.blobs,
            downloaded: fetched.downloaded,
            snapshotter,
            chain_ids,
            configs: fetched.configs,
            unpack_time,
            discarded_layers,
        }
    }
}

/// A reference resolved to the descriptor of its root manifest or index.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolved {
    /// The normalized reference, the image's name
    /// (`docker.io/library/alpine:latest`).
    pub name: String,
    /// The root descriptor.
    pub descriptor: Descriptor,
    reference: Reference,
}

/// What [`Engine::fetch`] stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched {
    /// What the image's record should point at: the resolved root, or the
    /// schema 2 manifest a schema 1 root was converted to.
    pub target: Descriptor,
    /// The image manifests chosen (one per platform), to unpack.
    pub manifests: Vec<Descriptor>,
    /// The config of each chosen manifest.
    pub configs: Vec<Digest>,
    /// How many blobs the chosen platforms need.
    pub blobs: usize,
    /// Bytes downloaded (0 when everything was stored).
    pub downloaded: u64,
    /// Labels the image record gets from its root manifest (OCI 1.1
    /// `artifactType` and `subject`).
    pub image_labels: Labels,
}

/// What [`Engine::unpack`] produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Unpacked {
    /// The snapshotter the layers went into.
    pub snapshotter: String,
    /// The top chainID of each manifest that has layers: the snapshot to
    /// mount.
    pub chain_ids: Vec<Digest>,
}

impl Engine {
    /// Pulls `reference` into this engine's root: the steps of this module
    /// in order.
    ///
    /// The reference is normalized the way docker does (`alpine` →
    /// `docker.io/library/alpine:latest`). A digest reference whose manifest
    /// is already stored resolves without touching the network.
    pub async fn pull(&self, reference: &str, options: PullOptions) -> Result<Pulled> {
        // 1. Resolve the reference to the root descriptor.
        let resolved = self.resolve(reference, &options).await?;

        // 2. Hold the store while we write: a collector waits, and the lease
        //    keeps what we wrote if this process dies. Released when the
        //    pull returns, or, if it is cancelled, once its disk work ends.
        let lease = self.lease(&resolved.name).await?;
        let pulled = async {
            // 3. Fetch the root, walk to the chosen manifests, fetch their
            //    blobs; and 4., unpack their layers into snapshots, each
            //    layer applied while it downloads.
            let (fetched, unpacking) = if options.unpack {
                let mut session =
                    Session::new(self, &resolved.reference, &options, Some(lease.clone()));
                let (fetched, unpacking) =
                    session.fetch_tree_unpacking(&resolved.descriptor).await?;
                (fetched, Some(unpacking))
            } else {
                (self.fetch(&resolved, &options, &lease).await?, None)
            };
            let (unpacked, unpack_time) = match unpacking {
                Some(unpacking) => {
                    let (unpacked, took) = unpacking.finish().await?;
                    (Some(unpacked), Some(took))
                }
                None => (None, None),
            };
            let discarded_layers = options.discard_unpacked_layers && unpacked.is_some();
            if discarded_layers {
                self.discard_layers(&fetched.manifests).await?;
            }

            // 5. Register the image; only now does it point at complete
            //    content. A schema 1 image is registered under its converted
            //    manifest.
            let up_to_date = self
                .register_fetched(&resolved.name, &fetched, unpacked.as_ref())
                .await?;
            Ok::<_, Error>((fetched, unpacked, up_to_date, unpack_time, discarded_layers))
        }
        .await;
        lease.release().await;
        let (fetched, unpacked, up_to_date, unpack_time, discarded_layers) = pulled?;
        Progress::new(options.progress.clone()).send(Event::ImageDone {
            name: resolved.name.clone(),
            digest: fetched.target.digest().clone(),
            up_to_date,
        });
        Ok(Pulled::new(
            resolved.name,
            fetched,
            unpacked,
            unpack_time,
            discarded_layers,
        ))
    }

    /// Points `name` at what was fetched (labelled with its snapshots when
    /// `unpacked`); whether the image was up to date: nothing downloaded and
    /// the name already pointed there.
    pub(crate) async fn register_fetched(
        &self,
        name: &str,
        fetched: &Fetched,
        unpacked: Option<&Unpacked>,
    ) -> Result<bool> {
        let mut image_labels = fetched.image_labels.clone();
        if let Some(unpacked) = unpacked {
            let chain_ids: Vec<String> =
                unpacked.chain_ids.iter().map(ToString::to_string).collect();
            image_labels.insert(labels::unpacked(&unpacked.snapshotter), chain_ids.join(","));
        }
        let previous = self.register(name, &fetched.target, image_labels).await?;
        Ok(fetched.downloaded == 0
            && previous.is_some_and(|p| p == fetched.target.digest().to_string()))
    }

    /// Step 1: resolves `reference` (normalized as docker does) to its root
    /// descriptor, with `options.credentials`. A digest reference whose
    /// manifest is stored needs no network (as BuildKit's puller does).
    pub async fn resolve(&self, reference: &str, options: &PullOptions) -> Result<Resolved> {
        let reference = Reference::parse(reference)?;
        let descriptor = Session::new(self, &reference, options, None)
            .resolve()
            .await?;
        Ok(Resolved {
            name: reference.to_string(),
            descriptor,
            reference,
        })
    }

    /// Step 3: fetches the tree below a resolved root into the content
    /// store, every blob verified and recorded with its GC references, but
    /// records no image. Platforms, schema 1, foreign layers and artifacts
    /// are as `options` says; `options.unpack` tells whether the caller will
    /// unpack (artifacts are refused then, and layers whose snapshots exist
    /// are not fetched again).
    pub async fn fetch(
        &self,
        resolved: &Resolved,
        options: &PullOptions,
        lease: &Lease,
    ) -> Result<Fetched> {
        Session::new(self, &resolved.reference, options, Some(lease.clone()))
            .fetch_tree(&resolved.descriptor)
            .await
    }

    /// Step 4: unpacks stored image manifests into `options.snapshotter`
    /// (overlay where the kernel can mount it, native otherwise), each
    /// layer's diffID verified, each snapshot named by its chainID; a layer
    /// whose snapshot exists is not applied again. At most the engine's
    /// `max_concurrent_unpacks` pulls apply layers at once.
    pub async fn unpack(
        &self,
        manifests: &[Descriptor],
        options: &PullOptions,
        lease: &Lease,
    ) -> Result<Unpacked> {
        let unpacking = self.start_unpack(manifests.to_vec(), options, lease.clone(), None);
        Ok(unpacking.finish().await?.0)
    }

    /// Step 5: records `name → target` with `labels`, merged in one
    /// transaction with those of an earlier record of the same target (a
    /// re-pull without unpacking keeps the snapshots it knew). Returns the
    /// digest the name pointed at before, if any.
    pub async fn register(
        &self,
        name: &str,
        target: &Descriptor,
        labels: Labels,
    ) -> Result<Option<String>> {
        let now = SystemTime::now();
        let db = self.db.clone();
        let image = Image {
            name: name.to_string(),
            target: target.clone(),
            labels,
            created_at: now,
            updated_at: now,
        };
        Ok(tokio::task::spawn_blocking(move || db.record_image(&image)).await??)
    }

    /// Drops the GC edges from each unpacked manifest to its layer blobs,
    /// so the next collection frees the compressed layers; the snapshots
    /// hold the data now (the CRI's `discard_unpacked_layers`).
    pub(crate) async fn discard_layers(&self, manifests: &[Descriptor]) -> Result<()> {
        let db = self.db.clone();
        let digests: Vec<Digest> = manifests.iter().map(|m| m.digest().clone()).collect();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for digest in &digests {
                db.remove_content_labels(digest, &labels::layer_ref_prefix())?;
            }
            Ok(())
        })
        .await?
    }

    /// Checks `credentials` against registry `domain` (`docker.io`,
    /// `host:5000`) as `docker login` does, without storing them; see
    /// [`hoist_remote::login`] to store them.
    pub async fn login(&self, domain: &str, credentials: hoist_remote::Credentials) -> Result<()> {
        Ok(self.shared.resolver.login(domain, credentials).await?)
    }

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

/// The platforms an index's manifests declare, formatted, for errors.
pub(crate) fn platforms_of(manifests: &[Descriptor]) -> Vec<String> {
    manifests
        .iter()
        .filter_map(manifest::platform_of)
        .map(|p| p.to_string())
        .collect()
}
