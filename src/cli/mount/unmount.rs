//! Unmounting the mount this process made, found by its identity (mount ID and
//! device), never by the path it was made on: that path may since lead elsewhere
//! (a parent renamed, a symlink swapped in, another mount stacked on top).

use anyhow::{Result, bail};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The identity of one mount: its mount ID and the device of its root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountId {
    id: u64,
    dev: (u32, u32),
}

/// How the mount ended.
pub enum Unmounted {
    /// Unmounted, at this path (where the kernel shows it now).
    Done(PathBuf),
    /// Busy (the error): detached lazily at this path.
    Detached(PathBuf, io::Error),
    /// No longer in the mount table: unmounted from outside.
    Gone,
}

impl MountId {
    /// The identity of the mount whose root `dir` is now (symlinks resolved, as
    /// fuser does to mount there); fails if that is not the root of a FUSE mount.
    pub fn of(dir: &Path) -> Result<MountId> {
        let real =
            std::fs::canonicalize(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let here = statx(&real)?;
        let Some(line) = mountinfo()?.into_iter().find(|l| l.id == here.id) else {
            bail!("{}: not found in /proc/self/mountinfo", dir.display());
        };
        if !line.fstype.starts_with("fuse") || line.dev != here.dev {
            bail!(
                "{}: the mount there is not the FUSE mount just made",
                dir.display()
            );
        }
        Ok(here)
    }

    /// Unmounts this mount: at the path where the kernel shows it now (which
    /// follows renames), after checking that this path still leads to it. Busy, it
    /// is detached lazily. Anything else at or under the path is left alone: if the
    /// path leads elsewhere (say another mount is stacked on ours), this fails,
    /// naming both, and unmounts nothing.
    pub fn unmount(&self) -> Result<Unmounted> {
        let Some(line) = mountinfo()?.into_iter().find(|l| l.id == self.id) else {
            return Ok(Unmounted::Gone);
        };
        let path = line.mount_point;
        self.check_at(&path)?;
        match umount2(&path, libc::UMOUNT_NOFOLLOW) {
            Ok(()) => Ok(Unmounted::Done(path)),
            Err(busy) if busy.raw_os_error() == Some(libc::EBUSY) => {
                self.check_at(&path)?;
                umount2(&path, libc::UMOUNT_NOFOLLOW | libc::MNT_DETACH)
                    .map_err(|e| anyhow::anyhow!("{}: lazy detach: {e}", path.display()))?;
                Ok(Unmounted::Detached(path, busy))
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                // Not root: the setuid helper unmounts (by path, checked just before).
                self.check_at(&path)?;
                if fusermount(&path, &["-u", "-q", "--"]) {
                    return Ok(Unmounted::Done(path));
                }
                self.check_at(&path)?;
                if fusermount(&path, &["-u", "-z", "-q", "--"]) {
                    let busy = io::Error::from_raw_os_error(libc::EBUSY);
                    return Ok(Unmounted::Detached(path, busy));
                }
                bail!("{}: unmount: fusermount3 -u -z failed", path.display())
            }
            Err(e) => bail!("{}: unmount: {e}", path.display()),
        }
    }

    /// Fails unless `path` (its final component not followed) is this mount's root.
    fn check_at(&self, path: &Path) -> Result<()> {
        match statx(path) {
            Ok(there) if there == *self => Ok(()),
            Ok(there) => bail!(
                "{}: our mount (ID {}) is no longer reachable there: the path now leads \
                 to mount ID {} (another mount on top, or the path replaced); \
                 nothing unmounted",
                path.display(),
                self.id,
                there.id
            ),
            Err(e) => bail!(
                "{}: our mount (ID {}) is no longer reachable there ({e}); nothing unmounted",
                path.display(),
                self.id
            ),
        }
    }

    /// Aborts this mount's FUSE connection (as `fusermount -u` relies on when the
    /// daemon hangs): requests fail from now on and the session loop ends. It only
    /// ever touches our own connection, named by our device's minor number.
    pub fn abort(&self) -> io::Result<()> {
        let abort = format!("/sys/fs/fuse/connections/{}/abort", self.dev.1);
        std::fs::write(abort, b"1")
    }
}

/// `statx` of `path` (a final symlink not followed, attributes not refreshed from
/// the file system): its mount ID and device.
fn statx(path: &Path) -> Result<MountId> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a zeroed statx is a valid output buffer.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC;
    // SAFETY: a valid C string and output buffer.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if rc != 0 {
        bail!("{}: statx: {}", path.display(), io::Error::last_os_error());
    }
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        bail!(
            "{}: statx gives no mount ID (kernel before 5.8)",
            path.display()
        );
    }
    Ok(MountId {
        id: st.stx_mnt_id,
        dev: (st.stx_dev_major, st.stx_dev_minor),
    })
}

/// umount2(2) of `path` with `flags`.
fn umount2(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid C string; umount2 has no other preconditions.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `fusermount3 ARGS PATH` (or `fusermount`) succeeded, for a user who may
/// not umount2.
fn fusermount(path: &Path, args: &[&str]) -> bool {
    ["fusermount3", "fusermount"].iter().any(|helper| {
        std::process::Command::new(helper)
            .args(args)
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// One line of /proc/self/mountinfo, the fields used here.
struct MountLine {
    id: u64,
    dev: (u32, u32),
    mount_point: PathBuf,
    fstype: String,
}

/// /proc/self/mountinfo (mount points as the kernel shows them now).
fn mountinfo() -> Result<Vec<MountLine>> {
    let text = std::fs::read("/proc/self/mountinfo")
        .map_err(|e| anyhow::anyhow!("/proc/self/mountinfo: {e}"))?;
    Ok(text.split(|&b| b == b'\n').filter_map(parse_line).collect())
}

/// `ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE ...`.
fn parse_line(line: &[u8]) -> Option<MountLine> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let id = std::str::from_utf8(fields.first()?).ok()?.parse().ok()?;
    let (major, minor) = std::str::from_utf8(fields.get(2)?).ok()?.split_once(':')?;
    let dev = (major.parse().ok()?, minor.parse().ok()?);
    let mount_point = PathBuf::from(std::ffi::OsString::from_vec(unescape(fields.get(4)?)));
    let dash = fields.iter().position(|f| *f == b"-")?;
    let fstype = String::from_utf8_lossy(fields.get(dash + 1)?).into_owned();
    Some(MountLine {
        id,
        dev,
        mount_point,
        fstype,
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        let value = octal.and_then(|d| {
            u8::try_from(d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'))).ok()
        });
        match value {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mountinfo_line_is_read_with_its_escapes() {
        let l = parse_line(
            b"36 35 0:52 / /tmp/a\\040b\\134c rw,nosuid shared:1 - fuse.znippy a.znippy ro",
        )
        .unwrap();
        assert_eq!((l.id, l.dev), (36, (0, 52)));
        assert_eq!(l.mount_point, Path::new("/tmp/a b\\c"));
        assert_eq!(l.fstype, "fuse.znippy");
        assert!(parse_line(b"").is_none());
    }
}
