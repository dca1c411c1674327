//! OCI image layouts (image-spec `image-layout.md`) as a destination and as a
//! source: [`Engine::export_layout`] writes a stored image as a layout
//! directory or tar archive, [`Engine::import_layout`] reads one into the
//! store the way a pull reads a registry, and [`Engine::pull_layout`] is the
//! same import for exactly one image (`hoist pull oci:DIR[:REF]`).
//!
//! A layout is `oci-layout` (`{"imageLayoutVersion":"1.0.0"}`), `index.json`
//! (the images, each an index or manifest descriptor) and
//! `blobs/<algorithm>/<hex>`. Exported entries carry the annotations
//! containerd's `ctr export` writes: `org.opencontainers.image.ref.name`, the
//! tag (what skopeo's `oci:DIR:TAG` writes and reads), and
//! `io.containerd.image.name`, the full name, so an export imports back
//! under its own name.
//!
//! The import walk is this module's own rather than [`crate::fetch`]'s,
//! whose session is bound to a registry client; it keeps the same rules:
//! platforms chosen per [`PullOptions::platforms`], every blob written
//! through the content store's [`Writer`](hoist_content::Writer) and so
//! verified (digest and size) before it becomes visible, each blob added to
//! the lease before its first byte, the same GC labels on every node, then
//! the same [`Engine::unpack`] and [`Engine::register`] steps (no
//! `distribution.source` label: the blobs came from no registry). Images are
//! registered only once every image of the import is stored and unpacked, so
//! a failed import registers nothing.
//!
//! An export writes every blob of the image the store holds, each hashed
//! again as it is copied, so a corrupt store never leaks into a layout. A
//! directory is written in place (an existing one must be empty) and
//! removed again on failure; a tar archive is written to a temporary file
//! beside the destination and linked into place only when complete, never
//! over an existing file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_content::Expected;
use hoist_metadata::Labels;
use hoist_oci::manifest::{self, Children};
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{Descriptor, Digest, Digester, Platform, Reference};

use crate::fetch::{layer_kind, manifest_gc_labels};
use crate::lease::Lease;
use crate::lock::RootLock;
use crate::progress::{BlobKind, Event, Progress};
use crate::pull::{Fetched, PlatformSelection, PullOptions, Pulled};
use crate::{Engine, Error, Result, labels};

/// The annotation naming an image in a layout: a tag (`1.0`), as skopeo and
/// `ctr export` write it, or a whole reference, as some tools write it.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// containerd's annotation for an image's full name in a layout.
pub(crate) const IMAGE_NAME: &str = "io.containerd.image.name";

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";

/// `oci-layout` is a few bytes; anything bigger is not one.
const MAX_LAYOUT_FILE_SIZE: u64 = 64 << 10;

/// Copy progress is reported once per this many bytes...
const PROGRESS_STEP: u64 = 1 << 20;
/// ...or when this long passed since the last report.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Which platforms of a stored multi-platform image an export writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportPlatforms {
    /// Every platform whose manifest the store holds (what was pulled);
    /// each must be complete. The index still lists the others, as a
    /// single-platform pull exported by `ctr export` does; readers choose
    /// a platform that is present.
    #[default]
    Stored,
    /// The best match for each of these platforms; each must be stored
    /// complete. The rest are left out.
    Only(Vec<Platform>),
    /// Every manifest of the index (containerd's `--all-platforms`): a
    /// platform the store lacks fails the export.
    All,
}

/// How to export an image as an OCI layout.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Which platforms of an index to write.
    pub platforms: ExportPlatforms,
}

/// What [`Engine::export_layout`] wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Exported {
    /// The image's name.
    pub name: String,
    /// The root descriptor (`index.json`'s entry).
    pub target: Descriptor,
    /// How many blobs were written.
    pub blobs: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Manifests an index lists that were not written (platforms not
    /// stored, or not chosen).
    pub left_out: Vec<Descriptor>,
}

/// How to import an OCI layout.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Register the image under this reference (normalized). Only for a
    /// layout (or a [`ref_name`](Self::ref_name) choice) of one image.
    pub name: Option<String>,
    /// Import only the image `index.json` names so: its
    /// `org.opencontainers.image.ref.name` or `io.containerd.image.name`.
    pub ref_name: Option<String>,
    /// Platforms, unpacking, snapshotter and progress, as for a pull; the
    /// registry settings (credentials, schema 1, foreign layers) do not
    /// apply, since every blob comes from the layout.
    pub pull: PullOptions,
}

/// What [`Engine::import_layout`] stored and registered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Imported {
    /// Each image registered, as a pull reports it (`downloaded` counts the
    /// bytes copied from the layout).
    pub images: Vec<Pulled>,
    /// `index.json` entries left alone because they carry no name (only in
    /// a layout of several images).
    pub skipped: Vec<Descriptor>,
}

impl Engine {
    /// Writes the stored image `reference` as an OCI image layout at `dest`:
    /// a directory (absent or empty), or a tar archive when `dest` ends in
    /// `.tar` (it must not exist). Every platform the store holds is
    /// written; see [`Engine::export_layout_with`].
    pub async fn export_layout(&self, reference: &str, dest: impl AsRef<Path>) -> Result<Exported> {
        self.export_layout_with(reference, dest, ExportOptions::default())
            .await
    }

