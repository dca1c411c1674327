//! Platforms (`linux/arm64`, `linux/arm/v7`): parsing, containerd's
//! normalization, the host default, and containerd-style matching and ranking.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Arch, Descriptor, Os, Platform as SpecPlatform};

use crate::error::{Error, PlatformErrorKind, Result};

/// Operating systems a lone specifier (`linux`) is recognized as, from Go's `GOOS` list.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

/// Architectures a lone specifier (`arm64`) is recognized as, from Go's `GOARCH` list.
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// An OS and CPU an image is built for, in Go's `GOOS`/`GOARCH` vocabulary.
///
/// [`Platform::parse`] normalizes the way containerd does, so equal platforms
/// compare equal however they were spelled:
///
/// ```
/// use hoist_oci::Platform;
///
/// assert_eq!(Platform::parse("linux/aarch64/v8")?, Platform::parse("linux/arm64")?);
/// assert_eq!(Platform::parse("linux/armhf")?.to_string(), "linux/arm/v7");
/// # Ok::<(), hoist_oci::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`, `windows`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// CPU variant, e.g. `v7` for `arm`.
    pub variant: Option<String>,
    /// OS version, used by Windows images (`10.0.17763.5329`).
    pub os_version: Option<String>,
    /// Required OS features, e.g. `win32k`.
    pub os_features: Vec<String>,
}

impl Platform {
    /// Parses `os`, `arch`, `os/arch` or `os/arch/variant`, normalized.
    ///
    /// The OS may carry a version and features as containerd formats them:
    /// `windows(10.0.17763+win32k)/amd64`. A lone component is tried as an OS
    /// first (taking the host's architecture), then as an architecture (taking
    /// the host's OS).
    pub fn parse(s: &str) -> Result<Self> {
        parse(s).map_err(|reason| Error::InvalidPlatform {
            specifier: s.to_owned(),
            reason,
        })
    }

    /// The platform of this build of hoist, e.g. `linux/amd64`.
    pub fn host() -> Self {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        // Rust's target names differ from Go's for these.
        let arch = match std::env::consts::ARCH {
            "x86" => "386",
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "loongarch64" => "loong64",
            "powerpc" => "ppc",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "sparc64" => "sparc64",
            "wasm32" => "wasm",
            other => other,
        };
        Self::new(os, arch, None).normalized()
    }

    /// A platform from its parts, as given (not normalized).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
            os_version: None,
            os_features: Vec::new(),
        }
    }

    /// This platform in containerd's canonical spelling (`aarch64` → `arm64`,
    /// `arm` → `arm/v7`, `arm64/v8` → `arm64`, `macos` → `darwin`, …).
    pub fn normalized(&self) -> Self {
        let os = normalize_os(&self.os);
        let (architecture, variant) =
            normalize_arch(&self.architecture, self.variant.as_deref().unwrap_or(""));
        Self {
            os,
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
        }
    }

    /// The `oci-spec` form, for writing into descriptors.
    pub fn to_spec(&self) -> SpecPlatform {
        let mut p = SpecPlatform::default();
        p.set_os(Os::from(self.os.as_str()));
        p.set_architecture(match self.architecture.as_str() {
            // oci-spec 0.10 reads `armbe` as `arm64be`; name it verbatim.
            "armbe" => Arch::Other("armbe".to_owned()),
            other => Arch::from(other),
        });
        p.set_variant(self.variant.clone());
        p.set_os_version(self.os_version.clone());
        p.set_os_features((!self.os_features.is_empty()).then(|| self.os_features.clone()));
        p
    }
}

