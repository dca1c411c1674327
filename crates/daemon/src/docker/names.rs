//! Image names as docker's API writes them, and as hoist records them.
//!
//! Engine images are recorded under normalized references
//! (`docker.io/library/alpine:latest`); docker shows the familiar form
//! (`alpine:latest`, `127.0.0.1:5000/app:1`). Requests carry names in
//! several shapes: `fromImage` + `tag` of a pull (the tag may be a
//! digest, an empty tag means every tag), `repo` + `tag` of a tag request,
//! a name, an image id or an id prefix in a path, and `path.Match` globs in
//! the `reference` filter.

use hoist_oci::Reference;

/// What `POST /images/create` pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullTarget {
    /// One reference.
    One(Reference),
    /// Every tag of the repository (docker's `pull --all-tags`).
    AllTags(Reference),
}

/// Whether `typed` names neither a tag nor a digest (docker's
/// `reference.IsNameOnly`).
pub fn is_name_only(typed: &str) -> bool {
    let last = typed.rsplit('/').next().unwrap_or(typed);
    !typed.contains('@') && !last.contains(':')
}

/// `fromImage` and `tag` combined as moby's `postImagesCreate` does: a
/// non-empty `tag` replaces the image's tag, or, when it is a digest,
/// replaces tag and digest; an empty `tag` with a name-only image means
/// every tag.
pub fn pull_target(from_image: &str, tag: &str) -> Result<PullTarget, hoist_oci::Error> {
    // `pull -a` of old clients may send a trailing `:`.
    let image = from_image.strip_suffix(':').unwrap_or(from_image);
    let base = Reference::parse(image)?;
    if !tag.is_empty() {
        // A tag never holds a `:`; a digest always does.
        let typed = if tag.contains(':') {
            format!("{}@{tag}", base.name())
        } else if let Some(digest) = base.digest() {
            format!("{}:{tag}@{digest}", base.name())
        } else {
            format!("{}:{tag}", base.name())
        };
        return Ok(PullTarget::One(Reference::parse(&typed)?));
    }
    if is_name_only(image) {
        Ok(PullTarget::AllTags(base))
    } else {
        Ok(PullTarget::One(base))
    }
}

/// `repo` and `tag` of `POST /images/{name}/tag` as one reference (moby's
/// `RepoTagReference`): `tag` defaults to `latest`; a digest is refused.
pub fn repo_tag(repo: &str, tag: &str) -> Result<Reference, String> {
    if repo.is_empty() {
        return Err("repository name must have at least one component".to_string());
    }
    let base = Reference::parse(repo).map_err(|e| e.to_string())?;
    if base.digest().is_some() {
        return Err("cannot tag with a digest reference".to_string());
    }
    if tag.is_empty() {
        return Ok(base);
    }
    Reference::parse(&format!("{}:{tag}", base.name())).map_err(|e| e.to_string())
}

/// How a name in a path may name an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKind {
    /// Only an id or id prefix: `sha256:<hex>` or 64 hex digits.
    Id(String),
    /// A reference first, else an id prefix (4 to 63 hex digits, which
    /// also parse as a repository name).
    NameOrId(String),
    /// Only a reference.
    Name,
}

/// Classifies `name` as moby's `resolveImage` does: full ids and
/// `sha256:` prefixes are ids; short hex strings are tried as names first.
/// The returned strings are the hex prefix without `sha256:`.
pub fn classify(name: &str) -> NameKind {
    let is_hex =
        |s: &str| !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if let Some(hex) = name.strip_prefix("sha256:") {
        if is_hex(hex) && hex.len() <= 64 {
            return NameKind::Id(hex.to_string());
        }
        return NameKind::Name;
    }
    if is_hex(name) && name.len() == 64 {
        return NameKind::Id(name.to_string());
    }
    if is_hex(name) && name.len() >= 4 {
        return NameKind::NameOrId(name.to_string());
    }
    NameKind::Name
}

/// docker's `reference.FamiliarMatch`: the glob `pattern` against the
/// familiar reference, then against the familiar name alone.
pub fn familiar_match(pattern: &str, reference: &Reference) -> bool {
    path_match(pattern, &reference.familiar()) || path_match(pattern, &reference.familiar_name())
}

/// Go's `path.Match`: `*` is any run of characters but `/`, `?` one
/// character but `/`, `[…]` a class (`^` negates, `a-z` ranges), `\`
/// escapes. A malformed pattern matches nothing.
pub fn path_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches_from(&pattern, &name)
}

fn matches_from(pattern: &[char], name: &[char]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return name.is_empty();
    };
    match first {
        '*' => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != '/')
            .any(|i| matches_from(rest, &name[i..])),
        '?' => match name.split_first() {
            Some((&c, tail)) if c != '/' => matches_from(rest, tail),
            _ => false,
        },
        '[' => {
            let Some((&c, tail)) = name.split_first() else {
                return false;
            };
            match class(rest, c) {
                Some((true, after)) if c != '/' => matches_from(after, tail),
                _ => false,
            }
        }
        '\\' => match (rest.split_first(), name.split_first()) {
            (Some((&p, prest)), Some((&c, tail))) if p == c => matches_from(prest, tail),
            _ => false,
        },
        literal => match name.split_first() {
            Some((&c, tail)) if c == literal => matches_from(rest, tail),
            _ => false,
        },
    }
}

