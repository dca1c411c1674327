//! The cases every snapshotter must pass. Each takes a [`Ctx`]: a fresh
//! snapshotter on its own root and database, which it can reopen.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_archive::{ApplyOptions, Compression, apply_layer};
use hoist_metadata::{Db, SnapshotKind};
use hoist_snapshot::{Error, ID_LABEL, Kind, Labels, Mount, Snapshotter, WhiteoutMode};

/// A snapshotter under test, on a temporary root.
pub(crate) struct Ctx {
    /// The snapshotter.
    pub(crate) s: Box<dyn Snapshotter>,
    /// Its root directory.
    pub(crate) root: PathBuf,
    name: &'static str,
    db_path: PathBuf,
    tmp: tempfile::TempDir,
}

#[allow(clippy::print_stderr)]
pub(crate) fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
}

/// Fails a test that needs root when run without it, rather than letting it
/// pass unchecked; such tests are named `*_privileged`, and `cargo nextest
/// run --profile unprivileged` skips them.
pub(crate) fn require_root() {
    assert!(
        is_root(),
        "this test needs root; run it as root, or run \
         `cargo nextest run --profile unprivileged` to skip the *_privileged tests"
    );
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Ctx {
    /// A fresh `name` snapshotter; `None` (with a message) when it cannot
    /// work here.
    pub(crate) fn new(name: &'static str) -> Option<Ctx> {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("snapshots").join(name);
        let db_path = tmp.path().join("metadata.db");
        let db = Arc::new(Db::open(&db_path).unwrap());
        match hoist_snapshot::open(name, &root, db) {
            Ok(s) => Some(Ctx {
                s,
                root,
                name,
                db_path,
                tmp,
            }),
            Err(Error::Unsupported { detail }) => {
                skip(&format!("{name} snapshotter unsupported here: {detail}"));
                None
            }
            Err(e) => panic!("open {name}: {e:?}"),
        }
    }

    /// A new instance on the same root, with its own database connection, as
    /// another process (or this one after a restart) would open it.
    pub(crate) fn reopen(&self) -> Box<dyn Snapshotter> {
        let db = Arc::new(Db::open(&self.db_path).unwrap());
        hoist_snapshot::open(self.name, &self.root, db).unwrap()
    }

    fn db(&self) -> Db {
        Db::open(&self.db_path).unwrap()
    }

    /// A fresh empty directory to mount on.
    pub(crate) fn mountpoint(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join("mnt").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- layers --

enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match entry {
            Entry::Dir(path) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            Entry::File(path, body) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(body.len() as u64);
                b.append_data(&mut h, path, body.as_bytes()).unwrap();
            }
            Entry::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Entry::Hardlink(path, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Applies `layer` into active snapshot `key` as the engine does.
fn apply(s: &dyn Snapshotter, key: &str, layer: &[u8]) {
    let t = s.apply_target(key).unwrap();
    let options = ApplyOptions {
        whiteouts: t.whiteouts,
        lowers: t.lowers,
        ..ApplyOptions::default()
    };
    apply_layer(&t.dir, layer, Compression::None, &options).unwrap();
}

/// `path → what`: `dir`, `file:<body>`, `link:<target>`, or `other:<type>`;
/// the root itself left out.
fn tree(root: &Path) -> BTreeMap<String, String> {
    hoist_testkit::tree::walk(root)
        .map(|walked| {
            let (ft, path) = (walked.meta.file_type(), &walked.path);
            let what = if ft.is_dir() {
                "dir".to_owned()
            } else if ft.is_file() {
                format!("file:{}", std::fs::read_to_string(path).unwrap())
            } else if ft.is_symlink() {
                format!("link:{}", std::fs::read_link(path).unwrap().display())
            } else if ft.is_char_device() {
                "other:char".to_owned()
            } else {
                "other:?".to_owned()
            };
            (walked.relative.to_string_lossy().into_owned(), what)
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Unmounts on drop, so a failed assertion does not leave a mount behind.
pub(crate) struct Mounted(pub(crate) PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = Mount::unmount(&self.0) {
            panic!("unmount {}: {e:?}", self.0.display());
        }
    }
}

pub(crate) fn mount_all(mounts: &[Mount], target: &Path) -> Mounted {
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    mounts[0]
        .mount(target)
        .unwrap_or_else(|e| panic!("{}: {e:?}", mounts[0].to_command(target)));
    Mounted(target.to_path_buf())
}

// ----------------------------------------------------------------- cases --

pub(crate) fn prepare_commit_stat_list(cx: &Ctx) {
    let s = cx.s.as_ref();
    let mounts = s.prepare("a", None, labels(&[("x", "1")])).unwrap();
    assert_eq!(mounts.len(), 1);
    let a = s.stat("a").unwrap();
    assert_eq!(
        (a.key.as_str(), a.parent.as_deref(), a.kind),
        ("a", None, Kind::Active)
    );
    assert_eq!(a.labels, labels(&[("x", "1")]));
    assert_eq!(s.mounts("a").unwrap(), mounts);
    std::fs::write(s.apply_target("a").unwrap().dir.join("hello"), b"hi").unwrap();

    s.commit("A", "a", labels(&[("y", "2")])).unwrap();
    assert!(matches!(s.stat("a"), Err(Error::NotFound { key }) if key == "a"));
    let c = s.stat("A").unwrap();
    assert_eq!((c.parent.as_deref(), c.kind), (None, Kind::Committed));
    assert_eq!(
        c.labels,
        labels(&[("y", "2")]),
        "commit labels replace the active's"
    );
    assert_eq!(
        std::fs::read(s.fs_dir("A").unwrap().join("hello")).unwrap(),
        b"hi"
    );
    assert!(matches!(s.mounts("A"), Err(Error::InvalidState { .. })));
    assert!(matches!(
        s.apply_target("A"),
        Err(Error::InvalidState { .. })
    ));

    s.prepare("b", Some("A"), Labels::new()).unwrap();
    s.view("v", Some("A"), Labels::new()).unwrap();
    assert_eq!(s.stat("b").unwrap().parent.as_deref(), Some("A"));
    assert_eq!(s.stat("v").unwrap().kind, Kind::View);
    assert!(matches!(
        s.apply_target("v"),
        Err(Error::InvalidState { .. })
    ));
    let listed: Vec<(String, Kind)> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.kind))
        .collect();
    assert_eq!(
        listed,
        [
            ("A".into(), Kind::Committed),
            ("b".into(), Kind::Active),
            ("v".into(), Kind::View)
        ]
    );
    assert!(
        s.list()
            .unwrap()
            .iter()
            .all(|i| !i.labels.contains_key(ID_LABEL))
    );
}

pub(crate) fn mount_shapes(cx: &Ctx) {
    let s = cx.s.as_ref();
    let base = s.prepare("base", None, Labels::new()).unwrap();
    assert_eq!(
        (
            base[0].kind.as_str(),
            base[0].options.contains(&"rw".into())
        ),
        ("bind", true)
    );
    s.commit("l1", "base", Labels::new()).unwrap();
    s.prepare("second", Some("l1"), Labels::new()).unwrap();
    s.commit("l2", "second", Labels::new()).unwrap();
    let l1 = s.fs_dir("l1").unwrap();
    let l2 = s.fs_dir("l2").unwrap();

    let active = s.prepare("active", Some("l2"), Labels::new()).unwrap();
    let view1 = s.view("view1", Some("l1"), Labels::new()).unwrap();
    let view2 = s.view("view2", Some("l2"), Labels::new()).unwrap();
    let ro = |m: &Mount| m.kind == "bind" && m.options.contains(&"ro".into());
    let own = |key: &str| s.fs_dir(key).unwrap().display().to_string();
    match s.name() {
        "overlay" => {
            let t = s.apply_target("active").unwrap();
            assert_eq!(t.whiteouts, WhiteoutMode::Overlay);
            assert_eq!(t.lowers, [l2.clone(), l1.clone()], "topmost first");
            assert_eq!(active[0].kind, "overlay");
            let lowerdir = format!("lowerdir={}:{}", l2.display(), l1.display());
            assert_eq!(active[0].options[0], lowerdir);
            assert_eq!(active[0].options[1], format!("upperdir={}", own("active")));
            assert!(active[0].options[2].starts_with("workdir="));
            assert!(
                ro(&view1[0]) && view1[0].source == l1.display().to_string(),
                "{view1:?}"
            );
            assert_eq!(view2[0].kind, "overlay");
            assert_eq!(view2[0].options, [lowerdir]);
        }
        "native" => {
            let t = s.apply_target("active").unwrap();
            assert_eq!(t.whiteouts, WhiteoutMode::Delete);
            assert!(t.lowers.is_empty());
            assert_eq!(active[0].kind, "bind");
            assert_eq!(active[0].source, own("active"));
            assert!(ro(&view1[0]) && view1[0].source == own("view1"));
            assert!(ro(&view2[0]) && view2[0].source == own("view2"));
        }
        other => panic!("unknown snapshotter {other}"),
    }
}

pub(crate) fn stacked_layers_and_view(cx: &Ctx) {
    use Entry::*;
    let s = cx.s.as_ref();
    let layer1 = tar(&[
        Dir("etc"),
        File("etc/a", "a1"),
        File("etc/b", "b1"),
        Dir("dir"),
        Dir("dir/x"),
        File("dir/x/1", "1"),
        File("dir/x/2", "2"),
        Dir("keep"),
        File("keep/k", "k"),
        Symlink("lnk", "etc/a"),
    ]);
    let layer2 = tar(&[
        Dir("etc"),
        File("etc/.wh.b", ""),
        File("etc/a", "a2"),
        File("etc/c", "c2"),
        Hardlink("keep/hard", "keep/k"),
    ]);
    let layer3 = tar(&[
        Dir("dir/x"),
        File("dir/x/.wh..wh..opq", ""),
        File("dir/x/3", "3"),
    ]);

    let after2 = expect(&[
        ("dir", "dir"),
        ("dir/x", "dir"),
        ("dir/x/1", "file:1"),
        ("dir/x/2", "file:2"),
        ("etc", "dir"),
        ("etc/a", "file:a2"),
        ("etc/c", "file:c2"),
        ("keep", "dir"),
        ("keep/hard", "file:k"),
        ("keep/k", "file:k"),
        ("lnk", "link:etc/a"),
    ]);
    let mut after3 = after2.clone();
    after3.remove("dir/x/1");
    after3.remove("dir/x/2");
    after3.insert("dir/x/3".into(), "file:3".into());

    s.prepare("extract-1", None, Labels::new()).unwrap();
    apply(s, "extract-1", &layer1);
    s.commit("l1", "extract-1", Labels::new()).unwrap();
    s.prepare("extract-2", Some("l1"), Labels::new()).unwrap();
    apply(s, "extract-2", &layer2);
    s.commit("l2", "extract-2", Labels::new()).unwrap();
    let active = s.prepare("extract-3", Some("l2"), Labels::new()).unwrap();
    if is_root() {
        // The active snapshot, mounted rw, shows the two layers below it.
        let mnt = cx.mountpoint("active");
        let _m = mount_all(&active, &mnt);
        assert_eq!(tree(&mnt), after2);
    }
    apply(s, "extract-3", &layer3);
    s.commit("l3", "extract-3", Labels::new()).unwrap();

    let view = s.view("rootfs", Some("l3"), Labels::new()).unwrap();
    if !is_root() {
        skip("mounting the view needs root; comparing the unmounted tree only (native)");
        if s.name() == "native" {
            assert_eq!(tree(&s.fs_dir("rootfs").unwrap()), after3);
        }
        return;
    }
    let mnt = cx.mountpoint("view");
    let _m = mount_all(&view, &mnt);
    assert_eq!(tree(&mnt), after3, "{}", view[0].to_command(&mnt));
    let k = std::fs::metadata(mnt.join("keep/k")).unwrap();
    let hard = std::fs::metadata(mnt.join("keep/hard")).unwrap();
    assert_eq!(k.ino(), hard.ino(), "keep/hard is a hardlink of keep/k");
    let err = std::fs::write(mnt.join("new"), b"x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error()),
        "view is read-only"
    );
}

pub(crate) fn remove_refuses_parent_with_children(cx: &Ctx) {
    let s = cx.s.as_ref();
    s.prepare("a", None, Labels::new()).unwrap();
    s.commit("A", "a", Labels::new()).unwrap();
    s.prepare("child", Some("A"), Labels::new()).unwrap();
    s.view("view", Some("A"), Labels::new()).unwrap();
    let child_dir = s.fs_dir("child").unwrap();

    assert!(matches!(s.remove("A"), Err(Error::HasChildren { key }) if key == "A"));
    s.remove("child").unwrap();
    assert!(!child_dir.exists(), "files removed with the snapshot");
    assert!(
        matches!(s.remove("A"), Err(Error::HasChildren { .. })),
        "the view still holds it"
    );
    s.remove("view").unwrap();
    let a_dir = s.fs_dir("A").unwrap();
    s.remove("A").unwrap();
    assert!(!a_dir.exists());
    assert!(matches!(s.stat("A"), Err(Error::NotFound { .. })));
    assert!(matches!(s.remove("A"), Err(Error::NotFound { .. })));
    assert!(s.list().unwrap().is_empty());
}

pub(crate) fn commit_and_prepare_errors(cx: &Ctx) {
    let s = cx.s.as_ref();
    assert!(
        matches!(s.commit("X", "nope", Labels::new()), Err(Error::NotFound { key }) if key == "nope")
    );

    s.prepare("x", None, Labels::new()).unwrap();
    s.prepare("y", None, Labels::new()).unwrap();
    assert!(
        matches!(s.prepare("x", None, Labels::new()), Err(Error::AlreadyExists { key }) if key == "x")
    );
    assert!(
        matches!(
            s.prepare("z", Some("x"), Labels::new()),
            Err(Error::InvalidState { .. })
        ),
        "active parent"
    );
    assert!(matches!(
        s.view("z", Some("x"), Labels::new()),
        Err(Error::InvalidState { .. })
    ));
    assert!(
        matches!(s.prepare("z", Some("missing"), Labels::new()), Err(Error::NotFound { key }) if key == "missing")
    );
    assert!(
        matches!(s.stat("z"), Err(Error::NotFound { .. })),
        "failed prepares leave no record"
    );

    s.commit("X", "x", Labels::new()).unwrap();
    assert!(
        matches!(s.commit("X", "y", Labels::new()), Err(Error::AlreadyExists { key }) if key == "X")
    );
    assert_eq!(
        s.stat("y").unwrap().kind,
        Kind::Active,
        "a refused commit changes nothing"
    );
    assert!(
        matches!(
            s.commit("Y", "X", Labels::new()),
            Err(Error::InvalidState { .. })
        ),
        "already committed"
    );
    s.view("v", Some("X"), Labels::new()).unwrap();
    assert!(
        matches!(
            s.commit("V", "v", Labels::new()),
            Err(Error::InvalidState { .. })
        ),
        "views cannot be committed"
    );
    assert!(matches!(
        s.prepare("w", None, labels(&[(ID_LABEL, "7")])),
        Err(Error::InvalidState { .. })
    ));

    // Failed prepares leave no directories behind either.
    let dirs = std::fs::read_dir(cx.root.join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(dirs, s.list().unwrap().len());
}

pub(crate) fn usage_counts_bytes(cx: &Ctx) {
    let s = cx.s.as_ref();
    s.prepare("u", None, Labels::new()).unwrap();
    let empty = s.usage("u").unwrap();
    assert_eq!(empty.inodes, 1, "just the directory");
    let dir = s.apply_target("u").unwrap().dir;
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(dir.join("big"), &data).unwrap();
    std::fs::hard_link(dir.join("big"), dir.join("big2")).unwrap();
    std::fs::write(dir.join("small"), b"x").unwrap();
    let used = s.usage("u").unwrap();
    assert_eq!(
        used.inodes, 3,
        "dir, big (hardlinked twice, counted once), small"
    );
    assert!(used.size >= empty.size + (1 << 20), "{used:?}");
    assert!(
        used.size < empty.size + (1 << 20) + (64 << 10),
        "hardlink counted once: {used:?}"
    );
    s.commit("U", "u", Labels::new()).unwrap();
    assert_eq!(s.usage("U").unwrap(), used);
    assert!(matches!(s.usage("u"), Err(Error::NotFound { .. })));
}

pub(crate) fn labels_merge(cx: &Ctx) {
    let s = cx.s.as_ref();
    s.prepare("l", None, labels(&[("a", "1"), ("b", "2")]))
        .unwrap();
    let before = s.stat("l").unwrap();
    let info = s
        .set_labels("l", labels(&[("b", "3"), ("c", "4")]))
        .unwrap();
    assert_eq!(info.labels, labels(&[("a", "1"), ("b", "3"), ("c", "4")]));
    assert_eq!(s.stat("l").unwrap(), info);
    assert_eq!(info.created_at, before.created_at);
    assert!(info.updated_at >= before.updated_at);
    assert!(matches!(
        s.set_labels("l", labels(&[(ID_LABEL, "1")])),
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        s.set_labels("nope", Labels::new()),
        Err(Error::NotFound { .. })
    ));
    // The snapshot still works after relabeling (its directory id is intact).
    std::fs::write(s.apply_target("l").unwrap().dir.join("f"), b"f").unwrap();
    s.commit("L", "l", Labels::new()).unwrap();
    assert_eq!(
        std::fs::read(s.fs_dir("L").unwrap().join("f")).unwrap(),
        b"f"
    );
}

pub(crate) fn reopen_sees_same_state(cx: &Ctx) {
    let s = cx.s.as_ref();
    s.prepare("a", None, labels(&[("k", "v")])).unwrap();
    std::fs::write(s.apply_target("a").unwrap().dir.join("f"), b"data").unwrap();
    s.commit("A", "a", labels(&[("k", "v")])).unwrap();
    s.prepare("b", Some("A"), Labels::new()).unwrap();
    s.view("v", Some("A"), Labels::new()).unwrap();
    // A crash between creating a directory and its record leaves a stray directory.
    std::fs::create_dir_all(cx.root.join("snapshots/999/fs")).unwrap();

    let again = cx.reopen();
    assert_eq!(again.list().unwrap(), s.list().unwrap());
    for key in ["A", "b", "v"] {
        assert_eq!(again.fs_dir(key).unwrap(), s.fs_dir(key).unwrap());
        assert_eq!(again.stat(key).unwrap(), s.stat(key).unwrap());
    }
    assert_eq!(again.mounts("b").unwrap(), s.mounts("b").unwrap());
    assert_eq!(
        std::fs::read(again.fs_dir("A").unwrap().join("f")).unwrap(),
        b"data"
    );
    // New snapshots from the new instance do not collide with existing or stray directories.
    again.prepare("c", Some("A"), Labels::new()).unwrap();
    let dirs: Vec<PathBuf> = ["A", "b", "v", "c"]
        .iter()
        .map(|k| again.fs_dir(k).unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = dirs.iter().collect();
    assert_eq!(unique.len(), 4);
    assert!(!dirs.contains(&cx.root.join("snapshots/999/fs")));
    // And the first instance sees what the second did.
    assert_eq!(s.stat("c").unwrap().parent.as_deref(), Some("A"));
}

/// A crash between commit's two writes leaves the active record and the
/// committed one sharing a directory; opening finishes the commit.
pub(crate) fn interrupted_commit_is_finished_on_open(cx: &Ctx) {
    let s = cx.s.as_ref();
    s.prepare("a", None, Labels::new()).unwrap();
    std::fs::write(s.apply_target("a").unwrap().dir.join("f"), b"data").unwrap();
    let db = cx.db();
    let mut record = db.get_snapshot(s.name(), "a").unwrap().unwrap();
    record.key = "A".into();
    record.kind = SnapshotKind::Committed;
    db.put_snapshot(&record).unwrap();

    let again = cx.reopen();
    assert!(matches!(again.stat("a"), Err(Error::NotFound { .. })));
    assert_eq!(again.stat("A").unwrap().kind, Kind::Committed);
    assert_eq!(
        std::fs::read(again.fs_dir("A").unwrap().join("f")).unwrap(),
        b"data"
    );
    again.remove("A").unwrap();
    assert!(again.list().unwrap().is_empty());
}

pub(crate) fn lock_serializes_threads(cx: &Ctx) {
    let s = cx.s.as_ref();
    let other = cx.reopen(); // a second instance: as another process would
    let other = other.as_ref();
    let log = Mutex::new(Vec::new());
    let log = &log;
    let (locked_tx, locked_rx) = channel();
    let (trying_tx, trying_rx) = channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let guard = s.lock("sha256:layer").unwrap();
            // Other keys are independent.
            drop(s.lock("sha256:other").unwrap());
            locked_tx.send(()).unwrap();
            trying_rx.recv().unwrap();
            // Not needed for the order asserted below (B cannot log before it
            // holds the lock, and A logs before releasing); it only gives a
            // broken lock the chance to show.
            std::thread::sleep(Duration::from_millis(20));
            log.lock().unwrap().push("A done");
            drop(guard);
        });
        scope.spawn(move || {
            locked_rx.recv().unwrap();
            trying_tx.send(()).unwrap();
            let guard = other.lock("sha256:layer").unwrap();
            log.lock().unwrap().push("B got it");
            drop(guard);
        });
    });
    assert_eq!(*log.lock().unwrap(), ["A done", "B got it"]);
}

pub(crate) fn rebase_commits_onto_a_parent(cx: &Ctx) {
    let s = cx.s.as_ref();
    let write = |key: &str, name: &str, body: &str| {
        std::fs::write(s.apply_target(key).unwrap().dir.join(name), body).unwrap();
    };
    if !s.rebases() {
        s.prepare("x", None, Labels::new()).unwrap();
        assert!(matches!(
            s.commit_onto("X", "x", None, Labels::new()),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    // The upper layer is prepared and written before its parent exists.
    s.prepare("top-active", None, Labels::new()).unwrap();
    write("top-active", "top", "2");
    write("top-active", "shared", "from the top");
    s.prepare("bottom-active", None, Labels::new()).unwrap();
    write("bottom-active", "bottom", "1");
    write("bottom-active", "shared", "from the bottom");
    assert!(
        matches!(
            s.commit_onto("TOP", "top-active", Some("bottom-active"), Labels::new()),
            Err(Error::InvalidState { .. })
        ),
        "a parent that is not committed is refused"
    );
    s.commit("BOTTOM", "bottom-active", Labels::new()).unwrap();
    s.commit_onto("TOP", "top-active", Some("BOTTOM"), labels(&[("l", "v")]))
        .unwrap();
    let top = s.stat("TOP").unwrap();
    assert_eq!(
        (top.parent.as_deref(), top.kind),
        (Some("BOTTOM"), Kind::Committed)
    );
    assert_eq!(top.labels, labels(&[("l", "v")]));

    s.prepare("child", Some("TOP"), Labels::new()).unwrap();
    assert!(
        matches!(
            s.commit_onto("C", "child", Some("BOTTOM"), Labels::new()),
            Err(Error::InvalidState { .. })
        ),
        "a snapshot that has a parent is not rebased"
    );
    let view = s.view("rootfs", Some("TOP"), Labels::new()).unwrap();
    let mnt = cx.mountpoint("view");
    let _m = mount_all(&view, &mnt);
    assert_eq!(
        tree(&mnt),
        expect(&[
            ("bottom", "file:1"),
            ("shared", "file:from the top"),
            ("top", "file:2"),
        ])
    );
}
