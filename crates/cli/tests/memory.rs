//! Memory stays bounded whatever the layer size: `hoist pull` of an image
//! with a 1 GiB layer, its resident set sampled from the kernel while it
//! runs (`/proc/PID/status`).
//!
//! What is bounded here is the anonymous part (`RssAnon`: heap, stacks,
//! buffers), the part that would grow with the data. The file-backed part is
//! the binary's code, and tests run the unoptimized build, whose code is
//! several times the release build's; the release binary's whole peak RSS
//! is measured by `bench/run`, against the 32 MiB the performance issue
//! sets.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hoist_testkit::{Compression, Format, Image, Registry, layer, noise};

use crate::util::{TestEnv, host_platform};

/// The bound on the anonymous resident set of a pull.
const PEAK_ANON_BOUND_KIB: u64 = 24 << 10;

/// A field of `/proc/PID/status` in KiB, while the process runs.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_pull_of_a_1_gib_layer_keeps_its_memory_bounded() {
    let registry = Registry::plain();
    // 1 GiB: a MiB of noise, repeated (the layer is uncompressed, so what
    // it holds changes nothing but how fast the test builds it).
    let len = 1 << 30;
    let pushed = {
        let big = noise(31, 1 << 20).repeat(len >> 20);
        let image = Image::single(
            Format::Oci,
            host_platform(),
            vec![layer(Compression::None, Format::Oci, |l| {
                l.add_dir("data", 0o755)
                    .add_file("data/big.bin", &big, 0o644);
            })],
        );
        registry.push(&image, "memory/big", "v1")
    };
    let env = TestEnv::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = env
        .hoist()
        .args(["pull", "--plain-http", "--snapshotter", "native"])
        .arg(&pushed.reference)
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    // Sampled often, so the peak between two samples is small.
    let pid = child.id();
    let (mut peak_anon, mut peak_total) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(kib) = status_kib(pid, "RssAnon:") {
            peak_anon = peak_anon.max(kib);
        }
        if let Some(kib) = status_kib(pid, "VmHWM:") {
            peak_total = peak_total.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the pull took over 5 minutes");
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(peak_anon > 0, "no sample of the pull's memory was taken");
    assert!(
        peak_anon < PEAK_ANON_BOUND_KIB,
        "anonymous RSS peaked at {peak_anon} KiB while pulling a 1 GiB layer \
         (bound {PEAK_ANON_BOUND_KIB} KiB; whole RSS {peak_total} KiB)"
    );
    // The top native snapshot holds the whole file.
    let snapshots = env.root().join("snapshots/native/snapshots");
    let sizes: Vec<u64> = std::fs::read_dir(&snapshots)
        .unwrap()
        .filter_map(|dir| std::fs::metadata(dir.unwrap().path().join("fs/data/big.bin")).ok())
        .map(|md| md.len())
        .collect();
    assert_eq!(sizes, vec![len as u64], "in {}", snapshots.display());
}
