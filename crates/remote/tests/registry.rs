//! End-to-end checks of the resolver against the real distribution registry
//! (`/usr/bin/docker-registry`) on a free 127.0.0.1 port: plain http (reached
//! through the loopback https→http fallback), TLS with a test CA, and
//! htpasswd basic auth. Each test starts its own registry and kills it on drop.
//!
//! The fixtures are a test CA, a server certificate for 127.0.0.1 signed by
//! it (valid until 2126) and an htpasswd file for `alice:wonderland`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoist_remote::{
    Credentials, Descriptor, Digest, Error, RegistryOptions, Repository, Resolver, RetryPolicy,
};
use sha2::Digest as _;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

struct Registry {
    child: Child,
    port: u16,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(tls: bool, htpasswd: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fx = fixtures();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if tls {
            cfg += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                fx.join("server.crt").display(),
                fx.join("server.key").display()
            );
        }
        if htpasswd {
            cfg += &format!(
                "auth:\n  htpasswd:\n    realm: hoist-test\n    path: {}\n",
                fx.join("htpasswd").display()
            );
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            child,
            port,
            tls,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    fn domain(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(fixtures().join("ca.crt")).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Pushed {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

async fn push_blob(reg: &Registry, client: &reqwest::Client, name: &str, data: &[u8]) {
    let resp = client
        .post(format!("{}/v2/{name}/blobs/uploads/", reg.base()))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "start upload");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let mut url = reqwest::Url::parse(&reg.base())
        .unwrap()
        .join(&location)
        .unwrap();
    url.query_pairs_mut().append_pair("digest", &sha256(data));
    let resp = client
        .put(url)
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "finish upload");
}

async fn push_image(reg: &Registry, name: &str, tags: &[&str]) -> Pushed {
    let client = reg.client();
    let layer: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    push_blob(reg, &client, name, &layer).await;
    push_blob(reg, &client, name, &config).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    for tag in tags {
        let resp = client
            .put(format!("{}/v2/{name}/manifests/{tag}", reg.base()))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "put manifest");
    }
    Pushed {
        manifest,
        config,
        layer,
    }
}

fn fast_options() -> RegistryOptions {
    RegistryOptions {
        // No config.json from the machine running the tests.
        docker_config: Some(PathBuf::from("/nonexistent/config.json")),
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

fn blob_desc(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor::new(
        media_type.into(),
        data.len() as u64,
        Digest::try_from(sha256(data)).unwrap(),
    )
}

#[tokio::test]
async fn plain_registry_roundtrip() {
    let reg = Registry::start(false, false);
    let pushed = push_image(&reg, "team/app", &["v1", "v2"]).await;
    // Not plain_http: https to a loopback host fails and falls back to http.
    let resolver = Resolver::new(fast_options()).unwrap();
    let repo = Repository::new(reg.domain(), "team/app");

    let desc = resolver.resolve(&repo, "v1").await.unwrap();
    assert_eq!(desc.digest().to_string(), sha256(&pushed.manifest));
    assert_eq!(desc.size(), pushed.manifest.len() as u64);
    assert_eq!(
        desc.media_type().to_string(),
        "application/vnd.oci.image.manifest.v1+json"
    );

    let by_digest = resolver
        .resolve(&repo, desc.digest().as_ref())
        .await
        .unwrap();
    assert_eq!(by_digest.digest(), desc.digest());

    let body = resolver.fetch_manifest(&repo, &desc).await.unwrap();
    assert_eq!(&body[..], &pushed.manifest[..]);

    let config = resolver
        .fetch_small_blob(
            &repo,
            &blob_desc("application/vnd.oci.image.config.v1+json", &pushed.config),
        )
        .await
        .unwrap();
    assert_eq!(&config[..], &pushed.config[..]);

    let layer_desc = blob_desc("application/vnd.oci.image.layer.v1.tar", &pushed.layer);
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
        format!("not found: {}/team/app:nope", reg.domain())
    );

    let missing = Repository::new(reg.domain(), "team/none");
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
    let reg = Registry::start(true, false);
    let pushed = push_image(&reg, "app", &["latest"]).await;
    let repo = Repository::new(reg.domain(), "app");

    // Untrusted: a TLS error naming the certificate; no http fallback, as
    // the server does speak TLS.
    let resolver = Resolver::new(fast_options()).unwrap();
    let err = resolver.resolve(&repo, "latest").await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    let with_ca = Resolver::new(RegistryOptions {
        ca_files: vec![fixtures().join("ca.crt")],
        ..fast_options()
    })
    .unwrap();
    let desc = with_ca.resolve(&repo, "latest").await.unwrap();
    assert_eq!(desc.digest().to_string(), sha256(&pushed.manifest));

    let hosts = tempfile::tempdir().unwrap();
    let host_dir = hosts.path().join(reg.domain());
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::copy(fixtures().join("ca.crt"), host_dir.join("ca.crt")).unwrap();
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
    let reg = Registry::start(true, false);
    let repo = Repository::new(reg.domain(), "app");
    let resolver = Resolver::new(fast_options()).unwrap();
    let err = resolver.tags(&repo).await.unwrap_err();
    match &err {
        Error::Tls { host, .. } => assert_eq!(host, &reg.domain()),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let reg = Registry::start(true, true);
    let pushed = push_image(&reg, "private/app", &["1.0"]).await;
    let repo = Repository::new(reg.domain(), "private/app");
    let base = RegistryOptions {
        ca_files: vec![fixtures().join("ca.crt")],
        ..fast_options()
    };

    let anon = Resolver::new(base.clone()).unwrap();
    let err = anon.resolve(&repo, "1.0").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unauthorized: authentication required for {}/private/app",
            reg.domain()
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
    let layer_desc = blob_desc("application/vnd.oci.image.layer.v1.tar", &pushed.layer);
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
            reg.domain()
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