    /// [`Engine::export_layout`] with a choice of platforms. A blob below a
    /// written manifest that the store lacks (a platform fetched with
    /// `all_metadata` only, layers discarded after unpacking) fails the
    /// export with [`Error::NotStored`], and nothing is left at `dest`.
    pub async fn export_layout_with(
        &self,
        reference: &str,
        dest: impl AsRef<Path>,
        options: ExportOptions,
    ) -> Result<Exported> {
        let engine = self.clone();
        let reference = reference.to_string();
        let dest = dest.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || engine.export_blocking(&reference, &dest, &options))
            .await?
    }

    /// Reads the OCI image layout at `source` (a directory or an
    /// uncompressed tar archive) into the store: the images `index.json`
    /// lists, each walked as a pull walks a registry, every blob verified as
    /// it is written, then unpacked (unless `options.pull.unpack` is off)
    /// and registered.
    ///
    /// Names: [`ImportOptions::name`]; else the entry's
    /// `io.containerd.image.name`; else its `org.opencontainers.image.ref.name`,
    /// a reference when it holds `/`, `:` or `@` (containerd's rule), or else
    /// a tag, which names the image `localhost/<layout name>:<tag>` (the
    /// layout's directory or archive name without `.tar`). In a layout of
    /// several images, entries without a name are skipped; a single image
    /// without one needs [`ImportOptions::name`].
    pub async fn import_layout(
        &self,
        source: impl AsRef<Path>,
        options: ImportOptions,
    ) -> Result<Imported> {
        self.import(source.as_ref(), options, false).await
    }

    /// Pulls one image from the OCI layout at `source` as from a registry:
    /// the entry `index.json` names `ref_name`, or its only entry. This is
    /// [`Engine::import_layout`] for one image, named as it names them.
    pub async fn pull_layout(
        &self,
        source: impl AsRef<Path>,
        ref_name: Option<&str>,
        options: PullOptions,
    ) -> Result<Pulled> {
        let options = ImportOptions {
            name: None,
            ref_name: ref_name.map(str::to_string),
            pull: options,
        };
        let imported = self.import(source.as_ref(), options, true).await?;
        imported
            .images
            .into_iter()
            .next()
            .ok_or_else(|| Error::Task("a layout pull registered no image".to_string()))
    }

    async fn import(
        &self,
        source: &Path,
        options: ImportOptions,
        single: bool,
    ) -> Result<Imported> {
        let path = source.to_path_buf();
        let name = options.name.clone();
        let ref_name = options.ref_name.clone();
        let max_index_size = self.max_manifest_size();
        // Reading index.json (maybe indexing a whole tar) is disk work.
        let (layout, plan) = tokio::task::spawn_blocking(move || -> Result<_> {
            let layout = Layout::open(&path)?;
            let plan = plan_import(
                &layout,
                name.as_deref(),
                ref_name.as_deref(),
                single,
                max_index_size,
            )?;
            Ok((layout, plan))
        })
        .await??;
        let layout = Arc::new(layout);
        let lease = self.lease(&format!("import {}", source.display())).await?;
        let imported = self
            .import_images(&layout, &plan, &options.pull, &lease)
            .await;
        lease.release().await;
        Ok(Imported {
            images: imported?,
            skipped: plan.skipped,
        })
    }

    /// Fetches and unpacks every planned image, then registers them all.
    async fn import_images(
        &self,
        layout: &Arc<Layout>,
        plan: &Plan,
        options: &PullOptions,
        lease: &Lease,
    ) -> Result<Vec<Pulled>> {
        let progress = Progress::new(options.progress.clone());
        let mut stored = Vec::new();
        for planned in &plan.images {
            progress.send(Event::Resolving {
                reference: planned.name.clone(),
            });
            progress.send(Event::Resolved {
                reference: planned.name.clone(),
                descriptor: Box::new(planned.descriptor.clone()),
            });
            let importer = Importer {
                engine: self.clone(),
                layout: layout.clone(),
                options: options.clone(),
                lease: lease.clone(),
                progress: progress.clone(),
                name: planned.name.clone(),
            };
            let root = planned.descriptor.clone();
            let fetched = tokio::task::spawn_blocking(move || importer.fetch_tree(&root)).await??;
            let unpack_started = Instant::now();
            let unpacked = if options.unpack {
                Some(self.unpack(&fetched.manifests, options, lease).await?)
            } else {
                None
            };
            let unpack_time = unpacked.is_some().then(|| unpack_started.elapsed());
            let discarded_layers = options.discard_unpacked_layers && unpacked.is_some();
            if discarded_layers {
                self.discard_layers(&fetched.manifests).await?;
            }
            stored.push((planned, fetched, unpacked, unpack_time, discarded_layers));
        }
        // Only now, with every image of the layout stored and unpacked, do
        // names point at them: a failure above registers nothing.
        let mut pulled = Vec::new();
        for (planned, fetched, unpacked, unpack_time, discarded_layers) in stored {
            let up_to_date = self
                .register_fetched(&planned.name, &fetched, unpacked.as_ref())
                .await?;
            progress.send(Event::ImageDone {
                name: planned.name.clone(),
                digest: fetched.target.digest().clone(),
                up_to_date,
            });
            pulled.push(Pulled::new(
                planned.name.clone(),
                fetched,
                unpacked,
                unpack_time,
                discarded_layers,
            ));
        }
        Ok(pulled)
    }

    fn export_blocking(
        &self,
        reference: &str,
        dest: &Path,
        options: &ExportOptions,
    ) -> Result<Exported> {
        // Keep a collector from deleting the blobs while they are read.
        let _reading = RootLock::shared(&self.root)?;
        let image = self.image(reference)?;
        let plan = self.export_plan(&image.name, &image.target, &options.platforms)?;
        let index = index_json(&image.name, &image.target)?;
        let bytes = if is_tar_path(dest) {
            self.write_tar(dest, &index, &plan.blobs)?
        } else {
            self.write_dir(dest, &index, &plan.blobs)?
        };
        Ok(Exported {
            name: image.name,
            target: image.target,
            blobs: plan.blobs.len(),
            bytes,
            left_out: plan.left_out,
        })
    }

    /// The blobs an export writes, root first, each once.
    fn export_plan(
        &self,
        name: &str,
        target: &Descriptor,
        platforms: &ExportPlatforms,
    ) -> Result<ExportPlan> {
        let mut plan = ExportPlan::default();
        let mut seen = std::collections::HashSet::new();
        // (descriptor, what it is, for errors)
        let mut stack = vec![(target.clone(), "image root".to_string(), None::<String>)];
        while let Some((descriptor, what, platform)) = stack.pop() {
            if !seen.insert(descriptor.digest().clone()) {
                continue;
            }
            let media_type = descriptor.media_type().to_string();
            if !self.content.contains(descriptor.digest()) {
                if media_type::is_nondistributable(&media_type) {
                    // The layout spec lets a layout lack a blob an external
                    // store (here, the descriptor's URLs) provides.
                    continue;
                }
                return Err(not_stored(name, &descriptor, &what, platform.as_deref()));
            }
            plan.blobs.push(descriptor.clone());
            match media_type::classify(&media_type) {
                Kind::Index | Kind::Manifest => {}
                _ => continue,
            }
            let body = self
                .content
                .read_blob(descriptor.digest(), self.max_manifest_size())?;
            match manifest::children(&media_type, &body)? {
                Children::Index(children) => {
                    let chosen = self.export_choice(name, &children, platforms)?;
                    for child in children {
                        if chosen.iter().any(|c| c.digest() == child.digest()) {
                            let platform = manifest::platform_of(&child).map(|p| p.to_string());
                            stack.push((child, "manifest".to_string(), platform));
                        } else {
                            plan.left_out.push(child);
                        }
                    }
                }
                Children::Manifest { config, layers } => {
                    stack.push((config, "config".to_string(), platform.clone()));
                    for layer in layers {
                        stack.push((layer, "layer".to_string(), platform.clone()));
                    }
                }
                Children::None => {}
            }
        }
        Ok(plan)
    }

    /// The children of an index an export writes.
    fn export_choice(
        &self,
        name: &str,
        children: &[Descriptor],
        platforms: &ExportPlatforms,
    ) -> Result<Vec<Descriptor>> {
        match platforms {
            ExportPlatforms::All => Ok(children.to_vec()),
            ExportPlatforms::Stored => {
                let stored: Vec<Descriptor> = children
                    .iter()
                    .filter(|c| self.content.contains(c.digest()))
                    .cloned()
                    .collect();
                if stored.is_empty() && !children.is_empty() {
                    return Err(not_stored(name, &children[0], "manifest", None));
                }
                Ok(stored)
            }
            ExportPlatforms::Only(wanted) => crate::fetch::choose_platforms(
                &PlatformSelection::Only(wanted.clone()),
                children,
                name,
            ),
        }
    }

    /// Writes the layout into the directory `dest` (created if absent,
    /// refused if not empty); on failure removes what it wrote.
    fn write_dir(&self, dest: &Path, index: &[u8], blobs: &[Descriptor]) -> Result<u64> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let created = match fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::Layout {
                        path: dest.to_path_buf(),
                        detail: "the destination directory is not empty; refusing to overwrite it"
                            .to_string(),
                    });
                }
                false
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dest).map_err(io_error(dest))?;
                true
            }
            Err(error) => return Err(io_error(dest)(error)),
        };
        let written = (|| -> Result<u64> {
            let mut bytes = 0;
            for descriptor in blobs {
                let path = dest.join(blob_name(descriptor.digest()));
                let parent = path.parent().expect("a blob path has a parent");
                fs::create_dir_all(parent).map_err(io_error(parent))?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_error(&path))?;
                let mut reader =
                    Verifying::new(descriptor, self.content.open_blob(descriptor.digest())?)?;
                io::copy(&mut reader, &mut file).map_err(io_error(&path))?;
                reader.finish()?;
                bytes += descriptor.size();
            }
            let index_path = dest.join(INDEX_FILE);
            fs::write(&index_path, index).map_err(io_error(&index_path))?;
            // Last, so a layout that has its `oci-layout` is complete.
            let layout_path = dest.join(LAYOUT_FILE);
            fs::write(&layout_path, layout_file()).map_err(io_error(&layout_path))?;
            Ok(bytes)
        })();
        if written.is_err() {
            // Only what this export wrote: the directory was empty.
            let _ = fs::remove_file(dest.join(LAYOUT_FILE));
            let _ = fs::remove_file(dest.join(INDEX_FILE));
            let _ = fs::remove_dir_all(dest.join("blobs"));
            if created {
                let _ = fs::remove_dir(dest);
            }
        }
        written
    }

    /// Writes the layout as a tar archive at `dest`, streaming each blob
    /// from the store: into a temporary file beside it, linked into place
    /// only when complete (a link never replaces an existing file).
    fn write_tar(&self, dest: &Path, index: &[u8], blobs: &[Descriptor]) -> Result<u64> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if dest.symlink_metadata().is_ok() {
            return Err(Error::Layout {
                path: dest.to_path_buf(),
                detail: "the destination exists; refusing to overwrite it".to_string(),
            });
        }
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = dest.with_file_name(format!(".{file_name}.{}.partial", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(io_error(&temporary))?;
        let written = (|| -> Result<u64> {
            let tar_error = |source| Error::Io {
                path: temporary.clone(),
                source,
            };
            let mut builder = tar::Builder::new(BufWriter::with_capacity(256 << 10, file));
            // index.json before the blobs, so a streaming reader knows the
            // images before it meets their blobs.
            append_file(&mut builder, LAYOUT_FILE, layout_file().as_bytes()).map_err(&tar_error)?;
            append_file(&mut builder, INDEX_FILE, index).map_err(&tar_error)?;
            let mut dirs = std::collections::BTreeSet::new();
            let mut bytes = 0;
            for descriptor in blobs {
                let name = blob_name(descriptor.digest());
                for dir in [
                    "blobs/".to_string(),
                    format!("blobs/{}/", descriptor.digest().algorithm().as_ref()),
                ] {
                    if dirs.insert(dir.clone()) {
                        append_dir(&mut builder, &dir).map_err(&tar_error)?;
                    }
                }
                let mut reader =
                    Verifying::new(descriptor, self.content.open_blob(descriptor.digest())?)?;
                let mut header = file_header(descriptor.size());
                builder
                    .append_data(&mut header, &name, &mut reader)
                    .map_err(&tar_error)?;
                // A short read would have left a short entry: the whole
                // archive is thrown away then.
                reader.finish()?;
                bytes += descriptor.size();
            }
            let file = builder
                .into_inner()
                .map_err(&tar_error)?
                .into_inner()
                .map_err(|e| tar_error(e.into_error()))?;
            file.sync_all().map_err(&tar_error)?;
            match fs::hard_link(&temporary, dest) {
                Ok(()) => Ok(bytes),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(Error::Layout {
                    path: dest.to_path_buf(),
                    detail: "the destination appeared while exporting; refusing to overwrite it"
                        .to_string(),
                }),
                Err(error) => Err(io_error(dest)(error)),
            }
        })();
        let _ = fs::remove_file(&temporary);
        written
    }
}