/// Keeps the values as written in the descriptor; matching normalizes them.
impl From<&SpecPlatform> for Platform {
    fn from(p: &SpecPlatform) -> Self {
        Self {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
            os_version: p.os_version().clone(),
            os_features: p.os_features().clone().unwrap_or_default(),
        }
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// `os[(version[+feature…])]/arch[/variant]`; the parenthesized part appears
/// only when there is an OS version or features.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.os)?;
        if self.os_version.is_some() || !self.os_features.is_empty() {
            write!(f, "({}", self.os_version.as_deref().unwrap_or(""))?;
            for feature in &self.os_features {
                write!(f, "+{feature}")?;
            }
            f.write_str(")")?;
        }
        write!(f, "/{}", self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn parse(s: &str) -> std::result::Result<Platform, PlatformErrorKind> {
    use PlatformErrorKind as K;

    if s.is_empty() {
        return Err(K::Empty);
    }
    if s.contains('*') {
        return Err(K::Wildcard);
    }
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() > 3 {
        return Err(K::TooManyComponents);
    }
    let (os, os_version, os_features) = split_os_options(parts[0])?;
    if !parts.iter().skip(1).all(|p| is_valid_component(p)) {
        return Err(K::InvalidComponent);
    }

    let mut p = match parts[..] {
        [_] => {
            let as_os = normalize_os(os);
            if KNOWN_OS.contains(&as_os.as_str()) {
                let host = Platform::host();
                Platform { os: as_os, ..host }
            } else {
                let (arch, _) = normalize_arch(os, "");
                if !KNOWN_ARCH.contains(&arch.as_str()) {
                    return Err(K::UnknownOsOrArch);
                }
                Platform::new(std::env::consts::OS, os, None)
            }
        }
        [_, arch] => Platform::new(os, arch, None),
        [_, arch, variant] => Platform::new(os, arch, Some(variant)),
        _ => unreachable!("between one and three components"),
    };
    // A lone OS gets the host OS's version only by accident; take the specifier's.
    p.os_version = os_version;
    p.os_features = os_features;
    Ok(p.normalized())
}

/// Splits `windows(10.0.17763+win32k)` into OS, version and features.
fn split_os_options(
    part: &str,
) -> std::result::Result<(&str, Option<String>, Vec<String>), PlatformErrorKind> {
    let Some((os, rest)) = part.split_once('(') else {
        return if is_valid_component(part) {
            Ok((part, None, Vec::new()))
        } else {
            Err(PlatformErrorKind::InvalidComponent)
        };
    };
    let inner = rest
        .strip_suffix(')')
        .ok_or(PlatformErrorKind::InvalidComponent)?;
    let mut pieces = inner.split('+');
    let version = pieces.next().unwrap_or("");
    let features: Vec<String> = pieces.map(str::to_owned).collect();
    let version_ok = version.is_empty() || is_valid_component(version);
    if !is_valid_component(os) || !version_ok || !features.iter().all(|f| is_valid_component(f)) {
        return Err(PlatformErrorKind::InvalidComponent);
    }
    let version = (!version.is_empty()).then(|| version.to_owned());
    Ok((os, version, features))
}

/// `[A-Za-z0-9_.-]+`
fn is_valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// containerd's `normalizeOS`.
fn normalize_os(os: &str) -> String {
    if os.is_empty() {
        return Platform::host().os;
    }
    match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        other => other.to_owned(),
    }
}

/// containerd's `normalizeArch`; an empty variant means none.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (arch, variant): (&str, &str) = match arch.as_str() {
        "i386" | "386" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { "" } else { &variant }),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => "",
                "9" | "9.0" | "v9.0" => "v9",
                other => other,
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7",
                "5" => "v5",
                "6" => "v6",
                "8" => "v8",
                other => other,
            },
        ),
        other => (other, &variant),
    };
    (arch.to_owned(), variant.to_owned())
}

/// Decides which platforms an image may be pulled for, and which is best.
///
/// ```
/// use hoist_oci::{Platform, PlatformMatcher};
///
/// let m = PlatformMatcher::only(Platform::parse("linux/arm/v7")?);
/// let v6 = Platform::parse("linux/arm/v6")?;
/// let v7 = Platform::parse("linux/arm/v7")?;
/// assert!(m.rank(&v7) < m.rank(&v6));
/// assert!(!m.matches(&Platform::parse("linux/arm/v8")?));
/// # Ok::<(), hoist_oci::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformMatcher {
    /// `None` matches everything; otherwise candidates in order of preference.
    ordered: Option<Vec<Platform>>,
}

impl PlatformMatcher {
    /// containerd's `platforms.Only`: `p` and the platforms it can also run,
    /// best first. `arm/v7` also accepts `v6` and `v5`; `arm64` also accepts
    /// `arm/v8` down to `arm/v5`; `amd64/vN` accepts lower `amd64` variants,
    /// and `amd64` accepts `386`.
    pub fn only(p: Platform) -> Self {
        Self {
            // Normalized again because the generated `amd64/v1` is spelled `amd64`.
            ordered: Some(
                compatible(&p.normalized())
                    .iter()
                    .map(Platform::normalized)
                    .collect(),
            ),
        }
    }

