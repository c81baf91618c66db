//! A compressor: one pinned thread per core. It owns a ring of slots, claims chunk
//! plans, has their file bytes read straight into free slots (many reads in flight),
//! then compresses and hashes the oldest filled slot on its own core and hands the
//! slot to the writer. The writer hands the slot back once its blob is on disk.

use super::ring::Ring;
use super::root::{OpenError, Root, full_path, read_at_most};
use super::segmenter::{ChunkPlan, Source};
use super::unreadable::Skipped;
use crate::codec::{Codec, Encoder, Transform};
use crate::digest::{self, Digest, PieceDigest};
use crate::error::{Error, Result};
use crate::io::{Completion, Op, Queue};
use crate::stages::Clock;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A compressed (or stored) chunk waiting in a slot for the writer.
pub struct Sealed {
    /// Chunk number.
    pub seq: u64,
    /// The compressor whose ring holds it.
    pub worker: usize,
    /// The slot.
    pub slot: usize,
    /// How the blob encodes the chunk.
    pub codec: Codec,
    /// Blob length (bytes to write).
    pub stored_len: usize,
    /// Uncompressed length.
    pub raw_len: usize,
    /// BLAKE3 of the blob, or its chaining value as the subtree at `subtree_at`.
    pub digest: Digest,
    /// See `ChunkRecord::subtree_at`.
    pub subtree_at: Option<u64>,
    /// Digests of the file pieces in the chunk, by entry.
    pub pieces: Vec<(usize, PieceDigest)>,
}

/// A slot coming back from the writer, with its (emptied) digest list for reuse.
pub struct Returned {
    /// The slot.
    pub slot: usize,
    /// The digest list, to reuse.
    pub pieces: Vec<(usize, PieceDigest)>,
}

/// Files found changed while being read, or that could not be read, gathered from
/// every compressor.
#[derive(Debug, Default)]
pub struct Changes {
    /// Files kept as read (`OnChange::Warn`), as warning lines, by entry: one a file,
    /// however many of its chunks saw the change.
    pub warnings: BTreeMap<usize, String>,
    /// Files to read again (`OnChange::Retry`), by entry.
    pub reread: Vec<usize>,
    /// Files that could not be opened or read (`OnUnreadable::Warn`), by entry: left
    /// out of the archive (the bytes their pieces took are zeros).
    pub unreadable: BTreeMap<usize, Skipped>,
    /// Files that vanished, or were replaced by something else, between the walk and
    /// their read (`OnChange::Warn` or `Ignore`), as warning lines, by entry: left out.
    pub vanished: BTreeMap<usize, String>,
}

struct Filling {
    slot: usize,
    plan: ChunkPlan,
    pending: usize,
}

/// A compressor's slots and the work on them.
struct Work {
    clock: Clock,
    encoder: Encoder,
    /// Slots free to fill.
    free: Vec<usize>,
    /// Piece lists handed back with slots, to reuse.
    spare: Vec<Vec<(usize, PieceDigest)>>,
    /// Slots being filled, oldest first.
    filling: VecDeque<Filling>,
    completions: Vec<Completion>,
    /// The plan channel has closed.
    plans_done: bool,
}

impl Work {
    fn returned(&mut self, r: Returned) {
        self.free.push(r.slot);
        self.spare.push(r.pieces);
    }
}

/// One compressor thread's state.
pub struct Compressor {
    /// Index among the compressors.
    pub id: usize,
    /// This compressor's ring.
    pub ring: Arc<Ring>,
    /// Its I/O queue (ring slot `s` registered as buffer `s`).
    pub queue: Queue,
    /// zstd level (`None`: store every chunk).
    pub level: Option<i32>,
    /// Root for file sources.
    pub root: Option<Arc<Root>>,
    /// What to do with files that changed while being read.
    pub on_change: super::OnChange,
    /// What to do with files that cannot be opened or read.
    pub on_unreadable: super::OnUnreadable,
    /// Where changed and unreadable files are reported.
    pub changes: Arc<std::sync::Mutex<Changes>>,
    /// Files are opened blocking: set once a read of a non-blocking descriptor came
    /// back `EAGAIN` (a file system io_uring cannot read without blocking).
    pub blocking: bool,
    /// Closes queued whose completions have not come back yet.
    pub closes: usize,
    /// Files opened before their reads and closes are submitted ([`super::root::open_batch`]).
    pub open_batch: usize,
}

