//! Pushing with the real `skopeo`, so the registry holds images written by a
//! third-party client (`skopeo` 1.9 on this machine).

use std::path::Path;
use std::process::Command;

use crate::registry::Registry;

/// Copies the image tagged `tag` in the OCI layout `layout_dir` to
/// `registry`/`repository`:`tag` with
/// `skopeo copy --all --preserve-digests --dest-tls-verify=false
/// [--dest-creds u:p] oci:<dir>:<tag> docker://<host>/<repo>:<tag>`, so the
/// registry gets exactly the layout's manifests (all platforms of an index).
/// Panics with skopeo's output on failure.
pub fn skopeo_copy_layout_to_registry(
    layout_dir: &Path,
    tag: &str,
    registry: &Registry,
    repository: &str,
) {
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
        .arg(format!("oci:{}:{tag}", layout_dir.display()))
        .arg(format!("docker://{}/{repository}:{tag}", registry.host()));
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run skopeo: {e}"));
    assert!(
        output.status.success(),
        "skopeo copy failed ({}):\n{}\n{}\n--- registry.log ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        registry.log()
    );
}
