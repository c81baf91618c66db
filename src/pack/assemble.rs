//! After the pipeline: what it wrote for the entries ([`Data`]) made into the index:
//! files read again, left out or placed, entries sorted into their groups, and the
//! archive committed.

use super::output::Output;
use super::report::PackReport;
use super::root::{self, Root};
use super::{PackOptions, Skipped, reread};
use crate::digest;
use crate::error::{Error, Result};
use crate::format::chunk::ChunkRecord;
use crate::format::entry::{DataLocation, Entry, EntryKind};
use crate::format::index;
use crate::format::manifest::Group;
use crate::io::Backend;
use crate::stages::Clock;
use std::collections::BTreeMap;
use std::path::Path;

/// What the pipeline wrote for the entries: the chunks, every piece's digest, and each
/// file's place.
pub(super) struct Data {
    pub(super) entries: Vec<(Group, Entry)>,
    pub(super) chunks: Vec<ChunkRecord>,
    pub(super) pieces: Vec<(usize, u64, digest::PieceDigest)>,
    pub(super) blob_end: u64,
    pub(super) locations: Vec<Option<DataLocation>>,
    pub(super) warnings: Vec<String>,
    /// Entries the walk could not read.
    pub(super) skipped: Vec<Skipped>,
    /// Files the reads could not read (and, once [`Data::unreadable_links`] ran, the
    /// hard links to them), by entry: left out.
    pub(super) unreadable: BTreeMap<usize, Skipped>,
    pub(super) bases: Vec<crate::format::base::Base>,
}

