//! Helpers: a tar builder that can write hostile headers, an applier with
//! defaults, and the canary sandbox that proves nothing outside the root changed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_archive::{Applied, ApplyOptions, Compression, Result, WhiteoutMode, apply_layer};
use hoist_testkit::outside::{Record, changes, plant_canary, record_outside};

/// The mtime every entry gets unless told otherwise.
pub(crate) use hoist_testkit::raw_tar::MTIME;
/// The tar builder that writes hostile headers, by the name these tests
/// give a layer.
pub(crate) use hoist_testkit::raw_tar::RawTar as Layer;

/// Applies a plain tar with default options (Delete mode, owners when root).
pub(crate) fn apply(root: &Path, tar: &[u8]) -> Result<Applied> {
    apply_layer(root, tar, Compression::None, &ApplyOptions::default())
}

/// Applies with options.
pub(crate) fn apply_with(root: &Path, tar: &[u8], options: &ApplyOptions) -> Result<Applied> {
    apply_layer(root, tar, Compression::None, options)
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Fails a test that needs root (device nodes, `trusted.*` xattrs, owners)
/// when run without it, rather than letting it pass unchecked. Such tests
/// are named `*_privileged`; `cargo nextest run --profile unprivileged`
/// skips them, visibly.
pub(crate) fn require_root() {
    assert!(
        is_root(),
        "this test needs root (CAP_MKNOD, trusted.* xattrs, chown); run it as root, \
         or run `cargo nextest run --profile unprivileged` to skip the *_privileged tests"
    );
}

pub(crate) fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// An extended attribute of `path` (not following a final symlink).
pub(crate) fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Applies `tar` in a fresh sandbox, checks the canary, and hands back the
/// result and the sandbox for case-specific checks.
pub(crate) fn run(tar: &[u8]) -> (Result<Applied>, Sandbox) {
    run_with(tar, &ApplyOptions::default())
}

/// [`run`] of a layer that must apply.
pub(crate) fn run_ok(tar: &[u8]) -> Sandbox {
    let (result, sandbox) = run(tar);
    result.unwrap();
    sandbox
}

/// [`run_overlay`] of a layer that must apply.
pub(crate) fn run_overlay_ok(tar: &[u8]) -> Sandbox {
    let (result, sandbox) = run_overlay(tar);
    result.unwrap();
    sandbox
}

/// [`run`] with overlay whiteouts and no lowers.
pub(crate) fn run_overlay(tar: &[u8]) -> (Result<Applied>, Sandbox) {
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ApplyOptions::default()
    };
    run_with(tar, &options)
}

fn run_with(tar: &[u8], options: &ApplyOptions) -> (Result<Applied>, Sandbox) {
    let sandbox = Sandbox::new();
    let result = apply_with(&sandbox.root, tar, options);
    assert_canary_unchanged(&sandbox);
    (result, sandbox)
}

/// A temporary directory (removed on drop) holding the empty directory
/// `name`, and that directory's path.
pub(crate) fn temp_dir_with(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::create_dir(&path).unwrap();
    (dir, path)
}

/// The content of `root/name`.
pub(crate) fn read(root: &Path, name: &str) -> Vec<u8> {
    std::fs::read(root.join(name)).unwrap()
}

/// A temp directory holding `root/` (where layers go) and, beside it,
/// `canary/` ([`plant_canary`]): everything a hostile layer might try to
/// reach.
pub(crate) struct Sandbox {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    #[allow(dead_code)]
    pub(crate) canary: PathBuf,
    before: Record,
    host_passwd: Option<u64>,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let canary = tmp.path().join("canary");
        std::fs::create_dir(&root).unwrap();
        plant_canary(&canary);
        let mut sandbox = Self {
            tmp,
            root,
            canary,
            before: Record::new(),
            host_passwd: None,
        };
        sandbox.before = sandbox.outside();
        sandbox.host_passwd = std::fs::metadata("/etc/passwd").ok().map(|m| m.nlink());
        sandbox
    }

    /// Makes `name` beside the root, applies `tar` to it (Delete mode) as a
    /// lower layer for overlay-mode cases, and takes it into the baseline:
    /// a lower layer is outside the root, so it must not change either.
    pub(crate) fn add_lower(&mut self, name: &str, tar: &[u8]) -> PathBuf {
        let lower = self.tmp.path().join(name);
        std::fs::create_dir(&lower).unwrap();
        apply(&lower, tar).unwrap();
        self.before = self.outside();
        lower
    }

    /// Everything in the temp dir except below `root/`; the temp dir's own
    /// metadata is not at stake, only what is in it.
    fn outside(&self) -> Record {
        record_outside(self.tmp.path(), &self.root)
    }
}

/// Asserts that nothing outside the sandbox's root changed: every canary
/// file byte-for-byte, mode, owner, inode, link count, times and xattrs; no
/// new sibling; the host's `/etc/passwd` link count.
pub(crate) fn assert_canary_unchanged(sandbox: &Sandbox) {
    let changes = changes(&sandbox.before, &sandbox.outside());
    assert!(
        changes.is_empty(),
        "changed outside the root:\n  {}",
        changes.join("\n  ")
    );
    assert_eq!(
        std::fs::metadata("/etc/passwd").ok().map(|m| m.nlink()),
        sandbox.host_passwd,
        "/etc/passwd link count changed"
    );
    assert!(
        std::fs::metadata(&sandbox.root).unwrap().is_dir(),
        "root is no longer a directory"
    );
}

/// An overlay mount, unmounted when dropped (also when an assertion fails).
pub(crate) struct Mounted(pub(crate) PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts `upper` over `lowers` (topmost first) at `base/merged`; fails
/// the (privileged) test where overlayfs cannot be mounted.
pub(crate) fn mount(base: &Path, lowers: &[PathBuf], upper: &Path) -> Mounted {
    let work = base.join("work");
    let merged = base.join("merged");
    std::fs::create_dir(&work).unwrap();
    std::fs::create_dir(&merged).unwrap();
    let lowerdir: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged)
        .status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "cannot mount overlayfs here ({status:?}); run unprivileged tests with \
         `cargo nextest run --profile unprivileged`"
    );
    Mounted(merged)
}

/// A source that hands out `data` in reads of at most `chunk` bytes, then
/// fails with `ConnectionReset`: a download cut mid-layer.
pub(crate) struct Failing {
    pub(crate) data: Vec<u8>,
    pub(crate) chunk: usize,
}

impl std::io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            ));
        }
        let n = buf.len().min(self.data.len()).min(self.chunk);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data.drain(..n);
        Ok(n)
    }
}