impl Compressor {
    /// Runs until the plan channel closes, the writer goes away, or `abort` is set.
    pub fn run(
        mut self,
        plans: Receiver<ChunkPlan>,
        returns: Receiver<Returned>,
        sealed: Sender<Sealed>,
        abort: &AtomicBool,
    ) -> Result<Clock> {
        let encoder = Encoder::new(self.level)?;
        let mut w = Work {
            clock: Clock::start(),
            encoder,
            free: (0..self.ring.slots()).rev().collect(),
            spare: Vec::new(),
            filling: VecDeque::new(),
            completions: Vec::new(),
            plans_done: false,
        };
        let result = self.pump(&mut w, &plans, &returns, &sealed, abort);
        if result.is_err() {
            abort.store(true, Ordering::Relaxed);
            self.drain(&w.filling);
        }
        w.clock.work("read");
        result.map(|()| w.clock)
    }

    /// The loop: fill free slots with plans, wait for the oldest slot's reads, then
    /// check, compress and seal it and hand it to the writer.
    fn pump(
        &mut self,
        w: &mut Work,
        plans: &Receiver<ChunkPlan>,
        returns: &Receiver<Returned>,
        sealed: &Sender<Sealed>,
        abort: &AtomicBool,
    ) -> Result<()> {
        loop {
            if abort.load(Ordering::Relaxed) {
                return Ok(());
            }
            for r in returns.try_iter() {
                w.returned(r);
            }
            self.take_plans(w, plans)?;
            self.queue
                .submit()
                .map_err(|e| Error::io(self.root_path(), "io_uring submit", e))?;
            w.clock.work("read");
            if w.filling.is_empty() {
                if w.plans_done {
                    return Ok(());
                }
                // Every slot is with the writer: wait for one to come back.
                let back = returns.recv();
                w.clock.wait("no_slot");
                match back {
                    Ok(r) => w.returned(r),
                    Err(_) => return Ok(()), // writer gone; it reports why
                }
                continue;
            }
            self.await_reads(w)?;
            let Some(f) = w.filling.pop_front() else {
                continue;
            };
            w.clock.work("read");
            self.check_unchanged(&f.plan)?;
            w.clock.work("check");
            let pieces = w.spare.pop().unwrap_or_default();
            let out = self.seal(&mut w.encoder, f, pieces, &mut w.clock)?;
            if sealed.send(out).is_err() {
                return Ok(()); // writer gone; it reports why
            }
            w.clock.wait("writer");
        }
    }

