//! The pack root: the directory everything is read beneath, opening and reading its
//! files confined beneath it, and the names of what lies under it, for messages.

use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The full path of an entry under `root`, for messages.
pub fn full_path(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// The pack root, for opening files relative to it.
pub struct Root {
    /// Directory descriptor of the root.
    pub fd: OwnedFd,
    /// Its path, for messages.
    pub path: PathBuf,
}

impl Root {
    /// Opens the directory at `path`.
    pub fn open(path: &Path) -> Result<Root> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty())
            .map_err(|e| Error::io(path, "open directory", e.into()))?;
        Ok(Root {
            fd,
            path: path.into(),
        })
    }

    /// Opens the regular file the walk found at `rel` for reading. It is opened
    /// beneath the root without following a symlink at any component (a directory
    /// swapped for a symlink since the walk is not followed), without blocking (a FIFO
    /// swapped in since the walk would wait for a writer forever), and checked to be a
    /// regular file still. `blocking` then clears `O_NONBLOCK` (one more system call).
    /// A regular file is read the same either way, by `pread` and, where the file
    /// system can queue a read without blocking (ext4, xfs, btrfs, tmpfs, FUSE on
    /// Linux 6), by io_uring; where it cannot, io_uring answers `EAGAIN`, and the
    /// compressor reads through a blocking descriptor from then on.
    pub fn open_file(&self, rel: &Path, blocking: bool) -> std::result::Result<OwnedFd, OpenError> {
        use rustix::fs::{FileType, Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let rel = std::os::unix::ffi::OsStrExt::as_bytes(rel.as_os_str());
        let fd = match crate::resolve::beneath(&self.fd, rel, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                return Err(match e.raw_os_error() {
                    Some(libc::ENOENT) => OpenError::Gone("vanished"),
                    Some(libc::ELOOP | libc::EXDEV) => {
                        OpenError::Gone("replaced by a symlink, or a directory above it was")
                    }
                    Some(libc::ENOTDIR) => OpenError::Gone("a directory above it was replaced"),
                    _ => OpenError::Os(e),
                });
            }
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| OpenError::Os(e.into()))?;
        let gone = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => None,
            FileType::Directory => Some("replaced by a directory"),
            FileType::Fifo => Some("replaced by a FIFO"),
            FileType::CharacterDevice => Some("replaced by a character device"),
            FileType::BlockDevice => Some("replaced by a block device"),
            _ => Some("replaced by something that is not a regular file"),
        };
        if let Some(why) = gone {
            return Err(OpenError::Gone(why));
        }
        if blocking {
            // fcntl's F_SETFL sets only the status flags: none but O_NONBLOCK were asked for.
            (rustix::fs::fcntl_setfl(&fd, OFlags::empty())).map_err(|e| OpenError::Os(e.into()))?;
        }
        Ok(fd)
    }
}

/// Why [`Root::open_file`] gave no file.
#[derive(Debug)]
pub enum OpenError {
    /// The file the walk found is not there any more: what happened instead.
    Gone(&'static str),
    /// The operating system refused or failed the open.
    Os(std::io::Error),
}

impl OpenError {
    /// As an error of the pack, for the file at `path`.
    pub fn into_error(self, path: PathBuf) -> Error {
        match self {
            OpenError::Gone(why) => Error::Input {
                path,
                problem: format!("{why} while being packed"),
            },
            OpenError::Os(e) => Error::io(&path, "open", e),
        }
    }
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns how
/// many bytes were read.
pub fn read_at_most(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match rustix::io::pread(fd, rest, offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_exact_at(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    match read_at_most(fd, buf, offset)? == buf.len() {
        true => Ok(()),
        false => Err(std::io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Most files a compressor opens before it submits their reads and closes.
const OPEN_BATCH: usize = 32;

/// Descriptors kept for the rest of a pack, beside those open when it is counted: the
/// archive's temporary file, the output directory, the index.
const OTHER_DESCRIPTORS: u64 = 8;

/// Descriptors a pack thread holds at most beside its open files: a compressor's ring,
/// a lister's directory and the two an `O_NOFOLLOW` walk of a path holds at a time.
const PER_THREAD: u64 = 4;

/// How many files each of `compressors` may hold open at once: [`OPEN_BATCH`], or fewer
/// where the descriptor limit would not hold that many for all of them beside the rest
/// of the pack (at least 1). Counted once the rings are open.
pub fn open_batch(compressors: usize) -> usize {
    let listers = compressors.min(8) as u64;
    let spare = spare_descriptors().saturating_sub(listers * PER_THREAD);
    let each = spare / (compressors.max(1) as u64);
    usize::try_from(each)
        .unwrap_or(OPEN_BATCH)
        .clamp(1, OPEN_BATCH)
}

/// The threads, of `threads` asked for, that the descriptor limit holds (at least 1),
/// each with [`PER_THREAD`] descriptors and one file open; logged when fewer run. A
/// limit too small even for one thread ends the pack with "Too many open files",
/// naming the file or directory.
pub fn threads_within_descriptors(threads: usize) -> usize {
    let fit = spare_descriptors() / (PER_THREAD + 1);
    let run = threads.clamp(1, usize::try_from(fit).unwrap_or(usize::MAX).max(1));
    if run < threads {
        log::info!("pack: the descriptor limit (ulimit -n) runs {run} threads, not {threads}");
    }
    run
}

/// Descriptors not open now, less [`OTHER_DESCRIPTORS`], under the limit: its soft
/// value is first raised to the hard one, as the memory-lock limit is for io_uring.
fn spare_descriptors() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    let limit = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return u64::MAX;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        lim.rlim_cur
    };
    let in_use = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count() as u64);
    limit.saturating_sub(in_use + OTHER_DESCRIPTORS)
}
