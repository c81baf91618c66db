//! A bounded cache of decompressed, verified chunks, shared by threads: what a server
//! of random reads (the read-only mount, or a program's own) puts in front of an
//! [`Archive`].
//!
//! - Every chunk is checked against its BLAKE3 before any byte of it is served; a
//!   damaged chunk's error is remembered like a chunk, so it is not decoded again.
//! - Every file is checked against its whole-file BLAKE3 as unpack checks it: a file
//!   within one chunk (and an empty one) before any byte of it is served; a file over
//!   several chunks piece by piece as its chunks are read, in any order, and the read
//!   that brings in its last unread piece fails if the file's digest does not match.
//!   A file found damaged fails every later read too.
//! - Readers of one chunk that is not cached wait for one decompression (a
//!   `OnceLock` per chunk), not one each.
//! - Least recently used chunks are dropped once the cache holds more than its size
//!   in raw bytes; a reader still copying from a dropped chunk keeps it alive until it
//!   is done, so memory stays within the size plus one chunk per reader.
//! - Reads that miss on chunk after chunk in order (a sequential reader, such as `tar`
//!   or `cp -r` through the mount) get the next chunk decompressed ahead by a
//!   prefetch thread.

use super::archive::{Archive, ChunkReader};
use crate::digest::{self, Digest, PieceDigest};
use crate::error::{Error, Result};
use crate::format::entry::{DataLocation, Entry, EntryKind};
use crossbeam_channel::{Sender, TrySendError, bounded};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// A chunk as decoded: its bytes, or what is wrong with it.
type Decoded = std::result::Result<Arc<Vec<u8>>, String>;

/// Counters of a [`ChunkCache`], for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Chunk lookups answered from the cache (including waits for a decode under way).
    pub hits: u64,
    /// Chunks decoded (read, decompressed and checked) for a reader.
    pub misses: u64,
    /// Chunks decoded ahead by the prefetch thread.
    pub prefetched: u64,
    /// Chunks dropped to stay within the size.
    pub evicted: u64,
    /// Raw bytes held now.
    pub bytes: u64,
}

/// A shared, thread-safe reader of an archive's files with a bounded cache of
/// decompressed chunks.
///
/// ```
/// use std::sync::Arc;
/// use znippy_uring::{Archive, ChunkCache};
/// # let tmp = std::env::temp_dir().join(format!("doc-cache-{}", std::process::id()));
/// # std::fs::create_dir_all(tmp.join("src/etc"))?;
/// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
/// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
/// let archive = Arc::new(Archive::open(&tmp.join("a.znippy"))?);
/// let cache = Arc::new(ChunkCache::new(archive.clone(), 64 << 20));
/// let hosts = archive.find(b"etc/hosts").expect("archived");
/// let mut buf = [0u8; 9];
/// // Any thread may read any file at any offset; the chunk is decoded once.
/// let n = cache.read_at(hosts, 0, &mut buf)?;
/// assert_eq!(&buf[..n], b"127.0.0.1");
/// let n = cache.read_at(hosts, 10, &mut buf)?;
/// assert_eq!(&buf[..n], b"localhost");
/// assert_eq!(cache.stats().misses, 1);
/// # std::fs::remove_dir_all(&tmp)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ChunkCache {
    inner: Arc<Inner>,
    prefetch: Option<Sender<u64>>,
    thread: Option<JoinHandle<()>>,
}

struct Inner {
    archive: Arc<Archive>,
    capacity: u64,
    lru: Mutex<Lru>,
    /// The last chunk a reader had to decode: the next miss one past it is sequential.
    last_miss: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    prefetched: AtomicU64,
    files: Files,
}

/// What the whole-file checks know: each file's state (by data entry), and the
/// chaining values of the pieces read so far of files over several chunks.
struct Files {
    state: Vec<AtomicU8>,
    pieces: Mutex<HashMap<usize, Vec<Option<Digest>>>>,
}

/// A file's digest has not been checked yet.
const UNCHECKED: u8 = 0;
/// A file's digest matched.
const GOOD: u8 = 1;
/// A file's digest did not match.
const BAD: u8 = 2;

/// What a damaged file's reads fail with.
const MISMATCH: &str = "file BLAKE3 mismatch";

/// The cached chunks and their recency.
#[derive(Default)]
struct Lru {
    slots: HashMap<u64, Slot>,
    /// Recency tick → chunk, oldest first.
    order: BTreeMap<u64, u64>,
    tick: u64,
    bytes: u64,
    evicted: u64,
}