impl Data {
    /// Reads the files that changed while being packed again (`--on-change retry`),
    /// appending their chunks; returns the entries that vanished meanwhile.
    pub(super) fn reread(
        &mut self,
        root: &Root,
        output: &Output,
        opts: &PackOptions,
        mut again: Vec<usize>,
    ) -> Result<Vec<usize>> {
        again.sort_unstable();
        again.dedup();
        (self.pieces).retain(|(e, _, _)| again.binary_search(e).is_err());
        let mut rereader = reread::Rereader::new(root, output, opts.chunk_size, opts.level)?;
        let mut dropped = Vec::new();
        for i in again {
            let Some((_, entry)) = self.entries.get_mut(i) else {
                continue;
            };
            let store = opts.stores(&entry.path);
            let shown = root::full_path(&root.path, &entry.path);
            let (chunks, end) = (&mut self.chunks, &mut self.blob_end);
            let outcome = match rereader.reread(&entry.path, store, chunks, end) {
                Ok(outcome) => outcome,
                // The file's own error (not the archive's): left out if the policy says.
                Err(e) if matches!(&e, Error::Io { path, .. } if *path == shown) => {
                    self.unreadable.insert(i, opts.on_unreadable.skip(e)?);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match outcome {
                reread::Outcome::Kept(v) => {
                    self.warnings.push(format!(
                        "{}: changed while being packed; archived as read again ({} bytes)",
                        shown.display(),
                        v.size
                    ));
                    (entry.size, entry.mtime_ns) = (v.size, v.mtime_ns);
                    if let Some(slot) = self.locations.get_mut(i) {
                        *slot = v.location;
                    }
                    (self.pieces).extend(v.pieces.into_iter().map(|(c, d)| (i, c, d)));
                }
                reread::Outcome::Vanished(why) => {
                    (self.warnings).push(format!("{}: {why}; not archived", shown.display()));
                    dropped.push(i);
                }
            }
        }
        Ok(dropped)
    }

    /// Leaves out the hard links to files that could not be read (they are the same
    /// file), each with its own record; `root` is the packed directory.
    pub(super) fn unreadable_links(&mut self, root: &Path) {
        if self.unreadable.is_empty() {
            return;
        }
        let files: std::collections::HashSet<&[u8]> = (self.unreadable.keys())
            .filter_map(|&i| self.entries.get(i).map(|(_, e)| e.path.as_slice()))
            .collect();
        let mut links = Vec::new();
        for (i, (_, e)) in self.entries.iter().enumerate() {
            let target = (e.link_target.as_deref())
                .filter(|t| e.kind == EntryKind::Hardlink && files.contains(t));
            if let Some(file) = target {
                let (link, file) = (root::full_path(root, &e.path), root::full_path(root, file));
                links.push((i, Skipped::link(&link, &file)));
            }
        }
        self.unreadable.extend(links);
    }

    /// Gives every file its location and digest (leaving out `dropped`), sorts the
    /// entries into groups, and writes index and footer. Returns the counts.
    pub(super) fn commit(
        mut self,
        output: Output,
        opts: &PackOptions,
        dropped: &[usize],
        clock: &mut Clock,
    ) -> Result<PackReport> {
        let mut skip = drop_entries(&self.entries, dropped, &mut self.warnings);
        for &i in self.unreadable.keys() {
            if let Some(s) = skip.get_mut(i) {
                *s = true;
            }
        }
        self.skipped.extend(self.unreadable.into_values());
        (self.warnings).extend(self.skipped.iter().map(Skipped::warning));
        let stored_chunks = (self.chunks.iter())
            .filter(|c| c.codec == crate::codec::Codec::Stored)
            .count() as u64;
        let (groups, stats) = assemble(
            self.entries,
            &skip,
            &self.locations,
            &mut self.pieces,
            opts.chunk_size,
            opts.group(),
        )?;
        let refs: Vec<(Group, &[Entry])> = groups
            .iter()
            .map(|(g, e)| (g.clone(), e.as_slice()))
            .collect();
        let tail = index::encode(&refs, &self.chunks, &self.bases, self.blob_end);
        clock.work("encode");
        let archive_len = output.commit(&tail, self.blob_end)?;
        clock.work("commit");
        Ok(PackReport {
            archive_len,
            chunks: self.chunks.len() as u64,
            stored_chunks,
            warnings: self.warnings,
            skipped: self.skipped,
            ..stats
        })
    }
}

/// Leaves out the files in `dropped` (gone before they could be read consistently) and
/// the hard links to them, which have no data of their own.
pub(super) fn drop_entries(
    entries: &[(Group, Entry)],
    dropped: &[usize],
    warnings: &mut Vec<String>,
) -> Vec<bool> {
    let mut skip = vec![false; entries.len()];
    if dropped.is_empty() {
        return skip;
    }
    let gone: std::collections::HashSet<Vec<u8>> = dropped
        .iter()
        .filter_map(|&i| entries.get(i).map(|(_, e)| e.path.clone()))
        .collect();
    for ((_, e), skip) in entries.iter().zip(&mut skip) {
        let orphan = e.kind == EntryKind::Hardlink
            && e.link_target.as_ref().is_some_and(|t| gone.contains(t));
        if orphan {
            warnings.push(format!(
                "{}: hard link to a file that vanished; not archived",
                e.display_path()
            ));
        }
        *skip = orphan || gone.contains(&e.path);
    }
    skip
}

/// Gives every file its location and digest, and sorts entries into their groups,
/// leaving out those marked in `skip`.
/// Gives file `e` the location and digest its data got (`location`, `digest`), unless
/// it points at an earlier archive's data already (then returns true).
pub(super) fn place_file(
    e: &mut Entry,
    location: Option<DataLocation>,
    digest: Option<[u8; 32]>,
) -> Result<bool> {
    if e.location.is_some_and(|l| l.base.is_some()) {
        return Ok(true); // location and digest came from the earlier archive
    }
    if e.size > 0 {
        (e.location, e.digest) = (location, digest);
    } else {
        e.digest = Some(digest::hash(b""));
    }
    if e.digest.is_none() || (e.size > 0 && e.location.is_none()) {
        return Err(Error::Invalid(format!(
            "internal: {} has no data location or digest",
            e.display_path()
        )));
    }
    Ok(false)
}

pub(super) fn assemble(
    entries: Vec<(Group, Entry)>,
    skip: &[bool],
    locations: &[Option<DataLocation>],
    pieces: &mut [(usize, u64, digest::PieceDigest)],
    chunk_size: usize,
    always: Group,
) -> Result<(BTreeMap<Group, Vec<Entry>>, PackReport)> {
    let whole = digest::assemble(entries.len(), pieces, |e| {
        let size = entries.get(e).map_or(0, |(_, e)| e.size);
        (size, chunk_size as u64)
    });
    let mut report = PackReport {
        entries: 0,
        files: 0,
        dirs: 0,
        symlinks: 0,
        hardlinks: 0,
        specials: 0,
        bytes_in: 0,
        archive_len: 0,
        chunks: 0,
        stored_chunks: 0,
        reused_files: 0,
        reused_bytes: 0,
        backend: Backend::Portable,
        fallback: None,
        warnings: Vec::new(),
        skipped: Vec::new(),
        compressors: 0,
        pipeline_bytes: 0,
        stages: Vec::new(),
    };
    let mut groups: BTreeMap<Group, Vec<Entry>> = BTreeMap::new();
    groups.insert(always, Vec::new());
    for (i, (group, mut e)) in entries.into_iter().enumerate() {
        if skip.get(i).copied().unwrap_or(false) {
            continue;
        }
        report.entries += 1;
        match e.kind {
            EntryKind::File => {
                report.files += 1;
                let reused = place_file(
                    &mut e,
                    locations.get(i).copied().flatten(),
                    whole.get(i).copied().flatten(),
                )?;
                if reused {
                    report.reused_files += 1;
                    report.reused_bytes += e.size;
                } else {
                    report.bytes_in += e.size;
                }
            }
            EntryKind::Dir => report.dirs += 1,
            EntryKind::Symlink => report.symlinks += 1,
            EntryKind::Hardlink => report.hardlinks += 1,
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                report.specials += 1
            }
        }
        groups.entry(group).or_default().push(e);
    }
    Ok((groups, report))
}
