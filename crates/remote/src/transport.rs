//! HTTP plumbing: rustls clients (system roots, `--tlscacert`, per-host CAs
//! from a containerd `certs.d` directory), scheme choice with the loopback
//! http fallback, redirects followed by hand, and retries with backoff.
//!
//! Redirects are followed here rather than by reqwest so that the
//! `Authorization` header is dropped whenever a redirect leaves the origin
//! the credentials belong to (blob downloads redirect to object storage).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::error::{Error, Result, classify_reqwest};
use crate::hosts::RegistryHost;
use crate::options::{RegistryOptions, RetryPolicy};

/// How many redirects one request may follow.
const MAX_REDIRECTS: usize = 10;

/// A URL scheme for registry API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// The host part of `host[:port]`, without IPv6 brackets.
fn bare_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`: docker lets these speak plain http.
pub(crate) fn is_loopback(authority: &str) -> bool {
    let host = bare_host(authority);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Schemes to try, in order, for a host never contacted before.
pub(crate) fn candidate_schemes(authority: &str, plain_http: bool) -> Vec<Scheme> {
    if plain_http {
        vec![Scheme::Http]
    } else if is_loopback(authority) {
        vec![Scheme::Https, Scheme::Http]
    } else {
        vec![Scheme::Https]
    }
}

/// Whether a request that started at `original` may carry its
/// `Authorization` header to `target`: only within the same origin
/// (scheme, host and port).
pub(crate) fn keep_authorization(original: &Url, target: &Url) -> bool {
    original.origin() == target.origin()
}

/// `host[:port]` of a URL, with brackets for IPv6, as used for client and
/// scheme lookups.
pub(crate) fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// Parse `Retry-After`: delay-seconds or an HTTP date (relative to `now`).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A random number from the std library's per-process random hasher keys;
/// jitter needs no better randomness than that.
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    h.finish()
}

/// Delay before attempt `attempt + 1` (attempts count from 1): exponential,
/// capped, with "equal jitter" so that clients retrying together spread out.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32, random: u64) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(policy.max_delay);
    let half = capped / 2;
    let span = half.as_millis() as u64;
    let jitter = if span == 0 { 0 } else { random % (span + 1) };
    half + Duration::from_millis(jitter)
}

/// Run `op` until it succeeds, fails for good, or attempts run out.
pub(crate) async fn with_retry<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    let mut first_failure = None;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e)
                if e.is_retryable()
                    && policy.allows(attempt, *first_failure.get_or_insert_with(Instant::now)) =>
            {
                let delay = policy.delay(attempt, e.retry_after());
                tracing::debug!(%what, attempt, error = %e, ?delay, "retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Clients and per-host state shared by every clone of a resolver.
pub(crate) struct Transport {
    options: RegistryOptions,
    /// PEM certificates from `ca_files`, parsed once.
    global_roots: Vec<reqwest::Certificate>,
    /// The client for https with the system's roots, built on first use:
    /// reading and parsing the system's ~150 root certificates is a third
    /// of a warm re-pull's 20 ms, and a plain-http pull never needs them.
    default_client: OnceLock<reqwest::Client>,
    /// The client for plain-http requests: no roots at all.
    plain_client: OnceLock<reqwest::Client>,
    /// Clients for hosts with their own CA directory (or `None`: use the default).
    host_clients: Mutex<HashMap<String, Option<reqwest::Client>>>,
    /// The scheme that worked for each registry host.
    schemes: Mutex<HashMap<String, Scheme>>,
    /// The hosts serving each registry domain (hosts.toml), read once.
    hosts: Mutex<HashMap<String, Arc<Vec<RegistryHost>>>>,
    /// Clients of hosts with TLS or connection settings of their own.
    own_clients: Mutex<HashMap<String, reqwest::Client>>,
    /// Mirrors that could not be reached, and when.
    unreachable: Mutex<HashMap<String, Instant>>,
}

/// How long a mirror that could not be reached is skipped.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

fn read_pem_file(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::InvalidArgument(format!("cannot read CA file {}: {e}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::InvalidArgument(format!("invalid CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// `*.crt` files of a `certs.d/<host>` directory, sorted for determinism.
pub(crate) fn host_ca_files(hosts_dir: &Path, authority: &str) -> Vec<PathBuf> {
    let mut names = vec![authority.to_owned()];
    // containerd names Docker Hub's directory after the reference domain.
    if authority == "registry-1.docker.io" {
        names.push("docker.io".to_owned());
    }
    let mut out = Vec::new();
    for name in names {
        // Never let a host name climb out of the hosts directory.
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(hosts_dir.join(&name)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

impl Transport {
    pub(crate) fn new(options: RegistryOptions) -> Result<Transport> {
        let mut global_roots = Vec::new();
        for path in &options.ca_files {
            global_roots.extend(read_pem_file(path)?);
        }
        Ok(Transport {
            options,
            global_roots,
            default_client: OnceLock::new(),
            plain_client: OnceLock::new(),
            host_clients: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
            own_clients: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashMap::new()),
        })
    }

    /// Remembers that `authority` could not be reached.
    pub(crate) fn mark_unreachable(&self, authority: &str) {
        let mut map = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(authority.to_owned(), Instant::now());
    }

    /// Whether `authority` could not be reached within [`UNREACHABLE_FOR`].
    pub(crate) fn recently_unreachable(&self, authority: &str) -> bool {
        let map = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        map.get(authority)
            .is_some_and(|at| at.elapsed() < UNREACHABLE_FOR)
    }

    /// The hosts serving `domain`, mirrors first (see [`crate::hosts`]);
    /// the configuration is read on first use and kept.
    pub(crate) fn hosts_for(&self, domain: &str, api_host: &str) -> Result<Arc<Vec<RegistryHost>>> {
        let mut map = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = map.get(domain) {
            return Ok(hit.clone());
        }
        let hosts = Arc::new(crate::hosts::hosts_for(
            self.options.hosts_dir.as_deref(),
            domain,
            api_host,
        )?);
        if hosts.len() > 1 || !hosts[0].is_server || hosts[0].has_own_client() {
            tracing::debug!(%domain, hosts = hosts.len(), "registry hosts configured");
        }
        map.insert(domain.to_owned(), hosts.clone());
        Ok(hosts)
    }

    /// The client for a configured host's first request, if its TLS or
    /// connection settings differ from the defaults.
    pub(crate) fn client_for_host(&self, host: &RegistryHost) -> Result<Option<reqwest::Client>> {
        if !host.has_own_client() {
            return Ok(None);
        }
        let key = format!(
            "{}|{:?}|{:?}|{}|{:?}",
            host.authority, host.ca, host.client, host.skip_verify, host.dial_timeout
        );
        let mut map = self.own_clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = map.get(&key) {
            return Ok(Some(hit.clone()));
        }
        let mut roots = self.global_roots.clone();
        for path in &host.ca {
            roots.extend(read_pem_file(path)?);
        }
        let mut options = self.options.clone();
        if let Some(timeout) = host.dial_timeout {
            options.connect_timeout = timeout;
        }
        let mut identity = None;
        if let Some((cert, key)) = host.client.first() {
            let mut pem = std::fs::read(cert).map_err(|e| {
                Error::InvalidArgument(format!(
                    "cannot read client certificate {}: {e}",
                    cert.display()
                ))
            })?;
            if let Some(key) = key {
                pem.push(b'\n');
                pem.extend(std::fs::read(key).map_err(|e| {
                    Error::InvalidArgument(format!("cannot read client key {}: {e}", key.display()))
                })?);
            }
            identity = Some(reqwest::Identity::from_pem(&pem).map_err(|e| {
                Error::InvalidArgument(format!(
                    "invalid client certificate {}: {e}",
                    cert.display()
                ))
            })?);
        }
        let client = build_client_with(&options, &roots, identity, host.skip_verify)?;
        map.insert(key, client.clone());
        Ok(Some(client))
    }

    pub(crate) fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The https client with the system's roots and `ca_files`.
    fn default_client(&self) -> Result<reqwest::Client> {
        once_client(&self.default_client, || {
            build_client(&self.options, &self.global_roots)
        })
    }

    /// The client for plain-http URLs: the same settings, no roots, as
    /// nothing it sends is encrypted.
    fn plain_client(&self) -> Result<reqwest::Client> {
        once_client(&self.plain_client, || {
            finish(client_builder(&self.options).tls_built_in_root_certs(false))
        })
    }

    /// The client for `authority`, with that host's extra CAs if any.
    pub(crate) fn client_for(&self, authority: &str) -> Result<reqwest::Client> {
        let Some(dir) = &self.options.hosts_dir else {
            return self.default_client();
        };
        let mut map = self.host_clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = map.get(authority) {
            return hit.clone().map_or_else(|| self.default_client(), Ok);
        }
        let files = host_ca_files(dir, authority);
        let client = if files.is_empty() {
            None
        } else {
            let mut roots = self.global_roots.clone();
            for f in &files {
                roots.extend(read_pem_file(f)?);
            }
            tracing::debug!(host = %authority, files = files.len(), "using per-host CA certificates");
            Some(build_client(&self.options, &roots)?)
        };
        map.insert(authority.to_owned(), client.clone());
        client.map_or_else(|| self.default_client(), Ok)
    }

    /// Schemes to try for a registry host: the remembered one, or the candidates.
    pub(crate) fn schemes_for(&self, authority: &str) -> Vec<Scheme> {
        let map = self.schemes.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(authority) {
            Some(s) => vec![*s],
            None => candidate_schemes(authority, self.options.plain_http),
        }
    }

    pub(crate) fn remember_scheme(&self, authority: &str, scheme: Scheme) {
        let mut map = self.schemes.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(authority.to_owned(), scheme);
    }

    /// Send one prepared request with the header timeout, classifying failures.
    pub(crate) async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        host: &str,
    ) -> Result<reqwest::Response> {
        // Connect and headers are bounded together; body chunks are bounded
        // separately by the reader.
        let limit = self.options.connect_timeout + self.options.read_timeout;
        match tokio::time::timeout(limit, request.send()).await {
            Err(_) => Err(Error::Timeout {
                host: host.to_owned(),
            }),
            Ok(Err(e)) => Err(classify_reqwest(&e, host)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Send a body-less request, following redirects by hand. The
    /// `authorization` value goes only to `url`'s origin.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &HeaderMap,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response> {
        self.send_with(None, method, url, headers, authorization)
            .await
    }

    /// [`Transport::send`] with `first_client` for the first request (a
    /// configured host's own TLS settings); redirects use the clients of
    /// their own hosts.
    pub(crate) async fn send_with(
        &self,
        first_client: Option<reqwest::Client>,
        method: Method,
        url: Url,
        headers: &HeaderMap,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut first_client = first_client;
        let origin = url.clone();
        let mut method = method;
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let host = authority(&url);
            let client = match first_client.take() {
                Some(client) => client,
                None if url.scheme() == "http" => self.plain_client()?,
                None => self.client_for(&host)?,
            };
            let mut request = client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(value) = authorization
                && keep_authorization(&origin, &url)
            {
                let mut value = HeaderValue::from_str(value).map_err(|_| {
                    Error::InvalidArgument("authorization header is not valid ASCII".into())
                })?;
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }
            let resp = self.execute(request, &host).await?;
            let status = resp.status();
            if !status.is_redirection() {
                return Ok(resp);
            }
            let Some(location) = resp.headers().get(LOCATION) else {
                return Ok(resp);
            };
            let location = location.to_str().map_err(|_| {
                Error::InvalidResponse(format!("{host}: redirect location is not ASCII"))
            })?;
            let next = url.join(location).map_err(|e| {
                Error::InvalidResponse(format!("{host}: invalid redirect location: {e}"))
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(Error::InvalidResponse(format!(
                    "{host}: redirect to unsupported scheme {}",
                    next.scheme()
                )));
            }
            // An https request never continues in the clear: a signed
            // storage URL is a credential, and foreign layers are https only.
            if url.scheme() == "https" && next.scheme() == "http" {
                return Err(Error::InvalidResponse(format!(
                    "{host}: refusing a redirect from https to http ({})",
                    authority(&next)
                )));
            }
            if status == StatusCode::SEE_OTHER && method != Method::HEAD {
                method = Method::GET;
            }
            // Only the authority: storage redirects carry signed query strings.
            tracing::debug!(from = %host, to = %authority(&next), %status, "following redirect");
            url = next;
        }
        Err(Error::InvalidResponse(format!(
            "{}: more than {MAX_REDIRECTS} redirects",
            authority(&origin)
        )))
    }
}

fn build_client(
    options: &RegistryOptions,
    roots: &[reqwest::Certificate],
) -> Result<reqwest::Client> {
    build_client_with(options, roots, None, false)
}

/// The client from `cell`, built by `build` the first time.
fn once_client(
    cell: &OnceLock<reqwest::Client>,
    build: impl FnOnce() -> Result<reqwest::Client>,
) -> Result<reqwest::Client> {
    if let Some(client) = cell.get() {
        return Ok(client.clone());
    }
    let client = build()?;
    Ok(cell.get_or_init(|| client).clone())
}

fn build_client_with(
    options: &RegistryOptions,
    roots: &[reqwest::Certificate],
    identity: Option<reqwest::Identity>,
    skip_verify: bool,
) -> Result<reqwest::Client> {
    let mut builder = client_builder(options);
    for cert in roots {
        builder = builder.add_root_certificate(cert.clone());
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    if skip_verify {
        // hosts.toml's `skip_verify`: the user asked for it for this host.
        builder = builder.danger_accept_invalid_certs(true);
    }
    finish(builder)
}

/// What every client shares: user agent, no automatic redirects, timeouts
/// and our proxy rules.
fn client_builder(options: &RegistryOptions) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(options.user_agent.clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .tcp_keepalive(Duration::from_secs(30))
        // reqwest's own reading of the environment does not know our
        // loopback and NO_PROXY rules; ours decides (see `proxy`).
        .no_proxy();
    let proxies = crate::proxy::ProxyConfig::from_env(|name| std::env::var(name).ok());
    if !proxies.is_empty() {
        builder = builder.proxy(reqwest::Proxy::custom(move |url| proxies.proxy_for(url)));
    }
    builder
}

fn finish(builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    builder
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot build HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "[::2]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn scheme_choice() {
        assert_eq!(
            candidate_schemes("127.0.0.1:5000", false),
            vec![Scheme::Https, Scheme::Http]
        );
        assert_eq!(candidate_schemes("quay.io", false), vec![Scheme::Https]);
        assert_eq!(candidate_schemes("quay.io", true), vec![Scheme::Http]);
        assert_eq!(candidate_schemes("localhost", true), vec![Scheme::Http]);
    }

    #[test]
    fn remembered_scheme_wins() {
        let t = Transport::new(RegistryOptions::default()).unwrap();
        assert_eq!(t.schemes_for("localhost:5000").len(), 2);
        t.remember_scheme("localhost:5000", Scheme::Http);
        assert_eq!(t.schemes_for("localhost:5000"), vec![Scheme::Http]);
    }

    #[test]
    fn redirect_header_stripping() {
        let u = |s: &str| Url::parse(s).unwrap();
        let reg = u("https://reg.io/v2/a/blobs/sha256:x");
        assert!(keep_authorization(&reg, &u("https://reg.io/other")));
        assert!(keep_authorization(&reg, &u("https://reg.io:443/other")));
        assert!(!keep_authorization(
            &reg,
            &u("https://s3.amazonaws.com/b?sig=1")
        ));
        assert!(!keep_authorization(&reg, &u("http://reg.io/other")));
        assert!(!keep_authorization(&reg, &u("https://reg.io:5000/other")));
        assert!(!keep_authorization(&reg, &u("https://sub.reg.io/other")));
    }

    #[test]
    fn authority_forms() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(authority(&u("https://[::1]:5000/v2/")), "[::1]:5000");
        assert_eq!(authority(&u("https://reg.io/v2/")), "reg.io");
        assert_eq!(authority(&u("https://reg.io:443/v2/")), "reg.io");
        assert_eq!(authority(&u("http://127.0.0.1:5000/v2/")), "127.0.0.1:5000");
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        // With jitter 0 the delay is half of the exponential value.
        assert_eq!(backoff(&p, 1, 0), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, 0), Duration::from_millis(200));
        assert_eq!(backoff(&p, 9, 0), Duration::from_millis(500));
        for r in [1, 77, u64::MAX] {
            let d = backoff(&p, 30, r);
            assert!(d <= p.max_delay && d >= p.max_delay / 2, "{d:?}");
        }
    }

    /// How many times `with_retry` under `p` calls an operation that always
    /// fails with `error()`; the result must be that error.
    async fn attempts(p: &RetryPolicy, error: impl Fn() -> Error) -> usize {
        let mut calls = 0;
        let r: Result<()> = with_retry(p, "t", || {
            calls += 1;
            std::future::ready(Err(error()))
        })
        .await;
        assert!(r.is_err());
        calls
    }

    fn unavailable() -> Error {
        Error::Status {
            status: 503,
            errors: vec![],
        }
    }

    #[tokio::test]
    async fn retry_stops_on_permanent_errors_and_bounds_attempts() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        assert_eq!(attempts(&p, unavailable).await, 3);
        let not_found = || Error::NotFound {
            reference: "x".into(),
        };
        assert_eq!(attempts(&p, not_found).await, 1);
    }

    #[tokio::test]
    async fn retry_stops_when_its_time_is_spent() {
        let p = RetryPolicy {
            max_attempts: 1000,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(20),
            max_retry_time: Duration::from_millis(100),
        };
        let started = std::time::Instant::now();
        let calls = attempts(&p, unavailable).await;
        // Delays of 10-20 ms within 100 ms: a handful of attempts, not 1000.
        assert!((3..=12).contains(&calls), "{calls} attempts");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_retry_after_beats_backoff_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), p.max_delay);
        assert!(p.delay(1, None) <= p.base_delay);
    }

    #[test]
    fn certs_d_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("127.0.0.1:5000");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "x").unwrap();
        std::fs::write(host.join("extra.crt"), "x").unwrap();
        std::fs::write(host.join("client.key"), "x").unwrap();
        std::fs::create_dir(dir.path().join("docker.io")).unwrap();
        std::fs::write(dir.path().join("docker.io/ca.crt"), "x").unwrap();
        assert_eq!(host_ca_files(dir.path(), "127.0.0.1:5000").len(), 2);
        assert_eq!(host_ca_files(dir.path(), "registry-1.docker.io").len(), 1);
        assert!(host_ca_files(dir.path(), "other").is_empty());
        assert!(host_ca_files(dir.path(), "../etc").is_empty());
    }
}