    /// Any of `platforms`, each matched exactly, earlier ones ranked better
    /// (containerd's `platforms.Ordered`).
    pub fn any_of(platforms: Vec<Platform>) -> Self {
        Self {
            ordered: Some(platforms.iter().map(Platform::normalized).collect()),
        }
    }

    /// Every platform, all equally good (`--all-platforms`).
    pub fn all() -> Self {
        Self { ordered: None }
    }

    /// Whether an image for `p` is acceptable.
    pub fn matches(&self, p: &Platform) -> bool {
        self.rank(p).is_some()
    }

    /// How good a match `p` is, lower being better; `None` if it does not match.
    pub fn rank(&self, p: &Platform) -> Option<usize> {
        let Some(ordered) = &self.ordered else {
            return Some(0);
        };
        let p = p.normalized();
        ordered.iter().position(|want| same_platform(want, &p))
    }

    /// The descriptors of `candidates` (usually an index's manifests) that
    /// match, best first. Descriptors without a platform match, ranked after
    /// all others, as containerd treats them; ties keep index order.
    pub fn best_match<'a>(&self, candidates: &'a [Descriptor]) -> Vec<&'a Descriptor> {
        let mut ranked: Vec<(usize, &Descriptor)> = candidates
            .iter()
            .filter_map(|d| match d.platform() {
                None => Some((usize::MAX, d)),
                Some(p) => self.rank(&Platform::from(p)).map(|r| (r, d)),
            })
            .collect();
        ranked.sort_by_key(|(rank, _)| *rank);
        ranked.into_iter().map(|(_, d)| d).collect()
    }
}

