//! The conformance suite (like containerd's `core/snapshots/testsuite`): every
//! case in `suite` runs against both snapshotters, plus a few tests specific
//! to one of them.

mod native_copy;
mod suite;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;

use hoist_metadata::Db;
use hoist_snapshot::{Error, Labels};
use suite::Ctx;

/// Generates one `#[test]` per case and snapshotter.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        // Overlay needs root and a kernel that mounts overlayfs: these fail
        // without them rather than pass unchecked, and `cargo nextest run
        // --profile unprivileged` skips them by name.
        mod overlay_privileged {
            $(
                #[test]
                fn $case() {
                    let cx = crate::suite::Ctx::new("overlay").expect(
                        "overlayfs cannot be mounted here: run as root on a filesystem overlay \
                         supports, or run `cargo nextest run --profile unprivileged`",
                    );
                    crate::suite::$case(&cx);
                }
            )*
        }
        mod native {
            $(
                #[test]
                fn $case() {
                    let cx = crate::suite::Ctx::new("native").expect("native always works");
                    crate::suite::$case(&cx);
                }
            )*
        }
    };
}

conformance!(
    prepare_commit_stat_list,
    mount_shapes,
    stacked_layers_and_view,
    remove_refuses_parent_with_children,
    commit_and_prepare_errors,
    usage_counts_bytes,
    labels_merge,
    reopen_sees_same_state,
    interrupted_commit_is_finished_on_open,
    lock_serializes_threads,
    rebase_commits_onto_a_parent,
);

#[test]
fn open_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&tmp.path().join("metadata.db")).unwrap());
    let native =
        hoist_snapshot::open("native", &tmp.path().join("snapshots/native"), db.clone()).unwrap();
    assert_eq!(native.name(), "native");
    let bogus = hoist_snapshot::open("zfs", &tmp.path().join("snapshots/zfs"), db.clone());
    assert!(
        matches!(bogus, Err(Error::Unsupported { .. })),
        "{:?}",
        bogus.err()
    );

    let probe_root = tmp.path().join("snapshots");
    let name = hoist_snapshot::default_name(&probe_root);
    assert_eq!(
        name == "overlay",
        hoist_snapshot::Overlay::supported(&probe_root)
    );
    if rustix::process::geteuid().is_root() {
        // This environment (root, ext4) supports overlayfs; elsewhere either answer is fine.
        assert_eq!(name, "overlay");
    }
    let chosen = hoist_snapshot::open(name, &tmp.path().join("snapshots").join(name), db).unwrap();
    assert_eq!(chosen.name(), name);
    // The probe leaves nothing behind.
    let leftovers: Vec<_> = std::fs::read_dir(&probe_root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".overlay-probe-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// overlayfs mount options cannot carry a path with `,` or `:`, so such a
/// root is refused for overlay (clearly) and the default falls back to
/// native, which works there.
#[test]
fn overlay_refuses_a_root_whose_path_breaks_mount_options() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&tmp.path().join("metadata.db")).unwrap());
    for odd in ["with,comma", "with:colon"] {
        let root = tmp.path().join(odd);
        assert!(!hoist_snapshot::Overlay::supported(&root));
        assert_eq!(hoist_snapshot::default_name(&root), "native");
        let refused = hoist_snapshot::open("overlay", &root.join("overlay"), db.clone());
        match refused {
            Err(Error::Unsupported { detail }) => assert!(detail.contains("','"), "{detail}"),
            other => panic!("{odd}: {:?}", other.err()),
        }
        let native = hoist_snapshot::open("native", &root.join("native"), db.clone()).unwrap();
        native.prepare(odd, None, Default::default()).unwrap();

        // An overlay root made earlier (elsewhere, where it could mount)
        // stays manageable: it opens, lists and removes without mounting.
        let earlier = root.join("earlier");
        std::fs::create_dir_all(earlier.join("snapshots")).unwrap();
        let managed = hoist_snapshot::open("overlay", &earlier, db.clone()).unwrap();
        assert!(managed.list().unwrap().is_empty());
    }
}

