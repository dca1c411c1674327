//! What every front end calls: one [`Service`] per daemon wraps the shared
//! engine with the daemon's defaults (snapshotter per runtime handler,
//! schema 1, discarded layers), the progress timeout, metrics, shutdown,
//! and the garbage collection scheduler.
//!
//! The CRI and Docker front ends translate their requests into a
//! [`PullRequest`] and their answers from the engine's types; neither
//! decides anything a pull does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_engine::{
    Credentials, Engine, Event, PlatformSelection, PullOptions, Pulled, StaticCredentials,
};
use hoist_oci::{Platform, Reference};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::config::Config;
use crate::gc::GcScheduler;
use crate::metrics::Metrics;

/// The engine, the daemon's settings and its metrics, shared by every
/// front end. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: Config,
    metrics: Metrics,
    gc: GcScheduler,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("root", &self.inner.engine.root())
            .finish_non_exhaustive()
    }
}

/// One pull as a front end asks for it.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct PullRequest {
    /// The reference as the client wrote it (`busybox`, `host:5000/app:1`).
    pub reference: String,
    /// Credentials for the reference's registry (CRI `AuthConfig`, docker's
    /// `X-Registry-Auth`); sent to that registry only.
    pub credentials: Option<Credentials>,
    /// The platform to pull; `None` for this machine's.
    pub platform: Option<Platform>,
    /// The CRI runtime handler, which may choose the snapshotter.
    pub runtime_handler: Option<String>,
    /// Where progress events go, besides the service's own watch.
    pub progress: Option<mpsc::UnboundedSender<Event>>,
}

impl PullRequest {
    /// A request for `reference` with every other field at its default.
    pub fn new(reference: impl Into<String>) -> PullRequest {
        PullRequest {
            reference: reference.into(),
            ..PullRequest::default()
        }
    }
}

/// Why a pull through the service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The engine failed (bad reference, registry error, unpack error…).
    #[error(transparent)]
    Engine(#[from] hoist_engine::Error),
    /// No progress for `image_pull_progress_timeout`; the pull was cancelled.
    #[error(
        "cancelled pulling {reference}: no progress for {}s (image_pull_progress_timeout)",
        timeout.as_secs_f64()
    )]
    Stalled {
        /// The normalized reference.
        reference: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The daemon is shutting down; the pull was cancelled.
    #[error("cancelled pulling {reference}: hoistd is shutting down")]
    ShuttingDown {
        /// The normalized reference.
        reference: String,
    },
}

