//! The [`Resolver`]: turns a tag or digest into a descriptor (HEAD, then GET
//! when HEAD is not enough, with the digest checked), lists tags, and holds
//! the request path every operation shares: scheme choice, authorization,
//! redirects and the mapping of statuses to errors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, MediaType};
use reqwest::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LINK, RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::auth::{AuthRequest, Authorizer, challenges_from};
use crate::credentials::{CredentialProvider, CredentialStore, Credentials, DockerConfig};
use crate::error::{Error, RegistryError, Result, parse_registry_errors};
use crate::hosts::RegistryHost;
use crate::options::{RegistryOptions, RetryPolicy};
use crate::transport::{Scheme, Transport, authority, parse_retry_after, with_retry};
use crate::{MANIFEST_ACCEPT, Repository};

/// The header registries put a manifest's digest in.
pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");

/// Error bodies are read only this far.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Pages of a tag list followed at most, against a looping `Link`.
const MAX_TAG_PAGES: usize = 10_000;

/// Resolves references and fetches content from registries.
///
/// Cheap to clone: clones share the HTTP clients, the per-host scheme
/// memory, the credential cache and the token cache.
#[derive(Clone, Debug)]
pub struct Resolver {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) transport: Arc<Transport>,
    pub(crate) auth: Arc<Authorizer>,
    pub(crate) credentials: CredentialStore,
}

/// One API request, before scheme and authorization are chosen.
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: Method,
    /// Path and query, starting with `/v2/`.
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    /// For error messages, e.g. `127.0.0.1:5000/app:1.0`.
    pub(crate) reference: &'a str,
}

impl<'a> ApiRequest<'a> {
    pub(crate) fn new(
        method: Method,
        path: impl Into<String>,
        headers: HeaderMap,
        reference: &'a str,
    ) -> ApiRequest<'a> {
        ApiRequest {
            method,
            path: path.into(),
            headers,
            reference,
        }
    }
}

/// Hash `data` with `algorithm`, as `<algorithm>:<hex>`.
pub(crate) fn digest_bytes(algorithm: &DigestAlgorithm, data: &[u8]) -> Result<String> {
    hoist_oci::digest::digest_with(algorithm, data)
        .map(|digest| digest.to_string())
        .map_err(|_| Error::InvalidArgument(format!("unsupported digest algorithm {algorithm}")))
}

/// The digest a manifest body is known by. For a signed schema 1 manifest
/// that is the digest of its payload without the JWS signatures, as the
/// registry computes it; for everything else, of the bytes themselves.
pub(crate) fn manifest_digest(
    media_type: Option<&str>,
    algorithm: &DigestAlgorithm,
    body: &[u8],
) -> Result<String> {
    let essence = media_type.map(|m| m.split(';').next().unwrap_or(m).trim());
    if essence == Some(hoist_oci::media_type::DOCKER_SCHEMA1_SIGNED_MANIFEST) {
        let payload = hoist_oci::schema1::signed_payload(body)
            .map_err(|e| Error::InvalidResponse(e.to_string()))?;
        return digest_bytes(algorithm, &payload);
    }
    digest_bytes(algorithm, body)
}

/// Whether an API path asks to resolve (a manifest by tag, a tag list)
/// rather than to pull content by digest: hosts.toml capabilities tell the
/// two apart.
fn is_resolve_request(path: &str) -> bool {
    if path.contains("/tags/list") {
        return true;
    }
    match path.rsplit_once("/manifests/") {
        Some((_, object)) => !object.contains(':'),
        None => false,
    }
}

