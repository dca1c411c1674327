//! What the command line accepts before any network: malformed references
//! (one-line errors naming the problem, and not a single request sent), and
//! the image records `hoist images ls` / `hoist images rm` manage.

use hoist_testkit::{FaultProxy, Registry};

use crate::util::{
    TestEnv, assert_mentions, failure, serve_and_pull_simple, serve_simple, success,
};

/// Pulls each `(reference, what the error must mention)` through a proxy
/// that counts requests, and asserts each fails in one line without one.
fn assert_rejected_offline(cases: &[(String, &[&str])]) {
    let registry = Registry::plain();
    let proxy = FaultProxy::for_registry(&registry);
    let env = TestEnv::new();
    for (reference, mentions) in cases {
        let reference = reference.replace("HOST", &proxy.host());
        let output = env.pull(&["--plain-http", &reference]);
        let line = failure(&output);
        assert_mentions(&line, mentions);
        assert_eq!(proxy.requests(), 0, "{reference:?} reached the network");
    }
    assert!(env.stored_blobs().is_empty());
    assert!(env.image_names().is_empty());
}

#[test]
fn uppercase_repository_is_rejected_without_network() {
    assert_rejected_offline(&[(
        "HOST/Team/App:1.0".to_string(),
        &["invalid reference", "lowercase"],
    )]);
}

#[test]
fn malformed_digest_is_rejected_without_network() {
    let long = format!("sha256:{}", "a".repeat(65));
    let upper = format!("sha256:{}", "A".repeat(64));
    assert_rejected_offline(&[
        (
            "HOST/app@sha256:abc".to_string(),
            &["invalid reference", "digest", "64"],
        ),
        (format!("HOST/app@{long}"), &["digest"]),
        (format!("HOST/app@{upper}"), &["digest", "lowercase"]),
        (format!("HOST/app@md5:{}", "a".repeat(32)), &["digest"]),
        ("HOST/app@".to_string(), &["invalid reference"]),
    ]);
}

#[test]
fn empty_tag_is_rejected_without_network() {
    assert_rejected_offline(&[("HOST/app:".to_string(), &["invalid reference", "tag"])]);
}

#[test]
fn overlong_tag_is_rejected_without_network() {
    let tag = "t".repeat(300);
    assert_rejected_offline(&[(format!("HOST/app:{tag}"), &["invalid reference", "tag"])]);
}

#[test]
fn tag_of_128_characters_is_accepted() {
    // The longest tag allowed parses; the registry just does not have it.
    let registry = Registry::plain();
    let env = TestEnv::new();
    let reference = registry.reference("app", &"t".repeat(128));

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["not found"]);
}

#[test]
fn references_with_spaces_are_rejected_without_network() {
    assert_rejected_offline(&[
        (
            "HOST/my app:1.0".to_string(),
            &["invalid reference", "whitespace"],
        ),
        ("HOST/app:1.0 ".to_string(), &["whitespace"]),
        (" HOST/app".to_string(), &["whitespace"]),
        ("HOST/app:1\t0".to_string(), &["whitespace"]),
    ]);
}

#[test]
fn other_malformed_references_are_rejected_without_network() {
    assert_rejected_offline(&[
        (String::new(), &["empty"]),
        ("HOST/app::1".to_string(), &["invalid reference"]),
        ("HOST/-app:1".to_string(), &["invalid reference"]),
        ("HOST//app:1".to_string(), &["invalid reference"]),
        ("HOST/app/:1".to_string(), &["invalid reference"]),
        (
            format!("HOST/{}:1", "a".repeat(300)),
            &["invalid reference", "255"],
        ),
        ("a".repeat(64), &["invalid reference"]),
    ]);
}

#[test]
fn images_ls_of_an_empty_store_prints_the_header_only() {
    let env = TestEnv::new();

    assert!(env.images().is_empty());
    assert!(env.image_names().is_empty());
    assert!(env.content().is_empty());
}

#[test]
fn images_rm_removes_the_record_and_keeps_the_blobs() {
    let (registry, image, one) = serve_simple("app", "1.0");
    let two = registry.push(&image, "app", "2.0");
    let env = TestEnv::new();
    env.pull_ok(&one.reference);
    env.pull_ok(&two.reference);
    let blobs = env.stored_blobs();

    let stdout = success(&env.run(&["images", "rm", &one.reference]));

    assert_eq!(stdout, format!("{}\n", one.reference));
    assert_eq!(env.image_names(), vec![two.reference.clone()]);
    assert_eq!(env.stored_blobs(), blobs);
    // The remaining image still lists with its digest.
    let images = env.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].digest, one.digest);
}

#[test]
fn images_rm_of_several_references() {
    let (_registry, _, pushed, env) = serve_and_pull_simple("app", "1.0");
    env.pull_ok(&pushed.digest_reference);

    let stdout = success(&env.run(&["images", "rm", &pushed.digest_reference, &pushed.reference]));

    assert_eq!(
        stdout,
        format!("{}\n{}\n", pushed.digest_reference, pushed.reference)
    );
    assert!(env.image_names().is_empty());
}

#[test]
fn images_rm_of_unknown_reference_fails_naming_it() {
    let (registry, _, pushed, env) = serve_and_pull_simple("app", "1.0");
    let unknown = registry.reference("app", "9.9");

    let line = failure(&env.run(&["images", "rm", &unknown]));

    assert_mentions(&line, &["not found", &unknown]);
    assert_eq!(env.image_names(), vec![pushed.reference]);
}

#[test]
fn images_rm_of_malformed_reference_fails_naming_the_problem() {
    let env = TestEnv::new();

    let line = failure(&env.run(&["images", "rm", "Bad/Name"]));

    assert_mentions(&line, &["invalid reference", "lowercase"]);
}

#[test]
fn images_rm_normalizes_like_pull() {
    // `alpine` names docker.io/library/alpine:latest, which is not stored.
    let env = TestEnv::new();

    let line = failure(&env.run(&["images", "rm", "alpine"]));

    assert_mentions(&line, &["docker.io/library/alpine:latest"]);
}

#[test]
fn zero_concurrent_downloads_is_rejected() {
    let env = TestEnv::new();

    let line = failure(&env.pull(&["--max-concurrent-downloads", "0", "127.0.0.1:9/app:1"]));

    assert_mentions(&line, &["--max-concurrent-downloads"]);
}
