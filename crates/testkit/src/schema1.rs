//! Docker schema 1 fixtures: signed manifests the real registry accepts.
//!
//! distribution 2.8 verifies a schema 1 manifest's JWS signature on push,
//! so the fixture signs like libtrust's "pretty signature": the payload is
//! the manifest JSON, the signature covers `protected.payload` (base64url),
//! and the signed form splices a `signatures` array in before the payload's
//! closing brace. The protected header's `formatLength` and `formatTail`
//! let a reader rebuild the payload, whose sha256 is the manifest digest.

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use serde_json::json;

use crate::fixture::{Layer, sha256_digest};
use crate::registry::Registry;

/// The signed schema 1 media type.
pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The blob schema 1 uses for steps that change no files: an empty gzip tar.
const EMPTY_LAYER_GZ: [u8; 32] = [
    31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0, 255, 255,
    46, 175, 181, 239, 0, 4, 0, 0,
];

/// A signed schema 1 image: its manifest and the blobs it needs.
pub struct Schema1Image {
    /// The signed manifest as served.
    pub manifest: Vec<u8>,
    /// The payload digest: what the registry calls this manifest.
    pub digest: String,
    /// The layers with content, oldest first.
    pub layers: Vec<Layer>,
}

impl Schema1Image {
    /// A schema 1 image of `layers` (gzip, oldest first) plus one empty
    /// (`throwaway`) step on top, as docker's `CMD` steps were, for
    /// repository `name` and tag `tag`.
    pub fn new(name: &str, tag: &str, layers: Vec<Layer>) -> Schema1Image {
        let empty_digest = sha256_digest(&EMPTY_LAYER_GZ);
        // Newest first, as schema 1 lists them.
        let mut fs_layers = vec![json!({"blobSum": empty_digest})];
        let mut history = vec![json!({"v1Compatibility": serde_json::to_string(&json!({
            "id": format!("{:0>64}", layers.len() + 1),
            "parent": format!("{:0>64}", layers.len()),
            "created": "2020-01-01T00:00:00Z",
            "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]},
            "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/bin:/bin"]},
            "architecture": "amd64",
            "os": "linux",
            "throwaway": true,
        })).unwrap()})];
        for (i, layer) in layers.iter().enumerate().rev() {
            fs_layers.push(json!({"blobSum": layer.digest}));
            let mut step = json!({
                "id": format!("{:0>64}", i + 1),
                "created": "2020-01-01T00:00:00Z",
                "container_config": {"Cmd": ["/bin/sh", "-c", format!("#(nop) ADD layer {i}")]},
            });
            if i > 0 {
                step["parent"] = json!(format!("{:0>64}", i));
            }
            history.push(json!({"v1Compatibility": serde_json::to_string(&step).unwrap()}));
        }
        let payload = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 1,
            "name": name,
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": fs_layers,
            "history": history,
        }))
        .unwrap();
        Schema1Image {
            manifest: sign(&payload),
            digest: sha256_digest(&payload),
            layers,
        }
    }

    /// Pushes the layers, the empty layer and the signed manifest to
    /// `registry` as `repository:tag`; returns the registry's digest for it.
    pub fn push(&self, registry: &Registry, repository: &str, tag: &str) -> String {
        registry.push_blob(repository, &EMPTY_LAYER_GZ);
        for layer in &self.layers {
            registry.push_blob(repository, &layer.blob);
        }
        registry.push_manifest(repository, tag, SCHEMA1_SIGNED, &self.manifest)
    }
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// libtrust's pretty signature of `payload` with a fresh P-256 key.
fn sign(payload: &[u8]) -> Vec<u8> {
    let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let text = std::str::from_utf8(payload).expect("JSON is UTF-8");
    let close = text.rfind('}').expect("a JSON object");
    let format_length = text[..close].trim_end().len();
    let format_tail = &text[format_length..];
    let protected = base64url(
        serde_json::to_string(&json!({
            "formatLength": format_length,
            "formatTail": base64url(format_tail.as_bytes()),
            "time": "2020-01-01T00:00:00Z",
        }))
        .unwrap()
        .as_bytes(),
    );
    let signing_input = format!("{protected}.{}", base64url(payload));
    let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({
        "crv": "P-256",
        "kty": "EC",
        "x": base64url(point.x().expect("uncompressed point")),
        "y": base64url(point.y().expect("uncompressed point")),
    });
    let signatures = serde_json::to_string_pretty(&json!([{
        "header": {"jwk": jwk, "alg": "ES256"},
        "signature": base64url(&signature.to_bytes()),
        "protected": protected,
    }]))
    .unwrap();
    format!(
        "{},\n   \"signatures\": {signatures}{format_tail}",
        &text[..format_length]
    )
    .into_bytes()
}
