//! Behaviour of the metadata database through its public API, including
//! several connections writing one file at once.

use std::str::FromStr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoist_metadata::{Db, Error, Image, Labels, LeaseResource, SnapshotKind, SnapshotRecord};
use oci_spec::image::{Descriptor, Digest, MediaType};

fn digest(n: u64) -> Digest {
    Digest::from_str(&format!("sha256:{n:064x}")).unwrap()
}

/// An image manifest descriptor of size `n` and [`digest`] `n`.
fn manifest(n: u64) -> Descriptor {
    Descriptor::new(MediaType::ImageManifest, n, digest(n))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("metadata.db")).unwrap();
    (dir, db)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn open_enables_wal_journal_mode() {
    let (dir, db) = open();
    assert!(db.schema_version().unwrap() >= 1);
    let raw = rusqlite::Connection::open(dir.path().join("metadata.db")).unwrap();
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn open_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/metadata.db");
    Db::open(&path).unwrap();
    assert!(path.is_file());
}

#[test]
fn migrations_are_idempotent_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let db = Db::open(&path).unwrap();
    let version = db.schema_version().unwrap();
    db.put_content(&digest(1), 10, &Labels::new()).unwrap();
    drop(db);

    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), version);
    assert_eq!(db.get_content(&digest(1)).unwrap().unwrap().size, 10);
    drop(db);
    assert_eq!(Db::open(&path).unwrap().list_content().unwrap().len(), 1);
}

#[test]
fn open_refuses_a_schema_newer_than_supported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let supported = Db::open(&path).unwrap().schema_version().unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", supported + 1)
        .unwrap();
    let err = Db::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported: s } if found == supported + 1 && s == supported),
        "{err:?}"
    );
}

#[test]
fn put_image_round_trips_the_full_descriptor() {
    let (_dir, db) = open();
    let mut target = Descriptor::new(MediaType::ImageIndex, 1234, digest(7));
    target.set_annotations(Some(
        [(
            "org.opencontainers.image.ref.name".to_string(),
            "1.0".to_string(),
        )]
        .into(),
    ));
    let image = Image {
        name: "docker.io/library/alpine:3.20".into(),
        target,
        labels: labels(&[("k", "v")]),
        created_at: at(1_000),
        updated_at: at(1_000),
    };
    db.put_image(&image).unwrap();
    let got = db.get_image(&image.name).unwrap().unwrap();
    assert_eq!(got.target, image.target);
    assert_eq!(got.labels, image.labels);
    assert_eq!(got.created_at, at(1_000));
}

#[test]
fn put_image_upsert_keeps_created_at_and_replaces_the_rest() {
    let (_dir, db) = open();
    let mut image = Image::new("example.com/app:1", manifest(1));
    image.created_at = at(100);
    image.labels = labels(&[("old", "1")]);
    db.put_image(&image).unwrap();
    let first = db.get_image(&image.name).unwrap().unwrap();

    image.target = manifest(2);
    image.created_at = at(999_999);
    image.labels = labels(&[("new", "2")]);
    db.put_image(&image).unwrap();

    let got = db.get_image(&image.name).unwrap().unwrap();
    assert_eq!(got.created_at, at(100));
    assert_eq!(got.target.digest(), &digest(2));
    assert_eq!(got.labels, labels(&[("new", "2")]));
    assert!(got.updated_at >= first.updated_at);
    assert!(got.updated_at > at(100));
    assert_eq!(db.list_images().unwrap().len(), 1);
}

#[test]
fn record_image_merges_labels_for_the_same_target_and_replaces_them_on_a_move() {
    let (_dir, db) = open();
    let mut image = Image::new("example.com/app:1", manifest(1));
    image.labels = labels(&[("unpacked.overlay", "a")]);
    assert_eq!(db.record_image(&image).unwrap(), None);

    // Same target, another label: both kept, and the previous digest told.
    image.labels = labels(&[("unpacked.native", "b")]);
    assert_eq!(
        db.record_image(&image).unwrap(),
        Some(digest(1).to_string())
    );
    let got = db.get_image(&image.name).unwrap().unwrap();
    assert_eq!(
        got.labels,
        labels(&[("unpacked.native", "b"), ("unpacked.overlay", "a")])
    );

    // The tag moved: the old target's labels go.
    image.target = manifest(2);
    image.labels = labels(&[("new", "c")]);
    assert_eq!(
        db.record_image(&image).unwrap(),
        Some(digest(1).to_string())
    );
    let got = db.get_image(&image.name).unwrap().unwrap();
    assert_eq!(got.target.digest(), &digest(2));
    assert_eq!(got.labels, labels(&[("new", "c")]));
}

#[test]
fn list_images_is_ordered_by_name_and_delete_reports_presence() {
    let (_dir, db) = open();
    for name in ["c", "a", "b"] {
        db.put_image(&Image::new(name, manifest(1))).unwrap();
    }
    let names: Vec<_> = db
        .list_images()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(db.delete_image("b").unwrap());
    assert!(!db.delete_image("b").unwrap());
    assert!(db.get_image("b").unwrap().is_none());
}

