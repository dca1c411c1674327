//! Behaviour of the content store through its public API, including
//! concurrent writers in threads and in separate processes.

use std::io::{ErrorKind, Write};
use std::process::Command;
use std::str::FromStr;
use std::sync::{Arc, Barrier};

use hoist_content::{Committed, Error, Expected, Store, Writer, copy};
use hoist_oci::digest::{digest_with, sha256_digest as sha256};
use oci_spec::image::{Digest, DigestAlgorithm};

fn expect(bytes: &[u8]) -> Expected {
    Expected::new(sha256(bytes), Some(bytes.len() as u64))
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("content")).unwrap();
    (dir, store)
}

/// A fresh store holding the blob `body`.
fn store_holding(body: &[u8]) -> (tempfile::TempDir, Store) {
    let (dir, store) = store();
    copy(store.writer("r", expect(body)).unwrap(), body).unwrap();
    (dir, store)
}

/// A fresh store with the ingest `reference` of the blob `expected`, its
/// first bytes `written` already written.
fn ingest(reference: &str, expected: &[u8], written: &[u8]) -> (tempfile::TempDir, Store, Writer) {
    let (dir, store) = store();
    let mut w = store.writer(reference, expect(expected)).unwrap();
    w.write_all(written).unwrap();
    (dir, store, w)
}

#[test]
fn open_creates_blob_and_ingest_directories() {
    let (_dir, store) = store();
    assert!(store.root().join("blobs/sha256").is_dir());
    assert!(store.root().join("ingest").is_dir());
}

#[test]
fn commit_moves_verified_bytes_into_blobs() {
    let (_dir, store) = store();
    let body = b"hello world";
    let mut w = store.writer("ref-1", expect(body)).unwrap();
    w.write_all(body).unwrap();
    assert_eq!(w.offset(), body.len() as u64);
    assert_eq!(w.commit().unwrap(), Committed::New);

    let digest = sha256(body);
    assert!(store.contains(&digest));
    assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), body);
    assert_eq!(
        store.blob_path(&digest),
        store.root().join("blobs/sha256").join(digest.digest())
    );
    assert_eq!(
        store.info(&digest).unwrap().unwrap().size,
        body.len() as u64
    );
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn writer_reports_already_exists_for_committed_blob() {
    let (_dir, store) = store();
    copy(store.writer("a", expect(b"x")).unwrap(), &b"x"[..]).unwrap();
    let err = store.writer("b", expect(b"x")).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(d) if d == sha256(b"x")));
    assert!(matches!(
        store.try_writer("b", expect(b"x")),
        Err(Error::AlreadyExists(_))
    ));
}

