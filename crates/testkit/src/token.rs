//! An in-process bearer token server following Docker's token authentication
//! spec, for the registry's `auth.token` mode.
//!
//! It answers `GET /token?service=…&scope=…` (credentials by HTTP Basic) and
//! the OAuth2 `POST /token` (form body, `grant_type=password` or
//! `grant_type=refresh_token`) that containerd uses when it has credentials.
//! Tokens are ES256 JWTs whose header carries the signing certificate in
//! `x5c`; that certificate is the registry's `rootcertbundle`, so distribution
//! verifies them. Every request is counted, so tests can assert token caching.
//!
//! Access granted: with the right credentials, every action asked for; with
//! no credentials, `pull` only and only when
//! [`TokenServerConfig::allow_anonymous`] is set (otherwise 401); with wrong
//! credentials, 401.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Signer;
use serde_json::{Value, json};

use crate::pki::{TokenSigner, token_signer};
use crate::util::{Background, Recorded};

/// How a [`TokenServer`] authenticates and what it puts in tokens.
#[derive(Debug, Clone)]
pub struct TokenServerConfig {
    /// The one user name accepted.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The `service` (JWT `aud`) the registry expects.
    pub service: String,
    /// The JWT `iss` the registry expects.
    pub issuer: String,
    /// Whether requests without credentials get a (pull-only) token.
    pub allow_anonymous: bool,
    /// Token lifetime in seconds (`expires_in`).
    pub expires_in: u64,
    /// Whether `POST /token` (OAuth2) is served; without it the server
    /// answers 404 there, as token servers that only know the GET flow do.
    pub oauth_post: bool,
    /// Repositories no token grants anything on: a request for them still
    /// gets a token, with an empty grant, as Docker Hub answers for a
    /// repository the caller may not see; the registry then refuses it.
    pub locked_repositories: Vec<String>,
}

/// One request a [`TokenServer`] received, as [`TokenServer::log`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The query string of a GET (empty for a POST).
    pub query: String,
    /// The form fields of a POST body, in order (empty for a GET).
    pub form: Vec<(String, String)>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl TokenRequest {
    /// The first form field named `key`, if any.
    pub fn field(&self, key: &str) -> Option<&str> {
        first(&self.form, key)
    }
}

impl TokenServerConfig {
    /// User `username` with `password`, service `hoist-test-registry`, issuer
    /// `hoist-testkit`, no anonymous access, 300 s tokens, OAuth2 POST
    /// served, no locked repositories.
    pub fn new(username: &str, password: &str) -> TokenServerConfig {
        TokenServerConfig {
            username: username.to_string(),
            password: password.to_string(),
            service: crate::registry::TOKEN_SERVICE.to_string(),
            issuer: crate::registry::TOKEN_ISSUER.to_string(),
            allow_anonymous: false,
            expires_in: 300,
            oauth_post: true,
            locked_repositories: Vec::new(),
        }
    }
}

struct Shared {
    config: TokenServerConfig,
    signer: TokenSigner,
    get_requests: AtomicUsize,
    post_requests: AtomicUsize,
    counter: AtomicU64,
    refresh_tokens: Mutex<HashSet<String>>,
    scopes: Recorded<String>,
    log: Recorded<TokenRequest>,
}

/// A running token server on 127.0.0.1. Stops on drop.
pub struct TokenServer {
    shared: Arc<Shared>,
    server: Background,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("realm", &self.realm())
            .finish_non_exhaustive()
    }
}

