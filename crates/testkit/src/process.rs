//! Running a helper process the way the tests feed one: with its input on
//! stdin (a password for `--password-stdin`), its output captured.

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
