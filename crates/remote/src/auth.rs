//! Answers to `WWW-Authenticate` challenges, like containerd's docker
//! authorizer: Basic with the host's credentials, Bearer with a token from
//! the realm the registry names (OAuth2 POST with credentials, falling back
//! to GET; anonymous GET without), tokens cached per (host, scope).
//!
//! Nothing here logs a token or a secret; the types holding them redact
//! their `Debug` output.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::credentials::{CredentialStore, Credentials};
use crate::error::{Error, Result};
use crate::transport::{Scheme, Transport, authority, is_loopback};

/// The `client_id` sent with OAuth2 token requests.
const CLIENT_ID: &str = "hoist";

/// Token lifetime when the token server does not say (distribution's auth spec).
const DEFAULT_EXPIRES_IN: u64 = 60;

/// The longest a token is cached, whatever the server says.
const MAX_EXPIRES_IN: u64 = 24 * 3600;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lowercased scheme, e.g. `bearer`.
    pub(crate) scheme: String,
    /// Parameters with lowercased names.
    pub(crate) params: HashMap<String, String>,
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | ',')) {
            self.pos += 1;
        }
    }
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.s[start..self.pos].to_owned())
    }
    fn quoted(&mut self) -> std::result::Result<String, String> {
        // Caller saw the opening quote.
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated quoted string".into());
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err("dangling escape in quoted string".into());
                    };
                    self.pos += e.len_utf8();
                    out.push(e);
                }
                c => out.push(c),
            }
        }
    }
}

/// Parse one `WWW-Authenticate` value into its challenges (RFC 7235:
/// several challenges may share one header, separated by commas, and their
/// parameters are comma separated too).
pub(crate) fn parse_challenges(value: &str) -> std::result::Result<Vec<Challenge>, String> {
    let mut cur = Cursor { s: value, pos: 0 };
    let mut out = Vec::new();
    loop {
        cur.skip_ws_and_commas();
        if cur.peek().is_none() {
            return Ok(out);
        }
        let at = cur.pos;
        let scheme = cur
            .token()
            .ok_or_else(|| format!("expected an auth scheme at byte {at}"))?
            .to_ascii_lowercase();
        let mut params = HashMap::new();
        loop {
            let before = cur.pos;
            cur.skip_ws_and_commas();
            let param_start = cur.pos;
            let Some(name) = cur.token().map(|t| t.to_ascii_lowercase()) else {
                // token68 (e.g. `Negotiate abc==`): keep it under an empty name.
                let start = cur.pos;
                while matches!(cur.peek(), Some(c) if is_tchar(c) || c == '/' || c == '=') {
                    cur.pos += 1;
                }
                if cur.pos > start {
                    params.insert(String::new(), cur.s[start..cur.pos].to_owned());
                    continue;
                }
                if cur.peek().is_some_and(|c| c != ',') {
                    return Err(format!("unexpected character at byte {}", cur.pos));
                }
                break;
            };
            cur.skip_ws();
            if cur.peek() != Some('=') {
                // A bare token after the parameters starts the next challenge.
                cur.pos = before;
                break;
            }
            cur.pos += 1;
            // token68 values end in '=' padding: `Negotiate abc=`.
            cur.skip_ws();
            let value = match cur.peek() {
                Some('"') => cur.quoted()?,
                Some('=') | Some(',') | None => {
                    while cur.peek() == Some('=') {
                        cur.pos += 1;
                    }
                    // The token68 starts at the name, not at the separator
                    // before it.
                    let token68 = cur.s[param_start..cur.pos].trim_end();
                    params.insert(String::new(), token68.to_owned());
                    continue;
                }
                _ => {
                    let at = cur.pos;
                    cur.token()
                        .ok_or_else(|| format!("expected a parameter value at byte {at}"))?
                }
            };
            params.insert(name, value);
        }
        out.push(Challenge { scheme, params });
    }
}

/// All challenges from every `WWW-Authenticate` header of a response;
/// unparsable headers are skipped (and logged) rather than fatal.
pub(crate) fn challenges_from(headers: &HeaderMap) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        match parse_challenges(text) {
            Ok(c) => out.extend(c),
            Err(e) => tracing::debug!(error = %e, "ignoring unparsable WWW-Authenticate"),
        }
    }
    out
}

