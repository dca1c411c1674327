//! The Kubernetes CRI `runtime.v1.ImageService` over gRPC, on a unix socket.
//!
//! The messages and the service trait are generated from the vendored
//! official `api.proto` ([`proto`]). Each RPC behaves as containerd's CRI
//! plugin does for the kubelet:
//!
//! - `PullImage` pulls through [`Service::pull`] (the daemon's progress
//!   timeout, metrics, snapshotter per runtime handler) with the request's
//!   `AuthConfig` (`cri/auth.rs`), then records the image under its id,
//!   repo tag and repo digest (`cri/names.rs`) and answers the id (the
//!   config digest).
//! - `ImageStatus`, `ListImages` and `StreamImages` read the store grouped
//!   by image id (`cri/images.rs`); a missing image is an empty answer,
//!   not an error.
//! - `RemoveImage` deletes every record of the image and asks for a
//!   garbage collection; a missing image is not an error.
//! - `ImageFsInfo` reports disk usage measured by walking the store
//!   (`cri/fsinfo.rs`), cached for `stats_collect_period`.
//!
//! Errors carry gRPC codes the kubelet and `crictl` can act on: a bad
//! reference or auth config is `InvalidArgument`, a missing image or
//! manifest `NotFound`, refused credentials `Unauthenticated` (or
//! `PermissionDenied`), a pull that stopped making progress
//! `DeadlineExceeded`, a daemon shutting down or an unreachable registry
//! `Unavailable`, and the rest `Internal`.
//!
//! Nothing here logs a secret: `AuthConfig`'s `Debug` is redacted, and
//! requests are never logged whole.
//!
//! Clients must send a valid HTTP/2 `:authority`: the HTTP/2 server (`h2`)
//! resets streams whose authority is a socket path with `PROTOCOL_ERROR`.
//! The kubelet and `crictl` send `localhost` over unix sockets since
//! Kubernetes 1.31 (`k8s.io/cri-client`); older Go clients and gRPC
//! C-core (Python) send the path unless told otherwise
//! (`grpc.default_authority`).

mod auth;
mod fsinfo;
mod images;
mod names;
pub mod proto;

use std::future::Future;
use std::time::Instant;

use hoist_engine::{Engine, Event, Pulled};
use hoist_oci::Reference;
use hoist_oci::media_type::{self, Kind};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Code, Request, Response, Status};

use self::images::CriImage;
use self::names::PulledNames;
use self::proto::image_service_server::{ImageService, ImageServiceServer};
use crate::service::{PullError, PullRequest, Service};

/// The pod sandbox annotation containerd reads the runtime handler from
/// when the image spec does not name one.
const RUNTIME_HANDLER_ANNOTATION: &str = "io.containerd.cri.runtime-handler";

/// How many images one `StreamImages` message carries.
const STREAM_CHUNK: usize = 256;

