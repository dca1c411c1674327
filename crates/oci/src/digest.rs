//! Content digests: strict parsing, streaming hashing and verification.
//!
//! The [`Digest`] type itself comes from `oci-spec`; this module adds what a
//! pull needs on top of it: hashing bytes as they stream by, and a parser that
//! only accepts the algorithms we can actually verify.

use std::io;

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::error::{DigestErrorKind, Error, Result};

/// Hashes bytes as they arrive and yields the [`Digest`] at the end: the one
/// hasher of hoist, for blobs, manifests, diffIDs, chainIDs and path-safe
/// names alike.
///
/// It is also an [`io::Write`], so `io::copy` can feed it.
///
/// ```
/// use hoist_oci::digest::{Digester, sha256_digest};
///
/// let mut d = Digester::new();
/// d.update(b"hello ");
/// d.update(b"world");
/// assert_eq!(d.finalize(), sha256_digest(b"hello world"));
///
/// let mut w = Digester::new();
/// std::io::copy(&mut &b"hello world"[..], &mut w)?;
/// assert_eq!(w.finalize(), sha256_digest(b"hello world"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Digester {
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Default for Digester {
    fn default() -> Self {
        Self::new()
    }
}

impl Digester {
    /// A sha256 digester, the algorithm of nearly all content in the wild.
    pub fn new() -> Self {
        Self {
            state: State::Sha256(Sha256::new()),
        }
    }

    /// A digester for `algorithm`: sha256, sha384 or sha512.
    pub fn with_algorithm(algorithm: &DigestAlgorithm) -> Result<Self> {
        let state = match algorithm {
            DigestAlgorithm::Sha256 => State::Sha256(Sha256::new()),
            DigestAlgorithm::Sha384 => State::Sha384(Sha384::new()),
            DigestAlgorithm::Sha512 => State::Sha512(Sha512::new()),
            other => {
                return Err(Error::UnsupportedDigestAlgorithm {
                    algorithm: other.to_string(),
                });
            }
        };
        Ok(Self { state })
    }

    /// A digester for the algorithm of `expected`, so content can be checked
    /// against the digest it was addressed by.
    pub fn for_algorithm(expected: &Digest) -> Result<Self> {
        Self::with_algorithm(expected.algorithm())
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Sha256(h) => h.update(bytes),
            State::Sha384(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> Digest {
        let (algorithm, hex) = match self.state {
            State::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            State::Sha384(h) => ("sha384", hex::encode(h.finalize())),
            State::Sha512(h) => ("sha512", hex::encode(h.finalize())),
        };
        Digest::try_from(format!("{algorithm}:{hex}"))
            .expect("lowercase hex of a hash output is always a well formed digest")
    }
}

impl io::Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sha256 digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    let mut d = Digester::new();
    d.update(bytes);
    d.finalize()
}

/// The digest of `bytes` under `algorithm` (sha256, sha384 or sha512).
pub fn digest_with(algorithm: &DigestAlgorithm, bytes: &[u8]) -> Result<Digest> {
    let mut d = Digester::with_algorithm(algorithm)?;
    d.update(bytes);
    Ok(d.finalize())
}

/// The hex sha256 of `key`: a fixed-length, path-safe file name for any
/// string (ingest directories, lock files).
pub fn sha256_hex(key: &[u8]) -> String {
    sha256_digest(key).digest().to_owned()
}

/// The chainID of each prefix of a stack of diffIDs, bottom first, as the
/// OCI image spec defines it: the first diffID, then
/// `sha256("<parent chainID> <diffID>")`.
///
/// ```
/// use hoist_oci::digest::{chain_ids, sha256_digest};
///
/// let (a, b) = (sha256_digest(b"a"), sha256_digest(b"b"));
/// let chain = chain_ids(&[a.clone(), b.clone()]);
/// assert_eq!(chain[0], a);
/// assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
/// ```
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chain: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

/// Checks that `bytes` hash to `expected`, using `expected`'s algorithm.
pub fn verify(expected: &Digest, bytes: &[u8]) -> Result<()> {
    let actual = digest_with(expected.algorithm(), bytes)?;
    if &actual == expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            expected: expected.clone(),
            actual,
        })
    }
}

/// The encoded (hex) part of a digest, e.g. the file name under `blobs/sha256/`.
pub fn hex_of(d: &Digest) -> &str {
    d.digest()
}

/// Parses `algorithm:hex`, accepting only sha256 (64 hex) and sha512 (128 hex)
/// in lowercase, unlike `Digest::from_str`, which accepts any algorithm name.
///
/// Untrusted digests (from references, `Docker-Content-Digest` headers) should
/// go through here so that an unverifiable digest is refused up front.
pub fn parse_digest(s: &str) -> Result<Digest> {
    validate(s)
        .map(|()| Digest::try_from(s).expect("validated digests are accepted by oci-spec"))
        .map_err(|reason| Error::InvalidDigest {
            digest: s.to_owned(),
            reason,
        })
}

