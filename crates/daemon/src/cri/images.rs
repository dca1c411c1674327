//! The CRI's view of the store: image records grouped into images by id.
//!
//! containerd's CRI plugin keeps an in-memory index from image id (config
//! digest) to every image record that reaches that config; hoist rebuilds
//! the same grouping from the metadata store on each call, so images that
//! `hoist` CLI processes pull or remove at the same time show up at once.
//! [`load`] reads the records and, once per distinct root descriptor, the
//! stored index/manifest/config ([`resolve`]); [`group`] and [`find`] are
//! pure.
//!
//! An index record stands for the manifest of this machine's platform among
//! the ones stored (else the first stored), as containerd's `image.Config`
//! picks it. A record whose manifest or config is not stored is not an
//! image to the CRI (containerd skips those too).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use hoist_engine::{Descriptor, Engine};
use hoist_metadata::Labels;
use hoist_oci::manifest::{self, Children};
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{Digest, Platform, PlatformMatcher};

use super::names::{self, RecordName};
use super::proto;

/// containerd's label marking an image record the CRI plugin manages.
pub(crate) const MANAGED_LABEL: &str = "io.cri-containerd.image";
/// Its value.
pub(crate) const MANAGED_VALUE: &str = "managed";
/// containerd's label marking an image pinned (exempt from kubelet GC).
pub(crate) const PINNED_LABEL: &str = "io.cri-containerd.pinned";
/// Its value when pinned.
pub(crate) const PINNED_VALUE: &str = "pinned";

/// What the stored content says about one root descriptor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImageInfo {
    /// `sha256:…` of the config: the image id.
    pub(crate) id: String,
    /// Compressed size of the root, the chosen manifest, its config and its
    /// layers (descriptor sizes, as containerd's `image.Size`).
    pub(crate) size: u64,
    /// The image config (OCI `imageSpec`) as stored.
    pub(crate) config: serde_json::Value,
    /// The manifest's annotations.
    pub(crate) annotations: BTreeMap<String, String>,
}

impl ImageInfo {
    /// The config's `config.User`, as containerd's `getUserFromImage`: the
    /// part before any `:group`, as a uid when numeric, else a user name.
    pub(crate) fn user(&self) -> (Option<i64>, String) {
        let user = self
            .config
            .pointer("/config/User")
            .and_then(|u| u.as_str())
            .unwrap_or_default();
        if user.is_empty() {
            return (None, String::new());
        }
        let user = user.split(':').next().unwrap_or_default();
        match user.parse::<i64>() {
            Ok(uid) => (Some(uid), String::new()),
            Err(_) => (None, user.to_string()),
        }
    }

    /// The chainID of the config's `rootfs.diff_ids`: the top snapshot.
    pub(crate) fn chain_id(&self) -> Option<String> {
        let diff_ids = self.config.pointer("/rootfs/diff_ids")?.as_array()?;
        let mut chain: Option<String> = None;
        for diff_id in diff_ids {
            let diff_id = diff_id.as_str()?;
            chain = Some(match chain {
                None => diff_id.to_string(),
                Some(parent) => {
                    hoist_oci::sha256_digest(format!("{parent} {diff_id}").as_bytes()).to_string()
                }
            });
        }
        chain
    }
}

/// An image record as the grouping needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The record's name.
    pub(crate) name: String,
    /// The digest of its root descriptor.
    pub(crate) target: String,
    /// Its labels.
    pub(crate) labels: Labels,
}

/// One CRI image: every record whose content reaches one config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CriImage {
    /// The image id.
    pub(crate) id: String,
    /// Every record naming it (ids, tags, digests and anything else), sorted.
    pub(crate) names: Vec<String>,
    /// Its repo tags, sorted.
    pub(crate) repo_tags: Vec<String>,
    /// Its repo digests, sorted.
    pub(crate) repo_digests: Vec<String>,
    /// Whether a record is labelled pinned.
    pub(crate) pinned: bool,
    /// What its content says (of the largest of its roots, when several
    /// roots reach the config).
    pub(crate) info: Arc<ImageInfo>,
}

