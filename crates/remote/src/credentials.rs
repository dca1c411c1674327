//! Where credentials come from: `--user` and docker's `config.json`
//! (`auths`, `credHelpers`, `credsStore`).
//!
//! Lookups are lazy and cached per host so that a credential helper runs at
//! most once per host, and only when a registry actually asks for auth.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// A username and password (or identity token) for one registry.
///
/// `Debug` redacts the password so credentials never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name; [`Credentials::IDENTITY_TOKEN_USER`] marks an identity token.
    pub username: String,
    /// The password, or the identity (refresh) token.
    pub password: String,
}

impl Credentials {
    /// The user name docker's credential helpers use to say the secret is an
    /// identity token (an OAuth2 refresh token) rather than a password.
    pub const IDENTITY_TOKEN_USER: &'static str = "<token>";

    /// Username and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// An identity token, used as an OAuth2 refresh token.
    pub fn identity_token(token: impl Into<String>) -> Self {
        Credentials::new(Self::IDENTITY_TOKEN_USER, token)
    }

    /// Whether the secret is an identity token.
    pub fn is_identity_token(&self) -> bool {
        self.username == Self::IDENTITY_TOKEN_USER
    }

    /// Value for an `Authorization: Basic …` header.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The parts of docker's `config.json` that concern pulling.
#[derive(Default, Deserialize)]
pub(crate) struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Where the credentials for one host are to be found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Inline(Credentials),
    Helper(String),
    None,
}

/// The key docker stores Docker Hub's credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Normalize a config key, server address or registry domain to a bare
/// `host[:port]`, lowercase, mapping Docker Hub's several names to
/// `docker.io` (`https://index.docker.io/v1/` → `docker.io`). Front ends
/// use it through [`crate::login::registry_host`].
pub fn normalize_host(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

/// The server URL a credential helper is asked about (docker's convention).
pub(crate) fn helper_server_url(domain: &str) -> String {
    if normalize_host(domain) == "docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        domain.to_owned()
    }
}

impl DockerConfig {
    pub(crate) fn parse(text: &[u8], path: &Path) -> Result<DockerConfig> {
        serde_json::from_slice(text)
            .map_err(|e| Error::Credentials(format!("cannot parse {}: {e}", path.display())))
    }

    /// Load the config at `path`, or the default location; a missing file is
    /// an empty config, a broken one an error.
    pub(crate) fn load(path: Option<&Path>) -> Result<DockerConfig> {
        let path = match path {
            Some(p) => p.to_owned(),
            None => match default_config_path() {
                Some(p) => p,
                None => return Ok(DockerConfig::default()),
            },
        };
        match std::fs::read(&path) {
            Ok(text) => DockerConfig::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig::default()),
            Err(e) => Err(Error::Credentials(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Decide where `domain`'s credentials live. Order: a per-host helper,
    /// then an `auths` entry carrying a secret, then the default store.
    pub(crate) fn source_for(&self, domain: &str) -> Result<Source> {
        let want = normalize_host(domain);
        if let Some(helper) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_host(k) == want)
            .map(|(_, v)| v)
        {
            return Ok(Source::Helper(helper.clone()));
        }
        // Exact key first: a config may hold both `host` and `https://host`.
        let entry = self.auths.get(domain).or_else(|| {
            self.auths
                .iter()
                .filter(|(k, _)| normalize_host(k) == want)
                .min_by_key(|(k, _)| k.as_str())
                .map(|(_, v)| v)
        });
        if let Some(entry) = entry
            && let Some(creds) = entry.credentials(domain)?
        {
            return Ok(Source::Inline(creds));
        }
        if let Some(store) = self.creds_store.as_ref().filter(|s| !s.is_empty()) {
            return Ok(Source::Helper(store.clone()));
        }
        Ok(Source::None)
    }
}

impl AuthEntry {
    fn credentials(&self, domain: &str) -> Result<Option<Credentials>> {
        if let Some(token) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::identity_token(token.clone())));
        }
        if let Some(auth) = self.auth.as_ref().filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
                .decode(auth.trim())
                .map_err(|_| {
                    Error::Credentials(format!("invalid base64 in auths entry for {domain}"))
                })?;
            let text = String::from_utf8(raw).map_err(|_| {
                Error::Credentials(format!("auths entry for {domain} is not UTF-8"))
            })?;
            let (user, pass) = text.split_once(':').ok_or_else(|| {
                Error::Credentials(format!(
                    "auths entry for {domain} is not of the form user:password"
                ))
            })?;
            return Ok(Some(Credentials::new(user, pass)));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials::new(u, p))),
            _ => Ok(None),
        }
    }
}

fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// How long a credential helper may take; they sometimes prompt or hang.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Run `program get` with `server_url` on stdin; `Ok(None)` when the helper
/// has nothing for that server.
pub(crate) async fn run_helper(program: &Path, server_url: &str) -> Result<Option<Credentials>> {
    #[derive(Deserialize)]
    struct HelperOutput {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let name = program.display().to_string();
    let mut child = match tokio::process::Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A config copied from a desktop often names a helper that is not
            // installed; docker would fail, but public pulls should still work.
            tracing::warn!(helper = %name, "credential helper not installed, continuing without credentials");
            return Ok(None);
        }
        Err(e) => return Err(Error::Credentials(format!("cannot run {name}: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server_url.as_bytes())
            .await
            .map_err(|e| Error::Credentials(format!("{name}: writing stdin: {e}")))?;
    }
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| Error::Credentials(format!("{name} timed out")))?
        .map_err(|e| Error::Credentials(format!("{name}: {e}")))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::Credentials(format!(
            "{name} failed: {}",
            text.lines().next().unwrap_or("").trim()
        )));
    }
    let parsed: HelperOutput = serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::Credentials(format!("{name}: invalid output: {e}")))?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(parsed.username, parsed.secret)))
}

/// Where a caller's credentials come from: a daemon passes each request's
/// CRI `AuthConfig` or docker `X-Registry-Auth` this way, an embedder its
/// own secret store. Asked before `config.json`, with the registry domain
/// (`docker.io`, `host:5000`) of the repository being pulled.
pub trait CredentialProvider: Send + Sync + std::fmt::Debug {
    /// The credentials for `domain`, or `None` to fall back to docker's
    /// `config.json`.
    fn credentials(&self, domain: &str) -> Option<Credentials>;
}

/// Credentials for one registry domain and no other: `--user`, or one
/// request's auth.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    domain: String,
    credentials: Credentials,
}

impl StaticCredentials {
    /// `credentials` for `domain` (Docker Hub's aliases count as one).
    pub fn new(domain: impl AsRef<str>, credentials: Credentials) -> StaticCredentials {
        StaticCredentials {
            domain: normalize_host(domain.as_ref()),
            credentials,
        }
    }
}

impl CredentialProvider for StaticCredentials {
    fn credentials(&self, domain: &str) -> Option<Credentials> {
        (normalize_host(domain) == self.domain).then(|| self.credentials.clone())
    }
}

/// docker's `config.json` and the answers of its credential helpers,
/// shared by every resolver made from one.
///
/// Each host has its own cell, so a slow helper for one host never holds up
/// another host's lookup; concurrent lookups of one host share one run.
#[derive(Default)]
pub(crate) struct ConfigCredentials {
    config: DockerConfig,
    cache: std::sync::Mutex<HashMap<String, Arc<OnceCell<Option<Credentials>>>>>,
}

impl ConfigCredentials {
    pub(crate) fn new(config: DockerConfig) -> Self {
        ConfigCredentials {
            config,
            cache: std::sync::Mutex::default(),
        }
    }

    async fn get(&self, domain: &str) -> Result<Option<Credentials>> {
        let cell = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.entry(normalize_host(domain)).or_default().clone()
        };
        let found = cell
            .get_or_try_init(|| async {
                match self.config.source_for(domain)? {
                    Source::Inline(c) => Ok(Some(c)),
                    Source::Helper(helper) => {
                        let program = PathBuf::from(format!("docker-credential-{helper}"));
                        run_helper(&program, &helper_server_url(domain)).await
                    }
                    Source::None => Ok(None),
                }
            })
            .await?;
        Ok(found.clone())
    }
}

/// Credentials for every host a resolver talks to: the caller's provider,
/// then `--user` for the reference's own registry, then `config.json`.
#[derive(Clone)]
pub(crate) struct CredentialStore {
    explicit: Option<Credentials>,
    provider: Option<Arc<dyn CredentialProvider>>,
    config: Arc<ConfigCredentials>,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore")
            .field("explicit", &self.explicit.is_some())
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

impl CredentialStore {
    pub(crate) fn new(explicit: Option<Credentials>, config: DockerConfig) -> Self {
        CredentialStore {
            explicit,
            provider: None,
            config: Arc::new(ConfigCredentials::new(config)),
        }
    }

    /// The same `config.json` with another caller's provider.
    pub(crate) fn with_provider(&self, provider: Option<Arc<dyn CredentialProvider>>) -> Self {
        CredentialStore {
            explicit: self.explicit.clone(),
            provider,
            config: self.config.clone(),
        }
    }

