//! The daemon itself: sockets, shutdown, configuration, the GC scheduler,
//! metrics, and the store it shares with `hoist` CLI processes.

use std::process::Command;
use std::time::{Duration, Instant};

use hoist_testkit::{Compression, Fault, FaultProxy, Format, Registry, run_ok, simple_image};

use crate::util::{Daemon, HOISTD, wait_for};

fn host_platform() -> String {
    hoist_engine::Platform::host().to_string()
}

/// `POST /images/create` for `reference` (`host:port/repo`, `tag`) through
/// the Docker API; returns the status and the JSON message stream.
fn docker_pull(daemon: &Daemon, repository: &str, tag: &str) -> (u16, String) {
    daemon.docker_api(
        "POST",
        &format!("/v1.41/images/create?fromImage={repository}&tag={tag}"),
        "",
    )
}

/// The blob files under the store's content directory.
fn stored_blobs(daemon: &Daemon) -> Vec<String> {
    let dir = daemon.dir.root().join("content/blobs/sha256");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The value of a sample line `name{labels} value` in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn sigterm_cancels_a_running_pull_and_leaves_a_clean_store_without_leases() {
    let registry = Registry::plain();
    let image = simple_image(Format::Oci, Compression::Gzip, &host_platform());
    registry.push(&image, "slow/app", "v1");
    let proxy = FaultProxy::for_registry(&registry);
    // About 40 s for the 64 KiB layer: the pull is surely running at SIGTERM.
    proxy.set_fault(Fault::Throttle {
        bytes_per_second: 2048,
    });
    let daemon = Daemon::start();
    let socket = daemon.docker_socket.clone();
    let repository = format!("{}/slow/app", proxy.host());
    let puller = std::thread::spawn(move || {
        crate::util::http_over_unix(
            &socket,
            "POST",
            &format!("/v1.41/images/create?fromImage={repository}&tag=v1"),
            "",
        )
    });
    wait_for(Duration::from_secs(20), "a blob download to start", || {
        proxy.request_log().iter().any(|r| r.contains("/blobs/"))
    });
    let root = daemon.dir.root();
    let hoist = |args: &[&str]| {
        Command::new(crate::util::hoist_binary())
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .expect("run hoist")
    };
    let asked = Instant::now();
    let status = daemon.stop();
    assert!(status.success(), "hoistd exits 0 on SIGTERM: {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        asked.elapsed()
    );
    let (_, stream) = puller.join().expect("puller thread");
    assert!(!stream.contains("Status: Downloaded"), "{stream}");

    let check = hoist(&["check"]);
    assert!(
        check.status.success(),
        "hoist check after SIGTERM: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let leases = hoist(&["leases", "ls"]);
    let leases = String::from_utf8_lossy(&leases.stdout);
    assert!(
        !leases.contains("hoist-pull-"),
        "the cancelled pull's lease is released: {leases}"
    );
    // What the cancelled pull stored is kept: the CLI completes the pull.
    proxy.set_fault(Fault::None);
    let pulled = hoist(&[
        "pull",
        "--plain-http",
        &format!("{}/slow/app:v1", proxy.host()),
    ]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
}

#[test]
fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let mut first = Daemon::start();
    // A second daemon on another root, asked for the first one's CRI socket.
    let second_daemon = |first: &Daemon| {
        let mut command = first.dir.command(HOISTD);
        command
            .arg("--root")
            .arg(first.dir.path("other-root"))
            .arg("--cri-socket")
            .arg(&first.cri_socket)
            .arg("--docker-socket")
            .arg(first.dir.path("other-docker.sock"));
        command
    };
    let refused = second_daemon(&first).output().expect("run a second hoistd");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("in use by another process"),
        "a live socket is refused: {stderr}"
    );

    // A crash leaves the socket file behind; the next daemon replaces it.
    first.kill();
    assert!(first.cri_socket.exists(), "the stale socket is still there");
    let mut second = second_daemon(&first)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hoistd");
    let (status, body) = {
        let mut answered = None;
        wait_for(Duration::from_secs(20), "the new daemon to serve", || {
            if let Ok(Some(status)) = second.try_wait() {
                panic!("the second hoistd exited: {status}");
            }
            if std::os::unix::net::UnixStream::connect(first.dir.path("other-docker.sock")).is_err()
            {
                return false;
            }
            answered = Some(crate::util::http_over_unix(
                &first.dir.path("other-docker.sock"),
                "GET",
                "/_ping",
                "",
            ));
            true
        });
        answered.expect("answered")
    };
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert!(std::os::unix::net::UnixStream::connect(&first.cri_socket).is_ok());
    let _ = second.kill();
    let _ = second.wait();
}

#[test]
fn a_bad_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "max_concurrent_downloads = 3\nmax_downloads = 3\n").unwrap();
    let output = Command::new(HOISTD)
        .arg("--config")
        .arg(&config)
        .arg("--root")
        .arg(dir.path().join("root"))
        .output()
        .expect("run hoistd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&*config.to_string_lossy()), "{stderr}");
    assert!(stderr.contains("max_downloads"), "{stderr}");
    assert!(!dir.path().join("root").exists(), "nothing was created");
}

