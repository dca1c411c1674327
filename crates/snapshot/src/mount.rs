//! [`Mount`]: how to mount a snapshot, as data, as a shell command, and done
//! with `mount(2)`; and how an overlay of many layers still fits in
//! `mount(2)`'s one page of options.
//!
//! The data argument of `mount(2)` is one page (4096 bytes): an overlay
//! whose `lowerdir=` lists every layer by its absolute path passes it at
//! about 50 layers. Like containerd (`compactLowerdirOption` in
//! `core/mount/mount_linux.go`), such a mount names its lower directories
//! relative to their common parent (the snapshotter's `snapshots/`
//! directory, so each costs `<id>/fs:`, about 10 bytes, enough for overlay's
//! 500-layer limit) and mounts from that directory: [`Mount::mount`] from a
//! thread that unshares its working directory from the process's
//! (`unshare(CLONE_FS)`) and changes into it, [`Mount::to_command`] as
//! `cd <dir> && mount …`. This works on every kernel overlayfs has; the new
//! mount API's `lowerdir+` (one `fsconfig` call per layer) would avoid the
//! change of directory but needs Linux 6.8.

use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::io;
use std::path::{Component, Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Error, Result};

/// One mount to perform, like containerd's `mount.Mount`.
///
/// Snapshotters return a list; hoist's snapshotters always return exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mount {
    /// The file system type: `"overlay"` or `"bind"`.
    pub kind: String,
    /// The source: a directory for `bind`, `"overlay"` for overlay.
    pub source: String,
    /// Mount options: flags (`ro`, `rw`, `bind`, `rbind`, `nosuid`, `nodev`,
    /// `noexec`, …) and file system data (`lowerdir=…`, `upperdir=…`,
    /// `workdir=…`).
    pub options: Vec<String>,
}

/// The most bytes of data, its final NUL included, `mount(2)` takes: one
/// page, at its smallest.
const MAX_DATA: usize = 4096;

/// Options that are `mount(2)` flags rather than file system data.
fn flag(option: &str) -> Option<MountFlags> {
    Some(match option {
        "ro" => MountFlags::RDONLY,
        "rw" => MountFlags::empty(),
        "bind" => MountFlags::BIND,
        "rbind" => MountFlags::BIND | MountFlags::REC,
        "nosuid" => MountFlags::NOSUID,
        "nodev" => MountFlags::NODEV,
        "noexec" => MountFlags::NOEXEC,
        "noatime" => MountFlags::NOATIME,
        "nodiratime" => MountFlags::NODIRATIME,
        "relatime" => MountFlags::RELATIME,
        "strictatime" => MountFlags::STRICTATIME,
        "sync" => MountFlags::SYNCHRONOUS,
        _ => return None,
    })
}

