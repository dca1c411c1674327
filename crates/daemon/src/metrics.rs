//! The daemon's Prometheus metrics and the `/metrics` endpoint.
//!
//! Metric names (text exposition, `prometheus-client`):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `hoist_image_pulls_total` | counter | `outcome` = `success` / `failure` (the CRI's `image_pulls`) |
//! | `hoist_image_pulls_in_progress` | gauge | |
//! | `hoist_image_pull_throughput_mib_per_second` | histogram | |
//! | `hoist_registry_fetched_bytes_total` | counter | `host` |
//! | `hoist_unpack_seconds` | histogram | |
//! | `hoist_gc_runs_total` | counter | |
//! | `hoist_gc_freed_bytes_total` | counter | |
//! | `process_*` | gauges | resident memory, CPU seconds, open fds, start time |

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `hoist_image_pulls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Labels of `hoist_registry_fetched_bytes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

/// Every metric the daemon keeps. Cheap to clone; clones share the values.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pulls: Family<OutcomeLabels, Counter>,
    in_progress: Gauge,
    throughput: Histogram,
    fetched: Family<HostLabels, Counter>,
    unpack_seconds: Histogram,
    gc_runs: Counter,
    gc_freed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry holding every metric at zero, plus the process collector.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let pulls = Family::<OutcomeLabels, Counter>::default();
        // Both outcomes exist from the start, so a scrape shows zeros.
        for outcome in ["success", "failure"] {
            let _ = pulls.get_or_create(&OutcomeLabels { outcome });
        }
        registry.register("hoist_image_pulls", "Image pulls by outcome", pulls.clone());
        let in_progress = Gauge::default();
        registry.register(
            "hoist_image_pulls_in_progress",
            "Image pulls running now",
            in_progress.clone(),
        );
        // 0.5 MiB/s to 2 GiB/s.
        let throughput = Histogram::new(exponential_buckets(0.5, 2.0, 13));
        registry.register(
            "hoist_image_pull_throughput_mib_per_second",
            "Bytes downloaded per second of pull, for pulls that downloaded",
            throughput.clone(),
        );
        let fetched = Family::<HostLabels, Counter>::default();
        registry.register(
            "hoist_registry_fetched_bytes",
            "Bytes downloaded from each registry host",
            fetched.clone(),
        );
        // 1 ms to about 65 s.
        let unpack_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "hoist_unpack_seconds",
            "Time a pull spent unpacking layers into snapshots",
            unpack_seconds.clone(),
        );
        let gc_runs = Counter::default();
        registry.register("hoist_gc_runs", "Garbage collections run", gc_runs.clone());
        let gc_freed = Counter::default();
        registry.register(
            "hoist_gc_freed_bytes",
            "Bytes of blobs garbage collection removed",
            gc_freed.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Metrics {
            registry: Arc::new(registry),
            pulls,
            in_progress,
            throughput,
            fetched,
            unpack_seconds,
            gc_runs,
            gc_freed,
        }
    }

    /// Marks a pull as started; the guard marks it finished (as a failure
    /// unless [`PullGuard::succeeded`] was called) when dropped, so a
    /// cancelled pull is counted too.
    pub fn pull_started(&self) -> PullGuard {
        self.in_progress.inc();
        PullGuard {
            metrics: self.clone(),
            succeeded: false,
        }
    }

    /// Records bytes downloaded from `host`.
    pub fn fetched(&self, host: &str, bytes: u64) {
        self.fetched
            .get_or_create(&HostLabels {
                host: host.to_string(),
            })
            .inc_by(bytes);
    }

    /// Records a pull's download rate.
    pub fn throughput(&self, bytes: u64, elapsed: Duration) {
        if bytes > 0 && !elapsed.is_zero() {
            let mib = bytes as f64 / (1 << 20) as f64;
            self.throughput.observe(mib / elapsed.as_secs_f64());
        }
    }

    /// Records the time a pull spent unpacking.
    pub fn unpacked(&self, elapsed: Duration) {
        self.unpack_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records a garbage collection and the bytes it freed.
    pub fn gc_ran(&self, freed_bytes: u64) {
        self.gc_runs.inc();
        self.gc_freed.inc_by(freed_bytes);
    }

    /// The whole registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// An HTTP router serving `GET /metrics`.
    pub fn router(&self) -> axum::Router {
        let metrics = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
    }
}

