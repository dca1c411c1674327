//! Overlay mode against the merged view: each case applies its layers twice,
//! natively (Delete mode, one full tree) and as overlay snapshots (each layer
//! into its own upper, the earlier ones as lowers), mounts the overlay and
//! compares what it shows with the native tree. Each case also applies its
//! layers top first with late lowers (each layer gets the layers below it
//! only when it first looks at them, as an unpacker applying layers in
//! parallel gives them) and requires the same uppers.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hoist_archive::{ApplyOptions, Error, LateLowers, WhiteoutMode};
use hoist_testkit::tree::{Walked, walk};

use crate::support::{Layer, apply, apply_with, mount, require_root, temp_dir_with, xattr};

/// What the comparison looks at for one path.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Regular files and symlinks only: directory mtimes move with their
    /// entries, which the two ways of applying create in different orders.
    mtime: Option<i64>,
    /// File content or symlink target.
    content: Vec<u8>,
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    walk(root)
        .map(
            |Walked {
                 relative,
                 path,
                 meta: md,
             }| {
                let ft = md.file_type();
                let (kind, content) = if ft.is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    ("symlink", target.into_os_string().into_encoded_bytes())
                } else if ft.is_dir() {
                    ("dir", Vec::new())
                } else if ft.is_file() {
                    ("file", std::fs::read(&path).unwrap())
                } else if ft.is_char_device() && md.rdev() == 0 {
                    ("whiteout", Vec::new())
                } else {
                    ("other", Vec::new())
                };
                let node = Node {
                    kind,
                    mode: md.mode(),
                    uid: md.uid(),
                    gid: md.gid(),
                    // A directory's mtime moves as entries land in it, and an
                    // overlay whiteout (a device node) is stamped with the time
                    // it was made: neither is the tar's to set.
                    mtime: (kind != "dir" && kind != "whiteout").then(|| md.mtime()),
                    content,
                };
                (relative.to_string_lossy().into_owned(), node)
            },
        )
        .collect()
}

fn overlay(lowers: Vec<PathBuf>) -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        lowers,
        ..ApplyOptions::default()
    }
}

/// The layers applied as overlay snapshots: `up0`, `up1`, … under `base`.
struct Snapshots {
    base: tempfile::TempDir,
    native: PathBuf,
    uppers: Vec<PathBuf>,
}

impl Snapshots {
    fn apply(layers: &[Vec<u8>]) -> Self {
        let (base, native) = temp_dir_with("native");
        let mut uppers: Vec<PathBuf> = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            apply(&native, layer).unwrap();
            let upper = base.path().join(format!("up{i}"));
            std::fs::create_dir(&upper).unwrap();
            let lowers = uppers.iter().rev().cloned().collect();
            apply_with(&upper, layer, &overlay(lowers)).unwrap();
            uppers.push(upper);
        }
        let late = apply_late(base.path(), layers);
        for (i, (eager, late)) in uppers.iter().zip(&late).enumerate() {
            assert_eq!(
                tree(late),
                tree(eager),
                "layer {i} applied with late lowers"
            );
            assert_eq!(
                opaque_dirs(late),
                opaque_dirs(eager),
                "layer {i}'s opaque dirs"
            );
        }
        Self {
            base,
            native,
            uppers,
        }
    }

    fn top(&self) -> &Path {
        self.uppers.last().unwrap()
    }

    /// Mounts the snapshots and asserts the merged view is the native tree.
    fn assert_merged_matches_native(&self) {
        let (upper, lowers) = self.uppers.split_last().unwrap();
        let lowers: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
        let mounted = mount(self.base.path(), &lowers, upper);
        let (merged, native) = (tree(&mounted.0), tree(&self.native));
        assert_eq!(merged, native, "merged view differs from the native tree");
    }
}

