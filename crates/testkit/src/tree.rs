//! Snapshots of directory trees, for comparing what an unpacker produced with
//! what another one (umoci) produced, and for proving that nothing outside a
//! directory changed.
//!
//! [`snapshot_tree`] records every entry under a root (the root itself as
//! `.`) without following symlinks: its type, permission bits (setuid, setgid
//! and sticky included), owner, size and sha256 (regular files), link target
//! (symlinks), device numbers, every xattr but `security.selinux`, link count
//! and mtime (non-directories), and the hardlink group it belongs to. A
//! hardlink group is the sorted list of the paths in the tree that share one
//! inode, so two trees with the same linking compare equal whatever their
//! inode numbers. [`diff_trees`] lists the differences for a person, and
//! [`assert_trees_equal!`](crate::assert_trees_equal) panics with them.
//! [`walk`] lists every path under a root, for tests that look at a tree
//! their own way.
//!
//! ```
//! use hoist_testkit::tree::{Compare, diff_trees, diff_trees_with, snapshot_tree};
//!
//! let a = tempfile::tempdir().unwrap();
//! let b = tempfile::tempdir().unwrap();
//! for dir in [a.path(), b.path()] {
//!     std::fs::write(dir.join("f"), b"x").unwrap();
//!     std::fs::hard_link(dir.join("f"), dir.join("g")).unwrap();
//! }
//! let (ta, tb) = (snapshot_tree(a.path()), snapshot_tree(b.path()));
//! // The files were written at different instants.
//! assert!(diff_trees_with(&ta, &tb, &Compare { mtime: false, ..Compare::default() }).is_empty());
//! std::fs::write(b.path().join("f"), b"y").unwrap();
//! let diff = diff_trees(&snapshot_tree(a.path()), &snapshot_tree(b.path()));
//! assert!(diff.iter().any(|line| line.contains("sha256")), "{diff:?}");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// The kind of a file system entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A Unix socket.
    Socket,
}

/// One entry of a tree, as [`snapshot_tree`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The kind.
    pub kind: FileKind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// The owner.
    pub uid: u32,
    /// The group.
    pub gid: u32,
    /// Size in bytes (regular files only).
    pub size: Option<u64>,
    /// `sha256:<hex>` of the content (regular files only).
    pub sha256: Option<String>,
    /// The link target, verbatim (symlinks only).
    pub link: Option<PathBuf>,
    /// `(major, minor)` (devices only).
    pub rdev: Option<(u32, u32)>,
    /// Every xattr but `security.selinux`, name → value.
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    /// The link count (non-directories only: a directory's count depends on
    /// the file system).
    pub nlink: Option<u64>,
    /// `(seconds, nanoseconds)` of the mtime (non-directories only).
    pub mtime: Option<(i64, i64)>,
    /// The sorted paths in the tree sharing this entry's inode, itself
    /// included; `None` unless at least two paths of the tree share it.
    pub hardlinks: Option<Vec<PathBuf>>,
}

/// A whole tree: path relative to the root (the root itself is `.`) → entry.
pub type Tree = BTreeMap<PathBuf, Entry>;

/// What [`diff_trees_with`] compares besides kind, mode, owner, content, link
/// targets, device numbers and xattrs, which it always compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compare {
    /// Compare the mtimes of non-directories (unpackers restore them from
    /// the tar; directories' are disturbed by later entries and whiteouts).
    pub mtime: bool,
    /// Compare hardlink groups and link counts.
    pub hardlinks: bool,
    /// Compare the root entry (`.`) itself.
    pub root: bool,
}

impl Default for Compare {
    /// Everything.
    fn default() -> Self {
        Compare {
            mtime: true,
            hardlinks: true,
            root: true,
        }
    }
}

/// One path under a root, as [`walk`] finds it.
#[derive(Debug)]
pub struct Walked {
    /// The path relative to the root.
    pub relative: PathBuf,
    /// The path itself: the root joined with `relative`.
    pub path: PathBuf,
    /// Its metadata, not following a symlink.
    pub meta: std::fs::Metadata,
}

