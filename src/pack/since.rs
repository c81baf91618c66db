//! The archive an incremental pack builds on (`pack --since PREVIOUS`): which files
//! are unchanged since it, and where their data already lies.
//!
//! The rule, exactly:
//! - **Same path, unchanged.** A file is unchanged when its kind, size, mtime, ctime,
//!   mode and owner are those PREVIOUS recorded for its path (and its device and
//!   inode, with `--check-inode`): its data is reused without being read.
//! - **Same path, same size and mtime, but something else changed** (the ctime, after
//!   a chmod, a chown, or a rewrite whose old mtime was put back), or no ctime
//!   recorded (an archive from before ctimes were kept, or a file changed within 3 s
//!   of PREVIOUS's start or during it, whose ctime a pack leaves out because a change
//!   in the same timestamp tick would not show): the file is read and hashed, and
//!   reused only if its BLAKE3 equals the recorded digest.
//! - **Renamed or moved.** A file at a path PREVIOUS does not hold, whose device,
//!   inode, size and mtime are those of a file in PREVIOUS, may have been renamed. Inode
//!   numbers are recycled (delete a tree and extract it again and the new files get the
//!   freed numbers), so this only names a candidate: it too is reused only if its
//!   BLAKE3 equals the candidate's digest. A path PREVIOUS holds is never matched by
//!   inode.
//! - Anything else is read and stored again. Hashing costs a read, but no compression
//!   and no bytes in the new archive.
//!
//! A reused entry points into PREVIOUS, or into the archive PREVIOUS itself took that
//! data from: the new archive's bases are only the archives it references, so a chain
//! never needs more than that.

use super::root::Root;
use crate::error::{Error, Result};
use crate::format::base::Base;
use crate::format::entry::{DataLocation, Entry, EntryKind};
use crate::read::Archive;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// PREVIOUS, indexed for the walk's questions, and the bases the new archive needs.
pub struct Since {
    archive: Archive,
    /// Files by path.
    by_path: HashMap<Vec<u8>, usize>,
    /// Files by (device, inode).
    by_inode: HashMap<(u64, u64), usize>,
    check_inode: bool,
    /// The tree being packed, for reading a rename candidate.
    root: Arc<Root>,
    /// What PREVIOUS itself is as a base.
    itself: Base,
    /// PREVIOUS's own bases, as the new archive records them (where they lie relative
    /// to it).
    inherited: Vec<Base>,
    /// The new archive's bases, in the order first referenced.
    pub bases: Vec<Base>,
    /// Base of PREVIOUS's data (`None`: PREVIOUS itself) → position in `bases`.
    slots: HashMap<Option<u16>, u16>,
}

impl Since {
    /// Opens PREVIOUS, for a walk of `root` and a new archive to be written at
    /// `target` (`None`: to a stream), where its bases are recorded relative to it.
    pub fn open(
        path: &Path,
        target: Option<&Path>,
        check_inode: bool,
        root: Arc<Root>,
    ) -> Result<Since> {
        let archive = Archive::open_index(path)?;
        let mut by_path = HashMap::new();
        let mut by_inode = HashMap::new();
        for (i, e) in archive.entries().iter().enumerate() {
            if e.kind == EntryKind::File && e.location.is_some() {
                by_path.insert(e.path.clone(), i);
                if let Some(inode) = e.inode {
                    by_inode.insert(inode, i);
                }
            }
        }
        let generation = archive.generation();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Invalid(format!("{}: not a file name", path.display())))?;
        let mut itself = Base {
            manifest_digest: archive.manifest_digest(),
            name,
            chunks: archive.chunks().len() as u64,
            generation,
            relative_path: None,
        };
        let mut inherited = archive.index_bases().to_vec();
        super::located::place(path, &mut itself, &mut inherited, target);
        Ok(Since {
            archive,
            by_path,
            by_inode,
            check_inode,
            root,
            itself,
            inherited,
            bases: Vec::new(),
            slots: HashMap::new(),
        })
    }

    /// For a file just found by the walk: its data's location and digest in an
    /// earlier archive, if the file is unchanged (or only renamed) since PREVIOUS.
    pub fn reuse(&mut self, e: &Entry) -> Option<(DataLocation, [u8; 32])> {
        if e.kind != EntryKind::File || e.size == 0 {
            return None;
        }
        let entries = self.archive.entries();
        let confirmed = |p: &&Entry| {
            p.size == e.size
                && p.mtime_ns == e.mtime_ns
                && p.digest.is_some_and(|d| same_content(&self.root, e, &d))
        };
        let found = match self.by_path.get(&e.path) {
            // A path PREVIOUS holds: unchanged, or else only by content (a chmod or
            // chown changes the ctime, not the bytes); never by inode.
            Some(&i) => entries
                .get(i)
                .filter(|p| self.unchanged(p, e) || confirmed(p))?,
            // A new path: a rename candidate by inode, confirmed by content.
            None => (e.inode)
                .and_then(|inode| self.by_inode.get(&inode))
                .and_then(|&i| entries.get(i))
                .filter(confirmed)?,
        };
        let (location, digest) = (found.location?, found.digest?);
        let base = self.slot(location.base)?;
        Some((
            DataLocation {
                base: Some(base),
                ..location
            },
            digest,
        ))
    }

    fn unchanged(&self, p: &Entry, e: &Entry) -> bool {
        p.size == e.size
            && p.mtime_ns == e.mtime_ns
            && p.ctime_ns.is_some()
            && p.ctime_ns == e.ctime_ns
            && p.mode == e.mode
            && (p.uid, p.gid) == (e.uid, e.gid)
            && (!self.check_inode || (p.inode.is_some() && p.inode == e.inode))
    }

    /// The new archive's base for data PREVIOUS has in `base` (`None`: in itself).
    fn slot(&mut self, base: Option<u16>) -> Option<u16> {
        if let Some(&s) = self.slots.get(&base) {
            return Some(s);
        }
        let b = match base {
            None => self.itself.clone(),
            Some(k) => self.inherited.get(usize::from(k))?.clone(),
        };
        let s = u16::try_from(self.bases.len()).ok()?;
        self.bases.push(b);
        self.slots.insert(base, s);
        Some(s)
    }
}

/// Whether the file `e` names under `root` is still the one walked (same device,
/// inode and size, a regular file) and its bytes hash to `digest`. Any error counts as
/// "no": the file is then packed as usual, which reports the error.
fn same_content(root: &Root, e: &Entry, digest: &[u8; 32]) -> bool {
    use rustix::fs::{Mode, OFlags};
    let rel = std::ffi::OsStr::from_bytes(&e.path);
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(&root.fd, rel, flags, Mode::empty()) else {
        return false;
    };
    let same = rustix::fs::fstat(&fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
            && Some((st.st_dev, st.st_ino)) == e.inode
            && u64::try_from(st.st_size) == Ok(e.size)
    });
    same && hash_all(fd, e.size).is_some_and(|d| &d == digest)
}

/// BLAKE3 of the `size` bytes of `fd`; `None` if it is shorter or longer, or a read
/// fails.
fn hash_all(fd: OwnedFd, size: u64) -> Option<[u8; 32]> {
    use std::io::Read;
    let mut file = std::fs::File::from(fd);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(buf.get(..n)?);
                total += n as u64;
                if total > size {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    (total == size).then(|| *hasher.finalize().as_bytes())
}
