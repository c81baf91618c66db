//! The I/O queue a pipeline thread submits reads and writes to, with two backends:
//! io_uring (fixed buffers, many requests in flight) and portable pread/pwrite.
//!
//! Both backends have the same contract: [`Queue::push`] queues an operation,
//! [`Queue::submit`] hands everything queued to the kernel (after which the file
//! descriptors used may be closed: the kernel holds its own reference), and
//! [`Queue::wait`] returns completions. Short transfers are reported as they are; the
//! caller finishes them. The portable backend performs each operation in `push`.

mod portable;
mod uring;

use crate::error::{Error, Result};
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// Which backend to use, as asked for by the user.
///
/// ```
/// use znippy_uring::{pack, IoMode, PackOptions};
/// let mode: IoMode = "portable".parse()?; // as `--io portable`
/// assert_eq!(mode, IoMode::Portable);
/// assert!("epoll".parse::<IoMode>().is_err());
/// # let tmp = std::env::temp_dir().join(format!("doc-iomode-{}", std::process::id()));
/// # std::fs::create_dir_all(tmp.join("src"))?;
/// # std::fs::write(tmp.join("src/a"), "a")?;
/// let opts = PackOptions { io: mode, ..PackOptions::default() };
/// let report = pack(&tmp.join("src"), &tmp.join("a.znippy"), &opts)?;
/// assert_eq!(report.backend.to_string(), "portable");
/// # std::fs::remove_dir_all(&tmp)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring where it can be set up, else portable (after one line saying why).
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// pread/pwrite only.
    Portable,
}

impl std::str::FromStr for IoMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "uring" | "io_uring" => Ok(IoMode::Uring),
            "portable" => Ok(IoMode::Portable),
            other => Err(Error::Invalid(format!(
                "unknown io backend {other:?} (expected auto, uring or portable)"
            ))),
        }
    }
}

/// Environment variable that forces a backend when the mode is `Auto`.
pub const IO_ENV: &str = "ZNIPPY_IO";
/// Test hook: `setup` or `register` makes io_uring set-up fail as it would where it is
/// disabled (EPERM) or where the memlock limit is too low (ENOMEM); `eio-after:N` makes
/// the N-th completion of every queue (either backend) report EIO, as a failing disk
/// would in the middle of a run; `eio-read-after:N` does so only in queues that read
/// (a pack's compressors: an input file that fails, the archive written fine).
pub const FAULT_ENV: &str = "ZNIPPY_IO_FAULT";

/// The backend a pipeline actually runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Backend {
    /// io_uring with registered buffers.
    #[serde(rename = "io_uring")]
    Uring,
    /// pread/pwrite.
    #[serde(rename = "portable")]
    Portable,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Uring => "io_uring",
            Backend::Portable => "portable",
        })
    }
}

/// An offset meaning "at the descriptor's current position, advancing it" (io_uring's
/// -1; write(2) on the portable backend): for streams, which have no offsets.
pub const CURRENT_POSITION: u64 = u64::MAX;

/// One I/O request. Buffers are raw pointers into ring memory that the caller keeps
/// alive and untouched until the request's completion is returned.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Read `len` bytes at `offset` of `fd` into `buf` (registered buffer `fixed`).
    Read {
        /// File to read.
        fd: RawFd,
        /// Destination inside registered buffer `fixed`.
        buf: *mut u8,
        /// Bytes to read.
        len: u32,
        /// File offset.
        offset: u64,
        /// Index of the registered buffer holding `buf`.
        fixed: u16,
    },
    /// Write `len` bytes from `buf` (registered buffer `fixed`) at `offset` of `fd`.
    Write {
        /// File to write.
        fd: RawFd,
        /// Source inside registered buffer `fixed`.
        buf: *const u8,
        /// Bytes to write.
        len: u32,
        /// File offset, or [`CURRENT_POSITION`].
        offset: u64,
        /// Index of the registered buffer holding `buf`.
        fixed: u16,
    },
    /// Close `fd`, which the queue now owns. A read queued before it, in the same or
    /// an earlier submission, holds its own reference to the file and still completes.
    Close {
        /// Descriptor to close.
        fd: RawFd,
    },
}

/// A finished request: its `user_data` and the byte count or `-errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The tag given to [`Queue::push`].
    pub user_data: u64,
    /// Bytes transferred, or a negated errno.
    pub result: i32,
}

/// The tag of every [`Queue::close`] completion (no read or write uses it).
pub const CLOSE_TAG: u64 = u64::MAX;

impl Completion {
    /// Whether this is the completion of a [`Queue::close`].
    pub fn is_close(&self) -> bool {
        self.user_data == CLOSE_TAG
    }
}

/// The backend half of a [`Queue`].
enum Backing {
    /// io_uring ring with this thread's registered buffers.
    Uring(Box<uring::UringQueue>),
    /// Synchronous pread/pwrite.
    Portable(portable::PortableQueue),
}

