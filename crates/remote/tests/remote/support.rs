//! What the resolver tests share: quick options, descriptors of raw bytes,
//! and a small image pushed byte for byte.

use std::path::PathBuf;
use std::time::Duration;

use hoist_remote::{Descriptor, Digest, RegistryOptions, RetryPolicy};
use hoist_testkit::{Registry, sha256_digest};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Options that read no `config.json` of the machine and give up fast.
pub(crate) fn fast_options() -> RegistryOptions {
    RegistryOptions {
        docker_config: Some(PathBuf::from("/nonexistent/config.json")),
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

/// A descriptor of `data`.
pub(crate) fn descriptor(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor::new(
        media_type.into(),
        data.len() as u64,
        Digest::try_from(sha256_digest(data)).unwrap(),
    )
}

/// The bytes of an image pushed by [`push_image`].
pub(crate) struct Pushed {
    pub(crate) manifest: Vec<u8>,
    pub(crate) config: Vec<u8>,
    pub(crate) layer: Vec<u8>,
}

/// Pushes a one-layer OCI image (a 100 kB layer) to `name` under every tag
/// of `tags`.
pub(crate) fn push_image(registry: &Registry, name: &str, tags: &[&str]) -> Pushed {
    let layer: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    registry.push_blob(name, &layer);
    registry.push_blob(name, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    for tag in tags {
        registry.push_manifest(name, tag, OCI_MANIFEST, &manifest);
    }
    Pushed {
        manifest,
        config,
        layer,
    }
}