/// What an export writes.
#[derive(Default)]
struct ExportPlan {
    blobs: Vec<Descriptor>,
    left_out: Vec<Descriptor>,
}

fn not_stored(name: &str, descriptor: &Descriptor, what: &str, platform: Option<&str>) -> Error {
    let (what, hint) = match (what, platform) {
        ("manifest", Some(platform)) => (
            format!("manifest for {platform}"),
            format!(
                "that platform was never pulled; pull it (--platform {platform}) or export only the stored platforms"
            ),
        ),
        ("manifest", None) => (
            "manifest".to_string(),
            "no manifest of the index is stored; pull the image again".to_string(),
        ),
        (what, Some(platform)) => (
            format!("{what} of {platform}"),
            format!(
                "pull {platform} again (without unpacking if its layers were discarded), or leave it out with --platform"
            ),
        ),
        (what, None) => (
            what.to_string(),
            "pull the image again (without unpacking if its layers were discarded)".to_string(),
        ),
    };
    Error::NotStored {
        image: name.to_string(),
        what,
        digest: descriptor.digest().to_string(),
        hint,
    }
}

/// `index.json` of an export: one entry, the image's root, named as
/// containerd's `ctr export` names it.
fn index_json(name: &str, target: &Descriptor) -> Result<Vec<u8>> {
    let mut entry = serde_json::to_value(target).map_err(|e| Error::InvalidBlob {
        digest: target.digest().to_string(),
        detail: e.to_string(),
    })?;
    let mut annotations = serde_json::Map::new();
    if let Some(existing) = entry.get("annotations").and_then(|a| a.as_object()) {
        annotations.extend(existing.clone());
    }
    annotations.insert(IMAGE_NAME.to_string(), name.into());
    // The tag alone, as skopeo's `oci:DIR:TAG` and `ctr export` write it; a
    // digest-only name has none.
    if let Some(tag) = Reference::parse(name)
        .ok()
        .as_ref()
        .and_then(Reference::tag)
    {
        annotations.insert(REF_NAME.to_string(), tag.into());
    }
    entry["annotations"] = annotations.into();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [entry],
    });
    Ok(serde_json::to_vec(&index).expect("a JSON value serializes"))
}

