//! Hostile layers through the real pipeline: a registry image whose top
//! layer tries to create, change or delete something outside the snapshot
//! (`..` names, absolute names, symlinks and hardlinks pointing out, whiteouts
//! naming `..` or reached through a symlink, a `.` entry), or is malformed
//! (a PAX size the ustar header contradicts, a truncated stream).
//!
//! Each case pulls into two roots, `<tmp>/root-overlay` and
//! `<tmp>/root-native`, one per snapshotter, beside a canary directory
//! `<tmp>/canary` holding `file`. Whatever the pull does, everything under
//! `<tmp>` outside the roots (and outside the exports the test makes) is
//! unchanged, content, modes, xattrs, link counts and mtimes included. The
//! pull either succeeds, everything having landed inside the snapshot, or
//! fails with one clear line and records no image; either way the store is
//! consistent afterwards: every blob verifies, no ingest, no active snapshot,
//! one snapshot directory per record, and `hoist images ls` works.
//!
//! The hostile names are written at every depth from 1 to 8 `..`, so that
//! one of them reaches `<tmp>/canary` from the snapshot's directory
//! (`<root>/snapshots/<snapshotter>/snapshots/<id>/fs`: 6 levels below
//! `<tmp>`) and one from the `hoist rootfs` destination (1 level).

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use hoist_testkit::rich::add_pax;
use hoist_testkit::tree::{Compare, Tree, snapshot_tree};
use hoist_testkit::{
    Compression, Format, Image, Layer, LayerBuilder, StoreDir, assert_trees_equal, sha256_digest,
};

use crate::unpack::{
    SNAPSHOTTERS, assert_no_active_snapshots, assert_snapshot_dirs_match_records, parse_snapshots,
};
use crate::util::{
    assert_mentions, assert_store_verified, failure, hoist_command, host_platform, serve, success,
};

/// The deepest `..` chain tried.
const MAX_DEPTH: usize = 8;

/// `n` times `../`.
fn up(n: usize) -> String {
    "../".repeat(n)
}

/// A temporary directory with a canary beside two hoist roots.
struct Hostile {
    dir: StoreDir,
}

impl Hostile {
    fn new() -> Hostile {
        let dir = StoreDir::new("hoist-hostile-");
        let canary = dir.path("canary");
        std::fs::create_dir_all(canary.join("sub")).expect("create canary");
        std::fs::write(canary.join("file"), b"precious\n").expect("write canary");
        std::fs::write(canary.join("sub/deep"), b"deep\n").expect("write canary");
        Hostile { dir }
    }

    fn path(&self) -> &Path {
        self.dir.dir()
    }

    /// `<tmp>/canary`, absolute.
    fn canary(&self) -> PathBuf {
        self.path().join("canary")
    }

    /// `<tmp>/canary` as a string, for tar names and link targets.
    fn canary_str(&self) -> String {
        self.canary().to_str().expect("utf-8 temp path").to_string()
    }

    fn root(&self, snapshotter: &str) -> PathBuf {
        self.path().join(format!("root-{snapshotter}"))
    }

    fn export(&self, snapshotter: &str) -> PathBuf {
        self.path().join(format!("export-{snapshotter}"))
    }

    /// `hoist --root <tmp>/root-S ARGS…` with a clean environment.
    fn hoist(&self, snapshotter: &str, args: &[&str]) -> Output {
        hoist_command(&self.root(snapshotter), &self.dir.home())
            .args(args)
            .output()
            .expect("run hoist")
    }

    /// Everything under `<tmp>` but the roots and the exports.
    fn outside(&self) -> Tree {
        let mut tree = snapshot_tree(self.path());
        tree.retain(|path, _| {
            let first = path
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            !(first.starts_with("root-") || first.starts_with("export-"))
        });
        tree
    }
}

/// How a case may end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Success (everything confined) or a clean failure.
    Either,
    /// A clean failure whose line mentions each of these.
    Fails(&'static [&'static str]),
}

/// What a successful pull produced, for per-case checks.
struct Outcome {
    /// The flattened root filesystem (`hoist rootfs`), when both the pull
    /// and the export succeeded.
    exported: Option<Tree>,
}

/// The base layer under every hostile layer: a directory, files, and a
/// `canary/` of its own, so that names confined to the root find something.
fn base_layer(compression: Compression) -> Layer {
    hoist_testkit::layer(compression, Format::Oci, |l| {
        l.add_dir("a", 0o755)
            .add_file("a/file", b"a\n", 0o644)
            .add_file("keep", b"keep\n", 0o644)
            .add_dir("canary", 0o755)
            .add_file("canary/file", b"inner\n", 0o644);
    })
}

