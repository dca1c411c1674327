//! HTTP proxies from the environment, through a real proxy server
//! (Debian's `tinyproxy`) on loopback: plain http registries through
//! `HTTP_PROXY`, TLS registries tunnelled with `CONNECT` through
//! `HTTPS_PROXY` with proxy credentials, and `NO_PROXY`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hoist_testkit::{Compression, Format, Registry, simple_image};

use crate::util::{
    TestEnv, assert_mentions, ca_cert_arg, failure, host_platform, serve_simple, success,
};

/// A running `tinyproxy` on 127.0.0.1, killed on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start(basic_auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("tinyproxy.log");
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Info\n\
             MaxClients 64\nAllow 127.0.0.1\nDisableViaHeader Yes\n",
            log.display()
        );
        if let Some((user, password)) = basic_auth {
            config.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let config_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is installed (apt-get install tinyproxy)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(credentials) => format!("http://{credentials}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The requests the proxy logged (`GET http://…`, `CONNECT host:port`).
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once("Request (file descriptor ").map(|(_, r)| r))
            .filter_map(|rest| rest.split_once("): ").map(|(_, r)| r.to_string()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pull_with(env: &TestEnv, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = env.hoist();
    command.arg("pull");
    for (name, value) in vars {
        command.env(name, value);
    }
    command.args(args).output().expect("run hoist")
}

#[test]
fn a_plain_http_registry_is_pulled_through_http_proxy() {
    let (registry, image, _) = serve_simple("via/proxy", "1.0");
    let proxy = Tinyproxy::start(None);
    let env = TestEnv::new();
    let output = pull_with(
        &env,
        // NO_PROXY set (empty): loopback registries use the proxy too.
        &[("HTTP_PROXY", &proxy.url(None)), ("NO_PROXY", "")],
        &["--plain-http", &registry.reference("via/proxy", "1.0")],
    );
    success(&output);
    let requests = proxy.requests();
    let origin = format!("http://{}/v2/via/proxy/", registry.host());
    for layer in image.layers() {
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with(&format!("GET {origin}blobs/{}", layer.digest))),
            "{requests:?}"
        );
    }
}

#[test]
fn a_tls_registry_is_tunnelled_through_an_authenticating_https_proxy() {
    let registry = Registry::tls();
    let image = simple_image(Format::Docker, Compression::Gzip, host_platform());
    registry.push(&image, "via/tunnel", "1.0");
    let proxy = Tinyproxy::start(Some(("squid", "cuttlefish")));
    let env = TestEnv::new();
    let ca = ca_cert_arg(&registry);
    let reference = registry.reference("via/tunnel", "1.0");

    // Through the proxy with `credentials`, its variables spelled as given:
    // hoist reads both spellings.
    let pull_through = |https_proxy: &str, no_proxy: &str, credentials: &str| {
        pull_with(
            &env,
            &[(https_proxy, &proxy.url(Some(credentials))), (no_proxy, "")],
            &["--tlscacert", &ca, &reference],
        )
    };

    failure(&pull_through("HTTPS_PROXY", "NO_PROXY", "squid:wrong"));
    assert!(env.image_names().is_empty());

    success(&pull_through("https_proxy", "no_proxy", "squid:cuttlefish"));
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("CONNECT {}", registry.host()))),
        "{requests:?}"
    );
    // Tunnelled: the proxy never saw a registry path.
    assert!(!requests.iter().any(|r| r.contains("/v2/")), "{requests:?}");
}

#[test]
fn no_proxy_and_loopback_go_direct() {
    let (registry, _, _) = serve_simple("direct/app", "1.0");
    let proxy = Tinyproxy::start(None);
    let reference = registry.reference("direct/app", "1.0");

    let listed = TestEnv::new();
    success(&pull_with(
        &listed,
        &[
            ("HTTP_PROXY", &proxy.url(None)),
            ("NO_PROXY", &format!("example.com,{}", registry.host())),
        ],
        &["--plain-http", &reference],
    ));
    let loopback = TestEnv::new();
    success(&pull_with(
        &loopback,
        &[("HTTP_PROXY", &proxy.url(None))],
        &["--plain-http", &reference],
    ));
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());

    // And a proxy that is down is not silently skipped.
    drop(proxy);
    let down = TestEnv::new();
    let output = pull_with(
        &down,
        &[("HTTP_PROXY", "http://127.0.0.1:9"), ("NO_PROXY", "")],
        &["--plain-http", &reference],
    );
    assert_mentions(&failure(&output), &["127.0.0.1"]);
}
