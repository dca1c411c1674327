//! The real docker CLI (28.x) against hoistd's Docker API: `docker pull`
//! with docker's own progress lines, `images`, `image inspect`, `tag`,
//! `rmi`, `login` and a private pull, docker's error texts, version
//! negotiation, and a prompt 501 for what hoistd does not serve.
//!
//! Every docker command runs under `timeout` (but the one a test kills
//! itself, which its bounded waits cover), with `DOCKER_HOST` on the
//! daemon's socket and the harness's temporary `HOME` (so `docker login`
//! writes a throwaway `config.json`); registries are `hoist_testkit`'s on
//! loopback.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hoist_testkit::{
    Compression, Fault, FaultProxy, Format, Image, Registry, run_with_stdin, simple_image,
};
use serde_json::{Value, json};

use crate::util::{Daemon, assert_contains, exchange, wait_for};

/// The docker CLI under test.
const DOCKER: &str = "docker";

/// The longest any one docker command may take.
const COMMAND_TIMEOUT_SECS: u64 = 120;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

/// The platform the daemon pulls by default, as `os/arch`.
fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

/// A three-layer image for this machine.
fn image() -> Image {
    simple_image(Format::Docker, Compression::Gzip, host_platform())
}

/// One layer of 2 MiB of incompressible bytes, so a throttled pull of it
/// takes seconds.
fn big_image() -> Image {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(2 << 20);
    while data.len() < 2 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    let layer = hoist_testkit::layer(Compression::Gzip, Format::Docker, |l| {
        l.add_dir("data", 0o755)
            .add_file("data/big.bin", &data, 0o644);
    });
    Image::single(Format::Docker, host_platform(), vec![layer])
}

/// docker's short layer id of a blob digest.
fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// `docker …` against `daemon`, bounded by `timeout`.
fn docker(daemon: &Daemon) -> Command {
    let mut command = daemon.dir.command("timeout");
    command
        .arg("--kill-after=5")
        .arg(COMMAND_TIMEOUT_SECS.to_string())
        .arg(DOCKER)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", daemon.docker_socket.display()),
        )
        .env("DOCKER_CLI_HINTS", "false");
    command
}

