//! The resolver end to end, against the real distribution registry
//! (`hoist-testkit`'s [`Registry`](hoist_testkit::Registry)) on a free
//! 127.0.0.1 port, with its token server, and with the testkit's fault proxy
//! in front where a test must see the wire or have the registry misbehave.
//! Each test starts its own servers and stops them on drop.

mod auth;
mod registry;
mod support;
