//! Unpacking into snapshots, cross-checked with umoci: `hoist pull` with each
//! snapshotter, then `hoist rootfs` and the mounted view of the top snapshot
//! must be the tree `umoci unpack` makes of the same image; platforms of an
//! index; warm re-pulls and shared base layers (one snapshot per chainID);
//! a wrong diffID in the config; concurrent pulls sharing layers;
//! `hoist images rm` removing exactly the snapshots no image needs; and
//! two-layer edge cases where the overlay snapshotter must still give
//! umoci's tree (a write through a lower layer's symlink, a directory deleted
//! and made again in one layer, a hardlink to a lower file).
//!
//! Mounting needs root (overlay needs it to be supported at all): the suite
//! runs as root, and every mount is undone by a [`MountGuard`].

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use hoist_testkit::rich::rich_layers;
use hoist_testkit::tree::{Compare, FileKind, Tree, snapshot_tree};
use hoist_testkit::{
    Compression, Format, Image, Layer, LayerBuilder, Pushed, Registry, assert_trees_equal, layer,
    run_ok, sha256_digest, simple_image, umoci_unpack,
};

use crate::util::{
    TestEnv, assert_mentions, big_layer, failure, host_platform, other_platform, serve, stderr,
    success, table_cells,
};

/// Both snapshotters.
pub(crate) const SNAPSHOTTERS: [&str; 2] = ["overlay", "native"];

/// `hoist pull --plain-http --snapshotter S [FLAGS…] REFERENCE` (with
/// unpacking, unlike `TestEnv::pull`).
pub(crate) fn pull_command(
    env: &TestEnv,
    snapshotter: &str,
    flags: &[&str],
    reference: &str,
) -> Command {
    let mut command = env.hoist();
    command
        .args(["pull", "--plain-http", "--snapshotter", snapshotter])
        .args(flags)
        .arg(reference);
    command
}

/// What a successful unpacking pull printed.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// The `unpacked <snapshotter> <chainID>` chainIDs, one per manifest.
    pub(crate) tops: Vec<String>,
    /// stderr (progress).
    pub(crate) stderr: String,
}

/// Parses a successful pull's output.
#[track_caller]
pub(crate) fn unpacked(output: &Output, snapshotter: &str) -> Unpacked {
    let stdout = success(output);
    let tops = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("unpacked "))
        .map(|rest| {
            let (name, chain_id) = rest.split_once(' ').expect("unpacked NAME CHAINID");
            assert_eq!(name, snapshotter, "snapshotter in {stdout:?}");
            chain_id.to_string()
        })
        .collect();
    Unpacked {
        tops,
        stderr: stderr(output),
    }
}

/// `hoist pull --snapshotter S [FLAGS…] REFERENCE` into env's root, which
/// must succeed.
#[track_caller]
pub(crate) fn pull_unpack(
    env: &TestEnv,
    snapshotter: &str,
    flags: &[&str],
    reference: &str,
) -> Unpacked {
    let output = pull_command(env, snapshotter, flags, reference)
        .output()
        .expect("run hoist pull");
    unpacked(&output, snapshotter)
}

/// One row of `hoist snapshots ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotRow {
    pub(crate) key: String,
    pub(crate) parent: Option<String>,
    pub(crate) kind: String,
}

/// Parses `hoist snapshots ls` output.
pub(crate) fn parse_snapshots(stdout: &str) -> Vec<SnapshotRow> {
    table_cells(stdout, "snapshots ls", "KEY")
        .into_iter()
        .map(|cells| match cells.as_slice() {
            [key, kind] => SnapshotRow {
                key: key.to_string(),
                parent: None,
                kind: kind.to_string(),
            },
            [key, parent, kind] => SnapshotRow {
                key: key.to_string(),
                parent: Some(parent.to_string()),
                kind: kind.to_string(),
            },
            _ => panic!("snapshots ls row: {cells:?}"),
        })
        .collect()
}

/// The rows of `hoist snapshots ls --snapshotter S` in env's root.
pub(crate) fn snapshots(env: &TestEnv, snapshotter: &str) -> Vec<SnapshotRow> {
    parse_snapshots(&success(&env.run(&[
        "snapshots",
        "ls",
        "--snapshotter",
        snapshotter,
    ])))
}

/// The keys of `snapshots`, asserting that each appears once.
#[track_caller]
fn keys(rows: &[SnapshotRow]) -> BTreeSet<String> {
    let set: BTreeSet<String> = rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(set.len(), rows.len(), "a key listed twice: {rows:?}");
    set
}

