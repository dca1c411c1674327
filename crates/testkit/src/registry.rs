//! A running CNCF distribution registry (`/usr/bin/docker-registry`) on
//! 127.0.0.1, in a temporary directory, in one of its variants: plain HTTP,
//! htpasswd basic auth, bearer tokens from an in-process [`TokenServer`], and
//! TLS with a generated CA. [`Registry::push`] uploads [`Image`]s through the
//! Distribution API.
//!
//! The registry's stdout and stderr go to `registry.log` in its temporary
//! directory ([`Registry::log`]); every failure to start panics with it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};

use crate::fixture::Image;
use crate::token::{TokenServer, TokenServerConfig};
use crate::util::{free_port, off_runtime, poll_until};

/// The registry binary.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// The `service` of the token-auth registry.
pub const TOKEN_SERVICE: &str = "hoist-test-registry";
/// The token issuer the token-auth registry trusts.
pub const TOKEN_ISSUER: &str = "hoist-testkit";
/// The realm of the htpasswd registry.
pub const BASIC_REALM: &str = "hoist-test-registry";

/// How long the registry may take to answer `GET /v2/`.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// How clients authenticate to the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous access to everything.
    #[default]
    None,
    /// htpasswd (bcrypt) with one user: `401` with `WWW-Authenticate: Basic`.
    Basic {
        /// The user name.
        username: String,
        /// Its password.
        password: String,
    },
    /// Bearer tokens from an in-process [`TokenServer`] that knows one user:
    /// `401` with `WWW-Authenticate: Bearer realm=…,service=…`.
    Token {
        /// The user name.
        username: String,
        /// Its password.
        password: String,
    },
}

/// What kind of registry [`Registry::start`] runs.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Authentication.
    pub auth: Auth,
    /// Serve HTTPS with a leaf for `127.0.0.1` and `localhost` signed by a
    /// freshly generated CA ([`Registry::ca_cert_pem`]). The token server, if
    /// any, stays plain HTTP.
    pub tls: bool,
    /// With [`Auth::Token`]: whether the token server gives anonymous
    /// clients pull-only tokens (default: it answers 401).
    pub anonymous_pull: bool,
    /// Run as a pull-through cache of this upstream registry URL
    /// (distribution's `proxy: remoteurl:`). Debian's distribution 2.8
    /// serves Docker v2s2 manifests this way, not OCI ones.
    pub proxy_remote_url: Option<String>,
    /// With `tls`: require a client certificate signed by the registry's CA
    /// ([`Registry::client_cert_path`], [`Registry::client_key_path`]).
    pub client_auth: bool,
    /// With [`Auth::Token`]: a token server without the OAuth2 `POST /token`
    /// (it answers 404 there), as older token servers are.
    pub get_only_tokens: bool,
    /// With [`Auth::Token`]: repositories no token grants anything on (see
    /// [`TokenServerConfig::locked_repositories`]).
    pub locked_repositories: Vec<String>,
}

/// What [`Registry::push`] pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The repository, e.g. `library/app`.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// Digest of the manifest or index pushed under the tag.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// `127.0.0.1:PORT/repository:tag`.
    pub reference: String,
    /// `127.0.0.1:PORT/repository@digest`.
    pub digest_reference: String,
    /// Digests of the child manifests of an index (pushed by digest), in
    /// index order; empty for a single image.
    pub manifests: Vec<String>,
}

struct Tls {
    ca_pem: String,
    ca_path: PathBuf,
    /// The client certificate and key (PEM, concatenated) the registry
    /// requires, when it requires one.
    client_identity: Option<String>,
    client_cert_path: PathBuf,
    client_key_path: PathBuf,
}

/// A running `docker-registry`. Killed (and waited for) on drop, together
/// with its token server and temporary directory.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Auth,
    tls: Option<Tls>,
    token: Option<TokenServer>,
    log_path: PathBuf,
    // Dropped last: holds storage, config, certs and the log.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base_url", &self.base_url())
            .field("auth", &self.auth)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn yaml_str(path: &Path) -> String {
    // A JSON string is a valid YAML scalar.
    serde_json::to_string(&path.to_str().expect("utf-8 path")).expect("json string")
}

