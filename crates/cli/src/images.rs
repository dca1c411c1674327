//! `hoist images …` and `hoist content …`: tables of what the store holds.

#![allow(clippy::print_stdout, reason = "the binary prints")]

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use hoist_engine::Engine;

use crate::pull::human_size;

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
            let images = engine.images()?;
            if quiet {
                for image in images {
                    println!("{}", image.name);
                }
                return Ok(());
            }
            let rows = images
                .into_iter()
                .map(|image| {
                    vec![
                        image.name,
                        image.target.media_type().to_string(),
                        image.target.digest().to_string(),
                        human_size(image.size),
                        image.platforms.join(","),
                    ]
                })
                .collect();
            print_table(&["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS"], rows);
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
    }
    Ok(())
}

pub(crate) fn run_content(root: &Path, command: ContentCommand) -> anyhow::Result<()> {
    let engine = open(root)?;
    match command {
        ContentCommand::Ls { quiet } => {
            let entries = engine.content_entries()?;
            if quiet {
                for entry in entries {
                    println!("{}", entry.digest);
                }
                return Ok(());
            }
            let rows = entries
                .into_iter()
                .map(|entry| {
                    let labels = entry
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    vec![entry.digest.to_string(), human_size(entry.size), labels]
                })
                .collect();
            print_table(&["DIGEST", "SIZE", "LABELS"], rows);
        }
    }
    Ok(())
}

/// Left-aligned columns separated by two spaces, like `ctr` and `docker`.
pub(crate) fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
