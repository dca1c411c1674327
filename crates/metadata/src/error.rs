//! The crate's error type: every way a database operation can fail, by cause.

use std::path::PathBuf;

/// A specialized [`Result`](std::result::Result) for metadata operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a metadata operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened or configured.
    #[error("cannot open database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// A file system operation around the database failed.
    #[error("I/O error at {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A query failed.
    #[error("database query failed")]
    Sqlite(#[source] rusqlite::Error),

    /// A write failed because the file system holding the database is full
    /// (SQLite's `SQLITE_FULL`; hoist sets no page limit of its own).
    #[error("the metadata database cannot grow: No space left on device")]
    Full(#[source] rusqlite::Error),

    /// The database was migrated by a newer hoist; writing to it could lose data.
    #[error("database schema version {found} is newer than the supported {supported}")]
    SchemaTooNew {
        /// The version found in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },

    /// A stored row does not decode (bad JSON, digest or enum value).
    #[error("corrupt {table} record {key:?}: {reason}")]
    Corrupt {
        /// The table holding the row.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What failed to decode.
        reason: String,
    },

    /// A lease with this id exists already.
    #[error("lease {0:?} already exists")]
    LeaseExists(String),

    /// No lease has this id.
    #[error("lease {0:?} not found")]
    LeaseNotFound(String),

    /// A size does not fit SQLite's signed 64-bit integers.
    #[error("size {0} is out of range")]
    SizeOutOfRange(u64),
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            // Said as the kernel says it, like every other full-disk error
            // a pull can meet, so that the cause reads the same.
            Some(rusqlite::ErrorCode::DiskFull) => Error::Full(error),
            _ => Error::Sqlite(error),
        }
    }
}
