//! `hoist-bench-fixture`: the registry of the pull benchmark (`bench/run`).
//!
//! Builds the benchmark image deterministically (five gzip layers, about
//! 250 MB compressed and 500 MB uncompressed: many small text files,
//! semi-compressible libraries, a few large files, an application layer and
//! a small layer of changes with whiteouts), starts the real CNCF registry on
//! a free 127.0.0.1 port with its storage under `$TMPDIR`, pushes the image
//! as `bench/image:latest`, and writes a JSON summary of it.
//!
//! ```text
//! hoist-bench-fixture [--scale PERCENT] [--summary FILE] [-- COMMAND [ARGS…]]
//! ```
//!
//! With a command, runs it with `REGISTRY=127.0.0.1:PORT` and
//! `BENCH_REF=127.0.0.1:PORT/bench/image:latest` in its environment and exits
//! with its status. Without one, serves until SIGTERM or SIGINT. Either way
//! the registry is stopped before exiting, and the summary is written (by a
//! rename, so it appears whole) only once the image is pushed.

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

    /// Semi-compressible "binary" content (gzip: roughly 2:1), built from
    /// segments: random bytes (machine code, hashes), zero padding and small
    /// integer tables, string tables, and repeats of recent segments.
    fn binary(&self, rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let segment = (256 + rng.below(3840) as usize).min(len - out.len());
            match rng.below(100) {
                0..25 => rng.fill(&mut out, segment),
                25..45 => {
                    for _ in 0..segment {
                        let byte = if rng.below(16) == 0 {
                            rng.below(16) as u8
                        } else {
                            0
                        };
                        out.push(byte);
                    }
                }
                45..80 => self.generate(rng, &mut out, segment),
                // A repeat within deflate's 32 KiB window, as in code.
                _ if out.len() > 32768 + segment => {
                    let back = segment + rng.below((32768 - segment) as u64) as usize;
                    let start = out.len() - back;
                    out.extend_from_within(start..start + segment);
                }
                _ => self.generate(rng, &mut out, segment),
            }
        }
        out
    }

    fn text(&self, rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        self.generate(rng, &mut out, len);
        out
    }
}

/// What one layer holds, for the summary.
struct Built {
    name: &'static str,
    layer: Layer,
    tar_size: u64,
    files: u64,
}

fn build_layer(
    name: &'static str,
    seed: u64,
    text: &Text,
    fill: impl FnOnce(&mut LayerBuilder, &mut Rng, &Text) -> u64,
) -> Built {
    let mut rng = Rng::new(seed);
    let mut builder = LayerBuilder::new();
    let files = fill(&mut builder, &mut rng, text);
    let tar = builder.finish();
    let layer = Layer::from_tar(Compression::Gzip, Format::Oci, &tar);
    Built {
        name,
        layer,
        tar_size: tar.len() as u64,
        files,
    }
}

/// `n` scaled by `scale` percent, at least 1.
fn scaled(n: usize, scale: usize) -> usize {
    (n * scale / 100).max(1)
}

