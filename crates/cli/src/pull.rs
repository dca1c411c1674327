//! `hoist pull`: flags to `PullOptions`, progress through the renderer
//! `--progress` chooses (see [`crate::progress`]), and Ctrl-C handling.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use clap::builder::PossibleValuesParser;
use hoist_engine::{
    Credentials, Engine, EngineOptions, GcOptions, PlatformSelection, PullOptions, RegistryOptions,
    SNAPSHOTTERS, SyncPolicy,
};
use hoist_oci::Platform;
use tokio::sync::{mpsc, oneshot};

use crate::config::CliConfig;
pub(crate) use crate::progress::human_size;
use crate::progress::{self, ProgressForm, PullContext};

/// `--platform` and `--all-platforms`, as `hoist pull`, `hoist import` and
/// `hoist export` take them.
#[derive(Args)]
pub(crate) struct PlatformArgs {
    /// Only this platform of a multi-platform image (os/arch[/variant]);
    /// repeat for several
    #[arg(
        long = "platform",
        value_name = "PLATFORM",
        conflicts_with = "all_platforms"
    )]
    platforms: Vec<String>,

    /// Every platform of a multi-platform image
    #[arg(long)]
    all_platforms: bool,
}

impl PlatformArgs {
    /// What the flags choose: `all` with `--all-platforms`, `only` of the
    /// `--platform`s given, else `default`.
    pub(crate) fn choose<T>(
        &self,
        all: T,
        default: T,
        only: impl FnOnce(Vec<Platform>) -> T,
    ) -> anyhow::Result<T> {
        Ok(if self.all_platforms {
            all
        } else if self.platforms.is_empty() {
            default
        } else {
            only(
                self.platforms
                    .iter()
                    .map(|p| Platform::parse(p))
                    .collect::<Result<_, _>>()?,
            )
        })
    }

    /// The choice for a pull or an import: this machine's platform unless
    /// the flags say otherwise.
    pub(crate) fn selection(&self) -> anyhow::Result<PlatformSelection> {
        self.choose(
            PlatformSelection::All,
            PlatformSelection::Host,
            PlatformSelection::Only,
        )
    }
}

/// Flags of `hoist pull`.
#[derive(Args)]
pub(crate) struct PullArgs {
    /// Image reference, e.g. `alpine`, `127.0.0.1:5000/app:1.0`, `repo@sha256:…`,
    /// or an OCI layout, `oci:DIR[:REF_NAME]` (see `hoist import --help`)
    reference: String,

    #[command(flatten)]
    platforms: PlatformArgs,

    /// Talk plain HTTP to the registry
    #[arg(long)]
    plain_http: bool,

    /// Registry credentials as USER:PASSWORD
    #[arg(
        long,
        short = 'u',
        value_name = "USER:PASSWORD",
        env = "HOIST_USER",
        hide_env_values = true
    )]
    user: Option<String>,

    /// Trust this CA certificate (PEM) in addition to the system roots
    #[arg(long, value_name = "FILE")]
    tlscacert: Vec<PathBuf>,

    /// Registry hosts directory, containerd's layout:
    /// `<dir>/<host:port>/hosts.toml` (mirrors, fallback, TLS, headers),
    /// `<dir>/_default/hosts.toml`, or docker's `ca.crt` / `client.cert`
    /// files [default: /etc/hoist/certs.d, /etc/containerd/certs.d,
    /// /etc/docker/certs.d, the first that configures the registry]
    #[arg(long, value_name = "DIR")]
    hosts_dir: Option<PathBuf>,

    /// Pull every tag of the repository (REFERENCE must not name a tag)
    #[arg(long, short = 'a')]
    all_tags: bool,

    /// Also fetch the manifests and configs of every platform (layers of
    /// the chosen platform only)
    #[arg(long)]
    all_metadata: bool,

    /// Convert Docker schema 1 images to schema 2 instead of refusing them
    #[arg(long)]
    allow_schema1: bool,

    /// Fetch non-distributable (foreign) layers from their URLs, over https
    /// and without registry credentials
    #[arg(long)]
    allow_nondistributable: bool,

    /// Fetch the content only; do not unpack layers into snapshots
    #[arg(long)]
    no_unpack: bool,

    /// Let garbage collection drop compressed layers once unpacked
    #[arg(long, conflicts_with = "no_unpack")]
    discard_unpacked_layers: bool,

    /// Snapshotter to unpack into: overlay or native [default: overlay where
    /// the kernel can mount it, native otherwise]
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(SNAPSHOTTERS))]
    snapshotter: Option<String>,

    /// Download at most this many blobs at once [default: the config's
    /// `max_concurrent_downloads`, else 3]
    #[arg(long, value_name = "N")]
    max_concurrent_downloads: Option<usize>,

    /// What reaches the disk before it counts as stored: full (every blob
    /// fsynced, every snapshot flushed), blobs (snapshots not flushed, as
    /// containerd) or none [default: the config's `sync`, else full]
    #[arg(long, value_name = "POLICY", value_parser = ["full", "blobs", "none"])]
    sync: Option<String>,

    /// Print nothing but the result
    #[arg(long, short)]
    quiet: bool,

    /// How to show progress
    #[arg(long, value_enum, default_value_t = ProgressForm::Auto, value_name = "FORM")]
    progress: ProgressForm,
}

