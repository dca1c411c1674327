//! A three-layer image with every kind of tar entry an unpacker must handle,
//! for comparing unpackers with each other (see [`crate::umoci`] and
//! [`crate::tree`]).
//!
//! Layer 1 (the base):
//! - directories with modes 0755, 0750, 0700 (owned 1000:1000) and the sticky
//!   `tmp/` (01777); a directory carrying an xattr;
//! - files with modes 0644, 0600, 0755, setuid `bin/su` (04755), setgid
//!   `usr/bin/wall` (02755, group 5), files owned by 1000:1000;
//! - `usr/bin/ping` with PAX xattrs `user.foo` and `security.capability`
//!   (cap_net_raw, effective), `etc/precise` with a nanosecond PAX mtime;
//! - symlinks, relative (`bin/sh -> busybox`, `usr/lib/libfoo.link ->
//!   ../../usr/lib/libfoo.so`) and absolute (`etc/localtime ->
//!   /usr/share/zoneinfo/UTC`), and one whose target is longer than 100 bytes;
//! - a hardlink within the layer (`bin/ls` → `bin/busybox`);
//! - a fifo `run/initctl`, and as root a char device `dev/null` (1:3);
//! - a 150-byte file name, a path over 255 bytes through deep directories,
//!   and the non-UTF-8 name `weird/caf\xe9`;
//! - what the upper layers delete or replace: `etc/removed`, the tree
//!   `opt/gone/`, `swap/was_file`, the tree `swap/was_dir/`, and the
//!   contents of `var/cache/` and `srv/data/`.
//!
//! Layer 2: whiteouts of the file `etc/removed` and the directory `opt/gone`;
//! a hardlink `usr/lib/libfoo.so.1` to layer 1's `usr/lib/libfoo.so`; the
//! swap (`swap/was_file` becomes a directory with a file in it, `swap/was_dir`
//! becomes a file); `etc/kept` rewritten with another mode; a new file and a
//! hardlink to it. Parent directories are mostly left out of the tar, as
//! unpackers must make them from the lower layers.
//!
//! Layer 3: an opaque whiteout of `var/cache/` written before the layer's new
//! content there (docker's order), and one of `srv/data/` written after it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;

use crate::fixture::{Compression, FIXED_MTIME, Format, Image, Layer, LayerBuilder};

/// `security.capability` granting cap_net_raw, effective (VFS_CAP_REVISION_2).
pub const NET_RAW_CAPABILITY: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // magic_etc: revision 2 | effective
    0x00, 0x20, 0x00, 0x00, // permitted[0]: 1 << 13 (CAP_NET_RAW)
    0x00, 0x00, 0x00, 0x00, // inheritable[0]
    0x00, 0x00, 0x00, 0x00, // permitted[1]
    0x00, 0x00, 0x00, 0x00, // inheritable[1]
];

/// A 150-byte file name (beyond ustar's 100-byte name field).
pub fn long_name() -> String {
    format!("long/{}", "n".repeat(150))
}

/// A path of more than 255 bytes through six 50-byte directories.
pub fn deep_path() -> String {
    let dirs: Vec<String> = (0..6).map(|i| format!("{i}{}", "d".repeat(49))).collect();
    format!("deep/{}/file", dirs.join("/"))
}

