//! The CRI ImageService end to end: a real `hoistd` serving a real gRPC
//! client, the Python stubs `grpcio-tools` generates from the same vendored
//! `api.proto` (`scripts/cri-client-gen`, once per test process), driven by
//! `tests/cri/cri_client.py`, against the real registry in its plain,
//! htpasswd and token variants, with faults from the testkit's proxy.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use hoist_testkit::{
    Compression, Fault, FaultProxy, Format, Image, Layer, Registry, layer, noise, run_ok,
};
use serde_json::{Value, json};

use crate::util::{Daemon, is_empty_dir, wait_for};

/// How long one run of the client may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(150);

fn host_platform() -> String {
    hoist_engine::Platform::host().to_string()
}

/// The directory holding the generated `runtime/v1/api_pb2*.py`, made once
/// per test process from the vendored proto.
fn client_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("hoist-cri-client-")
            .tempdir()
            .expect("temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cri-client-gen");
        run_ok(
            std::process::Command::new(&script).arg(dir.path()),
            "generating the Python CRI client (pip install grpcio-tools)",
        );
        dir
    })
    .path()
}

/// Runs `calls` (see `tests/cri/cri_client.py`) against the daemon's CRI
/// socket in one client process and returns one result per call.
fn cri(daemon: &Daemon, calls: Value) -> Vec<Value> {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri/cri_client.py");
    let mut child = daemon
        .dir
        .command("python3")
        .arg(&client)
        .arg("--socket")
        .arg(&daemon.cri_socket)
        .env("PYTHONPATH", client_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(calls.to_string().as_bytes())
        .expect("write calls");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python3") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the CRI client ran longer than {CLIENT_TIMEOUT:?}:\n{}",
                daemon.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    assert!(
        status.success(),
        "the CRI client failed ({status}):\n{stderr}\nhoistd:\n{}",
        daemon.log()
    );
    let results: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(results.len(), calls.as_array().map_or(0, Vec::len));
    results
}

/// One call.
fn call(daemon: &Daemon, op: Value) -> Value {
    cri(daemon, json!([op])).remove(0)
}

/// The response of a call that must have succeeded.
#[track_caller]
fn ok(result: Value) -> Value {
    assert_eq!(result["ok"], true, "the call failed: {result:#}");
    result["response"].clone()
}

/// The gRPC status name of a call that must have failed.
#[track_caller]
fn failed(result: &Value) -> (String, String) {
    assert_eq!(result["ok"], false, "the call succeeded: {result:#}");
    (
        result["code"].as_str().unwrap_or_default().to_string(),
        result["details"].as_str().unwrap_or_default().to_string(),
    )
}

fn pull(image: &str) -> Value {
    json!({"op": "pull", "image": image})
}

/// A 64-bit integer of a message as JSON (protobuf's mapping writes them as
/// strings).
#[track_caller]
fn int(value: &Value) -> u64 {
    match value {
        Value::String(text) => text.parse().expect("integer string"),
        Value::Number(number) => number.as_u64().expect("unsigned integer"),
        other => panic!("not an integer: {other}"),
    }
}

/// A plain-tar layer holding `len` incompressible bytes (so the blob is that
/// large).
fn big_layer(seed: u64, len: usize) -> Layer {
    layer(Compression::None, Format::Oci, |l| {
        l.add_dir("data", 0o755)
            .add_file(&format!("data/{seed}.bin"), &noise(seed, len), 0o644);
    })
}

/// A host image of `big` plus two small gzip layers, with `config` as the
/// config's `config` object.
fn image_with(seed: u64, big: usize, config: Value) -> Image {
    let small = |n: u64| {
        layer(Compression::Gzip, Format::Oci, move |l| {
            l.add_file(
                &format!("small-{n}.txt"),
                format!("layer {n} of {seed}\n").as_bytes(),
                0o644,
            );
        })
    };
    Image::single_with_config(
        Format::Oci,
        &host_platform(),
        vec![small(1), big_layer(seed, big), small(2)],
        config,
    )
}

/// What containerd reports as an image's size: the compressed size of its
/// manifest, config and layers.
fn compressed_size(image: &Image) -> u64 {
    image.size()
        + image.config_bytes().expect("single image").len() as u64
        + image.layers().iter().map(Layer::size).sum::<u64>()
}

/// `image` pushed as `repository:1`, served through a proxy sending
/// `bytes_per_second`; the registry, the proxy and the reference through it.
fn throttled(
    image: &Image,
    repository: &str,
    bytes_per_second: u64,
) -> (Registry, FaultProxy, String) {
    let registry = Registry::plain();
    registry.push(image, repository, "1");
    let proxy = FaultProxy::for_registry(&registry);
    proxy.set_fault(Fault::Throttle { bytes_per_second });
    let reference = format!("{}/{repository}:1", proxy.host());
    (registry, proxy, reference)
}

/// `GET …/blobs/…` requests the proxy saw, per blob digest.
fn blob_gets(proxy: &FaultProxy) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in proxy.request_log() {
        let Some(path) = line.strip_prefix("GET ") else {
            continue;
        };
        if let Some((_, digest)) = path.split_once("/blobs/") {
            let digest = digest.split([' ', '?']).next().unwrap_or_default();
            *counts.entry(digest.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn pull_status_list_and_remove_an_image_by_its_names() {
    let registry = Registry::plain();
    let image = image_with(1, 32 << 10, json!({"User": "1234:5678", "Env": ["A=1"]}));
    let pushed = registry.push(&image, "library/app", "1.0");
    let daemon = Daemon::start();
    let id = image.config_digest().unwrap().to_string();
    let repo_digest = format!(
        "{}/library/app@{}",
        registry.host(),
        image.manifest_digest()
    );

    let pulled = ok(call(&daemon, pull(&pushed.reference)));
    assert_eq!(
        pulled["image_ref"],
        id.as_str(),
        "PullImage answers the image id"
    );
    assert!(
        daemon.log().contains(&format!(
            "Pulled image \"{}\" with image id \"{id}\", repo tag \"{}\", repo digest \"{repo_digest}\", size \"{}\" in ",
            pushed.reference,
            pushed.reference,
            compressed_size(&image)
        )),
        "containerd's log line:\n{}",
        daemon.log()
    );
    // The three names are image records, as in containerd's store.
    let mut expected = vec![id.clone(), pushed.reference.clone(), repo_digest.clone()];
    expected.sort();
    assert_eq!(daemon.cli_image_names(), expected);

    let hex = id.strip_prefix("sha256:").unwrap();
    let results = cri(
        &daemon,
        json!([
            {"op": "status", "image": pushed.reference},
            {"op": "status", "image": id},
            {"op": "status", "image": &hex[..12]},
            {"op": "status", "image": format!("sha256:{}", &hex[..16])},
            {"op": "status", "image": repo_digest},
            {"op": "status", "image": pushed.reference, "verbose": true},
            {"op": "status", "image": format!("{}/library/app:2.0", registry.host())},
            {"op": "list"},
            {"op": "list", "filter": pushed.reference},
            {"op": "list", "filter": "docker.io/library/nothing:1"},
            {"op": "stream"},
        ]),
    );
    let status = ok(results[0].clone());
    let found = &status["image"];
    assert_eq!(found["id"], id.as_str());
    assert_eq!(found["repo_tags"], json!([pushed.reference]));
    assert_eq!(found["repo_digests"], json!([repo_digest]));
    assert_eq!(int(&found["size"]), compressed_size(&image));
    assert_eq!(
        int(&found["uid"]["value"]),
        1234,
        "uid from the config's User"
    );
    assert_eq!(found["username"], "");
    assert_eq!(found["spec"]["image"], id.as_str());
    assert_eq!(found["pinned"], false);
    assert_eq!(status["info"], json!({}), "no info unless verbose");
    for (i, by) in ["id", "short id", "short sha256: id", "repo digest"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            ok(results[i + 1].clone())["image"],
            *found,
            "status by {by}"
        );
    }

    let verbose = ok(results[5].clone());
    let info: Value = serde_json::from_str(verbose["info"]["info"].as_str().unwrap()).unwrap();
    assert_eq!(info["imageSpec"]["config"]["User"], "1234:5678");
    assert_eq!(info["imageSpec"]["config"]["Env"], json!(["A=1"]));
    let chain_id = image.chain_ids().pop().unwrap();
    assert_eq!(info["chainID"], chain_id.as_str());

    // A missing image is an empty answer, not an error.
    assert!(
        ok(results[6].clone()).get("image").is_none(),
        "{:#}",
        results[6]
    );

    let listed = ok(results[7].clone());
    assert_eq!(listed["images"], json!([found.clone()]));
    assert_eq!(ok(results[8].clone())["images"], json!([found.clone()]));
    assert_eq!(ok(results[9].clone())["images"], json!([]));
    assert_eq!(
        ok(results[10].clone()),
        json!([{"images": [found.clone()]}])
    );

    // Removing by one name removes every name; again is no error.
    let results = cri(
        &daemon,
        json!([
            {"op": "remove", "image": pushed.reference},
            {"op": "status", "image": id},
            {"op": "list"},
            {"op": "stream"},
            {"op": "remove", "image": pushed.reference},
            {"op": "remove", "image": id},
        ]),
    );
    ok(results[0].clone());
    assert!(
        ok(results[1].clone()).get("image").is_none(),
        "{:#}",
        results[1]
    );
    assert_eq!(ok(results[2].clone())["images"], json!([]));
    assert_eq!(ok(results[3].clone()), json!([]), "no message for no image");
    ok(results[4].clone());
    ok(results[5].clone());
    assert_eq!(daemon.cli_image_names(), Vec::<String>::new());
    // The garbage collection it asked for frees the blobs.
    let blobs = daemon.dir.root().join("content/blobs/sha256");
    wait_for(
        Duration::from_secs(20),
        "the GC to free the removed image's blobs",
        || is_empty_dir(&blobs),
    );
}

#[test]
fn errors_carry_codes_the_kubelet_can_act_on() {
    let registry = Registry::plain();
    let image = image_with(2, 1024, json!({}));
    registry.push(&image, "app", "1.0");
    let daemon = Daemon::start();
    let results = cri(
        &daemon,
        json!([
            pull(&format!("{}/app:no-such-tag", registry.host())),
            pull(&format!("{}/NotValid:1", registry.host())),
            pull(""),
            {"op": "status", "image": ""},
            pull(&format!("{}/app:1.0", registry.host())),
            {"op": "pull", "image": format!("{}/app:1.0", registry.host()),
             "auth": {"auth": "not base64!"}},
        ]),
    );
    let (code, details) = failed(&results[0]);
    assert_eq!(code, "NOT_FOUND", "{details}");
    assert!(details.contains("no-such-tag"), "{details}");
    assert_eq!(failed(&results[1]).0, "INVALID_ARGUMENT");
    assert_eq!(failed(&results[2]).0, "INVALID_ARGUMENT");
    assert_eq!(failed(&results[3]).0, "INVALID_ARGUMENT");
    ok(results[4].clone());
    let (code, details) = failed(&results[5]);
    assert_eq!(code, "INVALID_ARGUMENT", "{details}");
    assert!(details.contains("base64"), "{details}");
}

/// Pulls with each way of passing credentials, a wrong password, and
/// credentials meant for another registry.
fn pulls_with_auth(registry: &Registry, username: &str, password: &str) {
    let image = image_with(3, 2048, json!({}));
    let pushed = registry.push(&image, "private/app", "1.0");
    let daemon = Daemon::start();
    let id = image.config_digest().unwrap();
    let basic = base64_encode(&format!("{username}:{password}"));
    let results = cri(
        &daemon,
        json!([
            pull(&pushed.reference),
            {"op": "pull", "image": pushed.reference,
             "auth": {"username": username, "password": "wrong"}},
            {"op": "pull", "image": pushed.reference,
             "auth": {"username": username, "password": password,
                      "server_address": "https://other.example"}},
            {"op": "pull", "image": pushed.reference,
             "auth": {"username": username, "password": password}},
            {"op": "pull", "image": pushed.digest_reference,
             "auth": {"auth": basic, "server_address": registry.host()}},
        ]),
    );
    for (i, what) in [
        "anonymous",
        "wrong password",
        "another registry's credentials",
    ]
    .iter()
    .enumerate()
    {
        let (code, details) = failed(&results[i]);
        assert_eq!(code, "UNAUTHENTICATED", "{what}: {details}");
        assert!(
            !details.contains(password),
            "no secret in errors: {details}"
        );
    }
    assert_eq!(ok(results[3].clone())["image_ref"], id);
    assert_eq!(ok(results[4].clone())["image_ref"], id);
    let log = daemon.log();
    assert!(
        !log.contains(password) && !log.contains(&basic),
        "no secret in the log:\n{log}"
    );
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn pull_with_basic_auth() {
    pulls_with_auth(
        &Registry::basic("alice", "s3cret-basic"),
        "alice",
        "s3cret-basic",
    );
}

#[test]
fn pull_with_token_auth_and_an_identity_token() {
    let registry = Registry::token("bob", "s3cret-token");
    pulls_with_auth(&registry, "bob", "s3cret-token");

    // An identity token is a refresh token, as `docker login` gets one.
    let server = registry.token_server().unwrap();
    let url = format!(
        "{}?service={}&scope=repository:private/app:pull&offline_token=true",
        server.realm(),
        server.service()
    );
    let answer: Value = registry
        .client()
        .get(&url)
        .basic_auth("bob", Some("s3cret-token"))
        .send()
        .and_then(|response| response.error_for_status())
        .and_then(|response| response.json())
        .expect("a refresh token from the token server");
    let refresh = answer["refresh_token"].as_str().unwrap();
    let reference = registry.reference("private/app", "1.0");
    let daemon = Daemon::start();
    let posts = server.post_requests();
    let results = cri(
        &daemon,
        json!([
            {"op": "pull", "image": reference, "auth": {"identity_token": "refresh-forged"}},
            {"op": "pull", "image": reference, "auth": {"identity_token": refresh}},
        ]),
    );
    assert_eq!(failed(&results[0]).0, "UNAUTHENTICATED");
    ok(results[1].clone());
    assert!(
        server.post_requests() > posts,
        "exchanged with the OAuth2 refresh grant"
    );
    assert!(!daemon.log().contains(refresh), "no token in the log");
}

#[test]
fn runtime_handlers_choose_the_snapshotter() {
    let registry = Registry::plain();
    let default = image_with(4, 1024, json!({}));
    let by_spec = image_with(5, 1024, json!({}));
    let by_annotation = image_with(6, 1024, json!({}));
    let daemon = Daemon::start_with(
        "snapshotter = \"overlay\"\nstats_collect_period = \"0s\"\n[runtime_handlers.kata]\nsnapshotter = \"native\"\n",
    );
    let reference = |image: &Image, repo: &str| registry.push(image, repo, "1").reference;
    let (a, b, c) = (
        reference(&default, "default"),
        reference(&by_spec, "spec"),
        reference(&by_annotation, "annotation"),
    );
    let results = cri(
        &daemon,
        json!([
            pull(&a),
            {"op": "pull", "image": b, "runtime_handler": "kata"},
            {"op": "pull", "image": c,
             "sandbox_annotations": {"io.containerd.cri.runtime-handler": "kata"}},
            {"op": "fsinfo"},
        ]),
    );
    for result in &results[..3] {
        ok(result.clone());
    }
    let snapshotters_of = |reference: &str| -> Vec<String> {
        let output = daemon
            .hoist()
            .args(["images", "inspect", reference])
            .output()
            .expect("run hoist");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let details: Value = serde_json::from_slice(&output.stdout).unwrap();
        let snapshots = details["manifests"][0]["snapshots"].as_object().unwrap();
        snapshots.keys().cloned().collect()
    };
    assert_eq!(snapshotters_of(&a), vec!["overlay"]);
    assert_eq!(snapshotters_of(&b), vec!["native"]);
    assert_eq!(snapshotters_of(&c), vec!["native"]);
    // One filesystem entry per snapshotter, the default first.
    let fs = ok(results[3].clone());
    let mountpoints: Vec<&str> = fs["image_filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fs_id"]["mountpoint"].as_str().unwrap())
        .collect();
    let root = daemon.dir.root();
    assert_eq!(
        mountpoints,
        vec![
            root.join("snapshots/overlay").to_str().unwrap(),
            root.join("snapshots/native").to_str().unwrap()
        ]
    );
}

/// `(timestamp, used_bytes, inodes_used, mountpoint)` of the first image
/// filesystem, checking the container filesystem repeats it.
#[track_caller]
fn first_fs(response: &Value) -> (u64, u64, u64, PathBuf) {
    let image_fs = &response["image_filesystems"][0];
    assert_eq!(response["container_filesystems"], json!([image_fs.clone()]));
    (
        int(&image_fs["timestamp"]),
        int(&image_fs["used_bytes"]["value"]),
        int(&image_fs["inodes_used"]["value"]),
        PathBuf::from(image_fs["fs_id"]["mountpoint"].as_str().unwrap()),
    )
}

#[test]
fn image_fs_info_measures_the_store_and_caches_for_the_period() {
    let registry = Registry::plain();
    let image = image_with(7, 256 << 10, json!({}));
    let pushed = registry.push(&image, "fs/app", "1");
    let fresh = Daemon::start_with("stats_collect_period = \"0s\"\n");
    let results = cri(
        &fresh,
        json!([{"op": "fsinfo"}, pull(&pushed.reference), {"op": "fsinfo"}]),
    );
    let (t0, bytes0, inodes0, mountpoint) = first_fs(&ok(results[0].clone()));
    ok(results[1].clone());
    let (t1, bytes1, inodes1, _) = first_fs(&ok(results[2].clone()));
    assert!(t0 > 0 && t1 > t0, "{t0} {t1}");
    assert!(bytes0 > 0 && inodes0 > 0, "{bytes0} {inodes0}");
    assert!(
        mountpoint.starts_with(fresh.dir.root().join("snapshots")),
        "{}",
        mountpoint.display()
    );
    // The blobs (compressed) and the unpacked layers both count.
    let layers: u64 = image.layers().iter().map(Layer::size).sum();
    assert!(
        bytes1 >= bytes0 + 2 * (256 << 10),
        "{bytes0} → {bytes1} (layers {layers})"
    );
    assert!(
        inodes1 >= inodes0 + image.layers().len() as u64 + 5,
        "{inodes0} → {inodes1}"
    );

    let cached = Daemon::start_with("stats_collect_period = \"1h\"\n");
    let results = cri(
        &cached,
        json!([{"op": "fsinfo"}, pull(&pushed.reference), {"op": "fsinfo"}]),
    );
    ok(results[1].clone());
    assert_eq!(
        ok(results[0].clone()),
        ok(results[2].clone()),
        "measured once per stats_collect_period"
    );
}

#[test]
#[allow(clippy::print_stderr, reason = "reports the measured request counts")]
fn twenty_concurrent_pulls_fetch_each_blob_once() {
    let image = Image::single(
        Format::Oci,
        &host_platform(),
        (0..4)
            .map(|seed| big_layer(100 + seed, 512 << 10))
            .collect(),
    );
    // About a second per layer, so the twenty pulls overlap for sure.
    let (_registry, proxy, reference) = throttled(&image, "many/app", 512 << 10);
    let daemon = Daemon::start();
    let results = call(
        &daemon,
        json!({"op": "pulls", "image": reference, "count": 20}),
    );
    let results = results["results"].as_array().unwrap();
    assert_eq!(results.len(), 20);
    let id = image.config_digest().unwrap();
    for result in results {
        assert_eq!(ok(result.clone())["image_ref"], id);
    }
    let gets = blob_gets(&proxy);
    eprintln!("blob GETs for 20 concurrent pulls: {gets:?}");
    let mut expected: BTreeMap<String, usize> = image
        .layers()
        .iter()
        .map(|l| (l.digest.clone(), 1))
        .collect();
    expected.insert(id.to_string(), 1);
    assert_eq!(gets, expected, "each blob fetched exactly once");
    let manifest_requests = proxy
        .request_log()
        .iter()
        .filter(|line| line.contains("/manifests/"))
        .count();
    assert!(
        manifest_requests >= 20,
        "every pull resolved: {manifest_requests}"
    );
    let listed = ok(call(&daemon, json!({"op": "list"})));
    assert_eq!(listed["images"].as_array().unwrap().len(), 1, "{listed:#}");
}

/// Opens the default snapshotter (`ImageFsInfo` does) before a test with a
/// short progress timeout: the first open probes overlay support with a
/// mount, which takes up to a couple of seconds here without a progress
/// event, so a first pull would count it against the timeout.
fn warm_up_snapshotter(daemon: &Daemon) {
    ok(call(daemon, json!({"op": "fsinfo"})));
}

#[test]
#[allow(clippy::print_stderr, reason = "reports the measured timing")]
fn a_stalled_registry_trips_the_progress_timeout() {
    let registry = Registry::plain();
    let image = image_with(8, 1 << 20, json!({}));
    registry.push(&image, "stall/app", "1");
    let proxy = FaultProxy::for_registry(&registry);
    // The small blobs pass whole; the big layer stops after 64 KiB.
    proxy.set_fault(Fault::StallBlobs { after: 64 << 10 });
    let reference = format!("{}/stall/app:1", proxy.host());
    let timeout = 2.0;
    let daemon = Daemon::start_with("image_pull_progress_timeout = \"2s\"\n");
    warm_up_snapshotter(&daemon);
    let result = call(&daemon, pull(&reference));
    let (code, details) = failed(&result);
    assert_eq!(code, "DEADLINE_EXCEEDED", "{details}");
    assert!(details.contains("no progress"), "{details}");
    let stalls = proxy.stalls();
    assert_eq!(stalls.len(), 1, "one blob stalled");
    let finished =
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(result["finished_at"].as_f64().unwrap());
    let after_stall = finished
        .duration_since(stalls[0])
        .expect("failed after the stall");
    let seconds = result["seconds"].as_f64().unwrap();
    eprintln!(
        "PullImage failed {:.3} s after the registry stalled ({seconds:.3} s in all)",
        after_stall.as_secs_f64()
    );
    assert!(seconds >= timeout, "not before the timeout: {seconds}");
    assert!(
        after_stall.as_secs_f64() <= timeout + 2.0,
        "within the timeout + 2 s of the stall: {after_stall:?}"
    );
    assert!(!daemon.log().contains("Pulled image"));
    assert_eq!(daemon.cli_image_names(), Vec::<String>::new());

    // What the cancelled pull stored is kept: the next pull finishes it.
    proxy.set_fault(Fault::None);
    let again = ok(call(&daemon, pull(&reference)));
    assert_eq!(again["image_ref"], image.config_digest().unwrap());
}

#[test]
#[allow(clippy::print_stderr, reason = "reports the measured timing")]
fn a_slow_but_steady_trickle_does_not_trip_the_progress_timeout() {
    let image = image_with(9, 96 << 10, json!({}));
    // 24 KiB/s, sent every tenth of a second: the big layer takes about 4 s,
    // twice the timeout, and bytes never stop for long.
    let (_registry, proxy, reference) = throttled(&image, "trickle/app", 24 << 10);
    let daemon = Daemon::start_with("image_pull_progress_timeout = \"2s\"\n");
    warm_up_snapshotter(&daemon);
    // Three kubelets pulling it at once: one downloads, the others wait for
    // that download, and none of them may take the wait for a stall.
    let results = call(
        &daemon,
        json!({"op": "pulls", "image": reference, "count": 3}),
    );
    for result in results["results"].as_array().unwrap() {
        let seconds = result["seconds"].as_f64().unwrap();
        eprintln!("a trickled pull took {seconds:.3} s with a 2 s progress timeout");
        if result["ok"] != true {
            eprintln!("hoistd:\n{}", daemon.log());
        }
        assert_eq!(
            ok(result.clone())["image_ref"],
            image.config_digest().unwrap()
        );
        assert!(seconds > 3.0, "the pull outlasted the timeout: {seconds}");
    }
    let layer = &image.layers()[1].digest;
    assert_eq!(
        blob_gets(&proxy).get(layer),
        Some(&1),
        "one download for the three"
    );
}

#[test]
fn a_pull_cancelled_by_shutdown_is_unavailable() {
    let image = image_with(11, 256 << 10, json!({}));
    // About 16 s for the big layer: the pull surely runs at SIGTERM.
    let (_registry, proxy, reference) = throttled(&image, "shutdown/app", 16 << 10);
    let daemon = Daemon::start();
    let result = std::thread::scope(|scope| {
        let puller = scope.spawn(|| call(&daemon, pull(&reference)));
        wait_for(Duration::from_secs(20), "the pull to fetch layers", || {
            blob_gets(&proxy).len() >= 2
        });
        let status = std::process::Command::new("kill")
            .args(["-TERM", &daemon.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        puller.join().expect("the client thread")
    });
    let (code, details) = failed(&result);
    assert_eq!(code, "UNAVAILABLE", "{details}");
    assert!(details.contains("shutting down"), "{details}");
}
