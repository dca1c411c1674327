//! OCI image layouts, checked against the real skopeo and registry:
//! `hoist export` of a pulled image writes a layout (directory or `.tar`)
//! skopeo pushes to a registry with the same digests, and hoist pulls it
//! back; a layout skopeo wrote from a registry imports (`hoist import`,
//! `hoist pull oci:…`) to the same blobs, GC labels and root filesystem as
//! a registry pull; partially stored multi-platform images, names from
//! `index.json` annotations, and layouts with a tampered, truncated or
//! missing blob, which register nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use hoist_testkit::tree::{Tree, snapshot_tree};
use hoist_testkit::{
    Compression, Format, Image, Registry, assert_trees_equal, rich_image, run_ok, simple_image,
};

use crate::util::{
    TestEnv, assert_mentions, child, digests_of, failure, host_platform, index_with,
    other_platform, serve, serve_and_pull_simple, serve_simple, serve_two_platforms, stderr,
    success,
};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const IMAGE_NAME: &str = "io.containerd.image.name";

/// `skopeo --insecure-policy copy --quiet ARGS…`, which must succeed.
#[track_caller]
fn skopeo_copy(args: &[&str]) {
    run_ok(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .args(args),
        &format!("skopeo copy {args:?}"),
    );
}

/// skopeo copies image `1.0` of the layout `layout` (a directory, or a
/// `.tar` archive), after `flags`, to `repository:1.0` on the plain-HTTP
/// `registry`; returns the manifest the registry then serves.
fn skopeo_push(registry: &Registry, flags: &[&str], layout: &Path, repository: &str) -> Vec<u8> {
    let transport = if layout.extension().is_some_and(|e| e == "tar") {
        "oci-archive"
    } else {
        "oci"
    };
    let source = format!("{transport}:{}:1.0", layout.display());
    let dest = format!("docker://{}/{repository}:1.0", registry.host());
    let mut args = flags.to_vec();
    args.extend(["--dest-tls-verify=false", &source, &dest]);
    skopeo_copy(&args);
    registry.get_manifest(repository, "1.0").1
}

/// Every blob of the layout directory `dir`, `sha256:<hex>` → bytes.
fn layout_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut blobs = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).expect("list layout blobs") {
        let entry = entry.expect("blob entry");
        let name = entry.file_name().into_string().expect("utf-8 name");
        blobs.insert(
            format!("sha256:{name}"),
            std::fs::read(entry.path()).expect("read blob"),
        );
    }
    blobs
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
}

/// `index.json`'s entries of the layout directory `dir`.
fn index_entries(dir: &Path) -> Vec<serde_json::Value> {
    read_json(&dir.join("index.json"))["manifests"]
        .as_array()
        .expect("manifests")
        .clone()
}

/// `hoist pull --plain-http [FLAGS…] REFERENCE`, unpacking, which must
/// succeed; returns stdout.
#[track_caller]
fn pull_unpacking(env: &TestEnv, flags: &[&str], reference: &str) -> String {
    let mut args = vec!["pull", "--plain-http"];
    args.extend_from_slice(flags);
    args.push(reference);
    success(&env.run(&args))
}

/// `hoist rootfs REFERENCE <scratch>/NAME`, as a tree.
#[track_caller]
fn rootfs(env: &TestEnv, reference: &str, name: &str) -> Tree {
    let dest = env.path(name);
    success(&env.run(&["rootfs", reference, dest.to_str().unwrap()]));
    snapshot_tree(&dest)
}

/// The GC edges (`containerd.io/gc.ref.*`: blobs and snapshots) of every stored blob.
fn gc_edges(env: &TestEnv) -> BTreeMap<String, BTreeMap<String, String>> {
    env.content()
        .into_iter()
        .map(|(digest, labels)| {
            let edges = labels
                .into_iter()
                .filter(|(key, _)| key.starts_with("containerd.io/gc.ref."))
                .collect();
            (digest, edges)
        })
        .collect()
}

/// The lines of a successful `hoist import` or `hoist pull`: the image line
/// and the `unpacked` lines.
fn result_names(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|line| !line.starts_with("unpacked "))
        .map(|line| {
            let (name, digest) = line.split_once(' ').expect("NAME DIGEST");
            (name.to_string(), digest.to_string())
        })
        .collect()
}

