//! Verification: every chunk checked against its BLAKE3 and decoded, every file's
//! digest recomputed from its pieces, every damaged file named.

use super::archive::Archive;
use super::layout::{Layout, Piece};
use super::visit;
use crate::digest::{self, Digest, PieceDigest};
use crate::error::Result;
use crate::format::chunk::ChunkRecord;
use crate::format::entry::EntryKind;
use std::collections::{BTreeMap, HashMap};

/// What `verify` found. Serialized, it is the body of `verify --json`: each damaged
/// file as `{"path", "problem"}`, each damaged chunk as `{"chunk", "problem"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Files checked.
    pub files: u64,
    /// Chunks checked.
    pub chunks: u64,
    /// Uncompressed bytes checked.
    pub bytes: u64,
    /// Damaged files (path, lossy UTF-8) and what is wrong with each.
    #[serde(serialize_with = "damage::files")]
    pub damaged: Vec<(String, String)>,
    /// Damaged chunks (number in the archive that holds each: this one, or a base the
    /// problem names) and what is wrong with each.
    #[serde(serialize_with = "damage::chunks")]
    pub damaged_chunks: Vec<(u64, String)>,
}

/// The damage lists as JSON objects rather than pairs.
mod damage {
    use serde::Serializer;
    use serde::ser::SerializeSeq;

