//! Writes the seed corpora under `fuzz/corpus/<target>/` from the project's
//! fixtures: the testkit fixture builder's manifests, indexes, configs,
//! schema 1 manifests and rich layers, the parsers' unit test inputs, and
//! the hostile layers of `crates/archive/tests/apply/hostile.rs` aimed at
//! the `apply_layer` target's sandbox. Run from `fuzz/`:
//! `cargo run --example seeds`. Names are stable, so a rerun rewrites the
//! same files.

use std::path::Path;

use hoist_testkit::fixture::{
    Compression, Format, Image, LayerBuilder, simple_image, simple_index,
};
use hoist_testkit::raw_tar::{RawTar, metadata_through_symlink};
use hoist_testkit::rich::{rich_image, rich_tars};
use hoist_testkit::schema1::Schema1Image;

const HEX: &str = "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    references(&corpus.join("reference"));
    platforms(&corpus.join("platform"));
    manifests(&corpus.join("manifest"));
    challenges(&corpus.join("www_authenticate"));
    hosts(&corpus.join("hosts_toml"));
    layers(&corpus.join("apply_layer"));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn references(dir: &Path) {
    let digest = format!("sha256:{HEX}");
    let cases = [
        "alpine".to_owned(),
        "alpine:3.19".to_owned(),
        "user/app".to_owned(),
        "docker.io/library/alpine:latest".to_owned(),
        "index.docker.io/user/app:1".to_owned(),
        "127.0.0.1:5000/app:1.0".to_owned(),
        "localhost:5000/a/b".to_owned(),
        "[::1]:5000/x".to_owned(),
        "Example.COM/x/y/z".to_owned(),
        format!("alpine@{digest}"),
        format!("127.0.0.1:5000/a/b:tag@{digest}"),
        format!("a@sha512:{}", "ab".repeat(64)),
        "docker.io/a.b/c".to_owned(),
        "a-b.c_d__e/f---g:V1.0-RC_2".to_owned(),
        "Foo/bar".to_owned(),
        HEX.to_owned(),
        // Found by the target: its familiar name did not parse back.
        format!("{HEX}:h6--"),
    ];
    for (i, case) in cases.iter().enumerate() {
        write(dir, &format!("test-{i:02}"), case.as_bytes());
    }
}

fn platforms(dir: &Path) {
    let cases = [
        "linux/amd64\nlinux/amd64\nlinux/arm64\nlinux/arm/v7\n\nwindows/amd64",
        "linux/arm/v7\nlinux/arm/v6\nlinux/arm/v5\nlinux/arm/v8\nlinux/arm\nlinux/armhf",
        "linux/arm64\nlinux/aarch64/v8\nlinux/arm/v7\nlinux/arm64/v9\nlinux/386",
        "linux/amd64/v3\nlinux/amd64/v2\nlinux/amd64\nlinux/386\nlinux/x86_64",
        "windows(10.0.17763+win32k)/amd64\nwindows/amd64\nwindows/amd64",
        "arm64\nlinux/arm64",
        "linux\nlinux/s390x\nlinux/ppc64le\nlinux/riscv64\nunknown/unknown",
        "darwin/arm64\nmacos/arm64\nlinux/arm64",
        "LINUX/ARM64/V8\nlinux/arm64",
        // Reproduced by the target: `only` listed every lower variant.
        "linux/amd64/v99999999\nlinux/amd64/v4",
        // Found by the target: `to_spec` turned `armbe` into `arm64be`.
        "armbe\nlinux/armbe\nlinux/arm64be",
    ];
    for (i, case) in cases.iter().enumerate() {
        write(dir, &format!("test-{i:02}"), case.as_bytes());
    }
}

/// The selector byte of the `manifest` target's media types.
fn selector(media_type: &str) -> u8 {
    match media_type {
        "application/vnd.oci.image.index.v1+json" => 0,
        "application/vnd.oci.image.manifest.v1+json" => 1,
        "application/vnd.docker.distribution.manifest.list.v2+json" => 2,
        "application/vnd.docker.distribution.manifest.v2+json" => 3,
        "application/vnd.docker.distribution.manifest.v1+json" => 4,
        "application/vnd.docker.distribution.manifest.v1+prettyjws" => 5,
        "application/vnd.oci.image.config.v1+json" => 6,
        "application/vnd.docker.container.image.v1+json" => 7,
        other => panic!("no selector for {other}"),
    }
}

fn with_selector(media_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = vec![selector(media_type)];
    out.extend_from_slice(body);
    out
}

