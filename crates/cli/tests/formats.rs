//! Manifests that are not plain images: Docker schema 1, non-distributable
//! (foreign) layers, encrypted layers and OCI 1.1 artifacts, and the pull options that change
//! what is fetched (`--all-metadata`, `--all-tags`,
//! `--discard-unpacked-layers`). Each gives the documented outcome.

use hoist_testkit::fixture::{OCI_CONFIG, OCI_MANIFEST};
use hoist_testkit::schema1::Schema1Image;
use hoist_testkit::{Compression, Format, Layer, Registry, layer, simple_index};
use serde_json::json;

use crate::util::{
    TestEnv, assert_mentions, ca_cert_arg, child, failure, host_platform, serve, stderr, success,
};

const NONDISTRIBUTABLE_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const ENCRYPTED_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";

/// A one-layer OCI image whose layer descriptor is `layer_descriptor`
/// (built by the caller, so it can carry any media type and URLs), pushed
/// as `repository:1.0`; the layer blob itself is not pushed. Returns the
/// manifest digest.
fn push_manifest_with_layer(
    registry: &Registry,
    repository: &str,
    diff_id: &str,
    layer_descriptor: serde_json::Value,
) -> String {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "config": {},
    }))
    .unwrap();
    let config_digest = registry.push_blob(repository, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [layer_descriptor],
    }))
    .unwrap();
    registry.push_manifest(repository, "1.0", OCI_MANIFEST, &manifest)
}

/// [`push_manifest_with_layer`] of `foreign` as a non-distributable layer
/// whose only source is `url`, as `app:1.0`; returns the manifest digest.
fn push_foreign_manifest(registry: &Registry, foreign: &Layer, url: &str) -> String {
    push_manifest_with_layer(
        registry,
        "app",
        &foreign.diff_id,
        json!({"mediaType": NONDISTRIBUTABLE_GZIP, "digest": foreign.digest,
               "size": foreign.blob.len(), "urls": [url]}),
    )
}

/// [`small_layer`] pushed to `server` only (as `far`), and a manifest of
/// it on `registry` whose layer URL points there ([`push_foreign_manifest`]);
/// returns the layer and the manifest digest.
fn push_foreign_layer(registry: &Registry, server: &Registry) -> (Layer, String) {
    let foreign = small_layer();
    server.push_blob("far", &foreign.blob);
    let url = format!("{}/v2/far/blobs/{}", server.base_url(), foreign.digest);
    let digest = push_foreign_manifest(registry, &foreign, &url);
    (foreign, digest)
}

fn small_layer() -> Layer {
    layer(Compression::Gzip, Format::Oci, |l| {
        l.add_file("foreign/file.txt", b"from far away\n", 0o644);
    })
}

#[test]
fn foreign_layer_without_opt_in_fails_naming_the_layer() {
    let registry = Registry::plain();
    let foreign = small_layer();
    let url = format!("https://127.0.0.1:1/v2/x/blobs/{}", foreign.digest);
    push_foreign_manifest(&registry, &foreign, &url);
    let env = TestEnv::new();

    let output = env.pull(&["--plain-http", &registry.reference("app", "1.0")]);

    let line = failure(&output);
    assert_mentions(
        &line,
        &[
            &foreign.digest,
            "non-distributable",
            "--allow-nondistributable",
        ],
    );
    assert!(env.image_names().is_empty(), "no image recorded");
}

#[test]
fn foreign_layer_is_fetched_from_its_https_url_when_allowed() {
    let registry = Registry::plain();
    // The layer lives only on another, TLS, server: the URL in the descriptor.
    let elsewhere = Registry::tls();
    let (foreign, digest) = push_foreign_layer(&registry, &elsewhere);
    let env = TestEnv::new();
    let ca = ca_cert_arg(&elsewhere);

    let stdout = success(&env.run(&[
        "pull",
        "--plain-http",
        "--allow-nondistributable",
        "--tlscacert",
        &ca,
        &registry.reference("app", "1.0"),
    ]));

    assert!(stdout.contains(&digest), "{stdout}");
    assert_eq!(env.stored_blobs()[&foreign.digest], foreign.blob);
    env.assert_store_verified();
    let rootfs = env.rootfs_ok(&registry.reference("app", "1.0"));
    assert_eq!(
        std::fs::read(rootfs.join("foreign/file.txt")).unwrap(),
        b"from far away\n"
    );
}

