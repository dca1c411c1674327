//! The Bearer token handshake and the credential-stripping redirect rule,
//! against the real registry and the testkit's token server, with the
//! testkit's fault proxy in front of the registry to see what goes on the
//! wire (and, for the redirect, to play a registry that keeps blobs in
//! object storage).

use std::time::Duration;

use hoist_remote::{Credentials, Error, RegistryOptions, Repository, Resolver, RetryPolicy};
use hoist_testkit::registry::TOKEN_SERVICE;
use hoist_testkit::{Auth, FaultProxy, Registry, RegistryConfig, TokenRequest, sha256_digest};

use crate::support::{OCI_LAYER, descriptor, push_image};

const USER: &str = "u";
const PASSWORD: &str = "p";
const BLOB: &[u8] = b"layer bytes";

fn options(credentials: Option<Credentials>) -> RegistryOptions {
    RegistryOptions {
        plain_http: true,
        credentials,
        docker_config: Some("/nonexistent/config.json".into()),
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..RegistryOptions::default()
    }
}

fn user() -> Option<Credentials> {
    Some(Credentials::new(USER, PASSWORD))
}

/// A registry with bearer auth for `u:p`, as `tweak` adjusts it.
fn token_registry(tweak: impl FnOnce(&mut RegistryConfig)) -> Registry {
    let mut config = RegistryConfig {
        auth: Auth::Token {
            username: USER.into(),
            password: PASSWORD.into(),
        },
        ..RegistryConfig::default()
    };
    tweak(&mut config);
    Registry::start(config)
}

/// Pushes an image as `repository:v1` to `reg`, resolves it with
/// `credentials`, and returns the token server's requests meanwhile.
async fn token_requests_of_resolve(
    reg: &Registry,
    repository: &str,
    credentials: Option<Credentials>,
) -> Vec<TokenRequest> {
    push_image(reg, repository, &["v1"]);
    let tokens = reg.token_server().unwrap();
    let before = tokens.log().len();
    let resolver = Resolver::new(options(credentials)).unwrap();
    resolver
        .resolve(&Repository::new(reg.host(), repository), "v1")
        .await
        .unwrap();
    tokens.log().split_off(before)
}

#[tokio::test]
async fn bearer_with_credentials_posts_once_and_caches() {
    let reg = token_registry(|_| {});
    let pushed = push_image(&reg, "app", &["v1"]);
    let proxy = FaultProxy::for_registry(&reg);
    let tokens = reg.token_server().unwrap();
    let before = tokens.log().len();
    let resolver = Resolver::new(options(user())).unwrap();
    let repo = Repository::new(proxy.host(), "app");
    let desc = resolver.resolve(&repo, "v1").await.unwrap();
    assert_eq!(desc.digest().to_string(), sha256_digest(&pushed.manifest));
    let again = resolver.clone().resolve(&repo, "v1").await.unwrap();
    assert_eq!(again, desc);

    let log = tokens.log().split_off(before);
    let posts: Vec<_> = log.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "{log:#?}");
    assert_eq!(log.len(), 1, "{log:#?}");
    let post = posts[0];
    assert_eq!(post.field("scope"), Some("repository:app:pull"));
    assert_eq!(post.field("grant_type"), Some("password"));
    assert_eq!(post.field("username"), Some(USER));
    assert_eq!(post.field("password"), Some(PASSWORD));
    assert_eq!(post.field("client_id"), Some("hoist"));
    assert_eq!(post.field("service"), Some(TOKEN_SERVICE));
    // First HEAD unauthenticated (401), then two with the cached token.
    let seen = proxy.seen();
    let heads: Vec<_> = seen.iter().filter(|s| s.method == "HEAD").collect();
    assert_eq!(heads.len(), 3, "{seen:#?}");
    assert_eq!(heads[0].header("authorization"), None);
    let token = heads[1].header("authorization").unwrap();
    assert!(token.starts_with("Bearer "), "{token}");
    assert_eq!(heads[2].header("authorization"), Some(token));
    assert!(
        heads[0]
            .header("accept")
            .unwrap()
            .contains("application/vnd.oci.image.index.v1+json")
    );
}

#[tokio::test]
async fn blob_redirect_drops_authorization() {
    let reg = token_registry(|_| {});
    reg.push_blob("app", BLOB);
    // The storage host: another registry holding the same blob, behind a
    // proxy that records what reaches it.
    let storage_registry = Registry::plain();
    storage_registry.push_blob("app", BLOB);
    let (proxy, storage) =
        FaultProxy::with_blob_storage(&reg, &storage_registry, "X-Signature=s3cr3t");
    let resolver = Resolver::new(options(user())).unwrap();
    let repo = Repository::new(proxy.host(), "app");
    let desc = descriptor(OCI_LAYER, BLOB);
    let mut stream = resolver.fetch_blob(&repo, &desc, 0).await.unwrap();
    assert_eq!(stream.offset(), 0);
    let mut got = Vec::new();
    while let Some(c) = stream.next_chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, BLOB);
    assert!(!format!("{stream:?}").contains("s3cr3t"));
    let seen = storage.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].target.ends_with("?X-Signature=s3cr3t"), "{seen:#?}");
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "credentials leaked to the storage host: {:?}",
        seen[0].headers
    );
    let small = resolver.fetch_small_blob(&repo, &desc).await.unwrap();
    assert_eq!(&small[..], BLOB);
}

#[tokio::test]
async fn anonymous_bearer_uses_get() {
    let reg = token_registry(|c| c.anonymous_pull = true);
    let gets = token_requests_of_resolve(&reg, "public", None).await;
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert_eq!(gets[0].method, "GET");
    assert!(
        gets[0].query.contains(&format!("service={TOKEN_SERVICE}")),
        "{gets:#?}"
    );
    assert!(
        gets[0].query.contains("scope=repository%3Apublic%3Apull"),
        "{gets:#?}"
    );
    assert_eq!(gets[0].authorization, None);
}

#[tokio::test]
async fn oauth_post_unsupported_falls_back_to_basic_get() {
    let reg = token_registry(|c| c.get_only_tokens = true);
    let log = token_requests_of_resolve(&reg, "legacy", user()).await;
    let methods: Vec<_> = log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "GET"]);
    // base64("u:p")
    assert_eq!(log[1].authorization.as_deref(), Some("Basic dTpw"));
}

#[tokio::test]
async fn refused_token_gives_up_after_one_retry() {
    let reg = token_registry(|c| {
        c.anonymous_pull = true;
        c.locked_repositories = vec!["locked".into()];
    });
    let proxy = FaultProxy::for_registry(&reg);
    let tokens = reg.token_server().unwrap();
    let resolver = Resolver::new(options(None)).unwrap();
    let repo = Repository::new(proxy.host(), "locked");
    let err = resolver.resolve(&repo, "v1").await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "unauthorized: authentication required for {}/locked",
            repo.domain
        )
    );
    let seen = proxy.seen();
    assert_eq!(seen.iter().filter(|s| s.method == "HEAD").count(), 2);
    assert_eq!(tokens.requests(), 1);
    // With credentials the message says they were refused.
    let with_creds = Resolver::new(options(user())).unwrap();
    let err = with_creds.resolve(&repo, "v1").await.unwrap_err();
    assert!(err.to_string().contains("credentials rejected"), "{err}");
}
