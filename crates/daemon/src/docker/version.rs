//! API version negotiation, as moby's version middleware does it.
//!
//! Every path is served bare and under `/v<version>/`. The docker CLI asks
//! `/_ping` for `Api-Version`, then uses the lower of that and its own
//! (docker CLI 28.2 speaks 1.50, 28.5 speaks 1.51). A request for a version
//! above [`MAX`] or below [`MIN`] is refused with moby's words; a bare path
//! means [`MAX`].

use std::cmp::Ordering;

use super::error::ApiError;

/// The highest API version served (moby 28.5's).
pub const MAX: &str = "1.51";

/// The lowest API version served: the image API hoistd implements has the
/// shape it took in 1.41 (Docker 20.10).
pub const MIN: &str = "1.41";

/// moby's `versions.compare`: dot-separated numbers compared in order, a
/// missing or non-numeric part counting as 0.
pub fn compare(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

/// The API version of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    major: u64,
    minor: u64,
}

impl ApiVersion {
    /// `major.minor`.
    pub const fn new(major: u64, minor: u64) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// Whether this is `major.minor` or later.
    pub fn at_least(self, major: u64, minor: u64) -> bool {
        self >= ApiVersion::new(major, minor)
    }

    fn parse(text: &str) -> ApiVersion {
        let mut parts = text.split('.').map(|p| p.parse().unwrap_or(0));
        ApiVersion {
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
        }
    }
}

/// Splits `/v1.50/images/json` into `Some("1.50")` and `/images/json`;
/// a path without a version prefix comes back whole.
pub fn split_prefix(path: &str) -> (Option<&str>, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, path);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return (None, path);
    }
    (Some(version), &rest[end..])
}

/// The version a request asked for, or moby's refusal.
pub fn negotiate(requested: Option<&str>) -> Result<ApiVersion, ApiError> {
    let version = requested.unwrap_or(MAX);
    if compare(version, MIN) == Ordering::Less {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {MIN}, please upgrade your client to a newer version"
        )));
    }
    if compare(version, MAX) == Ordering::Greater {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {MAX}"
        )));
    }
    Ok(ApiVersion::parse(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare("1.50", "1.9"), Ordering::Greater);
        assert_eq!(compare("1.41", "1.41.0"), Ordering::Equal);
        assert_eq!(compare("1.5", "1.41"), Ordering::Less);
        assert_eq!(compare("2", "1.51"), Ordering::Greater);
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            split_prefix("/v1.50/images/json"),
            (Some("1.50"), "/images/json")
        );
        assert_eq!(split_prefix("/v1.51/_ping"), (Some("1.51"), "/_ping"));
        assert_eq!(split_prefix("/_ping"), (None, "/_ping"));
        assert_eq!(split_prefix("/version"), (None, "/version"));
        assert_eq!(split_prefix("/volumes"), (None, "/volumes"));
        assert_eq!(split_prefix("/v1.50"), (Some("1.50"), ""));
    }

    #[test]
    fn negotiation_refuses_out_of_range() {
        assert_eq!(negotiate(None).unwrap(), ApiVersion::new(1, 51));
        let v = negotiate(Some("1.44")).unwrap();
        assert!(v.at_least(1, 44) && !v.at_least(1, 48));
        assert_eq!(
            negotiate(Some("1.52")).unwrap_err().message,
            "client version 1.52 is too new. Maximum supported API version is 1.51"
        );
        let old = negotiate(Some("1.24")).unwrap_err();
        assert_eq!(old.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(old.message.starts_with("client version 1.24 is too old."));
    }
}
