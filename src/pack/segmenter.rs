//! The segmenter: turns files into chunk plans, in entry order.
//!
//! A file of at least `chunk_size` bytes is split into chunks of its own, each
//! `chunk_size` long but the last. Smaller files are packed one after another into
//! shared solid chunks of up to `chunk_size`, so small files share a zstd frame. Files
//! of known compressed types go to a separate solid chunk that is stored, not
//! compressed. Chunk numbers are given when a chunk is closed, so they follow the order
//! in which chunks are sent to the compressors, and the writer can place blobs in that
//! order without waiting for a chunk that is still open.

use crate::format::entry::DataLocation;
use crossbeam_channel::{Sender, TrySendError};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a piece's bytes come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file, by its path relative to the pack root, with the size and mtime the walk
    /// saw (to detect changes while it is read).
    File {
        /// Path relative to the pack root.
        rel: Arc<Path>,
        /// Size when walked.
        size: u64,
        /// Modification time when walked, ns.
        mtime_ns: i64,
        /// Status change time when walked, ns (a write that puts the old mtime back
        /// still moves it).
        ctime_ns: Option<i64>,
    },
    /// Bytes handed over by a library caller.
    Memory(Arc<[u8]>),
}

/// A run of one file's bytes placed in a chunk.
#[derive(Clone, Debug)]
pub struct PiecePlan {
    /// The entry (index in the pack's entry list) the bytes belong to.
    pub entry: usize,
    /// Where to get them.
    pub source: Source,
    /// Offset in the file.
    pub file_offset: u64,
    /// Length.
    pub len: usize,
    /// Offset in the chunk.
    pub chunk_offset: usize,
    /// Whether this piece is the whole file.
    pub whole: bool,
}

/// One chunk to fill, compress and write.
#[derive(Clone, Debug)]
pub struct ChunkPlan {
    /// Chunk number (order in the archive).
    pub seq: u64,
    /// Uncompressed length.
    pub len: usize,
    /// Store without trying to compress (skip-listed content).
    pub store: bool,
    /// The pieces, in chunk order, covering `0..len`.
    pub pieces: Vec<PiecePlan>,
}

/// The pipeline stopped taking plans (it failed; its error says why).
#[derive(Debug)]
pub struct Stopped;

#[derive(Default)]
struct Solid {
    pieces: Vec<PiecePlan>,
    len: usize,
}

/// Incremental chunk planner.
pub struct Segmenter {
    chunk_size: usize,
    next_seq: u64,
    /// Open solid chunks: [compressible, stored].
    solid: [Solid; 2],
    locations: Vec<Option<DataLocation>>,
    out: Sender<ChunkPlan>,
    blocked: Duration,
}

impl Segmenter {
    /// A segmenter sending plans to `out`.
    pub fn new(chunk_size: usize, out: Sender<ChunkPlan>) -> Self {
        Segmenter {
            chunk_size,
            next_seq: 0,
            solid: [Solid::default(), Solid::default()],
            locations: Vec::new(),
            out,
            blocked: Duration::ZERO,
        }
    }

    /// Time spent waiting for room in the plan queue (every compressor had work).
    pub fn blocked(&self) -> Duration {
        self.blocked
    }

    /// Plans the `size` bytes of entry `entry` (size > 0); `store` skips compression.
    pub fn add(
        &mut self,
        entry: usize,
        source: Source,
        size: u64,
        store: bool,
    ) -> Result<(), Stopped> {
        if self.locations.len() <= entry {
            self.locations.resize(entry + 1, None);
        }
        let cs = self.chunk_size as u64;
        if size >= cs {
            let n = size.div_ceil(cs);
            let first = self.next_seq;
            self.locations[entry] = Some(DataLocation {
                first_chunk: first,
                last_chunk: first + n - 1,
                chunk_offset: 0,
                base: None,
            });
            for i in 0..n {
                let len = (size - i * cs).min(cs) as usize;
                let piece = PiecePlan {
                    entry,
                    source: source.clone(),
                    file_offset: i * cs,
                    len,
                    chunk_offset: 0,
                    whole: n == 1,
                };
                self.emit(len, store, vec![piece])?;
            }
            return Ok(());
        }
        let bin = usize::from(store);
        let size = size as usize;
        if self.solid[bin].len + size > self.chunk_size {
            self.close(bin)?;
        }
        let solid = &mut self.solid[bin];
        solid.pieces.push(PiecePlan {
            entry,
            source,
            file_offset: 0,
            len: size,
            chunk_offset: solid.len,
            whole: true,
        });
        solid.len += size;
        Ok(())
    }

    /// Closes the open solid chunks and returns each entry's data location (indexed by
    /// entry; `None` for entries without data).
    pub fn finish(mut self) -> Result<Vec<Option<DataLocation>>, Stopped> {
        self.close(0)?;
        self.close(1)?;
        Ok(self.locations)
    }

    fn close(&mut self, bin: usize) -> Result<(), Stopped> {
        let solid = std::mem::take(&mut self.solid[bin]);
        if solid.pieces.is_empty() {
            return Ok(());
        }
        let seq = self.next_seq;
        for p in &solid.pieces {
            self.locations[p.entry] = Some(DataLocation {
                first_chunk: seq,
                last_chunk: seq,
                chunk_offset: p.chunk_offset as u64,
                base: None,
            });
        }
        self.emit(solid.len, bin == 1, solid.pieces)
    }

    fn emit(&mut self, len: usize, store: bool, pieces: Vec<PiecePlan>) -> Result<(), Stopped> {
        let plan = ChunkPlan {
            seq: self.next_seq,
            len,
            store,
            pieces,
        };
        self.next_seq += 1;
        match self.out.try_send(plan) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(plan)) => {
                let start = Instant::now();
                let sent = self.out.send(plan).map_err(|_| Stopped);
                self.blocked += start.elapsed();
                sent
            }
            Err(TrySendError::Disconnected(_)) => Err(Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(n: usize) -> Source {
        Source::Memory(vec![0u8; n].into())
    }

    #[test]
    fn splits_large_and_packs_small_files() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut s = Segmenter::new(1024, tx);
        s.add(0, mem(300), 300, false).unwrap();
        s.add(1, mem(2049), 2049, false).unwrap(); // chunks 0,1,2
        s.add(2, mem(700), 700, false).unwrap(); // 300+700 < 1024: same solid chunk
        s.add(3, mem(100), 100, true).unwrap(); // stored bin
        s.add(4, mem(1024), 1024, false).unwrap(); // exactly one chunk, its own
        s.add(5, mem(100), 100, false).unwrap(); // 1000+100 > 1024: closes solid
        let locs = s.finish().unwrap();
        let plans: Vec<ChunkPlan> = rx.try_iter().collect();
        let lens: Vec<usize> = plans.iter().map(|p| p.len).collect();
        assert_eq!(lens, vec![1024, 1024, 1, 1024, 1000, 100, 100]);
        assert!(plans.iter().enumerate().all(|(i, p)| p.seq == i as u64));
        assert_eq!(locs[1].unwrap().first_chunk, 0);
        assert_eq!(locs[1].unwrap().last_chunk, 2);
        assert_eq!(locs[4].unwrap().first_chunk, 3);
        assert!(plans[3].pieces[0].whole);
        assert_eq!(locs[0].unwrap().first_chunk, 4);
        assert_eq!(locs[2].unwrap().chunk_offset, 300);
        assert_eq!(locs[5].unwrap().first_chunk, 5);
        assert_eq!(locs[3].unwrap().first_chunk, 6);
        assert!(plans[6].store && !plans[5].store);
    }
}
