//! Times the native snapshotter's tree copy against `cp -a --reflink=auto`
//! (what it replaced) on one tree: `native_copy DIR small|big [RUNS]` makes
//! a native snapshotter under DIR (use a tmpfs), fills a committed snapshot
//! with 50,000 small files in 500 directories (`small`) or one 1 GiB file
//! (`big`), then alternately times `prepare` on it (the in-process copy) and
//! `cp -a` of the same tree into a fresh directory, RUNS times each (5), and
//! prints the medians and their ratio. `bench/native-copy` runs both trees.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_metadata::Db;
use hoist_snapshot::{Labels, Native, Snapshotter};

fn fill_small(dir: &Path) {
    for d in 0..500 {
        let sub = dir.join(format!("d{d:03}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..100 {
            // 0 to 8 KiB, as small files in images are.
            let len = (d * 100 + f) * 2_654_435_761_usize % 8192;
            std::fs::write(sub.join(format!("f{f:02}")), vec![b'x'; len]).unwrap();
        }
    }
}

fn fill_big(dir: &Path) {
    let mut file = std::fs::File::create(dir.join("big")).unwrap();
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    for _ in 0..1024 {
        file.write_all(&chunk).unwrap();
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(root), Some(shape)) = (args.get(1), args.get(2)) else {
        panic!("usage: native_copy DIR small|big [RUNS]");
    };
    let runs: usize = args.get(3).map_or(5, |r| r.parse().expect("RUNS"));
    let root = Path::new(root);
    let db = Arc::new(Db::open(&root.join("metadata.db")).unwrap());
    let snapshotter = Native::open(&root.join("snapshots/native"), db).unwrap();
    snapshotter.prepare("base", None, Labels::new()).unwrap();
    let source = snapshotter.apply_target("base").unwrap().dir;
    match shape.as_str() {
        "small" => fill_small(&source),
        "big" => fill_big(&source),
        other => panic!("unknown tree {other:?}: small or big"),
    }
    snapshotter.commit("base-c", "base", Labels::new()).unwrap();

    let (mut ours, mut cp) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let key = format!("copy-{run}");
        let start = Instant::now();
        snapshotter
            .prepare(&key, Some("base-c"), Labels::new())
            .unwrap();
        ours.push(start.elapsed());
        snapshotter.remove(&key).unwrap();

        let dst = root.join(format!("cp-{run}"));
        std::fs::create_dir(&dst).unwrap();
        let start = Instant::now();
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto", "--"])
            .arg(source.join("."))
            .arg(&dst)
            .status()
            .unwrap();
        cp.push(start.elapsed());
        assert!(status.success(), "cp -a failed");
        std::fs::remove_dir_all(&dst).unwrap();
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (ours, cp) = (median(ours), median(cp));
    println!(
        "{shape}: in-process copy {:.3} s, cp -a {:.3} s (medians of {runs}, {threads} CPUs): \
         cp -a / in-process = {:.2}",
        ours.as_secs_f64(),
        cp.as_secs_f64(),
        cp.as_secs_f64() / ours.as_secs_f64()
    );
}
