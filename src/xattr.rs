//! Extended attributes: which namespaces to archive and restore, reading them from an
//! entry of an open directory (never following a symlink), and setting them on an open
//! file.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// One extended attribute: name and value bytes.
pub type Xattr = (Vec<u8>, Vec<u8>);

/// Which extended attributes to archive (pack) or restore (unpack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XattrPolicy {
    /// None.
    None,
    /// `user.*` only (the default).
    #[default]
    User,
    /// `user.*`, `security.*` and `trusted.*` (reading and setting `trusted.*` needs root).
    All,
}

impl std::str::FromStr for XattrPolicy {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "none" => Ok(XattrPolicy::None),
            "user" => Ok(XattrPolicy::User),
            "all" => Ok(XattrPolicy::All),
            other => Err(crate::Error::Invalid(format!(
                "unknown xattr policy {other:?} (expected none, user or all)"
            ))),
        }
    }
}

impl XattrPolicy {
    /// Whether an attribute of this name is covered.
    pub fn wants(self, name: &[u8]) -> bool {
        match self {
            XattrPolicy::None => false,
            XattrPolicy::User => name.starts_with(b"user."),
            XattrPolicy::All => [&b"user."[..], b"security.", b"trusted."]
                .iter()
                .any(|ns| name.starts_with(ns)),
        }
    }
}

fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

/// The attributes of `path` (itself, not a symlink's target) that `policy` covers, in
/// name order. A file system without xattr support gives none.
fn read(path: &Path, policy: XattrPolicy) -> io::Result<Vec<Xattr>> {
    if policy == XattrPolicy::None {
        return Ok(Vec::new());
    }
    let mut list = vec![0u8; 256];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr(path, &mut [0u8; 0][..])?;
                list.resize(need.max(list.len() * 2), 0);
            }
            Err(e) => {
                let e = io::Error::from(e);
                return if unsupported(&e) {
                    Ok(Vec::new())
                } else {
                    Err(e)
                };
            }
        }
    };
    let mut out = Vec::new();
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !policy.wants(name) {
            continue;
        }
        let name_os = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(len) => break Some(len),
                Err(rustix::io::Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr(path, name_os, &mut [0u8; 0][..])?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                // Removed between the listing and now: nothing to keep.
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(len) = len {
            value.truncate(len);
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// The attributes of entry `name` of the directory open as `dir` (the entry itself, not
/// a symlink's target) that `policy` covers, in name order. The entry is named through
/// `/proc/self/fd/DIR/NAME`: the kernel resolves that magic link to the directory we
/// hold open, wherever it is now, so nothing is looked up by its path from the root
/// again (a directory above swapped for a symlink is not followed). Needs /proc, which
/// [`check_proc`] checks once.
pub fn read_at(dir: BorrowedFd<'_>, name: &OsStr, policy: XattrPolicy) -> io::Result<Vec<Xattr>> {
    if policy == XattrPolicy::None {
        return Ok(Vec::new());
    }
    read(&proc_path(dir, name), policy)
}

/// `/proc/self/fd/DIR/NAME`.
fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> std::path::PathBuf {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    std::ffi::OsString::from_vec(path).into()
}

/// Checks that [`read_at`] works here: that `/proc/self/fd/DIR` leads to the directory
/// open as `dir` (same device and inode). Where /proc is not mounted (a minimal
/// container or chroot), it names the problem: attributes are then not read at all
/// rather than through a path that might be swapped.
pub fn check_proc(dir: BorrowedFd<'_>) -> Result<(), String> {
    let magic = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let held = rustix::fs::fstat(dir).map_err(|e| format!("fstat: {}", io::Error::from(e)))?;
    match rustix::fs::stat(magic.as_str()) {
        Ok(st) if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino) => Ok(()),
        Ok(_) => Err(format!("{magic} does not lead to the directory held open")),
        Err(e) => Err(format!("{magic}: {}", io::Error::from(e))),
    }
}

/// Sets on `fd` the attributes that `policy` covers.
pub fn restore(
    fd: impl AsFd,
    xattrs: &[(Vec<u8>, Vec<u8>)],
    policy: XattrPolicy,
) -> io::Result<()> {
    for (name, value) in xattrs.iter().filter(|(n, _)| policy.wants(n)) {
        let name = OsStr::from_bytes(name);
        rustix::fs::fsetxattr(&fd, name, value, rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}