/// The five layers of the benchmark image, built in parallel.
fn build_layers(scale: usize) -> Vec<Built> {
    let text = Text::new();
    let text = &text;
    std::thread::scope(|scope| {
        // 1. A base system: ~18,000 small text files in 600 package
        //    directories, with symlinks and a few hardlinks.
        let base = scope.spawn(move || {
            build_layer("base: many small files", 1, text, |l, rng, text| {
                let mut files = 0;
                l.add_dir("etc", 0o755)
                    .add_dir("usr", 0o755)
                    .add_dir("usr/share", 0o755)
                    .add_dir("usr/share/doc", 0o755)
                    .add_dir("usr/lib", 0o755);
                for i in 0..200 {
                    let len = rng.log_uniform(32, 4096);
                    let body = text.text(rng, len);
                    l.add_file(&format!("etc/conf-{i:03}.conf"), &body, 0o644);
                    files += 1;
                }
                for p in 0..scaled(600, scale) {
                    let dir = format!("usr/share/doc/pkg-{p:04}");
                    l.add_dir(&dir, 0o755);
                    let count = 10 + rng.below(41);
                    for f in 0..count {
                        let len = rng.log_uniform(64, 24576);
                        let body = text.text(rng, len);
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
        // 2. Libraries: ~800 semi-compressible files, 8 KiB to 1 MiB.
        let libs = scope.spawn(move || {
            build_layer("libs: semi-compressible", 2, text, |l, rng, text| {
                l.add_dir("usr/lib/x86_64-linux-gnu", 0o755);
                let count = scaled(800, scale);
                for i in 0..count {
                    let len = rng.log_uniform(8 << 10, 1 << 20);
                    let body = text.binary(rng, len);
                    l.add_file(
                        &format!("usr/lib/x86_64-linux-gnu/libbench{i:04}.so.1"),
                        &body,
                        0o755,
                    );
                }
                count as u64
            })
        });
        // 3. A runtime: two large semi-compressible files and one large
        //    incompressible one.
        let runtime = scope.spawn(move || {
            build_layer("runtime: 3 large files", 3, text, |l, rng, text| {
                l.add_dir("opt", 0o755).add_dir("opt/runtime", 0o755);
                for name in ["libruntime.so", "modules.bin"] {
                    let body = text.binary(rng, scaled(64 << 20, scale));
                    l.add_file(&format!("opt/runtime/{name}"), &body, 0o755);
                }
                let mut blob = Vec::new();
                rng.fill(&mut blob, scaled(40 << 20, scale));
                l.add_file("opt/runtime/data.pak", &blob, 0o644);
                3
            })
        });
        // 4. The application: ~4,000 small source files and one random asset.
        let app = scope.spawn(move || {
            build_layer("app: sources + asset", 4, text, |l, rng, text| {
                l.add_dir("app", 0o755);
                let mut files = 0;
                for m in 0..scaled(100, scale) {
                    let dir = format!("app/module_{m:03}");
                    l.add_dir(&dir, 0o755);
                    for f in 0..40 {
                        let len = rng.log_uniform(256, 16384);
                        let body = text.text(rng, len);
                        l.add_file(&format!("{dir}/src_{f:02}.py"), &body, 0o644);
                        files += 1;
                    }
                }
                let mut asset = Vec::new();
                rng.fill(&mut asset, scaled(24 << 20, scale));
                l.add_file("app/assets.bin", &asset, 0o644);
                files + 1
            })
        });
        // 5. Changes: whiteouts over the base layer, an opaque directory, and
        //    rewritten configuration files.
        let changes = scope.spawn(move || {
            build_layer("changes: whiteouts", 5, text, |l, rng, text| {
                let mut files = 0;
                for p in (0..scaled(600, scale)).step_by(12) {
                    l.add_whiteout(&format!("usr/share/doc/pkg-{p:04}/file-01.txt"));
                }
                l.add_dir("usr/share/doc/pkg-0001", 0o755)
                    .add_opaque("usr/share/doc/pkg-0001")
                    .add_file("usr/share/doc/pkg-0001/README", b"replaced\n", 0o644);
                for i in (0..200).step_by(4) {
                    let len = rng.log_uniform(32, 4096);
                    let body = text.text(rng, len);
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
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        scale: 100,
        summary: None,
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

#[allow(clippy::print_stderr, reason = "a binary reports its progress")]
fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("hoist-bench-fixture: {error}");
            eprintln!(
                "usage: hoist-bench-fixture [--scale PERCENT] [--summary FILE] [-- COMMAND [ARGS…]]"
            );
            return ExitCode::from(2);
        }
    };

    let started = std::time::Instant::now();
    let built = build_layers(args.scale);
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
        let layers: Vec<_> = built
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "digest": b.layer.digest,
                    "diff_id": b.layer.diff_id,
                    "size": b.layer.size(),
                    "tar_size": b.tar_size,
                    "files": b.files,
                })
            })
            .collect();
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
        let partial = path.with_extension("partial");
        std::fs::write(
            &partial,
            serde_json::to_vec_pretty(&summary).expect("summary json"),
        )
        .and_then(|()| std::fs::rename(&partial, path))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
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
