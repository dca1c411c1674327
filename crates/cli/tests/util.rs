//! Shared helpers: a temporary store root with a ready `hoist` command, readers
//! of what the store holds (blobs on disk, `images ls`, `content ls`), checks of
//! the store's invariants, exit-status and one-line-error assertions, and image
//! fixtures the topic modules share.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::{
    Compression, FaultProxy, Format, Image, Layer, Pushed, Registry, StoreDir, assert_success,
    layer, scrub_env, sha256_digest, simple_image, simple_index,
};

/// The `hoist` binary under test.
pub(crate) const HOIST: &str = env!("CARGO_BIN_EXE_hoist");

/// Fails a test that needs root (mounts) when run without it, rather than
/// letting it pass unchecked; such tests are named `*_privileged`, and
/// `cargo nextest run --profile unprivileged` skips them.
pub(crate) fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root; run it as root, or run \
         `cargo nextest run --profile unprivileged` to skip the *_privileged tests"
    );
}

/// `hoist --root <root>` with a clean environment: `HOME` is `home` (so no
/// real `~/.docker/config.json` leaks in), and nothing from the caller's
/// `HOIST_*`, `DOCKER_CONFIG`, `XDG_*`, TLS or proxy variables.
pub(crate) fn hoist_command(root: &Path, home: &Path) -> Command {
    let mut command = Command::new(HOIST);
    command.arg("--root").arg(root);
    command.env("HOME", home);
    scrub_env(&mut command);
    command
}

/// A temporary store root and `HOME` ([`StoreDir`], whose paths it
/// derefs to) with a ready `hoist` command; removed on drop.
pub(crate) struct TestEnv {
    dir: StoreDir,
}

impl std::ops::Deref for TestEnv {
    type Target = StoreDir;

    fn deref(&self) -> &StoreDir {
        &self.dir
    }
}

impl TestEnv {
    pub(crate) fn new() -> TestEnv {
        TestEnv {
            dir: StoreDir::new("hoist-e2e-"),
        }
    }

    /// `hoist --root <root>` with a clean environment: `HOME` is the temporary
    /// home (so no real `~/.docker/config.json` leaks in), and nothing from
    /// the caller's `HOIST_*`, `DOCKER_CONFIG`, `XDG_*` or proxy variables.
    pub(crate) fn hoist(&self) -> Command {
        hoist_command(&self.root(), &self.home())
    }

