//! `hoist pull` of single-platform images from a plain registry: OCI and
//! Docker media types, gzip, zstd and uncompressed layers, a large layer,
//! references by tag, digest and both, the loopback https→http fallback,
//! re-pulls that find everything stored, images pushed by skopeo, resuming
//! ingests left by an interrupted pull, and unknown tags. (Indexes and
//! platform selection: `platforms`; auth: `auth`; TLS: `tls`; broken
//! registries: `faults`.)

use std::collections::{BTreeMap, BTreeSet};

use hoist_testkit::fixture::{DOCKER_MANIFEST, OCI_MANIFEST};
use hoist_testkit::{
    Compression, FaultProxy, Format, Image, Pushed, Registry, layer, simple_image,
    skopeo_copy_layout_to_registry,
};

use crate::util::{
    TestEnv, assert_blobs_verify, assert_mentions, assert_pulled, assert_pulled_image,
    behind_proxy, big_image, digests_of, failure, host_platform, serve_and_pull_simple,
    serve_simple, stderr, success,
};

/// Pushes `image` as `app:1.0`, pulls it with `--plain-http`, and checks the
/// store, the image record and the GC labels of the manifest.
fn pull_single_and_check(image: &Image) {
    let registry = Registry::plain();
    let pushed = registry.push(image, "app", "1.0");
    let env = TestEnv::new();

    let stdout = env.pull_ok(&pushed.reference);

    assert_eq!(stdout, format!("{} {}\n", pushed.reference, pushed.digest));
    assert_pulled(&env, &pushed.reference, &pushed.digest, &digests_of(image));
    let images = env.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].media_type, image.media_type());
    assert_eq!(images[0].platforms, host_platform());
    // The stored bytes are exactly the fixture's.
    let stored = env.stored_blobs();
    for (digest, bytes) in image.blobs() {
        assert_eq!(stored[&digest], bytes, "bytes of {digest}");
    }

    // The manifest references its config and layers for GC, in order; every
    // blob records where it came from.
    let content = env.content();
    let labels = &content[&image.manifest_digest()];
    assert_eq!(
        labels["containerd.io/gc.ref.content.config"],
        image.config_digest().expect("config")
    );
    for (i, layer) in image.layers().iter().enumerate() {
        assert_eq!(
            labels[&format!("containerd.io/gc.ref.content.l.{i}")],
            layer.digest
        );
    }
    let gc_refs = labels
        .keys()
        .filter(|k| k.starts_with("containerd.io/gc.ref."))
        .count();
    assert_eq!(gc_refs, 1 + image.layers().len(), "labels: {labels:?}");
    let source = format!("containerd.io/distribution.source.{}", registry.host());
    for digest in digests_of(image) {
        assert_eq!(content[&digest][&source], "app", "source label of {digest}");
    }
}

/// [`pull_single_and_check`] of the simple host-platform image in `format`
/// with `compression` layers, after checking it has that format's manifest
/// media type.
fn pull_simple_and_check(format: Format, compression: Compression) {
    let image = simple_image(format, compression, host_platform());
    let media_type = match format {
        Format::Oci => OCI_MANIFEST,
        Format::Docker => DOCKER_MANIFEST,
    };
    assert_eq!(image.media_type(), media_type);
    pull_single_and_check(&image);
}

/// One `#[test]` of [`pull_simple_and_check`] per name, format and
/// compression.
macro_rules! pull_simple_tests {
    ($($test:ident: $format:ident, $compression:ident;)*) => {
        $(
            #[test]
            fn $test() {
                pull_simple_and_check(Format::$format, Compression::$compression);
            }
        )*
    };
}

pull_simple_tests! {
    pull_oci_gzip_image_stores_every_blob: Oci, Gzip;
    pull_oci_zstd_image_stores_every_blob: Oci, Zstd;
    pull_oci_uncompressed_image_stores_every_blob: Oci, None;
    pull_docker_v2s2_gzip_image_stores_every_blob: Docker, Gzip;
    pull_docker_v2s2_uncompressed_image_stores_every_blob: Docker, None;
}