/// Whether `s` is a valid tag (`[\w][\w.-]{0,127}`); checked so that a tag
/// can never change the request path.
pub(crate) fn is_valid_tag(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= 128
        && (first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The object of a manifest request: a tag or a parsed digest.
pub(crate) enum Object {
    Tag,
    Digest(Digest),
}

pub(crate) fn parse_object(object: &str) -> Result<Object> {
    if object.contains(':') {
        let d = hoist_oci::digest::parse_digest(object)
            .map_err(|e| Error::InvalidArgument(format!("invalid digest {object:?}: {e}")))?;
        return Ok(Object::Digest(d));
    }
    if is_valid_tag(object) {
        Ok(Object::Tag)
    } else {
        Err(Error::InvalidArgument(format!("invalid tag {object:?}")))
    }
}

/// The media type from a `Content-Type` header, without parameters; `None`
/// for the generic types servers send when they do not know.
pub(crate) fn media_type_from_header(value: Option<&str>) -> Option<String> {
    let mt = value?.split(';').next()?.trim().to_ascii_lowercase();
    match mt.as_str() {
        "" | "text/plain" | "application/octet-stream" => None,
        _ => Some(mt),
    }
}

/// Guess a manifest's media type from its body when the server gave none:
/// the `mediaType` field, else the shape (OCI allows omitting the field).
pub(crate) fn sniff_media_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion", default)]
        schema_version: Option<u32>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
        #[serde(default)]
        signatures: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(body).ok()?;
    if let Some(mt) = p.media_type.filter(|m| !m.is_empty()) {
        return Some(mt);
    }
    if p.schema_version == Some(1) {
        return Some(if p.signatures.is_some() {
            "application/vnd.docker.distribution.manifest.v1+prettyjws".into()
        } else {
            "application/vnd.docker.distribution.manifest.v1+json".into()
        });
    }
    if p.manifests.is_some() {
        return Some("application/vnd.oci.image.index.v1+json".into());
    }
    if p.config.is_some() {
        return Some("application/vnd.oci.image.manifest.v1+json".into());
    }
    None
}

/// Parse a `Link: <…>; rel="next"` header's target.
pub(crate) fn next_link(value: &str) -> Option<String> {
    for part in value.split(',') {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some((target, params)) = rest.split_once('>') else {
            continue;
        };
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Some(target.trim().to_owned());
        }
    }
    None
}

impl Resolver {
    /// The body of a small answer (a manifest, a tag list): at most `limit`
    /// bytes, exactly `expected` when known, each read under the read
    /// timeout.
    pub(crate) async fn read_small(
        &self,
        resp: reqwest::Response,
        limit: u64,
        expected: Option<u64>,
    ) -> Result<Bytes> {
        let host = authority(resp.url());
        read_bounded(resp, limit, expected, &host, self.options().read_timeout).await
    }
}

