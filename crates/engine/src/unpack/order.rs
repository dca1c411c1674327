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
//!   committed, so it sees exactly what a serial unpack would show it.
//!
//! Workers take layers bottom first, so the lowest unfinished layer always
//! has a worker and never waits for one above it.

use std::io;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

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
}

/// A layer below failed; its own error is the one reported.
#[derive(Debug)]
pub(crate) struct BelowFailed;

impl Order {
    pub(crate) fn new(layers: usize) -> Order {
        Order {
            stages: Mutex::new(vec![Stage::Waiting; layers]),
            changed: Condvar::new(),
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
}
