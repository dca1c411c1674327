//! The applier keeps the layer's directories open between entries: layers
//! that change a directory after entries went through it (remove it, replace
//! it with a symlink or a file, make it opaque, shadow a lower symlink) must
//! land where an applier resolving every path afresh would, and never
//! outside the root. And what creation skips (`chown`, `chmod`) must still
//! come out exact.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hoist_archive::{ApplyOptions, Error, WhiteoutMode};

use crate::support::{
    Layer, Sandbox, apply, apply_with, assert_canary_unchanged, is_root, read, require_root, run,
    run_ok, run_overlay_ok,
};

fn overlay(lowers: Vec<PathBuf>) -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        lowers,
        ..ApplyOptions::default()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_directory_replaced_by_a_symlink_is_resolved_again() {
    // `a/f` leaves `a` open; `a -> /` replaces it: `a/x` is `/x` in the root.
    let mut l = Layer::new();
    l.dir("a", 0o755)
        .file("a/f", b"f", 0o644)
        .symlink("a", "/")
        .file("a/x", b"x", 0o644)
        .dir("a/sub", 0o700)
        .file("a/sub/y", b"y", 0o644);
    let tar = l.finish();
    let sb = run_ok(&tar);
    assert!(
        std::fs::symlink_metadata(sb.root.join("a"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(read(&sb.root, "x"), b"x");
    assert_eq!(read(&sb.root, "sub/y"), b"y");
    assert_eq!(mode(&sb.root.join("sub")), 0o700);
    if is_root() {
        let sb = run_overlay_ok(&tar);
        assert_eq!(read(&sb.root, "x"), b"x");
        assert_eq!(read(&sb.root, "sub/y"), b"y");
    }

    // The same with a symlink out of the root, which dangles inside it.
    let mut l = Layer::new();
    l.dir("a/b", 0o755)
        .file("a/b/f", b"f", 0o644)
        .symlink("a", "../canary")
        .file("a/b/x", b"x", 0o644);
    let (result, sb) = run(&l.finish());
    assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
    assert!(!sb.root.join("canary").exists());
    // A deeper directory, replaced by a file, refuses entries below it.
    let mut l = Layer::new();
    l.file("a/b/f", b"f", 0o644)
        .file("a/b", b"now a file", 0o644)
        .file("a/b/g", b"g", 0o644);
    let (result, _sb) = run(&l.finish());
    assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
}

#[test]
fn whiteouts_drop_the_directories_they_remove() {
    let mut l = Layer::new();
    l.file("a/b/c/f", b"f", 0o644)
        .whiteout(".wh.a")
        .file("a/b/c/g", b"g", 0o644);
    let tar = l.finish();
    let sb = run_ok(&tar);
    assert!(!sb.root.join("a/b/c/f").exists());
    assert_eq!(read(&sb.root, "a/b/c/g"), b"g");
    if is_root() {
        let sb = run_overlay_ok(&tar);
        assert!(!sb.root.join("a/b/c/f").exists());
        assert_eq!(read(&sb.root, "a/b/c/g"), b"g");
    }

    // An opaque marker in Delete mode removes what the layer below made,
    // directories this layer went through included.
    let sandbox = Sandbox::new();
    let mut one = Layer::new();
    one.file("d/old/f", b"old", 0o644);
    apply(&sandbox.root, &one.finish()).unwrap();
    let mut two = Layer::new();
    two.file("d/old/g", b"g", 0o644)
        .whiteout("d/.wh..wh..opq")
        .file("d/old/h", b"h", 0o644);
    apply(&sandbox.root, &two.finish()).unwrap();
    assert_canary_unchanged(&sandbox);
    let mut names: Vec<_> = std::fs::read_dir(sandbox.root.join("d/old"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["h"]);
}

#[test]
fn paths_through_symlinks_follow_later_changes() {
    // `lib -> usr/lib` is resolved once for `lib/a`; then `usr` becomes a
    // symlink to `opt`, so `lib/b` is `opt/lib/b`.
    let mut l = Layer::new();
    l.dir("usr/lib", 0o755)
        .dir("opt/lib", 0o755)
        .symlink("lib", "usr/lib")
        .file("lib/a", b"a", 0o644)
        .symlink("usr", "opt")
        .file("lib/b", b"b", 0o644);
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "opt/lib/b"), b"b");
    assert!(!sb.root.join("opt/lib/a").exists());

    // The symlink itself replaced by another.
    let mut l = Layer::new();
    l.dir("one", 0o755)
        .dir("two", 0o755)
        .symlink("cur", "one")
        .file("cur/a", b"a", 0o644)
        .symlink("cur", "two")
        .file("cur/b", b"b", 0o644)
        .whiteout("cur/.wh.a");
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "one/a"), b"a");
    assert_eq!(read(&sb.root, "two/b"), b"b");

    // The directory a symlink leads to removed and made a symlink out.
    let mut l = Layer::new();
    l.dir("real", 0o755)
        .symlink("link", "real")
        .file("link/a", b"a", 0o644)
        .whiteout(".wh.real")
        .symlink("real", "/")
        .file("link/b", b"b", 0o644);
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "b"), b"b");
}

