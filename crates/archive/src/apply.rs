//! Applying one layer: the tar stream is read entry by entry and each entry
//! is turned into file system changes confined to the root.
//!
//! The order of operations per entry is:
//! 1. normalize the name lexically ([`RootedPath`]);
//! 2. open the parent directory inside the root (creating missing parents,
//!    mode 0755 as docker does); in overlay mode the parent is resolved
//!    through the merged view of the upper and the lower layers, symlinks of
//!    either followed as in-root paths, and a directory only a lower has is
//!    created in the upper with that lower's metadata;
//! 3. clear the final name if something of another kind is there;
//! 4. create the entry with an `*at` syscall on the parent fd;
//! 5. owner, then xattrs, then mode (`chown` clears setuid bits and
//!    `security.capability`, so it goes first), then times.
//!
//! Directory modes and times are applied last, deepest first: creating
//! entries inside a directory changes its mtime, and an unprivileged run
//! could not create entries in a directory already made read-only.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::compression::{self, Compression, SourceError};
use crate::diffid::HashingReader;
use crate::error::{Error, Result};
use crate::fsops::{self, XattrTarget, file_type, lstat_at};
use crate::lowers::{Found, Lowers, is_opaque, is_whiteout};
use crate::name::{RootedPath, component_path, is_plain_component};
use crate::root::Root;

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
            same_owner: rustix::process::geteuid().is_root(),
            expected_diff_id: None,
        }
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

pub(crate) fn apply_with<R: Read>(
    root: &Path,
    layer: R,
    declared: Compression,
    options: &ApplyOptions,
    tuning: Tuning,
) -> Result<Applied> {
    let mut applier = Applier::new(root, options, tuning)?;
    let (decoded, source) = compression::decoder(layer, declared)?;
    let mut archive = tar::Archive::new(HashingReader::new(decoded));
    // Where the data of the last entry ends, to tell an archive that ended
    // with its end-of-archive block from one cut off at a header boundary.
    let mut data_end = 0u64;
    for entry in archive.entries().map_err(|e| stream_error(&e, &source))? {
        let mut entry = entry.map_err(|e| stream_error(&e, &source))?;
        data_end = applier.entry(&mut entry, &source)?;
    }
    let mut hashing = archive.into_inner();
    let end = hashing.count();
    // The tar crate treats a clean EOF where a header should be as the end of
    // the archive. A stream whose last entry is followed by nothing is a
    // truncated stream (every writer ends with zero blocks), and applying it
    // would silently lose whatever came after the cut.
    if end != 0 && end < data_end + BLOCK {
        return Err(Error::malformed(
            "stream ends without an end-of-archive block (truncated)",
        ));
    }
    hashing.drain().map_err(|e| stream_error(&e, &source))?;
    let (diff_id, uncompressed_size) = hashing.finish();
    if let Some(expected) = &options.expected_diff_id
        && *expected != diff_id
    {
        return Err(Error::DiffIdMismatch {
            expected: expected.clone(),
            actual: diff_id,
        });
    }
    applier.finish_dirs()?;
    Ok(Applied {
        diff_id,
        uncompressed_size,
        entries: applier.entries,
        skipped: applier.skipped,
    })
}

const BLOCK: u64 = 512;

/// The largest size a ustar header's 11 octal digits can hold; a PAX `size`
/// beyond it legitimately disagrees with the ustar field.
const USTAR_MAX_SIZE: u64 = 0o77777777777;

/// An error met while reading the stream: the source's own failure if it
/// failed, else a malformed (or corrupt compressed) stream.
fn stream_error(e: &io::Error, source: &SourceError) -> Error {
    if let Some(original) = source.take() {
        return Error::Read(original);
    }
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        detail.push_str(": ");
        detail.push_str(&c.to_string());
        cause = c.source();
    }
    Error::malformed(detail)
}

/// A header field that does not parse.
fn bad_header(path: &str, field: &str, e: &io::Error) -> Error {
    Error::malformed(format!("entry {path}: bad {field}: {e}"))
}

/// A numeric header field; an empty one (all NUL or spaces) is 0, as Go's
/// reader (docker, containerd) takes it, where the tar crate reports an error.
fn numeric(parsed: io::Result<u64>, raw: &[u8], label: &str, field: &str) -> Result<u64> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(bad_header(label, field, &e)),
    }
}

/// Owner, mode, times and xattrs of an entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Time,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A point in time for `utimensat`.
#[derive(Clone, Copy, Debug)]
struct Time {
    sec: i64,
    nsec: u32,
}

impl Time {
    fn timestamps(self) -> Timestamps {
        let ts = Timespec {
            tv_sec: self.sec,
            tv_nsec: self.nsec.into(),
        };
        Timestamps {
            last_access: ts,
            last_modification: ts,
        }
    }

    fn of_stat(st: &rustix::fs::Stat) -> (Self, Self) {
        let t = |sec: i64, nsec: i64| Self {
            sec,
            nsec: u32::try_from(nsec).unwrap_or(0),
        };
        (
            t(st.st_atime, st.st_atime_nsec as i64),
            t(st.st_mtime, st.st_mtime_nsec as i64),
        )
    }
}

/// Parses a PAX time, `<seconds>[.<fraction>]`.
fn parse_pax_time(value: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(value).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    // For a negative time "-1.5" means -1.5 s: sec -2, nsec 0.5e9.
    if s.starts_with('-') && nsec > 0 {
        return Some(Time {
            sec: sec - 1,
            nsec: 1_000_000_000 - nsec,
        });
    }
    Some(Time { sec, nsec })
}

/// Metadata applied to a directory at the end.
#[derive(Clone, Copy, Debug)]
struct DirMeta {
    mode: u32,
    times: Option<(Time, Time)>,
}

