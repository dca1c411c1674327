//! `hoist snapshots …` and `hoist rootfs`: what unpacking produced.

#![allow(clippy::print_stdout, reason = "the binary prints")]

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hoist_oci::Platform;

use crate::images::open;
use crate::table::print_table;

/// Subcommands of `hoist snapshots`.
#[derive(Subcommand)]
pub(crate) enum SnapshotsCommand {
    /// List snapshots
    #[command(alias = "list")]
    Ls {
        /// Snapshotter (overlay or native) [default: the pull default]
        #[arg(long, value_name = "NAME")]
        snapshotter: Option<String>,
    },
    /// Remove a snapshot (e.g. a view made by `snapshots mounts`)
    #[command(alias = "remove", alias = "delete")]
    Rm {
        /// Snapshotter (overlay or native) [default: the pull default]
        #[arg(long, value_name = "NAME")]
        snapshotter: Option<String>,
        /// Snapshot key
        key: String,
    },
    /// Print the mount command that shows snapshot KEY at TARGET (a
    /// committed snapshot gets a read-only view, `view:KEY`, kept until
    /// `snapshots rm view:KEY`)
    Mounts {
        /// Snapshotter (overlay or native) [default: the pull default]
        #[arg(long, value_name = "NAME")]
        snapshotter: Option<String>,
        /// Snapshot key (a chainID for unpacked layers)
        key: String,
        /// Where it would be mounted
        target: PathBuf,
    },
}

/// Flags of `hoist rootfs`.
#[derive(Args)]
pub(crate) struct RootfsArgs {
    /// A pulled image
    reference: String,
    /// Destination directory (absent or empty)
    dest: PathBuf,
    /// Platform of a multi-platform image [default: this host]
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
}

pub(crate) fn run_snapshots(root: &Path, command: SnapshotsCommand) -> anyhow::Result<()> {
    let engine = open(root)?;
    match command {
        SnapshotsCommand::Ls { snapshotter } => {
            let rows = engine
                .snapshots(snapshotter.as_deref())?
                .into_iter()
                .map(|info| {
                    vec![
                        info.key,
                        info.parent.unwrap_or_default(),
                        format!("{:?}", info.kind),
                    ]
                })
                .collect();
            print_table(&["KEY", "PARENT", "KIND"], rows);
        }
        SnapshotsCommand::Rm { snapshotter, key } => {
            engine.remove_snapshot(snapshotter.as_deref(), &key)?;
            println!("{key}");
        }
        SnapshotsCommand::Mounts {
            snapshotter,
            key,
            target,
        } => {
            for mount in engine.snapshot_mounts(snapshotter.as_deref(), &key)? {
                println!("{}", mount.to_command(&target));
            }
        }
    }
    Ok(())
}

pub(crate) fn run_rootfs(root: &Path, args: RootfsArgs) -> anyhow::Result<()> {
    let engine = open(root)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    engine.export_rootfs(&args.reference, platform.as_ref(), &args.dest)?;
    println!("{}", args.dest.display());
    Ok(())
}