#[test]
fn more_directories_than_stay_open() {
    // Hundreds of directories, then back to the first ones: entries land
    // right whether their directory is still open or not.
    let mut l = Layer::new();
    for i in 0..400 {
        l.file(&format!("d{}/s{i}/f", i % 7), b"f", 0o644);
    }
    for i in (0..400).step_by(37) {
        l.file(&format!("d{}/s{i}/g", i % 7), b"g", 0o600)
            .dir(&format!("d{}/s{i}", i % 7), 0o750);
    }
    let tar = l.finish();
    let check = |root: &Path| {
        for i in 0..400 {
            assert_eq!(read(root, &format!("d{}/s{i}/f", i % 7)), b"f");
        }
        for i in (0..400).step_by(37) {
            let dir = root.join(format!("d{}/s{i}", i % 7));
            assert_eq!(read(&dir, "g"), b"g");
            assert_eq!(mode(&dir), 0o750);
            assert_eq!(mode(&dir.join("g")), 0o600);
        }
    };
    let sb = run_ok(&tar);
    check(&sb.root);
    if is_root() {
        let sb = run_overlay_ok(&tar);
        check(&sb.root);
    }
}

#[test]
fn modes_and_owners_come_out_exact() {
    // Whatever creation gave, and whatever was skipped because of it.
    let cases: [(tar::EntryType, &str, u32); 12] = [
        (tar::EntryType::Regular, "f644", 0o644),
        (tar::EntryType::Regular, "f600", 0o600),
        (tar::EntryType::Regular, "f666", 0o666),
        (tar::EntryType::Regular, "f777", 0o777),
        (tar::EntryType::Regular, "f000", 0o000),
        (tar::EntryType::Regular, "f4755", 0o4755),
        (tar::EntryType::Regular, "f2711", 0o2711),
        (tar::EntryType::Directory, "d755", 0o755),
        (tar::EntryType::Directory, "d777", 0o777),
        (tar::EntryType::Directory, "d555", 0o555),
        (tar::EntryType::Directory, "d1777", 0o1777),
        (tar::EntryType::Fifo, "p640", 0o640),
    ];
    let mut l = Layer::new();
    for (kind, name, mode) in cases {
        let mut h = Layer::header(kind, mode);
        h.set_uid(if name.ends_with('7') { 1234 } else { 0 });
        h.set_gid(if name.ends_with('5') { 4321 } else { 0 });
        l.raw(h, format!("x/{name}").as_bytes(), None, &[], b"");
    }
    let tar = l.finish();
    let check = |root: &Path| {
        for (_, name, want) in cases {
            let path = root.join("x").join(name);
            assert_eq!(mode(&path), want, "{name}");
            if is_root() {
                let md = std::fs::symlink_metadata(&path).unwrap();
                let uid = if name.ends_with('7') { 1234 } else { 0 };
                let gid = if name.ends_with('5') { 4321 } else { 0 };
                assert_eq!((md.uid(), md.gid()), (uid, gid), "{name}");
            }
        }
    };
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), &tar).unwrap();
    check(dir.path());
    if is_root() {
        let dir = tempfile::tempdir().unwrap();
        apply_with(dir.path(), &tar, &overlay(Vec::new())).unwrap();
        check(dir.path());
    }
}

#[test]
fn setgid_directories_do_not_leak_into_new_entries_privileged() {
    require_root();
    // A setgid directory from a layer below gives new entries its group and
    // new directories its setgid bit; the tar's say otherwise.
    let dir = tempfile::tempdir().unwrap();
    let mut one = Layer::new();
    let mut h = Layer::header(tar::EntryType::Directory, 0o2775);
    h.set_gid(4321);
    one.raw(h, b"s", None, &[], b"");
    apply(dir.path(), &one.finish()).unwrap();
    assert_eq!(mode(&dir.path().join("s")), 0o2775);

    let mut two = Layer::new();
    two.dir("s/d", 0o755)
        .file("s/f", b"f", 0o644)
        .symlink("s/l", "f")
        .file("s/n/g", b"g", 0o644);
    apply(dir.path(), &two.finish()).unwrap();
    for (name, want) in [("s/d", 0o755), ("s/f", 0o644), ("s/n/g", 0o644)] {
        let md = std::fs::symlink_metadata(dir.path().join(name)).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, want, "{name}");
        assert_eq!((md.uid(), md.gid()), (0, 0), "{name}");
    }
    // A parent the tar does not list has no owner to take: it keeps the
    // group it was created with, but not the setgid bit.
    assert_eq!(mode(&dir.path().join("s/n")), 0o755);
    let md = std::fs::symlink_metadata(dir.path().join("s/l")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    // The tar's own setgid directory keeps its group and bit.
    let md = std::fs::metadata(dir.path().join("s")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.gid()), (0o2775, 4321));
}