/// Serves the CRI ImageService on `listener` until `shutdown` completes.
///
/// Shutdown stops accepting connections and waits for running calls; a
/// running pull is cancelled by the service (its `shutdown` watch) and
/// answers `Unavailable`.
pub async fn serve(
    service: Service,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cri = Cri::new(service);
    tonic::transport::Server::builder()
        .add_service(ImageServiceServer::new(cri))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// The ImageService implementation over one [`Service`].
#[derive(Debug)]
struct Cri {
    service: Service,
    fs_cache: fsinfo::Cache,
}

impl Cri {
    fn new(service: Service) -> Cri {
        let period = service.config().stats_collect_period;
        Cri {
            service,
            fs_cache: fsinfo::Cache::new(period),
        }
    }

    fn engine(&self) -> &Engine {
        self.service.engine()
    }

    /// Every CRI image, read off the runtime.
    async fn images(&self) -> Result<Vec<CriImage>, Status> {
        let engine = self.engine().clone();
        tokio::task::spawn_blocking(move || images::load(&engine))
            .await
            .map_err(|error| Status::internal(format!("listing images: {error}")))?
            .map_err(|error| Status::internal(format!("listing images: {}", chain(&error))))
    }

    /// The images `filter` selects: all, or the one its spec names (found
    /// as `ImageStatus` finds it). containerd ignores the filter and
    /// `crictl` filters again on its side; CRI-O applies it, as here.
    async fn filtered(&self, filter: Option<proto::ImageFilter>) -> Result<Vec<CriImage>, Status> {
        let images = self.images().await?;
        let wanted = filter
            .and_then(|f| f.image)
            .map(|spec| spec.image)
            .filter(|image| !image.is_empty());
        Ok(match wanted {
            None => images,
            Some(query) => images::find(&images, &query).cloned().into_iter().collect(),
        })
    }
}

/// `StreamImages`' answer: the lists, all computed before the first is sent.
type StreamImages =
    tokio_stream::Iter<std::vec::IntoIter<Result<proto::StreamImagesResponse, Status>>>;

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(
        &self,
        request: Request<proto::ListImagesRequest>,
    ) -> Result<Response<proto::ListImagesResponse>, Status> {
        let images = self.filtered(request.into_inner().filter).await?;
        Ok(Response::new(proto::ListImagesResponse {
            images: images.iter().map(images::to_proto).collect(),
        }))
    }

    type StreamImagesStream = StreamImages;

    async fn stream_images(
        &self,
        request: Request<proto::StreamImagesRequest>,
    ) -> Result<Response<Self::StreamImagesStream>, Status> {
        let images = self.filtered(request.into_inner().filter).await?;
        // Lists of at least one image each; no message at all when there
        // is none.
        let messages: Vec<Result<proto::StreamImagesResponse, Status>> = images
            .chunks(STREAM_CHUNK)
            .map(|chunk| {
                Ok(proto::StreamImagesResponse {
                    images: chunk.iter().map(images::to_proto).collect(),
                })
            })
            .collect();
        Ok(Response::new(tokio_stream::iter(messages)))
    }

    async fn image_status(
        &self,
        request: Request<proto::ImageStatusRequest>,
    ) -> Result<Response<proto::ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let query = image_of(request.image.as_ref())?;
        let images = self.images().await?;
        let response = match images::find(&images, query) {
            None => proto::ImageStatusResponse::default(),
            Some(image) => proto::ImageStatusResponse {
                image: Some(images::to_proto(image)),
                info: if request.verbose {
                    images::verbose_info(image)
                } else {
                    Default::default()
                },
            },
        };
        Ok(Response::new(response))
    }

    async fn pull_image(
        &self,
        request: Request<proto::PullImageRequest>,
    ) -> Result<Response<proto::PullImageResponse>, Status> {
        let request = request.into_inner();
        let image = image_of(request.image.as_ref())?.to_string();
        let reference = Reference::parse(&image).map_err(|error| {
            Status::invalid_argument(format!(
                "failed to parse image reference {image:?}: {error}"
            ))
        })?;
        let canonical = names::canonical(&reference);
        let runtime_handler =
            runtime_handler(request.image.as_ref(), request.sandbox_config.as_ref());
        if auth::ignores_registry_token(request.auth.as_ref()) {
            tracing::warn!(
                image,
                "AuthConfig.registry_token is not supported (as in containerd); it is ignored"
            );
        }
        let credentials = auth::credentials(request.auth.as_ref(), reference.domain())
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        if canonical != image {
            tracing::debug!(
                image,
                normalized = canonical,
                "PullImage using normalized image ref"
            );
        }

        let started = Instant::now();
        let (progress, mut events) = mpsc::unbounded_channel();
        // Only a root that was schema 1 (and converted) has no repo digest;
        // the resolved root's media type says. Events are consumed as they
        // come, so a long pull does not pile them up; the channel closes
        // when the pull ends.
        let schema1 = tokio::spawn(async move {
            let mut schema1 = false;
            while let Some(event) = events.recv().await {
                if let Event::Resolved { descriptor, .. } = event {
                    schema1 = media_type::classify(descriptor.media_type().as_ref())
                        == Kind::Schema1Manifest;
                }
            }
            schema1
        });
        let pull = PullRequest {
            credentials,
            runtime_handler,
            progress: Some(progress),
            ..PullRequest::new(canonical.clone())
        };
        let pulled = self
            .service
            .pull(pull)
            .await
            .map_err(|error| pull_status(&image, &error))?;
        let schema1 = schema1.await.unwrap_or(false);
        let Some(config) = pulled.configs.first().cloned() else {
            return Err(Status::internal(format!(
                "pulled image {image:?} has no image config"
            )));
        };
        let canonical_reference = Reference::parse(&canonical)
            .map_err(|error| Status::internal(format!("normalized reference: {error}")))?;
        let names = PulledNames::new(
            &canonical_reference,
            &config,
            pulled.target.digest(),
            schema1,
        );

        let engine = self.engine().clone();
        let recorded = names.clone();
        let size = tokio::task::spawn_blocking(move || record(&engine, &pulled, &recorded))
            .await
            .map_err(|error| Status::internal(format!("recording image {image:?}: {error}")))?
            .map_err(|error| {
                Status::internal(format!("recording image {image:?}: {}", chain(&error)))
            })?;
        tracing::info!(
            "Pulled image {image:?} with image id {:?}, repo tag {:?}, repo digest {:?}, size \"{size}\" in {:?}",
            names.id,
            names.repo_tag.as_deref().unwrap_or_default(),
            names.repo_digest.as_deref().unwrap_or_default(),
            started.elapsed(),
        );
        Ok(Response::new(proto::PullImageResponse {
            image_ref: names.id,
        }))
    }

    async fn remove_image(
        &self,
        request: Request<proto::RemoveImageRequest>,
    ) -> Result<Response<proto::RemoveImageResponse>, Status> {
        let request = request.into_inner();
        let query = image_of(request.image.as_ref())?.to_string();
        let images = self.images().await?;
        let Some(image) = images::find(&images, &query).cloned() else {
            return Ok(Response::new(proto::RemoveImageResponse {}));
        };
        let engine = self.engine().clone();
        let names = image.names.clone();
        tokio::task::spawn_blocking(move || -> Result<(), hoist_engine::Error> {
            for name in &names {
                // Someone else removing it meanwhile is fine.
                engine.metadata().delete_image(name)?;
            }
            Ok(())
        })
        .await
        .map_err(|error| Status::internal(format!("removing image {query:?}: {error}")))?
        .map_err(|error| {
            Status::internal(format!("removing image {query:?}: {}", chain(&error)))
        })?;
        tracing::info!(image = query, id = image.id, names = ?image.names, "removed image");
        // Its blobs and snapshots go with the next collection, as
        // containerd's asynchronous GC after the last reference is deleted.
        self.service.collect_garbage_soon();
        Ok(Response::new(proto::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<proto::ImageFsInfoRequest>,
    ) -> Result<Response<proto::ImageFsInfoResponse>, Status> {
        let engine = self.engine().clone();
        let configured = self.service.config().snapshotter.clone();
        let response = self
            .fs_cache
            .get(move || {
                let default = match configured {
                    Some(name) => name,
                    None => engine
                        .snapshotter(None)
                        .map(|s| s.name().to_string())
                        .unwrap_or_else(|_| "overlay".to_string()),
                };
                fsinfo::measure(&fsinfo::layout(engine.root(), &default))
            })
            .await
            .map_err(|error| {
                Status::internal(format!("measuring the image filesystem: {error}"))
            })?;
        Ok(Response::new(response))
    }
}

/// The image named by a request's `ImageSpec`, which must be there.
fn image_of(spec: Option<&proto::ImageSpec>) -> Result<&str, Status> {
    spec.map(|spec| spec.image.trim())
        .filter(|image| !image.is_empty())
        .ok_or_else(|| Status::invalid_argument("no image given (ImageSpec.image is empty)"))
}

/// The runtime handler a pull is for: the image spec's (CRI 1.29+), else
/// the sandbox annotation containerd reads. An unknown handler uses the
/// default snapshotter: hoist's config lists only the handlers that need
/// another one, so any name is accepted.
fn runtime_handler(
    spec: Option<&proto::ImageSpec>,
    sandbox: Option<&proto::PodSandboxConfig>,
) -> Option<String> {
    spec.map(|s| s.runtime_handler.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            sandbox
                .and_then(|s| s.annotations.get(RUNTIME_HANDLER_ANNOTATION))
                .filter(|h| !h.is_empty())
                .cloned()
        })
}

