//! A fleet behind a pull-through cache, on existing engines: a real CNCF
//! distribution registry as upstream, a second one in proxy mode
//! (`proxy: remoteurl:`) as the cache, several hoist stores pulling through
//! it via a `hosts.toml` mirror, and counting proxies that tell the cache's
//! upstream requests from hoist's own.

use std::time::{Duration, Instant};

use hoist_testkit::{Compression, FaultProxy, Format, Registry, simple_image};

use crate::util::{TestEnv, success};

/// `GET`s of blobs a proxy has seen.
fn blob_gets(proxy: &FaultProxy) -> usize {
    proxy
        .request_log()
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/"))
        .count()
}

fn pull_wave(reference: &str, hosts: &std::path::Path, stores: usize) -> Vec<TestEnv> {
    let envs: Vec<TestEnv> = (0..stores).map(|_| TestEnv::new()).collect();
    std::thread::scope(|scope| {
        for env in &envs {
            scope.spawn(move || {
                success(&env.pull(&["--hosts-dir", hosts.to_str().unwrap(), reference]));
            });
        }
    });
    envs
}

#[test]
fn a_fleet_pulls_through_a_pull_through_cache_and_falls_back_when_it_is_down() {
    let upstream = Registry::plain();
    // Debian's distribution 2.8 proxy serves Docker v2s2, not OCI.
    let image = simple_image(
        Format::Docker,
        Compression::Gzip,
        crate::util::host_platform(),
    );
    upstream.push(&image, "fleet/app", "1.0");
    // What the cache asks upstream, and what hoist asks upstream itself.
    let from_cache = FaultProxy::for_registry(&upstream);
    let from_hoist = FaultProxy::for_registry(&upstream);
    let cache = Registry::pull_through(&from_cache.base_url());
    let env = TestEnv::new();
    let hosts = env.path("certs.d");
    std::fs::create_dir_all(hosts.join(from_hoist.host())).unwrap();
    std::fs::write(
        hosts.join(from_hoist.host()).join("hosts.toml"),
        format!(
            "server = \"http://{}\"\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            from_hoist.host(),
            cache.host()
        ),
    )
    .unwrap();
    let reference = format!("{}/fleet/app:1.0", from_hoist.host());
    let blobs = image.layers().len() + 1;

    // First wave: three stores at once. The cache fetches each blob
    // upstream at least once; distribution 2.8 fetches it again per
    // concurrent miss (and sometimes more), so only the floor is fixed.
    let first = pull_wave(&reference, &hosts, 3);
    for store in &first {
        assert_eq!(store.image_names(), vec![reference.clone()]);
    }
    assert_eq!(from_hoist.requests(), 0, "hoist never went upstream itself");
    let first_wave = blob_gets(&from_cache);
    assert!(
        first_wave >= blobs,
        "{first_wave} upstream blob GETs for {blobs} blobs"
    );

    // Second wave: the cache has every blob; upstream sees no blob request.
    pull_wave(&reference, &hosts, 3);
    assert_eq!(
        blob_gets(&from_cache),
        first_wave,
        "second wave cost upstream blobs"
    );
    assert_eq!(from_hoist.requests(), 0);

    // The cache goes down: pulls fall back to the upstream and finish.
    drop(cache);
    let started = Instant::now();
    let fallback = TestEnv::new();
    success(&fallback.pull(&["--hosts-dir", hosts.to_str().unwrap(), &reference]));
    let took = started.elapsed();
    assert!(
        blob_gets(&from_hoist) >= blobs,
        "the fallback fetched upstream"
    );
    assert!(took < Duration::from_secs(10), "fallback took {took:?}");
}
