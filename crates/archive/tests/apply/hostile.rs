//! Hostile layers: each case runs in a sandbox with a canary directory beside
//! the root, and must leave everything outside the root exactly as it was,
//! whether the apply succeeds (confined) or fails (refused).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hoist_archive::{ApplyOptions, Compression, Error, WhiteoutMode, apply_layer};

use crate::support::{
    Layer, Sandbox, apply_with, assert_canary_unchanged, is_root, read, require_root, run, run_ok,
    run_overlay, run_overlay_ok,
};

#[test]
fn dot_dot_names_are_clamped_inside() {
    for name in ["../x", "../../../../x", "a/../../x", "./../x", "/x", "//x"] {
        let mut l = Layer::new();
        l.file(name, b"payload", 0o644);
        let sb = run_ok(&l.finish());
        assert_eq!(read(&sb.root, "x"), b"payload", "{name}");
    }
    let mut l = Layer::new();
    l.file("../canary/file", b"overwrite!", 0o644)
        .dir("../canary/dir", 0o777);
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "canary/file"), b"overwrite!");
}

#[test]
fn absolute_names_land_inside() {
    let mut l = Layer::new();
    l.file("/abs/x", b"abs", 0o644)
        .file("/etc/passwd", b"root::0:0::/:/bin/sh\n", 0o644);
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "abs/x"), b"abs");
    assert!(!Path::new("/abs/x").exists());
}

#[test]
fn symlink_to_host_root_does_not_redirect_writes() {
    let name = format!("hoist-archive-pwned-{}", std::process::id());
    let mut l = Layer::new();
    l.symlink("evil", "/")
        .file(&format!("evil/{name}"), b"pwned", 0o644);
    l.symlink("evil2", "../../../../..")
        .file(&format!("evil2/{name}-2"), b"pwned", 0o644);
    l.dir("evil/tmp", 0o777);
    let sb = run_ok(&l.finish());
    // `/` means the root here.
    assert_eq!(read(&sb.root, &name), b"pwned");
    assert_eq!(read(&sb.root, &format!("{name}-2")), b"pwned");
    assert!(!Path::new("/").join(&name).exists());
    assert!(!Path::new("/").join(format!("{name}-2")).exists());
    // The host's /tmp keeps its mode.
    assert_eq!(std::fs::metadata("/tmp").unwrap().mode() & 0o7777, 0o1777);
}

#[test]
fn symlink_to_sibling_does_not_redirect_writes() {
    // `../canary` means `<root>/canary`, which does not exist: writing
    // through the dangling link is refused, never redirected to the sibling.
    let refused: [&dyn Fn(&mut Layer); 3] = [
        &|l| {
            l.symlink("evil", "../canary")
                .file("evil/pwned", b"pwned", 0o644);
        },
        &|l| {
            l.symlink("evil", "../canary")
                .file("evil/file", b"x", 0o644);
        },
        &|l| {
            l.symlink("d", "../canary/dir").dir("d/inner", 0o777);
        },
    ];
    for build in refused {
        let mut l = Layer::new();
        build(&mut l);
        let (result, sb) = run(&l.finish());
        assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
        assert!(!sb.root.join("canary").exists());
    }
    // A file or directory over a symlink replaces the symlink itself.
    let mut l = Layer::new();
    l.symlink("f", "../canary/file")
        .file("f", b"replaces the symlink", 0o600);
    l.symlink("d", "../canary/dir").dir("d", 0o777);
    l.symlink("l", "../canary/link").hardlink("l", "f");
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "f"), b"replaces the symlink");
    assert!(
        std::fs::symlink_metadata(sb.root.join("d"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        std::fs::symlink_metadata(sb.root.join("l"))
            .unwrap()
            .nlink(),
        2
    );
}

#[test]
fn metadata_is_never_applied_through_a_symlink() {
    // A directory's mode and mtime are applied at the end; by then a later
    // entry has replaced it with a symlink to the canary.
    let (result, sb) = run(&hoist_testkit::raw_tar::metadata_through_symlink());
    result.unwrap();
    assert!(
        std::fs::symlink_metadata(sb.root.join("d"))
            .unwrap()
            .is_symlink()
    );
    if is_root() {
        assert_eq!(
            std::fs::symlink_metadata(sb.root.join("own"))
                .unwrap()
                .uid(),
            4242
        );
    }
}

#[test]
fn hardlinks_cannot_reach_outside_inodes() {
    for target in [
        "../canary/file",
        "/etc/passwd",
        "evil/file",
        "evil/passwd",
        "../../../../etc/passwd",
    ] {
        let mut l = Layer::new();
        l.symlink("evil", "../canary").hardlink("h", target);
        let (result, sb) = run(&l.finish());
        // No such file inside the root: refused.
        assert!(result.is_err(), "{target}");
        assert!(!sb.root.join("h").exists());
    }
    // Symlink then hardlink *through* it as the link's own path.
    let mut l = Layer::new();
    l.file("inside", b"in", 0o644)
        .symlink("evil", "../canary")
        .hardlink("evil/h", "inside");
    let (result, sb) = run(&l.finish());
    assert!(result.is_err());
    assert_eq!(
        std::fs::metadata(sb.root.join("inside")).unwrap().nlink(),
        1
    );
    // A link whose target is a symlink to the outside links the symlink
    // itself, never the file behind it.
    let mut l = Layer::new();
    l.symlink("s", "../canary/file").hardlink("h", "s");
    let sb = run_ok(&l.finish());
    assert!(
        std::fs::symlink_metadata(sb.root.join("h"))
            .unwrap()
            .is_symlink()
    );
    // With a decoy inside the root, `../canary/file` links the decoy.
    let mut l = Layer::new();
    l.file("canary/file", b"decoy", 0o644)
        .hardlink("h", "../canary/file");
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "h"), b"decoy");
    assert_eq!(std::fs::metadata(sb.root.join("h")).unwrap().nlink(), 2);
}

