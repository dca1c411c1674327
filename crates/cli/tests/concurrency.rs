//! Several `hoist pull` processes on one root at once: the same image, and
//! different images that share blobs. Each must succeed, and the store must
//! end with each blob exactly once, verified, with no ingest left behind.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};

use hoist_testkit::{Compression, Format, Image, Registry, layer, simple_index};

use crate::util::{
    TestEnv, behind_proxy, big_image, big_layer, child, digests_of, files_under, host_platform,
    serve, success,
};

/// Starts `hoist pull --no-unpack --plain-http ARGS…` without waiting.
fn spawn_pull(env: &TestEnv, args: &[&str]) -> Child {
    env.hoist()
        .args(["pull", "--no-unpack", "--plain-http"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hoist pull")
}

/// Waits for every child and asserts each succeeded.
fn wait_all(children: Vec<Child>) {
    for child in children {
        success(&child.wait_with_output().expect("wait for hoist"));
    }
}

/// The store holds exactly `expected` under `content/blobs/sha256` and
/// nothing else, all verified.
#[track_caller]
fn assert_stored_exactly(env: &TestEnv, expected: &BTreeSet<String>) {
    let files = files_under(&env.root().join("content").join("blobs"));
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| {
            let relative = f
                .strip_prefix(env.root().join("content").join("blobs"))
                .unwrap();
            relative.to_str().unwrap().replace('/', ":")
        })
        .collect();
    assert_eq!(&names, expected);
    env.assert_store_verified();
}

#[test]
fn two_concurrent_pulls_of_one_image_both_succeed_and_store_each_blob_once() {
    let image = big_image(10, 3 << 20);
    // Counted at a proxy: the two processes fetch each blob once between
    // them (the ingest lock makes the second wait and find it stored).
    let (_registry, proxy, reference) = behind_proxy(&image);
    let env = TestEnv::new();
    // Create the store first, so both processes open an existing root...
    env.create_store();

    let children = vec![
        spawn_pull(&env, &[&reference]),
        spawn_pull(&env, &[&reference]),
    ];
    wait_all(children);

    assert_stored_exactly(&env, &digests_of(&image));
    assert_eq!(env.image_names(), vec![reference]);
    let log = proxy.request_log();
    for (digest, _) in image.blobs().iter().skip(1) {
        let gets = log
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{digest}")))
            .count();
        assert_eq!(gets, 1, "{digest} fetched {gets} times: {log:?}");
    }
}

#[test]
fn two_concurrent_pulls_into_a_fresh_root_both_succeed() {
    // ...and here neither exists yet: both create it at once.
    let (_registry, image, pushed) = serve(big_image(11, 1 << 20), "app", "1.0");
    let env = TestEnv::new();

    let children = vec![
        spawn_pull(&env, &[&pushed.reference]),
        spawn_pull(&env, &[&pushed.digest_reference]),
    ];
    wait_all(children);

    assert_stored_exactly(&env, &digests_of(&image));
    let names: BTreeSet<String> = env.image_names().into_iter().collect();
    assert_eq!(
        names,
        BTreeSet::from([pushed.reference, pushed.digest_reference])
    );
}

#[test]
fn concurrent_pulls_of_images_sharing_blobs_store_the_union_once() {
    let registry = Registry::plain();
    // An index for two platforms, its host child under its own tag, and an
    // unrelated image that shares one large layer with a third repository.
    let index = simple_index(
        Format::Oci,
        Compression::Gzip,
        &["linux/amd64", "linux/arm64"],
    );
    let host_child = child(&index, host_platform()).clone();
    let shared = big_layer(Compression::None, Format::Oci, 12, 2 << 20);
    let own = layer(Compression::Gzip, Format::Oci, |l| {
        l.add_file("own.txt", b"own\n", 0o644);
    });
    let sharing_a = Image::single(Format::Oci, host_platform(), vec![shared.clone(), own]);
    // The same tar typed as a Docker layer: the same blob.
    let shared_docker = big_layer(Compression::None, Format::Docker, 12, 2 << 20);
    assert_eq!(shared_docker.digest, shared.digest);
    let sharing_b = Image::single(Format::Docker, host_platform(), vec![shared_docker]);
    let all = registry.push(&index, "multi", "all");
    let single = registry.push(&host_child, "multi", "host");
    let a = registry.push(&sharing_a, "one", "1");
    let b = registry.push(&sharing_b, "two", "1");
    let env = TestEnv::new();

    let children = vec![
        spawn_pull(&env, &["--all-platforms", &all.reference]),
        spawn_pull(&env, &[&single.reference]),
        spawn_pull(&env, &[&a.reference]),
        spawn_pull(&env, &[&b.reference]),
    ];
    wait_all(children);

    let mut expected = digests_of(&index);
    expected.extend(digests_of(&sharing_a));
    expected.extend(digests_of(&sharing_b));
    assert_stored_exactly(&env, &expected);
    let names: BTreeSet<String> = env.image_names().into_iter().collect();
    assert_eq!(
        names,
        BTreeSet::from([all.reference, single.reference, a.reference, b.reference])
    );
}
