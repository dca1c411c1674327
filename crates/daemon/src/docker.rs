//! The Docker Engine image API over HTTP, so the docker CLI pulls, lists,
//! inspects, tags and removes images through hoist.
//!
//! Served (bare and under `/v1.41/` … `/v1.51/`, see [`version`]):
//!
//! | request | what |
//! |---|---|
//! | `GET`/`HEAD /_ping` | version negotiation headers |
//! | `GET /version` | the server's versions |
//! | `POST /auth` | checks registry credentials (`docker login`) |
//! | `POST /images/create?fromImage=&tag=&platform=` | pulls, streaming docker's progress ([`pull`], in [`hoist_engine::docker_progress`]'s words) |
//! | `GET /images/json` | docker's image list ([`images`]) |
//! | `GET /images/{name}/json` | docker's image inspect |
//! | `POST /images/{name}/tag?repo=&tag=` | tags |
//! | `DELETE /images/{name}` | untags and removes |
//!
//! Everything else (containers, networks, volumes, builds, pushes, …)
//! answers 501 with docker's error JSON at once, so a client never waits on
//! an endpoint hoistd does not have. Names follow [`names`]; image ids are
//! target digests ([`catalog`] says why).
//!
//! Paths are routed by hand rather than by axum's router: an image name
//! holds `/` (`127.0.0.1:5000/team/app:1.0`) in the middle of a path
//! (`/images/{name}/json`), which axum's matcher cannot express, and every
//! path also comes under a version prefix.

pub mod auth;
pub mod catalog;
pub mod error;
pub mod filters;
pub mod images;
pub mod names;
pub mod pull;
pub mod version;

use std::collections::HashMap;
use std::future::Future;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::UnixListener;

use self::auth::{AuthConfig, LoginError};
use self::error::ApiError;
use self::version::ApiVersion;
use crate::service::Service;

/// hoistd's version, as `Server` and `/version` report it.
const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The largest `POST /auth` body read.
const MAX_AUTH_BODY: usize = 64 << 10;

/// Serves the Docker Engine API on `listener` until `shutdown` completes.
pub async fn serve(
    service: Service,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The API as an axum router (one handler; see the module docs).
pub fn router(service: Service) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(service)
}

async fn dispatch(State(service): State<Service>, request: Request) -> Response {
    let path = percent_decode(request.uri().path());
    let method = request.method().clone();
    let (requested, rest) = version::split_prefix(&path);
    let mut response = match version::negotiate(requested) {
        Ok(version) => route(service, version, rest.to_string(), request).await,
        Err(error) => error.into_response(),
    };
    // The path names images, never credentials (those travel in headers
    // and bodies, which are not logged).
    tracing::debug!(%method, %path, status = response.status().as_u16(), "docker API request");
    let headers = response.headers_mut();
    headers.insert("Api-Version", HeaderValue::from_static(version::MAX));
    headers.insert("Ostype", HeaderValue::from_static("linux"));
    if let Ok(server) = HeaderValue::from_str(&format!("hoist/{SERVER_VERSION}")) {
        headers.insert(header::SERVER, server);
    }
    response
}

