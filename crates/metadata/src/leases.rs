//! The `leases` and `lease_resources` tables: named holds that keep content,
//! ingests and snapshots from garbage collection while an operation runs.

use std::time::SystemTime;

use oci_spec::image::Digest;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{Db, Labels, from_nanos, labels_from_sql, labels_to_sql, now, to_nanos};
use crate::error::{Error, Result};

const TABLE: &str = "leases";

/// A lease: while it exists, the resources added to it are GC roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The caller-chosen id.
    pub id: String,
    /// Free-form labels.
    pub labels: Labels,
    /// When the lease was created.
    pub created_at: SystemTime,
    /// When the lease stops protecting its resources, if ever.
    pub expires_at: Option<SystemTime>,
}

/// One resource held by a lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseResource {
    /// `content`, `ingest`, or `snapshot/<snapshotter>`.
    pub kind: String,
    /// The digest, ingest reference, or snapshot key.
    pub id: String,
}

impl LeaseResource {
    /// A committed blob.
    pub fn content(digest: &Digest) -> Self {
        Self {
            kind: "content".to_owned(),
            id: digest.to_string(),
        }
    }

    /// An in-flight ingest, by its reference.
    pub fn ingest(reference: impl Into<String>) -> Self {
        Self {
            kind: "ingest".to_owned(),
            id: reference.into(),
        }
    }

    /// A snapshot of `snapshotter`, by key.
    pub fn snapshot(snapshotter: &str, key: impl Into<String>) -> Self {
        Self {
            kind: format!("snapshot/{snapshotter}"),
            id: key.into(),
        }
    }
}

fn lease_exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM leases WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

impl Db {
    /// Creates lease `id`; [`Error::LeaseExists`] if it exists.
    pub fn create_lease(
        &self,
        id: &str,
        labels: &Labels,
        expires_at: Option<SystemTime>,
    ) -> Result<Lease> {
        let created_at = now();
        let inserted = self.write(|tx| {
            Ok(tx.prepare_cached("INSERT INTO leases (id, labels, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING")?.execute(params![
                    id,
                    labels_to_sql(labels),
                    to_nanos(created_at),
                    expires_at.map(to_nanos)
                ])?)
        })?;
        if inserted == 0 {
            return Err(Error::LeaseExists(id.to_owned()));
        }
        tracing::debug!(lease = id, "created lease");
        Ok(Lease {
            id: id.to_owned(),
            labels: labels.clone(),
            created_at,
            expires_at,
        })
    }

    /// Adds `resource` to lease `lease` (a no-op if it is already there);
    /// [`Error::LeaseNotFound`] if the lease does not exist.
    pub fn add_lease_resource(&self, lease: &str, resource: &LeaseResource) -> Result<()> {
        self.write(|tx| {
            if !lease_exists(tx, lease)? {
                return Err(Error::LeaseNotFound(lease.to_owned()));
            }
            tx.prepare_cached(
                "INSERT INTO lease_resources (lease, kind, id) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![lease, resource.kind, resource.id])?;
            Ok(())
        })
    }

    /// The resources of lease `lease`, ordered by kind then id;
    /// [`Error::LeaseNotFound`] if the lease does not exist.
    pub fn lease_resources(&self, lease: &str) -> Result<Vec<LeaseResource>> {
        self.read(|conn| {
            if !lease_exists(conn, lease)? {
                return Err(Error::LeaseNotFound(lease.to_owned()));
            }
            let mut stmt = conn.prepare(
                "SELECT kind, id FROM lease_resources WHERE lease = ?1 ORDER BY kind, id",
            )?;
            let rows = stmt.query_map([lease], |row| {
                Ok(LeaseResource {
                    kind: row.get(0)?,
                    id: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Every lease, ordered by id.
    pub fn list_leases(&self) -> Result<Vec<Lease>> {
        let raws = self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, labels, created_at, expires_at FROM leases ORDER BY id")?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        raws.into_iter()
            .map(|(id, labels, created_at, expires_at)| {
                Ok(Lease {
                    labels: labels_from_sql(&labels, TABLE, &id)?,
                    id,
                    created_at: from_nanos(created_at),
                    expires_at: expires_at.map(from_nanos),
                })
            })
            .collect()
    }

    /// Removes lease `id` and all its resources; `false` if there was none.
    pub fn delete_lease(&self, id: &str) -> Result<bool> {
        // lease_resources rows go with it through ON DELETE CASCADE.
        let deleted = self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM leases WHERE id = ?1")?
                .execute([id])?
                > 0)
        })?;
        if deleted {
            tracing::debug!(lease = id, "deleted lease");
        }
        Ok(deleted)
    }
}
