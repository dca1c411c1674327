//! A download as the unpacker follows it: the layer is applied while its
//! bytes arrive, read back from the ingest file behind the writer (from the
//! page cache, at the applier's own pace, so a slow applier never holds the
//! socket back and a resumed download continues under it unnoticed).
//!
//! The download side ([`Source`]) says where the ingest is, how far it is
//! written, and how it ended; the unpack side ([`Follower`]) reads up to the
//! written mark and blocks for more. Correctness rests on one rule: the
//! follower only ever reads the file the content store verifies and commits,
//! and any rewind of that file (a server that ignored a Range request, a
//! resumed ingest that failed verification) fails the follower, whose
//! half-applied snapshot is then discarded and the layer applied again from
//! the committed blob. A snapshot is committed only after the blob is.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use hoist_oci::Digest;

/// How a followed download ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The blob is in the content store, verified.
    Stored,
    /// It will not be: the download failed or was cancelled.
    Failed,
}

#[derive(Default)]
struct State {
    /// The ingest being written, once this pull writes it.
    file: Option<Arc<File>>,
    /// Bytes of the ingest written so far.
    written: u64,
    /// The ingest was cut below bytes a follower may have read.
    rewound: bool,
    end: Option<End>,
}

/// One blob's download, shared by its downloader and its followers.
#[derive(Default)]
pub(crate) struct Feed {
    state: Mutex<State>,
    changed: Condvar,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// The ingest at `path` holds `written` bytes and is this pull's to
    /// write. A second ingest (the first failed verification and was
    /// deleted) counts as a rewind.
    pub(crate) fn attach(&self, path: &Path, written: u64) -> io::Result<()> {
        let file = Arc::new(File::open(path)?);
        self.update(|state| {
            state.rewound |= state.file.is_some();
            state.file = Some(file);
            state.written = written;
        });
        Ok(())
    }

    /// The ingest now holds `written` bytes (fewer than before: a rewind).
    pub(crate) fn advance(&self, written: u64) {
        self.update(|state| {
            state.rewound |= written < state.written;
            state.written = written;
        });
    }

    /// Ends the feed, unless it has ended already.
    fn finish(&self, end: End) {
        self.update(|state| {
            state.end.get_or_insert(end);
        });
    }

    /// Whether the ingest was rewound under a follower, so what it applied
    /// cannot be trusted (the blob itself is still verified on commit).
    pub(crate) fn rewound(&self) -> bool {
        self.lock().rewound
    }