/// A per-thread I/O queue.
pub struct Queue {
    backing: Backing,
    /// Test hook ([`FAULT_ENV`] `eio-after:N`): the N-th completion reports EIO.
    fail_at: Option<u64>,
    /// With `eio-read-after:N`: only once a read has been queued.
    fail_reads_only: bool,
    /// A read has been queued.
    reads: bool,
    completed: u64,
}

impl Queue {
    fn new(backing: Backing) -> Queue {
        let fault = std::env::var(FAULT_ENV).unwrap_or_default();
        let (fail_reads_only, count) = match fault.strip_prefix("eio-read-after:") {
            Some(n) => (true, Some(n)),
            None => (false, fault.strip_prefix("eio-after:")),
        };
        Queue {
            backing,
            fail_at: count.and_then(|n| n.parse().ok()),
            fail_reads_only,
            reads: false,
            completed: 0,
        }
    }

    /// Queues `op` tagged `user_data`.
    ///
    /// # Safety
    /// The op's buffer must stay valid, and not be otherwise accessed, until its
    /// completion has been returned by [`Queue::wait`]; its fd must stay open until
    /// [`Queue::submit`] returns.
    pub unsafe fn push(&mut self, op: Op, user_data: u64) -> io::Result<()> {
        self.reads |= matches!(op, Op::Read { .. });
        match &mut self.backing {
            // SAFETY: forwarded contract.
            Backing::Uring(q) => unsafe { q.push(op, user_data) },
            // SAFETY: forwarded contract.
            Backing::Portable(q) => unsafe { q.push(op, user_data) },
        }
    }

    /// Queues the close of `fd`, tagged [`CLOSE_TAG`]: reads queued before it still
    /// complete (each holds its own reference to the file), and no system call is
    /// made for it outside the ring. Its completion comes back from [`Queue::wait`].
    pub fn close(&mut self, fd: OwnedFd) -> io::Result<()> {
        let raw = fd.into_raw_fd();
        // SAFETY: a close has no buffer; the queue owns `raw` from here on.
        let queued = unsafe { self.push(Op::Close { fd: raw }, CLOSE_TAG) };
        if queued.is_err() {
            // Not queued: it is still ours to close.
            // SAFETY: `raw` came from an OwnedFd and nothing else closed it.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        queued
    }

    /// Hands every queued operation to the kernel.
    pub fn submit(&mut self) -> io::Result<()> {
        match &mut self.backing {
            Backing::Uring(q) => q.submit(),
            Backing::Portable(_) => Ok(()),
        }
    }

    /// Appends finished operations to `out`, waiting for at least `min` of them.
    pub fn wait(&mut self, min: usize, out: &mut Vec<Completion>) -> io::Result<()> {
        let start = out.len();
        match &mut self.backing {
            Backing::Uring(q) => q.wait(min, out)?,
            Backing::Portable(q) => q.drain(out),
        }
        if let Some(n) = self.fail_at.filter(|_| self.reads || !self.fail_reads_only) {
            for c in out.iter_mut().skip(start).filter(|c| !c.is_close()) {
                self.completed += 1;
                if self.completed == n {
                    c.result = -libc::EIO;
                }
            }
        }
        Ok(())
    }
}

/// The queues of one pipeline, all on the same backend.
pub struct Queues {
    /// One queue per entry of the `buffers` argument, in order.
    pub queues: Vec<Queue>,
    /// The backend they run on.
    pub backend: Backend,
    /// Why `Auto` fell back to the portable backend, if it did.
    pub fallback: Option<String>,
}

/// Sets up one queue per element of `buffers` (each the list of buffers to register
/// with that queue). `Auto` falls back to portable queues if any io_uring step fails.
pub fn open(mode: IoMode, buffers: &[Vec<libc::iovec>], entries: u32) -> Result<Queues> {
    let mode = match (mode, std::env::var(IO_ENV)) {
        (IoMode::Auto, Ok(v)) if !v.is_empty() => v.parse()?,
        (mode, _) => mode,
    };
    let portable = |fallback| Queues {
        queues: buffers
            .iter()
            .map(|_| Queue::new(Backing::Portable(portable::PortableQueue::default())))
            .collect(),
        backend: Backend::Portable,
        fallback,
    };
    let registered: usize = buffers.iter().map(Vec::len).sum();
    if mode == IoMode::Portable {
        log::info!("io backend: portable pread/pwrite (asked for: --io portable or {IO_ENV})");
        return Ok(portable(None));
    }
    let uring: io::Result<Vec<Queue>> = buffers
        .iter()
        .map(|bufs| {
            uring::UringQueue::new(entries, bufs).map(|q| Queue::new(Backing::Uring(Box::new(q))))
        })
        .collect();
    match (uring, mode) {
        (Ok(queues), _) => {
            log::info!(
                "io backend: io_uring, {} queues of {entries} entries, {registered} fixed buffers registered",
                buffers.len()
            );
            Ok(Queues {
                queues,
                backend: Backend::Uring,
                fallback: None,
            })
        }
        (Err(e), IoMode::Uring) => Err(Error::UringUnavailable(e.to_string())),
        (Err(e), _) => Ok(portable(Some(format!(
            "io_uring unavailable ({e}); using the portable pread/pwrite backend"
        )))),
    }
}
