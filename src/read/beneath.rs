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
use std::sync::{Arc, Mutex};

use super::acl::strip_foreign_acls;
use super::staging::{Mount, Staging};
use std::collections::HashMap;

/// A directory that all operations stay beneath.
pub struct Beneath {
    root: OwnedFd,
    path: PathBuf,
    /// The staging directory of each mount, made when first needed.
    stagings: Mutex<HashMap<Mount, Arc<Staging>>>,
}

/// The directory the last file was created in, kept open for the next one (the files
/// of one directory come together), by [`Beneath::create`]. One per thread.
#[derive(Default)]
pub struct LastDir {
    dir: Option<(Vec<u8>, OwnedFd)>,
}

/// An inode made in a staging directory, to be named later ([`Beneath::publish`]).
pub struct Staged {
    staging: Arc<Staging>,
    name: Vec<u8>,
}

/// A directory of the target as step 1 of an unpack left it: its device and inode
/// numbers, to see that a path still names it, and whether the unpack made it.
#[derive(Clone, Copy, Debug)]
pub struct MadeDir {
    identity: (u64, u64),
    made: bool,
}

impl MadeDir {
    fn of(st: &rustix::fs::Stat, made: bool) -> MadeDir {
        MadeDir {
            identity: (st.st_dev, st.st_ino),
            made,
        }
    }

    /// Whether the unpack made it (it did not exist).
    pub fn made(&self) -> bool {
        self.made
    }
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
            stagings: Mutex::default(),
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

