//! The archive an incremental pack builds on (`pack --since PREVIOUS`): which files
//! are unchanged since it, and where their data already lies.
//!
//! A file is unchanged when its kind, size, mtime, ctime, mode and owner are those
//! PREVIOUS recorded for its path (and its device and inode, when asked: they change
//! across reboots, NFS and snapshots). A file whose path is new but whose device,
//! inode, size and mtime are those of a file in PREVIOUS was renamed or moved: its
//! data is not stored again either. Its entry then points into PREVIOUS, or into the
//! archive PREVIOUS itself took that data from: the new archive's bases are only the
//! archives it references, so a chain never needs more than that.

use crate::error::{Error, Result};
use crate::format::base::Base;
use crate::format::entry::{DataLocation, Entry, EntryKind};
use crate::read::Archive;
use std::collections::HashMap;
use std::path::Path;

/// PREVIOUS, indexed for the walk's questions, and the bases the new archive needs.
pub struct Since {
    archive: Archive,
    /// Files by path.
    by_path: HashMap<Vec<u8>, usize>,
    /// Files by (device, inode).
    by_inode: HashMap<(u64, u64), usize>,
    check_inode: bool,
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
    /// Opens PREVIOUS, for a new archive to be written at `target` (`None`: to a
    /// stream), where its bases are recorded relative to it.
    pub fn open(path: &Path, target: Option<&Path>, check_inode: bool) -> Result<Since> {
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
        let same_path = self.by_path.get(&e.path).and_then(|&i| entries.get(i));
        let found = match same_path {
            Some(p) if self.unchanged(p, e) => Some(p),
            // Renamed or moved: the same inode, with the same size and mtime.
            _ => (e.inode)
                .and_then(|inode| self.by_inode.get(&inode))
                .and_then(|&i| entries.get(i))
                .filter(|p| p.size == e.size && p.mtime_ns == e.mtime_ns),
        }?;
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