#[test]
fn export_writes_a_layout_skopeo_pushes_with_the_same_digests() {
    let (registry, image, pushed, env) = serve_and_pull_simple("team/app", "1.0");

    let layout = env.path("layout");
    let stdout = success(&env.run(&["export", &pushed.reference, layout.to_str().unwrap()]));
    assert!(
        stdout.starts_with(&format!("{} {}\n", pushed.reference, pushed.digest)),
        "{stdout}"
    );

    // The layout is what the image spec says and skopeo writes.
    assert_eq!(
        read_json(&layout.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let entries = index_entries(&layout);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], pushed.digest.as_str());
    assert_eq!(entries[0]["mediaType"], image.media_type());
    assert_eq!(entries[0]["size"], image.size());
    assert_eq!(entries[0]["annotations"][REF_NAME], "1.0");
    assert_eq!(
        entries[0]["annotations"][IMAGE_NAME],
        pushed.reference.as_str()
    );
    let blobs = layout_blobs(&layout);
    assert_eq!(
        blobs,
        image.blobs().into_iter().collect(),
        "the layout's blobs"
    );

    // skopeo reads it and pushes the very same manifest.
    let copied = format!("{}/copied/app:1.0", registry.host());
    let manifest = skopeo_push(&registry, &["--preserve-digests"], &layout, "copied/app");
    assert_eq!(manifest, image.manifest_bytes());

    // And hoist pulls it back.
    let again = TestEnv::new();
    assert_eq!(
        again.pull_ok(&copied),
        format!("{copied} {}\n", pushed.digest)
    );
    assert_eq!(again.stored_digests(), digests_of(&image));
    again.assert_store_verified();
}

#[test]
fn export_of_a_partly_pulled_index_writes_the_stored_platforms() {
    let (registry, index, pushed) = serve_two_platforms(Compression::Gzip, "multi", "1.0");
    let host = child(&index, host_platform());
    let other = child(&index, other_platform());
    let env = TestEnv::new();
    env.pull_ok(&pushed.reference);

    // The index and the pulled platform; the other is listed, not written.
    let layout = env.path("partial");
    let output = env.run(&["export", &pushed.reference, layout.to_str().unwrap()]);
    success(&output);
    assert_mentions(
        &stderr(&output),
        &["left out", &other.manifest_digest(), other_platform()],
    );
    let written: BTreeSet<String> = layout_blobs(&layout).into_keys().collect();
    assert_eq!(written, index_with(&index, &[host]));

    // skopeo without --all copies this machine's platform from it.
    let manifest = skopeo_push(&registry, &[], &layout, "partial");
    assert_eq!(manifest, host.manifest_bytes());

    // --all-platforms needs every platform: a clear error, nothing written.
    let strict = env.path("strict");
    let line = failure(&env.run(&[
        "export",
        "--all-platforms",
        &pushed.reference,
        strict.to_str().unwrap(),
    ]));
    assert_mentions(
        &line,
        &[&other.manifest_digest(), other_platform(), "not stored"],
    );
    assert!(
        !strict.exists(),
        "a failed export left {}",
        strict.display()
    );

    // A platform named but not pulled fails the same way.
    let named = env.path("named");
    let line = failure(&env.run(&[
        "export",
        "--platform",
        other_platform(),
        &pushed.reference,
        named.to_str().unwrap(),
    ]));
    assert_mentions(&line, &[other_platform(), "not stored"]);
    assert!(!named.exists());

    // With the other platform's manifest and config but not its layers
    // (--all-metadata), the default export stops at its first layer;
    // --platform leaves it out.
    success(&env.pull(&["--plain-http", "--all-metadata", &pushed.reference]));
    let metadata = env.path("metadata");
    let line = failure(&env.run(&["export", &pushed.reference, metadata.to_str().unwrap()]));
    assert_mentions(&line, &["layer", other_platform(), "not stored"]);
    assert!(!metadata.exists());
    success(&env.run(&[
        "export",
        "--platform",
        host_platform(),
        &pushed.reference,
        metadata.to_str().unwrap(),
    ]));
    let written: BTreeSet<String> = layout_blobs(&metadata).into_keys().collect();
    assert_eq!(written, index_with(&index, &[host]));

    // With every platform pulled, skopeo --all pushes the same index.
    success(&env.pull(&["--plain-http", "--all-platforms", &pushed.reference]));
    let full = env.path("full");
    success(&env.run(&[
        "export",
        "--all-platforms",
        &pushed.reference,
        full.to_str().unwrap(),
    ]));
    let written: BTreeSet<String> = layout_blobs(&full).into_keys().collect();
    assert_eq!(written, index_with(&index, &[host, other]));
    let manifest = skopeo_push(&registry, &["--all", "--preserve-digests"], &full, "full");
    assert_eq!(manifest, index.manifest_bytes());
    let again = TestEnv::new();
    let reference = format!("{}/full:1.0", registry.host());
    again.pull_ok_with(&["--all-platforms"], &reference);
    assert_eq!(again.stored_digests(), digests_of(&index));
}