/// Asserts that `rows` are exactly the committed snapshots of each chain in
/// `chains` (each chainID once, parent = the previous chainID), nothing else.
#[track_caller]
fn assert_committed_chains(rows: &[SnapshotRow], chains: &[&[String]]) {
    let mut expected: BTreeMap<String, Option<String>> = BTreeMap::new();
    for chain in chains {
        for (i, id) in chain.iter().enumerate() {
            expected.insert(id.clone(), i.checked_sub(1).map(|p| chain[p].clone()));
        }
    }
    let listed: BTreeMap<String, Option<String>> = rows
        .iter()
        .map(|r| (r.key.clone(), r.parent.clone()))
        .collect();
    keys(rows);
    assert_eq!(listed, expected, "snapshots ls: {rows:#?}");
    for row in rows {
        assert_eq!(row.kind, "Committed", "{row:?}");
    }
}

/// A mount made from the command `hoist snapshots mounts` prints, undone on
/// drop (lazily if the plain unmount fails).
pub(crate) struct MountGuard {
    target: PathBuf,
}

impl MountGuard {
    /// Runs `hoist snapshots mounts --snapshotter S KEY TARGET` and the one
    /// `mount …` command it prints (creating TARGET).
    #[track_caller]
    pub(crate) fn mount_snapshot(
        env: &TestEnv,
        snapshotter: &str,
        key: &str,
        target: &Path,
    ) -> MountGuard {
        std::fs::create_dir_all(target).expect("create mount target");
        let stdout = success(
            &env.hoist()
                .args(["snapshots", "mounts", "--snapshotter", snapshotter, key])
                .arg(target)
                .output()
                .expect("run hoist snapshots mounts"),
        );
        let commands: Vec<&str> = stdout.lines().collect();
        assert_eq!(commands.len(), 1, "one mount command: {stdout:?}");
        let command = commands[0];
        // An overlay of many layers is mounted from the snapshots directory
        // (`cd DIR && mount …`), its lowers named relative to it.
        let mount = match command.split_once(" && ") {
            Some((cd, mount)) => {
                assert!(cd.starts_with("cd "), "{command}");
                mount
            }
            None => command,
        };
        let expected_kind = match snapshotter {
            "native" => "mount --rbind -o ro ",
            _ => "mount ",
        };
        assert!(mount.starts_with(expected_kind), "{command}");
        run_ok(Command::new("sh").arg("-c").arg(command), command);
        MountGuard {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let plain = Command::new("umount").arg(&self.target).status();
        if !matches!(plain, Ok(status) if status.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.target).status();
        }
    }
}

/// `hoist rootfs REFERENCE DEST [--platform P]`, which must succeed.
#[track_caller]
fn rootfs(env: &TestEnv, reference: &str, dest: &Path, platform: Option<&str>) -> Tree {
    let mut command = env.hoist();
    command.arg("rootfs").arg(reference).arg(dest);
    if let Some(platform) = platform {
        command.args(["--platform", platform]);
    }
    let stdout = success(&command.output().expect("run hoist rootfs"));
    assert_eq!(stdout.trim_end(), dest.display().to_string());
    snapshot_tree(dest)
}

/// What the comparisons with umoci compare: everything, the root directory
/// and mtimes included (both restore mtimes from the tar).
fn with_umoci() -> Compare {
    Compare::default()
}

/// Asserts that a mounted view shows no overlay whiteout artifacts: no char
/// device 0:0, no `trusted.overlay.*` xattr.
#[track_caller]
fn assert_no_whiteout_artifacts(tree: &Tree) {
    for (path, entry) in tree {
        assert!(
            !(entry.kind == FileKind::Char && entry.rdev == Some((0, 0))),
            "whiteout device visible at {}",
            path.display()
        );
        for name in entry.xattrs.keys() {
            assert!(
                !name.to_string_lossy().starts_with("trusted.overlay."),
                "{} shows {}",
                path.display(),
                name.to_string_lossy()
            );
        }
    }
}

/// Pulls `image` (pushed as `reference`) with `snapshotter`, then checks
/// `hoist rootfs` and the mounted view of the top snapshot against umoci's
/// tree of `image`, which it returns.
fn check_unpacked(
    env: &TestEnv,
    snapshotter: &str,
    reference: &str,
    image: &Image,
    compare: Compare,
) -> Tree {
    let expected = snapshot_tree(&umoci_unpack(image, &env.path("umoci")));
    let pulled = pull_unpack(env, snapshotter, &[], reference);
    let chain = image.chain_ids();
    assert_eq!(pulled.tops, [chain.last().unwrap().clone()], "{pulled:?}");
    assert_committed_chains(&snapshots(env, snapshotter), &[&chain]);

    let exported = rootfs(
        env,
        reference,
        &env.path(&format!("rootfs-{snapshotter}")),
        None,
    );
    assert_trees_equal!(
        &exported,
        &expected,
        with_umoci(),
        "`hoist rootfs` (after a pull with {snapshotter}) vs umoci"
    );

    let target = env.path(&format!("mnt-{snapshotter}"));
    let _mounted = MountGuard::mount_snapshot(env, snapshotter, &pulled.tops[0], &target);
    let view = snapshot_tree(&target);
    assert_no_whiteout_artifacts(&view);
    assert_trees_equal!(
        &view,
        &expected,
        compare,
        "mounted {snapshotter} view of the top snapshot vs umoci"
    );
    expected
}