impl PullArgs {
    /// The flags, with the config file's values where no flag was given.
    fn with_config(mut self, config: &CliConfig) -> PullArgs {
        self.snapshotter = self.snapshotter.or_else(|| config.snapshotter.clone());
        self.hosts_dir = self.hosts_dir.or_else(|| config.hosts_dir.clone());
        self.max_concurrent_downloads = self
            .max_concurrent_downloads
            .or(config.max_concurrent_downloads);
        self.sync = self.sync.or_else(|| config.sync.clone());
        self.allow_schema1 |= config.allow_schema1.unwrap_or(false);
        self.discard_unpacked_layers |=
            !self.no_unpack && config.discard_unpacked_layers.unwrap_or(false);
        self
    }

    /// Blobs downloaded at once: the flag, the config, or docker's 3.
    fn downloads(&self) -> usize {
        self.max_concurrent_downloads.unwrap_or(3)
    }
}

/// The pull was interrupted by Ctrl-C; `main` exits with status 130.
#[derive(Debug)]
pub(crate) struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

pub(crate) async fn run(root: &Path, args: PullArgs, config: &CliConfig) -> anyhow::Result<()> {
    let args = args.with_config(config);
    let engine = Engine::open_with(root, engine_options(&args)?)
        .with_context(|| format!("opening {}", root.display()))?;
    if !args.all_tags {
        return pull_one(&engine, &args, &args.reference).await;
    }
    if crate::layout::layout_reference(&args.reference).is_some() {
        anyhow::bail!("--all-tags lists a registry's tags; an OCI layout has none to list");
    }
    let reference = hoist_oci::Reference::parse(&args.reference)?;
    // Parsing adds `latest` to a bare name, so look at what the user typed.
    if reference.digest().is_some()
        || args
            .reference
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
    {
        anyhow::bail!("--all-tags takes a repository without a tag or digest");
    }
    let tags = engine.list_tags(&args.reference, None).await?;
    if tags.is_empty() {
        anyhow::bail!("{} has no tags", reference.name());
    }
    for tag in tags {
        let tagged = reference.with_tag(&tag)?.to_string();
        pull_one(&engine, &args, &tagged)
            .await
            .with_context(|| format!("pulling {tagged}"))?;
    }
    Ok(())
}

/// Pulls `reference` with the renderer `--progress` chooses; Ctrl-C stops
/// the pull and returns [`Interrupted`].
async fn pull_one(engine: &Engine, args: &PullArgs, reference: &str) -> anyhow::Result<()> {
    let options = pull_options(args)?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let options = PullOptions {
        progress: Some(sender),
        ..options
    };
    let renderer = progress::renderer(
        args.progress.resolve(),
        PullContext {
            reference: reference.to_string(),
            unpack: options.unpack,
            max_concurrent_downloads: args.downloads(),
        },
    );
    let (stop, stopped) = oneshot::channel();
    let printer = tokio::spawn(progress::drive(renderer, receiver, args.quiet, stopped));
    let pulled = tokio::select! {
        pulled = crate::layout::pull(engine, reference, options) => Some(pulled),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(pulled) = pulled else {
        // The pull is dropped mid-way; ingests resume on the next pull.
        let _ = stop.send(());
        let mut renderer = printer.await?;
        renderer.interrupt();
        return Err(Interrupted.into());
    };
    // The engine dropped its senders; the printer drains what is left.
    let mut renderer = printer.await?;
    match pulled {
        Ok(pulled) => {
            if pulled.discarded_layers {
                // The user asked for the compressed layers to go: they go
                // now, not at some later `hoist gc`.
                let collector = engine.clone();
                let report =
                    tokio::task::spawn_blocking(move || collector.gc(GcOptions::default()))
                        .await?
                        .context("collecting the discarded layers")?;
                tracing::debug!(freed = report.bytes(), "collected discarded layers");
            }
            renderer.finish(&pulled);
            Ok(())
        }
        Err(error) => {
            let error = anyhow::Error::from(error);
            renderer.fail(&error);
            Err(error)
        }
    }
}

fn pull_options(args: &PullArgs) -> anyhow::Result<PullOptions> {
    Ok(PullOptions {
        platforms: args.platforms.selection()?,
        all_metadata: args.all_metadata,
        allow_schema1: args.allow_schema1,
        allow_nondistributable: args.allow_nondistributable,
        unpack: !args.no_unpack,
        discard_unpacked_layers: args.discard_unpacked_layers,
        snapshotter: args.snapshotter.clone(),
        ..PullOptions::default()
    })
}

/// What the engine shares between the pulls of this command (`--all-tags`
/// pulls several): how to reach the registry and the download limit.
fn engine_options(args: &PullArgs) -> anyhow::Result<EngineOptions> {
    let credentials = match &args.user {
        Some(user) => {
            let (username, password) =
                user.split_once(':').context("--user takes USER:PASSWORD")?;
            Some(Credentials {
                username: username.to_string(),
                password: password.to_string(),
            })
        }
        None => None,
    };
    if args.downloads() == 0 {
        anyhow::bail!("--max-concurrent-downloads must be at least 1");
    }
    let registry = RegistryOptions {
        plain_http: args.plain_http,
        credentials,
        ca_files: args.tlscacert.clone(),
        hosts_dir: args.hosts_dir.clone(),
        ..RegistryOptions::default()
    };
    let sync = match &args.sync {
        Some(policy) => policy
            .parse()
            .map_err(|error: String| anyhow::anyhow!("sync: {error}"))?,
        None => SyncPolicy::default(),
    };
    Ok(EngineOptions {
        registry,
        max_concurrent_downloads: args.downloads(),
        sync,
        ..EngineOptions::default()
    })
}