    /// Runs `hoist --root <root> ARGS…` and returns its output.
    pub(crate) fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let mut command = self.hoist();
        command.args(args);
        command.output().expect("run hoist")
    }

    /// `hoist pull --no-unpack ARGS…`.
    pub(crate) fn pull<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let mut command = self.hoist();
        command.arg("pull").arg("--no-unpack").args(args);
        command.output().expect("run hoist pull")
    }

    /// `hoist pull --no-unpack --plain-http REFERENCE`, which must succeed;
    /// returns stdout.
    pub(crate) fn pull_ok(&self, reference: &str) -> String {
        success(&self.pull(&["--plain-http", reference]))
    }

    /// `hoist pull --no-unpack --plain-http FLAGS… REFERENCE`, which must
    /// succeed; returns stdout.
    pub(crate) fn pull_ok_with(&self, flags: &[&str], reference: &str) -> String {
        let mut args = vec!["--plain-http"];
        args.extend_from_slice(flags);
        args.push(reference);
        success(&self.pull(&args))
    }

    /// The rows of `hoist images ls` (cut at the header's column starts,
    /// since SIZE and CREATED hold spaces); the media type comes from
    /// `hoist images inspect`.
    pub(crate) fn images(&self) -> Vec<ImageRow> {
        let stdout = success(&self.run(&["images", "ls"]));
        let (header, lines) = split_table(&stdout, "images ls", "REF");
        let columns = ["REF", "DIGEST", "PLATFORMS", "SIZE", "UNPACKED", "CREATED"];
        let starts: Vec<usize> = columns
            .iter()
            .map(|c| {
                header
                    .find(c)
                    .unwrap_or_else(|| panic!("no {c} in {header:?}"))
            })
            .collect();
        lines
            .map(|line| {
                let cell = |i: usize| {
                    let end = starts
                        .get(i + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    line.get(starts[i]..end).unwrap_or("").trim().to_string()
                };
                let name = cell(0);
                let inspect = success(&self.run(&["images", "inspect", &name]));
                let details: serde_json::Value =
                    serde_json::from_str(&inspect).expect("images inspect prints JSON");
                let platforms = cell(2);
                ImageRow {
                    media_type: details["target"]["mediaType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    name,
                    digest: cell(1),
                    platforms: if platforms == "-" {
                        String::new()
                    } else {
                        platforms
                    },
                    size: cell(3),
                    unpacked: cell(4),
                    created: cell(5),
                }
            })
            .collect()
    }

    /// The names `hoist images ls -q` prints.
    pub(crate) fn image_names(&self) -> Vec<String> {
        success(&self.run(&["images", "ls", "-q"]))
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `hoist content ls`: digest → labels.
    pub(crate) fn content(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let stdout = success(&self.run(&["content", "ls"]));
        table_cells(&stdout, "content ls", "DIGEST")
            .into_iter()
            .map(|cells| {
                let labels = cells
                    .get(2)
                    .map(|labels| {
                        labels
                            .split(',')
                            .map(|pair| {
                                let (k, v) = pair.split_once('=').expect("label k=v");
                                (k.to_string(), v.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (cells[0].to_string(), labels)
            })
            .collect()
    }

    /// Every file under `content/blobs/sha256`, as `sha256:<name>` → bytes.
    pub(crate) fn stored_blobs(&self) -> BTreeMap<String, Vec<u8>> {
        stored_blobs(&self.root())
    }

    /// The digests of the stored blobs.
    pub(crate) fn stored_digests(&self) -> BTreeSet<String> {
        self.stored_blobs().into_keys().collect()
    }

    /// `hoist rootfs REFERENCE <tmp>/rootfs`, which must succeed; returns
    /// the flattened tree's directory.
    pub(crate) fn rootfs_ok(&self, reference: &str) -> PathBuf {
        let rootfs = self.path("rootfs");
        success(&self.run(&["rootfs", reference, rootfs.to_str().unwrap()]));
        rootfs
    }

    /// See [`assert_store_verified`].
    pub(crate) fn assert_store_verified(&self) {
        assert_store_verified(&self.root());
    }

    /// The ingest directory of `reference` (the content store names ingests
    /// by the sha256 of their ref, and pulls use a blob's digest as its ref).
    pub(crate) fn ingest_dir(&self, reference: &str) -> PathBuf {
        self.root()
            .join("content/ingest")
            .join(hoist_oci::digest::sha256_hex(reference.as_bytes()))
    }

    /// Creates the store by running a command that opens it, so that the
    /// processes a test starts next open an existing root.
    pub(crate) fn create_store(&self) {
        success(&self.run(&["images", "ls"]));
    }

    /// Creates the store and leaves `bytes` as the ingest of blob `digest`,
    /// as a pull interrupted while writing it would.
    pub(crate) fn leave_ingest(&self, digest: &str, bytes: &[u8]) {
        self.create_store();
        let dir = self.ingest_dir(digest);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data"), bytes).unwrap();
    }

    /// Every file left under `content/ingest`.
    pub(crate) fn ingest_files(&self) -> Vec<PathBuf> {
        files_under(&self.root().join("content").join("ingest"))
    }
}

/// The header of the `hoist … ls` table `what` printed as `stdout`, which
/// must start with the table's first column `first_column`, and the rows
/// below it.
pub(crate) fn split_table<'a>(
    stdout: &'a str,
    what: &str,
    first_column: &str,
) -> (&'a str, std::str::Lines<'a>) {
    let mut lines = stdout.lines();
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("{what} prints a header"));
    assert!(header.starts_with(first_column), "header: {header}");
    (header, lines)
}

/// The rows of a `hoist … ls` table whose cells hold no spaces (see
/// [`split_table`]), each split into its cells.
pub(crate) fn table_cells<'a>(
    stdout: &'a str,
    what: &str,
    first_column: &str,
) -> Vec<Vec<&'a str>> {
    let (_header, lines) = split_table(stdout, what, first_column);
    lines
        .map(|line| line.split_whitespace().collect())
        .collect()
}

/// One row of `hoist images ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRow {
    pub(crate) name: String,
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) platforms: String,
    pub(crate) size: String,
    pub(crate) unpacked: String,
    pub(crate) created: String,
}

/// Every file under `<root>/content/blobs/sha256`, keyed `sha256:<file name>`.
pub(crate) fn stored_blobs(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let dir = root.join("content").join("blobs").join("sha256");
    let mut blobs = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return blobs;
    };
    for entry in entries {
        let entry = entry.expect("read blob dir entry");
        assert!(
            entry.file_type().expect("file type").is_file(),
            "{} is not a regular file",
            entry.path().display()
        );
        let name = entry.file_name().into_string().expect("utf-8 blob name");
        let bytes = std::fs::read(entry.path()).expect("read blob");
        blobs.insert(format!("sha256:{name}"), bytes);
    }
    blobs
}

