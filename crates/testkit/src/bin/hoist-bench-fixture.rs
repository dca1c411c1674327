//! `hoist-bench-fixture`: the images of the pull benchmark (`bench/run`).
//!
//! Builds the benchmark's image shapes deterministically (a fixed PRNG and
//! fixed mtimes: the same tars and diffIDs everywhere), pushes them to the
//! real CNCF registry started on a free 127.0.0.1 port, and either keeps
//! that registry's storage as a cache (`--cache`) or serves the `distro`
//! shape as `bench/image:latest` (the mode `bench/hoistd` uses).
//!
//! ```text
//! hoist-bench-fixture --cache DIR [--shapes NAME,…] [--scale PERCENT]
//! hoist-bench-fixture [--scale PERCENT] [--summary FILE] [-- COMMAND [ARGS…]]
//! ```
//!
//! The shapes (`--shapes`, default all), each pushed as `bench/<name>:latest`:
//!
//! - `small`: 1 gzip layer, ~2 MB (a minimal base image);
//! - `distro`: 5 gzip layers, ~180 MB gzip / 440 MB tar, a distribution
//!   with packages: ~20,000 small text files, semi-compressible libraries, a
//!   runtime of large files, an application, and a layer of changes with
//!   whiteouts and an opaque directory;
//! - `files50k`: 1 gzip layer of 50,000 small files (~28 MB gzip);
//! - `bigfile`: 1 gzip layer holding one 1 GiB file that compresses only a
//!   little (~880 MB gzip);
//! - `distro-zstd`: the tars of `distro`, compressed with zstd (level 3);
//! - `layers128`: 128 small gzip layers.
//!
//! And, by name only (not in the default list), the shapes of the scaling
//! series (`bench/scaling`), whose size is in their name:
//!
//! - `filesN` (`files1000` … `files200000`): 1 gzip layer of N small files,
//!   made as `files50k` is (`files50000` is `files50k`);
//! - `layersN` (`layers1` … `layers128`): N small gzip layers made as those
//!   of `layers128` are: the first N of them up to 128 (`layers128` is
//!   `layers128`), the same pattern beyond.
//!
//! `--scale` does not change them: their name is their size.
//!
//! With `--cache DIR`, the registry's storage ends up in `DIR/storage` (moved
//! there whole once every shape is pushed) and a summary of every shape in
//! `DIR/shapes.json`; the registry is then stopped. Serve it again with
//! `docker-registry` and `rootdirectory: DIR/storage` (or a copy of it).
//!
//! Without `--cache`: serves the `distro` shape as `bench/image:latest`,
//! running COMMAND with `REGISTRY=127.0.0.1:PORT` and
//! `BENCH_REF=127.0.0.1:PORT/bench/image:latest` in its environment and
//! exiting with its status, or without one until SIGTERM or SIGINT. The
//! summary is written (by a rename, so it appears whole) once the image is
//! pushed.

use std::path::PathBuf;
use std::process::ExitCode;

use hoist_testkit::{Compression, Format, Image, Layer, LayerBuilder, Registry};
use serde_json::json;

const REPOSITORY: &str = "bench/image";
const TAG: &str = "latest";

/// SplitMix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A size between `lo` and `hi`, log-uniformly: many small, few large.
    fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let (lo_f, hi_f) = (lo as f64, hi as f64);
        (lo_f * (hi_f / lo_f).powf(self.unit())) as usize
    }

    fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        let end = out.len() + len;
        while out.len() + 8 <= end {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        let rest = end - out.len();
        out.extend_from_slice(&self.next().to_le_bytes()[..rest]);
    }
}

/// Generates text that compresses about as well as documentation and source
/// code (gzip: roughly 3:1): Zipf-like draws from a fixed vocabulary.
struct Text {
    words: Vec<Vec<u8>>,
}

impl Text {
    fn new() -> Text {
        let mut rng = Rng::new(7);
        let letters = b"etaoinshrdlcumwfgypbvkjxqz_";
        let words = (0..4096)
            .map(|_| {
                let len = 2 + rng.below(9) as usize;
                (0..len)
                    .map(|_| {
                        // Skewed towards frequent letters.
                        let i = (rng.unit().powi(2) * letters.len() as f64) as usize;
                        letters[i.min(letters.len() - 1)]
                    })
                    .collect()
            })
            .collect();
        Text { words }
    }

