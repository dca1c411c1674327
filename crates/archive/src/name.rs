//! Lexical normalization of entry names and link targets.
//!
//! A tar entry name is attacker-chosen bytes. Before anything touches the file
//! system, it becomes a list of plain components: leading `/` and `./` and
//! empty components are dropped, and `..` is *clamped at the root*: it removes
//! the previous component, and at the root it is dropped, exactly as
//! `RESOLVE_IN_ROOT` treats `..` at its root and as containerd's `fs.RootPath`
//! does. So `../x`, `/x` and `a/../../x` all name `x` inside the root. Clamping
//! (rather than rejecting) keeps layers from real tools that write absolute
//! names working, and is safe because nothing after this step ever sees a `..`.
//!
//! Names are bytes, never `String`: Linux file names need not be UTF-8.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A normalized path inside the root: zero or more components, none of them
/// empty, `.`, `..`, or holding a `/` or NUL byte. No components is the root.
///
/// Kept as one byte string, the components joined by `/`: that form is
/// unambiguous (no component holds a `/`), hashes as a cache key without
/// allocating, and is the relative path syscalls take.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct RootedPath {
    joined: Vec<u8>,
}

impl RootedPath {
    /// Normalizes a tar name (or hardlink target) lexically.
    pub(crate) fn parse(name: &[u8]) -> Result<Self> {
        // A NUL cannot be passed to a syscall; PAX records can carry one, and
        // silently truncating there would make the entry name something other
        // than what a different parser sees.
        if name.contains(&0) {
            return Err(Error::malformed(format!(
                "entry name {:?} contains a NUL byte",
                String::from_utf8_lossy(name)
            )));
        }
        let mut path = Self::default();
        for part in name.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                // Clamped at the root: popping the root is a no-op.
                b".." => path.pop(),
                _ => path.push(part),
            }
        }
        Ok(path)
    }

    /// The components, outermost first.
    pub(crate) fn components(&self) -> impl DoubleEndedIterator<Item = &[u8]> + Clone {
        self.joined.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// True for the root itself.
    pub(crate) fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    /// The parent path and the final component; `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(RootedPath, &[u8])> {
        let (parent, last) = self.split_key()?;
        Some((
            RootedPath {
                joined: parent.to_vec(),
            },
            last,
        ))
    }

    /// The parent's key and the final component, without allocating; `None`
    /// for the root.
    pub(crate) fn split_key(&self) -> Option<(&[u8], &[u8])> {
        if self.joined.is_empty() {
            return None;
        }
        Some(match self.joined.iter().rposition(|&b| b == b'/') {
            Some(i) => (&self.joined[..i], &self.joined[i + 1..]),
            None => (&[][..], &self.joined[..]),
        })
    }

    /// This path with one more component (a plain name from a directory
    /// listing, a link target, or an entry's own name).
    pub(crate) fn join(&self, name: &[u8]) -> RootedPath {
        let mut path = self.clone();
        path.push(name);
        path
    }

    fn push(&mut self, name: &[u8]) {
        debug_assert!(is_plain_component(name));
        if !self.joined.is_empty() {
            self.joined.push(b'/');
        }
        self.joined.extend_from_slice(name);
    }

    fn pop(&mut self) {
        let keep = self.joined.iter().rposition(|&b| b == b'/').unwrap_or(0);
        self.joined.truncate(keep);
    }

    /// The first `depth` components as a path.
    pub(crate) fn prefix(&self, depth: usize) -> RootedPath {
        RootedPath {
            joined: self.prefix_key(depth).to_vec(),
        }
    }

    /// The key of the first `depth` components (all of them if fewer).
    pub(crate) fn prefix_key(&self, depth: usize) -> &[u8] {
        if depth == 0 {
            return &[];
        }
        let mut seen = 0;
        for (i, &b) in self.joined.iter().enumerate() {
            if b == b'/' {
                seen += 1;
                if seen == depth {
                    return &self.joined[..i];
                }
            }
        }
        &self.joined
    }

    /// True if `self` is `other` or below it.
    pub(crate) fn starts_with(&self, other: &RootedPath) -> bool {
        other.joined.is_empty()
            || (self.joined.starts_with(&other.joined)
                && matches!(self.joined.get(other.joined.len()), None | Some(b'/')))
    }

    /// The relative path (`.` for the root), for messages and for syscalls
    /// relative to a root fd.
    pub(crate) fn relative(&self) -> PathBuf {
        self.as_path().to_path_buf()
    }

    /// The relative path (`.` for the root), borrowed.
    pub(crate) fn as_path(&self) -> &Path {
        if self.joined.is_empty() {
            return Path::new(".");
        }
        Path::new(OsStr::from_bytes(&self.joined))
    }

    /// The depth: how many components.
    pub(crate) fn depth(&self) -> usize {
        if self.joined.is_empty() {
            0
        } else {
            self.joined.iter().filter(|&&b| b == b'/').count() + 1
        }
    }

    /// The path as bytes joined by `/` (empty for the root): its cache key.
    pub(crate) fn key(&self) -> &[u8] {
        &self.joined
    }
}

