//! Staging: a private directory (mode 0700, ours) inside the target, where an inode
//! that takes more than one step to finish is made and finished before a rename gives
//! it its name: a file written chunk by chunk and then given its owner and mode, a
//! fifo, device node or symlink given its owner, mode and mtime. Another user who can
//! write the target can rename and replace names there, but cannot enter this
//! directory, so every one of those steps acts on the inode we made, never on one
//! swapped in by name.
//!
//! A rename cannot cross mounts, so there is one staging directory per mount the
//! target spans, made in the first directory of that mount that needs one. Each is
//! emptied and removed when the unpack ends, however it ends; a killed unpack leaves
//! one named `.znippy-unpack.PID.N` behind.

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Staging directories made by this process so far (names are unique per process).
static MADE: AtomicU64 = AtomicU64::new(0);

/// One private directory, with the directory it lies in, so it can be removed.
pub struct Staging {
    dir: OwnedFd,
    parent: OwnedFd,
    name: Vec<u8>,
    identity: (u64, u64),
    /// Names given to inodes staged here so far.
    next: AtomicU64,
}

/// Where a staging directory may serve: one mount (by mount id, or by device number
/// on kernels without `STATX_MNT_ID`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Mount {
    /// `stx_mnt_id`.
    Id(u64),
    /// `st_dev`, where the mount id is not known.
    Device(u64),
}

impl Mount {
    /// The mount that directory `dir` is on.
    pub fn of(dir: impl AsFd) -> io::Result<Mount> {
        match rustix::fs::statx(&dir, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID) {
            Ok(x) if x.stx_mask & StatxFlags::MNT_ID.bits() != 0 => Ok(Mount::Id(x.stx_mnt_id)),
            _ => Ok(Mount::Device(rustix::fs::fstat(&dir)?.st_dev)),
        }
    }
}

fn os(p: &[u8]) -> &OsStr {
    OsStr::from_bytes(p)
}

impl Staging {
    /// Makes a private directory in `parent` and opens it. The directory opened is
    /// checked to be ours and private before anything is put in it: a directory
    /// renamed into its name between mkdir and open is refused.
    /// A name taken already (an archive may hold one) is passed over.
    pub fn create(parent: OwnedFd) -> io::Result<Staging> {
        let mut tries = 0;
        let name = loop {
            let n = MADE.fetch_add(1, Ordering::Relaxed);
            let name = format!(".znippy-unpack.{}.{n}", std::process::id()).into_bytes();
            match rustix::fs::mkdirat(&parent, os(&name), Mode::from_raw_mode(0o700)) {
                Err(rustix::io::Errno::EXIST) if tries < 64 => tries += 1,
                Err(e) => return Err(e.into()),
                Ok(()) => break name,
            }
        };
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::openat(&parent, os(&name), flags, Mode::empty())?;
        let st = rustix::fs::fstat(&dir)?;
        if st.st_uid != rustix::process::geteuid().as_raw() || st.st_mode & 0o077 != 0 {
            return Err(io::Error::other(format!(
                "the staging directory {} was replaced by another one while being made",
                String::from_utf8_lossy(&name)
            )));
        }
        // What is made here inherits no ACL from a directory of another user.
        super::acl::strip_foreign_acls(&dir, &parent, true)?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700))?;
        Ok(Staging {
            dir,
            parent,
            name,
            identity: (st.st_dev, st.st_ino),
            next: AtomicU64::new(0),
        })
    }

    /// The private directory.
    pub fn dir(&self) -> &OwnedFd {
        &self.dir
    }

    /// A name not yet used in this directory.
    pub fn fresh_name(&self) -> Vec<u8> {
        self.next
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
            .into_bytes()
    }

    /// Gives the inode staged as `name` the name `to` in `dir`, replacing a file or
    /// symlink there (never writing through it); a directory there is an error.
    pub fn publish(&self, name: &[u8], dir: impl AsFd, to: &[u8]) -> io::Result<()> {
        rustix::fs::renameat(&self.dir, os(name), &dir, os(to)).map_err(Into::into)
    }

    /// Removes the inode staged as `name` (one not to be published: damaged).
    pub fn discard(&self, name: &[u8]) -> io::Result<()> {
        rustix::fs::unlinkat(&self.dir, os(name), AtFlags::empty()).map_err(Into::into)
    }

    /// Removes whatever is still staged, then the directory itself.
    pub fn remove(mut self) -> io::Result<()> {
        let result = self.clear();
        self.name.clear(); // removed (or not to be tried again on drop)
        result
    }

    fn clear(&self) -> io::Result<()> {
        if self.name.is_empty() {
            return Ok(());
        }
        let mut left = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.dir)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                left.push(name);
            }
        }
        for name in left {
            self.discard(&name)?;
        }
        let st = rustix::fs::statat(&self.parent, os(&self.name), AtFlags::SYMLINK_NOFOLLOW)?;
        if (st.st_dev, st.st_ino) == self.identity {
            rustix::fs::unlinkat(&self.parent, os(&self.name), AtFlags::REMOVEDIR)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = self.clear() {
            log::warn!(
                "could not remove the staging directory {}: {e}",
                String::from_utf8_lossy(&self.name)
            );
        }
    }
}