    fn generate(&self, rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
        let end = out.len() + len;
        let mut column = 0;
        while out.len() < end {
            let i = (rng.unit().powi(3) * self.words.len() as f64) as usize;
            let word = &self.words[i.min(self.words.len() - 1)];
            out.extend_from_slice(word);
            column += word.len() + 1;
            let r = rng.below(100);
            if column > 60 + rng.below(20) as usize {
                out.push(b'\n');
                column = 0;
                if r < 30 {
                    out.extend_from_slice(b"    ");
                    column = 4;
                }
            } else if r < 6 {
                out.extend_from_slice(b"(); ");
                column += 3;
            } else if r < 10 {
                out.extend_from_slice(b", ");
                column += 1;
            } else {
                out.push(b' ');
            }
        }
        out.truncate(end);
    }

    /// Semi-compressible "binary" content, built from segments: random bytes
    /// (machine code, hashes: `random` percent of the segments), zero padding
    /// and small integer tables (20 %), repeats of recent segments (20 %),
    /// and string tables (the rest). With 25 % random segments gzip makes it
    /// about 2:1.
    fn binary(&self, rng: &mut Rng, len: usize, random: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let segment = (256 + rng.below(3840) as usize).min(len - out.len());
            let draw = rng.below(100);
            if draw < random {
                rng.fill(&mut out, segment);
            } else if draw < random + 20 {
                for _ in 0..segment {
                    let byte = if rng.below(16) == 0 {
                        rng.below(16) as u8
                    } else {
                        0
                    };
                    out.push(byte);
                }
            } else if draw >= 80 && out.len() > 32768 + segment {
                // A repeat within deflate's 32 KiB window, as in code.
                let back = segment + rng.below((32768 - segment) as u64) as usize;
                let start = out.len() - back;
                out.extend_from_within(start..start + segment);
            } else {
                self.generate(rng, &mut out, segment);
            }
        }
        out
    }

    /// Mostly incompressible content (media, compressed archives, model
    /// weights): `random` percent of the segments random bytes, the rest
    /// text. With 65 % gzip saves about a fifth.
    fn mostly_random(&self, rng: &mut Rng, out: &mut Vec<u8>, len: usize, random: u64) {
        let end = out.len() + len;
        while out.len() < end {
            let segment = (4096 + rng.below(60_000) as usize).min(end - out.len());
            if rng.below(100) < random {
                rng.fill(out, segment);
            } else {
                self.generate(rng, out, segment);
            }
        }
    }

    /// [`text`](Self::text) of a log-uniform length in `lo..hi`.
    fn text_between(&self, rng: &mut Rng, lo: usize, hi: usize) -> Vec<u8> {
        let len = rng.log_uniform(lo, hi);
        self.text(rng, len)
    }

    fn text(&self, rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        self.generate(rng, &mut out, len);
        out
    }
}

/// One layer's tar, before compression.
struct Tar {
    name: &'static str,
    tar: Vec<u8>,
    /// Regular files in it.
    files: u64,
}

fn build_tar(
    name: &'static str,
    seed: u64,
    text: &Text,
    fill: impl FnOnce(&mut LayerBuilder, &mut Rng, &Text) -> u64,
) -> Tar {
    let mut rng = Rng::new(seed);
    let mut builder = LayerBuilder::new();
    let files = fill(&mut builder, &mut rng, text);
    Tar {
        name,
        tar: builder.finish(),
        files,
    }
}

/// One compressed layer of a shape, for the summary.
struct Built {
    name: &'static str,
    layer: Layer,
    tar_size: u64,
    files: u64,
}

/// Compresses every tar, on as many threads as there are cores.
fn compress(tars: &[Tar], compression: Compression) -> Vec<Built> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(tars.len());
    let mut out: Vec<(usize, Built)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(t) = tars.get(i) else { break };
                        done.push((
                            i,
                            Built {
                                name: t.name,
                                layer: Layer::from_tar(compression, Format::Oci, &t.tar),
                                tar_size: t.tar.len() as u64,
                                files: t.files,
                            },
                        ));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("compression thread"))
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, b)| b).collect()
}

/// `n` scaled by `scale` percent, at least 1.
fn scaled(n: usize, scale: usize) -> usize {
    (n * scale / 100).max(1)
}

/// The directories the `distro` base layer makes first, which its changes
/// layer writes into again (tar order: parents before children).
const DISTRO_DIRS: [&str; 4] = ["etc", "usr", "usr/share", "usr/share/doc"];