/// Groups `records` into images by the id their root resolves to;
/// `resolved` maps a root digest to its content, `None` when the content
/// is not stored. Images come sorted by id.
pub(crate) fn group(
    records: &[Record],
    resolved: &HashMap<String, Option<Arc<ImageInfo>>>,
) -> Vec<CriImage> {
    let mut by_id: BTreeMap<String, CriImage> = BTreeMap::new();
    for record in records {
        let Some(Some(info)) = resolved.get(&record.target) else {
            continue;
        };
        let image = by_id.entry(info.id.clone()).or_insert_with(|| CriImage {
            id: info.id.clone(),
            names: Vec::new(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            pinned: false,
            info: info.clone(),
        });
        if info.size > image.info.size {
            image.info = info.clone();
        }
        image.names.push(record.name.clone());
        image.pinned |= record.labels.get(PINNED_LABEL).map(String::as_str) == Some(PINNED_VALUE);
        match names::classify(&record.name) {
            RecordName::Tag(tag) => image.repo_tags.push(tag),
            RecordName::Digest(digest) => image.repo_digests.push(digest),
            RecordName::Id | RecordName::Other => {}
        }
    }
    by_id
        .into_values()
        .map(|mut image| {
            for list in [
                &mut image.names,
                &mut image.repo_tags,
                &mut image.repo_digests,
            ] {
                let unique: BTreeSet<String> = list.drain(..).collect();
                list.extend(unique);
            }
            image
        })
        .collect()
}

/// The image `query` names, as containerd's `LocalResolve`: its full id;
/// else a reference (normalized: `busybox` is
/// `docker.io/library/busybox:latest`) that one of its records has; else
/// an unambiguous abbreviation of its id (`sha256:3f5…` or `3f5…`).
pub(crate) fn find<'a>(images: &'a [CriImage], query: &str) -> Option<&'a CriImage> {
    if let Some(image) = images.iter().find(|image| image.id == query) {
        return Some(image);
    }
    let wanted = match names::classify(query) {
        RecordName::Tag(name) | RecordName::Digest(name) => Some(name),
        RecordName::Id | RecordName::Other => None,
    };
    if let Some(wanted) = wanted {
        let found = images.iter().find(|image| {
            image.repo_tags.contains(&wanted)
                || image.repo_digests.contains(&wanted)
                || image.names.contains(&wanted)
        });
        if found.is_some() {
            return found;
        }
    }
    let hex = names::id_prefix(query)?;
    let mut candidates = images.iter().filter(|image| {
        image
            .id
            .strip_prefix("sha256:")
            .is_some_and(|id| id.starts_with(hex))
    });
    let first = candidates.next()?;
    candidates.next().is_none().then_some(first)
}

/// The CRI message for an image.
pub(crate) fn to_proto(image: &CriImage) -> proto::Image {
    let (uid, username) = image.info.user();
    proto::Image {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        size: image.info.size,
        uid: uid.map(|value| proto::Int64Value { value }),
        username,
        spec: Some(proto::ImageSpec {
            image: image.id.clone(),
            annotations: image
                .info
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..proto::ImageSpec::default()
        }),
        pinned: image.pinned,
    }
}

/// `ImageStatusResponse.info` for a verbose status: as containerd, one
/// `info` entry holding `{"chainID": …, "imageSpec": <the config>}`.
pub(crate) fn verbose_info(image: &CriImage) -> HashMap<String, String> {
    let info = serde_json::json!({
        "chainID": image.info.chain_id(),
        "imageSpec": image.info.config,
    });
    HashMap::from([("info".to_string(), info.to_string())])
}

/// Every CRI image in `engine`'s store. Blocking (SQLite, small reads).
pub(crate) fn load(engine: &Engine) -> Result<Vec<CriImage>, hoist_engine::Error> {
    let stored = engine.metadata().list_images()?;
    let mut resolved: HashMap<String, Option<Arc<ImageInfo>>> = HashMap::new();
    let mut records = Vec::with_capacity(stored.len());
    for image in stored {
        let target = image.target.digest().to_string();
        if !resolved.contains_key(&target) {
            let info = match resolve(engine, &image.target) {
                Ok(info) => info.map(Arc::new),
                Err(error) => {
                    // A corrupt blob is `hoist check`'s to report; the CRI
                    // just does not list the image.
                    tracing::debug!(name = image.name, %error, "cannot read the image's content");
                    None
                }
            };
            resolved.insert(target.clone(), info);
        }
        records.push(Record {
            name: image.name,
            target,
            labels: image.labels,
        });
    }
    Ok(group(&records, &resolved))
}