/// What the rich layers must give, whoever unpacks them (so that the
/// comparison with umoci is not a comparison of two wrong trees).
#[track_caller]
fn assert_rich_tree(tree: &Tree) {
    let get = |path: &str| {
        tree.get(Path::new(path))
            .unwrap_or_else(|| panic!("{path} missing from the tree"))
    };
    let absent = |path: &str| {
        assert!(!tree.contains_key(Path::new(path)), "{path} should be gone");
    };
    let xattr = |path: &str, name: &str| {
        get(path)
            .xattrs
            .get(std::ffi::OsStr::new(name))
            .cloned()
            .unwrap_or_else(|| panic!("{path} has no {name}"))
    };
    assert_eq!(get("bin/su").mode, 0o4755);
    assert_eq!(
        (get("usr/bin/wall").mode, get("usr/bin/wall").gid),
        (0o2755, 5)
    );
    assert_eq!(get("tmp").mode, 0o1777);
    let home = get("home/user");
    assert_eq!(
        (home.kind, home.mode, home.uid, home.gid),
        (FileKind::Dir, 0o700, 1000, 1000)
    );
    assert_eq!(get("home/user/notes.txt").uid, 1000);
    assert_eq!(xattr("usr/bin/ping", "user.foo"), b"bar");
    assert_eq!(
        xattr("usr/bin/ping", "security.capability"),
        hoist_testkit::rich::NET_RAW_CAPABILITY
    );
    assert_eq!(xattr("xattrdir", "user.dir"), b"1");
    assert_eq!(get("etc/precise").mtime, Some((1_700_000_000, 123_456_789)));
    assert_eq!(get("bin/sh").link.as_deref(), Some(Path::new("busybox")));
    assert_eq!(
        get("etc/localtime").link.as_deref(),
        Some(Path::new("/usr/share/zoneinfo/UTC"))
    );
    assert_eq!(get("run/initctl").kind, FileKind::Fifo);
    if rustix::process::geteuid().is_root() {
        assert_eq!(get("dev/null").kind, FileKind::Char);
        assert_eq!(get("dev/null").rdev, Some((1, 3)));
    }
    let group = |paths: &[&str]| Some(paths.iter().map(PathBuf::from).collect::<Vec<_>>());
    assert_eq!(get("bin/ls").hardlinks, group(&["bin/busybox", "bin/ls"]));
    assert_eq!(
        get("usr/lib/libfoo.so.1").hardlinks,
        group(&["usr/lib/libfoo.so", "usr/lib/libfoo.so.1"])
    );
    assert_eq!(
        get("etc/new.link").hardlinks,
        group(&["etc/new", "etc/new.link"])
    );
    get(&hoist_testkit::rich::long_name());
    get(&hoist_testkit::rich::deep_path());
    let weird = PathBuf::from(std::ffi::OsStr::from_bytes(b"weird/caf\xe9"));
    assert_eq!(tree.get(&weird).map(|e| e.kind), Some(FileKind::File));
    absent("etc/removed");
    absent("opt/gone");
    get("opt/stay");
    assert_eq!(get("etc/kept").mode, 0o600);
    assert_eq!(get("swap/was_file").kind, FileKind::Dir);
    get("swap/was_file/inner");
    assert_eq!(get("swap/was_dir").kind, FileKind::File);
    absent("swap/was_dir/child");
    absent("var/cache/old1");
    absent("var/cache/sub/old2");
    get("var/cache/new");
    get("var/cache/sub/fresh");
    assert_eq!(get("var/cache/sub").mode, 0o700);
    absent("srv/data/old");
    get("srv/data/new");
}

/// The rich image in `format` with `compression`, pushed to a fresh
/// registry, unpacked with `snapshotter` and compared with umoci.
fn rich_case(format: Format, compression: Compression, snapshotter: &str) {
    let (_registry, image, pushed) = serve(
        Image::single(format, host_platform(), rich_layers(compression, format)),
        "rich",
        "1.0",
    );
    let env = TestEnv::new();
    let expected = check_unpacked(&env, snapshotter, &pushed.reference, &image, with_umoci());
    assert_rich_tree(&expected);
}

