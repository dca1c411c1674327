//! `hoist gc`, `hoist check` and `hoist leases …`: keeping the store tidy
//! and sound.

#![allow(clippy::print_stdout, reason = "the binary prints")]

use std::path::Path;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use hoist_engine::{GcOptions, parse_duration};

use crate::images::{ago, open};
use crate::pull::human_size;
use crate::table::{labels_column, print_table};

/// Flags of `hoist gc`.
#[derive(Args)]
pub(crate) struct GcArgs {
    /// Remove partial downloads not written for this long (e.g. 30m, 12h, 2d, 0s)
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    ingest_age: Duration,
    /// Print what would be removed, and remove nothing
    #[arg(long)]
    dry_run: bool,
}

/// Flags of `hoist check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Fix what can be fixed: delete corrupt blobs (the next pull fetches
    /// them again), drop records of missing blobs, remove broken snapshots
    #[arg(long)]
    repair: bool,
}

/// Subcommands of `hoist leases`.
#[derive(Subcommand)]
pub(crate) enum LeasesCommand {
    /// List leases (what they protect from garbage collection)
    #[command(alias = "list")]
    Ls,
}

pub(crate) fn run_gc(root: &Path, args: GcArgs) -> anyhow::Result<()> {
    let engine = open(root)?;
    let report = engine.gc(GcOptions {
        ingest_age: args.ingest_age,
        dry_run: args.dry_run,
    })?;
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for blob in &report.blobs {
        println!("{verb} blob {} ({})", blob.digest, human_size(blob.size));
    }
    for digest in &report.records {
        println!("{verb} record of missing blob {digest}");
    }
    for snapshot in &report.snapshots {
        println!("{verb} snapshot {}/{}", snapshot.snapshotter, snapshot.key);
    }
    for dir in &report.orphan_dirs {
        println!("{verb} orphaned snapshot directory {}", dir.display());
    }
    for ingest in &report.ingests {
        println!("{verb} ingest {ingest}");
    }
    for lease in &report.leases {
        println!("{verb} expired lease {lease}");
    }
    println!(
        "{verb} {} ({}), {}, {}, {}",
        count(report.blobs.len(), "blob"),
        human_size(report.bytes()),
        count(report.snapshots.len(), "snapshot"),
        count(report.ingests.len(), "ingest"),
        count(report.leases.len(), "expired lease"),
    );
    Ok(())
}

pub(crate) fn run_check(root: &Path, args: CheckArgs) -> anyhow::Result<()> {
    let engine = open(root)?;
    let report = engine.check(args.repair)?;
    for problem in &report.problems {
        println!("{problem}");
    }
    for leftover in &report.leftovers {
        if args.repair {
            println!("leftover: {leftover}");
        } else {
            println!("leftover: {leftover} (`hoist gc` or `hoist check --repair` removes it)");
        }
    }
    if report.is_clean() {
        if args.repair {
            for repair in &report.repairs {
                println!("repaired: {repair}");
            }
        }
        println!(
            "ok: {}, {}, {} verified",
            count(report.blobs_checked, "blob"),
            count(report.images_checked, "image"),
            count(report.snapshots_checked, "snapshot"),
        );
        return Ok(());
    }
    if args.repair {
        for repair in &report.repairs {
            println!("repaired: {repair}");
        }
        println!(
            "repaired {} ({})",
            count(report.problems.len(), "problem"),
            count(report.repairs.len(), "action")
        );
        return Ok(());
    }
    anyhow::bail!(
        "found {}; `hoist check --repair` fixes what can be fixed",
        count(report.problems.len(), "problem")
    )
}

pub(crate) fn run_leases(root: &Path, command: LeasesCommand) -> anyhow::Result<()> {
    let engine = open(root)?;
    match command {
        LeasesCommand::Ls => {
            let now = SystemTime::now();
            let rows = engine
                .leases()?
                .into_iter()
                .map(|lease| {
                    let expires = match lease.expires_at {
                        None => "never".to_string(),
                        Some(_) if lease.expired => "expired".to_string(),
                        Some(at) => format!(
                            "in {}",
                            human_duration(at.duration_since(now).unwrap_or_default())
                        ),
                    };
                    vec![
                        lease.id,
                        ago(lease.created_at),
                        expires,
                        lease.resources.len().to_string(),
                        labels_column(&lease.labels),
                    ]
                })
                .collect();
            print_table(&["ID", "CREATED", "EXPIRES", "RESOURCES", "LABELS"], rows);
        }
    }
    Ok(())
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration as docker words it ("5 minutes", "About an hour", "3 days").
pub(crate) fn human_duration(duration: Duration) -> String {
    // go-units' HumanDuration.
    let seconds = duration.as_secs();
    let minutes = seconds / 60;
    let hours = (duration.as_secs_f64() / 3600.0 + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".to_string()
    } else if seconds == 1 {
        "1 second".to_string()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(42)), "42 seconds");
        assert_eq!(human_duration(Duration::from_secs(70)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(300)), "5 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(5 * 3600)), "5 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(human_duration(Duration::from_secs(21 * 86_400)), "3 weeks");
        assert_eq!(human_duration(Duration::from_secs(800 * 86_400)), "2 years");
    }
}
