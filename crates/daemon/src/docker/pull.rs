//! `POST /images/create?fromImage=&tag=&platform=`: a pull through the
//! service, streaming docker's JSON messages as the engine's events come.
//!
//! As in moby, the HTTP status is decided by the first thing the pull
//! says: a pull that fails before its first message (a missing manifest,
//! refused credentials, a bad reference) answers with the error's status
//! and docker's error JSON, so the CLI prints `Error response from daemon:
//! …`; once a message went out the status is 200 and a later failure ends
//! the stream with an `errorDetail` message. Refused credentials answer 404
//! with `pull access denied …`, as moby does, never 401: the docker CLI
//! answers a 401 by prompting for a login.
//!
//! A client that goes away cancels its pull (moby cancels the request's
//! context); what the pull stored stays for the next one.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use hoist_engine::{CredentialProvider, Credentials, StaticCredentials};
use hoist_oci::{Platform, Reference};
use tokio::sync::mpsc;

use super::auth::AuthConfig;
use super::error::ApiError;
use super::names::{self, PullTarget};
use crate::service::{PullError, PullRequest, Service};
use hoist_engine::docker_progress::{Message, Translator, TranslatorOptions};

/// What the pull task tells the response.
#[derive(Debug)]
enum Output {
    /// One JSON message line.
    Line(String),
    /// The pull failed; ends the stream.
    Failed(ApiError),
}