/// How many symlinks one merged-view walk expands before giving up with
/// `ELOOP`, as the kernel does.
const MAX_SYMLINKS: usize = 40;

/// The parent directory of an entry, opened in the root.
struct Parent<'p> {
    fd: OwnedFd,
    /// Its path in the root with every symlink resolved (in overlay mode;
    /// else the entry's own parent path, which resolves to the same).
    path: RootedPath,
    /// The entry's final name.
    name: &'p [u8],
    /// Overlay mode: whether the lower layers show below this directory in
    /// the merged view (no opaque directory or deletion hides them).
    lowers: bool,
}

/// A directory opened (or created) in the root, see [`Parent`].
struct Dir {
    fd: OwnedFd,
    path: RootedPath,
    lowers: bool,
}

/// A directory found by a merged-view walk.
struct Merged {
    /// Its fd in the upper; `None` if only a lower layer has it.
    fd: Option<OwnedFd>,
    /// Its path, every symlink resolved.
    path: RootedPath,
    /// Whether the lowers show below it.
    lowers: bool,
}

/// One directory on the way of a merged-view walk.
struct Level {
    fd: Option<OwnedFd>,
    lowers: bool,
}

/// The end of a merged-view walk at a missing directory: an error if it was
/// to be created (only a symlink's target is never created), else `None`.
fn missing(create: bool, path: &RootedPath) -> Result<Option<Merged>> {
    if create {
        Err(Error::io(path.relative(), io::Error::from(Errno::NOENT)))
    } else {
        Ok(None)
    }
}

/// Marks a directory (opened readable) opaque for overlayfs.
fn set_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fsetxattr(
        dir,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )?)
}

struct Applier<'o> {
    root: Root,
    options: &'o ApplyOptions,
    lowers: Lowers,
    tuning: Tuning,
    /// Names this layer created, as (parent dev, parent inode, name), which
    /// Delete mode's opaque whiteout keeps. Keyed by the parent directory's
    /// identity rather than by path, so that a directory reached through an
    /// in-root symlink is recognized whichever name the tar used for it.
    created: HashSet<(u64, u64, Vec<u8>)>,
    /// Directory metadata to apply last.
    dirs: HashMap<RootedPath, DirMeta>,
    entries: u64,
    skipped: Vec<String>,
}

impl<'o> Applier<'o> {
    fn new(root: &Path, options: &'o ApplyOptions, tuning: Tuning) -> Result<Self> {
        let mut root = Root::open(root).map_err(|e| Error::io(root, e))?;
        if tuning.force_fallback {
            root.force_fallback();
        }
        let lowers = match options.whiteouts {
            WhiteoutMode::Overlay => Lowers::open(&options.lowers)?,
            WhiteoutMode::Delete => Lowers::open(&[])?,
        };
        Ok(Self {
            root,
            options,
            lowers,
            tuning,
            created: HashSet::new(),
            dirs: HashMap::new(),
            entries: 0,
            skipped: Vec::new(),
        })
    }

