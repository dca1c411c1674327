//! Whiteouts across layers, in both modes.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use hoist_archive::{ApplyOptions, WhiteoutMode};

use crate::support::{Layer, apply, apply_with, mount, require_root, temp_dir_with, xattr};

fn layer_one() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("a", 0o755)
        .dir("a/b", 0o755)
        .file("a/b/c", b"c", 0o644)
        .file("a/keep", b"keep", 0o644);
    l.dir("d", 0o711)
        .file("d/old", b"old", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/old2", b"o", 0o644);
    l.file("e", b"file e", 0o644);
    l.dir("f", 0o755).file("f/x", b"x", 0o644);
    l.finish()
}

fn layer_two() -> Vec<u8> {
    let mut l = Layer::new();
    l.whiteout("a/.wh.b");
    // New entries before and after the opaque marker both stay.
    l.file("d/new", b"new", 0o644);
    l.whiteout("d/.wh..wh..opq");
    l.dir("d/sub", 0o755).file("d/sub/new2", b"n2", 0o644);
    // aufs metadata is ignored, and never created.
    l.whiteout(".wh..wh.plnk");
    l.hardlink("hl", "a/keep");
    l.finish()
}

fn layer_three() -> Vec<u8> {
    let mut l = Layer::new();
    // Swap file and directory.
    l.dir("e", 0o755).file("e/inner", b"inner", 0o644);
    l.file("f", b"now a file", 0o644);
    l.finish()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn delete_mode_across_layers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    apply(root, &layer_one()).unwrap();
    apply(root, &layer_two()).unwrap();
    assert_eq!(names(&root.join("a")), ["keep"]);
    assert_eq!(names(&root.join("d")), ["new", "sub"]);
    assert_eq!(names(&root.join("d/sub")), ["new2"]);
    // The opaque directory keeps its own metadata.
    assert_eq!(
        std::fs::metadata(root.join("d"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o711
    );
    assert!(!root.join(".wh..wh.plnk").exists());
    assert_eq!(
        std::fs::metadata(root.join("hl")).unwrap().ino(),
        std::fs::metadata(root.join("a/keep")).unwrap().ino()
    );
    apply(root, &layer_three()).unwrap();
    assert_eq!(std::fs::read(root.join("e/inner")).unwrap(), b"inner");
    assert_eq!(std::fs::read(root.join("f")).unwrap(), b"now a file");
    // No whiteout files anywhere.
    for walked in hoist_testkit::tree::walk(root) {
        let name = walked.path.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with(".wh."), "{}", walked.path.display());
    }
}

#[test]
fn whiteout_of_missing_path_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.whiteout("nothing/.wh.here")
        .whiteout(".wh.absent")
        .whiteout("gone/.wh..wh..opq");
    apply(dir.path(), &l.finish()).unwrap();
    assert!(names(dir.path()).is_empty());
}

