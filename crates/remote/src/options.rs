//! Knobs of a [`Resolver`](crate::Resolver): TLS, credentials, timeouts,
//! retries and bounds.

use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::Credentials;

/// The retry budget of one request: exponential backoff with jitter for
/// retryable failures (connection errors, 429, 5xx, a broken body),
/// bounded in attempts and in time. A blob download spends one budget over
/// its whole life, resumes included: the resolver's blob requests do not
/// retry on their own when the engine drives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time, with jitter.
    pub base_delay: Duration,
    /// Upper bound for any delay, including a registry's `Retry-After`.
    pub max_delay: Duration,
    /// No attempt starts once this long has passed since the request first
    /// failed.
    pub max_retry_time: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_time: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt + 1`: the registry's
    /// `Retry-After` when it gave one (capped at `max_delay`), otherwise
    /// exponential backoff with jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(delay) => delay.min(self.max_delay),
            None => crate::transport::backoff(self, attempt, crate::transport::random_u64()),
        }
    }

    /// Whether another attempt may start after attempt `attempt` failed,
    /// the first failure having been at `first_failure`.
    pub fn allows(&self, attempt: u32, first_failure: std::time::Instant) -> bool {
        attempt < self.max_attempts.max(1) && first_failure.elapsed() < self.max_retry_time
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