    /// Applies one entry; returns where its data ends in the stream.
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        source: &SourceError,
    ) -> Result<u64> {
        let header = entry.header().clone();
        let raw_path = entry.path_bytes().into_owned();
        let label = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = header.entry_type();

        let mut pax_size = None;
        let mut pax_mtime = None;
        let mut xattrs = Vec::new();
        if !kind.is_pax_global_extensions()
            && let Some(extensions) = entry
                .pax_extensions()
                .map_err(|e| stream_error(&e, source))?
        {
            for ext in extensions {
                let ext = ext.map_err(|e| bad_header(&label, "PAX record", &e))?;
                let key = ext.key_bytes();
                if key == b"size" {
                    let v = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or_else(|| Error::malformed(format!("entry {label}: bad PAX size")))?;
                    pax_size = Some(v);
                } else if key == b"mtime" {
                    pax_mtime = Some(parse_pax_time(ext.value_bytes()).ok_or_else(|| {
                        Error::malformed(format!("entry {label}: bad PAX mtime"))
                    })?);
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }

        let ustar_size = header
            .entry_size()
            .map_err(|e| bad_header(&label, "size", &e))?;
        // Parsers that disagree on an entry's size see different archives
        // (one parser's file data is another's headers: CVE-2025-62518). The
        // tar crate follows PAX; any disagreement the ustar field could have
        // expressed is refused rather than resolved either way.
        if let Some(pax) = pax_size
            && pax != ustar_size
            && pax <= USTAR_MAX_SIZE
        {
            return Err(Error::malformed(format!(
                "entry {label}: PAX size {pax} disagrees with ustar size {ustar_size}"
            )));
        }
        let stored = pax_size.unwrap_or(ustar_size);
        let data_end = entry
            .raw_file_position()
            .checked_add(stored.div_ceil(BLOCK) * BLOCK)
            .ok_or_else(|| Error::malformed("entry size overflows"))?;

        if kind.is_pax_global_extensions() {
            // Global PAX defaults (`g`) carry nothing an applier uses.
            return Ok(data_end);
        }
        self.entries += 1;

        let path = RootedPath::parse(&raw_path)?;
        let old = header.as_old();
        let mode =
            numeric(header.mode().map(u64::from), &old.mode, &label, "mode")? as u32 & 0o7777;
        let uid = id(numeric(header.uid(), &old.uid, &label, "uid")?, &label)?;
        let gid = id(numeric(header.gid(), &old.gid, &label, "gid")?, &label)?;
        let mtime = match pax_mtime {
            Some(t) => t,
            None => Time {
                sec: i64::try_from(numeric(header.mtime(), &old.mtime, &label, "mtime")?)
                    .unwrap_or(i64::MAX),
                nsec: 0,
            },
        };
        let meta = Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        };

        if let Some((parent, last)) = path.split_last()
            && let Some(target) = last.strip_prefix(b".wh.")
        {
            self.whiteout(&parent, target, &label)?;
            return Ok(data_end);
        }

        let byte = kind.as_byte();
        // Old tar writers mark directories as regular files with a trailing
        // `/`; Go's reader (docker, containerd) makes them directories too.
        let legacy_dir = byte == b'\0' && raw_path.ends_with(b"/");
        match byte {
            b'5' => self.directory(&path, &meta, &label)?,
            _ if legacy_dir => self.directory(&path, &meta, &label)?,
            b'0' | b'\0' | b'7' | b'S' => self.regular(&path, &meta, entry, source, &label)?,
            b'2' => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::malformed(format!("symlink {label} has no target")))?
                    .into_owned();
                self.symlink(&path, &target, &meta, &label)?;
            }
            b'1' => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::malformed(format!("hardlink {label} has no target")))?
                    .into_owned();
                self.hardlink(&path, &target, &label)?;
            }
            b'3' => self.special(&path, FileType::CharacterDevice, &header, &meta, &label)?,
            b'4' => self.special(&path, FileType::BlockDevice, &header, &meta, &label)?,
            b'6' => self.special(&path, FileType::Fifo, &header, &meta, &label)?,
            other => {
                return Err(Error::Unsupported {
                    detail: format!("entry {label}: tar entry type {:?}", other as char),
                });
            }
        }
        Ok(data_end)
    }

    fn skip(&mut self, label: &str, why: &str) {
        tracing::warn!(path = %label, "skipping entry: {why}");
        self.skipped.push(label.to_owned());
    }

    /// Opens the parent of `path` (creating missing directories) and returns
    /// it with the final name. `None` for the root itself.
    fn parent_of<'p>(&mut self, path: &'p RootedPath) -> Result<Option<Parent<'p>>> {
        let Some((last, _)) = path.components().split_last() else {
            return Ok(None);
        };
        let (parent, _) = path.split_last().expect("not the root");
        let dir = self.ensure_dir(&parent)?;
        Ok(Some(Parent {
            fd: dir.fd,
            path: dir.path,
            name: last.as_slice(),
            lowers: dir.lowers,
        }))
    }

    /// Opens the directory `dir` inside the root, creating it and any missing
    /// ancestor. Existing symlinks on the way are followed *inside the root*
    /// (a layer writing `lib/x` over an earlier `lib -> usr/lib` writes
    /// `usr/lib/x`, as docker does), never out of it. In overlay mode the
    /// walk goes through the merged view ([`Self::walk_merged`]), so a symlink
    /// or directory that only a lower layer has counts too.
    fn ensure_dir(&mut self, dir: &RootedPath) -> Result<Dir> {
        if self.options.whiteouts == WhiteoutMode::Overlay {
            let found = self.walk_merged(dir, true)?.expect("created");
            let fd = found.fd.expect("created in the upper");
            return Ok(Dir {
                fd,
                path: found.path,
                lowers: found.lowers,
            });
        }
        let plain = |fd| Dir {
            fd,
            path: dir.clone(),
            lowers: false,
        };
        match self.root.open_dir(dir) {
            Ok(fd) => return Ok(plain(fd)),
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            Err(e) => return Err(Error::io(dir.relative(), e)),
        }
        let mut fd = self
            .root
            .open_dir(&RootedPath::default())
            .map_err(|e| Error::io(".", e))?;
        let mut current = RootedPath::default();
        for name in dir.components() {
            let next = current.join(name);
            fd = match self.root.open_dir(&next) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    self.make_implicit_dir(fd.as_fd(), &next, name, None)?
                }
                Err(e) => return Err(Error::io(next.relative(), e)),
            };
            current = next;
        }
        Ok(plain(fd))
    }

    /// Resolves the directory `dir` through overlay's merged view: the root
    /// (the upper directory) over the lower layers, topmost first.
    ///
    /// Per component: what the upper has wins (a directory is entered, a
    /// symlink expanded, a whiteout means deleted); else the lowers are asked,
    /// unless an opaque upper directory on the way hides them. A symlink,
    /// wherever it lives, is expanded as an in-root path: an absolute target
    /// starts again at the root, a relative one at the directory holding the
    /// link, `..` stops at the root, and at most [`MAX_SYMLINKS`] expansions
    /// are made. Every directory of the upper is opened through
    /// [`Root::open_in`] by its symlink-free path, every lower one component
    /// at a time without following anything, so nothing outside the root or
    /// the lowers is ever reached.
    ///
    /// With `create`, directories missing from the upper are made there: a
    /// lower layer's one with its owner, mode, times and xattrs (so the
    /// merged view does not change), one missing everywhere (or deleted by
    /// this layer) plain; the result then has an fd. Names that come from a
    /// symlink's target must exist, as they must for `RESOLVE_IN_ROOT`.
    /// Without `create`, a directory the merged view does not have (missing,
    /// deleted, or a non-directory there) gives `None`.
    fn walk_merged(&mut self, dir: &RootedPath, create: bool) -> Result<Option<Merged>> {
        let root_fd = self
            .root
            .open_in(&RootedPath::default(), OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| Error::io(".", e))?;
        let lowers = !self.lowers.is_empty() && !is_opaque(root_fd.as_fd());
        let mut levels = vec![Level {
            fd: Some(root_fd),
            lowers,
        }];
        let mut current = RootedPath::default();
        // Names still to walk, the next one last; `true` marks a name from a
        // symlink's target.
        let mut todo: Vec<(Vec<u8>, bool)> = dir
            .components()
            .iter()
            .rev()
            .map(|c| (c.clone(), false))
            .collect();
        let mut expansions = 0;
        while let Some((name, from_link)) = todo.pop() {
            if name == b".." {
                // Clamped at the root, like `RESOLVE_IN_ROOT`.
                if let Some((parent, _)) = current.split_last() {
                    levels.pop();
                    current = parent;
                }
                continue;
            }
            let next = current.join(&name);
            let err = |e: io::Error| Error::io(next.relative(), e);
            let level = levels.last().expect("the root level stays");
            let lowers_here = level.lowers;
            let parent_fd = level.fd.as_ref().map(|fd| fd.as_fd());
            let upper = match parent_fd {
                Some(fd) => lstat_at(fd, &name).map_err(err)?,
                None => None,
            };
            let link = match upper {
                Some(st) if file_type(&st) == FileType::Directory => {
                    let fd = self
                        .root
                        .open_in(&next, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)
                        .map_err(err)?;
                    let lowers = lowers_here && !is_opaque(fd.as_fd());
                    levels.push(Level {
                        fd: Some(fd),
                        lowers,
                    });
                    current = next;
                    continue;
                }
                Some(st) if file_type(&st) == FileType::Symlink => {
                    let fd = parent_fd.expect("the upper has it");
                    rustix::fs::readlinkat(fd, component_path(&name), Vec::new())
                        .map_err(|e| err(e.into()))?
                        .into_bytes()
                }
                Some(st) if is_whiteout(&st) => {
                    // Deleted by this layer: a new directory here must not
                    // let the lowers' one show through.
                    if !create || from_link {
                        return missing(create, &next);
                    }
                    let fd = parent_fd.expect("the upper has it");
                    fsops::remove_at(fd, &name).map_err(err)?;
                    let shadowed = self.lower_is_dir(lowers_here, &next)?;
                    let made = self.make_implicit_dir(fd, &next, &name, None)?;
                    if shadowed {
                        set_opaque(made.as_fd()).map_err(err)?;
                    }
                    levels.push(Level {
                        fd: Some(made),
                        lowers: false,
                    });
                    current = next;
                    continue;
                }
                Some(_) if create => return Err(err(Errno::NOTDIR.into())),
                Some(_) => return Ok(None),
                None => {
                    let found = if lowers_here {
                        self.lowers.lookup(&next).map_err(err)?
                    } else {
                        None
                    };
                    match found {
                        Some(found) if file_type(&found.stat) == FileType::Directory => {
                            let fd = match parent_fd {
                                Some(fd) if create => {
                                    Some(self.make_implicit_dir(fd, &next, &name, Some(&found))?)
                                }
                                _ => None,
                            };
                            levels.push(Level { fd, lowers: true });
                            current = next;
                            continue;
                        }
                        Some(found) if file_type(&found.stat) == FileType::Symlink => {
                            rustix::fs::readlinkat(&found.parent, component_path(&name), Vec::new())
                                .map_err(|e| Error::io(&found.lower, io::Error::from(e)))?
                                .into_bytes()
                        }
                        Some(_) if create => return Err(err(Errno::NOTDIR.into())),
                        Some(_) => return Ok(None),
                        None => {
                            let Some(fd) = parent_fd.filter(|_| create && !from_link) else {
                                return missing(create, &next);
                            };
                            let made = self.make_implicit_dir(fd, &next, &name, None)?;
                            levels.push(Level {
                                fd: Some(made),
                                lowers: false,
                            });
                            current = next;
                            continue;
                        }
                    }
                }
            };
            // A symlink: its target is walked instead, as an in-root path.
            expansions += 1;
            if !self.root.follows_symlinks() || expansions > MAX_SYMLINKS {
                return Err(err(Errno::LOOP.into()));
            }
            if link.starts_with(b"/") {
                levels.truncate(1);
                current = RootedPath::default();
            }
            for part in link.split(|&b| b == b'/').rev() {
                if !part.is_empty() && part != b"." {
                    todo.push((part.to_vec(), true));
                }
            }
        }
        let level = levels.pop().expect("the root level stays");
        Ok(Some(Merged {
            fd: level.fd,
            path: current,
            lowers: level.lowers,
        }))
    }

    /// True if the lowers (when visible here) have a directory at `path`.
    fn lower_is_dir(&self, visible: bool, path: &RootedPath) -> Result<bool> {
        if !visible {
            return Ok(false);
        }
        let found = self
            .lowers
            .lookup(path)
            .map_err(|e| Error::io(path.relative(), e))?;
        Ok(found.is_some_and(|f| file_type(&f.stat) == FileType::Directory))
    }

    /// Creates a directory the tar did not list and returns it opened
    /// readable: mode 0755 as docker does, or, given the same directory in a
    /// lower layer (overlay mode), with its owner, mode, times and xattrs (an
    /// upper directory's attributes hide the lower one's in the merged view,
    /// so defaults would change it).
    fn make_implicit_dir(
        &mut self,
        parent: BorrowedFd<'_>,
        path: &RootedPath,
        name: &[u8],
        lower: Option<&Found>,
    ) -> Result<OwnedFd> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        rustix::fs::mkdirat(parent, component_path(name), Mode::from_raw_mode(0o700))
            .map_err(|e| io_err(e.into()))?;
        self.mark_created(parent, name).map_err(io_err)?;
        let dir = fsops::open_dir_nofollow(parent, name).map_err(io_err)?;
        match lower {
            Some(found) => {
                let lower_dir = fsops::open_dir_nofollow(found.parent.as_fd(), name)
                    .map_err(|e| Error::io(&found.lower, e))?;
                if self.options.same_owner {
                    rustix::fs::fchown(
                        &dir,
                        Some(rustix::fs::Uid::from_raw(found.stat.st_uid)),
                        Some(rustix::fs::Gid::from_raw(found.stat.st_gid)),
                    )
                    .map_err(|e| io_err(e.into()))?;
                }
                let label = String::from_utf8_lossy(&path.key()).into_owned();
                for (k, v) in
                    fsops::get_xattrs(lower_dir.as_fd()).map_err(|e| Error::io(&found.lower, e))?
                {
                    fsops::set_xattr(&XattrTarget::Fd(dir.as_fd()), &k, &v, &label)
                        .map_err(io_err)?;
                }
                self.dirs.insert(
                    path.clone(),
                    DirMeta {
                        mode: found.stat.st_mode & 0o7777,
                        times: Some(Time::of_stat(&found.stat)),
                    },
                );
            }
            None => {
                // mkdirat's mode is cut by the umask; set 0755 exactly.
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o755))
                    .map_err(|e| io_err(e.into()))?;
            }
        }
        Ok(dir)
    }

    /// Makes room for a non-directory at `name`: whatever is there goes, a
    /// directory with its whole tree. A file is unlinked rather than written
    /// through, because it may be a hardlink shared with a lower layer.
    fn clear(&self, parent: BorrowedFd<'_>, name: &[u8], path: &RootedPath) -> Result<()> {
        fsops::remove_at(parent, name).map_err(|e| Error::io(path.relative(), e))
    }

    fn chown(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        path: &RootedPath,
    ) -> Result<()> {
        if self.options.same_owner {
            fsops::chown_at(parent, name, meta.uid, meta.gid)
                .map_err(|e| Error::io(path.relative(), e))?;
        }
        Ok(())
    }

    fn set_xattrs(
        &self,
        target: &XattrTarget<'_>,
        meta: &Meta,
        path: &RootedPath,
        label: &str,
    ) -> Result<()> {
        for (k, v) in &meta.xattrs {
            fsops::set_xattr(target, k, v, label).map_err(|e| Error::io(path.relative(), e))?;
        }
        Ok(())
    }

    fn directory(&mut self, path: &RootedPath, meta: &Meta, label: &str) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let Some(parent) = self.parent_of(path)? else {
            // An entry naming the root (`.`, `/`) only updates its metadata;
            // the root itself is never replaced or removed.
            let root = self.root.fd();
            if self.options.same_owner {
                rustix::fs::fchown(
                    root,
                    Some(rustix::fs::Uid::from_raw(meta.uid)),
                    Some(rustix::fs::Gid::from_raw(meta.gid)),
                )
                .map_err(|e| io_err(e.into()))?;
            }
            self.set_xattrs(&XattrTarget::Fd(root), meta, path, label)?;
            self.defer_dir(path, meta);
            return Ok(());
        };
        let Parent {
            fd: parent,
            path: parent_path,
            name,
            lowers,
        } = parent;
        let parent = parent.as_fd();
        let resolved = parent_path.join(name);
        let replaced = match lstat_at(parent, name).map_err(io_err)? {
            // A directory over a directory keeps it (and what lower layers put
            // in it) and only updates its metadata.
            Some(st) if file_type(&st) == FileType::Directory => false,
            existing => {
                if existing.is_some() {
                    self.clear(parent, name, path)?;
                }
                // Owner-writable until the end, so that an unprivileged run
                // can fill a directory whose final mode is read-only.
                rustix::fs::mkdirat(parent, component_path(name), Mode::from_raw_mode(0o700))
                    .map_err(|e| io_err(e.into()))?;
                existing.is_some()
            }
        };
        // Overlay: the upper starts empty, so anything this directory
        // replaced there (a whiteout, a file, a symlink) was put by this
        // layer, which so deleted whatever the lowers have at this path. If
        // that is a directory, overlay would merge it back under the new one
        // unless the new one is opaque. (An upper directory over a lower
        // non-directory hides it anyway.)
        let opaque = replaced && self.lower_is_dir(lowers, &resolved)?;
        self.mark_created(parent, name).map_err(io_err)?;
        self.chown(parent, name, meta, path)?;
        if opaque || !meta.xattrs.is_empty() {
            let dir = fsops::open_dir_nofollow(parent, name).map_err(io_err)?;
            if opaque {
                set_opaque(dir.as_fd()).map_err(io_err)?;
            }
            self.set_xattrs(&XattrTarget::Fd(dir.as_fd()), meta, path, label)?;
        }
        // Keyed by the resolved path: `finish_dirs` finds it there even when
        // the entry's name went through a lower layer's symlink.
        self.defer_dir(&resolved, meta);
        Ok(())
    }

    /// Records that this layer created `name` in the directory `parent`.
    fn mark_created(&mut self, parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
        let st = rustix::fs::fstat(parent)?;
        self.created.insert((st.st_dev, st.st_ino, name.to_vec()));
        Ok(())
    }

    fn defer_dir(&mut self, path: &RootedPath, meta: &Meta) {
        self.dirs.insert(
            path.clone(),
            DirMeta {
                mode: meta.mode,
                times: Some((meta.mtime, meta.mtime)),
            },
        );
    }

    fn regular<R: Read>(
        &mut self,
        path: &RootedPath,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
        source: &SourceError,
        label: &str,
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let Some(Parent {
            fd: parent, name, ..
        }) = self.parent_of(path)?
        else {
            self.skip(label, "a file cannot replace the root");
            return Ok(());
        };
        let parent = parent.as_fd();
        self.clear(parent, name, path)?;
        // O_EXCL after the unlink: the name is new, so nothing (a symlink
        // planted earlier, a hardlink into a lower layer) can be written through.
        let fd = rustix::fs::openat(
            parent,
            component_path(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err(e.into()))?;
        let mut file = std::fs::File::from(fd);
        let expected = entry.size();
        let mut written = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(&e, source)),
            };
            file.write_all(&buf[..n]).map_err(io_err)?;
            written += n as u64;
        }
        if written != expected {
            return Err(Error::malformed(format!(
                "entry {label}: stream ends after {written} of {expected} bytes (truncated)"
            )));
        }
        if self.options.same_owner {
            rustix::fs::fchown(
                &file,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
            )
            .map_err(|e| io_err(e.into()))?;
        }
        self.set_xattrs(&XattrTarget::Fd(file.as_fd()), meta, path, label)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode)).map_err(|e| io_err(e.into()))?;
        rustix::fs::futimens(&file, &meta.mtime.timestamps()).map_err(|e| io_err(e.into()))?;
        self.mark_created(parent, name).map_err(io_err)?;
        Ok(())
    }

    fn symlink(
        &mut self,
        path: &RootedPath,
        target: &[u8],
        meta: &Meta,
        label: &str,
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        if target.contains(&0) {
            return Err(Error::malformed(format!(
                "symlink {label}: target contains a NUL byte"
            )));
        }
        let Some(Parent {
            fd: parent, name, ..
        }) = self.parent_of(path)?
        else {
            self.skip(label, "a symlink cannot replace the root");
            return Ok(());
        };
        let parent = parent.as_fd();
        self.clear(parent, name, path)?;
        // The target is stored verbatim: a symlink may point anywhere, and it
        // only matters when followed, which every later resolution does
        // inside the root.
        rustix::fs::symlinkat(
            std::ffi::OsStr::from_bytes(target),
            parent,
            component_path(name),
        )
        .map_err(|e| io_err(e.into()))?;
        self.chown(parent, name, meta, path)?;
        self.set_xattrs(&XattrTarget::NoFollow(parent, name), meta, path, label)?;
        fsops::utimes_at(parent, name, &meta.mtime.timestamps()).map_err(io_err)?;
        self.mark_created(parent, name).map_err(io_err)?;
        Ok(())
    }

    fn hardlink(&mut self, path: &RootedPath, target: &[u8], label: &str) -> Result<()> {
        let target = RootedPath::parse(target)?;
        let Some((target_parent, target_name)) = target.split_last() else {
            return Err(Error::malformed(format!(
                "hardlink {label} points at the root"
            )));
        };
        if path.is_root() {
            self.skip(label, "a hardlink cannot replace the root");
            return Ok(());
        }
        if target == *path {
            // A link to itself: nothing to do (removing it first would lose it).
            return Ok(());
        }
        let target_err = |e: io::Error| Error::io(target.relative(), e);
        // The target is resolved inside the root like any name, so `../x`
        // and `/etc/passwd` name files of this tree, never the host's.
        // In overlay mode it is looked up in the merged view (copied up from
        // a lower layer if only one has it).
        let source = if self.options.whiteouts == WhiteoutMode::Overlay {
            self.find_merged(&target_parent, target_name)?
        } else {
            self.find_in_root(&target_parent, target_name)
                .map_err(target_err)?
        };
        let Some((source_dir, source_stat)) = source else {
            return Err(target_err(Errno::NOENT.into()));
        };
        if file_type(&source_stat) == FileType::Directory {
            return Err(Error::malformed(format!(
                "hardlink {label} points at a directory"
            )));
        }
        let Parent {
            fd: parent, name, ..
        } = self.parent_of(path)?.expect("not the root");
        let parent = parent.as_fd();
        if let Some(st) = lstat_at(parent, name).map_err(|e| Error::io(path.relative(), e))? {
            if st.st_dev == source_stat.st_dev && st.st_ino == source_stat.st_ino {
                return Ok(());
            }
            self.clear(parent, name, path)?;
        }
        // Flags 0: a symlink target is linked itself, never followed.
        rustix::fs::linkat(
            &source_dir,
            component_path(target_name),
            parent,
            component_path(name),
            AtFlags::empty(),
        )
        .map_err(|e| Error::io(path.relative(), io::Error::from(e)))?;
        self.mark_created(parent, name)
            .map_err(|e| Error::io(path.relative(), e))?;
        Ok(())
    }

    /// Overlay mode: the parent fd (in the upper) and `lstat` of
    /// `parent/name` in the merged view, if it exists there. Symlinks on the
    /// way resolve through the merged view too; a whiteout means deleted; a
    /// file only a lower layer has is copied up first, as overlay cannot link
    /// across layers.
    fn find_merged(
        &mut self,
        parent: &RootedPath,
        name: &[u8],
    ) -> Result<Option<(OwnedFd, rustix::fs::Stat)>> {
        let Some(dir) = self.walk_merged(parent, false)? else {
            return Ok(None);
        };
        let resolved = dir.path.join(name);
        let err = |e: io::Error| Error::io(resolved.relative(), e);
        if let Some(fd) = dir.fd {
            match lstat_at(fd.as_fd(), name).map_err(err)? {
                Some(st) if is_whiteout(&st) => return Ok(None),
                Some(st) => return Ok(Some((fd, st))),
                None => {}
            }
        }
        if !dir.lowers || !self.copy_up(&resolved)? {
            return Ok(None);
        }
        self.find_in_root(&dir.path, name).map_err(err)
    }

    /// The parent fd and `lstat` of `parent/name` in the root, if it exists.
    fn find_in_root(
        &mut self,
        parent: &RootedPath,
        name: &[u8],
    ) -> io::Result<Option<(OwnedFd, rustix::fs::Stat)>> {
        let dir = match self.root.open_dir(parent) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(c) if c == Errno::NOENT.raw_os_error() || c == Errno::NOTDIR.raw_os_error()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(lstat_at(dir.as_fd(), name)?.map(|st| (dir, st)))
    }

    /// Copies `target` (a path with every symlink resolved, not hidden
    /// in the merged view by the upper) from the topmost lower layer that has
    /// it into the root, so that a hardlink to it can be made (overlay cannot
    /// link across layers). False, and nothing done, if no lower has it.
    fn copy_up(&mut self, target: &RootedPath) -> Result<bool> {
        let io_err = |e: io::Error| Error::io(target.relative(), e);
        let Some(found) = self.lowers.lookup(target).map_err(io_err)? else {
            return Ok(false);
        };
        let lower_err = |e: io::Error| Error::io(found.lower.join(target.relative()), e);
        let Parent {
            fd: parent, name, ..
        } = self.parent_of(target)?.expect("not the root");
        let parent = parent.as_fd();
        let st = &found.stat;
        let (atime, mtime) = Time::of_stat(st);
        let times = Timestamps {
            last_access: atime.timestamps().last_access,
            last_modification: mtime.timestamps().last_modification,
        };
        match file_type(st) {
            FileType::RegularFile => {
                let src = rustix::fs::openat(
                    &found.parent,
                    component_path(name),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| lower_err(e.into()))?;
                let dst = rustix::fs::openat(
                    parent,
                    component_path(name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err(e.into()))?;
                let mut src = std::fs::File::from(src);
                let mut dst = std::fs::File::from(dst);
                io::copy(&mut src, &mut dst).map_err(io_err)?;
                if self.options.same_owner {
                    rustix::fs::fchown(
                        &dst,
                        Some(rustix::fs::Uid::from_raw(st.st_uid)),
                        Some(rustix::fs::Gid::from_raw(st.st_gid)),
                    )
                    .map_err(|e| io_err(e.into()))?;
                }
                let label = String::from_utf8_lossy(&target.key()).into_owned();
                for (k, v) in fsops::get_xattrs(src.as_fd()).map_err(lower_err)? {
                    fsops::set_xattr(&XattrTarget::Fd(dst.as_fd()), &k, &v, &label)
                        .map_err(io_err)?;
                }
                rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))
                    .map_err(|e| io_err(e.into()))?;
                rustix::fs::futimens(&dst, &times).map_err(|e| io_err(e.into()))?;
            }
            FileType::Symlink => {
                let link = rustix::fs::readlinkat(&found.parent, component_path(name), Vec::new())
                    .map_err(|e| lower_err(e.into()))?;
                rustix::fs::symlinkat(link.as_c_str(), parent, component_path(name))
                    .map_err(|e| io_err(e.into()))?;
                if self.options.same_owner {
                    fsops::chown_at(parent, name, st.st_uid, st.st_gid).map_err(io_err)?;
                }
                fsops::utimes_at(parent, name, &times).map_err(io_err)?;
            }
            other => {
                return Err(Error::Unsupported {
                    detail: format!(
                        "hardlink to {} in a lower layer, which is a {other:?}",
                        target.relative().display()
                    ),
                });
            }
        }
        Ok(true)
    }

    fn special(
        &mut self,
        path: &RootedPath,
        kind: FileType,
        header: &tar::Header,
        meta: &Meta,
        label: &str,
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        let device = matches!(kind, FileType::CharacterDevice | FileType::BlockDevice);
        if device && !self.tuning.can_mknod {
            // Rootless tools (rootless podman, buildah) skip device nodes the
            // same way: an unprivileged user cannot create them.
            self.skip(label, "device nodes need privileges");
            return Ok(());
        }
        let dev = if device {
            let major = header
                .device_major()
                .map_err(|e| bad_header(label, "device major", &e))?
                .unwrap_or(0);
            let minor = header
                .device_minor()
                .map_err(|e| bad_header(label, "device minor", &e))?
                .unwrap_or(0);
            rustix::fs::makedev(major, minor)
        } else {
            0
        };
        let Some(Parent {
            fd: parent, name, ..
        }) = self.parent_of(path)?
        else {
            self.skip(label, "a special file cannot replace the root");
            return Ok(());
        };
        let parent = parent.as_fd();
        self.clear(parent, name, path)?;
        match rustix::fs::mknodat(
            parent,
            component_path(name),
            kind,
            Mode::from_raw_mode(meta.mode & 0o777),
            dev,
        ) {
            Ok(()) => {}
            // Root in a user namespace has no CAP_MKNOD over the host's devices.
            Err(Errno::PERM) if device => {
                self.skip(label, "device node creation not permitted");
                return Ok(());
            }
            Err(e) => return Err(io_err(e.into())),
        }
        self.chown(parent, name, meta, path)?;
        let node = fsops::open_path_nofollow(parent, name).map_err(io_err)?;
        fsops::chmod_opath(node.as_fd(), meta.mode).map_err(io_err)?;
        self.set_xattrs(&XattrTarget::NoFollow(parent, name), meta, path, label)?;
        fsops::utimes_at(parent, name, &meta.mtime.timestamps()).map_err(io_err)?;
        self.mark_created(parent, name).map_err(io_err)?;
        Ok(())
    }

    /// Applies a whiteout entry `dir/.wh.<target>`.
    fn whiteout(&mut self, dir: &RootedPath, target: &[u8], label: &str) -> Result<()> {
        if target == b".wh..opq" {
            return self.opaque(dir, label);
        }
        if target.starts_with(b".wh.") {
            // Other `.wh..wh.*` names are aufs bookkeeping (`.wh..wh.plnk`, …).
            tracing::debug!(path = %label, "ignoring aufs metadata entry");
            return Ok(());
        }
        // `.wh..` and `.wh...` name `.` and `..`: deleting those would remove
        // the directory itself or its parent (at the root, the root's parent).
        if !is_plain_component(target) {
            tracing::warn!(path = %label, "ignoring whiteout that names no file");
            return Ok(());
        }
        let path = dir.join(target);
        let io_err = |e: io::Error| Error::io(path.relative(), e);
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                // The directory is resolved inside the root: a whiteout under a
                // symlink (`link -> ../canary`, `link/.wh.file`) deletes in the
                // tree the symlink means inside the root, if anything.
                let parent = match self.root.open_dir(dir) {
                    Ok(fd) => fd,
                    Err(e) if is_absent(&e) => return Ok(()),
                    Err(e) => return Err(Error::io(dir.relative(), e)),
                };
                fsops::remove_at(parent.as_fd(), target).map_err(io_err)?;
            }
            WhiteoutMode::Overlay => {
                // The directory is resolved through the merged view: under a
                // lower layer's `lib -> usr/lib`, `lib/.wh.x` deletes
                // `usr/lib/x`. Under a directory the merged view does not
                // have there is nothing to delete, as in Delete mode.
                let Some(found) = self.walk_merged(dir, false)? else {
                    return Ok(());
                };
                let parent = self.ensure_dir(&found.path)?.fd;
                fsops::remove_at(parent.as_fd(), target).map_err(io_err)?;
                rustix::fs::mknodat(
                    &parent,
                    component_path(target),
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| io_err(e.into()))?;
            }
        }
        Ok(())
    }

    /// Applies `dir/.wh..wh..opq`.
    fn opaque(&mut self, dir: &RootedPath, label: &str) -> Result<()> {
        let io_err = |e: io::Error| Error::io(dir.relative(), e);
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                let fd = match self.root.open_dir_readable(dir) {
                    Ok(fd) => fd,
                    Err(e) if is_absent(&e) => return Ok(()),
                    Err(e) => return Err(io_err(e)),
                };
                self.clear_lower(fd.as_fd(), dir)
            }
            WhiteoutMode::Overlay => {
                let Some(found) = self.walk_merged(dir, false)? else {
                    return Ok(());
                };
                // Opened readable by the walk, so `fsetxattr` works on it.
                let fd = self.ensure_dir(&found.path)?.fd;
                set_opaque(fd.as_fd()).map_err(io_err)?;
                tracing::trace!(path = %label, "set opaque");
                Ok(())
            }
        }
    }

    /// Removes from the directory `fd` (at `dir`) everything this layer did
    /// not create, descending into directories it did create.
    fn clear_lower(&self, fd: BorrowedFd<'_>, dir: &RootedPath) -> Result<()> {
        let io_err = |e: io::Error| Error::io(dir.relative(), e);
        let st = rustix::fs::fstat(fd).map_err(|e| io_err(e.into()))?;
        for name in fsops::list_dir(fd).map_err(io_err)? {
            let child = dir.join(&name);
            if self.created.contains(&(st.st_dev, st.st_ino, name.clone())) {
                let is_dir = lstat_at(fd, &name)
                    .map_err(io_err)?
                    .is_some_and(|st| file_type(&st) == FileType::Directory);
                if is_dir {
                    let sub = fsops::open_dir_nofollow(fd, &name).map_err(io_err)?;
                    self.clear_lower(sub.as_fd(), &child)?;
                }
            } else {
                fsops::remove_at(fd, &name).map_err(|e| Error::io(child.relative(), e))?;
            }
        }
        Ok(())
    }

    /// Applies directory modes and times, deepest first so that setting a
    /// child's metadata does not disturb its parent's mtime.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs: Vec<(RootedPath, DirMeta)> = self.dirs.drain().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.depth()));
        for (path, meta) in dirs {
            let io_err = |e: io::Error| Error::io(path.relative(), e);
            // O_NOFOLLOW: if a later entry replaced the directory with a
            // symlink, its metadata is not applied through that symlink.
            let fd = match self
                .root
                .open_in(&path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)
            {
                Ok(fd) => fd,
                Err(e) if is_absent(&e) || e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
                    continue;
                }
                Err(e) => return Err(io_err(e)),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| io_err(e.into()))?;
            if let Some((atime, mtime)) = meta.times {
                let times = Timestamps {
                    last_access: atime.timestamps().last_access,
                    last_modification: mtime.timestamps().last_modification,
                };
                rustix::fs::futimens(&fd, &times).map_err(|e| io_err(e.into()))?;
            }
        }
        Ok(())
    }
}

