//! Running helper processes the way tests do: with input on stdin (a
//! password for `--password-stdin`), with a scrubbed environment, and
//! failing with everything they printed unless they succeed.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Spawns `command` with piped stdin, stdout and stderr, writes `input` to
/// its stdin, closes it, and waits for the output. Panics if the process
/// cannot be started.
pub fn run_with_stdin(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", command.get_program()));
    // Dropped at the end of the statement: the child sees end of input.
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait for the process")
}

/// Fails the test unless `output` is a success, naming `what` with the
/// status, stdout and stderr; returns stdout as text.
#[track_caller]
pub fn assert_success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// Runs `command` to completion and [`assert_success`]es it.
#[track_caller]
pub fn run_ok(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert_success(&output, what)
}

/// Removes from `command`'s environment every variable through which the
/// caller's hoist, docker, XDG, TLS or proxy settings would reach a test's
/// process.
pub fn scrub_env(command: &mut Command) -> &mut Command {
    for var in [
        "HOIST_LOG",
        "HOIST_ROOT",
        "HOIST_USER",
        "HOISTD_CONFIG",
        "DOCKER_CONFIG",
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "RUST_LOG",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        command.env_remove(var);
    }
    command
}