/// A token server's answer.
#[derive(Clone)]
pub(crate) struct TokenResponse {
    pub(crate) token: String,
    pub(crate) expires_in: Duration,
    pub(crate) refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Parse a token JSON body: `token` or `access_token`, `expires_in`
/// (default 60 s), `refresh_token`.
pub(crate) fn parse_token_response(body: &[u8]) -> Result<TokenResponse> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<i64>,
        #[serde(default)]
        refresh_token: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidResponse(format!("token response is not valid JSON: {e}")))?;
    // Some servers send both; `access_token` is the OAuth2 name and wins.
    let token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .or(raw.token.filter(|t| !t.is_empty()))
        .ok_or_else(|| Error::InvalidResponse("token response has no token".into()))?;
    // A token server's number must not overflow our clock arithmetic; no
    // token is trusted for more than a day.
    let expires_in = match raw.expires_in {
        Some(s) if s > 0 => (s as u64).min(MAX_EXPIRES_IN),
        _ => DEFAULT_EXPIRES_IN,
    };
    Ok(TokenResponse {
        token,
        expires_in: Duration::from_secs(expires_in),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()),
    })
}

/// How a host wants to be authenticated, learned from its last challenge.
#[derive(Debug, Clone)]
enum HostAuth {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

struct CachedToken {
    value: String,
    /// When to stop using it: a little before the server's expiry.
    stale_at: Instant,
}

/// A token slot, locked across a token fetch so one fetch serves everyone.
type SharedSlot = Arc<tokio::sync::Mutex<TokenSlot>>;

#[derive(Default)]
struct TokenSlot {
    token: Option<CachedToken>,
    refresh_token: Option<String>,
}

/// The `Authorization` value to send, and whether credentials went into it
/// (to say "rejected" instead of "required" on a final 401).
pub(crate) struct AuthHeader {
    pub(crate) value: String,
    pub(crate) with_credentials: bool,
}

/// What an authorizer needs to know about one request.
pub(crate) struct AuthRequest<'a> {
    pub(crate) transport: &'a Transport,
    pub(crate) credentials: &'a CredentialStore,
    /// Registry domain as written in the reference (for credentials and errors).
    pub(crate) domain: &'a str,
    /// Repository name (for errors).
    pub(crate) repository: &'a str,
    /// The API host the request goes to.
    pub(crate) host: &'a str,
    /// e.g. `repository:library/alpine:pull`.
    pub(crate) scope: &'a str,
}

impl AuthRequest<'_> {
    fn unauthorized(&self, detail: impl Into<String>) -> Error {
        Error::Unauthorized {
            host: self.domain.to_owned(),
            repository: self.repository.to_owned(),
            detail: detail.into(),
        }
    }

    async fn credentials(&self) -> Result<Option<Credentials>> {
        // `--user` applies only to the reference's own registry, never to a
        // host reached some other way (mirrors, later).
        let own = crate::api_host(self.domain) == self.host;
        let key = if own { self.domain } else { self.host };
        self.credentials.get(key, own).await
    }
}

/// Per-host challenge knowledge and the token cache.
#[derive(Default)]
pub(crate) struct Authorizer {
    hosts: Mutex<HashMap<String, HostAuth>>,
    /// Keyed by host, scope and the fingerprint of the credentials that
    /// earned the token, so callers with different credentials sharing one
    /// authorizer never use each other's tokens.
    tokens: Mutex<HashMap<(String, String, String), SharedSlot>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    fn slot(&self, host: &str, scope: &str, creds: Option<&Credentials>) -> SharedSlot {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((host.to_owned(), scope.to_owned(), fingerprint(creds)))
            .or_default()
            .clone()
    }

    fn host_auth(&self, host: &str) -> Option<HostAuth> {
        let map = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        map.get(host).cloned()
    }

