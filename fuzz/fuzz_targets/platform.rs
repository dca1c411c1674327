//! `hoist_oci::Platform::parse` and `PlatformMatcher` on arbitrary text.
//!
//! The input is lines: the first is the wanted platform specifier, the rest
//! are candidates as an index would carry them (`os/arch[/variant]`, raw,
//! not normalized; an empty line is a descriptor without a platform).
//! Checked: a parsed platform is normalized, displays to a specifier that
//! parses back to it, survives the `oci-spec` conversion, and is its own best
//! match; `best_match` returns exactly the matching candidates (and the
//! platformless ones, last), best first.

#![no_main]

use hoist_oci::{Descriptor, MediaType, Platform, PlatformMatcher, sha256_digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let spec = lines.next().unwrap_or_default();
    let candidates: Vec<Descriptor> = lines
        .take(64)
        .enumerate()
        .map(|(i, line)| candidate(i, line))
        .collect();

    let matchers = match Platform::parse(spec) {
        Ok(wanted) => {
            check_parsed(spec, &wanted);
            vec![
                PlatformMatcher::only(wanted.clone()),
                PlatformMatcher::any_of(vec![wanted]),
            ]
        }
        Err(error) => {
            assert!(!error.to_string().contains('\n'));
            vec![PlatformMatcher::all()]
        }
    };
    for matcher in &matchers {
        check_best_match(matcher, &candidates);
    }
    for descriptor in &candidates {
        if let Some(platform) = hoist_oci::manifest::platform_of(descriptor) {
            // Whatever an index says, its platform can be shown and normalized.
            let _ = platform.to_string();
            let normalized = platform.normalized();
            assert_eq!(normalized.normalized(), normalized);
        }
    }
});

fn check_parsed(spec: &str, p: &Platform) {
    assert_eq!(
        &p.normalized(),
        p,
        "{spec:?} parses to a platform not normalized"
    );
    let shown = p.to_string();
    let again = Platform::parse(&shown)
        .unwrap_or_else(|e| panic!("{spec:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(&again, p, "{spec:?} -> {shown:?}");
    let spec_form = Platform::from(&p.to_spec());
    assert_eq!(&spec_form, p, "{spec:?}: oci-spec conversion changes it");
    assert_eq!(
        PlatformMatcher::only(p.clone()).rank(p),
        Some(0),
        "{spec:?}"
    );
    assert_eq!(PlatformMatcher::any_of(vec![p.clone()]).rank(p), Some(0));
    assert_eq!(PlatformMatcher::all().rank(p), Some(0));
}

fn candidate(i: usize, line: &str) -> Descriptor {
    let mut descriptor = Descriptor::new(
        MediaType::ImageManifest,
        i as u64,
        sha256_digest(line.as_bytes()),
    );
    if !line.is_empty() {
        let mut parts = line.splitn(3, '/');
        let os = parts.next().unwrap_or_default();
        let arch = parts.next().unwrap_or_default();
        let variant = parts.next();
        descriptor.set_platform(Some(Platform::new(os, arch, variant).to_spec()));
    }
    descriptor
}

fn check_best_match(matcher: &PlatformMatcher, candidates: &[Descriptor]) {
    let best = matcher.best_match(candidates);
    let expected = candidates
        .iter()
        .filter(|d| match hoist_oci::manifest::platform_of(d) {
            None => true,
            Some(p) => matcher.matches(&p),
        })
        .count();
    assert_eq!(best.len(), expected);
    let ranks: Vec<usize> = best
        .iter()
        .map(|d| match hoist_oci::manifest::platform_of(d) {
            None => usize::MAX,
            Some(p) => matcher.rank(&p).expect("best_match returns only matches"),
        })
        .collect();
    assert!(ranks.is_sorted(), "best_match is not best first: {ranks:?}");
}