#[test]
fn commit_rejects_digest_mismatch_and_deletes_the_ingest() {
    let (_dir, store) = store();
    let expected = Expected::new(sha256(b"right"), Some(5));
    let err = copy(store.writer("r", expected).unwrap(), &b"wrong"[..]).unwrap_err();
    match err {
        Error::DigestMismatch { expected, actual } => {
            assert_eq!(expected, sha256(b"right"));
            assert_eq!(actual, sha256(b"wrong"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!store.contains(&sha256(b"right")));
    assert!(!store.contains(&sha256(b"wrong")));
    assert!(store.ingests().unwrap().is_empty());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn commit_rejects_short_content_as_size_mismatch() {
    let (_dir, store, w) = ingest("r", b"abcdef", b"abc");
    let err = w.commit().unwrap_err();
    assert!(matches!(
        err,
        Error::SizeMismatch {
            expected: 6,
            actual: 3
        }
    ));
    assert!(store.ingests().unwrap().is_empty());
    assert!(!store.contains(&sha256(b"abcdef")));
}

#[test]
fn write_past_expected_size_is_refused() {
    let (_dir, store) = store();
    let mut w = store.writer("r", expect(b"abc")).unwrap();
    let err = w.write_all(b"abcd").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert_eq!(w.offset(), 0);
}

#[test]
fn copy_of_overlong_stream_fails_and_deletes_the_ingest() {
    let (_dir, store) = store();
    let err = copy(store.writer("r", expect(b"abc")).unwrap(), &b"abcdef"[..]).unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { expected: 3, .. }));
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn commit_without_known_size_checks_only_the_digest() {
    let (_dir, store) = store();
    let w = store
        .writer("r", Expected::new(sha256(b"data"), None))
        .unwrap();
    assert_eq!(copy(w, &b"data"[..]).unwrap(), Committed::New);
    assert!(
        !store
            .root()
            .join("ingest")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
}

#[test]
fn dropped_writer_leaves_a_resumable_ingest() {
    let body = b"0123456789";
    let (_dir, store, w) = ingest("layer", body, &body[..4]);
    drop(w);

    let ingests = store.ingests().unwrap();
    assert_eq!(ingests.len(), 1);
    assert_eq!(ingests[0].reference, "layer");
    assert_eq!(ingests[0].offset, 4);
    assert_eq!(ingests[0].total, Some(10));

    let w = store.writer("layer", expect(body)).unwrap();
    assert_eq!(w.offset(), 4);
    let rest = &body[w.offset() as usize..];
    assert_eq!(copy(w, rest).unwrap(), Committed::New);
    assert_eq!(store.read_blob(&sha256(body), 100).unwrap(), body);
}

#[test]
fn resume_restarts_when_ingest_is_longer_than_expected() {
    let (_dir, store) = store();
    let mut w = store
        .writer("r", Expected::new(sha256(b"abc"), None))
        .unwrap();
    w.write_all(b"abcdefgh").unwrap();
    drop(w);

    let w = store.writer("r", expect(b"abc")).unwrap();
    assert_eq!(w.offset(), 0);
    assert_eq!(copy(w, &b"abc"[..]).unwrap(), Committed::New);
}

#[test]
fn truncate_rehashes_the_kept_prefix() {
    let (_dir, store, mut w) = ingest("r", b"hello", b"heXX");
    w.truncate(2).unwrap();
    assert_eq!(w.offset(), 2);
    w.write_all(b"llo").unwrap();
    assert_eq!(w.commit().unwrap(), Committed::New);
    assert_eq!(store.read_blob(&sha256(b"hello"), 5).unwrap(), b"hello");
}

#[test]
fn truncate_to_zero_discards_everything_written() {
    let (_dir, _store, mut w) = ingest("r", b"fresh", b"stale");
    w.truncate(0).unwrap();
    assert_eq!(w.offset(), 0);
    assert_eq!(copy(w, &b"fresh"[..]).unwrap(), Committed::New);
}

#[test]
fn truncate_cannot_grow_the_ingest() {
    let (_dir, _store, mut w) = ingest("r", b"abc", b"a");
    assert!(matches!(
        w.truncate(2),
        Err(Error::InvalidOffset {
            requested: 2,
            available: 1
        })
    ));
}

#[test]
fn try_writer_returns_none_while_another_writer_holds_the_ingest() {
    let (_dir, store) = store();
    let held = store.writer("r", expect(b"abc")).unwrap();
    assert!(store.try_writer("r", expect(b"abc")).unwrap().is_none());
    drop(held);
    assert!(store.try_writer("r", expect(b"abc")).unwrap().is_some());
}

#[test]
fn blocked_writer_gets_already_exists_once_the_holder_commits() {
    let body = b"shared layer";
    let (_dir, store, mut holder) = ingest("layer", body, &body[..3]);

    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || store.writer("layer", expect(body)).map(|_| ()))
    };
    holder.write_all(&body[3..]).unwrap();
    assert_eq!(holder.commit().unwrap(), Committed::New);

    let result = waiter.join().unwrap();
    assert!(matches!(result, Err(Error::AlreadyExists(_))), "{result:?}");
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn waiter_takes_over_after_the_holder_fails_verification() {
    let (_dir, store) = store();
    let body = b"good bytes";
    let mut holder = store.writer("layer", expect(body)).unwrap();
    holder.write_all(b"bad bytes!").unwrap();

    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || copy(store.writer("layer", expect(body))?, &body[..]))
    };
    assert!(matches!(holder.commit(), Err(Error::DigestMismatch { .. })));
    assert_eq!(waiter.join().unwrap().unwrap(), Committed::New);
    assert_eq!(store.read_blob(&sha256(body), 64).unwrap(), body);
}

#[test]
fn concurrent_writers_of_one_blob_commit_exactly_once() {
    let (_dir, store) = store();
    let body: Arc<Vec<u8>> = Arc::new((0..200_000u32).map(|i| (i % 251) as u8).collect());
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (store, body, barrier) = (store.clone(), body.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                match store.writer("same-ref", expect(&body)) {
                    Ok(w) => {
                        let offset = w.offset() as usize;
                        copy(w, &body[offset..]).map(Some)
                    }
                    Err(Error::AlreadyExists(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        })
        .collect();
    let outcomes: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let new = outcomes
        .iter()
        .filter(|o| **o == Some(Committed::New))
        .count();
    assert_eq!(new, 1, "{outcomes:?}");
    assert_eq!(
        store.read_blob(&sha256(&body), 1 << 20).unwrap(),
        body.as_slice()
    );
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn second_ingest_of_same_blob_under_another_ref_reports_already_exists() {
    let (_dir, store) = store();
    let mut a = store.writer("a", expect(b"blob")).unwrap();
    let mut b = store.writer("b", expect(b"blob")).unwrap();
    a.write_all(b"blob").unwrap();
    b.write_all(b"blob").unwrap();
    assert_eq!(a.commit().unwrap(), Committed::New);
    assert_eq!(b.commit().unwrap(), Committed::AlreadyExists);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(store.ingests().unwrap().is_empty());
}

const CHILD_ROOT: &str = "HOIST_CONTENT_CHILD_ROOT";
const CHILD_MODE: &str = "HOIST_CONTENT_CHILD_MODE";
const CHILD_BODY: &[u8] = b"cross-process blob";

/// Runs `child_process_writer` in a fresh copy of this test binary and
/// reports whether it ran and passed (a filter matching nothing also exits 0).
fn run_child(root: &std::path::Path, mode: &str) -> bool {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_writer", "--ignored"])
        .env(CHILD_ROOT, root)
        .env(CHILD_MODE, mode)
        .output()
        .unwrap();
    output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed")
}

#[test]
#[ignore = "helper run in a child process by writers_in_two_processes_serialize"]
fn child_process_writer() {
    let root = std::env::var(CHILD_ROOT).expect("run only by writers_in_two_processes_serialize");
    let store = Store::open(root).unwrap();
    match std::env::var(CHILD_MODE).unwrap().as_str() {
        "locked" => assert!(
            store
                .try_writer("xproc", expect(CHILD_BODY))
                .unwrap()
                .is_none()
        ),
        "committed" => assert!(matches!(
            store.writer("xproc", expect(CHILD_BODY)),
            Err(Error::AlreadyExists(_))
        )),
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn writers_in_two_processes_serialize() {
    let (_dir, store) = store();
    let mut holder = store.writer("xproc", expect(CHILD_BODY)).unwrap();
    holder.write_all(&CHILD_BODY[..5]).unwrap();
    assert!(
        run_child(store.root(), "locked"),
        "child saw the ingest unlocked"
    );
    holder.write_all(&CHILD_BODY[5..]).unwrap();
    assert_eq!(holder.commit().unwrap(), Committed::New);
    assert!(
        run_child(store.root(), "committed"),
        "child did not see the committed blob"
    );
}

#[test]
fn read_blob_refuses_blobs_over_the_limit() {
    let (_dir, store) = store_holding(b"0123456789");
    let err = store.read_blob(&sha256(b"0123456789"), 9).unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 9 }));
    assert_eq!(
        store.read_blob(&sha256(b"0123456789"), 10).unwrap().len(),
        10
    );
}

#[test]
fn read_blob_detects_corrupted_blob() {
    let (_dir, store) = store_holding(b"pristine");
    let path = store.blob_path(&sha256(b"pristine"));
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"tampered").unwrap();
    let err = store.read_blob(&sha256(b"pristine"), 100).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { actual, .. } if actual == sha256(b"tampered")));
}

