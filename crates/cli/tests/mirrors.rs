//! Registry hosts as containerd configures them (`hosts.toml`): mirrors
//! tried in order with fallback to the server, `?ns=`, headers,
//! `skip_verify`, `_default`, docker's `certs.d` files, and errors that name
//! the file. Every host is a real registry; failing mirrors are the fault
//! proxy, a closed port and an untrusted TLS registry.

use std::process::Output;
use std::time::{Duration, Instant};

use hoist_testkit::{Compression, Fault, FaultProxy, Format, Image, Registry, simple_image};

use crate::util::{TestEnv, assert_mentions, base64, failure, host_platform, stderr, success};

fn image() -> Image {
    simple_image(Format::Oci, Compression::Gzip, host_platform())
}

/// Writes `<tmp>/<dir>/<host>/hosts.toml` in `env`; returns `<tmp>/<dir>`,
/// as `--hosts-dir` takes it.
fn hosts_toml(env: &TestEnv, dir: &str, host: &str, text: &str) -> String {
    let dir = env.path(dir);
    std::fs::create_dir_all(dir.join(host)).unwrap();
    std::fs::write(dir.join(host).join("hosts.toml"), text).unwrap();
    dir.to_str().unwrap().to_string()
}

/// [`hosts_toml`] for `upstream`: its `server` over http, then `hosts` (the
/// `[host."…"]` tables); returns `<tmp>/<dir>`.
fn mirrors_toml(env: &TestEnv, dir: &str, upstream: &Registry, hosts: &str) -> String {
    let server = format!("server = \"http://{}\"\n", upstream.host());
    hosts_toml(env, dir, &upstream.host(), &(server + hosts))
}

/// `hoist pull --no-unpack --hosts-dir HOSTS REFERENCE` in `env`.
fn pull_with_hosts(env: &TestEnv, hosts: &str, reference: &str) -> Output {
    env.pull(&["--hosts-dir", hosts, reference])
}

/// An empty upstream registry, and a mirror holding `image()` as
/// `team/app:1.0`: whatever a pull gets came from the mirror.
fn empty_upstream_and_mirror() -> (Registry, Registry, Image) {
    let upstream = Registry::plain();
    let mirror = Registry::plain();
    let image = image();
    mirror.push(&image, "team/app", "1.0");
    (upstream, mirror, image)
}

/// A loopback port nobody listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn a_mirror_serves_the_pull_with_ns_and_the_image_keeps_its_name() {
    // The upstream has nothing: whatever arrives came from the mirror.
    let (upstream, mirror, image) = empty_upstream_and_mirror();
    let proxy = FaultProxy::for_registry(&mirror);
    let env = TestEnv::new();
    let text = format!(
        "[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        proxy.host()
    );
    let hosts = mirrors_toml(&env, "certs.d", &upstream, &text);
    let reference = upstream.reference("team/app", "1.0");
    let output = env.pull(&["--progress", "json", "--hosts-dir", &hosts, &reference]);
    let lines = success(&output);
    assert_eq!(env.image_names(), vec![reference.clone()]);
    // The progress says which host served each blob.
    let fetching: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("\"event\":\"fetching\""))
        .collect();
    assert_eq!(fetching.len(), image.layers().len() + 1, "{lines}");
    assert!(
        fetching
            .iter()
            .all(|l| l.contains(&format!("\"host\":\"{}\"", proxy.host()))),
        "{lines}"
    );
    let ns = format!("ns={}", upstream.host().replace(':', "%3A"));
    let log = proxy.request_log();
    assert!(
        log.iter()
            .any(|r| r.contains("/manifests/1.0") && r.contains(&ns)),
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(|r| r.contains("/blobs/"))
            .all(|r| r.contains(&ns)),
        "{log:?}"
    );
    for layer in image.layers() {
        assert!(env.stored_digests().contains(&layer.digest));
    }
}

#[test]
fn failing_mirrors_fall_back_in_order_to_the_server() {
    let upstream = Registry::plain();
    let image = image();
    upstream.push(&image, "team/app", "1.0");
    // A TLS registry whose CA nobody trusts.
    let untrusted = Registry::tls();
    let failing = FaultProxy::for_registry(&upstream);
    failing.set_fault(Fault::Status {
        code: 503,
        times: 1000,
    });
    let dead = closed_port();
    let env = TestEnv::new();
    let text = format!(
        "[host.\"http://{dead}\"]\n\
             [host.\"https://{tls}\"]\n\
             [host.\"http://{failing}\"]\n",
        tls = untrusted.host(),
        failing = failing.host()
    );
    let hosts = mirrors_toml(&env, "certs.d", &upstream, &text);
    let started = Instant::now();
    let output = pull_with_hosts(&env, &hosts, &upstream.reference("team/app", "1.0"));
    let took = started.elapsed();
    success(&output);
    assert!(
        failing.requests() > 0,
        "the 503 mirror was reached: the dead and TLS ones were passed"
    );
    assert_eq!(
        env.image_names(),
        vec![upstream.reference("team/app", "1.0")]
    );
    // Each failing host costs a failed connection, not a retry budget.
    assert!(took < Duration::from_secs(10), "fallback took {took:?}");
}

