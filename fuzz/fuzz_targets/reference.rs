//! `hoist_oci::Reference::parse` on arbitrary text, and the properties every
//! reference that parses must keep: its display form parses back to itself,
//! its familiar name and its name parse back to the same repository, and
//! re-tagging or pinning it yields valid references.

#![no_main]

use hoist_oci::{Reference, sha256_digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = match Reference::parse(text) {
        Ok(reference) => reference,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };

    let shown = reference.to_string();
    let again = Reference::parse(&shown)
        .unwrap_or_else(|e| panic!("{text:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(again, reference, "{text:?} -> {shown:?}");
    assert_eq!(again.to_string(), shown);

    assert!(reference.tag().is_some() || reference.digest().is_some());
    assert!(!reference.object().is_empty());
    assert_eq!(
        reference.name(),
        format!("{}/{}", reference.domain(), reference.repository())
    );

    let name = Reference::parse(&reference.name())
        .unwrap_or_else(|e| panic!("{text:?}: name {:?} does not parse: {e}", reference.name()));
    assert_eq!(name.name(), reference.name(), "{text:?}");

    let familiar = reference.familiar_name();
    let short = Reference::parse(&familiar)
        .unwrap_or_else(|e| panic!("{text:?}: familiar name {familiar:?} does not parse: {e}"));
    assert_eq!(short.name(), reference.name(), "{text:?} -> {familiar:?}");

    if let Some(tag) = reference.tag() {
        let retagged = reference.with_tag(tag).expect("a parsed tag is valid");
        assert_eq!(retagged.tag(), Some(tag));
        assert_eq!(retagged.digest(), None);
        assert_eq!(Reference::parse(&retagged.to_string()).unwrap(), retagged);
    }
    let pinned = reference.with_digest(sha256_digest(text.as_bytes()));
    assert_eq!(Reference::parse(&pinned.to_string()).unwrap(), pinned);
    assert_eq!(pinned.object(), pinned.digest().unwrap().to_string());

    // Only consistency: loopback is a property of the domain alone.
    assert_eq!(reference.is_loopback(), name.is_loopback());
    assert!(!reference.api_host().is_empty());
});
