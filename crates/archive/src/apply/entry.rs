//! Parsing: one tar entry (its header, PAX records, GNU long names) becomes
//! an [`Entry`], a normalized path with owner, mode, times, xattrs and the
//! [`Op`] to perform. Nothing here touches the file system; every check that
//! depends only on the stream's bytes (sizes that disagree, ids out of range,
//! NUL bytes in names) is made here, before anything is created.

use std::io::{self, Read};

use rustix::fs::{FileType, Stat, Timespec, Timestamps};

use crate::compression::SourceError;
use crate::error::{Error, Result};
use crate::name::RootedPath;

use super::label;

/// The tar block size.
pub(super) const BLOCK: u64 = 512;

/// The largest size a ustar header's 11 octal digits can hold; a PAX `size`
/// beyond it legitimately disagrees with the ustar field.
const USTAR_MAX_SIZE: u64 = 0o77777777777;

/// One entry, parsed.
pub(super) struct Entry {
    /// The name as written in the tar, for messages.
    pub(super) raw: Vec<u8>,
    /// The name normalized.
    pub(super) path: RootedPath,
    pub(super) meta: Meta,
    pub(super) op: Op,
}

/// What an entry asks for.
pub(super) enum Op {
    /// `dir/.wh.<target>`: a whiteout, or with target `.wh..opq` an opaque
    /// marker.
    Whiteout {
        dir: RootedPath,
        target: Vec<u8>,
    },
    Directory,
    /// A regular file; its data is the entry's.
    Regular,
    /// A symlink to this target, verbatim.
    Symlink(Vec<u8>),
    /// A hardlink to this name, not yet normalized.
    Hardlink(Vec<u8>),
    /// A character or block device or a fifo. The device number is parsed
    /// only when a device is created: a run that cannot create devices skips
    /// them whatever their numbers.
    Special {
        kind: FileType,
        dev: Result<rustix::fs::Dev>,
    },
}

/// Owner, mode, times and xattrs of an entry.
pub(super) struct Meta {
    /// Permission bits with setuid, setgid and sticky.
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: Time,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A point in time for `utimensat`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Time {
    sec: i64,
    nsec: u32,
}

impl Time {
    fn timespec(self) -> Timespec {
        Timespec {
            tv_sec: self.sec,
            tv_nsec: self.nsec.into(),
        }
    }

    /// This time as both atime and mtime, as tar has only the one.
    pub(super) fn timestamps(self) -> Timestamps {
        Timestamps {
            last_access: self.timespec(),
            last_modification: self.timespec(),
        }
    }

    /// A file's atime and mtime.
    pub(super) fn of_stat(st: &Stat) -> Timestamps {
        let t = |sec: i64, nsec: i64| Self {
            sec,
            nsec: u32::try_from(nsec).unwrap_or(0),
        };
        Timestamps {
            last_access: t(st.st_atime, st.st_atime_nsec as i64).timespec(),
            last_modification: t(st.st_mtime, st.st_mtime_nsec as i64).timespec(),
        }
    }
}

/// Parses the entry's headers; returns it (`None` for global PAX headers,
/// which carry nothing an applier uses) and where its data ends in the
/// stream.
pub(super) fn parse<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    source: &SourceError,
) -> Result<(Option<Entry>, u64)> {
    let kind = entry.header().entry_type();
    let raw = entry.path_bytes().into_owned();

    let mut pax_size = None;
    let mut pax_mtime = None;
    let mut xattrs = Vec::new();
    if !kind.is_pax_global_extensions()
        && let Some(extensions) = entry
            .pax_extensions()
            .map_err(|e| stream_error(&e, source))?
    {
        for ext in extensions {
            let ext = ext.map_err(|e| bad_header(&raw, "PAX record", &e))?;
            let key = ext.key_bytes();
            if key == b"size" {
                let v = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::malformed(format!("entry {}: bad PAX size", label(&raw)))
                    })?;
                pax_size = Some(v);
            } else if key == b"mtime" {
                pax_mtime = Some(parse_pax_time(ext.value_bytes()).ok_or_else(|| {
                    Error::malformed(format!("entry {}: bad PAX mtime", label(&raw)))
                })?);
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }

    let header = entry.header();
    let ustar_size = header
        .entry_size()
        .map_err(|e| bad_header(&raw, "size", &e))?;
    // Parsers that disagree on an entry's size see different archives
    // (one parser's file data is another's headers: CVE-2025-62518). The
    // tar crate follows PAX; any disagreement the ustar field could have
    // expressed is refused rather than resolved either way.
    if let Some(pax) = pax_size
        && pax != ustar_size
        && pax <= USTAR_MAX_SIZE
    {
        return Err(Error::malformed(format!(
            "entry {}: PAX size {pax} disagrees with ustar size {ustar_size}",
            label(&raw)
        )));
    }
    let stored = pax_size.unwrap_or(ustar_size);
    let data_end = entry
        .raw_file_position()
        .checked_add(stored.div_ceil(BLOCK) * BLOCK)
        .ok_or_else(|| Error::malformed("entry size overflows"))?;

    if kind.is_pax_global_extensions() {
        return Ok((None, data_end));
    }

    let path = RootedPath::parse(&raw)?;
    let old = header.as_old();
    let mode = numeric(header.mode().map(u64::from), &old.mode, &raw, "mode")? as u32 & 0o7777;
    let uid = id(numeric(header.uid(), &old.uid, &raw, "uid")?, &raw)?;
    let gid = id(numeric(header.gid(), &old.gid, &raw, "gid")?, &raw)?;
    let mtime = match pax_mtime {
        Some(t) => t,
        None => Time {
            sec: i64::try_from(numeric(header.mtime(), &old.mtime, &raw, "mtime")?)
                .unwrap_or(i64::MAX),
            nsec: 0,
        },
    };
    let meta = Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    };

    let whiteout = path
        .split_key()
        .and_then(|(_, last)| last.strip_prefix(b".wh."));
    let op = match whiteout {
        Some(target) => {
            let (dir, _) = path.split_last().expect("not the root");
            Op::Whiteout {
                dir,
                target: target.to_vec(),
            }
        }
        None => file_op(entry, kind, &raw)?,
    };
    Ok((
        Some(Entry {
            raw,
            path,
            meta,
            op,
        }),
        data_end,
    ))
}