fn layout_file() -> String {
    format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#)
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_ref(), digest.digest())
}

/// Whether an export destination is a tar archive rather than a directory.
fn is_tar_path(dest: &Path) -> bool {
    dest.extension().is_some_and(|e| e == "tar")
}

/// A tar header for a regular file: root-owned, 0644, mtime 0, so an
/// export's archive depends only on the image.
fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn append_file<W: Write>(builder: &mut tar::Builder<W>, name: &str, body: &[u8]) -> io::Result<()> {
    let mut header = file_header(body.len() as u64);
    builder.append_data(&mut header, name, body)
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    builder.append_data(&mut header, name, io::empty())
}

/// A reader of a stored blob that hashes what it yields and stops at the
/// descriptor's size; [`Verifying::finish`] says whether the bytes were the
/// blob's.
struct Verifying<R> {
    inner: io::Take<R>,
    digester: Digester,
    count: u64,
    digest: Digest,
    size: u64,
}

impl<R: Read> Verifying<R> {
    fn new(descriptor: &Descriptor, inner: R) -> Result<Verifying<R>> {
        Ok(Verifying {
            // One byte more, so a blob longer than its descriptor shows.
            inner: inner.take(descriptor.size().saturating_add(1)),
            digester: Digester::for_algorithm(descriptor.digest())?,
            count: 0,
            digest: descriptor.digest().clone(),
            size: descriptor.size(),
        })
    }