#[test]
fn put_content_merges_labels() {
    let (_dir, db) = open();
    let d = digest(3);
    db.put_content(&d, 42, &labels(&[("a", "1"), ("b", "1")]))
        .unwrap();
    db.put_content(&d, 42, &labels(&[("b", "2"), ("c", "2")]))
        .unwrap();
    db.put_content(&d, 42, &Labels::new()).unwrap();
    let record = db.get_content(&d).unwrap().unwrap();
    assert_eq!(record.labels, labels(&[("a", "1"), ("b", "2"), ("c", "2")]));
    assert_eq!(record.size, 42);
}

#[test]
fn put_content_upsert_keeps_created_at() {
    let (_dir, db) = open();
    let d = digest(4);
    db.put_content(&d, 1, &Labels::new()).unwrap();
    let first = db.get_content(&d).unwrap().unwrap();
    db.put_content(&d, 1, &labels(&[("x", "y")])).unwrap();
    let second = db.get_content(&d).unwrap().unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
}

#[test]
fn content_list_is_ordered_and_delete_reports_presence() {
    let (_dir, db) = open();
    for n in [9, 2, 5] {
        db.put_content(&digest(n), n, &Labels::new()).unwrap();
    }
    let digests: Vec<_> = db
        .list_content()
        .unwrap()
        .into_iter()
        .map(|c| c.digest)
        .collect();
    assert_eq!(digests, [digest(2), digest(5), digest(9)]);
    assert!(db.delete_content(&digest(5)).unwrap());
    assert!(!db.delete_content(&digest(5)).unwrap());
    assert!(db.get_content(&digest(5)).unwrap().is_none());
}

#[test]
fn create_lease_rejects_a_duplicate_id() {
    let (_dir, db) = open();
    let lease = db
        .create_lease("pull-1", &labels(&[("k", "v")]), Some(at(5_000)))
        .unwrap();
    assert_eq!(lease.expires_at, Some(at(5_000)));
    let err = db.create_lease("pull-1", &Labels::new(), None).unwrap_err();
    assert!(matches!(err, Error::LeaseExists(id) if id == "pull-1"));
    let listed = db.list_leases().unwrap();
    assert_eq!(listed, [lease]);
}

#[test]
fn lease_resources_are_deduplicated_and_ordered() {
    let (_dir, db) = open();
    db.create_lease("l", &Labels::new(), None).unwrap();
    let content = LeaseResource::content(&digest(1));
    let ingest = LeaseResource::ingest("layer-ref");
    let snapshot = LeaseResource::snapshot("overlayfs", "key-1");
    for r in [&snapshot, &content, &ingest, &content] {
        db.add_lease_resource("l", r).unwrap();
    }
    assert_eq!(
        db.lease_resources("l").unwrap(),
        [content, ingest, snapshot.clone()]
    );
    assert_eq!(snapshot.kind, "snapshot/overlayfs");
}

#[test]
fn add_lease_resource_to_a_missing_lease_fails() {
    let (_dir, db) = open();
    let err = db
        .add_lease_resource("ghost", &LeaseResource::ingest("r"))
        .unwrap_err();
    assert!(matches!(err, Error::LeaseNotFound(id) if id == "ghost"));
    assert!(matches!(
        db.lease_resources("ghost"),
        Err(Error::LeaseNotFound(_))
    ));
}

#[test]
fn delete_lease_cascades_its_resources() {
    let (_dir, db) = open();
    db.create_lease("l", &Labels::new(), None).unwrap();
    db.create_lease("other", &Labels::new(), None).unwrap();
    db.add_lease_resource("l", &LeaseResource::content(&digest(1)))
        .unwrap();
    db.add_lease_resource("other", &LeaseResource::content(&digest(1)))
        .unwrap();

    assert!(db.delete_lease("l").unwrap());
    assert!(!db.delete_lease("l").unwrap());
    // Recreating the id must not resurrect the old resources.
    db.create_lease("l", &Labels::new(), None).unwrap();
    assert!(db.lease_resources("l").unwrap().is_empty());
    assert_eq!(db.lease_resources("other").unwrap().len(), 1);
    let ids: Vec<_> = db
        .list_leases()
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, ["l", "other"]);
}

