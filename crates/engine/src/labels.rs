//! Label keys shared with containerd, so GC references mean the same thing.

/// Prefix of a GC edge from a blob to another blob (`…content.m.0`,
/// `…content.config`, `…content.l.3`): the child stays alive while the
/// parent does.
pub(crate) const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";

/// Prefix of a GC edge to a snapshot: `…snapshot.<snapshotter>`.
pub(crate) const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";

/// Label marking a blob or snapshot as a GC root.
pub(crate) const GC_ROOT: &str = "containerd.io/gc.root";

/// The GC label key from a config to the top snapshot of `snapshotter`.
pub(crate) fn snapshot_ref(snapshotter: &str) -> String {
    format!("{GC_REF_SNAPSHOT}{snapshotter}")
}

/// Prefix of the label recording which repository a blob came from, per
/// registry host: `containerd.io/distribution.source.<host>=<repository>`.
pub(crate) const DISTRIBUTION_SOURCE: &str = "containerd.io/distribution.source";

/// The GC label key for child number `index` of an index (a manifest).
pub(crate) fn manifest_ref(index: usize) -> String {
    format!("{GC_REF_CONTENT}.m.{index}")
}

/// The GC label key for a manifest's config.
pub(crate) fn config_ref() -> String {
    format!("{GC_REF_CONTENT}.config")
}

/// The GC label key for layer number `index` of a manifest.
pub(crate) fn layer_ref(index: usize) -> String {
    format!("{GC_REF_CONTENT}.l.{index}")
}

/// The prefix shared by every manifest → layer GC edge.
pub(crate) fn layer_ref_prefix() -> String {
    format!("{GC_REF_CONTENT}.l.")
}

/// The distribution-source label key for a registry host.
pub(crate) fn distribution_source(host: &str) -> String {
    format!("{DISTRIBUTION_SOURCE}.{host}")
}

/// Prefix of the image label naming, per snapshotter, the top chainIDs the
/// image was unpacked to (comma-separated, one per platform).
pub(crate) const UNPACKED: &str = "hoist.io/unpacked";

/// The image label key recording an unpack into `snapshotter`.
pub(crate) fn unpacked(snapshotter: &str) -> String {
    format!("{UNPACKED}.{snapshotter}")
}

/// Image label: the OCI 1.1 `artifactType` of the image's root manifest.
pub(crate) const ARTIFACT_TYPE: &str = "hoist.io/artifact-type";

/// Image label: the digest of the root manifest's OCI 1.1 `subject`.
pub(crate) const SUBJECT: &str = "hoist.io/subject";