impl Registry {
    /// Starts a registry as `config` says and waits until `GET /v2/` answers
    /// (at most 10 s). Panics, with the registry's log, if it does not.
    pub fn start(config: RegistryConfig) -> Registry {
        off_runtime(move || Registry::start_blocking(config))
    }

    /// A plain HTTP registry without authentication.
    pub fn plain() -> Registry {
        Registry::start(RegistryConfig::default())
    }

    /// A plain HTTP registry with htpasswd basic auth for one user.
    pub fn basic(username: &str, password: &str) -> Registry {
        Registry::start(RegistryConfig {
            auth: Auth::Basic {
                username: username.to_string(),
                password: password.to_string(),
            },
            ..RegistryConfig::default()
        })
    }

    /// A plain HTTP registry with bearer token auth (token server in-process).
    pub fn token(username: &str, password: &str) -> Registry {
        Registry::start(RegistryConfig {
            auth: Auth::Token {
                username: username.to_string(),
                password: password.to_string(),
            },
            ..RegistryConfig::default()
        })
    }

    /// An HTTPS registry without authentication, its certificate signed by a
    /// generated CA.
    pub fn tls() -> Registry {
        Registry::start(RegistryConfig {
            tls: true,
            ..RegistryConfig::default()
        })
    }

    /// A plain HTTP pull-through cache of `upstream` (an `http://` URL).
    pub fn pull_through(upstream: &str) -> Registry {
        Registry::start(RegistryConfig {
            proxy_remote_url: Some(upstream.to_string()),
            ..RegistryConfig::default()
        })
    }

