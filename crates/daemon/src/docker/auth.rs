//! Registry credentials as docker sends them: the `X-Registry-Auth` header
//! of a pull (base64url of an `AuthConfig` JSON object) and the body of
//! `POST /auth` (the same object, plain), and the login check behind
//! `docker login`.
//!
//! A pull's credentials go to the engine for the reference's registry only
//! (`PullRequest::credentials`); a header that does not decode is ignored,
//! as moby ignores it, so the pull goes on anonymously or with the
//! daemon's own `config.json`.
//!
//! `registrytoken` (a bearer token for the registry itself) has no place
//! in hoist's credentials and is ignored; `identitytoken` is an OAuth2
//! refresh token, which hoist does use.

use base64::Engine as _;
use hoist_engine::Credentials;
use serde::Deserialize;

/// docker's `registry.AuthConfig`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// base64 of `username:password`, as in `config.json`.
    pub auth: String,
    /// The registry, e.g. `127.0.0.1:5000` or `https://index.docker.io/v1/`.
    pub serveraddress: String,
    /// An OAuth2 refresh token.
    pub identitytoken: String,
    /// A bearer token for the registry (not supported; ignored).
    pub registrytoken: String,
}

impl AuthConfig {
    /// Decodes an `X-Registry-Auth` value. docker encodes with base64url
    /// and padding; other clients leave the padding out or use the standard
    /// alphabet, so all four are accepted. `None` when absent or undecodable.
    pub fn from_header(value: &str) -> Option<AuthConfig> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let json = [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(value).ok())?;
        serde_json::from_slice(&json).ok()
    }

    /// The credentials for hoist, if any were given: an identity token
    /// first, then username and password, then `auth`.
    pub fn credentials(&self) -> Option<Credentials> {
        if !self.identitytoken.is_empty() {
            return Some(Credentials::identity_token(&self.identitytoken));
        }
        if !self.username.is_empty() || !self.password.is_empty() {
            return Some(Credentials::new(&self.username, &self.password));
        }
        if !self.auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(self.auth.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (username, password) = text.split_once(':')?;
            return Some(Credentials::new(username, password));
        }
        None
    }

    /// The registry domain as a normalized reference writes it
    /// (`docker.io`, `127.0.0.1:5000`): the scheme and path of
    /// `serveraddress` dropped; an empty address is Docker Hub, as in moby.
    pub fn registry_domain(&self) -> String {
        let address = self.serveraddress.trim();
        let address = address
            .strip_prefix("https://")
            .or_else(|| address.strip_prefix("http://"))
            .unwrap_or(address);
        let host = address.split('/').next().unwrap_or_default();
        match host {
            "" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                "docker.io".to_string()
            }
            host => host.to_string(),
        }
    }
}

/// Why a login failed.
#[derive(Debug)]
pub enum LoginError {
    /// The registry refused the credentials.
    Rejected(String),
    /// The request is unusable (no credentials, a bad address).
    Invalid(String),
    /// The registry could not be asked.
    Failed(String),
}

/// Checks `config`'s credentials against its registry, as `docker login`
/// asks the daemon to: `GET /v2/` on the registry (never a mirror) with
/// them, answering a Basic or token challenge without a scope, as moby
/// does ([`hoist_engine::Engine::login`]).
pub async fn login(engine: &hoist_engine::Engine, config: &AuthConfig) -> Result<(), LoginError> {
    let Some(credentials) = config.credentials() else {
        return Err(LoginError::Invalid(
            "Error: no username or password given".into(),
        ));
    };
    let domain = config.registry_domain();
    if hoist_oci::Reference::parse(&format!("{domain}/probe")).is_err() {
        return Err(LoginError::Invalid(format!(
            "unable to parse server address {:?}",
            config.serveraddress
        )));
    }
    match engine.login(&domain, credentials).await {
        Ok(()) => Ok(()),
        Err(hoist_engine::Error::Remote(hoist_remote::Error::Unauthorized { .. })) => {
            // moby's words.
            Err(LoginError::Rejected(format!(
                "login attempt to {domain}/v2/ failed with status: 401 Unauthorized"
            )))
        }
        Err(error) => Err(LoginError::Failed(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn decodes_docker_headers() {
        // docker's own encoding of `{"username":"alice","password":"s3cret?>"}`
        // uses `-`/`_` and padding.
        let json = r#"{"username":"alice","password":"s3cret?>","serveraddress":"127.0.0.1:5000"}"#;
        for encoded in [
            URL_SAFE.encode(json),
            URL_SAFE_NO_PAD.encode(json),
            STANDARD.encode(json),
        ] {
            let config = AuthConfig::from_header(&encoded).expect(&encoded);
            assert_eq!(config.username, "alice");
            assert_eq!(
                config.credentials(),
                Some(Credentials::new("alice", "s3cret?>"))
            );
            assert_eq!(config.registry_domain(), "127.0.0.1:5000");
        }
        // `{}`: what docker sends without a login.
        let empty = AuthConfig::from_header("e30=").unwrap();
        assert_eq!(empty.credentials(), None);
        assert_eq!(AuthConfig::from_header(""), None);
        assert_eq!(AuthConfig::from_header("!!not base64!!"), None);
        assert_eq!(AuthConfig::from_header(&URL_SAFE.encode("not json")), None);
    }

    #[test]
    fn credentials_in_order_of_precedence() {
        let token = AuthConfig {
            username: "alice".into(),
            password: "pw".into(),
            identitytoken: "refresh".into(),
            ..AuthConfig::default()
        };
        assert_eq!(
            token.credentials(),
            Some(Credentials::identity_token("refresh"))
        );
        let auth = AuthConfig {
            auth: STANDARD.encode("bob:pa:ss"),
            ..AuthConfig::default()
        };
        assert_eq!(auth.credentials(), Some(Credentials::new("bob", "pa:ss")));
        let broken = AuthConfig {
            auth: "%%%".into(),
            ..AuthConfig::default()
        };
        assert_eq!(broken.credentials(), None);
        let registry_token = AuthConfig {
            registrytoken: "bearer".into(),
            ..AuthConfig::default()
        };
        assert_eq!(registry_token.credentials(), None);
    }

    #[test]
    fn server_addresses_become_domains() {
        let domain = |address: &str| {
            AuthConfig {
                serveraddress: address.into(),
                ..AuthConfig::default()
            }
            .registry_domain()
        };
        assert_eq!(domain(""), "docker.io");
        assert_eq!(domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(domain("registry-1.docker.io"), "docker.io");
        assert_eq!(domain("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(domain("127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(domain("ghcr.io"), "ghcr.io");
    }
}
