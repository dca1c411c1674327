//! `pull --sync`: what reaches the disk before a pull counts as stored,
//! seen from the system calls `strace` records (`-y` names each fd's file).

use std::process::Command;

use hoist_testkit::{Compression, Format, Registry, simple_image};

use crate::util::{HOIST, TestEnv, host_platform};

/// The flushes of one pull under `policy`: (`fsync`/`fdatasync` of the
/// content store's files, `syncfs` calls).
fn flushes(policy: &str) -> (usize, usize) {
    let registry = Registry::plain();
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let pushed = registry.push(&image, "sync/app", "v1");
    let env = TestEnv::new();
    let trace = env.path("strace.log");
    let mut command = Command::new("strace");
    command
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync,syncfs", "-o"])
        .arg(&trace)
        .arg(HOIST);
    let hoist = env.hoist();
    command.args(hoist.get_args());
    for (key, value) in hoist.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let output = command
        .args([
            "pull",
            "--plain-http",
            "--snapshotter",
            "native",
            "--sync",
            policy,
        ])
        .arg(&pushed.reference)
        .output()
        .expect("strace is installed (.ci/run installs it)");
    assert!(output.status.success(), "{output:?}");
    let log = std::fs::read_to_string(&trace).unwrap();
    let content = env.root().join("content");
    let content = content.to_str().unwrap();
    let blob_syncs = log
        .lines()
        .filter(|l| (l.contains("fsync(") || l.contains("fdatasync(")) && l.contains(content))
        .count();
    let syncfs = log.lines().filter(|l| l.contains("syncfs(")).count();
    (blob_syncs, syncfs)
}

#[test]
fn full_flushes_every_blob_and_every_snapshot() {
    let (blobs, syncfs) = flushes("full");
    // Config and three layers, each with its directory (the manifest too).
    assert!(blobs >= 8, "{blobs} blob fsyncs");
    assert_eq!(syncfs, 3, "one syncfs per layer snapshot");
}

#[test]
fn blobs_flushes_blobs_but_not_snapshots() {
    let (blobs, syncfs) = flushes("blobs");
    assert!(blobs >= 8, "{blobs} blob fsyncs");
    assert_eq!(syncfs, 0);
}

#[test]
fn none_flushes_nothing_of_its_own() {
    let (blobs, syncfs) = flushes("none");
    assert_eq!((blobs, syncfs), (0, 0));
}