    fn finish(self) -> Result<()> {
        if self.count != self.size {
            return Err(Error::Content(hoist_content::Error::SizeMismatch {
                expected: self.size,
                actual: self.count,
            }));
        }
        let actual = self.digester.finalize();
        if actual != self.digest {
            return Err(Error::Content(hoist_content::Error::DigestMismatch {
                expected: self.digest,
                actual,
            }));
        }
        Ok(())
    }
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never hand out the extra byte: a tar entry must be exactly the
        // header's size. Its presence is still counted.
        let n = self.inner.read(buf)?;
        let fits = usize::try_from(self.size.saturating_sub(self.count))
            .unwrap_or(usize::MAX)
            .min(n);
        self.digester.update(&buf[..fits]);
        self.count += n as u64;
        if fits < n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} is larger than its descriptor says", self.digest),
            ));
        }
        Ok(n)
    }
}

/// An OCI image layout being read: a directory, or a tar archive read in
/// place through an index of its entries.
enum Layout {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        /// Entry name → (offset of its data, size).
        entries: HashMap<String, (u64, u64)>,
    },
}

impl Layout {
    /// Opens `path` as a layout and checks its `oci-layout` version.
    fn open(path: &Path) -> Result<Layout> {
        let metadata = fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let layout = if metadata.is_dir() {
            Layout::Dir(path.to_path_buf())
        } else {
            Layout::Tar {
                entries: index_tar(path)?,
                path: path.to_path_buf(),
            }
        };
        layout.check_version()?;
        Ok(layout)
    }

    fn path(&self) -> &Path {
        match self {
            Layout::Dir(path) | Layout::Tar { path, .. } => path,
        }
    }

    fn error(&self, detail: impl Into<String>) -> Error {
        Error::Layout {
            path: self.path().to_path_buf(),
            detail: detail.into(),
        }
    }

    fn io_error(&self, source: io::Error) -> Error {
        Error::Io {
            path: self.path().to_path_buf(),
            source,
        }
    }

    /// A file of the layout and its length; `None` when it has none.
    fn open_file(&self, name: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match self {
            Layout::Dir(dir) => {
                let path = dir.join(name);
                let file = match File::open(&path) {
                    Ok(file) => file,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => return Err(Error::Io { path, source }),
                };
                let metadata = file.metadata().map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                if !metadata.is_file() {
                    return Err(self.error(format!("{name} is not a regular file")));
                }
                Ok(Some((Box::new(file), metadata.len())))
            }
            Layout::Tar { path, entries } => {
                let Some(&(offset, len)) = entries.get(name) else {
                    return Ok(None);
                };
                let mut file = File::open(path).map_err(|e| self.io_error(e))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| self.io_error(e))?;
                Ok(Some((Box::new(file.take(len)), len)))
            }
        }
    }

    /// A small file of the layout read whole, refused beyond `limit`.
    fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((reader, len)) = self.open_file(name)? else {
            return Ok(None);
        };
        if len > limit {
            return Err(self.error(format!("{name} is larger than {limit} bytes")));
        }
        let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        reader
            .take(limit.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| self.io_error(e))?;
        if body.len() as u64 > limit {
            return Err(self.error(format!("{name} is larger than {limit} bytes")));
        }
        Ok(Some(body))
    }

    fn check_version(&self) -> Result<()> {
        let Some(body) = self.read_small(LAYOUT_FILE, MAX_LAYOUT_FILE_SIZE)? else {
            return Err(self.error("not an OCI image layout: it has no oci-layout file"));
        };
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| self.error(format!("{LAYOUT_FILE}: {e}")))?;
        match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            // 1.x layouts are read alike; the spec has only 1.0.0.
            Some(version) if version.starts_with("1.") => Ok(()),
            Some(version) => Err(self.error(format!(
                "unsupported imageLayoutVersion {version:?} (hoist reads {LAYOUT_VERSION})"
            ))),
            None => Err(self.error(format!("{LAYOUT_FILE} has no imageLayoutVersion"))),
        }
    }

    /// The entries of `index.json`, an index read whole like any other
    /// (bounded by the engine's manifest size).
    fn index(&self, max_size: u64) -> Result<Vec<Descriptor>> {
        let Some(body) = self.read_small(INDEX_FILE, max_size)? else {
            return Err(self.error("it has no index.json"));
        };
        match manifest::children(media_type::OCI_INDEX, &body) {
            Ok(Children::Index(entries)) => Ok(entries),
            Ok(_) => Err(self.error("index.json is not an image index")),
            Err(error) => Err(self.error(format!("index.json: {error}"))),
        }
    }

    /// The blob `descriptor` names, with its length in the layout.
    fn open_blob(
        &self,
        descriptor: &Descriptor,
        kind: BlobKind,
    ) -> Result<(Box<dyn Read + Send>, u64)> {
        self.open_file(&blob_name(descriptor.digest()))?
            .ok_or_else(|| {
                self.error(format!(
                    "{kind} {} is not in the layout",
                    descriptor.digest()
                ))
            })
    }

    /// The repository a layout's bare tags name images in:
    /// `localhost/<directory name>` or `localhost/<archive name without .tar>`.
    fn repository(&self) -> Result<String> {
        let base = match self {
            Layout::Dir(dir) => fs::canonicalize(dir)
                .map_err(|e| self.io_error(e))?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            Layout::Tar { path, .. } => path.file_stem().map(|n| n.to_string_lossy().into_owned()),
        };
        Ok(format!("localhost/{}", base.unwrap_or_default()))
    }
}

