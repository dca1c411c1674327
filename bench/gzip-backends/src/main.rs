//! Inflates layer blobs with several gzip and zstd backends and prints, per
//! backend and run, the uncompressed bytes and the seconds it took, as TSV:
//!
//! ```text
//! gzip-backends [--runs N] SHAPE=FILE@SIZE[,FILE@SIZE…]…
//! backend  shape  run  bytes  seconds
//! ```
//!
//! SIZE is the blob's uncompressed size, which the whole-buffer backends
//! allocate up front (a zstd stream need not record it).
//!
//! Every blob is read into memory first; a run inflates all the blobs of a
//! shape one after another into a sink (streaming backends) or a buffer
//! (whole-buffer backends), so the time is the inflater's alone. gzip blobs
//! go through the gzip backends, zstd blobs (told by their magic bytes)
//! through the zstd ones.

use std::io::Read;
use std::time::Instant;

/// The read size of the streaming decoders (as a tar parser would ask).
const CHUNK: usize = 128 << 10;

fn flate2_backend() -> &'static str {
    if cfg!(feature = "zlib-ng") {
        "flate2 + zlib-ng"
    } else {
        "flate2 + zlib-rs"
    }
}

/// Reads `r` to the end in `chunk`-sized reads; returns the bytes read.
fn drain(mut r: impl Read, chunk: usize) -> u64 {
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("inflate: {e}"),
        }
    }
}

/// A blob and its uncompressed size.
struct Blob {
    data: Vec<u8>,
    size: usize,
}

type Inflate = fn(&Blob) -> u64;

fn flate2_stream(blob: &Blob) -> u64 {
    let blob = &blob.data[..];
    drain(flate2::bufread::MultiGzDecoder::new(blob), CHUNK)
}

/// libdeflate has no streaming API: the whole blob in, the whole tar out.
/// The output buffer is allocated per blob (part of the cost).
fn libdeflater_whole(blob: &Blob) -> u64 {
    let mut out = vec![0u8; blob.size];
    let n = libdeflater::Decompressor::new()
        .gzip_decompress(&blob.data, &mut out)
        .expect("libdeflate");
    std::hint::black_box(&out);
    n as u64
}

#[cfg(feature = "isal")]
fn isal_stream(blob: &Blob) -> u64 {
    drain(isal::read::GzipDecoder::new(&blob.data[..]), CHUNK)
}

fn zstd_default(blob: &Blob) -> u64 {
    drain(
        zstd::stream::read::Decoder::new(&blob.data[..]).expect("zstd"),
        CHUNK,
    )
}

/// The decoder reading the blob in place (no BufReader), a window limit of
/// 2 GiB (--long archives), and 4 MiB reads.
fn zstd_large(blob: &Blob) -> u64 {
    let mut d = zstd::stream::read::Decoder::with_buffer(&blob.data[..]).expect("zstd");
    d.window_log_max(31).expect("window_log_max");
    drain(d, 4 << 20)
}

fn zstd_bulk(blob: &Blob) -> u64 {
    let out = zstd::bulk::decompress(&blob.data, blob.size).expect("zstd");
    std::hint::black_box(&out);
    out.len() as u64
}

fn gzip_backends() -> Vec<(&'static str, Inflate)> {
    #[allow(unused_mut)]
    let mut v: Vec<(&'static str, Inflate)> = vec![(flate2_backend(), flate2_stream)];
    if cfg!(feature = "zlib-rs") {
        // Once per pair of builds is enough: the other backends are the
        // same in both.
        v.push(("libdeflater (whole buffer)", libdeflater_whole));
        #[cfg(feature = "isal")]
        v.push(("isal-rs (ISA-L)", isal_stream));
    }
    v
}

fn zstd_backends() -> Vec<(&'static str, Inflate)> {
    if !cfg!(feature = "zlib-rs") {
        return Vec::new();
    }
    vec![
        ("zstd, default decoder", zstd_default),
        ("zstd, large window and buffers", zstd_large),
        ("zstd, whole buffer (bulk)", zstd_bulk),
    ]
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() {
    let mut runs = 5;
    let mut shapes: Vec<(String, Vec<Blob>)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N");
            continue;
        }
        let (shape, files) = arg.split_once('=').expect("SHAPE=FILE@SIZE[,…]");
        let blobs = files
            .split(',')
            .map(|f| {
                let (f, size) = f.rsplit_once('@').expect("FILE@SIZE");
                Blob {
                    data: std::fs::read(f).unwrap_or_else(|e| panic!("read {f}: {e}")),
                    size: size.parse().expect("SIZE"),
                }
            })
            .collect();
        shapes.push((shape.to_string(), blobs));
    }
    // Runs outermost, so that drift in the machine's load spreads over
    // every backend.
    for run in 1..=runs {
        for (shape, blobs) in &shapes {
            let zstd = blobs[0].data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
            let backends = if zstd {
                zstd_backends()
            } else {
                gzip_backends()
            };
            for (name, inflate) in backends {
                let start = Instant::now();
                let bytes: u64 = blobs.iter().map(inflate).sum();
                let secs = start.elapsed().as_secs_f64();
                println!("{name}\t{shape}\t{run}\t{bytes}\t{secs:.6}");
            }
        }
        eprintln!("gzip-backends: run {run} of {runs} done");
    }
}
