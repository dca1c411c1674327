//! The library API alone, as an embedder (a builder, say) drives it: no CLI,
//! no daemon. Resolve, lease, fetch, unpack and register one step at a time
//! against the real registry, then check what each step left in the store.

use std::sync::Arc;

use hoist_engine::{
    Credentials, Engine, EngineOptions, Labels, PullOptions, RegistryOptions, StaticCredentials,
};
use hoist_testkit::{Compression, Format, Image, Pushed, Registry, simple_image};
use tempfile::TempDir;

fn host_platform() -> String {
    hoist_engine::Platform::host().to_string()
}

fn native() -> PullOptions {
    PullOptions {
        snapshotter: Some("native".into()),
        ..PullOptions::default()
    }
}

/// A simple image of `format` pushed as `repository:v1`, and an engine on
/// a fresh store (the directory is removed on drop).
fn pushed_and_store(
    format: Format,
    repository: &str,
) -> (Registry, Image, Pushed, TempDir, Engine) {
    let registry = Registry::plain();
    let image = simple_image(format, Compression::Gzip, &host_platform());
    let pushed = registry.push(&image, repository, "v1");
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    (registry, image, pushed, dir, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedder_resolves_fetches_unpacks_and_registers_step_by_step() {
    let (_registry, image, pushed, _dir, engine) = pushed_and_store(Format::Oci, "embed/app");
    let options = native();

    let resolved = engine.resolve(&pushed.reference, &options).await.unwrap();
    assert_eq!(resolved.name, pushed.reference);
    assert_eq!(resolved.descriptor.digest().to_string(), pushed.digest);

    let lease = engine.lease(&resolved.name).await.unwrap();
    assert_eq!(engine.leases().unwrap().len(), 1, "the hold is recorded");
    let fetched = engine.fetch(&resolved, &options, &lease).await.unwrap();
    assert_eq!(fetched.target.digest().to_string(), pushed.digest);
    assert_eq!(fetched.manifests.len(), 1);
    assert_eq!(
        fetched.configs[0].to_string(),
        image.config_digest().unwrap()
    );
    // Manifest, config and three layers, every one stored and verified.
    assert_eq!(fetched.blobs, 5);
    for (digest, bytes) in image.blobs() {
        let stored = engine
            .content()
            .read_blob(&digest.parse().unwrap(), 1 << 20)
            .unwrap();
        assert_eq!(stored, bytes, "{digest}");
    }
    // Fetching records no image.
    assert!(engine.images().unwrap().is_empty());

    let unpacked = engine
        .unpack(&fetched.manifests, &options, &lease)
        .await
        .unwrap();
    assert_eq!(unpacked.snapshotter, "native");
    let top = unpacked.chain_ids[0].to_string();
    let snapshots = engine.snapshots(Some("native")).unwrap();
    assert_eq!(snapshots.len(), 3, "one committed snapshot per layer");
    assert!(snapshots.iter().any(|s| s.key == top));
    let mounts = engine.snapshot_mounts(Some("native"), &top).unwrap();
    let tree = std::path::Path::new(&mounts[0].source);
    assert_eq!(
        std::fs::read_to_string(tree.join("hello.txt")).unwrap(),
        format!("hello from {}\n", host_platform())
    );
    assert_eq!(
        std::fs::read_link(tree.join("bin/hello")).unwrap(),
        std::path::Path::new("../hello.txt")
    );

    let previous = engine
        .register(&resolved.name, &fetched.target, Labels::new())
        .await
        .unwrap();
    assert_eq!(previous, None, "the name is new");
    lease.release().await;
    assert!(engine.leases().unwrap().is_empty(), "released");
    let images = engine.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name, pushed.reference);
    assert!(engine.check(false).unwrap().problems.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_digest_reference_resolves_without_the_registry() {
    let (registry, image, pushed, _dir, engine) = pushed_and_store(Format::Docker, "embed/offline");
    engine.pull(&pushed.reference, native()).await.unwrap();
    drop(registry);

    let resolved = engine
        .resolve(&pushed.digest_reference, &native())
        .await
        .unwrap();
    assert_eq!(resolved.descriptor.digest().to_string(), pushed.digest);
    assert_eq!(resolved.descriptor.size(), image.size());
    // The registry is gone, so a tag cannot resolve.
    assert!(engine.resolve(&pushed.reference, &native()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pull_brings_its_own_credentials_to_one_shared_engine() {
    let registry = Registry::basic("alice", "wonderland");
    let image = simple_image(Format::Oci, Compression::Gzip, &host_platform());
    let pushed = registry.push(&image, "private/app", "v1");
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(
        dir.path(),
        EngineOptions {
            // A docker config nobody wrote: no credentials but the caller's.
            registry: RegistryOptions {
                docker_config: Some(dir.path().join("no-config.json")),
                ..RegistryOptions::default()
            },
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let with = |user: &str, password: &str| PullOptions {
        credentials: Some(Arc::new(StaticCredentials::new(
            registry.host(),
            Credentials::new(user, password),
        ))),
        ..native()
    };

    // A pull without credentials is refused, before and after good ones.
    let anonymous_refused = async || {
        let error = engine.pull(&pushed.reference, native()).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unauthorized: authentication required"),
            "{error}"
        );
    };

    anonymous_refused().await;
    let wrong = engine
        .pull(&pushed.reference, with("alice", "guess"))
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("rejected"), "{wrong}");
    let pulled = engine
        .pull(&pushed.reference, with("alice", "wonderland"))
        .await
        .unwrap();
    assert_eq!(pulled.target.digest().to_string(), pushed.digest);
    // The good credentials do not leak to the next caller without them.
    anonymous_refused().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_bound_is_one_setting_for_the_network_and_the_store() {
    // A config of 9 MiB: over the default 8 MiB bound for bodies read whole.
    let registry = Registry::plain();
    let layers = simple_image(Format::Oci, Compression::Gzip, &host_platform())
        .layers()
        .to_vec();
    let big = "x".repeat(9 << 20);
    let image = hoist_testkit::Image::single_with_config(
        Format::Oci,
        &host_platform(),
        layers,
        serde_json::json!({"Labels": {"padding": big}}),
    );
    let pushed = registry.push(&image, "embed/bigconfig", "v1");

    let dir = tempfile::tempdir().unwrap();
    let default = Engine::open(dir.path().join("default")).unwrap();
    let refused = default.pull(&pushed.reference, native()).await.unwrap_err();
    assert!(refused.to_string().contains("large"), "{refused}");

    // Raised once, it holds for fetching and for re-reading while unpacking.
    let raised = Engine::open_with(
        dir.path().join("raised"),
        EngineOptions {
            registry: RegistryOptions {
                max_manifest_size: 16 << 20,
                ..RegistryOptions::default()
            },
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let pulled = raised.pull(&pushed.reference, native()).await.unwrap();
    assert_eq!(pulled.chain_ids.len(), 1);
    assert!(raised.check(false).unwrap().problems.is_empty());
    // And for listing, which reads the platform from the config.
    let images = raised.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].platforms, vec![host_platform()]);
}
