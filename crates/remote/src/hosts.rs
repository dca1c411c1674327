//! Registry hosts, as containerd configures them (its `docs/hosts.md`):
//! which hosts serve a registry's content, in which order, and how to reach
//! each. Sans-IO but for reading the files.
//!
//! For a registry `host[:port]` the configuration comes from the first of:
//! `DIR/<host[:port]>/hosts.toml`, `DIR/_default/hosts.toml`, or docker's
//! `certs.d` files in `DIR/<host[:port]>/` (`*.crt` CAs, `client.cert` /
//! `client.key` pairs), where `DIR` is the hosts directory. A `hosts.toml`
//! lists mirrors (`[host."…"]`, tried in order) and a `server` (the
//! upstream, tried last, by default the registry itself):
//!
//! ```toml
//! server = "https://registry.example.com"
//!
//! [host."http://127.0.0.1:5001"]
//!   capabilities = ["pull", "resolve"]
//!   dial_timeout = "500ms"
//!   [host."http://127.0.0.1:5001".header]
//!     x-team = "build"
//!
//! [host."https://mirror.example.com/v2/cache"]
//!   override_path = true
//!   ca = "mirror-ca.pem"
//!   client = [["client.pem", "client.key"]]
//!   skip_verify = false
//! ```
//!
//! Relative paths are relative to the file's directory. A malformed file is
//! an error naming the file and the line, never skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::duration::parse_duration;
use crate::error::{Error, Result};

/// How long a mirror may take to accept a connection before the next host
/// is tried, when its entry sets no `dial_timeout`. containerd waits 30 s;
/// a dead mirror should cost a pull little, and a mirror is normally near.
pub const DEFAULT_MIRROR_DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a host may be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Blobs and manifests by digest.
    pub pull: bool,
    /// Tags to digests (and tag lists).
    pub resolve: bool,
    /// Uploads (hoist never pushes; kept for completeness).
    pub push: bool,
}

impl Capabilities {
    const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// One host that serves a registry's content.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryHost {
    /// `http` or `https`; `None` when the entry named none (then https,
    /// with the plain-http fallback for loopback hosts).
    pub scheme: Option<String>,
    /// `host[:port]`.
    pub authority: String,
    /// The API root: `/v2`, or the entry's path (with `/v2` appended unless
    /// `override_path`).
    pub path: String,
    /// What it may be asked.
    pub capabilities: Capabilities,
    /// Extra CA certificates (PEM files) for this host.
    pub ca: Vec<PathBuf>,
    /// Client certificate and key files (the key may sit in the cert file).
    pub client: Vec<(PathBuf, Option<PathBuf>)>,
    /// Do not verify the host's certificate.
    pub skip_verify: bool,
    /// Headers sent with every request to this host.
    pub header: Vec<(String, String)>,
    /// How long a connection may take; `None` for the resolver's default.
    pub dial_timeout: Option<Duration>,
    /// This is the upstream (`server`), not a mirror: requests carry no
    /// `ns` parameter and the reference's own credentials.
    pub is_server: bool,
}

impl RegistryHost {
    /// The upstream for `domain` with nothing configured.
    pub(crate) fn default_for(api_host: &str) -> RegistryHost {
        RegistryHost {
            scheme: None,
            authority: api_host.to_string(),
            path: "/v2".into(),
            capabilities: Capabilities::ALL,
            ca: Vec::new(),
            client: Vec::new(),
            skip_verify: false,
            header: Vec::new(),
            dial_timeout: None,
            is_server: true,
        }
    }

    /// Whether this host has TLS or connection settings of its own, so it
    /// needs its own HTTP client.
    pub(crate) fn has_own_client(&self) -> bool {
        !self.ca.is_empty()
            || !self.client.is_empty()
            || self.skip_verify
            || self.dial_timeout.is_some()
    }

    /// The path and query for an API request: `api_path` starts with
    /// `/v2/`; its rest goes under this host's root, and a mirror gets
    /// `ns=<domain>` so that a cache serving several registries knows which
    /// one is meant (containerd's convention).
    pub fn request_path(&self, api_path: &str, domain: &str) -> String {
        let rest = api_path.strip_prefix("/v2").unwrap_or(api_path);
        let mut path = format!("{}{rest}", self.path.trim_end_matches('/'));
        if !self.is_server {
            let ns = url::form_urlencoded::byte_serialize(domain.as_bytes()).collect::<String>();
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str("ns=");
            path.push_str(&ns);
        }
        path
    }
}

