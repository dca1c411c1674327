//! The native snapshotter's tree copy against GNU `cp -a`, the reference it
//! replaced: one tree with every kind of entry is copied by both (`prepare`
//! on a committed parent, and `cp -a --reflink=auto parent/. dir`) and the
//! two copies must not differ in anything the tree comparer sees, nor in
//! directory mtimes, nor in the atimes the source had.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_snapshot::Labels;
use hoist_testkit::assert_trees_equal;
use hoist_testkit::tree::{FileKind, Tree, snapshot_tree, walk};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use crate::suite::Ctx;

fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let spec = |(tv_sec, tv_nsec): (i64, i64)| Timespec { tv_sec, tv_nsec };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: spec(atime),
            last_modification: spec(mtime),
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mknod(path: &Path, kind: FileType, mode: u32, dev: (u32, u32)) {
    rustix::fs::mknodat(
        CWD,
        path,
        kind,
        Mode::from_raw_mode(mode),
        rustix::fs::makedev(dev.0, dev.1),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

fn xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {} {name}: {e}", path.display()));
}

/// Sets the times of entries under a root, remembering every atime set: the
/// copies must keep them, and the tree comparer does not look at atimes.
struct TimesSet<'a> {
    root: &'a Path,
    /// Path relative to the root → the atime set.
    atimes: BTreeMap<PathBuf, (i64, i64)>,
}

impl<'a> TimesSet<'a> {
    fn under(root: &'a Path) -> Self {
        TimesSet {
            root,
            atimes: BTreeMap::new(),
        }
    }

    fn set(&mut self, rel: &str, atime: (i64, i64), mtime: (i64, i64)) {
        set_times(&self.root.join(rel), atime, mtime);
        self.atimes.insert(PathBuf::from(rel), atime);
    }
}

/// Times the tree sets on entries, so a copy that drops nanoseconds,
/// negative seconds or far-future seconds shows.
const OLD: (i64, i64) = (-86_400 * 365 + 7, 999_999_999);
const PRECISE: (i64, i64) = (1_700_000_000, 123_456_789);
const FUTURE: (i64, i64) = (4_102_444_800, 1);
const EPOCH: (i64, i64) = (0, 0);

/// Fills `root` with every kind of entry an unprivileged user can make;
/// returns the atimes set, by path relative to `root`.
fn build_unprivileged(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    let p = |rel: &str| root.join(rel);
    for dir in [
        "a/b/c",
        "empty",
        "ro",
        "sticky",
        "setgid",
        "many",
        "deep/1/2/3/4/5/6/7/8/9/10/11/12",
    ] {
        std::fs::create_dir_all(p(dir)).unwrap();
    }
    std::fs::write(p("a/file"), b"hello").unwrap();
    std::fs::write(p("a/empty-file"), b"").unwrap();
    // Past the copy's 256 KiB read buffer and not a multiple of it.
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(p("a/b/big"), &big).unwrap();
    std::fs::write(p("ro/inside"), b"written before the dir became read-only").unwrap();
    std::fs::write(p("deep/1/2/3/4/5/6/7/8/9/10/11/12/leaf"), b"leaf").unwrap();
    // More entries than one batch, so one directory is copied by several
    // jobs.
    for i in 0..300 {
        std::fs::write(p(&format!("many/f{i:03}")), format!("{i}")).unwrap();
    }
    std::fs::write(root.join(OsStr::from_bytes(b"caf\xe9")), b"latin-1 name").unwrap();

    std::fs::write(p("a/setuid"), b"#!/bin/true").unwrap();
    chmod(&p("a/setuid"), 0o4755);
    std::fs::write(p("a/setgid"), b"").unwrap();
    chmod(&p("a/setgid"), 0o2711);
    std::fs::write(p("a/private"), b"secret").unwrap();
    chmod(&p("a/private"), 0o600);

    // Hardlinks across directories, of a file, a symlink and a fifo.
    std::fs::write(p("a/b/linked"), b"one inode, three names").unwrap();
    std::fs::hard_link(p("a/b/linked"), p("a/linked2")).unwrap();
    std::fs::hard_link(p("a/b/linked"), p("linked3")).unwrap();
    std::os::unix::fs::symlink("file", p("a/sym")).unwrap();
    std::fs::hard_link(p("a/sym"), p("a/b/sym-hardlink")).unwrap();
    mknod(&p("fifo"), FileType::Fifo, 0o640, (0, 0));
    std::fs::hard_link(p("fifo"), p("a/fifo-hardlink")).unwrap();

    std::os::unix::fs::symlink("/etc/passwd", p("abs-symlink")).unwrap();
    std::os::unix::fs::symlink("../nowhere/at/all", p("a/dangling")).unwrap();
    std::os::unix::fs::symlink("a/b", p("dir-symlink")).unwrap();
    // A socket inode whose server is gone, as images sometimes carry.
    drop(std::os::unix::net::UnixListener::bind(p("a/socket")).unwrap());

    // xattrs: empty, long (a value and a list past the first buffer), on
    // a directory.
    xattr(&p("a/file"), "user.empty", b"");
    xattr(&p("a/file"), "user.long", &[b'x'; 3000]);
    for i in 0..40 {
        xattr(
            &p("a/b/big"),
            &format!("user.attribute-number-{i:02}"),
            b"v",
        );
    }
    xattr(&p("a/b"), "user.dir", b"1");
    xattr(&p("a/b/linked"), "user.shared", b"by all links");

    let mut times = TimesSet::under(root);
    times.set("a/file", EPOCH, PRECISE);
    times.set("a/b/big", PRECISE, OLD);
    times.set("a/setuid", FUTURE, FUTURE);
    times.set("a/sym", OLD, PRECISE);
    times.set("a/dangling", PRECISE, EPOCH);
    times.set("fifo", PRECISE, OLD);
    times.set("a/socket", OLD, FUTURE);
    // Directories last, deepest first: creating entries moves their times.
    times.set("a/b/c", PRECISE, FUTURE);
    times.set("a/b", OLD, PRECISE);
    times.set("a", EPOCH, OLD);
    times.set("empty", FUTURE, PRECISE);
    times.set("many", PRECISE, PRECISE);
    chmod(&p("ro"), 0o555);
    times.set("ro", OLD, OLD);
    chmod(&p("sticky"), 0o1777);
    chmod(&p("setgid"), 0o2755);
    chmod(root, 0o751);
    times.set(".", PRECISE, PRECISE);
    times.atimes
}