/// The five layers of the `distro` shape (~440 MB of tar), built in
/// parallel.
fn distro_tars(scale: usize) -> Vec<Tar> {
    let text = Text::new();
    let text = &text;
    std::thread::scope(|scope| {
        // 1. A base system: ~20,000 small text files in 680 package
        //    directories, with symlinks and a few hardlinks.
        let base = scope.spawn(move || {
            build_tar("base: many small files", 1, text, |l, rng, text| {
                let mut files = 0;
                for dir in DISTRO_DIRS {
                    l.add_dir(dir, 0o755);
                }
                l.add_dir("usr/lib", 0o755);
                for i in 0..200 {
                    let body = text.text_between(rng, 32, 4096);
                    l.add_file(&format!("etc/conf-{i:03}.conf"), &body, 0o644);
                    files += 1;
                }
                for p in 0..scaled(680, scale) {
                    let dir = format!("usr/share/doc/pkg-{p:04}");
                    l.add_dir(&dir, 0o755);
                    let count = 10 + rng.below(41);
                    for f in 0..count {
                        let body = text.text_between(rng, 64, 24576);
                        let path = format!("{dir}/file-{f:02}.txt");
                        l.add_file(&path, &body, if f % 7 == 0 { 0o755 } else { 0o644 });
                        files += 1;
                        if f % 10 == 3 {
                            l.add_symlink(
                                &format!("{dir}/link-{f:02}"),
                                &format!("file-{f:02}.txt"),
                            );
                        }
                    }
                    if p % 50 == 0 {
                        l.add_hardlink(&format!("{dir}/hardlink"), &format!("{dir}/file-00.txt"));
                    }
                }
                files
            })
        });
        // Every layer lists the parent directories of what it changes, as
        // the layer diffs of docker and BuildKit do.
        // 2. Libraries: ~800 semi-compressible files, 8 KiB to 1 MiB.
        let libs = scope.spawn(move || {
            build_tar("libs: semi-compressible", 2, text, |l, rng, text| {
                l.add_dir("usr", 0o755)
                    .add_dir("usr/lib", 0o755)
                    .add_dir("usr/lib/x86_64-linux-gnu", 0o755);
                let count = scaled(800, scale);
                for i in 0..count {
                    let len = rng.log_uniform(8 << 10, 1 << 20);
                    let body = text.binary(rng, len, 12);
                    l.add_file(
                        &format!("usr/lib/x86_64-linux-gnu/libbench{i:04}.so.1"),
                        &body,
                        0o755,
                    );
                }
                count as u64
            })
        });
        // 3. A runtime: two large semi-compressible files and a small
        //    incompressible one.
        let runtime = scope.spawn(move || {
            build_tar("runtime: 3 large files", 3, text, |l, rng, text| {
                l.add_dir("opt", 0o755).add_dir("opt/runtime", 0o755);
                for name in ["libruntime.so", "modules.bin"] {
                    let body = text.binary(rng, scaled(64 << 20, scale), 12);
                    l.add_file(&format!("opt/runtime/{name}"), &body, 0o755);
                }
                let mut blob = Vec::new();
                rng.fill(&mut blob, scaled(8 << 20, scale));
                l.add_file("opt/runtime/data.pak", &blob, 0o644);
                3
            })
        });
        // 4. The application: ~4,000 small source files and a random asset.
        let app = scope.spawn(move || {
            build_tar("app: sources + asset", 4, text, |l, rng, text| {
                l.add_dir("app", 0o755);
                let mut files = 0;
                for m in 0..scaled(100, scale) {
                    let dir = format!("app/module_{m:03}");
                    l.add_dir(&dir, 0o755);
                    for f in 0..40 {
                        let body = text.text_between(rng, 256, 16384);
                        l.add_file(&format!("{dir}/src_{f:02}.py"), &body, 0o644);
                        files += 1;
                    }
                }
                let mut asset = Vec::new();
                rng.fill(&mut asset, scaled(8 << 20, scale));
                l.add_file("app/assets.bin", &asset, 0o644);
                files + 1
            })
        });
        // 5. Changes: whiteouts over the base layer, an opaque directory, and
        //    rewritten configuration files.
        let changes = scope.spawn(move || {
            build_tar("changes: whiteouts", 5, text, |l, rng, text| {
                let mut files = 0;
                for dir in DISTRO_DIRS {
                    l.add_dir(dir, 0o755);
                }
                for p in (0..scaled(600, scale)).step_by(12) {
                    l.add_dir(&format!("usr/share/doc/pkg-{p:04}"), 0o755)
                        .add_whiteout(&format!("usr/share/doc/pkg-{p:04}/file-01.txt"));
                }
                l.add_dir("usr/share/doc/pkg-0001", 0o755)
                    .add_opaque("usr/share/doc/pkg-0001")
                    .add_file("usr/share/doc/pkg-0001/README", b"replaced\n", 0o644);
                for i in (0..200).step_by(4) {
                    let body = text.text_between(rng, 32, 4096);
                    l.add_file(&format!("etc/conf-{i:03}.conf"), &body, 0o600);
                    files += 1;
                }
                files + 1
            })
        });
        [base, libs, runtime, app, changes]
            .into_iter()
            .map(|handle| handle.join().expect("layer builder thread"))
            .collect()
    })
}

