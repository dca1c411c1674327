//! Memory stays bounded whatever the layer size: `hoist pull` of an image
//! with a 1 GiB layer, its peak resident set sampled from the kernel while
//! it runs (`VmHWM` in `/proc/PID/status`, the high-water mark of its RSS).

use std::process::Stdio;
use std::time::{Duration, Instant};

use hoist_testkit::Registry;

use crate::util::{TestEnv, big_image};

/// The bound the performance issue sets for every pull.
const PEAK_RSS_BOUND_KIB: u64 = 32 << 10;

/// `VmHWM` of process `pid` in KiB, while it runs.
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_pull_of_a_1_gib_layer_stays_under_32_mib_of_rss() {
    let registry = Registry::plain();
    let len = 1 << 30;
    let pushed = {
        let image = big_image(31, len);
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
    // The mark only grows, so the last reading before the process exits is
    // its peak so far; sampling often makes the gap to its exit small.
    let pid = child.id();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(kib) = high_water_mark(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the pull took over 5 minutes");
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(peak > 0, "no sample of the pull's memory was taken");
    assert!(
        peak < PEAK_RSS_BOUND_KIB,
        "peak RSS {} KiB while pulling a 1 GiB layer (bound {} KiB)",
        peak,
        PEAK_RSS_BOUND_KIB
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
