//! End-to-end tests for the `hoist` binary against a real registry.