    /// The header for a request to `req.host`, fetching a token when the host
    /// is known to use Bearer and the cached one is missing or stale.
    pub(crate) async fn authorization(&self, req: &AuthRequest<'_>) -> Result<Option<AuthHeader>> {
        match self.host_auth(req.host) {
            None => Ok(None),
            Some(HostAuth::Basic) => Ok(req.credentials().await?.and_then(|c| {
                (!c.is_identity_token()).then(|| AuthHeader {
                    value: c.basic_header(),
                    with_credentials: true,
                })
            })),
            Some(HostAuth::Bearer { realm, service }) => {
                let creds = req.credentials().await?;
                let slot = self.slot(req.host, req.scope, creds.as_ref());
                // Held across the fetch so concurrent requests share one token.
                let mut slot = slot.lock().await;
                if let Some(t) = &slot.token
                    && Instant::now() < t.stale_at
                {
                    return Ok(Some(AuthHeader {
                        value: format!("Bearer {}", t.value),
                        with_credentials: creds.is_some(),
                    }));
                }
                let refresh = slot.refresh_token.clone().or_else(|| {
                    creds
                        .as_ref()
                        .filter(|c| c.is_identity_token())
                        .map(|c| c.password.clone())
                });
                let resp = fetch_token(
                    req,
                    &realm,
                    service.as_deref(),
                    creds.as_ref(),
                    refresh.as_deref(),
                )
                .await?;
                let lifetime = resp.expires_in;
                // Renew a little early so a token does not expire in flight.
                let margin = (lifetime / 10).min(Duration::from_secs(10));
                slot.token = Some(CachedToken {
                    value: resp.token.clone(),
                    stale_at: Instant::now() + lifetime - margin,
                });
                if let Some(r) = resp.refresh_token {
                    slot.refresh_token = Some(r);
                }
                Ok(Some(AuthHeader {
                    value: format!("Bearer {}", resp.token),
                    with_credentials: creds.is_some(),
                }))
            }
        }
    }

    /// Learn from a 401: record the challenge and drop the cached token, so
    /// that the next [`authorization`](Self::authorization) fetches a new one.
    pub(crate) async fn handle_challenge(
        &self,
        req: &AuthRequest<'_>,
        challenges: &[Challenge],
    ) -> Result<()> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .params
                .get("realm")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| Error::InvalidChallenge("bearer challenge without realm".into()))?;
            let realm = Url::parse(realm)
                .map_err(|e| Error::InvalidChallenge(format!("invalid realm {realm:?}: {e}")))?;
            if !matches!(realm.scheme(), "http" | "https") {
                return Err(Error::InvalidChallenge(format!(
                    "realm scheme {} is not http(s)",
                    realm.scheme()
                )));
            }
            // Credentials go to the realm; a plain-http realm would carry them
            // in the clear. Allow it only where the registry itself is spoken
            // to over http (--plain-http, the loopback fallback) or the realm
            // is on this machine.
            let registry_is_plain = req.transport.options().plain_http
                || req.transport.schemes_for(req.host).first() == Some(&Scheme::Http);
            if realm.scheme() == "http" && !registry_is_plain && !is_loopback(&authority(&realm)) {
                return Err(Error::InvalidChallenge(format!(
                    "{} asks for credentials over plain http at {}; refusing",
                    req.host,
                    authority(&realm)
                )));
            }
            let service = bearer.params.get("service").cloned();
            {
                let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
                hosts.insert(req.host.to_owned(), HostAuth::Bearer { realm, service });
            }
            let creds = req.credentials().await?;
            let slot = self.slot(req.host, req.scope, creds.as_ref());
            slot.lock().await.token = None;
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            match req.credentials().await? {
                Some(c) if !c.is_identity_token() => {
                    let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
                    hosts.insert(req.host.to_owned(), HostAuth::Basic);
                    return Ok(());
                }
                _ => return Err(req.unauthorized("authentication required")),
            }
        }
        match challenges.first() {
            None => Err(req.unauthorized("authentication required")),
            Some(c) => Err(Error::InvalidChallenge(format!(
                "unsupported auth scheme {:?}",
                c.scheme
            ))),
        }
    }
}

