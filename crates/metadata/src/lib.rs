//! The metadata database of a hoist root: images, content labels, leases and
//! snapshots, in SQLite (WAL mode) so several hoist processes can share it.
//!
//! - [`Db`] opens the file, configures SQLite and migrates the schema
//!   (tracked in `PRAGMA user_version`); it is `Send + Sync`.
//! - [`Image`] maps a name to its root [`Descriptor`](oci_spec::image::Descriptor).
//! - [`ContentRecord`] carries a blob's [`Labels`]; [`Db::put_content`] merges them.
//! - [`Lease`] and [`LeaseResource`] protect resources from garbage collection.
//! - [`SnapshotRecord`] records snapshots per snapshotter.
//!
//! ```
//! use std::str::FromStr;
//! use hoist_metadata::{Db, Image, Labels};
//! use oci_spec::image::{Descriptor, Digest, MediaType};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let db = Db::open(&dir.path().join("metadata.db"))?;
//! let digest = Digest::from_str(
//!     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
//! )?;
//! let target = Descriptor::new(MediaType::ImageManifest, 5, digest.clone());
//! db.put_image(&Image::new("docker.io/library/hello:latest", target))?;
//!
//! let source = Labels::from([("containerd.io/distribution.source.docker.io".into(), "library/hello".into())]);
//! db.put_content(&digest, 5, &source)?;
//!
//! assert_eq!(db.get_image("docker.io/library/hello:latest")?.unwrap().target.digest(), &digest);
//! assert_eq!(db.get_content(&digest)?.unwrap().labels, source);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod content;
mod db;
mod error;
mod images;
mod leases;
mod schema;
mod snapshots;

pub use content::ContentRecord;
pub use db::{Db, Labels};
pub use error::{Error, Result};
pub use images::Image;
pub use leases::{Lease, LeaseResource};
pub use snapshots::{SnapshotKind, SnapshotRecord};