#[test]
fn discarded_layers_are_collected_right_after_the_pull() {
    let registry = Registry::plain();
    let image = simple_image(Format::Docker, Compression::Gzip, &host_platform());
    registry.push(&image, "discard/app", "v1");
    let daemon = Daemon::start_with("discard_unpacked_layers = true\n");
    let (status, stream) = docker_pull(&daemon, &format!("{}/discard/app", registry.host()), "v1");
    assert_eq!(status, 200, "{stream}");
    assert!(stream.contains("Downloaded newer image"), "{stream}");
    let layers: Vec<String> = image.layers().iter().map(|l| l.digest.clone()).collect();
    wait_for(
        Duration::from_secs(20),
        "the GC scheduler to free the layers",
        || {
            let stored = stored_blobs(&daemon);
            layers.iter().all(|l| !stored.contains(l))
        },
    );
    let stored = stored_blobs(&daemon);
    assert!(
        stored.contains(&image.manifest_digest()),
        "the manifest stays"
    );
    assert!(
        stored.contains(&image.config_digest().unwrap().to_string()),
        "the config stays"
    );
    wait_for(Duration::from_secs(10), "the GC run to be counted", || {
        sample(&daemon.scrape(), "hoist_gc_runs_total").is_some_and(|n| n >= 1.0)
    });
    let freed = sample(&daemon.scrape(), "hoist_gc_freed_bytes_total").unwrap();
    let layer_bytes: u64 = image.layers().iter().map(|l| l.size()).sum();
    assert_eq!(freed as u64, layer_bytes);
}

#[test]
fn metrics_count_the_pulls_and_bytes_that_happened() {
    let registry = Registry::plain();
    let image = simple_image(Format::Oci, Compression::Gzip, &host_platform());
    registry.push(&image, "metrics/app", "v1");
    let daemon = Daemon::start();
    let before = daemon.scrape();
    assert_eq!(
        sample(&before, "hoist_image_pulls_total{outcome=\"success\"}"),
        Some(0.0)
    );
    let repository = format!("{}/metrics/app", registry.host());
    for _ in 0..2 {
        let (status, stream) = docker_pull(&daemon, &repository, "v1");
        assert_eq!(status, 200, "{stream}");
    }
    let (status, missing) = docker_pull(&daemon, &repository, "no-such-tag");
    assert!(
        status != 200 || missing.contains("errorDetail"),
        "{missing}"
    );

    let scrape = daemon.scrape();
    // Every sample line is `series value`, every other line a comment.
    for line in scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        assert!(!series.is_empty(), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(
        scrape.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with EOF"
    );
    assert_eq!(
        sample(&scrape, "hoist_image_pulls_total{outcome=\"success\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&scrape, "hoist_image_pulls_total{outcome=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&scrape, "hoist_image_pulls_in_progress"), Some(0.0));
    // The first pull fetched every blob, the second none.
    let fetched = sample(
        &scrape,
        &format!(
            "hoist_registry_fetched_bytes_total{{host=\"{}\"}}",
            registry.host()
        ),
    )
    .unwrap();
    let blob_bytes: u64 = image.blobs().iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(fetched as u64, blob_bytes);
    assert_eq!(sample(&scrape, "hoist_unpack_seconds_count"), Some(2.0));
    assert!(sample(&scrape, "process_resident_memory_bytes").unwrap() > 0.0);
}

#[test]
fn the_cli_and_the_daemon_share_one_store() {
    let registry = Registry::plain();
    let image = simple_image(Format::Oci, Compression::Gzip, &host_platform());
    registry.push(&image, "shared/one", "v1");
    registry.push(&image, "shared/two", "v1");
    let daemon = Daemon::start();
    let (status, stream) = docker_pull(&daemon, &format!("{}/shared/one", registry.host()), "v1");
    assert_eq!(status, 200, "{stream}");
    // The CLI, on the same root while the daemon runs, sees the image and
    // needs no byte for the second name.
    let result = run_ok(
        daemon.hoist().args([
            "pull",
            "--progress",
            "json",
            &format!("{}/shared/two:v1", registry.host()),
        ]),
        "hoist pull",
    );
    assert!(result.contains("\"downloaded\":0"), "{result}");
    let (status, listed) = daemon.docker_api("GET", "/v1.41/images/json", "");
    assert_eq!(status, 200);
    assert!(listed.contains("shared/one:v1"), "{listed}");
    assert!(listed.contains("shared/two:v1"), "{listed}");
}
