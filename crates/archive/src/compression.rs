//! Layer compression: detection by magic bytes and the matching decoder.
//!
//! The media type of a layer declares its compression, but the bytes are what
//! gets decoded, so both must agree: a registry or tool that mislabels a layer
//! is reported as [`Error::CompressionMismatch`] rather than silently guessed.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

use crate::error::{Error, Result};

/// The compression of a layer stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip (`…tar+gzip`, docker's `…rootfs.diff.tar.gzip`).
    Gzip,
    /// zstd (`…tar+zstd`).
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The compression that a stream starting with `prefix` uses, by its magic
/// bytes (`1f 8b` gzip, `28 b5 2f fd` zstd); anything else is
/// [`Compression::None`]. Four bytes of prefix are enough.
pub fn detect_compression(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if prefix.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The first error the caller's reader returned, kept aside so that an error
/// surfacing from the decoder or the tar parser can be told apart from a
/// failure of the source itself (a network or disk problem is not a
/// malformed layer).
#[derive(Clone, Default)]
pub(crate) struct SourceError(Rc<RefCell<Option<io::Error>>>);

impl SourceError {
    /// The recorded source failure, if the source failed.
    pub(crate) fn take(&self) -> Option<io::Error> {
        self.0.borrow_mut().take()
    }
}

/// The caller's reader, recording its first error in a [`SourceError`].
struct Source<R> {
    inner: R,
    error: SourceError,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let mut slot = self.error.0.borrow_mut();
                if slot.is_none() {
                    *slot = Some(io::Error::new(e.kind(), e.to_string()));
                }
                Err(e)
            }
        }
    }
}

/// Checks the stream's magic bytes against `declared` and returns a reader of
/// the uncompressed stream, plus the handle that tells source failures apart.
pub(crate) fn decoder<'a, R: Read + 'a>(
    layer: R,
    declared: Compression,
) -> Result<(Box<dyn Read + 'a>, SourceError)> {
    let error = SourceError::default();
    let mut source = Source {
        inner: layer,
        error: error.clone(),
    };
    let mut prefix = Vec::with_capacity(ZSTD_MAGIC.len());
    // A reader may hand out fewer bytes than asked for; loop until the magic
    // is complete or the stream ends, so detection never depends on chunking.
    let mut buf = [0u8; ZSTD_MAGIC.len()];
    while prefix.len() < ZSTD_MAGIC.len() {
        match source.read(&mut buf[..ZSTD_MAGIC.len() - prefix.len()]) {
            Ok(0) => break,
            Ok(n) => prefix.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Read(e)),
        }
    }
    let detected = detect_compression(&prefix);
    if detected != declared {
        return Err(Error::CompressionMismatch { declared, detected });
    }
    let stream = io::Cursor::new(prefix).chain(source);
    let reader: Box<dyn Read + 'a> = match detected {
        Compression::None => Box::new(stream),
        // Concatenated gzip members are legal and Go's reader (docker,
        // containerd) accepts them, so decode all members.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|e| Error::malformed(format!("zstd: {e}")))?,
        ),
    };
    Ok((reader, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(detect_compression(&ZSTD_MAGIC), Compression::Zstd);
        assert_eq!(detect_compression(b"etc/"), Compression::None);
        assert_eq!(detect_compression(&[]), Compression::None);
        assert_eq!(detect_compression(&[0x1f]), Compression::None);
        assert_eq!(detect_compression(&ZSTD_MAGIC[..3]), Compression::None);
    }

    /// A reader that hands out one byte per call, to prove detection loops.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn detection_survives_short_reads() {
        let mut bytes = ZSTD_MAGIC.to_vec();
        bytes.extend_from_slice(b"rest");
        assert!(matches!(
            decoder(Trickle(&bytes), Compression::None),
            Err(Error::CompressionMismatch {
                declared: Compression::None,
                detected: Compression::Zstd
            })
        ));
        let (mut r, _) = decoder(Trickle(b"plain bytes"), Compression::None).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"plain bytes");
    }
}
