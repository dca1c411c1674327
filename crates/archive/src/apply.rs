//! Applying one layer: the tar stream is read entry by entry and each entry
//! is turned into file system changes confined to the root.
//!
//! The parts, in the order an entry meets them:
//! 1. [`entry`]: the tar entry becomes an [`entry::Entry`]: a name
//!    normalized lexically ([`RootedPath`]), owner, mode, times, xattrs, and
//!    what to do;
//! 2. the parent directory is opened inside the root, creating missing
//!    parents (mode 0755 as docker does), through [`dircache`], which keeps
//!    the directories of the layer open so that an entry next to the last
//!    one costs no path walk; in overlay mode the parent is resolved through
//!    [`merged`], the merged view of the upper and the lower layers;
//! 3. [`create`] makes the entry with `*at` syscalls on the parent fd
//!    (clearing the name first if something is there), then owner, xattrs,
//!    mode (`chown` clears setuid bits and `security.capability`, so it goes
//!    first) and times, on the new file's own fd where it has one, each
//!    skipped when creation already gave the right value;
//! 4. [`whiteout`] turns `.wh.*` entries into deletions or overlay whiteouts.
//!
//! Directory modes and times are applied last, deepest first
//! ([`Applier::finish_dirs`]): creating entries inside a directory changes
//! its mtime, and an unprivileged run could not create entries in a
//! directory already made read-only.
//!
//! Three threads share the work, like `pigz -dc | tar -x`: the caller's
//! decompresses, hashes and parses ([`stream`]); one thread makes every
//! change to names, in stream order, so that nothing about what an entry
//! means depends on timing; and [`files`] writes the data, owner, mode and
//! times of small new files that thread created. Whichever fails first in
//! stream order is the error returned.

mod create;
mod dircache;
mod entry;
mod files;
mod merged;
mod stream;
mod whiteout;

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use oci_spec::image::Digest;

use crate::compression::{self, Compression};
use crate::error::{Error, Result};
use crate::lowers::Lowers;
use crate::name::RootedPath;
use crate::root::Root;

use self::create::{DirMeta, Ids};
use self::dircache::DirCache;
use self::entry::Op;
use self::files::{Finisher, SharedData};
use self::stream::Msg;
use self::whiteout::CreatedNames;

/// How whiteout entries (`.wh.NAME`, `.wh..wh..opq`) are applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// For a snapshotter that keeps every layer's result as a full tree (the
    /// root already holds the lower layers): `.wh.NAME` deletes `NAME`, and
    /// `.wh..wh..opq` empties its directory of everything the lower layers
    /// put there (entries added by this same layer stay). Whiteout files are
    /// never created.
    #[default]
    Delete,
    /// For the overlay snapshotter: the root is an empty upper directory.
    /// `.wh.NAME` becomes a character device 0:0 named `NAME`, and
    /// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
    Overlay,
}

/// How [`apply_layer`] applies a layer.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// How whiteouts are applied.
    pub whiteouts: WhiteoutMode,
    /// Overlay mode only: the lower layer directories, topmost first. Paths
    /// resolve through the merged view (upper over lowers): a symlink only a
    /// lower has is followed as an in-root path (`lib/x` over a lower
    /// `lib -> usr/lib` lands in `usr/lib/x`); a hardlink whose target lives
    /// in a lower layer is resolved by copying the target up into the root
    /// and linking to the copy; a parent directory missing from the tar takes
    /// its metadata from a lower layer; a directory that replaces one this
    /// layer deleted from the lowers is made opaque.
    pub lowers: Vec<PathBuf>,
    /// Overlay mode only, instead of `lowers`: the lower layers are given
    /// late, when first looked at (see [`LateLowers`]), so a layer can be
    /// applied while the layers below it are still being applied.
    pub late_lowers: Option<LateLowers>,
    /// Set owners to the tar's uid/gid (default: true when running as root).
    pub same_owner: bool,
    /// The diffID the uncompressed stream must hash to; on a difference the
    /// apply fails with [`Error::DiffIdMismatch`] and the caller discards the root.
    pub expected_diff_id: Option<Digest>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            whiteouts: WhiteoutMode::Delete,
            lowers: Vec::new(),
            late_lowers: None,
            same_owner: rustix::process::geteuid().is_root(),
            expected_diff_id: None,
        }
    }
}

