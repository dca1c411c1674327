//! The crate's error type: every way a store operation can fail, by cause.

use std::path::PathBuf;

use oci_spec::image::Digest;

/// A specialized [`Result`](std::result::Result) for content store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a content store operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blob is not in the store.
    #[error("blob {0} not found")]
    NotFound(Digest),

    /// The blob is already committed, so there is nothing to write.
    #[error("blob {0} already exists")]
    AlreadyExists(Digest),

    /// The written (or stored) bytes hash to a different digest than expected.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller asked for.
        expected: Digest,
        /// The digest of the bytes actually seen.
        actual: Digest,
    },

    /// The written bytes are not the expected length.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The size the caller asked for.
        expected: u64,
        /// The number of bytes actually seen (at least this many when writing past the end).
        actual: u64,
    },

    /// A bounded read found more bytes than the caller allows.
    #[error("blob is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The caller's limit in bytes.
        limit: u64,
    },

    /// A file system operation failed.
    #[error("I/O error at {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Reading the caller's source stream failed (see [`copy`](crate::copy)).
    #[error("reading the source stream failed")]
    Read(#[source] std::io::Error),

    /// The digest uses an algorithm the store cannot compute.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),

    /// Another writer holds the ingest, so it cannot be aborted now.
    #[error("ingest {0:?} is locked by another writer")]
    Locked(String),

    /// [`Writer::truncate`](crate::Writer::truncate) was asked to grow the ingest.
    #[error("cannot truncate ingest to offset {requested}: it holds only {available} bytes")]
    InvalidOffset {
        /// The offset asked for.
        requested: u64,
        /// The bytes the ingest holds.
        available: u64,
    },
}

/// Attaches the path to an [`std::io::Error`], since a bare one does not say which file failed.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