/// Names credentials in the token cache without keeping the secret there.
fn fingerprint(creds: Option<&Credentials>) -> String {
    match creds {
        None => String::new(),
        Some(c) => {
            let mut digester = hoist_oci::Digester::new();
            digester.update(c.username.as_bytes());
            digester.update(&[0]);
            digester.update(c.password.as_bytes());
            digester.finalize().digest().to_owned()
        }
    }
}

/// Get a token for `req.scope` from `realm`.
async fn fetch_token(
    req: &AuthRequest<'_>,
    realm: &Url,
    service: Option<&str>,
    creds: Option<&Credentials>,
    refresh_token: Option<&str>,
) -> Result<TokenResponse> {
    let result = if let Some(refresh) = refresh_token {
        post_token(
            req,
            realm,
            service,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await
    } else if let Some(c) = creds {
        let posted = post_token(
            req,
            realm,
            service,
            &[
                ("grant_type", "password"),
                ("username", &c.username),
                ("password", &c.password),
            ],
        )
        .await;
        match posted {
            // Registries without OAuth2 POST support: GCR 404, Artifactory
            // 401, ACR 400, others 405 (containerd's list).
            Err(Error::Status { status, .. }) if matches!(status, 400 | 401 | 404 | 405) => {
                tracing::debug!(status, "token POST unsupported, falling back to GET");
                get_token(req, realm, service, Some(c)).await
            }
            other => other,
        }
    } else {
        get_token(req, realm, service, None).await
    };
    result.map_err(|e| match e {
        Error::Status {
            status: 401 | 403, ..
        } => {
            if creds.is_some() || refresh_token.is_some() {
                req.unauthorized(format!(
                    "token server {} rejected the credentials",
                    authority(realm)
                ))
            } else {
                req.unauthorized("authentication required")
            }
        }
        other => other,
    })
}

fn query_url(realm: &Url, service: Option<&str>, scope: &str) -> Url {
    let mut url = realm.clone();
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = service {
            q.append_pair("service", s);
        }
        if !scope.is_empty() {
            q.append_pair("scope", scope);
        }
    }
    url
}

async fn get_token(
    req: &AuthRequest<'_>,
    realm: &Url,
    service: Option<&str>,
    creds: Option<&Credentials>,
) -> Result<TokenResponse> {
    let url = query_url(realm, service, req.scope);
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, "application/json".parse().expect("static header"));
    let basic = creds.map(Credentials::basic_header);
    let resp = req
        .transport
        .send(Method::GET, url, &headers, basic.as_deref())
        .await?;
    token_body(req, resp).await
}

async fn post_token(
    req: &AuthRequest<'_>,
    realm: &Url,
    service: Option<&str>,
    grant: &[(&str, &str)],
) -> Result<TokenResponse> {
    let mut form: Vec<(&str, &str)> = grant.to_vec();
    form.push(("client_id", CLIENT_ID));
    if !req.scope.is_empty() {
        form.push(("scope", req.scope));
    }
    if let Some(s) = service {
        form.push(("service", s));
    }
    let host = authority(realm);
    let client = req.transport.client_for(&host)?;
    let request = client.post(realm.clone()).form(&form);
    let resp = req.transport.execute(request, &host).await?;
    token_body(req, resp).await
}

/// Token bodies are small; anything beyond this is not a token response.
const MAX_TOKEN_BODY: u64 = 1 << 20;