/// What a tar entry that is not a whiteout asks for.
fn file_op(entry: &tar::Entry<'_, impl Read>, kind: tar::EntryType, raw: &[u8]) -> Result<Op> {
    let link = |what: &str| -> Result<Vec<u8>> {
        entry
            .link_name_bytes()
            .map(|l| l.into_owned())
            .ok_or_else(|| Error::malformed(format!("{what} {} has no target", label(raw))))
    };
    let device = |kind| Op::Special {
        kind,
        dev: device_number(entry.header(), raw),
    };
    Ok(match kind.as_byte() {
        b'5' => Op::Directory,
        // Old tar writers mark directories as regular files with a trailing
        // `/`; Go's reader (docker, containerd) makes them directories too.
        b'\0' if raw.ends_with(b"/") => Op::Directory,
        b'0' | b'\0' | b'7' | b'S' => Op::Regular,
        b'2' => Op::Symlink(link("symlink")?),
        b'1' => Op::Hardlink(link("hardlink")?),
        b'3' => device(FileType::CharacterDevice),
        b'4' => device(FileType::BlockDevice),
        b'6' => Op::Special {
            kind: FileType::Fifo,
            dev: Ok(0),
        },
        other => {
            return Err(Error::Unsupported {
                detail: format!("entry {}: tar entry type {:?}", label(raw), other as char),
            });
        }
    })
}

fn device_number(header: &tar::Header, raw: &[u8]) -> Result<rustix::fs::Dev> {
    let major = header
        .device_major()
        .map_err(|e| bad_header(raw, "device major", &e))?
        .unwrap_or(0);
    let minor = header
        .device_minor()
        .map_err(|e| bad_header(raw, "device minor", &e))?
        .unwrap_or(0);
    Ok(rustix::fs::makedev(major, minor))
}

/// An error met while reading the stream: the source's own failure if it
/// failed, else a malformed (or corrupt compressed) stream.
pub(super) fn stream_error(e: &io::Error, source: &SourceError) -> Error {
    if let Some(original) = source.take() {
        return Error::Read(original);
    }
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        detail.push_str(": ");
        detail.push_str(&c.to_string());
        cause = c.source();
    }
    Error::malformed(detail)
}

/// A header field that does not parse.
fn bad_header(raw: &[u8], field: &str, e: &io::Error) -> Error {
    Error::malformed(format!("entry {}: bad {field}: {e}", label(raw)))
}

/// A numeric header field; an empty one (all NUL or spaces) is 0, as Go's
/// reader (docker, containerd) takes it, where the tar crate reports an error.
fn numeric(parsed: io::Result<u64>, field_bytes: &[u8], raw: &[u8], field: &str) -> Result<u64> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if field_bytes.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(bad_header(raw, field, &e)),
    }
}

/// A tar uid/gid as a Linux id; `-1` means "unchanged" to `chown` and is refused.
fn id(value: u64, raw: &[u8]) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v != u32::MAX)
        .ok_or_else(|| {
            Error::malformed(format!(
                "entry {}: uid/gid {value} out of range",
                label(raw)
            ))
        })
}

/// Parses a PAX time, `<seconds>[.<fraction>]`.
fn parse_pax_time(value: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(value).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    // For a negative time "-1.5" means -1.5 s: sec -2, nsec 0.5e9.
    if s.starts_with('-') && nsec > 0 {
        return Some(Time {
            sec: sec - 1,
            nsec: 1_000_000_000 - nsec,
        });
    }
    Some(Time { sec, nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.sec, t.nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"12").unwrap();
        assert_eq!((t.sec, t.nsec), (12, 0));
        let t = parse_pax_time(b"1.1234567891").unwrap();
        assert_eq!((t.sec, t.nsec), (1, 123_456_789));
        let t = parse_pax_time(b"-1.5").unwrap();
        assert_eq!((t.sec, t.nsec), (-2, 500_000_000));
        let t = parse_pax_time(b"-0.25").unwrap();
        assert_eq!((t.sec, t.nsec), (-1, 750_000_000));
        assert!(parse_pax_time(b"x").is_none());
        assert!(parse_pax_time(b"1.x").is_none());
    }

    #[test]
    fn ids_in_range() {
        assert_eq!(id(1000, b"a").unwrap(), 1000);
        assert!(id(u64::from(u32::MAX), b"a").is_err());
        assert!(id(1 << 40, b"a").is_err());
    }
}
