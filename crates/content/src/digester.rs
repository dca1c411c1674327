//! Incremental hashing for the digest algorithms the store supports.

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::error::{Error, Result};

/// A running hash whose algorithm follows the digest the caller expects.
#[derive(Clone)]
pub(crate) enum Digester {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Digester {
    pub(crate) fn new(algorithm: &DigestAlgorithm) -> Result<Self> {
        match algorithm {
            DigestAlgorithm::Sha256 => Ok(Self::Sha256(Sha256::new())),
            DigestAlgorithm::Sha384 => Ok(Self::Sha384(Sha384::new())),
            DigestAlgorithm::Sha512 => Ok(Self::Sha512(Sha512::new())),
            other => Err(Error::UnsupportedAlgorithm(other.to_string())),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha384(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    pub(crate) fn finalize(self) -> Digest {
        let (algorithm, hex) = match self {
            Self::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            Self::Sha384(h) => ("sha384", hex::encode(h.finalize())),
            Self::Sha512(h) => ("sha512", hex::encode(h.finalize())),
        };
        // Lowercase hex of the right length always parses, so this cannot fail.
        Digest::try_from(format!("{algorithm}:{hex}")).expect("hash output is a valid digest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_is_the_well_known_value() {
        let d = Digester::new(&DigestAlgorithm::Sha256).unwrap().finalize();
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sha512_digest_has_the_sha512_algorithm() {
        let mut h = Digester::new(&DigestAlgorithm::Sha512).unwrap();
        h.update(b"abc");
        let d = h.finalize();
        assert_eq!(d.algorithm(), &DigestAlgorithm::Sha512);
        assert!(d.digest().starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn unknown_algorithm_is_rejected() {
        let err = Digester::new(&DigestAlgorithm::from("blake3"))
            .err()
            .unwrap();
        assert!(matches!(err, Error::UnsupportedAlgorithm(a) if a == "blake3"));
    }
}
