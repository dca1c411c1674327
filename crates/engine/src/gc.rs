//! Garbage collection, in containerd's model: mark everything reachable from
//! the roots along the GC references, then sweep the rest.
//!
//! **Roots:** every image record (its target blob), every lease that has not
//! expired (its `content` digests, `ingest` refs and `snapshot/<snapshotter>`
//! keys), and every blob or snapshot labelled `containerd.io/gc.root`.
//!
//! **Edges:** a blob's or snapshot's label `containerd.io/gc.ref.content[.…]`
//! names a blob; `containerd.io/gc.ref.snapshot.<snapshotter>[.…]` names a
//! snapshot of that snapshotter; a snapshot reaches its parent.
//!
//! **Views** made by `hoist snapshots mounts` carry `containerd.io/gc.root`
//! (someone may have mounted them), so they and their parents stay until
//! removed by name (`hoist snapshots rm`). Other views are weak: one is kept
//! while its parent is reachable and goes with it. Active snapshots, such as the
//! `extract-…` ones a killed pull leaves, are garbage unless a lease holds
//! them.
//!
//! **Sweep:** unreachable blobs (file and record), unreachable snapshots
//! (children first), content records whose blob is gone, snapshot
//! directories no record claims (older than the ingest age), and ingests
//! older than the ingest age that no live lease names and no writer holds.
//!
//! The collector holds `<root>/gc.lock` exclusively while it marks and
//! sweeps, so no pull (which holds it shared) decides "already stored" about
//! a blob being deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hoist_metadata::{Labels, SnapshotKind, SnapshotRecord};
use hoist_oci::Digest;

use crate::lock::RootLock;
use crate::{Engine, Error, Result};

use hoist_snapshot::NAMES as SNAPSHOTTERS;

use crate::labels::{GC_REF_CONTENT, GC_REF_SNAPSHOT, GC_ROOT};

/// How to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Ingests (partial downloads) not written for this long are removed,
    /// unless a live lease names them or a writer holds them. Orphaned
    /// snapshot directories are removed after the same age.
    pub ingest_age: Duration,
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            ingest_age: Duration::from_secs(24 * 3600),
            dry_run: false,
        }
    }
}

/// A blob a collection removed (or would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FreedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A snapshot a collection removed (or would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FreedSnapshot {
    /// The snapshotter holding it.
    pub snapshotter: String,
    /// Its key.
    pub key: String,
}

/// What a collection freed; with [`GcOptions::dry_run`], what it would free.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GcReport {
    /// Whether this was a dry run (nothing was removed).
    pub dry_run: bool,
    /// Unreachable blobs removed (file and record).
    pub blobs: Vec<FreedBlob>,
    /// Content records removed because their blob was gone.
    pub records: Vec<Digest>,
    /// Unreachable snapshots removed, children before parents.
    pub snapshots: Vec<FreedSnapshot>,
    /// Snapshot directories that no record claimed, removed.
    pub orphan_dirs: Vec<PathBuf>,
    /// Stale ingests removed, by reference.
    pub ingests: Vec<String>,
    /// Expired leases removed.
    pub leases: Vec<String>,
}

impl GcReport {
    /// Bytes of the blobs removed.
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// Whether nothing was (or would be) removed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
            && self.records.is_empty()
            && self.snapshots.is_empty()
            && self.orphan_dirs.is_empty()
            && self.ingests.is_empty()
            && self.leases.is_empty()
    }
}

/// A lease as `hoist leases ls` shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaseInfo {
    /// The lease id.
    pub id: String,
    /// Its labels (a pull's lease names the reference under `hoist.pull`).
    pub labels: Labels,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it stops protecting its resources, if ever.
    pub expires_at: Option<SystemTime>,
    /// Whether it has expired (the next collection deletes it).
    pub expired: bool,
    /// Its resources as `(kind, id)`: `content`, `ingest`, `snapshot/<name>`.
    pub resources: Vec<(String, String)>,
}

/// A node of the GC graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    /// A blob, by digest string.
    Content(String),
    /// A snapshot: (snapshotter, key).
    Snapshot(String, String),
}