/// Adds what only root can make: devices, a whiteout, other owners (of a
/// setuid file too, which chown would strip), `trusted.*` xattrs, file
/// capabilities, unreadable entries.
fn build_privileged(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    let p = |rel: &str| root.join(rel);
    let chown = |rel: &str, uid: u32, gid: u32| {
        rustix::fs::chownat(
            CWD,
            p(rel),
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap_or_else(|e| panic!("chown {rel}: {e}"));
    };
    std::fs::create_dir_all(p("dev")).unwrap();
    std::fs::create_dir_all(p("home/user")).unwrap();
    std::fs::create_dir_all(p("locked/inner")).unwrap();
    mknod(&p("dev/null"), FileType::CharacterDevice, 0o666, (1, 3));
    mknod(&p("dev/loop7"), FileType::BlockDevice, 0o660, (7, 7));
    mknod(&p("dev/whiteout"), FileType::CharacterDevice, 0o000, (0, 0));
    std::fs::hard_link(p("dev/null"), p("dev/null-again")).unwrap();
    chown("dev/loop7", 0, 6);

    std::fs::write(p("home/user/notes"), b"mine").unwrap();
    chown("home/user/notes", 1000, 1000);
    chown("home/user", 1000, 1000);
    chmod(&p("home/user"), 0o700);
    std::fs::write(p("su"), b"setuid root-less").unwrap();
    chown("su", 1234, 5678);
    chmod(&p("su"), 0o6755);
    std::os::unix::fs::symlink("su", p("su-link")).unwrap();
    chown("su-link", 42, 43);

    std::fs::write(p("ping"), b"raw sockets").unwrap();
    xattr(
        &p("ping"),
        "security.capability",
        &hoist_testkit::rich::NET_RAW_CAPABILITY,
    );
    xattr(&p("ping"), "trusted.file", b"t");
    xattr(&p("home"), "trusted.overlay.opaque", b"y");
    xattr(&p("su-link"), "trusted.on-a-symlink", b"s");
    xattr(&p("dev/null"), "trusted.on-a-device", b"d");

    std::fs::write(p("locked/inner/file"), b"behind 000").unwrap();
    chmod(&p("locked/inner/file"), 0o000);
    chmod(&p("locked/inner"), 0o000);
    chmod(&p("locked"), 0o000);

    let mut times = TimesSet::under(root);
    times.set("dev/null", PRECISE, OLD);
    times.set("su", OLD, PRECISE);
    times.set("su-link", FUTURE, EPOCH);
    times.set("dev", OLD, FUTURE);
    times.set("home/user", PRECISE, OLD);
    times.atimes
}

/// `path → (mtime, mtime_nsec)` of every directory under `root` (the tree
/// comparer leaves directory times out).
fn dir_mtimes(root: &Path) -> BTreeMap<PathBuf, (i64, i64)> {
    let meta = std::fs::symlink_metadata(root).unwrap();
    let mut out = BTreeMap::from([(PathBuf::new(), (meta.mtime(), meta.mtime_nsec()))]);
    for walked in walk(root).filter(|w| w.meta.is_dir()) {
        let mtime = (walked.meta.mtime(), walked.meta.mtime_nsec());
        out.insert(walked.relative, mtime);
    }
    out
}

fn atime(path: &Path) -> (i64, i64) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.atime(), meta.atime_nsec())
}

