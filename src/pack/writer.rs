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
        let mut out = Written {
            blob_end: HEADER_LEN,
            ..Written::default()
        };
        let mut waiting: BTreeMap<u64, Sealed> = BTreeMap::new();
        let mut inflight: Vec<Option<InFlight>> = Vec::new();
        let mut count = 0usize;
        let mut completions: Vec<Completion> = Vec::new();
        let mut closed = false;
        let result = (|| -> Result<()> {
            loop {
                if abort.load(Ordering::Relaxed) {
                    return Ok(());
                }
                // Block only when there is nothing else to do: no write in flight and
                // (with one write at a time) no blob already waiting for its turn.
                let idle = count == 0 && !waiting.contains_key(&(out.chunks.len() as u64));
                let msg = if idle && !closed {
                    out.clock.work("write");
                    let msg = sealed.recv().map_err(|_| TryRecvError::Disconnected);
                    out.clock.wait("next_chunk");
                    msg
                } else if closed {
                    Err(TryRecvError::Disconnected)
                } else {
                    sealed.try_recv()
                };
                let got = match msg {
                    Ok(s) => {
                        waiting.insert(s.seq, s);
                        true
                    }
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        false
                    }
                    Err(TryRecvError::Empty) => false,
                };
                let next = out.chunks.len() as u64;
                let may_start = !(self.sequential && count > 0);
                let ready = if may_start {
                    waiting.remove(&next)
                } else {
                    None
                };
                if let Some(s) = ready {
                    let (ptr, fixed) = self.source(&s);
                    out.chunks.push(ChunkRecord {
                        offset: out.blob_end,
                        stored_len: s.stored_len as u64,
                        raw_len: s.raw_len as u64,
                        codec: s.codec,
                        digest: s.digest,
                    });
                    let w = InFlight {
                        sealed: s,
                        ptr,
                        fixed,
                        offset: out.blob_end,
                        done: 0,
                    };
                    out.blob_end += w.sealed.stored_len as u64;
                    let slot = match inflight.iter().position(Option::is_none) {
                        Some(i) => i,
                        None => {
                            inflight.push(None);
                            inflight.len() - 1
                        }
                    };
                    self.submit(slot, &w)?;
                    inflight[slot] = Some(w);
                    count += 1;
                    continue;
                }
                if closed && count == 0 {
                    if let Some((seq, _)) = waiting.first_key_value() {
                        return Err(Error::Invalid(format!(
                            "chunk {next} never arrived (chunk {seq} did)"
                        )));
                    }
                    return Ok(());
                }
                if got || count == 0 {
                    continue;
                }
                completions.clear();
                out.clock.work("write");
                self.queue
                    .wait(1, &mut completions)
                    .map_err(|e| Error::io(&self.path, "io_uring wait", e))?;
                out.clock.wait("writes");
                // Account for every completion before acting on a failure, so that the
                // drain below waits for exactly the writes still in flight.
                let mut failure = None;
                for c in &completions {
                    let i = c.user_data as usize;
                    let Some(w) = inflight.get_mut(i).and_then(Option::as_mut) else {
                        failure
                            .get_or_insert(Error::Invalid(format!("stray write completion {i}")));
                        continue;
                    };
                    if c.result <= 0 {
                        let e = match c.result {
                            0 => std::io::ErrorKind::WriteZero.into(),
                            r => std::io::Error::from_raw_os_error(-r),
                        };
                        inflight[i] = None;
                        count -= 1;
                        failure.get_or_insert(Error::io(&self.path, "write", e));
                        continue;
                    }
                    w.done += c.result as usize;
                    if w.done < w.sealed.stored_len {
                        if let Err(e) = self.submit(i, w) {
                            // Not resubmitted: no completion will come for it.
                            inflight[i] = None;
                            count -= 1;
                            failure.get_or_insert(e);
                        }
                        continue; // short write: the rest is in flight
                    }
                    if let Some(done) = inflight[i].take() {
                        count -= 1;
                        let s = done.sealed;
                        if let Some(p) = &self.progress {
                            p.add_bytes(s.raw_len as u64);
                        }
                        let mut pieces = s.pieces;
                        out.pieces
                            .extend(pieces.drain(..).map(|(e, d)| (e, s.seq, d)));
                        // A compressor that has finished no longer listens; that is fine.
                        let _ = self.returns[s.worker].send(Returned {
                            slot: s.slot,
                            pieces,
                        });
                    }
                }
                if let Some(e) = failure {
                    return Err(e);
                }
            }
        })();
        if result.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        // Never leave a write in flight from a ring that may be freed.
        while count > 0 {
            completions.clear();
            if self.queue.wait(1, &mut completions).is_err() {
                break;
            }
            count = count.saturating_sub(completions.len());
        }
        out.clock.work("write");
        result.map(|()| out)
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
