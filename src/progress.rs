//! Progress counters: the library counts as it goes, and a caller (the command line's
//! progress bar) reads them from another thread whenever it likes. Relaxed atomics:
//! a reader sees values a moment old, never a torn one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a long operation has done so far. Hand one to [`crate::PackOptions`] or
/// [`crate::Archive::with_progress`] and read it from another thread.
///
/// ```
/// use std::sync::Arc;
/// use znippy_uring::{pack, PackOptions, Progress};
/// # let tmp = std::env::temp_dir().join(format!("doc-progress-counters-{}", std::process::id()));
/// # std::fs::create_dir_all(tmp.join("src"))?;
/// # std::fs::write(tmp.join("src/a.txt"), "a".repeat(10_000))?;
/// let progress = Arc::new(Progress::default());
/// let opts = PackOptions { progress: Some(progress.clone()), ..PackOptions::default() };
/// // A progress bar polls `progress.snapshot()` from its own thread meanwhile.
/// pack(&tmp.join("src"), &tmp.join("a.znippy"), &opts)?;
/// assert_eq!(progress.snapshot(), (10_000, 10_000, true, 1));
/// # std::fs::remove_dir_all(&tmp)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Progress {
    /// Entries found by the walk (pack).
    pub entries: AtomicU64,
    /// File bytes to process, as far as known: it grows during a pack's walk.
    pub total_bytes: AtomicU64,
    /// File bytes processed (read and written by pack; checked by verify; decoded by
    /// unpack).
    pub bytes: AtomicU64,
    /// Whether `total_bytes` is final.
    pub total_known: AtomicBool,
}

impl Progress {
    /// Counts `n` more bytes processed.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one more entry found, with `size` bytes to process.
    pub fn add_entry(&self, size: u64) {
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.total_bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// Sets the final total.
    pub fn set_total(&self, total: u64) {
        self.total_bytes.store(total, Ordering::Relaxed);
        self.total_is_final();
    }

    /// Marks the total counted so far as final.
    pub fn total_is_final(&self) {
        self.total_known.store(true, Ordering::Relaxed);
    }

    /// (bytes done, total bytes, whether the total is final, entries found).
    pub fn snapshot(&self) -> (u64, u64, bool, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
            self.total_known.load(Ordering::Relaxed),
            self.entries.load(Ordering::Relaxed),
        )
    }
}