/// Handles `POST /images/create`.
pub async fn create(
    service: Service,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let get = |key: &str| query.get(key).map_or("", String::as_str);
    if get("fromImage").is_empty() {
        return Err(ApiError::not_implemented(
            "importing images (fromSrc) is not implemented by hoistd; pull with fromImage",
        ));
    }
    let target = names::pull_target(get("fromImage"), get("tag"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let platform = match get("platform") {
        "" => None,
        text => Some(Platform::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?),
    };
    // A header that does not decode is ignored, as moby ignores it.
    let credentials = headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .and_then(AuthConfig::from_header)
        .and_then(|config| config.credentials());

    let (lines, mut output) = mpsc::unbounded_channel();
    tokio::spawn(drive(service, target, platform, credentials, lines));
    let first = match output.recv().await {
        Some(Output::Failed(error)) => return Err(error),
        Some(Output::Line(line)) => line,
        // Nothing to say (no tags to pull).
        None => String::new(),
    };
    let rest = tokio_stream::wrappers::UnboundedReceiverStream::new(output).map(|out| match out {
        Output::Line(line) => line,
        Output::Failed(error) => Message::error(error.message).to_line(),
    });
    let stream = futures_util::stream::once(async move { first })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Pulls `target`, sending every message to `lines`; stops when the
/// receiver is gone.
async fn drive(
    service: Service,
    target: PullTarget,
    platform: Option<Platform>,
    credentials: Option<Credentials>,
    lines: mpsc::UnboundedSender<Output>,
) {
    let (references, all_tags) = match target {
        PullTarget::One(reference) => (vec![reference], false),
        PullTarget::AllTags(base) => {
            let provider = credentials.clone().map(|c| {
                Arc::new(StaticCredentials::new(base.domain(), c)) as Arc<dyn CredentialProvider>
            });
            let name = base.to_string();
            let listed = tokio::select! {
                listed = service.engine().list_tags(&name, provider) => listed,
                () = lines.closed() => return,
            };
            match listed {
                Ok(tags) => {
                    let references = tags.iter().filter_map(|t| base.with_tag(t).ok()).collect();
                    (references, true)
                }
                Err(error) => {
                    let error = pull_error(&PullError::Engine(error), &base, false);
                    let _ = lines.send(Output::Failed(error));
                    return;
                }
            }
        }
    };
    for reference in references {
        match pull_one(
            &service,
            &reference,
            platform.clone(),
            credentials.clone(),
            &lines,
        )
        .await
        {
            Ok(()) => {}
            Err(Ended::ClientGone) => return,
            Err(Ended::Failed { error, resolved }) => {
                let mut error = pull_error(&error, &reference, resolved);
                if all_tags {
                    // moby's words for one tag of `pull --all-tags`.
                    error.message = format!("error pulling {reference}: {}", error.message);
                }
                let _ = lines.send(Output::Failed(error));
                return;
            }
        }
    }
}

/// Why one pull stopped early.
enum Ended {
    /// The client went away; the pull was cancelled.
    ClientGone,
    /// The pull failed; `resolved` says whether the reference had resolved.
    Failed { error: PullError, resolved: bool },
}

/// Pulls one reference through the service, translating its events.
async fn pull_one(
    service: &Service,
    reference: &Reference,
    platform: Option<Platform>,
    credentials: Option<Credentials>,
    lines: &mpsc::UnboundedSender<Output>,
) -> Result<(), Ended> {
    let (events, mut received) = mpsc::unbounded_channel();
    let request = PullRequest {
        credentials,
        platform,
        progress: Some(events),
        ..PullRequest::new(reference.to_string())
    };
    let mut translator = Translator::new(TranslatorOptions {
        unpack: true,
        max_concurrent_downloads: service.config().max_concurrent_downloads,
    });
    let send = |messages: Vec<Message>| {
        for message in messages {
            let _ = lines.send(Output::Line(message.to_line()));
        }
    };
    let pull = service.pull(request);
    tokio::pin!(pull);
    let result = loop {
        tokio::select! {
            Some(event) = received.recv() => send(translator.event(&event)),
            result = &mut pull => break result,
            () = lines.closed() => {
                tracing::info!(%reference, "docker client went away; cancelling its pull");
                return Err(Ended::ClientGone);
            }
        }
    };
    // The service forwards every event before it returns.
    while let Ok(event) = received.try_recv() {
        send(translator.event(&event));
    }
    send(translator.finish());
    match result {
        Ok(_) => Ok(()),
        Err(error) => Err(Ended::Failed {
            error,
            resolved: translator.resolved(),
        }),
    }
}

/// A failed pull in docker's words (moby's containerd image service and
/// `distribution/errors.go`).
fn pull_error(error: &PullError, reference: &Reference, resolved: bool) -> ApiError {
    use hoist_remote::Error as Remote;
    match error {
        PullError::Engine(hoist_engine::Error::Remote(remote)) => match remote {
            Remote::Unauthorized { .. } | Remote::Denied { .. } => ApiError::not_found(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login'",
                reference.familiar_name()
            )),
            // Before resolving, a 404 is the manifest's (a blob's later).
            Remote::NotFound { .. } if !resolved => ApiError::not_found(format!(
                "manifest for {} not found: manifest unknown: manifest unknown",
                reference.familiar()
            )),
            other => ApiError::internal(other.to_string()),
        },
        PullError::Engine(hoist_engine::Error::NoMatchingPlatform { wanted, .. }) => {
            ApiError::not_found(format!(
                "no matching manifest for {wanted} in the manifest list entries"
            ))
        }
        PullError::Engine(
            hoist_engine::Error::UnsupportedManifest { .. }
            | hoist_engine::Error::NotAnImage { .. },
        ) => ApiError::bad_request(error.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(error: hoist_remote::Error) -> PullError {
        PullError::Engine(hoist_engine::Error::Remote(error))
    }

    #[test]
    fn registry_errors_in_docker_words() {
        let reference = Reference::parse("127.0.0.1:5000/team/app:nope").unwrap();
        let denied = pull_error(
            &remote(hoist_remote::Error::Unauthorized {
                host: "127.0.0.1:5000".into(),
                repository: "team/app".into(),
                detail: "authentication required".into(),
            }),
            &reference,
            false,
        );
        assert_eq!(denied.status, StatusCode::NOT_FOUND);
        assert_eq!(
            denied.message,
            "pull access denied for 127.0.0.1:5000/team/app, repository does not exist or may require 'docker login'"
        );
        let missing = remote(hoist_remote::Error::NotFound {
            reference: "127.0.0.1:5000/team/app:nope".into(),
        });
        let before = pull_error(&missing, &reference, false);
        assert_eq!(before.status, StatusCode::NOT_FOUND);
        assert_eq!(
            before.message,
            "manifest for 127.0.0.1:5000/team/app:nope not found: manifest unknown: manifest unknown"
        );
        let after = pull_error(&missing, &reference, true);
        assert_eq!(after.message, "not found: 127.0.0.1:5000/team/app:nope");
        let hub = Reference::parse("alpine").unwrap();
        let platform = pull_error(
            &PullError::Engine(hoist_engine::Error::NoMatchingPlatform {
                reference: hub.to_string(),
                wanted: "linux/s390x".into(),
                available: vec!["linux/amd64".into()],
            }),
            &hub,
            true,
        );
        assert_eq!(
            platform.message,
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        let stalled = pull_error(
            &PullError::ShuttingDown {
                reference: hub.to_string(),
            },
            &hub,
            true,
        );
        assert_eq!(stalled.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
