//! A full disk during unpacking: the pull fails with the cause, leaves a
//! store `hoist check` finds clean, and completes once space is freed.
//! The store lives on a small tmpfs (mounting one needs root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::{Compression, Format, Image, Registry, layer};

use crate::util::{HOIST, TestEnv, assert_mentions, failure, host_platform, success};

/// A tmpfs mounted at a directory of `env`, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(env: &TestEnv, name: &str, size: &str) -> SmallDisk {
        let dir = env.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk { dir }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn hoist(env: &TestEnv, root: &Path, args: &[&str]) -> Output {
    Command::new(HOIST)
        .env("HOME", env.home())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run hoist")
}

#[test]
fn a_full_disk_during_unpack_fails_cleanly_and_a_later_pull_completes_privileged() {
    crate::util::require_root();
    // 12 MiB of zeros: a few KiB compressed, so the blobs fit on a 4 MiB
    // disk and the unpacked tree does not.
    let big = layer(Compression::Gzip, Format::Oci, |l| {
        l.add_dir("data", 0o755)
            .add_file("data/zeros.bin", &vec![0u8; 12 << 20], 0o644);
    });
    let small = layer(Compression::Gzip, Format::Oci, |l| {
        l.add_file("hello.txt", b"hello\n", 0o644);
    });
    let image = Image::single(Format::Oci, host_platform(), vec![small, big]);
    let registry = Registry::plain();
    let pushed = registry.push(&image, "space/app", "1.0");

    for snapshotter in ["native", "overlay"] {
        let env = TestEnv::new();
        let disk = SmallDisk::mount(&env, "disk", "4m");
        let root = disk.dir.join("root");
        let pull = [
            "pull",
            "--plain-http",
            "--snapshotter",
            snapshotter,
            pushed.reference.as_str(),
        ];
        let full = hoist(&env, &root, &pull);
        assert_mentions(&failure(&full), &["No space left on device"]);
        let listed = success(&hoist(&env, &root, &["images", "ls", "-q"]));
        assert!(
            listed.trim().is_empty(),
            "{snapshotter}: no image recorded: {listed}"
        );
        success(&hoist(&env, &root, &["check"]));

        disk.resize("64m");
        success(&hoist(&env, &root, &pull));
        success(&hoist(&env, &root, &["check"]));
        let rootfs = env.path("rootfs");
        success(&hoist(
            &env,
            &root,
            &[
                "rootfs",
                pushed.reference.as_str(),
                rootfs.to_str().unwrap(),
            ],
        ));
        assert_eq!(
            std::fs::metadata(rootfs.join("data/zeros.bin"))
                .unwrap()
                .len(),
            12 << 20,
            "{snapshotter}"
        );
        assert_eq!(std::fs::read(rootfs.join("hello.txt")).unwrap(), b"hello\n");
    }
}
