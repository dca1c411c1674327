//! A fault-injecting HTTP reverse proxy to put in front of a [`Registry`].
//!
//! [`FaultProxy`] listens on 127.0.0.1 (plain HTTP) and forwards every request
//! (method, path, query, headers including `Authorization`, body) to its
//! upstream, streaming the response back with its headers; a `Location` that
//! points at the upstream is rewritten to point at the proxy. The upstream may
//! be HTTPS (a TLS registry): the proxy trusts the registry's CA.
//!
//! Faults ([`Fault`]) apply to requests arriving after [`FaultProxy::set_fault`].
//!
//! ```no_run
//! use hoist_testkit::{Fault, FaultProxy, Registry};
//!
//! let registry = Registry::plain();
//! let proxy = FaultProxy::for_registry(&registry);
//! proxy.set_fault(Fault::Status { code: 503, times: 2 });
//! // pull from format!("{}/app:1.0", proxy.host()) ...
//! assert_eq!(proxy.requests(), 0);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::registry::Registry;
use crate::util::{Background, Recorded};

/// What the proxy does to requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Pass everything through.
    #[default]
    None,
    /// Flip one byte (the middle one) of every successful `GET
    /// /v2/…/blobs/<digest>` response body, keeping its length.
    FlipByteInBlobs,
    /// Answer the next `times` requests (any kind) with status `code` and an
    /// empty body, then pass through.
    Status {
        /// The HTTP status code.
        code: u16,
        /// How many requests get it.
        times: usize,
    },
    /// Send only the first `after` bytes of every successful `GET
    /// /v2/…/blobs/<digest>` response body (200 or 206, with the upstream's
    /// `Content-Length`), then break the connection. (If the socket buffer is
    /// full at the cut, the client may receive fewer bytes.)
    TruncateBlobs {
        /// Bytes sent before the cut.
        after: usize,
    },
    /// Send every successful `GET /v2/…/blobs/<digest>` response body at
    /// about `bytes_per_second` (in slices of a tenth of a second's worth),
    /// so a pull takes long enough to watch or interrupt.
    Throttle {
        /// The body's rate; 0 is taken as 1.
        bytes_per_second: u64,
    },
    /// Cut the first successful `GET /v2/…/blobs/<digest>` response body of
    /// each blob after `after` bytes (as [`Fault::TruncateBlobs`]), and
    /// drop the `Range` header of every blob request, so the resumed
    /// request gets the whole blob from its first byte: a server that
    /// ignores `Range`, under a client that already holds part of the blob.
    TruncateOnceIgnoringRange {
        /// Bytes sent before the cut.
        after: usize,
    },
    /// Send only the first `after` bytes of every successful `GET
    /// /v2/…/blobs/<digest>` response body (with the upstream's
    /// `Content-Length`), then send nothing more while keeping the
    /// connection open, until the client gives up: a registry that hangs
    /// mid-blob. A body no longer than `after` passes whole. When each stall
    /// began is in [`FaultProxy::stalls`].
    StallBlobs {
        /// Bytes sent before the stall.
        after: usize,
    },
    /// Answer every successful `GET /v2/…/blobs/<digest>` with `307` to
    /// `to` + the request's path + `?` + `query`, as registries that keep
    /// blobs in object storage send clients to a signed URL (`query` plays
    /// the signature). The upstream answered first, so authorization is
    /// still the registry's.
    RedirectBlobs {
        /// Base URL of the storage host, e.g. another proxy's
        /// [`FaultProxy::base_url`].
        to: String,
        /// The query the redirect carries.
        query: String,
    },
}

/// One request a [`FaultProxy`] received, as [`FaultProxy::seen`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method, e.g. `HEAD`.
    pub method: String,
    /// Path and query, e.g. `/v2/app/manifests/v1`.
    pub target: String,
    /// Every header, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The first value of header `name` (lowercase), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    fault: Mutex<Fault>,
    requests: AtomicUsize,
    log: Recorded<String>,
    seen: Recorded<Seen>,
    base_url: Mutex<String>,
    stalls: Recorded<std::time::SystemTime>,
    /// Blob paths already cut once by [`Fault::TruncateOnceIgnoringRange`].
    cut_once: Mutex<std::collections::HashSet<String>>,
}