/// Lower layer directories given late: called at most once, the first
/// time the applier needs to look at the lowers, it returns them (topmost
/// first) once they hold their final content, blocking until then; an error
/// fails the apply.
///
/// Most layers never look at their lowers: a layer tar from docker or
/// BuildKit lists every parent directory of what it changes, so its paths
/// resolve in the upper alone. One that does (a parent it does not list, a
/// hardlink to a lower file, a directory replacing one it deleted) waits
/// here, so the result is the same as applying the layers one by one.
#[derive(Clone)]
pub struct LateLowers(Arc<dyn Fn() -> std::io::Result<Vec<PathBuf>> + Send + Sync>);

impl LateLowers {
    /// Lowers that `ready` returns when they are final.
    pub fn new(ready: impl Fn() -> std::io::Result<Vec<PathBuf>> + Send + Sync + 'static) -> Self {
        LateLowers(Arc::new(ready))
    }

    pub(crate) fn wait(&self) -> std::io::Result<Vec<PathBuf>> {
        (self.0)()
    }
}

impl std::fmt::Debug for LateLowers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateLowers")
    }
}

/// What [`apply_layer`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:<hex>` of the whole uncompressed stream, end-of-archive blocks
    /// and trailing padding included: the layer's diffID.
    pub diff_id: Digest,
    /// Bytes in the uncompressed stream.
    pub uncompressed_size: u64,
    /// Tar entries processed (extension headers such as PAX and GNU long
    /// names are part of the entry they describe and not counted apart).
    pub entries: u64,
    /// Names of entries that were not applied, each with a warning logged:
    /// device nodes when not privileged, non-directories naming the root.
    pub skipped: Vec<String>,
}

/// Applies the layer tar read from `layer` to the directory `root`.
///
/// `declared` is the compression the layer's media type names; the stream's
/// magic bytes must agree, else [`Error::CompressionMismatch`]. The stream is
/// read once, never whole into memory. Nothing outside `root` is created,
/// changed or deleted, whatever the tar holds.
pub fn apply_layer<R: Read>(
    root: &Path,
    layer: R,
    declared: Compression,
    options: &ApplyOptions,
) -> Result<Applied> {
    let tuning = Tuning {
        can_mknod: rustix::process::geteuid().is_root(),
        force_fallback: false,
    };
    apply_with(root, layer, declared, options, tuning)
}

/// Knobs the public API derives from the environment, set directly by tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Whether device nodes are created (else skipped).
    pub(crate) can_mknod: bool,
    /// Resolve with the `openat2`-less walker from the start.
    pub(crate) force_fallback: bool,
}

/// How many batches may wait for the applying thread.
const QUEUE: usize = 4;