/// A POSIX ACL in the kernel's xattr form (`posix_acl_xattr`): version 2,
/// then (tag, perm, id) entries sorted by tag.
fn acl(user: u16, group: u16, other: u16) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, user), (0x04, group), (0x20, other)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    v
}

#[test]
fn a_default_acl_does_not_change_new_modes() {
    // A default ACL replaces the umask for entries created below it: a
    // mode given at creation would come out cut by the ACL instead.
    let dir = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.raw(
        Layer::header(tar::EntryType::Directory, 0o755),
        b"acl",
        None,
        &[("SCHILY.xattr.system.posix_acl_default", &acl(6, 0, 0))],
        b"",
    );
    l.file("acl/f", b"f", 0o644)
        .dir("acl/d", 0o755)
        .file("acl/n/g", b"g", 0o644);
    apply(dir.path(), &l.finish()).unwrap();
    if crate::support::xattr(&dir.path().join("acl"), "system.posix_acl_default").is_none() {
        eprintln!("skipped: the file system keeps no default ACL here");
        return;
    }
    for (name, want) in [("acl/f", 0o644), ("acl/d", 0o755), ("acl/n", 0o755)] {
        assert_eq!(mode(&dir.path().join(name)), want, "{name}");
    }
}

/// Entries a case adds to a layer.
type Change<'a> = &'a dyn Fn(&mut Layer);

#[test]
fn overlay_paths_through_lower_symlinks_follow_later_changes_privileged() {
    require_root();
    let mut base = Layer::new();
    base.dir("usr/lib/x/y", 0o711)
        .symlink("lib", "usr/lib")
        .dir("etc", 0o755);
    let base = base.finish();
    // Each case resolves `lib/…` through the lower symlink, then changes
    // what `lib` means, then writes `lib/b`.
    let cases: [(Change<'_>, &str); 4] = [
        (
            &|l| {
                l.dir("lib", 0o755);
            },
            "lib/b",
        ),
        (
            &|l| {
                l.whiteout(".wh.lib");
            },
            "lib/b",
        ),
        (
            &|l| {
                l.symlink("lib", "etc");
            },
            "etc/b",
        ),
        (
            &|l| {
                l.whiteout(".wh.usr");
            },
            "",
        ),
    ];
    for (i, (change, lands)) in cases.iter().enumerate() {
        let mut sandbox = Sandbox::new();
        let lower = sandbox.add_lower("lower", &base);
        let mut l = Layer::new();
        l.file("lib/a", b"a", 0o644);
        change(&mut l);
        l.file("lib/b", b"b", 0o644);
        let result = apply_with(&sandbox.root, &l.finish(), &overlay(vec![lower]));
        assert_canary_unchanged(&sandbox);
        let root = &sandbox.root;
        if lands.is_empty() {
            // `lib` leads to a deleted directory: nothing to write into.
            assert!(
                matches!(result, Err(Error::Io { .. })),
                "case {i}: {result:?}"
            );
            continue;
        }
        result.unwrap();
        assert_eq!(read(root, "usr/lib/a"), b"a", "case {i}");
        assert_eq!(read(root, lands), b"b", "case {i}");
        assert!(!root.join("usr/lib/b").exists(), "case {i}");
    }

    // A directory walked before its parent became opaque no longer takes
    // metadata from the lowers for the directories made below it.
    let mut sandbox = Sandbox::new();
    let lower = sandbox.add_lower("lower", &base);
    let mut l = Layer::new();
    l.file("usr/lib/x/a", b"a", 0o644)
        .whiteout("usr/lib/.wh..wh..opq")
        .file("usr/lib/x/y/f", b"f", 0o644);
    apply_with(&sandbox.root, &l.finish(), &overlay(vec![lower])).unwrap();
    assert_canary_unchanged(&sandbox);
    assert_eq!(mode(&sandbox.root.join("usr/lib/x/y")), 0o755);
}