#[test]
fn committed_blob_is_read_only() {
    let (_dir, store) = store();
    copy(store.writer("r", expect(b"ro")).unwrap(), &b"ro"[..]).unwrap();
    let perms = std::fs::metadata(store.blob_path(&sha256(b"ro")))
        .unwrap()
        .permissions();
    assert!(perms.readonly());
}

#[test]
fn missing_blob_is_not_found() {
    let (_dir, store) = store();
    let d = sha256(b"nothing");
    assert!(matches!(store.open_blob(&d), Err(Error::NotFound(x)) if x == d));
    assert!(matches!(store.read_blob(&d, 10), Err(Error::NotFound(_))));
    assert!(store.info(&d).unwrap().is_none());
    assert!(!store.contains(&d));
}

#[test]
fn list_returns_blobs_sorted_and_delete_removes_them() {
    let (_dir, store) = store();
    for body in [&b"one"[..], b"two", b"three"] {
        copy(store.writer("r", expect(body)).unwrap(), body).unwrap();
    }
    let listed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.digest)
        .collect();
    let mut want = vec![sha256(b"one"), sha256(b"two"), sha256(b"three")];
    want.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    assert_eq!(listed, want);

    assert!(store.delete(&sha256(b"two")).unwrap());
    assert!(!store.delete(&sha256(b"two")).unwrap());
    assert!(!store.contains(&sha256(b"two")));
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn abort_removes_an_idle_ingest() {
    let (_dir, store, w) = ingest("r", b"abc", b"a");
    drop(w);
    store.abort("r").unwrap();
    assert!(store.ingests().unwrap().is_empty());
    assert_eq!(store.writer("r", expect(b"abc")).unwrap().offset(), 0);
}