/// A minimal base image in one layer (~2 MB gzip): a few dozen binaries,
/// a few hundred small text files, symlinks.
fn small_tar(scale: usize, text: &Text) -> Tar {
    build_tar("small base", 11, text, |l, rng, text| {
        let mut files = 0;
        for dir in [
            "bin",
            "etc",
            "lib",
            "usr",
            "usr/bin",
            "usr/share",
            "var",
            "tmp",
        ] {
            l.add_dir(dir, 0o755);
        }
        for i in 0..scaled(48, scale) {
            let len = rng.log_uniform(8 << 10, 256 << 10);
            let body = text.binary(rng, len, 25);
            let dir = if i % 3 == 0 {
                "bin"
            } else if i % 3 == 1 {
                "lib"
            } else {
                "usr/bin"
            };
            l.add_file(&format!("{dir}/prog{i:02}"), &body, 0o755);
            files += 1;
            if i % 4 == 0 {
                l.add_symlink(
                    &format!("usr/bin/alias{i:02}"),
                    &format!("/{dir}/prog{i:02}"),
                );
            }
        }
        for i in 0..scaled(400, scale) {
            let dir = format!("usr/share/misc{:02}", i / 40);
            if i % 40 == 0 {
                l.add_dir(&dir, 0o755);
            }
            let body = text.text_between(rng, 64, 4096);
            l.add_file(&format!("{dir}/f{i:03}.txt"), &body, 0o644);
            files += 1;
        }
        files
    })
}

/// One layer of 50,000 small files (a language's package tree): 2,500
/// directories three levels deep, 20 files each, 64 B to 6 KiB of text.
fn files50k_tar(scale: usize, text: &Text) -> Tar {
    files_tar("50,000 small files", scaled(50_000, scale), text)
}

/// The seed of every many-small-files layer: `filesN` draws the same
/// sizes and contents as `files50k`, so the series differ only in count.
const FILES_SEED: u64 = 12;

/// One layer of `files` small files, 20 to a directory, under
/// `usr/lib/node_modules/pkg-NNN/libNN/` (ten directories per package),
/// each 64 B to 6 KiB of text (log-uniform).
fn files_tar(name: &'static str, files: usize, text: &Text) -> Tar {
    build_tar(name, FILES_SEED, text, |l, rng, text| {
        let dirs = files.div_ceil(20);
        l.add_dir("usr", 0o755)
            .add_dir("usr/lib", 0o755)
            .add_dir("usr/lib/node_modules", 0o755);
        for d in 0..dirs {
            let top = format!("usr/lib/node_modules/pkg-{:03}", d / 10);
            if d % 10 == 0 {
                l.add_dir(&top, 0o755);
            }
            let dir = format!("{top}/lib{:02}", d % 10);
            l.add_dir(&dir, 0o755);
            for f in 0..20.min(files - d * 20) {
                let body = text.text_between(rng, 64, 6144);
                l.add_file(&format!("{dir}/m{f:02}.js"), &body, 0o644);
            }
        }
        files as u64
    })
}

/// One layer holding one 1 GiB file that gzip shrinks by only ~20 %.
fn bigfile_tar(scale: usize, text: &Text) -> Tar {
    build_tar("one 1 GiB file", 13, text, |l, rng, text| {
        let mut body = Vec::new();
        text.mostly_random(rng, &mut body, scaled(1 << 30, scale), 65);
        l.add_dir("data", 0o755);
        l.add_file("data/model.bin", &body, 0o644);
        1
    })
}

