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
