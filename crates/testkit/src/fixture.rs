//! Image fixtures built in pure Rust: layers (tar archives, plain, gzip or
//! zstd), image configs, manifests and indexes with OCI or Docker media types,
//! and OCI image layouts on disk.
//!
//! Everything is deterministic: the same inputs give the same bytes and so the
//! same digests (fixed mtimes, uid/gid 0, gzip without a timestamp, zstd at a
//! fixed level, JSON with sorted keys).
//!
//! ```
//! use hoist_testkit::fixture::{Compression, Format, Image, layer};
//!
//! let base = layer(Compression::Gzip, Format::Oci, |l| {
//!     l.add_dir("etc", 0o755).add_file("etc/motd", b"hi\n", 0o644);
//! });
//! let top = layer(Compression::Gzip, Format::Oci, |l| {
//!     l.add_whiteout("etc/motd");
//! });
//! let amd64 = Image::single(Format::Oci, "linux/amd64", vec![base.clone(), top.clone()]);
//! let arm64 = Image::single(Format::Oci, "linux/arm64/v8", vec![base, top]);
//! let index = Image::index(Format::Oci, vec![amd64, arm64]);
//! assert_eq!(index.children().len(), 2);
//! assert!(index.manifest_digest().starts_with("sha256:"));
//! ```

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image manifest v2 schema 2 media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The mtime of every tar entry (2024-01-01T00:00:00Z).
pub const FIXED_MTIME: u64 = 1_704_067_200;
/// The `created` time of every config and history entry.
const CREATED: &str = "2024-01-01T00:00:00Z";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    hoist_oci::sha256_digest(bytes).to_string()
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (no timestamp, so deterministic).
    Gzip,
    /// zstd, level 3.
    Zstd,
}

/// Which family of media types to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image spec media types (`application/vnd.oci.image.*`).
    Oci,
    /// Docker image manifest v2 schema 2 and manifest list media types
    /// (`application/vnd.docker.*`).
    ///
    /// Docker never defined a zstd layer; with [`Compression::Zstd`] the
    /// layer gets `application/vnd.docker.image.rootfs.diff.tar.zstd`, the
    /// type containerd recognises. It is a test oddity, not something Docker
    /// produces.
    Docker,
}

impl Format {
    /// The media type of a layer in this format with this compression.
    pub fn layer_media_type(self, compression: Compression) -> &'static str {
        match (self, compression) {
            (Format::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (Format::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Format::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Format::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (Format::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (Format::Docker, Compression::Zstd) => {
                "application/vnd.docker.image.rootfs.diff.tar.zstd"
            }
        }
    }

    /// The manifest media type of this format.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }

    /// The index (manifest list) media type of this format.
    pub fn index_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_MANIFEST_LIST,
        }
    }

    /// The config media type of this format.
    pub fn config_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        }
    }
}

/// Builds the tar archive of one layer. Entries keep the order they were
/// added in; every entry has uid/gid 0 and mtime [`FIXED_MTIME`].
///
/// Paths are relative (`etc/passwd`); the methods validate them the way the
/// `tar` crate does (no `..`), except [`LayerBuilder::add_raw_file`].
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// A GNU header of `entry_type` owned by root with `mode`, `size` and the
/// fixed mtime; the caller sets the path (and the checksum, by appending).
pub(crate) fn header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(FIXED_MTIME);
    header.set_size(size);
    header
}

