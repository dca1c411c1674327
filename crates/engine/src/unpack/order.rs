//! The order a parallel unpack keeps. The layers of one image apply at the
//! same time, each into its own snapshot (on a snapshotter that rebases),
//! but three things still go bottom to top:
//!
//! - taking the snapshotters' per-key locks: a layer locks only after the
//!   one below it did, so two unpacks of one chain (threads or processes,
//!   parallel or not) always lock in the same order and cannot deadlock;
//! - committing: a snapshot's parent must be committed first;
//! - looking at the lowers: a layer that needs them (see
//!   `hoist_archive::LateLowers`) waits until every layer below is
//!   committed, so it sees exactly what a serial unpack would show it;
//! - reporting: a layer's "unpacked" or "already unpacked" event goes out
//!   after those of the layers below it, so progress reads as a serial
//!   unpack's would, whichever worker finished first.
//!
//! Workers take layers bottom first, so the lowest unfinished layer always
//! has a worker and never waits for one above it.

use std::io;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::progress::{Event, Progress};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    Waiting,
    Locked,
    /// Committed, with its layer directory (a lower of the layers above).
    Committed(PathBuf),
    Failed,
}

/// How far each layer of one parallel unpack is, bottom first.
pub(crate) struct Order {
    stages: Mutex<Vec<Stage>>,
    changed: Condvar,
    reports: Mutex<Reports>,
}

/// Final events held until the layers below have reported.
struct Reports {
    /// The lowest layer that has not reported.
    next: usize,
    /// Per layer: `None` until it finishes, then its event, if any.
    held: Vec<Option<Option<Event>>>,
}

/// A layer below failed; its own error is the one reported.
#[derive(Debug)]
pub(crate) struct BelowFailed;

impl Order {
    pub(crate) fn new(layers: usize) -> Order {
        Order {
            stages: Mutex::new(vec![Stage::Waiting; layers]),
            changed: Condvar::new(),
            reports: Mutex::new(Reports {
                next: 0,
                held: (0..layers).map(|_| None).collect(),
            }),
        }
    }

    /// Layer `layer` finished with `event` to report (`None`: nothing, as
    /// when it failed); sends it, and the held events of the layers above
    /// it, once every layer below has reported.
    pub(crate) fn report(&self, layer: usize, event: Option<Event>, progress: &Progress) {
        let mut guard = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let reports = &mut *guard;
        reports.held[layer] = Some(event);
        while let Some(slot) = reports.held.get_mut(reports.next) {
            let Some(event) = slot.take() else {
                break;
            };
            reports.next += 1;
            if let Some(event) = event {
                progress.send(event);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Stage>> {
        self.stages.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, layer: usize, stage: Stage) {
        self.lock()[layer] = stage;
        self.changed.notify_all();
    }

    /// Layer `layer` holds its key lock.
    pub(crate) fn locked(&self, layer: usize) {
        self.set(layer, Stage::Locked);
    }

    /// Layer `layer` is committed; its layer directory is `dir`.
    pub(crate) fn committed(&self, layer: usize, dir: PathBuf) {
        self.set(layer, Stage::Committed(dir));
    }

    /// Layer `layer` failed (or will never be committed).
    pub(crate) fn failed(&self, layer: usize) {
        self.set(layer, Stage::Failed);
    }

    /// Blocks until the layer below `layer` holds its lock (or is done).
    pub(crate) fn wait_below_locked(&self, layer: usize) -> Result<(), BelowFailed> {
        self.wait_below(layer, |stage| *stage != Stage::Waiting)
            .map(drop)
    }

    /// Blocks until the layer below `layer` is committed (and so every
    /// layer below it); returns their directories, topmost first.
    pub(crate) fn wait_below_committed(&self, layer: usize) -> Result<Vec<PathBuf>, BelowFailed> {
        let stages = self.wait_below(layer, |stage| matches!(stage, Stage::Committed(_)))?;
        Ok(stages[..layer]
            .iter()
            .rev()
            .map(|stage| match stage {
                Stage::Committed(dir) => dir.clone(),
                // A parent is committed only after its own parent.
                other => unreachable!("a committed layer above a {other:?} one"),
            })
            .collect())
    }

    /// [`wait_below_committed`](Self::wait_below_committed) as the
    /// applier's late lowers want it.
    pub(crate) fn lowers_below(&self, layer: usize) -> io::Result<Vec<PathBuf>> {
        self.wait_below_committed(layer)
            .map_err(|BelowFailed| io::Error::other("a layer below this one failed to unpack"))
    }

    fn wait_below(
        &self,
        layer: usize,
        reached: impl Fn(&Stage) -> bool,
    ) -> Result<MutexGuard<'_, Vec<Stage>>, BelowFailed> {
        let mut stages = self.lock();
        let Some(below) = layer.checked_sub(1) else {
            return Ok(stages);
        };
        loop {
            match &stages[below] {
                Stage::Failed => return Err(BelowFailed),
                stage if reached(stage) => return Ok(stages),
                _ => {}
            }
            stages = self.changed.wait(stages).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_bottom_layer_waits_for_nothing() {
        let order = Order::new(2);
        order.wait_below_locked(0).unwrap();
        assert_eq!(
            order.wait_below_committed(0).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn lowers_come_topmost_first_once_all_below_are_committed() {
        let order = Arc::new(Order::new(3));
        let waiter = {
            let order = order.clone();
            std::thread::spawn(move || order.wait_below_committed(2).unwrap())
        };
        order.committed(0, PathBuf::from("/l0"));
        order.locked(1);
        order.committed(1, PathBuf::from("/l1"));
        assert_eq!(
            waiter.join().unwrap(),
            vec![PathBuf::from("/l1"), PathBuf::from("/l0")]
        );
    }

    #[test]
    fn a_failure_below_ends_the_wait() {
        let order = Arc::new(Order::new(2));
        let waiter = {
            let order = order.clone();
            std::thread::spawn(move || order.lowers_below(1))
        };
        order.failed(0);
        let error = waiter.join().unwrap().unwrap_err();
        assert!(error.to_string().contains("below"), "{error}");
        assert!(order.wait_below_locked(1).is_err());
    }

    #[test]
    fn events_go_out_bottom_first_whoever_finishes_first() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Progress::new(Some(tx));
        let order = Order::new(4);
        let event = |n: u8| Event::LayerAlreadyUnpacked {
            digest: format!("sha256:{}", format!("{n:x}").repeat(64))
                .parse()
                .unwrap(),
            chain_id: format!("sha256:{}", format!("{n:x}").repeat(64))
                .parse()
                .unwrap(),
        };
        let mut sent = || {
            let mut out = Vec::new();
            while let Ok(Event::LayerAlreadyUnpacked { digest, .. }) = rx.try_recv() {
                out.push(digest.to_string()[7..8].to_string());
            }
            out
        };
        order.report(2, Some(event(2)), &progress);
        order.report(1, Some(event(1)), &progress);
        assert!(sent().is_empty(), "nothing before layer 0");
        order.report(0, Some(event(0)), &progress);
        assert_eq!(sent(), ["0", "1", "2"]);
        // A failed layer reports nothing but lets the ones above through.
        order.report(3, Some(event(3)), &progress);
        assert_eq!(sent(), ["3"]);
        let order = Order::new(2);
        order.report(1, Some(event(1)), &progress);
        order.report(0, None, &progress);
        assert_eq!(sent(), ["1"]);
    }
}
