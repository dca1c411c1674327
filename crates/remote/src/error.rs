//! The crate's one error type, and the mapping from transport failures and
//! registry responses onto it.
//!
//! Variants name causes (not found, unauthorized, TLS, …) so the engine and
//! the CLI can react to them without parsing messages.

use std::time::Duration;

use serde::Deserialize;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of a registry's `{"errors":[…]}` body (OCI distribution spec).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegistryError {
    /// The error code, e.g. `MANIFEST_UNKNOWN`.
    #[serde(default)]
    pub code: String,
    /// The human-readable message.
    #[serde(default)]
    pub message: String,
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.code, self.message),
            (false, true) => f.write_str(&self.code),
            _ => f.write_str(&self.message),
        }
    }
}

/// Errors from talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest, blob or repository does not exist.
    #[error("not found: {reference}")]
    NotFound {
        /// What was asked for, e.g. `127.0.0.1:5000/app:1.0`.
        reference: String,
    },
    /// The registry wants credentials that were missing or were refused.
    #[error("unauthorized: {detail} for {host}/{repository}")]
    Unauthorized {
        /// The registry host as written in the reference.
        host: String,
        /// The repository name.
        repository: String,
        /// Why, e.g. `authentication required`.
        detail: String,
    },
    /// The registry refused access (HTTP 403 or `DENIED`).
    #[error("denied: access to {reference} is forbidden")]
    Denied {
        /// What was asked for.
        reference: String,
    },
    /// Content did not hash to the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest that was asked for.
        expected: String,
        /// The digest the content or the registry claimed.
        actual: String,
    },
    /// Content had another length than its descriptor says.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The descriptor's size.
        expected: u64,
        /// The size received (possibly a lower bound when aborted early).
        actual: u64,
    },
    /// A manifest (or small blob) is larger than the configured bound.
    #[error("manifest too large: exceeds the limit of {limit} bytes")]
    ManifestTooLarge {
        /// The bound in bytes.
        limit: u64,
    },
    /// The TLS handshake failed, usually because the certificate is not trusted.
    #[error("tls error talking to {host}: {detail}")]
    Tls {
        /// The host.
        host: String,
        /// What went wrong.
        detail: String,
    },
    /// The connection could not be made or broke.
    #[error("connection to {host} failed: {detail}")]
    Connect {
        /// The host.
        host: String,
        /// What went wrong.
        detail: String,
    },
    /// The registry did not answer in time (connect, headers or between body chunks).
    #[error("timeout talking to {host}")]
    Timeout {
        /// The host.
        host: String,
    },
    /// Any other unexpected HTTP status, with the registry's error list.
    #[error("registry returned status {status}{}", fmt_errors(errors))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The parsed `{"errors":[…]}` entries, if any.
        errors: Vec<RegistryError>,
    },
    /// HTTP 429 (or `TOOMANYREQUESTS`).
    #[error("too many requests to {host}")]
    TooManyRequests {
        /// The host.
        host: String,
        /// The `Retry-After` the registry asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The registry's response broke the protocol.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// A `WWW-Authenticate` challenge could not be used.
    #[error("invalid authentication challenge: {0}")]
    InvalidChallenge(String),
    /// docker `config.json` or a credential helper failed.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A caller-supplied value is invalid (a digest string, a CA file, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn fmt_errors(errors: &[RegistryError]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!(": {}", parts.join("; "))
}

impl Error {
    /// Whether trying the same request again may succeed: 5xx gateway-ish
    /// statuses, 429, connection failures and timeouts.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Status { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            Error::TooManyRequests { .. } | Error::Connect { .. } | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The delay the registry asked for before a retry (`Retry-After` on a
    /// 429), if it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::TooManyRequests { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the next configured host should be tried after this failure
    /// (the host is unreachable, slow to connect, fails TLS, or will not
    /// serve us: a mirror that wants credentials we lack is skipped).
    pub(crate) fn skips_host(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Timeout { .. }
                | Error::Tls { .. }
                | Error::Unauthorized { .. }
                | Error::Denied { .. }
        )
    }

    /// Whether the failure happened before any HTTP response arrived, so a
    /// loopback host may be retried over plain http.
    ///
    /// An untrusted certificate is excluded: that server does speak TLS, and
    /// the certificate error says more than an http attempt's failure would.
    pub(crate) fn is_transport_setup(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Tls { detail, .. } => !detail.starts_with(UNTRUSTED_CERTIFICATE),
            _ => false,
        }
    }
}

