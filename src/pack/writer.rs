//! The writer: places blobs in the archive in chunk order. It takes sealed slots from
//! every compressor, keeps the early ones aside until their turn, assigns each blob the
//! next offset, and writes it with WRITE_FIXED straight from the ring slot (the zstd
//! frame, or for a stored chunk the raw input bytes: no user-space copy). Several writes
//! are in flight (one, at the stream's position, when the archive goes to a pipe); a
//! slot goes back to its compressor only when its write has completed.

use super::compressor::{Returned, Sealed};
use super::ring::Ring;
use crate::digest::PieceDigest;
use crate::error::{Error, Result};
use crate::format::chunk::ChunkRecord;
use crate::format::header::HEADER_LEN;
use crate::io::{Completion, Op, Queue};
use crate::stages::Clock;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the writer produced: the chunks table and every piece digest.
#[derive(Default)]
pub struct Written {
    /// Chunk records, by chunk number.
    pub chunks: Vec<ChunkRecord>,
    /// (entry, chunk, digest) for every file piece.
    pub pieces: Vec<(usize, u64, PieceDigest)>,
    /// Offset just past the last blob.
    pub blob_end: u64,
    /// Files that changed while being read (filled in by the pipeline).
    pub changes: super::compressor::Changes,
    /// Where the writer's time went.
    pub clock: Clock,
    /// Where each compressor's time went (filled in by the pipeline).
    pub compressors: Vec<Clock>,
}

struct InFlight {
    sealed: Sealed,
    ptr: *const u8,
    fixed: u16,
    offset: u64,
    done: usize,
}

/// The writes under way and the blobs waiting for their turn.
struct Flight {
    out: Written,
    /// Sealed chunks that arrived before their turn, by chunk number.
    waiting: BTreeMap<u64, Sealed>,
    /// Writes in flight, by the index given to the queue (`None`: a free index).
    writes: Vec<Option<InFlight>>,
    /// How many of `writes` are in flight.
    count: usize,
    completions: Vec<Completion>,
    /// Every compressor has finished: no more sealed chunks will come.
    closed: bool,
}

impl Flight {
    /// Takes a sealed chunk if one is there (blocking only when there is nothing else
    /// to do: no write in flight and the next blob not already here). Returns whether
    /// one came.
    fn receive(&mut self, sealed: &Receiver<Sealed>) -> bool {
        let idle = self.count == 0 && !self.waiting.contains_key(&(self.out.chunks.len() as u64));
        let msg = if self.closed {
            Err(TryRecvError::Disconnected)
        } else if idle {
            self.out.clock.work("write");
            let msg = sealed.recv().map_err(|_| TryRecvError::Disconnected);
            self.out.clock.wait("next_chunk");
            msg
        } else {
            sealed.try_recv()
        };
        match msg {
            Ok(s) => {
                self.waiting.insert(s.seq, s);
                true
            }
            Err(TryRecvError::Disconnected) => {
                self.closed = true;
                false
            }
            Err(TryRecvError::Empty) => false,
        }
    }
}

/// The writer thread's state.
pub struct Writer {
    /// Its I/O queue, with every ring slot of every compressor registered.
    pub queue: Queue,
    /// The archive's descriptor.
    pub fd: RawFd,
    /// Write in order, one write at a time, at the descriptor's position (a stream)
    /// instead of at offsets with several in flight.
    pub sequential: bool,
    /// The archive's path, for messages.
    pub path: PathBuf,
    /// The compressors' rings, by compressor.
    pub rings: Vec<Arc<Ring>>,
    /// Where to hand slots back, by compressor.
    pub returns: Vec<Sender<Returned>>,
    /// Counts the raw bytes of each chunk once its blob is written.
    pub progress: Option<Arc<crate::Progress>>,
}

impl Writer {
    /// Index of the first registered buffer of compressor `w`'s ring.
    fn fixed_base(&self, w: usize) -> usize {
        self.rings.iter().take(w).map(|r| r.slots()).sum()
    }

    /// Runs until every compressor has finished and every blob is written.
    pub fn run(mut self, sealed: Receiver<Sealed>, abort: &AtomicBool) -> Result<Written> {
        let mut f = Flight {
            out: Written {
                blob_end: HEADER_LEN,
                ..Written::default()
            },
            waiting: BTreeMap::new(),
            writes: Vec::new(),
            count: 0,
            completions: Vec::new(),
            closed: false,
        };
        let result = self.pump(&mut f, &sealed, abort);
        if result.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        // Never leave a write in flight from a ring that may be freed.
        while f.count > 0 {
            f.completions.clear();
            if self.queue.wait(1, &mut f.completions).is_err() {
                break;
            }
            f.count = f.count.saturating_sub(f.completions.len());
        }
        f.out.clock.work("write");
        result.map(|()| f.out)
    }

