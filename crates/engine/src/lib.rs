//! The hoist pull engine: the library a program embeds to pull images, and
//! what the `hoist` CLI and the `hoistd` daemon share.
//!
//! An [`Engine`] owns one root directory: a content store ([`hoist_content`])
//! under `<root>/content`, a metadata database ([`hoist_metadata`]) at
//! `<root>/metadata.db`, and snapshotters ([`hoist_snapshot`]) under
//! `<root>/snapshots`. One engine serves any number of concurrent pulls and
//! they share what containerd's transfer service shares ([`EngineOptions`]):
//! one registry client (connection pools, token cache), one download limit
//! and one unpack limit, and concurrent pulls of one blob fetch it once.
//!
//! [`Engine::pull`] runs the pipeline in [`pull`], made of public steps an
//! embedder may drive one by one: [`Engine::resolve`] the reference with
//! [`hoist_remote`] (credentials per call through a [`CredentialProvider`]),
//! take a [`Lease`], [`Engine::fetch`] the index, manifests, configs and
//! layers of the chosen platforms into the content store with the GC
//! references between them, [`Engine::unpack`] the layers into snapshots
//! named by chainID with [`hoist_archive`], and [`Engine::register`] the
//! image. Progress leaves as typed [`Event`]s on a channel the caller owns,
//! so rendering (terminal bars, docker's status lines, JSON) is the caller's
//! business and never slows a pull down; [`docker_progress`] puts events in
//! docker's words, for the CLI's `--progress=docker` and the daemon's Docker
//! API alike. Blocking work (disk, SQLite, file
//! locks) runs on blocking threads, never on the async runtime.
//!
//! Around the pull: [`Engine::images`], [`Engine::inspect_image`],
//! [`Engine::remove_image`], [`Engine::export_rootfs`], [`Engine::gc`] and
//! [`Engine::check`] are what `hoist images`, `rootfs`, `gc` and `check` call;
//! [`Engine::export_layout`] and [`Engine::import_layout`] write and read OCI
//! image layouts (`hoist export`, `import`, `pull oci:DIR`).
//!
//! ```no_run
//! # async fn example() -> Result<(), hoist_engine::Error> {
//! use hoist_engine::{Engine, PullOptions};
//!
//! let engine = Engine::open("/var/lib/hoist")?;
//! let pulled = engine.pull("alpine:3.20", PullOptions::default()).await?;
//! println!("{} {}", pulled.name, pulled.target.digest());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod check;
pub mod docker_progress;
mod download;
mod error;
mod feed;
mod fetch;
mod gc;
mod images;
mod labels;
mod layout;
mod lease;
mod lock;
mod progress;
pub mod pull;
mod schema1;
mod snapshots;
mod unpack;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use check::{CheckReport, Problem, Repair};
pub use error::Error;
pub use gc::{FreedBlob, FreedSnapshot, GcOptions, GcReport, LeaseInfo};
pub use hoist_metadata::Labels;
pub use hoist_oci::{Descriptor, Digest, Platform, Reference};
pub use hoist_remote::login;
pub use hoist_remote::{
    CredentialProvider, Credentials, InvalidDuration, RegistryOptions, StaticCredentials,
    parse_duration,
};
pub use hoist_snapshot::{Info as SnapshotInfo, Mount, NAMES as SNAPSHOTTERS, Snapshotter};
pub use images::{
    ContentEntry, ImageDetails, ImageSummary, LayerDetails, ManifestDetails, PrunedImages,
    RemovedImage,
};
pub use layout::{ExportOptions, ExportPlatforms, Exported, ImportOptions, Imported};
pub use lease::Lease;
pub use progress::{BlobKind, Event};
pub use pull::{Fetched, PlatformSelection, PullOptions, Pulled, Resolved, Unpacked};

/// Result alias for engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one engine shares between every pull it runs, as containerd's
/// transfer service keeps it.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How to reach registries: TLS, timeouts, retries, `config.json`. One
    /// registry client is built from it and shared by every pull (one
    /// connection pool, one token cache).
    pub registry: RegistryOptions,
    /// At most this many blobs download at once, over all pulls of this
    /// engine (containerd's and docker's default is 3).
    pub max_concurrent_downloads: usize,
    /// At most this many images unpack at once, over all pulls (the layers
    /// of one image apply in parallel where the snapshotter rebases).
    pub max_concurrent_unpacks: usize,
    /// What reaches the disk before it counts as stored.
    pub sync: SyncPolicy,
}

