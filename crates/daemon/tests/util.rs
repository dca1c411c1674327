//! Shared helpers: a running `hoistd` on a temporary root with its CRI and
//! Docker sockets and a metrics port, the `hoist` CLI on the same root, and
//! small waits that poll a condition against a deadline.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hoist_testkit::{StoreDir, run_ok};

/// Fails the test unless `text` contains `needle`, showing `text`.
#[track_caller]
pub(crate) fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

/// The `hoistd` binary under test.
pub(crate) const HOISTD: &str = env!("CARGO_BIN_EXE_hoistd");

/// How long a daemon may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `hoistd` process on a temporary root; killed (SIGKILL) on drop unless
/// stopped with [`Daemon::stop`].
pub(crate) struct Daemon {
    /// The temporary directory: the store root, the `HOME` and clean
    /// commands every process of the harness runs with, scratch paths.
    pub(crate) dir: StoreDir,
    child: Option<Child>,
    /// The CRI ImageService socket.
    pub(crate) cri_socket: PathBuf,
    /// The Docker Engine API socket.
    pub(crate) docker_socket: PathBuf,
    /// Where `/metrics` is served.
    pub(crate) metrics_addr: SocketAddr,
}

impl Daemon {
    /// A daemon with the default config (plus the sockets and metrics).
    pub(crate) fn start() -> Daemon {
        Daemon::start_with("")
    }

    /// A daemon whose config file holds `config` (TOML keys of
    /// `hoist_daemon::Config`; `root`, the sockets and `metrics_addr` are
    /// set by the harness through flags).
    pub(crate) fn start_with(config: &str) -> Daemon {
        let dir = StoreDir::new("hoistd-e2e-");
        let config_path = dir.path("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let metrics_addr = free_port();
        let mut daemon = Daemon {
            cri_socket: dir.path("run/cri.sock"),
            docker_socket: dir.path("run/docker.sock"),
            metrics_addr,
            dir,
            child: None,
        };
        let log = std::fs::File::create(daemon.log_path()).expect("create log");
        let child = daemon
            .dir
            .command(HOISTD)
            .arg("--config")
            .arg(&config_path)
            .arg("--root")
            .arg(daemon.dir.root())
            .arg("--cri-socket")
            .arg(&daemon.cri_socket)
            .arg("--docker-socket")
            .arg(&daemon.docker_socket)
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .env("HOIST_LOG", "info,hoist_daemon=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hoistd");
        daemon.child = Some(child);
        daemon.wait_until_serving();
        daemon
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = UnixStream::connect(&self.cri_socket).is_ok()
                && UnixStream::connect(&self.docker_socket).is_ok()
                && std::net::TcpStream::connect(self.metrics_addr).is_ok();
            if ready {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "hoistd exited with {status} before serving:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "hoistd did not serve within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `hoist --root <the daemon's root>`, for the CLI on the same store.
    pub(crate) fn hoist(&self) -> Command {
        let mut command = self.dir.command(hoist_binary());
        command.arg("--root").arg(self.dir.root());
        command
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path("hoistd.log")
    }

    /// What hoistd logged so far (stderr).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The process id, to send signals.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `GET /metrics` as text.
    pub(crate) fn scrape(&self) -> String {
        http_get(self.metrics_addr, "/metrics")
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub(crate) fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait for hoistd") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "hoistd did not exit within 30 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `hoist` CLI of this workspace's build, beside the test binary's
/// directory (`target/<profile>/deps/..`); `cargo nextest run --workspace`
/// builds it.
pub(crate) fn hoist_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let hoist = profile.join("hoist");
    assert!(
        hoist.exists(),
        "{} is missing: build the workspace (cargo build --workspace) first",
        hoist.display()
    );
    hoist
}

/// A loopback address with a port nobody listens on right now.
pub(crate) fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// A plain HTTP/1.0 GET on loopback, returning the body; panics on a
/// non-200 answer.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

/// Waits until `condition` holds, polling, or panics after `timeout` with
/// `what`.
pub(crate) fn wait_for(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `path` is a directory holding no entries.
pub(crate) fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

impl Daemon {
    /// Kills the daemon with SIGKILL, as a crash would, leaving its sockets
    /// behind.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill hoistd");
            child.wait().expect("reap hoistd");
        }
    }

    /// The image names the `hoist` CLI lists in the daemon's store
    /// (`hoist images ls -q`), sorted.
    pub(crate) fn cli_image_names(&self) -> Vec<String> {
        let stdout = run_ok(self.hoist().args(["images", "ls", "-q"]), "hoist images ls");
        let mut names: Vec<String> = stdout.lines().map(str::to_string).collect();
        names.sort();
        names
    }

    /// One request to the Docker Engine API socket: `(status, body)`, the
    /// body de-chunked. Bounded by a 60 s read timeout.
    pub(crate) fn docker_api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http_over_unix(&self.docker_socket, method, path, body)
    }
}

/// An HTTP/1.1 request on a unix socket with `Connection: close`; returns
/// the status and the whole body (chunked encoding decoded).
pub(crate) fn http_over_unix(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(socket, &request, Duration::from_secs(60))
}

/// Sends `request` (the whole HTTP text) on a unix socket and reads to the
/// end, each read bounded by `timeout`: the status and the body (chunked
/// encoding decoded).
pub(crate) fn exchange(socket: &Path, request: &str, timeout: Duration) -> (u16, String) {
    use std::io::Write;
    let mut stream = UnixStream::connect(socket).expect("connect to the socket");
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, rest) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return body;
        };
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}
