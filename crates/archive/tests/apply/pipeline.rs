//! The stream is read on the caller's thread and applied on another: file
//! data of every size arrives whole and in order, and when something fails,
//! the error is the one applying in place would have met first.

use std::io::Write;

use hoist_archive::{ApplyOptions, Compression, Error, apply_layer};

use crate::support::{Failing, Layer, apply};

/// Bytes that differ from offset to offset, so a chunk out of place shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn files_of_every_size_arrive_whole() {
    let sizes = [
        0,
        1,
        512,
        (256 << 10) - 1,
        256 << 10,
        (256 << 10) + 1,
        1 << 20,
        (1 << 20) + 1,
        (3 << 20) + 17,
    ];
    let mut l = Layer::new();
    for (i, &size) in sizes.iter().enumerate() {
        l.file(&format!("d/big{i}"), &pattern(size, i as u8), 0o644);
        // Small files between the large ones travel in batches.
        for j in 0..40 {
            l.file(&format!("d/small{i}-{j}"), &pattern(j * 37, j as u8), 0o600);
        }
    }
    let tar = l.finish();
    for (compression, blob) in [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let applied =
            apply_layer(dir.path(), &blob[..], compression, &ApplyOptions::default()).unwrap();
        assert_eq!(applied.entries, sizes.len() as u64 * 41);
        for (i, &size) in sizes.iter().enumerate() {
            let got = std::fs::read(dir.path().join(format!("d/big{i}"))).unwrap();
            assert!(got == pattern(size, i as u8), "big{i} ({size} bytes)");
            for j in 0..40 {
                let got = std::fs::read(dir.path().join(format!("d/small{i}-{j}"))).unwrap();
                assert!(got == pattern(j * 37, j as u8), "small{i}-{j}");
            }
        }
    }
}

#[test]
fn a_skipped_large_file_leaves_the_rest_in_order() {
    let mut l = Layer::new();
    l.file(".", &pattern(3 << 20, 1), 0o644)
        .file("after", b"after", 0o644)
        .file("big", &pattern(2 << 20, 2), 0o644);
    let dir = tempfile::tempdir().unwrap();
    let applied = apply(dir.path(), &l.finish()).unwrap();
    assert_eq!(applied.skipped, ["."]);
    assert_eq!(std::fs::read(dir.path().join("after")).unwrap(), b"after");
    assert!(std::fs::read(dir.path().join("big")).unwrap() == pattern(2 << 20, 2));
}

#[test]
fn truncated_data_is_malformed_at_any_size() {
    for size in [3000, 3 << 20] {
        let mut l = Layer::new();
        l.file("first", b"1", 0o644)
            .file("cut", &pattern(size, 3), 0o644);
        let tar = l.finish();
        // The cut falls in the second file's data.
        let cut = 512 + 512 + 512 + size / 2;
        let dir = tempfile::tempdir().unwrap();
        let err = apply(dir.path(), &tar[..cut]).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{size}: {err:?}");
        // What came before was applied, as in place.
        assert_eq!(std::fs::read(dir.path().join("first")).unwrap(), b"1");
        // Also when the entry cut short is one that is skipped.
        let mut l = Layer::new();
        l.file("first", b"1", 0o644)
            .file(".", &pattern(size, 3), 0o644);
        let tar = l.finish();
        let dir = tempfile::tempdir().unwrap();
        let err = apply(dir.path(), &tar[..cut]).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{size}: {err:?}");
    }
}

#[test]
fn the_first_error_in_the_stream_wins() {
    // An entry that cannot be applied (its parent is a file), then a header
    // that does not parse, or data cut short: the entry's error is reported.
    let mut l = Layer::new();
    l.file("a", b"a", 0o644)
        .file("a/b", b"b", 0o644)
        .file("c", b"c", 0o644)
        .file("big", &pattern(3 << 20, 4), 0o644);
    let tar = l.finish();
    let mut corrupt = tar.clone();
    // The third header's checksum.
    corrupt[2 * 1024 + 148] ^= 0x01;
    let cut = &tar[..tar.len() - (2 << 20)];
    for (name, blob) in [("corrupt header", &corrupt[..]), ("cut data", cut)] {
        let dir = tempfile::tempdir().unwrap();
        let err = apply(dir.path(), blob).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{name}: {err:?}");
    }
    // Without the bad entry, the stream's own error is reported.
    let mut l = Layer::new();
    l.file("a", b"a", 0o644)
        .file("c", b"c", 0o644)
        .file("big", &pattern(3 << 20, 4), 0o644);
    let tar = l.finish();
    let dir = tempfile::tempdir().unwrap();
    let err = apply(dir.path(), &tar[..tar.len() - (2 << 20)]).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
}

