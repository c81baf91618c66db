//! The layout: for each chunk, the pieces of the selected files it holds.

use crate::format::chunk::ChunkRecord;
use crate::format::entry::{Entry, EntryKind};

/// A run of one file's bytes inside a chunk.
#[derive(Clone, Copy, Debug)]
pub struct Piece {
    /// Index of the entry.
    pub entry: usize,
    /// Offset in the chunk.
    pub chunk_offset: usize,
    /// Length.
    pub len: usize,
    /// Offset in the file.
    pub file_offset: u64,
    /// Whether the piece is the whole file.
    pub whole: bool,
}

impl Piece {
    /// Whether this is a piece of a split file that fills `chunk` (the only kind of
    /// piece a `subtree_at` digest may cover).
    pub fn fills(&self, chunk: &ChunkRecord) -> bool {
        !self.whole && self.chunk_offset == 0 && self.len as u64 == chunk.raw_len
    }
}

/// Chunks in ascending order, each with its pieces.
pub struct Layout {
    /// The chunks that hold selected data, ascending.
    pub chunks: Vec<u64>,
    starts: Vec<usize>,
    pieces: Vec<Piece>,
}

impl Layout {
    /// The layout of the files among `selected` (entries with data; the index was
    /// validated, so every location fits its chunks).
    pub fn new(entries: &[Entry], chunks: &[ChunkRecord], selected: &[usize]) -> Layout {
        let mut all: Vec<(u64, Piece)> = Vec::new();
        for &i in selected {
            let Some(e) = entries.get(i) else { continue };
            let (EntryKind::File, Some(loc)) = (e.kind, e.location) else {
                continue;
            };
            let whole = loc.first_chunk == loc.last_chunk;
            let mut file_offset = 0u64;
            for id in loc.first_chunk..=loc.last_chunk {
                let raw = chunks.get(id as usize).map_or(0, |c| c.raw_len);
                let start = if id == loc.first_chunk {
                    loc.chunk_offset
                } else {
                    0
                };
                let len = raw
                    .saturating_sub(start)
                    .min(e.size.saturating_sub(file_offset));
                all.push((
                    id,
                    Piece {
                        entry: i,
                        chunk_offset: start as usize,
                        len: len as usize,
                        file_offset,
                        whole,
                    },
                ));
                file_offset += len;
            }
        }
        all.sort_by_key(|(id, p)| (*id, p.chunk_offset));
        let mut layout = Layout {
            chunks: Vec::new(),
            starts: Vec::new(),
            pieces: Vec::with_capacity(all.len()),
        };
        for (id, p) in all {
            if layout.chunks.last() != Some(&id) {
                layout.chunks.push(id);
                layout.starts.push(layout.pieces.len());
            }
            layout.pieces.push(p);
        }
        layout.starts.push(layout.pieces.len());
        layout
    }

    /// The pieces in the `k`-th chunk of [`Layout::chunks`].
    pub fn pieces(&self, k: usize) -> &[Piece] {
        match (self.starts.get(k), self.starts.get(k + 1)) {
            (Some(&a), Some(&b)) => &self.pieces[a..b],
            _ => &[],
        }
    }
}