struct Slot {
    tick: u64,
    bytes: u64,
    chunk: Arc<OnceLock<Decoded>>,
}

impl ChunkCache {
    /// A cache of at most `capacity` bytes of decompressed chunks in front of
    /// `archive` (at least one chunk is always held while it is read), with one
    /// prefetch thread.
    pub fn new(archive: Arc<Archive>, capacity: usize) -> ChunkCache {
        let files = Files {
            state: (0..archive.data_entries().len())
                .map(|_| AtomicU8::new(UNCHECKED))
                .collect(),
            pieces: Mutex::new(HashMap::new()),
        };
        let inner = Arc::new(Inner {
            files,
            archive,
            capacity: capacity as u64,
            lru: Mutex::new(Lru::default()),
            last_miss: AtomicU64::new(u64::MAX),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            prefetched: AtomicU64::new(0),
        });
        // A few chunks ahead at most: prefetching further than the reader only evicts.
        let (tx, rx) = bounded::<u64>(2);
        let weak = Arc::downgrade(&inner);
        let thread = std::thread::Builder::new()
            .name("znippy-prefetch".into())
            .spawn(move || {
                for id in rx {
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.fetch(id, Fetch::Ahead).is_ok() {
                        inner.prefetched.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .ok();
        ChunkCache {
            inner,
            prefetch: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// The archive read.
    pub fn archive(&self) -> &Archive {
        &self.inner.archive
    }

    /// Chunk `id`, decompressed and checked; the error says what is wrong with it.
    pub fn chunk(&self, id: u64) -> std::result::Result<Arc<Vec<u8>>, String> {
        let decoded = self.inner.fetch(id, Fetch::Read)?;
        let inner = &self.inner;
        let previous = inner.last_miss.load(Ordering::Relaxed);
        if decoded.1 && previous.wrapping_add(1) == id {
            // Sequential misses: decode the next chunk while this one is read.
            let next = id + 1;
            if next < inner.archive.data_chunks().len() as u64
                && let Some(tx) = &self.prefetch
                && let Err(TrySendError::Disconnected(_)) = tx.try_send(next)
            {
                log::debug!("prefetch thread gone");
            }
        }
        if decoded.1 {
            inner.last_miss.store(id, Ordering::Relaxed);
        }
        Ok(decoded.0)
    }

    /// Reads up to `buf.len()` bytes of entry `entry` (a file, or a hard link to one)
    /// from `offset`; fewer only at the end of the file. Only the chunks the range
    /// touches are decoded, each checked before its bytes are copied. The file's
    /// whole-file BLAKE3 is checked too (see the module's description): a mismatch is
    /// [`Error::Damaged`] naming the file.
    pub fn read_at(&self, entry: usize, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let archive = self.archive();
        let (file, e) = file_entry(archive, entry)?;
        let damaged = |problem: String| Error::Damaged {
            archive: archive.path().into(),
            damaged: vec![(e.display_path(), problem)],
        };
        let state = self
            .inner
            .files
            .state
            .get(file)
            .map(|s| s.load(Ordering::Acquire));
        if state == Some(BAD) {
            return Err(damaged(MISMATCH.into()));
        }
        let unchecked = state == Some(UNCHECKED);
        let Some(loc) = e.location else {
            // An empty file: its digest is that of no bytes.
            if unchecked {
                self.conclude(file, Some(digest::hash(b"")) == e.digest)
                    .map_err(damaged)?;
            }
            return Ok(0);
        };
        let split = loc.first_chunk != loc.last_chunk;
        if unchecked && !split {
            self.check_whole(file, e, loc).map_err(damaged)?;
        }
        let mut done = 0usize;
        while done < buf.len() && offset + (done as u64) < e.size {
            let pos = loc.chunk_offset + offset + done as u64; // within the file's chunks
            let (id, within) = locate(archive, loc.first_chunk, loc.last_chunk, pos)
                .ok_or_else(|| damaged("short".into()))?;
            let data = self.chunk(id).map_err(damaged)?;
            placed(archive, e, loc, id, data.len()).map_err(damaged)?;
            if unchecked && split {
                self.check_piece(file, e, loc, id, &data).map_err(damaged)?;
            }
            let left_in_file = (e.size - offset - done as u64) as usize;
            let want = (buf.len() - done).min(left_in_file);
            let part = data
                .get(within..)
                .map(|d| &d[..d.len().min(want)])
                .filter(|d| !d.is_empty())
                .ok_or_else(|| damaged("short".into()))?;
            buf[done..done + part.len()].copy_from_slice(part);
            done += part.len();
        }
        Ok(done)
    }

    /// Checks file `file` (`e`), which lies within one chunk, against its digest.
    fn check_whole(
        &self,
        file: usize,
        e: &Entry,
        loc: DataLocation,
    ) -> std::result::Result<(), String> {
        let data = self.chunk(loc.first_chunk)?;
        let bytes = usize::try_from(loc.chunk_offset)
            .ok()
            .zip(usize::try_from(e.size).ok())
            .and_then(|(start, len)| data.get(start..start.checked_add(len)?))
            .ok_or_else(|| format!("chunk {}: short", loc.first_chunk))?;
        self.conclude(file, Some(digest::hash(bytes)) == e.digest)
    }

    /// Notes the chaining value of the piece of file `file` (`e`, over several chunks)
    /// that chunk `id` (`data`) holds; once every piece is known, checks the file.
    fn check_piece(
        &self,
        file: usize,
        e: &Entry,
        loc: DataLocation,
        id: u64,
        data: &[u8],
    ) -> std::result::Result<(), String> {
        let archive = self.archive();
        let short = || format!("chunk {id}: short");
        let piece_len = usize::try_from(loc.first_chunk)
            .ok()
            .and_then(|i| archive.data_chunks().get(i))
            .map_or(0, |c| c.raw_len);
        let (k, count) = (id - loc.first_chunk, loc.last_chunk - loc.first_chunk + 1);
        let (start, file_offset) = match k {
            0 => (loc.chunk_offset, 0),
            _ => (
                0,
                (k * piece_len)
                    .checked_sub(loc.chunk_offset)
                    .ok_or_else(short)?,
            ),
        };
        let len = (data.len() as u64)
            .saturating_sub(start)
            .min(e.size.saturating_sub(file_offset));
        let bytes = data
            .get(start as usize..(start + len) as usize)
            .ok_or_else(short)?;
        let PieceDigest::Subtree(cv) = digest::piece(bytes, file_offset, false) else {
            return Err(short());
        };
        let complete = {
            let mut pieces = self
                .inner
                .files
                .pieces
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let cvs = pieces
                .entry(file)
                .or_insert_with(|| vec![None; count as usize]);
            if let Some(slot) = cvs.get_mut(k as usize) {
                *slot = Some(cv);
            }
            let all: Option<Vec<Digest>> = cvs.iter().copied().collect();
            if all.is_some() {
                pieces.remove(&file);
            }
            all
        };
        match complete {
            Some(cvs) => self.conclude(
                file,
                digest::merge_file(&cvs, piece_len, e.size).is_some_and(|d| Some(d) == e.digest),
            ),
            None => Ok(()),
        }
    }

    /// Records whether file `file` matched its digest; a mismatch is the error.
    fn conclude(&self, file: usize, matched: bool) -> std::result::Result<(), String> {
        if let Some(state) = self.inner.files.state.get(file) {
            state.store(if matched { GOOD } else { BAD }, Ordering::Release);
        }
        if matched {
            Ok(())
        } else {
            Err(MISMATCH.into())
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let inner = &self.inner;
        let lru = inner.lru.lock().unwrap_or_else(|p| p.into_inner());
        CacheStats {
            hits: inner.hits.load(Ordering::Relaxed),
            misses: inner.misses.load(Ordering::Relaxed),
            prefetched: inner.prefetched.load(Ordering::Relaxed),
            evicted: lru.evicted,
            bytes: lru.bytes,
        }
    }
}

impl Drop for ChunkCache {
    fn drop(&mut self) {
        self.prefetch = None; // the thread's channel closes
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("archive", &self.archive().path())
            .field("capacity", &self.inner.capacity)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Who asks for a chunk: a reader (counted as hit or miss), or the prefetch thread.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Read,
    Ahead,
}

impl Inner {
    /// The chunk, from the cache or decoded now (by this thread, or by the one already
    /// decoding it); with whether this call decoded it.
    fn fetch(&self, id: u64, who: Fetch) -> std::result::Result<(Arc<Vec<u8>>, bool), String> {
        let bytes = usize::try_from(id)
            .ok()
            .and_then(|i| self.archive.data_chunks().get(i))
            .map(|c| c.raw_len)
            .ok_or_else(|| format!("chunk {id} does not exist"))?;
        let (slot, fresh) = self.slot(id, bytes);
        if !fresh && who == Fetch::Ahead {
            return Err("already cached or being decoded".into());
        }
        let mut decoded_here = false;
        let decoded = slot.get_or_init(|| {
            decoded_here = true;
            decode(&self.archive, id)
        });
        if who == Fetch::Read {
            let counter = if decoded_here {
                &self.misses
            } else {
                &self.hits
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        decoded.clone().map(|d| (d, decoded_here))
    }

    /// The slot of chunk `id` (`bytes` raw bytes), made most recent; a new one is
    /// added (evicting the least recent beyond the capacity) if there is none.
    fn slot(&self, id: u64, bytes: u64) -> (Arc<OnceLock<Decoded>>, bool) {
        let mut lru = self.lru.lock().unwrap_or_else(|p| p.into_inner());
        let lru = &mut *lru;
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(slot) = lru.slots.get_mut(&id) {
            lru.order.remove(&slot.tick);
            slot.tick = tick;
            lru.order.insert(tick, id);
            return (slot.chunk.clone(), false);
        }
        let chunk = Arc::new(OnceLock::new());
        lru.slots.insert(
            id,
            Slot {
                tick,
                bytes,
                chunk: chunk.clone(),
            },
        );
        lru.order.insert(tick, id);
        lru.bytes += bytes;
        while lru.bytes > self.capacity {
            let Some((&oldest, &victim)) = lru.order.first_key_value() else {
                break;
            };
            if victim == id {
                break; // the one asked for stays, whatever its size
            }
            lru.order.remove(&oldest);
            if let Some(gone) = lru.slots.remove(&victim) {
                lru.bytes -= gone.bytes;
                lru.evicted += 1;
            }
        }
        (chunk, true)
    }
}

thread_local! {
    /// Each thread's zstd context and buffers.
    static READER: RefCell<Option<ChunkReader>> = const { RefCell::new(None) };
}

/// Reads, decompresses and checks chunk `id` into a buffer of its own.
fn decode(archive: &Archive, id: u64) -> Decoded {
    READER.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_none() {
            *r = Some(ChunkReader::new().map_err(|e| e.to_string())?);
        }
        let reader = r.as_mut().ok_or("no chunk reader")?;
        archive.take_chunk(id, reader).map(Arc::new)
    })
}

/// Entry `entry` if it is a file, or the file a hard link names; with its number.
fn file_entry(archive: &Archive, entry: usize) -> Result<(usize, &Entry)> {
    let e = archive
        .data_entries()
        .get(entry)
        .ok_or_else(|| Error::Invalid(format!("entry {entry} does not exist")))?;
    let (file, e) = match (e.kind, &e.link_target) {
        (EntryKind::Hardlink, Some(target)) => archive
            .find(target)
            .and_then(|i| Some((i, archive.data_entries().get(i)?)))
            .ok_or_else(|| {
                let problem = format!("{}: hard link to a missing file", e.display_path());
                Error::corrupt(archive.path(), problem)
            })?,
        _ => (entry, e),
    };
    if e.kind != EntryKind::File {
        return Err(Error::Invalid(format!(
            "{}: is a {}, not a file",
            e.display_path(),
            e.kind.name()
        )));
    }
    Ok((file, e))
}

/// The chunk holding byte `pos` of the run of chunks `first..=last`, and where in it.
/// A file over several chunks has them all of one length (checked when the archive
/// was opened), so this is a division, not a walk.
/// Whether chunk `id` (`len` bytes) may hold its part of file `e` (`loc`): the piece
/// of a split file at its place, or part of a file in one chunk
/// (`ChunkRecord::check_placed`). Checked on every read, before any byte is served.
fn placed(
    archive: &Archive,
    e: &Entry,
    loc: DataLocation,
    id: u64,
    len: usize,
) -> std::result::Result<(), String> {
    let chunks = archive.data_chunks();
    let get = |i: u64| usize::try_from(i).ok().and_then(|i| chunks.get(i));
    let (Some(first), Some(c)) = (get(loc.first_chunk), get(id)) else {
        return Err(format!("chunk {id}: short"));
    };
    if loc.first_chunk == loc.last_chunk {
        return c.check_placed(id, 0, false);
    }
    let at = (id - loc.first_chunk).saturating_mul(first.raw_len);
    let fills = len as u64 == first.raw_len.min(e.size.saturating_sub(at));
    c.check_placed(id, at, fills)
}

fn locate(archive: &Archive, first: u64, last: u64, pos: u64) -> Option<(u64, usize)> {
    let len = archive
        .data_chunks()
        .get(usize::try_from(first).ok()?)?
        .raw_len;
    let id = first.checked_add(pos / len.max(1))?;
    (id <= last).then_some((id, (pos % len.max(1)) as usize))
}
