//! Registries that want credentials: htpasswd basic auth and bearer tokens
//! (GET and OAuth2 POST to the token server), credentials from `--user`,
//! `HOIST_USER` and docker's `config.json` (in `$HOME/.docker` or
//! `$DOCKER_CONFIG`), and the one-line errors when they are missing or wrong.

use std::ffi::OsStr;

use hoist_testkit::{Compression, Format, Image, Registry, RegistryConfig, simple_image};

use crate::util::{
    TestEnv, assert_mentions, assert_pulled_image, failure, host_platform, success,
    write_docker_config,
};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

fn image() -> Image {
    simple_image(Format::Oci, Compression::Gzip, host_platform())
}

/// `registry` with `image()` pushed as `team/app:1.0`, its reference, and
/// a fresh store to pull it into.
fn registry_with_image(registry: Registry) -> (Registry, Image, String, TestEnv) {
    let image = image();
    let pushed = registry.push(&image, "team/app", "1.0");
    (registry, image, pushed.reference, TestEnv::new())
}

/// Asserts a pull with `--user USER:<password>` fails as unauthorized
/// without printing the password.
#[track_caller]
fn assert_wrong_password_refused(env: &TestEnv, reference: &str, password: &str) {
    let line = failure(&env.pull(&[
        "--plain-http",
        "--user",
        &format!("{USER}:{password}"),
        reference,
    ]));
    assert_mentions(&line, &["unauthorized"]);
    assert!(!line.contains(password), "the password leaked: {line}");
}

/// `hoist pull --no-unpack --plain-http REFERENCE` with `key=value` in the
/// environment, which must succeed.
fn pull_ok_with_env(env: &TestEnv, key: &str, value: impl AsRef<OsStr>, reference: &str) {
    let mut command = env.hoist();
    command
        .env(key, value)
        .args(["pull", "--no-unpack", "--plain-http", reference]);
    success(&command.output().unwrap());
}

/// Writes `$HOME/.docker/config.json` with `USER:password` for `host`.
fn write_home_docker_config(env: &TestEnv, host: &str, password: &str) {
    write_docker_config(&env.home().join(".docker"), host, USER, password);
}

/// Asserts a refused pull left no image and no blob.
#[track_caller]
fn assert_nothing_pulled(env: &TestEnv) {
    assert!(env.image_names().is_empty());
    assert!(env.stored_blobs().is_empty());
}

#[test]
fn basic_auth_pull_with_user_flag() {
    let (_registry, image, reference, env) = registry_with_image(Registry::basic(USER, PASSWORD));

    env.pull_ok_with(&["--user", &format!("{USER}:{PASSWORD}")], &reference);

    assert_pulled_image(&env, &reference, &image);
}

#[test]
fn basic_auth_pull_with_hoist_user_env() {
    let (_registry, image, reference, env) = registry_with_image(Registry::basic(USER, PASSWORD));

    pull_ok_with_env(&env, "HOIST_USER", format!("{USER}:{PASSWORD}"), &reference);

    assert_pulled_image(&env, &reference, &image);
}

#[test]
fn basic_auth_pull_without_credentials_fails_unauthorized() {
    let (_registry, _image, reference, env) = registry_with_image(Registry::basic(USER, PASSWORD));

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["unauthorized", "team/app"]);
    assert_nothing_pulled(&env);
}

#[test]
fn basic_auth_pull_with_wrong_password_fails_unauthorized() {
    let (_registry, _image, reference, env) = registry_with_image(Registry::basic(USER, PASSWORD));

    assert_wrong_password_refused(&env, &reference, "wrong");
    assert_nothing_pulled(&env);
}

#[test]
fn user_flag_without_colon_is_rejected() {
    let env = TestEnv::new();

    let line = failure(&env.pull(&["--plain-http", "--user", "alice", "127.0.0.1:9/app:1"]));

    assert_mentions(&line, &["--user", "USER:PASSWORD"]);
}

#[test]
fn basic_auth_pull_with_credentials_from_home_docker_config() {
    let (registry, image, reference, env) = registry_with_image(Registry::basic(USER, PASSWORD));
    write_home_docker_config(&env, &registry.host(), PASSWORD);

    env.pull_ok(&reference);

    assert_pulled_image(&env, &reference, &image);
}