/// Lists a tar archive's regular files by name, with where their data
/// starts, so blobs are then read in place (no extraction, no second copy).
fn index_tar(path: &Path) -> Result<HashMap<String, (u64, u64)>> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let layout_error = |detail: String| Error::Layout {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let mut magic = [0u8; 4];
    let mut read = 0;
    while read < magic.len() {
        match file.read(&mut magic[read..]).map_err(io_error)? {
            0 => break,
            n => read += n,
        }
    }
    if magic.starts_with(&[0x1f, 0x8b]) || magic == [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(layout_error(
            "the archive is compressed; hoist reads plain tar layouts (decompress it first)"
                .to_string(),
        ));
    }
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let mut archive = tar::Archive::new(file);
    let not_tar = |e: io::Error| layout_error(format!("not a directory or a tar archive: {e}"));
    let mut entries = HashMap::new();
    for entry in archive.entries_with_seek().map_err(not_tar)? {
        let entry = entry.map_err(not_tar)?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let name = entry
            .path()
            .map_err(not_tar)?
            .to_string_lossy()
            .into_owned();
        // `./index.json` and `index.json` are the same file; a later entry
        // replaces an earlier one, as extracting would.
        let mut name = name.as_str();
        while let Some(rest) = name.strip_prefix("./") {
            name = rest;
        }
        entries.insert(name.to_string(), (entry.raw_file_position(), entry.size()));
    }
    Ok(entries)
}

/// One image of a layout to import.
struct Planned {
    descriptor: Descriptor,
    name: String,
}

/// What an import does: its images, named, and the entries it skips.
struct Plan {
    images: Vec<Planned>,
    skipped: Vec<Descriptor>,
}

fn annotation<'a>(descriptor: &'a Descriptor, key: &str) -> Option<&'a str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The names `index.json` gives its entries, for errors.
fn entry_names(entries: &[Descriptor]) -> String {
    let names: Vec<String> = entries
        .iter()
        .map(|e| {
            annotation(e, REF_NAME)
                .or_else(|| annotation(e, IMAGE_NAME))
                .map_or_else(|| format!("{} (unnamed)", e.digest()), str::to_string)
        })
        .collect();
    names.join(", ")
}

/// Chooses the entries to import and names them (see
/// [`Engine::import_layout`]), before anything is written.
fn plan_import(
    layout: &Layout,
    name: Option<&str>,
    ref_name: Option<&str>,
    single: bool,
    max_index_size: u64,
) -> Result<Plan> {
    let entries = layout.index(max_index_size)?;
    if entries.is_empty() {
        return Err(layout.error("index.json lists no image"));
    }
    let mut selected: Vec<Descriptor> = match ref_name {
        Some(wanted) => entries
            .iter()
            .filter(|e| {
                annotation(e, REF_NAME) == Some(wanted) || annotation(e, IMAGE_NAME) == Some(wanted)
            })
            .cloned()
            .collect(),
        None => entries.clone(),
    };
    if let Some(wanted) = ref_name {
        if selected.is_empty() {
            return Err(layout.error(format!(
                "index.json has no image named {wanted:?} (it has: {})",
                entry_names(&entries)
            )));
        }
        selected.dedup_by(|a, b| a.digest() == b.digest());
        if selected.len() > 1 {
            return Err(layout.error(format!(
                "index.json names {} different images {wanted:?}",
                selected.len()
            )));
        }
    }
    if single && selected.len() > 1 {
        return Err(layout.error(format!(
            "index.json lists {} images ({}); name the one to pull",
            selected.len(),
            entry_names(&selected)
        )));
    }
    if let Some(name) = name {
        if selected.len() != 1 {
            return Err(layout.error(format!(
                "a name is given to one image, and index.json lists {} ({}); choose one by its ref name",
                selected.len(),
                entry_names(&selected)
            )));
        }
        return Ok(Plan {
            images: vec![Planned {
                descriptor: selected.remove(0),
                name: Reference::parse(name)?.to_string(),
            }],
            skipped: Vec::new(),
        });
    }
    let alone = selected.len() == 1;
    let mut plan = Plan {
        images: Vec::new(),
        skipped: Vec::new(),
    };
    for entry in selected {
        let Some(name) = entry_name(layout, &entry)? else {
            if alone {
                return Err(layout.error(format!(
                    "its image {} has no name (no {REF_NAME} annotation); give it one with --name",
                    entry.digest()
                )));
            }
            plan.skipped.push(entry);
            continue;
        };
        match plan.images.iter().find(|p| p.name == name) {
            Some(other) if other.descriptor.digest() == entry.digest() => continue,
            Some(other) => {
                return Err(layout.error(format!(
                    "index.json names both {} and {} {name}",
                    other.descriptor.digest(),
                    entry.digest()
                )));
            }
            None => plan.images.push(Planned {
                descriptor: entry,
                name,
            }),
        }
    }
    if plan.images.is_empty() {
        return Err(layout.error(format!(
            "no image in index.json has a name ({REF_NAME}); import one at a time with a name"
        )));
    }
    Ok(plan)
}