/// Records the pulled image under its id, repo tag and repo digest (with
/// the labels of the engine's own record and containerd's managed label),
/// and returns its size. Blocking.
fn record(
    engine: &Engine,
    pulled: &Pulled,
    names: &PulledNames,
) -> Result<u64, hoist_engine::Error> {
    let db = engine.metadata();
    let mut labels = db
        .get_image(&pulled.name)?
        .filter(|image| image.target.digest() == pulled.target.digest())
        .map(|image| image.labels)
        .unwrap_or_default();
    labels.insert(
        images::MANAGED_LABEL.to_string(),
        images::MANAGED_VALUE.to_string(),
    );
    let now = std::time::SystemTime::now();
    // The engine's own record (the tag or digest pulled) is among them and
    // gains the managed label; `record_image` merges labels, so concurrent
    // pulls of the image keep each other's.
    for name in std::iter::once(pulled.name.as_str()).chain(names.all()) {
        db.record_image(&hoist_metadata::Image {
            name: name.to_string(),
            target: pulled.target.clone(),
            labels: labels.clone(),
            created_at: now,
            updated_at: now,
        })?;
    }
    Ok(images::resolve(engine, &pulled.target)?
        .map(|info| info.size)
        .unwrap_or_else(|| pulled.target.size()))
}