/// One test per rich case: each unpacks the rich image with one format,
/// compression and snapshotter and compares the tree with umoci's.
macro_rules! rich_cases {
    ($($name:ident => ($format:expr, $compression:expr, $snapshotter:literal),)*) => {
        $(
            #[test]
            fn $name() {
                rich_case($format, $compression, $snapshotter);
            }
        )*
    };
}

rich_cases! {
    unpack_rich_oci_gzip_overlay_matches_umoci => (Format::Oci, Compression::Gzip, "overlay"),
    unpack_rich_oci_gzip_native_matches_umoci => (Format::Oci, Compression::Gzip, "native"),
    unpack_rich_oci_zstd_overlay_matches_umoci => (Format::Oci, Compression::Zstd, "overlay"),
    unpack_rich_oci_zstd_native_matches_umoci => (Format::Oci, Compression::Zstd, "native"),
    unpack_rich_oci_uncompressed_overlay_matches_umoci => (Format::Oci, Compression::None, "overlay"),
    unpack_rich_oci_uncompressed_native_matches_umoci => (Format::Oci, Compression::None, "native"),
    unpack_rich_docker_gzip_overlay_matches_umoci => (Format::Docker, Compression::Gzip, "overlay"),
    unpack_rich_docker_gzip_native_matches_umoci => (Format::Docker, Compression::Gzip, "native"),
}

/// A two-platform OCI index: the rich image for this host, the simple image
/// for the other platform.
fn two_platform_index() -> (Image, Image, Image) {
    let host = Image::single(
        Format::Oci,
        host_platform(),
        rich_layers(Compression::Gzip, Format::Oci),
    );
    let other = simple_image(Format::Oci, Compression::Gzip, other_platform());
    let index = Image::index(Format::Oci, vec![host.clone(), other.clone()]);
    (index, host, other)
}

#[test]
fn unpack_index_unpacks_only_the_host_platform_and_another_on_request() {
    let registry = Registry::plain();
    let (index, host, other) = two_platform_index();
    let pushed = registry.push(&index, "multi", "1.0");
    let env = TestEnv::new();
    let host_chain = host.chain_ids();
    let other_chain = other.chain_ids();

    for snapshotter in SNAPSHOTTERS {
        let pulled = pull_unpack(&env, snapshotter, &[], &pushed.reference);
        assert_eq!(pulled.tops, [host_chain.last().unwrap().clone()]);
        assert_committed_chains(&snapshots(&env, snapshotter), &[&host_chain]);
    }
    let host_expected = snapshot_tree(&umoci_unpack(&host, &env.path("umoci-host")));
    let exported = rootfs(&env, &pushed.reference, &env.path("rootfs-host"), None);
    assert_trees_equal!(&exported, &host_expected, with_umoci());

    // The other platform is just files: it unpacks on this host too.
    let other_expected = snapshot_tree(&umoci_unpack(&other, &env.path("umoci-other")));
    for snapshotter in SNAPSHOTTERS {
        let pulled = pull_unpack(
            &env,
            snapshotter,
            &["--platform", other_platform()],
            &pushed.reference,
        );
        let other_top = other_chain.last().unwrap();
        assert_eq!(pulled.tops, std::slice::from_ref(other_top));
        assert_committed_chains(&snapshots(&env, snapshotter), &[&host_chain, &other_chain]);
        let target = env.path(&format!("mnt-other-{snapshotter}"));
        let _mounted = MountGuard::mount_snapshot(&env, snapshotter, other_top, &target);
        assert_trees_equal!(
            &snapshot_tree(&target),
            &other_expected,
            with_umoci(),
            "mounted {snapshotter} view of {} vs umoci",
            other_platform()
        );
    }
    let exported = rootfs(
        &env,
        &pushed.reference,
        &env.path("rootfs-other"),
        Some(other_platform()),
    );
    assert_trees_equal!(&exported, &other_expected, with_umoci());
    // The host's rootfs is still the default.
    let exported = rootfs(&env, &pushed.reference, &env.path("rootfs-host-2"), None);
    assert_trees_equal!(&exported, &host_expected, with_umoci());
}

/// The `unpack …` progress lines of a pull's stderr: (layer digest, state),
/// state being `done` or `already unpacked`.
fn unpack_lines(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("unpack "))
        .map(|rest| {
            let rest = rest.trim_start();
            let (digest, state) = rest.split_once(": ").expect("unpack DIGEST: STATE");
            let state = if state.starts_with("done") {
                "done"
            } else {
                state
            };
            (digest.to_string(), state.to_string())
        })
        .collect()
}