/// The GC targets named by a record's labels.
pub(crate) fn label_edges(labels: &Labels) -> impl Iterator<Item = Node> + '_ {
    labels.iter().filter_map(|(key, value)| {
        if key == GC_REF_CONTENT || key.starts_with(&format!("{GC_REF_CONTENT}.")) {
            return Some(Node::Content(value.clone()));
        }
        let rest = key.strip_prefix(GC_REF_SNAPSHOT)?;
        // `…snapshot.<snapshotter>` or `…snapshot.<snapshotter>.<anything>`.
        let snapshotter = rest.split('.').next().filter(|s| !s.is_empty())?;
        Some(Node::Snapshot(snapshotter.to_string(), value.clone()))
    })
}

/// Everything the graph needs, read once.
pub(crate) struct Graph {
    /// Content labels by digest string.
    pub(crate) content: HashMap<String, Labels>,
    /// Snapshot records by snapshotter, then key.
    pub(crate) snapshots: BTreeMap<String, BTreeMap<String, SnapshotRecord>>,
}

impl Graph {
    fn edges(&self, node: &Node) -> Vec<Node> {
        match node {
            Node::Content(digest) => self
                .content
                .get(digest)
                .map(|labels| label_edges(labels).collect())
                .unwrap_or_default(),
            Node::Snapshot(snapshotter, key) => {
                let Some(record) = self.snapshots.get(snapshotter).and_then(|s| s.get(key)) else {
                    return Vec::new();
                };
                let mut edges: Vec<Node> = label_edges(&record.labels).collect();
                if let Some(parent) = &record.parent {
                    edges.push(Node::Snapshot(snapshotter.clone(), parent.clone()));
                }
                edges
            }
        }
    }

    /// Everything reachable from `roots`; views of reachable snapshots are
    /// reachable too.
    pub(crate) fn mark(&self, roots: impl IntoIterator<Item = Node>) -> HashSet<Node> {
        let mut marked = HashSet::new();
        let mut stack: Vec<Node> = roots.into_iter().collect();
        loop {
            while let Some(node) = stack.pop() {
                if marked.contains(&node) {
                    continue;
                }
                stack.extend(self.edges(&node));
                marked.insert(node);
            }
            for (snapshotter, records) in &self.snapshots {
                for record in records.values() {
                    let node = Node::Snapshot(snapshotter.clone(), record.key.clone());
                    let parent_marked = record.parent.as_ref().is_some_and(|parent| {
                        marked.contains(&Node::Snapshot(snapshotter.clone(), parent.clone()))
                    });
                    if record.kind == SnapshotKind::View && parent_marked && !marked.contains(&node)
                    {
                        stack.push(node);
                    }
                }
            }
            if stack.is_empty() {
                return marked;
            }
        }
    }
}

impl Engine {
    /// Collects garbage: deletes expired leases, marks what the roots reach,
    /// and sweeps the rest (see the module docs of `gc`). Holds the root's
    /// GC lock exclusively meanwhile, so it waits for running pulls and
    /// pulls wait for it. Blocking.
    pub fn gc(&self, options: GcOptions) -> Result<GcReport> {
        let _collecting = RootLock::exclusive(&self.root)?;
        let now = SystemTime::now();
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };

        // Expired leases protect nothing; drop them first.
        let mut roots = Vec::new();
        let mut leased_ingests = HashSet::new();
        for lease in self.db.list_leases()? {
            if lease.expires_at.is_some_and(|at| at <= now) {
                if !options.dry_run {
                    self.db.delete_lease(&lease.id)?;
                }
                report.leases.push(lease.id);
                continue;
            }
            for resource in self.db.lease_resources(&lease.id)? {
                match resource.kind.as_str() {
                    "content" => {
                        // A pull names its ingests by digest: protect those too.
                        leased_ingests.insert(resource.id.clone());
                        roots.push(Node::Content(resource.id));
                    }
                    "ingest" => {
                        leased_ingests.insert(resource.id);
                    }
                    kind => {
                        if let Some(snapshotter) = kind.strip_prefix("snapshot/") {
                            roots.push(Node::Snapshot(snapshotter.to_string(), resource.id));
                        }
                    }
                }
            }
        }

        let graph = self.graph()?;
        for image in self.db.list_images()? {
            roots.push(Node::Content(image.target.digest().to_string()));
        }
        for (digest, labels) in &graph.content {
            if labels.contains_key(GC_ROOT) {
                roots.push(Node::Content(digest.clone()));
            }
        }
        for (snapshotter, records) in &graph.snapshots {
            for record in records.values() {
                if record.labels.contains_key(GC_ROOT) {
                    roots.push(Node::Snapshot(snapshotter.clone(), record.key.clone()));
                }
            }
        }
        let marked = graph.mark(roots);

