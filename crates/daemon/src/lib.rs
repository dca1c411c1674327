//! hoistd: the hoist engine served to the clients that already exist.
//!
//! Two of the systems hoist replaces are servers: the kubelet pulls through
//! the Kubernetes CRI `ImageService` (gRPC on a unix socket) and the docker
//! CLI through the Docker Engine API (HTTP on a unix socket). `hoistd`
//! speaks both, on one shared [`hoist_engine::Engine`] and the same store
//! that `hoist` CLI processes use at the same time.
//!
//! - [`service`] is what every front end calls: a pull with the daemon's
//!   defaults, its progress timeout and its metrics, and the GC scheduler.
//! - [`cri`] serves the CRI `runtime.v1.ImageService`.
//! - [`docker`] serves the Docker Engine image API.
//! - [`metrics`] holds the Prometheus registry and serves `/metrics`.
//! - [`config`] reads `/etc/hoist/config.toml`.
//! - [`socket`] binds unix sockets atomically, replacing stale ones.
#![deny(missing_docs)]

pub mod config;
pub mod cri;
pub mod docker;
mod gc;
pub mod metrics;
pub mod service;
pub mod socket;

pub use config::Config;
pub use metrics::Metrics;
pub use service::{PullError, PullRequest, Service};