/// `(digest, state)` for each of `layers`.
fn expect_lines(layers: &[Layer], state: &str) -> Vec<(String, String)> {
    layers
        .iter()
        .map(|l| (l.digest.clone(), state.to_string()))
        .collect()
}

/// Two images sharing their two bottom layers: `(a, b)`.
fn sharing_images() -> (Image, Image) {
    let layers = rich_layers(Compression::Gzip, Format::Oci);
    let a = Image::single(Format::Oci, host_platform(), layers.clone());
    let own = layer(Compression::Gzip, Format::Oci, |l| {
        l.add_file("etc/b-only", b"b\n", 0o644);
    });
    let b = Image::single(
        Format::Oci,
        host_platform(),
        vec![layers[0].clone(), layers[1].clone(), own],
    );
    (a, b)
}

/// [`sharing_images`] pushed to a plain registry as `a:1.0` and `b:1.0`.
fn serve_sharing_images() -> (Registry, (Image, Pushed), (Image, Pushed)) {
    let registry = Registry::plain();
    let (a, b) = sharing_images();
    let pushed_a = registry.push(&a, "a", "1.0");
    let pushed_b = registry.push(&b, "b", "1.0");
    (registry, (a, pushed_a), (b, pushed_b))
}

#[test]
fn unpack_warm_repull_does_no_work_and_shared_layers_share_snapshots() {
    let (_registry, (a, pushed_a), (b, pushed_b)) = serve_sharing_images();
    let (chain_a, chain_b) = (a.chain_ids(), b.chain_ids());
    assert_eq!(chain_a[..2], chain_b[..2]);
    let env = TestEnv::new();

    for snapshotter in SNAPSHOTTERS {
        let cold = pull_unpack(&env, snapshotter, &[], &pushed_a.reference);
        assert_eq!(
            unpack_lines(&cold.stderr),
            expect_lines(a.layers(), "done"),
            "{}",
            cold.stderr
        );
        let warm = pull_unpack(&env, snapshotter, &[], &pushed_a.reference);
        assert_eq!(warm.tops, cold.tops);
        assert_eq!(
            unpack_lines(&warm.stderr),
            expect_lines(a.layers(), "already unpacked"),
            "{}",
            warm.stderr
        );
        assert_committed_chains(&snapshots(&env, snapshotter), &[&chain_a]);

        // b's bottom two layers are a's: only its own layer is unpacked.
        let pulled = pull_unpack(&env, snapshotter, &[], &pushed_b.reference);
        assert_eq!(pulled.tops, [chain_b[2].clone()]);
        let mut expected = expect_lines(&b.layers()[..2], "already unpacked");
        expected.extend(expect_lines(&b.layers()[2..], "done"));
        assert_eq!(unpack_lines(&pulled.stderr), expected, "{}", pulled.stderr);
        let rows = snapshots(&env, snapshotter);
        assert_eq!(rows.len(), 4, "{rows:#?}");
        assert_committed_chains(&rows, &[&chain_a, &chain_b]);
    }
    // The other snapshotter's pulls did not disturb the first's snapshots.
    assert_committed_chains(&snapshots(&env, "overlay"), &[&chain_a, &chain_b]);
    env.assert_store_verified();
}

/// Asserts no snapshot is active (an unpack left behind) and none is named
/// `extract-…`.
#[track_caller]
pub(crate) fn assert_no_active_snapshots(rows: &[SnapshotRow]) {
    for row in rows {
        assert_ne!(row.kind, "Active", "active snapshot left: {row:?}");
        assert!(!row.key.starts_with("extract-"), "{row:?}");
    }
}

