//! The connection: opening and configuring SQLite, running migrations, and
//! the shared encodings (times, labels, sizes) every table uses.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::schema::MIGRATIONS;

/// Key/value metadata attached to records; ordered so output is stable.
pub type Labels = BTreeMap<String, String>;

/// Long enough that several hoist processes on one root queue for the write
/// lock instead of failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The metadata database of one hoist root.
///
/// One connection behind a mutex, so a `Db` can be shared between threads;
/// other processes open their own `Db` on the same file and SQLite's WAL
/// locking serializes their writes.
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// How many migrations this open applied (0 when the schema was
    /// current), so that "migrated once" can be checked.
    migrated: u32,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Db> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let open_error = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_error)?;
        configure(&conn).map_err(open_error)?;
        // Every query is prepared once per process (`prepare_cached`):
        // parsing SQL was an eighth of a warm 128-layer pull's CPU.
        conn.set_prepared_statement_cache_capacity(64);
        let migrated = migrate(&mut conn)?;
        Ok(Db {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            migrated,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many schema migrations this open applied.
    pub fn migrations_applied(&self) -> u32 {
        self.migrated
    }

    /// The schema version recorded in the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32> {
        self.read(user_version)
    }

    /// Runs `f` on the connection for reads.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.lock())
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits if it succeeds.
    ///
    /// Taking the write lock up front matters in WAL mode: a deferred
    /// transaction that reads and then writes can fail with `SQLITE_BUSY`
    /// without waiting, while an immediate one waits out the busy timeout.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction drops the Transaction, which rolls back, so
        // the connection behind a poisoned mutex is still consistent.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // The busy timeout goes first so that switching to WAL also waits for other processes.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode = set_wal(conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            mode,
            "SQLite did not switch to WAL; concurrent processes will contend more"
        );
    }
    // FULL: a committed pull survives power loss, at one fsync per transaction.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// Switches to WAL, retrying while another connection blocks the switch.
///
/// Changing the journal mode needs an exclusive lock, and SQLite reports
/// `SQLITE_BUSY` for it without consulting the busy handler when several
/// processes open a fresh database at once; so we wait here ourselves, up to
/// the same timeout. Once the file is in WAL mode, later opens never block.
fn set_wal(conn: &Connection) -> rusqlite::Result<String> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn user_version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Brings the schema up to date; returns how many migrations it applied.
fn migrate(conn: &mut Connection) -> Result<u32> {
    let supported = u32::try_from(MIGRATIONS.len()).expect("few migrations");
    let check = |found: u32| {
        if found > supported {
            Err(Error::SchemaTooNew { found, supported })
        } else {
            Ok(found)
        }
    };
    // Most opens find the schema current; skip the write lock for them.
    if check(user_version(conn)?)? == supported {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated while we waited for the lock.
    let found = check(user_version(&tx)?)?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::debug!(to = version + 1, "applying metadata migration");
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", supported)?;
    tx.commit()?;
    Ok(supported - found)
}

pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

/// Unix nanoseconds, saturating outside the ~584 years an `i64` covers.
pub(crate) fn to_nanos(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

pub(crate) fn from_nanos(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

pub(crate) fn size_to_sql(size: u64) -> Result<i64> {
    i64::try_from(size).map_err(|_| Error::SizeOutOfRange(size))
}

pub(crate) fn size_from_sql(size: i64, table: &'static str, key: &str) -> Result<u64> {
    u64::try_from(size).map_err(|_| corrupt(table, key, format!("negative size {size}")))
}

pub(crate) fn labels_to_sql(labels: &Labels) -> String {
    serde_json::to_string(labels).expect("a string map always serializes")
}

pub(crate) fn labels_from_sql(json: &str, table: &'static str, key: &str) -> Result<Labels> {
    serde_json::from_str(json).map_err(|e| corrupt(table, key, format!("labels: {e}")))
}

/// The columns every record table ends with, as stored: its labels (JSON)
/// and its two times (Unix nanoseconds).
pub(crate) struct Stamps {
    labels: String,
    created_at: i64,
    updated_at: i64,
}

impl Stamps {
    /// The three columns of `row` from column `first` on.
    pub(crate) fn from_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Stamps> {
        Ok(Stamps {
            labels: row.get(first)?,
            created_at: row.get(first + 1)?,
            updated_at: row.get(first + 2)?,
        })
    }

    /// The labels, or [`Error::Corrupt`] naming `table` and `key`.
    pub(crate) fn labels(&self, table: &'static str, key: &str) -> Result<Labels> {
        labels_from_sql(&self.labels, table, key)
    }

    /// When the record was created.
    pub(crate) fn created_at(&self) -> SystemTime {
        from_nanos(self.created_at)
    }

    /// When the record was last written.
    pub(crate) fn updated_at(&self) -> SystemTime {
        from_nanos(self.updated_at)
    }
}

pub(crate) fn corrupt(table: &'static str, key: &str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        table,
        key: key.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_nanoseconds() {
        for time in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 1),
        ] {
            assert_eq!(from_nanos(to_nanos(time)), time);
        }
    }

    #[test]
    fn sizes_beyond_i64_are_rejected() {
        assert!(matches!(
            size_to_sql(u64::MAX),
            Err(Error::SizeOutOfRange(u64::MAX))
        ));
        assert_eq!(size_to_sql(7).unwrap(), 7);
    }
}