impl TokenServer {
    /// Generates a signing key and certificate and starts serving on a free
    /// port of 127.0.0.1.
    pub fn start(config: TokenServerConfig) -> TokenServer {
        let shared = Arc::new(Shared {
            config,
            signer: token_signer(),
            get_requests: AtomicUsize::new(0),
            post_requests: AtomicUsize::new(0),
            counter: AtomicU64::new(0),
            refresh_tokens: Mutex::new(HashSet::new()),
            scopes: Recorded::default(),
            log: Recorded::default(),
        });
        let router = Router::new()
            .route("/token", get(get_token).post(post_token))
            .with_state(shared.clone());
        let server = Background::serve("token", router);
        TokenServer { shared, server }
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token` (the registry's
    /// `realm`).
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr())
    }

    /// The `service` this server issues tokens for.
    pub fn service(&self) -> &str {
        &self.shared.config.service
    }

    /// The JWT issuer.
    pub fn issuer(&self) -> &str {
        &self.shared.config.issuer
    }

    /// The PEM of the self-signed certificate of the signing key (the
    /// registry's `rootcertbundle`).
    pub fn signing_cert_pem(&self) -> &str {
        &self.shared.signer.cert_pem
    }

    /// Token requests served so far, GET and POST, whatever their outcome.
    pub fn requests(&self) -> usize {
        self.get_requests() + self.post_requests()
    }

    /// `GET /token` requests so far.
    pub fn get_requests(&self) -> usize {
        self.shared.get_requests.load(Ordering::SeqCst)
    }

    /// `POST /token` requests so far.
    pub fn post_requests(&self) -> usize {
        self.shared.post_requests.load(Ordering::SeqCst)
    }

    /// Every `scope` asked for so far, in order.
    pub fn scopes(&self) -> Vec<String> {
        self.shared.scopes.all()
    }

    /// Every request so far, in order, whatever its outcome.
    pub fn log(&self) -> Vec<TokenRequest> {
        self.shared.log.all()
    }

    /// Mints a token directly (no request counted) for `subject` granting
    /// `scopes` such as `repository:app:pull,push`.
    pub fn issue_token(&self, subject: &str, scopes: &[&str]) -> String {
        let access: Vec<Value> = scopes.iter().filter_map(|s| parse_scope(s)).collect();
        self.shared.sign(subject, access)
    }
}

/// `repository:NAME:pull,push` → an `access` entry. The name may contain `:`
/// only in odd cases; type is before the first colon, actions after the last.
fn parse_scope(scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

impl Shared {
    fn sign(&self, subject: &str, access: Vec<Value>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let jti = self.counter.fetch_add(1, Ordering::SeqCst);
        let header = json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.signer.cert_der)],
        });
        let claims = json!({
            "iss": self.config.issuer,
            "sub": subject,
            "aud": self.config.service,
            "exp": now + self.config.expires_in,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("hoist-testkit-{now}-{jti}"),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json")),
        );
        let signature: p256::ecdsa::Signature = self.signer.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// Access entries for `scopes`, restricted to pull when anonymous.
    fn grant(&self, scopes: &[String], anonymous: bool) -> Vec<Value> {
        self.scopes.extend(scopes.iter().cloned());
        scopes
            .iter()
            .filter_map(|s| parse_scope(s))
            .filter(|access| {
                let name = access["name"].as_str().unwrap_or_default();
                !self.config.locked_repositories.iter().any(|r| r == name)
            })
            .map(|mut access| {
                if anonymous {
                    let pull_only: Vec<Value> = access["actions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|a| *a == "pull")
                        .cloned()
                        .collect();
                    access["actions"] = Value::Array(pull_only);
                }
                access
            })
            .collect()
    }

    fn check_service(&self, service: Option<&str>) -> Result<(), Box<Response>> {
        match service {
            Some(service) if service != self.config.service => Err(Box::new(
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "invalid_request",
                    "error_description": format!("unknown service {service:?}")})),
                )
                    .into_response(),
            )),
            _ => Ok(()),
        }
    }

    fn new_refresh_token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let token = crate::fixture::sha256_digest(
            format!("refresh-{n}-{:p}-{:?}", self, SystemTime::now()).as_bytes(),
        )
        .trim_start_matches("sha256:")
        .to_string();
        self.refresh_tokens
            .lock()
            .expect("refresh lock")
            .insert(token.clone());
        token
    }

    fn token_response(&self, token: String, refresh_token: Option<String>) -> Response {
        let issued_at = humantime_rfc3339(SystemTime::now());
        let mut body = json!({
            "token": token,
            "access_token": token,
            "expires_in": self.config.expires_in,
            "issued_at": issued_at,
        });
        if let Some(refresh_token) = refresh_token {
            body["refresh_token"] = json!(refresh_token);
        }
        axum::Json(body).into_response()
    }
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"hoist-testkit\"")],
        axum::Json(json!({"error": "unauthorized", "error_description": message})),
    )
        .into_response()
}

fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `Authorization: Basic …` → (user, password).
fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(None);
    };
    let value = value.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(Some((user.to_string(), password.to_string())))
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn get_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.get_requests.fetch_add(1, Ordering::SeqCst);
    shared.log.push(TokenRequest {
        method: "GET".to_string(),
        query: query.clone().unwrap_or_default(),
        form: Vec::new(),
        authorization: authorization(&headers),
    });
    let params = pairs(query.as_deref().unwrap_or(""));
    if let Err(response) = shared.check_service(first(&params, "service")) {
        return *response;
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let (subject, anonymous) = match basic_credentials(&headers) {
        None => return unauthorized("malformed Authorization header"),
        Some(None) if shared.config.allow_anonymous => (String::new(), true),
        Some(None) => return unauthorized("credentials required"),
        Some(Some((user, password))) => {
            if user != shared.config.username || password != shared.config.password {
                return unauthorized("wrong credentials");
            }
            (user, false)
        }
    };
    let access = shared.grant(&scopes, anonymous);
    let token = shared.sign(&subject, access);
    let refresh = if anonymous || first(&params, "offline_token") != Some("true") {
        None
    } else {
        Some(shared.new_refresh_token())
    };
    shared.token_response(token, refresh)
}

async fn post_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.post_requests.fetch_add(1, Ordering::SeqCst);
    let params = pairs(&body);
    shared.log.push(TokenRequest {
        method: "POST".to_string(),
        query: String::new(),
        form: params.clone(),
        authorization: authorization(&headers),
    });
    if !shared.config.oauth_post {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(response) = shared.check_service(first(&params, "service")) {
        return *response;
    }
    let scopes: Vec<String> = first(&params, "scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let subject = match first(&params, "grant_type") {
        Some("password") => {
            let user = first(&params, "username").unwrap_or("");
            let password = first(&params, "password").unwrap_or("");
            if user != shared.config.username || password != shared.config.password {
                return unauthorized("wrong credentials");
            }
            user.to_string()
        }
        Some("refresh_token") => {
            let known = first(&params, "refresh_token").is_some_and(|t| {
                shared
                    .refresh_tokens
                    .lock()
                    .expect("refresh lock")
                    .contains(t)
            });
            if !known {
                return unauthorized("unknown refresh token");
            }
            shared.config.username.clone()
        }
        other => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "unsupported_grant_type",
                    "error_description": format!("grant_type {other:?}")})),
            )
                .into_response();
        }
    };
    let access = shared.grant(&scopes, false);
    let token = shared.sign(&subject, access);
    let refresh = shared.new_refresh_token();
    shared.token_response(token, Some(refresh))
}

/// RFC 3339 UTC timestamp with second precision, without a date crate.
fn humantime_rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(
            humantime_rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(1_704_067_200)),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            humantime_rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(951_825_661)),
            "2000-02-29T12:01:01Z"
        );
    }

    #[test]
    fn scopes() {
        assert_eq!(
            parse_scope("repository:library/app:pull,push").unwrap(),
            json!({"type": "repository", "name": "library/app", "actions": ["pull", "push"]})
        );
        assert_eq!(
            parse_scope("registry:catalog:*").unwrap(),
            json!({"type": "registry", "name": "catalog", "actions": ["*"]})
        );
        assert!(parse_scope("nonsense").is_none());
    }
}
