//! `hoist`: the command line. Flag definitions, output formatting, and calls
//! into `hoist_engine`; no pull logic lives here.

mod gc;
mod images;
mod layout;
mod login;
mod progress;
mod pull;
mod snapshots;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Pull container images into a local store, without a daemon.
#[derive(Parser)]
#[command(name = "hoist", version, about, propagate_version = true)]
struct Cli {
    /// Root directory of the store [default: /var/lib/hoist as root,
    /// $XDG_DATA_HOME/hoist otherwise]
    #[arg(long, global = true, env = "HOIST_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image from a registry
    Pull(pull::PullArgs),
    /// List, inspect and remove images
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// List stored blobs
    #[command(subcommand)]
    Content(images::ContentCommand),
    /// List snapshots and show how to mount them
    #[command(subcommand)]
    Snapshots(snapshots::SnapshotsCommand),
    /// Write the flattened root filesystem of a pulled image to a directory
    Rootfs(snapshots::RootfsArgs),
    /// Remove blobs, snapshots and partial downloads nothing references
    Gc(gc::GcArgs),
    /// Verify blobs, images and snapshots; --repair fixes what it can
    Check(gc::CheckArgs),
    /// List leases
    #[command(subcommand)]
    Leases(gc::LeasesCommand),
    /// Log in to a registry (credentials kept as docker keeps them)
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(login::LogoutArgs),
    /// Write a pulled image as an OCI image layout (a directory or FILE.tar)
    Export(layout::ExportArgs),
    /// Read an OCI image layout (a directory or FILE.tar) into the store
    Import(layout::ImportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
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
    let root = cli.root.unwrap_or_else(default_root);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Pull(args) => {
            let result = runtime.block_on(pull::run(&root, args));
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
    }
}

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

/// Logs go to stderr, filtered by `HOIST_LOG` (e.g. `HOIST_LOG=debug`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
