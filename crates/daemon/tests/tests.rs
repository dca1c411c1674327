//! End-to-end tests of hoistd with real clients: the docker CLI, a CRI
//! gRPC client generated from the official proto, Prometheus scrapes, and
//! the library API alone. One test binary; each topic is a module.

mod cri;
mod daemon;
mod docker;
mod util;