    pub(crate) async fn get(
        &self,
        domain: &str,
        explicit_applies: bool,
    ) -> Result<Option<Credentials>> {
        if explicit_applies {
            if let Some(found) = self.provider.as_ref().and_then(|p| p.credentials(domain)) {
                return Ok(Some(found));
            }
            if let Some(c) = &self.explicit {
                return Ok(Some(c.clone()));
            }
        }
        self.config.get(domain).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> DockerConfig {
        DockerConfig::parse(text.as_bytes(), Path::new("config.json")).unwrap()
    }

    #[test]
    fn debug_redacts_password() {
        let c = Credentials::new("alice", "hunter2");
        let s = format!("{c:?}");
        assert!(s.contains("alice"));
        assert!(!s.contains("hunter2"));
    }

    #[test]
    fn auth_base64_and_key_forms() {
        let c = cfg(r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNzOndpdGg6Y29sb25z"},
            "http://127.0.0.1:5000/v1/":{"auth":"YTpi"},
            "reg.example.com":{"username":"u","password":"p"},
            "nopad.example.com":{"auth":"YTpiYw"},
            "id.example.com":{"auth":"","identitytoken":"tok"},
            "empty.example.com":{}
        }}"#);
        for (host, user, password) in [
            ("docker.io", "user", "pass:with:colons"),
            ("127.0.0.1:5000", "a", "b"),
            ("reg.example.com", "u", "p"),
            ("nopad.example.com", "a", "bc"),
        ] {
            assert_eq!(
                c.source_for(host).unwrap(),
                Source::Inline(Credentials::new(user, password)),
                "{host}"
            );
        }
        assert_eq!(
            c.source_for("id.example.com").unwrap(),
            Source::Inline(Credentials::identity_token("tok"))
        );
        assert_eq!(c.source_for("empty.example.com").unwrap(), Source::None);
        assert_eq!(c.source_for("other:5000").unwrap(), Source::None);
    }

    #[test]
    fn docker_hub_aliases() {
        for key in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            let c = cfg(&format!(r#"{{"auths":{{"{key}":{{"auth":"YTpi"}}}}}}"#));
            assert_eq!(
                c.source_for("docker.io").unwrap(),
                Source::Inline(Credentials::new("a", "b")),
                "{key}"
            );
        }
        assert_eq!(helper_server_url("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(helper_server_url("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn helpers_take_precedence() {
        let c = cfg(r#"{"auths":{"a.io":{"auth":"YTpi"},"b.io":{}},
            "credHelpers":{"a.io":"ecr"},"credsStore":"desktop"}"#);
        assert_eq!(c.source_for("a.io").unwrap(), Source::Helper("ecr".into()));
        assert_eq!(
            c.source_for("b.io").unwrap(),
            Source::Helper("desktop".into())
        );
    }

    #[test]
    fn bad_config_is_a_credentials_error() {
        let err = DockerConfig::parse(b"{not json", Path::new("/x/config.json"))
            .err()
            .unwrap();
        assert!(matches!(err, Error::Credentials(_)));
        let c = cfg(r#"{"auths":{"h":{"auth":"!!!"}}}"#);
        assert!(matches!(c.source_for("h"), Err(Error::Credentials(_))));
        let c = cfg(r#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#);
        assert!(matches!(c.source_for("h"), Err(Error::Credentials(_))));
    }

    #[test]
    fn missing_config_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::load(Some(&dir.path().join("config.json"))).unwrap();
        assert_eq!(c.source_for("docker.io").unwrap(), Source::None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn runs_a_credential_helper() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-fake");
        std::fs::write(
            &script,
            "#!/bin/sh\nread url\nif [ \"$url\" = \"reg.io\" ]; then\n  echo '{\"ServerURL\":\"reg.io\",\"Username\":\"<token>\",\"Secret\":\"idtok\"}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let got = run_helper(&script, "reg.io").await.unwrap().unwrap();
        assert!(got.is_identity_token());
        assert_eq!(got.password, "idtok");
        assert_eq!(run_helper(&script, "other.io").await.unwrap(), None);
        let missing = dir.path().join("docker-credential-missing");
        assert_eq!(run_helper(&missing, "x").await.unwrap(), None);
    }

    #[tokio::test]
    async fn explicit_only_for_its_host() {
        let store = CredentialStore::new(Some(Credentials::new("u", "p")), DockerConfig::default());
        assert!(store.get("127.0.0.1:5000", true).await.unwrap().is_some());
        assert!(store.get("127.0.0.1:5000", false).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_provider_comes_first_and_only_for_its_domain() {
        let config = cfg(r#"{"auths":{"reg:5000":{"auth":"YTpi"}}}"#);
        let store = CredentialStore::new(Some(Credentials::new("flag", "x")), config);
        let provided: Arc<dyn CredentialProvider> = Arc::new(StaticCredentials::new(
            "reg:5000",
            Credentials::new("request", "secret"),
        ));
        let with = store.with_provider(Some(provided));
        assert_eq!(
            with.get("reg:5000", true).await.unwrap(),
            Some(Credentials::new("request", "secret"))
        );
        // Another domain falls through to --user, then to config.json.
        assert_eq!(
            with.get("other:5000", true).await.unwrap(),
            Some(Credentials::new("flag", "x"))
        );
        // A mirror or other host never gets the provider's answer.
        assert_eq!(
            with.get("reg:5000", false).await.unwrap(),
            Some(Credentials::new("a", "b"))
        );
        // The original store is untouched.
        assert_eq!(
            store.get("reg:5000", true).await.unwrap(),
            Some(Credentials::new("flag", "x"))
        );
        let hub = StaticCredentials::new("index.docker.io", Credentials::new("h", "p"));
        assert!(hub.credentials("docker.io").is_some());
        assert!(hub.credentials("ghcr.io").is_none());
    }
}