/// Parse a `{"errors":[…]}` body; anything else yields an empty list.
pub(crate) fn parse_registry_errors(body: &[u8]) -> Vec<RegistryError> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<RegistryError>,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

/// Turn a reqwest failure into a typed error, looking through the source
/// chain for TLS causes (reqwest only says "error sending request").
pub(crate) fn classify_reqwest(err: &reqwest::Error, host: &str) -> Error {
    if err.is_timeout() {
        return Error::Timeout {
            host: host.to_owned(),
        };
    }
    if let Some(detail) = tls_detail(err) {
        return Error::Tls {
            host: host.to_owned(),
            detail,
        };
    }
    if err.is_connect() || err.is_request() || err.is_body() || err.is_decode() {
        return Error::Connect {
            host: host.to_owned(),
            detail: innermost_message(err),
        };
    }
    Error::InvalidResponse(format!("{host}: {}", innermost_message(err)))
}

/// Walks the error chain. `io::Error` hides its payload from `source()`
/// (it returns the payload's source), so it is unwrapped with `get_ref`.
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            out.push(inner);
            next = inner.source();
            continue;
        }
        next = e.source();
    }
    out
}

/// How TLS details about certificate verification start.
const UNTRUSTED_CERTIFICATE: &str = "certificate is not trusted";

pub(crate) fn tls_detail(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let links = chain(err);
    for e in &links {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(reason) => {
                    format!("{UNTRUSTED_CERTIFICATE} ({reason:?})")
                }
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                    format!("handshake failed, is the server speaking TLS? ({tls})")
                }
                other => format!("handshake failed ({other})"),
            });
        }
    }
    for e in &links {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("certificate") || text.contains("UnknownIssuer") {
            return Some(format!("{UNTRUSTED_CERTIFICATE} ({text})"));
        }
        if lower.contains("tls") || lower.contains("handshake") {
            return Some(text);
        }
    }
    None
}

fn innermost_message(err: &(dyn std::error::Error + 'static)) -> String {
    chain(err).last().map(|e| e.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause() {
        let e = Error::Unauthorized {
            host: "127.0.0.1:5000".into(),
            repository: "app".into(),
            detail: "authentication required".into(),
        };
        assert_eq!(
            e.to_string(),
            "unauthorized: authentication required for 127.0.0.1:5000/app"
        );
        let e = Error::Tls {
            host: "h:443".into(),
            detail: "certificate is not trusted (UnknownIssuer)".into(),
        };
        assert!(e.to_string().contains("certificate"));
        let e = Error::Status {
            status: 500,
            errors: vec![RegistryError {
                code: "UNKNOWN".into(),
                message: "boom".into(),
            }],
        };
        assert_eq!(e.to_string(), "registry returned status 500: UNKNOWN: boom");
        assert_eq!(
            Error::Status {
                status: 418,
                errors: vec![]
            }
            .to_string(),
            "registry returned status 418"
        );
        assert_eq!(
            Error::NotFound {
                reference: "r/a:1".into()
            }
            .to_string(),
            "not found: r/a:1"
        );
        assert_eq!(
            Error::ManifestTooLarge { limit: 8 }.to_string(),
            "manifest too large: exceeds the limit of 8 bytes"
        );
        for e in [
            Error::Unauthorized {
                host: "h".into(),
                repository: "r".into(),
                detail: "d".into(),
            },
            Error::Credentials("bad".into()),
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn retryable() {
        assert!(
            Error::Status {
                status: 503,
                errors: vec![]
            }
            .is_retryable()
        );
        assert!(
            !Error::Status {
                status: 501,
                errors: vec![]
            }
            .is_retryable()
        );
        assert!(Error::Timeout { host: "h".into() }.is_retryable());
        assert!(
            !Error::NotFound {
                reference: "x".into()
            }
            .is_retryable()
        );
        assert!(
            !Error::Tls {
                host: "h".into(),
                detail: "d".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn parses_errors_body() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let errs = parse_registry_errors(body);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, "MANIFEST_UNKNOWN");
        assert!(parse_registry_errors(b"<html>").is_empty());
    }

    #[test]
    fn tls_classification_walks_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::other(inner);
        let detail = tls_detail(&io).expect("tls");
        assert!(detail.contains("certificate"), "{detail}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(tls_detail(&plain).is_none());
    }
}