    fn start_blocking(config: RegistryConfig) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("hoist-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("create storage dir");
        let log_path = dir.path().join("registry.log");

        let mut auth_yaml = String::new();
        let mut token = None;
        match &config.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{username}:{hash}\n")).expect("write htpasswd");
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: {BASIC_REALM}\n    path: {}\n",
                    yaml_str(&path)
                );
            }
            Auth::Token { username, password } => {
                let mut token_config = TokenServerConfig::new(username, password);
                token_config.allow_anonymous = config.anonymous_pull;
                token_config.oauth_post = !config.get_only_tokens;
                token_config.locked_repositories = config.locked_repositories.clone();
                let server = TokenServer::start(token_config);
                let path = dir.path().join("token-signer.pem");
                std::fs::write(&path, server.signing_cert_pem()).expect("write rootcertbundle");
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    server.service(),
                    server.issuer(),
                    yaml_str(&path)
                );
                token = Some(server);
            }
        }

        let mut tls_yaml = String::new();
        let mut tls = None;
        if config.tls {
            let material = crate::pki::server_tls();
            let cert = dir.path().join("registry.crt");
            let key = dir.path().join("registry.key");
            let ca_path = dir.path().join("ca.crt");
            std::fs::write(&cert, &material.cert_pem).expect("write cert");
            std::fs::write(&key, &material.key_pem).expect("write key");
            std::fs::write(&ca_path, &material.ca_pem).expect("write ca");
            let client_cert_path = dir.path().join("client.cert");
            let client_key_path = dir.path().join("client.key");
            std::fs::write(&client_cert_path, &material.client_cert_pem)
                .expect("write client cert");
            std::fs::write(&client_key_path, &material.client_key_pem).expect("write client key");
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                yaml_str(&cert),
                yaml_str(&key)
            );
            if config.client_auth {
                tls_yaml.push_str(&format!("    clientcas:\n      - {}\n", yaml_str(&ca_path)));
            }
            tls = Some(Tls {
                ca_pem: material.ca_pem,
                ca_path,
                client_identity: config
                    .client_auth
                    .then(|| format!("{}\n{}", material.client_cert_pem, material.client_key_pem)),
                client_cert_path,
                client_key_path,
            });
        }

        let config_path = dir.path().join("config.yml");
        let mut attempt = 0;
        loop {
            attempt += 1;
            // free_port drops its listener before the registry binds: another
            // process may grab the port in between. On "address already in
            // use" we retry once with a new port.
            let port = free_port();
            let yaml = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: hoist-testkit-http-secret\n{tls_yaml}\
                 health:\n  storagedriver:\n    enabled: false\n\
                 validation:\n  manifests:\n    urls:\n      allow:\n        - '^https?://'\n\
                 compatibility:\n  schema1:\n    enabled: true\n\
                 {auth_yaml}{proxy_yaml}",
                proxy_yaml = config
                    .proxy_remote_url
                    .as_deref()
                    .map(|url| format!(
                        "proxy:\n  remoteurl: {}\n",
                        serde_json::to_string(url).expect("json string")
                    ))
                    .unwrap_or_default(),
                storage = yaml_str(&storage),
            );
            std::fs::write(&config_path, yaml).expect("write registry config");
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("open registry log");
            let mut child = Command::new(REGISTRY_BINARY)
                .arg("serve")
                .arg(&config_path)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {REGISTRY_BINARY}: {e}"));
            let scheme = if tls.is_some() { "https" } else { "http" };
            let client = http_client(
                tls.as_ref().map(|t| t.ca_pem.as_str()),
                tls.as_ref().and_then(|t| t.client_identity.as_deref()),
            );
            match wait_ready(
                &mut child,
                &client,
                &format!("{scheme}://127.0.0.1:{port}/v2/"),
            ) {
                Ok(()) => {
                    return Registry {
                        child,
                        port,
                        auth: config.auth,
                        tls,
                        token,
                        log_path,
                        dir,
                    };
                }
                Err(reason) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log =
                        String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default())
                            .into_owned();
                    if attempt == 1 && log.contains("address already in use") {
                        continue;
                    }
                    panic!(
                        "docker-registry did not become ready on 127.0.0.1:{port}: {reason}\n\
                         --- config.yml ---\n{}\n--- registry.log ---\n{log}",
                        std::fs::read_to_string(&config_path).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// `127.0.0.1:PORT`, the registry host as written in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `127.0.0.1:PORT/repository:tag`.
    pub fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host())
    }

    /// Whether this registry serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The authentication mode.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The PEM of the CA that signed the TLS certificate (TLS variant only).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The CA certificate as a file, `<tempdir>/ca.crt` (TLS variant only).
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_path.as_path())
    }

    /// `(username, password)` for the basic and token variants.
    pub fn credentials(&self) -> Option<(String, String)> {
        match &self.auth {
            Auth::None => None,
            Auth::Basic { username, password } | Auth::Token { username, password } => {
                Some((username.clone(), password.clone()))
            }
        }
    }

    /// The token server of the token variant.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The registry's temporary directory (storage under `storage/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's stdout and stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// A blocking HTTP client that trusts this registry's CA (if any), does
    /// not use proxies, and follows no redirects. Use it off async runtimes
    /// (or inside `spawn_blocking`).
    pub fn client(&self) -> Client {
        http_client(
            self.ca_cert_pem(),
            self.tls.as_ref().and_then(|t| t.client_identity.as_deref()),
        )
    }

    /// An HTTPS registry that requires a client certificate signed by its
    /// CA ([`Registry::client_cert_path`], [`Registry::client_key_path`]).
    pub fn mutual_tls() -> Registry {
        Registry::start(RegistryConfig {
            tls: true,
            client_auth: true,
            ..RegistryConfig::default()
        })
    }

    /// The client certificate (PEM) a TLS registry's CA signed.
    pub fn client_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.client_cert_path.as_path())
    }

    /// The client certificate's key (PEM).
    pub fn client_key_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.client_key_path.as_path())
    }

    /// An `Authorization` header value for `repository` with `actions`
    /// (`"pull"`, `"pull,push"`, …): `Basic …` for htpasswd, `Bearer …` with a
    /// token fetched (by GET, counted) from the token server, `None` without
    /// auth.
    pub fn authorization(&self, repository: &str, actions: &str) -> Option<String> {
        off_runtime(|| self.authorization_blocking(repository, actions))
    }

    fn authorization_blocking(&self, repository: &str, actions: &str) -> Option<String> {
        match &self.auth {
            Auth::None => None,
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            )),
            Auth::Token { username, password } => {
                let server = self.token.as_ref().expect("token server");
                let response = self
                    .client()
                    .get(server.realm())
                    .query(&[
                        ("service", server.service().to_string()),
                        ("scope", format!("repository:{repository}:{actions}")),
                    ])
                    .basic_auth(username, Some(password))
                    .send()
                    .expect("GET token");
                let status = response.status();
                let body: serde_json::Value = response.json().expect("token response json");
                assert!(
                    status.is_success(),
                    "token server answered {status}: {body}"
                );
                Some(format!(
                    "Bearer {}",
                    body["token"].as_str().expect("token in response")
                ))
            }
        }
    }

    /// Pushes `image` to `repository` under `tag`: every config and layer
    /// blob (skipping blobs the registry has, monolithic POST + PUT upload),
    /// then for an index each child manifest by digest, then the manifest or
    /// index under `tag`. Authenticates as configured. Panics on any error
    /// with the response and the registry log.
    pub fn push(&self, image: &Image, repository: &str, tag: &str) -> Pushed {
        off_runtime(|| {
            let session = Session::new(self, repository, "pull,push");
            let manifests = image
                .children()
                .iter()
                .map(Image::manifest_digest)
                .collect();
            session.push_image(image, tag);
            let digest = image.manifest_digest();
            Pushed {
                repository: repository.to_string(),
                tag: tag.to_string(),
                reference: self.reference(repository, tag),
                digest_reference: format!("{}/{repository}@{digest}", self.host()),
                digest,
                media_type: image.media_type().to_string(),
                manifests,
            }
        })
    }

    /// Uploads one blob (POST + PUT), returning its digest.
    pub fn push_blob(&self, repository: &str, blob: &[u8]) -> String {
        off_runtime(|| {
            let digest = crate::fixture::sha256_digest(blob);
            Session::new(self, repository, "pull,push").push_blob(&digest, blob);
            digest
        })
    }

    /// PUTs raw manifest bytes under `reference` (a tag or digest) with
    /// `media_type`, returning the registry's `Docker-Content-Digest`.
    pub fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        off_runtime(|| {
            Session::new(self, repository, "pull,push").put_manifest(reference, media_type, body)
        })
    }

    /// GETs a manifest (authenticating as needed) with an Accept header for
    /// every OCI and Docker manifest type. Returns `(Content-Type, body)`;
    /// panics unless 200.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> (String, Vec<u8>) {
        off_runtime(|| {
            let session = Session::new(self, repository, "pull");
            let response = session.send(
                session
                    .client
                    .get(session.url(&format!("manifests/{reference}")))
                    .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT),
            );
            let response = session.expect(response, StatusCode::OK, "GET manifest");
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (
                content_type,
                response.bytes().expect("manifest body").to_vec(),
            )
        })
    }

    /// GETs a blob (authenticating as needed); panics unless 200.
    pub fn get_blob(&self, repository: &str, digest: &str) -> Vec<u8> {
        off_runtime(|| {
            let session = Session::new(self, repository, "pull");
            let response =
                session.send(session.client.get(session.url(&format!("blobs/{digest}"))));
            let response = session.expect(response, StatusCode::OK, "GET blob");
            response.bytes().expect("blob body").to_vec()
        })
    }

    /// DELETEs a blob from the repository (storage delete is enabled), e.g.
    /// to make a pull fail half-way; panics unless 202.
    pub fn delete_blob(&self, repository: &str, digest: &str) {
        off_runtime(|| {
            let session = Session::new(self, repository, "*");
            let response = session.send(
                session
                    .client
                    .delete(session.url(&format!("blobs/{digest}"))),
            );
            session.expect(response, StatusCode::ACCEPTED, "DELETE blob");
        });
    }
}

