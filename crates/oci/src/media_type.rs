//! Media type names (OCI and Docker) and their classification into the kinds
//! of content a pull handles.

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, uncompressed tar.
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip-compressed tar.
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd-compressed tar.
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The OCI empty JSON blob (`{}`), used as config or layer by artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Docker manifest list, the Docker counterpart of [`OCI_INDEX`].
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image manifest, schema 1 (deprecated).
pub const DOCKER_SCHEMA1_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker image manifest, schema 1 with a JWS signature (deprecated).
pub const DOCKER_SCHEMA1_SIGNED_MANIFEST: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker container image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed tar; not in the Docker spec but produced in the wild.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker layer, zstd-compressed tar; not in the Docker spec, but containerd knows it.
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) layer, gzip-compressed tar.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker foreign (non-distributable) layer, uncompressed tar.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";

/// The `Accept` header for manifest requests, OCI first then Docker, as containerd sends it.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.v1+prettyjws, \
     application/vnd.docker.distribution.manifest.v1+json, \
     */*";

const ENCRYPTED_SUFFIX: &str = "+encrypted";

/// What a blob of some media type is, as far as a pull is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// An OCI index or Docker manifest list; its children are manifests.
    Index,
    /// An OCI or Docker schema 2 manifest; its children are a config and layers.
    Manifest,
    /// A Docker schema 1 manifest, which has no config blob.
    Schema1Manifest,
    /// An image configuration.
    Config,
    /// A layer, with how it is compressed (possibly also encrypted, see [`is_encrypted`]).
    Layer(Compression),
    /// Anything else, e.g. artifact payloads or [`OCI_EMPTY`].
    Unknown,
}

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Classifies a media type. Parameters (`; charset=utf-8`), which registries
/// may append in `Content-Type`, are ignored.
pub fn classify(media_type: &str) -> Kind {
    let mt = essence(media_type);
    match mt {
        OCI_INDEX | DOCKER_MANIFEST_LIST => return Kind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => return Kind::Manifest,
        DOCKER_SCHEMA1_MANIFEST | DOCKER_SCHEMA1_SIGNED_MANIFEST => return Kind::Schema1Manifest,
        OCI_CONFIG | DOCKER_CONFIG => return Kind::Config,
        _ => {}
    }
    let layer = mt.strip_suffix(ENCRYPTED_SUFFIX).unwrap_or(mt);
    match layer {
        OCI_LAYER | OCI_LAYER_NONDISTRIBUTABLE | DOCKER_LAYER | DOCKER_FOREIGN_LAYER => {
            Kind::Layer(Compression::None)
        }
        OCI_LAYER_GZIP
        | OCI_LAYER_NONDISTRIBUTABLE_GZIP
        | DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER_GZIP => Kind::Layer(Compression::Gzip),
        OCI_LAYER_ZSTD | OCI_LAYER_NONDISTRIBUTABLE_ZSTD | DOCKER_LAYER_ZSTD => {
            Kind::Layer(Compression::Zstd)
        }
        _ => Kind::Unknown,
    }
}

/// Whether the media type is an `ocicrypt` encrypted layer (`…+encrypted`).
pub fn is_encrypted(media_type: &str) -> bool {
    essence(media_type).ends_with(ENCRYPTED_SUFFIX)
}

/// Whether the layer may not be redistributed (OCI non-distributable or Docker
/// foreign layers), which registries commonly do not serve; containerd's rule.
pub fn is_nondistributable(media_type: &str) -> bool {
    let mt = essence(media_type);
    mt.starts_with("application/vnd.oci.image.layer.nondistributable.")
        || mt.starts_with("application/vnd.docker.image.rootfs.foreign.")
}

/// Whether blobs of this type are manifests or indexes, i.e. have children.
pub fn is_manifest_or_index(media_type: &str) -> bool {
    matches!(
        classify(media_type),
        Kind::Index | Kind::Manifest | Kind::Schema1Manifest
    )
}

/// The media type without parameters or surrounding whitespace.
fn essence(media_type: &str) -> &str {
    media_type
        .split_once(';')
        .map_or(media_type, |(mt, _)| mt)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_manifests_and_indexes() {
        assert_eq!(classify(OCI_INDEX), Kind::Index);
        assert_eq!(classify(DOCKER_MANIFEST_LIST), Kind::Index);
        assert_eq!(classify(OCI_MANIFEST), Kind::Manifest);
        assert_eq!(classify(DOCKER_MANIFEST), Kind::Manifest);
        assert_eq!(classify(DOCKER_SCHEMA1_MANIFEST), Kind::Schema1Manifest);
        assert_eq!(
            classify(DOCKER_SCHEMA1_SIGNED_MANIFEST),
            Kind::Schema1Manifest
        );
    }

    #[test]
    fn classify_configs() {
        assert_eq!(classify(OCI_CONFIG), Kind::Config);
        assert_eq!(classify(DOCKER_CONFIG), Kind::Config);
    }

    #[test]
    fn classify_layers_by_compression() {
        let cases = [
            (OCI_LAYER, Compression::None),
            (OCI_LAYER_GZIP, Compression::Gzip),
            (OCI_LAYER_ZSTD, Compression::Zstd),
            (OCI_LAYER_NONDISTRIBUTABLE, Compression::None),
            (OCI_LAYER_NONDISTRIBUTABLE_GZIP, Compression::Gzip),
            (OCI_LAYER_NONDISTRIBUTABLE_ZSTD, Compression::Zstd),
            (DOCKER_LAYER, Compression::None),
            (DOCKER_LAYER_GZIP, Compression::Gzip),
            (DOCKER_LAYER_ZSTD, Compression::Zstd),
            (DOCKER_FOREIGN_LAYER, Compression::None),
            (DOCKER_FOREIGN_LAYER_GZIP, Compression::Gzip),
        ];
        for (mt, c) in cases {
            assert_eq!(classify(mt), Kind::Layer(c), "{mt}");
        }
    }

    #[test]
    fn classify_encrypted_layer_is_still_a_layer() {
        let mt = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
        assert_eq!(classify(mt), Kind::Layer(Compression::Gzip));
        assert!(is_encrypted(mt));
        assert!(!is_encrypted(OCI_LAYER_GZIP));
    }

    #[test]
    fn classify_ignores_parameters() {
        assert_eq!(
            classify("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
            Kind::Manifest
        );
    }

    #[test]
    fn classify_unknown_types() {
        for mt in [
            OCI_EMPTY,
            "application/json",
            "",
            "application/vnd.in-toto+json",
        ] {
            assert_eq!(classify(mt), Kind::Unknown, "{mt}");
        }
    }

    #[test]
    fn nondistributable_covers_oci_and_docker_foreign_layers() {
        for mt in [
            OCI_LAYER_NONDISTRIBUTABLE,
            OCI_LAYER_NONDISTRIBUTABLE_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
            DOCKER_FOREIGN_LAYER_GZIP,
            DOCKER_FOREIGN_LAYER,
        ] {
            assert!(is_nondistributable(mt), "{mt}");
        }
        assert!(!is_nondistributable(OCI_LAYER_GZIP));
        assert!(!is_nondistributable(DOCKER_LAYER_GZIP));
    }

    #[test]
    fn manifest_accept_lists_oci_first_then_docker_then_wildcard() {
        let want = [
            OCI_INDEX,
            OCI_MANIFEST,
            DOCKER_MANIFEST_LIST,
            DOCKER_MANIFEST,
            DOCKER_SCHEMA1_SIGNED_MANIFEST,
            DOCKER_SCHEMA1_MANIFEST,
            "*/*",
        ]
        .join(", ");
        assert_eq!(MANIFEST_ACCEPT, want);
    }

    #[test]
    fn constants_agree_with_oci_spec() {
        use oci_spec::image::MediaType;
        assert_eq!(MediaType::ImageIndex.as_ref(), OCI_INDEX);
        assert_eq!(MediaType::ImageManifest.as_ref(), OCI_MANIFEST);
        assert_eq!(MediaType::ImageConfig.as_ref(), OCI_CONFIG);
        assert_eq!(MediaType::ImageLayerZstd.as_ref(), OCI_LAYER_ZSTD);
        assert_eq!(MediaType::EmptyJSON.as_ref(), OCI_EMPTY);
        assert_eq!(
            MediaType::ImageLayerNonDistributableGzip.as_ref(),
            OCI_LAYER_NONDISTRIBUTABLE_GZIP
        );
    }
}