/// Every regular file below `dir` (none if it does not exist).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("dir entry");
            if entry.file_type().expect("file type").is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// Every stored blob's sha256 is its name (ingests may remain, as after a
/// failed pull).
#[track_caller]
pub(crate) fn assert_blobs_verify(root: &Path) {
    for (digest, bytes) in stored_blobs(root) {
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "blob {digest} does not verify"
        );
    }
}

/// The path of `registry`'s CA certificate, as `--tlscacert` takes it.
pub(crate) fn ca_cert_arg(registry: &Registry) -> String {
    let path = registry.ca_cert_path().expect("a TLS registry");
    path.to_str().expect("utf-8 path").to_string()
}

/// The store's invariants after a successful pull: every blob's sha256 is its
/// name, and no ingest is left behind.
pub(crate) fn assert_store_verified(root: &Path) {
    assert_blobs_verify(root);
    let leftovers = files_under(&root.join("content").join("ingest"));
    assert!(leftovers.is_empty(), "ingest leftovers: {leftovers:?}");
}

/// Asserts exit status 0 and returns stdout.
#[track_caller]
pub(crate) fn success(output: &Output) -> String {
    assert_success(output, "hoist")
}

/// Asserts exit status 1 with exactly one `hoist: …` error line, the last
/// line of stderr, and returns that line.
#[track_caller]
pub(crate) fn failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit status 1:\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
        String::from_utf8_lossy(&output.stdout),
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("hoist: "))
        .collect();
    assert_eq!(errors.len(), 1, "want one `hoist: ` line in:\n{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(errors[0]),
        "the error is not the last line of:\n{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "a failed command printed a result: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    errors[0].to_string()
}

/// Asserts that `line` contains every one of `needles` (case-insensitive).
#[track_caller]
pub(crate) fn assert_mentions(line: &str, needles: &[&str]) {
    let lower = line.to_lowercase();
    for needle in needles {
        assert!(
            lower.contains(&needle.to_lowercase()),
            "{line:?} does not mention {needle:?}"
        );
    }
}

/// stderr as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The set of digests of `image.blobs()`.
pub(crate) fn digests_of(image: &Image) -> BTreeSet<String> {
    image
        .blobs()
        .into_iter()
        .map(|(digest, _)| digest)
        .collect()
}

/// What a pull of `index` stores when it chooses `children`: the index itself
/// and every blob of those children.
pub(crate) fn index_with(index: &Image, children: &[&Image]) -> BTreeSet<String> {
    let mut set = BTreeSet::from([index.manifest_digest()]);
    for child in children {
        set.extend(digests_of(child));
    }
    set
}

/// The child of `index` for `platform`.
pub(crate) fn child<'a>(index: &'a Image, platform: &str) -> &'a Image {
    index
        .children()
        .iter()
        .find(|c| c.platform() == Some(platform))
        .unwrap_or_else(|| panic!("no {platform} child"))
}

/// The platform hoist picks by default, as `os/arch`.
pub(crate) fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

/// The platform of the two-platform fixtures that is not the host's.
pub(crate) fn other_platform() -> &'static str {
    match host_platform() {
        "linux/arm64" => "linux/amd64",
        _ => "linux/arm64",
    }
}

/// A layer holding `big.bin`, `len` bytes of noise from `seed`.
pub(crate) fn big_layer(compression: Compression, format: Format, seed: u64, len: usize) -> Layer {
    layer(compression, format, |l| {
        l.add_dir("data", 0o755)
            .add_file("data/big.bin", &hoist_testkit::noise(seed, len), 0o644);
    })
}

