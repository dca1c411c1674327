//! Tests of the testkit itself: every registry variant starts, takes a push and
//! serves it back; the token server, proxy faults, fixtures and skopeo work.

use std::io::Read;

use base64::Engine as _;
use hoist_testkit::reqwest::StatusCode;
use hoist_testkit::reqwest::blocking::Client;
use hoist_testkit::{
    Auth, Compression, Fault, FaultProxy, Format, Image, Registry, RegistryConfig, TokenServer,
    layer, sha256_digest, simple_image, simple_index, skopeo_copy_layout_to_registry,
};

const ACCEPT: &str = hoist_testkit::registry::MANIFEST_ACCEPT;

/// The body of manifest `repository:v1` from `base_url`, fetched
/// anonymously.
fn get_manifest(client: &Client, base_url: &str, repository: &str) -> Vec<u8> {
    let url = format!("{base_url}/v2/{repository}/manifests/v1");
    let response = client.get(url).header("Accept", ACCEPT).send().unwrap();
    response.bytes().unwrap().to_vec()
}

/// The status of an OAuth2 password-grant POST to `tokens`.
fn password_grant(
    client: &Client,
    tokens: &TokenServer,
    username: &str,
    password: &str,
) -> StatusCode {
    let response = client
        .post(tokens.realm())
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .unwrap();
    response.status()
}

fn push_and_check(registry: &Registry, image: &Image, repository: &str) {
    let pushed = registry.push(image, repository, "v1");
    assert_eq!(pushed.digest, image.manifest_digest());
    assert_eq!(
        pushed.reference,
        format!("{}/{repository}:v1", registry.host())
    );
    let (media_type, body) = registry.get_manifest(repository, "v1");
    assert_eq!(media_type, image.media_type());
    assert_eq!(sha256_digest(&body), image.manifest_digest());
    for child in image.children() {
        let (_, body) = registry.get_manifest(repository, &child.manifest_digest());
        assert_eq!(body, child.manifest_bytes());
    }
    for (digest, bytes) in image.blobs() {
        if image
            .children()
            .iter()
            .any(|c| c.manifest_digest() == digest)
            || digest == image.manifest_digest()
        {
            continue;
        }
        assert_eq!(registry.get_blob(repository, &digest), bytes);
    }
}

