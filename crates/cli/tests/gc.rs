//! Keeping the store tidy and sound: `hoist gc` (what it frees and what it
//! keeps: shared blobs and snapshots, leased content, fresh and locked
//! ingests; running in a loop beside pulls), `hoist check [--repair]`
//! (corrupt, missing and unrecorded blobs, missing snapshot directories),
//! `hoist leases ls`, and image management: `hoist images tag`, `inspect`,
//! `prune` and the `images ls` columns.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use hoist_testkit::{
    Compression, Format, Image, Layer, Pushed, Registry, layer, sha256_digest, simple_image,
};

use crate::util::{
    TestEnv, assert_mentions, digests_of, host_platform, serve_simple, stderr, success,
};

const SNAPSHOTTER: &str = "native";

/// `hoist pull --plain-http --snapshotter native REFERENCE` (unpacking).
fn pull(env: &TestEnv, reference: &str) -> Output {
    env.run(&[
        "pull",
        "--plain-http",
        "--snapshotter",
        SNAPSHOTTER,
        reference,
    ])
}

/// `app:1.0` ([`serve_simple`]) pulled, unpacked, into a fresh store.
fn pulled_simple() -> (Registry, Image, Pushed, TestEnv) {
    let (registry, image, pushed) = serve_simple("app", "1.0");
    let env = TestEnv::new();
    success(&pull(&env, &pushed.reference));
    (registry, image, pushed, env)
}

/// `hoist snapshots mounts` of `key`, which makes the snapshot `view:<key>`
/// on it: a root a collection keeps.
fn make_view(env: &TestEnv, key: &str) {
    success(&env.run(&[
        "snapshots",
        "mounts",
        "--snapshotter",
        SNAPSHOTTER,
        key,
        "/mnt",
    ]));
}

