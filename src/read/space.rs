//! The bound on what an unpack writes: the declared size of the selected files,
//! checked against a limit (by default the free space of the target's file system)
//! before anything is written. Many entries may share one chunk's data (legitimately,
//! or in a hostile archive of a few kilobytes that would write gigabytes), so this is
//! a bound on the output, not a ban on sharing.

use super::archive::Archive;
use crate::error::{Error, Result};
use crate::format::entry::{Entry, EntryKind};
use std::path::Path;

/// The most bytes of file data an unpack or extract may write.
///
/// ```
/// use znippy_uring::{MaxSize, UnpackOptions};
/// let opts = UnpackOptions {
///     max_size: MaxSize::Bytes(10 << 30),
///     ..UnpackOptions::default()
/// };
/// assert_eq!(UnpackOptions::default().max_size, MaxSize::FreeSpace);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxSize {
    /// The space free to unprivileged users on the target's file system (statvfs
    /// `f_bavail * f_frsize` of the target directory, created first if missing): the
    /// default. A file system that reports no size at all (zero blocks: ramfs, some
    /// FUSE file systems) sets no limit.
    #[default]
    FreeSpace,
    /// At most this many bytes (`--max-size SIZE`).
    Bytes(u64),
    /// No limit (`--max-size unlimited`).
    Unlimited,
}

/// The declared size of the regular files among `entries`: what an unpack of them
/// writes (hard links add no data; a sparse file counts at its full size).
fn declared_bytes<'a>(entries: impl Iterator<Item = &'a Entry>) -> u64 {
    (entries.filter(|e| e.kind == EntryKind::File)).fold(0u64, |sum, e| sum.saturating_add(e.size))
}

impl Archive {
    /// The declared size of all its regular files: the bytes of file data that
    /// [`Archive::unpack`] writes (a hard link adds none; a sparse file counts at its
    /// full size). Many files may share one chunk's data, so this can be far more than
    /// the archive's size; unpack refuses more than its [`MaxSize`] allows.
    pub fn file_bytes(&self) -> u64 {
        declared_bytes(self.data_entries().iter())
    }
}

/// Refuses, before anything is written, an unpack of `selected` into `dest` whose
/// files declare more bytes than `limit` allows.
pub(super) fn check(
    archive: &Archive,
    selected: &[usize],
    dest: &Path,
    limit: MaxSize,
) -> Result<()> {
    let entries = archive.data_entries();
    let total = declared_bytes(selected.iter().filter_map(|&i| entries.get(i)));
    let (limit, free) = match limit {
        MaxSize::Unlimited => return Ok(()),
        MaxSize::Bytes(n) => (n, false),
        MaxSize::FreeSpace => match free_space(dest)? {
            Some(free) => (free, true),
            None => return Ok(()),
        },
    };
    if total <= limit {
        return Ok(());
    }
    Err(Error::TooLarge {
        archive: archive.path().into(),
        target: dest.into(),
        total,
        limit,
        free,
    })
}

/// The bytes free to unprivileged users on the file system of `dest` (created if
/// missing, as the unpack would create it); `None` when that file system reports no
/// size at all (ramfs, some FUSE file systems: zero blocks), so none can be known.
fn free_space(dest: &Path) -> Result<Option<u64>> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, "create target directory", e))?;
    let st = rustix::fs::statvfs(dest).map_err(|e| Error::io(dest, "statvfs", e.into()))?;
    Ok((st.f_blocks > 0).then(|| st.f_bavail.saturating_mul(st.f_frsize)))
}
