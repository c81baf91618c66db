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
///
/// Most entries have no attributes `policy` covers: where the kernel has `listxattrat`
/// (Linux 6.13), that is found by listing them relative to `dir` in one call that looks
/// up one name, instead of walking `/proc/self/fd/...` (a fifth of the CPU of a pack of
/// a million tiny files went there). Only an entry that has some is then read through
/// the magic link.
pub fn read_at(dir: BorrowedFd<'_>, name: &OsStr, policy: XattrPolicy) -> io::Result<Vec<Xattr>> {
    if policy == XattrPolicy::None {
        return Ok(Vec::new());
    }
    if let Some(names) = list_at(dir, name)
        && !names
            .split(|&b| b == 0)
            .any(|n| !n.is_empty() && policy.wants(n))
    {
        return Ok(Vec::new());
    }
    read(&proc_path(dir, name), policy)
}

/// `listxattrat(2)`'s number: the same on every architecture (new system calls share
/// one table since Linux 5.1). The libc crate does not name it for x86_64 yet.
const SYS_LISTXATTRAT: libc::c_long = 465;

/// Whether the kernel lacks `listxattrat` (learned from the first ENOSYS).
static NO_LISTXATTRAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The attribute names of entry `name` of `dir` (itself, never a symlink's target),
/// NUL-separated, when `listxattrat` gives them in a buffer of 1 KiB; `None` when it
/// cannot (an older kernel, a longer list, any error): the caller then takes the
/// `/proc` path, which names errors as before. A file system without attributes gives
/// an empty list.
fn list_at(dir: BorrowedFd<'_>, name: &OsStr) -> Option<Vec<u8>> {
    use std::sync::atomic::Ordering;
    if NO_LISTXATTRAT.load(Ordering::Relaxed) {
        return None;
    }
    let name = std::ffi::CString::new(name.as_bytes()).ok()?;
    let mut list = vec![0u8; 1024];
    // SAFETY: listxattrat(dfd, path, at_flags, list, size) reads the NUL-terminated
    // `name` and writes at most `list.len()` bytes into `list`; both outlive the call.
    let n = unsafe {
        libc::syscall(
            SYS_LISTXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
            list.as_mut_ptr(),
            list.len(),
        )
    };
    match usize::try_from(n) {
        Ok(n) if n <= list.len() => {
            list.truncate(n);
            Some(list)
        }
        Ok(_) => None,
        Err(_) => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENOSYS) => {
                NO_LISTXATTRAT.store(true, Ordering::Relaxed);
                None
            }
            e if unsupported(&e) => Some(Vec::new()),
            _ => None,
        },
    }
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

/// Why an attribute was not set, when that is not fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Skip {
    /// EPERM for `trusted.*` or `security.*` when not root: only root may set them.
    NotPermitted,
    /// ENOTSUP: the target's file system keeps no such attributes.
    Unsupported,
    /// On a symlink entry: packs record none there (Linux keeps no `user.*` on one, and
    /// the rest are not archived on symlinks), so only an older or crafted archive has
    /// them; they are named, not set.
    OnSymlink,
}

impl Skip {
    /// The failure `e` to set attribute `name` as a tolerated kind, or `None` when it
    /// is an error.
    fn of(e: &io::Error, name: &[u8], root: bool) -> Option<Skip> {
        let privileged = name.starts_with(b"trusted.") || name.starts_with(b"security.");
        match e.raw_os_error() {
            Some(libc::ENOTSUP) => Some(Skip::Unsupported),
            Some(libc::EPERM) if privileged && !root => Some(Skip::NotPermitted),
            _ => None,
        }
    }

    fn why(self) -> &'static str {
        match self {
            Skip::NotPermitted => "not permitted (trusted.* and security.* need root)",
            Skip::Unsupported => "the target's file system does not support them",
            Skip::OnSymlink => "recorded on a symlink, which is restored without any",
        }
    }
}

/// An attribute name for messages: lossy UTF-8, quoted with control bytes escaped,
/// and only its first 255 bytes (the kernel's longest name) when longer.
fn shown(name: &[u8]) -> String {
    match name.get(..255) {
        Some(head) if name.len() > 255 => {
            format!(
                "{:?}... ({} bytes)",
                String::from_utf8_lossy(head),
                name.len()
            )
        }
        _ => format!("{:?}", String::from_utf8_lossy(name)),
    }
}

/// How an unpack sets extended attributes: which ones (the policy), and the failures
/// it tolerates, counted by kind with the first of each, for one warning per kind.
/// Shared by the threads writing files.
#[derive(Debug)]
pub(crate) struct Restorer {
    policy: XattrPolicy,
    root: bool,
    skipped: std::sync::Mutex<std::collections::BTreeMap<Skip, (u64, String)>>,
}

/// The attributes of one file to set with [`Restorer::restore`], and its path in the
/// archive (for messages).
pub(crate) struct ToSet<'a> {
    /// The archived attributes.
    pub xattrs: &'a [Xattr],
    /// The file's path in the archive.
    pub path: &'a [u8],
    /// The unpack's restorer.
    pub restorer: &'a Restorer,
}

impl Restorer {
    /// A restorer of the attributes `policy` covers.
    pub fn new(policy: XattrPolicy) -> Restorer {
        Restorer {
            policy,
            root: rustix::process::geteuid().is_root(),
            skipped: Default::default(),
        }
    }