pub(crate) fn apply_with<R: Read>(
    root: &Path,
    layer: R,
    declared: Compression,
    options: &ApplyOptions,
    tuning: Tuning,
) -> Result<Applied> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (recycle, recycled) = mpsc::channel();
        // The file system work runs beside the reading, on its own thread:
        // the reader (the caller's, maybe not `Send`) stays where it is.
        // It logs in the caller's span (a pull's, say).
        let span = tracing::Span::current();
        let applying = std::thread::Builder::new()
            .name("hoist-apply".into())
            .spawn_scoped(scope, move || {
                let _span = span.enter();
                let mut applier = Applier::new(root, options, tuning)?;
                let finished = applier.run(&rx, &recycle)?;
                Ok::<_, Error>((finished, applier.entries, applier.skipped))
            })
            .map_err(|e| Error::io(root, e))?;
        let read = compression::decoder(layer, declared).and_then(|(decoded, source)| {
            let read = stream::read_layer(decoded, &source, &tx, &recycled)?;
            if let Ok((diff_id, _)) = &read
                && let Some(expected) = &options.expected_diff_id
                && expected != diff_id
            {
                return Err(Error::DiffIdMismatch {
                    expected: expected.clone(),
                    actual: diff_id.clone(),
                });
            }
            if read.is_ok() {
                // Nothing to do if the applying thread has stopped: it has
                // its own error to report.
                let _ = tx.send(Msg::Finish);
            }
            Ok(read)
        });
        drop(tx);
        let applied = match applying.join() {
            Ok(applied) => applied,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // An error of the applying thread comes from an entry before
        // wherever the reading stopped, so it is the one applying in place
        // would have met first.
        let (finished, entries, skipped) = applied?;
        let (diff_id, uncompressed_size) = match read? {
            Ok(read) if finished => read,
            _ => {
                return Err(Error::io(
                    root,
                    io::Error::other("the applying thread stopped without an error"),
                ));
            }
        };
        Ok(Applied {
            diff_id,
            uncompressed_size,
            entries,
            skipped,
        })
    })
}

/// The state of one layer's application.
struct Applier<'o> {
    root: Root,
    options: &'o ApplyOptions,
    lowers: Lowers,
    tuning: Tuning,
    /// The directories of the layer kept open, by path.
    cache: DirCache,
    /// Who new files belong to and which modes creation gives exactly.
    ids: Ids,
    /// Delete mode: the names this layer created.
    created: CreatedNames,
    /// Directory metadata to apply last.
    dirs: HashMap<RootedPath, DirMeta>,
    /// Finishes small new files on a second thread.
    files: Finisher,
    entries: u64,
    skipped: Vec<String>,
}

impl<'o> Applier<'o> {
    fn new(root: &Path, options: &'o ApplyOptions, tuning: Tuning) -> Result<Self> {
        let mut root = Root::open(root).map_err(|e| Error::io(root, e))?;
        if tuning.force_fallback {
            root.force_fallback();
        }
        let lowers = match (options.whiteouts, &options.late_lowers) {
            (WhiteoutMode::Overlay, Some(late)) => Lowers::late(late.clone()),
            (WhiteoutMode::Overlay, None) => Lowers::open(&options.lowers)?,
            (WhiteoutMode::Delete, _) => Lowers::open(&[])?,
        };
        let cache = DirCache::new(&mut root, !lowers.is_empty())?;
        Ok(Self {
            root,
            options,
            lowers,
            tuning,
            cache,
            ids: Ids::of_process(),
            created: CreatedNames::new(),
            dirs: HashMap::new(),
            files: Finisher::default(),
            entries: 0,
            skipped: Vec::new(),
        })
    }

    fn overlay(&self) -> bool {
        self.options.whiteouts == WhiteoutMode::Overlay
    }

    /// Applies what the reading thread sends, in order, until the stream
    /// ends; true if it was read whole and checked, and directory metadata
    /// applied. Of an error here and one of the files thread, the one of
    /// the earlier entry.
    fn run(&mut self, rx: &mpsc::Receiver<Msg>, recycle: &mpsc::Sender<Vec<u8>>) -> Result<bool> {
        let ran = self.run_entries(rx, recycle);
        let failed_at = self.entries;
        match (ran, self.files.join()) {
            (Ok(finished), Ok(())) => Ok(finished),
            (Err(_), Err((index, error))) if index < failed_at => Err(error),
            (Err(error), _) | (Ok(_), Err((_, error))) => Err(error),
        }
    }

