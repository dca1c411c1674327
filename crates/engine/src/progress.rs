//! Typed progress events: what a pull reports while it runs.
//!
//! The engine sends events on an unbounded channel and never waits for the
//! receiver, so a slow terminal cannot slow a download. Renderers (the CLI's
//! plain lines today; bars, docker status lines and JSON later) only consume.

use hoist_oci::{Descriptor, Digest};
use tokio::sync::mpsc::UnboundedSender;

/// What role a blob plays in the image; renderers label lines with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobKind {
    /// An OCI index or Docker manifest list.
    Index,
    /// An image manifest.
    Manifest,
    /// An image config.
    Config,
    /// A filesystem layer.
    Layer,
    /// Anything else a manifest refers to (artifacts).
    Other,
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            BlobKind::Index => "index",
            BlobKind::Manifest => "manifest",
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
            BlobKind::Other => "blob",
        })
    }
}

/// One step of a pull.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The reference is being resolved to a descriptor.
    Resolving {
        /// The normalized reference.
        reference: String,
    },
    /// The reference resolved.
    Resolved {
        /// The normalized reference.
        reference: String,
        /// The root descriptor (index or manifest); boxed because it is
        /// much larger than every other event.
        descriptor: Box<Descriptor>,
    },
    /// A blob is queued for download behind the concurrency limit.
    Waiting {
        /// The blob.
        digest: Digest,
        /// Its role.
        kind: BlobKind,
        /// Its size from the descriptor.
        size: u64,
    },
    /// Bytes of a blob have arrived.
    Downloading {
        /// The blob.
        digest: Digest,
        /// Its role.
        kind: BlobKind,
        /// Bytes stored so far (including any resumed prefix).
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// Bytes of a blob start arriving from `host` (a mirror, the registry,
    /// or the storage it redirected to); again after each resume.
    Fetching {
        /// The blob.
        digest: Digest,
        /// Its role.
        kind: BlobKind,
        /// `host[:port]` serving it.
        host: String,
    },
    /// A download was interrupted and resumes at `offset`.
    Retrying {
        /// The blob.
        digest: Digest,
        /// Which attempt comes next (2 for the first retry).
        attempt: u32,
        /// Where the download resumes.
        offset: u64,
        /// How long the engine waits before the next attempt.
        delay: std::time::Duration,
    },
    /// All bytes arrived; the digest is being checked.
    Verifying {
        /// The blob.
        digest: Digest,
        /// Its role.
        kind: BlobKind,
    },
    /// The blob is verified and stored.
    Done {
        /// The blob.
        digest: Digest,
        /// Its role.
        kind: BlobKind,
        /// Its size.
        size: u64,
    },
    /// The blob was already stored; nothing was downloaded.
    AlreadyExists {
        /// The blob.
        digest: Digest,
        /// Its role.
        kind: BlobKind,
        /// Its size.
        size: u64,
    },
    /// A layer is being applied into a snapshot.
    Extracting {
        /// The layer blob.
        digest: Digest,
        /// Compressed bytes applied so far.
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// A layer was applied, its diffID verified, and its snapshot committed.
    LayerUnpacked {
        /// The layer blob.
        digest: Digest,
        /// The committed snapshot's chainID.
        chain_id: Digest,
    },
    /// A layer's snapshot already existed; nothing was applied.
    LayerAlreadyUnpacked {
        /// The layer blob.
        digest: Digest,
        /// The existing snapshot's chainID.
        chain_id: Digest,
    },
    /// The image is recorded.
    ImageDone {
        /// The image name.
        name: String,
        /// The root descriptor's digest.
        digest: Digest,
        /// The name already pointed at this digest and nothing was
        /// downloaded (docker's "Image is up to date").
        up_to_date: bool,
    },
}

/// The sending half the pipeline holds; sending never blocks and a dropped
/// receiver is not an error (nobody is watching).
#[derive(Clone, Default)]
pub(crate) struct Progress {
    sender: Option<UnboundedSender<Event>>,
}

impl Progress {
    pub(crate) fn new(sender: Option<UnboundedSender<Event>>) -> Progress {
        Progress { sender }
    }

    pub(crate) fn send(&self, event: Event) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(event);
        }
    }
}