/// A running fault-injecting reverse proxy. Stops on drop.
pub struct FaultProxy {
    shared: Arc<Shared>,
    server: Background,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("host", &self.host())
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// A proxy for `upstream` (`http://127.0.0.1:PORT` or `https://…`),
    /// trusting `ca_pem` for an HTTPS upstream.
    pub fn start(upstream: &str, ca_pem: Option<&str>) -> FaultProxy {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca_pem) = ca_pem {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA certificate"),
            );
        }
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: builder.build().expect("build proxy client"),
            fault: Mutex::new(Fault::None),
            requests: AtomicUsize::new(0),
            log: Recorded::default(),
            seen: Recorded::default(),
            base_url: Mutex::new(String::new()),
            stalls: Recorded::default(),
            cut_once: Mutex::default(),
        });
        let router = Router::new().fallback(forward).with_state(shared.clone());
        let server = Background::serve("proxy", router);
        *shared.base_url.lock().expect("lock") = format!("http://{}", server.addr());
        FaultProxy { shared, server }
    }

    /// A proxy in front of `registry` (trusting its CA if it is TLS).
    pub fn for_registry(registry: &Registry) -> FaultProxy {
        FaultProxy::start(&registry.base_url(), registry.ca_cert_pem())
    }

    /// A registry that keeps its blobs in object storage: a proxy in front
    /// of `registry` answering each successful blob GET with a redirect
    /// (carrying `query`, the signature) to a second proxy, the storage
    /// host, in front of `storage`, which must hold the same blobs.
    /// Returns `(front, storage)`; the storage proxy's [`FaultProxy::seen`]
    /// shows what reached it.
    pub fn with_blob_storage(
        registry: &Registry,
        storage: &Registry,
        query: &str,
    ) -> (FaultProxy, FaultProxy) {
        let storage = FaultProxy::for_registry(storage);
        let front = FaultProxy::for_registry(registry);
        front.set_fault(Fault::RedirectBlobs {
            to: storage.base_url(),
            query: query.to_string(),
        });
        (front, storage)
    }

    /// Replaces the current fault.
    pub fn set_fault(&self, fault: Fault) {
        *self.shared.fault.lock().expect("fault lock") = fault;
    }

    /// `127.0.0.1:PORT`, for image references through the proxy.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request so far as `"METHOD /path?query"`, plus `" range=…"`
    /// when it had a `Range` header.
    pub fn request_log(&self) -> Vec<String> {
        self.shared.log.all()
    }

    /// Every request so far with its headers.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.all()
    }

    /// When each blob body stalled under [`Fault::StallBlobs`] (the moment
    /// its last byte before the stall was handed to the connection), in
    /// wall-clock time so another process's timestamps compare with it.
    pub fn stalls(&self) -> Vec<std::time::SystemTime> {
        self.shared.stalls.all()
    }
}

/// `/v2/<name>/blobs/<digest>` (not uploads).
fn is_blob_path(path: &str) -> bool {
    path.starts_with("/v2/")
        && path
            .rsplit_once("/blobs/")
            .is_some_and(|(_, digest)| digest.contains(':') && !digest.contains('/'))
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
];

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    {
        let mut line = format!("{} {path_and_query}", parts.method);
        if let Some(range) = parts.headers.get("range").and_then(|v| v.to_str().ok()) {
            line.push_str(&format!(" range={range}"));
        }
        shared.log.push(line);
        shared.seen.push(Seen {
            method: parts.method.to_string(),
            target: path_and_query.clone(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_string(), value)
                })
                .collect(),
        });
    }

    let fault = {
        let mut fault = shared.fault.lock().expect("fault lock");
        let current = fault.clone();
        if let Fault::Status { code, times } = &mut *fault
            && *times > 0
        {
            *times -= 1;
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY);
            return status.into_response();
        }
        current
    };

    let blob_get = parts.method == Method::GET && is_blob_path(parts.uri.path());
    let ignore_range = blob_get && matches!(fault, Fault::TruncateOnceIgnoringRange { .. });
    let method =
        reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("valid method");
    let mut upstream_request = shared
        .client
        .request(method, format!("{}{path_and_query}", shared.upstream));
    for (name, value) in &parts.headers {
        let dropped = ignore_range && name.as_str() == "range";
        if !HOP_BY_HOP.contains(&name.as_str()) && !dropped {
            upstream_request = upstream_request.header(name.as_str(), value.as_bytes());
        }
    }
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        upstream_request = upstream_request.body(body);
    }
    let upstream = match upstream_request.send().await {
        Ok(response) => response,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("upstream: {e:?}")).into_response();
        }
    };

    let status = StatusCode::from_u16(upstream.status().as_u16()).expect("status");
    let mut response = Response::builder().status(status);
    let proxy_base = shared.base_url.lock().expect("lock").clone();
    for (name, value) in upstream.headers() {
        if name.as_str() != "connection"
            && name.as_str() != "transfer-encoding"
            && name.as_str() != "keep-alive"
        {
            let mut value = value.as_bytes().to_vec();
            if name.as_str() == "location"
                && let Some(rest) = value.strip_prefix(shared.upstream.as_bytes())
            {
                value = [proxy_base.as_bytes(), rest].concat();
            }
            response = response.header(
                HeaderName::from_bytes(name.as_str().as_bytes()).expect("header name"),
                HeaderValue::from_bytes(&value).expect("header value"),
            );
        }
    }

    let success = status.is_success();
    if let Fault::RedirectBlobs { to, query } = &fault
        && blob_get
        && success
    {
        let location = format!("{to}{}?{query}", parts.uri.path());
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", location)
            .body(Body::empty())
            .expect("redirect response");
    }
    let body = match fault {
        Fault::FlipByteInBlobs if blob_get && success => match upstream.bytes().await {
            Ok(bytes) => {
                let mut bytes = bytes.to_vec();
                if !bytes.is_empty() {
                    let middle = bytes.len() / 2;
                    bytes[middle] ^= 0xff;
                }
                Body::from(bytes)
            }
            Err(e) => return (StatusCode::BAD_GATEWAY, format!("upstream: {e:?}")).into_response(),
        },
        Fault::TruncateBlobs { after } if blob_get && success => {
            Body::from_stream(cut_after(upstream.bytes_stream(), after))
        }
        Fault::TruncateOnceIgnoringRange { after }
            if blob_get
                && success
                && shared
                    .cut_once
                    .lock()
                    .expect("cut lock")
                    .insert(parts.uri.path().to_string()) =>
        {
            Body::from_stream(cut_after(upstream.bytes_stream(), after))
        }
        Fault::StallBlobs { after } if blob_get && success => {
            Body::from_stream(stall_after(upstream.bytes_stream(), after, shared.clone()))
        }
        Fault::Throttle { bytes_per_second } if blob_get && success => {
            Body::from_stream(throttle(upstream.bytes_stream(), bytes_per_second.max(1)))
        }
        _ => Body::from_stream(
            upstream
                .bytes_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other)),
        ),
    };
    response.body(body).expect("response")
}