/// What the stored content under `target` says; `None` when the manifest
/// or config is not stored (or the root is not an image). Blocking.
pub(crate) fn resolve(
    engine: &Engine,
    target: &Descriptor,
) -> Result<Option<ImageInfo>, hoist_engine::Error> {
    let Some((manifest, body, mut size)) = image_manifest(engine, target, 0)? else {
        return Ok(None);
    };
    let media_type = media_type_of(&manifest, &body);
    let Children::Manifest { config, layers } = manifest::children(&media_type, &body)? else {
        return Ok(None);
    };
    let Some(config_body) = read(engine, config.digest())? else {
        return Ok(None);
    };
    let Ok(config_json) = serde_json::from_slice::<serde_json::Value>(&config_body) else {
        return Ok(None);
    };
    size += manifest.size() + config.size() + layers.iter().map(Descriptor::size).sum::<u64>();
    let annotations = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|m| m.get("annotations").cloned())
        .and_then(|a| serde_json::from_value::<BTreeMap<String, String>>(a).ok())
        .unwrap_or_default();
    Ok(Some(ImageInfo {
        id: config.digest().to_string(),
        size,
        config: config_json,
        annotations,
    }))
}

/// The image manifest under `descriptor` with its body and the size of the
/// indexes above it: the descriptor itself, or the best stored child of an
/// index for this machine's platform.
fn image_manifest(
    engine: &Engine,
    descriptor: &Descriptor,
    depth: usize,
) -> Result<Option<(Descriptor, Vec<u8>, u64)>, hoist_engine::Error> {
    // Indexes of indexes exist, but not deeper than this in practice.
    const MAX_DEPTH: usize = 4;
    let Some(body) = read(engine, descriptor.digest())? else {
        return Ok(None);
    };
    let media_type = media_type_of(descriptor, &body);
    match media_type::classify(&media_type) {
        Kind::Manifest => Ok(Some((descriptor.clone(), body, 0))),
        Kind::Index if depth < MAX_DEPTH => {
            let Children::Index(children) = manifest::children(&media_type, &body)? else {
                return Ok(None);
            };
            let stored: Vec<Descriptor> = children
                .into_iter()
                .filter(|child| engine.content().contains(child.digest()))
                .collect();
            let host = PlatformMatcher::only(Platform::host());
            let Some(chosen) = host.best_match(&stored).first().copied().or(stored.first()) else {
                return Ok(None);
            };
            Ok(image_manifest(engine, chosen, depth + 1)?
                .map(|(manifest, body, size)| (manifest, body, size + descriptor.size())))
        }
        _ => Ok(None),
    }
}

/// The descriptor's media type, or the body's when the descriptor has none.
fn media_type_of(descriptor: &Descriptor, body: &[u8]) -> String {
    let declared = descriptor.media_type().to_string();
    if media_type::classify(&declared) == Kind::Unknown {
        manifest::detect_media_type(body).unwrap_or(declared)
    } else {
        declared
    }
}

