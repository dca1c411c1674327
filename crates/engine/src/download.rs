//! Moving bytes: a blob from the registry into the content store, streamed
//! through a bounded channel to a blocking writer, resumed at the ingest's
//! offset after a broken stream, verified on commit; and the in-process
//! deduplication that makes concurrent pulls of one blob fetch it once.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hoist_content::{Committed, Expected, Writer};
use hoist_metadata::Labels;
use hoist_oci::media_type::{self, Kind};
use hoist_oci::{Descriptor, Digest};
use tokio::sync::{mpsc, watch};

use crate::feed::{End, Feed, Source};
use crate::fetch::Session;
use crate::progress::{BlobKind, Event};
use crate::{Error, Result};

/// Progress for a blob is reported at most once per this many bytes, so a
/// fast link does not flood the channel...
const PROGRESS_STEP: u64 = 256 << 10;

/// ...or when this long passed since the last report, so a slow but moving
/// download still shows (and a progress timeout sees) that it moves.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// How many received chunks may wait for the disk, per download. A chunk
/// is a slice of hyper's read buffer and keeps all of it (up to about
/// 400 KiB) alive until written: 16 of them made 23 MB of a 5-layer pull's
/// peak heap with three downloads at once, 3 still 14 MB (heaptrack); with
/// one, the disk thread still has the next chunk ready when it finishes one.
const CHUNKS_IN_FLIGHT: usize = 1;
/// One async lock per blob being fetched in this process. The content
/// store's ingest lock already keeps processes apart; this keeps tasks of
/// one process from even asking the registry twice (a manifest has no
/// ingest to wait on), and waiting on it holds no thread. The holder
/// publishes its byte count, so a pull waiting for another pull's download
/// still reports progress (and no progress timeout takes it for stalled).
#[derive(Default)]
pub(crate) struct InFlight {
    entries: Mutex<HashMap<Digest, Weak<Entry>>>,
}

struct Entry {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Bytes of the blob the holder has stored so far.
    progress: watch::Sender<u64>,
}

/// This task's turn at a blob: no other task of the process fetches it
/// while the guard lives.
pub(crate) struct Turn {
    entry: Arc<Entry>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Turn {
    /// Tells the tasks waiting for this blob how far the download is.
    fn report(&self, current: u64) {
        self.entry.progress.send_replace(current);
    }
}

impl InFlight {
    /// Waits for this process's turn at `digest`; while another task holds
    /// it, `waiting` is called with that task's byte count as it moves.
    pub(crate) async fn turn(&self, digest: &Digest, mut waiting: impl FnMut(u64)) -> Turn {
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.retain(|_, weak| weak.strong_count() > 0);
            match entries.get(digest).and_then(Weak::upgrade) {
                Some(entry) => entry,
                None => {
                    let entry = Arc::new(Entry {
                        lock: Arc::new(tokio::sync::Mutex::new(())),
                        progress: watch::channel(0).0,
                    });
                    entries.insert(digest.clone(), Arc::downgrade(&entry));
                    entry
                }
            }
        };
        let mut moved = entry.progress.subscribe();
        let locked = entry.lock.clone().lock_owned();
        tokio::pin!(locked);
        loop {
            tokio::select! {
                guard = &mut locked => {
                    return Turn { entry, _guard: guard };
                }
                Ok(()) = moved.changed() => waiting(*moved.borrow_and_update()),
            }
        }
    }
}

/// Whether opening an ingest waits for another writer of the blob.
#[derive(Clone, Copy)]
enum Wait {
    Block,
    Try,
}

/// What opening a blob's ingest found; short-lived, so the writer is not
/// boxed.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per download, never stored"
)]
enum Opened {
    /// The ingest is ours to write.
    Writer(Writer),
    /// Another writer holds it (only with [`Wait::Try`]).
    Busy,
    /// The blob is stored: someone finished it.
    Stored,
}

/// A blob to download, with its role in the image.
#[derive(Clone)]
pub(crate) struct Pending {
    pub(crate) descriptor: Descriptor,
    pub(crate) kind: BlobKind,
    /// Fetched from the descriptor's URLs rather than the registry.
    pub(crate) foreign: bool,
}

impl Pending {
    pub(crate) fn new(descriptor: Descriptor, kind: BlobKind) -> Pending {
        Pending {
            descriptor,
            kind,
            foreign: false,
        }
    }
}

