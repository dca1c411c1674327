//! Image references (`alpine`, `127.0.0.1:5000/app:1.0`, `repo@sha256:…`) with
//! docker's normalization, as in `github.com/distribution/reference`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use oci_spec::image::Digest;

use crate::digest;
use crate::error::{Error, ReferenceErrorKind, Result};

/// Docker Hub's name in references.
const DOCKER_HUB: &str = "docker.io";
/// An older spelling of Docker Hub that normalizes to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Namespace of Docker Hub's official images (`alpine` is `library/alpine`).
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// A parsed, normalized image reference.
///
/// It always has a domain and a repository; it has a tag, a digest, or both
/// (`latest` is filled in only when neither is given).
///
/// ```
/// use hoist_oci::Reference;
///
/// let r: Reference = "alpine".parse()?;
/// assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
/// assert_eq!(r.familiar_name(), "alpine");
/// assert_eq!(r.api_host(), "registry-1.docker.io");
///
/// let r = Reference::parse("127.0.0.1:5000/app:1.0")?;
/// assert_eq!((r.domain(), r.repository(), r.tag()), ("127.0.0.1:5000", "app", Some("1.0")));
/// assert!(r.is_loopback());
/// # Ok::<(), hoist_oci::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes a reference the way `docker pull` and `ctr` do.
    ///
    /// One deliberate difference from docker: a first path component is a
    /// registry domain only if it contains `.` or `:`, is `localhost`, or is a
    /// bracketed IPv6 address. Docker also treats an uppercase first component
    /// (`Foo/bar`) as a domain; here that is an uppercase repository, which is
    /// almost always what was meant.
    pub fn parse(s: &str) -> Result<Self> {
        parse(s).map_err(|reason| Error::InvalidReference {
            reference: s.to_owned(),
            reason,
        })
    }

    /// The registry, e.g. `docker.io`, `127.0.0.1:5000` or `[::1]:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given (or defaulted to `latest`).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given; when present it decides what is fetched.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Domain and repository, e.g. `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// The short name docker shows: `alpine`, `user/app`, `127.0.0.1:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DOCKER_HUB {
            return self.name();
        }
        let short = match self.repository.strip_prefix(OFFICIAL_PREFIX) {
            // A bare 64-hex name would parse back as an image id; keep
            // `library/` so the name round-trips.
            Some(rest) if !rest.contains('/') && !is_image_id(rest) => rest,
            _ => &self.repository,
        };
        // Docker would print `docker.io/a.b/c` as `a.b/c`, which parses back
        // with `a.b` as the registry; keep the domain so the name round-trips.
        match short.split_once('/') {
            Some((first, _)) if is_domain_like(first) => self.name(),
            _ => short.to_owned(),
        }
    }

    /// The reference as docker shows it: the [familiar name], then
    /// `:tag` and `@digest` as the reference has them (`alpine:latest`,
    /// `user/app@sha256:…`, `127.0.0.1:5000/app:1.0`).
    ///
    /// [familiar name]: Reference::familiar_name
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_ref());
        }
        out
    }

    /// What goes after `/v2/<repository>/manifests/`: the digest when there is
    /// one, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            // Parsing always leaves a tag or a digest.
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        if !is_valid_tag(tag) {
            return Err(Error::InvalidReference {
                reference: format!("{}:{tag}", self.name()),
                reason: ReferenceErrorKind::InvalidTag,
            });
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same reference pinned to `digest`, keeping any tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The host to send registry API requests to: `registry-1.docker.io` for
    /// Docker Hub, else the domain itself.
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.domain
        }
    }

    /// Whether the registry is on this machine (`localhost`, `127.0.0.0/8`,
    /// `::1`), where plain HTTP is a reasonable default.
    pub fn is_loopback(&self) -> bool {
        let host = host_of(&self.domain);
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
        }
        host.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn parse(s: &str) -> std::result::Result<Reference, ReferenceErrorKind> {
    use ReferenceErrorKind as K;

    if s.is_empty() {
        return Err(K::Empty);
    }
    if s.chars().any(char::is_whitespace) {
        return Err(K::Whitespace);
    }
    if is_image_id(s) {
        return Err(K::ImageId);
    }

    let (name_and_tag, digest) = match s.split_once('@') {
        Some((n, d)) => {
            digest::validate(d).map_err(K::InvalidDigest)?;
            let d = Digest::try_from(d).expect("validated digests are accepted by oci-spec");
            (n, Some(d))
        }
        None => (s, None),
    };

    let (domain, remainder) = match name_and_tag.split_once('/') {
        Some((first, rest)) if is_domain_like(first) => (first, rest),
        _ => (DOCKER_HUB, name_and_tag),
    };
    // Path components cannot contain ':', so the first one in the remainder starts the tag.
    let (path, tag) = match remainder.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (remainder, None),
    };

    if !is_valid_domain(domain) {
        return Err(K::InvalidDomain);
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(K::UppercaseRepository);
    }
    if !path.split('/').all(is_valid_path_component) {
        return Err(K::InvalidPathComponent);
    }
    if let Some(t) = tag
        && !is_valid_tag(t)
    {
        return Err(K::InvalidTag);
    }

    let domain = if domain == DOCKER_HUB_LEGACY {
        DOCKER_HUB
    } else {
        domain
    };
    let repository = if domain == DOCKER_HUB && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path.to_owned()
    };
    if domain.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(K::NameTooLong);
    }

    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_owned()),
        (None, None) => Some(DEFAULT_TAG.to_owned()),
        (None, Some(_)) => None,
    };
    Ok(Reference {
        domain: domain.to_owned(),
        repository,
        tag,
        digest,
    })
}