#[test]
fn a_source_failing_inside_a_large_file_is_a_read_error() {
    let mut l = Layer::new();
    l.file("small", b"s", 0o644)
        .file("big", &pattern(3 << 20, 5), 0o644);
    let tar = l.finish();
    let dir = tempfile::tempdir().unwrap();
    let err = apply_layer(
        dir.path(),
        Failing {
            data: tar[..2 << 20].to_vec(),
            chunk: 64 << 10,
        },
        Compression::None,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Read(_)), "{err:?}");
    assert_eq!(std::fs::read(dir.path().join("small")).unwrap(), b"s");
}

/// Small files are created on the applying thread and finished (data,
/// owner, mode, times) on another; what later entries do to their names
/// still happens in stream order.
#[test]
fn small_files_finished_on_another_thread_keep_stream_order() {
    use std::os::unix::fs::MetadataExt;
    use tar::EntryType as T;

    let mut l = Layer::new();
    l.file("d/twice", b"first", 0o644);
    // Enough files between two writes of a name that they are in different
    // groups of the files thread.
    for i in 0..300 {
        l.file(&format!("d/f{i:03}"), &pattern(i * 7, i as u8), 0o640);
    }
    l.file("d/twice", b"second", 0o600)
        .hardlink("d/linked", "d/f007")
        .file("d/becomes-dir", b"file", 0o644)
        .dir("d/becomes-dir", 0o750)
        .file("d/becomes-dir/inside", b"inside", 0o644)
        .file("d/becomes-link", b"file", 0o644)
        .symlink("d/becomes-link", "f001");
    // Modes creation cannot give (setuid, read-only) and another owner.
    let mut h = Layer::header(T::Regular, 0o4755);
    h.set_uid(1234);
    h.set_gid(5678);
    l.raw(h, b"d/setuid", None, &[], b"suid");
    l.file("d/readonly", b"ro", 0o444);
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), &l.finish()).unwrap();
    let d = dir.path().join("d");

    assert_eq!(std::fs::read(d.join("twice")).unwrap(), b"second");
    assert_eq!(
        std::fs::metadata(d.join("twice")).unwrap().mode() & 0o7777,
        0o600
    );
    for i in 0..300 {
        let path = d.join(format!("f{i:03}"));
        assert!(
            std::fs::read(&path).unwrap() == pattern(i * 7, i as u8),
            "f{i:03}"
        );
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o640, "f{i:03}");
        assert_eq!(md.mtime(), crate::support::MTIME as i64, "f{i:03}");
    }
    let (link, target) = (
        std::fs::metadata(d.join("linked")).unwrap(),
        std::fs::metadata(d.join("f007")).unwrap(),
    );
    assert_eq!((link.ino(), link.nlink()), (target.ino(), 2));
    assert!(d.join("becomes-dir").is_dir());
    assert_eq!(
        std::fs::read(d.join("becomes-dir/inside")).unwrap(),
        b"inside"
    );
    assert_eq!(
        std::fs::read_link(d.join("becomes-link")).unwrap(),
        std::path::Path::new("f001")
    );
    assert_eq!(std::fs::read(d.join("readonly")).unwrap(), b"ro");
    assert_eq!(
        std::fs::metadata(d.join("readonly")).unwrap().mode() & 0o7777,
        0o444
    );
    let setuid = std::fs::metadata(d.join("setuid")).unwrap();
    assert_eq!(setuid.mode() & 0o7777, 0o4755);
    // Owners are only set as root (`same_owner`).
    if crate::support::is_root() {
        assert_eq!((setuid.uid(), setuid.gid()), (1234, 5678));
    }
    assert_eq!(std::fs::read(d.join("setuid")).unwrap(), b"suid");
}

/// A write that fails on the files thread (the disk is full) fails the
/// apply with that file's error, and every file before it is whole.
#[test]
fn a_write_failing_on_the_files_thread_fails_the_apply_privileged() {
    crate::support::require_root();
    let base = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(base.path())
        .status()
        .unwrap();
    assert!(status.success(), "mounting a 1 MiB tmpfs failed");
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(base.path());

    let mut l = Layer::new();
    for i in 0..40 {
        l.file(&format!("f{i:02}"), &pattern(64 << 10, i as u8), 0o644);
    }
    let err = apply(base.path(), &l.finish()).unwrap_err();
    let Error::Io { path, source } = &err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert_eq!(source.raw_os_error(), Some(28), "{err:?}");
    let failed: usize = path
        .to_str()
        .and_then(|p| p.strip_prefix('f'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the error names {}", path.display()));
    assert!((1..40).contains(&failed), "{failed}");
    for i in 0..failed {
        let got = std::fs::read(base.path().join(format!("f{i:02}"))).unwrap();
        assert!(got == pattern(64 << 10, i as u8), "f{i:02} is not whole");
    }
}