    /// One line per kind of attribute not set: how many, why, and the first.
    pub fn warnings(&self) -> Vec<String> {
        let skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
        (skipped.iter())
            .map(|(kind, (count, first))| {
                format!(
                    "{count} extended attribute(s) not set: {} (first: {first})",
                    kind.why()
                )
            })
            .collect()
    }
}

impl ToSet<'_> {
    /// Counts, for [`Restorer::warnings`], the attributes the policy covers that a
    /// symlink entry carries: a symlink is made without any.
    pub fn not_on_symlink(&self) {
        let r = self.restorer;
        let mut wanted = self.xattrs.iter().filter(|(n, _)| r.policy.wants(n));
        let Some((name, _)) = wanted.next() else {
            return;
        };
        let mut skipped = r.skipped.lock().unwrap_or_else(|p| p.into_inner());
        let path = String::from_utf8_lossy(self.path);
        let first = || format!("{} of {path:?}", shown(name));
        skipped
            .entry(Skip::OnSymlink)
            .or_insert_with(|| (0, first()))
            .0 += 1 + wanted.count() as u64;
    }

    /// Sets on `fd` the attributes the policy covers. A failure that is tolerated
    /// (ENOTSUP; EPERM for `trusted.*` and `security.*` when not root) is counted for
    /// [`Restorer::warnings`]; any other fails, naming the attribute.
    pub fn restore(&self, fd: impl AsFd) -> io::Result<()> {
        let r = self.restorer;
        for (name, value) in self.xattrs.iter().filter(|(n, _)| r.policy.wants(n)) {
            let set = rustix::fs::fsetxattr(
                &fd,
                OsStr::from_bytes(name),
                value,
                rustix::fs::XattrFlags::empty(),
            );
            let Err(e) = set.map_err(io::Error::from) else {
                continue;
            };
            match Skip::of(&e, name, r.root) {
                Some(kind) => {
                    let mut skipped = r.skipped.lock().unwrap_or_else(|p| p.into_inner());
                    let first = || {
                        let path = String::from_utf8_lossy(self.path);
                        format!("{} of {path:?}", shown(name))
                    };
                    skipped.entry(kind).or_insert_with(|| (0, first())).0 += 1;
                }
                None => {
                    let problem = format!("extended attribute {}: {e}", shown(name));
                    return Err(io::Error::new(e.kind(), problem));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_at_a_directory_finds_short_and_long_lists_and_skips_uncovered_names() {
        let dir = std::env::temp_dir().join(format!("xattr-read-at-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (plain, many) = (dir.join("plain"), dir.join("many"));
        std::fs::write(&plain, b"x").unwrap();
        std::fs::write(&many, b"y").unwrap();
        // 40 names of 40 bytes: a list longer than list_at's 1 KiB buffer.
        let names: Vec<String> = (0..40).map(|i| format!("user.{i:035}")).collect();
        for n in &names {
            if rustix::fs::setxattr(&many, n.as_str(), b"v", rustix::fs::XattrFlags::empty())
                .is_err()
            {
                std::fs::remove_dir_all(&dir).unwrap();
                return; // this file system keeps no user attributes
            }
        }
        let d = std::fs::File::open(&dir).unwrap();
        let read = |name: &str, policy| read_at(d.as_fd(), OsStr::new(name), policy).unwrap();
        assert_eq!(read("plain", XattrPolicy::User), Vec::<Xattr>::new());
        assert_eq!(list_at(d.as_fd(), OsStr::new("plain")), Some(Vec::new()));
        let got = read("many", XattrPolicy::User);
        let got: Vec<&[u8]> = got.iter().map(|(n, _)| n.as_slice()).collect();
        let want: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        assert_eq!(got, want);
        // A trusted.* attribute is not covered by `user`; with `all` (as root) it is.
        if rustix::fs::setxattr(&plain, "trusted.t", b"1", rustix::fs::XattrFlags::empty()).is_ok()
        {
            assert_eq!(read("plain", XattrPolicy::User), Vec::<Xattr>::new());
            assert_eq!(
                read("plain", XattrPolicy::All),
                vec![(b"trusted.t".to_vec(), b"1".to_vec())]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_permission_for_privileged_namespaces_and_no_support_are_tolerated() {
        let err = |n| io::Error::from_raw_os_error(n);
        let of = Skip::of;
        assert_eq!(
            of(&err(libc::EPERM), b"trusted.x", false),
            Some(Skip::NotPermitted)
        );
        assert_eq!(
            of(&err(libc::EPERM), b"security.capability", false),
            Some(Skip::NotPermitted)
        );
        assert_eq!(of(&err(libc::EPERM), b"trusted.x", true), None);
        assert_eq!(of(&err(libc::EPERM), b"user.x", false), None);
        assert_eq!(
            of(&err(libc::ENOTSUP), b"user.x", true),
            Some(Skip::Unsupported)
        );
        for fatal in [
            libc::EINVAL,
            libc::ERANGE,
            libc::E2BIG,
            libc::ENOSPC,
            libc::EIO,
        ] {
            assert_eq!(of(&err(fatal), b"user.x", false), None);
        }
    }

    #[test]
    fn long_names_are_shown_shortened_and_escaped() {
        assert_eq!(shown(b"user.a\nb"), "\"user.a\\nb\"");
        let long = [b'x'; 300];
        let s = shown(&long);
        assert!(s.ends_with("\"... (300 bytes)") && s.len() < 280, "{s}");
    }
}