/// Every path under `root`, the root itself left out, each directory before
/// what it holds; symlinks are not followed, mount points are entered like
/// any directory. Lists one directory at a time. Panics on an I/O error.
pub fn walk(root: &Path) -> impl Iterator<Item = Walked> {
    let root = root.to_path_buf();
    // Directories (relative) still to list, and the entries of the last
    // one listed that are still to hand out.
    let mut to_list = vec![PathBuf::new()];
    let mut listed: Vec<Walked> = Vec::new();
    std::iter::from_fn(move || {
        loop {
            if let Some(walked) = listed.pop() {
                if walked.meta.is_dir() {
                    to_list.push(walked.relative.clone());
                }
                return Some(walked);
            }
            let dir = to_list.pop()?;
            let full = root.join(&dir);
            let entries = std::fs::read_dir(&full)
                .unwrap_or_else(|e| panic!("read_dir {}: {e}", full.display()));
            listed = entries
                .map(|entry| {
                    let name = entry
                        .unwrap_or_else(|e| panic!("read_dir {}: {e}", full.display()))
                        .file_name();
                    let path = full.join(&name);
                    let meta = std::fs::symlink_metadata(&path)
                        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
                    Walked {
                        relative: dir.join(&name),
                        path,
                        meta,
                    }
                })
                .collect();
        }
    })
}

/// Records every entry under `root` (see the module docs). Symlinks are not
/// followed; mount points are entered like any directory. Panics on an I/O
/// error.
pub fn snapshot_tree(root: &Path) -> Tree {
    let mut tree = Tree::new();
    // (dev, ino) → paths, for hardlink groups.
    let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let root_meta =
        std::fs::symlink_metadata(root).unwrap_or_else(|e| panic!("lstat {}: {e}", root.display()));
    let the_root = Walked {
        relative: PathBuf::from("."),
        path: root.to_path_buf(),
        meta: root_meta,
    };
    for Walked {
        relative,
        path,
        meta,
    } in std::iter::once(the_root).chain(walk(root))
    {
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            FileKind::File
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_char_device() {
            FileKind::Char
        } else if ft.is_block_device() {
            FileKind::Block
        } else {
            FileKind::Socket
        };
        let (size, sha256) = if kind == FileKind::File {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (
                Some(meta.len()),
                Some(crate::fixture::sha256_digest(&bytes)),
            )
        } else {
            (None, None)
        };
        let link = (kind == FileKind::Symlink).then(|| {
            std::fs::read_link(&path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()))
        });
        let rdev = matches!(kind, FileKind::Char | FileKind::Block).then(|| {
            let dev = meta.rdev();
            (rustix::fs::major(dev), rustix::fs::minor(dev))
        });
        let not_dir = kind != FileKind::Dir;
        if not_dir && meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(relative.clone());
        }
        tree.insert(
            relative,
            Entry {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                size,
                sha256,
                link,
                rdev,
                xattrs: xattrs(&path),
                nlink: not_dir.then(|| meta.nlink()),
                mtime: not_dir.then(|| (meta.mtime(), meta.mtime_nsec())),
                hardlinks: None,
            },
        );
    }
    for mut group in inodes.into_values() {
        if group.len() < 2 {
            continue;
        }
        group.sort();
        for path in &group {
            if let Some(entry) = tree.get_mut(path) {
                entry.hardlinks = Some(group.clone());
            }
        }
    }
    tree
}

/// Every xattr of `path` (not following a symlink) but `security.selinux`.
fn xattrs(path: &Path) -> BTreeMap<OsString, Vec<u8>> {
    let mut out = BTreeMap::new();
    let list = match list_xattrs(path) {
        Ok(list) => list,
        // File systems (or entries, e.g. symlinks on some) without xattrs.
        Err(e) if e == rustix::io::Errno::NOTSUP => return out,
        Err(e) => panic!("llistxattr {}: {e}", path.display()),
    };
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name == b"security.selinux" {
            continue;
        }
        let name = OsString::from_vec(name.to_vec());
        match get_xattr(path, &name) {
            Ok(value) => {
                out.insert(name, value);
            }
            // Removed between list and get: not part of the tree any more.
            Err(e) if e == rustix::io::Errno::NODATA => {}
            Err(e) => panic!(
                "lgetxattr {} {}: {e}",
                path.display(),
                name.to_string_lossy()
            ),
        }
    }
    out
}

fn list_xattrs(path: &Path) -> rustix::io::Result<Vec<u8>> {
    loop {
        let len = rustix::fs::llistxattr_query(path)?;
        let mut buf = vec![0u8; len];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // Grew in between; ask again.
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn get_xattr(path: &Path, name: &OsString) -> rustix::io::Result<Vec<u8>> {
    loop {
        let len = rustix::fs::lgetxattr_query(path, name.as_os_str())?;
        let mut buf = vec![0u8; len];
        match rustix::fs::lgetxattr(path, name.as_os_str(), &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A value printable in a diff line: text when it is, else hex.
struct Shown<'a>(&'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => write!(f, "{s:?}"),
            _ => write!(f, "0x{}", hex::encode(self.0)),
        }
    }
}

/// A path for a diff line; non-UTF-8 bytes are escaped.
fn show_path(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    (b as char).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            })
            .collect(),
    }
}