/// A header for a raw `name` (at most 100 bytes, unvalidated) of `kind`,
/// with `link` (at most 100 bytes) as its link target.
fn raw_header(kind: tar::EntryType, name: &[u8], link: &[u8], mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(hoist_testkit::fixture::FIXED_MTIME);
    header.set_size(size);
    let old = header.as_old_mut();
    assert!(name.len() <= old.name.len() && link.len() <= old.linkname.len());
    old.name.fill(0);
    old.name[..name.len()].copy_from_slice(name);
    old.linkname.fill(0);
    old.linkname[..link.len()].copy_from_slice(link);
    header.set_cksum();
    header
}

fn raw(l: &mut LayerBuilder, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) {
    let header = raw_header(
        kind,
        name.as_bytes(),
        link.as_bytes(),
        0o644,
        data.len() as u64,
    );
    l.add_entry(&header, data);
}

/// A regular file `name` (raw) holding `data`.
fn raw_file(l: &mut LayerBuilder, name: &str, data: &[u8]) {
    raw(l, tar::EntryType::Regular, name, "", data);
}

/// A layer of the whiteout files `names` (empty, raw names).
fn whiteouts(names: &[&str]) -> Vec<u8> {
    let mut l = LayerBuilder::new();
    for name in names {
        raw_file(&mut l, name, b"");
    }
    l.finish()
}

/// [`run_case`] of a layer that may succeed or fail, with nothing to check
/// beyond the invariants.
fn run_confined(name: &str, env: &Hostile, hostile_tar: Vec<u8>) {
    run_case(name, env, hostile_tar, Expect::Either, |_, _| {});
}

/// [`run_case`] of a layer that may succeed or fail; `check` looks at the
/// flattened tree of each pull that succeeded.
fn run_exported(name: &str, env: &Hostile, hostile_tar: Vec<u8>, check: impl Fn(&Tree)) {
    run_case(name, env, hostile_tar, Expect::Either, |_, outcome| {
        if let Some(tree) = &outcome.exported {
            check(tree);
        }
    });
}

/// Pushes base + the hostile tar (gzip), pulls it into both roots, and checks
/// the invariants; `check` looks at each successful outcome.
fn run_case(
    name: &str,
    env: &Hostile,
    hostile_tar: Vec<u8>,
    expect: Expect,
    check: impl Fn(&str, &Outcome),
) {
    let layers = vec![
        base_layer(Compression::Gzip),
        Layer::from_tar(Compression::Gzip, Format::Oci, &hostile_tar),
    ];
    run_layers(name, env, layers, expect, check);
}

