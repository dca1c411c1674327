//! Checking the store: every blob's digest, every image's references, every
//! snapshot's parent chain and directory, and that the database and the disk
//! agree. With `repair`, what can be fixed locally is fixed so that the next
//! pull restores the rest:
//!
//! - a corrupt blob is deleted (file and record), so the next pull fetches it;
//! - a content record without its blob is dropped;
//! - a blob without a record is recorded again, with GC references to its
//!   stored children (so a collection does not take them);
//! - an image missing content is kept and reported as incomplete: pulling it
//!   again completes it;
//! - a snapshot whose directory or parent is missing, or whose parent is not
//!   committed, is removed with its descendants (the next pull unpacks again);
//! - a snapshot directory no record claims is removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use hoist_metadata::{Labels, SnapshotKind};
use hoist_oci::manifest::{self, Children};
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{Descriptor, Digest};

use crate::gc::{Node, label_edges, remove_snapshots, snapshot_dirs, snapshot_id};
use crate::lock::RootLock;
use crate::{Engine, Error, Result, labels};

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A blob's bytes do not hash to its name.
    CorruptBlob {
        /// The digest the blob is stored under.
        digest: Digest,
        /// What its bytes hash to.
        actual: String,
    },
    /// A content record whose blob file is missing.
    MissingBlob {
        /// The recorded digest.
        digest: Digest,
    },
    /// A blob file the database has no record of (it has no GC references).
    UnrecordedBlob {
        /// The blob's digest.
        digest: Digest,
    },
    /// An image needs a blob that is missing or corrupt: it is incomplete
    /// until pulled again.
    IncompleteImage {
        /// The image name.
        image: String,
        /// The blob it needs.
        digest: Digest,
        /// The stored blob that references it (`None` for the image's target).
        parent: Option<Digest>,
    },
    /// A snapshot record whose directory is missing.
    SnapshotDirMissing {
        /// The snapshotter.
        snapshotter: String,
        /// The snapshot key.
        key: String,
        /// The directory that should hold its files.
        path: PathBuf,
    },
    /// A snapshot whose parent has no record.
    SnapshotParentMissing {
        /// The snapshotter.
        snapshotter: String,
        /// The snapshot key.
        key: String,
        /// The missing parent's key.
        parent: String,
    },
    /// A snapshot whose parent is not committed.
    SnapshotParentNotCommitted {
        /// The snapshotter.
        snapshotter: String,
        /// The snapshot key.
        key: String,
        /// The parent's key.
        parent: String,
    },
    /// A snapshot directory no record claims (left by a crash).
    OrphanSnapshotDir {
        /// The snapshotter.
        snapshotter: String,
        /// The directory.
        path: PathBuf,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CorruptBlob { digest, actual } => {
                write!(f, "corrupt blob {digest}: its bytes hash to {actual}")
            }
            Problem::MissingBlob { digest } => {
                write!(f, "missing blob {digest}: recorded but not on disk")
            }
            Problem::UnrecordedBlob { digest } => {
                write!(
                    f,
                    "unrecorded blob {digest}: on disk but not in the database"
                )
            }
            Problem::IncompleteImage {
                image,
                digest,
                parent: None,
            } => write!(
                f,
                "incomplete image {image}: its target {digest} is missing"
            ),
            Problem::IncompleteImage {
                image,
                digest,
                parent: Some(parent),
            } => write!(
                f,
                "incomplete image {image}: blob {digest} (referenced by {parent}) is missing"
            ),
            Problem::SnapshotDirMissing {
                snapshotter,
                key,
                path,
            } => write!(
                f,
                "snapshot {snapshotter}/{key}: directory {} is missing",
                path.display()
            ),
            Problem::SnapshotParentMissing {
                snapshotter,
                key,
                parent,
            } => write!(
                f,
                "snapshot {snapshotter}/{key}: parent {parent} is missing"
            ),
            Problem::SnapshotParentNotCommitted {
                snapshotter,
                key,
                parent,
            } => write!(
                f,
                "snapshot {snapshotter}/{key}: parent {parent} is not committed"
            ),
            Problem::OrphanSnapshotDir { snapshotter, path } => write!(
                f,
                "orphaned {snapshotter} snapshot directory {} has no record",
                path.display()
            ),
        }
    }
}

