//! Unpacking with the real `umoci` (0.4.7 on this machine), the reference
//! unpacker hoist's root file systems are compared with.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{Compression, Format, Image, Layer};

/// The OCI layer media type with the same compression as `media_type`.
fn oci_layer_media_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar" => {
            "application/vnd.oci.image.layer.v1.tar".to_string()
        }
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string()
        }
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            "application/vnd.oci.image.layer.v1.tar+zstd".to_string()
        }
        other => other.to_string(),
    }
}

/// The twin of a single image that umoci 0.4.7 reads: OCI media types, and
/// zstd layers recompressed with gzip. The uncompressed tars, so the diffIDs
/// and the tree, are the same; an OCI image without zstd layers is returned
/// as is.
pub fn oci_twin(image: &Image) -> Image {
    assert!(
        !image.is_index(),
        "oci_twin takes a single image; pick a child of the index"
    );
    let plain = image.layers().iter().all(|l| {
        l.media_type.starts_with("application/vnd.oci.") && !l.media_type.ends_with("+zstd")
    });
    if image.media_type().starts_with("application/vnd.oci.") && plain {
        return image.clone();
    }
    let layers = image
        .layers()
        .iter()
        .map(|layer| {
            let media_type = oci_layer_media_type(&layer.media_type);
            if media_type.ends_with("+zstd") {
                // umoci 0.4.7 knows no zstd: the same tar, gzip-compressed.
                let tar = zstd::decode_all(&layer.blob[..]).expect("zstd layer");
                Layer::from_tar(Compression::Gzip, Format::Oci, &tar)
            } else {
                Layer {
                    media_type,
                    ..layer.clone()
                }
            }
        })
        .collect();
    Image::single(
        Format::Oci,
        image.platform().expect("a single image has a platform"),
        layers,
    )
}

/// Unpacks the single image `image` with
/// `umoci unpack --image <layout>:<tag> <dest>` (adding `--rootless` when not
/// root) and returns `<dest>/rootfs`. `dest`, the bundle, must not exist.
///
/// The image is written as an OCI image layout into a temporary directory
/// first. umoci reads only OCI media types and no zstd, so a Docker v2s2
/// image or a zstd one is unpacked through its [`oci_twin`]: the same tars
/// under OCI types (gzip for zstd), which gives the same tree. Panics with umoci's output if it fails.
pub fn umoci_unpack(image: &Image, dest: &Path) -> PathBuf {
    const TAG: &str = "hoist-testkit";
    let twin = oci_twin(image);
    let layout = tempfile::Builder::new()
        .prefix("hoist-umoci-layout-")
        .tempdir()
        .expect("create layout temp dir");
    twin.write_oci_layout(layout.path(), TAG);
    let mut command = Command::new("umoci");
    command
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{TAG}", layout.path().display()));
    if !rustix::process::geteuid().is_root() {
        command.arg("--rootless");
    }
    command.arg(dest);
    crate::run_ok(
        &mut command,
        &format!("umoci unpack into {}", dest.display()),
    );
    dest.join("rootfs")
}