#[test]
fn symlink_named_dot_does_not_replace_the_root() {
    for name in [".", "./", "/", "a/.."] {
        let mut l = Layer::new();
        l.symlink(name, "../canary").file("after", b"a", 0o644);
        let (result, sb) = run(&l.finish());
        let applied = result.unwrap();
        assert_eq!(applied.skipped.len(), 1, "{name}");
        assert!(std::fs::symlink_metadata(&sb.root).unwrap().is_dir());
        assert_eq!(read(&sb.root, "after"), b"a");
    }
    // A file, hardlink or fifo naming the root is skipped too.
    let mut l = Layer::new();
    l.file(".", b"x", 0o644)
        .file("x", b"x", 0o644)
        .hardlink("/", "x");
    l.raw(
        Layer::header(tar::EntryType::Fifo, 0o644),
        b"./",
        None,
        &[],
        &[],
    );
    let (result, _sb) = run(&l.finish());
    assert_eq!(result.unwrap().skipped.len(), 3);
}

#[test]
fn directory_entry_for_the_root_only_updates_metadata() {
    let mut l = Layer::new();
    l.file("keep", b"k", 0o644)
        .dir("/", 0o700)
        .dir("..", 0o777)
        .dir("../..", 0o711);
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "keep"), b"k");
    assert_eq!(std::fs::metadata(&sb.root).unwrap().mode() & 0o7777, 0o711);
}

#[test]
fn whiteouts_naming_dot_or_dot_dot_delete_nothing() {
    let mut l = Layer::new();
    l.file("a/x", b"x", 0o644)
        .whiteout(".wh...")
        .whiteout("a/.wh...")
        .whiteout("a/.wh..");
    l.whiteout(".wh.").whiteout("a/.wh.");
    let tar = l.finish();
    let sb = run_ok(&tar);
    assert_eq!(read(&sb.root, "a/x"), b"x");
    if is_root() {
        let sb = run_overlay_ok(&tar);
        assert_eq!(read(&sb.root, "a/x"), b"x");
    }
}

