//! `hoist export` and `hoist import`: OCI image layouts (a directory or a
//! `.tar`) written from and read into the store, and the `oci:DIR[:REF]`
//! references `hoist pull` accepts. The engine does the work
//! (`Engine::export_layout_with`, `import_layout`, `pull_layout`); this
//! module maps flags and prints results.

#![allow(clippy::print_stdout, reason = "the binary prints its results")]
#![allow(clippy::print_stderr, reason = "the binary prints what it skipped")]

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use clap::builder::PossibleValuesParser;
use hoist_engine::{
    Engine, ExportOptions, ExportPlatforms, ImportOptions, PullOptions, Pulled, SNAPSHOTTERS,
};

use crate::images::open;
use crate::progress::result_lines;
use crate::pull::{PlatformArgs, human_size};

/// The prefixes of a `hoist pull` reference naming an OCI layout: skopeo's
/// transports for a layout directory and a layout archive (either reads
/// both here).
const LAYOUT_PREFIXES: [&str; 2] = ["oci:", "oci-archive:"];

/// Flags of `hoist export`.
#[derive(Args)]
#[command(after_long_help = EXPORT_HELP)]
pub(crate) struct ExportArgs {
    /// A pulled image
    reference: String,

    /// Where to write: a directory (created if absent, refused unless
    /// empty), or FILE.tar (refused if it exists)
    dest: PathBuf,

    #[command(flatten)]
    platforms: PlatformArgs,
}

const EXPORT_HELP: &str = "\
Example:
  hoist export alpine ./alpine-layout
  hoist export alpine alpine.tar

The layout is what `skopeo copy oci:DIR:TAG` and `ctr import` read: \
`oci-layout`, `index.json` with one entry annotated \
`org.opencontainers.image.ref.name` (the tag) and `io.containerd.image.name` \
(the full name), and `blobs/sha256/<hex>`; a .tar destination holds the same \
files.

Platforms: by default every platform whose manifest the store holds is \
written (for a pull without --all-platforms, the one pulled). The index keeps \
listing the platforms the store never pulled, as `ctr export` writes it; \
readers choose a platform that is present (skopeo copy without --all). A \
written platform must be complete: a config or layer missing from the store \
(a platform fetched with --all-metadata only, layers dropped by \
--discard-unpacked-layers) fails the export and nothing is left at DEST. \
--platform writes only the platforms named; --all-platforms requires all of \
them, as `ctr export --all-platforms` does.

skopeo 1.9 reads only OCI media types from a layout: an image pulled with \
Docker media types exports as it is stored (digests kept), which hoist and \
containerd import but skopeo refuses.";

/// Flags of `hoist import`.
#[derive(Args)]
#[command(after_long_help = IMPORT_HELP)]
pub(crate) struct ImportArgs {
    /// An OCI image layout: a directory or an uncompressed .tar archive
    source: PathBuf,

    /// Register the image under this reference (a layout of one image, or
    /// the one --ref chooses)
    #[arg(long, value_name = "REF")]
    name: Option<String>,

    /// Import only the image index.json names so (its
    /// org.opencontainers.image.ref.name or io.containerd.image.name)
    #[arg(long = "ref", value_name = "REF_NAME")]
    ref_name: Option<String>,

    #[command(flatten)]
    platforms: PlatformArgs,

    /// Store the content only; do not unpack layers into snapshots
    #[arg(long)]
    no_unpack: bool,

    /// Snapshotter to unpack into: overlay or native [default: overlay where
    /// the kernel can mount it, native otherwise]
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(SNAPSHOTTERS))]
    snapshotter: Option<String>,
}

const IMPORT_HELP: &str = "\
Example:
  hoist import ./alpine-layout
  hoist import --name myapp:1 app.tar

Every blob is verified (digest and size) as it is written to the store; a \
layout with a tampered or missing blob registers nothing. Platforms are \
chosen as a pull chooses them (this machine's by default).

Names: --name; else the entry's io.containerd.image.name (what `hoist export` \
and `ctr export` write); else its org.opencontainers.image.ref.name: a \
reference when it holds `/`, `:` or `@`, or else a tag (what `skopeo copy … \
oci:DIR:TAG` writes), which names the image localhost/<DIR name>:<tag> (the \
archive's name without .tar for a .tar). In a layout of several images, each \
named one is imported and unnamed ones are skipped; a layout of one unnamed \
image needs --name.