fn run_layers(
    name: &str,
    env: &Hostile,
    layers: Vec<Layer>,
    expect: Expect,
    check: impl Fn(&str, &Outcome),
) {
    let (_registry, _, pushed) = serve(
        Image::single(Format::Oci, host_platform(), layers),
        &format!("hostile/{name}"),
        "1.0",
    );
    let before = env.outside();
    for snapshotter in SNAPSHOTTERS {
        let output = env.hoist(
            snapshotter,
            &[
                "pull",
                "--plain-http",
                "--snapshotter",
                snapshotter,
                &pushed.reference,
            ],
        );
        let mut outcome = Outcome { exported: None };
        if output.status.success() {
            assert_eq!(
                expect,
                Expect::Either,
                "{name}: pull with {snapshotter} should have failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            // The flattened tree goes through the same applier in delete mode.
            let export = env.export(snapshotter);
            let exported = env.hoist(
                snapshotter,
                &["rootfs", &pushed.reference, export.to_str().unwrap()],
            );
            if exported.status.success() {
                outcome.exported = Some(snapshot_tree(&export));
            } else {
                failure(&exported);
            }
        } else {
            let line = failure(&output);
            if let Expect::Fails(needles) = expect {
                assert_mentions(&line, needles);
            }
            let names = success(&env.hoist(snapshotter, &["images", "ls", "-q"]));
            assert!(
                !names.lines().any(|n| n == pushed.reference),
                "{name}: a failed pull recorded the image: {names}"
            );
        }
        assert_trees_equal!(
            &before,
            &env.outside(),
            Compare::default(),
            "{name} with {snapshotter}: the tree outside the root changed"
        );
        // The store is consistent.
        let root = env.root(snapshotter);
        assert_store_verified(&root);
        let rows = parse_snapshots(&success(&env.hoist(
            snapshotter,
            &["snapshots", "ls", "--snapshotter", snapshotter],
        )));
        assert_no_active_snapshots(&rows);
        assert_snapshot_dirs_match_records(&root, snapshotter, &rows);
        success(&env.hoist(snapshotter, &["images", "ls"]));
        check(snapshotter, &outcome);
    }
}

/// Asserts that `tree` (an export) has `path`.
#[track_caller]
fn assert_has(tree: &Tree, path: &str) {
    assert!(
        tree.contains_key(Path::new(path)),
        "{path} missing from {:?}",
        tree.keys().collect::<Vec<_>>()
    );
}

/// Asserts the base layer's files survived in `tree`.
#[track_caller]
fn assert_base_intact(tree: &Tree) {
    for path in ["a", "a/file", "keep", "canary/file"] {
        assert_has(tree, path);
    }
}

#[test]
fn hostile_dotdot_names() {
    let env = Hostile::new();
    let mut l = LayerBuilder::new();
    for depth in 1..=MAX_DEPTH {
        l.add_raw_file(
            &format!("{}canary/pwned{depth}", up(depth)),
            b"pwned\n",
            0o644,
        );
        // And below a real directory of the layer.
        l.add_raw_file(
            &format!("a/{}canary/sub/pwned{depth}", up(depth)),
            b"pwned\n",
            0o644,
        );
    }
    run_exported("dotdot", &env, l.finish(), |tree| {
        // `..` is clamped at the root: the files land in its canary/.
        for depth in 1..=MAX_DEPTH {
            assert_has(tree, &format!("canary/pwned{depth}"));
        }
        assert_base_intact(tree);
    });
}

#[test]
fn hostile_absolute_name() {
    let env = Hostile::new();
    let name = format!("{}/pwned", env.canary_str());
    let mut l = LayerBuilder::new();
    l.add_raw_file(&name, b"pwned\n", 0o644);
    l.add_raw_file(&format!("{}/file", env.canary_str()), b"pwned\n", 0o644);
    run_exported("absolute", &env, l.finish(), |tree| {
        assert_has(tree, name.trim_start_matches('/'));
    });
}

#[test]
fn hostile_symlink_relative_escape_then_write_through_it() {
    let env = Hostile::new();
    let mut l = LayerBuilder::new();
    for depth in 1..=MAX_DEPTH {
        let link = format!("evil{depth}");
        l.add_symlink(&link, &format!("{}canary", up(depth)));
        raw_file(&mut l, &format!("{link}/pwned"), b"pwned\n");
        raw_file(&mut l, &format!("{link}/file"), b"pwned\n");
    }
    run_confined("symlink-relative", &env, l.finish());
}

#[test]
fn hostile_symlink_absolute_escape_then_write_through_it() {
    let env = Hostile::new();
    let canary = env.canary_str();
    let mut l = LayerBuilder::new();
    l.add_symlink("evil", &canary);
    raw_file(&mut l, "evil/pwned", b"pwned\n");
    raw_file(&mut l, "evil/file", b"pwned\n");
    // A dir and a fifo through it too.
    raw(&mut l, tar::EntryType::Directory, "evil/newdir/", "", b"");
    raw(&mut l, tar::EntryType::Fifo, "evil/fifo", "", b"");
    run_confined("symlink-absolute", &env, l.finish());
}

#[test]
fn hostile_symlink_to_outside_file_then_overwrite_it() {
    // `f -> <canary>/file`, then a regular file, a hardlink and an xattr'd
    // entry named `f`: each must replace the link, never write through it.
    let env = Hostile::new();
    let target = format!("{}/file", env.canary_str());
    let mut l = LayerBuilder::new();
    l.add_symlink("f", &target);
    raw_file(&mut l, "f", b"pwned\n");
    l.add_symlink("g", &target);
    l.add_hardlink("g", "keep");
    l.add_symlink("h", &target);
    add_pax(&mut l, &[("SCHILY.xattr.user.pwned", b"1")]);
    raw(&mut l, tar::EntryType::Directory, "h/", "", b"");
    run_exported("symlink-file", &env, l.finish(), |tree| {
        assert_eq!(tree[Path::new("f")].kind, hoist_testkit::FileKind::File);
    });
}

#[test]
fn hostile_hardlink_to_dotdot_target() {
    let env = Hostile::new();
    let mut l = LayerBuilder::new();
    for depth in 1..=MAX_DEPTH {
        let name = format!("h{depth}");
        raw(
            &mut l,
            tar::EntryType::Link,
            &name,
            &format!("{}canary/file", up(depth)),
            b"",
        );
        // Writing the name again must not write into the link's inode.
        raw_file(&mut l, &name, b"pwned\n");
    }
    run_exported("hardlink-dotdot", &env, l.finish(), |tree| {
        // Linked (then replaced) inside: the root's own canary is intact.
        assert_base_intact(tree);
        assert_eq!(tree[Path::new("canary/file")].size, Some(6));
    });
}

#[test]
fn hostile_hardlink_to_absolute_target() {
    let env = Hostile::new();
    let canary = env.canary_str();
    let mut l = LayerBuilder::new();
    raw(
        &mut l,
        tar::EntryType::Link,
        "h",
        &format!("{canary}/file"),
        b"",
    );
    raw_file(&mut l, "h", b"pwned\n");
    raw(&mut l, tar::EntryType::Link, "i", "/etc/passwd", b"");
    // Through a symlink pointing out.
    l.add_symlink("out", &canary);
    raw(&mut l, tar::EntryType::Link, "j", "out/file", b"");
    run_confined("hardlink-absolute", &env, l.finish());
}

#[test]
fn hostile_symlink_named_dot() {
    let env = Hostile::new();
    let canary = env.canary_str();
    for (case, name) in [("dot", "."), ("dot-slash", "./")] {
        let mut l = LayerBuilder::new();
        raw(&mut l, tar::EntryType::Symlink, name, &canary, b"");
        raw_file(&mut l, "pwned", b"pwned\n");
        run_exported(case, &env, l.finish(), |tree| {
            assert_has(tree, "pwned");
            assert_base_intact(tree);
        });
        // Fresh roots for the next variant.
        for snapshotter in SNAPSHOTTERS {
            let _ = std::fs::remove_dir_all(env.root(snapshotter));
            let _ = std::fs::remove_dir_all(env.export(snapshotter));
        }
    }
}

#[test]
fn hostile_whiteout_of_dotdot() {
    let env = Hostile::new();
    let tar = whiteouts(&[".wh...", ".wh..", "./.wh..."]);
    run_exported("whiteout-dotdot", &env, tar, |tree| {
        assert_base_intact(tree);
    });
}

#[test]
fn hostile_nested_whiteout_of_dotdot() {
    let env = Hostile::new();
    let tar = whiteouts(&["a/.wh...", "a/.wh..", "canary/.wh...", "a/../../.wh.canary"]);
    run_exported("nested-whiteout-dotdot", &env, tar, |tree| {
        for path in ["a", "a/file", "keep"] {
            assert_has(tree, path);
        }
    });
}

/// A layer of `link -> <canary>` (absolute) with the whiteouts `link/<w>`,
/// and at every depth `rlinkN -> ../…/canary` with the whiteout
/// `rlinkN/<deep>`.
fn whiteouts_through_symlinks(env: &Hostile, whiteouts: &[&str], deep: &str) -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.add_symlink("link", &env.canary_str());
    for whiteout in whiteouts {
        raw_file(&mut l, &format!("link/{whiteout}"), b"");
    }
    for depth in 1..=MAX_DEPTH {
        l.add_symlink(&format!("rlink{depth}"), &format!("{}canary", up(depth)));
        raw_file(&mut l, &format!("rlink{depth}/{deep}"), b"");
    }
    l.finish()
}