    fn run_entries(
        &mut self,
        rx: &mpsc::Receiver<Msg>,
        recycle: &mpsc::Sender<Vec<u8>>,
    ) -> Result<bool> {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Batch(items, data) => {
                    let data = SharedData::new(data, recycle.clone());
                    for item in items {
                        let stream::Item {
                            entry,
                            data: range,
                            mut error,
                        } = item;
                        // Xattrs are rare and want this thread (which may
                        // skip some): such a file is made here, in full.
                        if error.is_none()
                            && matches!(entry.op, Op::Regular)
                            && entry.meta.xattrs.is_empty()
                        {
                            self.entries += 1;
                            self.regular_deferred(
                                entry.path,
                                &entry.meta,
                                &entry.raw,
                                &data,
                                range,
                            )?;
                            continue;
                        }
                        let bytes = data.get(range);
                        self.apply(entry, |write| {
                            if !bytes.is_empty() {
                                write(bytes)?;
                            }
                            error.take().map_or(Ok(()), Err)
                        })?;
                        // A skipped entry's data was not written, but the
                        // stream still failed there.
                        if let Some(error) = error {
                            return Err(error);
                        }
                    }
                    self.files.flush().map_err(|(_, error)| error)?;
                }
                Msg::Large(entry) => {
                    let mut ended = false;
                    let mut stopped = false;
                    let applied = self.apply(entry, |write| {
                        loop {
                            match rx.recv() {
                                Ok(Msg::Chunk(chunk)) => {
                                    write(&chunk)?;
                                    let _ = recycle.send(chunk);
                                }
                                Ok(Msg::End(error)) => {
                                    ended = true;
                                    return error.map_or(Ok(()), Err);
                                }
                                _ => {
                                    stopped = true;
                                    return Err(Error::Read(io::Error::other(
                                        "the reading thread stopped",
                                    )));
                                }
                            }
                        }
                    });
                    if stopped {
                        // The reading thread has its own error to report.
                        return Ok(false);
                    }
                    applied?;
                    // A skipped entry leaves its data unread.
                    while !ended {
                        match rx.recv() {
                            Ok(Msg::Chunk(_)) => {}
                            Ok(Msg::End(None)) => ended = true,
                            Ok(Msg::End(Some(error))) => return Err(error),
                            _ => return Ok(false),
                        }
                    }
                }
                Msg::Chunk(_) | Msg::End(_) => unreachable!("file data outside a file"),
                Msg::Finish => {
                    // Directory times go on last, after every file is done.
                    self.files.join().map_err(|(_, error)| error)?;
                    self.finish_dirs()?;
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Applies one entry; a regular file's data comes from `data`, which
    /// hands it to the writer it is given, chunk by chunk.
    fn apply(
        &mut self,
        parsed: entry::Entry,
        data: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
    ) -> Result<()> {
        self.entries += 1;
        let entry::Entry {
            raw,
            path,
            mut meta,
            op,
        } = parsed;
        if self.overlay() {
            self.drop_overlay_xattrs(&mut meta, &raw);
        }
        match op {
            Op::Whiteout { dir, target } => self.whiteout(&dir, &target, &raw),
            Op::Directory => self.directory(&path, &meta, &raw),
            Op::Regular => self.regular(&path, &meta, &raw, data),
            Op::Symlink(target) => self.symlink(&path, &target, &meta, &raw),
            Op::Hardlink(target) => self.hardlink(&path, &target, &raw),
            Op::Special { kind, dev } => self.special(&path, kind, dev, &meta, &raw),
        }
    }

    /// In overlay mode the kernel reads `trusted.overlay.*` and
    /// `user.overlay.*` xattrs (opaque markers, redirects, metacopy): a layer
    /// carrying them would make the mounted view differ from what this
    /// applier recorded, so they never reach the upper directory. hoist sets
    /// the opaque marker itself, from `.wh..wh..opq` entries.
    fn drop_overlay_xattrs(&mut self, meta: &mut entry::Meta, raw: &[u8]) {
        let before = meta.xattrs.len();
        meta.xattrs.retain(|(name, _)| {
            !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
        });
        if meta.xattrs.len() != before {
            let label = label(raw);
            tracing::warn!(path = %label, "dropped overlayfs xattrs the layer carried");
            self.skipped.push(format!("{label} (overlayfs xattrs)"));
        }
    }

    fn skip(&mut self, raw: &[u8], why: &str) {
        let label = label(raw);
        tracing::warn!(path = %label, "skipping entry: {why}");
        self.skipped.push(label);
    }
}

/// A name as written in the tar, for messages.
fn label(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(type, name, link target, data)` entries, names written raw.
    fn tar_of(entries: &[(tar::EntryType, &str, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, link, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
                h.set_device_major(1).unwrap();
                h.set_device_minor(5).unwrap();
            }
            let bytes = h.as_mut_bytes();
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn apply_tuned(root: &Path, tar: &[u8], tuning: Tuning) -> Result<Applied> {
        apply_with(
            root,
            tar,
            Compression::None,
            &ApplyOptions::default(),
            tuning,
        )
    }

    #[test]
    fn devices_are_skipped_without_privileges() {
        use tar::EntryType as T;
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            (T::Char, "dev/zero", "", b""),
            (T::Block, "dev/sda", "", b""),
            (T::Fifo, "dev/fifo", "", b""),
        ]);
        let tuning = Tuning {
            can_mknod: false,
            force_fallback: false,
        };
        let applied = apply_tuned(dir.path(), &tar, tuning).unwrap();
        assert_eq!(applied.skipped, ["dev/zero", "dev/sda"]);
        assert!(!dir.path().join("dev/zero").exists());
        assert!(dir.path().join("dev/fifo").exists());
    }

    #[test]
    fn fallback_walker_applies_and_confines() {
        use tar::EntryType as T;
        let tuning = Tuning {
            can_mknod: false,
            force_fallback: true,
        };
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        let canary = outer.path().join("canary");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("file"), b"precious").unwrap();

        let tar = tar_of(&[
            (T::Directory, "a/", "", b""),
            (T::Regular, "a/b/c", "", b"c"),
            (T::Link, "a/h", "a/b/c", b""),
            (T::Regular, "../x", "", b"x"),
            (T::Regular, "a/.wh.h", "", b""),
        ]);
        apply_tuned(&root, &tar, tuning).unwrap();
        assert_eq!(std::fs::read(root.join("a/b/c")).unwrap(), b"c");
        assert_eq!(std::fs::read(root.join("x")).unwrap(), b"x");
        assert!(!root.join("a/h").exists());

        // Without openat2 no symlink is followed at all, in-root or not.
        for entries in [
            &[
                (T::Symlink, "evil", "/", &b""[..]),
                (T::Regular, "evil/pwned", "", b"p"),
            ][..],
            &[
                (T::Symlink, "evil", "../canary", &b""[..]),
                (T::Regular, "evil/file", "", b"p"),
            ][..],
            &[
                (T::Symlink, "in", "a", &b""[..]),
                (T::Regular, "in/file", "", b"p"),
            ][..],
            &[
                (T::Symlink, "evil", "../canary", &b""[..]),
                (T::Link, "h", "evil/file", b""),
            ][..],
            // A directory the walk has open, replaced by a symlink.
            &[
                (T::Regular, "d/x", "", &b"x"[..]),
                (T::Symlink, "d", "/", b""),
                (T::Regular, "d/y", "", b"p"),
            ][..],
        ] {
            let err = apply_tuned(&root, &tar_of(entries), tuning).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err:?}");
        }
        // A whiteout through a symlink deletes nothing.
        let tar = tar_of(&[
            (T::Symlink, "link", "../canary", b""),
            (T::Regular, "link/.wh.file", "", b""),
        ]);
        apply_tuned(&root, &tar, tuning).unwrap();
        assert_eq!(std::fs::read(canary.join("file")).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(&canary).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 2);
    }
}