#[test]
fn abort_of_a_held_ingest_fails_with_locked() {
    let (_dir, store) = store();
    let _held = store.writer("r", expect(b"abc")).unwrap();
    assert!(matches!(store.abort("r"), Err(Error::Locked(r)) if r == "r"));
    assert_eq!(store.ingests().unwrap().len(), 1);
}

#[test]
fn abort_of_an_unknown_ingest_succeeds() {
    let (_dir, store) = store();
    store.abort("never-started").unwrap();
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn sha512_blobs_are_verified_and_stored_under_sha512() {
    let (_dir, store) = store();
    let body = b"wide hash";
    let digest = digest_with(&DigestAlgorithm::Sha512, body).unwrap();
    let w = store
        .writer("r", Expected::new(digest.clone(), Some(body.len() as u64)))
        .unwrap();
    assert_eq!(copy(w, &body[..]).unwrap(), Committed::New);
    assert!(
        store
            .root()
            .join("blobs/sha512")
            .join(digest.digest())
            .is_file()
    );
    assert_eq!(store.read_blob(&digest, 100).unwrap(), body);
    assert_eq!(store.list().unwrap()[0].digest, digest);
}

#[test]
fn unsupported_algorithm_is_rejected_before_any_write() {
    let (_dir, store) = store();
    let digest = Digest::from_str("blake3:abcdef").unwrap();
    let err = store.writer("r", Expected::new(digest, None)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedAlgorithm(a) if a == "blake3"));
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn store_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Store>();
    fn check_send<T: Send>() {}
    check_send::<hoist_content::Writer>();
    let (_dir, store) = store();
    assert_eq!(store.clone().root(), store.root());
}
