//! Read-ahead of whole small files into the kernel's page cache, for readers that go
//! through the tree in archive order (`tar`, `cp -r`, `rsync`, `grep -r`).
//!
//! Through FUSE every file a reader opens costs at least one read request, a round
//! trip to this process, however small the file. When reads arrive file after file in
//! archive order, the pusher thread decodes the next files (from chunks the cache
//! holds or the prefetch has decoded) and stores their bytes into the kernel's cache
//! with a FUSE_NOTIFY_STORE message; the reader then finds them there and sends no
//! request at all. It runs on a thread of its own, never on one that must answer the
//! kernel, since the kernel may hold a page of the same file locked until a reply.

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use fuser::{INodeNo, Notifier};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use znippy_uring::{ChunkCache, EntryKind};

/// How far ahead of the reader files are pushed, in bytes of file data.
const AHEAD_BYTES: u64 = 8 << 20;
/// Files larger than this are left to ordinary (large) read requests.
const MAX_FILE: u64 = 1 << 20;

/// The reader's position and the pusher thread's channel.
pub struct Ahead {
    /// The last entry read from its start, by any reader.
    last: AtomicUsize,
    tx: Sender<usize>,
    /// Set once the session runs (the notifier comes from it).
    pub notifier: Arc<OnceLock<Notifier>>,
}

impl Ahead {
    /// Starts the pusher thread over `cache`'s archive; `ino_of` gives an entry's
    /// inode.
    pub fn start(cache: Arc<ChunkCache>, ino_of: fn(usize) -> u64) -> Ahead {
        let (tx, rx) = bounded::<usize>(1);
        let notifier = Arc::new(OnceLock::new());
        let shared = notifier.clone();
        let spawned = std::thread::Builder::new()
            .name("znippy-ahead".into())
            .spawn(move || push(&rx, &cache, &shared, ino_of));
        if let Err(e) = spawned {
            log::info!("mount: no read-ahead thread: {e}");
        }
        Ahead {
            last: AtomicUsize::new(usize::MAX),
            tx,
            notifier,
        }
    }

    /// Notes that entry `entry` was read from its start; when that follows the
    /// previous such read closely in archive order, the files after it are pushed.
    pub fn read_from_start(&self, entry: usize) {
        let previous = self.last.swap(entry, Ordering::Relaxed);
        let sequential = entry > previous && entry - previous <= 16;
        if sequential && let Err(TrySendError::Disconnected(_)) = self.tx.try_send(entry) {
            log::debug!("mount: read-ahead thread gone");
        }
    }
}

/// The pusher: for each position it is told of, stores the files after it (up to
/// [`AHEAD_BYTES`]) that it has not stored yet.
fn push(
    rx: &Receiver<usize>,
    cache: &ChunkCache,
    notifier: &OnceLock<Notifier>,
    ino_of: fn(usize) -> u64,
) {
    let entries = cache.archive().entries();
    let mut done = 0usize; // entries before this one were pushed (or skipped)
    let mut buf = Vec::new();
    for from in rx {
        let Some(notifier) = notifier.get() else {
            continue;
        };
        // Far behind what was pushed (a reader starting over): from the reader again.
        let mut i = if from + 1 > done || from + 1 + 4096 < done {
            from + 1
        } else {
            done
        };
        let mut bytes = 0u64;
        while bytes < AHEAD_BYTES && i < entries.len() {
            let Some(e) = entries.get(i) else { break };
            if e.kind == EntryKind::File && e.size > 0 && e.size <= MAX_FILE {
                buf.resize(e.size as usize, 0);
                if cache.read_at(i, 0, &mut buf).is_ok_and(|n| n == buf.len()) {
                    // An inode the kernel has not seen yet is refused: harmless.
                    let _ = notifier.store(INodeNo(ino_of(i)), 0, &buf);
                }
                bytes += e.size;
            }
            i += 1;
        }
        done = i;
    }
}
