//! The CLI's config file: defaults for flags, in the same
//! `/etc/hoist/config.toml` hoistd reads (the keys they share mean the same;
//! hoistd's own keys are left to hoistd), then the user's
//! `$XDG_CONFIG_HOME/hoist/config.toml` (`~/.config/hoist/config.toml`),
//! whose keys win. `--config FILE` (or `HOIST_CONFIG`) names one file
//! instead. Flags and environment variables win over both.
//!
//! | key | default | flag |
//! | --- | --- | --- |
//! | `root` | `/var/lib/hoist` as root, `$XDG_DATA_HOME/hoist` otherwise | `--root` |
//! | `snapshotter` | overlay where it mounts, else native | `pull --snapshotter` |
//! | `max_concurrent_downloads` | 3 | `pull --max-concurrent-downloads` |
//! | `sync` | `full` | `pull --sync` |
//! | `hosts_dir` | the first of `/etc/hoist/certs.d`, `/etc/containerd/certs.d`, `/etc/docker/certs.d` | `pull --hosts-dir` |
//! | `discard_unpacked_layers` | false | `pull --discard-unpacked-layers` |
//! | `allow_schema1` | false | `pull --allow-schema1` |

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The CLI's share of the config file.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub(crate) struct CliConfig {
    pub(crate) root: Option<PathBuf>,
    pub(crate) snapshotter: Option<String>,
    pub(crate) max_concurrent_downloads: Option<usize>,
    pub(crate) sync: Option<String>,
    pub(crate) hosts_dir: Option<PathBuf>,
    pub(crate) discard_unpacked_layers: Option<bool>,
    pub(crate) allow_schema1: Option<bool>,
}

impl CliConfig {
    /// Reads `explicit`, or the system file then the user's.
    pub(crate) fn load(explicit: Option<&Path>) -> anyhow::Result<CliConfig> {
        if let Some(path) = explicit {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            return CliConfig::parse(&text, path);
        }
        let mut merged = CliConfig::default();
        for path in default_paths() {
            match std::fs::read_to_string(&path) {
                Ok(text) => merged.overlay(CliConfig::parse(&text, &path)?),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(error).with_context(|| format!("reading {}", path.display()));
                }
            }
        }
        Ok(merged)
    }

    fn parse(text: &str, path: &Path) -> anyhow::Result<CliConfig> {
        // hoistd's keys may share the file; they are not the CLI's concern.
        toml::from_str(text).map_err(|error| {
            anyhow::anyhow!(
                "{}: {}",
                path.display(),
                error.to_string().trim_end().replace('\n', " ")
            )
        })
    }

    /// Keys `other` sets win.
    fn overlay(&mut self, other: CliConfig) {
        let CliConfig {
            root,
            snapshotter,
            max_concurrent_downloads,
            sync,
            hosts_dir,
            discard_unpacked_layers,
            allow_schema1,
        } = other;
        self.sync = sync.or(self.sync.take());
        self.root = root.or(self.root.take());
        self.snapshotter = snapshotter.or(self.snapshotter.take());
        self.max_concurrent_downloads = max_concurrent_downloads.or(self.max_concurrent_downloads);
        self.hosts_dir = hosts_dir.or(self.hosts_dir.take());
        self.discard_unpacked_layers = discard_unpacked_layers.or(self.discard_unpacked_layers);
        self.allow_schema1 = allow_schema1.or(self.allow_schema1);
    }
}

fn default_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("/etc/hoist/config.toml")];
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")));
    if let Some(dir) = user {
        paths.push(dir.join("hoist").join("config.toml"));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_keys_are_read_and_hoistd_keys_left_alone() {
        let config = CliConfig::parse(
            "root = \"/srv/hoist\"\nsnapshotter = \"native\"\ncri_socket = \"/run/x.sock\"\n[gc]\npause_threshold = 0.1\n",
            Path::new("config.toml"),
        )
        .unwrap();
        assert_eq!(config.root.as_deref(), Some(Path::new("/srv/hoist")));
        assert_eq!(config.snapshotter.as_deref(), Some("native"));
        let bad = CliConfig::parse("max_concurrent_downloads = \"three\"", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("c.toml:"), "{bad}");
    }

    #[test]
    fn the_user_file_wins_key_by_key() {
        let mut system = CliConfig {
            root: Some("/srv/a".into()),
            max_concurrent_downloads: Some(5),
            ..CliConfig::default()
        };
        system.overlay(CliConfig {
            max_concurrent_downloads: Some(8),
            ..CliConfig::default()
        });
        assert_eq!(system.root.as_deref(), Some(Path::new("/srv/a")));
        assert_eq!(system.max_concurrent_downloads, Some(8));
    }
}