`hoist pull oci:DIR[:REF_NAME]` imports one image of a layout the same way, \
with the pull's progress output.";

pub(crate) async fn run_export(root: &Path, args: ExportArgs) -> anyhow::Result<()> {
    let engine = open(root)?;
    let platforms = args.platforms.choose(
        ExportPlatforms::All,
        ExportPlatforms::Stored,
        ExportPlatforms::Only,
    )?;
    let exported = engine
        .export_layout_with(&args.reference, &args.dest, ExportOptions { platforms })
        .await
        .with_context(|| format!("exporting {}", args.reference))?;
    for left_out in &exported.left_out {
        let platform = hoist_oci::manifest::platform_of(left_out)
            .map_or_else(|| "no platform".to_string(), |p| p.to_string());
        eprintln!("left out {} ({platform})", left_out.digest());
    }
    println!("{} {}", exported.name, exported.target.digest());
    println!(
        "wrote {} blobs ({}) to {}",
        exported.blobs,
        human_size(exported.bytes),
        args.dest.display()
    );
    Ok(())
}

pub(crate) async fn run_import(root: &Path, args: ImportArgs) -> anyhow::Result<()> {
    let engine = open(root)?;
    let options = ImportOptions {
        name: args.name,
        ref_name: args.ref_name,
        pull: PullOptions {
            platforms: args.platforms.selection()?,
            unpack: !args.no_unpack,
            snapshotter: args.snapshotter,
            ..PullOptions::default()
        },
    };
    let imported = engine
        .import_layout(&args.source, options)
        .await
        .with_context(|| format!("importing {}", args.source.display()))?;
    for skipped in &imported.skipped {
        eprintln!("skipped {}: index.json gives it no name", skipped.digest());
    }
    for image in &imported.images {
        for line in result_lines(image) {
            println!("{line}");
        }
    }
    Ok(())
}

/// `oci:DIR[:REF_NAME]` (or `oci-archive:FILE.tar[:REF_NAME]`) split as skopeo splits its `oci:` references: at
/// the first `:` after the prefix (so DIR holds no `:`, and REF_NAME may be
/// a whole reference). `None` for a registry reference.
pub(crate) fn layout_reference(reference: &str) -> Option<(PathBuf, Option<String>)> {
    let rest = LAYOUT_PREFIXES
        .iter()
        .find_map(|prefix| reference.strip_prefix(prefix))?;
    Some(match rest.split_once(':') {
        Some((dir, ref_name)) if !ref_name.is_empty() => {
            (PathBuf::from(dir), Some(ref_name.to_string()))
        }
        Some((dir, _)) => (PathBuf::from(dir), None),
        None => (PathBuf::from(rest), None),
    })
}

/// What `hoist pull` runs: an import of one image for `oci:DIR[:REF_NAME]`,
/// a registry pull otherwise.
pub(crate) async fn pull(
    engine: &Engine,
    reference: &str,
    options: PullOptions,
) -> Result<Pulled, hoist_engine::Error> {
    match layout_reference(reference) {
        Some((dir, ref_name)) => engine.pull_layout(&dir, ref_name.as_deref(), options).await,
        None => engine.pull(reference, options).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_references_split_like_skopeo() {
        assert_eq!(layout_reference("alpine"), None);
        assert_eq!(layout_reference("127.0.0.1:5000/app:1.0"), None);
        assert_eq!(
            layout_reference("oci:/tmp/l"),
            Some((PathBuf::from("/tmp/l"), None))
        );
        assert_eq!(
            layout_reference("oci:/tmp/l:"),
            Some((PathBuf::from("/tmp/l"), None))
        );
        assert_eq!(
            layout_reference("oci:/tmp/l:1.0"),
            Some((PathBuf::from("/tmp/l"), Some("1.0".to_string())))
        );
        assert_eq!(
            layout_reference("oci-archive:l.tar:127.0.0.1:5000/app:1.0"),
            Some((
                PathBuf::from("l.tar"),
                Some("127.0.0.1:5000/app:1.0".to_string())
            ))
        );
    }
}
