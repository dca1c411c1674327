//! The layer applier (`hoist_archive::apply_layer`) on arbitrary tar bytes,
//! checking its security boundary: whatever the layer holds, nothing outside
//! the root is created, changed or deleted.
//!
//! Input: one selector byte, then the layer.
//! - bits 0-1: `0` plain tar, `1` the tar gzip-compressed, `2` the tar
//!   zstd-compressed, `3` the bytes as they are (compression detected, so
//!   broken gzip and zstd streams get fuzzed too);
//! - bit 2: overlay mode (`WhiteoutMode::Overlay`, the root an empty upper
//!   dir over a lower dir), else `WhiteoutMode::Delete` (the root already
//!   holds a tree);
//! - bit 3: expect a wrong diffID (the mismatch path);
//! - bit 4: leave the tar header checksums as they are (else they are fixed
//!   up, so mutated headers get past the checksum).
//!
//! The sandbox, made once per process: `<base>/s/{root,canary,lower}`. The
//! canary holds a file, a directory, a symlink and a fifo; the root (Delete
//! mode) or the lower (overlay mode) holds an ordinary tree plus symlinks
//! that lead out to the canary, relative and absolute, planted as a first
//! layer would. Before and after every apply, everything under `<base>`
//! but the root is compared: kind, mode, owner, inode, link count, times
//! (ctime included, so any metadata change shows), content, link target and
//! xattrs. Any difference panics. Errors from the applier are fine.
//!
//! As root (it runs as root in CI), `<base>` is a private `nodev,nosuid`
//! tmpfs in a private mount namespace: a layer may create device nodes, and
//! none of them may ever open a real device, whatever the applier does.

#![no_main]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hoist_archive::{ApplyOptions, Compression, WhiteoutMode, apply_layer, detect_compression};
use libfuzzer_sys::fuzz_target;

// The testkit's canary proof, by path: the testkit itself brings servers
// that have no place in a sanitizer build (the module uses only std and
// rustix).
#[path = "../../crates/testkit/src/outside.rs"]
mod outside;

use outside::{Record, changes, plant_canary, record_outside};

/// Where the mount namespace's private tmpfs goes.
const MOUNT_POINT: &str = "/tmp/hoist-fuzz-apply";

struct Sandbox {
    base: PathBuf,
    root: PathBuf,
    lower: PathBuf,
    canary: PathBuf,
    before: Record,
}

static SANDBOX: OnceLock<Sandbox> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&selector, tar)) = data.split_first() else {
        return;
    };
    let sandbox = SANDBOX.get_or_init(Sandbox::new);

    let mut tar = tar.to_vec();
    if selector & 0x10 == 0 {
        fix_checksums(&mut tar);
    }
    let (layer, declared) = match selector & 3 {
        0 => (tar, Compression::None),
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            (gz.finish().unwrap(), Compression::Gzip)
        }
        2 => (zstd::encode_all(&tar[..], 1).unwrap(), Compression::Zstd),
        _ => {
            let declared = detect_compression(&tar);
            (tar, declared)
        }
    };
    let overlay = selector & 4 != 0;
    let options = ApplyOptions {
        whiteouts: if overlay {
            WhiteoutMode::Overlay
        } else {
            WhiteoutMode::Delete
        },
        lowers: if overlay {
            vec![sandbox.lower.clone()]
        } else {
            Vec::new()
        },
        // No non-empty layer hashes to the digest of nothing.
        expected_diff_id: (selector & 8 != 0).then(|| hoist_oci::sha256_digest(b"")),
        ..ApplyOptions::default()
    };

    sandbox.fresh_root(!overlay);
    let result = apply_layer(&sandbox.root, &layer[..], declared, &options);
    sandbox.check(&result);
});

impl Sandbox {
    fn new() -> Self {
        let base = base_dir();
        let dir = base.join("s");
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        let lower = dir.join("lower");
        let canary = dir.join("canary");
        plant_canary(&canary);
        std::fs::create_dir(&lower).unwrap();
        let mut sandbox = Sandbox {
            base,
            root,
            lower,
            canary,
            before: Record::new(),
        };
        sandbox.plant(&sandbox.lower.clone());
        sandbox.before = sandbox.outside();
        sandbox
    }

