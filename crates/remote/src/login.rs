//! Storing and erasing credentials the way `docker login` and `docker
//! logout` do: through the credential helper `config.json` names for the
//! registry (`credHelpers`, else `credsStore`), or as base64 `auth` in
//! `config.json` itself, which is written atomically with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use crate::credentials::{Credentials, helper_server_url, normalize_host};

/// `host[:port]` of a server address or registry domain, lowercase, with
/// Docker Hub's several names folded into `docker.io`: the key credentials
/// are stored and matched under.
pub use crate::credentials::normalize_host as registry_host;
use crate::error::{Error, Result};

/// Where `store` put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stored {
    /// In the credential helper `docker-credential-<name>`.
    Helper(String),
    /// In `config.json` at this path.
    File(PathBuf),
}

/// docker's `config.json`: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The `auths` key docker uses for a registry.
fn auths_key(domain: &str) -> String {
    helper_server_url(domain)
}

fn read_config(path: &Path) -> Result<Map<String, Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(Error::Credentials(format!(
                "{} is not a JSON object",
                path.display()
            ))),
            Err(e) => Err(Error::Credentials(format!(
                "cannot parse {}: {e}",
                path.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(Error::Credentials(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Replaces `path` with `config`, never leaving a half-written file, with
/// mode 0600 (it may hold secrets).
fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail =
        |e: std::io::Error| Error::Credentials(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let temporary = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(fail)?;
    let text = serde_json::to_vec_pretty(&Value::Object(config.clone()))
        .map_err(|e| Error::Credentials(e.to_string()))?;
    let written = file
        .write_all(&text)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(e));
    }
    Ok(())
}

/// The helper `config` names for `domain`, if any.
fn helper_for(config: &Map<String, Value>, domain: &str) -> Option<String> {
    let want = normalize_host(domain);
    let per_host = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .iter()
                .find(|(key, _)| normalize_host(key) == want)
                .and_then(|(_, v)| v.as_str())
        });
    per_host
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

/// Stores `credentials` for `domain` in the config at `path` (see the
/// module docs).
pub async fn store(path: &Path, domain: &str, credentials: &Credentials) -> Result<Stored> {
    let mut config = read_config(path)?;
    let key = auths_key(domain);
    let helper = helper_for(&config, domain);
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| Error::Credentials(format!("{}: auths is not an object", path.display())))?;
    if let Some(helper) = helper {
        let input = serde_json::json!({
            "ServerURL": key,
            "Username": credentials.username,
            "Secret": credentials.password,
        });
        run(&helper, "store", &input.to_string()).await?;
        // docker keeps an empty entry so the registry shows as logged in.
        auths.insert(key, Value::Object(Map::new()));
        write_config(path, &config)?;
        return Ok(Stored::Helper(helper));
    }
    let mut entry = Map::new();
    if credentials.is_identity_token() {
        entry.insert(
            "identitytoken".into(),
            Value::String(credentials.password.clone()),
        );
    } else {
        let raw = format!("{}:{}", credentials.username, credentials.password);
        entry.insert(
            "auth".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
        );
    }
    auths.insert(key, Value::Object(entry));
    write_config(path, &config)?;
    Ok(Stored::File(path.to_path_buf()))
}

/// Removes `domain`'s credentials from the config at `path` and its
/// helper; `false` when there were none.
pub async fn erase(path: &Path, domain: &str) -> Result<bool> {
    let mut config = read_config(path)?;
    let key = auths_key(domain);
    let want = normalize_host(domain);
    let mut found = false;
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| normalize_host(k) == want)
            .cloned()
            .collect();
        for k in keys {
            auths.remove(&k);
            found = true;
        }
    }
    if let Some(helper) = helper_for(&config, domain) {
        match run(&helper, "erase", &key).await {
            Ok(()) => found = true,
            Err(error) => tracing::debug!(%error, "the helper had nothing to erase"),
        }
    }
    if found {
        write_config(path, &config)?;
    }
    Ok(found)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
async fn run(helper: &str, action: &str, input: &str) -> Result<()> {
    let program = format!("docker-credential-{helper}");
    let mut child = tokio::process::Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Credentials(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| Error::Credentials(format!("{program}: writing stdin: {e}")))?;
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| Error::Credentials(format!("{program} {action} timed out")))?
        .map_err(|e| Error::Credentials(format!("{program}: {e}")))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        return Err(Error::Credentials(format!(
            "{program} {action} failed: {}",
            text.lines().next().unwrap_or("").trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn stores_base64_auth_with_mode_0600_and_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"psFormat":"table","auths":{"other:1":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        let stored = store(&path, "reg:5000", &Credentials::new("alice", "s3cret"))
            .await
            .unwrap();
        assert_eq!(stored, Stored::File(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(config["psFormat"], "table");
        assert_eq!(config["auths"]["other:1"]["auth"], "eDp5");
        assert_eq!(config["auths"]["reg:5000"]["auth"], "YWxpY2U6czNjcmV0");
        // Docker Hub goes under docker's historical key.
        store(&path, "docker.io", &Credentials::new("h", "p"))
            .await
            .unwrap();
        let config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(config["auths"]["https://index.docker.io/v1/"]["auth"].is_string());

        assert!(erase(&path, "reg:5000").await.unwrap());
        assert!(!erase(&path, "reg:5000").await.unwrap());
        let config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(config["auths"].get("reg:5000").is_none());
        assert_eq!(config["auths"]["other:1"]["auth"], "eDp5");
    }
}