#[test]
fn overlay_mode_makes_overlay_whiteouts_privileged() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    let upper = dir.path().join("upper");
    std::fs::create_dir(&lower).unwrap();
    std::fs::create_dir(&upper).unwrap();
    apply(&lower, &layer_one()).unwrap();
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        lowers: vec![lower.clone()],
        ..ApplyOptions::default()
    };
    apply_with(&upper, &layer_two(), &options).unwrap();

    // `.wh.b` became a char device 0:0 named b.
    let md = std::fs::symlink_metadata(upper.join("a/b")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    // The implicit parent `a` took the lower's metadata (mode, mtime).
    let (u, l) = (
        std::fs::metadata(upper.join("a")).unwrap(),
        std::fs::metadata(lower.join("a")).unwrap(),
    );
    assert_eq!((u.mode(), u.mtime()), (l.mode(), l.mtime()));
    // The opaque marker became the xattr.
    assert_eq!(
        xattr(&upper.join("d"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!upper.join("d/.wh..wh..opq").exists());
    // The hardlink into the lower layer was resolved by copy-up.
    let (hl, keep) = (
        std::fs::metadata(upper.join("hl")).unwrap(),
        std::fs::metadata(upper.join("a/keep")).unwrap(),
    );
    assert_eq!(hl.ino(), keep.ino());
    assert_eq!(std::fs::read(upper.join("hl")).unwrap(), b"keep");
    assert_eq!(std::fs::metadata(lower.join("a/keep")).unwrap().nlink(), 1);

    // Mount it: the merged view is what layer two means.
    let mounted = mount(dir.path(), std::slice::from_ref(&lower), &upper);
    let merged = &mounted.0;
    assert_eq!(names(&merged.join("a")), ["keep"]);
    assert_eq!(names(&merged.join("d")), ["new", "sub"]);
    assert_eq!(names(&merged.join("d/sub")), ["new2"]);
    assert_eq!(std::fs::read(merged.join("hl")).unwrap(), b"keep");
    assert_eq!(std::fs::read(merged.join("e")).unwrap(), b"file e");
}

#[test]
fn overlay_whiteout_replaces_entry_of_same_layer_privileged() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.file("x/y", b"y", 0o644).whiteout("x/.wh.y");
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ApplyOptions::default()
    };
    apply_with(dir.path(), &l.finish(), &options).unwrap();
    assert!(
        std::fs::symlink_metadata(dir.path().join("x/y"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn overlay_hardlink_lookup_honours_lower_whiteouts_and_opaque_dirs_privileged() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2, upper) = (
        dir.path().join("l1"),
        dir.path().join("l2"),
        dir.path().join("up"),
    );
    for d in [&l1, &l2, &upper] {
        std::fs::create_dir(d).unwrap();
    }
    let mut one = Layer::new();
    one.file("x/f", b"hidden", 0o644)
        .file("g", b"hidden", 0o644)
        .file("s/t", b"t", 0o644);
    one.symlink("s/link", "t");
    apply(&l1, &one.finish()).unwrap();
    let overlay = |lowers: Vec<std::path::PathBuf>| ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        lowers,
        ..ApplyOptions::default()
    };
    let mut two = Layer::new();
    two.whiteout("x/.wh..wh..opq").whiteout(".wh.g");
    apply_with(&l2, &two.finish(), &overlay(vec![l1.clone()])).unwrap();

    let lowers = vec![l2.clone(), l1.clone()];
    for target in ["x/f", "g", "missing"] {
        let mut l = Layer::new();
        l.hardlink("h", target);
        let err = apply_with(&upper, &l.finish(), &overlay(lowers.clone())).unwrap_err();
        assert!(
            matches!(err, hoist_archive::Error::Io { .. }),
            "{target}: {err:?}"
        );
    }
    // A symlink in a lower layer is copied up as a symlink, then linked.
    let mut l = Layer::new();
    l.hardlink("h", "s/link");
    apply_with(&upper, &l.finish(), &overlay(lowers)).unwrap();
    assert_eq!(std::fs::read_link(upper.join("h")).unwrap(), Path::new("t"));
    assert_eq!(
        std::fs::symlink_metadata(upper.join("s/link"))
            .unwrap()
            .nlink(),
        2
    );
}

#[test]
fn overlay_mode_drops_the_overlayfs_xattrs_a_layer_carries_privileged() {
    require_root();
    let (dir, upper) = temp_dir_with("upper");
    let mut layer = Layer::new();
    layer.raw(
        Layer::header(tar::EntryType::Directory, 0o755),
        b"etc/",
        None,
        &[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.keep", b"kept"),
        ],
        b"",
    );
    layer.file_pax(
        b"etc/passwd",
        b"root:x:0:0\n",
        &[("SCHILY.xattr.user.overlay.redirect", b"/elsewhere")],
    );
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ApplyOptions::default()
    };
    let tar = layer.finish();
    let applied = apply_with(&upper, &tar, &options).unwrap();
    assert_eq!(xattr(&upper.join("etc"), "trusted.overlay.opaque"), None);
    assert_eq!(
        xattr(&upper.join("etc/passwd"), "user.overlay.redirect"),
        None
    );
    assert_eq!(
        xattr(&upper.join("etc"), "user.keep").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(applied.skipped.len(), 2, "{:?}", applied.skipped);
    assert!(
        applied
            .skipped
            .iter()
            .all(|s| s.contains("overlayfs xattrs"))
    );

    // In delete mode (native snapshots) they are plain data and stay.
    let native = dir.path().join("native");
    std::fs::create_dir(&native).unwrap();
    apply_with(&native, &tar, &ApplyOptions::default()).unwrap();
    assert_eq!(
        xattr(&native.join("etc"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
}