#[test]
fn pull_image_with_mixed_layer_compressions_stores_every_blob() {
    let layers = [Compression::Gzip, Compression::Zstd, Compression::None]
        .into_iter()
        .enumerate()
        .map(|(i, compression)| {
            layer(compression, Format::Oci, |l| {
                l.add_file(
                    &format!("f{i}"),
                    format!("{compression:?}\n").as_bytes(),
                    0o644,
                );
            })
        })
        .collect();
    pull_single_and_check(&Image::single(Format::Oci, host_platform(), layers));
}

#[test]
fn pull_large_layer_streams_it_whole() {
    // 6 MiB of incompressible bytes: many chunks, several progress steps.
    let image = big_image(1, 6 << 20);
    assert!(image.layers()[1].size() > 6 << 20);
    pull_single_and_check(&image);
}

#[test]
fn pull_without_plain_http_falls_back_to_http_on_loopback() {
    let (_registry, image, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();

    let stdout = success(&env.pull(&[&pushed.reference]));

    assert_eq!(stdout, format!("{} {}\n", pushed.reference, pushed.digest));
    assert_pulled(&env, &pushed.reference, &pushed.digest, &digests_of(&image));
}

#[test]
fn pull_by_digest_records_the_digest_reference() {
    let (_registry, image, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();

    let stdout = env.pull_ok(&pushed.digest_reference);

    assert_eq!(
        stdout,
        format!("{} {}\n", pushed.digest_reference, pushed.digest)
    );
    assert_pulled(
        &env,
        &pushed.digest_reference,
        &pushed.digest,
        &digests_of(&image),
    );
}

#[test]
fn pull_by_tag_and_digest_follows_the_digest_not_the_tag() {
    let registry = Registry::plain();
    let first = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let second = simple_image(Format::Docker, Compression::Zstd, host_platform());
    let pushed_first = registry.push(&first, "app", "1.0");
    // The tag moves on; the digest still names the first image.
    registry.push(&second, "app", "1.0");
    let env = TestEnv::new();
    let reference = format!("{}@{}", pushed_first.reference, pushed_first.digest);

    let stdout = env.pull_ok(&reference);

    assert_eq!(stdout, format!("{reference} {}\n", pushed_first.digest));
    assert_pulled(&env, &reference, &pushed_first.digest, &digests_of(&first));
}

#[test]
fn pull_of_tag_and_digest_that_disagree_with_the_registry_stores_nothing() {
    let (_registry, _, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();
    // A well-formed digest the registry does not have.
    let missing = format!("sha256:{}", "0".repeat(64));

    let line = failure(&env.pull(&["--plain-http", &format!("{}@{missing}", pushed.reference)]));

    assert_mentions(&line, &["not found"]);
    assert!(env.stored_blobs().is_empty());
    assert!(env.image_names().is_empty());
}

/// The simple image pulled (as `app:1.0`) into a fresh store whose
/// registry has stopped since, and the blobs stored.
fn pulled_then_registry_stopped() -> (Pushed, TestEnv, BTreeMap<String, Vec<u8>>) {
    let (registry, _, pushed, env) = serve_and_pull_simple("app", "1.0");
    let stored = env.stored_blobs();
    drop(registry);
    (pushed, env, stored)
}

#[test]
fn repull_by_digest_of_stored_image_needs_no_registry() {
    let (pushed, env, before) = pulled_then_registry_stopped();

    // Both with and without --plain-http: neither may try the network.
    let by_digest = success(&env.pull(&["--plain-http", &pushed.digest_reference]));
    let with_tag = format!("{}@{}", pushed.reference, pushed.digest);
    let tag_and_digest = success(&env.pull(&[&with_tag]));

    assert_eq!(
        by_digest,
        format!("{} {}\n", pushed.digest_reference, pushed.digest)
    );
    assert_eq!(tag_and_digest, format!("{with_tag} {}\n", pushed.digest));
    assert_eq!(env.stored_blobs(), before);
    env.assert_store_verified();
    let names: BTreeSet<String> = env.image_names().into_iter().collect();
    assert_eq!(
        names,
        BTreeSet::from([pushed.reference, pushed.digest_reference, with_tag])
    );
}

#[test]
fn repull_by_tag_with_registry_stopped_fails_naming_the_connection() {
    let (pushed, env, before) = pulled_then_registry_stopped();

    // A tag must be resolved by the registry, stored or not.
    let line = failure(&env.pull(&["--plain-http", &pushed.reference]));

    assert_mentions(
        &line,
        &["connection", pushed.reference.split('/').next().unwrap()],
    );
    assert_eq!(env.stored_blobs(), before);
    assert_eq!(env.image_names(), vec![pushed.reference]);
}

#[test]
fn second_pull_of_a_tag_reports_already_exists_and_downloads_no_blob() {
    let (registry, image, _) = serve_simple("app", "1.0");
    let proxy = FaultProxy::for_registry(&registry);
    let reference = format!("{}/app:1.0", proxy.host());
    let env = TestEnv::new();
    let first = env.pull(&["--plain-http", &reference]);
    success(&first);
    assert_eq!(
        stderr(&first).matches(": done (").count(),
        image.blobs().len(),
        "{}",
        stderr(&first)
    );
    let before = env.stored_blobs();
    let requests_before = proxy.request_log().len();

    let second = env.pull(&["--plain-http", &reference]);

    success(&second);
    let err = stderr(&second);
    for (digest, _) in image.blobs() {
        assert!(
            err.contains(&format!("{digest}: already exists")),
            "no `already exists` for {digest}:\n{err}"
        );
    }
    assert!(!err.contains(": done ("), "something downloaded:\n{err}");
    let fetched_again: Vec<String> = proxy.request_log()[requests_before..]
        .iter()
        .filter(|line| {
            line.contains("/blobs/") || line.starts_with("GET /v2/app/manifests/sha256:")
        })
        .cloned()
        .collect();
    assert!(fetched_again.is_empty(), "re-fetched: {fetched_again:?}");
    assert_eq!(env.stored_blobs(), before);
    env.assert_store_verified();
    assert_eq!(env.image_names(), vec![reference]);
}

#[test]
fn pull_quiet_prints_only_the_result() {
    let (_registry, _, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();

    let output = env.pull(&["--plain-http", "--quiet", &pushed.reference]);

    assert_eq!(
        success(&output),
        format!("{} {}\n", pushed.reference, pushed.digest)
    );
    assert_eq!(stderr(&output), "");
}

/// Pushes `image` as `repository:v1` with skopeo (from an OCI layout), then
/// pulls and checks it; returns the store.
fn pull_skopeo_pushed(image: &Image, repository: &str) -> TestEnv {
    let registry = Registry::plain();
    let env = TestEnv::new();
    let layout = env.path("layout");
    image.write_oci_layout(&layout, "v1");
    skopeo_copy_layout_to_registry(&layout, "v1", &registry, repository);
    let reference = registry.reference(repository, "v1");

    env.pull_ok(&reference);

    assert_pulled_image(&env, &reference, image);
    env
}

#[test]
fn pull_image_pushed_by_skopeo_from_an_oci_layout() {
    let image = simple_image(Format::Oci, Compression::Zstd, host_platform());
    pull_skopeo_pushed(&image, "team/tool");
}

#[test]
fn pull_docker_image_pushed_by_skopeo() {
    let image = simple_image(Format::Docker, Compression::Gzip, host_platform());
    let env = pull_skopeo_pushed(&image, "tool");
    let content = env.content();
    let config = image.config_digest().expect("config");
    assert_eq!(
        content[&image.manifest_digest()]["containerd.io/gc.ref.content.config"],
        config
    );
    // The stored config is the Docker one, byte for byte.
    assert_eq!(
        env.stored_blobs()[config],
        image.config_bytes().expect("config")
    );
}

#[test]
fn pull_unknown_tag_fails_with_not_found_and_stores_nothing() {
    let (registry, _, _) = serve_simple("app", "1.0");
    let env = TestEnv::new();
    let reference = registry.reference("app", "2.0");

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["not found", &reference]);
    assert!(env.stored_blobs().is_empty());
    assert!(env.image_names().is_empty());
}

#[test]
fn pull_unknown_repository_fails_with_not_found() {
    let registry = Registry::plain();
    let env = TestEnv::new();
    let reference = registry.reference("nobody/here", "latest");

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["not found", "nobody/here"]);
    assert!(env.image_names().is_empty());
}

#[test]
fn pull_fails_naming_the_blob_when_a_layer_is_missing_from_the_registry() {
    let (registry, image, pushed) = serve_simple("app", "1.0");
    let missing = image.layers()[1].digest.clone();
    registry.delete_blob("app", &missing);
    let env = TestEnv::new();

    let line = failure(&env.pull(&["--plain-http", &pushed.reference]));

    assert_mentions(&line, &["not found", &missing]);
    assert!(!env.stored_digests().contains(&missing));
    assert!(env.image_names().is_empty());
    assert_blobs_verify(&env.root());
}

#[test]
fn pull_resumes_a_partial_ingest_with_a_range_request() {
    let image = big_image(2, 3 << 20);
    let (_registry, proxy, reference) = behind_proxy(&image);
    let env = TestEnv::new();
    // The first MiB of the big layer, as an interrupted pull leaves it.
    let big = &image.layers()[1];
    env.leave_ingest(&big.digest, &big.blob[..1 << 20]);

    env.pull_ok(&reference);

    assert_pulled_image(&env, &reference, &image);
    let big_requests: Vec<String> = proxy
        .request_log()
        .into_iter()
        .filter(|line| line.starts_with("GET ") && line.contains(&big.digest))
        .collect();
    assert_eq!(
        big_requests,
        vec![format!(
            "GET /v2/app/blobs/{} range=bytes={}-",
            big.digest,
            1 << 20
        )]
    );
}

#[test]
fn pull_commits_a_complete_ingest_left_by_an_interrupted_pull() {
    // A pull killed after writing a blob's last byte but before its commit
    // leaves a complete ingest; the next pull must finish it, not ask the
    // registry for the bytes after the end (which answers 416).
    let (_registry, image, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();
    let layer = &image.layers()[2];
    env.leave_ingest(&layer.digest, &layer.blob);

    let output = env.pull(&["--plain-http", &pushed.reference]);

    success(&output);
    assert_pulled(&env, &pushed.reference, &pushed.digest, &digests_of(&image));
}

/// Leaves `bytes` as the ingest of layer `index` of a fresh store, pulls,
/// and expects the pull to succeed with a verified store.
fn pull_over_a_bad_ingest(index: usize, bytes: impl FnOnce(&[u8]) -> Vec<u8>) {
    let (_registry, image, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();
    let layer = &image.layers()[index];
    env.leave_ingest(&layer.digest, &bytes(&layer.blob));

    env.pull_ok(&pushed.reference);

    assert_pulled(&env, &pushed.reference, &pushed.digest, &digests_of(&image));
}

#[test]
fn pull_downloads_again_when_a_complete_ingest_does_not_verify() {
    // What a pull killed (or cancelled by another blob's failure) after
    // receiving every byte of a corrupted body leaves behind.
    pull_over_a_bad_ingest(2, |blob| {
        let mut bad = blob.to_vec();
        bad[blob.len() / 2] ^= 0xff;
        bad
    });
}

#[test]
fn pull_downloads_again_when_a_resumed_ingest_does_not_verify() {
    // The first half was corrupted; the resumed rest is right, the whole is not.
    pull_over_a_bad_ingest(2, |blob| {
        let mut bad = blob[..blob.len() / 2].to_vec();
        bad[0] ^= 0xff;
        bad
    });
}
