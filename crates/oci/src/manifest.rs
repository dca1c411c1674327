//! The pure walk from a manifest or index body to the descriptors it points
//! at ([`children`]), the walk of a whole tree of them ([`Walk`]), and media
//! type detection for bodies that arrive without one.

use std::collections::HashSet;

use oci_spec::image::{Descriptor, Digest};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::media_type::{self, Kind};
use crate::platform::Platform;

/// What a blob points at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per manifest walked, short-lived; boxing would only burden callers' matches"
)]
pub enum Children {
    /// An index or manifest list: its manifests (or nested indexes).
    Index(Vec<Descriptor>),
    /// An image manifest: its config and layers.
    Manifest {
        /// The image configuration blob.
        config: Descriptor,
        /// The layers, base first.
        layers: Vec<Descriptor>,
    },
    /// A leaf: config, layer, or a type this crate does not walk into.
    None,
}

impl Children {
    /// Every child descriptor, config before layers.
    pub fn descriptors(&self) -> Vec<&Descriptor> {
        match self {
            Children::Index(manifests) => manifests.iter().collect(),
            Children::Manifest { config, layers } => {
                std::iter::once(config).chain(layers.iter()).collect()
            }
            Children::None => Vec::new(),
        }
    }
}

/// Just the fields that tell an index from a manifest, parsed leniently so the
/// checks below can say what is wrong instead of a generic JSON error.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    config: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    manifests: Option<serde_json::Value>,
    fs_layers: Option<serde_json::Value>,
    signatures: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IndexBody {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ManifestBody {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// Parses the body of a blob of `media_type` into its children.
///
/// Types that are neither manifest nor index give [`Children::None`]. As
/// containerd does, a body whose shape or own `mediaType` says it is an index
/// when the descriptor says manifest (or the reverse) is refused, so a
/// registry cannot swap one for the other.
///
/// ```
/// use hoist_oci::manifest::{children, Children};
/// use hoist_oci::media_type::OCI_INDEX;
///
/// let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
/// assert_eq!(children(OCI_INDEX, body)?, Children::Index(vec![]));
/// # Ok::<(), hoist_oci::Error>(())
/// ```
pub fn children(media_type: &str, body: &[u8]) -> Result<Children> {
    let kind = media_type::classify(media_type);
    if !matches!(kind, Kind::Index | Kind::Manifest | Kind::Schema1Manifest) {
        return Ok(Children::None);
    }
    let invalid = |e: serde_json::Error| Error::InvalidManifest {
        media_type: media_type.to_owned(),
        reason: e.to_string(),
    };
    let probe: Probe = serde_json::from_slice(body).map_err(invalid)?;
    if kind == Kind::Schema1Manifest || probe.fs_layers.is_some() {
        return Err(Error::Schema1Unsupported);
    }
    let mismatch = |found: &str| Error::MediaTypeMismatch {
        expected: media_type.to_owned(),
        found: found.to_owned(),
    };
    let declared = probe.media_type.as_deref().map(media_type::classify);
    match kind {
        Kind::Index => {
            if let Some(Kind::Manifest | Kind::Schema1Manifest) = declared {
                return Err(mismatch(probe.media_type.as_deref().unwrap_or_default()));
            }
            if probe.config.is_some() || probe.layers.is_some() {
                return Err(mismatch("a manifest (it has config or layers)"));
            }
            let index: IndexBody = serde_json::from_slice(body).map_err(invalid)?;
            Ok(Children::Index(index.manifests))
        }
        _ => {
            if let Some(Kind::Index | Kind::Schema1Manifest) = declared {
                return Err(mismatch(probe.media_type.as_deref().unwrap_or_default()));
            }
            if probe.manifests.is_some() {
                return Err(mismatch("an index (it has manifests)"));
            }
            let manifest: ManifestBody = serde_json::from_slice(body).map_err(invalid)?;
            Ok(Children::Manifest {
                config: manifest.config,
                layers: manifest.layers,
            })
        }
    }
}

/// Guesses the media type of a manifest or index body from its fields, for
/// registries that send no usable `Content-Type` (BuildKit's
/// `DetectManifestMediaType`).
///
/// A declared `mediaType` wins when it agrees with the body's shape; without
/// one, `manifests` means an OCI index and `config`/`layers` an OCI manifest.
/// Returns `None` for non-JSON, ambiguous, or contradictory bodies.
pub fn detect_media_type(body: &[u8]) -> Option<String> {
    let probe: Probe = serde_json::from_slice(body).ok()?;
    let schema1 = probe
        .schema_version
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        == Some(1);
    if schema1 && probe.fs_layers.is_some() {
        let mt = if probe.signatures.is_some() {
            media_type::DOCKER_SCHEMA1_SIGNED_MANIFEST
        } else {
            media_type::DOCKER_SCHEMA1_MANIFEST
        };
        return Some(mt.to_owned());
    }
    let looks_like_manifest = probe.config.is_some() || probe.layers.is_some();
    let looks_like_index = probe.manifests.is_some();
    let shape = match (looks_like_index, looks_like_manifest) {
        (true, true) => return None,
        (true, false) => Some(Kind::Index),
        (false, true) => Some(Kind::Manifest),
        (false, false) => None,
    };
    match probe.media_type {
        Some(declared) => {
            let declared_kind = media_type::classify(&declared);
            let agrees = match declared_kind {
                Kind::Index | Kind::Manifest => shape.is_none() || shape == Some(declared_kind),
                _ => true,
            };
            agrees.then_some(declared)
        }
        None => match shape {
            Some(Kind::Index) => Some(media_type::OCI_INDEX.to_owned()),
            Some(_) => Some(media_type::OCI_MANIFEST.to_owned()),
            None => None,
        },
    }
}

/// One node of a [`Walk`]: a descriptor, the node it was reached from, and
/// the children its body names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Node {
    /// The node itself.
    pub descriptor: Descriptor,
    /// The index or manifest that named it; `None` for the root.
    pub parent: Option<Descriptor>,
    /// What its body names: [`Children::None`] for a leaf (config, layer,
    /// a type not walked into) and for a node whose body `read` did not
    /// give.
    pub children: Children,
}

impl Node {
    /// Whether an index named this node, so its descriptor may carry the
    /// platform the index lists it for.
    pub fn is_index_child(&self) -> bool {
        self.parent
            .as_ref()
            .is_some_and(|p| media_type::classify(p.media_type().as_ref()) == Kind::Index)
    }
}

/// The walk of an image's tree: index → manifests → config and layers, each
/// distinct digest visited once, depth-first.
///
/// The walk does no IO: it asks `read` for the body of every index and
/// image manifest it meets (`Ok(None)`: not available, or not to be walked
/// into, so the node is a leaf), and takes the node's children from
/// [`children`]. Other nodes are leaves and are not read. Children are
/// visited after their parent, the last named first (the walk is a stack).
/// Every node is yielded, including leaves and nodes `read` gave no body
/// for; an error from `read` or a body that does not parse is yielded once
/// and the walk goes on with the nodes still pending.
///
/// [`Walk::follow`] narrows which children are gone down to. The engine's
/// listings (image sizes and platforms, stored manifests) and its store
/// check walk the content store with it, and so can a pull, whose `read`
/// fetches.
///
/// ```
/// use hoist_oci::manifest::{Children, Walk};
/// use hoist_oci::media_type::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
/// use hoist_oci::{Descriptor, sha256_digest};
///
/// let config = Descriptor::new(OCI_CONFIG.into(), 2, sha256_digest(b"{}"));
/// let layer = Descriptor::new(OCI_LAYER_GZIP.into(), 5, sha256_digest(b"layer"));
/// let body = serde_json::to_vec(&serde_json::json!({
///     "schemaVersion": 2, "mediaType": OCI_MANIFEST,
///     "config": config, "layers": [layer],
/// })).unwrap();
/// let root = Descriptor::new(OCI_MANIFEST.into(), body.len() as u64, sha256_digest(&body));
///
/// let read = |_: &Descriptor| Ok::<_, hoist_oci::Error>(Some(body.clone()));
/// let visited: Vec<Descriptor> = Walk::new(root.clone(), read)
///     .map(|node| node.map(|node| node.descriptor))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(visited, [root, layer, config]);
/// # Ok::<(), hoist_oci::Error>(())
/// ```
pub struct Walk<F, G = fn(&Descriptor, &Descriptor) -> bool> {
    queue: Queue<Option<Descriptor>>,
    read: F,
    follow: G,
}

/// The bookkeeping of a walk without its IO: the descriptors still to
/// visit (a stack, so depth-first, the last pushed first), each with the
/// caller's `T`, and the digests already seen. [`Walk`] drives one with a
/// `read` closure; a caller whose reads are async (a pull, which fetches
/// each manifest before it knows the next) drives one itself.
///
/// ```
/// use hoist_oci::manifest::Queue;
/// use hoist_oci::media_type::OCI_MANIFEST;
/// use hoist_oci::{Descriptor, sha256_digest};
///
/// let a = Descriptor::new(OCI_MANIFEST.into(), 1, sha256_digest(b"a"));
/// let mut queue = Queue::new(a.clone(), "root");
/// let (first, what) = queue.pop().unwrap();
/// assert_eq!((first, what), (a.clone(), "root"));
/// queue.push(a.clone(), "again");
/// assert!(queue.pop().is_none(), "a digest is visited once");
/// assert!(!queue.mark_seen(a.digest()));
/// ```
#[derive(Debug, Clone)]
pub struct Queue<T> {
    pending: Vec<(Descriptor, T)>,
    seen: HashSet<Digest>,
}

impl<T> Queue<T> {
    /// A queue holding `root` with `state`.
    pub fn new(root: Descriptor, state: T) -> Queue<T> {
        Queue {
            pending: vec![(root, state)],
            seen: HashSet::new(),
        }
    }

    /// The next descriptor whose digest was not seen yet, now marked seen.
    pub fn pop(&mut self) -> Option<(Descriptor, T)> {
        while let Some((descriptor, state)) = self.pending.pop() {
            if self.seen.insert(descriptor.digest().clone()) {
                return Some((descriptor, state));
            }
        }
        None
    }

    /// Queues `descriptor` with `state`, to visit unless its digest is seen
    /// by then.
    pub fn push(&mut self, descriptor: Descriptor, state: T) {
        self.pending.push((descriptor, state));
    }

    /// Marks `digest` seen, for nodes handled outside the queue (a pull's
    /// configs and layers); false if it was seen already.
    pub fn mark_seen(&mut self, digest: &Digest) -> bool {
        self.seen.insert(digest.clone())
    }
}

impl<F, G> std::fmt::Debug for Walk<F, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl<F, E> Walk<F>
where
    F: FnMut(&Descriptor) -> std::result::Result<Option<Vec<u8>>, E>,
    E: From<Error>,
{
    /// A walk of the tree below (and including) `root` that follows every
    /// child.
    pub fn new(root: Descriptor, read: F) -> Walk<F> {
        Walk {
            queue: Queue::new(root, None),
            read,
            follow: |_, _| true,
        }
    }
}

impl<F, G, E> Walk<F, G>
where
    F: FnMut(&Descriptor) -> std::result::Result<Option<Vec<u8>>, E>,
    E: From<Error>,
{
    /// The same walk, going down from a node (first argument) only to the
    /// children `follow` accepts (second argument), e.g. the platforms
    /// chosen from an index. [`Node::children`] still lists them all.
    pub fn follow<H>(self, follow: H) -> Walk<F, H>
    where
        H: FnMut(&Descriptor, &Descriptor) -> bool,
    {
        Walk {
            queue: self.queue,
            read: self.read,
            follow,
        }
    }

    fn visit(&mut self, descriptor: &Descriptor) -> std::result::Result<Children, E> {
        let media_type = descriptor.media_type().to_string();
        if !matches!(
            media_type::classify(&media_type),
            Kind::Index | Kind::Manifest
        ) {
            return Ok(Children::None);
        }
        match (self.read)(descriptor)? {
            Some(body) => Ok(children(&media_type, &body)?),
            None => Ok(Children::None),
        }
    }
}

impl<F, G, E> Iterator for Walk<F, G>
where
    F: FnMut(&Descriptor) -> std::result::Result<Option<Vec<u8>>, E>,
    G: FnMut(&Descriptor, &Descriptor) -> bool,
    E: From<Error>,
{
    type Item = std::result::Result<Node, E>;

    fn next(&mut self) -> Option<Self::Item> {
        let (descriptor, parent) = self.queue.pop()?;
        let children = match self.visit(&descriptor) {
            Ok(children) => children,
            Err(error) => return Some(Err(error)),
        };
        for child in children.descriptors() {
            if (self.follow)(&descriptor, child) {
                self.queue.push(child.clone(), Some(descriptor.clone()));
            }
        }
        Some(Ok(Node {
            descriptor,
            parent,
            children,
        }))
    }
}

/// The platform a descriptor is for, if it says.
pub fn platform_of(desc: &Descriptor) -> Option<Platform> {
    desc.platform().as_ref().map(Platform::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn index(media_type_field: Option<&str>) -> String {
        let mt = media_type_field
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10,
                "platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":20}}]}}"#
        )
    }

    fn manifest(media_type_field: Option<&str>) -> String {
        let mt = media_type_field
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}
              "config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{D1}","size":1}},
              "layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{D2}","size":2}},
                        {{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{D3}","size":3}}]}}"#
        )
    }

    #[test]
    fn children_of_index_are_its_manifests() {
        let Children::Index(m) = children(OCI_INDEX, index(Some(OCI_INDEX)).as_bytes()).unwrap()
        else {
            panic!("expected an index");
        };
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].digest().to_string(), D1);
        assert_eq!(platform_of(&m[0]).unwrap().to_string(), "linux/arm/v7");
        assert_eq!(platform_of(&m[1]), None);
    }

    #[test]
    fn children_of_docker_list_without_media_type_field() {
        let c = children(DOCKER_MANIFEST_LIST, index(None).as_bytes()).unwrap();
        assert_eq!(c.descriptors().len(), 2);
    }

    #[test]
    fn children_of_manifest_are_config_then_layers() {
        let c = children(DOCKER_MANIFEST, manifest(Some(DOCKER_MANIFEST)).as_bytes()).unwrap();
        let Children::Manifest { config, layers } = &c else {
            panic!("expected a manifest");
        };
        assert_eq!(config.digest().to_string(), D1);
        assert_eq!(layers.len(), 2);
        let all: Vec<String> = c
            .descriptors()
            .iter()
            .map(|d| d.digest().to_string())
            .collect();
        assert_eq!(all, [D1, D2, D3]);
    }

    #[test]
    fn children_of_manifest_without_layers_field_is_empty_layers() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_EMPTY}","digest":"{D1}","size":2}}}}"#
        );
        let c = children(OCI_MANIFEST, body.as_bytes()).unwrap();
        assert!(matches!(c, Children::Manifest { layers, .. } if layers.is_empty()));
    }

    #[test]
    fn children_of_leaf_types_is_none() {
        for mt in [OCI_CONFIG, OCI_LAYER_GZIP, "application/octet-stream"] {
            assert_eq!(children(mt, b"not json").unwrap(), Children::None, "{mt}");
        }
    }

    #[test]
    fn children_rejects_index_whose_media_type_field_says_manifest() {
        let err = children(OCI_INDEX, index(Some(OCI_MANIFEST)).as_bytes()).unwrap_err();
        assert_eq!(
            err,
            Error::MediaTypeMismatch {
                expected: OCI_INDEX.into(),
                found: OCI_MANIFEST.into()
            }
        );
    }

    #[test]
    fn children_rejects_manifest_body_served_as_index() {
        let err = children(OCI_INDEX, manifest(None).as_bytes()).unwrap_err();
        assert!(matches!(err, Error::MediaTypeMismatch { .. }), "{err}");
    }

    #[test]
    fn children_rejects_index_body_served_as_manifest() {
        let err = children(OCI_MANIFEST, index(None).as_bytes()).unwrap_err();
        assert!(matches!(err, Error::MediaTypeMismatch { .. }), "{err}");
        let err = children(OCI_MANIFEST, index(Some(OCI_INDEX)).as_bytes()).unwrap_err();
        assert!(matches!(err, Error::MediaTypeMismatch { .. }), "{err}");
    }

    #[test]
    fn children_accepts_docker_list_labelled_oci_index() {
        // Both are indexes; containerd only refuses index/manifest confusion.
        let c = children(OCI_INDEX, index(Some(DOCKER_MANIFEST_LIST)).as_bytes()).unwrap();
        assert_eq!(c.descriptors().len(), 2);
    }

    #[test]
    fn children_rejects_schema1() {
        let body = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(
            children(DOCKER_SCHEMA1_MANIFEST, body),
            Err(Error::Schema1Unsupported)
        );
        assert_eq!(
            children(DOCKER_MANIFEST, body),
            Err(Error::Schema1Unsupported)
        );
    }

    #[test]
    fn children_reports_invalid_json() {
        let err = children(OCI_MANIFEST, b"{").unwrap_err();
        assert!(
            matches!(err, Error::InvalidManifest { ref media_type, .. } if media_type == OCI_MANIFEST)
        );
        let err = children(OCI_MANIFEST, br#"{"schemaVersion":2,"layers":[]}"#).unwrap_err();
        assert!(matches!(err, Error::InvalidManifest { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn children_rejects_bad_descriptor_digest() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"../x","size":1}}]}}"#
        );
        assert!(matches!(
            children(OCI_INDEX, body.as_bytes()),
            Err(Error::InvalidManifest { .. })
        ));
    }

    #[test]
    fn detect_uses_declared_media_type() {
        assert_eq!(
            detect_media_type(manifest(Some(DOCKER_MANIFEST)).as_bytes()).as_deref(),
            Some(DOCKER_MANIFEST)
        );
        assert_eq!(
            detect_media_type(index(Some(DOCKER_MANIFEST_LIST)).as_bytes()).as_deref(),
            Some(DOCKER_MANIFEST_LIST)
        );
    }

    #[test]
    fn detect_infers_from_shape() {
        assert_eq!(
            detect_media_type(index(None).as_bytes()).as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(
            detect_media_type(manifest(None).as_bytes()).as_deref(),
            Some(OCI_MANIFEST)
        );
    }

    #[test]
    fn detect_schema1() {
        let plain = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        let signed = br#"{"schemaVersion":1,"fsLayers":[],"signatures":[]}"#;
        assert_eq!(
            detect_media_type(plain).as_deref(),
            Some(DOCKER_SCHEMA1_MANIFEST)
        );
        assert_eq!(
            detect_media_type(signed).as_deref(),
            Some(DOCKER_SCHEMA1_SIGNED_MANIFEST)
        );
    }

    #[test]
    fn detect_refuses_contradictions_and_garbage() {
        assert_eq!(
            detect_media_type(index(Some(OCI_MANIFEST)).as_bytes()),
            None
        );
        assert_eq!(detect_media_type(br#"{"manifests":[],"layers":[]}"#), None);
        assert_eq!(detect_media_type(b"{}"), None);
        assert_eq!(detect_media_type(b"[1,2]"), None);
        assert_eq!(detect_media_type(b"\x00\x01"), None);
    }

    /// A store of bodies by digest for walks, and a descriptor of each.
    struct Tree {
        bodies: std::collections::HashMap<Digest, Vec<u8>>,
    }

    impl Tree {
        fn new() -> Tree {
            Tree {
                bodies: std::collections::HashMap::new(),
            }
        }

        fn put(&mut self, media_type: &str, body: serde_json::Value) -> Descriptor {
            let bytes = serde_json::to_vec(&body).unwrap();
            let digest = crate::sha256_digest(&bytes);
            self.bodies.insert(digest.clone(), bytes.clone());
            Descriptor::new(media_type.into(), bytes.len() as u64, digest)
        }

        fn read(&self, descriptor: &Descriptor) -> Result<Option<Vec<u8>>> {
            Ok(self.bodies.get(descriptor.digest()).cloned())
        }
    }

    fn leaf(media_type: &str, name: &[u8]) -> Descriptor {
        Descriptor::new(media_type.into(), 1, crate::sha256_digest(name))
    }

    fn image(tree: &mut Tree, config: &Descriptor, layers: &[&Descriptor]) -> Descriptor {
        tree.put(
            OCI_MANIFEST,
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": config, "layers": layers}),
        )
    }

    #[test]
    fn walk_visits_each_digest_once_depth_first_with_parents() {
        let mut tree = Tree::new();
        let shared = leaf(OCI_LAYER_GZIP, b"shared");
        let config_a = leaf(OCI_CONFIG, b"a");
        let config_b = leaf(OCI_CONFIG, b"b");
        let a = image(&mut tree, &config_a, &[&shared]);
        let b = image(&mut tree, &config_b, &[&shared]);
        let root = tree.put(
            OCI_INDEX,
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [a, b]}),
        );
        let nodes: Vec<Node> = Walk::new(root.clone(), |d: &Descriptor| tree.read(d))
            .collect::<Result<_>>()
            .unwrap();
        let order: Vec<&Descriptor> = nodes.iter().map(|n| &n.descriptor).collect();
        assert_eq!(order, [&root, &b, &shared, &config_b, &a, &config_a]);
        assert_eq!(nodes[0].parent, None);
        assert_eq!(nodes[1].parent.as_ref(), Some(&root));
        assert!(nodes[1].is_index_child());
        assert_eq!(nodes[2].parent.as_ref(), Some(&b));
        assert!(!nodes[2].is_index_child());
        assert!(
            matches!(&nodes[1].children, Children::Manifest { config, .. } if *config == config_b)
        );
        assert_eq!(nodes[2].children, Children::None);
    }

    #[test]
    fn walk_treats_an_unread_body_as_a_leaf_and_reads_no_leaves() {
        let mut tree = Tree::new();
        let config = leaf(OCI_CONFIG, b"c");
        let present = image(&mut tree, &config, &[]);
        let absent = leaf(OCI_MANIFEST, b"absent manifest");
        let root = tree.put(
            OCI_INDEX,
            serde_json::json!({"schemaVersion": 2, "manifests": [absent, present]}),
        );
        let mut reads = Vec::new();
        let nodes: Vec<Node> = Walk::new(root, |d: &Descriptor| {
            reads.push(d.digest().clone());
            tree.read(d)
        })
        .collect::<Result<_>>()
        .unwrap();
        assert_eq!(nodes.len(), 4);
        let absent_node = nodes.iter().find(|n| n.descriptor == absent).unwrap();
        assert_eq!(absent_node.children, Children::None);
        assert!(!reads.contains(config.digest()), "configs are never read");
        assert_eq!(reads.len(), 3);
    }

    #[test]
    fn walk_yields_a_bad_body_as_an_error_and_goes_on() {
        let mut tree = Tree::new();
        let bad = tree.put(OCI_MANIFEST, serde_json::json!({"manifests": []}));
        let config = leaf(OCI_CONFIG, b"c");
        let good = image(&mut tree, &config, &[]);
        let root = tree.put(
            OCI_INDEX,
            serde_json::json!({"schemaVersion": 2, "manifests": [good, bad]}),
        );
        let results: Vec<Result<Node>> = Walk::new(root, |d: &Descriptor| tree.read(d)).collect();
        assert_eq!(results.len(), 4);
        assert!(matches!(results[1], Err(Error::MediaTypeMismatch { .. })));
        assert!(results.iter().filter(|r| r.is_ok()).count() == 3);
    }

    #[test]
    fn walk_goes_down_only_to_followed_children() {
        let mut tree = Tree::new();
        let config_a = leaf(OCI_CONFIG, b"a");
        let config_b = leaf(OCI_CONFIG, b"b");
        let a = image(&mut tree, &config_a, &[]);
        let b = image(&mut tree, &config_b, &[]);
        let root = tree.put(
            OCI_INDEX,
            serde_json::json!({"schemaVersion": 2, "manifests": [a, b]}),
        );
        let nodes: Vec<Node> = Walk::new(root.clone(), |d: &Descriptor| tree.read(d))
            .follow(|parent: &Descriptor, child: &Descriptor| parent != &root || child == &a)
            .collect::<Result<_>>()
            .unwrap();
        let order: Vec<&Descriptor> = nodes.iter().map(|n| &n.descriptor).collect();
        assert_eq!(order, [&root, &a, &config_a]);
        assert_eq!(nodes[0].children.descriptors(), [&a, &b]);
    }
}