/// The hosts of one registry, mirrors first, the server last.
pub fn hosts_for(dir: Option<&Path>, domain: &str, api_host: &str) -> Result<Vec<RegistryHost>> {
    let dirs: Vec<PathBuf> = match dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
    };
    for dir in &dirs {
        if let Some(hosts) = hosts_in(dir, domain, api_host)? {
            return Ok(hosts);
        }
    }
    Ok(vec![RegistryHost::default_for(api_host)])
}

/// Where hosts directories are looked for when none is given, in order:
/// hoist's own, containerd's, then docker's `certs.d`.
pub const DEFAULT_DIRS: [&str; 3] = [
    "/etc/hoist/certs.d",
    "/etc/containerd/certs.d",
    "/etc/docker/certs.d",
];

/// The hosts `dir` configures for `domain`, or `None` if it says nothing.
fn hosts_in(dir: &Path, domain: &str, api_host: &str) -> Result<Option<Vec<RegistryHost>>> {
    // Never let a host name climb out of the hosts directory.
    if domain.contains('/') || domain.contains('\\') || domain.starts_with('.') {
        return Ok(None);
    }
    let mut names = vec![domain.to_string()];
    if domain == "docker.io" {
        names.push(api_host.to_string());
    }
    for name in &names {
        let host_dir = dir.join(name);
        let file = host_dir.join("hosts.toml");
        if let Some(text) = read_optional(&file)? {
            return parse(&text, &file, api_host).map(Some);
        }
    }
    let default = dir.join("_default").join("hosts.toml");
    if let Some(text) = read_optional(&default)? {
        return parse(&text, &default, api_host).map(Some);
    }
    for name in &names {
        let host_dir = dir.join(name);
        if host_dir.is_dir() {
            return Ok(Some(vec![docker_certs_d(&host_dir, api_host)]));
        }
    }
    Ok(None)
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => Ok(None),
        Err(error) => Err(Error::InvalidArgument(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}

/// docker's `certs.d/<host>/` layout: `*.crt` CAs, `*.cert` + `*.key`
/// client pairs, for the registry itself.
fn docker_certs_d(host_dir: &Path, api_host: &str) -> RegistryHost {
    let mut host = RegistryHost::default_for(api_host);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(host_dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => host.ca.push(path),
            Some("cert") => {
                let key = path.with_extension("key");
                host.client.push((path, Some(key)));
            }
            _ => {}
        }
    }
    host
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    server: Option<String>,
    #[serde(default)]
    host: toml::Table,
    // The server's own settings may sit at the top level.
    #[serde(flatten)]
    settings: Settings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    capabilities: Option<Vec<String>>,
    ca: Option<OneOrMany>,
    client: Option<Clients>,
    skip_verify: Option<bool>,
    #[serde(default)]
    header: toml::Table,
    override_path: Option<bool>,
    dial_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Clients {
    /// `client = "cert.pem"`
    One(String),
    /// `client = ["cert.pem", "key.pem"]` or a list of single files.
    Pair(Vec<String>),
    /// `client = [["cert.pem", "key.pem"], …]`
    Pairs(Vec<Vec<String>>),
}

/// Parses one `hosts.toml`; `path` names it in errors and anchors relative
/// paths.
pub fn parse(text: &str, path: &Path, api_host: &str) -> Result<Vec<RegistryHost>> {
    let invalid =
        |message: String| Error::InvalidArgument(format!("{}: {message}", path.display()));
    let file: File = toml::from_str(text)
        .map_err(|error| invalid(error.to_string().trim_end().replace('\n', " ")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut hosts = Vec::new();
    // Mirrors are tried in the file's order: `toml` is built with
    // `preserve_order`, so its tables keep it.
    for (key, value) in &file.host {
        let settings: Settings = value
            .clone()
            .try_into()
            .map_err(|error: toml::de::Error| invalid(format!("[host.{key:?}]: {error}")))?;
        hosts.push(host_from(key, &settings, false, base, &invalid)?);
    }
    let server = match &file.server {
        Some(server) => host_from(server, &file.settings, true, base, &invalid)?,
        None => {
            let mut server = host_from(api_host, &file.settings, true, base, &invalid)?;
            server.scheme = None;
            server
        }
    };
    hosts.push(server);
    Ok(hosts)
}

fn host_from(
    key: &str,
    settings: &Settings,
    is_server: bool,
    base: &Path,
    invalid: &dyn Fn(String) -> Error,
) -> Result<RegistryHost> {
    let (scheme, rest) = match key.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, key),
    };
    if let Some(scheme) = &scheme
        && scheme != "http"
        && scheme != "https"
    {
        return Err(invalid(format!(
            "host {key:?}: scheme must be http or https"
        )));
    }
    let url = Url::parse(&format!(
        "{}://{rest}",
        scheme.as_deref().unwrap_or("https")
    ))
    .map_err(|error| invalid(format!("host {key:?}: {error}")))?;
    let authority = crate::transport::authority(&url);
    if authority.is_empty() {
        return Err(invalid(format!("host {key:?} names no host")));
    }
    let url_path = url.path().trim_end_matches('/');
    let path = if settings.override_path.unwrap_or(false) {
        url_path.to_string()
    } else {
        format!("{url_path}/v2")
    };
    let capabilities = match &settings.capabilities {
        None => Capabilities::ALL,
        Some(names) => {
            let mut capabilities = Capabilities {
                pull: false,
                resolve: false,
                push: false,
            };
            for name in names {
                match name.as_str() {
                    "pull" => capabilities.pull = true,
                    "resolve" => capabilities.resolve = true,
                    "push" => capabilities.push = true,
                    other => {
                        return Err(invalid(format!(
                            "host {key:?}: unknown capability {other:?} (pull, resolve, push)"
                        )));
                    }
                }
            }
            capabilities
        }
    };
    let resolve = |p: &str| base.join(p);
    let ca = match &settings.ca {
        None => Vec::new(),
        Some(OneOrMany::One(path)) => vec![resolve(path)],
        Some(OneOrMany::Many(paths)) => paths.iter().map(|p| resolve(p)).collect(),
    };
    let client = match &settings.client {
        None => Vec::new(),
        Some(Clients::One(cert)) => vec![(resolve(cert), None)],
        Some(Clients::Pair(files)) if files.len() == 2 => {
            vec![(resolve(&files[0]), Some(resolve(&files[1])))]
        }
        Some(Clients::Pair(files)) => files.iter().map(|f| (resolve(f), None)).collect(),
        Some(Clients::Pairs(pairs)) => pairs
            .iter()
            .map(|pair| match pair.as_slice() {
                [cert] => Ok((resolve(cert), None)),
                [cert, key] => Ok((resolve(cert), Some(resolve(key)))),
                _ => Err(invalid(format!(
                    "host {key:?}: a client entry is [cert] or [cert, key]"
                ))),
            })
            .collect::<Result<_>>()?,
    };
    let mut header = Vec::new();
    for (name, value) in &settings.header {
        let values: Vec<String> = match value {
            toml::Value::String(one) => vec![one.clone()],
            toml::Value::Array(many) => many
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid(format!("header {name:?}: values must be strings")))?,
            _ => return Err(invalid(format!("header {name:?}: values must be strings"))),
        };
        header.extend(values.into_iter().map(|v| (name.clone(), v)));
    }
    let dial_timeout = match &settings.dial_timeout {
        Some(text) => Some(
            parse_duration(text).map_err(|_| invalid(format!("invalid dial_timeout {text:?}")))?,
        ),
        None if is_server => None,
        None => Some(DEFAULT_MIRROR_DIAL_TIMEOUT),
    };
    Ok(RegistryHost {
        scheme,
        authority,
        path,
        capabilities,
        ca,
        client,
        skip_verify: settings.skip_verify.unwrap_or(false),
        header,
        dial_timeout,
        is_server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<RegistryHost> {
        parse(
            text,
            Path::new("/etc/hoist/certs.d/reg:5000/hosts.toml"),
            "reg:5000",
        )
        .unwrap()
    }

    #[test]
    fn mirrors_in_order_then_the_server() {
        let hosts = parse_ok(
            r#"
            server = "https://upstream.example.com"
            [host."http://127.0.0.1:5001"]
              capabilities = ["pull", "resolve"]
              dial_timeout = "500ms"
              [host."http://127.0.0.1:5001".header]
                x-team = "build"
                x-many = ["a", "b"]
            [host."mirror.example.com/cache"]
              ca = "ca.pem"
              client = [["c.pem", "c.key"]]
              skip_verify = true
            "#,
        );
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0].authority, "127.0.0.1:5001");
        assert_eq!(hosts[0].scheme.as_deref(), Some("http"));
        assert!(!hosts[0].capabilities.push && hosts[0].capabilities.pull);
        assert_eq!(hosts[0].dial_timeout, Some(Duration::from_millis(500)));
        let header = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            hosts[0].header,
            vec![
                header("x-team", "build"),
                header("x-many", "a"),
                header("x-many", "b")
            ]
        );
        assert_eq!(hosts[1].authority, "mirror.example.com");
        assert_eq!(hosts[1].scheme, None);
        assert_eq!(hosts[1].path, "/cache/v2");
        assert_eq!(
            hosts[1].ca,
            vec![PathBuf::from("/etc/hoist/certs.d/reg:5000/ca.pem")]
        );
        assert_eq!(
            hosts[1].client,
            vec![(
                PathBuf::from("/etc/hoist/certs.d/reg:5000/c.pem"),
                Some(PathBuf::from("/etc/hoist/certs.d/reg:5000/c.key"))
            )]
        );
        assert!(hosts[1].skip_verify);
        assert_eq!(hosts[1].dial_timeout, Some(DEFAULT_MIRROR_DIAL_TIMEOUT));
        assert!(hosts[2].is_server);
        assert_eq!(hosts[2].authority, "upstream.example.com");
        assert_eq!(hosts[2].dial_timeout, None);
    }

    #[test]
    fn paths_and_the_ns_parameter() {
        let hosts = parse_ok(
            r#"
            [host."https://cache.example.com/v2/hub"]
              override_path = true
            [host."https://plain.example.com"]
            "#,
        );
        assert_eq!(
            hosts[0].request_path("/v2/library/alpine/manifests/3.20", "docker.io"),
            "/v2/hub/library/alpine/manifests/3.20?ns=docker.io"
        );
        assert_eq!(
            hosts[1].request_path("/v2/app/tags/list?n=100", "reg:5000"),
            "/v2/app/tags/list?n=100&ns=reg%3A5000"
        );
        // The server: the registry itself, no ns.
        assert_eq!(hosts[2].authority, "reg:5000");
        assert_eq!(
            hosts[2].request_path("/v2/app/blobs/x", "reg:5000"),
            "/v2/app/blobs/x"
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let path = Path::new("/etc/hoist/certs.d/reg:5000/hosts.toml");
        let error = |text: &str| parse(text, path, "reg:5000").unwrap_err().to_string();
        let broken = error("server = \"https://x\"\n[host.\"http://m\"\ncapabilities = 1");
        assert!(
            broken.contains("/etc/hoist/certs.d/reg:5000/hosts.toml"),
            "{broken}"
        );
        assert!(broken.contains("line 2"), "{broken}");
        let unknown = error("[host.\"http://m\"]\ncapabilites = [\"pull\"]");
        assert!(unknown.contains("capabilites"), "{unknown}");
        let capability = error("[host.\"http://m\"]\ncapabilities = [\"fly\"]");
        assert!(capability.contains("unknown capability"), "{capability}");
        let scheme = error("[host.\"ftp://m\"]");
        assert!(scheme.contains("http or https"), "{scheme}");
    }

    #[test]
    fn lookup_order_host_then_default_then_docker_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            hosts_for(Some(dir.path()), "reg:5000", "reg:5000").unwrap(),
            vec![RegistryHost::default_for("reg:5000")]
        );
        std::fs::create_dir_all(dir.path().join("reg:5000")).unwrap();
        std::fs::write(dir.path().join("reg:5000/ca.crt"), "x").unwrap();
        std::fs::write(dir.path().join("reg:5000/client.cert"), "x").unwrap();
        let docker = hosts_for(Some(dir.path()), "reg:5000", "reg:5000").unwrap();
        assert_eq!(docker.len(), 1);
        assert_eq!(docker[0].ca, vec![dir.path().join("reg:5000/ca.crt")]);
        assert_eq!(
            docker[0].client,
            vec![(
                dir.path().join("reg:5000/client.cert"),
                Some(dir.path().join("reg:5000/client.key"))
            )]
        );
        std::fs::create_dir_all(dir.path().join("_default")).unwrap();
        std::fs::write(
            dir.path().join("_default/hosts.toml"),
            "[host.\"http://127.0.0.1:9\"]\n",
        )
        .unwrap();
        let other = hosts_for(Some(dir.path()), "other:5000", "other:5000").unwrap();
        assert_eq!(other.len(), 2);
        assert_eq!(other[0].authority, "127.0.0.1:9");
        assert_eq!(other[1].authority, "other:5000");
        std::fs::write(
            dir.path().join("reg:5000/hosts.toml"),
            "server = \"http://reg:5000\"\n",
        )
        .unwrap();
        let own = hosts_for(Some(dir.path()), "reg:5000", "reg:5000").unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].scheme.as_deref(), Some("http"));
        assert!(hosts_for(Some(dir.path()), "../etc", "../etc").unwrap()[0].is_server);
    }
}
