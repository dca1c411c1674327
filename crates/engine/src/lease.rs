//! A pull's hold on the store: the root lock held shared (so a collector
//! waits) and a lease in the metadata database naming every blob the pull
//! writes (so a collector that runs after this process died keeps them until
//! the lease expires).
//!
//! The hold ends when the last clone of a [`Lease`] is dropped. Blocking work
//! a pull starts (writing a blob, applying a layer) keeps a clone, so a pull
//! that is cancelled mid-way releases its lock and deletes its lease only
//! once its disk work is done, never while a collector could still sweep
//! what that work writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use hoist_metadata::{Labels, LeaseResource};
use hoist_oci::Digest;

use crate::lock::RootLock;
use crate::{Engine, Result};

/// How long a lease outlives a killed pull.
const LEASE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A hold on the store for writing; see the module docs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Lease {
    inner: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    id: String,
    db: Arc<hoist_metadata::Db>,
    _writing: RootLock,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Err(error) = self.db.delete_lease(&self.id) {
            tracing::warn!(%error, lease = %self.id, "could not delete a lease");
        }
    }
}

impl Lease {
    /// The lease's id in the metadata database.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Names a blob as this lease's before its first byte is written.
    pub(crate) fn protect_blocking(&self, digest: &Digest) -> Result<()> {
        self.inner
            .db
            .add_lease_resource(&self.inner.id, &LeaseResource::content(digest))?;
        Ok(())
    }

    /// Ends the hold now if this is the last clone, on a blocking thread
    /// (it writes the database); otherwise when the last clone goes.
    pub async fn release(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Engine {
    /// Takes a hold on the store for writing: waits for a running garbage
    /// collection, then records a lease labelled `hoist.pull` = `purpose`
    /// that expires in a day. Every [`Engine::fetch`] and [`Engine::unpack`]
    /// runs under one.
    pub async fn lease(&self, purpose: &str) -> Result<Lease> {
        let root = self.root.clone();
        let db = self.db.clone();
        let purpose = purpose.to_string();
        tokio::task::spawn_blocking(move || -> Result<Lease> {
            let writing = RootLock::shared(&root)?;
            let now = SystemTime::now();
            let nanos = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            // Unique among this process's leases even within one clock tick.
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let id = format!("hoist-pull-{}-{nanos}-{n}", std::process::id());
            let labels = Labels::from([("hoist.pull".to_string(), purpose)]);
            db.create_lease(&id, &labels, Some(now + LEASE_LIFETIME))?;
            Ok(Lease {
                inner: Arc::new(Held {
                    id,
                    db,
                    _writing: writing,
                }),
            })
        })
        .await?
    }
}
