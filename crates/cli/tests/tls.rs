//! HTTPS registries signed by a private CA: trusting it with `--tlscacert`
//! or a containerd-style `--hosts-dir` (`<dir>/<host:port>/ca.crt`), and the
//! failure, with nothing stored, when the CA is not trusted.

use hoist_testkit::{Compression, Format, Image, Registry, simple_index};

use crate::util::{
    TestEnv, assert_mentions, assert_pulled, child, failure, host_platform, index_with, success,
};

/// A TLS registry with a two-platform index as `secure/app:1.0`, its
/// reference, and a fresh store.
fn tls_registry() -> (Registry, Image, String, TestEnv) {
    let registry = Registry::tls();
    assert!(registry.is_tls());
    let index = simple_index(
        Format::Oci,
        Compression::Gzip,
        &["linux/amd64", "linux/arm64"],
    );
    let pushed = registry.push(&index, "secure/app", "1.0");
    (registry, index, pushed.reference, TestEnv::new())
}

/// Writes the registry's CA as `<tmp>/certs.d/<host>/ca.crt`, the
/// containerd layout; returns `<tmp>/certs.d`.
fn hosts_dir_with_ca(env: &TestEnv, registry: &Registry, host: &str) -> String {
    let hosts = env.path("certs.d");
    std::fs::create_dir_all(hosts.join(host)).unwrap();
    std::fs::write(
        hosts.join(host).join("ca.crt"),
        registry.ca_cert_pem().unwrap(),
    )
    .unwrap();
    hosts.to_str().unwrap().to_string()
}

/// Asserts a pull failed on the certificate and stored nothing.
#[track_caller]
fn assert_untrusted(env: &TestEnv, line: &str) {
    assert_mentions(line, &["certificate"]);
    assert!(env.stored_blobs().is_empty());
    assert!(env.image_names().is_empty());
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
    let (registry, index, reference, env) = tls_registry();
    let ca = registry.ca_cert_path().unwrap();

    success(&env.pull(&["--tlscacert", ca.to_str().unwrap(), &reference]));

    assert_pulled_host(&env, &reference, &index);
}

#[test]
fn tls_pull_with_hosts_dir_ca() {
    let (registry, index, reference, env) = tls_registry();
    let hosts = hosts_dir_with_ca(&env, &registry, &registry.host());

    success(&env.pull(&["--hosts-dir", &hosts, &reference]));

    assert_pulled_host(&env, &reference, &index);
}

#[test]
fn tls_pull_without_ca_fails_mentioning_certificate_and_stores_nothing() {
    let (_registry, _index, reference, env) = tls_registry();

    let line = failure(&env.pull(&[&reference]));

    assert_untrusted(&env, &line);
}

#[test]
fn tls_pull_with_hosts_dir_for_another_host_fails() {
    let (registry, _index, reference, env) = tls_registry();
    // The CA is filed under another port, so it must not apply here.
    let elsewhere = format!("127.0.0.1:{}", registry.port().wrapping_add(1).max(1));
    let hosts = hosts_dir_with_ca(&env, &registry, &elsewhere);

    let line = failure(&env.pull(&["--hosts-dir", &hosts, &reference]));

    assert_untrusted(&env, &line);
}

#[test]
fn tls_pull_with_missing_ca_file_fails_naming_the_file() {
    let (_registry, _index, reference, env) = tls_registry();
    let missing = env.path("no-such-ca.pem");

    let line = failure(&env.pull(&["--tlscacert", missing.to_str().unwrap(), &reference]));

    assert_mentions(&line, &["no-such-ca.pem"]);
    assert!(env.image_names().is_empty());
}
