//! The portable backend: each operation is a pread/pwrite (or a write at the current
//! position) done at once.

use super::{Completion, Op};
use std::collections::VecDeque;
use std::io;

/// Completions of operations already performed.
#[derive(Default)]
pub struct PortableQueue {
    done: VecDeque<Completion>,
}

impl PortableQueue {
    /// Performs `op` now and records its completion.
    ///
    /// # Safety
    /// The op's buffer must be valid for its length.
    pub unsafe fn push(&mut self, op: Op, user_data: u64) -> io::Result<()> {
        let result = loop {
            // SAFETY: the caller guarantees the buffer is valid for `len` bytes.
            let r = unsafe {
                match op {
                    Op::Read {
                        fd,
                        buf,
                        len,
                        offset,
                        ..
                    } => libc::pread(fd, buf.cast(), len as usize, offset as libc::off_t),
                    Op::Write {
                        fd,
                        buf,
                        len,
                        offset,
                        ..
                    } if offset == super::CURRENT_POSITION => {
                        libc::write(fd, buf.cast(), len as usize)
                    }
                    Op::Write {
                        fd,
                        buf,
                        len,
                        offset,
                        ..
                    } => libc::pwrite(fd, buf.cast(), len as usize, offset as libc::off_t),
                    // Not retried on EINTR: Linux has released the descriptor already.
                    Op::Close { fd } => return self.closed(user_data, libc::close(fd)),
                }
            };
            if r >= 0 {
                break r as i32;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                break -err.raw_os_error().unwrap_or(libc::EIO);
            }
        };
        self.done.push_back(Completion { user_data, result });
        Ok(())
    }

    /// Records the completion of a close that returned `r`.
    fn closed(&mut self, user_data: u64, r: libc::c_int) -> io::Result<()> {
        let result = match r {
            0 => 0,
            _ => -io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        };
        self.done.push_back(Completion { user_data, result });
        Ok(())
    }

    /// Moves every recorded completion to `out`.
    pub fn drain(&mut self, out: &mut Vec<Completion>) {
        out.extend(self.done.drain(..));
    }
}