/// The keys `hoist snapshots ls --snapshotter native` lists.
fn snapshots(env: &TestEnv) -> BTreeSet<String> {
    let stdout = success(&env.run(&["snapshots", "ls", "--snapshotter", SNAPSHOTTER]));
    stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `hoist gc ARGS…`, which must succeed; returns stdout.
fn gc(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["gc"];
    all.extend_from_slice(args);
    success(&env.run(&all))
}

/// `hoist check` must pass.
#[track_caller]
fn assert_check_clean(env: &TestEnv) {
    let stdout = success(&env.run(&["check"]));
    assert!(stdout.starts_with("ok: "), "check: {stdout}");
}

/// A small gzip layer holding one file.
fn file_layer(name: &str, body: &str) -> Layer {
    layer(Compression::Gzip, Format::Oci, |l| {
        l.add_file(name, body.as_bytes(), 0o644);
    })
}

/// Three images over the same two base layers, each with a layer of its own.
fn family() -> (Image, Image, Image) {
    let base = [file_layer("base-1", "one\n"), file_layer("base-2", "two\n")];
    let make = |own: &str| {
        let mut layers = base.to_vec();
        layers.push(file_layer(own, own));
        Image::single(Format::Oci, host_platform(), layers)
    };
    (make("a"), make("b"), make("c"))
}

fn blob_path(env: &TestEnv, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    env.root().join("content/blobs/sha256").join(hex)
}

#[test]
fn gc_after_removing_the_only_image_leaves_no_blob_and_no_snapshot() {
    let (_registry, image, pushed, env) = pulled_simple();
    assert_eq!(env.stored_digests(), digests_of(&image));
    assert_eq!(snapshots(&env).len(), 3);

    success(&env.run(&["images", "rm", &pushed.reference]));
    let out = gc(&env, &[]);

    let blobs = digests_of(&image);
    let bytes: u64 = image.blobs().iter().map(|(_, b)| b.len() as u64).sum();
    assert!(
        out.contains(&format!("removed {} blobs", blobs.len())),
        "gc printed: {out}"
    );
    for digest in &blobs {
        assert!(out.contains(&format!("removed blob {digest}")), "{out}");
    }
    assert!(bytes > 64 * 1024, "the image has a 64 KiB layer");
    assert!(out.contains("kB"), "gc prints the bytes freed: {out}");
    assert!(
        env.stored_digests().is_empty(),
        "{:?}",
        env.stored_digests()
    );
    assert!(env.content().is_empty());
    assert!(snapshots(&env).is_empty());
    assert_check_clean(&env);

    // Nothing left to collect.
    let again = gc(&env, &[]);
    assert!(again.contains("removed 0 blobs"), "{again}");
}

#[test]
fn gc_keeps_what_remaining_images_share() {
    let registry = Registry::plain();
    let (a, b, c) = family();
    let refs: Vec<String> = [(&a, "a"), (&b, "b"), (&c, "c")]
        .into_iter()
        .map(|(image, repo)| registry.push(image, repo, "1").reference)
        .collect();
    let env = TestEnv::new();
    for reference in &refs {
        success(&pull(&env, reference));
    }
    // Shared bases: 2 + 3 × 1 own snapshots.
    assert_eq!(snapshots(&env).len(), 5);

    success(&env.run(&["images", "rm", &refs[0]]));
    let out = gc(&env, &[]);
    // a's manifest, config and own layer.
    assert!(out.contains("removed 3 blobs"), "{out}");

    let mut expected = digests_of(&b);
    expected.extend(digests_of(&c));
    assert_eq!(env.stored_digests(), expected);
    let mut chains: BTreeSet<String> = b.chain_ids().into_iter().collect();
    chains.extend(c.chain_ids());
    assert_eq!(snapshots(&env), chains);
    env.assert_store_verified();
    assert_check_clean(&env);
    // Both remaining images are still whole: a re-pull downloads nothing new.
    for reference in &refs[1..] {
        success(&pull(&env, reference));
    }
    assert_eq!(env.stored_digests(), expected);
    assert_check_clean(&env);
}

#[test]
fn gc_removes_unreferenced_snapshots_and_leftover_active_ones_but_keeps_views_as_roots() {
    let (_registry, image, pushed, env) = pulled_simple();
    let chain = image.chain_ids();
    let top = chain.last().unwrap().clone();

    // What a killed pull leaves: an active snapshot on the stack; and a view.
    let engine = hoist_engine::Engine::open(env.root()).unwrap();
    engine
        .snapshotter(Some(SNAPSHOTTER))
        .unwrap()
        .prepare("extract-killed", Some(&top), BTreeMap::new())
        .unwrap();
    drop(engine);
    make_view(&env, &top);
    let view = format!("view:{top}");
    assert!(snapshots(&env).contains(&view));

    let out = gc(&env, &[]);
    assert!(
        out.contains("removed snapshot native/extract-killed"),
        "{out}"
    );
    assert!(out.contains("1 snapshot,"), "{out}");
    let mut expected: BTreeSet<String> = chain.iter().cloned().collect();
    expected.insert(view.clone());
    assert_eq!(snapshots(&env), expected);
    assert_eq!(env.stored_digests(), digests_of(&image));

    // Forget the image without pruning: gc removes the blobs, but the view
    // (someone may have mounted it) is a root and keeps its three parents.
    let db = hoist_metadata::Db::open(&env.root().join("metadata.db")).unwrap();
    assert!(db.delete_image(&pushed.reference).unwrap());
    let dry = gc(&env, &["--dry-run"]);
    assert!(dry.contains("would remove 5 blobs"), "{dry}");
    assert!(dry.contains("0 snapshots"), "{dry}");
    assert_eq!(snapshots(&env).len(), 4, "a dry run removes nothing");
    assert_eq!(env.stored_digests(), digests_of(&image));

    let out = gc(&env, &[]);
    assert!(out.contains("removed 5 blobs"), "{out}");
    assert_eq!(snapshots(&env), expected, "the view and its parents stay");
    assert!(env.stored_digests().is_empty());

    // Once the view is removed by name, gc frees its parents (children first).
    success(&env.run(&["snapshots", "rm", "--snapshotter", SNAPSHOTTER, &view]));
    let out = gc(&env, &[]);
    assert!(out.contains("3 snapshots"), "{out}");
    assert!(snapshots(&env).is_empty());
    assert_check_clean(&env);
}

#[test]
fn gc_removes_stale_ingests_and_expired_leases_only() {
    let env = TestEnv::new();
    env.create_store();
    let engine = hoist_engine::Engine::open(env.root()).unwrap();
    let store = engine.content();
    let old = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    let partial = |reference: &str, body: &[u8]| {
        let digest = hoist_engine::Digest::try_from(sha256_digest(body)).unwrap();
        let expected = hoist_content::Expected::new(digest, Some(body.len() as u64));
        let mut writer = store.writer(reference, expected).unwrap();
        std::io::Write::write_all(&mut writer, &body[..body.len() / 2]).unwrap();
        writer
    };
    let age = |reference: &str| {
        std::fs::File::options()
            .write(true)
            .open(env.ingest_dir(reference).join("data"))
            .unwrap()
            .set_modified(old)
            .unwrap();
    };
    drop(partial("stale", b"stale partial download"));
    age("stale");
    drop(partial("fresh", b"fresh partial download"));
    drop(partial("leased", b"leased partial download"));
    age("leased");
    // A writer still holds this one (a pull in another process would).
    let locked = partial("locked", b"locked partial download");
    age("locked");

    let put = |body: &[u8]| {
        let digest = hoist_engine::Digest::try_from(sha256_digest(body)).unwrap();
        let expected = hoist_content::Expected::new(digest.clone(), Some(body.len() as u64));
        hoist_content::copy(store.writer(digest.as_ref(), expected).unwrap(), body).unwrap();
        digest
    };
    let kept = put(b"protected by a live lease");
    let freed = put(b"protected by an expired lease");
    let db = engine.metadata();
    let labels = BTreeMap::new();
    db.create_lease(
        "live",
        &labels,
        Some(SystemTime::now() + Duration::from_secs(3600)),
    )
    .unwrap();
    db.add_lease_resource("live", &hoist_metadata::LeaseResource::content(&kept))
        .unwrap();
    db.add_lease_resource("live", &hoist_metadata::LeaseResource::ingest("leased"))
        .unwrap();
    db.create_lease(
        "gone",
        &labels,
        Some(SystemTime::now() - Duration::from_secs(1)),
    )
    .unwrap();
    db.add_lease_resource("gone", &hoist_metadata::LeaseResource::content(&freed))
        .unwrap();

    let leases = success(&env.run(&["leases", "ls"]));
    let gone_row = leases.lines().find(|l| l.starts_with("gone")).unwrap();
    assert!(gone_row.contains("expired"), "{leases}");
    let live_row = leases.lines().find(|l| l.starts_with("live")).unwrap();
    assert!(
        live_row.contains(" in ") && live_row.trim_end().ends_with(" 2"),
        "{leases}"
    );

    let out = gc(&env, &[]);
    assert!(out.contains("removed ingest stale"), "{out}");
    assert!(out.contains("removed expired lease gone"), "{out}");
    assert!(out.contains(&format!("removed blob {freed}")), "{out}");
    assert!(out.contains("removed 1 blob ("), "{out}");
    assert!(out.contains("1 ingest,"), "{out}");
    assert!(!env.ingest_dir("stale").join("data").exists());
    for reference in ["fresh", "leased", "locked"] {
        assert!(
            env.ingest_dir(reference).join("data").exists(),
            "{reference} was removed"
        );
    }
    assert!(store.contains(&kept));
    assert!(!store.contains(&freed));
    let leases = success(&env.run(&["leases", "ls"]));
    assert!(leases.lines().any(|l| l.starts_with("live")), "{leases}");
    assert!(!leases.lines().any(|l| l.starts_with("gone")), "{leases}");

    // A zero age takes the fresh ingest too, but never a locked or leased one.
    let out = gc(&env, &["--ingest-age", "0s"]);
    assert!(out.contains("removed ingest fresh"), "{out}");
    assert!(env.ingest_dir("locked").join("data").exists());
    assert!(env.ingest_dir("leased").join("data").exists());
    drop(locked);
    let out = gc(&env, &["--ingest-age", "1h"]);
    assert!(out.contains("removed ingest locked"), "{out}");
    assert!(env.ingest_dir("leased").join("data").exists());
}

#[test]
fn gc_in_a_loop_never_breaks_concurrent_pulls() {
    let registry = Registry::plain();
    let (a, b, c) = family();
    let refs = [
        registry.push(&a, "a", "1").reference,
        registry.push(&b, "b", "1").reference,
        registry.push(&c, "c", "1").reference,
        registry.push(&a, "a", "2").reference,
    ];
    let env = Arc::new(TestEnv::new());
    env.create_store();

    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let env = env.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let output = env.run(&["gc", "--ingest-age", "0s"]);
                assert!(output.status.success(), "gc failed: {}", stderr(&output));
                runs += 1;
            }
            runs
        })
    };

    for i in 0..20 {
        let reference = &refs[i % refs.len()];
        let output = pull(&env, reference);
        if !output.status.success() {
            stop.store(true, Ordering::Relaxed);
            panic!("pull {i} of {reference} failed: {}", stderr(&output));
        }
        if i % 3 == 2 {
            // Remove another image between pulls, so gc has work to do.
            let victim = &refs[(i + 1) % refs.len()];
            if env.image_names().contains(victim) {
                success(&env.run(&["images", "rm", victim]));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let runs = collector.join().expect("the gc loop");
    assert!(runs > 0, "gc never ran");

    assert_check_clean(&env);
    env.assert_store_verified();
    for name in env.image_names() {
        success(&env.run(&["images", "rm", &name]));
    }
    gc(&env, &[]);
    assert!(
        env.stored_digests().is_empty(),
        "{:?}",
        env.stored_digests()
    );
    assert!(snapshots(&env).is_empty());
    assert_check_clean(&env);
}

#[test]
fn check_finds_corrupt_and_missing_blobs_and_snapshot_dirs_and_repair_fixes_them() {
    let (_registry, image, pushed, env) = pulled_simple();
    assert_check_clean(&env);

    // Flip a byte of the big layer (blobs are read-only).
    let corrupt = image.layers()[2].digest.clone();
    let path = blob_path(&env, &corrupt);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // Lose the first layer.
    let missing = image.layers()[0].digest.clone();
    std::fs::remove_file(blob_path(&env, &missing)).unwrap();
    // Lose one snapshot's directory.
    let dirs = env.root().join("snapshots/native/snapshots");
    let first = std::fs::read_dir(&dirs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        })
        .min()
        .unwrap();
    std::fs::remove_dir_all(&first).unwrap();

    let output = env.run(&["check"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(
        report.contains(&format!("corrupt blob {corrupt}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("missing blob {missing}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("incomplete image {}", pushed.reference)),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("snapshot native/") && l.contains("is missing")),
        "{report}"
    );
    assert_mentions(
        stderr(&output).lines().last().unwrap(),
        &["problems", "--repair"],
    );

    let repaired = success(&env.run(&["check", "--repair"]));
    assert!(
        repaired.contains(&format!("repaired: deleted corrupt blob {corrupt}")),
        "{repaired}"
    );
    assert!(
        repaired.contains(&format!(
            "repaired: dropped the record of missing blob {missing}"
        )),
        "{repaired}"
    );
    assert!(
        repaired.contains("repaired: removed snapshot native/"),
        "{repaired}"
    );
    assert!(!blob_path(&env, &corrupt).exists());
    // The broken snapshot went with its descendants: the whole stack here.
    assert!(snapshots(&env).is_empty());
    let images = env.images();
    assert_eq!(images.len(), 1, "the image is kept");
    assert_eq!(images[0].unpacked, "no");

    // Only the incomplete image is left to report; a pull completes it.
    let output = env.run(&["check"]);
    let report = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(
        report.lines().all(|l| l.starts_with("incomplete image")),
        "{report}"
    );
    success(&pull(&env, &pushed.reference));
    assert_check_clean(&env);
    env.assert_store_verified();
    assert_eq!(env.stored_digests(), digests_of(&image));
    assert_eq!(snapshots(&env), image.chain_ids().into_iter().collect());
    assert_eq!(env.images()[0].unpacked, "yes");
}

#[test]
fn images_ls_shows_platforms_size_unpacked_and_age() {
    let registry = Registry::plain();
    let image = simple_image(Format::Oci, Compression::Gzip, host_platform());
    let (other, _, _) = family();
    let unpacked = registry.push(&image, "app", "1.0");
    let packed = registry.push(&other, "other", "1.0");
    let env = TestEnv::new();
    success(&pull(&env, &unpacked.reference));
    env.pull_ok(&packed.reference);

    let rows = env.images();
    let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap().clone();
    let first = row(&unpacked.reference);
    assert_eq!(first.digest, unpacked.digest);
    assert_eq!(first.platforms, host_platform());
    assert!(first.size.ends_with("kB"), "{first:?}");
    assert_eq!(first.unpacked, "yes");
    assert!(first.created.ends_with(" ago"), "{first:?}");
    assert_eq!(row(&packed.reference).unpacked, "no");

    // A snapshot the unpacked label names disappears: no longer unpacked.
    let top = image.chain_ids().pop().unwrap();
    let engine = hoist_engine::Engine::open(env.root()).unwrap();
    engine
        .snapshotter(Some(SNAPSHOTTER))
        .unwrap()
        .remove(&top)
        .unwrap();
    assert_eq!(
        env.images()
            .iter()
            .find(|r| r.name == unpacked.reference)
            .unwrap()
            .unpacked,
        "no"
    );
}

#[test]
fn images_tag_inspect_and_prune() {
    let (registry, image, pushed, env) = pulled_simple();

    // tag: a second name for the same target, labels included.
    let tagged = success(&env.run(&["images", "tag", &pushed.reference, "local/copy:v1"]));
    assert_eq!(tagged.trim(), "docker.io/local/copy:v1");
    let rows = env.images();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.digest == pushed.digest && r.unpacked == "yes"),
        "{rows:?}"
    );
    let missing = env.run(&["images", "tag", "nothing:here", "x:y"]);
    assert_mentions(&crate::util::failure(&missing), &["not found"]);
    let wrong = format!("local/copy@{}", sha256_digest(b"not the image"));
    assert_mentions(
        &crate::util::failure(&env.run(&["images", "tag", &pushed.reference, &wrong])),
        &["digest"],
    );

    // inspect: descriptor, platform, config, layers with diffIDs, chainIDs, snapshots.
    let json: serde_json::Value =
        serde_json::from_str(&success(&env.run(&["images", "inspect", "local/copy:v1"]))).unwrap();
    assert_eq!(json["name"], "docker.io/local/copy:v1");
    assert_eq!(json["target"]["digest"], pushed.digest.as_str());
    assert_eq!(json["target"]["mediaType"], image.media_type());
    let manifest = &json["manifests"][0];
    assert_eq!(manifest["platform"], host_platform());
    assert_eq!(manifest["config"]["digest"], image.config_digest().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (got, want) in layers.iter().zip(image.layers()) {
        assert_eq!(got["digest"], want.digest.as_str());
        assert_eq!(got["diffID"], want.diff_id.as_str());
        assert_eq!(got["size"], want.size());
        assert_eq!(got["mediaType"], want.media_type.as_str());
    }
    let chain: Vec<serde_json::Value> = image.chain_ids().into_iter().map(Into::into).collect();
    assert_eq!(manifest["chainIDs"].as_array().unwrap(), &chain);
    assert_eq!(
        manifest["snapshots"][SNAPSHOTTER].as_array().unwrap(),
        &chain
    );
    assert!(json["labels"][format!("hoist.io/unpacked.{SNAPSHOTTER}")].is_string());

    // The tag keeps the content alive without the original name.
    success(&env.run(&["images", "rm", &pushed.reference]));
    gc(&env, &[]);
    assert_eq!(env.stored_digests(), digests_of(&image));
    assert_check_clean(&env);

    // prune: a record whose target blob is gone is dangling; complete ones stay.
    success(&env.run(&["images", "tag", "local/copy:v1", "local/second:v1"]));
    let (other, _, _) = family();
    let other_pushed = registry.push(&other, "other", "1");
    success(&pull(&env, &other_pushed.reference));
    std::fs::remove_file(blob_path(&env, &other_pushed.digest)).unwrap();
    let pruned = success(&env.run(&["images", "prune"]));
    assert!(
        pruned.contains(&format!("removed image {}", other_pushed.reference)),
        "{pruned}"
    );
    let names: BTreeSet<String> = env.image_names().into_iter().collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "docker.io/local/second:v1".to_string(),
            "docker.io/local/copy:v1".to_string()
        ])
    );
    // The dangling image's own snapshots went; the shared ones did not matter here.
    assert_eq!(snapshots(&env), image.chain_ids().into_iter().collect());

    // prune --all keeps an image a view uses, and removes the rest.
    let top = image.chain_ids().pop().unwrap();
    make_view(&env, &top);
    let pruned = success(&env.run(&["images", "prune", "--all"]));
    assert!(pruned.contains("pruned 0 image(s)"), "{pruned}");
    assert_eq!(env.image_names().len(), 2);

    let engine = hoist_engine::Engine::open(env.root()).unwrap();
    engine
        .snapshotter(Some(SNAPSHOTTER))
        .unwrap()
        .remove(&format!("view:{top}"))
        .unwrap();
    drop(engine);
    let pruned = success(&env.run(&["images", "prune", "--all"]));
    assert!(
        pruned.contains("pruned 2 image(s) and 3 snapshot(s)"),
        "{pruned}"
    );
    assert!(env.image_names().is_empty());
    assert!(snapshots(&env).is_empty());
    gc(&env, &[]);
    assert!(env.stored_digests().is_empty());
}