        self.sweep_snapshots(&graph, &marked, &options, &mut report)?;
        self.sweep_content(&marked, &options, &mut report)?;
        self.sweep_ingests(&leased_ingests, now, &options, &mut report)?;
        tracing::debug!(
            blobs = report.blobs.len(),
            bytes = report.bytes(),
            snapshots = report.snapshots.len(),
            ingests = report.ingests.len(),
            leases = report.leases.len(),
            dry_run = options.dry_run,
            "garbage collected"
        );
        Ok(report)
    }

    /// Every lease with its resources, by id.
    pub fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let now = SystemTime::now();
        let mut leases = Vec::new();
        for lease in self.db.list_leases()? {
            let resources = match self.db.lease_resources(&lease.id) {
                Ok(resources) => resources,
                // Deleted between the two reads.
                Err(hoist_metadata::Error::LeaseNotFound(_)) => continue,
                Err(error) => return Err(error.into()),
            };
            leases.push(LeaseInfo {
                expired: lease.expires_at.is_some_and(|at| at <= now),
                resources: resources.into_iter().map(|r| (r.kind, r.id)).collect(),
                id: lease.id,
                labels: lease.labels,
                created_at: lease.created_at,
                expires_at: lease.expires_at,
            });
        }
        Ok(leases)
    }

    /// The snapshotters that exist under `<root>/snapshots`.
    pub(crate) fn existing_snapshotters(&self) -> Vec<&'static str> {
        SNAPSHOTTERS
            .into_iter()
            .filter(|name| self.root.join("snapshots").join(name).is_dir())
            .collect()
    }

    /// Every content record's labels, by digest.
    pub(crate) fn content_labels(&self) -> Result<HashMap<String, Labels>> {
        Ok(self
            .db
            .list_content()?
            .into_iter()
            .map(|record| (record.digest.to_string(), record.labels))
            .collect())
    }

    /// The snapshot records of `snapshotter`, by key.
    pub(crate) fn snapshot_records(
        &self,
        snapshotter: &str,
    ) -> Result<BTreeMap<String, SnapshotRecord>> {
        Ok(self
            .db
            .list_snapshots(snapshotter)?
            .into_iter()
            .map(|record| (record.key.clone(), record))
            .collect())
    }

    /// Reads the GC graph: content labels and snapshot records.
    pub(crate) fn graph(&self) -> Result<Graph> {
        let content = self.content_labels()?;
        let mut snapshots = BTreeMap::new();
        for name in self.existing_snapshotters() {
            snapshots.insert(name.to_string(), self.snapshot_records(name)?);
        }
        Ok(Graph { content, snapshots })
    }

    fn sweep_snapshots(
        &self,
        graph: &Graph,
        marked: &HashSet<Node>,
        options: &GcOptions,
        report: &mut GcReport,
    ) -> Result<()> {
        for (name, records) in &graph.snapshots {
            let doomed: Vec<String> = records
                .keys()
                .filter(|key| !marked.contains(&Node::Snapshot(name.clone(), (*key).clone())))
                .cloned()
                .collect();
            if !doomed.is_empty() {
                if options.dry_run {
                    let order = leaves_first(records, &doomed.iter().cloned().collect());
                    report
                        .snapshots
                        .extend(order.into_iter().map(|key| FreedSnapshot {
                            snapshotter: name.clone(),
                            key,
                        }));
                } else {
                    let snapshotter = match self.snapshotter(Some(name)) {
                        Ok(snapshotter) => snapshotter,
                        Err(error) => {
                            tracing::warn!(%error, snapshotter = %name, "cannot open the snapshotter; its snapshots stay");
                            continue;
                        }
                    };
                    let removed = remove_snapshots(
                        snapshotter.as_ref(),
                        records,
                        &doomed.iter().cloned().collect(),
                    );
                    report
                        .snapshots
                        .extend(removed.into_iter().map(|key| FreedSnapshot {
                            snapshotter: name.clone(),
                            key,
                        }));
                }
            }
            // Directories no record claims: left by a crash between making a
            // snapshot's directory and writing its record.
            let cutoff = SystemTime::now()
                .checked_sub(options.ingest_age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let claimed: HashSet<u64> = self
                .db
                .list_snapshots(name)?
                .iter()
                .filter_map(snapshot_id)
                .collect();
            for (id, dir) in snapshot_dirs(&self.snapshot_dirs_root(name))? {
                if claimed.contains(&id) {
                    continue;
                }
                let modified = std::fs::symlink_metadata(&dir)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::now());
                if modified > cutoff {
                    continue;
                }
                if !options.dry_run
                    && let Err(error) = std::fs::remove_dir_all(&dir)
                {
                    tracing::warn!(%error, dir = %dir.display(), "cannot remove an orphaned snapshot directory");
                    continue;
                }
                report.orphan_dirs.push(dir);
            }
        }
        Ok(())
    }

    fn sweep_content(
        &self,
        marked: &HashSet<Node>,
        options: &GcOptions,
        report: &mut GcReport,
    ) -> Result<()> {
        let stored = self.content.list()?;
        let on_disk: HashSet<String> = stored.iter().map(|i| i.digest.to_string()).collect();
        for info in stored {
            if marked.contains(&Node::Content(info.digest.to_string())) {
                continue;
            }
            if !options.dry_run {
                // The record first, as a pull writes them the other way
                // round: a kill in between leaves a verified blob without a
                // record, a leftover `check` knows (the next collection
                // deletes it, a pull that needs it records it), never a
                // record whose blob is gone.
                self.db.delete_content(&info.digest)?;
                self.content.delete(&info.digest)?;
            }
            report.blobs.push(FreedBlob {
                digest: info.digest,
                size: info.size,
            });
        }
        for record in self.db.list_content()? {
            if on_disk.contains(&record.digest.to_string()) {
                continue;
            }
            if !options.dry_run {
                self.db.delete_content(&record.digest)?;
            }
            report.records.push(record.digest);
        }
        Ok(())
    }

    fn sweep_ingests(
        &self,
        leased: &HashSet<String>,
        now: SystemTime,
        options: &GcOptions,
        report: &mut GcReport,
    ) -> Result<()> {
        for ingest in self.content.ingests()? {
            if leased.contains(&ingest.reference) {
                continue;
            }
            let age = now.duration_since(ingest.updated).unwrap_or_default();
            if age < options.ingest_age {
                continue;
            }
            if options.dry_run {
                report.ingests.push(ingest.reference);
                continue;
            }
            match self.content.abort(&ingest.reference) {
                Ok(()) => report.ingests.push(ingest.reference),
                Err(hoist_content::Error::Locked(reference)) => {
                    tracing::debug!(reference, "ingest is being written; kept");
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// `<root>/snapshots/<name>/snapshots`, where each snapshot's directory is.
    pub(crate) fn snapshot_dirs_root(&self, name: &str) -> PathBuf {
        self.root.join("snapshots").join(name).join("snapshots")
    }
}

/// The directory id a snapshot record claims.
pub(crate) fn snapshot_id(record: &SnapshotRecord) -> Option<u64> {
    record
        .labels
        .get(hoist_snapshot::ID_LABEL)
        .and_then(|id| id.parse().ok())
}

/// The numbered snapshot directories under `dir`.
pub(crate) fn snapshot_dirs(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            dirs.push((id, entry.path()));
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// `doomed` ordered so that every snapshot comes before its parent.
fn leaves_first(
    records: &BTreeMap<String, SnapshotRecord>,
    doomed: &HashSet<String>,
) -> Vec<String> {
    let mut remaining: Vec<&String> = records.keys().filter(|k| doomed.contains(*k)).collect();
    let mut order = Vec::new();
    while !remaining.is_empty() {
        let (leaves, inner): (Vec<&String>, Vec<&String>) = remaining.iter().partition(|key| {
            !remaining
                .iter()
                .any(|other| records[*other].parent.as_deref() == Some(key.as_str()))
        });
        if leaves.is_empty() {
            // A cycle cannot happen (parents are committed first); be safe.
            order.extend(inner.into_iter().cloned());
            break;
        }
        order.extend(leaves.into_iter().cloned());
        remaining = inner;
    }
    order
}

/// Removes the `doomed` snapshots, children before parents; returns the keys
/// removed. A snapshot whose directory is already gone counts as removed;
/// other failures are logged and leave the snapshot (and its ancestors).
pub(crate) fn remove_snapshots(
    snapshotter: &dyn hoist_snapshot::Snapshotter,
    records: &BTreeMap<String, SnapshotRecord>,
    doomed: &HashSet<String>,
) -> Vec<String> {
    let mut removed = Vec::new();
    let mut failed: HashSet<String> = HashSet::new();
    for key in leaves_first(records, doomed) {
        // A child that could not go keeps its parent.
        let blocked = records.values().any(|r| {
            r.parent.as_deref() == Some(key.as_str())
                && (failed.contains(&r.key) || !doomed.contains(&r.key))
        });
        if blocked {
            failed.insert(key);
            continue;
        }
        match snapshotter.remove(&key) {
            Ok(()) => removed.push(key),
            Err(hoist_snapshot::Error::NotFound { .. }) => removed.push(key),
            Err(hoist_snapshot::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                // The record went first; the directory was already missing.
                removed.push(key);
            }
            Err(error) => {
                tracing::warn!(%error, key, snapshotter = snapshotter.name(), "cannot remove snapshot");
                failed.insert(key);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        key: &str,
        parent: Option<&str>,
        kind: SnapshotKind,
        labels: Labels,
    ) -> SnapshotRecord {
        SnapshotRecord {
            snapshotter: "native".into(),
            key: key.into(),
            parent: parent.map(Into::into),
            kind,
            labels,
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
        }
    }

    fn graph(content: &[(&str, &[(&str, &str)])], snaps: Vec<SnapshotRecord>) -> Graph {
        Graph {
            content: content
                .iter()
                .map(|(d, labels)| {
                    (
                        d.to_string(),
                        labels
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    )
                })
                .collect(),
            snapshots: BTreeMap::from([(
                "native".to_string(),
                snaps.into_iter().map(|r| (r.key.clone(), r)).collect(),
            )]),
        }
    }

    fn content(d: &str) -> Node {
        Node::Content(d.into())
    }

    fn snap(k: &str) -> Node {
        Node::Snapshot("native".into(), k.into())
    }

    #[test]
    fn labels_name_content_and_snapshot_edges() {
        let labels = Labels::from([
            ("containerd.io/gc.ref.content.l.0".into(), "a".into()),
            ("containerd.io/gc.ref.content".into(), "b".into()),
            ("containerd.io/gc.ref.snapshot.overlay".into(), "s".into()),
            (
                "containerd.io/gc.ref.snapshot.native.extra".into(),
                "t".into(),
            ),
            ("containerd.io/gc.ref.contentious".into(), "no".into()),
            ("containerd.io/distribution.source.x".into(), "no".into()),
        ]);
        let mut edges: Vec<Node> = label_edges(&labels).collect();
        edges.sort_by_key(|n| format!("{n:?}"));
        assert_eq!(
            edges,
            vec![
                content("a"),
                content("b"),
                snap("t"),
                Node::Snapshot("overlay".into(), "s".into()),
            ]
        );
    }

    #[test]
    fn marking_follows_labels_and_parents() {
        let g = graph(
            &[
                ("index", &[("containerd.io/gc.ref.content.m.0", "manifest")]),
                (
                    "manifest",
                    &[
                        ("containerd.io/gc.ref.content.config", "config"),
                        ("containerd.io/gc.ref.content.l.0", "layer"),
                    ],
                ),
                ("config", &[("containerd.io/gc.ref.snapshot.native", "top")]),
                ("layer", &[]),
                ("stray", &[("containerd.io/gc.ref.content.l.0", "layer")]),
            ],
            vec![
                record("base", None, SnapshotKind::Committed, Labels::new()),
                record("top", Some("base"), SnapshotKind::Committed, Labels::new()),
                record(
                    "other",
                    Some("base"),
                    SnapshotKind::Committed,
                    Labels::new(),
                ),
                record("view:top", Some("top"), SnapshotKind::View, Labels::new()),
                record(
                    "view:other",
                    Some("other"),
                    SnapshotKind::View,
                    Labels::new(),
                ),
                record(
                    "extract-1",
                    Some("base"),
                    SnapshotKind::Active,
                    Labels::new(),
                ),
            ],
        );
        let marked = g.mark([content("index")]);
        for node in [
            content("index"),
            content("manifest"),
            content("config"),
            content("layer"),
            snap("top"),
            snap("base"),
            snap("view:top"),
        ] {
            assert!(marked.contains(&node), "{node:?} should be reachable");
        }
        for node in [
            content("stray"),
            snap("other"),
            snap("view:other"),
            snap("extract-1"),
        ] {
            assert!(!marked.contains(&node), "{node:?} should be garbage");
        }
    }

    #[test]
    fn snapshot_labels_reach_content() {
        let g = graph(
            &[("blob", &[])],
            vec![record(
                "leased",
                None,
                SnapshotKind::Active,
                Labels::from([("containerd.io/gc.ref.content.x".into(), "blob".into())]),
            )],
        );
        let marked = g.mark([snap("leased")]);
        assert!(marked.contains(&content("blob")));
    }

    #[test]
    fn leaves_come_before_parents() {
        let records: BTreeMap<String, SnapshotRecord> = [
            record("a", None, SnapshotKind::Committed, Labels::new()),
            record("b", Some("a"), SnapshotKind::Committed, Labels::new()),
            record("c", Some("b"), SnapshotKind::Committed, Labels::new()),
            record("d", Some("a"), SnapshotKind::Active, Labels::new()),
        ]
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
        let doomed: HashSet<String> = ["a", "b", "c", "d"].map(String::from).into();
        let order = leaves_first(&records, &doomed);
        let pos = |k: &str| order.iter().position(|o| o == k).unwrap();
        assert!(pos("c") < pos("b"));
        assert!(pos("b") < pos("a"));
        assert!(pos("d") < pos("a"));
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn gc_of_an_empty_root_removes_nothing_and_stale_ingests_go() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let report = engine.gc(GcOptions::default()).unwrap();
        assert!(report.is_empty(), "{report:?}");

        // A blob nobody references, and a stale ingest.
        let digest = hoist_oci::sha256_digest(b"orphan");
        let writer = engine
            .content
            .writer(
                "orphan",
                hoist_content::Expected::new(digest.clone(), Some(6)),
            )
            .unwrap();
        hoist_content::copy(writer, &b"orphan"[..]).unwrap();
        engine.db.put_content(&digest, 6, &Labels::new()).unwrap();
        let partial = hoist_oci::sha256_digest(b"partial");
        let mut writer = engine
            .content
            .writer("partial", hoist_content::Expected::new(partial, Some(7)))
            .unwrap();
        std::io::Write::write_all(&mut writer, b"par").unwrap();
        drop(writer);

        let dry = engine
            .gc(GcOptions {
                ingest_age: Duration::ZERO,
                dry_run: true,
            })
            .unwrap();
        assert_eq!(dry.blobs.len(), 1);
        assert_eq!(dry.ingests, vec!["partial".to_string()]);
        assert!(
            engine.content.contains(&digest),
            "a dry run deletes nothing"
        );

        let report = engine
            .gc(GcOptions {
                ingest_age: Duration::ZERO,
                dry_run: false,
            })
            .unwrap();
        assert_eq!(report.blobs[0].digest, digest);
        assert_eq!(report.bytes(), 6);
        assert_eq!(report.ingests, vec!["partial".to_string()]);
        assert!(!engine.content.contains(&digest));
        assert!(engine.db.get_content(&digest).unwrap().is_none());
        assert!(engine.content.ingests().unwrap().is_empty());
    }

    #[test]
    fn leases_protect_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let digest = hoist_oci::sha256_digest(b"leased");
        let writer = engine
            .content
            .writer("x", hoist_content::Expected::new(digest.clone(), Some(6)))
            .unwrap();
        hoist_content::copy(writer, &b"leased"[..]).unwrap();
        let expires = SystemTime::now() + Duration::from_millis(300);
        engine
            .db
            .create_lease("l", &Labels::new(), Some(expires))
            .unwrap();
        engine
            .db
            .add_lease_resource("l", &hoist_metadata::LeaseResource::content(&digest))
            .unwrap();
        let report = engine.gc(GcOptions::default()).unwrap();
        assert!(report.blobs.is_empty());
        assert!(engine.content.contains(&digest));
        assert_eq!(engine.leases().unwrap().len(), 1);

        std::thread::sleep(Duration::from_millis(400));
        assert!(engine.leases().unwrap()[0].expired);
        let report = engine.gc(GcOptions::default()).unwrap();
        assert_eq!(report.leases, vec!["l".to_string()]);
        assert_eq!(report.blobs.len(), 1);
        assert!(!engine.content.contains(&digest));
        assert!(engine.leases().unwrap().is_empty());
    }
}
