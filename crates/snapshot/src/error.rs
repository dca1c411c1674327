//! The crate's error type: every way a snapshot operation can fail, by cause.

use std::path::PathBuf;

/// A specialized [`Result`](std::result::Result) for snapshot operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a snapshot operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No snapshot has this key.
    #[error("snapshot {key:?} not found")]
    NotFound {
        /// The key looked up.
        key: String,
    },

    /// A snapshot with this key (or commit name) already exists.
    #[error("snapshot {key:?} already exists")]
    AlreadyExists {
        /// The key or name taken.
        key: String,
    },

    /// The snapshot exists but is in the wrong state for the operation, e.g.
    /// committing a committed snapshot or preparing on an active parent.
    #[error("snapshot {key:?}: {detail}")]
    InvalidState {
        /// The snapshot concerned.
        key: String,
        /// What is wrong.
        detail: String,
    },

    /// The snapshot is the parent of other snapshots and cannot be removed.
    #[error("snapshot {key:?} has children")]
    HasChildren {
        /// The parent snapshot.
        key: String,
    },

    /// The snapshotter cannot work here (e.g. overlayfs cannot be mounted).
    #[error("unsupported: {detail}")]
    Unsupported {
        /// Why.
        detail: String,
    },

    /// A file system operation (or mount) failed.
    #[error("I/O error at {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The metadata database failed.
    #[error("metadata database")]
    Metadata(#[from] hoist_metadata::Error),
}

impl Error {
    /// Wraps an `std::io::Error` or a `rustix` errno with the path it concerns.
    pub(crate) fn io<E: Into<std::io::Error>>(path: impl Into<PathBuf>) -> impl FnOnce(E) -> Error {
        let path = path.into();
        move |source| Error::Io {
            path,
            source: source.into(),
        }
    }

    pub(crate) fn state(key: &str, detail: impl Into<String>) -> Error {
        Error::InvalidState {
            key: key.to_owned(),
            detail: detail.into(),
        }
    }
}