/// 128 small layers: each adds a directory of 1 to 40 small files and
/// rewrites one shared file.
fn layers128_tars(scale: usize, text: &Text) -> Vec<Tar> {
    layers_tars(scaled(128, scale).min(128), text)
}

/// `count` small layers: layer `i` adds `opt/step-i/` with 1 to 40 small
/// files and rewrites `etc/steps`, so the image's tree has one
/// `etc/steps` and every layer's files. Layer `i` is the same whatever
/// `count` is (its own seed), so `layersN` is the first N layers of
/// `layers128`.
///
/// Every layer lists `etc` and `opt`, the parents of what it changes, as
/// docker's and BuildKit's diffs do.
fn layers_tars(count: usize, text: &Text) -> Vec<Tar> {
    (0..count)
        .map(|i| {
            let name: &'static str = Box::leak(format!("layer {i:03}").into_boxed_str());
            build_tar(name, 100 + i as u64, text, |l, rng, text| {
                l.add_dir("etc", 0o755).add_dir("opt", 0o755);
                let dir = format!("opt/step-{i:03}");
                l.add_dir(&dir, 0o755);
                let n = 1 + rng.below(40);
                for f in 0..n {
                    let body = text.text_between(rng, 64, 16384);
                    l.add_file(&format!("{dir}/f{f:02}"), &body, 0o644);
                }
                l.add_file("etc/steps", format!("{i}\n").as_bytes(), 0o644);
                n + 1
            })
        })
        .collect()
}

/// Every shape, in the order of the table.
const SHAPES: [&str; 6] = [
    "small",
    "distro",
    "files50k",
    "bigfile",
    "distro-zstd",
    "layers128",
];

/// The most files and layers a scaling shape may have: beyond them the
/// fixture's memory (the whole tar is built in memory) or the registry
/// would be what is measured.
const MAX_SERIES_FILES: usize = 2_000_000;
const MAX_SERIES_LAYERS: usize = 1_000;

/// A shape of the scaling series (`bench/scaling`), whose size is in its
/// name: `filesN` or `layersN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Series {
    /// `filesN`: one layer of N small files.
    Files(usize),
    /// `layersN`: N small layers.
    Layers(usize),
}

impl Series {
    fn parse(name: &str) -> Option<Series> {
        // Digits only: `usize::from_str` would also take `files+5`.
        let count = |digits: &str, max: usize| {
            let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            all_digits
                .then(|| digits.parse::<usize>().ok())
                .flatten()
                .filter(|n| (1..=max).contains(n))
        };
        if let Some(digits) = name.strip_prefix("files") {
            count(digits, MAX_SERIES_FILES).map(Series::Files)
        } else if let Some(digits) = name.strip_prefix("layers") {
            count(digits, MAX_SERIES_LAYERS).map(Series::Layers)
        } else {
            None
        }
    }
}

fn is_known_shape(name: &str) -> bool {
    SHAPES.contains(&name) || Series::parse(name).is_some()
}

fn describe(shape: &str) -> String {
    match shape {
        "small" => "1 layer, small base image".into(),
        "distro" => "5 layers, distro with packages".into(),
        "files50k" => "1 layer, 50,000 small files".into(),
        "bigfile" => "1 layer, one 1 GiB file".into(),
        "distro-zstd" => "distro as zstd".into(),
        "layers128" => "128 small layers".into(),
        _ => match Series::parse(shape) {
            Some(Series::Files(1)) => "1 layer, 1 small file".into(),
            Some(Series::Files(n)) => format!("1 layer, {} small files", thousands(n)),
            Some(Series::Layers(1)) => "1 small layer".into(),
            Some(Series::Layers(n)) => format!("{} small layers", thousands(n)),
            None => "?".into(),
        },
    }
}