    /// What a first layer would have left: an ordinary tree, and symlinks
    /// that lead out of the directory they are in, to the canary.
    fn plant(&self, dir: &Path) {
        for d in ["etc", "usr/lib", "var/empty"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(dir.join("usr/lib/libc.so"), b"ELF").unwrap();
        let canary = self.canary.to_str().unwrap();
        let links: [(&str, &str); 9] = [
            ("lib", "usr/lib"),
            ("up", "../canary"),
            ("upf", "../canary/file"),
            ("upd", "../canary/dir"),
            ("far", "../../../../../.."),
            ("abs", canary),
            ("absf", &format!("{canary}/file")),
            ("top", "/"),
            ("etc/dots", "../../canary"),
        ];
        for (name, target) in links {
            std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
        }
    }

    /// A new root: empty (overlay upper) or holding the planted tree.
    fn fresh_root(&self, planted: bool) {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot clear the root {}: {e}", self.root.display()),
        }
        std::fs::create_dir(&self.root).unwrap();
        if planted {
            self.plant(&self.root);
        }
    }

    /// Everything under the base but the root's contents.
    fn outside(&self) -> Record {
        record_outside(&self.base, &self.root)
    }

    fn check<T: std::fmt::Debug>(&self, result: &T) {
        let changes = changes(&self.before, &self.outside());
        if !changes.is_empty() {
            panic!(
                "the apply ({result:?}) changed things outside the root:\n  {}",
                changes.join("\n  ")
            );
        }
        let root = std::fs::symlink_metadata(&self.root).expect("the root is still there");
        assert!(root.is_dir(), "the root is no longer a directory");
    }
}

/// The base directory: a private `nodev,nosuid` tmpfs when running as root,
/// else a plain directory (without privileges a layer creates no devices).
fn base_dir() -> PathBuf {
    if !rustix::process::geteuid().is_root() {
        let dir = std::env::temp_dir().join(format!("hoist-fuzz-apply-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        return dir;
    }
    std::fs::create_dir_all(MOUNT_POINT).unwrap();
    if let Err(e) = private_tmpfs(Path::new(MOUNT_POINT)) {
        panic!(
            "running as root, the apply_layer target needs a private nodev tmpfs \
             (CAP_SYS_ADMIN): {e}; without it a fuzzed device node could open a real device"
        );
    }
    PathBuf::from(MOUNT_POINT)
}

/// Unshares the mount namespace of this thread (libFuzzer runs every input
/// on it, and the applier's worker threads inherit it), keeps its mounts
/// from propagating to the host, and mounts a small tmpfs on `dir`.
fn private_tmpfs(dir: &Path) -> rustix::io::Result<()> {
    use rustix::mount::{MountFlags, MountPropagationFlags, mount, mount_change};
    use rustix::thread::UnshareFlags;
    // SAFETY: only `NEWNS` (and the `FS` it implies) is unshared, not the
    // file descriptor table, so every fd stays valid on every thread.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS)? };
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )?;
    mount(
        "hoist-fuzz",
        dir,
        "tmpfs",
        MountFlags::NODEV | MountFlags::NOSUID,
        Some(c"size=256m,nr_inodes=65536,mode=0755"),
    )
}

/// Rewrites the checksum of every header block, walking the archive the
/// way a reader does (a header, then its data rounded up to blocks), so
/// that mutated headers are parsed rather than refused at the checksum.
fn fix_checksums(tar: &mut [u8]) {
    let mut at = 0usize;
    while tar.len().checked_sub(at).is_some_and(|left| left >= 512) {
        let header = &mut tar[at..at + 512];
        at += 512;
        if header.iter().all(|&b| b == 0) {
            continue;
        }
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = number(&header[124..136]);
        let data = size.div_ceil(512).saturating_mul(512);
        at = at.saturating_add(usize::try_from(data).unwrap_or(usize::MAX));
    }
}

/// A tar numeric field: octal, or base-256 when the high bit is set.
fn number(field: &[u8]) -> u64 {
    if field[0] & 0x80 != 0 {
        return field[field.len() - 8..]
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b));
    }
    field
        .iter()
        .skip_while(|&&b| b == b' ' || b == 0)
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .fold(0u64, |n, &b| {
            n.saturating_mul(8).saturating_add(u64::from(b - b'0'))
        })
}