impl LayerBuilder {
    /// An empty archive.
    pub fn new() -> LayerBuilder {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Complete);
        LayerBuilder { tar }
    }

    /// A regular file with `contents` and permission bits `mode` (e.g. 0o644).
    pub fn add_file(&mut self, path: &str, contents: &[u8], mode: u32) -> &mut Self {
        self.add_file_owned(path, contents, mode, 0, 0)
    }

    /// A regular file owned by `uid`:`gid`.
    pub fn add_file_owned(
        &mut self,
        path: &str,
        contents: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut header = header(tar::EntryType::Regular, mode, contents.len() as u64);
        header.set_uid(uid);
        header.set_gid(gid);
        self.tar
            .append_data(&mut header, path, contents)
            .unwrap_or_else(|e| panic!("add file {path}: {e}"));
        self
    }

    /// A directory with permission bits `mode` (e.g. 0o755).
    pub fn add_dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.add_empty(tar::EntryType::Directory, path, mode)
    }

    /// A symbolic link at `path` pointing at `target` (kept verbatim, may be
    /// absolute or contain `..`).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add_link(tar::EntryType::Symlink, 0o777, path, target)
    }

    /// A hard link at `path` to the earlier entry `target` (a path in the
    /// archive).
    pub fn add_hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add_link(tar::EntryType::Link, 0o644, path, target)
    }

    /// A FIFO (named pipe).
    pub fn add_fifo(&mut self, path: &str, mode: u32) -> &mut Self {
        self.add_empty(tar::EntryType::Fifo, path, mode)
    }

    /// An entry of `kind` with no data (a directory, a fifo).
    fn add_empty(&mut self, kind: tar::EntryType, path: &str, mode: u32) -> &mut Self {
        let mut header = header(kind, mode, 0);
        self.tar
            .append_data(&mut header, path, std::io::empty())
            .unwrap_or_else(|e| panic!("add {kind:?} {path}: {e}"));
        self
    }

    /// A link entry of `kind` (symbolic or hard) at `path` to `target`.
    fn add_link(&mut self, kind: tar::EntryType, mode: u32, path: &str, target: &str) -> &mut Self {
        let mut header = header(kind, mode, 0);
        self.tar
            .append_link(&mut header, path, target)
            .unwrap_or_else(|e| panic!("add {kind:?} {path}: {e}"));
        self
    }

    /// An OCI/AUFS whiteout deleting `path` of lower layers: the empty file
    /// `dir/.wh.name`.
    pub fn add_whiteout(&mut self, path: &str) -> &mut Self {
        let path = path.trim_end_matches('/');
        let whiteout = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        self.add_file(&whiteout, b"", 0o644)
    }

    /// An opaque whiteout: `dir/.wh..wh..opq`, hiding everything lower layers
    /// put in `dir`.
    pub fn add_opaque(&mut self, dir: &str) -> &mut Self {
        let dir = dir.trim_end_matches('/');
        self.add_file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    /// A regular file whose name is written into the header verbatim, with no
    /// validation: for hostile archives (`../escape`, `/abs`). At most 100
    /// bytes.
    pub fn add_raw_file(&mut self, name: &str, contents: &[u8], mode: u32) -> &mut Self {
        let mut header = header(tar::EntryType::Regular, mode, contents.len() as u64);
        let field = &mut header.as_old_mut().name;
        assert!(
            name.len() <= field.len(),
            "raw tar name longer than 100 bytes"
        );
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        self.tar
            .append(&header, contents)
            .unwrap_or_else(|e| panic!("add raw file {name}: {e}"));
        self
    }

    /// Appends a hand-made header and its data, for anything the other
    /// methods do not cover. Set the checksum (`header.set_cksum()`) first.
    pub fn add_entry(&mut self, header: &tar::Header, data: &[u8]) -> &mut Self {
        self.tar.append(header, data).expect("append tar entry");
        self
    }

    /// Finishes the archive and returns the uncompressed tar.
    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().expect("finish tar")
    }
}

/// One layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer media type (see [`Format::layer_media_type`]).
    pub media_type: String,
    /// The blob as stored in the registry (compressed unless
    /// [`Compression::None`]).
    pub blob: Vec<u8>,
    /// `sha256:…` of `blob`.
    pub digest: String,
    /// `sha256:…` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
}

impl Layer {
    /// Compresses the uncompressed `tar` into a layer.
    pub fn from_tar(compression: Compression, format: Format, tar: &[u8]) -> Layer {
        let blob = match compression {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                // GzEncoder::new writes mtime 0 and no file name.
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(tar).expect("gzip");
                encoder.finish().expect("gzip finish")
            }
            Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd"),
        };
        Layer {
            media_type: format.layer_media_type(compression).to_string(),
            digest: sha256_digest(&blob),
            diff_id: sha256_digest(tar),
            blob,
        }
    }

    /// The blob size in bytes.
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }

    /// The manifest descriptor of this layer.
    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

/// Builds one layer: `build` fills a [`LayerBuilder`], and the tar is then
/// compressed and typed for `format`.
pub fn layer(
    compression: Compression,
    format: Format,
    build: impl FnOnce(&mut LayerBuilder),
) -> Layer {
    let mut builder = LayerBuilder::new();
    build(&mut builder);
    Layer::from_tar(compression, format, &builder.finish())
}