/// `n` with a comma every three digits, as the fixed shapes are described.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Builds the layers of shape `name`. `distro` is kept for `distro-zstd`.
fn build_shape(name: &str, scale: usize, distro: &mut Option<Vec<Tar>>) -> Vec<Built> {
    let text = Text::new();
    match name {
        "small" => compress(&[small_tar(scale, &text)], Compression::Gzip),
        "distro" | "distro-zstd" => {
            let tars = distro.get_or_insert_with(|| distro_tars(scale));
            let compression = if name == "distro" {
                Compression::Gzip
            } else {
                Compression::Zstd
            };
            compress(tars, compression)
        }
        "files50k" => compress(&[files50k_tar(scale, &text)], Compression::Gzip),
        "bigfile" => compress(&[bigfile_tar(scale, &text)], Compression::Gzip),
        "layers128" => compress(&layers128_tars(scale, &text), Compression::Gzip),
        other => match Series::parse(other) {
            Some(Series::Files(n)) => {
                let name = Box::leak(format!("{} small files", thousands(n)).into_boxed_str());
                compress(&[files_tar(name, n, &text)], Compression::Gzip)
            }
            Some(Series::Layers(n)) => compress(&layers_tars(n, &text), Compression::Gzip),
            None => panic!("unknown shape {other}"),
        },
    }
}

fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        "x86" => "linux/386",
        "arm" => "linux/arm",
        "riscv64" => "linux/riscv64",
        "powerpc64" => "linux/ppc64le",
        "s390x" => "linux/s390x",
        _ => "linux/amd64",
    }
}

struct Args {
    scale: usize,
    summary: Option<PathBuf>,
    cache: Option<PathBuf>,
    shapes: Vec<String>,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        scale: 100,
        summary: None,
        cache: None,
        shapes: SHAPES.iter().map(|s| s.to_string()).collect(),
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--scale" => {
                let value = it.next().ok_or("--scale takes PERCENT")?;
                args.scale = value
                    .parse()
                    .ok()
                    .filter(|&s| (1..=1000).contains(&s))
                    .ok_or("--scale takes a percentage from 1 to 1000")?;
            }
            "--summary" => args.summary = Some(it.next().ok_or("--summary takes FILE")?.into()),
            "--cache" => args.cache = Some(it.next().ok_or("--cache takes DIR")?.into()),
            "--shapes" => {
                let value = it.next().ok_or("--shapes takes NAME,…")?;
                args.shapes = value.split(',').map(str::to_string).collect();
                if let Some(bad) = args.shapes.iter().find(|s| !is_known_shape(s)) {
                    return Err(format!(
                        "unknown shape {bad:?} (shapes: {}, filesN up to {MAX_SERIES_FILES}, \
                         layersN up to {MAX_SERIES_LAYERS})",
                        SHAPES.join(",")
                    ));
                }
            }
            "--" => {
                args.command = it.collect();
                break;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// Waits for SIGINT or SIGTERM, or, with a command, for the command to end.
/// Returns the exit code to use.
fn serve(command: &[String], env: &[(&str, String)]) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let Some((program, program_args)) = command.split_first() else {
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = sigint.recv() => {}
            }
            return ExitCode::SUCCESS;
        };
        let mut child = match tokio::process::Command::new(program)
            .args(program_args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .spawn()
        {
            Ok(child) => child,
            Err(error) => {
                #[allow(clippy::print_stderr, reason = "a binary reports its failure")]
                {
                    eprintln!("hoist-bench-fixture: cannot run {program}: {error}");
                }
                return ExitCode::from(127);
            }
        };
        loop {
            let signal = tokio::select! {
                status = child.wait() => {
                    let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
                    return ExitCode::from(code.clamp(0, 255) as u8);
                }
                _ = sigterm.recv() => rustix::process::Signal::TERM,
                _ = sigint.recv() => rustix::process::Signal::INT,
            };
            // Pass the signal on and wait for the command to end.
            if let Some(pid) = child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32))
            {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    })
}

fn layers_json(built: &[Built]) -> Vec<serde_json::Value> {
    built
        .iter()
        .map(|b| {
            json!({
                "name": b.name,
                "media_type": b.layer.media_type,
                "digest": b.layer.digest,
                "diff_id": b.layer.diff_id,
                "size": b.layer.size(),
                "tar_size": b.tar_size,
                "files": b.files,
            })
        })
        .collect()
}