    /// Creates directory `rel` with permission bits `mode` (its parent must exist); an
    /// existing directory is fine, anything else in its place is an error. Returns
    /// what it is: one made here is opened and checked to be ours, so a directory
    /// renamed into its name meanwhile is refused rather than taken for it.
    pub fn mkdir(&self, rel: &[u8], mode: u32) -> io::Result<MadeDir> {
        let (dir, name) = self.parent(rel)?;
        match rustix::fs::mkdirat(&dir, os(name), Mode::from_raw_mode(mode)) {
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW)?;
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory
                {
                    Ok(MadeDir::of(&st, false))
                } else {
                    Err(io::Error::other("exists and is not a directory"))
                }
            }
            Err(e) => Err(e.into()),
            Ok(()) => {
                let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let made = rustix::fs::openat(&dir, os(name), flags, Mode::empty())?;
                let st = rustix::fs::fstat(&made)?;
                if st.st_uid != rustix::process::geteuid().as_raw() {
                    return Err(io::Error::other(
                        "replaced by another directory while being made",
                    ));
                }
                strip_foreign_acls(&made, &dir, true)?;
                Ok(MadeDir::of(&st, true))
            }
        }
    }

    /// Opens directory `rel` to give it its metadata, checking that it is still the
    /// directory `dir` describes: the same device and inode, and, for one made by this
    /// unpack, still ours (another user who removes it and makes one of their own in
    /// its place may get the same inode number, but not our ownership).
    pub fn open_dir_checked(&self, rel: &[u8], dir: MadeDir) -> io::Result<OwnedFd> {
        let fd = self.open_dir(rel)?;
        let st = rustix::fs::fstat(&fd)?;
        let ours = st.st_uid == rustix::process::geteuid().as_raw();
        if (st.st_dev, st.st_ino) != dir.identity || (dir.made && !ours) {
            return Err(io::Error::other(
                "replaced by another directory while unpacking: its owner, mode and mtime are not set",
            ));
        }
        Ok(fd)
    }

    /// The staging directory for inodes that will be named in directory `dir`.
    /// It is made in the target directory itself where that is on the same mount,
    /// else in `dir`.
    fn staging_for(&self, dir: &OwnedFd) -> io::Result<Arc<Staging>> {
        let mount = Mount::of(dir)?;
        let mut stagings = self.stagings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stagings.get(&mount) {
            return Ok(s.clone());
        }
        let home = if Mount::of(&self.root)? == mount {
            &self.root
        } else {
            dir
        };
        let staging = Arc::new(Staging::create(rustix::io::dup(home)?)?);
        stagings.insert(mount, staging.clone());
        Ok(staging)
    }

    /// Removes the staging directories (everything staged has been named or
    /// discarded by now), before the directories holding them get their mtimes.
    pub fn end_staging(&self) -> io::Result<()> {
        let stagings =
            std::mem::take(&mut *self.stagings.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, staging) in stagings {
            if let Some(staging) = Arc::into_inner(staging) {
                staging.remove()?;
            }
        }
        Ok(())
    }

    /// Makes an empty file of `size` bytes, to be written and then named `rel`
    /// ([`Beneath::publish`]); until then no other user can reach it.
    pub fn stage_file(&self, rel: &[u8], size: u64) -> io::Result<Staged> {
        let (dir, _) = self.parent(rel)?;
        let staging = self.staging_for(&dir)?;
        let name = staging.fresh_name();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(staging.dir(), os(&name), flags, Mode::from_raw_mode(0o600))?;
        rustix::fs::ftruncate(&fd, size)?;
        Ok(Staged { staging, name })
    }

    /// Opens the staged file `staged` for writing.
    pub fn open_staged(&self, staged: &Staged) -> io::Result<OwnedFd> {
        let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(
            staged.staging.dir(),
            os(&staged.name),
            flags,
            Mode::empty(),
        )?)
    }

    /// Names the staged inode `rel`, replacing a file or symlink there.
    pub fn publish(&self, staged: Staged, rel: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        staged.staging.publish(&staged.name, &dir, name)
    }

    /// Removes the staged inode `staged` without naming it.
    pub fn discard(&self, staged: Staged) -> io::Result<()> {
        staged.staging.discard(&staged.name)
    }

    /// Creates file `rel` for writing, replacing (unlinking) whatever file or symlink
    /// is there, so an existing hard link or symlink is never written through. It is
    /// made relative to its directory's descriptor, which `last` keeps open for the
    /// next file of the same directory; an ACL the file inherits from that directory
    /// (the one it was really made in, whatever its path names by now) is removed when
    /// the directory is another user's.
    pub fn create(&self, rel: &[u8], last: &mut LastDir) -> io::Result<OwnedFd> {
        let (dir_rel, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (
                rel.get(..i).unwrap_or_default(),
                rel.get(i + 1..).unwrap_or_default(),
            ),
            None => (&b""[..], rel),
        };
        let dir = match &last.dir {
            Some((open, fd)) if open.as_slice() == dir_rel => fd,
            _ => {
                let fd = match dir_rel {
                    b"" => rustix::io::dup(&self.root)?,
                    d => self.open_dir(d)?,
                };
                &last.dir.insert((dir_rel.to_vec(), fd)).1
            }
        };
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let perm = Mode::from_raw_mode(0o600);
        let fd = match rustix::fs::openat(dir, os(name), flags, perm) {
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(dir, os(name), AtFlags::empty())?;
                rustix::fs::openat(dir, os(name), flags, perm)?
            }
            r => r?,
        };
        strip_foreign_acls(&fd, dir, false)?;
        Ok(fd)
    }

    /// Opens existing directory `rel` (or the root, for an empty path).
    pub fn open_dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        self.resolve(rel, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
    }

    /// Creates symlink `rel` -> `target` with its owner (if given) and mtime, replacing
    /// a file or symlink already there. It is made and given its owner and mtime in the
    /// staging directory, then renamed into place.
    pub fn symlink(
        &self,
        rel: &[u8],
        target: &[u8],
        owner: Option<(u32, u32)>,
        mtime_ns: i64,
    ) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let staging = self.staging_for(&dir)?;
        let staged = staging.fresh_name();
        let made = rustix::fs::symlinkat(os(target), staging.dir(), os(&staged));
        made.map_err(io::Error::from)
            .and_then(|()| {
                if let Some((uid, gid)) = owner {
                    chown_nofollow(staging.dir(), &staged, uid, gid)?;
                }
                let at = AtFlags::SYMLINK_NOFOLLOW;
                rustix::fs::utimensat(staging.dir(), os(&staged), &times(mtime_ns), at)?;
                staging.publish(&staged, &dir, name)
            })
            .inspect_err(|_| {
                let _ = staging.discard(&staged);
            })
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
    /// gives it its owner (if given), mode and mtime without opening it. It is made and
    /// given all of these in the staging directory, then renamed into place, so no
    /// chmod or chown can be redirected through a name.
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
        let staging = self.staging_for(&dir)?;
        let staged = staging.fresh_name();
        let (at, perm) = (staging.dir(), Mode::from_raw_mode(0o600));
        let made = rustix::fs::mknodat(at, os(&staged), node, perm, rdev);
        made.map_err(io::Error::from)
            .and_then(|()| {
                if let Some((uid, gid)) = owner {
                    chown_nofollow(at, &staged, uid, gid)?;
                }
                // Nothing but us can be in the staging directory: no symlink to follow.
                rustix::fs::chmodat(at, os(&staged), Mode::from_raw_mode(mode), AtFlags::empty())?;
                let nofollow = AtFlags::SYMLINK_NOFOLLOW;
                rustix::fs::utimensat(at, os(&staged), &times(mtime_ns), nofollow)?;
                staging.publish(&staged, &dir, name)
            })
            .inspect_err(|_| {
                let _ = staging.discard(&staged);
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory the unpack made, removed by another user who makes one of their
    /// own in its place with the same inode number (ext4 reuses them at once), is not
    /// taken for ours: it is not ours.
    #[test]
    fn a_made_directory_recreated_by_another_user_with_its_inode_is_refused() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root, to make a directory another user owns");
            return;
        }
        let tmp = std::env::temp_dir().join(format!("beneath-reuse-{}", std::process::id()));
        let b = Beneath::open(&tmp).unwrap();
        let made = b.mkdir(b"d", 0o755).unwrap();
        assert!(made.made() && b.open_dir_checked(b"d", made).is_ok());
        std::fs::remove_dir(tmp.join("d")).unwrap();
        std::fs::create_dir(tmp.join("d")).unwrap();
        std::os::unix::fs::chown(tmp.join("d"), Some(65534), Some(65534)).unwrap();
        let st = rustix::fs::stat(tmp.join("d")).unwrap();
        // As if the inode number had been reused.
        let recycled = MadeDir::of(&st, true);
        assert!(b.open_dir_checked(b"d", recycled).is_err());
        // One found there before the unpack is anyone's: identity alone decides.
        assert!(b.open_dir_checked(b"d", MadeDir::of(&st, false)).is_ok());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