    /// Fills free slots with new plans, starting their reads; blocks for a plan only
    /// when there is nothing else to do (no slot filling).
    fn take_plans(&mut self, w: &mut Work, plans: &Receiver<ChunkPlan>) -> Result<()> {
        while !w.plans_done {
            let Some(slot) = w.free.pop() else {
                return Ok(());
            };
            let next = if w.filling.is_empty() {
                w.clock.work("read");
                let next = plans.recv().map_err(|_| TryRecvError::Disconnected);
                w.clock.wait("no_plan");
                next
            } else {
                plans.try_recv()
            };
            match next {
                Ok(plan) => {
                    w.filling.push_back(Filling {
                        slot,
                        plan,
                        pending: 0,
                    });
                    self.start(&mut w.filling)?;
                }
                Err(e) => {
                    w.free.push(slot);
                    if e == TryRecvError::Disconnected {
                        w.plans_done = true;
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Waits until the oldest slot's reads have all completed. Every completion is
    /// accounted for before a failure is returned, so that the drain after an error
    /// waits for exactly the reads in flight.
    fn await_reads(&mut self, w: &mut Work) -> Result<()> {
        while w.filling.front().is_some_and(|f| f.pending > 0) {
            w.completions.clear();
            self.queue
                .wait(1, &mut w.completions)
                .map_err(|e| Error::io(self.root_path(), "io_uring wait", e))?;
            w.clock.wait("reads");
            let mut failure = None;
            for c in &w.completions {
                if let Err(e) = self.complete(&mut w.filling, *c) {
                    failure.get_or_insert(e);
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(())
    }

    fn root_path(&self) -> &Path {
        self.root
            .as_ref()
            .map_or(Path::new("<memory>"), |r| &r.path)
    }

    /// Starts filling the newest slot of `filling` with its plan's bytes, counting the
    /// reads left in flight in its `pending` as they are queued.
    fn start(&mut self, filling: &mut VecDeque<Filling>) -> Result<()> {
        let Some(f) = filling.back_mut() else {
            return Ok(());
        };
        let (slot, plan) = (f.slot, &f.plan);
        let base = self.ring.slot_ptr(slot);
        let mut queued = 0;
        for (i, p) in plan.pieces.iter().enumerate() {
            match &p.source {
                Source::Memory(bytes) => {
                    let src = usize::try_from(p.file_offset)
                        .ok()
                        .and_then(|o| bytes.get(o..o + p.len))
                        .ok_or_else(|| Error::Invalid("piece outside its buffer".into()))?;
                    // SAFETY: we own the slot; the piece lies inside the chunk.
                    let dst = unsafe { self.ring.slot(slot, plan.len) };
                    dst[p.chunk_offset..p.chunk_offset + p.len].copy_from_slice(src);
                }
                Source::File { rel, .. } => {
                    let fd = match self.open(rel) {
                        Ok(fd) => fd,
                        Err(e) => {
                            self.not_opened(p.entry, rel, e)?;
                            // Left out, or read again later: its bytes here are zeros.
                            // SAFETY: we own the slot; the piece lies inside the chunk.
                            let dst = unsafe { self.ring.slot(slot, plan.len) };
                            dst[p.chunk_offset..p.chunk_offset + p.len].fill(0);
                            continue;
                        }
                    };
                    let op = Op::Read {
                        fd: fd.as_raw_fd(),
                        // SAFETY: chunk_offset + len <= plan.len <= slot capacity.
                        buf: unsafe { base.add(p.chunk_offset) },
                        len: p.len as u32,
                        offset: p.file_offset,
                        fixed: slot as u16,
                    };
                    // SAFETY: the slot stays ours until this read completes; the fd is
                    // closed by the ring after it, in order.
                    unsafe { self.queue.push(op, ((slot as u64) << 32) | i as u64) }
                        .map_err(|e| Error::io(self.full(rel), "queue read", e))?;
                    f.pending += 1;
                    self.queue
                        .close(fd)
                        .map_err(|e| Error::io(self.full(rel), "queue close", e))?;
                    self.closes += 1;
                    queued += 1;
                    if queued == self.open_batch {
                        self.queue
                            .submit()
                            .map_err(|e| Error::io(self.full(rel), "submit read", e))?;
                        queued = 0;
                    }
                }
            }
        }
        if queued > 0 {
            self.queue
                .submit()
                .map_err(|e| Error::io(self.root_path(), "submit read", e))?;
        }
        Ok(())
    }

    fn full(&self, rel: &Path) -> PathBuf {
        full_path(self.root_path(), rel.as_os_str().as_encoded_bytes())
    }

    fn open(&self, rel: &Path) -> std::result::Result<OwnedFd, OpenError> {
        let root = self
            .root
            .as_ref()
            .ok_or(OpenError::Os(std::io::Error::other(
                "file source without a root",
            )))?;
        root.open_file(rel, self.blocking)
    }

    /// Accounts for one finished read or close; finishes short reads synchronously.
    fn complete(&mut self, filling: &mut VecDeque<Filling>, c: Completion) -> Result<()> {
        if c.is_close() {
            // A read-only descriptor: nothing was written that its close could lose.
            self.closes = self.closes.saturating_sub(1);
            return Ok(());
        }
        let slot = (c.user_data >> 32) as usize;
        let index = (c.user_data & 0xffff_ffff) as usize;
        let Some(f) = filling.iter_mut().find(|f| f.slot == slot) else {
            return Err(Error::Invalid(format!("stray completion for slot {slot}")));
        };
        let Some(p) = f.plan.pieces.get(index) else {
            return Err(Error::Invalid(format!(
                "stray completion for piece {index}"
            )));
        };
        // This read is no longer in flight, whatever its result.
        f.pending -= 1;
        let Source::File { rel, .. } = &p.source else {
            return Err(Error::Invalid("completion for a memory piece".into()));
        };
        let done = match c.result {
            r if r >= 0 => r as usize,
            r if r == -libc::EINTR => 0,
            r if r == -libc::EAGAIN => {
                if !self.blocking {
                    log::info!(
                        "{}: io_uring cannot read it without blocking: files are opened blocking from here on",
                        self.full(rel).display()
                    );
                }
                self.blocking = true;
                0
            }
            r => {
                let failed = std::io::Error::from_raw_os_error(-r);
                let skipped = self
                    .on_unreadable
                    .skip(Error::io(self.full(rel), "read", failed))?;
                // SAFETY: we own the slot and this piece's read is no longer in flight.
                let buf = unsafe { self.ring.slot(slot, f.plan.len) };
                buf[p.chunk_offset..p.chunk_offset + p.len].fill(0);
                self.unreadable(p.entry, skipped);
                return Ok(());
            }
        };
        if done < p.len {
            // Short read: finish it here (rare: the file shrank, or a signal).
            // SAFETY: we own the slot and no other read into this piece is in flight.
            let buf = unsafe { self.ring.slot(slot, f.plan.len) };
            let dst = &mut buf[p.chunk_offset + done..p.chunk_offset + p.len];
            let offset = p.file_offset + done as u64;
            let rest = (self.open(rel))
                .map_err(|e| e.into_error(self.full(rel)))
                .and_then(|fd| {
                    read_at_most(&fd, dst, offset).map_err(|e| Error::io(self.full(rel), "read", e))
                });
            let rest = match rest.map_err(|e| self.on_unreadable.skip(e)) {
                Err(Ok(skipped)) => {
                    dst.fill(0);
                    self.unreadable(p.entry, skipped);
                    return Ok(());
                }
                Err(Err(e)) => Err(e),
                Ok(got) => Ok(got),
            };
            match rest {
                Ok(got) if got == dst.len() => {}
                Ok(got) => {
                    // The file ended early: it shrank since the walk.
                    if let Some(rest) = dst.get_mut(got..) {
                        rest.fill(0);
                    }
                    let walked = match &p.source {
                        Source::File { size, .. } => *size,
                        Source::Memory(_) => 0,
                    };
                    let problem = format!(
                        "shrank while being packed (the walk saw {walked} bytes; it ended at {})",
                        offset + got as u64
                    );
                    self.changed(p.entry, rel, problem)?;
                }
                Err(_) if self.on_change == super::OnChange::Retry => {
                    dst.fill(0);
                    self.reread(p.entry);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// After a chunk's reads: checks that its files still have the size and mtime the
    /// walk saw, and fails or reports as `on_change` says.
    fn check_unchanged(&self, plan: &ChunkPlan) -> Result<()> {
        let Some(root) = self
            .root
            .as_ref()
            .filter(|_| self.on_change != super::OnChange::Ignore)
        else {
            return Ok(());
        };
        for p in &plan.pieces {
            let Source::File {
                rel,
                size,
                mtime_ns,
                ctime_ns,
            } = &p.source
            else {
                continue;
            };
            let now = rustix::fs::statat(&root.fd, &**rel, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
            let problem = match now {
                Err(e) => Some(format!("vanished while being packed ({e})")),
                Ok(st) => {
                    let mtime = super::lister::time_ns(st.st_mtime, st.st_mtime_nsec as i64)
                        .unwrap_or(if st.st_mtime < 0 { i64::MIN } else { i64::MAX });
                    let now_size = st.st_size as u64;
                    let ctime = super::lister::time_ns(st.st_ctime, st.st_ctime_nsec as i64);
                    // As GNU tar: the ctime tells a write whose old mtime was put back.
                    let ctime_moved = ctime_ns.is_some() && ctime != *ctime_ns;
                    (now_size != *size || mtime != *mtime_ns || ctime_moved).then(|| {
                        format!(
                            "changed while being packed (size {size} -> {now_size}, mtime changed: {}, ctime changed: {ctime_moved})",
                            mtime != *mtime_ns
                        )
                    })
                }
            };
            if let Some(problem) = problem {
                self.changed(p.entry, rel, problem)?;
            }
        }
        Ok(())
    }

    /// File `entry` (at `rel`) changed while being read, as `problem` says: fails the
    /// pack (`OnChange::Fail`), is kept as read with a warning, one per file (`Warn`,
    /// and `Ignore` for what it cannot help seeing: a file that ended early), or is
    /// left to the re-read pass (`Retry`).
    fn changed(&self, entry: usize, rel: &Path, problem: String) -> Result<()> {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        if changes.unreadable.contains_key(&entry) || changes.vanished.contains_key(&entry) {
            return Ok(()); // left out anyway
        }
        let path = self.full(rel);
        match self.on_change {
            super::OnChange::Fail => return Err(Error::Input { path, problem }),
            super::OnChange::Warn | super::OnChange::Ignore => {
                (changes.warnings.entry(entry))
                    .or_insert_with(|| format!("{}: {problem}; archived as read", path.display()));
            }
            super::OnChange::Retry => changes.reread.push(entry),
        }
        Ok(())
    }

    /// What becomes of file `entry` (at `rel`), which could not be opened: left out
    /// when unreadable under `OnUnreadable::Warn`; read again later under
    /// `OnChange::Retry`; left out with a warning when it vanished or was replaced
    /// since the walk under `Warn` or `Ignore`; otherwise the error that fails the pack.
    fn not_opened(&self, entry: usize, rel: &Path, e: OpenError) -> Result<()> {
        use super::OnChange;
        let path = self.full(rel);
        match e {
            OpenError::Os(os) => match self.on_unreadable.skip(Error::io(&path, "open", os)) {
                Ok(skipped) => self.unreadable(entry, skipped),
                Err(_) if self.on_change == OnChange::Retry => self.reread(entry),
                Err(e) => return Err(e),
            },
            OpenError::Gone(_) if self.on_change == OnChange::Retry => self.reread(entry),
            OpenError::Gone(why) if matches!(self.on_change, OnChange::Warn | OnChange::Ignore) => {
                let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
                (changes.vanished.entry(entry)).or_insert_with(|| {
                    format!("{}: {why} while being packed; not archived", path.display())
                });
            }
            gone => return Err(gone.into_error(path)),
        }
        Ok(())
    }

    /// Leaves `entry` out: it could not be read (`OnUnreadable::Warn`). The first
    /// record of a file read in several chunks stands.
    fn unreadable(&self, entry: usize, skipped: Skipped) {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        changes.unreadable.entry(entry).or_insert(skipped);
    }

    /// Leaves `entry` to the re-read pass (`OnChange::Retry`).
    fn reread(&self, entry: usize) {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        changes.reread.push(entry);
    }

    /// Hashes and encodes a filled slot; a zstd frame that pays replaces the data in
    /// the slot. Every input byte is hashed once, for its file's digest, and the chunk's
    /// digest is of the blob: a zstd chunk costs a hash of its frame on top; a stored
    /// chunk that is one whole file shares that file's digest, and one that is a piece
    /// of a split file its piece's chaining value (format 4, `subtree_at`); only a stored
    /// chunk of several pieces (small files of compressed types) is hashed again. A chunk
    /// the sample test finds incompressible is stored without a full zstd pass
    /// (`codec::worth_compressing`).
    fn seal(
        &self,
        encoder: &mut Encoder,
        f: Filling,
        mut pieces: Vec<(usize, PieceDigest)>,
        clock: &mut Clock,
    ) -> Result<Sealed> {
        // SAFETY: all reads into the slot have completed; we own it.
        let data: &[u8] = unsafe { self.ring.slot(f.slot, f.plan.len) };
        let raw_len = data.len();
        pieces.clear();
        // The chunk's digest as a stored chunk, when its one piece's pass gave it.
        let mut shared = None;
        for p in &f.plan.pieces {
            let bytes = &data[p.chunk_offset..p.chunk_offset + p.len];
            let d = digest::piece(bytes, p.file_offset, p.whole);
            if p.len == raw_len {
                shared = Some(match d {
                    PieceDigest::Whole(d) => (d, None),
                    PieceDigest::Subtree(cv) => (cv, Some(p.file_offset)),
                });
            }
            pieces.push((p.entry, d));
        }
        clock.work("hash");
        let blob = encoder.encode(data, f.plan.store)?;
        clock.work("compress");
        if blob.codec == Codec::Stored {
            let (digest, subtree_at) = shared.unwrap_or_else(|| (digest::hash(data), None));
            clock.work("hash");
            let stored = self.sealed(&f, Codec::Stored, raw_len, raw_len, digest, pieces);
            return Ok(Sealed {
                subtree_at,
                ..stored
            });
        }
        let (codec, frame) = (blob.codec, blob.bytes);
        let chunk_digest = digest::hash(frame);
        clock.work("hash");
        // SAFETY: we own the slot; the data is hashed and encoded, and the frame is
        // shorter than it.
        unsafe { self.ring.slot(f.slot, frame.len()) }.copy_from_slice(frame);
        clock.work("compress");
        Ok(self.sealed(&f, codec, frame.len(), raw_len, chunk_digest, pieces))
    }

    /// The sealed chunk of slot `f`, its blob `stored_len` bytes of `codec` with a
    /// plain BLAKE3 `digest`.
    fn sealed(
        &self,
        f: &Filling,
        codec: Codec,
        stored_len: usize,
        raw_len: usize,
        digest: Digest,
        pieces: Vec<(usize, PieceDigest)>,
    ) -> Sealed {
        Sealed {
            seq: f.plan.seq,
            worker: self.id,
            slot: f.slot,
            codec,
            stored_len,
            raw_len,
            digest,
            subtree_at: None,
            pieces,
        }
    }

    /// After an error: waits for reads still in flight so no I/O outlives the ring.
    fn drain(&mut self, filling: &VecDeque<Filling>) {
        let mut left: usize = filling.iter().map(|f| f.pending).sum::<usize>() + self.closes;
        let mut out = Vec::new();
        while left > 0 {
            out.clear();
            if self.queue.wait(1, &mut out).is_err() {
                return;
            }
            left = left.saturating_sub(out.len());
        }
        self.closes = 0;
    }
}