async fn route(service: Service, version: ApiVersion, path: String, request: Request) -> Response {
    let method = request.method().clone();
    let query: HashMap<String, String> = Query::try_from_uri(request.uri())
        .map(|Query(query)| query)
        .unwrap_or_default();
    let result = match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/_ping") => Ok(ping(&method)),
        (&Method::GET, "/version") => Ok(version_info()),
        (&Method::POST, "/auth") => login(&service, request).await,
        (&Method::POST, "/images/create") => pull::create(service, &query, request.headers()).await,
        (&Method::GET, "/images/json") => images::list(&service, version, &query).await,
        _ => match ImageRoute::of(&method, &path) {
            Some(ImageRoute::Inspect(name)) => images::inspect(&service, version, name).await,
            Some(ImageRoute::Tag(name)) => images::tag(&service, name, &query).await,
            Some(ImageRoute::Remove(name)) => images::remove(&service, name, &query).await,
            None => Err(ApiError::not_implemented(format!(
                "{method} {path} is not implemented: hoistd serves only docker's image API (pull, images, inspect, tag, rmi, login)"
            ))),
        },
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The routes whose path holds an image name.
#[derive(Debug, PartialEq, Eq)]
enum ImageRoute<'a> {
    Inspect(&'a str),
    Tag(&'a str),
    Remove(&'a str),
}

impl<'a> ImageRoute<'a> {
    fn of(method: &Method, path: &'a str) -> Option<ImageRoute<'a>> {
        let rest = path.strip_prefix("/images/")?;
        let named = |name: &'a str| (!name.is_empty()).then_some(name);
        match *method {
            Method::DELETE => named(rest).map(ImageRoute::Remove),
            Method::GET => rest
                .strip_suffix("/json")
                .and_then(named)
                .map(ImageRoute::Inspect),
            Method::POST => rest
                .strip_suffix("/tag")
                .and_then(named)
                .map(ImageRoute::Tag),
            _ => None,
        }
    }
}

/// `GET|HEAD /_ping`, as moby answers it.
fn ping(method: &Method) -> Response {
    let body = if *method == Method::HEAD { "" } else { "OK" };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
        ],
        [
            ("Builder-Version", "1"),
            ("Docker-Experimental", "false"),
            ("Swarm", "inactive"),
        ],
        body,
    )
        .into_response()
}

/// `GET /version`.
fn version_info() -> Response {
    let arch = hoist_oci::Platform::host().architecture;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    axum::Json(json!({
        "Platform": { "Name": "hoist" },
        "Components": [{
            "Name": "Engine",
            "Version": SERVER_VERSION,
            "Details": {
                "ApiVersion": version::MAX,
                "Arch": arch,
                "BuildTime": "",
                "Experimental": "false",
                "GitCommit": "",
                "GoVersion": "",
                "KernelVersion": kernel,
                "MinAPIVersion": version::MIN,
                "Os": "linux",
            },
        }],
        "Version": SERVER_VERSION,
        "ApiVersion": version::MAX,
        "MinAPIVersion": version::MIN,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
    .into_response()
}

/// `POST /auth`: checks the credentials against the registry. The docker
/// CLI asks the daemon and does not fall back to logging in by itself, so
/// this must answer, and answers in moby's words.
async fn login(service: &Service, request: Request) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(request.into_body(), MAX_AUTH_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    let config: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid auth configuration: {e}")))?;
    match auth::login(service.engine(), &config).await {
        Ok(()) => Ok(axum::Json(json!({
            "Status": "Login Succeeded",
            "IdentityToken": "",
        }))
        .into_response()),
        Err(LoginError::Rejected(message)) => Err(ApiError::new(StatusCode::UNAUTHORIZED, message)),
        Err(LoginError::Invalid(message)) => Err(ApiError::bad_request(message)),
        Err(LoginError::Failed(message)) => Err(ApiError::internal(message)),
    }
}

/// Decodes `%XX` escapes of a path; a malformed escape stays as written.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_routes_take_names_with_slashes() {
        let route = |method: Method, path: &'static str| ImageRoute::of(&method, path);
        assert_eq!(
            route(Method::GET, "/images/127.0.0.1:5000/team/app:1.0/json"),
            Some(ImageRoute::Inspect("127.0.0.1:5000/team/app:1.0"))
        );
        assert_eq!(
            route(Method::POST, "/images/alpine/tag"),
            Some(ImageRoute::Tag("alpine"))
        );
        assert_eq!(
            route(Method::DELETE, "/images/local/app:2"),
            Some(ImageRoute::Remove("local/app:2"))
        );
        assert_eq!(route(Method::GET, "/images/alpine/history"), None);
        assert_eq!(route(Method::POST, "/images/alpine/push"), None);
        assert_eq!(route(Method::GET, "/images//json"), None);
        assert_eq!(route(Method::DELETE, "/images/"), None);
        assert_eq!(route(Method::GET, "/containers/json"), None);
    }

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(
            percent_decode("/images/a%2Fb%3A1/json"),
            "/images/a/b:1/json"
        );
        assert_eq!(percent_decode("/images/100%"), "/images/100%");
        assert_eq!(percent_decode("/images/%zz"), "/images/%zz");
    }
}
