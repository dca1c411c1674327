//! Applies one layer file to a directory with the public API, and nothing
//! else: the applier alone, for `strace` and timing (`bench/applier-syscalls`).
//!
//! ```text
//! cargo run --release -p hoist-archive --example apply -- [--overlay] [--lower DIR]... <layer.tar[.gz|.zst]> <dest>
//! ```
//!
//! The compression is told by the file's magic bytes. `dest` must exist.
//! Prints the diffID, the entry count and the time the apply took.

// An example's output is its point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use hoist_archive::{ApplyOptions, WhiteoutMode, apply_layer, detect_compression};

fn main() -> ExitCode {
    let mut options = ApplyOptions::default();
    let mut paths = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--overlay") => options.whiteouts = WhiteoutMode::Overlay,
            Some("--lower") => match args.next() {
                Some(dir) => options.lowers.push(PathBuf::from(dir)),
                None => return usage(),
            },
            Some("-h" | "--help") => return usage(),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [layer, dest] = &paths[..] else {
        return usage();
    };
    match run(layer, dest, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut cause = e.source();
            while let Some(c) = cause {
                msg.push_str(": ");
                msg.push_str(&c.to_string());
                cause = c.source();
            }
            eprintln!("apply: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: apply [--overlay] [--lower DIR]... <layer.tar[.gz|.zst]> <dest>");
    ExitCode::from(2)
}

fn run(
    layer: &std::path::Path,
    dest: &std::path::Path,
    options: &ApplyOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut magic = [0u8; 4];
    let n = File::open(layer)?.read(&mut magic)?;
    let compression = detect_compression(&magic[..n]);
    // Buffered as the engine feeds the applier, so a plain tar is not read
    // 512 bytes per syscall.
    let reader = BufReader::with_capacity(256 << 10, File::open(layer)?);
    let start = Instant::now();
    let applied = apply_layer(dest, reader, compression, options)?;
    let elapsed = start.elapsed();
    println!(
        "{} entries={} skipped={} uncompressed={} apply={:.3}s",
        applied.diff_id,
        applied.entries,
        applied.skipped.len(),
        applied.uncompressed_size,
        elapsed.as_secs_f64()
    );
    Ok(())
}
