//! File-system operations confined to a target directory: every path is resolved
//! beneath it with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so no symlink, one
//! planted by the archive or already there, is ever followed, and nothing is created
//! outside ([`crate::resolve::beneath`]).

use crate::error::Error;
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A directory that all operations stay beneath.
pub struct Beneath {
    root: OwnedFd,
    path: PathBuf,
}

fn os(p: &[u8]) -> &OsStr {
    OsStr::from_bytes(p)
}

impl Beneath {
    /// Flushes the file system holding the target directory to stable storage.
    pub fn sync_fs(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.root).map_err(io::Error::from)
    }

    /// Opens (creating if needed) the target directory.
    pub fn open(dest: &Path) -> io::Result<Beneath> {
        std::fs::create_dir_all(dest)?;
        let root = rustix::fs::open(
            dest,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath {
            root,
            path: dest.into(),
        })
    }

    /// The path of `rel` under the target, for messages.
    pub fn display(&self, rel: &[u8]) -> PathBuf {
        self.path.join(os(rel))
    }

    /// Turns an I/O error about `rel` into an error naming its full path.
    pub fn err<'a>(
        &'a self,
        rel: &'a [u8],
        op: &'static str,
    ) -> impl FnOnce(io::Error) -> Error + 'a {
        move |e| Error::io(self.display(rel), op, e)
    }

    /// Opens `rel` with `flags`, never following a symlink, never leaving the root.
    fn resolve(&self, rel: &[u8], flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        crate::resolve::beneath(&self.root, rel, flags, mode)
    }

    /// The parent directory of `rel` and its last component.
    fn parent<'a>(&self, rel: &'a [u8]) -> io::Result<(OwnedFd, &'a [u8])> {
        match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => Ok((
                self.resolve(&rel[..i], OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())?,
                &rel[i + 1..],
            )),
            None => Ok((rustix::io::dup(&self.root)?, rel)),
        }
    }

    /// Creates directory `rel` (its parent must exist); an existing directory is fine,
    /// anything else in its place is an error.
    pub fn mkdir(&self, rel: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        match rustix::fs::mkdirat(&dir, os(name), Mode::from_raw_mode(0o755)) {
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW)?;
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory
                {
                    Ok(())
                } else {
                    Err(io::Error::other("exists and is not a directory"))
                }
            }
            r => r.map_err(Into::into),
        }
    }

    /// Creates file `rel` for writing, replacing (unlinking) whatever file or symlink
    /// is there, so an existing hard link or symlink is never written through.
    pub fn create(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        match self.resolve(rel, flags, Mode::from_raw_mode(0o600)) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let (dir, name) = self.parent(rel)?;
                rustix::fs::unlinkat(&dir, os(name), AtFlags::empty())?;
                self.resolve(rel, flags, Mode::from_raw_mode(0o600))
            }
            r => r,
        }
    }

    /// Opens existing file `rel` for writing.
    pub fn open_write(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        self.resolve(rel, OFlags::WRONLY, Mode::empty())
    }

    /// Opens existing directory `rel` (or the root, for an empty path).
    pub fn open_dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        self.resolve(rel, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
    }

    /// Creates symlink `rel` -> `target`, replacing a file or symlink already there.
    pub fn symlink(&self, rel: &[u8], target: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        match rustix::fs::symlinkat(os(target), &dir, os(name)) {
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(&dir, os(name), AtFlags::empty())?;
                rustix::fs::symlinkat(os(target), &dir, os(name)).map_err(Into::into)
            }
            r => r.map_err(Into::into),
        }
    }

    /// Makes `rel` another name of the file at `target` (both beneath the root; a
    /// symlink at `target` is linked itself, never followed), replacing what is at `rel`.
    pub fn hardlink(&self, target: &[u8], rel: &[u8]) -> io::Result<()> {
        let (tdir, tname) = self.parent(target)?;
        let (dir, name) = self.parent(rel)?;
        let link = || rustix::fs::linkat(&tdir, os(tname), &dir, os(name), AtFlags::empty());
        match link() {
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(&dir, os(name), AtFlags::empty())?;
                link().map_err(Into::into)
            }
            r => r.map_err(Into::into),
        }
    }

    /// Creates a fifo or device node at `rel` (replacing a file or symlink there), and
    /// gives it its owner (if given), mode and mtime without opening it.
    pub fn mknod(
        &self,
        rel: &[u8],
        node: rustix::fs::FileType,
        rdev: u64,
        owner: Option<(u32, u32)>,
        mode: u32,
        mtime_ns: i64,
    ) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let make = || rustix::fs::mknodat(&dir, os(name), node, Mode::from_raw_mode(0o600), rdev);
        match make() {
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(&dir, os(name), AtFlags::empty())?;
                make()?;
            }
            r => r?,
        }
        if let Some((uid, gid)) = owner {
            chown_nofollow(&dir, name, uid, gid)?;
        }
        rustix::fs::chmodat(&dir, os(name), Mode::from_raw_mode(mode), AtFlags::empty())?;
        rustix::fs::utimensat(&dir, os(name), &times(mtime_ns), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// Sets the owner of `rel` itself (not of a symlink's target).
    pub fn set_owner_nofollow(&self, rel: &[u8], uid: u32, gid: u32) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        chown_nofollow(&dir, name, uid, gid)
    }

    /// Sets the mtime of `rel` itself (not of a symlink's target).
    pub fn set_mtime_nofollow(&self, rel: &[u8], mtime_ns: i64) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        rustix::fs::utimensat(&dir, os(name), &times(mtime_ns), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Into::into)
    }
}

/// Sets the owner of `name` in `dir` itself, never following a symlink.
fn chown_nofollow(dir: &OwnedFd, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::chownat(
        dir,
        os(name),
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(Into::into)
}

/// Timestamps leaving atime alone and setting mtime.
pub fn times(mtime_ns: i64) -> Timestamps {
    let mtime = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: mtime,
    }
}

/// Sets the owner (if given), then the extended attributes `xattrs` covers (after the
/// owner: chown clears security.capability), then the permission bits (after the owner:
/// chown clears setuid and setgid), then the mtime, on an open file or directory.
pub fn apply_meta(
    fd: &OwnedFd,
    owner: Option<(u32, u32)>,
    xattrs: crate::xattr::ToSet<'_>,
    mode: u32,
    mtime_ns: i64,
) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
    }
    xattrs.restore(fd)?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?;
    rustix::fs::futimens(fd, &times(mtime_ns))?;
    Ok(())
}
