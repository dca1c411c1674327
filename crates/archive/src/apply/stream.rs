//! The reading side of an apply: decompressing, hashing and parsing the
//! stream on the caller's thread, while another thread makes the file
//! system changes, in the same order, like `pigz -dc | tar -x`.
//!
//! Entries travel in batches, with the data of the small regular files
//! among them in one buffer, so that a layer of many small files costs a
//! handful of wake-ups rather than one per entry; a large file's data
//! follows its entry in chunks. A failure to read an entry's data travels
//! with it, so that the applying thread reports it where reading it in
//! place would have: after creating the file, before anything later.

use std::io::Read;
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender};

use oci_spec::image::Digest;

use crate::compression::SourceError;
use crate::diffid::HashingReader;
use crate::error::{Error, Result};

use super::entry::{self, BLOCK, Entry, Op, stream_error};
use super::label;

/// A regular file with at most this much data travels in a batch.
const SMALL: u64 = 256 << 10;
/// A batch is sent once its data reaches this size…
const BATCH_DATA: usize = 256 << 10;
/// …or it holds this many entries.
const BATCH_ENTRIES: usize = 256;
/// A large file's data travels in chunks of this size.
pub(super) const CHUNK: usize = 256 << 10;

/// What the reading thread sends the applying thread.
pub(super) enum Msg {
    /// Entries, with the data of their regular files in one buffer.
    Batch(Vec<Item>, Vec<u8>),
    /// A regular file whose data follows as [`Msg::Chunk`]s, then [`Msg::End`].
    Large(Entry),
    Chunk(Vec<u8>),
    /// The end of a large file's data, or why it could not all be read.
    End(Option<Error>),
    /// The whole stream was read and its diffID checked: directory metadata
    /// may be applied.
    Finish,
}

/// An entry of a batch.
pub(super) struct Item {
    pub(super) entry: Entry,
    /// Where its data is in the batch's buffer.
    pub(super) data: Range<usize>,
    /// Why its data is not all there.
    pub(super) error: Option<Error>,
}

/// Why the reading stopped early without an error of its own: the applying
/// thread failed (or will, with an error sent along with data).
pub(super) struct Stopped;

/// Reads the whole stream, sending its entries to `tx`, and returns the
/// diffID and size of the uncompressed stream.
pub(super) fn read_layer<R: Read>(
    decoded: R,
    source: &SourceError,
    tx: &SyncSender<Msg>,
    recycled: &Receiver<Vec<u8>>,
) -> Result<std::result::Result<(Digest, u64), Stopped>> {
    let mut archive = tar::Archive::new(HashingReader::new(decoded));
    let mut sender = Sender {
        tx,
        recycled,
        items: Vec::new(),
        data: Vec::new(),
    };
    // Where the data of the last entry ends, to tell an archive that ended
    // with its end-of-archive block from one cut off at a header boundary.
    let mut data_end = 0u64;
    let read = read_entries(&mut archive, source, &mut sender, &mut data_end);
    // Whatever stopped the reading, the entries before it are applied
    // first, as they would be in place.
    match (read, sender.flush()) {
        (Ok(Ok(())), Ok(())) => {}
        (Err(e), Ok(())) => return Err(e),
        (Ok(Err(stopped)), _) | (_, Err(stopped)) => return Ok(Err(stopped)),
    }
    let mut hashing = archive.into_inner();
    let end = hashing.count();
    // The tar crate treats a clean EOF where a header should be as the end of
    // the archive. A stream whose last entry is followed by nothing is a
    // truncated stream (every writer ends with zero blocks), and applying it
    // would silently lose whatever came after the cut.
    if end != 0 && end < data_end + BLOCK {
        return Err(Error::malformed(
            "stream ends without an end-of-archive block (truncated)",
        ));
    }
    hashing.drain().map_err(|e| stream_error(&e, source))?;
    Ok(Ok(hashing.finish()))
}

