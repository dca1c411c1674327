//! Integration tests of `apply_layer`: tars built in the test (hostile ones
//! with raw headers), applied to temp directories, inspected with std.

// A test that cannot run here (not root, no overlayfs) says so on stderr.
#![allow(clippy::print_stderr)]

mod cache;
mod diffid;
mod hostile;
mod merged;
mod pipeline;
mod roundtrip;
mod support;
mod whiteouts;