/// Both sides normalized. OS versions must agree only when both are known;
/// OS features are not compared (containerd only does so on Windows hosts).
fn same_platform(want: &Platform, have: &Platform) -> bool {
    want.os == have.os
        && want.architecture == have.architecture
        && want.variant == have.variant
        && match (&want.os_version, &have.os_version) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// The highest amd64 microarchitecture level (x86-64-v4); a higher variant
/// still runs every real level below it.
const AMD64_MAX_LEVEL: u32 = 4;

/// The highest 32-bit ARM variant below which others are listed (`arm/v8`).
const ARM_MAX_VARIANT: u32 = 8;

/// containerd's `platformVector`: `p` followed by what else it can run, best
/// first. The lower variants listed are the real ones only, so a specifier
/// such as `linux/amd64/v99999999` (a daemon takes platforms from its
/// clients) lists a handful, not a hundred million.
fn compatible(p: &Platform) -> Vec<Platform> {
    let with = |architecture: &str, variant: Option<String>| Platform {
        architecture: architecture.to_owned(),
        variant,
        ..p.clone()
    };
    let version = |v: &Option<String>| {
        v.as_deref()
            .and_then(|v| v.strip_prefix('v'))
            .and_then(|n| n.parse::<u32>().ok())
    };
    let mut out = vec![p.clone()];
    match p.architecture.as_str() {
        "amd64" => {
            if let Some(n) = version(&p.variant) {
                let below = n.min(AMD64_MAX_LEVEL + 1);
                out.extend(
                    (1..below)
                        .rev()
                        .map(|k| with("amd64", Some(format!("v{k}")))),
                );
            }
            out.push(with("386", None));
        }
        "arm" => {
            if let Some(n) = version(&p.variant) {
                let below = n.min(ARM_MAX_VARIANT + 1);
                out.extend((5..below).rev().map(|k| with("arm", Some(format!("v{k}")))));
            }
        }
        "arm64" => {
            let variant = p.variant.clone().unwrap_or_else(|| "v8".to_owned());
            out.extend(compatible(&with("arm", Some(variant))));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Digest, MediaType};
    use proptest::prelude::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn kind(s: &str) -> PlatformErrorKind {
        match Platform::parse(s) {
            Err(Error::InvalidPlatform { specifier, reason }) => {
                assert_eq!(specifier, s);
                reason
            }
            other => panic!("{s}: expected InvalidPlatform, got {other:?}"),
        }
    }

    #[test]
    fn parse_full_specifier() {
        let x = p("linux/arm/v6");
        assert_eq!(
            (x.os.as_str(), x.architecture.as_str(), x.variant.as_deref()),
            ("linux", "arm", Some("v6"))
        );
    }

    #[test]
    fn parse_normalizes_architecture_aliases() {
        let cases = [
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/i386", "linux/386"),
            ("linux/386", "linux/386"),
            ("MacOS/ARM64", "darwin/arm64"),
            ("Linux/AMD64", "linux/amd64"),
            ("windows/amd64", "windows/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn parse_lone_os_takes_host_architecture() {
        let host = Platform::host();
        let x = p("linux");
        assert_eq!(
            (x.os.as_str(), &x.architecture),
            ("linux", &host.architecture)
        );
        assert_eq!(p("windows").os, "windows");
    }

    #[test]
    fn parse_lone_architecture_takes_host_os() {
        let host = Platform::host();
        assert_eq!(p("arm64"), Platform::new(&host.os, "arm64", None));
        assert_eq!(p("aarch64"), Platform::new(&host.os, "arm64", None));
        assert_eq!(p("arm").variant.as_deref(), Some("v7"));
    }

    #[test]
    fn parse_os_version_and_features() {
        let x = p("windows(10.0.17763+win32k)/amd64");
        assert_eq!(x.os, "windows");
        assert_eq!(x.os_version.as_deref(), Some("10.0.17763"));
        assert_eq!(x.os_features, ["win32k"]);
        assert_eq!(x.to_string(), "windows(10.0.17763+win32k)/amd64");
    }

    #[test]
    fn parse_rejects_malformed_specifiers() {
        assert_eq!(kind(""), PlatformErrorKind::Empty);
        assert_eq!(kind("linux/*"), PlatformErrorKind::Wildcard);
        assert_eq!(kind("a/b/c/d"), PlatformErrorKind::TooManyComponents);
        assert_eq!(kind("linux//v7"), PlatformErrorKind::InvalidComponent);
        assert_eq!(kind("linux/amd64/"), PlatformErrorKind::InvalidComponent);
        assert_eq!(kind("linux/am d64"), PlatformErrorKind::InvalidComponent);
        assert_eq!(
            kind("windows(10/amd64"),
            PlatformErrorKind::InvalidComponent
        );
        assert_eq!(kind("nonsense"), PlatformErrorKind::UnknownOsOrArch);
    }

    #[test]
    fn invalid_platform_message_is_one_line() {
        assert_eq!(
            Platform::parse("nonsense").unwrap_err().to_string(),
            r#"invalid platform "nonsense": unknown operating system or architecture"#
        );
    }

    #[test]
    fn host_is_normalized_and_known() {
        let h = Platform::host();
        assert_eq!(h, h.normalized());
        assert!(KNOWN_OS.contains(&h.os.as_str()));
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        assert_eq!(h.to_string(), "linux/amd64");
    }

    #[test]
    fn spec_conversion_round_trips() {
        let x = p("windows(10.0.17763+win32k)/amd64");
        assert_eq!(Platform::from(&x.to_spec()), x);
        let y = p("linux/arm/v7");
        let spec = y.to_spec();
        assert_eq!(spec.architecture(), &Arch::ARM);
        assert_eq!(spec.variant().as_deref(), Some("v7"));
        assert_eq!(Platform::from(&spec), y);
    }

    /// Found by the `platform` fuzz target (`fuzz/`): `oci-spec` turns the
    /// architecture `armbe` into `arm64be`, so `to_spec` wrote another
    /// platform than the one it was given.
    #[test]
    fn spec_conversion_keeps_armbe() {
        let x = p("linux/armbe");
        let spec = x.to_spec();
        assert_eq!(spec.architecture().to_string(), "armbe");
        assert_eq!(Platform::from(&spec), x);
        assert_eq!(
            Platform::from(&p("linux/arm64be").to_spec()),
            p("linux/arm64be")
        );
    }

    #[test]
    fn only_prefers_exact_arm_variant_then_lower() {
        let m = PlatformMatcher::only(p("linux/arm/v7"));
        assert_eq!(m.rank(&p("linux/arm/v7")), Some(0));
        assert_eq!(m.rank(&p("linux/arm/v6")), Some(1));
        assert_eq!(m.rank(&p("linux/arm/v5")), Some(2));
        assert_eq!(m.rank(&p("linux/arm/v8")), None);
        assert_eq!(m.rank(&p("linux/arm64")), None);
    }

    #[test]
    fn only_arm64_also_runs_32_bit_arm() {
        let m = PlatformMatcher::only(p("linux/arm64"));
        assert_eq!(m.rank(&p("linux/arm64/v8")), Some(0));
        assert_eq!(m.rank(&p("linux/arm/v8")), Some(1));
        assert_eq!(m.rank(&p("linux/arm/v7")), Some(2));
        assert_eq!(m.rank(&p("linux/arm/v5")), Some(4));
        assert!(!m.matches(&p("linux/amd64")));
    }

    #[test]
    fn only_amd64_also_runs_386() {
        let m = PlatformMatcher::only(p("linux/amd64"));
        assert_eq!(m.rank(&p("linux/amd64")), Some(0));
        assert_eq!(m.rank(&p("linux/386")), Some(1));
        assert!(!m.matches(&p("windows/amd64")));
        assert!(!m.matches(&p("linux/arm64")));
        let v3 = PlatformMatcher::only(p("linux/amd64/v3"));
        assert_eq!(v3.rank(&p("linux/amd64/v2")), Some(1));
        assert_eq!(v3.rank(&p("linux/amd64")), Some(2));
        assert_eq!(v3.rank(&p("linux/386")), Some(3));
        assert!(!PlatformMatcher::only(p("linux/amd64")).matches(&p("linux/amd64/v2")));
    }

    /// Reproduced by the `platform` fuzz target (`fuzz/`): a huge variant made
    /// `only` list every lower one, 12 GB for `linux/amd64/v99999999`.
    #[test]
    fn only_with_huge_variant_lists_only_real_lower_variants() {
        let amd64 = PlatformMatcher::only(p("linux/amd64/v99999999"));
        assert_eq!(amd64.ordered.as_ref().unwrap().len(), 6);
        assert_eq!(amd64.rank(&p("linux/amd64/v4")), Some(1));
        assert_eq!(amd64.rank(&p("linux/amd64")), Some(4));
        assert_eq!(amd64.rank(&p("linux/386")), Some(5));
        let arm = PlatformMatcher::only(p("linux/arm/v4294967295"));
        assert_eq!(arm.ordered.as_ref().unwrap().len(), 5);
        assert_eq!(arm.rank(&p("linux/arm/v8")), Some(1));
        assert_eq!(arm.rank(&p("linux/arm/v5")), Some(4));
        let arm64 = PlatformMatcher::only(p("linux/arm64/v99999999"));
        assert_eq!(arm64.ordered.as_ref().unwrap().len(), 6);
        assert_eq!(arm64.rank(&p("linux/arm/v7")), Some(3));
        // Real variants keep their lists.
        let v5 = PlatformMatcher::only(p("linux/amd64/v5"));
        assert_eq!(v5.rank(&p("linux/amd64/v4")), Some(1));
        let v9 = PlatformMatcher::only(p("linux/arm64/v9"));
        assert_eq!(v9.rank(&p("linux/arm/v8")), Some(2));
    }

    #[test]
    fn matching_normalizes_candidates() {
        let m = PlatformMatcher::only(p("linux/arm64"));
        assert!(m.matches(&Platform::new("linux", "aarch64", Some("v8"))));
        let m = PlatformMatcher::only(p("linux/arm/v7"));
        assert!(m.matches(&Platform::new("linux", "arm", None)));
    }

    #[test]
    fn os_version_must_agree_only_when_both_known() {
        let m = PlatformMatcher::only(p("windows(10.0.17763)/amd64"));
        assert!(m.matches(&p("windows/amd64")));
        assert!(m.matches(&p("windows(10.0.17763)/amd64")));
        assert!(!m.matches(&p("windows(10.0.20348)/amd64")));
    }

    #[test]
    fn any_of_ranks_by_list_order_and_matches_exactly() {
        let m = PlatformMatcher::any_of(vec![p("linux/arm64"), p("linux/amd64")]);
        assert_eq!(m.rank(&p("linux/amd64")), Some(1));
        assert_eq!(m.rank(&p("linux/arm64")), Some(0));
        assert!(!m.matches(&p("linux/386")));
    }

    #[test]
    fn all_matches_everything() {
        let m = PlatformMatcher::all();
        assert!(m.matches(&p("plan9/mips")));
        assert_eq!(m.rank(&p("linux/amd64")), Some(0));
    }

    fn desc(n: u8, platform: Option<&str>) -> Descriptor {
        let digest = Digest::try_from(format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap();
        let mut d = Descriptor::new(MediaType::ImageManifest, 1, digest);
        d.set_platform(platform.map(|s| p(s).to_spec()));
        d
    }

    #[test]
    fn best_match_orders_by_rank_and_puts_platformless_last() {
        let candidates = [
            desc(0, None),
            desc(1, Some("linux/arm/v5")),
            desc(2, Some("linux/amd64")),
            desc(3, Some("linux/arm/v7")),
            desc(4, Some("linux/arm/v6")),
            desc(5, Some("linux/arm/v7")),
        ];
        let m = PlatformMatcher::only(p("linux/arm/v7"));
        let order: Vec<u64> = m
            .best_match(&candidates)
            .iter()
            .map(|d| u64::from(d.digest().digest().as_bytes()[1] - b'0'))
            .collect();
        assert_eq!(order, [3, 5, 4, 1, 0]);
    }

    #[test]
    fn best_match_skips_unknown_platform_attestations() {
        let mut attestation = desc(1, None);
        let mut spec = SpecPlatform::default();
        spec.set_os(Os::from("unknown"));
        spec.set_architecture(Arch::from("unknown"));
        attestation.set_platform(Some(spec));
        let candidates = [desc(0, Some("linux/amd64")), attestation];
        let m = PlatformMatcher::only(p("linux/amd64"));
        assert_eq!(m.best_match(&candidates), vec![&candidates[0]]);
    }

    fn specifier() -> impl Strategy<Value = String> {
        let os = prop_oneof![
            Just("linux"),
            Just("windows"),
            Just("darwin"),
            Just("macos"),
            Just("Linux"),
            Just("freebsd")
        ];
        let arch = prop_oneof![
            Just("amd64"),
            Just("x86_64"),
            Just("arm64"),
            Just("aarch64"),
            Just("arm"),
            Just("armhf"),
            Just("armel"),
            Just("386"),
            Just("i386"),
            Just("ppc64le"),
            Just("s390x"),
            Just("riscv64"),
        ];
        let variant = proptest::option::of(prop_oneof![
            Just("v5"),
            Just("v6"),
            Just("v7"),
            Just("v8"),
            Just("8"),
            Just("v1"),
            Just("v3"),
        ]);
        let options = proptest::option::of((
            "[0-9]{1,2}(\\.[0-9]{1,5}){0,3}",
            proptest::collection::vec("[a-z0-9]{1,8}", 0..3),
        ));
        (os, options, arch, variant).prop_map(|(os, options, arch, variant)| {
            let mut s = os.to_owned();
            if let Some((version, features)) = options {
                s.push('(');
                s.push_str(&version);
                for f in features {
                    s.push('+');
                    s.push_str(&f);
                }
                s.push(')');
            }
            s.push('/');
            s.push_str(arch);
            if let Some(v) = variant {
                s.push('/');
                s.push_str(v);
            }
            s
        })
    }

    proptest! {
        #[test]
        fn parse_format_round_trips(s in specifier()) {
            let x = Platform::parse(&s).unwrap();
            prop_assert_eq!(Platform::parse(&x.to_string()).unwrap(), x.clone());
            prop_assert_eq!(x.normalized(), x);
        }

        #[test]
        fn parsed_platform_is_its_own_best_match(s in specifier()) {
            let x = Platform::parse(&s).unwrap();
            prop_assert_eq!(PlatformMatcher::only(x.clone()).rank(&x), Some(0));
        }

        #[test]
        fn platform_parse_never_panics(s in "\\PC{0,40}") {
            let _ = Platform::parse(&s);
        }
    }
}
