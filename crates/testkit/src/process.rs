//! Running helper processes the way tests do: with input on stdin (a
//! password for `--password-stdin`), with a scrubbed environment, in a
//! temporary directory of their own, and failing with everything they
//! printed unless they succeed.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    assert_success_with(output, what, String::new)
}

/// [`assert_success`] whose failure message ends with `context()`: whatever
/// else explains the failure, such as the log of the server the process
/// talked to (only read when the process failed).
#[track_caller]
pub fn assert_success_with(
    output: &Output,
    what: &str,
    context: impl FnOnce() -> String,
) -> String {
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            context(),
        );
    }
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// Runs `command` to completion and [`assert_success`]es it.
#[track_caller]
pub fn run_ok(command: &mut Command, what: &str) -> String {
    run_ok_with(command, what, String::new)
}

/// Runs `command` to completion and [`assert_success_with`]es it.
#[track_caller]
pub fn run_ok_with(command: &mut Command, what: &str, context: impl FnOnce() -> String) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert_success_with(&output, what, context)
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

/// A temporary directory holding a store root (`<tmp>/root`, made by
/// whoever uses it first) and a `HOME` (`<tmp>/home`), removed on drop:
/// where the CLI's and the daemon's end-to-end tests run hoist, so that
/// nothing of the machine's own store or `~/.docker` takes part.
pub struct StoreDir {
    dir: tempfile::TempDir,
}

impl StoreDir {
    /// A fresh directory named `<prefix>…` with an empty `home/`.
    pub fn new(prefix: &str) -> StoreDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir(dir.path().join("home")).expect("create home");
        StoreDir { dir }
    }

    /// The temporary directory itself.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<tmp>/root`, the store.
    pub fn root(&self) -> PathBuf {
        self.path("root")
    }

    /// `<tmp>/home`, the `HOME` every command of the directory sees.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// A scratch path inside the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `program` with a clean environment: `HOME` is [`home`](Self::home)
    /// and nothing of the caller's settings leaks in ([`scrub_env`]).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env("HOME", self.home());
        scrub_env(&mut command);
        command
    }
}