/// A platform string `os/arch[/variant]` split into its parts.
fn parse_platform(platform: &str) -> (String, String, Option<String>) {
    let parts: Vec<&str> = platform.split('/').collect();
    match parts.as_slice() {
        [os, arch] => (os.to_string(), arch.to_string(), None),
        [os, arch, variant] => (os.to_string(), arch.to_string(), Some(variant.to_string())),
        _ => panic!("platform {platform:?} is not os/arch[/variant]"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Single {
        config: Vec<u8>,
        config_digest: String,
        config_media_type: String,
        layers: Vec<Layer>,
    },
    Index {
        children: Vec<Image>,
    },
}

/// An image: one platform's manifest with its config and layers, or an index
/// (manifest list) of several images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    media_type: String,
    manifest: Vec<u8>,
    digest: String,
    platform: Option<String>,
    body: Body,
}

impl Image {
    /// A single-platform image: config (`architecture`, `os`, `variant` from
    /// `platform` such as `"linux/arm64/v8"`, `rootfs.diff_ids`, `history`,
    /// empty `config`) and manifest in `format`'s media types.
    pub fn single(format: Format, platform: &str, layers: Vec<Layer>) -> Image {
        Image::single_with_config(format, platform, layers, json!({}))
    }

    /// Like [`Image::single`] with `container_config` as the config's
    /// `config` object (`Env`, `Cmd`, `Entrypoint`, `Labels`, …).
    pub fn single_with_config(
        format: Format,
        platform: &str,
        layers: Vec<Layer>,
        container_config: Value,
    ) -> Image {
        let (os, arch, variant) = parse_platform(platform);
        let mut config = json!({
            "architecture": arch,
            "os": os,
            "created": CREATED,
            "config": container_config,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": (0..layers.len())
                .map(|i| json!({"created": CREATED, "created_by": format!("hoist-testkit layer {i}")}))
                .collect::<Vec<_>>(),
        });
        if let Some(variant) = &variant {
            config["variant"] = json!(variant);
        }
        let config = serde_json::to_vec(&config).expect("config json");
        let config_digest = sha256_digest(&config);
        let config_media_type = format.config_media_type().to_string();
        let media_type = format.manifest_media_type().to_string();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": config_media_type,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layers.iter().map(Layer::descriptor).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).expect("manifest json");
        Image {
            media_type,
            digest: sha256_digest(&manifest),
            manifest,
            platform: Some(platform.to_string()),
            body: Body::Single {
                config,
                config_digest,
                config_media_type,
                layers,
            },
        }
    }

    /// An OCI index or Docker manifest list of `images`, each entry with its
    /// `platform` (nested indexes get none).
    pub fn index(format: Format, images: Vec<Image>) -> Image {
        let manifests: Vec<Value> = images
            .iter()
            .map(|image| {
                let mut entry = image.descriptor();
                if let Some(platform) = &image.platform {
                    let (os, arch, variant) = parse_platform(platform);
                    let mut p = json!({"architecture": arch, "os": os});
                    if let Some(variant) = variant {
                        p["variant"] = json!(variant);
                    }
                    entry["platform"] = p;
                }
                entry
            })
            .collect();
        let media_type = format.index_media_type().to_string();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        }))
        .expect("index json");
        Image {
            media_type,
            digest: sha256_digest(&manifest),
            manifest,
            platform: None,
            body: Body::Index { children: images },
        }
    }

    /// `sha256:…` of the manifest (or index) bytes.
    pub fn manifest_digest(&self) -> String {
        self.digest.clone()
    }

    /// The manifest (or index) JSON exactly as pushed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }

    /// The manifest (or index) media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The manifest size in bytes.
    pub fn size(&self) -> u64 {
        self.manifest.len() as u64
    }

    /// Whether this is an index / manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self.body, Body::Index { .. })
    }

    /// The platform (`os/arch[/variant]`) of a single image; `None` for an
    /// index.
    pub fn platform(&self) -> Option<&str> {
        self.platform.as_deref()
    }

    /// The images of an index (empty for a single image).
    pub fn children(&self) -> &[Image] {
        match &self.body {
            Body::Index { children } => children,
            Body::Single { .. } => &[],
        }
    }

    /// The layers of a single image (empty for an index).
    pub fn layers(&self) -> &[Layer] {
        match &self.body {
            Body::Single { layers, .. } => layers,
            Body::Index { .. } => &[],
        }
    }

    /// The chainID of each layer prefix of a single image (see
    /// [`chain_ids`]); empty for an index.
    pub fn chain_ids(&self) -> Vec<String> {
        let diff_ids: Vec<String> = self.layers().iter().map(|l| l.diff_id.clone()).collect();
        chain_ids(&diff_ids)
    }

    /// The config JSON of a single image.
    pub fn config_bytes(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Single { config, .. } => Some(config),
            Body::Index { .. } => None,
        }
    }

    /// `sha256:…` of the config of a single image.
    pub fn config_digest(&self) -> Option<&str> {
        match &self.body {
            Body::Single { config_digest, .. } => Some(config_digest),
            Body::Index { .. } => None,
        }
    }

    /// The descriptor (`mediaType`, `digest`, `size`) of this manifest.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }

    /// Every blob of this image, deduplicated, each once: this manifest,
    /// then for a single image its config and layers, for an index the blobs
    /// of each child in order.
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        self.collect_blobs(&mut seen, &mut out);
        out
    }

    fn collect_blobs(&self, seen: &mut HashSet<String>, out: &mut Vec<(String, Vec<u8>)>) {
        if seen.insert(self.digest.clone()) {
            out.push((self.digest.clone(), self.manifest.clone()));
        }
        match &self.body {
            Body::Single {
                config,
                config_digest,
                layers,
                ..
            } => {
                if seen.insert(config_digest.clone()) {
                    out.push((config_digest.clone(), config.clone()));
                }
                for layer in layers {
                    if seen.insert(layer.digest.clone()) {
                        out.push((layer.digest.clone(), layer.blob.clone()));
                    }
                }
            }
            Body::Index { children } => {
                for child in children {
                    child.collect_blobs(seen, out);
                }
            }
        }
    }

    /// The config and layer blobs of a single image (not manifests).
    pub(crate) fn content_blobs(&self) -> Vec<(&str, &[u8])> {
        match &self.body {
            Body::Single {
                config,
                config_digest,
                layers,
                ..
            } => std::iter::once((config_digest.as_str(), config.as_slice()))
                .chain(
                    layers
                        .iter()
                        .map(|l| (l.digest.as_str(), l.blob.as_slice())),
                )
                .collect(),
            Body::Index { .. } => Vec::new(),
        }
    }

    /// Writes this image into the OCI image layout at `dir` (created if
    /// missing): `oci-layout`, every blob under `blobs/sha256/`, and an entry
    /// in `index.json` annotated `org.opencontainers.image.ref.name: tag`.
    /// An existing layout keeps its other entries; an entry with the same tag
    /// is replaced.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) {
        let blobs_dir = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", blobs_dir.display()));
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write oci-layout");
        for (digest, bytes) in self.blobs() {
            let hex = digest.trim_start_matches("sha256:");
            std::fs::write(blobs_dir.join(hex), bytes).expect("write blob");
        }
        let index_path = dir.join("index.json");
        let mut manifests: Vec<Value> = match std::fs::read(&index_path) {
            Ok(bytes) => {
                let index: Value = serde_json::from_slice(&bytes).expect("parse index.json");
                index["manifests"].as_array().cloned().unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
        let mut entry = self.descriptor();
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        manifests.push(entry);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        std::fs::write(&index_path, serde_json::to_vec(&index).expect("json"))
            .expect("write index.json");
    }
}

