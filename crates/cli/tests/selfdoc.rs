//! A CLI that documents itself: examples in every command's help, shell
//! completions, a manual page, `hoist version`, and the config file that
//! gives flags their defaults.

use crate::util::{TestEnv, serve_simple, success};

const COMMANDS: [&str; 14] = [
    "pull",
    "images",
    "content",
    "snapshots",
    "rootfs",
    "gc",
    "check",
    "leases",
    "login",
    "logout",
    "export",
    "import",
    "completions",
    "man",
];

#[test]
fn every_command_has_help_with_an_example() {
    let env = TestEnv::new();
    for command in COMMANDS {
        let help = success(&env.run(&[command, "--help"]));
        assert!(help.contains("Example:"), "hoist {command} --help:\n{help}");
    }
}

#[test]
fn completions_and_the_manual_are_generated_from_the_flags() {
    let env = TestEnv::new();
    let bash = success(&env.run(&["completions", "bash"]));
    assert!(bash.contains("_hoist()") && bash.contains("--max-concurrent-downloads"));
    let zsh = success(&env.run(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef hoist"), "{zsh}");
    let fish = success(&env.run(&["completions", "fish"]));
    assert!(fish.contains("complete -c hoist"));
    let man = success(&env.run(&["man"]));
    assert!(man.contains(".TH hoist"), "{man}");
    assert!(man.contains("pull"));
}

#[test]
fn version_names_the_commit_and_features() {
    let env = TestEnv::new();
    let version = success(&env.run(&["version"]));
    assert!(version.starts_with(&format!("hoist {}", env!("CARGO_PKG_VERSION"))));
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let line = version.lines().find(|l| l.starts_with("commit: ")).unwrap();
    if let Some(commit) = commit {
        assert_eq!(line, format!("commit: {commit}"));
    }
    assert!(version.contains("features: ") && version.contains("hosts.toml"));
}

#[test]
fn the_config_file_gives_flags_their_defaults_and_flags_win() {
    let (registry, _, _) = serve_simple("conf/app", "1.0");
    let env = TestEnv::new();
    let root = env.path("configured-root");
    let config = env.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"{}\"\nsnapshotter = \"native\"\nmax_concurrent_downloads = 1\n\
             # hoistd's keys may share the file\ncri_socket = \"/run/hoist/cri.sock\"\n",
            root.display()
        ),
    )
    .unwrap();
    let reference = registry.reference("conf/app", "1.0");
    let mut command = std::process::Command::new(crate::util::HOIST);
    command
        .env("HOME", env.home())
        .env("HOIST_CONFIG", &config)
        .env_remove("HOIST_ROOT")
        .args(["pull", "--plain-http", &reference]);
    let pulled = success(&command.output().unwrap());
    assert!(pulled.contains("unpacked native"), "{pulled}");
    assert!(
        root.join("metadata.db").exists(),
        "the config's root was used"
    );

    // A flag beats the config.
    let mut command = std::process::Command::new(crate::util::HOIST);
    command
        .env("HOME", env.home())
        .env("HOIST_CONFIG", &config)
        .args(["--root"])
        .arg(env.root())
        .args([
            "pull",
            "--plain-http",
            "--snapshotter",
            "overlay",
            &reference,
        ]);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("unpacked native"), "{stdout}");
    assert!(env.root().join("metadata.db").exists());
}