/// A response body as the proxy reads it from the upstream.
trait UpstreamBody:
    futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send + Unpin
{
}

impl<S> UpstreamBody for S where
    S: futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send + Unpin
{
}

/// A response body as a fault hands it to the client: chunks, or the error
/// that breaks the connection.
trait ClientBody: futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send {}

impl<S> ClientBody for S where
    S: futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send
{
}

/// The first `after` bytes of `stream`, then a broken connection.
fn cut_after(stream: impl UpstreamBody, after: usize) -> impl ClientBody {
    // State: (upstream stream, bytes still to send, finished).
    futures_util::stream::unfold(
        (stream, after, false),
        |(mut stream, left, done)| async move {
            if done {
                return None;
            }
            if left == 0 {
                // Let hyper flush what was sent before the error makes it
                // drop the connection.
                tokio::task::yield_now().await;
                let cut = std::io::Error::other("truncated by FaultProxy");
                return Some((Err(cut), (stream, 0, true)));
            }
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let take = chunk.len().min(left);
                    Some((Ok(chunk.slice(..take)), (stream, left - take, false)))
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), (stream, 0, true))),
                None => None,
            }
        },
    )
}

/// `stream` at about `rate` bytes per second: slices of at most a tenth of
/// a second's worth, each sent when the running total is due.
fn throttle(stream: impl UpstreamBody, rate: u64) -> impl ClientBody {
    let slice = usize::try_from((rate / 10).max(1)).unwrap_or(usize::MAX);
    let start = tokio::time::Instant::now();
    futures_util::stream::unfold(
        (stream, axum::body::Bytes::new(), 0u64),
        move |(mut stream, mut pending, sent)| async move {
            if pending.is_empty() {
                match stream.next().await {
                    Some(Ok(chunk)) => pending = chunk,
                    Some(Err(e)) => {
                        let error = std::io::Error::other(e);
                        return Some((Err(error), (stream, axum::body::Bytes::new(), sent)));
                    }
                    None => return None,
                }
            }
            let piece = pending.split_to(pending.len().min(slice));
            let sent = sent + piece.len() as u64;
            let due = std::time::Duration::from_secs_f64(sent as f64 / rate as f64);
            tokio::time::sleep_until(start + due).await;
            Some((Ok(piece), (stream, pending, sent)))
        },
    )
}

/// `stream` cut after `after` bytes, then silent forever (the connection
/// stays open until the client drops it); records when the silence began.
/// A body no longer than `after` passes whole.
fn stall_after(stream: impl UpstreamBody, after: usize, shared: Arc<Shared>) -> impl ClientBody {
    // State: (upstream stream, bytes still to send, bytes were held back).
    futures_util::stream::unfold(
        (stream, after, false),
        move |(mut stream, left, held_back)| {
            let shared = shared.clone();
            async move {
                let stall = held_back
                    || (left == 0
                        && match stream.next().await {
                            Some(Ok(_)) => true,
                            Some(Err(e)) => {
                                let error = std::io::Error::other(e);
                                return Some((Err(error), (stream, 0, false)));
                            }
                            None => false,
                        });
                if stall {
                    shared.stalls.push(std::time::SystemTime::now());
                    std::future::pending::<()>().await;
                }
                if left == 0 {
                    return None;
                }
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        let take = chunk.len().min(left);
                        let held_back = take < chunk.len();
                        Some((Ok(chunk.slice(..take)), (stream, left - take, held_back)))
                    }
                    Some(Err(e)) => Some((Err(std::io::Error::other(e)), (stream, 0, false))),
                    None => None,
                }
            }
        },
    )
}
