//! `hoistd`'s configuration file, `/etc/hoist/config.toml`.
//!
//! It holds what a containerd CRI plugin config holds for images. Every key
//! is optional; the defaults are those of [`Config::default`] and are listed
//! in the README. Durations are Go-style strings (`"5m"`, `"30s"`,
//! `"1h30m"`, `"250ms"`), as in containerd's TOML.
//!
//! ```toml
//! root = "/var/lib/hoist"
//! cri_socket = "/run/hoist/cri.sock"
//! docker_socket = "/run/hoist/docker.sock"
//! metrics_addr = "127.0.0.1:9464"
//! snapshotter = "overlay"
//! max_concurrent_downloads = 3
//! max_concurrent_unpacks = 1
//! sync = "full"
//! image_pull_progress_timeout = "5m"
//! discard_unpacked_layers = false
//! allow_schema1 = false
//! hosts_dir = "/etc/hoist/certs.d"
//! stats_collect_period = "10s"
//!
//! [runtime_handlers.kata]
//! snapshotter = "native"
//!
//! [gc]
//! schedule_delay = "100ms"
//! pause_threshold = 0.02
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_engine::SyncPolicy;
use hoist_remote::parse_duration;
use serde::{Deserialize, Deserializer};

/// Where `hoistd` looks for its config when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/hoist/config.toml";

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The store root, shared with `hoist` CLI processes. Default:
    /// `/var/lib/hoist`.
    pub root: PathBuf,
    /// The CRI ImageService socket; `None` serves no CRI. Default:
    /// `/run/hoist/cri.sock`.
    pub cri_socket: Option<PathBuf>,
    /// The Docker Engine API socket; `None` serves no Docker API. Default:
    /// `/run/hoist/docker.sock`.
    pub docker_socket: Option<PathBuf>,
    /// Where `/metrics` is served over HTTP; `None` (the default) serves no
    /// metrics. Must be a loopback address unless `metrics_public` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Allow a non-loopback `metrics_addr`. Default: false.
    pub metrics_public: bool,
    /// The snapshotter images are unpacked into: `overlay` or `native`.
    /// Default: overlay where the kernel can mount it, native otherwise.
    pub snapshotter: Option<String>,
    /// Per CRI runtime handler (`RuntimeClass`), the snapshotter its images
    /// are unpacked into, as containerd's `[plugins.cri.containerd.runtimes]`.
    pub runtime_handlers: BTreeMap<String, RuntimeHandler>,
    /// Blobs downloaded at once by the whole daemon. Default: 3.
    pub max_concurrent_downloads: usize,
    /// Images unpacked at once by the whole daemon (the layers of one
    /// image apply in parallel on overlay). Default: 1.
    pub max_concurrent_unpacks: usize,
    /// What reaches the disk before it counts as stored: `"full"` (every
    /// blob fsynced, every snapshot flushed), `"blobs"` (snapshots not
    /// flushed, as containerd) or `"none"`. Default: `"full"`.
    #[serde(deserialize_with = "sync_policy")]
    pub sync: SyncPolicy,
    /// A pull that receives no byte for this long is cancelled; a slow pull
    /// that keeps moving never is. `"0s"` disables it. Default: `"5m"`.
    #[serde(deserialize_with = "duration")]
    pub image_pull_progress_timeout: Duration,
    /// Drop compressed layers once unpacked (garbage collection frees them
    /// right after the pull). Default: false.
    pub discard_unpacked_layers: bool,
    /// Convert Docker schema 1 images instead of refusing them. Default:
    /// false.
    pub allow_schema1: bool,
    /// containerd's hosts directory (`<host>/hosts.toml` mirrors, per-host
    /// TLS). Default: the first of `/etc/hoist/certs.d`,
    /// `/etc/containerd/certs.d`, `/etc/docker/certs.d` that configures a
    /// registry.
    pub hosts_dir: Option<PathBuf>,
    /// How long filesystem usage (`ImageFsInfo`) is cached. Default: `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub stats_collect_period: Duration,
    /// The garbage collection scheduler.
    pub gc: GcConfig,
}

/// Settings for one CRI runtime handler.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuntimeHandler {
    /// The snapshotter for images pulled for this handler.
    pub snapshotter: String,
}

