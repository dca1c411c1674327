//! The Docker Engine image API over HTTP.

use std::future::Future;

use tokio::net::UnixListener;

use crate::service::Service;

/// Serves the Docker Engine API on `listener` until `shutdown` completes.
pub async fn serve(
    service: Service,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = (service, listener);
    shutdown.await;
    Ok(())
}
