//! Pushing with the real `skopeo`, so the registry holds images written by a
//! third-party client (`skopeo` 1.9 on this machine).

use std::path::Path;
use std::process::Command;

use crate::process::run_ok_with;
use crate::registry::Registry;

/// Copies the image tagged `tag` in the OCI layout `layout_dir` to
/// `registry`/`repository`:`tag` with
/// `skopeo copy --all --preserve-digests --dest-tls-verify=false
/// [--dest-creds u:p] oci:<dir>:<tag> docker://<host>/<repo>:<tag>`, so the
/// registry gets exactly the layout's manifests (all platforms of an index).
///
/// skopeo 1.9 reads only OCI manifest and index entries from an OCI layout's
/// `index.json`. For a Docker manifest or manifest list the function lays the
/// same blobs out in skopeo's `dir:` format in a temporary directory and
/// copies from `dir:` instead, which keeps the digests too.
///
/// Panics with skopeo's output on failure.
pub fn skopeo_copy_layout_to_registry(
    layout_dir: &Path,
    tag: &str,
    registry: &Registry,
    repository: &str,
) {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout_dir.join("index.json"))
            .unwrap_or_else(|e| panic!("read {}/index.json: {e}", layout_dir.display())),
    )
    .expect("parse index.json");
    let entry = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no entry tagged {tag:?} in {}", layout_dir.display()))
        .clone();
    let media_type = entry["mediaType"].as_str().unwrap_or_default();

    let dir_transport;
    let source = if media_type.starts_with("application/vnd.oci.") {
        format!("oci:{}:{tag}", layout_dir.display())
    } else {
        dir_transport = docker_dir_transport(layout_dir, &entry);
        format!("dir:{}", dir_transport.path().display())
    };

    let mut command = Command::new("skopeo");
    command
        .arg("--insecure-policy")
        .arg("copy")
        .arg("--quiet")
        .arg("--all")
        .arg("--preserve-digests")
        .arg("--dest-tls-verify=false");
    if let Some((username, password)) = registry.credentials() {
        command.arg(format!("--dest-creds={username}:{password}"));
    }
    command
        .arg(&source)
        .arg(format!("docker://{}/{repository}:{tag}", registry.host()));
    run_ok_with(&mut command, &format!("skopeo copy {source}"), || {
        format!("\n--- registry.log ---\n{}", registry.log())
    });
}

/// Lays out the image `entry` of the OCI layout in skopeo's `dir:` format:
/// `version`, `manifest.json`, `<hex>.manifest.json` for each child of a
/// manifest list, and every blob of the layout as `<hex>`.
fn docker_dir_transport(layout_dir: &Path, entry: &serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("hoist-skopeo-dir-")
        .tempdir()
        .expect("create temp dir");
    let blobs = layout_dir.join("blobs").join("sha256");
    let read = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        std::fs::read(blobs.join(hex)).unwrap_or_else(|e| panic!("read blob {digest}: {e}"))
    };
    std::fs::write(
        dir.path().join("version"),
        "Directory Transport Version: 1.1\n",
    )
    .expect("write version");
    let root_digest = entry["digest"].as_str().expect("entry digest");
    let root = read(root_digest);
    std::fs::write(dir.path().join("manifest.json"), &root).expect("write manifest.json");
    let parsed: serde_json::Value = serde_json::from_slice(&root).expect("parse manifest");
    for child in parsed["manifests"].as_array().into_iter().flatten() {
        let digest = child["digest"].as_str().expect("child digest");
        std::fs::write(
            dir.path().join(format!(
                "{}.manifest.json",
                digest.trim_start_matches("sha256:")
            )),
            read(digest),
        )
        .expect("write child manifest");
    }
    for file in std::fs::read_dir(&blobs).expect("list blobs") {
        let file = file.expect("blob entry");
        std::fs::copy(file.path(), dir.path().join(file.file_name())).expect("copy blob");
    }
    dir
}