fn manifests(dir: &Path) {
    let mut images: Vec<(&str, Image)> = vec![
        (
            "oci-image",
            simple_image(Format::Oci, Compression::Gzip, "linux/amd64"),
        ),
        (
            "docker-image",
            simple_image(Format::Docker, Compression::Gzip, "linux/arm64/v8"),
        ),
        (
            "oci-index",
            simple_index(
                Format::Oci,
                Compression::Zstd,
                &["linux/amd64", "linux/arm/v7", "linux/arm64"],
            ),
        ),
        (
            "docker-list",
            simple_index(
                Format::Docker,
                Compression::Gzip,
                &["linux/amd64", "linux/arm/v6"],
            ),
        ),
        (
            "rich-image",
            rich_image(Format::Oci, Compression::None, "linux/amd64"),
        ),
    ];
    let nested = Image::index(
        Format::Oci,
        vec![simple_index(
            Format::Oci,
            Compression::Gzip,
            &["linux/amd64"],
        )],
    );
    images.push(("nested-index", nested));
    for (name, image) in &images {
        write(
            dir,
            name,
            &with_selector(image.media_type(), image.manifest_bytes()),
        );
        if let Some(config) = image.config_bytes() {
            let config_type = match image.media_type() {
                "application/vnd.oci.image.manifest.v1+json" => {
                    "application/vnd.oci.image.config.v1+json"
                }
                _ => "application/vnd.docker.container.image.v1+json",
            };
            write(
                dir,
                &format!("{name}-config"),
                &with_selector(config_type, config),
            );
        }
    }
    // A manifest claimed to be an index: the swap `children` refuses.
    let image = &images[0].1;
    write(
        dir,
        "swapped",
        &with_selector(
            "application/vnd.oci.image.index.v1+json",
            image.manifest_bytes(),
        ),
    );

    let layers = vec![
        hoist_testkit::fixture::Layer::from_tar(
            Compression::Gzip,
            Format::Docker,
            &LayerBuilder::new().finish(),
        );
        2
    ];
    let schema1 = Schema1Image::new("library/app", "v1", layers);
    write(
        dir,
        "schema1-signed",
        &with_selector(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            &schema1.manifest,
        ),
    );
    // The unsigned payload: the signed form up to `formatLength`, closed.
    let text = String::from_utf8(schema1.manifest.clone()).unwrap();
    let cut = text.find(",\n   \"signatures\"").unwrap_or(text.len() - 2);
    let unsigned = format!("{}\n}}", &text[..cut]);
    write(
        dir,
        "schema1-unsigned",
        &with_selector(
            "application/vnd.docker.distribution.manifest.v1+json",
            unsigned.as_bytes(),
        ),
    );
}

fn challenges(dir: &Path) {
    let cases = [
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        r#"Bearer  realm = "https://a/t?x=1,y=2" , service="a \"quoted\" \\ svc",error=insufficient_scope"#,
        r#"BASIC Realm="Registry Realm""#,
        r#"Bearer scope="repository:a/b:pull,push""#,
        r#"Basic realm="r1", Bearer realm="https://t/token",service="s", Negotiate abc=="#,
        "Basic, Bearer realm=x",
        r#"Bearer realm="open"#,
        "Negotiate abc=, Basic",
        "Negotiate /+abc==",
        // Found by the target: the token68 kept the separator before it.
        "`,.=",
    ];
    for (i, case) in cases.iter().enumerate() {
        write(dir, &format!("test-{i:02}"), case.as_bytes());
    }
}