/// A running pull, as the metrics see it.
#[must_use = "dropping the guard ends the pull"]
pub struct PullGuard {
    metrics: Metrics,
    succeeded: bool,
}

impl PullGuard {
    /// The pull succeeded.
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for PullGuard {
    fn drop(&mut self) {
        self.metrics.in_progress.dec();
        let outcome = if self.succeeded { "success" } else { "failure" };
        self.metrics
            .pulls
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

/// `process_*` metrics read from `/proc/self` at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let stat = ProcessStat::read();
        encode_gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            stat.resident_bytes,
        )?;
        if let Some(cpu) = stat.cpu_seconds {
            let counter = ConstCounter::new(cpu);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        encode_gauge(
            &mut encoder,
            "process_open_fds",
            "Open file descriptors",
            stat.open_fds,
        )?;
        encode_gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            stat.start_time_seconds,
        )
    }
}

/// Encodes gauge `name` of `value`, unless the value could not be read.
fn encode_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: Option<u64>,
) -> std::fmt::Result {
    let Some(value) = value else {
        return Ok(());
    };
    let gauge = ConstGauge::new(value as i64);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

/// What `/proc/self` says of this process; each field absent when it
/// cannot be read.
#[derive(Debug, Default)]
struct ProcessStat {
    resident_bytes: Option<u64>,
    cpu_seconds: Option<f64>,
    open_fds: Option<u64>,
    start_time_seconds: Option<u64>,
}

impl ProcessStat {
    fn read() -> ProcessStat {
        // Linux reports both in these units on every architecture hoist
        // runs on (x86_64, aarch64); `sysconf` would need `unsafe` or libc.
        const PAGE_SIZE: u64 = 4096;
        const CLOCK_TICKS: f64 = 100.0;
        let mut found = ProcessStat::default();
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            found.resident_bytes = statm
                .split_whitespace()
                .nth(1)
                .and_then(|pages| pages.parse::<u64>().ok())
                .map(|pages| pages * PAGE_SIZE);
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which may hold spaces.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15, starttime is 22;
                // `rest` starts at field 3.
                let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
                if let (Some(user), Some(system)) = (field(14), field(15)) {
                    found.cpu_seconds = Some((user + system) as f64 / CLOCK_TICKS);
                }
                if let (Some(start), Some(boot)) = (field(22), boot_time()) {
                    found.start_time_seconds = Some(boot + (start as f64 / CLOCK_TICKS) as u64);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            found.open_fds = Some(entries.count() as u64);
        }
        found
    }
}

/// The boot time from `/proc/stat`, in seconds since the epoch.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pulls_by_outcome_and_bytes_by_host() {
        let metrics = Metrics::new();
        metrics.pull_started().succeeded();
        metrics.pull_started().succeeded();
        drop(metrics.pull_started());
        let running = metrics.pull_started();
        metrics.fetched("127.0.0.1:5000", 1000);
        metrics.fetched("127.0.0.1:5000", 24);
        let text = metrics.encode();
        assert!(
            text.contains("hoist_image_pulls_total{outcome=\"success\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("hoist_image_pulls_total{outcome=\"failure\"} 1"),
            "{text}"
        );
        assert!(text.contains("hoist_image_pulls_in_progress 1"), "{text}");
        assert!(
            text.contains("hoist_registry_fetched_bytes_total{host=\"127.0.0.1:5000\"} 1024"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");
        drop(running);
        assert!(metrics.encode().contains("hoist_image_pulls_in_progress 0"));
    }
}
