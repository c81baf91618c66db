//! The archives an incremental archive's data lies in (its bases), joined to it for
//! reading: one chunk table (its own chunks, then each base's), and its entries with
//! their locations moved into that table.
//!
//! A base is found beside the archive under the name it had when the archive was
//! packed, or among paths the caller names. It is taken only if the BLAKE3 of its
//! manifest is the one recorded, which vouches for every chunk digest it holds, so
//! its chunks are checked like the archive's own. A base that is missing or not the
//! one recorded is remembered, with why: reading a file whose data lies there fails
//! (the sentinel location holds no chunk), and [`super::Archive::require_bases`] says
//! so up front, naming the archive.

use crate::error::{Error, Result};
use crate::format::base::{Base, id_of};
use crate::format::chunk::ChunkRecord;
use crate::format::entry::{DataLocation, Entry};
use crate::format::index::{self, Index};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The joined view.
pub struct Chain {
    /// The entries, locations in [`Chain::chunks`]'s numbering.
    pub entries: Vec<Entry>,
    /// The archive's chunks, then each attached base's.
    pub chunks: Vec<ChunkRecord>,
    /// Where chunks from the `.0`-th on are read: the file, and its path.
    sources: Vec<(u64, File, PathBuf)>,
    /// Per base: the first chunk number it got, or why it is not there.
    starts: Vec<std::result::Result<u64, String>>,
}

impl Chain {
    /// Joins `index` (of the archive at `path`, open as `file`) with its bases, found
    /// among `candidates` or beside `path`.
    pub fn join(index: &Index, path: &Path, file: &File, candidates: &[PathBuf]) -> Result<Chain> {
        let own = file.try_clone().map_err(|e| Error::io(path, "dup", e))?;
        let mut chain = Chain {
            entries: Vec::new(),
            chunks: index.chunks.clone(),
            sources: vec![(0, own, path.to_path_buf())],
            starts: Vec::new(),
        };
        // Each named archive is read once, whichever base it turns out to be.
        let mut named: Vec<Opened> = candidates.iter().filter_map(|c| read(c)?.ok()).collect();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for (b, base) in index.bases.iter().enumerate() {
            // A recorded name is a plain file name: anything else is looked for nowhere.
            let plain = !base.name.is_empty()
                && !base.name.contains('/')
                && base.name != "."
                && base.name != "..";
            let beside = if plain {
                dir.join(&base.name)
            } else {
                PathBuf::new()
            };
            let found = match named
                .iter()
                .position(|o| o.0.manifest_digest == base.manifest_digest)
            {
                Some(k) => Some(Ok(named.swap_remove(k))),
                // Beside the archive, it must be the one recorded.
                None => read(&beside).map(|r| r.and_then(|o| recorded(o, base))),
            };
            let start = match found {
                Some(Ok((base_index, file, at))) => {
                    let start = chain.chunks.len() as u64;
                    let b16 = u16::try_from(b).unwrap_or(u16::MAX);
                    index::check_based(index, b16, &base_index.chunks)
                        .map_err(|p| Error::corrupt(path, p))?;
                    chain.chunks.extend(base_index.chunks.iter().cloned());
                    chain.sources.push((start, file, at));
                    Ok(start)
                }
                Some(Err(why)) => Err(why),
                None => Err(format!(
                    "{} (id {}) is needed: not found beside {}; name it with --base",
                    base.name,
                    id_of(&base.manifest_digest),
                    path.display()
                )),
            };
            chain.starts.push(start);
        }
        chain.entries = index.entries().iter().map(|e| chain.moved(e)).collect();
        Ok(chain)
    }

    /// `e` with its location in the joined numbering (a sentinel past every chunk when
    /// its base is missing).
    fn moved(&self, e: &Entry) -> Entry {
        let mut e = e.clone();
        if let Some(loc) = e.location
            && let Some(b) = loc.base
        {
            e.location = Some(match self.starts.get(usize::from(b)) {
                Some(Ok(start)) => DataLocation {
                    first_chunk: loc.first_chunk + start,
                    last_chunk: loc.last_chunk + start,
                    chunk_offset: loc.chunk_offset,
                    base: None,
                },
                _ => DataLocation {
                    first_chunk: u64::MAX,
                    last_chunk: u64::MAX,
                    chunk_offset: 0,
                    base: None,
                },
            });
        }
        e
    }

    /// The file chunk `id` (joined numbering) is read from, and its path.
    pub fn source(&self, id: u64) -> Option<(&File, &Path)> {
        let i = self.sources.partition_point(|s| s.0 <= id).checked_sub(1)?;
        self.sources.get(i).map(|s| (&s.1, s.2.as_path()))
    }

    /// Why the bases that are missing are missing.
    pub fn missing(&self) -> impl Iterator<Item = &str> {
        self.starts
            .iter()
            .filter_map(|s| s.as_ref().err().map(String::as_str))
    }
}

/// An archive's index, its file and its path.
type Opened = (Index, File, PathBuf);

/// The archive at `path`, if there is a file there; an error if it is not an archive.
fn read(path: &Path) -> Option<std::result::Result<Opened, String>> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let read = index::read(len, |offset, n| {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, offset).map(|()| buf)
    });
    Some(match read {
        Ok(i) => Ok((i, file, path.to_path_buf())),
        Err(problem) => Err(format!("{}: {problem}", path.display())),
    })
}

/// `opened` if it is the archive `base` records; else why not.
fn recorded(opened: Opened, base: &Base) -> std::result::Result<Opened, String> {
    if opened.0.manifest_digest == base.manifest_digest {
        return Ok(opened);
    }
    Err(format!(
        "{} is not the archive recorded as a base (id {}, expected {})",
        opened.2.display(),
        id_of(&opened.0.manifest_digest),
        id_of(&base.manifest_digest)
    ))
}
