//! Small regular files finished on a second thread.
//!
//! On a layer of many small files the applying thread is the bottleneck,
//! and half of its time goes to a new file's data, times and `close`. So
//! the applying thread keeps everything that touches names (resolving the
//! parent, creating the file with `O_EXCL`, replacing what was there) and
//! hands the open file, with its data and the attributes creation did not
//! give, to this thread. Later entries are unaffected by what is still in
//! flight: they work on names, and a file unlinked or replaced meanwhile is
//! only an orphaned inode being written. Directory metadata, applied last,
//! waits for this thread to finish ([`Finisher::join`]).
//!
//! Each job carries its entry's number, so that when both threads fail the
//! error of the earlier entry is the one reported, as in a serial apply.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use rustix::fs::{Gid, Mode, Timestamps, Uid};

use crate::error::{Error, Result};
use crate::name::RootedPath;

/// Files handed over together: fewer wake-ups, and at most this many (times
/// three: gathering, queued, being finished) open files per layer.
const GROUP: usize = 32;

/// A batch's data buffer, shared by the files it holds; the last holder
/// hands it back to the reading thread for reuse.
#[derive(Clone)]
pub(super) struct SharedData {
    bytes: Option<Arc<Vec<u8>>>,
    recycle: mpsc::Sender<Vec<u8>>,
}

impl SharedData {
    pub(super) fn new(bytes: Vec<u8>, recycle: mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            bytes: Some(Arc::new(bytes)),
            recycle,
        }
    }

    pub(super) fn get(&self, range: Range<usize>) -> &[u8] {
        &self.bytes.as_ref().expect("present until dropped")[range]
    }
}

impl Drop for SharedData {
    fn drop(&mut self) {
        // `into_inner` gives the buffer to exactly one of its last holders.
        if let Some(bytes) = self.bytes.take().and_then(Arc::into_inner) {
            let _ = self.recycle.send(bytes);
        }
    }
}

/// A new file to finish: its data, then owner, mode and times, then close.
pub(super) struct Job {
    /// The entry's number in the stream.
    pub(super) index: u64,
    pub(super) path: RootedPath,
    pub(super) file: OwnedFd,
    pub(super) data: SharedData,
    pub(super) range: Range<usize>,
    /// Set when creation did not already give it.
    pub(super) owner: Option<(u32, u32)>,
    pub(super) mode: Option<u32>,
    pub(super) times: Timestamps,
}

impl Job {
    fn finish(self) -> Result<()> {
        let io_err = |e: std::io::Error| Error::io(self.path.relative(), e);
        let mut file = File::from(self.file);
        let bytes = self.data.get(self.range.clone());
        if !bytes.is_empty() {
            file.write_all(bytes).map_err(io_err)?;
        }
        // Owner before mode: `chown` clears setuid and setgid bits.
        if let Some((uid, gid)) = self.owner {
            rustix::fs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| io_err(e.into()))?;
        }
        if let Some(mode) = self.mode {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(|e| io_err(e.into()))?;
        }
        rustix::fs::futimens(&file, &self.times).map_err(|e| io_err(e.into()))?;
        Ok(())
    }
}

/// The entry number and error of the first job that failed.
type Failed = (u64, Error);

/// The running thread: where jobs go, and what it ends with.
struct Thread {
    jobs: mpsc::SyncSender<Vec<Job>>,
    handle: JoinHandle<Option<Failed>>,
}

/// The second thread, started with the first job.
#[derive(Default)]
pub(super) struct Finisher {
    pending: Vec<Job>,
    thread: Option<Thread>,
}

impl Finisher {
    /// Queues a job; on the thread's failure, its error (with the failing
    /// entry's number).
    pub(super) fn push(&mut self, job: Job) -> std::result::Result<(), Failed> {
        self.pending.push(job);
        if self.pending.len() >= GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the queued jobs to the thread.
    pub(super) fn flush(&mut self) -> std::result::Result<(), Failed> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::take(&mut self.pending);
        let tx = match &self.thread {
            Some(thread) => &thread.jobs,
            None => {
                let (tx, rx) = mpsc::sync_channel::<Vec<Job>>(1);
                let span = tracing::Span::current();
                let handle = std::thread::Builder::new()
                    .name("hoist-files".into())
                    .spawn(move || {
                        let _span = span.enter();
                        for jobs in rx {
                            for job in jobs {
                                let index = job.index;
                                if let Err(error) = job.finish() {
                                    return Some((index, error));
                                }
                            }
                        }
                        None
                    })
                    .map_err(|e| (jobs[0].index, Error::io(jobs[0].path.relative(), e)))?;
                &self.thread.insert(Thread { jobs: tx, handle }).jobs
            }
        };
        if tx.send(jobs).is_err() {
            // The thread stopped at an error.
            self.join()?;
        }
        Ok(())
    }

    /// Finishes every queued job and stops the thread; the first error it
    /// met, if any (reported once).
    pub(super) fn join(&mut self) -> std::result::Result<(), Failed> {
        let flushed = self.flush();
        if let Some(Thread { jobs, handle }) = self.thread.take() {
            drop(jobs);
            match handle.join() {
                Ok(Some(failed)) => return Err(failed),
                Ok(None) => {}
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        flushed
    }
}