/// What a pull makes durable before it counts as stored. Whatever the
/// policy, a killed process loses nothing stored (the page cache outlives
/// it), every blob is verified, every state change is crash-ordered, and the
/// metadata database keeps its own journal; the policies differ in what a
/// power loss or kernel crash can take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every blob is fsynced with its directory, and every snapshot is
    /// flushed (`syncfs`) before it is recorded committed: after a power
    /// loss, whatever is recorded is complete.
    #[default]
    Full,
    /// Blobs as with `Full`; snapshots are not flushed (containerd's
    /// default: its overlay snapshotter does not sync unless
    /// `image_pull_with_sync_fs` is set). A power loss can leave a committed
    /// snapshot missing data that its blob still holds; `syncfs` flushes the
    /// whole file system, which costs most where other work shares it.
    Blobs,
    /// Nothing is flushed: for throwaway roots (CI runners, ephemeral
    /// nodes) where a power loss takes the root with it.
    None,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<SyncPolicy, String> {
        match text {
            "full" => Ok(SyncPolicy::Full),
            "blobs" => Ok(SyncPolicy::Blobs),
            "none" => Ok(SyncPolicy::None),
            other => Err(format!(
                "unknown sync policy {other:?} (expected full, blobs or none)"
            )),
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            registry: RegistryOptions::default(),
            max_concurrent_downloads: 3,
            max_concurrent_unpacks: 1,
            sync: SyncPolicy::Full,
        }
    }
}

/// One hoist root: its content store, metadata database and snapshotters,
/// and what its pulls share.
///
/// Cheap to clone; clones share the same stores, registry client and
/// limits. Several engines (in one process or several) may open the same
/// root at once; the stores' file locks keep them apart.
#[derive(Clone)]
pub struct Engine {
    root: PathBuf,
    content: hoist_content::Store,
    db: Arc<hoist_metadata::Db>,
    /// Snapshotters opened so far, by name; opening probes the kernel once.
    snapshotters: Arc<Mutex<HashMap<String, Arc<dyn Snapshotter>>>>,
    shared: Arc<pull::Shared>,
}

impl Engine {
    /// Opens (creating if needed) the hoist root at `root` with the default
    /// [`EngineOptions`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Engine> {
        Engine::open_with(root, EngineOptions::default())
    }

    /// Opens (creating if needed) the hoist root at `root`. Reads the CA
    /// files and docker's `config.json` now, so configuration errors
    /// surface before any pull.
    pub fn open_with(root: impl Into<PathBuf>, options: EngineOptions) -> Result<Engine> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| Error::Io {
            path: root.clone(),
            source,
        })?;
        let content = hoist_content::Store::open(root.join("content"))?
            .fsync(options.sync != SyncPolicy::None);
        let db = hoist_metadata::Db::open(&root.join("metadata.db"))?;
        Ok(Engine {
            root,
            content,
            db: Arc::new(db),
            snapshotters: Arc::default(),
            shared: Arc::new(pull::Shared::new(&options)?),
        })
    }

    /// The bound on manifests, indexes and configs read whole
    /// ([`RegistryOptions::max_manifest_size`]): the one bound for what a
    /// pull downloads and what anything later reads back from the store.
    pub fn max_manifest_size(&self) -> u64 {
        self.shared.max_manifest_size
    }

    /// The root directory this engine manages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content store under `<root>/content`.
    pub fn content(&self) -> &hoist_content::Store {
        &self.content
    }

    /// The metadata database at `<root>/metadata.db`.
    pub fn metadata(&self) -> &hoist_metadata::Db {
        &self.db
    }

    /// The snapshotter called `name` (`overlay` or `native`) under
    /// `<root>/snapshots/<name>`; `None` picks overlay where the kernel can
    /// mount it and native otherwise.
    pub fn snapshotter(&self, name: Option<&str>) -> Result<Arc<dyn Snapshotter>> {
        let base = self.root.join("snapshots");
        let name = match name {
            Some(name) => name.to_string(),
            None => hoist_snapshot::default_name(&base).to_string(),
        };
        let mut opened = self
            .snapshotters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(snapshotter) = opened.get(&name) {
            return Ok(snapshotter.clone());
        }
        let snapshotter: Arc<dyn Snapshotter> = Arc::from(hoist_snapshot::open_with(
            &name,
            &base.join(&name),
            self.db.clone(),
            self.shared.sync == SyncPolicy::Full,
        )?);
        opened.insert(name, snapshotter.clone());
        Ok(snapshotter)
    }
}