/// The name an `index.json` entry gives its image, normalized; `None` when
/// it has none.
fn entry_name(layout: &Layout, entry: &Descriptor) -> Result<Option<String>> {
    if let Some(full) = annotation(entry, IMAGE_NAME) {
        return Ok(Some(Reference::parse(full)?.to_string()));
    }
    let Some(ref_name) = annotation(entry, REF_NAME) else {
        return Ok(None);
    };
    // containerd's rule: a reference has a `/`, `:` or `@`; else it is a tag
    // (what the image spec describes and skopeo writes).
    if ref_name.contains(['/', ':', '@']) {
        return Ok(Some(Reference::parse(ref_name)?.to_string()));
    }
    let repository = layout.repository()?;
    match Reference::parse(&format!("{repository}:{ref_name}")) {
        Ok(reference) => Ok(Some(reference.to_string())),
        Err(_) => Err(layout.error(format!(
            "its image {} is named only by the tag {ref_name:?}, and {repository:?} is not a repository name to put it in; give it a name with --name",
            entry.digest()
        ))),
    }
}

/// One image's walk from a layout into the store; runs on a blocking thread
/// and holds the import's lease while it does.
struct Importer {
    engine: Engine,
    layout: Arc<Layout>,
    options: PullOptions,
    lease: Lease,
    progress: Progress,
    /// The image's name, for errors.
    name: String,
}

/// What the walk found so far.
struct Walk {
    /// Manifests and indexes to visit, with whether their layers are
    /// wanted; it also remembers every digest seen, leaves included.
    queue: manifest::Queue<bool>,
    leaves: Vec<(Descriptor, BlobKind)>,
    manifests: Vec<Descriptor>,
    configs: Vec<Digest>,
    blobs: usize,
    copied: u64,
    image_labels: Labels,
}

impl Importer {
    /// The tree below `root`, as [`crate::fetch`] walks a registry's:
    /// manifests first (they decide what comes next), then configs and
    /// layers of the chosen platforms.
    fn fetch_tree(&self, root: &Descriptor) -> Result<Fetched> {
        let mut walk = Walk {
            queue: manifest::Queue::new(root.clone(), true),
            leaves: Vec::new(),
            manifests: Vec::new(),
            configs: Vec::new(),
            blobs: 0,
            copied: 0,
            image_labels: Labels::new(),
        };
        while let Some((descriptor, wanted)) = walk.queue.pop() {
            let kind = match media_type::classify(descriptor.media_type().as_ref()) {
                Kind::Index => BlobKind::Index,
                Kind::Manifest => BlobKind::Manifest,
                Kind::Schema1Manifest => {
                    return Err(Error::UnsupportedManifest {
                        reference: self.name.clone(),
                        media_type: descriptor.media_type().to_string(),
                        hint: "Docker schema 1 images are not read from layouts",
                    });
                }
                _ => {
                    return Err(self.layout.error(format!(
                        "{} ({}) is neither an image manifest nor an index",
                        descriptor.digest(),
                        descriptor.media_type()
                    )));
                }
            };
            walk.blobs += 1;
            let body = self.store_manifest(&descriptor, kind, &mut walk)?;
            if descriptor.digest() == root.digest() {
                walk.image_labels = crate::fetch::artifact_labels(&body);
            }
            let gc_labels = match manifest::children(descriptor.media_type().as_ref(), &body)? {
                Children::Index(children) => {
                    let (gc_labels, queued) =
                        crate::fetch::index_edges(&self.options, &self.name, &children, wanted)?;
                    for (child, wanted) in queued {
                        walk.queue.push(child, wanted);
                    }
                    gc_labels
                }
                Children::Manifest { config, layers } => {
                    self.handle_manifest(&descriptor, config, layers, wanted, &mut walk)?
                }
                Children::None => Labels::new(),
            };
            self.engine
                .db
                .put_content(descriptor.digest(), descriptor.size(), &gc_labels)?;
        }
        let mut leaves = std::mem::take(&mut walk.leaves);
        leaves.retain(|(descriptor, _)| walk.queue.mark_seen(descriptor.digest()));
        walk.blobs += leaves.len();
        for (descriptor, kind) in &leaves {
            self.progress.send(Event::Waiting {
                digest: descriptor.digest().clone(),
                kind: *kind,
                size: descriptor.size(),
            });
        }
        for (descriptor, kind) in &leaves {
            walk.copied += self.copy_blob(descriptor, *kind)?;
        }
        Ok(Fetched {
            target: root.clone(),
            manifests: walk.manifests,
            configs: walk.configs,
            blobs: walk.blobs,
            downloaded: walk.copied,
            image_labels: walk.image_labels,
        })
    }

