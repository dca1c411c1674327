//! The `WWW-Authenticate` parser (`hoist_remote`'s `auth`, through the
//! `fuzzing` feature) on arbitrary header values.
//!
//! Checked: schemes and parameter names are non-empty lowercase tokens; a
//! token68 holds no separator; and challenges of the RFC 7235 shape,
//! written back out in canonical form, parse to the same challenges. (The
//! parser also reads junk leniently, e.g. a token68 of `=f`; junk need not
//! read back the same, it must only not panic.)

#![no_main]

use std::collections::HashMap;

use hoist_remote::fuzzing::parse_www_authenticate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(challenges) = parse_www_authenticate(value) else {
        return;
    };
    for (scheme, params) in &challenges {
        assert!(is_lower_token(scheme), "{value:?}: scheme {scheme:?}");
        for (name, param) in params {
            if name.is_empty() {
                assert!(
                    !param.is_empty() && !param.contains(',') && param.trim() == param,
                    "{value:?}: token68 {param:?}"
                );
            } else {
                assert!(is_lower_token(name), "{value:?}: parameter name {name:?}");
            }
        }
    }
    let well_formed = challenges
        .iter()
        .all(|(_, params)| params.get("").is_none_or(|t| is_token68(t)));
    if !well_formed {
        return;
    }
    let written = write(&challenges);
    let again = parse_www_authenticate(&written)
        .unwrap_or_else(|e| panic!("{value:?} rewritten as {written:?} does not parse: {e}"));
    assert_eq!(again, challenges, "{value:?} rewritten as {written:?}");
});

fn is_lower_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            (c.is_ascii_alphanumeric() && !c.is_ascii_uppercase()) || "!#$%&'*+-.^_`|~".contains(c)
        })
}

/// RFC 7235: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

/// `scheme [token68][, name="value"]…`, challenges separated by `, `.
fn write(challenges: &[(String, HashMap<String, String>)]) -> String {
    let mut out = Vec::new();
    for (scheme, params) in challenges {
        let mut challenge = scheme.clone();
        let mut named: Vec<_> = params.iter().filter(|(n, _)| !n.is_empty()).collect();
        named.sort();
        let mut parts = Vec::new();
        if let Some(token68) = params.get("") {
            parts.push(token68.clone());
        }
        for (name, value) in named {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
            parts.push(format!("{name}=\"{escaped}\""));
        }
        if !parts.is_empty() {
            challenge.push(' ');
            challenge.push_str(&parts.join(", "));
        }
        out.push(challenge);
    }
    out.join(", ")
}