/// The PAX extended header records `key=value`, each as
/// `"<length> <key>=<value>\n"` (the length counting itself).
pub fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let base = key.len() + value.len() + 3;
        let mut len = base + 1;
        while len != base + len.to_string().len() {
            len = base + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// Appends a PAX extended header (`x`) holding `records`; it applies to the
/// next entry.
pub fn add_pax(builder: &mut LayerBuilder, records: &[(&str, &[u8])]) {
    let data = pax_records(records);
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header
        .set_path("PaxHeaders.0/entry")
        .expect("pax header name");
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(FIXED_MTIME);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.add_entry(&header, &data);
}

/// A GNU header for `path` (at most 100 bytes, any bytes) of `kind`.
fn raw_header(path: &[u8], kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = crate::fixture::header(kind, mode, size);
    header
        .set_path(OsStr::from_bytes(path))
        .expect("short header path");
    header
}

/// The three rich layers (see the module docs), compressed and typed for
/// `format`. The tars, and so the diffIDs, are the same for every
/// compression and format. The char device is included only when running
/// as root (an unprivileged unpacker skips it).
pub fn rich_layers(compression: Compression, format: Format) -> Vec<Layer> {
    rich_tars()
        .iter()
        .map(|tar| Layer::from_tar(compression, format, tar))
        .collect()
}

/// The uncompressed tars of [`rich_layers`].
pub fn rich_tars() -> Vec<Vec<u8>> {
    vec![layer1(), layer2(), layer3()]
}

/// A single-platform image of [`rich_layers`].
pub fn rich_image(format: Format, compression: Compression, platform: &str) -> Image {
    Image::single(format, platform, rich_layers(compression, format))
}

fn layer1() -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.add_dir("bin", 0o755)
        .add_file("bin/busybox", &vec![b'B'; 20_000], 0o755)
        .add_hardlink("bin/ls", "bin/busybox")
        .add_symlink("bin/sh", "busybox")
        .add_file("bin/su", b"#!su\n", 0o4755)
        .add_dir("dev", 0o755)
        .add_dir("etc", 0o755)
        .add_file("etc/hostname", b"rich\n", 0o644)
        .add_file("etc/kept", b"kept v1\n", 0o644)
        .add_file("etc/removed", b"removed by layer 2\n", 0o644)
        .add_file("etc/shadow", b"root:*:19000::::::\n", 0o600)
        .add_symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .add_dir("home", 0o755);
    // A directory owned by 1000:1000 with mode 0700: add_dir has no owner.
    let mut header = raw_header(b"home/user/", tar::EntryType::Directory, 0o700, 0);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_cksum();
    l.add_entry(&header, &[]);
    l.add_file_owned("home/user/notes.txt", b"notes\n", 0o600, 1000, 1000)
        .add_file_owned("home/user/script.sh", b"#!/bin/sh\n", 0o750, 1000, 1000)
        .add_dir("tmp", 0o1777)
        .add_dir("usr", 0o755)
        .add_dir("usr/bin", 0o755);
    let mut wall = raw_header(b"usr/bin/wall", tar::EntryType::Regular, 0o2755, 5);
    wall.set_gid(5);
    wall.set_cksum();
    l.add_entry(&wall, b"wall\n");
    add_pax(
        &mut l,
        &[
            ("SCHILY.xattr.user.foo", b"bar"),
            ("SCHILY.xattr.security.capability", &NET_RAW_CAPABILITY),
        ],
    );
    l.add_file("usr/bin/ping", b"ping\n", 0o755);
    add_pax(&mut l, &[("mtime", b"1700000000.123456789")]);
    l.add_file("etc/precise", b"nanoseconds\n", 0o644);
    add_pax(&mut l, &[("SCHILY.xattr.user.dir", b"1")]);
    l.add_dir("xattrdir", 0o755)
        .add_dir("usr/lib", 0o755)
        .add_file("usr/lib/libfoo.so", b"libfoo\n", 0o644)
        .add_symlink("usr/lib/libfoo.link", "../../usr/lib/libfoo.so")
        .add_dir("run", 0o755)
        .add_fifo("run/initctl", 0o600);
    if rustix::process::geteuid().is_root() {
        let mut null = raw_header(b"dev/null", tar::EntryType::Char, 0o666, 0);
        null.set_device_major(1).expect("major");
        null.set_device_minor(3).expect("minor");
        null.set_cksum();
        l.add_entry(&null, &[]);
    }
    l.add_dir("long", 0o755)
        .add_file(&long_name(), b"a long name\n", 0o644)
        .add_symlink(
            "long/link",
            &format!("../{}/{}", "t".repeat(60), "u".repeat(60)),
        )
        .add_file(&deep_path(), b"deep\n", 0o644)
        .add_dir("weird", 0o755);
    let weird = raw_header(b"weird/caf\xe9", tar::EntryType::Regular, 0o644, 6);
    let mut weird = weird;
    weird.set_cksum();
    l.add_entry(&weird, b"latin1");
    l.add_dir("opt", 0o755)
        .add_dir("opt/gone", 0o755)
        .add_dir("opt/gone/inner", 0o750)
        .add_file("opt/gone/inner/file", b"gone\n", 0o644)
        .add_file("opt/stay", b"stay\n", 0o644)
        .add_dir("swap", 0o755)
        .add_file("swap/was_file", b"a file in layer 1\n", 0o644)
        .add_dir("swap/was_dir", 0o755)
        .add_file("swap/was_dir/child", b"child\n", 0o644)
        .add_dir("var", 0o755)
        .add_dir("var/cache", 0o755)
        .add_file("var/cache/old1", b"old1\n", 0o644)
        .add_dir("var/cache/sub", 0o755)
        .add_file("var/cache/sub/old2", b"old2\n", 0o644)
        .add_dir("srv", 0o755)
        .add_dir("srv/data", 0o755)
        .add_file("srv/data/old", b"old\n", 0o644);
    l.finish()
}

