//! The engine's error type: the failures of its parts, plus the pipeline's own.

use std::path::PathBuf;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference, platform or manifest could not be parsed or verified.
    #[error(transparent)]
    Oci(#[from] hoist_oci::Error),
    /// The registry refused, failed or lied.
    #[error(transparent)]
    Remote(#[from] hoist_remote::Error),
    /// The content store failed (including digest and size mismatches).
    #[error(transparent)]
    Content(#[from] hoist_content::Error),
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] hoist_metadata::Error),
    /// The snapshotter failed.
    #[error(transparent)]
    Snapshot(#[from] hoist_snapshot::Error),
    /// A layer could not be applied (malformed, hostile, or its diffID does
    /// not match the config); its snapshot was discarded.
    #[error("unpacking layer {layer}")]
    Unpack {
        /// The layer's digest.
        layer: String,
        /// Why it failed.
        source: hoist_archive::Error,
    },
    /// A layer has a media type hoist cannot unpack.
    #[error("layer {layer} ({media_type}): {hint}")]
    UnsupportedLayer {
        /// The layer's digest.
        layer: String,
        /// Its media type.
        media_type: String,
        /// What the user can do about it.
        hint: &'static str,
    },
    /// No manifest in an index matches the requested platforms.
    #[error("no manifest for platform {wanted} in {reference} (available: {})", available.join(", "))]
    NoMatchingPlatform {
        /// The reference being pulled.
        reference: String,
        /// The requested platforms, formatted.
        wanted: String,
        /// The platforms the index offers.
        available: Vec<String>,
    },
    /// The manifest uses a format hoist does not pull.
    #[error("{reference}: {media_type} is not supported: {hint}")]
    UnsupportedManifest {
        /// The reference being pulled.
        reference: String,
        /// The manifest's media type.
        media_type: String,
        /// What the user can do about it.
        hint: &'static str,
    },
    /// A non-distributable layer was met without
    /// `PullOptions::allow_nondistributable`.
    #[error(
        "layer {layer} is non-distributable (foreign, to be fetched from {}); allow non-distributable layers to fetch it over https",
        if urls.is_empty() { "no URL".to_string() } else { urls.join(", ") }
    )]
    ForeignLayer {
        /// The layer's digest.
        layer: String,
        /// Where its descriptor says to fetch it.
        urls: Vec<String>,
    },
    /// The reference names an artifact, not a container image.
    #[error(
        "{reference} is an artifact (config {config_media_type}), not a container image; pull it without unpacking to store it"
    )]
    NotAnImage {
        /// The reference being pulled.
        reference: String,
        /// The manifest's config media type.
        config_media_type: String,
    },
    /// No image by that name is recorded.
    #[error("image not found: {0}")]
    ImageNotFound(String),
    /// A blob was stored but its body does not agree with its descriptor.
    #[error("blob {digest}: {detail}")]
    InvalidBlob {
        /// The blob's digest.
        digest: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Writing a blob's bytes to its ingest failed (a full disk, an I/O
    /// error); the ingest keeps what was written before.
    #[error("writing blob {digest}")]
    Write {
        /// The blob's digest.
        digest: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A filesystem operation of the engine's own failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A layer's download failed while the layer was being applied (the
    /// pull reports the download's own error).
    #[error("blob {digest}: its download failed before it could be unpacked")]
    DownloadFailed {
        /// The blob.
        digest: String,
    },
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
    /// A tag given as a digest reference names another digest than the
    /// image it would point to.
    #[error("{reference} does not name the image's digest {target}")]
    TagDigestMismatch {
        /// The digest reference given.
        reference: String,
        /// The digest of the image being tagged.
        target: String,
    },
    /// An OCI image layout could not be read or written: not a layout, a
    /// malformed `index.json`, a blob missing from it, a destination that
    /// is not empty, or no image in it to import under a name.
    #[error("OCI layout {}: {detail}", path.display())]
    Layout {
        /// The layout directory or archive.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A blob read from an OCI image layout did not verify against its
    /// descriptor (digest or size) while it was written to the store; it
    /// was not stored.
    #[error("OCI layout {}: blob {digest}", path.display())]
    LayoutBlob {
        /// The layout directory or archive.
        path: PathBuf,
        /// The blob's digest, as its descriptor names it.
        digest: String,
        /// The mismatch (or read error) the content store reported; boxed
        /// to keep every `Result` of the engine small.
        source: Box<hoist_content::Error>,
    },
    /// Exporting an image needs a blob the store does not hold.
    #[error("{what} {digest} of {image} is not stored: {hint}")]
    NotStored {
        /// The image being exported.
        image: String,
        /// What the blob is (`layer of linux/arm64`, …).
        what: String,
        /// The blob's digest.
        digest: String,
        /// What the user can do about it.
        hint: String,
    },
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Self {
        Error::Task(error.to_string())
    }
}