/// One thing a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// A corrupt blob was deleted (file and record); the next pull fetches it.
    DeletedBlob(Digest),
    /// A record without a blob was dropped.
    DroppedRecord(Digest),
    /// A blob without a record was recorded, with GC references to its
    /// stored children.
    RecordedBlob(Digest),
    /// A snapshot was removed.
    RemovedSnapshot {
        /// The snapshotter.
        snapshotter: String,
        /// The snapshot key.
        key: String,
    },
    /// An orphaned snapshot directory was removed.
    RemovedDir(PathBuf),
    /// An incomplete image was kept; pulling it again completes it.
    KeptIncompleteImage(String),
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::DeletedBlob(digest) => {
                write!(
                    f,
                    "deleted corrupt blob {digest} (the next pull fetches it)"
                )
            }
            Repair::DroppedRecord(digest) => {
                write!(f, "dropped the record of missing blob {digest}")
            }
            Repair::RecordedBlob(digest) => write!(f, "recorded blob {digest}"),
            Repair::RemovedSnapshot { snapshotter, key } => {
                write!(f, "removed snapshot {snapshotter}/{key}")
            }
            Repair::RemovedDir(path) => write!(f, "removed directory {}", path.display()),
            Repair::KeptIncompleteImage(image) => {
                write!(
                    f,
                    "kept incomplete image {image}: pull it again to complete it"
                )
            }
        }
    }
}

/// What a check found, and with `repair`, what it did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Blobs whose digest was verified.
    pub blobs_checked: usize,
    /// Images whose references were walked.
    pub images_checked: usize,
    /// Snapshots whose chain and directory were checked.
    pub snapshots_checked: usize,
    /// Everything found wrong, in the order found.
    pub problems: Vec<Problem>,
    /// What an interrupted operation left behind that nothing references
    /// and a collection removes: snapshot directories without a record (a
    /// snapshot's directory is made before its record and deleted after
    /// it, so a kill leaves these, never a record without its directory),
    /// and verified blobs without a record (a blob is linked into place
    /// before it is recorded; the next pull that needs it records it).
    /// Not problems: the store is consistent with them.
    pub leftovers: Vec<Problem>,
    /// What the repair did (empty without `repair`).
    pub repairs: Vec<Repair>,
}

