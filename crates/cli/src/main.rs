//! `hoist`: the command line. Flag definitions, output formatting, and calls
//! into `hoist_engine`; no pull logic lives here.

mod config;
mod gc;
mod images;
mod layout;
mod login;
mod progress;
mod pull;
mod snapshots;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Pull container images into a local store, without a daemon.
#[derive(Parser)]
#[command(
    name = "hoist",
    version,
    about,
    propagate_version = true,
    after_help = "Examples:\n  hoist pull alpine\n  hoist pull --platform linux/arm64 127.0.0.1:5000/app:1.0\n  hoist images ls\n  hoist rootfs alpine ./rootfs\n\nLogs: -v (info), -vv (debug), -vvv (trace), or HOIST_LOG / RUST_LOG filters."
)]
struct Cli {
    /// Root directory of the store [default: the config's `root`, else
    /// /var/lib/hoist as root, $XDG_DATA_HOME/hoist otherwise]
    #[arg(long, global = true, env = "HOIST_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    /// Config file [default: /etc/hoist/config.toml, then
    /// $XDG_CONFIG_HOME/hoist/config.toml]
    #[arg(long, global = true, env = "HOIST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// More logs on stderr: -v info, -vv debug, -vvv trace
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image from a registry
    #[command(
        after_help = "Example:\n  hoist pull alpine\n  hoist pull --platform linux/arm64 --snapshotter native 127.0.0.1:5000/app:1.0\n  hoist pull oci:./layout:1.0"
    )]
    Pull(pull::PullArgs),
    /// List, inspect and remove images
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  hoist images ls\n  hoist images inspect alpine\n  hoist images tag alpine mybase:1\n  hoist images rm alpine"
    )]
    Images(images::ImagesCommand),
    /// List stored blobs
    #[command(subcommand)]
    #[command(after_help = "Example:\n  hoist content ls")]
    Content(images::ContentCommand),
    /// List snapshots and show how to mount them
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  hoist snapshots ls\n  hoist snapshots mounts <chainID> /mnt/x"
    )]
    Snapshots(snapshots::SnapshotsCommand),
    /// Write the flattened root filesystem of a pulled image to a directory
    #[command(after_help = "Example:\n  hoist rootfs alpine ./alpine-rootfs")]
    Rootfs(snapshots::RootfsArgs),
    /// Remove blobs, snapshots and partial downloads nothing references
    #[command(after_help = "Example:\n  hoist gc --dry-run\n  hoist gc --ingest-age 1h")]
    Gc(gc::GcArgs),
    /// Verify blobs, images and snapshots; --repair fixes what it can
    #[command(after_help = "Example:\n  hoist check\n  hoist check --repair")]
    Check(gc::CheckArgs),
    /// List leases
    #[command(subcommand)]
    #[command(after_help = "Example:\n  hoist leases ls")]
    Leases(gc::LeasesCommand),
    /// Log in to a registry (credentials kept as docker keeps them)
    #[command(
        after_help = "Example:\n  echo \"$TOKEN\" | hoist login -u alice --password-stdin registry.example.com"
    )]
    Login(login::LoginArgs),
    /// Log out from a registry
    #[command(after_help = "Example:\n  hoist logout registry.example.com")]
    Logout(login::LogoutArgs),
    /// Write a pulled image as an OCI image layout (a directory or FILE.tar)
    Export(layout::ExportArgs),
    /// Read an OCI image layout (a directory or FILE.tar) into the store
    Import(layout::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Example:\n  hoist completions bash > /etc/bash_completion.d/hoist")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    #[command(after_help = "Example:\n  hoist man > /usr/local/share/man/man1/hoist.1")]
    Man,
    /// Print the version, the commit it was built from, and its features
    #[command(after_help = "Example:\n  hoist version")]
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line naming the cause; the chain is joined with ": ".
            #[allow(clippy::print_stderr, reason = "the binary reports errors")]
            {
                match flag_hint(&error) {
                    Some(hint) => eprintln!("hoist: {error:#} ({hint})"),
                    None => eprintln!("hoist: {error:#}"),
                }
            }
            if error.is::<pull::Interrupted>() {
                // As a shell reports a command killed by SIGINT.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "hoist", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        Command::Version => {
            #[allow(clippy::print_stdout, reason = "the command's output")]
            {
                println!("hoist {}", env!("CARGO_PKG_VERSION"));
                println!("commit: {}", env!("HOIST_COMMIT"));
                println!("features: {}", FEATURES.join(", "));
            }
            return Ok(());
        }
        _ => {}
    }
    let config = config::CliConfig::load(cli.config.as_deref())?;
    let root = cli
        .root
        .or_else(|| config.root.clone())
        .unwrap_or_else(default_root);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Pull(args) => {
            let result = runtime.block_on(pull::run(&root, args, &config));
            if matches!(&result, Err(error) if error.is::<pull::Interrupted>()) {
                // Do not wait for the interrupted pull's blocking tasks.
                runtime.shutdown_background();
            }
            result
        }
        Command::Images(command) => images::run_images(&root, command),
        Command::Content(command) => images::run_content(&root, command),
        Command::Snapshots(command) => snapshots::run_snapshots(&root, command),
        Command::Rootfs(args) => snapshots::run_rootfs(&root, args),
        Command::Gc(args) => gc::run_gc(&root, args),
        Command::Check(args) => gc::run_check(&root, args),
        Command::Leases(command) => gc::run_leases(&root, command),
        Command::Login(args) => runtime.block_on(login::run_login(&root, args)),
        Command::Logout(args) => runtime.block_on(login::run_logout(args)),
        Command::Export(args) => runtime.block_on(layout::run_export(&root, args)),
        Command::Import(args) => runtime.block_on(layout::run_import(&root, args)),
        Command::Completions { .. } | Command::Man | Command::Version => Ok(()),
    }
}

/// What this build of hoist can do, for `hoist version`.
const FEATURES: &[&str] = &[
    "oci+docker manifests and indexes",
    "schema1 conversion",
    "gzip (zlib-rs)",
    "zstd",
    "overlay+native snapshotters",
    "hosts.toml mirrors",
    "http(s) proxies",
    "oci layouts",
];

/// The flag that answers an engine error, which speaks of its options
/// rather than of this command line.
fn flag_hint(error: &anyhow::Error) -> Option<&'static str> {
    use hoist_engine::Error;
    let engine = error.chain().find_map(|e| e.downcast_ref::<Error>())?;
    match engine {
        Error::UnsupportedManifest { media_type, .. } if media_type.contains("manifest.v1") => {
            Some("pass --allow-schema1")
        }
        Error::ForeignLayer { .. } => Some("pass --allow-nondistributable"),
        Error::NotAnImage { .. } | Error::UnsupportedLayer { .. } => {
            Some("pull it with --no-unpack")
        }
        Error::InvalidBlob { detail, .. } if detail.contains("without unpacking") => {
            Some("hoist pull --no-unpack fetches it")
        }
        _ => None,
    }
}

/// `/var/lib/hoist` for root, like containerd's `/var/lib/containerd`;
/// otherwise the XDG data directory, like rootless podman.
fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/hoist");
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data_home.join("hoist")
}

/// Logs go to stderr, filtered by `HOIST_LOG` (e.g. `HOIST_LOG=debug`),
/// else `RUST_LOG`, else `-v`'s level (warnings by default).
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
