//! HTTPS registries signed by a private CA: trusting it with `--tlscacert`
//! or a containerd-style `--hosts-dir` (`<dir>/<host:port>/ca.crt`), and the
//! failure, with nothing stored, when the CA is not trusted.

use hoist_testkit::{Compression, Format, Image, Registry, simple_index};

use crate::util::{
    TestEnv, assert_mentions, assert_pulled, child, failure, host_platform, index_with, success,
};

fn tls_registry() -> (Registry, Image, String) {
    let registry = Registry::tls();
    assert!(registry.is_tls());
    let index = simple_index(
        Format::Oci,
        Compression::Gzip,
        &["linux/amd64", "linux/arm64"],
    );
    let pushed = registry.push(&index, "secure/app", "1.0");
    (registry, index, pushed.reference)
}

#[track_caller]
fn assert_pulled_host(env: &TestEnv, reference: &str, index: &Image) {
    assert_pulled(
        env,
        reference,
        &index.manifest_digest(),
        &index_with(index, &[child(index, host_platform())]),
    );
}

#[test]
fn tls_pull_with_tlscacert() {
    let (registry, index, reference) = tls_registry();
    let env = TestEnv::new();
    let ca = registry.ca_cert_path().unwrap();

    success(&env.pull(&["--tlscacert", ca.to_str().unwrap(), &reference]));

    assert_pulled_host(&env, &reference, &index);
}

#[test]
fn tls_pull_with_hosts_dir_ca() {
    let (registry, index, reference) = tls_registry();
    let env = TestEnv::new();
    let hosts = env.path("certs.d");
    std::fs::create_dir_all(hosts.join(registry.host())).unwrap();
    std::fs::write(
        hosts.join(registry.host()).join("ca.crt"),
        registry.ca_cert_pem().unwrap(),
    )
    .unwrap();

    success(&env.pull(&["--hosts-dir", hosts.to_str().unwrap(), &reference]));

    assert_pulled_host(&env, &reference, &index);
}

#[test]
fn tls_pull_without_ca_fails_mentioning_certificate_and_stores_nothing() {
    let (_registry, _index, reference) = tls_registry();
    let env = TestEnv::new();

    let line = failure(&env.pull(&[&reference]));

    assert_mentions(&line, &["certificate"]);
    assert!(env.stored_blobs().is_empty());
    assert!(env.image_names().is_empty());
}

#[test]
fn tls_pull_with_hosts_dir_for_another_host_fails() {
    let (registry, _index, reference) = tls_registry();
    let env = TestEnv::new();
    let hosts = env.path("certs.d");
    // The CA is filed under another port, so it must not apply here.
    let elsewhere = format!("127.0.0.1:{}", registry.port().wrapping_add(1).max(1));
    std::fs::create_dir_all(hosts.join(&elsewhere)).unwrap();
    std::fs::write(
        hosts.join(&elsewhere).join("ca.crt"),
        registry.ca_cert_pem().unwrap(),
    )
    .unwrap();

    let line = failure(&env.pull(&["--hosts-dir", hosts.to_str().unwrap(), &reference]));

    assert_mentions(&line, &["certificate"]);
    assert!(env.stored_blobs().is_empty());
    assert!(env.image_names().is_empty());
}

#[test]
fn tls_pull_with_missing_ca_file_fails_naming_the_file() {
    let (_registry, _index, reference) = tls_registry();
    let env = TestEnv::new();
    let missing = env.path("no-such-ca.pem");

    let line = failure(&env.pull(&["--tlscacert", missing.to_str().unwrap(), &reference]));

    assert_mentions(&line, &["no-such-ca.pem"]);
    assert!(env.image_names().is_empty());
}
