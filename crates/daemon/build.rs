//! Generates the CRI `runtime.v1` gRPC code from the vendored
//! `vendor/cri/runtime/v1/api.proto`.
//!
//! The proto is compiled with `protox` (pure Rust) rather than `protoc`, so
//! building hoist needs no protobuf compiler installed; `tonic-prost-build`
//! then writes the messages and the `ImageService` server (and a client,
//! for embedding programs and tests) into `OUT_DIR`.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = Path::new("vendor/cri/runtime/v1/api.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let descriptors = protox::compile([proto], [Path::new("vendor/cri")])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // `AuthConfig` holds secrets; the crate implements a `Debug` that
        // redacts them (prost ignores the proto's `debug_redact` option),
        // so no request can leak a password into a log.
        .skip_debug(["runtime.v1.AuthConfig"])
        .compile_fds(descriptors)?;
    Ok(())
}