/// Reads every entry, sending it with its data.
fn read_entries<R: Read>(
    archive: &mut tar::Archive<HashingReader<R>>,
    source: &SourceError,
    sender: &mut Sender<'_>,
    data_end: &mut u64,
) -> Result<std::result::Result<(), Stopped>> {
    for entry in archive.entries().map_err(|e| stream_error(&e, source))? {
        let mut entry = entry.map_err(|e| stream_error(&e, source))?;
        let (parsed, end) = entry::parse(&mut entry, source)?;
        *data_end = end;
        let Some(parsed) = parsed else {
            continue;
        };
        let regular = matches!(parsed.op, Op::Regular);
        let sent = if regular && entry.size() > SMALL {
            sender.large(parsed, &mut entry, source)
        } else if regular {
            sender.small(parsed, &mut entry, source)
        } else {
            sender.push(parsed, 0..0, None)
        };
        match sent {
            Ok(true) => {}
            // The data could not all be read: the applying thread reports
            // it, after the entries before.
            Ok(false) => return Ok(Err(Stopped)),
            Err(stopped) => return Ok(Err(stopped)),
        }
    }
    Ok(Ok(()))
}

/// Batches entries for the applying thread.
struct Sender<'a> {
    tx: &'a SyncSender<Msg>,
    recycled: &'a Receiver<Vec<u8>>,
    items: Vec<Item>,
    data: Vec<u8>,
}

impl Sender<'_> {
    fn send(&self, msg: Msg) -> std::result::Result<(), Stopped> {
        self.tx.send(msg).map_err(|_| Stopped)
    }

    /// An empty buffer, one the applying thread is done with if there is one.
    fn buffer(&self, capacity: usize) -> Vec<u8> {
        match self.recycled.try_recv() {
            Ok(mut buf) => {
                buf.clear();
                buf
            }
            Err(_) => Vec::with_capacity(capacity),
        }
    }

    /// Adds an entry; true if its data was all there.
    fn push(
        &mut self,
        entry: Entry,
        data: Range<usize>,
        error: Option<Error>,
    ) -> std::result::Result<bool, Stopped> {
        let complete = error.is_none();
        self.items.push(Item { entry, data, error });
        if !complete || self.items.len() >= BATCH_ENTRIES || self.data.len() >= BATCH_DATA {
            self.flush()?;
        }
        Ok(complete)
    }

    fn flush(&mut self) -> std::result::Result<(), Stopped> {
        if self.items.is_empty() {
            return Ok(());
        }
        let fresh = self.buffer(BATCH_DATA + SMALL as usize);
        let data = std::mem::replace(&mut self.data, fresh);
        let items = std::mem::take(&mut self.items);
        self.send(Msg::Batch(items, data))
    }

    /// A regular file that travels in the batch.
    fn small<R: Read>(
        &mut self,
        entry: Entry,
        tar_entry: &mut tar::Entry<'_, R>,
        source: &SourceError,
    ) -> std::result::Result<bool, Stopped> {
        let expected = tar_entry.size();
        let start = self.data.len();
        let read = tar_entry.read_to_end(&mut self.data);
        let error = match read {
            Err(e) => Some(stream_error(&e, source)),
            Ok(n) => truncated(&entry, n as u64, expected),
        };
        let end = self.data.len();
        self.push(entry, start..end, error)
    }

    /// A regular file whose data follows in chunks.
    fn large<R: Read>(
        &mut self,
        entry: Entry,
        tar_entry: &mut tar::Entry<'_, R>,
        source: &SourceError,
    ) -> std::result::Result<bool, Stopped> {
        self.flush()?;
        let expected = tar_entry.size();
        let raw = entry.raw.clone();
        self.send(Msg::Large(entry))?;
        let mut read = 0u64;
        let error = loop {
            let mut chunk = self.buffer(CHUNK);
            match Read::by_ref(tar_entry)
                .take(CHUNK as u64)
                .read_to_end(&mut chunk)
            {
                Err(e) => break Some(stream_error(&e, source)),
                Ok(0) => break None,
                Ok(n) => {
                    read += n as u64;
                    self.send(Msg::Chunk(chunk))?;
                }
            }
        };
        let error = error.or_else(|| truncated_raw(&raw, read, expected));
        let complete = error.is_none();
        self.send(Msg::End(error))?;
        Ok(complete)
    }
}

/// The error for a file whose data ended after `read` of `expected` bytes.
fn truncated(entry: &Entry, read: u64, expected: u64) -> Option<Error> {
    truncated_raw(&entry.raw, read, expected)
}

fn truncated_raw(raw: &[u8], read: u64, expected: u64) -> Option<Error> {
    (read != expected).then(|| {
        Error::malformed(format!(
            "entry {}: stream ends after {read} of {expected} bytes (truncated)",
            label(raw)
        ))
    })
}
