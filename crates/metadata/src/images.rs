//! The `images` table: image names and the root descriptor each points to.

use std::time::SystemTime;

use oci_spec::image::Descriptor;
use rusqlite::{OptionalExtension, Row, params};

use crate::db::{Db, Labels, Stamps, corrupt, labels_to_sql, now, size_to_sql, to_nanos};
use crate::error::Result;

const TABLE: &str = "images";

/// A named image: a reference such as `docker.io/library/alpine:3.20` and its root descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The normalized reference naming the image.
    pub name: String,
    /// The manifest or index the name resolves to.
    pub target: Descriptor,
    /// Free-form labels.
    pub labels: Labels,
    /// When the name was first stored.
    pub created_at: SystemTime,
    /// When the record was last written.
    pub updated_at: SystemTime,
}

impl Image {
    /// An image with no labels, created now.
    pub fn new(name: impl Into<String>, target: Descriptor) -> Self {
        let now = now();
        Self {
            name: name.into(),
            target,
            labels: Labels::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

const COLUMNS: &str = "name, target, labels, created_at, updated_at";

struct Raw {
    name: String,
    target: String,
    stamps: Stamps,
}

impl Raw {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get(0)?,
            target: row.get(1)?,
            stamps: Stamps::from_row(row, 2)?,
        })
    }

    fn decode(self) -> Result<Image> {
        let target = serde_json::from_str(&self.target)
            .map_err(|e| corrupt(TABLE, &self.name, format!("target: {e}")))?;
        Ok(Image {
            labels: self.stamps.labels(TABLE, &self.name)?,
            created_at: self.stamps.created_at(),
            updated_at: self.stamps.updated_at(),
            name: self.name,
            target,
        })
    }
}

impl Db {
    /// Creates or replaces the image `image.name`.
    ///
    /// A new record takes `image.created_at`; an existing one keeps its own.
    /// `updated_at` is always the time of this write.
    pub fn put_image(&self, image: &Image) -> Result<()> {
        self.write(|tx| upsert_image(tx, image, "excluded.labels"))?;
        tracing::debug!(name = image.name, digest = %image.target.digest(), "stored image");
        Ok(())
    }

    /// Points `image.name` at `image.target` in one transaction, as a pull
    /// records its result: when the name already points at that target its
    /// labels are merged (keys in `image.labels` win), otherwise replaced.
    /// Returns the digest the name pointed at before, if any. Two pulls of
    /// one name adding different labels therefore both keep theirs.
    pub fn record_image(&self, image: &Image) -> Result<Option<String>> {
        let previous = self.write(|tx| {
            let previous: Option<String> = tx
                .prepare_cached("SELECT target_digest FROM images WHERE name = ?1")?
                .query_row([&image.name], |row| row.get(0))
                .optional()?;
            upsert_image(
                tx,
                image,
                "CASE WHEN images.target_digest = excluded.target_digest
                      THEN json_patch(images.labels, excluded.labels)
                      ELSE excluded.labels END",
            )?;
            Ok(previous)
        })?;
        tracing::debug!(name = image.name, digest = %image.target.digest(), "recorded image");
        Ok(previous)
    }

    /// The image named `name`, if any.
    pub fn get_image(&self, name: &str) -> Result<Option<Image>> {
        let raw = self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM images WHERE name = ?1"))?
                .query_row([name], Raw::from_row)
                .optional()?)
        })?;
        raw.map(Raw::decode).transpose()
    }

    /// Every image, ordered by name.
    pub fn list_images(&self) -> Result<Vec<Image>> {
        let raws = self.read(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM images ORDER BY name"))?;
            let rows = stmt.query_map([], Raw::from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        raws.into_iter().map(Raw::decode).collect()
    }

    /// Removes the image `name`; `false` if there was none.
    pub fn delete_image(&self, name: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM images WHERE name = ?1")?
                .execute([name])?
                > 0)
        })
    }
}

/// Inserts or updates an image record; `labels` is the SQL expression the
/// labels of an existing record become (SET expressions see the old row as
/// `images` and the new one as `excluded`).
fn upsert_image(tx: &rusqlite::Transaction<'_>, image: &Image, labels: &str) -> Result<()> {
    let target = serde_json::to_string(&image.target).expect("a descriptor always serializes");
    tx.prepare_cached(&format!(
        "INSERT INTO images (name, target, target_digest, target_media_type, target_size,
                                 labels, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (name) DO UPDATE SET
                 labels = {labels},
                 target = excluded.target,
                 target_digest = excluded.target_digest,
                 target_media_type = excluded.target_media_type,
                 target_size = excluded.target_size,
                 updated_at = excluded.updated_at"
    ))?
    .execute(params![
        image.name,
        target,
        image.target.digest().to_string(),
        image.target.media_type().to_string(),
        size_to_sql(image.target.size())?,
        labels_to_sql(&image.labels),
        to_nanos(image.created_at),
        to_nanos(now()),
    ])?;
    Ok(())
}
