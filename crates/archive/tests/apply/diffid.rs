//! diffIDs and compression handling.

use std::io::Write;

use hoist_archive::{ApplyOptions, Compression, Error, apply_layer};
use hoist_oci::sha256_digest as sha256;

use crate::support::{Failing, Layer};

fn sample() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("etc", 0o755)
        .file("etc/hostname", b"hoist\n", 0o644)
        .symlink("link", "etc");
    let mut tar = l.finish();
    // Trailing padding after the end-of-archive blocks, as GNU tar's
    // 10 KiB records leave: part of the stream, so part of the diffID.
    tar.extend_from_slice(&[0u8; 4096]);
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

#[test]
fn diff_id_is_sha256_of_uncompressed_stream() {
    let tar = sample();
    let expected = sha256(&tar);
    for (compression, blob) in [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Zstd, zstd(&tar)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let options = ApplyOptions {
            expected_diff_id: Some(expected.clone()),
            ..ApplyOptions::default()
        };
        let applied = apply_layer(dir.path(), &blob[..], compression, &options).unwrap();
        assert_eq!(applied.diff_id, expected, "{compression:?}");
        assert_eq!(applied.uncompressed_size, tar.len() as u64);
        assert_eq!(applied.entries, 3);
        assert_eq!(
            std::fs::read(dir.path().join("etc/hostname")).unwrap(),
            b"hoist\n"
        );
    }
}

#[test]
fn multi_member_gzip_is_one_stream() {
    let tar = sample();
    let (head, tail) = tar.split_at(1024);
    let mut blob = gzip(head);
    blob.extend(gzip(tail));
    let dir = tempfile::tempdir().unwrap();
    let applied = apply_layer(
        dir.path(),
        &blob[..],
        Compression::Gzip,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(applied.diff_id, sha256(&tar));
}

#[test]
fn diff_id_mismatch_is_reported() {
    let tar = sample();
    let wrong = sha256(b"something else");
    let dir = tempfile::tempdir().unwrap();
    let options = ApplyOptions {
        expected_diff_id: Some(wrong.clone()),
        ..ApplyOptions::default()
    };
    match apply_layer(dir.path(), &gzip(&tar)[..], Compression::Gzip, &options) {
        Err(Error::DiffIdMismatch { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, sha256(&tar));
        }
        other => panic!("expected DiffIdMismatch, got {other:?}"),
    }
}

#[test]
fn declared_compression_must_match_magic() {
    let tar = sample();
    let cases = [
        (Compression::Gzip, tar.clone(), Compression::None),
        (Compression::Zstd, gzip(&tar), Compression::Gzip),
        (Compression::None, zstd(&tar), Compression::Zstd),
        (Compression::Gzip, Vec::new(), Compression::None),
    ];
    for (declared, blob, detected) in cases {
        let dir = tempfile::tempdir().unwrap();
        match apply_layer(dir.path(), &blob[..], declared, &ApplyOptions::default()) {
            Err(Error::CompressionMismatch {
                declared: d,
                detected: t,
            }) => {
                assert_eq!((d, t), (declared, detected));
            }
            other => panic!("{declared:?} vs {detected:?}: got {other:?}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn empty_stream_is_an_empty_layer() {
    let dir = tempfile::tempdir().unwrap();
    let applied = apply_layer(
        dir.path(),
        &[][..],
        Compression::None,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(applied.entries, 0);
    assert_eq!(applied.diff_id, sha256(b""));
    // Docker's canonical empty layer: 1024 zero bytes, gzipped.
    let applied = apply_layer(
        dir.path(),
        &gzip(&[0u8; 1024])[..],
        Compression::Gzip,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(applied.entries, 0);
    assert_eq!(applied.diff_id, sha256(&[0u8; 1024]));
}

#[test]
fn corrupt_compressed_streams_are_errors() {
    let tar = sample();
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    for (compression, blob) in [
        (Compression::Gzip, &gz[..gz.len() - 12]),
        (Compression::Zstd, &zs[..zs.len() / 2]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let err = apply_layer(dir.path(), blob, compression, &ApplyOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::Malformed { .. }),
            "{compression:?}: {err:?}"
        );
    }
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let dir = tempfile::tempdir().unwrap();
    assert!(
        apply_layer(
            dir.path(),
            &flipped[..],
            Compression::Gzip,
            &ApplyOptions::default()
        )
        .is_err()
    );
}

/// A source that fails: reported as `Read`, not as a malformed layer.
#[test]
fn source_failure_is_a_read_error() {
    let tar = sample();
    let dir = tempfile::tempdir().unwrap();
    let err = apply_layer(
        dir.path(),
        Failing {
            data: gzip(&tar)[..40].to_vec(),
            chunk: 700,
        },
        Compression::Gzip,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Read(_)), "{err:?}");
}
