//! Real parts for hoist's end-to-end tests.
//!
//! `hoist-testkit` is a dev-dependency: it starts real servers on 127.0.0.1 and
//! builds real images, so tests exercise the registry protocol against the same
//! software a user talks to. Nothing here mocks the Distribution API.
//!
//! - [`registry`]: [`Registry`] runs the CNCF distribution registry
//!   (`/usr/bin/docker-registry`) on a free port in a temporary directory, in
//!   its variants: plain HTTP, htpasswd basic auth, bearer tokens (with an
//!   in-process [`TokenServer`]) and TLS with a generated CA. It also pushes
//!   images through the Distribution API.
//! - [`token`]: [`TokenServer`], a Docker token-auth server (GET and OAuth2
//!   POST) that signs ES256 JWTs the registry verifies, and counts requests.
//! - [`fixture`]: [`Image`], [`Layer`] and [`LayerBuilder`] build images in
//!   pure Rust, deterministically: OCI or Docker media types, plain, gzip or
//!   zstd layers, single-platform manifests and multi-platform indexes, and
//!   write them as OCI image layouts.
//! - [`proxy`]: [`FaultProxy`], a reverse proxy in front of a registry that
//!   injects faults (corrupt or truncated blobs, error statuses).
//! - [`skopeo`]: pushes an OCI layout with the real `skopeo`.
//! - [`process`]: [`run_with_stdin`], [`run_ok`], [`assert_success`] and
//!   [`scrub_env`] run helper processes.
//! - [`umoci`]: unpacks an image with the real `umoci`, the reference for
//!   hoist's unpacking; [`tree`] snapshots and compares directory trees;
//!   [`rich`] builds layers with every kind of tar entry; [`outside`] proves
//!   that applying a layer changed nothing outside its root.
//!
//! Every server stops when its value is dropped. Servers are usable from sync
//! tests and from inside a tokio runtime alike (blocking HTTP runs on a helper
//! thread, and in-process servers own their runtime).
//!
//! ```no_run
//! use hoist_testkit::{Compression, Format, Registry, simple_image};
//!
//! let registry = Registry::token("alice", "s3cret");
//! let image = simple_image(Format::Oci, Compression::Gzip, "linux/amd64");
//! let pushed = registry.push(&image, "library/app", "1.0");
//! assert_eq!(pushed.digest, image.manifest_digest());
//! // `pushed.reference` is "127.0.0.1:PORT/library/app:1.0"
//! let (_media_type, body) = registry.get_manifest("library/app", "1.0");
//! assert_eq!(body, image.manifest_bytes());
//! ```
#![deny(missing_docs)]

pub mod fixture;
pub mod outside;
mod pki;
pub mod process;
pub mod proxy;
pub mod raw_tar;
pub mod registry;
pub mod rich;
pub mod schema1;
pub mod skopeo;
pub mod token;
pub mod tree;
pub mod umoci;
mod util;

pub use fixture::{
    Compression, Format, Image, Layer, LayerBuilder, chain_ids, layer, noise, sha256_digest,
    simple_image, simple_index,
};
pub use process::{
    StoreDir, assert_success, assert_success_with, run_ok, run_ok_with, run_with_stdin, scrub_env,
};
pub use proxy::{Fault, FaultProxy, Seen};
pub use registry::{Auth, Pushed, Registry, RegistryConfig};
pub use rich::{rich_image, rich_layers};
pub use skopeo::skopeo_copy_layout_to_registry;
pub use token::{TokenRequest, TokenServer, TokenServerConfig};
pub use tree::{Compare, Entry, FileKind, Tree, diff_trees, diff_trees_with, snapshot_tree};
pub use umoci::umoci_unpack;

/// The `reqwest` this crate uses, for tests that talk to a [`Registry`] directly
/// (see [`Registry::client`]).
pub use reqwest;
