//! Docker image manifest schema 1: reading it, signed or not, and converting
//! it to a schema 2 manifest and image config, as containerd's
//! `remotes/docker/schema1` converter does.
//!
//! Schema 1 is deprecated and hoist refuses it unless asked. A signed
//! manifest (`…v1+prettyjws`) is the JSON payload with a `signatures` array
//! spliced in before its closing brace; its digest, as registries report
//! it, is the digest of the payload *without* the signatures, which
//! [`signed_payload`] reconstructs from the JWS protected header
//! (`formatLength` and `formatTail`, libtrust's "pretty signature").
//!
//! Conversion needs what schema 1 does not carry: each layer's size and
//! diffID. The caller fetches the layers ([`Schema1::layers`]), computes
//! their diffIDs, and passes them to [`Schema1::convert`].

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::digest::{parse_digest, sha256_digest};
use crate::media_type::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST};
use crate::{Descriptor, Digest, Error, Result};

/// A parsed schema 1 manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema1 {
    /// The architecture the image was built for.
    pub architecture: String,
    /// Layers and their history, oldest first (schema 1 lists them newest
    /// first; this order is the one a schema 2 manifest uses).
    pub entries: Vec<Schema1Entry>,
}

/// One `fsLayers[i]` / `history[i]` pair of a schema 1 manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema1Entry {
    /// The layer blob (gzip tar).
    pub blob_sum: Digest,
    /// The raw `v1Compatibility` JSON of this step.
    pub v1_compatibility: String,
    /// Whether the step made no filesystem change (its blob is the empty
    /// layer and it has no diffID).
    pub empty: bool,
}

/// A converted image: schema 2 config and manifest bytes and descriptors.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Converted {
    /// The image config's bytes.
    pub config: Vec<u8>,
    /// Its descriptor.
    pub config_descriptor: Descriptor,
    /// The Docker schema 2 manifest's bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor.
    pub manifest_descriptor: Descriptor,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(default)]
    architecture: String,
    #[serde(rename = "fsLayers")]
    fs_layers: Vec<RawLayer>,
    history: Vec<RawHistory>,
}

#[derive(Deserialize)]
struct RawLayer {
    #[serde(rename = "blobSum")]
    blob_sum: String,
}

#[derive(Deserialize)]
struct RawHistory {
    #[serde(rename = "v1Compatibility")]
    v1_compatibility: String,
}

#[derive(Deserialize, Default)]
struct V1History {
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    throwaway: Option<bool>,
    #[serde(default, rename = "Size")]
    size: Option<i64>,
    #[serde(default)]
    container_config: Option<V1ContainerConfig>,
}

#[derive(Deserialize, Default)]
struct V1ContainerConfig {
    #[serde(default, rename = "Cmd")]
    cmd: Option<Vec<String>>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidManifest {
        media_type: crate::media_type::DOCKER_SCHEMA1_MANIFEST.to_string(),
        reason: reason.into(),
    }
}

/// Parses a schema 1 manifest body (signed or unsigned).
pub fn parse(body: &[u8]) -> Result<Schema1> {
    let raw: RawManifest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("not a schema 1 manifest: {e}")))?;
    if raw.schema_version != 1 {
        return Err(invalid(format!("schemaVersion is {}", raw.schema_version)));
    }
    if raw.fs_layers.len() != raw.history.len() {
        return Err(invalid(format!(
            "{} fsLayers but {} history entries",
            raw.fs_layers.len(),
            raw.history.len()
        )));
    }
    let mut entries = Vec::with_capacity(raw.fs_layers.len());
    // Schema 1 lists the newest layer first.
    for (layer, history) in raw.fs_layers.iter().zip(&raw.history).rev() {
        let blob_sum = parse_digest(&layer.blob_sum)?;
        let step: V1History = serde_json::from_str(&history.v1_compatibility)
            .map_err(|e| invalid(format!("v1Compatibility is not JSON: {e}")))?;
        entries.push(Schema1Entry {
            blob_sum,
            empty: is_empty_layer(&step),
            v1_compatibility: history.v1_compatibility.clone(),
        });
    }
    if entries.is_empty() {
        return Err(invalid("no layers"));
    }
    Ok(Schema1 {
        architecture: raw.architecture,
        entries,
    })
}

/// containerd's rule: `throwaway` decides; else a zero `Size`; else the
/// layer is assumed to change the filesystem.
fn is_empty_layer(step: &V1History) -> bool {
    match (step.throwaway, step.size) {
        (Some(throwaway), _) => throwaway,
        (None, Some(size)) => size == 0,
        (None, None) => false,
    }
}

