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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct RootedPath {
    components: Vec<Vec<u8>>,
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
        let mut components: Vec<Vec<u8>> = Vec::new();
        for part in name.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                // Clamped at the root: popping an empty list is a no-op.
                b".." => {
                    components.pop();
                }
                _ => components.push(part.to_vec()),
            }
        }
        Ok(Self { components })
    }

    /// The components, outermost first.
    pub(crate) fn components(&self) -> &[Vec<u8>] {
        &self.components
    }

    /// True for the root itself.
    pub(crate) fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The parent path and the final component; `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(RootedPath, &[u8])> {
        let (last, parent) = self.components.split_last()?;
        Some((
            RootedPath {
                components: parent.to_vec(),
            },
            last,
        ))
    }

    /// This path with one more component (a plain name from a directory listing).
    pub(crate) fn join(&self, name: &[u8]) -> RootedPath {
        debug_assert!(is_plain_component(name));
        let mut components = self.components.clone();
        components.push(name.to_vec());
        RootedPath { components }
    }

    /// The relative path (`.` for the root), for syscalls relative to a root fd.
    pub(crate) fn relative(&self) -> PathBuf {
        if self.components.is_empty() {
            return PathBuf::from(".");
        }
        PathBuf::from(OsStr::from_bytes(&self.components.join(&b'/')))
    }

    /// The depth: how many components.
    pub(crate) fn depth(&self) -> usize {
        self.components.len()
    }

    /// The path as bytes joined by `/` (empty for the root), for sets of paths.
    pub(crate) fn key(&self) -> Vec<u8> {
        self.components.join(&b'/')
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
        String::from_utf8(RootedPath::parse(name.as_bytes()).unwrap().key()).unwrap()
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
        assert_eq!(p.components(), &[b"dir".to_vec(), b"\xff\xfe".to_vec()]);
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
            assert!(p.components().iter().all(|c| is_plain_component(c)));
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
    }
}
