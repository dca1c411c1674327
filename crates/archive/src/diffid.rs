//! The diffID: the sha256 of the whole uncompressed layer stream.
//!
//! The hash covers every byte the decoder yields, including the tar's
//! end-of-archive blocks and any padding after them, because that is what
//! `sha256sum` of the uncompressed tar (and so the image config's `rootfs.diff_ids`)
//! covers. The applier therefore reads through [`HashingReader`] and drains it
//! after the tar parser stops.

use std::io::{self, Read};

use hoist_oci::Digester;
use oci_spec::image::Digest;

/// The diffID of a layer stream without applying it: decompresses
/// (checking `declared` against the magic bytes) and hashes everything.
/// Used where a diffID must be computed for a layer that has none recorded
/// yet, e.g. converting a Docker schema 1 manifest.
pub fn diff_id<R: Read>(layer: R, declared: crate::Compression) -> crate::Result<Digest> {
    let (decoded, source) = crate::compression::decoder(layer, declared)?;
    let mut hashing = HashingReader::new(decoded);
    hashing.drain().map_err(|e| match source.take() {
        Some(read) => crate::Error::Read(read),
        None => crate::Error::malformed(format!("decompressing: {e}")),
    })?;
    Ok(hashing.finish().0)
}

/// A reader that hashes and counts every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    digester: Digester,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            digester: Digester::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Reads the rest of the stream into the hash, returning how many bytes
    /// that was.
    pub(crate) fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    /// The `sha256:<hex>` digest of everything read, and the byte count.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (self.digester.finalize(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_everything_read_and_drained() {
        let mut r = HashingReader::new(&b"hello world"[..]);
        let mut head = [0u8; 5];
        r.read_exact(&mut head).unwrap();
        assert_eq!(r.count(), 5);
        assert_eq!(r.drain().unwrap(), 6);
        let (digest, n) = r.finish();
        assert_eq!(n, 11);
        assert_eq!(
            digest.to_string(),
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
