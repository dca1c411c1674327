//! Knobs of a [`Resolver`](crate::Resolver): TLS, credentials, timeouts,
//! retries and bounds.

use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::Credentials;

/// Exponential backoff with jitter for retryable failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Upper bound for any delay, including a registry's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// How a [`Resolver`](crate::Resolver) talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Use `http://` for every host.
    pub plain_http: bool,
    /// Credentials (from `--user`) for the pulled repository's registry only.
    pub credentials: Option<Credentials>,
    /// docker `config.json`; `None` means `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json` when present.
    pub docker_config: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for every host, on top of the system roots.
    pub ca_files: Vec<PathBuf>,
    /// containerd `certs.d` layout: `<hosts_dir>/<host[:port]>/*.crt` are
    /// trusted for that host.
    pub hosts_dir: Option<PathBuf>,
    /// Bound for establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Bound for waiting on response headers and between body chunks.
    pub read_timeout: Duration,
    /// Retries of whole requests.
    pub retry: RetryPolicy,
    /// Bound for manifest, index and config bodies held in memory.
    pub max_manifest_size: u64,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            credentials: None,
            docker_config: None,
            ca_files: Vec::new(),
            hosts_dir: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            max_manifest_size: 8 * 1024 * 1024,
            user_agent: concat!("hoist/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let o = RegistryOptions::default();
        assert_eq!(o.retry.max_attempts, 5);
        assert_eq!(o.max_manifest_size, 8 << 20);
        assert!(o.user_agent.starts_with("hoist/"));
        let o = RegistryOptions {
            credentials: Some(Credentials::new("u", "secret-pw")),
            ..RegistryOptions::default()
        };
        assert!(!format!("{o:?}").contains("secret-pw"));
    }
}