    /// Blocks until the download ends, and says how.
    pub(crate) fn wait_end(&self) -> End {
        let mut state = self.lock();
        loop {
            if let Some(end) = state.end {
                return end;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether the download has ended (progress for the applied bytes is
    /// reported only then, so renderers see a layer download, then extract).
    pub(crate) fn ended(&self) -> bool {
        self.lock().end.is_some()
    }

    /// A reader of the blob as it arrives, if this pull is writing its
    /// ingest; `None` once it ended without one (the blob was stored
    /// already, or another process fetched it): then read the store.
    /// Blocks until one of the two is known.
    pub(crate) fn follow(self: &Arc<Self>) -> Option<Follower> {
        let mut state = self.lock();
        loop {
            if state.file.is_some() && !state.rewound {
                return Some(Follower {
                    feed: self.clone(),
                    position: 0,
                });
            }
            if state.end.is_some() {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The downloader's end of a [`Feed`]. Dropping it without [`Source::end`]
/// (an error, a cancelled pull) ends the feed as failed, so no follower
/// waits forever.
pub(crate) struct Source {
    feed: Arc<Feed>,
}

impl Source {
    /// The feed, for the thread that writes the ingest.
    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// The download ended.
    pub(crate) fn end(self, end: End) {
        self.feed.finish(end);
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.feed.finish(End::Failed);
    }
}

/// Reads a blob from its ingest as the downloader writes it; EOF once the
/// blob is stored and every byte read. Fails if the download fails or the
/// ingest is rewound.
pub(crate) struct Follower {
    feed: Arc<Feed>,
    position: u64,
}

impl Read for Follower {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (file, available) = {
            let mut state = self.feed.lock();
            loop {
                if state.rewound || state.end == Some(End::Failed) {
                    return Err(io::Error::other(
                        "the layer's download restarted or failed while it was being applied",
                    ));
                }
                if state.written > self.position {
                    break;
                }
                if state.end == Some(End::Stored) {
                    return Ok(0);
                }
                state = self
                    .feed
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
            let file = state.file.clone().expect("a followed feed has its file");
            (file, state.written - self.position)
        };
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let n = file.read_at(&mut buf[..want], self.position)?;
        // 0 here means the file was cut under us; the rewind flag, set
        // with the cut, fails the next call.
        self.position += n as u64;
        Ok(n)
    }
}

/// The feeds of one pull's blobs, by digest.
#[derive(Default)]
pub(crate) struct Feeds {
    inner: Mutex<FeedsInner>,
}

#[derive(Default)]
struct FeedsInner {
    feeds: HashMap<Digest, Arc<Feed>>,
    /// Set once the pull's downloads are over: every feed not ended then,
    /// and every feed asked for later, ends so.
    closed: Option<End>,
}

impl Feeds {
    /// The feed of `digest`, made on first use.
    pub(crate) fn get(&self, digest: &Digest) -> Arc<Feed> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let closed = inner.closed;
        let feed = inner.feeds.entry(digest.clone()).or_default().clone();
        if let Some(end) = closed {
            feed.finish(end);
        }
        feed
    }

    /// The downloads are over: with [`End::Stored`] every blob this pull
    /// needed is in the store (a follower of a blob it never downloaded
    /// reads the store); with [`End::Failed`] none is to be waited for.
    pub(crate) fn close(&self, end: End) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.closed = Some(end);
        for feed in inner.feeds.values() {
            feed.finish(end);
        }
    }

    /// The downloader's end of `digest`'s feed.
    pub(crate) fn source(&self, digest: &Digest) -> Source {
        Source {
            feed: self.get(digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ingest() -> (tempfile::NamedTempFile, Arc<Feed>, Source) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let feed = Arc::new(Feed::default());
        let source = Source { feed: feed.clone() };
        (file, feed, source)
    }

    #[test]
    fn a_follower_reads_what_arrives_until_the_blob_is_stored() {
        let (mut file, feed, source) = ingest();
        file.write_all(b"hello ").unwrap();
        source.feed().attach(file.path(), 6).unwrap();
        let mut follower = feed.follow().expect("attached");
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            follower.read_to_end(&mut all).map(|_| all)
        });
        file.write_all(b"world").unwrap();
        source.feed().advance(11);
        source.end(End::Stored);
        assert_eq!(reader.join().unwrap().unwrap(), b"hello world");
    }

    #[test]
    fn a_rewind_fails_the_follower() {
        let (mut file, feed, source) = ingest();
        file.write_all(b"abc").unwrap();
        source.feed().attach(file.path(), 3).unwrap();
        let mut follower = feed.follow().unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(follower.read(&mut buf).unwrap(), 3);
        source.feed().advance(0);
        let error = follower.read(&mut buf).unwrap_err();
        assert!(error.to_string().contains("restarted"), "{error}");
        // And a new follower is not offered a rewound ingest.
        source.end(End::Stored);
        assert!(feed.rewound());
        assert!(feed.follow().is_none());
    }

    #[test]
    fn a_dropped_source_fails_waiting_followers() {
        let (mut file, feed, source) = ingest();
        file.write_all(b"abc").unwrap();
        source.feed().attach(file.path(), 3).unwrap();
        let mut follower = feed.follow().unwrap();
        let waiter = std::thread::spawn(move || {
            let mut all = Vec::new();
            follower.read_to_end(&mut all)
        });
        drop(source);
        assert!(waiter.join().unwrap().is_err());
        assert_eq!(feed.wait_end(), End::Failed);
    }

    #[test]
    fn a_blob_stored_without_this_pull_is_read_from_the_store() {
        let feed = Arc::new(Feed::default());
        let source = Source { feed: feed.clone() };
        let follower = {
            let feed = feed.clone();
            std::thread::spawn(move || feed.follow().is_none())
        };
        source.end(End::Stored);
        assert!(follower.join().unwrap());
        assert!(feed.ended());
    }

    #[test]
    fn closing_ends_every_feed_and_later_ones() {
        let feeds = Feeds::default();
        let a = hoist_oci::sha256_digest(b"a");
        let b = hoist_oci::sha256_digest(b"b");
        let early = feeds.get(&a);
        feeds.close(End::Failed);
        assert_eq!(early.wait_end(), End::Failed);
        assert_eq!(feeds.get(&b).wait_end(), End::Failed);
    }
}