pub(crate) fn validate(s: &str) -> std::result::Result<(), DigestErrorKind> {
    let (algorithm, hex) = s.split_once(':').ok_or(DigestErrorKind::MissingAlgorithm)?;
    let expected = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(DigestErrorKind::UnsupportedAlgorithm),
    };
    if hex.len() != expected {
        return Err(DigestErrorKind::WrongLength {
            expected,
            found: hex.len(),
        });
    }
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DigestErrorKind::NotLowercaseHex);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_input_is_the_well_known_value() {
        assert_eq!(sha256_digest(b"").to_string(), EMPTY_SHA256);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut d = Digester::new();
        for chunk in b"abcdefghij".chunks(3) {
            d.update(chunk);
        }
        assert_eq!(d.finalize(), sha256_digest(b"abcdefghij"));
    }

    #[test]
    fn verify_accepts_matching_bytes() {
        let d = sha256_digest(b"{}");
        assert_eq!(verify(&d, b"{}"), Ok(()));
    }

    #[test]
    fn verify_reports_expected_and_actual_on_mismatch() {
        let expected = sha256_digest(b"a");
        let err = verify(&expected, b"b").unwrap_err();
        assert_eq!(
            err,
            Error::DigestMismatch {
                expected,
                actual: sha256_digest(b"b")
            }
        );
    }

    #[test]
    fn verify_supports_sha512() {
        let mut d =
            Digester::for_algorithm(&parse_digest(&format!("sha512:{}", "0".repeat(128))).unwrap())
                .unwrap();
        d.update(b"");
        let digest = d.finalize();
        assert_eq!(digest.algorithm(), &DigestAlgorithm::Sha512);
        assert!(digest.to_string().starts_with("sha512:cf83e1357eefb8bd"));
        assert_eq!(verify(&digest, b""), Ok(()));
    }

    #[test]
    fn sha384_is_hashed_as_the_content_store_accepts_it() {
        let d = digest_with(&DigestAlgorithm::Sha384, b"abc").unwrap();
        assert_eq!(d.algorithm(), &DigestAlgorithm::Sha384);
        assert!(d.digest().starts_with("cb00753f45a35e8b"));
        assert_eq!(verify(&d, b"abc"), Ok(()));
    }

    #[test]
    fn for_algorithm_rejects_an_unknown_algorithm() {
        let d = Digest::try_from(format!("blake3:{}", "a".repeat(64))).unwrap();
        assert_eq!(
            Digester::for_algorithm(&d).unwrap_err(),
            Error::UnsupportedDigestAlgorithm {
                algorithm: "blake3".into()
            }
        );
    }

    #[test]
    fn writing_equals_updating() {
        use std::io::Write as _;
        let mut w = Digester::with_algorithm(&DigestAlgorithm::Sha512).unwrap();
        w.write_all(b"abc").unwrap();
        w.flush().unwrap();
        assert_eq!(
            w.finalize(),
            digest_with(&DigestAlgorithm::Sha512, b"abc").unwrap()
        );
    }

    #[test]
    fn sha256_hex_is_the_bare_hex() {
        assert_eq!(sha256_hex(b""), &EMPTY_SHA256[7..]);
    }

    #[test]
    fn hex_of_strips_the_algorithm() {
        assert_eq!(hex_of(&sha256_digest(b"")), &EMPTY_SHA256[7..]);
    }

    #[test]
    fn parse_digest_names_the_cause() {
        let cases = [
            ("abc", DigestErrorKind::MissingAlgorithm),
            ("md5:abc", DigestErrorKind::UnsupportedAlgorithm),
            (
                "sha256:abc",
                DigestErrorKind::WrongLength {
                    expected: 64,
                    found: 3,
                },
            ),
            (
                &format!("sha256:{}", "A".repeat(64)),
                DigestErrorKind::NotLowercaseHex,
            ),
            (
                &format!("sha256:{}", "g".repeat(64)),
                DigestErrorKind::NotLowercaseHex,
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                parse_digest(input).unwrap_err(),
                Error::InvalidDigest {
                    digest: input.to_owned(),
                    reason
                },
                "{input}"
            );
        }
    }

    #[test]
    fn digest_mismatch_message_is_one_line() {
        let err = verify(&sha256_digest(b"a"), b"b").unwrap_err().to_string();
        assert!(err.starts_with("digest mismatch: expected sha256:"));
        assert!(!err.contains('\n'));
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        // Vectors computed outside hoist, with coreutils:
        //   a=$(printf a | sha256sum); ab=$(printf "sha256:$a sha256:$b" | sha256sum); …
        let digest = |hex: &str| parse_digest(&format!("sha256:{hex}")).unwrap();
        let a = digest("ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
        let b = digest("3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d");
        let c = digest("2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6");
        let chain = chain_ids(&[a.clone(), b, c]);
        assert_eq!(chain[0], a);
        assert_eq!(
            chain[1],
            digest("51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676")
        );
        assert_eq!(
            chain[2],
            digest("2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106")
        );
    }
}