#[test]
fn snapshots_crud_is_scoped_per_snapshotter() {
    let (_dir, db) = open();
    let mut base = SnapshotRecord {
        snapshotter: "overlayfs".into(),
        key: "sha256:base".into(),
        parent: None,
        kind: SnapshotKind::Active,
        labels: Labels::new(),
        created_at: at(10),
        updated_at: at(10),
    };
    db.put_snapshot(&base).unwrap();
    let child = SnapshotRecord {
        key: "child".into(),
        parent: Some("sha256:base".into()),
        kind: SnapshotKind::View,
        ..base.clone()
    };
    db.put_snapshot(&child).unwrap();
    db.put_snapshot(&SnapshotRecord {
        snapshotter: "native".into(),
        ..base.clone()
    })
    .unwrap();

    base.kind = SnapshotKind::Committed;
    base.created_at = at(20);
    db.put_snapshot(&base).unwrap();
    let got = db
        .get_snapshot("overlayfs", "sha256:base")
        .unwrap()
        .unwrap();
    assert_eq!(got.kind, SnapshotKind::Committed);
    assert_eq!(got.created_at, at(10));

    let keys: Vec<_> = db
        .list_snapshots("overlayfs")
        .unwrap()
        .into_iter()
        .map(|s| (s.key, s.parent, s.kind))
        .collect();
    assert_eq!(
        keys,
        [
            (
                "child".to_string(),
                Some("sha256:base".to_string()),
                SnapshotKind::View
            ),
            ("sha256:base".to_string(), None, SnapshotKind::Committed),
        ]
    );
    assert!(db.delete_snapshot("overlayfs", "child").unwrap());
    assert!(!db.delete_snapshot("overlayfs", "child").unwrap());
    assert_eq!(db.list_snapshots("native").unwrap().len(), 1);
}

#[test]
fn two_handles_on_one_file_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let handles = [Db::open(&path).unwrap(), Db::open(&path).unwrap()];
    let per_thread = 100u64;
    let barrier = Arc::new(Barrier::new(handles.len()));
    std::thread::scope(|s| {
        for (t, db) in handles.iter().enumerate() {
            let barrier = barrier.clone();
            s.spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    let n = t as u64 * 1_000 + i;
                    db.put_content(&digest(n), n, &labels(&[("thread", &t.to_string())]))
                        .unwrap();
                    // Both handles also hammer one shared row.
                    db.put_content(&digest(999_999), 1, &labels(&[(&format!("t{t}-{i}"), "x")]))
                        .unwrap();
                }
            });
        }
    });
    let reopened = Db::open(&path).unwrap();
    assert_eq!(
        reopened.list_content().unwrap().len() as u64,
        handles.len() as u64 * per_thread + 1
    );
    let shared = reopened.get_content(&digest(999_999)).unwrap().unwrap();
    assert_eq!(
        shared.labels.len() as u64,
        handles.len() as u64 * per_thread
    );
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let barrier = Barrier::new(4);
    let opened: Vec<(u32, u32)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let db = Db::open(&path).unwrap();
                    (db.schema_version().unwrap(), db.migrations_applied())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let version = opened[0].0;
    assert!(
        version >= 1 && opened.iter().all(|(v, _)| *v == version),
        "{opened:?}"
    );
    // Every migration ran exactly once among the four opens.
    let applied: u32 = opened.iter().map(|(_, n)| n).sum();
    assert_eq!(applied, version, "{opened:?}");
    assert_eq!(Db::open(&path).unwrap().migrations_applied(), 0);
}

#[test]
fn one_db_is_shared_between_threads() {
    fn check<T: Send + Sync>() {}
    check::<Db>();
    let (_dir, db) = open();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let db = &db;
            s.spawn(move || db.put_content(&digest(t), t, &Labels::new()).unwrap());
        }
    });
    assert_eq!(db.list_content().unwrap().len(), 4);
}

#[test]
fn remove_content_labels_drops_only_the_prefixed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = hoist_metadata::Db::open(&dir.path().join("meta.db")).unwrap();
    let digest: oci_spec::image::Digest =
        "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
            .parse()
            .unwrap();
    let labels = hoist_metadata::Labels::from([
        (
            "containerd.io/gc.ref.content.l.0".to_string(),
            "a".to_string(),
        ),
        (
            "containerd.io/gc.ref.content.l.1".to_string(),
            "b".to_string(),
        ),
        (
            "containerd.io/gc.ref.content.config".to_string(),
            "c".to_string(),
        ),
    ]);
    db.put_content(&digest, 3, &labels).unwrap();
    let removed = db
        .remove_content_labels(&digest, "containerd.io/gc.ref.content.l.")
        .unwrap();
    assert_eq!(removed, 2);
    let kept = db.get_content(&digest).unwrap().unwrap().labels;
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        vec!["containerd.io/gc.ref.content.config"]
    );
}

#[test]
fn put_contents_records_many_and_leaves_current_records_untouched() {
    let (_dir, db) = open();
    let source = labels(&[("source", "r")]);
    db.put_content(&digest(1), 10, &source).unwrap();
    db.put_content(&digest(2), 20, &labels(&[("other", "x")]))
        .unwrap();
    let current = db.get_content(&digest(1)).unwrap().unwrap();

    db.put_contents(
        &[(digest(1), 10), (digest(2), 20), (digest(3), 30)],
        &source,
    )
    .unwrap();

    // Same size and labels: not written again, not even its time.
    assert_eq!(db.get_content(&digest(1)).unwrap().unwrap(), current);
    let merged = db.get_content(&digest(2)).unwrap().unwrap();
    assert_eq!(merged.labels, labels(&[("other", "x"), ("source", "r")]));
    let new = db.get_content(&digest(3)).unwrap().unwrap();
    assert_eq!((new.size, new.labels), (30, source));
    assert_eq!(db.list_content().unwrap().len(), 3);
}
