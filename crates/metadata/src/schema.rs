//! The schema: the ordered list of migrations, one per schema version.
//!
//! Append only. A released migration never changes, because databases in the
//! field have already applied it; `PRAGMA user_version` counts how many ran.

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1. Labels are JSON objects (merged with `json_patch`); times are
    // unix nanoseconds; descriptors are oci-spec JSON plus indexed columns.
    r#"
    CREATE TABLE images (
        name              TEXT PRIMARY KEY NOT NULL,
        target            TEXT NOT NULL,
        target_digest     TEXT NOT NULL,
        target_media_type TEXT NOT NULL,
        target_size       INTEGER NOT NULL,
        labels            TEXT NOT NULL DEFAULT '{}',
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX images_by_target_digest ON images (target_digest);

    CREATE TABLE content (
        digest     TEXT PRIMARY KEY NOT NULL,
        size       INTEGER NOT NULL,
        labels     TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE leases (
        id         TEXT PRIMARY KEY NOT NULL,
        labels     TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    ) STRICT;

    CREATE TABLE lease_resources (
        lease TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
        kind  TEXT NOT NULL,
        id    TEXT NOT NULL,
        PRIMARY KEY (lease, kind, id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX lease_resources_by_resource ON lease_resources (kind, id);

    CREATE TABLE snapshots (
        snapshotter TEXT NOT NULL,
        key         TEXT NOT NULL,
        parent      TEXT,
        kind        TEXT NOT NULL CHECK (kind IN ('view', 'active', 'committed')),
        labels      TEXT NOT NULL DEFAULT '{}',
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (snapshotter, key)
    ) STRICT;
    CREATE INDEX snapshots_by_parent ON snapshots (snapshotter, parent);
    "#,
];