#[test]
fn header_and_skip_verify_reach_mirrors_that_need_them() {
    let upstream = Registry::plain();
    let image = image();
    // A mirror that wants basic auth, answered by a configured header.
    let guarded = Registry::basic("mirror", "letmein");
    guarded.push(&image, "team/app", "1.0");
    // A mirror with a certificate nobody trusts, reached with skip_verify.
    let untrusted = Registry::tls();
    untrusted.push(&image, "team/app", "2.0");
    let env = TestEnv::new();
    let authorization = format!("Basic {}", base64(b"mirror:letmein"));
    let text = format!(
        "[host.\"http://{guarded}\"]\n\
               [host.\"http://{guarded}\".header]\n\
                 authorization = \"{authorization}\"\n\
             [host.\"https://{tls}\"]\n\
               skip_verify = true\n",
        guarded = guarded.host(),
        tls = untrusted.host()
    );
    let hosts = mirrors_toml(&env, "certs.d", &upstream, &text);
    success(&pull_with_hosts(
        &env,
        &hosts,
        &upstream.reference("team/app", "1.0"),
    ));
    success(&pull_with_hosts(
        &env,
        &hosts,
        &upstream.reference("team/app", "2.0"),
    ));
    assert_eq!(env.image_names().len(), 2);

    // Without the header and skip_verify neither mirror serves, and the
    // empty upstream has nothing: the pull fails with the server's answer.
    let text = format!(
        "[host.\"http://{guarded}\"]\n[host.\"https://{tls}\"]\n",
        guarded = guarded.host(),
        tls = untrusted.host()
    );
    let bare = mirrors_toml(&env, "bare.d", &upstream, &text);
    let other = TestEnv::new();
    let refused = pull_with_hosts(&other, &bare, &upstream.reference("team/app", "1.0"));
    assert_mentions(&failure(&refused), &["not found"]);
}

#[test]
fn default_hosts_apply_to_every_registry_without_its_own() {
    let (upstream, mirror, _image) = empty_upstream_and_mirror();
    let env = TestEnv::new();
    let hosts = hosts_toml(
        &env,
        "certs.d",
        "_default",
        &format!("[host.\"http://{}\"]\n", mirror.host()),
    );
    let output = env.pull(&[
        "--plain-http",
        "--hosts-dir",
        &hosts,
        &upstream.reference("team/app", "1.0"),
    ]);
    success(&output);
    assert_eq!(
        env.image_names(),
        vec![upstream.reference("team/app", "1.0")]
    );
}

#[test]
fn a_malformed_hosts_toml_is_an_error_naming_file_and_line() {
    let upstream = Registry::plain();
    upstream.push(&image(), "team/app", "1.0");
    let env = TestEnv::new();
    let hosts = hosts_toml(
        &env,
        "certs.d",
        &upstream.host(),
        "server = \"http://x\"\n[host.\"http://y\"\ncapabilities = [\"pull\"]\n",
    );
    let output = pull_with_hosts(&env, &hosts, &upstream.reference("team/app", "1.0"));
    let line = failure(&output);
    assert_mentions(&line, &["hosts.toml", "line 2"]);
    assert!(env.image_names().is_empty(), "{}", stderr(&output));
}

#[test]
fn client_certificates_reach_a_mutual_tls_registry() {
    let secured = Registry::mutual_tls();
    let image = image();
    secured.push(&image, "team/app", "1.0");
    let ca = secured.ca_cert_path().unwrap().display().to_string();
    let cert = secured.client_cert_path().unwrap().display().to_string();
    let key = secured.client_key_path().unwrap().display().to_string();

    // As a mirror from hosts.toml: `ca` and a `client` pair.
    let upstream = Registry::plain();
    let env = TestEnv::new();
    let text = format!(
        "[host.\"https://{tls}\"]\n  ca = \"{ca}\"\n  client = [[\"{cert}\", \"{key}\"]]\n",
        tls = secured.host()
    );
    let hosts = mirrors_toml(&env, "certs.d", &upstream, &text);
    success(&pull_with_hosts(
        &env,
        &hosts,
        &upstream.reference("team/app", "1.0"),
    ));

    // Without the client pair the handshake fails and the empty upstream
    // answers: not found.
    let text = format!(
        "[host.\"https://{tls}\"]\n  ca = \"{ca}\"\n",
        tls = secured.host()
    );
    let bare = mirrors_toml(&env, "bare.d", &upstream, &text);
    let refused = pull_with_hosts(
        &TestEnv::new(),
        &bare,
        &upstream.reference("team/app", "1.0"),
    );
    assert_mentions(&failure(&refused), &["not found"]);

    // docker's certs.d files for the registry itself.
    let docker = env.path("docker.d");
    let own = docker.join(secured.host());
    std::fs::create_dir_all(&own).unwrap();
    std::fs::copy(&ca, own.join("ca.crt")).unwrap();
    std::fs::copy(&cert, own.join("client.cert")).unwrap();
    std::fs::copy(&key, own.join("client.key")).unwrap();
    let direct = TestEnv::new();
    success(&pull_with_hosts(
        &direct,
        docker.to_str().unwrap(),
        &secured.reference("team/app", "1.0"),
    ));
}

#[test]
fn override_path_puts_the_api_root_where_the_entry_says() {
    let upstream = Registry::plain();
    upstream.push(&image(), "team/app", "1.0");
    // The proxy forwards paths unchanged, so the registry behind it
    // answers 404 under /cache and the pull falls back to the server.
    let mirror = FaultProxy::for_registry(&upstream);
    let env = TestEnv::new();
    let text = format!(
        "[host.\"http://{}/cache\"]\n  override_path = true\n",
        mirror.host()
    );
    let hosts = mirrors_toml(&env, "certs.d", &upstream, &text);
    success(&pull_with_hosts(
        &env,
        &hosts,
        &upstream.reference("team/app", "1.0"),
    ));
    let log = mirror.request_log();
    assert!(
        log.iter()
            .any(|r| r.contains(" /cache/team/app/manifests/1.0?ns=")),
        "{log:?}"
    );
    assert!(!log.iter().any(|r| r.contains("/v2/")), "{log:?}");
}
