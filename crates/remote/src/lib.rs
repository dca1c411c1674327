//! Registry client for hoist: the OCI Distribution API v2, shaped like
//! containerd's `remotes/docker`.
//!
//! # Overview
//!
//! - **resolver** ([`Resolver::resolve`]): a tag or digest becomes a
//!   [`Descriptor`] through `HEAD` (then `GET` when `HEAD` says too little)
//!   with the full [`MANIFEST_ACCEPT`] list; digests are checked against the
//!   request and `Docker-Content-Digest`.
//! - **fetcher** ([`Resolver::fetch_manifest`], [`Resolver::fetch_small_blob`],
//!   [`Resolver::fetch_blob`]): manifests and configs are read into memory
//!   with a size bound and verified; layers arrive as a [`BlobStream`] that
//!   can start at an offset to resume.
//! - **auth**: answers `WWW-Authenticate` challenges, Basic and Bearer (token
//!   via OAuth2 POST or GET), with tokens cached per host and scope.
//! - **credentials**: a caller's [`CredentialProvider`] (a daemon's
//!   per-request auth, through [`Resolver::with_credentials`]), `--user`
//!   ([`RegistryOptions::credentials`]) and docker's `config.json` (`auths`,
//!   `credHelpers`, `credsStore`).
//! - **transport**: rustls clients with the system roots, extra CA files and
//!   per-host CAs from a containerd `certs.d` directory; https with an http
//!   fallback for loopback hosts; redirects followed by hand; retries with
//!   exponential backoff and jitter.
//!
//! Credentials are only sent to the host they belong to: a redirect to
//! another origin carries no `Authorization` header, and no credential or
//! token is ever logged.
//!
//! # Example
//!
//! ```no_run
//! use hoist_remote::{RegistryOptions, Repository, Resolver};
//!
//! # async fn run() -> hoist_remote::Result<()> {
//! let resolver = Resolver::new(RegistryOptions::default())?;
//! let repo = Repository::new("docker.io", "library/alpine");
//! let desc = resolver.resolve(&repo, "latest").await?;
//! let index = resolver.fetch_manifest(&repo, &desc).await?;
//! assert_eq!(index.len() as u64, desc.size());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod auth;
mod credentials;
mod duration;
mod error;
mod fetcher;
pub mod hosts;
pub mod login;
mod options;
mod proxy;
mod resolver;
mod transport;

pub use credentials::{CredentialProvider, Credentials, StaticCredentials};
pub use duration::{InvalidDuration, parse_duration};
pub use error::{Error, RegistryError, Result};
pub use fetcher::BlobStream;
pub use oci_spec::image::{Descriptor, Digest};
pub use options::{RegistryOptions, RetryPolicy};
pub use resolver::Resolver;

/// The `Accept` list for manifest requests: every manifest and index type
/// hoist understands, then anything.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.v1+prettyjws, application/vnd.docker.distribution.manifest.v1+json, */*";

/// A repository in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// The registry as written in a normalized reference: `docker.io`,
    /// `127.0.0.1:5000`, `[::1]:5000`.
    pub domain: String,
    /// The repository path, e.g. `library/alpine`.
    pub name: String,
}

/// The host API requests go to for a registry domain.
pub(crate) fn api_host(domain: &str) -> String {
    if domain == "docker.io" {
        "registry-1.docker.io".to_owned()
    } else {
        domain.to_owned()
    }
}

impl Repository {
    /// A repository from its domain and name.
    pub fn new(domain: impl Into<String>, name: impl Into<String>) -> Self {
        Repository {
            domain: domain.into(),
            name: name.into(),
        }
    }

    /// The host API requests go to: `registry-1.docker.io` for `docker.io`,
    /// the domain otherwise.
    pub fn api_host(&self) -> String {
        api_host(&self.domain)
    }

    /// The token scope for pulling: `repository:<name>:pull`; none for
    /// the registry itself (a login).
    pub(crate) fn pull_scope(&self) -> String {
        if self.name.is_empty() {
            return String::new();
        }
        format!("repository:{}:pull", self.name)
    }

    /// A display form of `object` in this repository: `domain/name:tag` or
    /// `domain/name@digest`.
    pub fn reference(&self, object: &str) -> String {
        let sep = if object.contains(':') { '@' } else { ':' };
        format!("{}/{}{sep}{object}", self.domain, self.name)
    }
}

/// The private parsers, for the fuzz targets in `fuzz/` (the `fuzzing`
/// feature). Not part of the API: no stability promise.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::collections::HashMap;

    /// Parses one `WWW-Authenticate` header value into its challenges: each
    /// challenge's lowercased scheme and its parameters (lowercased names; a
    /// token68 under the empty name).
    #[expect(
        clippy::type_complexity,
        reason = "plain std types keep this entry point the whole surface"
    )]
    pub fn parse_www_authenticate(
        value: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>, String> {
        crate::auth::parse_challenges(value).map(|challenges| {
            challenges
                .into_iter()
                .map(|c| (c.scheme, c.params))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_hosts_and_references() {
        let hub = Repository::new("docker.io", "library/alpine");
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(hub.reference("3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(hub.pull_scope(), "repository:library/alpine:pull");
        let local = Repository::new("[::1]:5000", "app");
        assert_eq!(local.api_host(), "[::1]:5000");
        assert_eq!(local.reference("sha256:ab"), "[::1]:5000/app@sha256:ab");
    }
}