async fn token_body(req: &AuthRequest<'_>, resp: reqwest::Response) -> Result<TokenResponse> {
    let status = resp.status();
    let host = authority(resp.url());
    let read_timeout = req.transport.options().read_timeout;
    let body = crate::resolver::read_bounded(resp, MAX_TOKEN_BODY, None, &host, read_timeout)
        .await
        .map_err(|e| match e {
            Error::ManifestTooLarge { .. } => {
                Error::InvalidResponse(format!("{host}: token response too large"))
            }
            other => other,
        })?;
    if status == StatusCode::OK {
        return parse_token_response(&body);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::TooManyRequests {
            host,
            retry_after: None,
        });
    }
    Err(Error::Status {
        status: status.as_u16(),
        errors: crate::error::parse_registry_errors(&body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Challenge {
        let mut c = parse_challenges(value).unwrap();
        assert_eq!(c.len(), 1, "{c:?}");
        c.remove(0)
    }

    #[test]
    fn bearer_challenge() {
        let c = one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/alpine:pull");
    }

    #[test]
    fn tricky_quoting() {
        let c = one(
            r#"Bearer  realm = "https://a/t?x=1,y=2" , service="a \"quoted\" \\ svc",error=insufficient_scope"#,
        );
        assert_eq!(c.params["realm"], "https://a/t?x=1,y=2");
        assert_eq!(c.params["service"], r#"a "quoted" \ svc"#);
        assert_eq!(c.params["error"], "insufficient_scope");
        let c = one(r#"BASIC Realm="Registry Realm""#);
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = one(r#"Bearer scope="repository:a/b:pull,push""#);
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        assert!(parse_challenges(r#"Bearer realm="open"#).is_err());
    }

    #[test]
    fn multiple_challenges() {
        let cs = parse_challenges(
            r#"Basic realm="r1", Bearer realm="https://t/token",service="s", Negotiate abc=="#,
        )
        .unwrap();
        let schemes: Vec<_> = cs.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate"]);
        assert_eq!(cs[0].params["realm"], "r1");
        assert_eq!(cs[1].params["service"], "s");
        let cs = parse_challenges("Basic, Bearer realm=x").unwrap();
        assert_eq!(cs.len(), 2);
        assert!(cs[0].params.is_empty());
        assert_eq!(cs[1].params["realm"], "x");
        assert!(parse_challenges("").unwrap().is_empty());
    }

    /// Found by the `www_authenticate` fuzz target (`fuzz/`): a token68
    /// after a separator kept the separator (`,.=` rather than `.=`).
    #[test]
    fn token68_after_a_separator_excludes_it() {
        assert_eq!(one("`,.=").params[""], ".=");
        let c = one(r#"Negotiate realm="r", abc= "#);
        assert_eq!(c.params["realm"], "r");
        assert_eq!(c.params[""], "abc=");
        assert_eq!(one("Negotiate abc=").params[""], "abc=");
        assert_eq!(one("Negotiate ,, abc = ==").params[""], "abc = ==");
    }

    #[test]
    fn headers_with_several_values() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, r#"Basic realm="a""#.parse().unwrap());
        h.append(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://b""#.parse().unwrap(),
        );
        h.append(WWW_AUTHENTICATE, r#"Bearer realm="broken"#.parse().unwrap());
        let cs = challenges_from(&h);
        assert_eq!(cs.len(), 2);
    }

    #[test]
    fn token_responses() {
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.token, "abc");
        assert_eq!(t.expires_in, Duration::from_secs(300));
        assert!(t.refresh_token.is_none());
        let t = parse_token_response(
            br#"{"access_token":"oauth","token":"","refresh_token":"r","issued_at":"2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(t.token, "oauth");
        assert_eq!(t.expires_in, Duration::from_secs(60));
        assert_eq!(t.refresh_token.as_deref(), Some("r"));
        let t = parse_token_response(br#"{"token":"x","expires_in":0}"#).unwrap();
        assert_eq!(t.expires_in, Duration::from_secs(60));
        // A hostile lifetime is capped rather than overflowing the clock.
        let t = parse_token_response(br#"{"token":"x","expires_in":9223372036854775807}"#).unwrap();
        assert_eq!(t.expires_in, Duration::from_secs(MAX_EXPIRES_IN));
        assert!(parse_token_response(br#"{"expires_in":10}"#).is_err());
        assert!(parse_token_response(b"nope").is_err());
    }

    #[test]
    fn token_debug_redacts() {
        let t =
            parse_token_response(br#"{"token":"s3cr3t-token","refresh_token":"r3fr3sh"}"#).unwrap();
        let s = format!("{t:?}");
        assert!(!s.contains("s3cr3t") && !s.contains("r3fr3sh"), "{s}");
    }

    #[test]
    fn token_query() {
        let realm = Url::parse("https://auth.io/token?a=b").unwrap();
        let u = query_url(&realm, Some("reg io"), "repository:x/y:pull");
        assert_eq!(
            u.as_str(),
            "https://auth.io/token?a=b&service=reg+io&scope=repository%3Ax%2Fy%3Apull"
        );
    }
}
