//! Every entry type survives a tar → apply → file system round trip.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use hoist_archive::ApplyOptions;

use crate::support::{Layer, MTIME, apply, apply_with, is_root, os, temp_dir_with, xattr};

/// `security.capability` v2 granting cap_net_bind_service (bit 10),
/// effective: what `setcap cap_net_bind_service+ep` writes.
const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn every_entry_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut layer = Layer::new();
    let mut h = Layer::header(tar::EntryType::Directory, 0o1777);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_500_000_000);
    layer.raw(h, b"tmp/", None, &[], &[]);
    let mut h = Layer::header(tar::EntryType::Regular, 0o4755);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_400_000_000);
    layer.raw(
        h,
        b"usr/bin/ping",
        None,
        &[
            ("SCHILY.xattr.user.foo", b"bar"),
            ("SCHILY.xattr.security.capability", &CAP_NET_BIND_SERVICE),
        ],
        b"#!/bin/true\n",
    );
    layer.file("etc/shadow", b"secret", 0o2640);
    layer.symlink("usr/bin/sh", "/bin/busybox");
    layer.symlink("rel", "../../../../outside/target");
    layer.hardlink("usr/bin/ping6", "usr/bin/ping");
    layer.raw(
        Layer::header(tar::EntryType::Fifo, 0o620),
        b"run/fifo",
        None,
        &[],
        &[],
    );
    let mut h = Layer::header(tar::EntryType::Char, 0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    layer.raw(h, b"dev/null", None, &[], &[]);
    let mut h = Layer::header(tar::EntryType::Block, 0o660);
    h.set_device_major(7).unwrap();
    h.set_device_minor(0).unwrap();
    layer.raw(h, b"dev/loop0", None, &[], &[]);
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    layer.file(&long, b"long", 0o644);
    let long_target = format!("{}/target", "t".repeat(110));
    layer.symlink("longlink", &long_target);
    layer.file("bytes/\u{e9}t\u{e9}", b"utf8", 0o644);
    layer.raw(
        Layer::header(tar::EntryType::Regular, 0o600),
        b"bytes/\xff\xfename",
        None,
        &[],
        b"latin",
    );
    layer.file_pax(b"precise", b"", &[("mtime", b"1600000000.25")]);
    let tar = layer.finish();
    let applied = apply(root, &tar).unwrap();
    assert_eq!(applied.entries, 14);

    // Directory: sticky bit, owner, mtime applied last.
    let md = std::fs::symlink_metadata(root.join("tmp")).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(md.mtime(), 1_500_000_000);
    // Regular file: contents, setuid (chmod after chown), mtime.
    let ping = root.join("usr/bin/ping");
    let md = std::fs::symlink_metadata(&ping).unwrap();
    assert_eq!(std::fs::read(&ping).unwrap(), b"#!/bin/true\n");
    assert_eq!(md.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(md.mtime(), 1_400_000_000);
    assert_eq!(
        std::fs::symlink_metadata(root.join("etc/shadow"))
            .unwrap()
            .mode()
            & 0o7777,
        0o2640
    );
    // Parents missing from the tar are created 0755.
    let md = std::fs::symlink_metadata(root.join("usr/bin")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o755);
    // Symlinks: target verbatim, even one pointing far outside.
    assert_eq!(
        std::fs::read_link(root.join("usr/bin/sh")).unwrap(),
        std::path::Path::new("/bin/busybox")
    );
    assert_eq!(
        std::fs::read_link(root.join("rel")).unwrap(),
        std::path::Path::new("../../../../outside/target")
    );
    assert_eq!(
        std::fs::symlink_metadata(root.join("rel")).unwrap().mtime(),
        MTIME as i64
    );
    // Hardlink shares the inode.
    let a = std::fs::symlink_metadata(&ping).unwrap();
    let b = std::fs::symlink_metadata(root.join("usr/bin/ping6")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    // Fifo with its exact mode (not cut by the umask).
    let md = std::fs::symlink_metadata(root.join("run/fifo")).unwrap();
    assert!(md.file_type().is_fifo());
    assert_eq!(md.permissions().mode() & 0o7777, 0o620);
    // Long names via PAX path and linkpath.
    assert_eq!(std::fs::read(root.join(&long)).unwrap(), b"long");
    assert_eq!(
        std::fs::read_link(root.join("longlink")).unwrap(),
        std::path::Path::new(&long_target)
    );
    // Non-UTF-8 and UTF-8 names.
    assert_eq!(
        std::fs::read(root.join("bytes").join(os(b"\xff\xfename"))).unwrap(),
        b"latin"
    );
    assert_eq!(
        std::fs::read(root.join("bytes/\u{e9}t\u{e9}")).unwrap(),
        b"utf8"
    );
    // PAX sub-second mtime.
    let md = std::fs::symlink_metadata(root.join("precise")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_600_000_000, 250_000_000));
    // xattrs.
    assert_eq!(xattr(&ping, "user.foo").as_deref(), Some(&b"bar"[..]));

    if is_root() {
        assert!(applied.skipped.is_empty(), "{:?}", applied.skipped);
        let md = std::fs::symlink_metadata(root.join("tmp")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        let md = std::fs::symlink_metadata(&ping).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        // security.capability survives because it is set after the chown.
        assert_eq!(
            xattr(&ping, "security.capability").as_deref(),
            Some(&CAP_NET_BIND_SERVICE[..])
        );
        let md = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(md.permissions().mode() & 0o7777, 0o666);
        let md = std::fs::symlink_metadata(root.join("dev/loop0")).unwrap();
        assert!(md.file_type().is_block_device());
        assert_eq!(md.rdev(), rustix::fs::makedev(7, 0));
    } else {
        assert_eq!(
            applied.skipped,
            vec!["dev/null".to_string(), "dev/loop0".to_string()]
        );
    }
}

#[test]
fn gnu_long_names_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let name = format!("{}/file", "n".repeat(200));
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    builder.append_data(&mut h, &name, &b"abc"[..]).unwrap();
    let target = format!("{}/t", "l".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    builder.append_link(&mut h, "s", &target).unwrap();
    let tar = builder.into_inner().unwrap();
    let applied = apply(dir.path(), &tar).unwrap();
    assert_eq!(applied.entries, 2);
    assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), b"abc");
    assert_eq!(
        std::fs::read_link(dir.path().join("s")).unwrap(),
        std::path::Path::new(&target)
    );
}

