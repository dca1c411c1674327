//! [`Mount`]: how to mount a snapshot, as data, as a shell command, and done
//! with `mount(2)`.

use std::ffi::CString;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

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
        // Note: the data of mount(2) is limited to one page; with dozens of
        // layers the `lowerdir` string can exceed it. containerd then uses
        // paths relative to the snapshots directory and mounts from a child
        // chdir'ed there; hoist does not yet (≈ 50 layers at typical root lengths).
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
    pub fn to_command(&self, target: &Path) -> String {
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
    /// `MS_RDONLY` (the kernel ignores `MS_RDONLY` on the first).
    pub fn mount(&self, target: &Path) -> Result<()> {
        let (flags, data) = self.flags_and_data();
        let err = Error::io::<io::Error>(target);
        let result = if self.kind == "bind" {
            let bind = flags | MountFlags::BIND;
            rustix::mount::mount(self.source.as_str(), target, "none", bind, None)
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
        } else {
            match CString::new(data) {
                Ok(data) => rustix::mount::mount(
                    self.source.as_str(),
                    target,
                    self.kind.as_str(),
                    flags,
                    data.as_c_str(),
                )
                .map_err(io::Error::from),
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
            }
        };
        result.map_err(err)
    }

    /// Unmounts whatever is mounted at `target` (`umount2(target, 0)`).
    pub fn unmount(target: &Path) -> Result<()> {
        rustix::mount::unmount(target, UnmountFlags::empty()).map_err(Error::io(target))
    }
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
