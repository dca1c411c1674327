//! `hoist-fixture-registry`: the quick start's local registry.
//!
//! Starts the real CNCF registry on a free 127.0.0.1 port, pushes fixture
//! images to it, runs the given command with `REGISTRY=127.0.0.1:PORT` in its
//! environment, and stops the registry when the command ends, exiting with
//! the command's status. Nothing is left running.
//!
//! ```text
//! hoist-fixture-registry -- sh -c 'hoist pull --no-unpack $REGISTRY/demo/app:latest'
//! ```
//!
//! Fixture images pushed:
//! - `demo/app:latest`: an OCI index for linux/amd64 and linux/arm64;
//! - `demo/app:docker`: a Docker manifest list for the same platforms;
//! - `demo/app:zstd`: a single-platform OCI image with zstd layers.

use std::process::{Command, ExitCode};

use hoist_testkit::{Compression, Format, Registry, simple_image, simple_index};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => &args[..],
    };
    let Some((program, program_args)) = command.split_first() else {
        #[allow(clippy::print_stderr, reason = "usage error of a binary")]
        {
            eprintln!("usage: hoist-fixture-registry -- COMMAND [ARGS…]");
        }
        return ExitCode::from(2);
    };

    let registry = Registry::plain();
    let platforms = ["linux/amd64", "linux/arm64"];
    registry.push(
        &simple_index(Format::Oci, Compression::Gzip, &platforms),
        "demo/app",
        "latest",
    );
    registry.push(
        &simple_index(Format::Docker, Compression::Gzip, &platforms),
        "demo/app",
        "docker",
    );
    registry.push(
        &simple_image(Format::Oci, Compression::Zstd, "linux/amd64"),
        "demo/app",
        "zstd",
    );

    let status = Command::new(program)
        .args(program_args)
        .env("REGISTRY", registry.host())
        .status();
    drop(registry);
    match status {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "a binary reports its failure")]
            {
                eprintln!("hoist-fixture-registry: cannot run {program}: {error}");
            }
            ExitCode::from(127)
        }
    }
}
