//! Progress output (`--progress`): goldens of each form for the three-layer
//! `simple_image`, and a scripted terminal session in tmux.
//!
//! Goldens are insta snapshots under `snapshots/`. They are recorded with
//! `--max-concurrent-downloads 1`, so blobs download one after the other and
//! the line order is the engine's (config, then layers in manifest order);
//! with `--snapshotter native` so the snapshotter does not depend on the
//! kernel. What varies between runs is normalized: the registry's port
//! becomes `PORT`, the fixture's digests become names (`<manifest>`,
//! `<config>`, `<layer1>`…, `<chain1>`… for the snapshots' chainIDs, in full
//! as `sha256:<layer1>` and as docker's 12-digit ids as `<layer1>`), and
//! times are masked. The fixture is built for `linux/amd64` on every host
//! (a single manifest has no platform to match), so sizes do not vary.
//!
//! The terminal form is recorded from tmux's screen after the pull (its
//! settled lines); the session test runs a pull through a `Throttle` proxy,
//! checks that bars are redrawn in place while the bytes change, presses
//! Ctrl-C and checks that the screen is left clean with exit status 130.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hoist_testkit::{Compression, Fault, FaultProxy, Format, Image, Registry, simple_image};

use crate::util::{HOIST, TestEnv, big_image, serve, success};

/// The repository the goldens pull, so that docker's lines read as usual.
const REPOSITORY: &str = "library/alpine";

/// The three-layer image of the goldens, pushed as `library/alpine:latest`;
/// returns the registry and the reference without a tag (as `hoist pull
/// 127.0.0.1:PORT/library/alpine`, so docker's default-tag line shows).
fn alpine() -> (Registry, Image, String) {
    let (registry, image, _) = serve(
        simple_image(Format::Oci, Compression::Gzip, "linux/amd64"),
        REPOSITORY,
        "latest",
    );
    let reference = format!("{}/{REPOSITORY}", registry.host());
    (registry, image, reference)
}

/// `hoist pull` with the goldens' flags and `--progress FORM`, plus `extra`.
fn pull(env: &TestEnv, form: &str, extra: &[&str], reference: &str) -> Output {
    let mut command = env.hoist();
    command
        .args(["pull", "--plain-http", "--max-concurrent-downloads", "1"])
        .args(["--snapshotter", "native", "--progress", form])
        .args(extra)
        .arg(reference);
    command.output().expect("run hoist pull")
}

/// Replaces what varies between runs: the registry port and the digests.
fn normalize(text: &str, image: &Image, host: &str) -> String {
    let mut names = vec![(image.manifest_digest(), "manifest".to_string())];
    if let Some(config) = image.config_digest() {
        names.push((config.to_string(), "config".to_string()));
    }
    for (i, layer) in image.layers().iter().enumerate() {
        names.push((layer.digest.clone(), format!("layer{}", i + 1)));
    }
    for (i, chain_id) in image.chain_ids().into_iter().enumerate() {
        // The bottom chainID is the bottom layer's diffID, not a blob.
        names.push((chain_id, format!("chain{}", i + 1)));
    }
    let port = host.rsplit_once(':').map_or("", |(_, port)| port);
    let mut text = text.replace(host, "127.0.0.1:PORT");
    if !port.is_empty() {
        text = text.replace(&format!(":{port}/"), ":PORT/");
    }
    for (digest, name) in &names {
        let hex = digest.trim_start_matches("sha256:");
        text = text.replace(hex, &format!("<{name}>"));
    }
    for (digest, name) in &names {
        let hex = digest.trim_start_matches("sha256:");
        text = text.replace(&hex[..12], &format!("<{name}>"));
    }
    text
}

/// stdout and stderr of a pull, normalized, as one snapshot.
fn recording(output: &Output, image: &Image, host: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    normalize(
        &format!("--- stdout ---\n{stdout}--- stderr ---\n{stderr}"),
        image,
        host,
    )
}

/// Layers unpack while later ones download, so where the unpack lines fall
/// among the download lines varies from run to run. Checks that each comes
/// after its own layer's download ended (`download_end`), then moves them,
/// in their order, after the last download line, so goldens are stable.
fn settle_unpacking(
    text: &str,
    is_unpack: impl Fn(&str) -> bool,
    download_end: impl Fn(&str) -> bool,
) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let layer_of = |line: &str| {
        let start = line.find("<layer")?;
        let end = line[start..].find('>')?;
        Some(line[start..=start + end].to_string())
    };
    for (i, line) in lines.iter().enumerate() {
        if !is_unpack(line) {
            continue;
        }
        let layer = layer_of(line).unwrap_or_else(|| panic!("no layer in {line:?}"));
        assert!(
            lines[..i]
                .iter()
                .any(|l| download_end(l) && l.contains(&layer)),
            "{line:?} before {layer}'s download ended:\n{text}"
        );
    }
    let (unpacking, rest): (Vec<&str>, Vec<&str>) = lines.iter().partition(|l| is_unpack(l));
    let last_download = rest
        .iter()
        .rposition(|l| l.contains("<layer") || l.contains("<config>"))
        .map_or(rest.len(), |i| i + 1);
    let mut settled: Vec<&str> = rest[..last_download].to_vec();
    settled.extend(unpacking);
    settled.extend(&rest[last_download..]);
    settled.join("\n") + "\n"
}

