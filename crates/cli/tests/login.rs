//! `hoist login` / `hoist logout` against real registries (htpasswd and
//! token), storing credentials as docker does: base64 `auth` in
//! `config.json` (mode 0600), or through a credential helper speaking
//! docker's protocol (a script standing in for `docker-credential-pass`,
//! whose backends need a keyring this machine lacks).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use hoist_testkit::{Compression, Format, Registry, run_with_stdin, simple_image};

use crate::util::{TestEnv, assert_mentions, base64, failure, host_platform, success};

fn login(
    env: &TestEnv,
    extra_path: Option<&Path>,
    host: &str,
    user: &str,
    password: &str,
) -> Output {
    let mut command = env.hoist();
    if let Some(dir) = extra_path {
        command.env("PATH", path_with(dir));
    }
    command.args(["login", "--username", user, "--password-stdin", host]);
    run_with_stdin(&mut command, format!("{password}\n").as_bytes())
}

fn with_path(env: &TestEnv, dir: Option<&Path>, args: &[&str]) -> Output {
    let mut command = env.hoist();
    if let Some(dir) = dir {
        command.env("PATH", path_with(dir));
    }
    command.args(args).output().expect("run hoist")
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn config(env: &TestEnv) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(env.home().join(".docker/config.json")).unwrap()).unwrap()
}

#[test]
fn login_checks_and_stores_basic_credentials_that_pulls_then_use() {
    let registry = Registry::basic("alice", "wonderland");
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    registry.push(&image, "private/app", "1.0");
    let reference = registry.reference("private/app", "1.0");
    let host = registry.host();
    let env = TestEnv::new();

    let wrong = login(&env, None, &host, "alice", "guess");
    assert_mentions(&failure(&wrong), &["rejected"]);
    assert!(
        !env.home().join(".docker/config.json").exists(),
        "nothing stored"
    );
    assert!(!String::from_utf8_lossy(&wrong.stderr).contains("guess"));

    let ok = login(&env, None, &host, "alice", "wonderland");
    assert!(success(&ok).contains("Login Succeeded"));
    let path = env.home().join(".docker/config.json");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        config(&env)["auths"][&host]["auth"],
        base64(b"alice:wonderland").as_str()
    );
    success(&env.pull(&["--plain-http", &reference]));

    let out = with_path(&env, None, &["logout", &host]);
    assert!(success(&out).contains("Removing login credentials"));
    assert!(config(&env)["auths"].get(&host).is_none());
    let other = TestEnv::new();
    std::fs::create_dir_all(other.home().join(".docker")).unwrap();
    std::fs::copy(&path, other.home().join(".docker/config.json")).unwrap();
    assert_mentions(
        &failure(&other.pull(&["--plain-http", &reference])),
        &["unauthorized"],
    );
}

#[test]
fn login_gets_a_token_from_the_token_server() {
    let registry = Registry::token("bob", "builder");
    let image = simple_image(Format::Docker, Compression::Gzip, host_platform());
    registry.push(&image, "private/app", "1.0");
    let env = TestEnv::new();
    assert_mentions(
        &failure(&login(&env, None, &registry.host(), "bob", "b0b")),
        &["rejected"],
    );
    success(&login(&env, None, &registry.host(), "bob", "builder"));
    success(&env.pull(&["--plain-http", &registry.reference("private/app", "1.0")]));
}

/// A `docker-credential-hoisttest` speaking docker's helper protocol,
/// keeping one entry in `<dir>/store.json`.
fn write_helper(dir: &Path) {
    let script = dir.join("docker-credential-hoisttest");
    std::fs::write(
        &script,
        r#"#!/bin/sh
store="$(dirname "$0")/store.json"
case "$1" in
  store) cat > "$store" ;;
  get)
    read -r url
    if [ -f "$store" ] && grep -q "\"ServerURL\":\"$url\"" "$store"; then
      cat "$store"
    else
      echo "credentials not found in native keychain"; exit 1
    fi ;;
  erase) rm -f "$store" ;;
  *) exit 2 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn login_stores_through_the_configured_credential_helper() {
    let registry = Registry::basic("carol", "s3cret");
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    registry.push(&image, "private/app", "1.0");
    let host = registry.host();
    let env = TestEnv::new();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_helper(&bin);
    std::fs::create_dir_all(env.home().join(".docker")).unwrap();
    std::fs::write(
        env.home().join(".docker/config.json"),
        r#"{"credsStore":"hoisttest"}"#,
    )
    .unwrap();

    let ok = login(&env, Some(&bin), &host, "carol", "s3cret");
    assert!(success(&ok).contains("docker-credential-hoisttest"));
    let stored = std::fs::read_to_string(bin.join("store.json")).unwrap();
    assert!(stored.contains("\"Secret\":\"s3cret\""), "{stored}");
    let config_text = std::fs::read_to_string(env.home().join(".docker/config.json")).unwrap();
    assert!(!config_text.contains("s3cret"), "{config_text}");
    assert!(config(&env)["auths"][&host].as_object().unwrap().is_empty());

    success(&with_path(
        &env,
        Some(&bin),
        &[
            "pull",
            "--plain-http",
            &registry.reference("private/app", "1.0"),
        ],
    ));
    success(&with_path(&env, Some(&bin), &["logout", &host]));
    assert!(!bin.join("store.json").exists(), "erased from the helper");
}

#[test]
fn login_without_a_terminal_or_stdin_password_says_how() {
    let env = TestEnv::new();
    let output = Command::new(crate::util::HOIST)
        .args(["login", "--username", "x", "127.0.0.1:9"])
        .env("HOME", env.home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_mentions(&failure(&output), &["--password-stdin"]);
}

#[test]
fn an_identity_token_in_config_json_is_exchanged_with_the_refresh_grant() {
    let registry = Registry::token("dave", "d4ve");
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    registry.push(&image, "private/app", "1.0");
    let server = registry.token_server().unwrap();
    // A refresh (identity) token, as a registry hands one to `docker login`.
    let url = format!(
        "{}?service={}&scope=repository:private/app:pull&offline_token=true",
        server.realm(),
        server.service()
    );
    let answer = Command::new("curl")
        .args(["-sf", "-u", "dave:d4ve", &url])
        .output()
        .expect("run curl");
    assert!(answer.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&answer.stdout).unwrap();
    let refresh = answer["refresh_token"].as_str().unwrap().to_string();

    let write = |env: &TestEnv, token: &str| {
        std::fs::create_dir_all(env.home().join(".docker")).unwrap();
        std::fs::write(
            env.home().join(".docker/config.json"),
            serde_json::json!({"auths": {registry.host(): {"identitytoken": token}}}).to_string(),
        )
        .unwrap();
    };
    let reference = registry.reference("private/app", "1.0");
    let env = TestEnv::new();
    write(&env, &refresh);
    success(&env.pull(&["--plain-http", &reference]));
    let bogus = TestEnv::new();
    write(&bogus, "refresh-forged");
    assert_mentions(
        &failure(&bogus.pull(&["--plain-http", &reference])),
        &["unauthorized"],
    );
}