/// Builds the tree in a committed native snapshot, copies it with
/// `prepare` and with `cp -a`, and compares everything.
fn copy_matches_cp(privileged: bool) {
    let cx = Ctx::new("native").unwrap();
    let s = cx.s.as_ref();
    s.prepare("base", None, Labels::new()).unwrap();
    let source = s.apply_target("base").unwrap().dir;
    let mut atimes = build_unprivileged(&source);
    if privileged {
        atimes.extend(build_privileged(&source));
        // Last: the root's times move with every entry made in it.
        set_times(&source, PRECISE, FUTURE);
    }
    s.commit("base-c", "base", Labels::new()).unwrap();

    // Ours first: reading a file may move its atime (relatime), and each
    // copy keeps the atime it saw before reading.
    s.prepare("child", Some("base-c"), Labels::new()).unwrap();
    let copy = s.fs_dir("child").unwrap();
    // Before anything reads the copy (and moves them).
    for (rel, expected) in &atimes {
        assert_eq!(
            atime(&copy.join(rel)),
            *expected,
            "atime of {}",
            rel.display()
        );
    }

    let cp_copy = cx.root.join("cp-copy");
    std::fs::create_dir(&cp_copy).unwrap();
    hoist_testkit::run_ok(
        Command::new("cp")
            .args(["-a", "--preserve=xattr", "--reflink=auto", "--"])
            .arg(source.join("."))
            .arg(&cp_copy),
        "cp -a",
    );
    let source_dir_mtimes = dir_mtimes(&source);

    let ours = snapshot_tree(&copy);
    let reference = snapshot_tree(&cp_copy);
    assert_trees_equal!(&ours, &reference);
    assert_eq!(ours, snapshot_tree(&source), "the source is unchanged");
    assert_eq!(dir_mtimes(&copy), dir_mtimes(&cp_copy), "directory mtimes");
    assert_eq!(dir_mtimes(&copy), source_dir_mtimes, "directory mtimes");
    assert_sample(&ours, privileged);

    // A copy, not the same inodes: writing the child leaves the parent alone.
    std::fs::write(copy.join("linked3"), b"changed").unwrap();
    assert_eq!(std::fs::read(copy.join("a/linked2")).unwrap(), b"changed");
    assert_eq!(
        std::fs::read(source.join("linked3")).unwrap(),
        b"one inode, three names"
    );
}

/// Spot checks that the tree is what it was built to be, so that the two
/// copies cannot agree on a wrong tree (say both missing a kind of entry).
fn assert_sample(tree: &Tree, privileged: bool) {
    let get = |path: &str| {
        tree.get(Path::new(path))
            .unwrap_or_else(|| panic!("{path} missing"))
    };
    assert_eq!(get("a/setuid").mode, 0o4755);
    assert_eq!(get("ro").mode, 0o555);
    assert_eq!(get("sticky").mode, 0o1777);
    assert_eq!(get(".").mode, 0o751);
    assert_eq!(get("a/file").mtime, Some(PRECISE));
    assert_eq!(get("a/b/big").mtime, Some(OLD));
    assert_eq!(get("a/b/big").size, Some(3 * 1024 * 1024 + 17));
    assert_eq!(get("a/sym").mtime, Some(PRECISE));
    assert_eq!(get("a/socket").kind, FileKind::Socket);
    assert_eq!(get("fifo").kind, FileKind::Fifo);
    assert_eq!(
        get("a/dangling").link.as_deref(),
        Some(Path::new("../nowhere/at/all"))
    );
    assert_eq!(get("a/b/linked").nlink, Some(3));
    assert_eq!(get("a/sym").nlink, Some(2));
    assert_eq!(get("a/fifo-hardlink").nlink, Some(2));
    assert_eq!(
        get("a/file")
            .xattrs
            .get(OsStr::new("user.long"))
            .map(Vec::len),
        Some(3000)
    );
    assert_eq!(get("a/b/big").xattrs.len(), 40);
    assert_eq!(tree.keys().filter(|p| p.starts_with("many")).count(), 301);
    if privileged {
        assert_eq!(get("dev/null").rdev, Some((1, 3)));
        assert_eq!(get("dev/null").nlink, Some(2));
        assert_eq!(get("dev/loop7").kind, FileKind::Block);
        assert_eq!(get("dev/whiteout").rdev, Some((0, 0)));
        let su = get("su");
        assert_eq!((su.uid, su.gid, su.mode), (1234, 5678, 0o6755));
        assert_eq!((get("su-link").uid, get("su-link").gid), (42, 43));
        assert_eq!(get("home/user").uid, 1000);
        assert_eq!(get("locked/inner/file").mode, 0);
        assert_eq!(
            get("ping")
                .xattrs
                .get(OsStr::new("security.capability"))
                .map(Vec::as_slice),
            Some(&hoist_testkit::rich::NET_RAW_CAPABILITY[..])
        );
        assert!(
            get("home")
                .xattrs
                .contains_key(OsStr::new("trusted.overlay.opaque"))
        );
    }
}

#[test]
fn native_copy_matches_cp_a() {
    copy_matches_cp(false);
}

#[test]
fn native_copy_matches_cp_a_privileged() {
    crate::suite::require_root();
    copy_matches_cp(true);
}