fn layer2() -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.add_whiteout("etc/removed")
        .add_whiteout("opt/gone")
        .add_hardlink("usr/lib/libfoo.so.1", "usr/lib/libfoo.so")
        .add_dir("swap/was_file", 0o750)
        .add_file("swap/was_file/inner", b"inside the new dir\n", 0o644)
        .add_file("swap/was_dir", b"now a file\n", 0o640)
        .add_file("etc/kept", b"kept v2\n", 0o600)
        .add_file("etc/new", b"new in layer 2\n", 0o644)
        .add_hardlink("etc/new.link", "etc/new");
    l.finish()
}

fn layer3() -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.add_dir("var/cache", 0o755)
        .add_opaque("var/cache")
        .add_file("var/cache/new", b"new cache\n", 0o644)
        .add_dir("var/cache/sub", 0o700)
        .add_file("var/cache/sub/fresh", b"fresh\n", 0o644)
        .add_file("srv/data/new", b"new data\n", 0o644)
        .add_opaque("srv/data");
    l.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let records = pax_records(&[("a", b"b"), ("SCHILY.xattr.user.foo", b"bar")]);
        let text = String::from_utf8(records).unwrap();
        for line in text.split_inclusive('\n') {
            let (len, _) = line.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), line.len(), "{line:?}");
        }
        assert_eq!(pax_records(&[("k", b"xxxx")]), b"9 k=xxxx\n");
        // Nine bytes plus one digit is ten, which takes two digits.
        assert_eq!(pax_records(&[("k", b"xxxxx")]), b"11 k=xxxxx\n");
    }

    #[test]
    fn layers_read_back_with_every_entry() {
        let tars = rich_tars();
        assert_eq!(tars.len(), 3);
        let mut archive = tar::Archive::new(&tars[0][..]);
        let mut names = Vec::new();
        let mut ping_xattrs = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path_bytes().into_owned();
            if name == b"usr/bin/ping"
                && let Some(ext) = entry.pax_extensions().unwrap()
            {
                for e in ext {
                    ping_xattrs.push(e.unwrap().key().unwrap().to_string());
                }
            }
            names.push(name);
        }
        assert!(names.contains(&long_name().into_bytes()));
        assert!(names.contains(&deep_path().into_bytes()));
        assert!(names.contains(&b"weird/caf\xe9".to_vec()));
        assert!(deep_path().len() > 255);
        assert_eq!(
            ping_xattrs,
            ["SCHILY.xattr.user.foo", "SCHILY.xattr.security.capability"]
        );
        // Same tars whatever the compression, so the same diffIDs.
        let gzip = rich_layers(Compression::Gzip, Format::Oci);
        let zstd = rich_layers(Compression::Zstd, Format::Docker);
        for (a, b) in gzip.iter().zip(&zstd) {
            assert_eq!(a.diff_id, b.diff_id);
            assert_ne!(a.digest, b.digest);
        }
    }
}