#[test]
fn replacing_entries_of_another_type() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut one = Layer::new();
    one.dir("x", 0o755)
        .file("x/a/deep", b"1", 0o644)
        .file("y", b"file", 0o644);
    one.file("target", b"original", 0o644)
        .hardlink("alias", "target");
    one.dir("keep", 0o700).file("keep/old", b"old", 0o644);
    apply(root, &one.finish()).unwrap();

    let mut two = Layer::new();
    two.file("x", b"now a file", 0o600); // file replaces a directory tree
    two.dir("y", 0o750); // directory replaces a file
    two.file("alias", b"rewritten", 0o644); // never written through the hardlink
    two.dir("keep", 0o711); // directory over directory keeps contents
    two.symlink("y/s", "nowhere")
        .file("y/s", b"over a symlink", 0o644);
    apply(root, &two.finish()).unwrap();

    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"now a file");
    assert!(std::fs::symlink_metadata(root.join("y")).unwrap().is_dir());
    assert_eq!(
        std::fs::symlink_metadata(root.join("y"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    assert_eq!(std::fs::read(root.join("target")).unwrap(), b"original");
    assert_eq!(std::fs::read(root.join("alias")).unwrap(), b"rewritten");
    assert_eq!(
        std::fs::symlink_metadata(root.join("target"))
            .unwrap()
            .nlink(),
        1
    );
    assert_eq!(std::fs::read(root.join("keep/old")).unwrap(), b"old");
    assert_eq!(
        std::fs::symlink_metadata(root.join("keep"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o711
    );
    assert!(
        std::fs::symlink_metadata(root.join("y/s"))
            .unwrap()
            .is_file()
    );
}

#[test]
fn root_entry_updates_root_metadata_only() {
    let (_dir, root) = temp_dir_with("root");
    let mut layer = Layer::new();
    let mut h = Layer::header(tar::EntryType::Directory, 0o750);
    h.set_mtime(1_234_567_890);
    layer.raw(h, b"./", None, &[], &[]);
    layer.file("a", b"a", 0o644);
    apply(&root, &layer.finish()).unwrap();
    let md = std::fs::symlink_metadata(&root).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.permissions().mode() & 0o7777, 0o750);
    assert_eq!(md.mtime(), 1_234_567_890);
}

#[test]
fn symlinked_parent_is_followed_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut one = Layer::new();
    one.dir("usr/lib", 0o755).symlink("lib", "/usr/lib");
    apply(root, &one.finish()).unwrap();
    let mut two = Layer::new();
    two.file("lib/libc.so", b"elf", 0o755);
    apply(root, &two.finish()).unwrap();
    assert_eq!(std::fs::read(root.join("usr/lib/libc.so")).unwrap(), b"elf");
}

#[test]
fn owners_are_left_alone_without_same_owner() {
    let dir = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    let mut h = Layer::header(tar::EntryType::Regular, 0o644);
    h.set_uid(4242);
    h.set_gid(4343);
    layer.raw(h, b"f", None, &[], b"x");
    let options = ApplyOptions {
        same_owner: false,
        ..ApplyOptions::default()
    };
    apply_with(dir.path(), &layer.finish(), &options).unwrap();
    let md = std::fs::symlink_metadata(dir.path().join("f")).unwrap();
    assert_eq!(md.uid(), rustix::process::geteuid().as_raw());
}

#[test]
fn gnu_sparse_files_round_trip() {
    use std::io::{Seek, SeekFrom, Write};
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("sparse");
    let mut f = std::fs::File::create(&path).unwrap();
    f.set_len(4 << 20).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(b"data in the middle").unwrap();
    f.seek(SeekFrom::Start((4 << 20) - 4)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_path_with_name(&path, "sparse").unwrap();
    let tar = builder.into_inner().unwrap();
    // The builder wrote a GNU sparse entry (the file system supports holes).
    assert_eq!(tar[156], b'S');
    assert!(tar.len() < 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), &tar).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("sparse")).unwrap(),
        std::fs::read(&path).unwrap()
    );
}
