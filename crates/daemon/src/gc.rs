//! The garbage collection scheduler, as containerd's: a collection runs by
//! itself after events that leave garbage (an image removed, a pull that
//! discarded its compressed layers), never while a pull holds the store
//! (the engine's root lock keeps them apart), and never more than its
//! pause share of the time.

use std::time::{Duration, Instant};

use hoist_engine::{Engine, GcOptions};
use tokio::sync::mpsc;

use crate::config::GcConfig;
use crate::metrics::Metrics;

/// Handle to the scheduler task; dropping every handle stops it.
#[derive(Debug, Clone)]
pub(crate) struct GcScheduler {
    triggers: mpsc::UnboundedSender<()>,
}

impl GcScheduler {
    /// Starts the scheduler task on the current runtime.
    pub(crate) fn start(engine: Engine, config: GcConfig, metrics: Metrics) -> GcScheduler {
        let (triggers, received) = mpsc::unbounded_channel();
        tokio::spawn(run(engine, config, metrics, received));
        GcScheduler { triggers }
    }

    /// Asks for a collection after `schedule_delay`; triggers that arrive
    /// before it starts share it.
    pub(crate) fn trigger(&self) {
        let _ = self.triggers.send(());
    }
}

async fn run(
    engine: Engine,
    config: GcConfig,
    metrics: Metrics,
    mut triggers: mpsc::UnboundedReceiver<()>,
) {
    let mut earliest = tokio::time::Instant::now();
    while triggers.recv().await.is_some() {
        let start = earliest.max(tokio::time::Instant::now() + config.schedule_delay);
        tokio::time::sleep_until(start).await;
        // Everything asked for until now is served by this run.
        while triggers.try_recv().is_ok() {}
        let engine = engine.clone();
        let began = Instant::now();
        let report = tokio::task::spawn_blocking(move || engine.gc(GcOptions::default())).await;
        let took = began.elapsed();
        match report {
            Ok(Ok(report)) => {
                metrics.gc_ran(report.bytes());
                tracing::info!(
                    blobs = report.blobs.len(),
                    snapshots = report.snapshots.len(),
                    freed_bytes = report.bytes(),
                    took_ms = took.as_millis() as u64,
                    "garbage collected"
                );
            }
            Ok(Err(error)) => tracing::warn!(%error, "garbage collection failed"),
            Err(error) => tracing::warn!(%error, "garbage collection task failed"),
        }
        // Collections hold the store exclusively; keep them to the pause
        // share of the time.
        earliest = tokio::time::Instant::now() + pause_gap(took, config.pause_threshold);
    }
}

/// How long to wait after a collection that took `took` so that
/// collections hold the store at most `pause_threshold` of the time.
fn pause_gap(took: Duration, pause_threshold: f64) -> Duration {
    let total = took.as_secs_f64() / pause_threshold;
    Duration::from_secs_f64((total - took.as_secs_f64()).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_share_bounds_the_rate() {
        // 20 ms at 2 % means one collection per second: 980 ms between.
        let gap = pause_gap(Duration::from_millis(20), 0.02);
        assert!(
            gap.abs_diff(Duration::from_millis(980)) < Duration::from_micros(10),
            "{gap:?}"
        );
        assert_eq!(pause_gap(Duration::from_millis(20), 1.0), Duration::ZERO);
    }
}