fn run(daemon: &Daemon, args: &[&str]) -> Output {
    let output = docker(daemon).args(args).output().expect("run docker");
    assert!(
        !matches!(output.status.code(), Some(124 | 137)),
        "docker {args:?} timed out after {COMMAND_TIMEOUT_SECS}s\nstderr: {}\nhoistd log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    output
}

/// Runs docker and asserts it succeeded or failed as `succeed` says; on a
/// surprise, shows what docker and hoistd printed.
#[track_caller]
fn run_expecting(daemon: &Daemon, args: &[&str], succeed: bool) -> Output {
    let output = run(daemon, args);
    assert!(
        output.status.success() == succeed,
        "docker {args:?} {} ({})\nstdout: {}\nstderr: {}\nhoistd log:\n{}",
        if succeed {
            "failed"
        } else {
            "succeeded unexpectedly"
        },
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    output
}

/// Runs docker, asserts success, returns stdout.
#[track_caller]
fn ok(daemon: &Daemon, args: &[&str]) -> String {
    let output = run_expecting(daemon, args, true);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs docker, asserts failure, returns stderr.
#[track_caller]
fn fails(daemon: &Daemon, args: &[&str]) -> String {
    let output = run_expecting(daemon, args, false);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `docker login -u USER --password-stdin host` with `password` on stdin.
fn login(daemon: &Daemon, host: &str, password: &str) -> Output {
    let mut command = docker(daemon);
    command.args(["login", "-u", USER, "--password-stdin", host]);
    let output = run_with_stdin(&mut command, password.as_bytes());
    assert!(
        !matches!(output.status.code(), Some(124 | 137)),
        "docker login timed out"
    );
    output
}

/// `docker login` to `host`: refused (401) with a wrong password, then
/// accepted with the right one; returns the accepted login's output.
fn login_refusing_a_wrong_password(daemon: &Daemon, host: &str) -> Output {
    let wrong = login(daemon, host, "wrong-password");
    assert!(!wrong.status.success(), "{wrong:?}");
    assert_contains(&String::from_utf8_lossy(&wrong.stderr), "401 Unauthorized");
    let right = login(daemon, host, PASSWORD);
    assert!(right.status.success(), "{right:?}\n{}", daemon.log());
    right
}

/// One HTTP/1.0 exchange on the daemon's Docker socket, as a client
/// other than the docker CLI would do it: the status and the body.
fn http(daemon: &Daemon, request: &str) -> (u16, String) {
    exchange(
        &daemon.docker_socket,
        request,
        Duration::from_secs(COMMAND_TIMEOUT_SECS),
    )
}

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves no docker client behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The position of the first line equal to `line`, failing with the output.
#[track_caller]
fn position(lines: &[&str], line: &str) -> usize {
    lines
        .iter()
        .position(|l| *l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in:\n{}", lines.join("\n")))
}

#[test]
fn pull_prints_dockers_progress_and_is_up_to_date_the_second_time() {
    let registry = Registry::plain();
    let image = image();
    let pushed = registry.push(&image, "team/app", "1.0");
    let daemon = Daemon::start();

    let out = ok(&daemon, &["pull", &pushed.reference]);
    let lines: Vec<&str> = out.lines().collect();
    let pulling = position(&lines, "1.0: Pulling from team/app");
    let digest = position(&lines, &format!("Digest: {}", pushed.digest));
    let status = position(
        &lines,
        &format!("Status: Downloaded newer image for {}", pushed.reference),
    );
    assert!(pulling < digest && digest < status, "{out}");
    assert_eq!(lines.last(), Some(&pushed.reference.as_str()), "{out}");
    assert_eq!(image.layers().len(), 3);
    for layer in image.layers() {
        let id = short(&layer.digest);
        let fs_layer = position(&lines, &format!("{id}: Pulling fs layer"));
        let verified = position(&lines, &format!("{id}: Verifying Checksum"));
        let downloaded = position(&lines, &format!("{id}: Download complete"));
        let complete = position(&lines, &format!("{id}: Pull complete"));
        assert!(
            pulling < fs_layer && fs_layer < verified && verified < downloaded,
            "{out}"
        );
        assert!(downloaded < complete && complete < digest, "{out}");
    }
    // Neither the config nor the manifest has a line of its own.
    let config = short(image.config_digest().expect("config"));
    assert!(!out.contains(&config), "{out}");

    let again = ok(&daemon, &["pull", &pushed.reference]);
    assert_contains(
        &again,
        &format!("Status: Image is up to date for {}", pushed.reference),
    );
    assert_contains(&again, &format!("Digest: {}", pushed.digest));
    assert!(!again.contains("Pull complete"), "{again}");
    assert!(!again.contains("Pulling fs layer"), "{again}");
    assert_eq!(daemon.cli_image_names(), vec![pushed.reference.clone()]);
}

#[test]
fn images_inspect_tag_and_rmi() {
    let registry = Registry::plain();
    let image = image();
    let pushed = registry.push(&image, "team/app", "1.0");
    let repository = format!("{}/team/app", registry.host());
    let daemon = Daemon::start();
    ok(&daemon, &["pull", &pushed.reference]);

    let table = |filter: Option<&str>| {
        let mut args = vec![
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}} {{.Tag}} {{.ID}}",
        ];
        if let Some(filter) = filter {
            args.extend(["--filter", filter]);
        }
        let out = ok(&daemon, &args);
        let mut rows: Vec<String> = out.lines().map(str::to_string).collect();
        rows.sort();
        rows
    };
    assert_eq!(
        table(None),
        vec![format!("{repository} 1.0 {}", pushed.digest)]
    );

    let inspect = |name: &str| -> serde_json::Value {
        let out = ok(&daemon, &["image", "inspect", name]);
        let mut all: Vec<serde_json::Value> = serde_json::from_str(&out).expect("inspect JSON");
        assert_eq!(all.len(), 1, "{out}");
        all.remove(0)
    };
    let inspected = inspect(&pushed.reference);
    assert_eq!(inspected["Id"], pushed.digest.as_str());
    let diff_ids: Vec<&str> = image.layers().iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(inspected["RootFS"]["Type"], "layers");
    assert_eq!(inspected["RootFS"]["Layers"], serde_json::json!(diff_ids));
    assert_eq!(inspected["RepoTags"], serde_json::json!([pushed.reference]));
    assert_eq!(
        inspected["RepoDigests"],
        serde_json::json!([format!("{repository}@{}", pushed.digest)])
    );
    let (os, arch) = host_platform().split_once('/').unwrap();
    assert_eq!(inspected["Os"], os);
    assert_eq!(inspected["Architecture"], arch);
    // The id names the image too, in full or by prefix.
    assert_eq!(
        inspect(&short(&pushed.digest))["Id"],
        pushed.digest.as_str()
    );
    assert_eq!(inspect(&pushed.digest)["Id"], pushed.digest.as_str());
    let format = ok(
        &daemon,
        &["image", "inspect", "--format", "{{.Id}}", &pushed.reference],
    );
    assert_eq!(format.trim(), pushed.digest);

    ok(&daemon, &["tag", &pushed.reference, "local/app:2"]);
    assert_eq!(
        table(None),
        vec![
            format!("{repository} 1.0 {}", pushed.digest),
            format!("local/app 2 {}", pushed.digest),
        ]
    );
    assert_eq!(
        table(Some("reference=local/*")),
        vec![format!("local/app 2 {}", pushed.digest)]
    );
    assert_eq!(
        daemon.cli_image_names(),
        vec![
            pushed.reference.clone(),
            "docker.io/local/app:2".to_string()
        ]
    );
    // An id with two names is not removed without --force.
    let conflict = fails(&daemon, &["rmi", &short(&pushed.digest)]);
    assert_contains(&conflict, "image is referenced in multiple repositories");

    let untagged = ok(&daemon, &["rmi", "local/app:2"]);
    assert_eq!(untagged.trim(), "Untagged: local/app:2");
    assert_eq!(daemon.cli_image_names(), vec![pushed.reference.clone()]);
    let removed = ok(&daemon, &["rmi", &pushed.reference]);
    assert_eq!(
        removed.lines().collect::<Vec<_>>(),
        vec![
            format!("Untagged: {}", pushed.reference),
            format!("Deleted: {}", pushed.digest),
        ]
    );
    assert!(table(None).is_empty());
    assert!(daemon.cli_image_names().is_empty());
}

#[test]
fn login_then_private_pull() {
    let registry = Registry::basic(USER, PASSWORD);
    let pushed = registry.push(&image(), "team/app", "1.0");
    let host = registry.host();
    let daemon = Daemon::start();

    let denied = fails(&daemon, &["pull", &pushed.reference]);
    assert_contains(
        &denied,
        &format!(
            "pull access denied for {host}/team/app, repository does not exist or may require 'docker login'"
        ),
    );

    let right = login_refusing_a_wrong_password(&daemon, &host);
    assert!(
        String::from_utf8_lossy(&right.stdout).contains("Login Succeeded"),
        "{right:?}"
    );
    // The CLI keeps the login in the temporary home and sends it with
    // every pull of that registry.
    let config = std::fs::read_to_string(daemon.dir.home().join(".docker/config.json"))
        .expect("docker wrote config.json");
    assert_contains(&config, &host);

    let out = ok(&daemon, &["pull", &pushed.reference]);
    assert_contains(
        &out,
        &format!("Status: Downloaded newer image for {}", pushed.reference),
    );
    assert_eq!(daemon.cli_image_names(), vec![pushed.reference.clone()]);
}

#[test]
fn login_to_a_token_registry() {
    let registry = Registry::token(USER, PASSWORD);
    let pushed = registry.push(&image(), "team/app", "1.0");
    let host = registry.host();
    let daemon = Daemon::start();

    login_refusing_a_wrong_password(&daemon, &host);
    let out = ok(&daemon, &["pull", &pushed.reference]);
    assert_contains(&out, &format!("Digest: {}", pushed.digest));
}

#[test]
fn missing_images_fail_in_dockers_words() {
    let registry = Registry::plain();
    // The repository exists; the tag does not.
    registry.push(&image(), "team/app", "1.0");
    let missing = format!("{}/team/app:nope", registry.host());
    let daemon = Daemon::start();

    let pull = fails(&daemon, &["pull", &missing]);
    assert_contains(
        &pull,
        &format!("Error response from daemon: manifest for {missing} not found: manifest unknown"),
    );
    let rmi = fails(&daemon, &["rmi", "nope"]);
    assert_contains(&rmi, "No such image: nope:latest");
    let inspect = fails(&daemon, &["image", "inspect", "nope"]);
    assert_contains(&inspect, "No such image");
    let tag = fails(&daemon, &["tag", "nope", "other:1"]);
    assert_contains(&tag, "No such image: nope:latest");
    assert!(daemon.cli_image_names().is_empty());
}

#[test]
fn schema1_is_refused_unless_configured() {
    let registry = Registry::plain();
    let layers = vec![hoist_testkit::layer(
        Compression::Gzip,
        Format::Docker,
        |l| {
            l.add_file("etc/os-release", b"ID=old\n", 0o644);
        },
    )];
    let image = hoist_testkit::schema1::Schema1Image::new("team/old", "1.0", layers);
    image.push(&registry, "team/old", "1.0");
    let reference = registry.reference("team/old", "1.0");

    let refusing = Daemon::start();
    let refused = fails(&refusing, &["pull", &reference]);
    assert_contains(&refused, "Docker schema 1 images are deprecated");
    assert!(refusing.cli_image_names().is_empty());

    let converting = Daemon::start_with("allow_schema1 = true\n");
    let out = ok(&converting, &["pull", &reference]);
    assert_contains(
        &out,
        &format!("Status: Downloaded newer image for {reference}"),
    );
    assert_eq!(converting.cli_image_names(), vec![reference]);
}

#[test]
fn all_tags_and_digest_pulls() {
    let registry = Registry::plain();
    let image = image();
    let first = registry.push(&image, "team/app", "1.0");
    let second = registry.push(&image, "team/app", "2.0");
    let daemon = Daemon::start();

    let repository = format!("{}/team/app", registry.host());
    let out = ok(&daemon, &["pull", "--all-tags", &repository]);
    for pushed in [&first, &second] {
        assert_contains(&out, &format!("{}: Pulling from team/app", pushed.tag));
        assert_contains(
            &out,
            &format!("Status: Downloaded newer image for {}", pushed.reference),
        );
    }
    assert_eq!(
        daemon.cli_image_names(),
        vec![first.reference.clone(), second.reference.clone()]
    );

    let by_digest = ok(&daemon, &["pull", &first.digest_reference]);
    assert_contains(
        &by_digest,
        &format!("{}: Pulling from team/app", first.digest_reference),
    );
    assert_contains(&by_digest, &format!("Digest: {}", first.digest));
}

#[test]
fn versions_negotiate_and_other_endpoints_answer_501_at_once() {
    let daemon = Daemon::start();

    let versions = ok(
        &daemon,
        &[
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Client.APIVersion}}",
        ],
    );
    // docker CLI 28.2 speaks 1.50, 28.5 1.51: it takes the lower of its
    // own and ours.
    let fields: Vec<&str> = versions.split_whitespace().collect();
    assert_eq!(
        fields[..3],
        [env!("CARGO_PKG_VERSION"), "1.51", "1.41"],
        "{versions}"
    );
    assert!(["1.50", "1.51"].contains(&fields[3]), "{versions}");

    let too_new = docker(&daemon)
        .env("DOCKER_API_VERSION", "1.52")
        .args(["images"])
        .output()
        .expect("run docker");
    assert!(!too_new.status.success());
    let stderr = String::from_utf8_lossy(&too_new.stderr);
    assert_contains(
        &stderr,
        "client version 1.52 is too new. Maximum supported API version is 1.51",
    );

    for args in [&["ps"][..], &["network", "ls"], &["volume", "ls"]] {
        let started = Instant::now();
        let stderr = fails(&daemon, args);
        assert!(
            stderr.contains("is not implemented: hoistd serves only docker's image API"),
            "docker {args:?}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "docker {args:?} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn the_pull_stream_is_dockers_json_and_auth_comes_from_the_header() {
    let registry = Registry::basic(USER, PASSWORD);
    let image = image();
    let pushed = registry.push(&image, "team/app", "1.0");
    let host = registry.host();
    let daemon = Daemon::start();
    let create = |password: &str| {
        // What docker sends: base64url of the JSON `AuthConfig`.
        let auth = base64::engine::general_purpose::URL_SAFE.encode(
            json!({"username": USER, "password": password, "serveraddress": host}).to_string(),
        );
        http(
            &daemon,
            &format!(
                "POST /v1.50/images/create?fromImage={host}/team/app&tag=1.0 HTTP/1.0\r\n\
                 Host: docker\r\nX-Registry-Auth: {auth}\r\nContent-Length: 0\r\n\r\n"
            ),
        )
    };

    let (status, body) = create("wrong");
    assert_eq!(status, 404, "{body}");
    let error: Value = serde_json::from_str(&body).expect("error JSON");
    assert_eq!(
        error["message"],
        format!(
            "pull access denied for {host}/team/app, repository does not exist or may require 'docker login'"
        )
    );

    let (status, body) = create(PASSWORD);
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("\r\n"), "{body}");
    let messages: Vec<Value> = body
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert_eq!(
        messages[0],
        json!({"status": "Pulling from team/app", "id": "1.0"})
    );
    assert_eq!(
        messages[messages.len() - 2],
        json!({"status": format!("Digest: {}", pushed.digest)})
    );
    assert_eq!(
        messages[messages.len() - 1],
        json!({"status": format!("Status: Downloaded newer image for {}", pushed.reference)})
    );
    for layer in image.layers() {
        let id = short(&layer.digest);
        let of = |status: &str| -> Vec<&Value> {
            messages
                .iter()
                .filter(|m| m["id"] == id.as_str() && m["status"] == status)
                .collect()
        };
        // Counts come with a rendered bar; statuses carry an empty detail.
        let downloaded = of("Downloading");
        let last = downloaded
            .last()
            .unwrap_or_else(|| panic!("no Downloading for {id}"));
        assert_eq!(
            last["progressDetail"],
            json!({"current": layer.size(), "total": layer.size()})
        );
        assert!(
            last["progress"]
                .as_str()
                .is_some_and(|p| p.starts_with("[====")),
            "{last}"
        );
        let extracted = of("Extracting");
        let last = extracted
            .last()
            .unwrap_or_else(|| panic!("no Extracting for {id}"));
        assert_eq!(last["progressDetail"]["total"], layer.size());
        assert_eq!(
            of("Pull complete"),
            vec![&json!({"status": "Pull complete", "progressDetail": {}, "id": id})]
        );
    }
}

#[test]
fn a_docker_client_that_goes_away_cancels_its_pull() {
    let registry = Registry::plain();
    registry.push(&big_image(), "team/big", "1.0");
    let proxy = FaultProxy::for_registry(&registry);
    // About 8 seconds for the layer: the client leaves well before.
    proxy.set_fault(Fault::Throttle {
        bytes_per_second: 256 << 10,
    });
    let reference = format!("{}/team/big:1.0", proxy.host());
    let daemon = Daemon::start();

    // No `timeout` wrapper: this is the process to kill.
    let client = daemon
        .dir
        .command(DOCKER)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", daemon.docker_socket.display()),
        )
        .args(["pull", &reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker pull");
    let mut client = KillOnDrop(client);
    wait_for(Duration::from_secs(30), "the pull to start", || {
        daemon.scrape().contains("hoist_image_pulls_in_progress 1")
    });
    client.0.kill().expect("kill docker");
    client.0.wait().expect("reap docker");

    wait_for(Duration::from_secs(30), "the pull to be cancelled", || {
        let metrics = daemon.scrape();
        metrics.contains("hoist_image_pulls_in_progress 0")
            && metrics.contains("hoist_image_pulls_total{outcome=\"failure\"} 1")
    });
    assert!(
        daemon
            .scrape()
            .contains("hoist_image_pulls_total{outcome=\"success\"} 0"),
        "{}",
        daemon.scrape()
    );
    assert!(daemon.cli_image_names().is_empty());
}
