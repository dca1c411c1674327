//! `hoist_remote::hosts::parse` on arbitrary `hosts.toml` text.
//!
//! Checked: a file that parses gives its mirrors then exactly one server,
//! last; every host names an authority; paths resolve under the file's
//! directory; request paths stay paths.

#![no_main]

use std::path::Path;

use hoist_remote::hosts;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "/etc/hoist/certs.d/registry.example:5000/hosts.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(hosts) = hosts::parse(text, Path::new(FILE), "registry.example:5000") else {
        return;
    };
    let (server, mirrors) = hosts.split_last().expect("the server is always there");
    assert!(server.is_server);
    assert!(mirrors.iter().all(|h| !h.is_server));
    let dir = Path::new(FILE).parent().unwrap();
    for host in &hosts {
        assert!(!host.authority.is_empty());
        assert!(!host.authority.contains('/'), "{:?}", host.authority);
        if let Some(scheme) = &host.scheme {
            assert!(scheme == "http" || scheme == "https");
        }
        assert!(
            host.path.is_empty() || host.path.starts_with('/'),
            "{:?}",
            host.path
        );
        let files = host.ca.iter().chain(
            host.client
                .iter()
                .flat_map(|(cert, key)| std::iter::once(cert).chain(key)),
        );
        for file in files {
            assert!(
                file.starts_with(dir) || file.is_absolute(),
                "{}",
                file.display()
            );
        }
        for api_path in ["/v2/", "/v2/library/alpine/manifests/latest"] {
            let path = host.request_path(api_path, "registry.example:5000");
            assert!(path.starts_with('/'), "{path:?}");
            assert_eq!(
                path.ends_with("ns=registry.example%3A5000"),
                !host.is_server
            );
        }
    }
});