/// ContainerDrip (CVE-2020-15157): the registry's credentials must not go
/// to a foreign layer's URL. The foreign server here demands the very same
/// credentials, so the pull can only succeed if hoist leaks them.
#[test]
fn foreign_layer_fetch_never_sends_registry_credentials() {
    let registry = Registry::basic("alice", "s3cret");
    let elsewhere = Registry::start(hoist_testkit::RegistryConfig {
        auth: hoist_testkit::Auth::Basic {
            username: "alice".to_string(),
            password: "s3cret".to_string(),
        },
        tls: true,
        ..Default::default()
    });
    let (foreign, _) = push_foreign_layer(&registry, &elsewhere);
    let env = TestEnv::new();
    let ca = ca_cert_arg(&elsewhere);

    let output = env.run(&[
        "pull",
        "--no-unpack",
        "--plain-http",
        "--user",
        "alice:s3cret",
        "--allow-nondistributable",
        "--tlscacert",
        &ca,
        &registry.reference("app", "1.0"),
    ]);

    let line = failure(&output);
    assert_mentions(&line, &["401"]);
    assert!(!env.stored_blobs().contains_key(&foreign.digest));
}

#[test]
fn foreign_layer_with_only_http_urls_is_refused() {
    let registry = Registry::plain();
    // Reachable over plain http, but hoist fetches foreign layers over https only.
    let (foreign, _) = push_foreign_layer(&registry, &registry);
    let env = TestEnv::new();

    let output = env.run(&[
        "pull",
        "--no-unpack",
        "--plain-http",
        "--allow-nondistributable",
        &registry.reference("app", "1.0"),
    ]);

    assert_mentions(&failure(&output), &["https"]);
    assert!(!env.stored_blobs().contains_key(&foreign.digest));
}

#[test]
fn encrypted_layer_is_stored_but_not_unpacked() {
    let registry = Registry::plain();
    // Not really encrypted: only the media type matters to hoist.
    let sealed = small_layer();
    registry.push_blob("app", &sealed.blob);
    let digest = push_manifest_with_layer(
        &registry,
        "app",
        &sealed.diff_id,
        json!({"mediaType": ENCRYPTED_GZIP, "digest": sealed.digest, "size": sealed.blob.len()}),
    );
    let reference = registry.reference("app", "1.0");
    let env = TestEnv::new();

    let unpacking = env.run(&["pull", "--plain-http", &reference]);
    assert_mentions(
        &failure(&unpacking),
        &["encrypted", "decryption is not supported"],
    );
    assert!(env.image_names().is_empty(), "no image recorded");
    assert!(
        !env.stored_blobs().contains_key(&sealed.digest),
        "refused before the layer downloaded"
    );

    let stdout = env.pull_ok(&reference);
    assert!(stdout.contains(&digest), "{stdout}");
    assert!(env.stored_blobs().contains_key(&sealed.digest));
}

#[test]
fn artifact_is_stored_with_no_unpack_and_keeps_artifact_type_and_subject() {
    let registry = Registry::plain();
    let subject = simple_index(Format::Oci, Compression::Gzip, &["linux/amd64"]);
    let subject_pushed = registry.push(&subject, "app", "1.0");
    let chart = b"not really a helm chart".to_vec();
    let chart_digest = registry.push_blob("app", &chart);
    let empty = b"{}".to_vec();
    let empty_digest = registry.push_blob("app", &empty);
    let artifact_type = "application/vnd.cncf.helm.config.v1+json";
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": empty_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": chart_digest, "size": chart.len()}],
        "subject": {"mediaType": subject.media_type(), "digest": subject_pushed.digest,
                    "size": subject.manifest_bytes().len()},
    }))
    .unwrap();
    let digest = registry.push_manifest("app", "chart", OCI_MANIFEST, &manifest);
    let reference = registry.reference("app", "chart");
    let env = TestEnv::new();

    let unpacking = env.run(&["pull", "--plain-http", &reference]);
    assert_mentions(&failure(&unpacking), &["artifact", "--no-unpack"]);

    env.pull_ok(&reference);
    let stored = env.stored_blobs();
    assert_eq!(stored[&chart_digest], chart);
    assert_eq!(stored[&digest], manifest);
    let engine = hoist_engine::Engine::open(env.root()).unwrap();
    let image = engine.image(&reference).unwrap();
    assert_eq!(
        image
            .labels
            .get("hoist.io/artifact-type")
            .map(String::as_str),
        Some(artifact_type)
    );
    assert_eq!(
        image.labels.get("hoist.io/subject"),
        Some(&subject_pushed.digest)
    );
}