/// The bytes a signed schema 1 manifest's digest covers: the payload with
/// the `signatures` removed, rebuilt from the first signature's protected
/// header. An unsigned manifest is its own payload.
pub fn signed_payload(body: &[u8]) -> Result<Vec<u8>> {
    let value: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let Some(signatures) = value.get("signatures").and_then(Value::as_array) else {
        return Ok(body.to_vec());
    };
    let mut format: Option<(usize, Vec<u8>)> = None;
    for signature in signatures {
        let protected = signature
            .get("protected")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("signature without a protected header"))?;
        let header: Map<String, Value> = serde_json::from_slice(&base64url(protected)?)
            .map_err(|e| invalid(format!("protected header is not JSON: {e}")))?;
        let length = header
            .get("formatLength")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("protected header without formatLength"))?;
        let tail = header
            .get("formatTail")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("protected header without formatTail"))
            .and_then(base64url)?;
        let length = usize::try_from(length).map_err(|_| invalid("formatLength too large"))?;
        // Every signature must describe the same payload, or the digest is
        // ambiguous.
        match &format {
            Some((l, t)) if (*l, t) != (length, &tail) => {
                return Err(invalid("signatures disagree on the payload format"));
            }
            _ => format = Some((length, tail)),
        }
    }
    let (length, tail) = format.ok_or_else(|| invalid("empty signatures array"))?;
    let head = body
        .get(..length)
        .ok_or_else(|| invalid("formatLength is past the end of the manifest"))?;
    let mut payload = head.to_vec();
    payload.extend_from_slice(&tail);
    Ok(payload)
}

fn base64url(text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| invalid(format!("bad base64url: {e}")))
}

impl Schema1 {
    /// The layer blobs that hold filesystem changes, oldest first: these
    /// must be fetched, and their diffIDs computed, before converting.
    pub fn layers(&self) -> Vec<&Digest> {
        self.entries
            .iter()
            .filter(|e| !e.empty)
            .map(|e| &e.blob_sum)
            .collect()
    }