fn hosts(dir: &Path) {
    let cases = [
        r#"server = "https://registry.example.com"

[host."http://127.0.0.1:5001"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "500ms"
  [host."http://127.0.0.1:5001".header]
    x-team = "build"
    x-many = ["a", "b"]

[host."https://mirror.example.com/v2/cache"]
  override_path = true
  ca = "mirror-ca.pem"
  client = [["client.pem", "client.key"]]
  skip_verify = false
"#,
        r#"[host."https://cache.example.com/v2/hub"]
  override_path = true
[host."https://plain.example.com"]
"#,
        "server = \"http://reg:5000\"\n",
        "server = \"https://x\"\n[host.\"http://m\"\ncapabilities = 1",
        "[host.\"http://m\"]\ncapabilites = [\"pull\"]",
        "[host.\"ftp://m\"]",
        r#"ca = ["/etc/ssl/a.pem", "b.pem"]
client = "both.pem"
skip_verify = true
dial_timeout = "1m30s"
[header]
  authorization = "Basic x"
[host."[::1]:5000"]
  client = ["c.pem", "c.key", "d.pem"]
  dial_timeout = "1.5h"
"#,
    ];
    for (i, case) in cases.iter().enumerate() {
        write(dir, &format!("test-{i:02}"), case.as_bytes());
    }
}

/// Selector bits of the `apply_layer` target.
const PLAIN: u8 = 0;
const GZIP: u8 = 1;
const ZSTD: u8 = 2;
const OVERLAY: u8 = 4;

fn layers(dir: &Path) {
    let mut cases: Vec<(&str, u8, Vec<u8>)> = Vec::new();

    // The applier's planted names: `up` -> ../canary, `upf` -> ../canary/file,
    // `upd` -> ../canary/dir, `far` -> ../../../../../.., `abs` and `absf`
    // -> the canary's absolute path, `top` -> /, `etc/dots` -> ../../canary,
    // `lib` -> usr/lib; plus etc/passwd and usr/lib/libc.so.
    let mut t = RawTar::new();
    t.file("../x", b"p", 0o644)
        .file("../../../../x", b"p", 0o644)
        .file("a/../../x", b"p", 0o644)
        .file("/abs/x", b"p", 0o644)
        .file("../canary/file", b"overwrite!", 0o644)
        .dir("../canary/dir", 0o777);
    cases.push(("dot-dot", PLAIN, t.finish()));

    let mut t = RawTar::new();
    t.file("up/pwned", b"p", 0o644)
        .file("upf", b"replaces the link", 0o644)
        .file("upd/inner", b"p", 0o644)
        .file("abs/file", b"p", 0o644)
        .file("absf", b"p", 0o644)
        .file("far/tmp/pwned", b"p", 0o644)
        .file("etc/dots/file", b"p", 0o644)
        .dir("top/tmp", 0o777);
    cases.push(("through-planted-links", PLAIN, t.finish()));

    let mut t = RawTar::new();
    t.symlink("evil", "/")
        .file("evil/pwned", b"p", 0o644)
        .symlink("evil2", "../../../../..")
        .file("evil2/pwned", b"p", 0o644)
        .symlink("e", "../canary")
        .file("e/file", b"x", 0o644)
        .symlink("d", "../canary/dir")
        .dir("d/inner", 0o777);
    cases.push(("symlink-then-write", GZIP, t.finish()));

    cases.push((
        "metadata-through-symlink",
        PLAIN,
        metadata_through_symlink(),
    ));

    let mut t = RawTar::new();
    t.hardlink("h1", "../canary/file")
        .hardlink("h2", "upf")
        .hardlink("h3", "up/file")
        .hardlink("h4", "absf")
        .hardlink("h5", "etc/passwd")
        .file("inside", b"in", 0o644)
        .hardlink("up/h", "inside");
    cases.push(("hardlinks", ZSTD, t.finish()));

    let mut t = RawTar::new();
    t.file("a/x", b"x", 0o644)
        .file(".wh...", b"", 0o644)
        .file("a/.wh...", b"", 0o644)
        .file("a/.wh..", b"", 0o644)
        .file(".wh.", b"", 0o644)
        .file("up/.wh.file", b"", 0o644)
        .file("upd/.wh.inner", b"", 0o644)
        .file("up/.wh..wh..opq", b"", 0o644)
        .file("abs/.wh.link", b"", 0o644)
        .file("etc/.wh.passwd", b"", 0o644)
        .file("top/.wh.etc", b"", 0o644)
        .file(".wh.lib", b"", 0o644);
    let whiteouts = t.finish();
    cases.push(("whiteouts", PLAIN, whiteouts.clone()));
    cases.push(("whiteouts-overlay", PLAIN | OVERLAY, whiteouts));

    let mut t = RawTar::new();
    t.file("lib/x", b"over a lower symlink", 0o644)
        .file("usr/lib/y", b"y", 0o644)
        .dir("etc", 0o700)
        .file("etc/.wh..wh..opq", b"", 0o644)
        .file("etc/passwd", b"new", 0o644)
        .hardlink("l", "usr/lib/libc.so")
        .file(".wh.var", b"", 0o644)
        .dir("var", 0o755);
    cases.push(("overlay-lowers", PLAIN | OVERLAY, t.finish()));

    let mut t = RawTar::new();
    t.device("../dev/null", tar::EntryType::Char, 1, 3)
        .device("up/file", tar::EntryType::Char, 1, 3)
        .device("/sda", tar::EntryType::Block, 8, 0)
        .device("wh", tar::EntryType::Char, 0, 0);
    let h = RawTar::header(tar::EntryType::Fifo, 0o644);
    t.raw(h, b"fifo", None, &[], &[]);
    cases.push(("devices", PLAIN | OVERLAY, t.finish()));

    let mut t = RawTar::new();
    let mut h = RawTar::header(tar::EntryType::Regular, 0o644);
    h.set_size(5);
    t.raw(h, b"smuggler", None, &[("size", b"1024")], b"12345");
    let h = RawTar::header(tar::EntryType::Regular, 0o4755);
    t.raw(
        h,
        b"x",
        None,
        &[
            ("path", b"up/file\0.txt"),
            ("mtime", b"-1.5"),
            ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ],
        b"x",
    );
    let long = format!("long/{}/../../../canary/file", "n".repeat(120));
    t.raw(
        RawTar::header(tar::EntryType::Regular, 0o644),
        long.as_bytes(),
        None,
        &[],
        b"long",
    );
    cases.push(("pax", PLAIN, t.finish()));

    let mut t = RawTar::new();
    t.dir("tree", 0o755)
        .symlink("tree/out", "../../canary")
        .symlink("tree/abs", "/")
        .file("tree", b"flat", 0o644)
        .dir("t", 0o755)
        .symlink("t/out", "../../canary")
        .file(".wh.t", b"", 0o644)
        .symlink(".", "../canary")
        .dir("/", 0o700)
        .dir("..", 0o777);
    cases.push(("replacements", GZIP | OVERLAY, t.finish()));

    for (i, tar) in rich_tars().into_iter().enumerate().skip(1) {
        cases.push((["", "rich-2", "rich-3"][i], ZSTD, tar));
    }

    for (name, selector, tar) in cases {
        let mut bytes = vec![selector];
        bytes.extend_from_slice(&tar);
        write(dir, name, &bytes);
    }
}