fn show_paths(paths: &Option<Vec<PathBuf>>) -> String {
    match paths {
        None => "none".to_string(),
        Some(paths) => format!(
            "[{}]",
            paths
                .iter()
                .map(|p| show_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// [`diff_trees_with`] comparing everything ([`Compare::default`]).
pub fn diff_trees(a: &Tree, b: &Tree) -> Vec<String> {
    diff_trees_with(a, b, &Compare::default())
}

/// The differences between trees `a` (left) and `b` (right), one line each:
/// paths only on one side, and every field that differs. Empty when equal.
pub fn diff_trees_with(a: &Tree, b: &Tree, compare: &Compare) -> Vec<String> {
    let mut out = Vec::new();
    let root = Path::new(".");
    for (path, left) in a {
        if !compare.root && path == root {
            continue;
        }
        let shown = show_path(path);
        let Some(right) = b.get(path) else {
            out.push(format!("only left: {shown} ({:?})", left.kind));
            continue;
        };
        // Each field is shown the same way on both sides.
        let field = |out: &mut Vec<String>, name: &str, show: &dyn Fn(&Entry) -> String| {
            let (l, r) = (show(left), show(right));
            if l != r {
                out.push(format!("{shown}: {name} {l} != {r}"));
            }
        };
        field(&mut out, "kind", &|e| format!("{:?}", e.kind));
        if left.kind != right.kind {
            continue;
        }
        field(&mut out, "mode", &|e| format!("{:04o}", e.mode));
        field(&mut out, "owner", &|e| format!("{}:{}", e.uid, e.gid));
        field(&mut out, "size", &|e| format!("{:?}", e.size));
        field(&mut out, "sha256", &|e| format!("{:?}", e.sha256));
        field(&mut out, "link", &|e| {
            format!("{:?}", e.link.as_deref().map(show_path))
        });
        field(&mut out, "rdev", &|e| format!("{:?}", e.rdev));
        for (name, value) in &left.xattrs {
            match right.xattrs.get(name) {
                None => out.push(format!(
                    "{shown}: xattr {} only left ({})",
                    name.to_string_lossy(),
                    Shown(value)
                )),
                Some(other) if other != value => out.push(format!(
                    "{shown}: xattr {} {} != {}",
                    name.to_string_lossy(),
                    Shown(value),
                    Shown(other)
                )),
                Some(_) => {}
            }
        }
        for (name, value) in &right.xattrs {
            if !left.xattrs.contains_key(name) {
                out.push(format!(
                    "{shown}: xattr {} only right ({})",
                    name.to_string_lossy(),
                    Shown(value)
                ));
            }
        }
        if compare.hardlinks {
            field(&mut out, "nlink", &|e| format!("{:?}", e.nlink));
            field(&mut out, "hardlinks", &|e| show_paths(&e.hardlinks));
        }
        if compare.mtime {
            field(&mut out, "mtime", &|e| format!("{:?}", e.mtime));
        }
    }
    for (path, right) in b {
        if (!compare.root && path == root) || a.contains_key(path) {
            continue;
        }
        out.push(format!(
            "only right: {} ({:?})",
            show_path(path),
            right.kind
        ));
    }
    out
}

/// Panics listing every difference between trees `a` and `b` (see
/// [`diff_trees_with`]); `what` names the comparison in the message.
#[track_caller]
pub fn assert_trees_equal_with(a: &Tree, b: &Tree, compare: &Compare, what: &str) {
    let diff = diff_trees_with(a, b, compare);
    assert!(
        diff.is_empty(),
        "{what}: the trees differ in {} ways:\n  {}",
        diff.len(),
        diff.join("\n  ")
    );
}

/// Asserts that two [`Tree`]s are equal, printing every difference:
/// `assert_trees_equal!(left, right)` compares everything,
/// `assert_trees_equal!(left, right, compare)` as a [`Compare`] says, and a
/// further format string and arguments name the comparison.
///
/// ```
/// use hoist_testkit::assert_trees_equal;
/// use hoist_testkit::tree::{Compare, snapshot_tree};
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("f"), b"x").unwrap();
/// let tree = snapshot_tree(dir.path());
/// assert_trees_equal!(&tree, &tree.clone());
/// assert_trees_equal!(&tree, &tree, Compare::default(), "{} with itself", "a tree");
/// ```
#[macro_export]
macro_rules! assert_trees_equal {
    ($left:expr, $right:expr $(,)?) => {
        $crate::tree::assert_trees_equal_with(
            $left,
            $right,
            &$crate::tree::Compare::default(),
            concat!(stringify!($left), " vs ", stringify!($right)),
        )
    };
    ($left:expr, $right:expr, $compare:expr $(,)?) => {
        $crate::tree::assert_trees_equal_with(
            $left,
            $right,
            &$compare,
            concat!(stringify!($left), " vs ", stringify!($right)),
        )
    };
    ($left:expr, $right:expr, $compare:expr, $($what:tt)+) => {
        $crate::tree::assert_trees_equal_with($left, $right, &$compare, &format!($($what)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_kinds_modes_links_and_xattrs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"hello").unwrap();
        std::fs::hard_link(root.join("d/f"), root.join("h")).unwrap();
        std::os::unix::fs::symlink("d/f", root.join("s")).unwrap();
        crate::outside::mkfifo(&root.join("p"), 0o640);
        std::fs::set_permissions(
            root.join("d"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        let with_xattr = rustix::fs::lsetxattr(
            root.join("h"),
            "user.k",
            b"v",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();

        let tree = snapshot_tree(root);
        let f = &tree[Path::new("d/f")];
        assert_eq!(f.kind, FileKind::File);
        assert_eq!(f.size, Some(5));
        assert_eq!(
            f.sha256.as_deref(),
            Some("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        let group = Some(vec![PathBuf::from("d/f"), PathBuf::from("h")]);
        assert_eq!(f.hardlinks, group);
        assert_eq!(tree[Path::new("h")].hardlinks, group);
        assert_eq!(tree[Path::new("d")].mode, 0o1777);
        assert_eq!(tree[Path::new("d")].kind, FileKind::Dir);
        assert_eq!(tree[Path::new("s")].link, Some(PathBuf::from("d/f")));
        assert_eq!(tree[Path::new("p")].kind, FileKind::Fifo);
        assert_eq!(tree[Path::new("p")].mode, 0o640);
        assert!(tree.contains_key(Path::new(".")));
        if with_xattr {
            assert_eq!(
                f.xattrs.get(&OsString::from("user.k")).map(Vec::as_slice),
                Some(&b"v"[..])
            );
        }
    }

    #[test]
    fn equal_trees_have_no_diff_and_changes_are_named() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            std::fs::write(dir.join("f"), b"x").unwrap();
            std::fs::hard_link(dir.join("f"), dir.join("g")).unwrap();
            std::os::unix::fs::symlink("/abs", dir.join("s")).unwrap();
        }
        let loose = Compare {
            mtime: false,
            ..Compare::default()
        };
        let ta = snapshot_tree(a.path());
        assert!(diff_trees_with(&ta, &snapshot_tree(b.path()), &loose).is_empty());

        std::fs::remove_file(b.path().join("g")).unwrap();
        std::fs::write(b.path().join("g"), b"x").unwrap();
        std::fs::remove_file(b.path().join("s")).unwrap();
        std::os::unix::fs::symlink("/other", b.path().join("s")).unwrap();
        std::fs::write(b.path().join("new"), b"").unwrap();
        let diff = diff_trees_with(&ta, &snapshot_tree(b.path()), &loose);
        let text = diff.join("\n");
        assert!(text.contains("f: hardlinks [f, g] != none"), "{text}");
        assert!(text.contains("s: link"), "{text}");
        assert!(text.contains("only right: new"), "{text}");
        let no_links = Compare {
            hardlinks: false,
            ..loose
        };
        assert_eq!(
            diff_trees_with(&ta, &snapshot_tree(b.path()), &no_links).len(),
            2,
            "{text}"
        );
    }

    #[test]
    fn non_utf8_names_are_shown_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let name = OsString::from_vec(b"caf\xe9".to_vec());
        std::fs::write(dir.path().join(&name), b"").unwrap();
        let tree = snapshot_tree(dir.path());
        assert!(tree.contains_key(Path::new(&name)));
        let diff = diff_trees(&tree, &Tree::new());
        assert!(
            diff.iter().any(|l| l == "only left: caf\\xe9 (File)"),
            "{diff:?}"
        );
    }
}
