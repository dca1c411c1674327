//! End-to-end tests for the `hoist` binary against a real registry.
//!
//! One test binary; each topic module says in its `//!` what belongs there.
//! Every test starts its own registry (on a free port) and uses its own
//! temporary root, so all of them run in parallel.

mod auth;
mod concurrency;
mod faults;
mod fleet;
mod formats;
mod gc;
mod hostile;
mod kill;
mod layout;
mod login;
mod memory;
mod mirrors;
mod platforms;
mod progress;
mod proxies;
mod pull;
mod references;
mod selfdoc;
mod space;
mod sync;
mod tls;
mod unpack;
mod util;
