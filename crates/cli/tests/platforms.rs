//! Multi-platform images: OCI indexes and Docker manifest lists, the host
//! platform chosen by default, `--platform`, `--all-platforms`, platforms an
//! index does not offer, and the GC labels an index gets for its children.

use std::collections::BTreeSet;

use hoist_testkit::fixture::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use hoist_testkit::{Compression, Format, Image, Registry, simple_index};

use crate::util::{
    TestEnv, assert_mentions, assert_pulled, child, digests_of, failure, host_platform, index_with,
    other_platform, serve,
};

/// A two-platform index (host and the other platform) pushed as
/// `app:multi`, its reference, and a fresh store to pull it into.
fn two_platform(format: Format) -> (Registry, Image, String, TestEnv) {
    let (registry, index, pushed) = serve(
        simple_index(
            format,
            Compression::Gzip,
            &[host_platform(), other_platform()],
        ),
        "app",
        "multi",
    );
    assert_eq!(pushed.manifests.len(), 2);
    (registry, index, pushed.reference, TestEnv::new())
}

/// The values of the index's `containerd.io/gc.ref.content.m.*` labels.
fn manifest_refs(env: &TestEnv, index: &Image) -> BTreeSet<String> {
    env.content()[&index.manifest_digest()]
        .iter()
        .filter(|(k, _)| k.starts_with("containerd.io/gc.ref.content.m."))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The digests a pull stores for `platforms`, and the checks every
/// multi-platform pull shares.
fn assert_pulled_platforms(env: &TestEnv, reference: &str, index: &Image, platforms: &[&str]) {
    let children: Vec<&Image> = platforms.iter().map(|p| child(index, p)).collect();
    assert_pulled(
        env,
        reference,
        &index.manifest_digest(),
        &index_with(index, &children),
    );
    let chosen: BTreeSet<String> = children.iter().map(|c| c.manifest_digest()).collect();
    assert_eq!(manifest_refs(env, index), chosen, "index GC labels");
    let images = env.images();
    assert_eq!(images[0].media_type, index.media_type());
    let mut listed: Vec<&str> = images[0].platforms.split(',').collect();
    listed.sort_unstable();
    let mut wanted = platforms.to_vec();
    wanted.sort_unstable();
    assert_eq!(listed, wanted, "platforms column");
    // Each chosen manifest references its own config and layers.
    let content = env.content();
    for child in children {
        let labels = &content[&child.manifest_digest()];
        assert_eq!(
            labels["containerd.io/gc.ref.content.config"],
            child.config_digest().unwrap()
        );
        assert_eq!(
            labels["containerd.io/gc.ref.content.l.0"],
            child.layers()[0].digest
        );
    }
}

/// A plain pull of a [`two_platform`] index of `format` (whose media type
/// is `media_type`) stores the host platform; returns the index and the
/// store.
fn pull_stores_host_platform(format: Format, media_type: &str) -> (Image, TestEnv) {
    let (_registry, index, reference, env) = two_platform(format);
    assert_eq!(index.media_type(), media_type);

    env.pull_ok(&reference);

    assert_pulled_platforms(&env, &reference, &index, &[host_platform()]);
    (index, env)
}

#[test]
fn pull_oci_index_stores_host_platform_only() {
    let (index, env) = pull_stores_host_platform(Format::Oci, OCI_INDEX);
    // The host child comes first in the index, so it is m.0.
    assert_eq!(
        env.content()[&index.manifest_digest()]["containerd.io/gc.ref.content.m.0"],
        child(&index, host_platform()).manifest_digest()
    );
    let other = child(&index, other_platform());
    let stored = env.stored_digests();
    for digest in digests_of(other) {
        assert!(!stored.contains(&digest), "{digest} of the other platform");
    }
}

#[test]
fn pull_oci_index_with_platform_flag_stores_that_platform_only() {
    let (_registry, index, reference, env) = two_platform(Format::Oci);

    env.pull_ok_with(&["--platform", other_platform()], &reference);

    assert_pulled_platforms(&env, &reference, &index, &[other_platform()]);
    for digest in digests_of(child(&index, host_platform())) {
        assert!(!env.stored_digests().contains(&digest));
    }
}

#[test]
fn pull_oci_index_with_two_platform_flags_stores_both() {
    let (_registry, index, reference, env) = two_platform(Format::Oci);

    env.pull_ok_with(
        &["--platform", "linux/arm64", "--platform", "linux/amd64"],
        &reference,
    );

    assert_pulled_platforms(&env, &reference, &index, &["linux/amd64", "linux/arm64"]);
}

/// `--all-platforms` of a [`two_platform`] index of `format` stores both
/// platforms and nothing else.
fn all_platforms_stores_every_child(format: Format) {
    let (_registry, index, reference, env) = two_platform(format);

    env.pull_ok_with(&["--all-platforms"], &reference);

    assert_pulled_platforms(&env, &reference, &index, &["linux/amd64", "linux/arm64"]);
    assert_eq!(env.stored_digests(), digests_of(&index));
}

#[test]
fn pull_oci_index_all_platforms_stores_every_child() {
    all_platforms_stores_every_child(Format::Oci);
}

#[test]
fn pull_docker_manifest_list_stores_host_platform_only() {
    pull_stores_host_platform(Format::Docker, DOCKER_MANIFEST_LIST);
}

#[test]
fn pull_docker_manifest_list_all_platforms_stores_every_child() {
    all_platforms_stores_every_child(Format::Docker);
}

#[test]
fn pull_index_by_digest_stores_host_platform_only() {
    let (_registry, index, pushed) = serve(
        simple_index(
            Format::Oci,
            Compression::Zstd,
            &[other_platform(), host_platform()],
        ),
        "app",
        "multi",
    );
    let env = TestEnv::new();

    env.pull_ok(&pushed.digest_reference);

    assert_pulled_platforms(&env, &pushed.digest_reference, &index, &[host_platform()]);
}

#[test]
fn pulling_a_second_platform_keeps_gc_refs_to_the_first() {
    let (_registry, index, reference, env) = two_platform(Format::Oci);
    env.pull_ok(&reference);

    env.pull_ok_with(&["--platform", other_platform()], &reference);

    // Both platforms' blobs are stored and the image shows both, so the
    // index must keep a GC reference to each child manifest; otherwise a
    // garbage collection would delete the first platform under the image.
    assert_eq!(env.stored_digests(), digests_of(&index));
    env.assert_store_verified();
    let all: BTreeSet<String> = index
        .children()
        .iter()
        .map(Image::manifest_digest)
        .collect();
    assert_eq!(manifest_refs(&env, &index), all, "index GC labels");
}

#[test]
fn pull_index_without_the_wanted_platform_fails_listing_what_it_has() {
    let (_registry, _index, reference, env) = two_platform(Format::Oci);

    let line = failure(&env.pull(&["--plain-http", "--platform", "linux/s390x", &reference]));

    assert_mentions(&line, &["linux/s390x", "linux/amd64", "linux/arm64"]);
    assert!(env.image_names().is_empty());
    env.assert_store_verified();
}

#[test]
fn pull_with_malformed_platform_fails_before_the_network() {
    let env = TestEnv::new();

    let line = failure(&env.pull(&[
        "--plain-http",
        "--platform",
        "linux/amd64/v1/extra",
        "127.0.0.1:9/app:1",
    ]));

    assert_mentions(&line, &["platform", "linux/amd64/v1/extra"]);
}