#[test]
fn all_metadata_fetches_every_manifest_and_config_but_host_layers_only() {
    let (_registry, index, pushed) = serve(
        simple_index(
            Format::Oci,
            Compression::Gzip,
            &["linux/amd64", "linux/arm64"],
        ),
        "app",
        "1.0",
    );
    let env = TestEnv::new();

    env.pull_ok_with(&["--all-metadata"], &pushed.reference);

    let stored = env.stored_digests();
    for platform in ["linux/amd64", "linux/arm64"] {
        let image = child(&index, platform);
        assert!(
            stored.contains(&image.manifest_digest()),
            "{platform} manifest"
        );
        assert!(
            stored.contains(image.config_digest().unwrap()),
            "{platform} config"
        );
        let layers_stored = image
            .layers()
            .iter()
            .filter(|l| stored.contains(&l.digest))
            .count();
        if platform == host_platform() {
            assert_eq!(layers_stored, image.layers().len(), "{platform} layers");
        } else {
            assert_eq!(layers_stored, 0, "{platform} layers must not be fetched");
        }
    }
    // The index keeps both manifests alive for GC.
    let labels = &env.content()[&pushed.digest];
    let referenced: Vec<&String> = labels
        .iter()
        .filter(|(k, _)| k.starts_with("containerd.io/gc.ref.content.m."))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(referenced.len(), 2, "{labels:?}");
}

#[test]
fn all_tags_pulls_every_tag_of_the_repository() {
    let registry = Registry::plain();
    let index = simple_index(Format::Oci, Compression::Gzip, &["linux/amd64"]);
    for tag in ["1.0", "1.1", "latest"] {
        registry.push(&index, "app", tag);
    }
    let env = TestEnv::new();
    let repository = format!("{}/app", registry.host());

    success(&env.pull(&["--plain-http", "--all-tags", &repository]));

    let mut names = env.image_names();
    names.sort();
    assert_eq!(
        names,
        ["1.0", "1.1", "latest"]
            .map(|tag| format!("{repository}:{tag}"))
            .to_vec()
    );
    let tagged = env.pull(&["--plain-http", "--all-tags", &format!("{repository}:1.0")]);
    assert_mentions(&failure(&tagged), &["--all-tags", "without a tag"]);
}

#[test]
fn discard_unpacked_layers_drops_the_layer_gc_edges() {
    let (_registry, index, pushed) = serve(
        simple_index(Format::Oci, Compression::Gzip, &[host_platform()]),
        "app",
        "1.0",
    );
    let manifest = child(&index, host_platform()).manifest_digest();
    let env = TestEnv::new();

    let pull = || {
        env.run(&[
            "pull",
            "--plain-http",
            "--snapshotter",
            "native",
            "--discard-unpacked-layers",
            &pushed.reference,
        ])
    };
    let output = pull();
    let stdout = success(&output);
    assert!(stdout.contains("unpacked native"), "{stdout}");

    let labels = &env.content()[&manifest];
    assert!(
        labels.contains_key("containerd.io/gc.ref.content.config"),
        "{labels:?}"
    );
    assert!(
        !labels
            .keys()
            .any(|k| k.starts_with("containerd.io/gc.ref.content.l.")),
        "layer edges remain: {labels:?} ({})",
        stderr(&output)
    );

    // The pull itself ends with a collection: the compressed layers are
    // gone without a `hoist gc`, the image stays whole and unpacked, and
    // the store checks clean.
    let layers: Vec<String> = child(&index, host_platform())
        .layers()
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    let stored = env.stored_digests();
    for layer in &layers {
        assert!(!stored.contains(layer), "layer {layer} survived the pull");
    }
    assert!(stored.contains(&manifest), "manifest is kept");
    assert!(stored.contains(&pushed.digest), "index is kept");
    success(&env.run(&["check"]));
    let images = env.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].unpacked, "yes", "{images:?}");

    // A re-pull that unpacks finds every snapshot and downloads no layer
    // (as containerd's unpacker skips them).
    let again = pull();
    success(&again);
    for layer in &layers {
        assert!(
            stderr(&again).contains(&format!("{layer}: already exists")),
            "{}",
            stderr(&again)
        );
    }
    assert!(
        env.stored_digests().iter().all(|d| !layers.contains(d)),
        "no layer blob downloaded"
    );

    // Flattening needs the layer blobs: a clear error, and a content-only
    // pull fetches them again.
    let refused = env.run(&[
        "rootfs",
        &pushed.reference,
        env.path("rootfs").to_str().unwrap(),
    ]);
    assert_mentions(
        &failure(&refused),
        &["not stored", "hoist pull --no-unpack"],
    );
    success(&env.pull(&["--plain-http", &pushed.reference]));
    let rootfs = env.rootfs_ok(&pushed.reference);
    assert!(
        rootfs.join("hello.txt").is_file(),
        "the flattened tree is back"
    );
}

