//! HTTP proxies from the environment, as curl and Go read them:
//! `HTTPS_PROXY` for https registries (tunnelled with `CONNECT`, so the
//! proxy sees neither credentials nor content), `HTTP_PROXY` for http ones,
//! `ALL_PROXY` for both, each also in lower case (lower case wins, as in
//! curl), with `user:pass@` in the proxy URL for proxy authentication.
//! `NO_PROXY` lists hosts that go direct: `*`, host names (a name matches
//! its subdomains; a leading `.` is allowed), IP addresses, CIDR ranges, and
//! any of these with `:port`.
//!
//! Loopback registries go direct unless `NO_PROXY` is set (even to the
//! empty string): then it alone decides, which is how a proxy in front of a
//! registry on this machine is configured.

use std::net::IpAddr;

use url::Url;

/// The proxy settings read from the environment once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProxyConfig {
    http: Option<Url>,
    https: Option<Url>,
    /// `None`: `NO_PROXY` unset; loopback hosts go direct.
    no_proxy: Option<Vec<String>>,
}

impl ProxyConfig {
    /// Reads the variables through `get` (the process environment in
    /// production; a map in tests).
    pub(crate) fn from_env(get: impl Fn(&str) -> Option<String>) -> ProxyConfig {
        let var = |name: &str| {
            get(&name.to_ascii_lowercase())
                .or_else(|| get(&name.to_ascii_uppercase()))
                .filter(|v| !v.trim().is_empty())
        };
        let parse = |value: Option<String>| {
            value.and_then(|v| {
                let v = v.trim();
                // `host:port` without a scheme means an http proxy, as in curl.
                let with_scheme = if v.contains("://") {
                    v.to_string()
                } else {
                    format!("http://{v}")
                };
                match Url::parse(&with_scheme) {
                    Ok(url) => Some(url),
                    Err(error) => {
                        tracing::warn!(%error, "ignoring an unparsable proxy URL");
                        None
                    }
                }
            })
        };
        let all = parse(var("all_proxy"));
        let no_proxy = get("no_proxy").or_else(|| get("NO_PROXY")).map(|list| {
            list.split(',')
                .map(|entry| entry.trim().to_ascii_lowercase())
                .filter(|entry| !entry.is_empty())
                .collect()
        });
        ProxyConfig {
            http: parse(var("http_proxy")).or_else(|| all.clone()),
            https: parse(var("https_proxy")).or(all),
            no_proxy,
        }
    }

    /// Whether any proxy is configured at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy for `url`, or `None` to go direct.
    pub(crate) fn proxy_for(&self, url: &Url) -> Option<Url> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let port = url.port_or_known_default();
        match &self.no_proxy {
            None if is_loopback(&host) => None,
            None => Some(proxy.clone()),
            Some(list) if list.iter().any(|entry| bypasses(entry, &host, port)) => None,
            Some(_) => Some(proxy.clone()),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether one `NO_PROXY` entry sends `host:port` direct.
fn bypasses(entry: &str, host: &str, port: Option<u16>) -> bool {
    if entry == "*" {
        return true;
    }
    // `host:port`, `[v6]:port`, or a bare host / CIDR.
    let (name, entry_port) = split_port(entry);
    if let Some(entry_port) = entry_port
        && Some(entry_port) != port
    {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if let Some((network, bits)) = name.split_once('/') {
        return match (
            network.parse::<IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<IpAddr>(),
        ) {
            (Ok(network), Ok(bits), Ok(ip)) => in_cidr(ip, network, bits),
            _ => false,
        };
    }
    if let (Ok(a), Ok(b)) = (name.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        return a == b;
    }
    let name = name.trim_start_matches("*.").trim_start_matches('.');
    host == name || host.ends_with(&format!(".{name}"))
}

fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((v6, after)) = rest.split_once(']') {
            return (v6, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
        return (entry, None);
    }
    match entry.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_cidr(ip: IpAddr, network: IpAddr, bits: u32) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> ProxyConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyConfig::from_env(|name| map.get(name).cloned())
    }

    fn via(config: &ProxyConfig, url: &str) -> Option<String> {
        config
            .proxy_for(&Url::parse(url).unwrap())
            .map(|u| u.to_string())
    }

    #[test]
    fn scheme_picks_the_variable_and_lower_case_wins() {
        let c = config(&[
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("HTTP_PROXY", "proxy.corp:8080"),
        ]);
        assert_eq!(
            via(&c, "https://reg.io/v2/").as_deref(),
            Some("http://lower:3128/")
        );
        assert_eq!(
            via(&c, "http://reg.io/v2/").as_deref(),
            Some("http://proxy.corp:8080/")
        );
        let all = config(&[("ALL_PROXY", "http://u:p@all:1")]);
        assert_eq!(
            via(&all, "https://reg.io/").as_deref(),
            Some("http://u:p@all:1/")
        );
        assert!(config(&[]).is_empty());
    }

    #[test]
    fn loopback_goes_direct_unless_no_proxy_is_set() {
        let c = config(&[("HTTPS_PROXY", "http://p:1"), ("HTTP_PROXY", "http://p:1")]);
        assert_eq!(via(&c, "http://127.0.0.1:5000/v2/"), None);
        assert_eq!(via(&c, "https://localhost/v2/"), None);
        assert_eq!(via(&c, "https://[::1]:5000/v2/"), None);
        let forced = config(&[("HTTP_PROXY", "http://p:1"), ("NO_PROXY", "")]);
        assert!(via(&forced, "http://127.0.0.1:5000/v2/").is_some());
    }

    #[test]
    fn no_proxy_entries() {
        let c = config(&[
            ("HTTPS_PROXY", "http://p:1"),
            (
                "no_proxy",
                "internal.corp, .svc, 10.0.0.0/8, 192.168.1.7, reg.io:5000, [fd00::1]",
            ),
        ]);
        assert_eq!(via(&c, "https://internal.corp/"), None);
        assert_eq!(via(&c, "https://a.internal.corp/"), None);
        assert!(via(&c, "https://notinternal.corp/").is_some());
        assert_eq!(via(&c, "https://x.svc/"), None);
        assert_eq!(via(&c, "https://10.1.2.3/"), None);
        assert!(via(&c, "https://11.1.2.3/").is_some());
        assert_eq!(via(&c, "https://192.168.1.7/"), None);
        assert_eq!(via(&c, "https://reg.io:5000/"), None);
        assert!(via(&c, "https://reg.io/").is_some());
        assert_eq!(via(&c, "https://[fd00::1]/"), None);
        assert!(
            via(&c, "https://127.0.0.1/").is_some(),
            "NO_PROXY set: it alone decides"
        );
        let star = config(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", "*")]);
        assert_eq!(via(&star, "https://reg.io/"), None);
    }
}
