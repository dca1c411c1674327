//! Applies container image layers (tar streams, plain, gzip or zstd) to a
//! directory, like containerd's `archive` package: the unpack step between a
//! verified layer blob in `content` and a snapshot.
//!
//! # Overview
//!
//! - [`apply_layer`] reads one layer stream and applies every entry to a root
//!   directory: regular files (streamed, never whole in memory), directories,
//!   symlinks, hardlinks, fifos, device nodes, owners, modes (setuid, setgid
//!   and sticky included), times, and xattrs from PAX `SCHILY.xattr.*`.
//! - Whiteouts follow the snapshotter ([`WhiteoutMode`]): deleted in place for
//!   a snapshotter keeping full trees, or turned into overlayfs whiteouts
//!   (char device 0:0, `trusted.overlay.opaque=y`) in an overlay upper dir.
//! - While applying, the uncompressed stream is hashed: the result's
//!   [`Applied::diff_id`] is the layer's diffID, checked against
//!   [`ApplyOptions::expected_diff_id`] when given.
//! - [`detect_compression`] tells the compression by magic bytes; the one a
//!   media type declares must match it.
//!
//! # Confinement
//!
//! A layer is hostile input. **Invariant:** applying a layer never creates,
//! changes or deletes anything outside the root. Every path is normalized
//! lexically first (`..` clamped at the root). Its parent directory is then
//! resolved inside the root: one plain name at a time from the deepest
//! ancestor already open, following nothing (`openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` on that ancestor's fd), and where a symlink is on
//! the way, as a whole with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`,
//! so symlinks planted by earlier entries resolve as if the root were `/`.
//! The final component is acted on with `*at` syscalls on that parent fd
//! that never follow it. Hardlink targets are resolved the same way, so a
//! link can only share an inode inside the root.
//!
//! Directory fds stay open for the entries that follow (a tar lists a
//! directory's entries together, so most entries need no path walk at all),
//! and are dropped whenever a removal, a new symlink or an opaque marker
//! could make their path mean another directory. A kept fd is a directory
//! inside the root that the applier never moves, so even a stale one cannot
//! lead outside.
//!
//! In overlay mode, where symlinks of the lower layers count too, the walk
//! goes one component at a time through the merged view and expands every
//! symlink itself as an in-root path (`..` clamped, absolute targets rooted
//! at the root, at most 40 expansions); the upper is opened one plain name
//! at a time without following anything, and the lowers, read-only, the
//! same way.
//!
//! # Example
//!
//! ```
//! use hoist_archive::{ApplyOptions, Compression, apply_layer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut builder = tar::Builder::new(Vec::new());
//! let mut header = tar::Header::new_gnu();
//! header.set_size(5);
//! header.set_mode(0o644);
//! builder.append_data(&mut header, "etc/motd", &b"hello"[..])?;
//! let layer = builder.into_inner()?;
//!
//! let root = tempfile::tempdir()?;
//! let applied = apply_layer(root.path(), &layer[..], Compression::None, &ApplyOptions::default())?;
//! assert_eq!(std::fs::read(root.path().join("etc/motd"))?, b"hello");
//! assert_eq!(applied.entries, 1);
//! assert!(applied.diff_id.to_string().starts_with("sha256:"));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod apply;
mod compression;
mod diffid;
mod error;
mod fallback;
mod fsops;
mod lowers;
mod name;
mod root;

pub use apply::{Applied, ApplyOptions, LateLowers, WhiteoutMode, apply_layer};
pub use compression::{Compression, detect_compression};
pub use diffid::diff_id;
pub use error::{Error, Result};