/// Docker reserves bare 64-hex strings for image ids.
fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_domain_like(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.starts_with('[')
}

/// The domain without its port.
fn host_of(domain: &str) -> &str {
    if domain.starts_with('[') {
        return match domain.find(']') {
            Some(end) => &domain[..=end],
            None => domain,
        };
    }
    domain.split_once(':').map_or(domain, |(host, _)| host)
}

/// `host[:port]` where host is a DNS name, an IPv4 address, or `[IPv6]`.
fn is_valid_domain(domain: &str) -> bool {
    let host = host_of(domain);
    let port = &domain[host.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').is_some_and(|v6| {
            !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        }),
        None => host.split('.').all(is_valid_domain_component),
    };
    port_ok && host_ok
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        }
        _ => false,
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_valid_path_component(c: &str) -> bool {
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) if is_alnum(first) && is_alnum(last) => {}
        _ => return false,
    }
    // Split into alternating alnum runs and separator runs; each separator run
    // must be one of the allowed forms.
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn is_valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DigestErrorKind;
    use proptest::prelude::*;

    const HEX: &str = "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn kind(s: &str) -> ReferenceErrorKind {
        match Reference::parse(s) {
            Err(Error::InvalidReference { reference, reason }) => {
                assert_eq!(reference, s);
                reason
            }
            other => panic!("{s}: expected InvalidReference, got {other:?}"),
        }
    }

    #[test]
    fn parse_normalizes_official_image() {
        let a = r("alpine");
        assert_eq!(a.domain(), "docker.io");
        assert_eq!(a.repository(), "library/alpine");
        assert_eq!(a.tag(), Some("latest"));
        assert_eq!(a.digest(), None);
        assert_eq!(a.name(), "docker.io/library/alpine");
        assert_eq!(a.to_string(), "docker.io/library/alpine:latest");
    }

    #[test]
    fn parse_normalizes_user_image() {
        assert_eq!(r("user/app").to_string(), "docker.io/user/app:latest");
        assert_eq!(r("user/app").familiar_name(), "user/app");
    }

    #[test]
    fn parse_normalizes_legacy_hub_domain() {
        assert_eq!(r("index.docker.io/alpine"), r("alpine"));
        assert_eq!(r("docker.io/library/alpine:latest"), r("alpine"));
        assert_eq!(r("index.docker.io/user/app:1"), r("user/app:1"));
    }

    #[test]
    fn parse_recognizes_domains() {
        let cases = [
            ("localhost/x", "localhost", "x"),
            ("localhost:5000/x", "localhost:5000", "x"),
            ("host:5000/x", "host:5000", "x"),
            ("[::1]:5000/x", "[::1]:5000", "x"),
            ("[::1]/x", "[::1]", "x"),
            ("127.0.0.1:5000/a/b:tag", "127.0.0.1:5000", "a/b"),
            ("example.com/x/y/z", "example.com", "x/y/z"),
            ("Example.COM/x", "Example.COM", "x"),
        ];
        for (input, domain, repo) in cases {
            let p = r(input);
            assert_eq!((p.domain(), p.repository()), (domain, repo), "{input}");
        }
    }

    #[test]
    fn parse_treats_plain_first_component_as_namespace() {
        let p = r("localhostx/app");
        assert_eq!(
            (p.domain(), p.repository()),
            ("docker.io", "localhostx/app")
        );
    }

    #[test]
    fn parse_keeps_tag_and_digest() {
        let p = r(&format!("127.0.0.1:5000/a/b:tag@sha256:{HEX}"));
        assert_eq!(p.tag(), Some("tag"));
        assert_eq!(p.digest().unwrap().digest(), HEX);
        assert_eq!(p.object(), format!("sha256:{HEX}"));
        assert_eq!(
            p.to_string(),
            format!("127.0.0.1:5000/a/b:tag@sha256:{HEX}")
        );
    }

    #[test]
    fn parse_adds_no_tag_to_digest_reference() {
        let p = r(&format!("alpine@sha256:{HEX}"));
        assert_eq!(p.tag(), None);
        assert_eq!(
            p.to_string(),
            format!("docker.io/library/alpine@sha256:{HEX}")
        );
    }

    #[test]
    fn parse_accepts_sha512_digest() {
        let p = r(&format!("a@sha512:{}", "ab".repeat(64)));
        assert_eq!(p.digest().unwrap().algorithm().to_string(), "sha512");
    }

    #[test]
    fn parse_rejects_uppercase_repository() {
        assert_eq!(kind("Foo/bar"), ReferenceErrorKind::UppercaseRepository);
        assert_eq!(kind("Alpine"), ReferenceErrorKind::UppercaseRepository);
        assert_eq!(
            kind("localhost:5000/App"),
            ReferenceErrorKind::UppercaseRepository
        );
    }

    #[test]
    fn uppercase_error_message_names_reference_and_cause() {
        assert_eq!(
            Reference::parse("Foo/bar").unwrap_err().to_string(),
            r#"invalid reference "Foo/bar": repository name must be lowercase"#
        );
    }

    #[test]
    fn parse_rejects_empty_string() {
        assert_eq!(kind(""), ReferenceErrorKind::Empty);
    }

    #[test]
    fn parse_rejects_whitespace() {
        for s in [" alpine", "alpine ", "al pine", "alpine:\tx", "a\nb"] {
            assert_eq!(kind(s), ReferenceErrorKind::Whitespace, "{s:?}");
        }
    }

    #[test]
    fn parse_rejects_bad_tags() {
        for s in ["alpine:", "alpine:.x", "alpine:-x", "a:b:c", "alpine:a+b"] {
            assert_eq!(kind(s), ReferenceErrorKind::InvalidTag, "{s}");
        }
        assert_eq!(
            kind(&format!("alpine:{}", "a".repeat(300))),
            ReferenceErrorKind::InvalidTag
        );
        assert_eq!(
            r(&format!("alpine:{}", "a".repeat(128)))
                .tag()
                .unwrap()
                .len(),
            128
        );
        assert_eq!(
            kind(&format!("alpine:{}", "a".repeat(129))),
            ReferenceErrorKind::InvalidTag
        );
    }

    #[test]
    fn parse_accepts_unusual_valid_tags() {
        for t in ["_", "V1.0-RC_2", "0"] {
            assert_eq!(r(&format!("a:{t}")).tag(), Some(t));
        }
    }

    #[test]
    fn parse_rejects_bad_digests() {
        use DigestErrorKind as D;
        let cases = [
            ("a@", D::MissingAlgorithm),
            ("a@sha256", D::MissingAlgorithm),
            (&*format!("a@md5:{HEX}"), D::UnsupportedAlgorithm),
            (
                &*format!("a@sha256:{}", &HEX[1..]),
                D::WrongLength {
                    expected: 64,
                    found: 63,
                },
            ),
            (
                &*format!("a@sha256:{}", HEX.to_uppercase()),
                D::NotLowercaseHex,
            ),
            (&*format!("a@sha256:{}z", &HEX[1..]), D::NotLowercaseHex),
            (
                &*format!("a@sha256:{HEX}@sha256:{HEX}"),
                D::WrongLength {
                    expected: 64,
                    found: 136,
                },
            ),
        ];
        for (s, d) in cases {
            assert_eq!(kind(s), ReferenceErrorKind::InvalidDigest(d), "{s}");
        }
    }

    #[test]
    fn parse_rejects_bad_path_components() {
        for s in [
            "a//b",
            "a/",
            "/a",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a._b",
            "a/_b",
            "a!b",
            "localhost:5000/",
            "a/.b",
        ] {
            assert_eq!(kind(s), ReferenceErrorKind::InvalidPathComponent, "{s}");
        }
        for s in ["a.b", "a_b", "a__b", "a---b", "a-b.c_d__e", "0/1"] {
            r(s);
        }
    }

    #[test]
    fn parse_rejects_bad_domains() {
        for s in [
            "host:port/x",
            "-host.com/x",
            "a..b/x",
            "[::1/x",
            "[]/x",
            "host:/x",
            "[zz]:5/x",
        ] {
            assert_eq!(kind(s), ReferenceErrorKind::InvalidDomain, "{s}");
        }
    }

    #[test]
    fn parse_rejects_image_id() {
        assert_eq!(kind(HEX), ReferenceErrorKind::ImageId);
    }

    #[test]
    fn parse_rejects_name_longer_than_255() {
        // docker.io/ + library/ + 237 = 255 characters.
        r(&"a".repeat(237));
        assert_eq!(kind(&"a".repeat(238)), ReferenceErrorKind::NameTooLong);
    }

    #[test]
    fn familiar_name_shortens_only_docker_hub() {
        assert_eq!(r("alpine").familiar_name(), "alpine");
        assert_eq!(r("docker.io/library/a/b").familiar_name(), "library/a/b");
        assert_eq!(
            r("127.0.0.1:5000/app").familiar_name(),
            "127.0.0.1:5000/app"
        );
    }

    /// Found by the `reference` fuzz target (`fuzz/`): `<64 hex>:tag` is a
    /// valid reference, but its familiar name was the bare hex, which
    /// parses as an image id, not as the same repository.
    #[test]
    fn familiar_name_of_image_id_like_repository_parses_back() {
        let p = r(&format!("{HEX}:h6--"));
        assert_eq!(p.repository(), format!("library/{HEX}"));
        assert_eq!(p.familiar_name(), format!("library/{HEX}"));
        assert_eq!(r(&p.familiar_name()).name(), p.name());
        // One character off is an ordinary name again.
        assert_eq!(r(&HEX[1..]).familiar_name(), &HEX[1..]);
    }

    #[test]
    fn object_is_tag_without_digest() {
        assert_eq!(r("alpine:3.19").object(), "3.19");
        assert_eq!(r("alpine").object(), "latest");
    }

    #[test]
    fn with_tag_replaces_tag_and_drops_digest() {
        let p = r(&format!("alpine:1@sha256:{HEX}")).with_tag("2").unwrap();
        assert_eq!(p.to_string(), "docker.io/library/alpine:2");
        assert_eq!(
            r("alpine").with_tag("bad tag").unwrap_err(),
            Error::InvalidReference {
                reference: "docker.io/library/alpine:bad tag".into(),
                reason: ReferenceErrorKind::InvalidTag
            }
        );
    }

    #[test]
    fn with_digest_keeps_tag() {
        let d = Digest::try_from(format!("sha256:{HEX}")).unwrap();
        let p = r("alpine:3").with_digest(d.clone());
        assert_eq!(p.tag(), Some("3"));
        assert_eq!(p.digest(), Some(&d));
    }

    #[test]
    fn api_host_maps_docker_hub() {
        assert_eq!(r("alpine").api_host(), "registry-1.docker.io");
        assert_eq!(r("[::1]:5000/x").api_host(), "[::1]:5000");
        assert_eq!(r("quay.io/x").api_host(), "quay.io");
    }

    #[test]
    fn is_loopback_recognizes_local_hosts() {
        for s in [
            "localhost/x",
            "localhost:5000/x",
            "127.0.0.1/x",
            "127.1.2.3:5000/x",
            "[::1]:5000/x",
            "[::1]/x",
        ] {
            assert!(r(s).is_loopback(), "{s}");
        }
        for s in [
            "alpine",
            "10.0.0.1:5000/x",
            "[::2]:5000/x",
            "localhost.example.com/x",
        ] {
            assert!(!r(s).is_loopback(), "{s}");
        }
    }

    fn domain() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("docker.io".to_owned())),
            Just(Some("localhost".to_owned())),
            Just(Some("[::1]:5000".to_owned())),
            "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}(:[0-9]{1,5})?".prop_map(Some),
            "[a-z][a-z0-9-]{0,6}[a-z0-9]:[0-9]{1,5}".prop_map(Some),
            "127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?".prop_map(Some),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-z0-9]{1,5}(([._]|__|-{1,3})[a-z0-9]{1,5}){0,2}", 1..4)
            .prop_map(|c| c.join("/"))
    }

    fn reference_text() -> impl Strategy<Value = String> {
        (
            domain(),
            path(),
            proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}"),
            proptest::option::of("[0-9a-f]{64}"),
        )
            // Without a domain, a first component with a '.' would be read as one.
            .prop_filter(
                "first component looks like a domain",
                |(domain, path, _, _)| {
                    domain.is_some() || !path.split('/').next().unwrap_or("").contains('.')
                },
            )
            .prop_map(|(domain, path, tag, digest)| {
                let mut s = domain.map(|d| format!("{d}/")).unwrap_or_default();
                s.push_str(&path);
                if let Some(t) = tag {
                    s.push(':');
                    s.push_str(&t);
                }
                if let Some(d) = digest {
                    s.push_str("@sha256:");
                    s.push_str(&d);
                }
                s
            })
    }

    proptest! {
        #[test]
        fn parse_display_round_trips(s in reference_text()) {
            let p = Reference::parse(&s).unwrap();
            prop_assert_eq!(Reference::parse(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn familiar_name_parses_back_to_same_name(s in reference_text()) {
            let p = Reference::parse(&s).unwrap();
            let again = Reference::parse(&p.familiar_name()).unwrap();
            prop_assert_eq!(again.name(), p.name());
            prop_assert_eq!(again.to_string(), p.name() + ":latest");
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Reference::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_reference_alphabet(s in "[a-zA-Z0-9:/@._\\[\\]-]{0,40}") {
            if let Ok(p) = Reference::parse(&s) {
                prop_assert_eq!(Reference::parse(&p.to_string()).unwrap(), p);
            }
        }
    }

    #[test]
    fn familiar_is_what_docker_shows() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("alpine"), "alpine:latest");
        assert_eq!(f("docker.io/library/alpine:3.20"), "alpine:3.20");
        assert_eq!(f("user/app:1"), "user/app:1");
        assert_eq!(f("127.0.0.1:5000/app:1.0"), "127.0.0.1:5000/app:1.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(f(&format!("alpine@{digest}")), format!("alpine@{digest}"));
        assert_eq!(
            f(&format!("alpine:3@{digest}")),
            format!("alpine:3@{digest}")
        );
    }
}