#[test]
fn basic_auth_pull_with_credentials_from_docker_config_env_dir() {
    let (registry, image, reference, env) = registry_with_image(Registry::basic(USER, PASSWORD));
    let dir = env.path("docker-config");
    write_docker_config(&dir, &registry.host(), USER, PASSWORD);
    // A wrong entry in $HOME must lose to $DOCKER_CONFIG.
    write_home_docker_config(&env, &registry.host(), "stale");

    pull_ok_with_env(&env, "DOCKER_CONFIG", &dir, &reference);

    assert_pulled_image(&env, &reference, &image);
}

#[test]
fn docker_config_credentials_for_another_host_are_not_used() {
    let (registry, _image, reference, env) = registry_with_image(Registry::basic(USER, PASSWORD));
    // Same IP, another port: another registry.
    let other = format!("127.0.0.1:{}", registry.port().wrapping_add(1).max(1));
    write_home_docker_config(&env, &other, PASSWORD);

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["unauthorized"]);
    assert_nothing_pulled(&env);
}

#[test]
fn token_auth_pull_with_user_uses_the_oauth2_post() {
    let (registry, image, reference, env) = registry_with_image(Registry::token(USER, PASSWORD));
    let token_server = registry.token_server().unwrap();
    let (gets, posts) = (token_server.get_requests(), token_server.post_requests());

    env.pull_ok_with(&["--user", &format!("{USER}:{PASSWORD}")], &reference);

    assert_pulled_image(&env, &reference, &image);
    assert!(
        token_server.post_requests() > posts,
        "no OAuth2 POST with credentials"
    );
    assert_eq!(
        token_server.get_requests(),
        gets,
        "GET used with credentials"
    );
    assert!(
        token_server
            .scopes()
            .iter()
            .any(|s| s == "repository:team/app:pull"),
        "scopes: {:?}",
        token_server.scopes()
    );
}

#[test]
fn token_auth_pull_with_credentials_from_docker_config() {
    let (registry, image, reference, env) = registry_with_image(Registry::token(USER, PASSWORD));
    let token_server = registry.token_server().unwrap();
    let posts = token_server.post_requests();
    write_home_docker_config(&env, &registry.host(), PASSWORD);

    env.pull_ok(&reference);

    assert_pulled_image(&env, &reference, &image);
    assert!(token_server.post_requests() > posts);
}

#[test]
fn token_auth_pull_with_wrong_password_fails_unauthorized() {
    let (registry, _image, reference, env) = registry_with_image(Registry::token(USER, PASSWORD));
    let token_server = registry.token_server().unwrap();
    let before = token_server.requests();

    assert_wrong_password_refused(&env, &reference, "nope");
    assert!(token_server.requests() > before, "token server never asked");
    assert_nothing_pulled(&env);
}

#[test]
fn token_auth_pull_without_credentials_fails_unauthorized() {
    let (registry, _image, reference, env) = registry_with_image(Registry::token(USER, PASSWORD));
    let token_server = registry.token_server().unwrap();
    let gets = token_server.get_requests();

    let line = failure(&env.pull(&["--plain-http", &reference]));

    assert_mentions(&line, &["unauthorized", "team/app"]);
    assert!(
        token_server.get_requests() > gets,
        "anonymous token not asked by GET"
    );
    assert_nothing_pulled(&env);
}

#[test]
fn token_auth_anonymous_pull_works_when_the_token_server_allows_it() {
    let registry = Registry::start(RegistryConfig {
        auth: hoist_testkit::Auth::Token {
            username: USER.to_string(),
            password: PASSWORD.to_string(),
        },
        anonymous_pull: true,
        ..RegistryConfig::default()
    });
    let (registry, image, reference, env) = registry_with_image(registry);
    let token_server = registry.token_server().unwrap();
    let (gets, posts) = (token_server.get_requests(), token_server.post_requests());

    env.pull_ok(&reference);

    assert_pulled_image(&env, &reference, &image);
    assert!(token_server.get_requests() > gets);
    assert_eq!(
        token_server.post_requests(),
        posts,
        "POST without credentials"
    );
}