    /// The loop: take sealed chunks, start the next blob's write when its turn has
    /// come, and otherwise wait for writes to complete.
    fn pump(
        &mut self,
        f: &mut Flight,
        sealed: &Receiver<Sealed>,
        abort: &AtomicBool,
    ) -> Result<()> {
        loop {
            if abort.load(Ordering::Relaxed) {
                return Ok(());
            }
            let got = f.receive(sealed);
            if self.start_next(f)? {
                continue;
            }
            if f.closed && f.count == 0 {
                return match f.waiting.first_key_value() {
                    Some((seq, _)) => Err(Error::Invalid(format!(
                        "chunk {} never arrived (chunk {seq} did)",
                        f.out.chunks.len()
                    ))),
                    None => Ok(()),
                };
            }
            if !got && f.count > 0 {
                self.complete(f)?;
            }
        }
    }

    /// Starts writing the next blob in chunk order if it is here and may start (a
    /// stream takes one write at a time). Returns whether it did.
    fn start_next(&mut self, f: &mut Flight) -> Result<bool> {
        if self.sequential && f.count > 0 {
            return Ok(false);
        }
        let Some(s) = f.waiting.remove(&(f.out.chunks.len() as u64)) else {
            return Ok(false);
        };
        let (ptr, fixed) = self.source(&s);
        f.out.chunks.push(ChunkRecord {
            offset: f.out.blob_end,
            stored_len: s.stored_len as u64,
            raw_len: s.raw_len as u64,
            codec: s.codec,
            digest: s.digest,
            subtree_at: s.subtree_at,
        });
        let w = InFlight {
            sealed: s,
            ptr,
            fixed,
            offset: f.out.blob_end,
            done: 0,
        };
        f.out.blob_end += w.sealed.stored_len as u64;
        let index = match f.writes.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                f.writes.push(None);
                f.writes.len() - 1
            }
        };
        self.submit(index, &w)?;
        f.writes[index] = Some(w);
        f.count += 1;
        Ok(true)
    }

    /// Waits for at least one write to complete and handles every completion. Each is
    /// accounted for before a failure is returned, so that the drain in [`Writer::run`]
    /// waits for exactly the writes still in flight.
    fn complete(&mut self, f: &mut Flight) -> Result<()> {
        let mut completions = std::mem::take(&mut f.completions);
        completions.clear();
        f.out.clock.work("write");
        let waited = self.queue.wait(1, &mut completions);
        f.out.clock.wait("writes");
        waited.map_err(|e| Error::io(&self.path, "io_uring wait", e))?;
        let mut failure = None;
        for c in &completions {
            if let Err(e) = self.completed(f, c) {
                failure.get_or_insert(e);
            }
        }
        f.completions = completions;
        failure.map_or(Ok(()), Err)
    }

    /// One write completion: a failure, a short write (the rest is submitted), or a
    /// blob written (its slot goes back to its compressor, with the piece digests).
    fn completed(&mut self, f: &mut Flight, c: &Completion) -> Result<()> {
        let i = c.user_data as usize;
        let Some(w) = f.writes.get_mut(i).and_then(Option::as_mut) else {
            return Err(Error::Invalid(format!("stray write completion {i}")));
        };
        if c.result <= 0 {
            let e = match c.result {
                0 => std::io::ErrorKind::WriteZero.into(),
                r => std::io::Error::from_raw_os_error(-r),
            };
            f.writes[i] = None;
            f.count -= 1;
            return Err(Error::io(&self.path, "write", e));
        }
        w.done += c.result as usize;
        if w.done < w.sealed.stored_len {
            let resubmitted = self.submit(i, w);
            if resubmitted.is_err() {
                // Not resubmitted: no completion will come for it.
                f.writes[i] = None;
                f.count -= 1;
            }
            return resubmitted;
        }
        if let Some(done) = f.writes[i].take() {
            f.count -= 1;
            let s = done.sealed;
            if let Some(p) = &self.progress {
                p.add_bytes(s.raw_len as u64);
            }
            let mut pieces = s.pieces;
            (f.out.pieces).extend(pieces.drain(..).map(|(e, d)| (e, s.seq, d)));
            // A compressor that has finished no longer listens; that is fine.
            let _ = self.returns[s.worker].send(Returned {
                slot: s.slot,
                pieces,
            });
        }
        Ok(())
    }

    /// Where the blob of `s` is (its slot: the zstd frame or the raw data), and the
    /// slot's buffer index.
    fn source(&self, s: &Sealed) -> (*const u8, u16) {
        let ptr = self.rings[s.worker].slot_ptr(s.slot);
        (ptr, (self.fixed_base(s.worker) + s.slot) as u16)
    }

    fn submit(&mut self, index: usize, w: &InFlight) -> Result<()> {
        let op = Op::Write {
            fd: self.fd,
            // SAFETY: done < stored_len, inside the slot's buffer.
            buf: unsafe { w.ptr.add(w.done) },
            len: (w.sealed.stored_len - w.done) as u32,
            offset: if self.sequential {
                crate::io::CURRENT_POSITION
            } else {
                w.offset + w.done as u64
            },
            fixed: w.fixed,
        };
        // SAFETY: the slot belongs to the writer until the write completes, and the
        // archive file outlives the writer.
        unsafe { self.queue.push(op, index as u64) }
            .and_then(|()| self.queue.submit())
            .map_err(|e| Error::io(&self.path, "queue write", e))
    }
}