impl Session<'_> {
    /// Fetches an index or manifest into the content store (or reads the
    /// stored copy) and returns its body and the bytes downloaded.
    pub(crate) async fn fetch_manifest(&self, descriptor: &Descriptor) -> Result<(Bytes, u64)> {
        let digest = descriptor.digest().clone();
        let kind = match media_type::classify(descriptor.media_type().as_ref()) {
            Kind::Index => BlobKind::Index,
            Kind::Manifest => BlobKind::Manifest,
            Kind::Schema1Manifest => return Err(self.schema1_refused(descriptor)),
            _ => BlobKind::Other,
        };
        if self.engine.content.contains(&digest) {
            // Up to the manifest bound read and hashed again: off the runtime.
            let store = self.engine.content.clone();
            let stored = digest.clone();
            let limit = self.engine.max_manifest_size();
            let body = self
                .blocking(move || store.read_blob(&stored, limit))
                .await??;
            self.progress.send(Event::AlreadyExists {
                digest,
                kind,
                size: descriptor.size(),
            });
            return Ok((body.into(), 0));
        }
        self.protect(&digest).await?;
        let in_flight = self.engine.shared.in_flight.turn(&digest, |_| {}).await;
        if self.engine.content.contains(&digest) {
            // Another pull of this process stored it meanwhile.
            drop(in_flight);
            return Box::pin(self.fetch_manifest(descriptor)).await;
        }
        let body = self
            .resolver
            .fetch_manifest(&self.repository, descriptor)
            .await?;
        self.store_small(descriptor, body.clone()).await?;
        drop(in_flight);
        self.progress.send(Event::Done {
            digest,
            kind,
            size: descriptor.size(),
        });
        Ok((body.clone(), body.len() as u64))
    }

    /// Writes a small blob held in memory (a manifest, a converted config)
    /// into the content store, verified like any other.
    pub(crate) async fn store_small(&self, descriptor: &Descriptor, body: Bytes) -> Result<()> {
        let store = self.engine.content.clone();
        let expected = expected_of(descriptor);
        let ingest = ingest_ref(descriptor);
        self.blocking(move || -> Result<Committed> {
            let expected_digest = expected.digest.clone();
            match store.writer(&ingest, expected) {
                Ok(mut writer) => {
                    writer.truncate(0)?;
                    writer.write_all(&body).map_err(|source| Error::Write {
                        digest: expected_digest.to_string(),
                        source,
                    })?;
                    Ok(writer.commit()?)
                }
                Err(hoist_content::Error::AlreadyExists(_)) => Ok(Committed::AlreadyExists),
                Err(error) => Err(error.into()),
            }
        })
        .await??;
        Ok(())
    }

    /// Downloads one config or layer into the content store, streaming,
    /// resuming after broken connections at the ingest's offset. Returns the
    /// bytes downloaded (0 when the blob was already stored). When the pull
    /// unpacks as it downloads, the blob's feed tells the unpacker where the
    /// bytes are and when they are stored.
    pub(crate) async fn fetch_blob(&self, pending: &Pending) -> Result<u64> {
        let source = self
            .feeds
            .as_ref()
            .map(|feeds| feeds.source(pending.descriptor.digest()));
        let downloaded = self
            .fetch_blob_fed(pending, source.as_ref().map(Source::feed))
            .await?;
        if let Some(source) = source {
            source.end(End::Stored);
        }
        Ok(downloaded)
    }

    async fn fetch_blob_fed(&self, pending: &Pending, feed: Option<&Arc<Feed>>) -> Result<u64> {
        let descriptor = &pending.descriptor;
        let digest = descriptor.digest().clone();
        let size = descriptor.size();
        let already = || async {
            self.progress.send(Event::AlreadyExists {
                digest: digest.clone(),
                kind: pending.kind,
                size,
            });
            self.record_content(descriptor, Labels::new()).await?;
            Ok(0)
        };
        if self.engine.content.contains(&digest) {
            return already().await;
        }
        // Another pull of this process fetching the same blob finishes
        // first; then it is stored and this one downloads nothing. Neither
        // this nor the download slot is preceded by an await that could
        // reorder the blobs, so slots go out in the image's order.
        let turn = self
            .engine
            .shared
            .in_flight
            .turn(&digest, |current| {
                self.progress.send(Event::Downloading {
                    digest: digest.clone(),
                    kind: pending.kind,
                    current,
                    total: size,
                });
            })
            .await;
        if self.engine.content.contains(&digest) {
            return already().await;
        }
        let mut permit = self.download_slot().await?;
        self.protect(&digest).await?;
        let writer = match self.open_writer(descriptor, Wait::Try).await? {
            Opened::Writer(writer) => writer,
            Opened::Stored => return already().await,
            Opened::Busy => {
                // Another process is downloading this blob: wait for it
                // without holding a download slot others could use.
                drop(permit);
                let writer = match self.open_writer(descriptor, Wait::Block).await? {
                    Opened::Writer(writer) => writer,
                    _ => return already().await,
                };
                permit = self.download_slot().await?;
                writer
            }
        };
        let _permit = permit;
        let mut resumed_at = writer.offset();
        match self.download(pending, writer, &turn, feed).await {
            Ok(()) => {}
            // A resumed ingest may hold bytes of an earlier, corrupt download;
            // the failed commit threw them away, so start once more from 0.
            Err(Error::Content(
                hoist_content::Error::DigestMismatch { .. }
                | hoist_content::Error::SizeMismatch { .. },
            )) if resumed_at > 0 => {
                tracing::warn!(%digest, resumed_at, "resumed ingest did not verify; downloading again");
                let Opened::Writer(writer) = self.open_writer(descriptor, Wait::Block).await?
                else {
                    return already().await;
                };
                resumed_at = writer.offset();
                self.download(pending, writer, &turn, feed).await?;
            }
            Err(error) => return Err(error),
        }
        self.record_content(descriptor, Labels::new()).await?;
        self.progress.send(Event::Done {
            digest,
            kind: pending.kind,
            size,
        });
        Ok(size.saturating_sub(resumed_at))
    }

    /// One of the engine's `max_concurrent_downloads` slots.
    async fn download_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.engine
            .shared
            .downloads
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Task(e.to_string()))
    }

    /// Opens the blob's ingest. Every writer of a blob, in this process or
    /// another, takes the same ingest lock; with [`Wait::Block`] this waits
    /// for the current holder, with [`Wait::Try`] it reports it busy.
    async fn open_writer(&self, descriptor: &Descriptor, wait: Wait) -> Result<Opened> {
        let store = self.engine.content.clone();
        let expected = expected_of(descriptor);
        let ingest = ingest_ref(descriptor);
        let opened = self
            .blocking(move || match wait {
                Wait::Block => store.writer(&ingest, expected).map(Some),
                Wait::Try => store.try_writer(&ingest, expected),
            })
            .await?;
        match opened {
            Ok(Some(writer)) => Ok(Opened::Writer(writer)),
            Ok(None) => Ok(Opened::Busy),
            Err(hoist_content::Error::AlreadyExists(_)) => Ok(Opened::Stored),
            Err(error) => Err(error.into()),
        }
    }

    /// Streams the rest of a blob into its ingest, resuming at the ingest's
    /// offset after a broken stream, then verifies and commits it. An ingest
    /// that already holds every byte (a pull killed before its commit) is
    /// committed without touching the network.
    async fn download(
        &self,
        pending: &Pending,
        mut writer: Writer,
        turn: &Turn,
        feed: Option<&Arc<Feed>>,
    ) -> Result<()> {
        let digest = pending.descriptor.digest().clone();
        if let Some(feed) = feed {
            feed.attach(writer.data_path(), writer.offset())
                .map_err(|source| Error::Io {
                    path: writer.data_path().to_owned(),
                    source,
                })?;
        }
        // One retry budget for the whole download: a failed request and a
        // broken stream both spend it, and each retry resumes at the offset.
        let policy = self.resolver.retry_policy().clone();
        let mut attempt = 1;
        let mut first_failure = None;
        while writer.offset() < pending.descriptor.size() {
            let offset = writer.offset();
            let (returned, outcome) = self
                .stream_attempt(pending, writer, offset, turn, feed)
                .await?;
            writer = returned;
            match outcome {
                Ok(()) => break,
                Err(error)
                    if is_retryable(&error)
                        && policy
                            .allows(attempt, *first_failure.get_or_insert_with(Instant::now)) =>
                {
                    let retry_after = match &error {
                        Error::Remote(error) => error.retry_after(),
                        _ => None,
                    };
                    let delay = policy.delay(attempt, retry_after);
                    attempt += 1;
                    tracing::debug!(%digest, attempt, %error, ?delay, "blob download failed; resuming");
                    self.progress.send(Event::Retrying {
                        digest: digest.clone(),
                        attempt,
                        offset: writer.offset(),
                        delay,
                    });
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
        self.progress.send(Event::Verifying {
            digest,
            kind: pending.kind,
        });
        self.blocking(move || writer.commit()).await??;
        Ok(())
    }

    /// One attempt at streaming a blob from `offset` into `writer`. The
    /// network side runs here; the disk side runs on a blocking thread fed
    /// through a small bounded channel, so memory stays bounded and the
    /// runtime never blocks on disk. The writer comes back either way, so a
    /// failed attempt can resume where it stopped.
    async fn stream_attempt(
        &self,
        pending: &Pending,
        mut writer: Writer,
        offset: u64,
        turn: &Turn,
        feed: Option<&Arc<Feed>>,
    ) -> Result<(Writer, Result<()>)> {
        let descriptor = &pending.descriptor;
        let stream = if pending.foreign {
            self.resolver.fetch_foreign(descriptor, offset).await
        } else {
            self.resolver
                .fetch_blob_once(&self.repository, descriptor, offset)
                .await
        };
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(error) => return Ok((writer, Err(error.into()))),
        };
        self.progress.send(Event::Fetching {
            digest: descriptor.digest().clone(),
            kind: pending.kind,
            host: stream.host().to_string(),
        });
        if stream.offset() != offset {
            // The server ignored our Range request and starts from the top.
            let start = stream.offset();
            writer = self
                .blocking(move || -> Result<Writer> {
                    writer.truncate(start)?;
                    Ok(writer)
                })
                .await??;
            if let Some(feed) = feed {
                feed.advance(writer.offset());
            }
        }

        let (chunks, mut received) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
        let feed = feed.cloned();
        let sink = self.blocking(move || {
            let mut result = Ok(());
            while let Some(chunk) = received.blocking_recv() {
                if let Err(error) = writer.write_all(&chunk) {
                    result = Err(error);
                    break;
                }
                if let Some(feed) = &feed {
                    feed.advance(writer.offset());
                }
            }
            (writer, result)
        });

        let total = descriptor.size();
        let mut current = stream.offset();
        let mut reported = current;
        let mut reported_at = Instant::now();
        let pumped: Result<()> = async {
            while let Some(chunk) = stream.next_chunk().await? {
                current += chunk.len() as u64;
                if current > total {
                    return Err(Error::InvalidBlob {
                        digest: descriptor.digest().to_string(),
                        detail: format!(
                            "registry sent more than the {total} bytes the descriptor names"
                        ),
                    });
                }
                if chunks.send(chunk).await.is_err() {
                    // The disk side stopped; its error is reported below.
                    break;
                }
                if current - reported >= PROGRESS_STEP
                    || current == total
                    || reported_at.elapsed() >= PROGRESS_INTERVAL
                {
                    reported = current;
                    reported_at = Instant::now();
                    turn.report(current);
                    self.progress.send(Event::Downloading {
                        digest: descriptor.digest().clone(),
                        kind: pending.kind,
                        current,
                        total,
                    });
                }
            }
            Ok(())
        }
        .await;
        drop(chunks);
        let (writer, written) = sink.await?;
        if let Err(source) = written {
            // A disk error (full disk, I/O error) is not worth a retry.
            return Err(Error::Write {
                digest: descriptor.digest().to_string(),
                source,
            });
        }
        Ok((writer, pumped))
    }
}

/// The ingest of a blob is named by its digest, so every writer of that
/// blob, in this process or another, takes the same ingest lock.
fn ingest_ref(descriptor: &Descriptor) -> String {
    descriptor.digest().to_string()
}

fn expected_of(descriptor: &Descriptor) -> Expected {
    Expected {
        digest: descriptor.digest().clone(),
        size: Some(descriptor.size()),
    }
}

/// Whether a failed blob stream is worth resuming: network trouble is,
/// a lying registry or a full disk is not.
fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Remote(error) => error.is_retryable(),
        _ => false,
    }
}