/// When garbage collection runs by itself, as containerd's scheduler.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct GcConfig {
    /// How long after a triggering event (an image removed, a pull that
    /// discarded layers) a collection starts; events meanwhile share it.
    /// Default: `"100ms"`.
    #[serde(deserialize_with = "duration")]
    pub schedule_delay: Duration,
    /// The largest share of time the collector may hold the store (and so
    /// pause pulls): after a collection that took `t`, the next waits at
    /// least `t / pause_threshold`. Default: 0.02, containerd's.
    pub pause_threshold: f64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            schedule_delay: Duration::from_millis(100),
            pause_threshold: 0.02,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/var/lib/hoist"),
            cri_socket: Some(PathBuf::from("/run/hoist/cri.sock")),
            docker_socket: Some(PathBuf::from("/run/hoist/docker.sock")),
            metrics_addr: None,
            metrics_public: false,
            snapshotter: None,
            runtime_handlers: BTreeMap::new(),
            max_concurrent_downloads: 3,
            max_concurrent_unpacks: 1,
            sync: SyncPolicy::Full,
            image_pull_progress_timeout: Duration::from_secs(300),
            discard_unpacked_layers: false,
            allow_schema1: false,
            hosts_dir: None,
            stats_collect_period: Duration::from_secs(10),
            gc: GcConfig::default(),
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a bad value.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads `path`; a missing file at the default path gives the defaults,
    /// a missing file named explicitly is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Config::parse(&text, path)
    }

    /// Parses a config file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.max_concurrent_downloads == 0 {
            return Err(invalid(
                "max_concurrent_downloads must be at least 1".into(),
            ));
        }
        if self.max_concurrent_unpacks == 0 {
            return Err(invalid("max_concurrent_unpacks must be at least 1".into()));
        }
        if !(self.gc.pause_threshold > 0.0 && self.gc.pause_threshold <= 1.0) {
            return Err(invalid(format!(
                "gc.pause_threshold must be in (0, 1], not {}",
                self.gc.pause_threshold
            )));
        }
        let snapshotters = self
            .snapshotter
            .iter()
            .chain(self.runtime_handlers.values().map(|h| &h.snapshotter));
        for name in snapshotters {
            if !hoist_engine::SNAPSHOTTERS.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "unknown snapshotter {name:?} (known: {})",
                    hoist_engine::SNAPSHOTTERS.join(", ")
                )));
            }
        }
        if let Some(addr) = self.metrics_addr
            && !addr.ip().is_loopback()
            && !self.metrics_public
        {
            return Err(invalid(format!(
                "metrics_addr {addr} is not a loopback address; set metrics_public = true to serve metrics beyond this machine"
            )));
        }
        Ok(())
    }

    /// The snapshotter for a CRI runtime handler: the handler's own, else
    /// the default.
    pub fn snapshotter_for(&self, runtime_handler: Option<&str>) -> Option<String> {
        runtime_handler
            .filter(|h| !h.is_empty())
            .and_then(|h| self.runtime_handlers.get(h))
            .map(|h| h.snapshotter.clone())
            .or_else(|| self.snapshotter.clone())
    }
}

fn sync_policy<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SyncPolicy, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let path = Path::new("config.toml");
        assert_eq!(Config::parse("", path).unwrap(), Config::default());
        let config = Config::parse(
            r#"
            snapshotter = "native"
            max_concurrent_downloads = 5
            image_pull_progress_timeout = "30s"
            [runtime_handlers.kata]
            snapshotter = "overlay"
            [gc]
            pause_threshold = 0.5
            "#,
            path,
        )
        .unwrap();
        assert_eq!(config.max_concurrent_downloads, 5);
        assert_eq!(config.image_pull_progress_timeout, Duration::from_secs(30));
        assert_eq!(
            config.snapshotter_for(Some("kata")).as_deref(),
            Some("overlay")
        );
        assert_eq!(
            config.snapshotter_for(Some("runc")).as_deref(),
            Some("native")
        );
        assert_eq!(config.snapshotter_for(None).as_deref(), Some("native"));
        assert_eq!(config.gc.pause_threshold, 0.5);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let path = Path::new("/etc/hoist/config.toml");
        let unknown = Config::parse("max_downloads = 3", path).unwrap_err();
        assert!(unknown.to_string().starts_with("/etc/hoist/config.toml:"));
        assert!(unknown.to_string().contains("max_downloads"), "{unknown}");
        let bad = Config::parse("image_pull_progress_timeout = \"soon\"", path).unwrap_err();
        assert!(bad.to_string().contains("invalid duration"), "{bad}");
        let zero = Config::parse("max_concurrent_downloads = 0", path).unwrap_err();
        assert!(zero.to_string().contains("at least 1"), "{zero}");
        let snap = Config::parse("snapshotter = \"zfs\"", path).unwrap_err();
        assert!(snap.to_string().contains("unknown snapshotter"), "{snap}");
        let public = Config::parse("metrics_addr = \"0.0.0.0:9464\"", path).unwrap_err();
        assert!(public.to_string().contains("loopback"), "{public}");
    }
}