#[test]
fn fixtures_are_deterministic_and_well_formed() {
    for format in [Format::Oci, Format::Docker] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let a = simple_image(format, compression, "linux/amd64");
            let b = simple_image(format, compression, "linux/amd64");
            assert_eq!(a, b);
            let c = simple_image(format, compression, "linux/arm64/v8");
            assert_ne!(a.manifest_digest(), c.manifest_digest());
            assert_eq!(a.layers().len(), 3);
            for layer in a.layers() {
                assert_eq!(layer.digest, sha256_digest(&layer.blob));
                assert_eq!(layer.media_type, format.layer_media_type(compression));
            }
            let config: serde_json::Value =
                serde_json::from_slice(c.config_bytes().unwrap()).unwrap();
            assert_eq!(config["architecture"], "arm64");
            assert_eq!(config["os"], "linux");
            assert_eq!(config["variant"], "v8");
            assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
            let manifest: serde_json::Value = serde_json::from_slice(a.manifest_bytes()).unwrap();
            assert_eq!(manifest["mediaType"], format.manifest_media_type());
            assert_eq!(manifest["config"]["digest"], a.config_digest().unwrap());
        }
    }
    let index = simple_index(
        Format::Docker,
        Compression::Gzip,
        &["linux/amd64", "linux/arm/v7"],
    );
    let parsed: serde_json::Value = serde_json::from_slice(index.manifest_bytes()).unwrap();
    assert_eq!(
        parsed["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(parsed["manifests"][1]["platform"]["variant"], "v7");
    assert_eq!(index.blobs().len(), 1 + 2 * 5);
}

#[test]
fn layer_builder_writes_the_entries() {
    let l = layer(Compression::Gzip, Format::Oci, |b| {
        b.add_dir("etc", 0o755)
            .add_file("etc/a", b"A", 0o600)
            .add_symlink("etc/link", "/etc/a")
            .add_hardlink("etc/hard", "etc/a")
            .add_whiteout("etc/old")
            .add_opaque("var")
            .add_raw_file("../escape", b"x", 0o644);
    });
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&l.blob[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(l.diff_id, sha256_digest(&tar));
    let mut archive = tar::Archive::new(&tar[..]);
    let entries: Vec<(String, tar::EntryType, u32, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.entry_type(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "etc",
            "etc/a",
            "etc/link",
            "etc/hard",
            "etc/.wh.old",
            "var/.wh..wh..opq",
            "../escape"
        ]
    );
    assert_eq!(entries[1].2, 0o600);
    assert_eq!(entries[2].1, tar::EntryType::Symlink);
    assert_eq!(entries[3].1, tar::EntryType::Link);
    assert!(
        entries
            .iter()
            .all(|e| e.3 == hoist_testkit::fixture::FIXED_MTIME)
    );
}

#[test]
fn plain_registry_takes_single_images_and_indexes() {
    let registry = Registry::plain();
    assert!(registry.base_url().starts_with("http://127.0.0.1:"));
    push_and_check(
        &registry,
        &simple_image(Format::Oci, Compression::Gzip, "linux/amd64"),
        "oci/single",
    );
    push_and_check(
        &registry,
        &simple_image(Format::Docker, Compression::Gzip, "linux/amd64"),
        "docker/single",
    );
    push_and_check(
        &registry,
        &simple_image(Format::Oci, Compression::Zstd, "linux/arm64"),
        "oci/zstd",
    );
    push_and_check(
        &registry,
        &simple_index(
            Format::Oci,
            Compression::Gzip,
            &["linux/amd64", "linux/arm64/v8"],
        ),
        "oci/index",
    );
    let list = simple_index(
        Format::Docker,
        Compression::Gzip,
        &["linux/amd64", "linux/arm/v7"],
    );
    push_and_check(&registry, &list, "docker/list");
    // Pushing again is idempotent (blobs are skipped).
    let pushed = registry.push(&list, "docker/list", "v2");
    assert_eq!(
        pushed.manifests,
        list.children()
            .iter()
            .map(Image::manifest_digest)
            .collect::<Vec<_>>()
    );
    // Deleting a blob makes it go away.
    let layer = list.children()[0].layers()[0].digest.clone();
    registry.delete_blob("docker/list", &layer);
    let response = registry
        .client()
        .get(format!(
            "{}/v2/docker/list/blobs/{layer}",
            registry.base_url()
        ))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        registry.log().contains("listening on 127.0.0.1"),
        "{}",
        registry.log()
    );
}

#[test]
fn basic_registry_requires_credentials() {
    let registry = Registry::basic("alice", "wonderland");
    assert_eq!(
        registry.credentials(),
        Some(("alice".into(), "wonderland".into()))
    );
    let image = simple_image(Format::Oci, Compression::Gzip, "linux/amd64");
    push_and_check(&registry, &image, "secret/app");
    let client = registry.client();
    let url = format!("{}/v2/secret/app/manifests/v1", registry.base_url());
    let anonymous = client.get(&url).header("Accept", ACCEPT).send().unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let wrong = client
        .get(&url)
        .basic_auth("alice", Some("nope"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = client
        .get(&url)
        .header("Accept", ACCEPT)
        .basic_auth("alice", Some("wonderland"))
        .send()
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert_eq!(
        right.headers()["docker-content-digest"],
        image.manifest_digest().as_str()
    );
}

#[test]
fn token_registry_end_to_end() {
    let registry = Registry::token("bob", "builder");
    let image = simple_image(Format::Docker, Compression::Gzip, "linux/amd64");
    registry.push(&image, "team/app", "latest");
    let tokens = registry.token_server().expect("token server");
    let client = registry.client();

    // Anonymous /v2/ → Bearer challenge naming the realm and service.
    let response = client
        .get(format!("{}/v2/", registry.base_url()))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("realm=\"{}\"", tokens.realm())),
        "{challenge}"
    );
    assert!(
        challenge.contains("service=\"hoist-test-registry\""),
        "{challenge}"
    );

    let manifest_url = format!("{}/v2/team/app/manifests/latest", registry.base_url());
    let fetch = |token: &str| {
        client
            .get(&manifest_url)
            .header("Accept", ACCEPT)
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let scope = "repository:team/app:pull";

    // GET with basic credentials.
    let gets = tokens.get_requests();
    let body: serde_json::Value = client
        .get(tokens.realm())
        .query(&[("service", "hoist-test-registry"), ("scope", scope)])
        .basic_auth("bob", Some("builder"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tokens.get_requests(), gets + 1);
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let response = fetch(body["token"].as_str().unwrap());
    assert_eq!(response.status(), StatusCode::OK, "{}", registry.log());
    assert_eq!(response.bytes().unwrap(), image.manifest_bytes());

    // The token's claims.
    let payload = body["token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], "hoist-test-registry");
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["access"][0]["actions"], serde_json::json!(["pull"]));

    // OAuth2 POST with a password, then with the refresh token; each
    // token it gives fetches the manifest.
    let posts = tokens.post_requests();
    let post_token = |grant: &[(&str, &str)]| -> serde_json::Value {
        let mut form = grant.to_vec();
        form.extend([
            ("service", "hoist-test-registry"),
            ("scope", scope),
            ("client_id", "hoist"),
        ]);
        let body: serde_json::Value = client
            .post(tokens.realm())
            .form(&form)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            fetch(body["access_token"].as_str().unwrap()).status(),
            StatusCode::OK
        );
        body
    };
    let body = post_token(&[
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", "builder"),
    ]);
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    post_token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ]);
    assert_eq!(tokens.post_requests(), posts + 2);

    // Failures: wrong password (GET and POST), no credentials, a token for
    // another repository.
    let wrong = client
        .get(tokens.realm())
        .query(&[("service", "hoist-test-registry"), ("scope", scope)])
        .basic_auth("bob", Some("nope"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        password_grant(&client, tokens, "bob", "x"),
        StatusCode::UNAUTHORIZED
    );
    let anonymous = client
        .get(tokens.realm())
        .query(&[("scope", scope)])
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let other = tokens.issue_token("bob", &["repository:other/app:pull"]);
    assert_eq!(fetch(&other).status(), StatusCode::UNAUTHORIZED);
    assert!(tokens.scopes().iter().any(|s| s == scope));
}

#[test]
fn token_registry_with_anonymous_pull() {
    let registry = Registry::start(RegistryConfig {
        auth: Auth::Token {
            username: "u".into(),
            password: "p".into(),
        },
        tls: false,
        anonymous_pull: true,
        ..RegistryConfig::default()
    });
    let image = simple_image(Format::Oci, Compression::Gzip, "linux/amd64");
    registry.push(&image, "pub/app", "v1");
    let tokens = registry.token_server().unwrap();
    let client = registry.client();
    let body: serde_json::Value = client
        .get(tokens.realm())
        .query(&[
            ("service", "hoist-test-registry"),
            ("scope", "repository:pub/app:pull,push"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = body["token"].as_str().unwrap();
    let ok = client
        .get(format!("{}/v2/pub/app/manifests/v1", registry.base_url()))
        .header("Accept", ACCEPT)
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // Pull only: an upload is refused.
    let upload = client
        .post(format!("{}/v2/pub/app/blobs/uploads/", registry.base_url()))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(upload.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn token_server_logs_requests_and_can_lock_repositories_and_refuse_posts() {
    let registry = Registry::start(RegistryConfig {
        auth: Auth::Token {
            username: "u".into(),
            password: "p".into(),
        },
        anonymous_pull: true,
        get_only_tokens: true,
        locked_repositories: vec!["locked/app".into()],
        ..RegistryConfig::default()
    });
    let tokens = registry.token_server().unwrap();
    let client = registry.client();
    let before = tokens.log().len();
    let token_for = |repository: &str| -> String {
        let body: serde_json::Value = client
            .get(tokens.realm())
            .query(&[
                ("service", "hoist-test-registry"),
                ("scope", &format!("repository:{repository}:pull")),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        body["token"].as_str().unwrap().to_string()
    };
    let tags = |repository: &str, token: &str| {
        client
            .get(format!("{}/v2/{repository}/tags/list", registry.base_url()))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    // A locked repository still gets a token, which the registry refuses.
    assert_eq!(
        tags("locked/app", &token_for("locked/app")),
        StatusCode::UNAUTHORIZED
    );
    assert_ne!(
        tags("open/app", &token_for("open/app")),
        StatusCode::UNAUTHORIZED
    );
    // No OAuth2 POST.
    assert_eq!(
        password_grant(&client, tokens, "u", "p"),
        StatusCode::NOT_FOUND
    );
    let log = tokens.log().split_off(before);
    let methods: Vec<&str> = log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "GET", "POST"]);
    assert!(
        log[0]
            .query
            .contains("scope=repository%3Alocked%2Fapp%3Apull"),
        "{log:?}"
    );
    assert_eq!(log[0].authorization, None);
    assert_eq!(log[2].field("username"), Some("u"));
}

#[test]
fn proxy_logs_headers_and_redirects_blobs_to_storage() {
    let registry = Registry::plain();
    let storage_registry = Registry::plain();
    let blob = b"blob bytes";
    let digest = registry.push_blob("app", blob);
    storage_registry.push_blob("app", blob);
    let (proxy, storage) = FaultProxy::with_blob_storage(&registry, &storage_registry, "sig=1");
    let client = Client::builder()
        .redirect(hoist_testkit::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{}/v2/app/blobs/{digest}", proxy.base_url());
    let redirect = client.get(&url).header("X-Probe", "1").send().unwrap();
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = redirect.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        location,
        format!("{}/v2/app/blobs/{digest}?sig=1", storage.base_url())
    );
    assert_eq!(
        client.get(&location).send().unwrap().bytes().unwrap(),
        &blob[..]
    );
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].header("x-probe"), Some("1"));
    assert_eq!(
        storage.seen()[0].target,
        format!("/v2/app/blobs/{digest}?sig=1")
    );
}

#[test]
fn tls_registry_is_trusted_only_with_its_ca() {
    let registry = Registry::tls();
    assert!(registry.base_url().starts_with("https://127.0.0.1:"));
    let image = simple_image(Format::Oci, Compression::Gzip, "linux/amd64");
    push_and_check(&registry, &image, "tls/app");
    let pem = std::fs::read_to_string(registry.ca_cert_path().unwrap()).unwrap();
    assert_eq!(pem, registry.ca_cert_pem().unwrap());
    let url = format!("{}/v2/", registry.base_url());
    let trusting = Client::builder()
        .no_proxy()
        .add_root_certificate(
            hoist_testkit::reqwest::Certificate::from_pem(pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(trusting.get(&url).send().unwrap().status(), StatusCode::OK);
    let localhost = format!("https://localhost:{}/v2/", registry.port());
    assert_eq!(
        trusting.get(&localhost).send().unwrap().status(),
        StatusCode::OK
    );
    // A plain-HTTP FaultProxy in front of the TLS registry trusts its CA.
    let proxy = FaultProxy::for_registry(&registry);
    let through = Client::builder().no_proxy().build().unwrap();
    let body = get_manifest(&through, &proxy.base_url(), "tls/app");
    assert_eq!(body, image.manifest_bytes());
    let untrusting = Client::builder().no_proxy().build().unwrap();
    let err = untrusting.get(&url).send().unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

#[test]
fn tls_registry_with_basic_auth() {
    let registry = Registry::start(RegistryConfig {
        auth: Auth::Basic {
            username: "a".into(),
            password: "b".into(),
        },
        tls: true,
        ..RegistryConfig::default()
    });
    push_and_check(
        &registry,
        &simple_image(Format::Docker, Compression::Gzip, "linux/amd64"),
        "x/y",
    );
}

#[test]
fn proxy_injects_faults() {
    let registry = Registry::plain();
    let image = simple_image(Format::Oci, Compression::Gzip, "linux/amd64");
    registry.push(&image, "app", "v1");
    let proxy = FaultProxy::for_registry(&registry);
    let client = Client::builder()
        .no_proxy()
        .redirect(hoist_testkit::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let layer = &image.layers()[2];
    let blob_url = format!("{}/v2/app/blobs/{}", proxy.base_url(), layer.digest);

    // Pass-through, with headers.
    let response = client.get(&blob_url).send().unwrap();
    assert_eq!(
        response.headers()["docker-content-digest"],
        layer.digest.as_str()
    );
    assert_eq!(response.bytes().unwrap(), layer.blob);
    let head = client
        .head(format!("{}/v2/app/manifests/v1", proxy.base_url()))
        .header("Accept", ACCEPT)
        .send()
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        image.size().to_string().as_str()
    );

    // Corruption keeps the length but not the digest.
    proxy.set_fault(Fault::FlipByteInBlobs);
    let corrupt = client.get(&blob_url).send().unwrap().bytes().unwrap();
    assert_eq!(corrupt.len(), layer.blob.len());
    assert_ne!(sha256_digest(&corrupt), layer.digest);
    // Manifests are untouched.
    let manifest = get_manifest(&client, &proxy.base_url(), "app");
    assert_eq!(manifest, image.manifest_bytes());

    // Truncation: the body ends early with an error.
    proxy.set_fault(Fault::TruncateBlobs { after: 1000 });
    let response = client.get(&blob_url).send().unwrap();
    assert_eq!(response.content_length(), Some(layer.size()));
    let mut got = Vec::new();
    let result = {
        let mut r = response;
        r.read_to_end(&mut got)
    };
    assert!(result.is_err(), "read {} bytes without error", got.len());
    assert_eq!(got.len(), 1000);
    // Ranges pass through (for resume).
    proxy.set_fault(Fault::None);
    let ranged = client
        .get(&blob_url)
        .header("Range", "bytes=1000-")
        .send()
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().unwrap(), layer.blob[1000..]);

    // Status faults, then pass-through.
    proxy.set_fault(Fault::Status {
        code: 503,
        times: 2,
    });
    let v2 = format!("{}/v2/", proxy.base_url());
    assert_eq!(
        client.get(&v2).send().unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        client.get(&v2).send().unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(client.get(&v2).send().unwrap().status(), StatusCode::OK);

    // Upload Location points back at the proxy, and uploads work through it.
    let started = client
        .post(format!("{}/v2/app/blobs/uploads/", proxy.base_url()))
        .send()
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&proxy.base_url()), "{location}");
    let data = b"through the proxy".to_vec();
    let digest = sha256_digest(&data);
    let put = client
        .put(format!("{location}&digest={digest}"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(registry.get_blob("app", &digest), data);

    assert_eq!(proxy.requests(), 11);
    assert!(
        proxy
            .request_log()
            .iter()
            .any(|l| l.contains("range=bytes=1000-"))
    );
}

#[test]
fn proxy_passes_bearer_auth_through() {
    let registry = Registry::token("u", "p");
    let image = simple_image(Format::Oci, Compression::Gzip, "linux/amd64");
    registry.push(&image, "app", "v1");
    let proxy = FaultProxy::for_registry(&registry);
    let client = Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/v2/app/manifests/v1", proxy.base_url());
    let anonymous = client.get(&url).send().unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=")
    );
    let authorization = registry.authorization("app", "pull").unwrap();
    let ok = client
        .get(&url)
        .header("Accept", ACCEPT)
        .header("Authorization", authorization)
        .send()
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[test]
fn skopeo_pushes_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let index = simple_index(
        Format::Oci,
        Compression::Gzip,
        &["linux/amd64", "linux/arm64/v8"],
    );
    let docker = simple_image(Format::Docker, Compression::Gzip, "linux/amd64");
    index.write_oci_layout(dir.path(), "multi");
    docker.write_oci_layout(dir.path(), "docker");
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(layout["manifests"].as_array().unwrap().len(), 2);

    let plain = Registry::plain();
    skopeo_copy_layout_to_registry(dir.path(), "multi", &plain, "sk/multi");
    let (_, body) = plain.get_manifest("sk/multi", "multi");
    assert_eq!(sha256_digest(&body), index.manifest_digest());
    let child = &index.children()[1];
    assert_eq!(
        plain.get_manifest("sk/multi", &child.manifest_digest()).1,
        child.manifest_bytes()
    );

    let token = Registry::token("sk", "opeo");
    skopeo_copy_layout_to_registry(dir.path(), "docker", &token, "sk/docker");
    let (media_type, body) = token.get_manifest("sk/docker", "docker");
    assert_eq!(media_type, docker.media_type());
    assert_eq!(sha256_digest(&body), docker.manifest_digest());
    assert!(token.token_server().unwrap().requests() > 1);
}

#[tokio::test]
async fn usable_inside_a_tokio_runtime() {
    let registry = Registry::basic("a", "b");
    let image = simple_image(Format::Oci, Compression::None, "linux/amd64");
    let pushed = registry.push(&image, "rt/app", "v1");
    assert_eq!(
        registry.get_manifest("rt/app", &pushed.digest).1,
        image.manifest_bytes()
    );
    let proxy = FaultProxy::for_registry(&registry);
    drop(proxy);
    drop(registry);
}