#[test]
fn hostile_whiteout_through_symlinked_dir() {
    let env = Hostile::new();
    let tar = whiteouts_through_symlinks(&env, &[".wh.file", ".wh.sub"], ".wh.file");
    run_confined("whiteout-symlink", &env, tar);
}

#[test]
fn hostile_opaque_whiteout_in_symlinked_dir() {
    let env = Hostile::new();
    let tar = whiteouts_through_symlinks(&env, &[".wh..wh..opq"], ".wh..wh..opq");
    run_confined("opaque-symlink", &env, tar);
}

#[test]
fn hostile_dot_directory_entries_with_weird_modes() {
    let env = Hostile::new();
    let mut l = LayerBuilder::new();
    let mut dot = raw_header(tar::EntryType::Directory, b".", b"", 0o7777, 0);
    dot.set_uid(4242);
    dot.set_cksum();
    l.add_entry(&dot, &[]);
    let slash = raw_header(tar::EntryType::Directory, b"./", b"", 0o777, 0);
    l.add_entry(&slash, &[]);
    let root = raw_header(tar::EntryType::Directory, b"/", b"", 0o1777, 0);
    l.add_entry(&root, &[]);
    let up_dir = raw_header(tar::EntryType::Directory, b"../", b"", 0o777, 0);
    l.add_entry(&up_dir, &[]);
    raw_file(&mut l, "./x", b"x\n");
    run_exported("dot-dir", &env, l.finish(), |tree| {
        assert_has(tree, "x");
        assert_base_intact(tree);
    });
}

