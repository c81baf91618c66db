//! Extended attributes: which namespaces to archive and restore, reading them from a
//! path (never following a symlink) and setting them on an open file.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
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
pub fn read(path: &Path, policy: XattrPolicy) -> io::Result<Vec<Xattr>> {
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
