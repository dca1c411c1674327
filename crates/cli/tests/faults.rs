//! Broken registries, through a [`FaultProxy`] in front of a real one:
//! corrupted blob bodies (digest mismatch, nothing corrupt stored), error
//! statuses (retried when transient, reported when not), and truncated blob
//! streams (resumed with `Range` requests, within one pull and across pulls).

use hoist_testkit::{Compression, Fault, FaultProxy, Format, Image, Registry, simple_image};

use crate::util::{
    TestEnv, assert_blobs_verify, assert_mentions, assert_pulled_image, behind_proxy, big_image,
    failure, host_platform, stderr, success,
};

/// After a failed pull of `reference`: what was stored verifies and no
/// image is recorded; once the registry behaves, the same root pulls
/// `image` cleanly.
#[track_caller]
fn assert_recovers(env: &TestEnv, proxy: &FaultProxy, reference: &str, image: &Image) {
    assert_blobs_verify(&env.root());
    assert!(env.image_names().is_empty());
    proxy.set_fault(Fault::None);
    env.pull_ok(reference);
    assert_pulled_image(env, reference, image);
}

/// `image` served ([`behind_proxy`]) through a proxy injecting `fault`,
/// and a fresh store.
fn with_fault(image: &Image, fault: Fault) -> (Registry, FaultProxy, String, TestEnv) {
    let (registry, proxy, reference) = behind_proxy(image);
    proxy.set_fault(fault);
    (registry, proxy, reference, TestEnv::new())
}

/// 503 Service Unavailable for the first `times` requests.
fn unavailable(times: usize) -> Fault {
    Fault::Status { code: 503, times }
}

/// The proxy's log lines for GETs of `digest`.
fn blob_gets(proxy: &FaultProxy, digest: &str) -> Vec<String> {
    proxy
        .request_log()
        .into_iter()
        .filter(|line| line.starts_with("GET ") && line.contains(&format!("/blobs/{digest}")))
        .collect()
}

#[test]
fn corrupted_blobs_fail_with_digest_mismatch_and_are_not_stored() {
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let (_registry, proxy, reference, env) = with_fault(&image, Fault::FlipByteInBlobs);

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["digest mismatch"]);
    let stored = env.stored_digests();
    let config = image.config_digest().unwrap().to_string();
    for digest in image.layers().iter().map(|l| &l.digest).chain([&config]) {
        assert!(!stored.contains(digest), "corrupted {digest} was stored");
    }
    assert_recovers(&env, &proxy, &reference, &image);
}

#[test]
fn corrupted_large_blob_fails_and_a_clean_repull_succeeds() {
    let image = big_image(3, 2 << 20);
    let (_registry, proxy, reference, env) = with_fault(&image, Fault::FlipByteInBlobs);

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["digest mismatch"]);
    assert!(!env.stored_digests().contains(&image.layers()[1].digest));
    assert_recovers(&env, &proxy, &reference, &image);
}

#[test]
fn transient_503s_are_retried() {
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let (_registry, proxy, reference, env) = with_fault(&image, unavailable(2));

    env.pull_ok(&reference);

    assert_pulled_image(&env, &reference, &image);
    // The two refused requests were asked again.
    let log = proxy.request_log();
    assert!(log.len() >= 2 + 1 + image.blobs().len(), "{log:?}");
}

#[test]
fn persistent_503_fails_naming_the_status() {
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let (_registry, _proxy, reference, env) = with_fault(&image, unavailable(usize::MAX));

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["503"]);
    assert!(env.stored_blobs().is_empty());
    assert!(env.image_names().is_empty());
}

#[test]
fn truncated_blob_streams_resume_with_range_requests() {
    let image = big_image(4, 2 << 20);
    let big = image.layers()[1].clone();
    let (_registry, proxy, reference, env) =
        with_fault(&image, Fault::TruncateBlobs { after: 1 << 20 });

    let output = env.pull(&["--plain-http", &reference]);

    success(&output);
    assert_pulled_image(&env, &reference, &image);
    assert!(
        stderr(&output).contains(&format!("{}: retrying (attempt 2, from byte ", big.digest)),
        "{}",
        stderr(&output)
    );
    let gets = blob_gets(&proxy, &big.digest);
    assert!(gets.len() >= 3, "{gets:?}");
    assert!(!gets[0].contains("range="), "{gets:?}");
    for get in &gets[1..] {
        assert!(get.contains(" range=bytes="), "{gets:?}");
        assert!(!get.ends_with(" range=bytes=0-"), "{gets:?}");
    }
}

#[test]
fn blob_truncated_on_every_attempt_fails_cleanly_then_resumes_across_pulls() {
    let image = big_image(5, 4 << 20);
    let big = image.layers()[1].clone();
    let (_registry, proxy, reference, env) =
        with_fault(&image, Fault::TruncateBlobs { after: 64 << 10 });

    // Five attempts of at most 64 KiB cannot finish a 4 MiB blob.
    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["connection"]);
    assert!(!env.stored_digests().contains(&big.digest));
    assert_blobs_verify(&env.root());
    assert!(env.image_names().is_empty());
    assert!(
        !env.ingest_files().is_empty(),
        "the partial download is gone"
    );
    let first_gets = blob_gets(&proxy, &big.digest).len();
    assert!(first_gets >= 2, "never resumed");
    // One retry budget for the whole download, resumes included: the
    // default five attempts, not five resumes of five requests each.
    assert_eq!(first_gets, 5, "{:?}", blob_gets(&proxy, &big.digest));

    proxy.set_fault(Fault::None);
    env.pull_ok(&reference);

    assert_pulled_image(&env, &reference, &image);
    // The second pull continued the first one's ingest.
    let gets = blob_gets(&proxy, &big.digest);
    let resumed = &gets[first_gets];
    assert!(
        resumed.contains(" range=bytes=") && !resumed.ends_with("bytes=0-"),
        "{gets:?}"
    );
}
