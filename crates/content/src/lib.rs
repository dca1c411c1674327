//! A content-addressed blob store on the local file system, laid out like containerd's.
//!
//! - [`Store`] owns a root directory with verified blobs under
//!   `blobs/<algorithm>/<hex>` and in-flight downloads under `ingest/`.
//! - [`Writer`] fills one ingest, named by a caller-chosen reference, and
//!   turns it into a blob with [`Writer::commit`], which checks the
//!   [`Expected`] size and digest before an atomic move into `blobs/`.
//! - A per-ingest file lock serializes writers of the same reference across
//!   threads and processes: the loser of a race gets [`Error::AlreadyExists`].
//! - An interrupted ingest is resumed by the next writer at [`Writer::offset`].
//!
//! ```
//! use std::str::FromStr;
//! use hoist_content::{Committed, Expected, Store};
//! use oci_spec::image::Digest;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("content"))?;
//! let digest = Digest::from_str(
//!     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
//! )?;
//! let writer = store.writer("example", Expected::new(digest.clone(), Some(5)))?;
//! assert_eq!(hoist_content::copy(writer, &b"hello"[..])?, Committed::New);
//! assert_eq!(store.read_blob(&digest, 1024)?, b"hello");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod error;
mod store;
mod writer;

pub use error::{Error, Result};
pub use store::{Committed, Expected, Info, IngestStatus, Store};
pub use writer::{Writer, copy};