impl Mount {
    /// A read-write (`ro == false`) or read-only bind mount of `dir`.
    pub(crate) fn bind(dir: &Path, ro: bool) -> Mount {
        Mount {
            kind: "bind".into(),
            source: dir.display().to_string(),
            options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()],
        }
    }

    /// An overlay mount; `upper` is `(upperdir, workdir)`, absent for a
    /// read-only stack (which then needs at least two lowers).
    pub(crate) fn overlay(lowers: &[&Path], upper: Option<(&Path, &Path)>) -> Mount {
        let lowerdir = lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut options = vec![format!("lowerdir={lowerdir}")];
        if let Some((upper, work)) = upper {
            options.push(format!("upperdir={}", upper.display()));
            options.push(format!("workdir={}", work.display()));
        }
        Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options,
        }
    }

    /// Splits the options into `mount(2)` flags and the data string.
    fn flags_and_data(&self) -> (MountFlags, String) {
        let mut flags = MountFlags::empty();
        let mut data = Vec::new();
        for option in &self.options {
            match flag(option) {
                Some(f) => flags |= f,
                None => data.push(option.as_str()),
            }
        }
        (flags, data.join(","))
    }

    /// The equivalent `mount(8)` command line, for logs and for users who
    /// want to mount a snapshot by hand, e.g.
    /// `mount -t overlay overlay -o lowerdir=/a:/b,upperdir=/c,workdir=/d /mnt`
    /// or `mount --rbind -o ro /snap/fs /mnt`. Arguments are shell-quoted.
    /// An overlay whose options would not fit in a page gets its lower
    /// directories relative to their parent and changes into it first, as
    /// [`mount`](Self::mount) does:
    /// `cd /snaps && mount -t overlay overlay -o lowerdir=2/fs:1/fs /mnt` (a
    /// relative `target` is then made absolute).
    pub fn to_command(&self, target: &Path) -> String {
        if let Some((dir, compact)) = self.compacted() {
            let target = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
            return format!(
                "cd {} && {}",
                quote(&dir.display().to_string()),
                compact.command(&target)
            );
        }
        self.command(target)
    }

    fn command(&self, target: &Path) -> String {
        let mut cmd = String::from("mount");
        if self.kind == "bind" {
            let recursive = self.options.iter().any(|o| o == "rbind");
            cmd.push_str(if recursive { " --rbind" } else { " --bind" });
            let rest: Vec<&str> = self
                .options
                .iter()
                .map(String::as_str)
                .filter(|o| *o != "bind" && *o != "rbind")
                .collect();
            if !rest.is_empty() {
                let _ = write!(cmd, " -o {}", quote(&rest.join(",")));
            }
        } else {
            let _ = write!(cmd, " -t {}", quote(&self.kind));
            let _ = write!(cmd, " {}", quote(&self.source));
            if !self.options.is_empty() {
                let _ = write!(cmd, " -o {}", quote(&self.options.join(",")));
            }
        }
        if self.kind == "bind" {
            let _ = write!(cmd, " {}", quote(&self.source));
        }
        let _ = write!(cmd, " {}", quote(&target.display().to_string()));
        cmd
    }

    /// Mounts at `target` (an existing directory) with `mount(2)`. A
    /// read-only bind mount takes two calls: the bind, then a remount with
    /// `MS_RDONLY` (the kernel ignores `MS_RDONLY` on the first). An overlay
    /// whose options do not fit in a page is mounted with its lower
    /// directories relative to their parent, from there (see the module
    /// docs).
    pub fn mount(&self, target: &Path) -> Result<()> {
        let (flags, data) = self.flags_and_data();
        let err = Error::io::<io::Error>(target);
        if self.kind == "bind" {
            let bind = flags | MountFlags::BIND;
            return rustix::mount::mount(self.source.as_str(), target, "none", bind, None)
                .and_then(|()| {
                    if flags.contains(MountFlags::RDONLY) {
                        let keep = (flags - MountFlags::REC) | MountFlags::BIND;
                        rustix::mount::mount_remount(target, keep, "").inspect_err(|_| {
                            let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
                        })
                    } else {
                        Ok(())
                    }
                })
                .map_err(io::Error::from)
                .map_err(err);
        }
        let result = if data.len() < MAX_DATA {
            c_string(data).and_then(|data| {
                rustix::mount::mount(
                    self.source.as_str(),
                    target,
                    self.kind.as_str(),
                    flags,
                    data.as_c_str(),
                )
                .map_err(io::Error::from)
            })
        } else {
            self.mount_compacted(target, flags)
        };
        result.map_err(err)
    }

    /// The mount with its lower directories relative to their common
    /// parent, and that parent, when the options do not fit in a page and
    /// that makes them fit; `None` otherwise.
    fn compacted(&self) -> Option<(PathBuf, Mount)> {
        if self.kind != "overlay" || self.flags_and_data().1.len() < MAX_DATA {
            return None;
        }
        let index = self
            .options
            .iter()
            .position(|o| o.starts_with("lowerdir="))?;
        let lowers: Vec<&Path> = self.options[index]["lowerdir=".len()..]
            .split(':')
            .map(Path::new)
            .collect();
        let parent = common_parent(&lowers)?;
        let relative: Vec<String> = lowers
            .iter()
            .map(|l| {
                let rel = l.strip_prefix(&parent).unwrap_or(l);
                if rel.as_os_str().is_empty() {
                    ".".to_owned()
                } else {
                    rel.display().to_string()
                }
            })
            .collect();
        let mut compact = self.clone();
        compact.options[index] = format!("lowerdir={}", relative.join(":"));
        (compact.flags_and_data().1.len() < MAX_DATA).then_some((parent, compact))
    }

    /// Mounts with [`compacted`](Self::compacted) options from their
    /// directory, on a thread of its own: the working directory is shared
    /// by every thread of a process, so this one first unshares it.
    fn mount_compacted(&self, target: &Path, flags: MountFlags) -> io::Result<()> {
        let Some((dir, compact)) = self.compacted() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the options of this {} mount exceed one page ({MAX_DATA} bytes), \
                     even with the lower directories relative to their common parent",
                    self.kind
                ),
            ));
        };
        // Resolved now: the mounting thread has another working directory.
        let target = std::path::absolute(target)?;
        let data = c_string(compact.flags_and_data().1)?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| mount_from(&dir, &self.source, &target, &self.kind, flags, &data))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Unmounts whatever is mounted at `target` (`umount2(target, 0)`).
    pub fn unmount(target: &Path) -> Result<()> {
        rustix::mount::unmount(target, UnmountFlags::empty()).map_err(Error::io(target))
    }
}