#[test]
fn export_refuses_to_overwrite() {
    let (_registry, image, pushed, env) = serve_and_pull_simple("app", "1.0");

    let busy = env.path("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), b"mine").unwrap();
    let line = failure(&env.run(&["export", &pushed.reference, busy.to_str().unwrap()]));
    assert_mentions(&line, &["not empty"]);
    assert_eq!(std::fs::read(busy.join("keep.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    let archive = env.path("taken.tar");
    std::fs::write(&archive, b"mine").unwrap();
    let line = failure(&env.run(&["export", &pushed.reference, archive.to_str().unwrap()]));
    assert_mentions(&line, &["exists"]);
    assert_eq!(std::fs::read(&archive).unwrap(), b"mine");

    // An empty directory is fine.
    let empty = env.path("empty");
    std::fs::create_dir(&empty).unwrap();
    success(&env.run(&["export", &pushed.reference, empty.to_str().unwrap()]));
    assert_eq!(layout_blobs(&empty).len(), image.blobs().len());

    let line = failure(&env.run(&["export", "nothing:here", env.path("x").to_str().unwrap()]));
    assert_mentions(&line, &["image not found"]);
}

#[test]
fn skopeo_layout_imports_like_a_registry_pull() {
    let (registry, _, pushed) = serve(
        rich_image(Format::Oci, Compression::Gzip, host_platform()),
        "rich",
        "1.0",
    );

    // The reference: a registry pull, unpacked.
    let pulled = TestEnv::new();
    pull_unpacking(&pulled, &[], &pushed.reference);
    let expected = rootfs(&pulled, &pushed.reference, "rootfs");

    // skopeo writes the layout (a bare tag, as usually).
    let work = TestEnv::new();
    let layout = work.path("rich-layout");
    skopeo_copy(&[
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}", pushed.reference),
        &format!("oci:{}:1.0", layout.display()),
    ]);

    let imported = TestEnv::new();
    let stdout = success(&imported.run(&["import", layout.to_str().unwrap()]));
    // A bare tag names the image in the layout's own repository.
    let name = "localhost/rich-layout:1.0";
    assert_eq!(
        result_names(&stdout),
        [(name.to_string(), pushed.digest.clone())]
    );
    assert!(stdout.contains("\nunpacked "), "{stdout}");
    assert_eq!(imported.stored_digests(), pulled.stored_digests());
    imported.assert_store_verified();
    assert_eq!(gc_edges(&imported), gc_edges(&pulled));
    let rows = imported.images();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].digest, pushed.digest);
    assert_eq!(rows[0].unpacked, "yes");
    assert_trees_equal!(&rootfs(&imported, name, "rootfs"), &expected);
    success(&imported.run(&["check"]));

    // Importing again finds everything stored.
    let stdout = success(&imported.run(&["import", layout.to_str().unwrap()]));
    assert_eq!(
        result_names(&stdout),
        [(name.to_string(), pushed.digest.clone())]
    );

    // A ref name holding a whole reference is the image's name.
    let named = work.path("named");
    let full = format!("{}/team/rich:2.0", registry.host());
    skopeo_copy(&[
        "--src-tls-verify=false",
        &format!("docker://{}", pushed.reference),
        &format!("oci:{}:{full}", named.display()),
    ]);
    let other = TestEnv::new();
    let stdout = success(&other.run(&["import", "--no-unpack", named.to_str().unwrap()]));
    assert_eq!(
        result_names(&stdout),
        [(full.clone(), pushed.digest.clone())]
    );
    assert_eq!(other.images()[0].unpacked, "no");

    // --name wins.
    let stdout = success(&other.run(&[
        "import",
        "--no-unpack",
        "--name",
        "mine:3",
        named.to_str().unwrap(),
    ]));
    assert_eq!(
        result_names(&stdout),
        [(
            "docker.io/library/mine:3".to_string(),
            pushed.digest.clone()
        )]
    );
}

#[test]
fn export_then_import_restores_the_name_and_the_platforms() {
    let (_registry, index, pushed) = serve_two_platforms(Compression::Gzip, "multi", "1.0");
    let env = TestEnv::new();
    env.pull_ok_with(&["--all-platforms"], &pushed.reference);
    let layout = env.path("layout");
    success(&env.run(&["export", &pushed.reference, layout.to_str().unwrap()]));

    // By default an import takes this machine's platform, as a pull does.
    let host_only = TestEnv::new();
    let stdout = success(&host_only.run(&["import", layout.to_str().unwrap()]));
    assert_eq!(
        result_names(&stdout),
        [(pushed.reference.clone(), pushed.digest.clone())]
    );
    let host = child(&index, host_platform());
    assert_eq!(host_only.stored_digests(), index_with(&index, &[host]));

    let all = TestEnv::new();
    success(&all.run(&[
        "import",
        "--all-platforms",
        "--no-unpack",
        layout.to_str().unwrap(),
    ]));
    assert_eq!(all.stored_digests(), digests_of(&index));
    assert_eq!(gc_edges(&all), gc_edges(&env));
}

#[test]
fn layouts_of_several_images_import_the_named_ones() {
    let env = TestEnv::new();
    let layout = env.path("several");
    let first = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let second = simple_image(Format::Oci, Compression::Zstd, host_platform());
    let third = rich_image(Format::Oci, Compression::Gzip, host_platform());
    first.write_oci_layout(&layout, "example.com/first:1");
    second.write_oci_layout(&layout, "example.com/second:2");
    // An entry without a name.
    third.write_oci_layout(&layout, "unnamed");
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path);
    for entry in index["manifests"].as_array_mut().unwrap() {
        if entry["annotations"][REF_NAME] == "unnamed" {
            entry.as_object_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    // --name is for one image.
    let line = failure(&env.run(&["import", "--name", "x:1", layout.to_str().unwrap()]));
    assert_mentions(&line, &["one image", "3"]);
    assert!(env.image_names().is_empty());

    let output = env.run(&["import", "--no-unpack", layout.to_str().unwrap()]);
    let stdout = success(&output);
    let names: BTreeSet<(String, String)> = result_names(&stdout).into_iter().collect();
    assert_eq!(
        names,
        BTreeSet::from([
            ("example.com/first:1".to_string(), first.manifest_digest()),
            ("example.com/second:2".to_string(), second.manifest_digest()),
        ])
    );
    assert_mentions(&stderr(&output), &["skipped", &third.manifest_digest()]);
    assert!(!env.stored_digests().contains(&third.manifest_digest()));

    // One chosen by its ref name can take a name.
    let stdout = success(&env.run(&[
        "import",
        "--no-unpack",
        "--ref",
        "example.com/second:2",
        "--name",
        "other/second:9",
        layout.to_str().unwrap(),
    ]));
    assert_eq!(
        result_names(&stdout),
        [(
            "docker.io/other/second:9".to_string(),
            second.manifest_digest()
        )]
    );
    let line = failure(&env.run(&["import", "--ref", "nope", layout.to_str().unwrap()]));
    assert_mentions(&line, &["nope", "example.com/first:1"]);

    // A layout of one unnamed image needs --name.
    let lone = env.path("lone");
    third.write_oci_layout(&lone, "unnamed");
    let index_path = lone.join("index.json");
    let mut index = read_json(&index_path);
    index["manifests"][0]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let line = failure(&env.run(&["import", lone.to_str().unwrap()]));
    assert_mentions(&line, &["no name", "--name"]);
    let stdout = success(&env.run(&[
        "import",
        "--no-unpack",
        "--name",
        "lone:1",
        lone.to_str().unwrap(),
    ]));
    assert_eq!(
        result_names(&stdout),
        [(
            "docker.io/library/lone:1".to_string(),
            third.manifest_digest()
        )]
    );
}

/// A fixture image's layout in a fresh env, and the env.
fn fixture_layout(image: &Image) -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::new();
    let layout = env.path("layout");
    image.write_oci_layout(&layout, "1.0");
    (env, layout)
}

/// After a refused import: no image, no ingest, every stored blob whole, and
/// `hoist gc` frees what was stored (the import's lease is gone).
#[track_caller]
fn assert_nothing_registered(env: &TestEnv, refused: &str) {
    assert!(env.image_names().is_empty(), "{:?}", env.image_names());
    assert!(!env.stored_digests().contains(refused));
    env.assert_store_verified();
    success(&env.run(&["gc"]));
    assert!(
        env.stored_digests().is_empty(),
        "{:?}",
        env.stored_digests()
    );
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_is_registered() {
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let (env, layout) = fixture_layout(&image);
    let layer = image.layers().last().unwrap().digest.clone();
    let path = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let line = failure(&env.run(&["import", layout.to_str().unwrap()]));
    assert_mentions(&line, &["digest mismatch", &layer]);
    assert_nothing_registered(&env, &layer);

    // `hoist pull oci:` refuses it the same way.
    let line = failure(&env.run(&["pull", &format!("oci:{}:1.0", layout.display())]));
    assert_mentions(&line, &["digest mismatch", &layer]);
    assert_nothing_registered(&env, &layer);
}

#[test]
fn a_truncated_or_missing_blob_is_refused() {
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let config = image.config_digest().unwrap().to_string();
    let (env, layout) = fixture_layout(&image);
    let path = layout
        .join("blobs/sha256")
        .join(config.trim_start_matches("sha256:"));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let line = failure(&env.run(&["import", layout.to_str().unwrap()]));
    assert_mentions(&line, &["size mismatch", &config]);
    assert_nothing_registered(&env, &config);

    std::fs::remove_file(&path).unwrap();
    let line = failure(&env.run(&["import", layout.to_str().unwrap()]));
    assert_mentions(&line, &["not in the layout", &config]);
    assert_nothing_registered(&env, &config);

    // A tampered manifest too: it is verified before it is read.
    let (env, layout) = fixture_layout(&image);
    let manifest = image.manifest_digest();
    let path = layout
        .join("blobs/sha256")
        .join(manifest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = b' ';
    std::fs::write(&path, &bytes).unwrap();
    let line = failure(&env.run(&["import", layout.to_str().unwrap()]));
    assert_mentions(&line, &["digest mismatch", &manifest]);
    assert_nothing_registered(&env, &manifest);

    // Not a layout at all.
    let line = failure(&env.run(&["import", env.path("home").to_str().unwrap()]));
    assert_mentions(&line, &["not an OCI image layout"]);
}

/// The regular files and directories of a tar archive, by name.
fn tar_names(path: &Path) -> BTreeSet<String> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            entry.path().unwrap().to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn tar_layouts_work_both_ways() {
    let (registry, image, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();
    pull_unpacking(&env, &[], &pushed.reference);
    let expected = rootfs(&env, &pushed.reference, "rootfs");

    // hoist → skopeo.
    let archive = env.path("out.tar");
    success(&env.run(&["export", &pushed.reference, archive.to_str().unwrap()]));
    let mut names = BTreeSet::from([
        "oci-layout".to_string(),
        "index.json".to_string(),
        "blobs/".to_string(),
        "blobs/sha256/".to_string(),
    ]);
    for digest in digests_of(&image) {
        names.insert(format!(
            "blobs/sha256/{}",
            digest.trim_start_matches("sha256:")
        ));
    }
    assert_eq!(tar_names(&archive), names);
    let manifest = skopeo_push(&registry, &["--preserve-digests"], &archive, "fromtar");
    assert_eq!(manifest, image.manifest_bytes());
    let line = failure(&env.run(&["export", &pushed.reference, archive.to_str().unwrap()]));
    assert_mentions(&line, &["exists"]);

    // hoist → hoist, under the exported name.
    let back = TestEnv::new();
    let stdout = success(&back.run(&["import", archive.to_str().unwrap()]));
    assert_eq!(
        result_names(&stdout),
        [(pushed.reference.clone(), pushed.digest.clone())]
    );
    assert_trees_equal!(&rootfs(&back, &pushed.reference, "rootfs"), &expected);

    // skopeo → hoist.
    let written = env.path("skopeo.tar");
    skopeo_copy(&[
        "--src-tls-verify=false",
        &format!("docker://{}", pushed.reference),
        &format!("oci-archive:{}:1.0", written.display()),
    ]);
    let from_skopeo = TestEnv::new();
    let stdout = success(&from_skopeo.run(&["import", written.to_str().unwrap()]));
    assert_eq!(
        result_names(&stdout),
        [("localhost/skopeo:1.0".to_string(), pushed.digest.clone())]
    );
    assert_eq!(from_skopeo.stored_digests(), digests_of(&image));
    from_skopeo.assert_store_verified();
    assert_trees_equal!(
        &rootfs(&from_skopeo, "localhost/skopeo:1.0", "rootfs"),
        &expected
    );

    // And `hoist pull` reads an archive too.
    let pulling = TestEnv::new();
    let stdout =
        success(&pulling.run(&["pull", &format!("oci-archive:{}:1.0", written.display())]));
    assert_eq!(
        result_names(&stdout),
        [("localhost/skopeo:1.0".to_string(), pushed.digest.clone())]
    );
}

#[test]
fn pull_reads_a_layout_as_a_registry() {
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let (env, layout) = fixture_layout(&image);
    image.write_oci_layout(&layout, "example.com/app:2.0");

    let output = env.run(&["pull", &format!("oci:{}:1.0", layout.display())]);
    let stdout = success(&output);
    assert_eq!(
        result_names(&stdout),
        [("localhost/layout:1.0".to_string(), image.manifest_digest())]
    );
    assert!(stdout.contains("\nunpacked "), "{stdout}");
    // The pull's progress, as from a registry.
    assert_mentions(
        &stderr(&output),
        &["localhost/layout:1.0: resolved", "done", "saved"],
    );
    assert_eq!(env.stored_digests(), digests_of(&image));
    env.assert_store_verified();

    // A whole reference as the ref name, with JSON progress.
    let stdout = success(&env.run(&[
        "pull",
        "--progress",
        "json",
        &format!("oci:{}:example.com/app:2.0", layout.display()),
    ]));
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("json line");
    assert_eq!(last["event"], "pulled");
    assert_eq!(last["name"], "example.com/app:2.0");
    assert_eq!(last["digest"], image.manifest_digest().as_str());
    assert_eq!(last["downloaded"], 0, "everything was stored");

    // Without a ref name, a layout of several images is ambiguous.
    let line = failure(&env.run(&["pull", &format!("oci:{}", layout.display())]));
    assert_mentions(&line, &["2 images", "1.0", "example.com/app:2.0"]);
    let line = failure(&env.run(&["pull", &format!("oci:{}:nope", layout.display())]));
    assert_mentions(&line, &["nope", "1.0"]);
    let line = failure(&env.run(&["pull", "--all-tags", &format!("oci:{}", layout.display())]));
    assert_mentions(&line, &["--all-tags", "layout"]);
}

#[test]
fn docker_media_types_round_trip_through_hoist() {
    // skopeo 1.9 reads only OCI media types from a layout; hoist keeps
    // Docker ones as they are, digests and all.
    let (_registry, image, pushed) = serve(
        simple_image(Format::Docker, Compression::Gzip, host_platform()),
        "docker/app",
        "1.0",
    );
    let env = TestEnv::new();
    env.pull_ok(&pushed.reference);
    let layout = env.path("layout");
    success(&env.run(&["export", &pushed.reference, layout.to_str().unwrap()]));
    assert_eq!(index_entries(&layout)[0]["mediaType"], image.media_type());

    let back = TestEnv::new();
    let stdout = success(&back.run(&["import", layout.to_str().unwrap()]));
    assert_eq!(
        result_names(&stdout),
        [(pushed.reference.clone(), pushed.digest.clone())]
    );
    assert_eq!(back.stored_digests(), digests_of(&image));
    back.assert_store_verified();
}
