//! The crate's one error type and the small enums that name each cause.

use oci_spec::image::Digest;

/// Shorthand for results whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `hoist-oci`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An image reference did not parse.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// Which rule it broke.
        reason: ReferenceErrorKind,
    },
    /// A platform specifier such as `linux/arm64/v8` did not parse.
    #[error("invalid platform {specifier:?}: {reason}")]
    InvalidPlatform {
        /// The text as given.
        specifier: String,
        /// Which rule it broke.
        reason: PlatformErrorKind,
    },
    /// A digest string did not parse.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The text as given.
        digest: String,
        /// Which rule it broke.
        reason: DigestErrorKind,
    },
    /// Content was addressed with a digest algorithm this crate cannot compute.
    #[error("unsupported digest algorithm {algorithm:?}: only sha256 and sha512 can be verified")]
    UnsupportedDigestAlgorithm {
        /// The algorithm named by the digest.
        algorithm: String,
    },
    /// Content did not hash to the digest it was expected to have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content was addressed by.
        expected: Digest,
        /// The digest of the bytes actually received.
        actual: Digest,
    },
    /// A manifest or index body is not valid JSON of its kind.
    #[error("invalid {media_type} body: {reason}")]
    InvalidManifest {
        /// The media type the body was parsed as.
        media_type: String,
        /// What the parser objected to.
        reason: String,
    },
    /// A body's own shape or `mediaType` contradicts the media type of its descriptor.
    #[error("media type mismatch: descriptor says {expected}, body is {found}")]
    MediaTypeMismatch {
        /// The media type from the descriptor.
        expected: String,
        /// What the body turned out to be.
        found: String,
    },
    /// Docker schema 1 manifests are deprecated and not pulled.
    #[error("docker schema 1 manifests are not supported")]
    Schema1Unsupported,
}

/// Why a reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceErrorKind {
    /// The reference is the empty string.
    #[error("reference is empty")]
    Empty,
    /// The reference contains a space, tab, newline or other whitespace.
    #[error("reference must not contain whitespace")]
    Whitespace,
    /// The whole reference is a 64-character hex string, which docker reserves for image ids.
    #[error("cannot be a 64-character hexadecimal image id")]
    ImageId,
    /// The registry host or port is malformed.
    #[error("registry domain is invalid")]
    InvalidDomain,
    /// The repository path contains uppercase letters.
    #[error("repository name must be lowercase")]
    UppercaseRepository,
    /// A `/`-separated component of the repository path is malformed or empty.
    #[error("repository path components must match [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")]
    InvalidPathComponent,
    /// The tag does not match `[\w][\w.-]{0,127}`.
    #[error("tag must match [\\w][\\w.-]{{0,127}}")]
    InvalidTag,
    /// The digest after `@` is malformed.
    #[error("{0}")]
    InvalidDigest(DigestErrorKind),
    /// The normalized name (domain and path) is longer than 255 characters.
    #[error("repository name must not be longer than 255 characters")]
    NameTooLong,
}

/// Why a digest string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestErrorKind {
    /// There is no `algorithm:` prefix.
    #[error("digest must have the form <algorithm>:<hex>")]
    MissingAlgorithm,
    /// The algorithm is not one this crate accepts.
    #[error("digest algorithm must be sha256 or sha512")]
    UnsupportedAlgorithm,
    /// The hex part has the wrong length for its algorithm.
    #[error("digest must have {expected} hex characters, found {found}")]
    WrongLength {
        /// Length the algorithm requires.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// The hex part contains characters other than `0-9a-f`.
    #[error("digest must be lowercase hexadecimal")]
    NotLowercaseHex,
}

/// Why a platform specifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformErrorKind {
    /// The specifier is the empty string.
    #[error("platform is empty")]
    Empty,
    /// Wildcards such as `linux/*` are not supported (nor are they by containerd).
    #[error("wildcards are not supported")]
    Wildcard,
    /// A component is empty or has characters outside `[A-Za-z0-9_.-]`.
    #[error("platform components must match [A-Za-z0-9_.-]+")]
    InvalidComponent,
    /// More than `os/arch/variant` was given.
    #[error("platform must have at most three components: os/arch/variant")]
    TooManyComponents,
    /// A single component names neither a known OS nor a known architecture.
    #[error("unknown operating system or architecture")]
    UnknownOsOrArch,
}
