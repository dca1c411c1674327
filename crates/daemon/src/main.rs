//! `hoistd`: serves the CRI ImageService and the Docker Engine image API on
//! unix sockets, and Prometheus metrics over HTTP, on one shared engine.
//!
//! Flags override the config file (`/etc/hoist/config.toml`). SIGTERM or
//! SIGINT stops accepting, cancels running pulls, waits for their disk work
//! to end (so their leases are released and the store stays consistent),
//! and exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hoist_daemon::{Config, Metrics, Service, config, cri, docker, socket};
use hoist_engine::{Engine, EngineOptions, RegistryOptions};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Serve image pulls to the kubelet (CRI) and the docker CLI.
#[derive(Parser)]
#[command(name = "hoistd", version, about)]
struct Args {
    /// The config file [default: /etc/hoist/config.toml, if present]
    #[arg(long, env = "HOISTD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The store root, shared with `hoist` [config `root`]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Serve the CRI ImageService here [config `cri_socket`]
    #[arg(long, value_name = "PATH")]
    cri_socket: Option<PathBuf>,
    /// Serve the Docker Engine API here [config `docker_socket`]
    #[arg(long, value_name = "PATH")]
    docker_socket: Option<PathBuf>,
    /// Serve /metrics on this address [config `metrics_addr`]
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::from(error)),
    };
    let result = runtime.block_on(run(args));
    // Dropping the runtime waits for blocking work still running (a
    // cancelled pull's disk writes), which releases its lock and lease.
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    #[allow(clippy::print_stderr, reason = "the binary reports errors")]
    {
        eprintln!("hoistd: {error:#}");
    }
    ExitCode::FAILURE
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(std::path::Path::new(config::DEFAULT_PATH), false)?,
    };
    if let Some(root) = args.root {
        config.root = root;
    }
    if let Some(path) = args.cri_socket {
        config.cri_socket = Some(path);
    }
    if let Some(path) = args.docker_socket {
        config.docker_socket = Some(path);
    }
    if let Some(addr) = args.metrics_addr {
        config.metrics_addr = Some(addr);
    }

    let engine = Engine::open_with(
        &config.root,
        EngineOptions {
            registry: RegistryOptions {
                hosts_dir: config.hosts_dir.clone(),
                ..RegistryOptions::default()
            },
            max_concurrent_downloads: config.max_concurrent_downloads,
            max_concurrent_unpacks: config.max_concurrent_unpacks,
            sync: config.sync,
        },
    )
    .with_context(|| format!("opening {}", config.root.display()))?;
    // Opening a snapshotter probes the kernel (a test overlay mount); do it
    // now rather than inside the first pull.
    for name in config
        .runtime_handlers
        .values()
        .map(|h| Some(h.snapshotter.as_str()))
        .chain([config.snapshotter.as_deref()])
    {
        let engine = engine.clone();
        let label = name.unwrap_or("default").to_string();
        let name = name.map(str::to_string);
        tokio::task::spawn_blocking(move || engine.snapshotter(name.as_deref()))
            .await?
            .with_context(|| format!("opening the {label} snapshotter"))?;
    }

    let (stop, stopping) = watch::channel(false);
    let metrics = Metrics::new();
    let service = Service::new(engine, config.clone(), metrics.clone(), stopping.clone());
    let shutdown = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };

    let mut servers = tokio::task::JoinSet::new();
    if let Some(path) = &config.cri_socket {
        let listener = socket::bind(path)?;
        tracing::info!(socket = %path.display(), "serving the CRI ImageService");
        servers.spawn(
            cri::serve(service.clone(), listener, shutdown())
                .map_result(|e| anyhow::anyhow!("CRI server: {e}")),
        );
    }
    if let Some(path) = &config.docker_socket {
        let listener = socket::bind(path)?;
        tracing::info!(socket = %path.display(), "serving the Docker Engine API");
        servers.spawn(
            docker::serve(service.clone(), listener, shutdown())
                .map_result(|e| anyhow::anyhow!("Docker API server: {e}")),
        );
    }
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} for metrics"))?;
        tracing::info!(%addr, "serving /metrics");
        let router = metrics.router();
        let stopped = shutdown();
        servers.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
                .map_err(|e| anyhow::anyhow!("metrics server: {e}"))
        });
    }
    if servers.is_empty() {
        anyhow::bail!("nothing to serve: no CRI socket, Docker socket or metrics address");
    }

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let outcome = tokio::select! {
        _ = terminate.recv() => Ok(()),
        _ = interrupt.recv() => Ok(()),
        Some(ended) = servers.join_next() => match ended {
            Ok(Ok(())) => Err(anyhow::anyhow!("a server stopped unexpectedly")),
            Ok(Err(error)) => Err(error),
            Err(error) => Err(error.into()),
        },
    };
    tracing::info!("shutting down");
    let _ = stop.send(true);
    while let Some(ended) = servers.join_next().await {
        if let Ok(Err(error)) = ended {
            tracing::warn!(%error, "server ended with an error");
        }
    }
    for path in [&config.cri_socket, &config.docker_socket]
        .into_iter()
        .flatten()
    {
        let _ = std::fs::remove_file(path);
    }
    outcome
}

/// Maps a server future's error into `anyhow`.
trait MapResult<T, E>: std::future::Future<Output = Result<T, E>> + Sized {
    fn map_result<F>(self, f: F) -> impl std::future::Future<Output = anyhow::Result<T>>
    where
        F: FnOnce(E) -> anyhow::Error,
    {
        async move { self.await.map_err(f) }
    }
}

impl<T, E, Fut: std::future::Future<Output = Result<T, E>>> MapResult<T, E> for Fut {}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
