//! `kill -9` at a random moment: during a fetch, an unpack, a commit, a
//! `hoist gc` and a `hoist images rm`, in both snapshotters. After every
//! kill `hoist check` must find the store clean, and a pull must then give
//! the right chainID and tree.
//!
//! CI runs `HOIST_KILL_TRIALS` trials (10 by default); the full run is
//! `HOIST_KILL_TRIALS=100 cargo nextest run -p hoist-cli kill`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hoist_testkit::{Compression, Fault, FaultProxy, Format, Image, Registry, layer};

use crate::util::{HOIST, TestEnv, big_layer, host_platform, success};

/// What is running when the kill lands.
#[derive(Clone, Copy, Debug)]
enum Phase {
    Fetch,
    Unpack,
    Commit,
    Gc,
    ImagesRm,
}

const PHASES: [Phase; 5] = [
    Phase::Fetch,
    Phase::Unpack,
    Phase::Commit,
    Phase::Gc,
    Phase::ImagesRm,
];

fn image() -> Image {
    let small = layer(Compression::Gzip, Format::Oci, |l| {
        l.add_dir("etc", 0o755)
            .add_file("etc/hostname", b"kill\n", 0o644);
    });
    // Several thousand entries, so an unpack lasts long enough to be hit.
    let many = layer(Compression::Gzip, Format::Oci, |l| {
        for d in 0..40 {
            l.add_dir(&format!("many/{d}"), 0o755);
            for f in 0..100 {
                l.add_file(
                    &format!("many/{d}/{f}.txt"),
                    format!("{d}/{f}\n").as_bytes(),
                    0o644,
                );
            }
        }
    });
    let big = big_layer(Compression::Gzip, Format::Oci, 77, 4 << 20);
    Image::single(Format::Oci, host_platform(), vec![small, many, big])
}

/// A small deterministic generator for kill delays.
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

fn hoist(env: &TestEnv, args: &[&str]) -> Command {
    let mut command = Command::new(HOIST);
    command
        .env("HOME", env.home())
        .arg("--root")
        .arg(env.root())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn kill_after(mut child: Child, delay: Duration) {
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kill_at_random_moments_leaves_a_store_check_proves_clean() {
    let trials: usize = std::env::var("HOIST_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let image = image();
    let registry = Registry::plain();
    registry.push(&image, "kill/app", "1.0");
    let proxy = FaultProxy::for_registry(&registry);
    let reference = format!("{}/kill/app:1.0", proxy.host());
    let mut delays = Delays(0x5eed_1234_abcd_ef01);
    let mut expected_top: Option<String> = None;
    for trial in 0..trials {
        let phase = PHASES[trial % PHASES.len()];
        let snapshotter = if (trial / PHASES.len()).is_multiple_of(2) {
            "native"
        } else {
            "overlay"
        };
        let env = TestEnv::new();
        let pull = [
            "pull",
            "--plain-http",
            "--snapshotter",
            snapshotter,
            reference.as_str(),
        ];
        match phase {
            Phase::Fetch => {
                proxy.set_fault(Fault::Throttle {
                    bytes_per_second: 2 << 20,
                });
                let child = hoist(&env, &pull).spawn().unwrap();
                kill_after(child, Duration::from_millis(50 + delays.next_ms(1500)));
                proxy.set_fault(Fault::None);
            }
            Phase::Unpack | Phase::Commit => {
                success(
                    &hoist(&env, &["pull", "--plain-http", "--no-unpack", &reference])
                        .output()
                        .unwrap(),
                );
                let window = if matches!(phase, Phase::Unpack) {
                    300
                } else {
                    1200
                };
                let child = hoist(&env, &pull).spawn().unwrap();
                kill_after(child, Duration::from_millis(delays.next_ms(window)));
            }
            Phase::Gc | Phase::ImagesRm => {
                success(&hoist(&env, &pull).output().unwrap());
                let child = if matches!(phase, Phase::Gc) {
                    success(&hoist(&env, &["images", "rm", &reference]).output().unwrap());
                    hoist(&env, &["gc"]).spawn().unwrap()
                } else {
                    hoist(&env, &["images", "rm", &reference]).spawn().unwrap()
                };
                kill_after(child, Duration::from_millis(delays.next_ms(150)));
            }
        }
        let check = hoist(&env, &["check"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "trial {trial} ({phase:?}, {snapshotter}): hoist check after kill -9:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let pulled = hoist(&env, &pull)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stdout = success(&pulled);
        let top = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("unpacked {snapshotter} ")))
            .unwrap_or_else(|| panic!("trial {trial}: no chainID in {stdout}"))
            .to_string();
        match &expected_top {
            Some(top_before) => assert_eq!(&top, top_before, "trial {trial}"),
            None => expected_top = Some(top.clone()),
        }
        let rootfs = env.path("rootfs");
        success(
            &hoist(&env, &["rootfs", &reference, rootfs.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .unwrap(),
        );
        assert_eq!(
            std::fs::read(rootfs.join("etc/hostname")).unwrap(),
            b"kill\n"
        );
        assert_eq!(
            std::fs::read_dir(rootfs.join("many")).unwrap().count(),
            40,
            "trial {trial}"
        );
        assert_eq!(
            std::fs::metadata(rootfs.join("data/big.bin"))
                .unwrap()
                .len(),
            4 << 20
        );
        success(
            &hoist(&env, &["check"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .unwrap(),
        );
    }
}
