//! Unpacking while downloading: a pull applies each layer as its bytes
//! arrive, through a fault proxy in front of the real registry, and what it
//! commits is exactly what a pull from the store would commit.

use hoist_engine::{BlobKind, Engine, EngineOptions, Event, PullOptions};
use hoist_testkit::{
    Compression, Fault, FaultProxy, Format, Image, Registry, layer, noise, simple_image,
};
use tokio::sync::mpsc;

fn host_platform() -> String {
    hoist_engine::Platform::host().to_string()
}

/// An engine on `dir` for the proxy's plain HTTP, one download at a time,
/// so the layers arrive in the manifest's order.
fn engine(dir: &std::path::Path) -> Engine {
    let options = EngineOptions {
        registry: hoist_engine::RegistryOptions {
            plain_http: true,
            ..hoist_engine::RegistryOptions::default()
        },
        max_concurrent_downloads: 1,
        ..EngineOptions::default()
    };
    Engine::open_with(dir, options).unwrap()
}

/// Pulls `reference` into the native snapshotter, returning the events.
async fn pull(engine: &Engine, reference: &str) -> Vec<Event> {
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let options = PullOptions {
        snapshotter: Some("native".into()),
        progress: Some(sender),
        ..PullOptions::default()
    };
    engine.pull(reference, options).await.unwrap();
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    events
}

fn position(events: &[Event], what: &str, wanted: impl Fn(&Event) -> bool) -> usize {
    events
        .iter()
        .position(wanted)
        .unwrap_or_else(|| panic!("no {what} in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_layer_is_applied_while_later_layers_download() {
    let registry = Registry::plain();
    let image = simple_image(Format::Oci, Compression::Gzip, &host_platform());
    registry.push(&image, "stream/app", "v1");
    // The top layer (65 kB) takes about two seconds through the proxy; the
    // two below it take milliseconds.
    let proxy = FaultProxy::start(&registry.base_url(), None);
    proxy.set_fault(Fault::Throttle {
        bytes_per_second: 32 << 10,
    });
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());

    let events = pull(&engine, &format!("{}/stream/app:v1", proxy.host())).await;

    let layers = image.layers();
    let bottom = layers[0].digest.clone();
    let top = layers[2].digest.clone();
    let bottom_unpacked = position(
        &events,
        "bottom layer unpacked",
        |e| matches!(e, Event::LayerUnpacked { digest, .. } if digest.to_string() == bottom),
    );
    let top_downloaded = position(
        &events,
        "top layer downloaded",
        |e| matches!(e, Event::Done { digest, kind: BlobKind::Layer, .. } if digest.to_string() == top),
    );
    assert!(
        bottom_unpacked < top_downloaded,
        "the bottom layer was committed only after the top one downloaded: {events:#?}"
    );
    // No layer reports extracting before its own download is done.
    for (i, event) in events.iter().enumerate() {
        if let Event::Extracting { digest, .. } = event {
            let done = position(
                &events,
                "done",
                |e| matches!(e, Event::Done { digest: d, .. } if d == digest),
            );
            assert!(done < i, "{digest} extracting before downloaded");
        }
    }
    let report = engine.check(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_whose_download_restarts_under_the_applier_is_applied_from_the_store() {
    let registry = Registry::plain();
    let big = noise(7, 4 << 20);
    let image = Image::single(
        Format::Oci,
        &host_platform(),
        vec![layer(Compression::Gzip, Format::Oci, |l| {
            l.add_dir("data", 0o755)
                .add_file("data/big.bin", &big, 0o644)
                .add_file("data/after.txt", b"after the big file\n", 0o644);
        })],
    );
    registry.push(&image, "stream/restart", "v1");
    // The first response is cut a quarter in (the applier has started on
    // those bytes); the retry asks for the rest, and gets the whole blob
    // again from its first byte, so the ingest is rewound under the applier.
    let proxy = FaultProxy::start(&registry.base_url(), None);
    proxy.set_fault(Fault::TruncateOnceIgnoringRange { after: 1 << 20 });
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());

    pull(&engine, &format!("{}/stream/restart:v1", proxy.host())).await;

    let layer_digest = &image.layers()[0].digest;
    let blob_gets: Vec<String> = proxy
        .request_log()
        .into_iter()
        .filter(|line| line.starts_with("GET ") && line.contains(layer_digest.as_str()))
        .collect();
    assert_eq!(blob_gets.len(), 2, "{blob_gets:?}");
    assert!(
        blob_gets[1].contains("range=bytes="),
        "the retry resumed: {blob_gets:?}"
    );
    let snapshots = engine.snapshots(Some("native")).unwrap();
    assert_eq!(
        snapshots.len(),
        1,
        "one committed snapshot, no leftover: {snapshots:?}"
    );
    let tree = engine
        .snapshotter(Some("native"))
        .unwrap()
        .fs_dir(&snapshots[0].key)
        .unwrap();
    assert!(std::fs::read(tree.join("data/big.bin")).unwrap() == big);
    assert_eq!(
        std::fs::read_to_string(tree.join("data/after.txt")).unwrap(),
        "after the big file\n"
    );
    let report = engine.check(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
}