/// A stored blob's bytes (bounded), or `None` when it is not stored.
fn read(engine: &Engine, digest: &Digest) -> Result<Option<Vec<u8>>, hoist_engine::Error> {
    if !engine.content().contains(digest) {
        return Ok(None);
    }
    Ok(Some(
        engine
            .content()
            .read_blob(digest, engine.max_manifest_size())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaa111111111111111111111111111111111111111111111111111111111111";
    const B: &str = "sha256:aaaa222222222222222222222222222222222222222222222222222222222222";
    const ROOT_A: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const ROOT_A2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const ROOT_B: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const MISSING: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";

    fn info(id: &str, size: u64, user: &str) -> Option<Arc<ImageInfo>> {
        Some(Arc::new(ImageInfo {
            id: id.to_string(),
            size,
            config: serde_json::json!({
                "config": {"User": user},
                "rootfs": {"type": "layers", "diff_ids": [ROOT_A, ROOT_B]},
            }),
            annotations: BTreeMap::from([("a".to_string(), "b".to_string())]),
        }))
    }

    fn record(name: &str, target: &str) -> Record {
        Record {
            name: name.to_string(),
            target: target.to_string(),
            labels: Labels::new(),
        }
    }

    fn store() -> Vec<CriImage> {
        let resolved = HashMap::from([
            (ROOT_A.to_string(), info(A, 100, "1000:1000")),
            // A second root (say the index) reaching the same config.
            (ROOT_A2.to_string(), info(A, 150, "1000:1000")),
            (ROOT_B.to_string(), info(B, 10, "nobody")),
            (MISSING.to_string(), None),
        ]);
        let mut pinned = record("docker.io/library/pause:3.10", ROOT_B);
        pinned
            .labels
            .insert(PINNED_LABEL.to_string(), PINNED_VALUE.to_string());
        let records = vec![
            record(A, ROOT_A),
            record("docker.io/library/busybox:latest", ROOT_A),
            record(&format!("docker.io/library/busybox@{ROOT_A}"), ROOT_A),
            record("127.0.0.1:5000/busybox:copy", ROOT_A2),
            record(B, ROOT_B),
            pinned,
            record("docker.io/library/gone:1", MISSING),
        ];
        group(&records, &resolved)
    }

    #[test]
    fn records_group_by_config_digest() {
        let images = store();
        assert_eq!(images.len(), 2, "{images:#?}");
        let a = &images[0];
        assert_eq!(a.id, A);
        assert_eq!(
            a.repo_tags,
            vec![
                "127.0.0.1:5000/busybox:copy".to_string(),
                "docker.io/library/busybox:latest".to_string()
            ]
        );
        assert_eq!(
            a.repo_digests,
            vec![format!("docker.io/library/busybox@{ROOT_A}")]
        );
        assert_eq!(a.names.len(), 4);
        assert_eq!(a.info.size, 150, "the larger root's size");
        assert!(!a.pinned);
        assert!(images[1].pinned);
    }

    #[test]
    fn find_by_id_name_digest_or_abbreviation() {
        let images = store();
        assert_eq!(find(&images, A).unwrap().id, A);
        assert_eq!(find(&images, "busybox").unwrap().id, A);
        assert_eq!(find(&images, "busybox:latest").unwrap().id, A);
        assert_eq!(find(&images, &format!("busybox@{ROOT_A}")).unwrap().id, A);
        assert_eq!(find(&images, "pause:3.10").unwrap().id, B);
        assert_eq!(find(&images, &A[..20]).unwrap().id, A);
        assert_eq!(find(&images, &A["sha256:".len()..][..12]).unwrap().id, A);
        // Ambiguous, unknown, or missing content: nothing.
        assert!(find(&images, "sha256:aaaa").is_none());
        assert!(find(&images, "alpine").is_none());
        assert!(find(&images, "gone:1").is_none());
    }

    #[test]
    fn proto_image_carries_user_spec_and_pinned() {
        let images = store();
        let a = to_proto(&images[0]);
        assert_eq!(a.uid, Some(proto::Int64Value { value: 1000 }));
        assert_eq!(a.username, "");
        assert_eq!(a.size, 150);
        let spec = a.spec.unwrap();
        assert_eq!(spec.image, A);
        assert_eq!(spec.annotations.get("a").map(String::as_str), Some("b"));
        let b = to_proto(&images[1]);
        assert_eq!(b.uid, None);
        assert_eq!(b.username, "nobody");
        assert!(b.pinned);
    }

    #[test]
    fn chain_id_and_verbose_info() {
        let images = store();
        let expected = hoist_oci::sha256_digest(format!("{ROOT_A} {ROOT_B}").as_bytes());
        assert_eq!(images[0].info.chain_id(), Some(expected.to_string()));
        let info = verbose_info(&images[0]);
        let parsed: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
        assert_eq!(parsed["chainID"], expected.to_string());
        assert_eq!(parsed["imageSpec"]["config"]["User"], "1000:1000");
    }

    #[test]
    fn no_user_means_neither_uid_nor_name() {
        let bare = ImageInfo {
            id: A.to_string(),
            size: 1,
            config: serde_json::json!({}),
            annotations: BTreeMap::new(),
        };
        assert_eq!(bare.user(), (None, String::new()));
        assert_eq!(bare.chain_id(), None);
    }
}