/// The gRPC status for a failed pull of `image`.
fn pull_status(image: &str, error: &PullError) -> Status {
    let code = match error {
        PullError::Stalled { .. } => Code::DeadlineExceeded,
        PullError::ShuttingDown { .. } => Code::Unavailable,
        PullError::Engine(error) => engine_code(error),
    };
    Status::new(
        code,
        format!(
            "failed to pull and unpack image {image:?}: {}",
            chain(error)
        ),
    )
}

/// The gRPC code for an engine error: what the client can act on.
fn engine_code(error: &hoist_engine::Error) -> Code {
    use hoist_engine::Error as E;
    use hoist_remote::Error as R;
    match error {
        E::Oci(
            hoist_oci::Error::InvalidReference { .. } | hoist_oci::Error::InvalidPlatform { .. },
        ) => Code::InvalidArgument,
        E::ImageNotFound(_) | E::NoMatchingPlatform { .. } => Code::NotFound,
        E::Remote(remote) => match remote {
            R::NotFound { .. } => Code::NotFound,
            R::Unauthorized { .. } | R::Credentials(_) => Code::Unauthenticated,
            R::Denied { .. } => Code::PermissionDenied,
            R::Connect { .. } | R::Timeout { .. } | R::TooManyRequests { .. } => Code::Unavailable,
            R::InvalidArgument(_) => Code::InvalidArgument,
            _ => Code::Internal,
        },
        _ => Code::Internal,
    }
}

/// An error and its sources, `: `-separated, skipping a source already
/// spelled out by the message before it.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.ends_with(&shown) {
            text = format!("{text}: {shown}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_image_spec_handler_wins_over_the_sandbox_annotation() {
        let spec = |handler: &str| proto::ImageSpec {
            image: "busybox".into(),
            runtime_handler: handler.into(),
            ..proto::ImageSpec::default()
        };
        let sandbox = proto::PodSandboxConfig {
            annotations: HashMap::from([(
                RUNTIME_HANDLER_ANNOTATION.to_string(),
                "kata".to_string(),
            )]),
            ..proto::PodSandboxConfig::default()
        };
        assert_eq!(
            runtime_handler(Some(&spec("gvisor")), Some(&sandbox)).as_deref(),
            Some("gvisor")
        );
        assert_eq!(
            runtime_handler(Some(&spec("")), Some(&sandbox)).as_deref(),
            Some("kata")
        );
        assert_eq!(runtime_handler(Some(&spec("")), None), None);
    }

    #[test]
    fn pull_errors_map_to_codes_clients_act_on() {
        let code = |error: PullError| pull_status("app", &error).code();
        assert_eq!(
            code(PullError::Stalled {
                reference: "app".into(),
                timeout: Duration::from_secs(2),
            }),
            Code::DeadlineExceeded
        );
        assert_eq!(
            code(PullError::ShuttingDown {
                reference: "app".into()
            }),
            Code::Unavailable
        );
        let remote = |error: hoist_remote::Error| code(PullError::Engine(error.into()));
        assert_eq!(
            remote(hoist_remote::Error::NotFound {
                reference: "app".into()
            }),
            Code::NotFound
        );
        assert_eq!(
            remote(hoist_remote::Error::Unauthorized {
                host: "h".into(),
                repository: "r".into(),
                detail: "authentication required".into(),
            }),
            Code::Unauthenticated
        );
        assert_eq!(
            remote(hoist_remote::Error::Denied {
                reference: "app".into()
            }),
            Code::PermissionDenied
        );
        assert_eq!(
            code(PullError::Engine(hoist_engine::Error::Task("boom".into()))),
            Code::Internal
        );
        let invalid = Reference::parse("UPPER/case").unwrap_err();
        assert_eq!(
            code(PullError::Engine(invalid.into())),
            Code::InvalidArgument
        );
    }

    #[test]
    fn messages_name_the_image_and_the_cause_once() {
        let status = pull_status(
            "app:1",
            &PullError::Engine(hoist_engine::Error::ImageNotFound("x".into())),
        );
        assert_eq!(
            status.message(),
            "failed to pull and unpack image \"app:1\": image not found: x"
        );
    }
}
