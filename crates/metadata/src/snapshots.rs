//! The `snapshots` table: per-snapshotter records of snapshot keys, their
//! parents and kinds. Plain CRUD; the snapshot semantics live in the snapshotter.

use std::time::SystemTime;

use rusqlite::{OptionalExtension, Row, params};

use crate::db::{Db, Labels, Stamps, corrupt, labels_to_sql, now, to_nanos};
use crate::error::Result;

const TABLE: &str = "snapshots";

/// The lifecycle state of a snapshot, as in containerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotKind {
    /// A read-only view of a committed snapshot.
    View,
    /// A writable snapshot being filled.
    Active,
    /// An immutable snapshot that can be a parent.
    Committed,
}

impl SnapshotKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Active => "active",
            Self::Committed => "committed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "view" => Some(Self::View),
            "active" => Some(Self::Active),
            "committed" => Some(Self::Committed),
            _ => None,
        }
    }
}

/// What the database records about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The snapshotter owning the snapshot (e.g. `overlayfs`).
    pub snapshotter: String,
    /// The snapshot's key, unique per snapshotter.
    pub key: String,
    /// The key of the parent snapshot, if any.
    pub parent: Option<String>,
    /// The lifecycle state.
    pub kind: SnapshotKind,
    /// Free-form labels.
    pub labels: Labels,
    /// When the snapshot was first recorded.
    pub created_at: SystemTime,
    /// When the record was last written.
    pub updated_at: SystemTime,
}

const COLUMNS: &str = "snapshotter, key, parent, kind, labels, created_at, updated_at";

struct Raw {
    snapshotter: String,
    key: String,
    parent: Option<String>,
    kind: String,
    stamps: Stamps,
}

impl Raw {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            snapshotter: row.get(0)?,
            key: row.get(1)?,
            parent: row.get(2)?,
            kind: row.get(3)?,
            stamps: Stamps::from_row(row, 4)?,
        })
    }

    fn decode(self) -> Result<SnapshotRecord> {
        let kind = SnapshotKind::parse(&self.kind)
            .ok_or_else(|| corrupt(TABLE, &self.key, format!("kind {:?}", self.kind)))?;
        Ok(SnapshotRecord {
            labels: self.stamps.labels(TABLE, &self.key)?,
            created_at: self.stamps.created_at(),
            updated_at: self.stamps.updated_at(),
            snapshotter: self.snapshotter,
            key: self.key,
            parent: self.parent,
            kind,
        })
    }
}

impl Db {
    /// Creates or replaces the snapshot `(s.snapshotter, s.key)`.
    ///
    /// A new record takes `s.created_at`; an existing one keeps its own.
    /// `updated_at` is always the time of this write.
    pub fn put_snapshot(&self, s: &SnapshotRecord) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("INSERT INTO snapshots (snapshotter, key, parent, kind, labels, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (snapshotter, key) DO UPDATE SET
                     parent = excluded.parent,
                     kind = excluded.kind,
                     labels = excluded.labels,
                     updated_at = excluded.updated_at")?.execute(params![
                    s.snapshotter,
                    s.key,
                    s.parent,
                    s.kind.as_str(),
                    labels_to_sql(&s.labels),
                    to_nanos(s.created_at),
                    to_nanos(now()),
                ])?;
            Ok(())
        })
    }

    /// The snapshot `key` of `snapshotter`, if any.
    pub fn get_snapshot(&self, snapshotter: &str, key: &str) -> Result<Option<SnapshotRecord>> {
        let raw = self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM snapshots WHERE snapshotter = ?1 AND key = ?2"
                ))?
                .query_row([snapshotter, key], Raw::from_row)
                .optional()?)
        })?;
        raw.map(Raw::decode).transpose()
    }

    /// Every snapshot of `snapshotter`, ordered by key.
    pub fn list_snapshots(&self, snapshotter: &str) -> Result<Vec<SnapshotRecord>> {
        let raws = self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM snapshots WHERE snapshotter = ?1 ORDER BY key"
            ))?;
            let rows = stmt.query_map([snapshotter], Raw::from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        raws.into_iter().map(Raw::decode).collect()
    }

    /// Removes the snapshot `key` of `snapshotter`; `false` if there was none.
    pub fn delete_snapshot(&self, snapshotter: &str, key: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM snapshots WHERE snapshotter = ?1 AND key = ?2")?
                .execute([snapshotter, key])?
                > 0)
        })
    }
}