#[test]
fn whiteouts_through_symlinks_stay_inside() {
    let mut l = Layer::new();
    l.symlink("link", "../canary")
        .whiteout("link/.wh.file")
        .whiteout("link/.wh.dir");
    l.whiteout("link/.wh..wh..opq");
    l.symlink("abs", "/")
        .file("victim", b"v", 0o644)
        .whiteout("abs/.wh.victim");
    let tar = l.finish();
    let sb = run_ok(&tar);
    // `abs -> /` is the root itself: its whiteout deleted the root's victim.
    assert!(!sb.root.join("victim").exists());
    if is_root() {
        // Overlay mode: a whiteout or opaque marker under a dangling in-root
        // symlink is refused (or confined); never outside.
        let (_result, _sb) = run_overlay(&tar);
    }
}

#[test]
fn opaque_inside_symlinked_directory_empties_nothing_outside() {
    let mut l = Layer::new();
    l.dir("canary", 0o755).file("canary/in-root", b"r", 0o644);
    l.symlink("link", "../canary").whiteout("link/.wh..wh..opq");
    let tar = l.finish();
    let sb = run_ok(&tar);
    // The opaque marker resolved to <root>/canary, whose entries this layer made.
    assert_eq!(read(&sb.root, "canary/in-root"), b"r");
    if is_root() {
        let sb = run_overlay_ok(&tar);
        assert_eq!(
            crate::support::xattr(&sb.root.join("canary"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    }
}

#[test]
fn device_nodes_stay_inside() {
    let mut l = Layer::new();
    let mut h = Layer::header(tar::EntryType::Char, 0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    l.raw(h.clone(), b"../dev/null", None, &[], &[]);
    l.symlink("evil", "../canary");
    l.raw(h.clone(), b"../canary/file", None, &[], &[]);
    let mut b = Layer::header(tar::EntryType::Block, 0o600);
    b.set_device_major(8).unwrap();
    b.set_device_minor(0).unwrap();
    l.raw(b, b"/sda", None, &[], &[]);
    let (result, sb) = run(&l.finish());
    let applied = result.unwrap();
    if is_root() {
        assert!(sb.root.join("dev/null").exists());
        assert!(sb.root.join("canary/file").exists());
        assert!(sb.root.join("sda").exists());
    } else {
        assert_eq!(applied.skipped.len(), 3);
    }
}

#[test]
fn pax_size_disagreeing_with_ustar_size_is_malformed() {
    // The PAX record claims 1024 bytes, the ustar header 5: a parser using
    // one sees the next header where another sees file data.
    let mut l = Layer::new();
    let mut h = Layer::header(tar::EntryType::Regular, 0o644);
    h.set_size(5);
    l.raw(h, b"smuggler", None, &[("size", b"1024")], b"12345");
    l.file("../canary/file", b"smuggled", 0o644);
    let (result, sb) = run(&l.finish());
    assert!(matches!(result, Err(Error::Malformed { .. })), "{result:?}");
    assert!(!sb.root.join("canary").exists());
}

#[test]
fn truncated_streams_are_errors() {
    let mut l = Layer::new();
    l.file("a", &[7u8; 3000], 0o644).file("b", b"b", 0o644);
    let tar = l.finish();
    // Cut inside a's data, inside b's header, and at the end of b's data
    // (no end-of-archive blocks).
    let b_end = 512 + 3072 + 512 + 512;
    for cut in [512 + 1000, 512 + 3072 + 100, b_end] {
        let (result, _sb) = run(&tar[..cut]);
        assert!(
            matches!(result, Err(Error::Malformed { .. })),
            "cut {cut}: {result:?}"
        );
    }
    // A gzip stream cut short.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let sandbox = Sandbox::new();
    let result = apply_layer(
        &sandbox.root,
        &gz[..gz.len() / 2],
        Compression::Gzip,
        &ApplyOptions::default(),
    );
    assert!(result.is_err());
    assert_canary_unchanged(&sandbox);
}

#[test]
fn nul_in_pax_path_is_malformed() {
    let mut l = Layer::new();
    l.file_pax(b"x", b"x", &[("path", b"../canary/file\0.txt")]);
    let (result, _sb) = run(&l.finish());
    assert!(matches!(result, Err(Error::Malformed { .. })), "{result:?}");
}

#[test]
fn deep_replacement_stays_inside() {
    // A file replacing a directory removes the directory tree with the
    // removal confined: a symlink inside the tree is unlinked, not followed.
    let mut l = Layer::new();
    l.dir("tree", 0o755)
        .symlink("tree/out", "../../canary")
        .symlink("tree/abs", "/");
    l.dir("tree/sub", 0o755)
        .symlink("tree/sub/file", "../../../canary/file");
    l.file("tree", b"flat", 0o644);
    let sb = run_ok(&l.finish());
    assert_eq!(read(&sb.root, "tree"), b"flat");
    // Opaque and plain whiteouts over the same kind of tree.
    let mut l = Layer::new();
    l.dir("t", 0o755)
        .symlink("t/out", "../../canary")
        .whiteout(".wh.t");
    let sb = run_ok(&l.finish());
    assert!(!sb.root.join("t").exists());
}

#[test]
fn lower_layer_symlinks_resolve_inside_the_root_privileged() {
    require_root();
    let name = format!("hoist-archive-pwned-{}", std::process::id());
    // Lower symlinks pointing out of the root, relatively and absolutely, and
    // at the sandbox's canary sibling; the lower has no `etc` or `canary`.
    let mut base = Layer::new();
    base.symlink("evil", "../../outside")
        .symlink("abs", "/etc")
        .symlink("up", "../canary")
        .symlink("deep", ".././../../canary/dir")
        .symlink("root", "/")
        .symlink("dots", "../../..")
        .file("inside", b"in", 0o644);
    let base = base.finish();
    let writes: [&dyn Fn(&mut Layer); 9] = [
        &|l| {
            l.file("evil/x", b"p", 0o644);
        },
        &|l| {
            l.file(&format!("abs/{name}"), b"p", 0o644);
        },
        &|l| {
            l.dir("abs/sub", 0o777);
        },
        &|l| {
            l.file("up/file", b"p", 0o644);
        },
        &|l| {
            l.file("deep/inner", b"p", 0o644);
        },
        &|l| {
            l.hardlink("up/h", "inside");
        },
        &|l| {
            l.hardlink("h", "up/file").hardlink("h2", "abs/passwd");
        },
        &|l| {
            l.whiteout("up/.wh.file")
                .whiteout("abs/.wh.passwd")
                .whiteout("up/.wh..wh..opq");
        },
        &|l| {
            l.symlink("evil2", "/").file("evil2/up/file", b"p", 0o644);
        },
    ];
    for (i, write) in writes.iter().enumerate() {
        let mut sandbox = Sandbox::new();
        let lower = sandbox.add_lower("lower", &base);
        let mut l = Layer::new();
        write(&mut l);
        let options = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            lowers: vec![lower],
            ..ApplyOptions::default()
        };
        // Each target is missing in the merged view: refused or a no-op,
        // never redirected.
        let _ = apply_with(&sandbox.root, &l.finish(), &options);
        assert_canary_unchanged(&sandbox);
        assert!(!Path::new("/etc").join(&name).exists(), "case {i}");
        assert!(!Path::new("/outside").exists(), "case {i}");
    }

    // With decoys in a lower, the same writes land on the decoys, in the root.
    let mut decoys = Layer::new();
    decoys
        .dir("etc", 0o755)
        .file("etc/passwd", b"decoy", 0o644)
        .dir("canary/dir", 0o755)
        .dir("outside", 0o755);
    let decoys = decoys.finish();
    let mut sandbox = Sandbox::new();
    let top = sandbox.add_lower("top", &base);
    let bottom = sandbox.add_lower("bottom", &decoys);
    let mut l = Layer::new();
    for write in writes {
        write(&mut l);
    }
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        lowers: vec![top, bottom],
        ..ApplyOptions::default()
    };
    apply_with(&sandbox.root, &l.finish(), &options).unwrap();
    assert_canary_unchanged(&sandbox);
    let root = &sandbox.root;
    assert_eq!(read(root, "outside/x"), b"p");
    assert_eq!(read(root, &format!("etc/{name}")), b"p");
    assert!(root.join("etc/sub").is_dir());
    assert_eq!(read(root, "canary/dir/inner"), b"p");
    assert_eq!(read(root, "h2"), b"decoy");
    assert!(!Path::new("/etc").join(&name).exists());
    for link in ["evil", "abs", "up", "deep"] {
        assert!(
            std::fs::symlink_metadata(root.join(link)).is_err(),
            "{link}"
        );
    }
}
