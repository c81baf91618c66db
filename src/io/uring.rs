//! The io_uring backend: one ring per thread, its ring slots registered as fixed
//! buffers, READ_FIXED / WRITE_FIXED requests, many in flight.

use super::{Completion, FAULT_ENV, Op};
use io_uring::{IoUring, opcode, types};
use std::io;

/// One io_uring instance and the completions reaped while submitting.
pub struct UringQueue {
    ring: IoUring,
    /// Completions reaped while the submission queue was busy.
    backlog: Vec<Completion>,
}

impl UringQueue {
    /// Sets up a ring of `entries` and registers `buffers` as its fixed buffers.
    pub fn new(entries: u32, buffers: &[libc::iovec]) -> io::Result<Self> {
        let fault = std::env::var(FAULT_ENV).unwrap_or_default();
        if fault == "setup" {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .setup_submit_all()
            .setup_cqsize(entries * 4)
            .build(entries)
            .or_else(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => IoUring::new(entries),
                _ => Err(e),
            })?;
        if fault == "register" {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        if !buffers.is_empty() {
            raise_memlock_limit();
            // SAFETY: the buffers are ring memory owned by the pipeline, which outlives
            // every queue (the pipeline joins its threads before freeing the rings).
            unsafe { ring.submitter().register_buffers(buffers) }
                .map_err(|e| io::Error::new(e.kind(), format!("registering buffers: {e}")))?;
        }
        Ok(UringQueue {
            ring,
            backlog: Vec::new(),
        })
    }

    /// Queues `op`, submitting first if the submission queue is full.
    ///
    /// # Safety
    /// See [`super::Queue::push`].
    pub unsafe fn push(&mut self, op: Op, user_data: u64) -> io::Result<()> {
        let sqe = match op {
            Op::Read {
                fd,
                buf,
                len,
                offset,
                fixed,
            } => opcode::ReadFixed::new(types::Fd(fd), buf, len, fixed)
                .offset(offset)
                .build(),
            Op::Write {
                fd,
                buf,
                len,
                offset,
                fixed,
            } => opcode::WriteFixed::new(types::Fd(fd), buf, len, fixed)
                .offset(offset)
                .build(),
            Op::Close { fd } => opcode::Close::new(types::Fd(fd)).build(),
        }
        .user_data(user_data);
        loop {
            // SAFETY: the caller keeps the buffer alive until completion.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return Ok(());
            }
            self.submit()?;
        }
    }

    /// Submits until the submission queue is empty.
    pub fn submit(&mut self) -> io::Result<()> {
        while !self.ring.submission().is_empty() {
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {
                    // The completion queue is full: make room, waiting for one if none.
                    let before = self.backlog.len();
                    self.reap();
                    if self.backlog.len() == before {
                        self.enter_wait(1)?;
                        self.reap();
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Appends completions to `out`, waiting until at least `min` are available.
    pub fn wait(&mut self, min: usize, out: &mut Vec<Completion>) -> io::Result<()> {
        self.submit()?;
        self.reap();
        while self.backlog.len() < min {
            self.enter_wait(min - self.backlog.len())?;
            self.reap();
        }
        out.append(&mut self.backlog);
        Ok(())
    }

    fn enter_wait(&mut self, want: usize) -> io::Result<()> {
        match self.ring.submit_and_wait(want) {
            Err(e) if e.raw_os_error() != Some(libc::EINTR) => Err(e),
            _ => Ok(()),
        }
    }

    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            self.backlog.push(Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
            });
        }
    }
}

/// Raises the soft RLIMIT_MEMLOCK to the hard limit: registered buffers are charged
/// to it on kernels without CAP_IPC_LOCK for the caller.
fn raise_memlock_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
        }
    }
}