fn whiteout_then_recreate(second: impl FnOnce(&mut Layer)) -> Snapshots {
    let mut one = Layer::new();
    one.dir("d", 0o755)
        .file("d/old", b"old", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/old2", b"o", 0o644)
        .file("keep", b"k", 0o644);
    let mut two = Layer::new();
    second(&mut two);
    Snapshots::apply(&[one.finish(), two.finish()])
}

/// `layers` applied as overlay snapshots `late0`, `late1`, … under `base`,
/// the top one first: each layer's lowers are given late, and applying the
/// layers below (bottom first) is what waiting for them does.
fn apply_late(base: &Path, layers: &[Vec<u8>]) -> Vec<PathBuf> {
    let uppers: Vec<PathBuf> = (0..layers.len())
        .map(|i| base.join(format!("late{i}")))
        .collect();
    for upper in &uppers {
        std::fs::create_dir(upper).unwrap();
    }
    let applied = Arc::new(Mutex::new(vec![false; layers.len()]));
    let lowers_of = |uppers: &[PathBuf], i: usize| uppers[..i].iter().rev().cloned().collect();
    for i in (0..layers.len()).rev() {
        if applied.lock().unwrap()[i] {
            continue;
        }
        let late = {
            let (layers, uppers, applied) = (layers.to_vec(), uppers.clone(), applied.clone());
            LateLowers::new(move || {
                let mut applied = applied.lock().unwrap();
                for j in 0..i {
                    if !applied[j] {
                        apply_with(&uppers[j], &layers[j], &overlay(lowers_of(&uppers, j)))
                            .map_err(std::io::Error::other)?;
                        applied[j] = true;
                    }
                }
                Ok(lowers_of(&uppers, i))
            })
        };
        let options = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            late_lowers: Some(late),
            ..ApplyOptions::default()
        };
        apply_with(&uppers[i], &layers[i], &options).unwrap();
        applied.lock().unwrap()[i] = true;
    }
    uppers
}

/// The directories below `root` marked opaque (the root itself as "").
fn opaque_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = walk(root)
        .filter(|w| w.meta.is_dir() && opaque(&w.path).is_some())
        .map(|w| w.relative)
        .collect();
    if opaque(root).is_some() {
        found.push(PathBuf::new());
    }
    found.sort();
    found
}

fn opaque(path: &Path) -> Option<Vec<u8>> {
    xattr(path, "trusted.overlay.opaque")
}

#[test]
fn directory_recreated_after_its_whiteout_hides_the_old_one_privileged() {
    require_root();
    let s = whiteout_then_recreate(|l| {
        l.whiteout(".wh.d")
            .dir("d", 0o750)
            .file("d/new", b"new", 0o644);
    });
    assert_eq!(opaque(&s.top().join("d")).as_deref(), Some(&b"y"[..]));
    assert_eq!(
        std::fs::metadata(s.top().join("d")).unwrap().mode() & 0o7777,
        0o750
    );
    s.assert_merged_matches_native();
}

#[test]
fn implicit_directory_after_its_whiteout_hides_the_old_one_privileged() {
    require_root();
    // No entry for `d` itself: the parent of `d/new` replaces the whiteout.
    let s = whiteout_then_recreate(|l| {
        l.whiteout(".wh.d").file("d/new", b"new", 0o644);
    });
    assert_eq!(opaque(&s.top().join("d")).as_deref(), Some(&b"y"[..]));
    s.assert_merged_matches_native();
    // A deeper one: `d/sub` below the new opaque `d` needs no marker.
    let s = whiteout_then_recreate(|l| {
        l.whiteout(".wh.d").dir("d/sub", 0o700);
    });
    assert_eq!(opaque(&s.top().join("d")).as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque(&s.top().join("d/sub")), None);
    s.assert_merged_matches_native();
}

#[test]
fn directory_replacing_a_file_of_the_same_layer_hides_the_old_one_privileged() {
    require_root();
    // The file deleted the lower directory; the directory after it is new.
    let s = whiteout_then_recreate(|l| {
        l.file("d", b"flat", 0o644)
            .dir("d", 0o755)
            .file("d/new", b"n", 0o644);
    });
    assert_eq!(opaque(&s.top().join("d")).as_deref(), Some(&b"y"[..]));
    s.assert_merged_matches_native();
    // The same through a whiteout, a file and a symlink in turn.
    let s = whiteout_then_recreate(|l| {
        l.whiteout(".wh.d").symlink("d", "keep").dir("d", 0o755);
    });
    assert_eq!(opaque(&s.top().join("d")).as_deref(), Some(&b"y"[..]));
    s.assert_merged_matches_native();
}

#[test]
fn no_opaque_marker_where_nothing_was_deleted_privileged() {
    require_root();
    // A directory over a lower directory merges; over a lower file it hides
    // the file without a marker; a file after a whiteout just replaces it.
    let s = whiteout_then_recreate(|l| {
        l.dir("d", 0o700)
            .file("d/new", b"n", 0o644)
            .dir("keep", 0o755)
            .file("keep/in", b"i", 0o644)
            .whiteout("d/.wh.sub")
            .file("d/sub", b"now a file", 0o644);
    });
    assert_eq!(opaque(&s.top().join("d")), None);
    assert_eq!(opaque(&s.top().join("keep")), None);
    assert!(std::fs::metadata(s.top().join("d/sub")).unwrap().is_file());
    s.assert_merged_matches_native();
    // A whiteout, then a directory where the lowers have nothing.
    let s = whiteout_then_recreate(|l| {
        l.whiteout(".wh.none").dir("none", 0o755);
    });
    assert_eq!(opaque(&s.top().join("none")), None);
    s.assert_merged_matches_native();
}