/// Matches `c` against the class starting after `[`; returns whether it
/// matched and the pattern after `]`, or `None` when malformed.
fn class(pattern: &[char], c: char) -> Option<(bool, &[char])> {
    let (negated, mut rest) = match pattern.split_first() {
        Some(('^', tail)) => (true, tail),
        _ => (false, pattern),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let (&ch, tail) = rest.split_first()?;
        if ch == ']' && !first {
            return Some((matched != negated, tail));
        }
        first = false;
        let (low, tail) = escaped(ch, tail)?;
        let (high, tail) = match tail.split_first() {
            Some(('-', after)) if after.first().is_some_and(|&n| n != ']') => {
                let (&h, after) = after.split_first()?;
                escaped(h, after)?
            }
            _ => (low, tail),
        };
        if low <= c && c <= high {
            matched = true;
        }
        rest = tail;
    }
}

fn escaped(ch: char, tail: &[char]) -> Option<(char, &[char])> {
    if ch == '\\' {
        let (&next, after) = tail.split_first()?;
        Some((next, after))
    } else {
        Some((ch, tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(target: PullTarget) -> String {
        match target {
            PullTarget::One(r) => r.to_string(),
            PullTarget::AllTags(r) => panic!("all tags of {r}"),
        }
    }

    #[test]
    fn pull_targets_combine_like_moby() {
        let digest = format!("sha256:{}", "a".repeat(64));
        // What docker CLI 28 sends for `docker pull alpine`.
        assert_eq!(
            one(pull_target("docker.io/library/alpine", "latest").unwrap()),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            one(pull_target("127.0.0.1:5000/app", "1.0").unwrap()),
            "127.0.0.1:5000/app:1.0"
        );
        // The tag replaces the image's tag; a digest replaces both.
        assert_eq!(
            one(pull_target("alpine:3", "3.20").unwrap()),
            "docker.io/library/alpine:3.20"
        );
        assert_eq!(
            one(pull_target("alpine:3", &digest).unwrap()),
            format!("docker.io/library/alpine@{digest}")
        );
        assert_eq!(
            one(pull_target(&format!("alpine@{digest}"), "").unwrap()),
            format!("docker.io/library/alpine@{digest}")
        );
        assert_eq!(
            one(pull_target("alpine:3.20", "").unwrap()),
            "docker.io/library/alpine:3.20"
        );
        for all in ["127.0.0.1:5000/app", "alpine", "alpine:"] {
            assert!(
                matches!(pull_target(all, "").unwrap(), PullTarget::AllTags(_)),
                "{all}"
            );
        }
        assert!(pull_target("Bad Name", "").is_err());
        assert!(pull_target("alpine", "bad tag!").is_err());
        assert!(pull_target("alpine", "sha256:short").is_err());
    }

    #[test]
    fn repo_and_tag() {
        assert_eq!(
            repo_tag("docker.io/library/alpine", "mine")
                .unwrap()
                .to_string(),
            "docker.io/library/alpine:mine"
        );
        assert_eq!(
            repo_tag("local/app", "").unwrap().to_string(),
            "docker.io/local/app:latest"
        );
        assert!(repo_tag("", "x").is_err());
        assert!(repo_tag(&format!("a@sha256:{}", "b".repeat(64)), "").is_err());
        assert!(repo_tag("a", "no spaces").is_err());
    }

    #[test]
    fn names_and_ids() {
        let full = "a".repeat(64);
        assert_eq!(classify(&full), NameKind::Id(full.clone()));
        assert_eq!(classify("sha256:abcd"), NameKind::Id("abcd".into()));
        assert_eq!(classify("abcd12"), NameKind::NameOrId("abcd12".into()));
        assert_eq!(classify("abc"), NameKind::Name);
        assert_eq!(classify("alpine"), NameKind::Name);
        assert_eq!(classify("127.0.0.1:5000/app:1"), NameKind::Name);
        assert_eq!(classify("sha256:xyz"), NameKind::Name);
    }

    #[test]
    fn globs_follow_path_match() {
        assert!(path_match("alpine", "alpine"));
        assert!(path_match("alp*", "alpine"));
        assert!(path_match("*:3.*", "alpine:3.20"));
        assert!(!path_match("*", "team/app"));
        assert!(path_match("*/*", "team/app"));
        assert!(path_match("a?pine", "alpine"));
        assert!(!path_match("a?pine", "a/pine"));
        assert!(path_match("[a-c]pp", "bpp"));
        assert!(!path_match("[^a-c]pp", "bpp"));
        assert!(path_match("\\*", "*"));
        assert!(!path_match("[a-", "a"));
        assert!(!path_match("alpine", "alpine:3"));
    }

    #[test]
    fn familiar_matching_tries_the_name_alone() {
        let r = Reference::parse("127.0.0.1:5000/team/app:1.0").unwrap();
        assert!(familiar_match("127.0.0.1:5000/team/app", &r));
        assert!(familiar_match("127.0.0.1:5000/team/app:1.0", &r));
        assert!(familiar_match("127.0.0.1:5000/team/*", &r));
        assert!(!familiar_match("team/app", &r));
        let alpine = Reference::parse("alpine:3.20").unwrap();
        assert!(familiar_match("alpine", &alpine));
        assert!(familiar_match("alpine:3.*", &alpine));
        assert!(!familiar_match("library/alpine", &alpine));
    }
}