/// Native prepare copies the parent tree with everything: modes (setuid
/// included), symlinks, hardlinks, xattrs, times.
#[test]
fn native_copy_preserves_metadata() {
    let cx = Ctx::new("native").unwrap();
    let s = cx.s.as_ref();
    s.prepare("base", None, Labels::new()).unwrap();
    let dir = s.apply_target("base").unwrap().dir;
    std::fs::create_dir(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/su"), b"setuid").unwrap();
    std::fs::set_permissions(dir.join("bin/su"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(dir.join("bin/su"), dir.join("bin/su-link")).unwrap();
    std::os::unix::fs::symlink("su", dir.join("bin/sym")).unwrap();
    rustix::fs::setxattr(
        dir.join("bin/su"),
        "user.hoist",
        b"yes",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mtime = std::fs::symlink_metadata(dir.join("bin/su"))
        .unwrap()
        .mtime();
    s.commit("base-c", "base", Labels::new()).unwrap();

    s.prepare("child", Some("base-c"), Labels::new()).unwrap();
    let child = s.fs_dir("child").unwrap();
    let su = std::fs::symlink_metadata(child.join("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime(), mtime);
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        su.ino(),
        std::fs::symlink_metadata(child.join("bin/su-link"))
            .unwrap()
            .ino()
    );
    assert_ne!(
        su.ino(),
        std::fs::symlink_metadata(dir.join("bin/su")).unwrap().ino(),
        "a copy, not the parent's inode"
    );
    assert_eq!(
        std::fs::read_link(child.join("bin/sym")).unwrap().to_str(),
        Some("su")
    );
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(child.join("bin/su"), "user.hoist", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"yes");
    // Writing the child leaves the parent alone.
    std::fs::write(child.join("bin/su"), b"changed").unwrap();
    assert_eq!(std::fs::read(dir.join("bin/su")).unwrap(), b"setuid");
}

/// An overlay of 128 layers: listing every layer's absolute path in
/// `lowerdir=` passes `mount(2)`'s one page of options, so the mount names
/// them relative to the snapshots directory, both when hoist mounts and in
/// the command it prints. Every layer's own file shows, and a file several
/// layers write shows the highest one's content.
#[test]
fn overlay_view_of_128_layers_mounts_privileged() {
    let cx = Ctx::new("overlay").expect(
        "overlayfs cannot be mounted here: run as root on a filesystem overlay supports, \
         or run `cargo nextest run --profile unprivileged`",
    );
    let s = cx.s.as_ref();
    let mut parent: Option<String> = None;
    for i in 0..128 {
        let key = format!("extract-{i}");
        s.prepare(&key, parent.as_deref(), Labels::new()).unwrap();
        let dir = s.apply_target(&key).unwrap().dir;
        std::fs::write(dir.join(format!("layer-{i:03}")), i.to_string()).unwrap();
        std::fs::write(dir.join("every"), i.to_string()).unwrap();
        if i == 5 || i == 70 {
            std::fs::write(dir.join("some"), i.to_string()).unwrap();
        }
        let name = format!("layer-{i}");
        s.commit(&name, &key, Labels::new()).unwrap();
        parent = Some(name);
    }
    let mounts = s.view("view", parent.as_deref(), Labels::new()).unwrap();
    let options = mounts[0].options.join(",");
    assert!(
        options.len() > 4096,
        "the case must not fit in a page: {} bytes",
        options.len()
    );

    let check = |target: &std::path::Path, how: &str| {
        for i in 0..128 {
            let file = target.join(format!("layer-{i:03}"));
            let body = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{how}: {}: {e}", file.display()));
            assert_eq!(body, i.to_string(), "{how}: {}", file.display());
        }
        assert_eq!(
            std::fs::read_to_string(target.join("every")).unwrap(),
            "127",
            "{how}"
        );
        assert_eq!(
            std::fs::read_to_string(target.join("some")).unwrap(),
            "70",
            "{how}"
        );
        assert_eq!(std::fs::read_dir(target).unwrap().count(), 130, "{how}");
    };

    let target = cx.mountpoint("by-hoist");
    {
        let _mounted = suite::mount_all(&mounts, &target);
        check(&target, "Mount::mount");
    }
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "unmounted");

    let target = cx.mountpoint("by-command");
    let command = mounts[0].to_command(&target);
    assert!(command.starts_with("cd "), "{command}");
    hoist_testkit::run_ok(
        std::process::Command::new("sh").arg("-c").arg(&command),
        &command,
    );
    let _mounted = suite::Mounted(target.clone());
    check(&target, &command);
}
