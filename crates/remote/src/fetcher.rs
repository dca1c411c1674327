//! Fetching known descriptors: manifests and small blobs into memory
//! (bounded and verified), layers as a [`BlobStream`] that can start at an
//! offset for resumed downloads.

use std::time::Duration;

use bytes::Bytes;
use oci_spec::image::Descriptor;
use reqwest::header::{ACCEPT, CONTENT_RANGE, HeaderMap, RANGE};
use reqwest::{Method, StatusCode};

use crate::error::{Error, Result, classify_reqwest};
use crate::resolver::{ApiRequest, Resolver, manifest_digest};
use crate::transport::{authority, with_retry};
use crate::{MANIFEST_ACCEPT, Repository};

/// A blob body arriving chunk by chunk.
///
/// The caller hashes what it writes; a failure mid-stream is not retried
/// here, the caller resumes with a new [`Resolver::fetch_blob`] at its offset.
pub struct BlobStream {
    response: reqwest::Response,
    offset: u64,
    total: Option<u64>,
    host: String,
    read_timeout: Duration,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: a storage redirect's query string is a credential.
        f.debug_struct("BlobStream")
            .field("host", &self.host)
            .field("offset", &self.offset)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// Where the stream really starts in the blob: the requested offset, or
    /// 0 when the server ignored the range and sent the whole blob.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The blob's full size as the server reported it, if it did.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The `host[:port]` the bytes come from: a mirror, the registry, or
    /// the storage a registry redirected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The next chunk, `None` at the end. Each wait is bounded by the
    /// read timeout, so a stalled server yields [`Error::Timeout`].
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match tokio::time::timeout(self.read_timeout, self.response.chunk()).await {
            Err(_) => Err(Error::Timeout {
                host: self.host.clone(),
            }),
            Ok(Err(e)) => Err(classify_reqwest(&e, &self.host)),
            Ok(Ok(chunk)) => Ok(chunk),
        }
    }
}

/// Parse `Content-Range: bytes <start>-<end>/<total|*>` into (start, total).
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

