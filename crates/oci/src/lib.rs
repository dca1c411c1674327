//! The vocabulary of image pulls: references, platforms, media types, digests,
//! and the walk from a manifest body to its children, with no IO.
//!
//! # Overview
//!
//! - [`Reference`] parses and normalizes image references the way docker does
//!   (`alpine` is `docker.io/library/alpine:latest`).
//! - [`Platform`] and [`PlatformMatcher`] parse `os/arch/variant` specifiers and
//!   choose among an index's manifests the way containerd does.
//! - [`media_type`] names the OCI and Docker media types and [classifies]
//!   them.
//! - [`manifest::children`] turns an index or manifest body into the
//!   descriptors it references, and [`manifest::Walk`] walks a whole tree of
//!   them (its bookkeeping, [`manifest::Queue`], serves async walkers).
//! - [`digest`] hashes and verifies content.
//!
//! Everything fails with the one [`Error`] type.
//!
//! [classifies]: media_type::classify
//!
//! # Example
//!
//! ```
//! use hoist_oci::{manifest, media_type, Platform, PlatformMatcher, Reference};
//!
//! let reference = Reference::parse("alpine:3.19")?;
//! assert_eq!(reference.name(), "docker.io/library/alpine");
//! assert_eq!(reference.object(), "3.19");
//!
//! let body = br#"{
//!   "schemaVersion": 2,
//!   "mediaType": "application/vnd.oci.image.index.v1+json",
//!   "manifests": [
//!     {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 500,
//!      "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
//!      "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
//!     {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 500,
//!      "digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
//!      "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}
//!   ]
//! }"#;
//! let manifest::Children::Index(manifests) = manifest::children(media_type::OCI_INDEX, body)? else {
//!     unreachable!("an index has manifests");
//! };
//! let matcher = PlatformMatcher::only(Platform::parse("linux/armhf")?);
//! let best = matcher.best_match(&manifests)[0];
//! assert_eq!(manifest::platform_of(best).unwrap().to_string(), "linux/arm/v7");
//! # Ok::<(), hoist_oci::Error>(())
//! ```

#![deny(missing_docs)]

pub mod digest;
mod error;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod reference;
pub mod schema1;

pub use digest::{Digester, sha256_digest};
pub use error::{DigestErrorKind, Error, PlatformErrorKind, ReferenceErrorKind, Result};
pub use manifest::Children;
pub use media_type::{Compression, Kind};
pub use oci_spec::image::{
    Descriptor, Digest, DigestAlgorithm, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
pub use platform::{Platform, PlatformMatcher};
pub use reference::Reference;