fn c_string(s: String) -> io::Result<CString> {
    CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The deepest directory holding every path of `paths` (absolute ones
/// only), compared by whole components; `None` if there is none but `/`.
fn common_parent(paths: &[&Path]) -> Option<PathBuf> {
    let (first, rest) = paths.split_first()?;
    if !paths.iter().all(|p| p.is_absolute()) {
        return None;
    }
    let mut common: Vec<Component<'_>> = first.components().collect();
    for path in rest {
        let shared = common
            .iter()
            .zip(path.components())
            .take_while(|(a, b)| *a == b)
            .count();
        common.truncate(shared);
    }
    let parent: PathBuf = common.iter().collect();
    (parent.components().count() > 1).then_some(parent)
}

/// `mount(2)` with the working directory `dir`, to be called on a thread of
/// its own, which it leaves with that working directory.
#[allow(unsafe_code, reason = "unshare(CLONE_FS); see the SAFETY comment")]
fn mount_from(
    dir: &Path,
    source: &str,
    target: &Path,
    kind: &str,
    flags: MountFlags,
    data: &CStr,
) -> io::Result<()> {
    // SAFETY: `unshare_unsafe` is unsafe because unsharing the file
    // descriptor table (CLONE_FILES) would let this thread see descriptors
    // other threads cannot, or miss theirs. CLONE_FS unshares only the
    // working directory, root and umask, which no Rust object refers to; this
    // thread is ours (a scoped thread that ends when the mount returns), so
    // nothing else observes its new working directory.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
    rustix::process::chdir(dir)?;
    rustix::mount::mount(source, target, kind, flags, data)?;
    Ok(())
}

/// Quotes `s` for a POSIX shell unless it is made of harmless characters only.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._,:=+@%-".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let ov = Mount::overlay(
            &[Path::new("/s/2/fs"), Path::new("/s/1/fs")],
            Some((Path::new("/s/3/fs"), Path::new("/s/3/work"))),
        );
        assert_eq!(
            ov.to_command(Path::new("/mnt")),
            "mount -t overlay overlay -o lowerdir=/s/2/fs:/s/1/fs,upperdir=/s/3/fs,workdir=/s/3/work /mnt"
        );
        let ro = Mount::bind(Path::new("/s/1/fs"), true);
        assert_eq!(
            ro.to_command(Path::new("/mnt")),
            "mount --rbind -o ro /s/1/fs /mnt"
        );
        let rw = Mount::bind(Path::new("/a b/fs"), false);
        assert_eq!(
            rw.to_command(Path::new("/it's")),
            r"mount --rbind -o rw '/a b/fs' '/it'\''s'"
        );
    }

    /// 128 lowers as the overlay snapshotter names them under a long root.
    fn many_layers() -> (PathBuf, Vec<PathBuf>) {
        let snapshots =
            PathBuf::from("/var/lib/hoist-with-a-longer-root/snapshots/overlay/snapshots");
        let lowers = (1..=128)
            .rev()
            .map(|id| snapshots.join(format!("{id}/fs")))
            .collect();
        (snapshots, lowers)
    }

    #[test]
    fn long_lowerdir_is_made_relative_to_the_snapshots_directory() {
        let (snapshots, lowers) = many_layers();
        let refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        let upper = snapshots.join("129/fs");
        let work = snapshots.join("129/work");
        let mut ov = Mount::overlay(&refs, Some((&upper, &work)));
        ov.options.push("nodev".into());
        assert!(
            ov.flags_and_data().1.len() >= MAX_DATA,
            "the case needs compacting"
        );

        let (dir, compact) = ov.compacted().expect("compactable");
        assert_eq!(dir, snapshots);
        let (flags, data) = compact.flags_and_data();
        assert_eq!(flags, MountFlags::NODEV);
        assert!(data.len() < MAX_DATA, "{} bytes", data.len());
        assert!(data.starts_with("lowerdir=128/fs:127/fs:"), "{data}");
        assert!(data.contains(":1/fs,"), "{data}");
        // Upper and work stay absolute: they are one path each.
        assert!(
            data.ends_with(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            )),
            "{data}"
        );

        let command = ov.to_command(Path::new("/mnt"));
        let expected = format!(
            "cd {} && mount -t overlay overlay -o lowerdir=128/fs:",
            snapshots.display()
        );
        assert!(command.starts_with(&expected), "{command}");
        assert!(command.ends_with(",nodev /mnt"), "{command}");
    }

    #[test]
    fn short_or_uncompactable_options_are_left_alone() {
        let ov = Mount::overlay(&[Path::new("/s/2/fs"), Path::new("/s/1/fs")], None);
        assert_eq!(ov.compacted(), None);
        assert!(ov.to_command(Path::new("/mnt")).starts_with("mount "));

        // Lowers sharing only `/`: nothing to be relative to.
        let scattered: Vec<PathBuf> = (0..300)
            .map(|i| PathBuf::from(format!("/layer-{i:04}/fs")))
            .collect();
        let refs: Vec<&Path> = scattered.iter().map(PathBuf::as_path).collect();
        let ov = Mount::overlay(&refs, None);
        assert!(ov.flags_and_data().1.len() >= MAX_DATA);
        assert_eq!(ov.compacted(), None);
        // Refused before mount(2), which would see the options cut short.
        let err = ov.mount(Path::new("/nonexistent-target")).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::InvalidInput),
            "{err:?}"
        );
    }

    #[test]
    fn common_parent_compares_whole_components() {
        let parent =
            |paths: &[&str]| common_parent(&paths.iter().map(Path::new).collect::<Vec<_>>());
        assert_eq!(parent(&["/s/10/fs", "/s/11/fs"]), Some(PathBuf::from("/s")));
        assert_eq!(
            parent(&["/s/1/fs", "/s/1/fs2"]),
            Some(PathBuf::from("/s/1"))
        );
        assert_eq!(parent(&["/snap/1", "/snapshots/2"]), None);
        assert_eq!(parent(&["/a/b", "relative/b"]), None);
    }

    #[test]
    fn flags_split_from_data() {
        let ov = Mount::overlay(&[Path::new("/a"), Path::new("/b")], None);
        let mut m = ov.clone();
        m.options.push("ro".into());
        let (flags, data) = m.flags_and_data();
        assert_eq!(flags, MountFlags::RDONLY);
        assert_eq!(data, "lowerdir=/a:/b");
    }
}