impl Service {
    /// A service over `engine`; `shutdown` turning true cancels running
    /// pulls. Starts the GC scheduler, so it must be called inside a tokio
    /// runtime.
    pub fn new(
        engine: Engine,
        config: Config,
        metrics: Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Service {
        let gc = GcScheduler::start(engine.clone(), config.gc.clone(), metrics.clone());
        Service {
            inner: Arc::new(Inner {
                engine,
                config,
                metrics,
                gc,
                shutdown,
            }),
        }
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The daemon's settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The daemon's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Asks for a garbage collection soon (after an image was removed).
    pub fn collect_garbage_soon(&self) {
        self.inner.gc.trigger();
    }

    /// Pulls and unpacks an image with the daemon's settings.
    ///
    /// Cancelled with [`PullError::Stalled`] when no progress event arrives
    /// for `image_pull_progress_timeout` (every chunk of bytes received or
    /// applied is one, at least once a second while bytes flow), and with
    /// [`PullError::ShuttingDown`] when the daemon stops. A cancelled pull
    /// keeps what it stored; its lease ends once its last disk work ends.
    pub async fn pull(&self, request: PullRequest) -> Result<Pulled, PullError> {
        let reference = Reference::parse(&request.reference).map_err(hoist_engine::Error::from)?;
        let snapshotter = self
            .inner
            .config
            .snapshotter_for(request.runtime_handler.as_deref());
        let span = tracing::info_span!(
            "pull",
            reference = %reference,
            snapshotter = snapshotter.as_deref().unwrap_or("default")
        );
        self.pull_traced(reference, snapshotter, request)
            .instrument(span)
            .await
    }

    async fn pull_traced(
        &self,
        reference: Reference,
        snapshotter: Option<String>,
        request: PullRequest,
    ) -> Result<Pulled, PullError> {
        let name = reference.to_string();
        let config = &self.inner.config;
        let guard = self.inner.metrics.pull_started();
        let started = Instant::now();

        let (events, mut received) = mpsc::unbounded_channel();
        let options = PullOptions {
            platforms: match request.platform {
                Some(platform) => PlatformSelection::Only(vec![platform]),
                None => PlatformSelection::Host,
            },
            credentials: request.credentials.map(|credentials| {
                Arc::new(StaticCredentials::new(reference.domain(), credentials)) as _
            }),
            allow_schema1: config.allow_schema1,
            discard_unpacked_layers: config.discard_unpacked_layers,
            snapshotter,
            progress: Some(events),
            ..PullOptions::default()
        };
        let forward = request.progress;
        let pulling = name.clone();
        let pull = self.inner.engine.pull(&pulling, options);
        tokio::pin!(pull);
        let timeout = config.image_pull_progress_timeout;
        let mut shutdown = self.inner.shutdown.clone();
        let mut last_progress = tokio::time::Instant::now();
        let mut waiting_on_network = WaitingOnNetwork::default();
        let result = loop {
            let stall = tokio::time::sleep_until(last_progress + timeout);
            // Only the network can stall a pull: the clock runs while a
            // reference resolves or a blob is being received, not while
            // blobs queue for a download slot or layers unpack.
            let armed = !timeout.is_zero() && waiting_on_network.any();
            tokio::select! {
                result = &mut pull => break result,
                Some(event) = received.recv() => {
                    last_progress = tokio::time::Instant::now();
                    waiting_on_network.track(&event);
                    if let Some(forward) = &forward {
                        let _ = forward.send(event);
                    }
                }
                () = stall, if armed => {
                    tracing::warn!(reference = %name, ?timeout, "pull made no progress; cancelling");
                    return Err(PullError::Stalled { reference: name, timeout });
                }
                _ = shutdown.wait_for(|stopping| *stopping) => {
                    return Err(PullError::ShuttingDown { reference: name });
                }
            }
        };
        // Events sent before the pull returned are still queued.
        while let Ok(event) = received.try_recv() {
            if let Some(forward) = &forward {
                let _ = forward.send(event);
            }
        }
        let pulled = result?;
        let elapsed = started.elapsed();
        let metrics = &self.inner.metrics;
        metrics.fetched(reference.domain(), pulled.downloaded);
        metrics.throughput(pulled.downloaded, elapsed);
        if let Some(unpack) = pulled.unpack_time {
            metrics.unpacked(unpack);
        }
        if pulled.discarded_layers {
            self.inner.gc.trigger();
        }
        guard.succeeded();
        Ok(pulled)
    }
}

/// What a pull is waiting on the network for, read from its events: the
/// progress timeout only runs while it waits.
#[derive(Debug, Default)]
struct WaitingOnNetwork {
    resolving: bool,
    receiving: std::collections::HashSet<hoist_engine::Digest>,
}

impl WaitingOnNetwork {
    fn track(&mut self, event: &Event) {
        match event {
            Event::Resolving { .. } => self.resolving = true,
            Event::Resolved { .. } => self.resolving = false,
            Event::Fetching { digest, .. } | Event::Downloading { digest, .. } => {
                self.receiving.insert(digest.clone());
            }
            Event::Verifying { digest, .. }
            | Event::Done { digest, .. }
            | Event::AlreadyExists { digest, .. } => {
                self.receiving.remove(digest);
            }
            _ => {}
        }
    }

    fn any(&self) -> bool {
        self.resolving || !self.receiving.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_runs_only_while_the_network_is_awaited() {
        let digest =
            hoist_oci::digest::parse_digest(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let mut waiting = WaitingOnNetwork::default();
        assert!(!waiting.any());
        waiting.track(&Event::Resolving {
            reference: "r".into(),
        });
        assert!(waiting.any());
        waiting.track(&Event::Fetching {
            digest: digest.clone(),
            kind: hoist_engine::BlobKind::Layer,
            host: "h".into(),
        });
        assert!(waiting.any());
        waiting.track(&Event::Done {
            digest,
            kind: hoist_engine::BlobKind::Layer,
            size: 1,
        });
        assert!(waiting.any(), "still resolving");
    }
}