    /// An image manifest: queue its config, and its layers when its platform
    /// is wanted; returns its GC labels.
    fn handle_manifest(
        &self,
        descriptor: &Descriptor,
        config: Descriptor,
        layers: Vec<Descriptor>,
        wanted: bool,
        walk: &mut Walk,
    ) -> Result<Labels> {
        // Refused before any layer is copied, as a pull refuses it.
        let unpacked = wanted && self.options.unpack;
        let mut gc_labels = manifest_gc_labels(&config, &layers, unpacked, &self.name)?;
        walk.leaves.push((config.clone(), BlobKind::Config));
        if !wanted {
            return Ok(gc_labels);
        }
        walk.manifests.push(descriptor.clone());
        walk.configs.push(config.digest().clone());
        for (i, layer) in layers.into_iter().enumerate() {
            gc_labels.insert(labels::layer_ref(i), layer.digest().to_string());
            let kind = layer_kind(&layer);
            walk.leaves.push((layer, kind));
        }
        Ok(gc_labels)
    }

    /// Stores an index or manifest from the layout (verified) or reads the
    /// stored copy, and returns its body.
    fn store_manifest(
        &self,
        descriptor: &Descriptor,
        kind: BlobKind,
        walk: &mut Walk,
    ) -> Result<Vec<u8>> {
        let digest = descriptor.digest();
        let limit = self.engine.max_manifest_size();
        if descriptor.size() > limit {
            return Err(Error::InvalidBlob {
                digest: digest.to_string(),
                detail: format!("{kind} is larger than {limit} bytes"),
            });
        }
        if self.engine.content.contains(digest) {
            let body = self.engine.content.read_blob(digest, limit)?;
            self.progress.send(Event::AlreadyExists {
                digest: digest.clone(),
                kind,
                size: descriptor.size(),
            });
            return Ok(body);
        }
        let (reader, _) = self.layout.open_blob(descriptor, kind)?;
        // Bounded: one byte past the descriptor's size is enough to refuse.
        let mut body = Vec::new();
        reader
            .take(descriptor.size().saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| self.layout.io_error(e))?;
        self.write_blob(descriptor, &body[..])?;
        walk.copied += descriptor.size();
        self.progress.send(Event::Done {
            digest: digest.clone(),
            kind,
            size: descriptor.size(),
        });
        Ok(body)
    }

    /// Copies a config or layer from the layout into the store, verified;
    /// returns the bytes copied (0 when it was stored).
    fn copy_blob(&self, descriptor: &Descriptor, kind: BlobKind) -> Result<u64> {
        let digest = descriptor.digest();
        if self.engine.content.contains(digest) {
            self.progress.send(Event::AlreadyExists {
                digest: digest.clone(),
                kind,
                size: descriptor.size(),
            });
            self.engine
                .db
                .put_content(digest, descriptor.size(), &Labels::new())?;
            return Ok(0);
        }
        let (reader, _) = self.layout.open_blob(descriptor, kind)?;
        let reader = Reporting {
            inner: reader,
            progress: &self.progress,
            digest,
            kind,
            total: descriptor.size(),
            current: 0,
            reported: 0,
            reported_at: Instant::now(),
            verifying: false,
        };
        let copied = self.write_blob(descriptor, reader)?;
        self.engine
            .db
            .put_content(digest, descriptor.size(), &Labels::new())?;
        self.progress.send(Event::Done {
            digest: digest.clone(),
            kind,
            size: descriptor.size(),
        });
        Ok(copied)
    }

    /// Writes a blob through the content store's writer, which checks size
    /// and digest at commit: a blob that does not match its descriptor never
    /// becomes visible. Named in the lease before its first byte.
    fn write_blob(&self, descriptor: &Descriptor, reader: impl Read) -> Result<u64> {
        let digest = descriptor.digest();
        self.lease.protect_blocking(digest)?;
        let expected = Expected {
            digest: digest.clone(),
            size: Some(descriptor.size()),
        };
        // The ingest is named by the digest, as downloads name theirs, so a
        // pull of the same blob running meanwhile waits for this one.
        let mut writer = match self.engine.content.writer(digest.as_ref(), expected) {
            Ok(writer) => writer,
            Err(hoist_content::Error::AlreadyExists(_)) => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        // Bytes an interrupted download left are not this file's: start over.
        writer.truncate(0)?;
        // At most one byte past the size is read, enough for the writer to
        // refuse a blob longer than its descriptor.
        let bounded = reader.take(descriptor.size().saturating_add(1));
        hoist_content::copy(writer, bounded).map_err(|source| Error::LayoutBlob {
            path: self.layout.path().to_path_buf(),
            digest: digest.to_string(),
            source: Box::new(source),
        })?;
        Ok(descriptor.size())
    }
}

/// A reader that reports a blob's copy as progress events, and
/// `Verifying` once it has yielded every byte.
struct Reporting<'a, R> {
    inner: R,
    progress: &'a Progress,
    digest: &'a Digest,
    kind: BlobKind,
    total: u64,
    current: u64,
    reported: u64,
    reported_at: Instant,
    verifying: bool,
}

impl<R: Read> Read for Reporting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.current += n as u64;
        if n == 0 {
            if !self.verifying {
                self.verifying = true;
                self.progress.send(Event::Verifying {
                    digest: self.digest.clone(),
                    kind: self.kind,
                });
            }
        } else if self.current - self.reported >= PROGRESS_STEP
            || self.reported_at.elapsed() >= PROGRESS_INTERVAL
        {
            self.reported = self.current;
            self.reported_at = Instant::now();
            self.progress.send(Event::Downloading {
                digest: self.digest.clone(),
                kind: self.kind,
                current: self.current,
                total: self.total,
            });
        }
        Ok(n)
    }
}
