//! Proof that applying a layer changed nothing outside its root: a canary
//! beside the root ([`plant_canary`]), a record of the observable state of
//! every path under a base directory but the root's contents
//! ([`record_outside`]), and the differences between two records
//! ([`changes`]). The archive crate's hostile-layer tests and the
//! `apply_layer` fuzz target both prove their sandboxes with it.
//!
//! The fuzz target includes this file by path (`#[path]`) rather than
//! depending on the testkit, whose servers would be built with the fuzzer's
//! sanitizer flags: so this module uses nothing but `std` and `rustix`, and
//! nothing else of the crate.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Every path [`record_outside`] saw → its state.
pub type Record = BTreeMap<PathBuf, State>;

/// One path's observable state.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    /// A directory whose own metadata is not at stake, only its entries: the
    /// base, and the directory that holds the root (the root is removed from
    /// and made in it, or its time moves as the root's entries land).
    Listed,
    /// Anything else: everything that a change to it would show.
    Node {
        /// `symlink`, `dir`, `file`, `fifo` or `other`.
        kind: &'static str,
        /// `st_mode`, type bits included.
        mode: u32,
        /// The owner.
        uid: u32,
        /// The group.
        gid: u32,
        /// The inode: a path replaced by another file shows.
        ino: u64,
        /// The link count: a hardlink made to it from anywhere shows.
        nlink: u64,
        /// `(seconds, nanoseconds)` of the mtime.
        mtime: (i64, i64),
        /// `(seconds, nanoseconds)` of the ctime: any change of metadata
        /// (mode, owner, xattrs, links) shows, even one undone since.
        ctime: (i64, i64),
        /// A file's content or a symlink's target.
        content: Vec<u8>,
        /// Every extended attribute, name and value, as listed.
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

/// Makes `canary` (beside the root) with what a hostile layer might try to
/// reach: a file, a directory holding a file, a symlink and a fifo.
pub fn plant_canary(canary: &Path) {
    std::fs::create_dir_all(canary.join("dir")).unwrap();
    std::fs::write(canary.join("file"), b"precious").unwrap();
    std::fs::write(canary.join("dir/inner"), b"also precious").unwrap();
    std::os::unix::fs::symlink("file", canary.join("link")).unwrap();
    mkfifo(&canary.join("fifo"), 0o644);
}

/// Makes a fifo at `path` with `mode`.
pub fn mkfifo(path: &Path, mode: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(mode),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// The state of every path under `base` but those below `root` (a directory
/// somewhere under it); the root's parent and the base are [`State::Listed`].
pub fn record_outside(base: &Path, root: &Path) -> Record {
    let mut out = Record::new();
    walk(base, root, &mut out);
    out.insert(base.to_path_buf(), State::Listed);
    out.insert(
        root.parent().expect("the root has a parent").to_path_buf(),
        State::Listed,
    );
    out
}

/// What differs from `before` in `after`, one line a path: `removed …`,
/// `changed …` with both states, `created …`. Empty when nothing does.
pub fn changes(before: &Record, after: &Record) -> Vec<String> {
    let mut out = Vec::new();
    for (path, was) in before {
        match after.get(path) {
            None => out.push(format!("removed {}", path.display())),
            Some(now) if now != was => out.push(format!(
                "changed {}:\n    before {was:?}\n    after  {now:?}",
                path.display()
            )),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("created {}", path.display()));
    }
    out
}

/// The state of `path`, not following a final symlink.
fn state(path: &Path) -> State {
    let md = std::fs::symlink_metadata(path).unwrap();
    let ft = md.file_type();
    let (kind, content) = if ft.is_symlink() {
        let target = std::fs::read_link(path).unwrap();
        ("symlink", target.into_os_string().into_encoded_bytes())
    } else if ft.is_dir() {
        ("dir", Vec::new())
    } else if ft.is_file() {
        ("file", std::fs::read(path).unwrap())
    } else if ft.is_fifo() {
        ("fifo", Vec::new())
    } else {
        ("other", Vec::new())
    };
    State::Node {
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        ino: md.ino(),
        nlink: md.nlink(),
        mtime: (md.mtime(), md.mtime_nsec()),
        ctime: (md.ctime(), md.ctime_nsec()),
        content,
        xattrs: xattrs(path),
    }
}

/// Every xattr of `path` (not following a symlink); none where the file
/// system has none.
fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 64 << 10];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return Vec::new();
    };
    names[..n]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let mut value = vec![0u8; 64 << 10];
            let len = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap_or(0);
            value.truncate(len);
            (name.to_vec(), value)
        })
        .collect()
}

/// Records `dir` and everything under it into `out`, but `skip` and what it
/// holds.
fn walk(dir: &Path, skip: &Path, out: &mut Record) {
    out.insert(dir.to_path_buf(), state(dir));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == skip {
            continue;
        }
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, skip, out);
        } else {
            out.insert(path.clone(), state(&path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_outside_the_root_show_and_the_roots_contents_do_not() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let canary = base.path().join("canary");
        std::fs::create_dir(&root).unwrap();
        plant_canary(&canary);
        let before = record_outside(base.path(), &root);

        std::fs::write(root.join("inside"), b"fine").unwrap();
        assert_eq!(
            changes(&before, &record_outside(base.path(), &root)),
            Vec::<String>::new()
        );

        std::fs::write(canary.join("file"), b"overwritten").unwrap();
        std::fs::remove_file(canary.join("link")).unwrap();
        std::fs::write(base.path().join("sibling"), b"").unwrap();
        let found = changes(&before, &record_outside(base.path(), &root)).join("\n");
        assert!(
            found.contains("changed ") && found.contains("canary/file"),
            "{found}"
        );
        assert!(
            found.contains("removed ") && found.contains("canary/link"),
            "{found}"
        );
        assert!(
            found.contains("created ") && found.contains("sibling"),
            "{found}"
        );
    }
}
