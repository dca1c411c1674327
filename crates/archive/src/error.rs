//! The crate's error type: every way applying a layer can fail, by cause.

use std::path::PathBuf;

use oci_spec::image::Digest;

use crate::Compression;

/// A specialized [`Result`](std::result::Result) for layer application.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why applying a layer failed.
///
/// After any error the root directory may hold a partly applied layer; the
/// caller discards it. Whatever the error, nothing outside the root was touched.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("I/O error at {}", path.display())]
    Io {
        /// The path involved, relative to the root for entries of the layer.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Reading the caller's layer stream failed (the source itself, not the
    /// decoder or the tar parser).
    #[error("reading the layer stream failed")]
    Read(#[source] std::io::Error),

    /// The stream is not a well-formed tar: a bad header, a PAX size that
    /// disagrees with the ustar size, a truncated stream, a corrupt
    /// compressed stream.
    #[error("malformed layer: {detail}")]
    Malformed {
        /// What is wrong, for a person.
        detail: String,
    },

    /// The media type declares one compression and the stream's magic bytes
    /// say another.
    #[error("compression mismatch: declared {declared:?}, stream is {detected:?}")]
    CompressionMismatch {
        /// The compression from the media type.
        declared: Compression,
        /// The compression the magic bytes show.
        detected: Compression,
    },

    /// The uncompressed stream hashes to another diffID than expected.
    #[error("diffID mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch {
        /// The diffID the caller expected (from the image config).
        expected: Digest,
        /// The digest of the uncompressed stream actually applied.
        actual: Digest,
    },

    /// The layer needs something this applier cannot do here.
    #[error("unsupported: {detail}")]
    Unsupported {
        /// What is not supported, for a person.
        detail: String,
    },
}

impl Error {
    /// An [`Error::Io`] at `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> Self {
        Self::Io {
            path: path.into(),
            source: source.into(),
        }
    }

    /// An [`Error::Malformed`].
    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::Malformed {
            detail: detail.into(),
        }
    }
}