impl Resolver {
    /// Fetch a manifest or index by descriptor
    /// (`GET /v2/<name>/manifests/<digest>`), bounded by
    /// `max_manifest_size` and verified against the descriptor's size and
    /// digest.
    pub async fn fetch_manifest(&self, repo: &Repository, desc: &Descriptor) -> Result<Bytes> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, MANIFEST_ACCEPT.parse().expect("static header"));
        self.fetch_verified(repo, desc, "manifests", headers).await
    }

    /// Fetch a small blob such as an image config
    /// (`GET /v2/<name>/blobs/<digest>`) into memory, with the same bound
    /// and checks as [`fetch_manifest`](Self::fetch_manifest).
    pub async fn fetch_small_blob(&self, repo: &Repository, desc: &Descriptor) -> Result<Bytes> {
        self.fetch_verified(repo, desc, "blobs", HeaderMap::new())
            .await
    }

    async fn fetch_verified(
        &self,
        repo: &Repository,
        desc: &Descriptor,
        kind: &str,
        headers: HeaderMap,
    ) -> Result<Bytes> {
        let limit = self.options().max_manifest_size;
        if desc.size() > limit {
            return Err(Error::ManifestTooLarge { limit });
        }
        let digest = desc.digest().to_string();
        let reference = repo.reference(&digest);
        let path = format!("/v2/{}/{kind}/{digest}", repo.name);
        let policy = self.options().retry.clone();
        with_retry(&policy, &reference, || async {
            let req = ApiRequest::new(Method::GET, path.clone(), headers.clone(), &reference);
            let resp = self.send(repo, &req).await?;
            if !resp.status().is_success() {
                return Err(self.error_from(resp, repo, &reference).await);
            }
            let body = self.read_small(resp, limit, Some(desc.size())).await?;
            if body.len() as u64 != desc.size() {
                return Err(Error::SizeMismatch {
                    expected: desc.size(),
                    actual: body.len() as u64,
                });
            }
            let actual = manifest_digest(
                Some(desc.media_type().as_ref()),
                desc.digest().algorithm(),
                &body,
            )?;
            if actual != digest {
                return Err(Error::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            Ok(body)
        })
        .await
    }

    /// Stream a blob starting at `offset` (`Range: bytes=<offset>-` when
    /// non-zero), retrying failures to get a response under the retry
    /// policy. Check [`BlobStream::offset`]: a server may ignore the range
    /// and send the whole blob. The caller verifies the digest.
    pub async fn fetch_blob(
        &self,
        repo: &Repository,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        let policy = self.options().retry.clone();
        let reference = repo.reference(desc.digest().as_ref());
        with_retry(&policy, &reference, || {
            self.fetch_blob_once(repo, desc, offset)
        })
        .await
    }

    /// One attempt at [`Resolver::fetch_blob`], for a caller that spends the
    /// retry budget ([`Resolver::retry_policy`]) itself over a whole
    /// download, resumes included.
    pub async fn fetch_blob_once(
        &self,
        repo: &Repository,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        let digest = desc.digest().to_string();
        let reference = repo.reference(&digest);
        let path = format!("/v2/{}/blobs/{digest}", repo.name);
        let headers = range_from(offset);
        let read_timeout = self.options().read_timeout;
        let req = ApiRequest::new(Method::GET, path, headers, &reference);
        let resp = self.send(repo, &req).await?;
        match blob_stream(resp, offset, read_timeout, &reference)? {
            Ok(stream) => Ok(stream),
            Err(resp) => Err(self.error_from(resp, repo, &reference).await),
        }
    }

    /// The size of blob `digest` (`HEAD /v2/<name>/blobs/<digest>`), for
    /// formats that do not record it (Docker schema 1).
    pub async fn blob_size(
        &self,
        repo: &Repository,
        digest: &oci_spec::image::Digest,
    ) -> Result<u64> {
        let digest = digest.to_string();
        let reference = repo.reference(&digest);
        let path = format!("/v2/{}/blobs/{digest}", repo.name);
        let policy = self.options().retry.clone();
        with_retry(&policy, &reference, || async {
            let req = ApiRequest::new(Method::HEAD, path.clone(), HeaderMap::new(), &reference);
            let resp = self.send(repo, &req).await?;
            if !resp.status().is_success() {
                return Err(self.error_from(resp, repo, &reference).await);
            }
            resp.headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    Error::InvalidResponse(format!("{reference}: HEAD gave no Content-Length"))
                })
        })
        .await
    }

    /// Stream a non-distributable ("foreign") layer from the URLs its
    /// descriptor lists, trying each in turn. Only `https` URLs are used and
    /// no credentials are ever sent: those URLs point outside the registry,
    /// and sending the registry's credentials there is CVE-2020-15157
    /// (ContainerDrip). The caller verifies the digest.
    pub async fn fetch_foreign(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        let digest = desc.digest().to_string();
        let urls = desc.urls().as_deref().unwrap_or_default();
        let mut last_error = Error::InvalidArgument(format!(
            "foreign layer {digest} lists no https URL to fetch it from"
        ));
        let headers = range_from(offset);
        let read_timeout = self.options().read_timeout;
        for raw in urls {
            let url = match url::Url::parse(raw) {
                Ok(url) if url.scheme() == "https" => url,
                _ => {
                    tracing::warn!(%digest, "skipping a foreign layer URL that is not https");
                    continue;
                }
            };
            let host = authority(&url);
            let attempt = self
                .inner
                .transport
                .send(Method::GET, url, &headers, None)
                .await
                .and_then(
                    |resp| match blob_stream(resp, offset, read_timeout, &digest)? {
                        Ok(stream) => Ok(stream),
                        Err(resp) => Err(Error::Status {
                            status: resp.status().as_u16(),
                            errors: Vec::new(),
                        }),
                    },
                );
            match attempt {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    tracing::debug!(%digest, %host, %error, "foreign layer URL failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }
}

/// Turns a blob GET response into a stream starting at the offset the
/// server honoured, or hands a non-success response back for its error.
fn blob_stream(
    resp: reqwest::Response,
    offset: u64,
    read_timeout: Duration,
    reference: &str,
) -> Result<std::result::Result<BlobStream, reqwest::Response>> {
    let status = resp.status();
    let host = authority(resp.url());
    let (start, total) = match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range)
                .ok_or_else(|| {
                    Error::InvalidResponse(format!("{host}: 206 without a valid Content-Range"))
                })?;
            if range.0 != offset {
                return Err(Error::InvalidResponse(format!(
                    "{host}: asked for bytes from {offset}, got from {}",
                    range.0
                )));
            }
            range
        }
        s if s.is_success() => (0, resp.content_length()),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(Error::InvalidResponse(format!(
                "{host}: range from {offset} not satisfiable for {reference}"
            )));
        }
        _ => return Ok(Err(resp)),
    };
    if start != offset {
        tracing::debug!(%reference, offset, "server ignored the range, streaming from 0");
    }
    Ok(Ok(BlobStream {
        response: resp,
        offset: start,
        total,
        host,
        read_timeout,
    }))
}

/// The headers of a blob request resuming at `offset`: `Range: bytes=N-`,
/// or none from the start.
fn range_from(offset: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if offset > 0 {
        headers.insert(
            RANGE,
            format!("bytes={offset}-").parse().expect("ascii header"),
        );
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 5-1/9"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes */200"), None);
    }
}
