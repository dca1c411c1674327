//! Small helpers shared by the servers: free ports, running blocking code off
//! any async runtime, a tokio runtime that serves an axum router, and the
//! lists in which servers record what they saw.

use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Picks a free TCP port on 127.0.0.1 by binding port 0 and dropping the
/// listener.
///
/// This races with every other process on the machine: the port may be taken
/// between our drop and the child's bind. Callers that hand the port to a
/// child process retry once when the child reports the address in use.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Runs `f` on a fresh thread and returns its result, re-raising its panic.
///
/// `reqwest::blocking` panics when used from inside a tokio runtime; running it
/// on a plain thread makes the testkit usable from `#[tokio::test]`s too.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Polls `probe` every 20 ms until it returns `Some`, for at most `deadline`.
/// Returns `None` on timeout.
pub(crate) fn poll_until<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if start.elapsed() >= deadline {
            return None;
        }
        // A polling interval, not a stand-in for synchronisation: the probe
        // decides readiness.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An axum router served on 127.0.0.1 (a port chosen by the kernel, no race)
/// by a tokio runtime this value owns; dropping it shuts the runtime down,
/// which aborts the server and every connection task.
pub(crate) struct Background {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
}

impl Background {
    /// Binds 127.0.0.1:0 and serves `router` on a new runtime.
    pub(crate) fn serve(name: &str, router: axum::Router) -> Background {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("hoist-testkit-{name}"))
            .enable_all()
            .build()
            .expect("build tokio runtime");
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).expect("tokio listener")
        };
        runtime.spawn(async move {
            // Errors here mean the runtime is going away; nothing to report.
            let _ = axum::serve(listener, router).await;
        });
        Background {
            runtime: Some(runtime),
            addr,
        }
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Does not block, so dropping inside an async test is fine.
            runtime.shutdown_background();
        }
    }
}

/// An append-only list that a server's handlers add to while the test reads
/// copies of it: the requests a server saw, the scopes asked for, the
/// moments bodies stalled.
pub(crate) struct Recorded<T>(Mutex<Vec<T>>);

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Recorded(Mutex::new(Vec::new()))
    }
}

impl<T: Clone> Recorded<T> {
    /// Records `item` after everything recorded so far.
    pub(crate) fn push(&self, item: T) {
        self.0.lock().expect("recorded list lock").push(item);
    }

    /// Records `items`, in order, after everything recorded so far.
    pub(crate) fn extend(&self, items: impl IntoIterator<Item = T>) {
        self.0.lock().expect("recorded list lock").extend(items);
    }

    /// Everything recorded so far, in order.
    pub(crate) fn all(&self) -> Vec<T> {
        self.0.lock().expect("recorded list lock").clone()
    }
}