#[test]
fn unpack_wrong_diff_id_fails_and_leaves_no_image_or_snapshot() {
    let registry = Registry::plain();
    let layers = rich_layers(Compression::Gzip, Format::Oci);
    let good = Image::single(Format::Oci, host_platform(), layers.clone());
    let mut lying = layers;
    lying[1].diff_id = sha256_digest(b"not what layer 1 holds");
    let bad = Image::single(Format::Oci, host_platform(), lying.clone());
    let bad_chain = bad.chain_ids();
    let good_chain = good.chain_ids();
    assert_eq!(bad_chain[0], good_chain[0]);
    let pushed = registry.push(&bad, "app", "1.0");

    let env = TestEnv::new();
    for snapshotter in SNAPSHOTTERS {
        let output = pull_command(&env, snapshotter, &[], &pushed.reference)
            .output()
            .expect("run hoist pull");
        let line = failure(&output);
        assert_mentions(
            &line,
            &[
                &lying[1].digest,
                "diffID mismatch",
                &lying[1].diff_id,
                &good.layers()[1].diff_id,
            ],
        );
        assert!(
            !env.image_names().contains(&pushed.reference),
            "{:?}",
            env.image_names()
        );
        let rows = snapshots(&env, snapshotter);
        assert_no_active_snapshots(&rows);
        // At most the verified bottom layer stays committed.
        for row in &rows {
            assert_eq!(row.key, bad_chain[0], "{rows:#?}");
        }
        assert!(!keys(&rows).contains(&bad_chain[1]));
        assert!(!keys(&rows).contains(&bad_chain[2]));
        assert_snapshot_dirs_match_records(&env.root(), snapshotter, &rows);
    }
    env.assert_store_verified();

    // The fixed image under the same tag pulls and unpacks.
    registry.push(&good, "app", "1.0");
    for snapshotter in SNAPSHOTTERS {
        let pulled = pull_unpack(&env, snapshotter, &[], &pushed.reference);
        assert_eq!(pulled.tops, [good_chain[2].clone()]);
        assert_committed_chains(&snapshots(&env, snapshotter), &[&good_chain]);
    }
    assert!(env.image_names().contains(&pushed.reference));
    env.assert_store_verified();
}

/// Asserts that the snapshot directories on disk are exactly one per
/// snapshot record (a failed unpack leaves no directory behind).
#[track_caller]
pub(crate) fn assert_snapshot_dirs_match_records(
    root: &Path,
    snapshotter: &str,
    rows: &[SnapshotRow],
) {
    let dir = root.join("snapshots").join(snapshotter).join("snapshots");
    let dirs: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        dirs.len(),
        rows.len(),
        "snapshot directories {dirs:?} vs records {rows:#?}"
    );
}

/// Starts `hoist pull --snapshotter S REFERENCE` without waiting.
fn spawn_pull(env: &TestEnv, snapshotter: &str, reference: &str) -> Child {
    pull_command(env, snapshotter, &[], reference)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hoist pull")
}

#[test]
fn unpack_concurrent_pulls_sharing_base_layers_unpack_each_layer_once() {
    let registry = Registry::plain();
    // A big base layer, so that the two unpacks overlap (uncompressed: the
    // fixture is built quickly even in a debug build).
    let base = big_layer(Compression::None, Format::Oci, 77, 2 << 20);
    let middle = layer(Compression::Gzip, Format::Oci, |l| {
        l.add_file("etc/shared", b"shared\n", 0o644);
    });
    let own = |name: &str| {
        layer(Compression::Gzip, Format::Oci, |l| {
            l.add_file(&format!("etc/{name}"), name.as_bytes(), 0o644);
        })
    };
    let a = Image::single(
        Format::Oci,
        host_platform(),
        vec![base.clone(), middle.clone(), own("a")],
    );
    let b = Image::single(Format::Oci, host_platform(), vec![base, middle, own("b")]);
    let pushed_a = registry.push(&a, "a", "1.0");
    let pushed_b = registry.push(&b, "b", "1.0");

    for snapshotter in SNAPSHOTTERS {
        let env = TestEnv::new();
        // The store exists before both start (a fresh root is covered by
        // the content concurrency tests).
        env.create_store();
        let children = [
            spawn_pull(&env, snapshotter, &pushed_a.reference),
            spawn_pull(&env, snapshotter, &pushed_b.reference),
        ];
        let outputs: Vec<Unpacked> = children
            .into_iter()
            .map(|child| unpacked(&child.wait_with_output().expect("wait"), snapshotter))
            .collect();
        let (chain_a, chain_b) = (a.chain_ids(), b.chain_ids());
        assert_eq!(outputs[0].tops, [chain_a[2].clone()]);
        assert_eq!(outputs[1].tops, [chain_b[2].clone()]);
        let rows = snapshots(&env, snapshotter);
        assert_committed_chains(&rows, &[&chain_a, &chain_b]);
        assert_snapshot_dirs_match_records(&env.root(), snapshotter, &rows);
        // Each shared layer was unpacked by exactly one of the two.
        let all: Vec<(String, String)> = outputs
            .iter()
            .flat_map(|o| unpack_lines(&o.stderr))
            .collect();
        for shared in &a.layers()[..2] {
            let done = all
                .iter()
                .filter(|(d, s)| *d == shared.digest && s == "done")
                .count();
            assert_eq!(done, 1, "{} unpacked {done} times: {all:?}", shared.digest);
        }
        // And both trees are whole: each view is the image's flattened rootfs.
        for (pushed, top) in [(&pushed_a, &chain_a[2]), (&pushed_b, &chain_b[2])] {
            let name = &top[7..19];
            let exported = rootfs(
                &env,
                &pushed.reference,
                &env.path(&format!("rootfs-{name}")),
                None,
            );
            let target = env.path(&format!("mnt-{name}"));
            let _mounted = MountGuard::mount_snapshot(&env, snapshotter, top, &target);
            assert_trees_equal!(&snapshot_tree(&target), &exported, with_umoci());
        }
        env.assert_store_verified();
    }
}