    /// Builds the schema 2 config and manifest. `layers` pairs each blob of
    /// [`Schema1::layers`], in that order, with its descriptor (the
    /// fetched size) and its diffID.
    pub fn convert(&self, layers: &[(Descriptor, Digest)]) -> Result<Converted> {
        if layers.len() != self.layers().len() {
            return Err(invalid(format!(
                "{} layers given for {} non-empty layers",
                layers.len(),
                self.layers().len()
            )));
        }
        let mut history = Vec::new();
        for entry in &self.entries {
            let step: V1History = serde_json::from_str(&entry.v1_compatibility).unwrap_or_default();
            let mut item = Map::new();
            if let Some(created) = step.created {
                item.insert("created".into(), Value::String(created));
            }
            if let Some(author) = step.author.filter(|a| !a.is_empty()) {
                item.insert("author".into(), Value::String(author));
            }
            let created_by = step
                .container_config
                .and_then(|c| c.cmd)
                .map(|cmd| cmd.join(" "))
                .unwrap_or_default();
            if !created_by.is_empty() {
                item.insert("created_by".into(), Value::String(created_by));
            }
            if let Some(comment) = step.comment.filter(|c| !c.is_empty()) {
                item.insert("comment".into(), Value::String(comment));
            }
            if entry.empty {
                item.insert("empty_layer".into(), Value::Bool(true));
            }
            history.push(Value::Object(item));
        }

        // The config is the newest step's v1Compatibility minus the v1
        // bookkeeping fields, plus rootfs and history (containerd's rule).
        let newest = &self
            .entries
            .last()
            .expect("parse refuses no layers")
            .v1_compatibility;
        let mut config: Map<String, Value> = serde_json::from_str(newest)
            .map_err(|e| invalid(format!("v1Compatibility is not an object: {e}")))?;
        for key in ["id", "parent", "Size", "parent_id", "layer_id", "throwaway"] {
            config.remove(key);
        }
        let diff_ids: Vec<Value> = layers
            .iter()
            .map(|(_, diff_id)| Value::String(diff_id.to_string()))
            .collect();
        config.insert(
            "rootfs".into(),
            serde_json::json!({"type": "layers", "diff_ids": diff_ids}),
        );
        config.insert("history".into(), Value::Array(history));
        if !config.contains_key("architecture") && !self.architecture.is_empty() {
            config.insert(
                "architecture".into(),
                Value::String(self.architecture.clone()),
            );
        }
        let config = serde_json::to_vec(&config).expect("a JSON map serializes");
        let config_descriptor = Descriptor::new(
            DOCKER_CONFIG.into(),
            config.len() as u64,
            sha256_digest(&config),
        );

        let layer_descriptors: Vec<Value> = layers
            .iter()
            .map(|(descriptor, _)| {
                serde_json::json!({
                    "mediaType": DOCKER_LAYER_GZIP,
                    "size": descriptor.size(),
                    "digest": descriptor.digest().to_string(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "size": config.len(),
                "digest": config_descriptor.digest().to_string(),
            },
            "layers": layer_descriptors,
        }))
        .expect("a JSON value serializes");
        let manifest_descriptor = Descriptor::new(
            DOCKER_MANIFEST.into(),
            manifest.len() as u64,
            sha256_digest(&manifest),
        );
        Ok(Converted {
            config,
            config_descriptor,
            manifest,
            manifest_descriptor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_TAR_GZ: &str =
        "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

    fn manifest(signatures: Option<&str>) -> Vec<u8> {
        let layer = sha256_digest(b"layer");
        let payload = format!(
            r##"{{
   "schemaVersion": 1,
   "name": "library/app",
   "tag": "1.0",
   "architecture": "amd64",
   "fsLayers": [
      {{"blobSum": "{EMPTY_TAR_GZ}"}},
      {{"blobSum": "{layer}"}}
   ],
   "history": [
      {{"v1Compatibility": "{{\"id\":\"b\",\"parent\":\"a\",\"created\":\"2020-01-02T00:00:00Z\",\"container_config\":{{\"Cmd\":[\"/bin/sh\",\"-c\",\"#(nop) CMD [\\\"sh\\\"]\"]}},\"throwaway\":true,\"config\":{{\"Cmd\":[\"sh\"]}},\"os\":\"linux\"}}"}},
      {{"v1Compatibility": "{{\"id\":\"a\",\"created\":\"2020-01-01T00:00:00Z\",\"container_config\":{{\"Cmd\":[\"/bin/sh\",\"-c\",\"#(nop) ADD file\"]}}}}"}}
   ]
}}"##
        );
        match signatures {
            None => payload.into_bytes(),
            Some(block) => {
                let close = payload.rfind('}').unwrap();
                let head = payload[..close].trim_end();
                format!("{head},\n   \"signatures\": {block}\n}}").into_bytes()
            }
        }
    }

    #[test]
    fn parse_orders_layers_oldest_first_and_marks_throwaway_steps() {
        let schema1 = parse(&manifest(None)).unwrap();
        assert_eq!(schema1.architecture, "amd64");
        assert_eq!(schema1.entries.len(), 2);
        assert!(!schema1.entries[0].empty);
        assert!(schema1.entries[1].empty);
        assert_eq!(schema1.layers(), vec![&sha256_digest(b"layer")]);
    }

    #[test]
    fn convert_builds_a_schema2_image_with_rootfs_and_history() {
        let schema1 = parse(&manifest(None)).unwrap();
        let layer = Descriptor::new(DOCKER_LAYER_GZIP.into(), 5, sha256_digest(b"layer"));
        let diff_id = sha256_digest(b"tar");
        let converted = schema1.convert(&[(layer, diff_id.clone())]).unwrap();
        let config: Value = serde_json::from_slice(&converted.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.to_string());
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], "amd64");
        assert!(config.get("id").is_none() && config.get("parent").is_none());
        let history = config["history"].as_array().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0]["created_by"], "/bin/sh -c #(nop) ADD file");
        assert_eq!(history[1]["empty_layer"], true);
        let manifest: Value = serde_json::from_slice(&converted.manifest).unwrap();
        assert_eq!(manifest["mediaType"], DOCKER_MANIFEST);
        assert_eq!(manifest["layers"][0]["size"], 5);
        assert_eq!(
            manifest["config"]["digest"],
            converted.config_descriptor.digest().to_string()
        );
        assert_eq!(
            converted.manifest_descriptor.digest(),
            &sha256_digest(&converted.manifest)
        );
    }

    #[test]
    fn convert_refuses_a_wrong_number_of_layers() {
        let schema1 = parse(&manifest(None)).unwrap();
        assert!(schema1.convert(&[]).is_err());
    }

    #[test]
    fn signed_payload_strips_signatures_using_the_protected_header() {
        let unsigned = manifest(None);
        let text = String::from_utf8(unsigned.clone()).unwrap();
        let close = text.rfind('}').unwrap();
        let length = text[..close].trim_end().len();
        let tail = &text[length..];
        let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let protected = encode(
            format!(
                r#"{{"formatLength":{length},"formatTail":"{}","time":"2020-01-01T00:00:00Z"}}"#,
                encode(tail.as_bytes())
            )
            .as_bytes(),
        );
        let block = format!(
            r#"[{{"header":{{"alg":"ES256"}},"signature":"c2ln","protected":"{protected}"}}]"#
        );
        let signed = manifest(Some(&block));
        assert_ne!(signed, unsigned);
        assert_eq!(signed_payload(&signed).unwrap(), unsigned);
        assert_eq!(signed_payload(&unsigned).unwrap(), unsigned);
    }

    #[test]
    fn signed_payload_rejects_a_format_length_past_the_end() {
        let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let protected = encode(br#"{"formatLength":100000,"formatTail":"fQ"}"#);
        let body = format!(r#"{{"signatures":[{{"protected":"{protected}"}}]}}"#);
        assert!(signed_payload(body.as_bytes()).is_err());
    }
}