/// usrmerge: `lib -> usr/lib` in the base.
fn usrmerge(link: &str) -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .file("usr/lib/ld.so", b"ld", 0o755)
        .file("usr/lib/libz.so", b"z", 0o644)
        .dir("usr/lib/x86", 0o711)
        .file("usr/lib/x86/libc.so", b"libc", 0o644)
        .symlink("lib", link)
        .dir("etc", 0o755);
    l.finish()
}

#[test]
fn write_through_a_lower_symlink_lands_at_its_target_privileged() {
    require_root();
    let mut two = Layer::new();
    two.file("lib/libfoo.so", b"foo", 0o644);
    let s = Snapshots::apply(&[usrmerge("usr/lib"), two.finish()]);
    let top = s.top();
    assert_eq!(
        std::fs::read(top.join("usr/lib/libfoo.so")).unwrap(),
        b"foo"
    );
    // The symlink stays the lower's; no directory hides it.
    assert!(std::fs::symlink_metadata(top.join("lib")).is_err());
    // The copied-up directories keep the lower's metadata.
    assert_eq!(
        std::fs::metadata(top.join("usr/lib")).unwrap().mtime(),
        std::fs::metadata(s.uppers[0].join("usr/lib"))
            .unwrap()
            .mtime()
    );
    s.assert_merged_matches_native();
}

#[test]
fn every_kind_of_entry_resolves_through_lower_symlinks_privileged() {
    require_root();
    for link in ["usr/lib", "/usr/lib", "./usr/../usr//lib/", "../../usr/lib"] {
        let mut two = Layer::new();
        two.file("lib/x86/libm.so", b"m", 0o644)
            .dir("lib/new", 0o700)
            .file("lib/new/deep/f", b"f", 0o600)
            .symlink("lib/ld2", "ld.so")
            .whiteout("lib/.wh.ld.so")
            .whiteout("lib/x86/.wh..wh..opq")
            .file("lib/x86/after", b"a", 0o644)
            .hardlink("etc/hl", "lib/libz.so")
            .hardlink("lib/hl2", "usr/lib/x86/after");
        let s = Snapshots::apply(&[usrmerge(link), two.finish()]);
        let top = s.top();
        assert!(
            std::fs::symlink_metadata(top.join("lib")).is_err(),
            "{link}"
        );
        assert_eq!(
            opaque(&top.join("usr/lib/x86")).as_deref(),
            Some(&b"y"[..]),
            "{link}"
        );
        // The directory entry's own mode reached the right directory.
        assert_eq!(
            std::fs::metadata(top.join("usr/lib/new")).unwrap().mode() & 0o7777,
            0o700
        );
        s.assert_merged_matches_native();
    }
}

#[test]
fn chained_and_nested_lower_symlinks_privileged() {
    require_root();
    // Three layers: links in the middle one lead through the base's dirs.
    let mut one = Layer::new();
    one.dir("opt/real", 0o755).file("opt/real/a", b"a", 0o644);
    let mut two = Layer::new();
    two.symlink("opt/current", "real")
        .symlink("app", "/opt/current")
        .symlink("opt/real/up", "..");
    let mut three = Layer::new();
    three
        .file("app/b", b"b", 0o644)
        .file("app/up/current/c", b"c", 0o644)
        .dir("app/sub", 0o755)
        .hardlink("app/a2", "app/a");
    let s = Snapshots::apply(&[one.finish(), two.finish(), three.finish()]);
    let top = s.top();
    for name in ["opt/real/b", "opt/real/c", "opt/real/a2", "opt/real/sub"] {
        assert!(std::fs::symlink_metadata(top.join(name)).is_ok(), "{name}");
    }
    for name in ["app", "opt/current"] {
        assert!(std::fs::symlink_metadata(top.join(name)).is_err(), "{name}");
    }
    s.assert_merged_matches_native();
}