/// The `removed snapshot KEY` lines of `hoist images rm`.
fn removed_snapshots(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("removed snapshot "))
        .map(str::to_string)
        .collect()
}

#[test]
fn unpack_images_rm_removes_only_snapshots_no_image_needs() {
    let (_registry, (a, pushed_a), (b, pushed_b)) = serve_sharing_images();
    let (chain_a, chain_b) = (a.chain_ids(), b.chain_ids());
    let env = TestEnv::new();
    for snapshotter in SNAPSHOTTERS {
        pull_unpack(&env, snapshotter, &[], &pushed_a.reference);
        pull_unpack(&env, snapshotter, &[], &pushed_b.reference);
        assert_committed_chains(&snapshots(&env, snapshotter), &[&chain_a, &chain_b]);
    }

    let stdout = success(&env.run(&["images", "rm", &pushed_a.reference]));
    assert_eq!(stdout.lines().next(), Some(pushed_a.reference.as_str()));
    // a's top goes, from both snapshotters; the shared ones stay.
    assert_eq!(
        removed_snapshots(&stdout),
        BTreeSet::from([chain_a[2].clone()]),
        "{stdout}"
    );
    assert_eq!(stdout.matches("removed snapshot").count(), 2, "{stdout}");
    for snapshotter in SNAPSHOTTERS {
        let rows = snapshots(&env, snapshotter);
        assert_committed_chains(&rows, &[&chain_b]);
        assert_snapshot_dirs_match_records(&env.root(), snapshotter, &rows);
    }
    assert_eq!(env.image_names(), std::slice::from_ref(&pushed_b.reference));

    let stdout = success(&env.run(&["images", "rm", &pushed_b.reference]));
    assert_eq!(
        removed_snapshots(&stdout),
        chain_b.iter().cloned().collect(),
        "{stdout}"
    );
    for snapshotter in SNAPSHOTTERS {
        let rows = snapshots(&env, snapshotter);
        assert!(rows.is_empty(), "{rows:#?}");
        assert_snapshot_dirs_match_records(&env.root(), snapshotter, &rows);
    }
    assert!(env.image_names().is_empty());
}

#[test]
fn unpack_images_rm_keeps_snapshots_under_a_view() {
    let registry = Registry::plain();
    let (a, _) = sharing_images();
    let pushed = registry.push(&a, "a", "1.0");
    let chain = a.chain_ids();
    let env = TestEnv::new();
    for snapshotter in SNAPSHOTTERS {
        pull_unpack(&env, snapshotter, &[], &pushed.reference);
        // `snapshots mounts` of a committed snapshot creates `view:<key>`.
        let target = env.path(&format!("mnt-{snapshotter}"));
        drop(MountGuard::mount_snapshot(
            &env,
            snapshotter,
            &chain[2],
            &target,
        ));
    }
    let stdout = success(&env.run(&["images", "rm", &pushed.reference]));
    assert!(removed_snapshots(&stdout).is_empty(), "{stdout}");
    for snapshotter in SNAPSHOTTERS {
        let rows = snapshots(&env, snapshotter);
        let view = format!("view:{}", chain[2]);
        let listed: BTreeMap<&str, (&Option<String>, &str)> = rows
            .iter()
            .map(|r| (r.key.as_str(), (&r.parent, r.kind.as_str())))
            .collect();
        assert_eq!(
            listed.get(view.as_str()),
            Some(&(&Some(chain[2].clone()), "View")),
            "{rows:#?}"
        );
        for id in &chain {
            assert_eq!(listed.get(id.as_str()).map(|(_, k)| *k), Some("Committed"));
        }
        assert_eq!(rows.len(), 4, "{rows:#?}");
    }
}

/// A two-layer image pushed to a fresh registry, unpacked with
/// `snapshotter` and compared with umoci.
fn two_layer_case(
    snapshotter: &str,
    compare: Compare,
    base: impl FnOnce(&mut LayerBuilder),
    top: impl FnOnce(&mut LayerBuilder),
) {
    let registry = Registry::plain();
    let layers = vec![
        layer(Compression::Gzip, Format::Oci, base),
        layer(Compression::Gzip, Format::Oci, top),
    ];
    let image = Image::single(Format::Oci, host_platform(), layers);
    let pushed = registry.push(&image, "case", "1.0");
    let env = TestEnv::new();
    check_unpacked(&env, snapshotter, &pushed.reference, &image, compare);
}