/// A blocking client trusting `ca_pem`, without proxies or redirects.
fn http_client(ca_pem: Option<&str>, identity_pem: Option<&str>) -> Client {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if let Some(pem) = identity_pem {
        builder =
            builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("client identity"));
    }
    if let Some(ca_pem) = ca_pem {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA certificate"),
        );
    }
    builder.build().expect("build HTTP client")
}

/// Polls `url` (`GET /v2/`) until it answers 200 or 401, or the child exits,
/// or [`READY_DEADLINE`] passes.
fn wait_ready(child: &mut Child, client: &Client, url: &str) -> Result<(), String> {
    let mut last_error = String::from("no answer");
    let mut exited = None;
    let ready = poll_until(READY_DEADLINE, || {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            return Some(false);
        }
        match client.get(url).timeout(Duration::from_secs(2)).send() {
            Ok(response)
                if response.status() == StatusCode::OK
                    || response.status() == StatusCode::UNAUTHORIZED =>
            {
                Some(true)
            }
            Ok(response) => {
                last_error = format!("GET /v2/ answered {}", response.status());
                None
            }
            Err(e) => {
                last_error = format!("GET /v2/: {e:?}");
                None
            }
        }
    });
    match (ready, exited) {
        (Some(true), _) => Ok(()),
        (_, Some(status)) => Err(format!("the registry exited with {status}")),
        _ => Err(format!(
            "timed out after {READY_DEADLINE:?}; last: {last_error}"
        )),
    }
}