/// `ENOENT` or `ENOTDIR`: the path is not there (as a directory).
fn is_absent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == Errno::NOENT.raw_os_error() || c == Errno::NOTDIR.raw_os_error())
}

/// A tar uid/gid as a Linux id; `-1` means "unchanged" to `chown` and is refused.
fn id(raw: u64, label: &str) -> Result<u32> {
    u32::try_from(raw)
        .ok()
        .filter(|&v| v != u32::MAX)
        .ok_or_else(|| Error::malformed(format!("entry {label}: uid/gid {raw} out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.sec, t.nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"12").unwrap();
        assert_eq!((t.sec, t.nsec), (12, 0));
        let t = parse_pax_time(b"1.1234567891").unwrap();
        assert_eq!((t.sec, t.nsec), (1, 123_456_789));
        let t = parse_pax_time(b"-1.5").unwrap();
        assert_eq!((t.sec, t.nsec), (-2, 500_000_000));
        let t = parse_pax_time(b"-0.25").unwrap();
        assert_eq!((t.sec, t.nsec), (-1, 750_000_000));
        assert!(parse_pax_time(b"x").is_none());
        assert!(parse_pax_time(b"1.x").is_none());
    }

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

    #[test]
    fn ids_in_range() {
        assert_eq!(id(1000, "a").unwrap(), 1000);
        assert!(id(u64::from(u32::MAX), "a").is_err());
        assert!(id(1 << 40, "a").is_err());
    }
}
