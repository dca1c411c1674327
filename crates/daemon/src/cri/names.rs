//! The names a CRI image goes by, as containerd's CRI plugin gives them.
//!
//! A pull records the image under three names, each an image record in the
//! metadata store pointing at the same root descriptor: its **id**
//! (`sha256:<config digest hex>`, what the kubelet keeps), its **repo tag**
//! (`docker.io/library/busybox:latest`, when the reference has a tag and no
//! digest) and its **repo digest** (`docker.io/library/busybox@sha256:<root
//! digest>`, except for a converted schema 1 image, whose root digest is not
//! the registry's). Listing reads any record name back into one of those
//! kinds ([`RecordName`]), so names given by `hoist pull` or `hoist images
//! tag` show up too.

use hoist_oci::{Digest, Reference};

/// The names [`PullImage`](super::proto::image_service_server::ImageService::pull_image)
/// records for one pulled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PulledNames {
    /// `sha256:<hex>` of the image config: the image id.
    pub(crate) id: String,
    /// `domain/repository:tag`, if the reference had a tag and no digest.
    pub(crate) repo_tag: Option<String>,
    /// `domain/repository@digest`, unless the image was converted from
    /// schema 1.
    pub(crate) repo_digest: Option<String>,
}

impl PulledNames {
    /// The names of a pull of `reference` (as [`canonical`] leaves it) that
    /// found `target` and the config `config`; `schema1` when the root was a
    /// schema 1 manifest (containerd's `GetRepoDigestAndTag`).
    pub(crate) fn new(
        reference: &Reference,
        config: &Digest,
        target: &Digest,
        schema1: bool,
    ) -> PulledNames {
        let repo_tag = match (reference.tag(), reference.digest()) {
            (Some(_), None) => Some(reference.to_string()),
            _ => None,
        };
        let repo_digest = match reference.digest() {
            Some(digest) => Some(format!("{}@{digest}", reference.name())),
            None if schema1 => None,
            None => Some(format!("{}@{target}", reference.name())),
        };
        PulledNames {
            id: config.to_string(),
            repo_tag,
            repo_digest,
        }
    }

    /// Every name, id first.
    pub(crate) fn all(&self) -> Vec<&str> {
        std::iter::once(self.id.as_str())
            .chain(self.repo_tag.as_deref())
            .chain(self.repo_digest.as_deref())
            .collect()
    }
}

/// The reference as containerd's `ParseDockerRef` leaves it: normalized,
/// and with the tag dropped when there is a digest (`busybox:1@sha256:…`
/// is `docker.io/library/busybox@sha256:…`), so what is pulled and
/// recorded is what the digest names.
pub(crate) fn canonical(reference: &Reference) -> String {
    match reference.digest() {
        Some(digest) => format!("{}@{digest}", reference.name()),
        None => reference.to_string(),
    }
}

/// What an image record's name is, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordName {
    /// An image id, `sha256:<64 hex>`.
    Id,
    /// A repo tag, normalized.
    Tag(String),
    /// A repo digest, normalized (`domain/repository@digest`).
    Digest(String),
    /// Anything else (not a reference).
    Other,
}

/// Reads a record name: an id, a tag or a digest reference.
pub(crate) fn classify(name: &str) -> RecordName {
    if is_image_id(name) {
        return RecordName::Id;
    }
    match Reference::parse(name) {
        Ok(reference) => match reference.digest() {
            Some(_) => RecordName::Digest(canonical(&reference)),
            None => RecordName::Tag(reference.to_string()),
        },
        Err(_) => RecordName::Other,
    }
}

/// Whether `name` is `sha256:` and 64 lowercase hex digits.
pub(crate) fn is_image_id(name: &str) -> bool {
    name.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(is_lower_hex))
}

/// Whether `query` could abbreviate an image id: lowercase hex, with or
/// without `sha256:`. Returns the hex part.
pub(crate) fn id_prefix(query: &str) -> Option<&str> {
    let hex = query.strip_prefix("sha256:").unwrap_or(query);
    (!hex.is_empty() && hex.len() <= 64 && hex.bytes().all(is_lower_hex)).then_some(hex)
}

fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const ROOT: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn digest(text: &str) -> Digest {
        Digest::try_from(text).unwrap()
    }

    fn names_of(reference: &str, schema1: bool) -> PulledNames {
        let reference = Reference::parse(reference).unwrap();
        PulledNames::new(&reference, &digest(CONFIG), &digest(ROOT), schema1)
    }

    #[test]
    fn a_tag_pull_records_id_tag_and_digest() {
        let names = names_of("busybox", false);
        assert_eq!(names.id, CONFIG);
        assert_eq!(
            names.repo_tag.as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            names.repo_digest,
            Some(format!("docker.io/library/busybox@{ROOT}"))
        );
        assert_eq!(names.all().len(), 3);
    }

    #[test]
    fn a_digest_pull_has_no_tag_and_keeps_its_digest() {
        let pinned = format!("127.0.0.1:5000/app:1.0@{ROOT}");
        let reference = Reference::parse(&pinned).unwrap();
        assert_eq!(canonical(&reference), format!("127.0.0.1:5000/app@{ROOT}"));
        let names = names_of(&pinned, false);
        assert_eq!(names.repo_tag, None);
        assert_eq!(
            names.repo_digest,
            Some(format!("127.0.0.1:5000/app@{ROOT}"))
        );
    }

    #[test]
    fn a_converted_schema1_image_has_no_repo_digest() {
        let names = names_of("127.0.0.1:5000/old:1", true);
        assert_eq!(names.repo_digest, None);
        assert_eq!(names.all(), vec![CONFIG, "127.0.0.1:5000/old:1"]);
    }

    #[test]
    fn record_names_read_back() {
        assert_eq!(classify(CONFIG), RecordName::Id);
        assert_eq!(
            classify("alpine"),
            RecordName::Tag("docker.io/library/alpine:latest".into())
        );
        assert_eq!(
            classify(&format!("docker.io/library/alpine:3@{ROOT}")),
            RecordName::Digest(format!("docker.io/library/alpine@{ROOT}"))
        );
        assert_eq!(classify("Not A Reference"), RecordName::Other);
        // Not an id: wrong length, uppercase, other algorithm.
        assert!(!is_image_id("sha256:1111"));
        assert!(!is_image_id(&CONFIG.to_uppercase()));
        assert!(!is_image_id(&CONFIG.replace("sha256", "sha512")));
    }

    #[test]
    fn id_prefixes() {
        assert_eq!(id_prefix("sha256:abc"), Some("abc"));
        assert_eq!(id_prefix("abc123"), Some("abc123"));
        assert_eq!(id_prefix("busybox"), None);
        assert_eq!(id_prefix("sha256:"), None);
        assert_eq!(id_prefix(""), None);
    }
}
