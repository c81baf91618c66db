//! Path resolution confined to a directory descriptor: the one way this crate opens a
//! path inside a tree it does not own (a target being unpacked into, a tree being
//! packed), so that no symlink is followed at any component, planted by an archive or
//! swapped in by another user while we work, and nothing outside is reached.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Opens `rel` (relative, `/`-separated) beneath `dir` with `flags`, following no
/// symlink at any component and never leaving `dir`: openat2 with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, or, where openat2
/// is missing, one `O_NOFOLLOW | O_DIRECTORY` open per component. A symlink in the
/// way gives `ELOOP` (or `EXDEV`/`ENOTDIR` on the component walk); `..` may not
/// leave `dir` (the walk refuses empty, `.` and `..` components outright; callers
/// check paths before they get here).
pub fn beneath(dir: impl AsFd, rel: &[u8], flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let name = OsStr::from_bytes(rel);
    match rustix::fs::openat2(&dir, name, flags, mode, how) {
        Err(Errno::NOSYS) => walk(dir, rel, flags, mode),
        // A rename elsewhere in the file system while resolving: once more.
        Err(Errno::AGAIN) => rustix::fs::openat2(&dir, name, flags, mode, how).map_err(Into::into),
        r => r.map_err(Into::into),
    }
}

/// openat2's guarantee by hand: one `O_NOFOLLOW | O_DIRECTORY` open per component.
fn walk(dir: impl AsFd, rel: &[u8], flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let mut parts = rel.split(|&b| b == b'/').peekable();
    let mut dir = rustix::io::dup(dir)?;
    while let Some(part) = parts.next() {
        if part.is_empty() || part == b"." || part == b".." {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let part = OsStr::from_bytes(part);
        if parts.peek().is_none() {
            return Ok(rustix::fs::openat(&dir, part, flags, mode)?);
        }
        let step = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        dir = rustix::fs::openat(&dir, part, step, Mode::empty())?;
    }
    Err(io::Error::from_raw_os_error(libc::EINVAL))
}

/// What stands in the way of `rel` beneath `dir` being a directory: the first component
/// of `rel`, as a prefix of it, that is a symlink, not a directory, or missing.
pub struct Obstacle {
    /// The path of that component, relative to `dir` (`rel` itself or a directory
    /// above it).
    pub at: Vec<u8>,
    /// What it is.
    pub what: Blocked,
}

/// What a component that stops a confined walk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// A symlink (never followed).
    Symlink,
    /// Something else that is not a directory.
    NotDirectory,
    /// Nothing.
    Missing,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Blocked::Symlink => "a symlink (not followed)",
            Blocked::NotDirectory => "not a directory",
            Blocked::Missing => "missing",
        })
    }
}

/// Finds why `rel` beneath `dir` cannot be opened as a directory by [`beneath`]: each
/// component is stat'ed without following it, from a descriptor of the one before
/// (opened `O_PATH | O_NOFOLLOW`), so this too stays beneath `dir`. `None` when every
/// component is a directory now (it changed again, or the open failed for another
/// reason). For messages only: it costs a stat and an open per component.
pub fn obstacle(dir: impl AsFd, rel: &[u8]) -> Option<Obstacle> {
    use rustix::fs::{AtFlags, FileType};
    let mut cur = rustix::io::dup(dir).ok()?;
    let mut end = 0;
    for part in rel.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." || part == b".." {
            return None;
        }
        end += part.len();
        let at = || rel.get(..end).unwrap_or(rel).to_vec();
        let name = OsStr::from_bytes(part);
        let st = match rustix::fs::statat(&cur, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                return Some(Obstacle {
                    at: at(),
                    what: Blocked::Missing,
                });
            }
            Err(_) => return None,
        };
        let what = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => None,
            FileType::Symlink => Some(Blocked::Symlink),
            _ => Some(Blocked::NotDirectory),
        };
        if let Some(what) = what {
            return Some(Obstacle { at: at(), what });
        }
        let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        cur = rustix::fs::openat(&cur, name, step, Mode::empty()).ok()?;
        end += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_symlink_at_any_component_and_nothing_outside() {
        let tmp = std::env::temp_dir().join(format!("resolve-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("root/d")).unwrap();
        std::fs::create_dir_all(tmp.join("outside")).unwrap();
        std::fs::write(tmp.join("outside/f"), b"x").unwrap();
        std::fs::write(tmp.join("root/d/f"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.join("outside"), tmp.join("root/link")).unwrap();
        std::os::unix::fs::symlink("f", tmp.join("root/d/last")).unwrap();
        let root = std::fs::File::open(tmp.join("root")).unwrap();
        let open = |rel: &[u8]| beneath(&root, rel, OFlags::RDONLY, Mode::empty());
        let via_walk =
            |rel: &[u8]| walk(&root, rel, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty());
        assert!(open(b"d/f").is_ok() && via_walk(b"d/f").is_ok());
        for rel in [
            &b"link/f"[..],
            b"d/last",
            b"../outside/f",
            b"d/../../outside/f",
        ] {
            assert!(open(rel).is_err(), "{}", String::from_utf8_lossy(rel));
            assert!(via_walk(rel).is_err(), "{}", String::from_utf8_lossy(rel));
        }
        // The walk is stricter than openat2 (which allows `..` that stays beneath).
        assert!(via_walk(b"d/../d/f").is_err() && via_walk(b"d//f").is_err());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
