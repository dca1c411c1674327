//! A tar builder for hostile layers: names and link targets go into the
//! headers raw (any bytes, `..`, absolute, non-UTF-8), with any PAX records,
//! as a hostile tool would write them. The archive crate's applier tests
//! and the fuzz seeds (`fuzz/seeds.rs`) write their layers with it.

/// Builds a layer tar entry by entry. Names go into the header raw, so any
/// bytes (`..`, absolute, non-UTF-8) can be written; names over 100 bytes
/// use a PAX `path` record.
pub struct RawTar {
    builder: tar::Builder<Vec<u8>>,
}

/// The mtime every entry gets unless told otherwise.
pub const MTIME: u64 = 1_600_000_000;

impl RawTar {
    /// An empty tar.
    pub fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// A ustar header of `kind` with `name`, mode, owner 0:0 and [`MTIME`].
    pub fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    /// Appends `header` with `name`, `link` target, PAX records and data,
    /// writing the names raw (no validation, as a hostile tool would).
    pub fn raw(
        &mut self,
        mut header: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        pax: &[(&str, &[u8])],
        data: &[u8],
    ) -> &mut Self {
        let mut records: Vec<(&str, &[u8])> = pax.to_vec();
        if name.len() > 100 {
            records.push(("path", name));
        }
        if let Some(link) = link
            && link.len() > 100
        {
            records.push(("linkpath", link));
        }
        if !records.is_empty() {
            self.builder.append_pax_extensions(records).unwrap();
        }
        let bytes = header.as_mut_bytes();
        let n = name.len().min(100);
        bytes[..100].fill(0);
        bytes[..n].copy_from_slice(&name[..n]);
        if let Some(link) = link {
            let n = link.len().min(100);
            bytes[157..257].fill(0);
            bytes[157..157 + n].copy_from_slice(&link[..n]);
        }
        if header.entry_type().is_file() {
            header.set_size(data.len() as u64);
        }
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    /// An entry of `kind` and `mode` with no PAX records; `name` and `link`
    /// raw.
    fn entry(
        &mut self,
        kind: tar::EntryType,
        mode: u32,
        name: &str,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let header = Self::header(kind, mode);
        self.raw(header, name.as_bytes(), link.map(str::as_bytes), &[], data)
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.entry(tar::EntryType::Regular, mode, name, None, data)
    }

    /// A regular file of mode 0644 with `pax` records; `name` raw.
    pub fn file_pax(&mut self, name: &[u8], data: &[u8], pax: &[(&str, &[u8])]) -> &mut Self {
        let header = Self::header(tar::EntryType::Regular, 0o644);
        self.raw(header, name, None, pax, data)
    }

    /// A directory.
    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.entry(tar::EntryType::Directory, mode, name, None, &[])
    }

    /// A symlink to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(tar::EntryType::Symlink, 0o777, name, Some(target), &[])
    }

    /// A hardlink to `target`.
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(tar::EntryType::Link, 0o644, name, Some(target), &[])
    }

    /// A device node (or fifo) of `kind`, mode 0666.
    pub fn device(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = Self::header(kind, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, name.as_bytes(), None, &[], &[])
    }

    /// A whiteout marker file (`.wh.*`), as docker writes them.
    pub fn whiteout(&mut self, name: &str) -> &mut Self {
        self.file(name, b"", 0o644)
    }

    /// The tar bytes, end-of-archive blocks included.
    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

impl Default for RawTar {
    fn default() -> Self {
        Self::new()
    }
}

/// A layer whose directories `d` and `e` are replaced by symlinks out of
/// the root (to `../canary` and `/`) after their entries, and whose symlink
/// `own` (to `../canary/file`) has owner 4242 and an xattr: the applier's
/// deferred directory metadata, owners and xattrs must never go through a
/// symlink. An applier test and a fuzz seed.
pub fn metadata_through_symlink() -> Vec<u8> {
    let mut l = RawTar::new();
    l.dir("d", 0o777).symlink("d", "../canary");
    l.dir("e", 0o777).symlink("e", "/").dir("e", 0o700);
    let mut h = RawTar::header(tar::EntryType::Symlink, 0o777);
    h.set_uid(4242);
    l.raw(
        h,
        b"own",
        Some(b"../canary/file"),
        &[("SCHILY.xattr.user.x", b"y")],
        &[],
    );
    l.finish()
}