/// True if `name` is one plain file name: not empty, `.` or `..`, and without
/// `/` or NUL. Every `*at` call on a final component checks this first, so a
/// bug elsewhere cannot turn it into a path walk.
pub(crate) fn is_plain_component(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// A component as a `Path`, for `*at` syscalls.
pub(crate) fn component_path(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(name: &str) -> String {
        String::from_utf8(RootedPath::parse(name.as_bytes()).unwrap().key().to_vec()).unwrap()
    }

    #[test]
    fn strips_and_clamps() {
        assert_eq!(norm("a/b/c"), "a/b/c");
        assert_eq!(norm("./a/b/"), "a/b");
        assert_eq!(norm("/abs/x"), "abs/x");
        assert_eq!(norm("//a//b"), "a/b");
        assert_eq!(norm("../x"), "x");
        assert_eq!(norm("a/../../x"), "x");
        assert_eq!(norm("a/b/../c"), "a/c");
        assert_eq!(norm("../../.."), "");
        assert_eq!(norm("."), "");
        assert_eq!(norm("/"), "");
        assert_eq!(norm("a/..."), "a/...");
    }

    #[test]
    fn keeps_non_utf8_bytes() {
        let p = RootedPath::parse(b"dir/\xff\xfe").unwrap();
        let components: Vec<&[u8]> = p.components().collect();
        assert_eq!(components, [&b"dir"[..], &b"\xff\xfe"[..]]);
    }

    #[test]
    fn rejects_nul() {
        assert!(matches!(
            RootedPath::parse(b"a\0b"),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn every_component_is_plain() {
        for name in ["a/./b/../../..//c/.", "/../..", "x/y/z/../.."] {
            let p = RootedPath::parse(name.as_bytes()).unwrap();
            assert!(p.components().all(is_plain_component));
        }
    }

    #[test]
    fn split_last_and_join() {
        let p = RootedPath::parse(b"a/b/c").unwrap();
        let (parent, last) = p.split_last().unwrap();
        assert_eq!(parent.key(), b"a/b");
        assert_eq!(last, b"c");
        assert_eq!(parent.join(b"c"), p);
        assert!(RootedPath::parse(b"/").unwrap().split_last().is_none());
        assert_eq!(RootedPath::default().relative(), PathBuf::from("."));
        assert_eq!(p.split_key(), Some((&b"a/b"[..], &b"c"[..])));
        let top = RootedPath::parse(b"top").unwrap();
        assert_eq!(top.split_key(), Some((&b""[..], &b"top"[..])));
    }

    #[test]
    fn prefixes_and_depth() {
        let p = RootedPath::parse(b"a/bb/c").unwrap();
        assert_eq!(p.depth(), 3);
        assert_eq!(RootedPath::default().depth(), 0);
        assert_eq!(p.prefix_key(0), b"");
        assert_eq!(p.prefix_key(1), b"a");
        assert_eq!(p.prefix_key(2), b"a/bb");
        assert_eq!(p.prefix_key(3), b"a/bb/c");
        assert_eq!(p.prefix_key(9), b"a/bb/c");
        assert!(p.starts_with(&p.prefix(2)));
        assert!(p.starts_with(&RootedPath::default()));
        assert!(!p.starts_with(&RootedPath::parse(b"a/b").unwrap()));
        assert!(!p.prefix(1).starts_with(&p));
    }
}
