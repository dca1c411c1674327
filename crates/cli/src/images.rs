//! `hoist images …` and `hoist content …`: tables of what the store holds,
//! and naming, inspecting and pruning images.

#![allow(clippy::print_stdout, reason = "the binary prints")]

use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use clap::Subcommand;
use hoist_engine::Engine;

use crate::pull::human_size;
use crate::table::{labels_column, print_listing};

/// Subcommands of `hoist images`.
#[derive(Subcommand)]
pub(crate) enum ImagesCommand {
    /// List images
    #[command(alias = "list")]
    Ls {
        /// Print only names
        #[arg(long, short)]
        quiet: bool,
    },
    /// Remove images by reference (blobs stay until garbage collection)
    #[command(alias = "remove", alias = "delete")]
    Rm {
        /// References to remove
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Show everything stored about an image, as JSON
    Inspect {
        /// A pulled image
        reference: String,
    },
    /// Give an image another name (same content), like `docker tag`
    Tag {
        /// The existing image
        source: String,
        /// The new name (replaced if it exists)
        target: String,
    },
    /// Remove dangling images (whose target blob is missing), then unneeded snapshots
    Prune {
        /// Also remove every image no view snapshot (`hoist snapshots mounts`) uses
        #[arg(long, short)]
        all: bool,
    },
}

/// Subcommands of `hoist content`.
#[derive(Subcommand)]
pub(crate) enum ContentCommand {
    /// List blobs with their sizes and labels
    #[command(alias = "list")]
    Ls {
        /// Print only digests
        #[arg(long, short)]
        quiet: bool,
    },
}

pub(crate) fn open(root: &Path) -> anyhow::Result<Engine> {
    Engine::open(root).with_context(|| format!("opening {}", root.display()))
}

pub(crate) fn run_images(root: &Path, command: ImagesCommand) -> anyhow::Result<()> {
    let engine = open(root)?;
    match command {
        ImagesCommand::Ls { quiet } => {
            print_listing(
                engine.images()?,
                quiet,
                |image| image.name.clone(),
                &["REF", "DIGEST", "PLATFORMS", "SIZE", "UNPACKED", "CREATED"],
                |image| {
                    let platforms = if image.platforms.is_empty() {
                        "-".to_string()
                    } else {
                        image.platforms.join(",")
                    };
                    let unpacked = if image.unpacked.is_empty() {
                        "no"
                    } else {
                        "yes"
                    };
                    vec![
                        image.name,
                        image.target.digest().to_string(),
                        platforms,
                        human_size(image.size),
                        unpacked.to_string(),
                        ago(image.created_at),
                    ]
                },
            );
        }
        ImagesCommand::Rm { references } => {
            for reference in references {
                let removed = engine.remove_image(&reference)?;
                println!("{}", removed.name);
                for key in removed.snapshots {
                    println!("removed snapshot {key}");
                }
            }
        }
        ImagesCommand::Inspect { reference } => {
            let details = engine.inspect_image(&reference)?;
            println!("{:#}", details.to_json());
        }
        ImagesCommand::Tag { source, target } => {
            let tagged = engine.tag_image(&source, &target)?;
            println!("{}", tagged.name);
        }
        ImagesCommand::Prune { all } => {
            let pruned = engine.prune_images(all)?;
            for name in &pruned.images {
                println!("removed image {name}");
            }
            for key in &pruned.snapshots {
                println!("removed snapshot {key}");
            }
            println!(
                "pruned {} image(s) and {} snapshot(s); `hoist gc` frees their blobs",
                pruned.images.len(),
                pruned.snapshots.len()
            );
        }
    }
    Ok(())
}

/// How long ago `time` was, as docker words it ("5 minutes ago").
pub(crate) fn ago(time: SystemTime) -> String {
    let elapsed = SystemTime::now().duration_since(time).unwrap_or_default();
    format!("{} ago", crate::gc::human_duration(elapsed))
}

pub(crate) fn run_content(root: &Path, command: ContentCommand) -> anyhow::Result<()> {
    let engine = open(root)?;
    match command {
        ContentCommand::Ls { quiet } => {
            print_listing(
                engine.content_entries()?,
                quiet,
                |entry| entry.digest.to_string(),
                &["DIGEST", "SIZE", "LABELS"],
                |entry| {
                    vec![
                        entry.digest.to_string(),
                        human_size(entry.size),
                        labels_column(&entry.labels),
                    ]
                },
            );
        }
    }
    Ok(())
}
