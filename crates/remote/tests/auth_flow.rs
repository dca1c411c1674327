//! The Bearer token handshake and the credential-stripping redirect rule,
//! checked against a tiny in-process HTTP server that records every request
//! it sees. (The real registry variants with a token server live in
//! `hoist-testkit`; this test pins down what goes on the wire.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_remote::{
    Credentials, Descriptor, Digest, Error, RegistryOptions, Repository, Resolver, RetryPolicy,
};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
struct Seen {
    server: &'static str,
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    Reply {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.to_vec(),
    }
}

async fn read_request(
    stream: &mut TcpStream,
) -> Option<(String, String, HashMap<String, String>, String)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((
        method,
        target,
        headers,
        String::from_utf8_lossy(&body).to_string(),
    ))
}

/// Serve `handler` on a free loopback port, one request per connection.
async fn serve<F>(name: &'static str, log: Log, handler: F) -> u16
where
    F: Fn(&Seen) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Some((method, target, headers, body)) = read_request(&mut stream).await else {
                    return;
                };
                let seen = Seen {
                    server: name,
                    method,
                    target,
                    headers,
                    body,
                };
                let r = handler(&seen);
                log.lock().unwrap().push(seen.clone());
                let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", r.status);
                for (k, v) in &r.headers {
                    out += &format!("{k}: {v}\r\n");
                }
                out += &format!("Content-Length: {}\r\n\r\n", r.body.len());
                let mut bytes = out.into_bytes();
                if seen.method != "HEAD" {
                    bytes.extend_from_slice(&r.body);
                }
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
const BLOB: &[u8] = b"layer bytes";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

struct Fake {
    log: Log,
    registry: u16,
}

async fn start() -> Fake {
    let log: Log = Arc::default();
    let storage = serve("storage", log.clone(), |_| reply(200, &[], BLOB)).await;
    // The registry needs its own port inside the handler for the realm.
    let registry_port = Arc::new(Mutex::new(0u16));
    let rp = registry_port.clone();
    let registry = serve("registry", log.clone(), move |req| {
        let port = *rp.lock().unwrap();
        let auth = req.headers.get("authorization").cloned().unwrap_or_default();
        let path = req.target.split('?').next().unwrap_or_default().to_owned();
        // Token endpoints, served by the registry's port for brevity.
        if path == "/token" {
            if req.method == "POST" {
                let f = form(&req.body);
                let ok = f.get("grant_type").map(String::as_str) == Some("password")
                    && f.get("username").map(String::as_str) == Some("u")
                    && f.get("password").map(String::as_str) == Some("p")
                    && f.get("client_id").map(String::as_str) == Some("hoist")
                    && f.get("service").map(String::as_str) == Some("svc");
                return if ok {
                    reply(200, &[], br#"{"access_token":"tok-user","expires_in":300}"#)
                } else {
                    reply(401, &[], b"")
                };
            }
            return reply(200, &[], br#"{"token":"tok-anon"}"#);
        }
        if path == "/legacy-token" {
            // No OAuth2 POST support: GET with basic auth only.
            if req.method == "POST" {
                return reply(404, &[], b"");
            }
            return if auth == "Basic dTpw" {
                reply(200, &[], br#"{"token":"tok-user"}"#)
            } else {
                reply(401, &[], b"")
            };
        }
        let realm = if path.starts_with("/v2/legacy/") {
            "legacy-token"
        } else {
            "token"
        };
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{port}/{realm}",service="svc",scope="repository:x:pull""#
        );
        let accepted = match path.as_str() {
            p if p.starts_with("/v2/locked/") => false,
            p if p.starts_with("/v2/public/") => auth == "Bearer tok-anon",
            _ => auth == "Bearer tok-user",
        };
        if !accepted {
            return reply(
                401,
                &[("WWW-Authenticate", &challenge), ("Content-Type", "application/json")],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
        }
        if path.contains("/blobs/") {
            let loc = format!("http://127.0.0.1:{storage}/bucket/blob?X-Signature=s3cr3t");
            return reply(307, &[("Location", &loc)], b"");
        }
        let digest = sha256(MANIFEST);
        reply(
            200,
            &[
                ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                ("Docker-Content-Digest", &digest),
            ],
            MANIFEST,
        )
    })
    .await;
    *registry_port.lock().unwrap() = registry;
    Fake { log, registry }
}

fn options(credentials: Option<Credentials>) -> RegistryOptions {
    RegistryOptions {
        plain_http: true,
        credentials,
        docker_config: Some("/nonexistent/config.json".into()),
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..RegistryOptions::default()
    }
}

impl Fake {
    fn repo(&self, name: &str) -> Repository {
        Repository::new(format!("127.0.0.1:{}", self.registry), name)
    }
    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

#[tokio::test]
async fn bearer_with_credentials_posts_once_and_caches() {
    let fake = start().await;
    let resolver = Resolver::new(options(Some(Credentials::new("u", "p")))).unwrap();
    let repo = fake.repo("app");
    let desc = resolver.resolve(&repo, "v1").await.unwrap();
    assert_eq!(desc.digest().to_string(), sha256(MANIFEST));
    let again = resolver.clone().resolve(&repo, "v1").await.unwrap();
    assert_eq!(again, desc);
    let seen = fake.seen();
    let posts: Vec<_> = seen
        .iter()
        .filter(|s| s.method == "POST" && s.target == "/token")
        .collect();
    assert_eq!(posts.len(), 1, "{seen:#?}");
    let f = form(&posts[0].body);
    assert_eq!(f["scope"], "repository:app:pull");
    // First HEAD unauthenticated (401), then two with the cached token.
    let heads: Vec<_> = seen.iter().filter(|s| s.method == "HEAD").collect();
    assert_eq!(heads.len(), 3);
    assert!(!heads[0].headers.contains_key("authorization"));
    assert_eq!(heads[2].headers["authorization"], "Bearer tok-user");
    assert!(heads[0].headers["accept"].contains("application/vnd.oci.image.index.v1+json"));
}

#[tokio::test]
async fn blob_redirect_drops_authorization() {
    let fake = start().await;
    let resolver = Resolver::new(options(Some(Credentials::new("u", "p")))).unwrap();
    let repo = fake.repo("app");
    let desc = Descriptor::new(
        "application/vnd.oci.image.layer.v1.tar".into(),
        BLOB.len() as u64,
        Digest::try_from(sha256(BLOB)).unwrap(),
    );
    let mut stream = resolver.fetch_blob(&repo, &desc, 0).await.unwrap();
    assert_eq!(stream.offset(), 0);
    let mut got = Vec::new();
    while let Some(c) = stream.next_chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, BLOB);
    assert!(!format!("{stream:?}").contains("s3cr3t"));
    let seen = fake.seen();
    let storage: Vec<_> = seen.iter().filter(|s| s.server == "storage").collect();
    assert_eq!(storage.len(), 1);
    assert!(
        !storage[0].headers.contains_key("authorization"),
        "credentials leaked to the storage host: {:?}",
        storage[0].headers
    );
    let small = resolver.fetch_small_blob(&repo, &desc).await.unwrap();
    assert_eq!(&small[..], BLOB);
}

#[tokio::test]
async fn anonymous_bearer_uses_get() {
    let fake = start().await;
    let resolver = Resolver::new(options(None)).unwrap();
    resolver.resolve(&fake.repo("public"), "v1").await.unwrap();
    let seen = fake.seen();
    let gets: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with("/token"))
        .collect();
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].method, "GET");
    assert!(gets[0].target.contains("service=svc"));
    assert!(gets[0].target.contains("scope=repository%3Apublic%3Apull"));
    assert!(!gets[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn oauth_post_unsupported_falls_back_to_basic_get() {
    let fake = start().await;
    let resolver = Resolver::new(options(Some(Credentials::new("u", "p")))).unwrap();
    resolver.resolve(&fake.repo("legacy"), "v1").await.unwrap();
    let seen = fake.seen();
    let methods: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with("/legacy-token"))
        .map(|s| s.method.as_str())
        .collect();
    assert_eq!(methods, ["POST", "GET"]);
}

#[tokio::test]
async fn refused_token_gives_up_after_one_retry() {
    let fake = start().await;
    let resolver = Resolver::new(options(None)).unwrap();
    let repo = fake.repo("locked");
    let err = resolver.resolve(&repo, "v1").await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "unauthorized: authentication required for {}/locked",
            repo.domain
        )
    );
    let seen = fake.seen();
    assert_eq!(seen.iter().filter(|s| s.method == "HEAD").count(), 2);
    assert_eq!(
        seen.iter()
            .filter(|s| s.target.starts_with("/token"))
            .count(),
        1
    );
    fake.clear();
    // With credentials the message says they were refused.
    let with_creds = Resolver::new(options(Some(Credentials::new("u", "p")))).unwrap();
    let err = with_creds.resolve(&repo, "v1").await.unwrap_err();
    assert!(err.to_string().contains("credentials rejected"), "{err}");
}
