//! Decoding what a registry serves: index, manifest, config and schema 1
//! bodies, and the walk from a body to its children
//! (`hoist_oci::manifest::children`), as a pull does it.
//!
//! The first byte picks the media type the descriptor claims; the rest is
//! the body. Checked: nothing panics; a body whose type was detected is never
//! refused as a media type mismatch; a schema 1 manifest that parses converts
//! to a schema 2 manifest and config that `children` and the config decoder
//! read back, with matching digests and sizes.

#![no_main]

use hoist_oci::digest::{parse_digest, sha256_digest, verify};
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{
    Children, Descriptor, Error, ImageConfiguration, PlatformMatcher, manifest, schema1,
};
use libfuzzer_sys::fuzz_target;

const MEDIA_TYPES: &[&str] = &[
    media_type::OCI_INDEX,
    media_type::OCI_MANIFEST,
    media_type::DOCKER_MANIFEST_LIST,
    media_type::DOCKER_MANIFEST,
    media_type::DOCKER_SCHEMA1_MANIFEST,
    media_type::DOCKER_SCHEMA1_SIGNED_MANIFEST,
    media_type::OCI_CONFIG,
    media_type::DOCKER_CONFIG,
    media_type::OCI_LAYER_GZIP,
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    "application/octet-stream",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let claimed = MEDIA_TYPES[usize::from(selector) % MEDIA_TYPES.len()];

    let _ = walk(claimed, body);
    if let Some(detected) = manifest::detect_media_type(body) {
        let walked = walk(&detected, body);
        if matches!(
            media_type::classify(&detected),
            Kind::Index | Kind::Manifest
        ) {
            assert!(
                !matches!(walked, Err(Error::MediaTypeMismatch { .. })),
                "detected {detected:?}, then refused as a mismatch: {walked:?}"
            );
        }
    }
    config(body);
    schema1(body);
});

/// `children` and what a pull does with each child.
fn walk(claimed: &str, body: &[u8]) -> Result<Children, Error> {
    let children = manifest::children(claimed, body);
    if let Ok(children) = &children {
        let descriptors = children.descriptors();
        match children {
            Children::Index(manifests) => {
                assert_eq!(descriptors.len(), manifests.len());
                let all = PlatformMatcher::all().best_match(manifests);
                assert_eq!(all.len(), manifests.len());
                let host = PlatformMatcher::only(hoist_oci::Platform::host());
                assert!(host.best_match(manifests).len() <= manifests.len());
                for m in manifests {
                    if let Some(platform) = manifest::platform_of(m) {
                        let _ = platform.normalized().to_string();
                    }
                }
            }
            Children::Manifest { layers, .. } => assert_eq!(descriptors.len(), layers.len() + 1),
            Children::None => assert!(descriptors.is_empty()),
        }
        for descriptor in descriptors {
            child(descriptor, body);
        }
    }
    children
}

fn child(descriptor: &Descriptor, body: &[u8]) {
    let mt = descriptor.media_type().to_string();
    let _ = media_type::classify(&mt);
    let _ = media_type::is_encrypted(&mt);
    let _ = media_type::is_nondistributable(&mt);
    let _ = media_type::is_manifest_or_index(&mt);
    // Any digest a descriptor may carry is either checkable or refused.
    let _ = verify(descriptor.digest(), body);
    let _ = parse_digest(&descriptor.digest().to_string());
}

/// The config decoders: `oci-spec`'s type, and the `rootfs.diff_ids` the
/// unpacker reads (`hoist_engine::unpack`).
fn config(body: &[u8]) {
    if let Ok(config) = serde_json::from_slice::<ImageConfiguration>(body) {
        let _ = serde_json::to_vec(&config).expect("a decoded config encodes");
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(ids) = value.pointer("/rootfs/diff_ids").and_then(|v| v.as_array())
    {
        for id in ids.iter().filter_map(|id| id.as_str()) {
            if let Ok(digest) = parse_digest(id) {
                assert_eq!(digest.to_string(), id);
            }
        }
    }
}

fn schema1(body: &[u8]) {
    let _ = schema1::signed_payload(body);
    let Ok(parsed) = schema1::parse(body) else {
        return;
    };
    assert!(!parsed.entries.is_empty());
    // What the engine gets by fetching each non-empty layer: its size and diffID.
    let layers: Vec<(Descriptor, hoist_oci::Digest)> = parsed
        .layers()
        .iter()
        .enumerate()
        .map(|(i, digest)| {
            let descriptor = Descriptor::new(
                media_type::DOCKER_LAYER_GZIP.into(),
                i as u64 * 1000 + 1,
                (*digest).clone(),
            );
            (descriptor, sha256_digest(digest.to_string().as_bytes()))
        })
        .collect();
    let Ok(converted) = parsed.convert(&layers) else {
        return;
    };
    // Each descriptor names its body exactly.
    for (descriptor, body) in [
        (&converted.config_descriptor, &converted.config),
        (&converted.manifest_descriptor, &converted.manifest),
    ] {
        assert_eq!(descriptor.digest(), &sha256_digest(body));
        assert_eq!(descriptor.size(), body.len() as u64);
    }
    match manifest::children(media_type::DOCKER_MANIFEST, &converted.manifest) {
        Ok(Children::Manifest {
            config,
            layers: converted_layers,
        }) => {
            assert_eq!(config.digest(), converted.config_descriptor.digest());
            assert_eq!(config.size(), converted.config.len() as u64);
            let digests: Vec<_> = converted_layers.iter().map(|l| l.digest()).collect();
            let expected: Vec<_> = layers.iter().map(|(d, _)| d.digest()).collect();
            assert_eq!(digests, expected);
        }
        other => panic!("converted schema 1 manifest does not walk: {other:?}"),
    }
    let value: serde_json::Value =
        serde_json::from_slice(&converted.config).expect("the converted config is JSON");
    let ids = value
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .expect("the converted config has rootfs.diff_ids");
    assert_eq!(ids.len(), layers.len());
}