fn write_whole(path: &std::path::Path, bytes: &[u8]) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `--cache DIR`: builds and pushes every shape, one at a time (the largest
/// needs ~4 GB of memory), then moves the registry's storage to
/// `DIR/storage` and writes `DIR/shapes.json`.
#[allow(clippy::print_stderr, reason = "a binary reports its progress")]
fn build_cache(cache: &std::path::Path, shapes: &[String], scale: usize) -> ExitCode {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(cache).unwrap_or_else(|e| panic!("create {}: {e}", cache.display()));
    let platform = host_platform();
    let registry = Registry::plain();
    let mut distro = None;
    let mut summaries = Vec::new();
    for name in shapes {
        let t0 = std::time::Instant::now();
        let built = build_shape(name, scale, &mut distro);
        if name == "distro-zstd" || !shapes.iter().any(|s| s == "distro-zstd") {
            distro = None;
        }
        let image = Image::single(
            Format::Oci,
            platform,
            built.iter().map(|b| b.layer.clone()).collect(),
        );
        let repository = format!("bench/{name}");
        let pushed = registry.push(&image, &repository, TAG);
        let size: u64 = built.iter().map(|b| b.layer.size()).sum();
        let tar_size: u64 = built.iter().map(|b| b.tar_size).sum();
        eprintln!(
            "hoist-bench-fixture: {name}: {} layers, {:.1} MB compressed, {:.1} MB tar, built and pushed in {:.1}s",
            built.len(),
            size as f64 / 1e6,
            tar_size as f64 / 1e6,
            t0.elapsed().as_secs_f64()
        );
        summaries.push(json!({
            "name": name,
            "description": describe(name),
            "repository": repository,
            "tag": TAG,
            "manifest": pushed.digest,
            "config": image.config_digest(),
            "compression": if name == "distro-zstd" { "zstd" } else { "gzip" },
            "whiteouts": name.starts_with("distro"),
            "size": size,
            "tar_size": tar_size,
            "files": built.iter().map(|b| b.files).sum::<u64>(),
            "layers": layers_json(&built),
        }));
    }
    drop(distro);
    let storage = cache.join("storage");
    let _ = std::fs::remove_dir_all(&storage);
    let from = registry.dir().join("storage");
    if std::fs::rename(&from, &storage).is_err() {
        // Another filesystem: copy.
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&storage)
            .status()
            .expect("run cp");
        assert!(
            status.success(),
            "cp -a {} {}",
            from.display(),
            storage.display()
        );
    }
    drop(registry);
    let summary = json!({
        "platform": platform,
        "scale": scale,
        "shapes": summaries,
    });
    write_whole(
        &cache.join("shapes.json"),
        &serde_json::to_vec_pretty(&summary).expect("summary json"),
    );
    eprintln!(
        "hoist-bench-fixture: cache in {} ({:.1}s)",
        cache.display(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

#[allow(clippy::print_stderr, reason = "a binary reports its progress")]
fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("hoist-bench-fixture: {error}");
            eprintln!(
                "usage: hoist-bench-fixture --cache DIR [--shapes NAME,…] [--scale PERCENT]\n       \
                 hoist-bench-fixture [--scale PERCENT] [--summary FILE] [-- COMMAND [ARGS…]]"
            );
            return ExitCode::from(2);
        }
    };
    if let Some(cache) = &args.cache {
        return build_cache(cache, &args.shapes, args.scale);
    }

    let started = std::time::Instant::now();
    let built = compress(&distro_tars(args.scale), Compression::Gzip);
    let platform = host_platform();
    let image = Image::single(
        Format::Oci,
        platform,
        built.iter().map(|b| b.layer.clone()).collect(),
    );
    let build_time = started.elapsed();

    let registry = Registry::plain();
    let pushed = registry.push(&image, REPOSITORY, TAG);
    eprintln!(
        "hoist-bench-fixture: built in {:.1}s, pushed {} in {:.1}s",
        build_time.as_secs_f64(),
        pushed.reference,
        (started.elapsed() - build_time).as_secs_f64()
    );

    if let Some(path) = &args.summary {
        let layers = layers_json(&built);
        let summary = json!({
            "reference": pushed.reference,
            "registry": registry.host(),
            "repository": REPOSITORY,
            "tag": TAG,
            "platform": platform,
            "manifest": pushed.digest,
            "config": image.config_digest(),
            "size": built.iter().map(|b| b.layer.size()).sum::<u64>(),
            "tar_size": built.iter().map(|b| b.tar_size).sum::<u64>(),
            "files": built.iter().map(|b| b.files).sum::<u64>(),
            "layers": layers,
            "registry_dir": registry.dir(),
        });
        write_whole(
            path,
            &serde_json::to_vec_pretty(&summary).expect("summary json"),
        );
    }
    // The benchmark should not share the machine with ~1 GB of fixture.
    drop(image);
    drop(built);

    let env = [
        ("REGISTRY", registry.host()),
        ("BENCH_REF", pushed.reference.clone()),
    ];
    let code = serve(&args.command, &env);
    drop(registry);
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_testkit::sha256_digest;

    /// `sha256:…` of the diffIDs of `tars`, one a line.
    fn digest_of_diff_ids(tars: &[Tar]) -> String {
        let lines: String = tars.iter().map(|t| sha256_digest(&t.tar) + "\n").collect();
        sha256_digest(lines.as_bytes())
    }

    /// The scaling shapes share the code of `files50k` and `layers128`;
    /// those two build the same tars as the main bench's (pinned here, at
    /// a small `--scale`), so that `bench/run`'s images change only on
    /// purpose (its results are compared from run to run). Last changed
    /// on purpose: `layers128`'s layers list their parent directories.
    #[test]
    fn files50k_and_layers128_are_the_tars_they_were() {
        let text = Text::new();
        assert_eq!(
            sha256_digest(&files50k_tar(1, &text).tar),
            "sha256:d45d8862419412948029cd2bd5f4ef4d0deeec20a00d28cdb10a17b8b6d0dc48"
        );
        assert_eq!(
            digest_of_diff_ids(&layers128_tars(10, &text)),
            "sha256:2ac5ffa30503d0ccacf94d27bf3af447713d5e6f3ee17ab4ee304fae80fd01cd"
        );
    }

    #[test]
    fn series_shapes_are_named_by_their_size() {
        assert_eq!(Series::parse("files1000"), Some(Series::Files(1000)));
        assert_eq!(Series::parse("files200000"), Some(Series::Files(200_000)));
        assert_eq!(Series::parse("layers1"), Some(Series::Layers(1)));
        assert_eq!(Series::parse("layers128"), Some(Series::Layers(128)));
        for bad in [
            "files",
            "files0",
            "files+5",
            "files50k",
            "layers",
            "layers0",
            "layers-1",
            "distro",
            "layers1001",
        ] {
            assert_eq!(Series::parse(bad), None, "{bad}");
        }
        assert!(is_known_shape("layers128") && is_known_shape("files50k"));
        assert_eq!(describe("files200000"), "1 layer, 200,000 small files");
        assert_eq!(describe("layers8"), "8 small layers");
        assert_eq!(describe("files50k"), "1 layer, 50,000 small files");
    }

    #[test]
    fn files_n_has_n_files() {
        let text = Text::new();
        for n in [1, 19, 20, 21, 450] {
            let tar = files_tar("test", n, &text);
            assert_eq!(tar.files, n as u64);
            let regular = entries(&tar.tar)
                .iter()
                .filter(|(kind, _)| kind.is_file())
                .count();
            assert_eq!(regular, n);
        }
    }

    /// `layersN` is the first N layers of `layers128`, so the series is one
    /// construction throughout.
    #[test]
    fn layers_n_is_a_prefix_of_layers128() {
        let text = Text::new();
        let all = layers128_tars(100, &text);
        let some = layers_tars(5, &text);
        assert_eq!(digest_of_diff_ids(&some), digest_of_diff_ids(&all[..5]));
    }

    /// Every layer lists the parent directory of each of its entries
    /// before the entry, as docker's and BuildKit's diffs do, so that an
    /// upper layer never has to wait for the lowers to know its parents.
    #[test]
    fn every_layer_lists_the_parents_of_its_entries() {
        let text = Text::new();
        let images = [
            layers_tars(4, &text),
            vec![files_tar("test", 450, &text)],
            distro_tars(1),
        ];
        for image in &images {
            for tar in image {
                let mut dirs = std::collections::HashSet::new();
                for (kind, path) in entries(&tar.tar) {
                    let path = path.trim_end_matches('/');
                    if let Some((parent, _)) = path.rsplit_once('/') {
                        assert!(
                            dirs.contains(parent),
                            "{}: {path} before {parent}",
                            tar.name
                        );
                    }
                    if kind.is_dir() {
                        dirs.insert(path.to_string());
                    }
                }
            }
        }
    }

    fn entries(tar: &[u8]) -> Vec<(tar::EntryType, String)> {
        tar::Archive::new(tar)
            .entries()
            .expect("tar entries")
            .map(|entry| {
                let entry = entry.expect("tar entry");
                let path = entry.path().expect("entry path");
                (
                    entry.header().entry_type(),
                    path.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }
}