#[test]
fn hostile_pax_size_disagreeing_with_ustar_size_fails() {
    let env = Hostile::new();
    let mut l = LayerBuilder::new();
    // The ustar header says 1024 bytes, the PAX header 5: one parser's file
    // data is another's next header (CVE-2025-62518).
    add_pax(&mut l, &[("size", b"5")]);
    let header = raw_header(tar::EntryType::Regular, b"smuggler", b"", 0o644, 1024);
    let mut data = b"hello".to_vec();
    data.resize(512, 0);
    let inner = raw_header(
        tar::EntryType::Regular,
        format!("{}canary/pwned", up(6)).as_bytes(),
        b"",
        0o644,
        0,
    );
    data.extend_from_slice(inner.as_bytes());
    // add_entry writes the header, then the data padded to a block.
    l.add_entry(&header, &data);
    run_case(
        "pax-size",
        &env,
        l.finish(),
        Expect::Fails(&["PAX size", "disagrees"]),
        |_, _| {},
    );
}

/// The layer of `tar` cut to `len` bytes (before compression), its digest,
/// size and diffID those of the cut stream, so that only the truncation
/// itself can be noticed.
fn truncated_layer(tar: &[u8], len: usize, compression: Compression) -> Layer {
    let cut = &tar[..len];
    let layer = Layer::from_tar(compression, Format::Oci, cut);
    assert_eq!(layer.diff_id, sha256_digest(cut));
    layer
}

/// A layer of one 64 KiB file, then a second file.
fn two_file_tar() -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.add_file("big", &vec![7u8; 64 * 1024], 0o644);
    l.add_file("after", b"after\n", 0o644);
    l.finish()
}

/// The base layer, then [`two_file_tar`] cut to `len` bytes: the pull
/// fails naming the truncation.
fn run_truncated(name: &str, len: usize, compression: Compression) {
    let env = Hostile::new();
    let layers = vec![
        base_layer(Compression::Gzip),
        truncated_layer(&two_file_tar(), len, compression),
    ];
    run_layers(name, &env, layers, Expect::Fails(&["truncated"]), |_, _| {});
}

#[test]
fn hostile_truncated_layer_mid_file_fails() {
    // Cut in the middle of `big`'s data; uncompressed, so the descriptor
    // size is that of the cut blob.
    run_truncated("truncated-mid-file", 512 + 30_000, Compression::None);
}

#[test]
fn hostile_truncated_layer_at_entry_boundary_fails() {
    // Cut right after `big`'s data: a valid prefix of entries, but no
    // end-of-archive blocks, so `after` and whatever follows are lost.
    run_truncated("truncated-boundary", 512 + 64 * 1024, Compression::Gzip);
}

#[test]
fn hostile_truncated_gzip_stream_fails() {
    let env = Hostile::new();
    let full = Layer::from_tar(Compression::Gzip, Format::Oci, &two_file_tar());
    // The compressed stream itself is cut; the descriptor matches the cut
    // blob, the config keeps the full tar's diffID.
    let cut = full.blob[..full.blob.len() / 2].to_vec();
    let layer = Layer {
        digest: sha256_digest(&cut),
        blob: cut,
        ..full
    };
    let layers = vec![base_layer(Compression::Gzip), layer];
    run_layers(
        "truncated-gzip",
        &env,
        layers,
        Expect::Fails(&["unpacking layer"]),
        |_, _| {},
    );
}

#[test]
fn hostile_non_utf8_and_control_names_stay_inside() {
    // Not an escape, but names a careless path join mangles.
    let env = Hostile::new();
    let mut l = LayerBuilder::new();
    let header = raw_header(tar::EntryType::Regular, b"a/\xff\xfe", b"", 0o644, 2);
    l.add_entry(&header, b"x\n");
    let header = raw_header(tar::EntryType::Regular, b"a/new\nline", b"", 0o644, 2);
    l.add_entry(&header, b"x\n");
    run_exported("names", &env, l.finish(), |tree| {
        let weird = PathBuf::from(std::ffi::OsStr::from_bytes(b"a/\xff\xfe"));
        assert!(tree.contains_key(&weird));
        assert_has(tree, "a/new\nline");
    });
}