/// usrmerge: the base has `lib -> usr/lib`; the next layer writes
/// `lib/libfoo.so`, which lands in `usr/lib/` (umoci, docker on a full tree,
/// and the archive crate's own docs: "a layer writing `lib/x` over an
/// earlier `lib -> usr/lib` writes `usr/lib/x`").
fn write_through_lower_symlink(snapshotter: &str) {
    two_layer_case(
        snapshotter,
        with_umoci(),
        |l| {
            l.add_dir("usr", 0o755)
                .add_dir("usr/lib", 0o755)
                .add_file("usr/lib/ld.so", b"ld\n", 0o755)
                .add_symlink("lib", "usr/lib");
        },
        |l| {
            l.add_file("lib/libfoo.so", b"foo\n", 0o644);
        },
    );
}

#[test]
fn unpack_write_through_lower_layer_symlink_native_matches_umoci() {
    write_through_lower_symlink("native");
}

#[test]
fn unpack_write_through_lower_layer_symlink_overlay_matches_umoci() {
    write_through_lower_symlink("overlay");
}

/// A layer deletes a lower directory and makes a new one of the same name:
/// only the new content may show.
fn whiteout_then_recreate_dir(snapshotter: &str) {
    two_layer_case(
        snapshotter,
        with_umoci(),
        |l| {
            l.add_dir("d", 0o755)
                .add_file("d/old", b"old\n", 0o644)
                .add_dir("d/sub", 0o755)
                .add_file("d/sub/old2", b"old2\n", 0o644);
        },
        |l| {
            l.add_whiteout("d")
                .add_dir("d", 0o750)
                .add_file("d/new", b"new\n", 0o644);
        },
    );
}

#[test]
fn unpack_whiteout_then_recreate_dir_native_matches_umoci() {
    whiteout_then_recreate_dir("native");
}

#[test]
fn unpack_whiteout_then_recreate_dir_overlay_matches_umoci() {
    whiteout_then_recreate_dir("overlay");
}

/// A hardlink (`c`) to a lower-layer file (`a`) that has another name (`b`)
/// there. umoci links all three. Overlay cannot link across layers: `a` is
/// copied up and linked to `c`, so in the merged view `b` is a separate
/// inode with the same content (containerd's overlay does the same).
fn hardlink_to_lower_linked_file(snapshotter: &str) {
    let compare = match snapshotter {
        "overlay" => Compare {
            hardlinks: false,
            ..with_umoci()
        },
        _ => with_umoci(),
    };
    two_layer_case(
        snapshotter,
        compare,
        |l| {
            l.add_file("a", b"a\n", 0o644).add_hardlink("b", "a");
        },
        |l| {
            l.add_hardlink("c", "a");
        },
    );
}

#[test]
fn unpack_hardlink_to_lower_file_with_other_names_native_matches_umoci() {
    hardlink_to_lower_linked_file("native");
}

#[test]
fn unpack_hardlink_to_lower_file_with_other_names_overlay_matches_umoci_but_for_links() {
    hardlink_to_lower_linked_file("overlay");
}

/// A 128-layer image pulled into overlay mounts: the view of its top
/// snapshot has more lower layers than one page of `lowerdir=` can name by
/// absolute path, so `hoist snapshots mounts` prints a command that mounts
/// them relative to the snapshots directory. Every layer's file shows, and
/// the file every layer writes shows the top layer's content.
#[test]
fn unpack_128_layers_overlay_mounts_privileged() {
    crate::util::require_root();
    let layers: Vec<Layer> = (0..128)
        .map(|i| {
            layer(Compression::None, Format::Oci, |b| {
                b.add_file(&format!("layer-{i:03}"), i.to_string().as_bytes(), 0o644);
                b.add_file("every", i.to_string().as_bytes(), 0o644);
            })
        })
        .collect();
    let image = Image::single(Format::Oci, host_platform(), layers);
    let registry = Registry::plain();
    let pushed = registry.push(&image, "many-layers", "1.0");
    let env = TestEnv::new();

    let pulled = pull_unpack(&env, "overlay", &[], &pushed.reference);
    assert_eq!(
        pulled.tops,
        [image.chain_ids().last().unwrap().clone()],
        "{pulled:?}"
    );
    let target = env.path("mnt");
    let _mounted = MountGuard::mount_snapshot(&env, "overlay", &pulled.tops[0], &target);
    for i in 0..128 {
        let file = target.join(format!("layer-{i:03}"));
        let body =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(body, i.to_string(), "{}", file.display());
    }
    assert_eq!(
        std::fs::read_to_string(target.join("every")).unwrap(),
        "127"
    );
}