/// Deterministic pseudo-random bytes from a string seed (xorshift seeded
/// from the seed's sha256).
fn noise_from(seed: &str, len: usize) -> Vec<u8> {
    let hash = hex::decode(&hoist_oci::digest::sha256_hex(seed.as_bytes())[..16]).expect("hex");
    xorshift(
        u64::from_le_bytes(hash[..].try_into().expect("8 bytes")),
        len,
    )
}

/// Deterministic incompressible bytes: `len` bytes of xorshift64 seeded by
/// `seed`, for layers that must not compress.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), len)
}

fn xorshift(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The chainID of each prefix of `diff_ids` (see
/// [`hoist_oci::digest::chain_ids`]), as strings.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let diff_ids: Vec<hoist_oci::Digest> = diff_ids
        .iter()
        .map(|d| hoist_oci::Digest::try_from(d.as_str()).expect("a diffID is a digest"))
        .collect();
    hoist_oci::digest::chain_ids(&diff_ids)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A small image of three layers whose content is seeded with `platform`, so
/// different platforms give different digests:
///
/// 1. `etc/` (0755), `etc/hostname` (`"hoist-<platform>\n"`), `bin/` (0755);
/// 2. `hello.txt` (0644, `"hello from <platform>\n"`) and the symlink
///    `bin/hello -> ../hello.txt`;
/// 3. `data/blob.bin` (0644), 64 KiB of incompressible bytes, so its blob is
///    big enough to cut in the middle.
pub fn simple_image(format: Format, compression: Compression, platform: &str) -> Image {
    let layers = vec![
        layer(compression, format, |l| {
            l.add_dir("etc", 0o755)
                .add_file(
                    "etc/hostname",
                    format!("hoist-{platform}\n").as_bytes(),
                    0o644,
                )
                .add_dir("bin", 0o755);
        }),
        layer(compression, format, |l| {
            l.add_file(
                "hello.txt",
                format!("hello from {platform}\n").as_bytes(),
                0o644,
            )
            .add_symlink("bin/hello", "../hello.txt");
        }),
        layer(compression, format, |l| {
            l.add_dir("data", 0o755).add_file(
                "data/blob.bin",
                &noise_from(platform, 64 * 1024),
                0o644,
            );
        }),
    ];
    Image::single(format, platform, layers)
}

/// An index (manifest list) of [`simple_image`]s, one per platform.
pub fn simple_index(format: Format, compression: Compression, platforms: &[&str]) -> Image {
    Image::index(
        format,
        platforms
            .iter()
            .map(|p| simple_image(format, compression, p))
            .collect(),
    )
}