/// Read a response body whole, stopping as soon as it exceeds `limit`
/// (counting bytes as they arrive, not trusting `Content-Length`) or
/// exceeds `expected` bytes.
pub(crate) async fn read_bounded(
    mut resp: reqwest::Response,
    limit: u64,
    expected: Option<u64>,
    host: &str,
    read_timeout: Duration,
) -> Result<Bytes> {
    if let Some(len) = resp.content_length() {
        if len > limit {
            return Err(Error::ManifestTooLarge { limit });
        }
        if let Some(exp) = expected
            && len != exp
        {
            return Err(Error::SizeMismatch {
                expected: exp,
                actual: len,
            });
        }
    }
    let mut buf = BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout(read_timeout, resp.chunk()).await {
            Err(_) => {
                return Err(Error::Timeout {
                    host: host.to_owned(),
                });
            }
            Ok(Err(e)) => return Err(crate::error::classify_reqwest(&e, host)),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(c))) => c,
        };
        let total = (buf.len() + chunk.len()) as u64;
        if total > limit {
            return Err(Error::ManifestTooLarge { limit });
        }
        if let Some(exp) = expected
            && total > exp
        {
            return Err(Error::SizeMismatch {
                expected: exp,
                actual: total,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Map a registry error list and status onto a typed error.
pub(crate) fn status_error(
    status: StatusCode,
    errors: Vec<RegistryError>,
    retry_after: Option<Duration>,
    reference: &str,
    host: &str,
    repo: &Repository,
) -> Error {
    let has = |code: &str| errors.iter().any(|e| e.code.eq_ignore_ascii_case(code));
    if status == StatusCode::NOT_FOUND
        || has("MANIFEST_UNKNOWN")
        || has("BLOB_UNKNOWN")
        || has("NAME_UNKNOWN")
    {
        return Error::NotFound {
            reference: reference.to_owned(),
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS || has("TOOMANYREQUESTS") {
        return Error::TooManyRequests {
            host: host.to_owned(),
            retry_after,
        };
    }
    if status == StatusCode::FORBIDDEN || has("DENIED") {
        return Error::Denied {
            reference: reference.to_owned(),
        };
    }
    if status == StatusCode::UNAUTHORIZED {
        return Error::Unauthorized {
            host: repo.domain.clone(),
            repository: repo.name.clone(),
            detail: errors
                .first()
                .map(|e| e.message.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "authentication required".into()),
        };
    }
    Error::Status {
        status: status.as_u16(),
        errors,
    }
}

impl Resolver {
    /// Build a resolver: reads the CA files and docker's `config.json` now,
    /// so configuration errors surface before any network traffic.
    pub fn new(options: RegistryOptions) -> Result<Resolver> {
        let config = DockerConfig::load(options.docker_config.as_deref())?;
        let credentials = CredentialStore::new(options.credentials.clone(), config);
        let transport = Transport::new(options)?;
        Ok(Resolver {
            inner: Arc::new(Inner {
                transport: Arc::new(transport),
                auth: Arc::new(Authorizer::default()),
                credentials,
            }),
        })
    }

    /// A resolver that asks `provider` for credentials first (a daemon's
    /// per-request auth) and shares everything else with this one: the
    /// connection pools, what each host's challenges said, the token cache
    /// (tokens are kept per credentials, so one caller never uses a token
    /// another caller's credentials earned) and `config.json`.
    pub fn with_credentials(&self, provider: Option<Arc<dyn CredentialProvider>>) -> Resolver {
        Resolver {
            inner: Arc::new(Inner {
                transport: self.inner.transport.clone(),
                auth: self.inner.auth.clone(),
                credentials: self.inner.credentials.with_provider(provider),
            }),
        }
    }

    pub(crate) fn options(&self) -> &RegistryOptions {
        self.inner.transport.options()
    }

    /// The retry budget each request gets.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.options().retry
    }

    /// Turn a non-success response into an error, reading a bounded
    /// piece of its body for the registry's error list.
    pub(crate) async fn error_from(
        &self,
        resp: reqwest::Response,
        repo: &Repository,
        reference: &str,
    ) -> Error {
        let status = resp.status();
        let host = authority(resp.url());
        let retry_after = header_str(resp.headers(), &RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let errors = match read_bounded(
            resp,
            MAX_ERROR_BODY,
            None,
            &host,
            self.options().read_timeout,
        )
        .await
        {
            Ok(body) => parse_registry_errors(&body),
            Err(_) => Vec::new(),
        };
        status_error(status, errors, retry_after, reference, &host, repo)
    }

    /// One attempt at an API request: scheme choice (with the loopback http
    /// fallback), authorization, redirects. Returns any status but 401.
    pub(crate) async fn send(
        &self,
        repo: &Repository,
        req: &ApiRequest<'_>,
    ) -> Result<reqwest::Response> {
        let hosts = self
            .inner
            .transport
            .hosts_for(&repo.domain, &repo.api_host())?;
        let resolving = is_resolve_request(&req.path);
        let candidates: Vec<&RegistryHost> = hosts
            .iter()
            .filter(|h| {
                if resolving {
                    h.capabilities.resolve
                } else {
                    h.capabilities.pull
                }
            })
            .collect();
        if candidates.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no host configured for {} may {}",
                repo.domain,
                if resolving { "resolve" } else { "pull" }
            )));
        }
        // Mirrors first, the server last: a host that cannot be reached or
        // answers 404 or 5xx hands over to the next (as containerd does);
        // the last host's answer stands.
        let transport = &self.inner.transport;
        for (i, host) in candidates.iter().enumerate() {
            let last = i + 1 == candidates.len();
            if !last && transport.recently_unreachable(&host.authority) {
                // It failed to connect a moment ago: do not pay its dial
                // timeout again on every request of this pull.
                continue;
            }
            match self.send_to(repo, host, req).await {
                Ok(resp)
                    if !last
                        && (resp.status() == StatusCode::NOT_FOUND
                            || resp.status().is_server_error()) =>
                {
                    tracing::info!(host = %host.authority, status = %resp.status(), reference = req.reference, "trying the next host");
                }
                Ok(resp) => return Ok(resp),
                Err(error) if !last && error.skips_host() => {
                    tracing::info!(host = %host.authority, %error, reference = req.reference, "trying the next host");
                    if matches!(error, Error::Connect { .. } | Error::Timeout { .. }) {
                        transport.mark_unreachable(&host.authority);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        unreachable!("the last candidate always returns")
    }

    /// Checks `credentials` against the registry `domain` as `docker login`
    /// does: `GET /v2/` on its server (never a mirror), answering the
    /// challenge with them (Basic, or a token from the realm). `Ok` when
    /// the registry accepts them (or asks for none).
    pub async fn login(&self, domain: &str, credentials: Credentials) -> Result<()> {
        let repo = Repository::new(domain, "");
        let provider: Arc<dyn CredentialProvider> = Arc::new(
            crate::credentials::StaticCredentials::new(domain, credentials),
        );
        let resolver = self.with_credentials(Some(provider));
        let hosts = self.inner.transport.hosts_for(domain, &repo.api_host())?;
        let server = hosts.last().expect("the server is always listed");
        let req = ApiRequest::new(Method::GET, "/v2/", HeaderMap::new(), domain);
        let resp = resolver.send_to(&repo, server, &req).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(resolver.error_from(resp, &repo, domain).await)
    }

    /// One host: its scheme (with the loopback http fallback when the
    /// configuration names none), its path, its headers, authorization.
    async fn send_to(
        &self,
        repo: &Repository,
        host: &RegistryHost,
        req: &ApiRequest<'_>,
    ) -> Result<reqwest::Response> {
        let authority = &host.authority;
        let transport = &self.inner.transport;
        let schemes = match host.scheme.as_deref() {
            Some("http") => vec![Scheme::Http],
            Some(_) => vec![Scheme::Https],
            None => transport.schemes_for(authority),
        };
        let path = host.request_path(&req.path, &repo.domain);
        let mut headers = req.headers.clone();
        for (name, value) in &host.header {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::InvalidArgument(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidArgument(format!("invalid value for header {name}")))?;
            headers.append(name, value);
        }
        let client = transport.client_for_host(host)?;
        let mut last = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let url =
                Url::parse(&format!("{}://{authority}{path}", scheme.as_str())).map_err(|e| {
                    Error::InvalidArgument(format!("bad request URL for {authority}: {e}"))
                })?;
            let sent = self
                .send_authorized(repo, authority, req, url, &headers, client.clone())
                .await;
            match sent {
                Ok(resp) => {
                    transport.remember_scheme(authority, *scheme);
                    return Ok(resp);
                }
                Err(e)
                    if i + 1 < schemes.len()
                        && e.is_transport_setup()
                        && matches!(&e, Error::Connect { host: h, .. } | Error::Tls { host: h, .. } if h == authority) =>
                {
                    tracing::debug!(host = %authority, error = %e, "https failed on a loopback host, trying http");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidArgument(format!("no scheme for {authority}"))))
    }

    async fn send_authorized(
        &self,
        repo: &Repository,
        host: &str,
        req: &ApiRequest<'_>,
        url: Url,
        headers: &HeaderMap,
        client: Option<reqwest::Client>,
    ) -> Result<reqwest::Response> {
        let scope = repo.pull_scope();
        let auth_req = AuthRequest {
            transport: &self.inner.transport,
            credentials: &self.inner.credentials,
            domain: &repo.domain,
            repository: &repo.name,
            host,
            scope: &scope,
        };
        let mut answered_challenge = false;
        loop {
            let header = self.inner.auth.authorization(&auth_req).await?;
            let resp = self
                .inner
                .transport
                .send_with(
                    client.clone(),
                    req.method.clone(),
                    url.clone(),
                    headers,
                    header.as_ref().map(|h| h.value.as_str()),
                )
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenges = challenges_from(resp.headers());
            if answered_challenge {
                // One fresh answer was refused: give up rather than loop.
                let with_credentials = header.as_ref().is_some_and(|h| h.with_credentials);
                let err = self.error_from(resp, repo, req.reference).await;
                return Err(match err {
                    Error::Unauthorized { .. } if with_credentials => Error::Unauthorized {
                        host: repo.domain.clone(),
                        repository: repo.name.clone(),
                        detail: "credentials rejected".into(),
                    },
                    Error::Unauthorized { .. } => Error::Unauthorized {
                        host: repo.domain.clone(),
                        repository: repo.name.clone(),
                        detail: "authentication required".into(),
                    },
                    other => other,
                });
            }
            tracing::debug!(%host, challenges = challenges.len(), "registry asked for authentication");
            self.inner
                .auth
                .handle_challenge(&auth_req, &challenges)
                .await?;
            answered_challenge = true;
        }
    }

    /// Resolve a tag or digest in `repo` to the descriptor of its manifest or
    /// index.
    ///
    /// Sends `HEAD /v2/<name>/manifests/<object>` with [`MANIFEST_ACCEPT`];
    /// when the answer lacks `Docker-Content-Digest`, `Content-Length` or a
    /// useful `Content-Type` (or HEAD is not supported) it GETs the manifest
    /// and hashes the body. When `object` is a digest, the result's digest is
    /// that digest, and any registry claim to the contrary is a
    /// [`Error::DigestMismatch`].
    pub async fn resolve(&self, repo: &Repository, object: &str) -> Result<Descriptor> {
        let parsed = parse_object(object)?;
        let reference = repo.reference(object);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, MANIFEST_ACCEPT.parse().expect("static header"));
        let path = format!("/v2/{}/manifests/{object}", repo.name);
        let policy = self.options().retry.clone();
        with_retry(&policy, &reference, || async {
            let head = ApiRequest::new(Method::HEAD, path.clone(), headers.clone(), &reference);
            let resp = self.send(repo, &head).await?;
            let status = resp.status();
            if status.is_success() {
                if let Some(desc) = descriptor_from_head(resp.headers(), &parsed)? {
                    return Ok(desc);
                }
            } else if !matches!(
                status,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
            ) {
                return Err(self.error_from(resp, repo, &reference).await);
            }
            tracing::debug!(%reference, %status, "HEAD gave no usable digest, fetching the manifest");
            let get = ApiRequest {
                method: Method::GET,
                ..head
            };
            let resp = self.send(repo, &get).await?;
            if !resp.status().is_success() {
                return Err(self.error_from(resp, repo, &reference).await);
            }
            let header_digest = header_str(resp.headers(), &DOCKER_CONTENT_DIGEST)
                .map(|d| d.trim().to_owned());
            let header_type = media_type_from_header(header_str(resp.headers(), &CONTENT_TYPE));
            let body = self
                .read_small(resp, self.options().max_manifest_size, None)
                .await?;
            descriptor_from_body(&body, &parsed, header_digest.as_deref(), header_type)
        })
        .await
    }

    /// List the tags of `repo` (`GET /v2/<name>/tags/list`), following `Link`
    /// pagination on the same host.
    pub async fn tags(&self, repo: &Repository) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let reference = format!("{}/{}", repo.domain, repo.name);
        let mut path = format!("/v2/{}/tags/list", repo.name);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, "application/json".parse().expect("static header"));
        let mut out = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let policy = self.options().retry.clone();
            let (page, link) = with_retry(&policy, &reference, || async {
                let req = ApiRequest::new(Method::GET, path.clone(), headers.clone(), &reference);
                let resp = self.send(repo, &req).await?;
                if !resp.status().is_success() {
                    return Err(self.error_from(resp, repo, &reference).await);
                }
                let link = header_str(resp.headers(), &LINK).and_then(next_link);
                let url = resp.url().clone();
                let host = authority(&url);
                let body = self
                    .read_small(resp, self.options().max_manifest_size, None)
                    .await?;
                let list: TagList = serde_json::from_slice(&body).map_err(|e| {
                    Error::InvalidResponse(format!("{host}: invalid tag list: {e}"))
                })?;
                let next = match link {
                    None => None,
                    Some(l) => {
                        let target = url.join(&l).map_err(|e| {
                            Error::InvalidResponse(format!("{host}: invalid Link header: {e}"))
                        })?;
                        // Credentials go only to the registry itself.
                        if authority(&target) != repo.api_host() {
                            return Err(Error::InvalidResponse(format!(
                                "{host}: tag list pagination points to another host"
                            )));
                        }
                        Some(match target.query() {
                            Some(q) => format!("{}?{q}", target.path()),
                            None => target.path().to_owned(),
                        })
                    }
                };
                Ok((list.tags.unwrap_or_default(), next))
            })
            .await?;
            out.extend(page);
            match link {
                Some(next) => path = next,
                None => return Ok(out),
            }
        }
        Err(Error::InvalidResponse(format!(
            "{reference}: more than {MAX_TAG_PAGES} pages of tags"
        )))
    }
}

/// A descriptor from HEAD headers, or `None` when they are not enough.
fn descriptor_from_head(headers: &HeaderMap, object: &Object) -> Result<Option<Descriptor>> {
    let Some(claimed) = header_str(headers, &DOCKER_CONTENT_DIGEST).map(str::trim) else {
        return Ok(None);
    };
    let Some(media_type) = media_type_from_header(header_str(headers, &CONTENT_TYPE)) else {
        return Ok(None);
    };
    let Some(size) =
        header_str(headers, &CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return Ok(None);
    };
    let digest = match object {
        Object::Digest(want) => {
            if claimed != want.as_ref() {
                return Err(Error::DigestMismatch {
                    expected: want.to_string(),
                    actual: claimed.to_owned(),
                });
            }
            want.clone()
        }
        // The project's own parser, which knows what a digest of each
        // algorithm must look like (oci-spec's accepts more).
        Object::Tag => hoist_oci::digest::parse_digest(claimed).map_err(|e| {
            Error::InvalidResponse(format!("invalid Docker-Content-Digest {claimed:?}: {e}"))
        })?,
    };
    Ok(Some(Descriptor::new(
        MediaType::from(media_type.as_str()),
        size,
        digest,
    )))
}

/// A descriptor from a fetched manifest body, checking every digest claim.
fn descriptor_from_body(
    body: &[u8],
    object: &Object,
    header_digest: Option<&str>,
    header_type: Option<String>,
) -> Result<Descriptor> {
    let claimed = match header_digest {
        Some(h) => Some(hoist_oci::digest::parse_digest(h).map_err(|e| {
            Error::InvalidResponse(format!("invalid Docker-Content-Digest {h:?}: {e}"))
        })?),
        None => None,
    };
    let expected = match object {
        Object::Digest(d) => Some(d.clone()),
        Object::Tag => claimed.clone(),
    };
    let algorithm = expected
        .as_ref()
        .map(|d| d.algorithm().clone())
        .unwrap_or(DigestAlgorithm::Sha256);
    let actual = manifest_digest(header_type.as_deref(), &algorithm, body)?;
    if let Some(exp) = &expected {
        if exp.as_ref() != actual {
            return Err(Error::DigestMismatch {
                expected: exp.to_string(),
                actual,
            });
        }
        if let (Object::Digest(want), Some(c)) = (object, &claimed)
            && c != want
        {
            return Err(Error::DigestMismatch {
                expected: want.to_string(),
                actual: c.to_string(),
            });
        }
    }
    let digest = Digest::try_from(actual.as_str())
        .map_err(|e| Error::InvalidResponse(format!("computed digest invalid: {e}")))?;
    let media_type = header_type
        .or_else(|| sniff_media_type(body))
        .ok_or_else(|| Error::InvalidResponse("manifest has no media type".into()))?;
    Ok(Descriptor::new(
        MediaType::from(media_type.as_str()),
        body.len() as u64,
        digest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn tag_and_digest_objects() {
        assert!(matches!(parse_object("latest"), Ok(Object::Tag)));
        assert!(matches!(parse_object("1.0_rc-2"), Ok(Object::Tag)));
        assert!(matches!(parse_object(EMPTY_SHA), Ok(Object::Digest(_))));
        for bad in [
            "",
            "-x",
            "a/b",
            "../x",
            "a?b",
            "sha256:zz",
            &"a".repeat(129),
        ] {
            assert!(parse_object(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests() {
        assert_eq!(
            digest_bytes(&DigestAlgorithm::Sha256, b"").unwrap(),
            EMPTY_SHA
        );
        assert!(
            digest_bytes(&DigestAlgorithm::Sha512, b"x")
                .unwrap()
                .starts_with("sha512:")
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(
            media_type_from_header(Some(
                "application/vnd.oci.image.index.v1+json; charset=utf-8"
            ))
            .as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
        assert_eq!(
            media_type_from_header(Some("text/plain; charset=utf-8")),
            None
        );
        assert_eq!(media_type_from_header(None), None);
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#).as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        assert_eq!(sniff_media_type(b"[]"), None);
    }

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link("garbage"), None);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_malformed_docker_content_digest_is_refused() {
        for claimed in [
            "sha256:abc",
            "sha256:ZZ",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
        ] {
            let lying = headers(&[
                ("docker-content-digest", claimed),
                ("content-type", "application/vnd.oci.image.manifest.v1+json"),
                ("content-length", "0"),
            ]);
            let err = descriptor_from_head(&lying, &parse_object("latest").unwrap()).unwrap_err();
            assert!(matches!(err, Error::InvalidResponse(_)), "{claimed}: {err}");
            let err =
                descriptor_from_body(b"{}", &parse_object("latest").unwrap(), Some(claimed), None)
                    .unwrap_err();
            assert!(matches!(err, Error::InvalidResponse(_)), "{claimed}: {err}");
        }
    }

    #[test]
    fn head_descriptor_checks() {
        let ok = headers(&[
            ("docker-content-digest", EMPTY_SHA),
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
            ("content-length", "0"),
        ]);
        let d = descriptor_from_head(&ok, &parse_object("latest").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(d.digest().as_ref(), EMPTY_SHA);
        assert_eq!(d.media_type(), &MediaType::ImageManifest);
        let other = "sha256:".to_owned() + &"a".repeat(64);
        let err = descriptor_from_head(&ok, &parse_object(&other).unwrap()).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        let no_digest = headers(&[
            ("content-type", "application/json"),
            ("content-length", "2"),
        ]);
        assert!(
            descriptor_from_head(&no_digest, &parse_object("x").unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn body_descriptor_checks() {
        let body = br#"{"schemaVersion":2,"manifests":[]}"#;
        let real = digest_bytes(&DigestAlgorithm::Sha256, body).unwrap();
        let d = descriptor_from_body(body, &parse_object("t").unwrap(), None, None).unwrap();
        assert_eq!(d.digest().as_ref(), real);
        assert_eq!(d.size(), body.len() as u64);
        // Asked by digest, body differs.
        let err =
            descriptor_from_body(body, &parse_object(EMPTY_SHA).unwrap(), None, None).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        // Tag, header claims another digest than the body has.
        let err = descriptor_from_body(body, &parse_object("t").unwrap(), Some(EMPTY_SHA), None)
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        // Digest asked, body matches, header disagrees.
        let err = descriptor_from_body(b"", &parse_object(EMPTY_SHA).unwrap(), Some(&real), None)
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
    }

    #[test]
    fn status_mapping() {
        let repo = Repository::new("127.0.0.1:5000", "app");
        let map = |s: u16, codes: &[&str]| {
            status_error(
                StatusCode::from_u16(s).unwrap(),
                codes
                    .iter()
                    .map(|c| RegistryError {
                        code: (*c).into(),
                        message: "m".into(),
                    })
                    .collect(),
                None,
                "ref",
                "h",
                &repo,
            )
        };
        assert!(matches!(map(404, &[]), Error::NotFound { .. }));
        assert!(matches!(
            map(400, &["MANIFEST_UNKNOWN"]),
            Error::NotFound { .. }
        ));
        assert!(matches!(map(403, &[]), Error::Denied { .. }));
        assert!(matches!(map(429, &[]), Error::TooManyRequests { .. }));
        assert!(matches!(map(401, &[]), Error::Unauthorized { .. }));
        assert!(matches!(
            map(500, &["UNKNOWN"]),
            Error::Status { status: 500, .. }
        ));
    }
}