/// The Accept header for manifests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Blocking requests against one repository with one Authorization header.
struct Session<'a> {
    registry: &'a Registry,
    client: Client,
    repository: String,
    authorization: Option<String>,
}

impl<'a> Session<'a> {
    fn new(registry: &'a Registry, repository: &str, actions: &str) -> Session<'a> {
        Session {
            registry,
            client: registry.client(),
            repository: repository.to_string(),
            authorization: registry.authorization_blocking(repository, actions),
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.registry.base_url(), self.repository)
    }

    fn send(&self, mut request: reqwest::blocking::RequestBuilder) -> Response {
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request
            .send()
            .unwrap_or_else(|e| panic!("request to registry failed: {e:?}"))
    }

    fn expect(&self, response: Response, status: StatusCode, what: &str) -> Response {
        if response.status() == status {
            return response;
        }
        let got = response.status();
        let headers = format!("{:?}", response.headers());
        let body = response.text().unwrap_or_default();
        panic!(
            "{what} in {}: expected {status}, got {got}\nheaders: {headers}\nbody: {body}\n--- registry.log ---\n{}",
            self.repository,
            self.registry.log()
        );
    }

    fn push_blob(&self, digest: &str, blob: &[u8]) {
        let head = self.send(self.client.head(self.url(&format!("blobs/{digest}"))));
        if head.status() == StatusCode::OK {
            return;
        }
        let started = self.send(self.client.post(self.url("blobs/uploads/")));
        let started = self.expect(started, StatusCode::ACCEPTED, "start upload");
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("upload Location")
            .to_string();
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.registry.base_url())
        } else {
            location
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        let put = self.send(
            self.client
                .put(url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(blob.to_vec()),
        );
        self.expect(put, StatusCode::CREATED, "finish upload");
    }

    fn put_manifest(&self, reference: &str, media_type: &str, body: &[u8]) -> String {
        let put = self.send(
            self.client
                .put(self.url(&format!("manifests/{reference}")))
                .header(CONTENT_TYPE, media_type)
                .body(body.to_vec()),
        );
        let put = self.expect(put, StatusCode::CREATED, "PUT manifest");
        put.headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// Pushes a single image's blobs and manifest, or an index's children
    /// (by digest) and the index, under `reference`.
    fn push_image(&self, image: &Image, reference: &str) {
        for child in image.children() {
            self.push_image(child, &child.manifest_digest());
        }
        for (digest, blob) in image.content_blobs() {
            self.push_blob(digest, blob);
        }
        let digest = self.put_manifest(reference, image.media_type(), image.manifest_bytes());
        assert_eq!(
            digest,
            image.manifest_digest(),
            "registry computed another manifest digest"
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