    #[derive(serde::Serialize)]
    struct File<'a> {
        path: &'a str,
        problem: &'a str,
    }

    #[derive(serde::Serialize)]
    struct Chunk<'a> {
        chunk: u64,
        problem: &'a str,
    }

    pub fn files<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for (path, problem) in v {
            seq.serialize_element(&File { path, problem })?;
        }
        seq.end()
    }

    pub fn chunks<S: Serializer>(v: &[(u64, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for (chunk, problem) in v {
            seq.serialize_element(&Chunk {
                chunk: *chunk,
                problem,
            })?;
        }
        seq.end()
    }
}

impl VerifyReport {
    /// Whether nothing was damaged.
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Per-thread results of a chunk visit: piece digests and damaged chunks.
#[derive(Default)]
pub(crate) struct Tally {
    pub pieces: Vec<(usize, u64, PieceDigest)>,
    pub bad_chunks: Vec<(u64, String)>,
    pub bytes: u64,
}

/// The digest of piece `p` of chunk `chunk`, whose bytes are `data` and were checked
/// against its digest: a stored piece of a split file that fills its chunk has as its
/// digest the very chaining value that check computed (format 4, `subtree_at`), so it
/// is not hashed again.
pub(crate) fn piece_digest(chunk: Option<&ChunkRecord>, data: &[u8], p: &Piece) -> PieceDigest {
    if let Some(c) = chunk
        && p.fills(c)
        && c.subtree_at == Some(p.file_offset)
    {
        return PieceDigest::Subtree(c.digest);
    }
    let bytes = data
        .get(p.chunk_offset..p.chunk_offset + p.len)
        .unwrap_or_default();
    digest::piece(bytes, p.file_offset, p.whole)
}

/// Why chunk `id` (`chunk`) cannot hold `pieces`, if it cannot: its digest is the
/// subtree at one place in a file (format 4) and a piece is not exactly that place
/// (`ChunkRecord::check_placed`). Such a chunk is treated as damaged.
pub(crate) fn misplaced(chunk: Option<&ChunkRecord>, id: u64, pieces: &[Piece]) -> Option<String> {
    let c = chunk.filter(|c| c.subtree_at.is_some())?;
    (pieces.iter()).find_map(|p| c.check_placed(id, p.file_offset, p.fills(c)).err())
}

/// The digest of each of `pieces` (those of one chunk), each distinct piece (same
/// bytes, same offset in its file, same wholeness) hashed once by `digest`: any number
/// of entries may share one piece (deduplicated data, or a hostile archive pointing
/// thousands of files at one chunk), and the work stays that of the distinct pieces.
fn distinct_digests(
    pieces: &[Piece],
    mut digest: impl FnMut(&Piece) -> PieceDigest,
) -> Vec<PieceDigest> {
    let mut seen: HashMap<(usize, usize, u64, bool), PieceDigest> = HashMap::new();
    (pieces.iter())
        .map(|p| {
            let key = (p.chunk_offset, p.len, p.file_offset, p.whole);
            *seen.entry(key).or_insert_with(|| digest(p))
        })
        .collect()
}

/// Which of the `selected` entries are damaged, and why, given the visit's tallies.
pub(crate) fn conclude(
    archive: &Archive,
    selected: &[usize],
    tallies: Vec<Tally>,
) -> BTreeMap<usize, String> {
    let entries = archive.data_entries();
    let chunks = archive.data_chunks();
    let mut pieces = Vec::new();
    let mut bad: BTreeMap<u64, String> = BTreeMap::new();
    for t in tallies {
        pieces.extend(t.pieces);
        bad.extend(t.bad_chunks);
    }
    let digests: Vec<Option<Digest>> = digest::assemble(entries.len(), &mut pieces, |e| {
        let size = entries.get(e).map_or(0, |e| e.size);
        let first = entries
            .get(e)
            .and_then(|e| e.location)
            .map_or(0, |l| l.first_chunk);
        (size, chunks.get(first as usize).map_or(0, |c| c.raw_len))
    });
    let mut damaged = BTreeMap::new();
    for &i in selected {
        let Some(e) = entries.get(i).filter(|e| e.kind == EntryKind::File) else {
            continue;
        };
        let computed = match e.location {
            Some(loc) => {
                if let Some((_, why)) = bad.range(loc.first_chunk..=loc.last_chunk).next() {
                    damaged.insert(i, why.clone());
                    continue;
                }
                digests.get(i).copied().flatten()
            }
            None => Some(digest::hash(b"")),
        };
        if computed.is_none() || computed != e.digest {
            damaged.insert(i, "file BLAKE3 mismatch".to_string());
        }
    }
    damaged
}

impl Archive {
    /// Checks every chunk and every file on `threads` threads. Damage is reported in
    /// the result, not as an error; an error means verification itself failed.
    ///
    /// ```
    /// use znippy_uring::Archive;
    /// # let tmp = std::env::temp_dir().join(format!("doc-verify-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/bin"))?;
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # std::fs::write(tmp.join("src/bin/tool"), [0u8; 100])?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// # let path = tmp.join("a.znippy");
    /// let report = Archive::open(&path)?.verify(2)?;
    /// assert!(report.is_ok());
    /// assert_eq!((report.files, report.bytes), (3, 126));
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self, threads: usize) -> Result<VerifyReport> {
        self.verify_within(threads, crate::pack::DEFAULT_MEMORY)
    }

    /// [`Archive::verify`] with at most `memory` bytes of chunk buffers: fewer threads
    /// run when it cannot hold one reader for each (as unpack's `memory`).
    pub fn verify_within(&self, threads: usize, memory: usize) -> Result<VerifyReport> {
        self.require_bases()?;
        let all: Vec<usize> = (0..self.data_entries().len()).collect();
        // What unpack refuses, verify does not pass: unsafe or duplicate paths, bad
        // hard links, entries under a file.
        self.check_selected(&all)?;
        let layout = Layout::new(self.data_entries(), self.data_chunks(), &all);
        // Every chunk is checked, including any that no file refers to.
        let ids: Vec<u64> = (0..self.data_chunks().len() as u64).collect();
        let size = super::archive::ReaderSize::of(self.data_chunks());
        let threads = visit::threads_within(memory, threads, size);
        let (tallies, _) = visit::chunks(
            self,
            &ids,
            threads,
            "tally",
            Tally::default,
            |t, k, data| {
                let id = k as u64;
                match data {
                    Ok(data) => {
                        t.bytes += data.len() as u64;
                        if let Ok(j) = layout.chunks.binary_search(&id) {
                            let pieces = layout.pieces(j);
                            let chunk = self.data_chunks().get(k); // ids are 0..n
                            if let Some(why) = misplaced(chunk, id, pieces) {
                                t.bad_chunks.push((id, why));
                                return Ok(());
                            }
                            let digests =
                                distinct_digests(pieces, |p| piece_digest(chunk, data, p));
                            t.pieces.extend(
                                (pieces.iter().zip(digests)).map(|(p, d)| (p.entry, id, d)),
                            );
                        }
                    }
                    Err(problem) => t.bad_chunks.push((id, problem)),
                }
                Ok(())
            },
        )?;
        let bytes = tallies.iter().map(|t| t.bytes).sum();
        let mut bad_chunks: Vec<(u64, String)> =
            tallies.iter().flat_map(|t| t.bad_chunks.clone()).collect();
        bad_chunks.sort();
        let mut damaged: Vec<(String, String)> = conclude(self, &all, tallies)
            .into_iter()
            .filter_map(|(i, why)| self.data_entries().get(i).map(|e| (e.display_path(), why)))
            .collect();
        // A damaged chunk that no file refers to is still damage.
        for (id, why) in &bad_chunks {
            let used = layout.chunks.binary_search(id).is_ok();
            if !used {
                let (n, base) = self.chunk_home(*id);
                let name = match base {
                    None => format!("<chunk {n}, no file>"),
                    Some(b) => format!("<chunk {n} of base {}, no file>", b.display()),
                };
                damaged.push((name, why.clone()));
            }
        }
        // Reported by the number the archive that holds each has for it (the problem
        // names the base).
        for (id, _) in &mut bad_chunks {
            *id = self.chunk_home(*id).0;
        }
        Ok(VerifyReport {
            files: self
                .entries()
                .iter()
                .filter(|e| e.kind == EntryKind::File)
                .count() as u64,
            chunks: ids.len() as u64,
            bytes,
            damaged,
            damaged_chunks: bad_chunks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_shared_by_many_entries_is_hashed_once() {
        let piece = |entry, chunk_offset, len| Piece {
            entry,
            chunk_offset,
            len,
            file_offset: 0,
            whole: true,
        };
        let data = vec![7u8; 4096];
        // 1,000 entries on the same bytes, and two other pieces.
        let mut pieces: Vec<Piece> = (0..1000).map(|e| piece(e, 0, 4096)).collect();
        pieces.push(piece(1000, 0, 100));
        pieces.push(piece(1001, 100, 100));
        let mut hashed = 0;
        let digests = distinct_digests(&pieces, |p| {
            hashed += 1;
            piece_digest(None, &data, p)
        });
        assert_eq!(hashed, 3);
        assert_eq!(digests.len(), pieces.len());
        for (p, d) in pieces.iter().zip(&digests) {
            assert_eq!(*d, piece_digest(None, &data, p));
        }
    }
}