/// A single-platform host image: one small layer and one large layer of
/// `len` incompressible bytes (uncompressed tar, so the blob is as large).
pub(crate) fn big_image(seed: u64, len: usize) -> Image {
    let small = layer(Compression::Gzip, Format::Oci, |l| {
        l.add_file("hello.txt", format!("seed {seed}\n").as_bytes(), 0o644);
    });
    Image::single(
        Format::Oci,
        host_platform(),
        vec![small, big_layer(Compression::None, Format::Oci, seed, len)],
    )
}

/// The `--platform`/`--all-platforms`-independent check after a pull of
/// `reference` (as given to hoist, already normalized): the store holds
/// exactly `expected`, every blob verifies, and `images ls` lists the name
/// with `digest`.
#[track_caller]
pub(crate) fn assert_pulled(
    env: &TestEnv,
    reference: &str,
    digest: &str,
    expected: &BTreeSet<String>,
) {
    assert_eq!(
        &env.stored_digests(),
        expected,
        "stored blobs of {reference}"
    );
    env.assert_store_verified();
    let images = env.images();
    let row = images
        .iter()
        .find(|row| row.name == reference)
        .unwrap_or_else(|| panic!("{reference} not in images ls: {images:?}"));
    assert_eq!(row.digest, digest, "digest of {reference} in images ls");
    assert!(
        env.image_names().iter().any(|name| name == reference),
        "{reference} not in images ls -q"
    );
}

/// [`assert_pulled`] for `image` pulled whole: the store holds exactly its
/// blobs and `images ls` lists `reference` with its manifest digest.
#[track_caller]
pub(crate) fn assert_pulled_image(env: &TestEnv, reference: &str, image: &Image) {
    assert_pulled(env, reference, &image.manifest_digest(), &digests_of(image));
}

/// A plain registry serving `image` as `repository:tag` (stopped when the
/// registry is dropped): the setup most tests start from.
pub(crate) fn serve(image: Image, repository: &str, tag: &str) -> (Registry, Image, Pushed) {
    let registry = Registry::plain();
    let pushed = registry.push(&image, repository, tag);
    (registry, image, pushed)
}

/// A plain registry with `image` pushed as `app:1.0`, a proxy in front of
/// it, and the reference through the proxy.
pub(crate) fn behind_proxy(image: &Image) -> (Registry, FaultProxy, String) {
    let registry = Registry::plain();
    registry.push(image, "app", "1.0");
    let proxy = FaultProxy::for_registry(&registry);
    let reference = format!("{}/app:1.0", proxy.host());
    (registry, proxy, reference)
}

/// [`serve`] of the simple host image (OCI, gzip).
pub(crate) fn serve_simple(repository: &str, tag: &str) -> (Registry, Image, Pushed) {
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    serve(image, repository, tag)
}

/// [`serve_simple`], pulled (`--no-unpack`) into a fresh store.
pub(crate) fn serve_and_pull_simple(
    repository: &str,
    tag: &str,
) -> (Registry, Image, Pushed, TestEnv) {
    let (registry, image, pushed) = serve_simple(repository, tag);
    let env = TestEnv::new();
    env.pull_ok(&pushed.reference);
    (registry, image, pushed, env)
}

/// [`serve`] of a two-platform index (host and other, OCI) of
/// `compression`.
pub(crate) fn serve_two_platforms(
    compression: Compression,
    repository: &str,
    tag: &str,
) -> (Registry, Image, Pushed) {
    let platforms = [host_platform(), other_platform()];
    serve(
        simple_index(Format::Oci, compression, &platforms),
        repository,
        tag,
    )
}

/// Standard base64 with padding, for docker `config.json` `auth` fields.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes a docker `config.json` into `dir` with an `auths` entry for `host`.
pub(crate) fn write_docker_config(dir: &Path, host: &str, user: &str, password: &str) {
    std::fs::create_dir_all(dir).expect("create docker config dir");
    let config = serde_json::json!({
        "auths": { host: { "auth": base64(format!("{user}:{password}").as_bytes()) } }
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .expect("write config.json");
}