/// The strings of a JSON array, each picked out of its element by `pick`.
fn json_strings<'a>(
    array: &'a serde_json::Value,
    pick: impl Fn(&'a serde_json::Value) -> &'a serde_json::Value,
) -> Vec<&'a str> {
    let elements = array.as_array().expect("a JSON array");
    elements
        .iter()
        .map(|element| pick(element).as_str().expect("a JSON string"))
        .collect()
}

fn schema1_image() -> Schema1Image {
    let layers = vec![
        layer(Compression::Gzip, Format::Docker, |l| {
            l.add_file("etc/os-release", b"ID=old\n", 0o644);
        }),
        layer(Compression::Gzip, Format::Docker, |l| {
            l.add_file("app/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
        }),
    ];
    Schema1Image::new("app", "old", layers)
}

#[test]
fn schema1_is_refused_by_default_with_how_to_opt_in() {
    let registry = Registry::plain();
    let image = schema1_image();
    image.push(&registry, "app", "old");
    let env = TestEnv::new();

    let output = env.pull(&["--plain-http", &registry.reference("app", "old")]);

    assert_mentions(&failure(&output), &["schema 1", "--allow-schema1"]);
    assert!(env.stored_digests().is_empty(), "nothing stored");
}

#[test]
fn schema1_is_converted_to_schema2_with_allow_schema1() {
    let registry = Registry::plain();
    let image = schema1_image();
    let digest = image.push(&registry, "app", "old");
    assert_eq!(digest, image.digest, "registry digest is the payload's");
    let reference = registry.reference("app", "old");
    let env = TestEnv::new();

    let stdout = success(&env.run(&[
        "pull",
        "--plain-http",
        "--allow-schema1",
        "--snapshotter",
        "native",
        &reference,
    ]));

    // The image now points at a converted Docker schema 2 manifest.
    let images = env.images();
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert!(stdout.contains(&images[0].digest), "{stdout}");
    let stored = env.stored_blobs();
    let manifest: serde_json::Value = serde_json::from_slice(&stored[&images[0].digest]).unwrap();
    let layers: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(
        json_strings(&manifest["layers"], |l| &l["digest"]),
        layers,
        "non-empty layers, oldest first"
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(&stored[config_digest]).unwrap();
    let diff_ids: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(
        json_strings(&config["rootfs"]["diff_ids"], |d| d),
        diff_ids,
        "diffIDs computed from the layers"
    );
    assert_eq!(config["config"]["Cmd"][0], "sh");
    assert_eq!(config["history"].as_array().unwrap().len(), 3);
    env.assert_store_verified();
    // And it unpacked: both layers' files are in the flattened rootfs.
    let rootfs = env.rootfs_ok(&reference);
    assert_eq!(
        std::fs::read(rootfs.join("etc/os-release")).unwrap(),
        b"ID=old\n"
    );
    assert!(rootfs.join("app/run.sh").exists());
}
