//! Resolving, fetching and listing against the real registry: plain http
//! (reached through the loopback https→http fallback), TLS with the
//! registry's generated CA, and htpasswd basic auth.

use hoist_remote::{Credentials, Error, RegistryOptions, Repository, Resolver};
use hoist_testkit::{Auth, Registry, RegistryConfig, sha256_digest};

use crate::support::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, fast_options, push_image};

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

#[tokio::test]
async fn plain_registry_roundtrip() {
    let reg = Registry::plain();
    let pushed = push_image(&reg, "team/app", &["v1", "v2"]);
    // Not plain_http: https to a loopback host fails and falls back to http.
    let resolver = Resolver::new(fast_options()).unwrap();
    let repo = Repository::new(reg.host(), "team/app");

    let desc = resolver.resolve(&repo, "v1").await.unwrap();
    assert_eq!(desc.digest().to_string(), sha256_digest(&pushed.manifest));
    assert_eq!(desc.size(), pushed.manifest.len() as u64);
    assert_eq!(desc.media_type().to_string(), OCI_MANIFEST);

    let by_digest = resolver
        .resolve(&repo, desc.digest().as_ref())
        .await
        .unwrap();
    assert_eq!(by_digest.digest(), desc.digest());

    let body = resolver.fetch_manifest(&repo, &desc).await.unwrap();
    assert_eq!(&body[..], &pushed.manifest[..]);

    let config = resolver
        .fetch_small_blob(&repo, &descriptor(OCI_CONFIG, &pushed.config))
        .await
        .unwrap();
    assert_eq!(&config[..], &pushed.config[..]);

    let layer_desc = descriptor(OCI_LAYER, &pushed.layer);
    for offset in [0u64, 12_345] {
        let mut stream = resolver
            .fetch_blob(&repo, &layer_desc, offset)
            .await
            .unwrap();
        assert_eq!(stream.offset(), offset);
        assert_eq!(stream.total(), Some(pushed.layer.len() as u64));
        let mut got = Vec::new();
        while let Some(chunk) = stream.next_chunk().await.unwrap() {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(&got[..], &pushed.layer[offset as usize..]);
    }

    let mut tags = resolver.tags(&repo).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);

    let err = resolver.resolve(&repo, "nope").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("not found: {}/team/app:nope", reg.host())
    );

    let missing = Repository::new(reg.host(), "team/none");
    let err = resolver.tags(&missing).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    // A descriptor whose size disagrees with the content.
    let mut wrong = desc.clone();
    wrong.set_size(desc.size() - 1);
    let err = resolver.fetch_manifest(&repo, &wrong).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");

    let small = Resolver::new(RegistryOptions {
        max_manifest_size: 16,
        plain_http: true,
        ..fast_options()
    })
    .unwrap();
    let err = small.resolve(&repo, "v1").await;
    // HEAD needs no body, so resolving still works...
    assert!(err.is_ok(), "{err:?}");
    // ...but the body is bounded.
    let err = small.fetch_manifest(&repo, &desc).await.unwrap_err();
    assert!(
        matches!(err, Error::ManifestTooLarge { limit: 16 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn tls_registry_trust() {
    let reg = Registry::tls();
    let ca = reg.ca_cert_path().unwrap().to_owned();
    let pushed = push_image(&reg, "app", &["latest"]);
    let repo = Repository::new(reg.host(), "app");

    // Untrusted: a TLS error naming the certificate; no http fallback, as
    // the server does speak TLS.
    let resolver = Resolver::new(fast_options()).unwrap();
    let err = resolver.resolve(&repo, "latest").await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    let with_ca = Resolver::new(RegistryOptions {
        ca_files: vec![ca.clone()],
        ..fast_options()
    })
    .unwrap();
    let desc = with_ca.resolve(&repo, "latest").await.unwrap();
    assert_eq!(desc.digest().to_string(), sha256_digest(&pushed.manifest));

    let hosts = tempfile::tempdir().unwrap();
    let host_dir = hosts.path().join(reg.host());
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::copy(&ca, host_dir.join("ca.crt")).unwrap();
    let with_hosts = Resolver::new(RegistryOptions {
        hosts_dir: Some(hosts.path().to_owned()),
        ..fast_options()
    })
    .unwrap();
    let body = with_hosts.fetch_manifest(&repo, &desc).await.unwrap();
    assert_eq!(&body[..], &pushed.manifest[..]);
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    // No blob or manifest request involved: the tag list fails the same way.
    let reg = Registry::tls();
    let repo = Repository::new(reg.host(), "app");
    let resolver = Resolver::new(fast_options()).unwrap();
    let err = resolver.tags(&repo).await.unwrap_err();
    match &err {
        Error::Tls { host, .. } => assert_eq!(host, &reg.host()),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let reg = Registry::start(RegistryConfig {
        auth: Auth::Basic {
            username: USER.into(),
            password: PASSWORD.into(),
        },
        tls: true,
        ..RegistryConfig::default()
    });
    let pushed = push_image(&reg, "private/app", &["1.0"]);
    let repo = Repository::new(reg.host(), "private/app");
    let base = RegistryOptions {
        ca_files: vec![reg.ca_cert_path().unwrap().to_owned()],
        ..fast_options()
    };

    let anon = Resolver::new(base.clone()).unwrap();
    let err = anon.resolve(&repo, "1.0").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unauthorized: authentication required for {}/private/app",
            reg.host()
        )
    );

    let wrong = Resolver::new(RegistryOptions {
        credentials: Some(Credentials::new(USER, "wrong")),
        ..base.clone()
    })
    .unwrap();
    let err = wrong.resolve(&repo, "1.0").await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong"));

    let good = Resolver::new(RegistryOptions {
        credentials: Some(Credentials::new(USER, PASSWORD)),
        ..base.clone()
    })
    .unwrap();
    let desc = good.resolve(&repo, "1.0").await.unwrap();
    let body = good.fetch_manifest(&repo, &desc).await.unwrap();
    assert_eq!(&body[..], &pushed.manifest[..]);
    let layer_desc = descriptor(OCI_LAYER, &pushed.layer);
    let mut stream = good.fetch_blob(&repo, &layer_desc, 0).await.unwrap();
    let mut n = 0;
    while let Some(c) = stream.next_chunk().await.unwrap() {
        n += c.len();
    }
    assert_eq!(n, pushed.layer.len());

    // Credentials from a docker config.json (auth is base64 user:password).
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"https://{}":{{"auth":"YWxpY2U6d29uZGVybGFuZA=="}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let from_config = Resolver::new(RegistryOptions {
        docker_config: Some(cfg),
        ..base
    })
    .unwrap();
    let tags = from_config.tags(&repo).await.unwrap();
    assert_eq!(tags, ["1.0"]);
}