/// Masks what depends on the clock: elapsed times, speeds, time left.
macro_rules! masked {
    ($($body:tt)*) => {
        insta::with_settings!({
            filters => vec![
                (r"\b\d+(\.\d+)?s\b", "[TIME]"),
                (r"\b\d+(\.\d+)? ?[kMG]?B/s\b", "[SPEED]"),
            ],
            prepend_module_to_snapshot => false,
        }, { $($body)* });
    };
}

#[test]
fn plain_progress_golden() {
    let (registry, image, reference) = alpine();
    let env = TestEnv::new();

    let output = pull(&env, "plain", &[], &reference);

    success(&output);
    let text = settle_unpacking(
        &recording(&output, &image, &registry.host()),
        |line| line.starts_with("unpack "),
        |line| line.starts_with("layer ") && line.contains(": done ("),
    );
    assert!(
        !text.contains('\x1b'),
        "escape codes in plain output:\n{text}"
    );
    masked!(insta::assert_snapshot!("progress_plain", text));
}

#[test]
fn json_progress_golden_is_one_object_per_line() {
    let (registry, image, reference) = alpine();
    let env = TestEnv::new();

    let output = pull(&env, "json", &[], &reference);

    let stdout = success(&output);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for line in &lines {
        assert!(line["event"].is_string(), "no event in {line}");
    }
    let last = lines.last().expect("a result line");
    assert_eq!(last["event"], "pulled");
    assert_eq!(last["digest"], image.manifest_digest());
    assert_eq!(last["blobs"], 5);
    let done: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "done" && l["kind"] == "layer")
        .map(|l| l["digest"].as_str().expect("digest"))
        .collect();
    let layers: Vec<&str> = image.layers().iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(done, layers);
    let text = settle_unpacking(
        &recording(&output, &image, &registry.host()),
        |line| line.contains(r#""event":"extracting""#) || line.contains("layer_unpacked"),
        |line| line.contains(r#""event":"done""#) && line.contains(r#""kind":"layer""#),
    );
    masked!(insta::assert_snapshot!("progress_json", text));
}

#[test]
fn json_progress_reports_a_failure_as_a_line() {
    let (registry, _image, _) = alpine();
    let env = TestEnv::new();
    let reference = format!("{}/{REPOSITORY}:nope", registry.host());

    let output = pull(&env, "json", &[], &reference);

    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a line")).expect("json");
    assert_eq!(last["event"], "error", "{stdout}");
    assert!(last["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn docker_progress_golden_fresh_then_up_to_date() {
    let (registry, image, reference) = alpine();
    let env = TestEnv::new();

    let fresh = pull(&env, "docker", &[], &reference);
    let again = pull(&env, "docker", &[], &reference);

    success(&fresh);
    success(&again);
    let fresh = settle_unpacking(
        &recording(&fresh, &image, &registry.host()),
        |line| line.contains(": Pull complete") || line.contains(": Extracting"),
        |line| line.contains(": Download complete"),
    );
    let again = recording(&again, &image, &registry.host());
    assert!(
        fresh.contains("Status: Downloaded newer image for"),
        "{fresh}"
    );
    assert!(again.contains("Status: Image is up to date for"), "{again}");
    masked!(insta::assert_snapshot!("progress_docker_fresh", fresh));
    masked!(insta::assert_snapshot!("progress_docker_again", again));
}

#[test]
fn docker_progress_golden_without_unpacking() {
    let (registry, image, reference) = alpine();
    let env = TestEnv::new();
    let tagged = format!("{reference}:latest");

    let fresh = pull(&env, "docker", &["--no-unpack"], &tagged);
    let again = pull(&env, "docker", &["--no-unpack"], &tagged);

    let fresh = recording(&fresh, &image, &registry.host());
    let again = recording(&again, &image, &registry.host());
    masked!(insta::assert_snapshot!(
        "progress_docker_no_unpack_fresh",
        fresh
    ));
    masked!(insta::assert_snapshot!(
        "progress_docker_no_unpack_again",
        again
    ));
}

#[test]
fn docker_progress_by_digest_names_the_reference() {
    let (registry, image, reference) = alpine();
    let env = TestEnv::new();
    let by_digest = format!("{reference}@{}", image.manifest_digest());

    let output = pull(&env, "docker", &["--no-unpack"], &by_digest);

    let stdout = normalize(&success(&output), &image, &registry.host());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("127.0.0.1:PORT/{REPOSITORY}@sha256:<manifest>: Pulling from {REPOSITORY}")
    );
    assert_eq!(
        lines[lines.len() - 2],
        format!("Status: Downloaded newer image for 127.0.0.1:PORT/{REPOSITORY}@sha256:<manifest>")
    );
}

#[test]
fn quiet_keeps_only_the_result_of_each_form() {
    let (registry, image, reference) = alpine();
    let env = TestEnv::new();
    for form in ["plain", "tty", "docker", "json"] {
        let output = pull(&env, form, &["--quiet", "--no-unpack"], &reference);
        let stdout = normalize(&success(&output), &image, &registry.host());
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{form}");
        let expected = match form {
            "docker" => format!("127.0.0.1:PORT/{REPOSITORY}:latest\n"),
            "json" => format!(
                "{{\"event\":\"pulled\",\"name\":\"127.0.0.1:PORT/{REPOSITORY}:latest\",\
                 \"digest\":\"sha256:<manifest>\",\"media_type\":\"{}\",\"size\":{},\
                 \"blobs\":5,\"downloaded\":0,\"snapshotter\":null,\"chain_ids\":[]}}\n",
                image.media_type(),
                image.size()
            ),
            _ => format!("127.0.0.1:PORT/{REPOSITORY}:latest sha256:<manifest>\n"),
        };
        assert_eq!(stdout, expected, "{form}");
    }
}

/// A tmux server on its own socket with one 200×50 window running a bare
/// bash; the server is killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(dir: &Path) -> Tmux {
        let found = Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .expect("run sh");
        assert!(
            found.status.success(),
            "tmux is not installed (apt-get install tmux; .ci/run does)"
        );
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "hoist-progress-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { socket };
        // bash resets an inherited PS1; an rc file sets it.
        let rc = dir.join("bashrc");
        std::fs::write(&rc, "PS1='prompt$ '\nunset HISTFILE\n").expect("write bashrc");
        let status = tmux
            .command()
            .args(["-f", "/dev/null", "new-session", "-d", "-s", "main"])
            .args(["-x", "200", "-y", "50", "-c"])
            .arg(dir)
            .arg(format!("bash --noprofile --rcfile '{}'", rc.display()))
            .env("TERM", "xterm-256color")
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        tmux.wait_for("the prompt", |screen| last_line(screen) == "prompt$");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-L").arg(&self.socket);
        command
    }

    /// Types `keys` (tmux key names such as `Enter` or `C-c` are keys).
    fn send(&self, keys: &[&str]) {
        let status = self
            .command()
            .args(["send-keys", "-t", "main"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// The visible screen, one string per row, trailing blanks trimmed.
    fn screen(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-t", "main"])
            .output()
            .expect("tmux capture-pane");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_string()
    }

    /// Polls the screen until `done` holds, for at most 30 seconds.
    #[track_caller]
    fn wait_for(&self, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

fn last_line(screen: &str) -> &str {
    screen.lines().last().unwrap_or("")
}

/// Writes `<dir>/pull`, a script that execs `hoist pull ARGS…` with a clean
/// environment (so Ctrl-C reaches hoist alone, and `$?` is hoist's).
fn pull_script(env: &TestEnv, args: &[&str]) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = format!(
        "exec env -i HOME={} TERM=\"$TERM\" {} --root {} pull",
        quote(&env.home().to_string_lossy()),
        quote(HOIST),
        quote(&env.root().to_string_lossy()),
    );
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let path = env.path("pull");
    std::fs::write(&path, format!("#!/bin/sh\n{line}\n")).expect("write script");
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .expect("chmod");
    assert!(status.success());
}

/// Starts `hoist pull --plain-http FLAGS… --progress tty REFERENCE` (through
/// [`pull_script`]) in a tmux terminal in `env`'s directory.
fn start_tty_pull(env: &TestEnv, flags: &[&str], reference: &str) -> Tmux {
    let mut args = vec!["--plain-http"];
    args.extend_from_slice(flags);
    args.extend(["--progress", "tty", reference]);
    pull_script(env, &args);
    let tmux = Tmux::start(&env.path(""));
    tmux.send(&["./pull", "Enter"]);
    tmux
}

/// Whether a row holds a drawn bar (`[====>   ]`).
fn has_bar(row: &str) -> bool {
    row.split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .is_some_and(|(inside, _)| {
            !inside.is_empty() && inside.chars().all(|c| matches!(c, '=' | '>' | ' '))
        })
}

#[test]
fn tty_progress_golden_final_screen() {
    let (registry, image, reference) = alpine();
    let env = TestEnv::new();
    let tmux = start_tty_pull(
        &env,
        &["--max-concurrent-downloads", "1", "--snapshotter", "native"],
        &reference,
    );
    let screen = tmux.wait_for("the pull to end", |screen| {
        screen.contains("unpacked native") && last_line(screen) == "prompt$"
    });

    assert!(!screen.lines().any(has_bar), "a bar is left:\n{screen}");
    masked!(insta::assert_snapshot!(
        "progress_tty_final_screen",
        normalize(&screen, &image, &registry.host())
    ));
}

#[test]
fn tty_progress_redraws_in_place_and_ctrl_c_leaves_a_clean_screen() {
    const BIG: usize = 8 << 20;
    let image = big_image(7, BIG);
    let registry = Registry::plain();
    registry.push(&image, "app", "1.0");
    let proxy = FaultProxy::for_registry(&registry);
    // About 8 seconds for the big layer: time to watch, and to interrupt.
    proxy.set_fault(Fault::Throttle {
        bytes_per_second: 1 << 20,
    });
    let reference = format!("{}/app:1.0", proxy.host());
    let big = image.layers()[1].digest.clone();
    let hex = big.strip_prefix("sha256:").expect("sha256 digest");
    let big_id = &hex[..12];
    let env = TestEnv::new();
    let tmux = start_tty_pull(&env, &["--no-unpack"], &reference);
    // Watch the big layer's row until its byte count changed twice: every
    // capture must show it once, on the same row, with a bar, and the screen
    // must not grow (no line is printed anew per update).
    let mut seen: Vec<String> = Vec::new();
    let mut row_of_big = None;
    let mut max_rows = 0;
    tmux.wait_for("the big layer's bar to advance", |screen| {
        let rows: Vec<&str> = screen.lines().collect();
        let found: Vec<(usize, &&str)> = rows
            .iter()
            .enumerate()
            .filter(|(_, row)| row.contains(big_id))
            .collect();
        assert!(found.len() <= 1, "the big layer is drawn twice:\n{screen}");
        let Some((row, text)) = found.first() else {
            return false;
        };
        if !text.contains("downloading") {
            return false;
        }
        assert!(has_bar(text), "no bar in {text:?}");
        assert_eq!(*row_of_big.get_or_insert(*row), *row, "moved:\n{screen}");
        max_rows = max_rows.max(rows.len());
        if seen.last().map(String::as_str) != Some(**text) {
            seen.push(text.to_string());
        }
        seen.len() >= 3
    });
    // The prompt and command, the header, manifest, config, two layers
    // and the total line.
    assert!(max_rows <= 8, "the screen grew to {max_rows} rows");

    tmux.send(&["C-c"]);
    let screen = tmux.wait_for("the prompt after Ctrl-C", |screen| {
        screen.contains("hoist: interrupted") && last_line(screen) == "prompt$"
    });

    let rows: Vec<&str> = screen.lines().collect();
    assert!(
        !rows.iter().any(|row| has_bar(row)),
        "a bar is left:\n{screen}"
    );
    let big_rows: Vec<&&str> = rows.iter().filter(|row| row.contains(big_id)).collect();
    assert_eq!(big_rows.len(), 1, "{screen}");
    assert!(big_rows[0].ends_with("interrupted"), "{screen}");
    assert!(
        rows.iter()
            .any(|row| row.starts_with("total") && row.ends_with("interrupted")),
        "{screen}"
    );
    // Nothing after the error but the prompt: no half-drawn line. Nothing
    // stale above: the command, the header, four blobs, the total, the
    // error and the prompt; no echoed `^C` left.
    assert_eq!(rows[rows.len() - 2], "hoist: interrupted", "{screen}");
    assert_eq!(rows.len(), 9, "{screen}");
    let header = format!("{reference}: sha256:");
    assert_eq!(
        rows.iter().filter(|row| row.starts_with(&header)).count(),
        1,
        "{screen}"
    );
    assert!(!screen.contains("^C"), "{screen}");

    tmux.send(&["echo \"status=$?\"", "Enter"]);
    tmux.wait_for("the exit status", |screen| {
        screen.lines().any(|row| row == "status=130")
    });
    // The terminal's echo, off while bars were drawn, is back on.
    tmux.send(&["stty -a | tr -s ' ;' '\\n' | grep -x -- '-*echo'", "Enter"]);
    tmux.wait_for("stty's echo flag", |screen| {
        screen.lines().any(|row| row == "echo" || row == "-echo")
    });
    let screen = tmux.screen();
    assert!(screen.lines().any(|row| row == "echo"), "{screen}");
    // The big layer was not stored; its ingest is left to resume.
    assert!(!env.stored_digests().contains(&big));
}