#[test]
fn opaque_or_deleted_paths_hide_lower_symlinks_privileged() {
    require_root();
    // Layer two deletes `lib` or replaces it with a directory before writing
    // `lib/x`: the lower `lib -> usr/lib` is no longer there to follow.
    // (An opaque marker for the root itself is not among the cases: the
    // upper's root is the one directory overlayfs never treats as opaque.)
    let cases: [&dyn Fn(&mut Layer); 3] = [
        &|l| {
            l.whiteout(".wh.lib").file("lib/x", b"x", 0o644);
        },
        &|l| {
            l.dir("etc", 0o755)
                .whiteout("etc/.wh..wh..opq")
                .symlink("etc/lib", "../usr/lib")
                .whiteout(".wh.lib")
                .file("lib/x", b"x", 0o644)
                .file("etc/lib/y", b"y", 0o644);
        },
        &|l| {
            l.dir("lib", 0o755).file("lib/x", b"x", 0o644);
        },
    ];
    for second in cases {
        let mut two = Layer::new();
        second(&mut two);
        let s = Snapshots::apply(&[usrmerge("usr/lib"), two.finish()]);
        assert_eq!(std::fs::read(s.top().join("lib/x")).unwrap(), b"x");
        s.assert_merged_matches_native();
    }
}

#[test]
fn lower_symlink_loops_and_dangling_targets_are_errors_privileged() {
    require_root();
    let (dir, lower) = temp_dir_with("lower");
    let mut one = Layer::new();
    one.symlink("loop", "loop")
        .symlink("a", "b")
        .symlink("b", "/a")
        .symlink("dangling", "nowhere/deeper");
    apply(&lower, &one.finish()).unwrap();
    for name in ["loop/x", "a/x", "dangling/x"] {
        let upper = dir.path().join(format!("up-{}", name.replace('/', "-")));
        std::fs::create_dir(&upper).unwrap();
        let mut two = Layer::new();
        two.file(name, b"x", 0o644);
        let err = apply_with(&upper, &two.finish(), &overlay(vec![lower.clone()])).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{name}: {err:?}");
    }
    // A whiteout under them has nothing to delete: no error, no change.
    let upper = dir.path().join("up-wh");
    std::fs::create_dir(&upper).unwrap();
    let mut two = Layer::new();
    two.whiteout("dangling/.wh.x").whiteout("loop/.wh..wh..opq");
    let err = apply_with(&upper, &two.finish(), &overlay(vec![lower.clone()]));
    // The loop is an error, the dangling link silently nothing.
    assert!(matches!(err, Err(Error::Io { .. })), "{err:?}");
    assert!(!upper.join("nowhere").exists());
}

#[test]
fn a_lower_file_hides_directories_of_the_lowers_below_it_privileged() {
    require_root();
    // Layer two replaces `a` with a file; in layer three `a` is a directory
    // again, and nothing of the base's `a/x` may show through: overlayfs
    // stops merging at the file, and so must the copied metadata and links.
    let mut one = Layer::new();
    one.dir("a", 0o755)
        .dir("a/x", 0o711)
        .file("a/x/f", b"f", 0o600);
    let mut two = Layer::new();
    two.file("a", b"flat", 0o644);
    let mut three = Layer::new();
    three.dir("a", 0o755).file("a/x/g", b"g", 0o644);
    let s = Snapshots::apply(&[one.finish(), two.finish(), three.finish()]);
    assert_eq!(
        std::fs::metadata(s.top().join("a/x")).unwrap().mode() & 0o7777,
        0o755
    );
    s.assert_merged_matches_native();

    let mut three = Layer::new();
    three.dir("a", 0o755).hardlink("h", "a/x/f");
    let upper = s.base.path().join("up-link");
    std::fs::create_dir(&upper).unwrap();
    let lowers = s.uppers.iter().rev().cloned().collect();
    let err = apply_with(&upper, &three.finish(), &overlay(lowers)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

#[test]
fn a_layer_that_lists_its_parents_never_waits_for_its_lowers() {
    let (_base, upper) = temp_dir_with("upper");
    let mut layer = Layer::new();
    layer
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", b"#!", 0o755)
        .dir("etc", 0o755)
        .file("etc/motd", b"hi", 0o644);
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        late_lowers: Some(LateLowers::new(|| {
            Err(std::io::Error::other("the lowers were looked at"))
        })),
        ..ApplyOptions::default()
    };
    apply_with(&upper, &layer.finish(), &options).unwrap();
    assert_eq!(std::fs::read(upper.join("usr/bin/tool")).unwrap(), b"#!");
}

#[test]
fn a_parent_the_layer_does_not_list_waits_for_the_lowers() {
    let (_base, upper) = temp_dir_with("upper");
    let mut layer = Layer::new();
    layer.file("usr/bin/tool", b"#!", 0o755);
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        late_lowers: Some(LateLowers::new(|| {
            Err(std::io::Error::other("a lower layer failed"))
        })),
        ..ApplyOptions::default()
    };
    let error = apply_with(&upper, &layer.finish(), &options).unwrap_err();
    assert!(
        format!("{error:?}").contains("a lower layer failed"),
        "{error:?}"
    );
}
