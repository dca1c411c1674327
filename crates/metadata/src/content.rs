//! The `content` table: one record per blob, carrying its labels (GC
//! references, distribution sources) since the blob store has none.

use std::time::SystemTime;

use oci_spec::image::Digest;
use rusqlite::{OptionalExtension, Row, params};

use crate::db::{
    Db, Labels, Stamps, corrupt, labels_to_sql, now, size_from_sql, size_to_sql, to_nanos,
};
use crate::error::Result;

const TABLE: &str = "content";

/// What the database records about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRecord {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Labels such as `containerd.io/gc.ref.content.l.0`.
    pub labels: Labels,
    /// When the blob was first recorded.
    pub created_at: SystemTime,
    /// When the record was last written.
    pub updated_at: SystemTime,
}

const COLUMNS: &str = "digest, size, labels, created_at, updated_at";

struct Raw {
    digest: String,
    size: i64,
    stamps: Stamps,
}

impl Raw {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            digest: row.get(0)?,
            size: row.get(1)?,
            stamps: Stamps::from_row(row, 2)?,
        })
    }

    fn decode(self) -> Result<ContentRecord> {
        let digest = Digest::try_from(self.digest.as_str())
            .map_err(|e| corrupt(TABLE, &self.digest, format!("digest: {e}")))?;
        Ok(ContentRecord {
            size: size_from_sql(self.size, TABLE, &self.digest)?,
            labels: self.stamps.labels(TABLE, &self.digest)?,
            digest,
            created_at: self.stamps.created_at(),
            updated_at: self.stamps.updated_at(),
        })
    }
}

impl Db {
    /// Records a blob, or updates its record, merging `labels` into the
    /// existing ones: keys in `labels` are added or overwritten, others kept.
    /// A record that already has this size and every one of these labels is
    /// left as it is, untouched (`updated_at` too): a re-pull of what is
    /// stored writes nothing.
    pub fn put_content(&self, digest: &Digest, size: u64, labels: &Labels) -> Result<()> {
        self.put_contents(&[(digest.clone(), size)], labels)
    }

    /// [`put_content`](Self::put_content) for many blobs with the same
    /// labels: the records are read in one transaction and the ones that
    /// change written in another, so recording what a warm re-pull found
    /// stored takes two transactions, not two per blob.
    pub fn put_contents(&self, blobs: &[(Digest, u64)], labels: &Labels) -> Result<()> {
        let current = |record: &ContentRecord, size: u64| {
            record.size == size
                && labels
                    .iter()
                    .all(|(key, value)| record.labels.get(key) == Some(value))
        };
        let raws = self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM content WHERE digest = ?1"))?;
            let raws = blobs
                .iter()
                .map(|(digest, _)| {
                    stmt.query_row([digest.to_string()], Raw::from_row)
                        .optional()
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(stmt);
            tx.commit()?;
            Ok(raws)
        })?;
        let mut stale = Vec::new();
        for ((digest, size), raw) in blobs.iter().zip(raws) {
            match raw.map(Raw::decode).transpose()? {
                Some(record) if current(&record, *size) => {}
                _ => stale.push((digest, size_to_sql(*size)?)),
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        let labels = labels_to_sql(labels);
        let now = to_nanos(now());
        self.write(|tx| {
            // json_patch merges objects key by key; label values are strings,
            // never null, so it never deletes a key.
            let mut stmt = tx.prepare_cached(
                "INSERT INTO content (digest, size, labels, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (digest) DO UPDATE SET
                     size = excluded.size,
                     labels = json_patch(content.labels, excluded.labels),
                     updated_at = excluded.updated_at",
            )?;
            for (digest, size) in &stale {
                stmt.execute(params![digest.to_string(), size, labels, now])?;
            }
            Ok(())
        })
    }

    /// Removes the labels whose keys start with `prefix` from blob
    /// `digest`'s record (e.g. the GC edges to layers a pull discarded);
    /// returns how many were removed.
    pub fn remove_content_labels(&self, digest: &Digest, prefix: &str) -> Result<usize> {
        let Some(record) = self.get_content(digest)? else {
            return Ok(0);
        };
        let doomed: Vec<&String> = record
            .labels
            .keys()
            .filter(|key| key.starts_with(prefix))
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        self.write(|tx| {
            for key in &doomed {
                // json_remove takes a JSON path; quoting the key keeps the
                // dots in label keys from being read as path separators.
                let path = format!("$.\"{}\"", key.replace('"', "\\\""));
                tx.prepare_cached(
                    "UPDATE content SET labels = json_remove(labels, ?2), updated_at = ?3
                     WHERE digest = ?1",
                )?
                .execute(params![digest.to_string(), path, to_nanos(now())])?;
            }
            Ok(doomed.len())
        })
    }

    /// The record of blob `digest`, if any.
    pub fn get_content(&self, digest: &Digest) -> Result<Option<ContentRecord>> {
        let raw = self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM content WHERE digest = ?1"))?
                .query_row([digest.to_string()], Raw::from_row)
                .optional()?)
        })?;
        raw.map(Raw::decode).transpose()
    }

    /// Every blob record, ordered by digest.
    pub fn list_content(&self) -> Result<Vec<ContentRecord>> {
        let raws = self.read(|conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {COLUMNS} FROM content ORDER BY digest"))?;
            let rows = stmt.query_map([], Raw::from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        raws.into_iter().map(Raw::decode).collect()
    }

    /// Removes the record of blob `digest`; `false` if there was none.
    pub fn delete_content(&self, digest: &Digest) -> Result<bool> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM content WHERE digest = ?1")?
                .execute([digest.to_string()])?
                > 0)
        })
    }
}