impl CheckReport {
    /// Whether the store is consistent.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Engine {
    /// Checks the store (see the module docs of `check`), repairing what it
    /// can when `repair` is set. Holds the root's GC lock exclusively, so no
    /// pull runs meanwhile. Blocking; reads every blob.
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        let _checking = RootLock::exclusive(&self.root)?;
        let mut report = CheckReport::default();
        let blobs = self.check_blobs(&mut report)?;
        let incomplete = self.check_images(&blobs, &mut report)?;
        let snapshots = self.check_snapshots(&mut report)?;
        if repair && !(report.problems.is_empty() && report.leftovers.is_empty()) {
            self.repair(blobs, snapshots, incomplete, &mut report)?;
        }
        Ok(report)
    }

    /// Blobs: the digest of each file, and the database and the disk agree.
    fn check_blobs(&self, report: &mut CheckReport) -> Result<BlobFindings> {
        let stored = self.content.list()?;
        let records = self.content_labels()?;
        let mut found = BlobFindings::default();
        for info in &stored {
            report.blobs_checked += 1;
            match hash_blob(self, &info.digest)? {
                Some(actual) if actual != info.digest.to_string() => {
                    report.problems.push(Problem::CorruptBlob {
                        digest: info.digest.clone(),
                        actual,
                    });
                    found.corrupt.push(info.digest.clone());
                    continue;
                }
                _ => {}
            }
            found.good.insert(info.digest.to_string());
            if !records.contains_key(&info.digest.to_string()) {
                report.leftovers.push(Problem::UnrecordedBlob {
                    digest: info.digest.clone(),
                });
                found.unrecorded.push(info.digest.clone());
            }
        }
        let on_disk: HashSet<String> = stored.iter().map(|i| i.digest.to_string()).collect();
        for digest in records.keys() {
            if !on_disk.contains(digest) {
                let digest = hoist_oci::digest::parse_digest(digest)?;
                report.problems.push(Problem::MissingBlob {
                    digest: digest.clone(),
                });
                found.missing_records.push(digest);
            }
        }
        found.missing_records.sort_by_key(ToString::to_string);
        found.records = records;
        Ok(found)
    }

    /// Images: everything the GC references of their tree name is stored
    /// and sound. Returns the images found incomplete.
    fn check_images(&self, blobs: &BlobFindings, report: &mut CheckReport) -> Result<Vec<String>> {
        let mut incomplete = Vec::new();
        for image in self.db.list_images()? {
            report.images_checked += 1;
            let before = report.problems.len();
            self.check_image(
                &image.name,
                &image.target,
                &blobs.records,
                &blobs.good,
                report,
            )?;
            if report.problems.len() > before {
                incomplete.push(image.name);
            }
        }
        Ok(incomplete)
    }

    /// Snapshots: each one's directory and parent chain, and directories no
    /// record claims.
    fn check_snapshots(&self, report: &mut CheckReport) -> Result<SnapshotFindings> {
        let mut found = SnapshotFindings::default();
        for name in self.existing_snapshotters() {
            let snapshotter = self.snapshotter(Some(name))?;
            let records = self.snapshot_records(name)?;
            let mut broken = HashSet::new();
            for record in records.values() {
                report.snapshots_checked += 1;
                let path = match snapshotter.fs_dir(&record.key) {
                    Ok(path) => path,
                    Err(hoist_snapshot::Error::NotFound { .. }) => continue,
                    Err(error) => return Err(error.into()),
                };
                if !path.is_dir() {
                    report.problems.push(Problem::SnapshotDirMissing {
                        snapshotter: name.to_string(),
                        key: record.key.clone(),
                        path,
                    });
                    broken.insert(record.key.clone());
                }
                if let Some(problem) = parent_problem(name, record, &records) {
                    report.problems.push(problem);
                    broken.insert(record.key.clone());
                }
            }
            with_descendants(&mut broken, &records);
            if !broken.is_empty() {
                found.broken.insert(name.to_string(), broken);
            }
            let claimed: HashSet<u64> = records.values().filter_map(snapshot_id).collect();
            for (id, path) in snapshot_dirs(&self.snapshot_dirs_root(name))? {
                if !claimed.contains(&id) {
                    report.leftovers.push(Problem::OrphanSnapshotDir {
                        snapshotter: name.to_string(),
                        path: path.clone(),
                    });
                    found.orphans.push(path);
                }
            }
        }
        Ok(found)
    }

    /// Fixes what the checks found: corrupt blobs deleted, records of
    /// missing blobs dropped, unrecorded blobs recorded, broken snapshots
    /// removed with their descendants, orphan directories removed;
    /// incomplete images kept so that pulling them again completes them.
    fn repair(
        &self,
        blobs: BlobFindings,
        snapshots: SnapshotFindings,
        incomplete: Vec<String>,
        report: &mut CheckReport,
    ) -> Result<()> {
        for digest in blobs.corrupt {
            self.content.delete(&digest)?;
            self.db.delete_content(&digest)?;
            report.repairs.push(Repair::DeletedBlob(digest));
        }
        for digest in blobs.missing_records {
            self.db.delete_content(&digest)?;
            report.repairs.push(Repair::DroppedRecord(digest));
        }
        for digest in blobs.unrecorded {
            self.record_blob(&digest, &blobs.good)?;
            report.repairs.push(Repair::RecordedBlob(digest));
        }
        for (name, broken) in snapshots.broken {
            let snapshotter = self.snapshotter(Some(&name))?;
            let records = self.snapshot_records(&name)?;
            let removed = remove_snapshots(snapshotter.as_ref(), &records, &broken);
            if removed.len() != broken.len() {
                return Err(Error::Io {
                    path: self.root.join("snapshots").join(&name),
                    source: std::io::Error::other(format!(
                        "could not remove {} of {} broken snapshots",
                        broken.len() - removed.len(),
                        broken.len()
                    )),
                });
            }
            report
                .repairs
                .extend(removed.into_iter().map(|key| Repair::RemovedSnapshot {
                    snapshotter: name.clone(),
                    key,
                }));
        }
        for path in snapshots.orphans {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Io { path, source }),
            }
            report.repairs.push(Repair::RemovedDir(path));
        }
        for image in incomplete {
            report.repairs.push(Repair::KeptIncompleteImage(image));
        }
        Ok(())
    }

    /// Walks an image's tree, reporting each needed blob that is missing or
    /// corrupt. A node's GC references, when it has any, say which of its
    /// children the pull kept (an index's chosen platforms, a manifest's
    /// layers not discarded); without them an image manifest needs all its
    /// children and an index none (its platform choice is unknown).
    fn check_image(
        &self,
        image: &str,
        target: &Descriptor,
        records: &HashMap<String, Labels>,
        good: &HashSet<String>,
        report: &mut CheckReport,
    ) -> Result<()> {
        let read = |descriptor: &Descriptor| -> Result<Option<Vec<u8>>> {
            if !good.contains(&descriptor.digest().to_string()) {
                return Ok(None);
            }
            // A body that does not parse names nothing, as in `record_blob`.
            Ok(self
                .manifest_body(descriptor.digest())?
                .filter(|body| manifest::children(descriptor.media_type().as_ref(), body).is_ok()))
        };
        let follow = |parent: &Descriptor, child: &Descriptor| {
            let content_edges = || {
                records
                    .get(&parent.digest().to_string())
                    .into_iter()
                    .flat_map(label_edges)
                    .filter_map(|edge| match edge {
                        Node::Content(digest) => Some(digest),
                        Node::Snapshot(..) => None,
                    })
            };
            if content_edges().next().is_some() {
                let child = child.digest().to_string();
                content_edges().any(|digest| digest == child)
            } else {
                media_type::classify(parent.media_type().as_ref()) == Kind::Manifest
            }
        };
        for node in manifest::Walk::new(target.clone(), read).follow(follow) {
            let node = node?;
            if !good.contains(&node.descriptor.digest().to_string()) {
                report.problems.push(Problem::IncompleteImage {
                    image: image.to_string(),
                    digest: node.descriptor.digest().clone(),
                    parent: node.parent.map(|parent| parent.digest().clone()),
                });
            }
        }
        Ok(())
    }

    /// The body of a stored blob that may be a manifest or index: small
    /// enough, starting with `{`, its digest intact.
    fn manifest_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let Some(info) = self.content.info(digest)? else {
            return Ok(None);
        };
        if info.size > self.max_manifest_size() || !starts_with_brace(self, digest) {
            return Ok(None);
        }
        match self.content.read_blob(digest, self.max_manifest_size()) {
            Ok(body) => Ok(Some(body)),
            Err(hoist_content::Error::DigestMismatch { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The children a stored blob's body names, if it is a manifest or index.
    fn parse_children(&self, digest: &Digest) -> Result<Option<Children>> {
        let Some(body) = self.manifest_body(digest)? else {
            return Ok(None);
        };
        let Some(media_type) = manifest::detect_media_type(&body) else {
            return Ok(None);
        };
        Ok(manifest::children(&media_type, &body).ok())
    }

    /// Records a blob the database lost, with GC references to the stored
    /// children its body names.
    fn record_blob(&self, digest: &Digest, good: &HashSet<String>) -> Result<()> {
        let size = self.content.info(digest)?.map(|i| i.size).unwrap_or(0);
        let mut gc = Labels::new();
        match self.parse_children(digest)? {
            Some(Children::Index(children)) => {
                // Numbered by position in the whole index, as pulls number them.
                for (i, child) in children.iter().enumerate() {
                    if good.contains(&child.digest().to_string()) {
                        gc.insert(labels::manifest_ref(i), child.digest().to_string());
                    }
                }
            }
            Some(Children::Manifest { config, layers }) => {
                gc.insert(labels::config_ref(), config.digest().to_string());
                for (i, layer) in layers.iter().enumerate() {
                    gc.insert(labels::layer_ref(i), layer.digest().to_string());
                }
            }
            _ => {}
        }
        self.db.put_content(digest, size, &gc)?;
        Ok(())
    }
}

fn starts_with_brace(engine: &Engine, digest: &Digest) -> bool {
    let Ok(mut file) = engine.content.open_blob(digest) else {
        return false;
    };
    let mut first = [0u8; 64];
    let Ok(n) = file.read(&mut first) else {
        return false;
    };
    first[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// The digest of a stored blob's bytes, as `<algorithm>:<hex>`; `None` for
/// an algorithm hoist cannot hash (or a blob deleted meanwhile).
fn hash_blob(engine: &Engine, digest: &Digest) -> Result<Option<String>> {
    let Ok(mut digester) = hoist_oci::Digester::for_algorithm(digest) else {
        return Ok(None);
    };
    let mut file = match engine.content.open_blob(digest) {
        Ok(file) => file,
        Err(hoist_content::Error::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|source| Error::Io {
            path: engine.content.blob_path(digest),
            source,
        })?;
        if n == 0 {
            break;
        }
        digester.update(&buffer[..n]);
    }
    Ok(Some(digester.finalize().to_string()))
}

/// What the blob check found, for the image check and the repair.
#[derive(Default)]
struct BlobFindings {
    /// Every content record's labels, by digest.
    records: HashMap<String, Labels>,
    /// Blobs whose content matches their name.
    good: HashSet<String>,
    corrupt: Vec<Digest>,
    unrecorded: Vec<Digest>,
    missing_records: Vec<Digest>,
}

/// What the snapshot check found, for the repair.
#[derive(Default)]
struct SnapshotFindings {
    /// Per snapshotter, the broken snapshots and their descendants.
    broken: BTreeMap<String, HashSet<String>>,
    orphans: Vec<PathBuf>,
}

/// The problem with a snapshot's parent, if any: missing, or not committed.
fn parent_problem(
    snapshotter: &str,
    record: &hoist_metadata::SnapshotRecord,
    records: &BTreeMap<String, hoist_metadata::SnapshotRecord>,
) -> Option<Problem> {
    let parent = record.parent.as_ref()?;
    match records.get(parent) {
        None => Some(Problem::SnapshotParentMissing {
            snapshotter: snapshotter.to_string(),
            key: record.key.clone(),
            parent: parent.clone(),
        }),
        Some(p) if p.kind != SnapshotKind::Committed => Some(Problem::SnapshotParentNotCommitted {
            snapshotter: snapshotter.to_string(),
            key: record.key.clone(),
            parent: parent.clone(),
        }),
        Some(_) => None,
    }
}

/// Adds to `broken` every snapshot that descends from one in it.
fn with_descendants(
    broken: &mut HashSet<String>,
    records: &BTreeMap<String, hoist_metadata::SnapshotRecord>,
) {
    let mut grew = true;
    while grew {
        grew = false;
        for record in records.values() {
            if let Some(parent) = &record.parent
                && broken.contains(parent)
                && broken.insert(record.key.clone())
            {
                grew = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(engine: &Engine, body: &[u8]) -> Digest {
        let digest = hoist_oci::sha256_digest(body);
        let writer = engine
            .content
            .writer(
                digest.as_ref(),
                hoist_content::Expected::new(digest.clone(), Some(body.len() as u64)),
            )
            .unwrap();
        hoist_content::copy(writer, body).unwrap();
        digest
    }

    /// [`put`] and recorded in the metadata store, as a pull leaves a blob.
    fn put_recorded(engine: &Engine, body: &[u8]) -> Digest {
        let digest = put(engine, body);
        engine
            .db
            .put_content(&digest, body.len() as u64, &Labels::new())
            .unwrap();
        digest
    }

    #[test]
    fn a_clean_store_checks_clean() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        put_recorded(&engine, b"hello");
        let report = engine.check(false).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.blobs_checked, 1);
    }

    #[test]
    fn corrupt_missing_and_unrecorded_blobs_are_found_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let corrupt = put_recorded(&engine, b"will be corrupted");
        let path = engine.content.blob_path(&corrupt);
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(
            clippy::permissions_set_readonly_false,
            reason = "a test corrupts a blob"
        )]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::write(&path, b"WILL be corrupted").unwrap();
        let missing = hoist_oci::sha256_digest(b"missing");
        engine.db.put_content(&missing, 7, &Labels::new()).unwrap();
        let unrecorded = put(&engine, b"unrecorded");

        let report = engine.check(false).unwrap();
        assert!(report.repairs.is_empty());
        let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert!(
            report.problems.contains(&Problem::MissingBlob {
                digest: missing.clone()
            }),
            "{lines:?}"
        );
        assert!(
            report.leftovers.contains(&Problem::UnrecordedBlob {
                digest: unrecorded.clone()
            }),
            "{lines:?}"
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| matches!(p, Problem::CorruptBlob { digest, .. } if *digest == corrupt)),
            "{lines:?}"
        );
        assert_eq!(report.problems.len(), 2, "{lines:?}");
        assert_eq!(report.leftovers.len(), 1, "{:?}", report.leftovers);

        let repaired = engine.check(true).unwrap();
        assert_eq!(repaired.repairs.len(), 3, "{:?}", repaired.repairs);
        assert!(!engine.content.contains(&corrupt));
        assert!(engine.db.get_content(&missing).unwrap().is_none());
        assert!(engine.db.get_content(&unrecorded).unwrap().is_some());
        assert!(engine.check(false).unwrap().is_clean());
    }

    #[test]
    fn an_image_whose_target_is_missing_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let target = hoist_oci::sha256_digest(b"{}");
        engine
            .db
            .put_image(&hoist_metadata::Image::new(
                "example.com/app:1",
                hoist_oci::Descriptor::new(
                    hoist_oci::media_type::OCI_MANIFEST.into(),
                    2,
                    target.clone(),
                ),
            ))
            .unwrap();
        let report = engine.check(false).unwrap();
        assert_eq!(
            report.problems,
            vec![Problem::IncompleteImage {
                image: "example.com/app:1".into(),
                digest: target,
                parent: None,
            }]
        );
        assert!(report.problems[0].to_string().contains("incomplete image"));
        let repaired = engine.check(true).unwrap();
        assert_eq!(
            repaired.repairs,
            vec![Repair::KeptIncompleteImage("example.com/app:1".into())]
        );
        assert_eq!(engine.images().unwrap().len(), 1, "the image is kept");
    }
}
