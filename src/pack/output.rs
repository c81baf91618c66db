//! The archive being written. To a path: a temporary file beside the target, flushed
//! to stable storage and renamed into place only when complete (then the directory is
//! flushed too), and removed if dropped before that. To a stream (a pipe, standard
//! output): written strictly in order, header to footer; what has been written stays
//! if the pack fails, and readers refuse it (it has no footer).
//!
//! A pack killed outright (SIGKILL, a crash) leaves its temporary file behind, named
//! `.TARGET.tmp-znippy-PID-N`. The next pack to the same target removes those whose
//! process is gone and whose content starts like an archive (or is empty), and says so.

use crate::error::{Error, Result};
use crate::format::header;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a pack writes its archive.
#[derive(Debug)]
pub enum Destination {
    /// A path. A regular file (or none yet) is written beside it under a temporary
    /// name and renamed into place when complete, so a failed pack leaves nothing and
    /// an existing archive is replaced atomically. A symlink is followed (its target
    /// is replaced, the link stays). A character device (`/dev/null`), a FIFO or a
    /// Unix socket is written as a stream, never replaced. A directory or a block
    /// device is refused.
    Path(PathBuf),
    /// An open stream, such as a pipe or standard output: written in order, one write
    /// at a time. If the pack fails, what was written stays (readers refuse it).
    Stream(File),
}

/// A [`Destination`] once its path is looked at.
pub(crate) enum Resolved {
    /// A regular file, or nothing yet, at this path (symlinks followed): written under
    /// a temporary name and renamed.
    File(PathBuf),
    /// A stream, and its name for messages.
    Stream(File, PathBuf),
}

/// Fails if `dest` would replace or write over an archive of `lineage`: the same
/// file (by device and inode, for a stream too), or for a path, a copy of one (by
/// manifest digest). `why` says what the written file is to those archives.
pub(crate) fn refuse_overwrite(
    dest: &Resolved,
    lineage: &crate::read::Lineage,
    why: &str,
) -> Result<()> {
    let same = |m: &fs::Metadata| m.is_file() && lineage.inodes.contains(&(m.dev(), m.ino()));
    let refuse = |path: &Path, what: String| {
        Err(Error::Input {
            path: path.to_path_buf(),
            problem: format!("is {what}; it cannot be replaced by {why}"),
        })
    };
    match dest {
        Resolved::File(target) => {
            let Ok(meta) = fs::metadata(target) else {
                return Ok(()); // nothing there yet
            };
            if same(&meta) {
                return refuse(target, "an archive it needs".into());
            }
            if meta.is_file()
                && let Ok(existing) = crate::read::Archive::open_index(target)
                && lineage.digests.contains(&existing.manifest_digest())
            {
                return refuse(
                    target,
                    format!("a copy of archive {}, which it needs", existing.id()),
                );
            }
        }
        Resolved::Stream(file, name) => {
            if file.metadata().is_ok_and(|m| same(&m)) {
                return refuse(name, "an archive it needs (as the output stream)".into());
            }
        }
    }
    Ok(())
}

/// Refuses to follow the symlink at `path` (lstat `meta`) where the kernel's
/// `fs.protected_symlinks` rule would: in a sticky, world-writable directory (/tmp, a
/// shared spool), a symlink owned by neither us nor the directory's owner. Another user
/// who plants one there under the archive's name would otherwise have root replace the
/// file it names. Resolving links ourselves must not lose that protection.
fn refuse_planted_symlink(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir_meta = fs::metadata(dir).map_err(|e| Error::io(dir, "stat", e))?;
    let shared = dir_meta.mode() & 0o1002 == 0o1002;
    let euid = rustix::process::geteuid().as_raw();
    if shared && meta.uid() != euid && meta.uid() != dir_meta.uid() {
        return Err(Error::Input {
            path: path.into(),
            problem: format!(
                "a symlink of another user (uid {}) in a sticky, world-writable directory: \
                 not followed (the kernel's protected_symlinks rule); an archive cannot be \
                 written there",
                meta.uid()
            ),
        });
    }
    Ok(())
}

/// Refuses a path whose directories the kernel would reach through a symlink that
/// [`refuse_planted_symlink`] refuses: the directories above `path` are resolved one
/// component at a time, as the kernel resolves them, each symlink met checked before
/// it is followed (`st/sub/out.znippy`, with `sub` another user's symlink in the
/// sticky `st`, must not lead root into a directory of that user's choosing).
fn refuse_planted_above(path: &Path) -> Result<()> {
    use std::collections::VecDeque;
    use std::path::Component;
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let parent = if parent.is_absolute() {
        parent.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", "getcwd", e))?;
        cwd.join(parent)
    };
    let owned = |c: Component| c.as_os_str().to_os_string();
    let mut todo: VecDeque<std::ffi::OsString> = parent.components().map(owned).collect();
    let mut at = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match Path::new(&part).components().next() {
            Some(Component::RootDir) => at = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                at.pop();
            }
            Some(Component::Normal(_)) => {
                let next = at.join(&part);
                let Ok(meta) = fs::symlink_metadata(&next) else {
                    return Ok(()); // missing: the write says so, naming the path
                };
                if !meta.file_type().is_symlink() {
                    at = next;
                    continue;
                }
                refuse_planted_symlink(&next, &meta)?;
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(Error::Input {
                        path: path.into(),
                        problem: format!("more than {MAX_SYMLINKS} symlinks to follow"),
                    });
                }
                let link = fs::read_link(&next).map_err(|e| Error::io(&next, "readlink", e))?;
                for c in link.components().rev() {
                    todo.push_front(owned(c));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Hops through symlinks before giving up, as the kernel does (ELOOP).
const MAX_SYMLINKS: usize = 40;

/// What `dest` is: for a path, the regular file (existing or not) at the end of its
/// symlinks, or a stream for a device, FIFO or socket.
pub(crate) fn resolve(dest: Destination) -> Result<Resolved> {
    let given = match dest {
        Destination::Path(p) => p,
        Destination::Stream(f) => return Ok(Resolved::Stream(f, "<archive stream>".into())),
    };
    let mut path = given.clone();
    for _ in 0..MAX_SYMLINKS {
        refuse_planted_above(&path)?;
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Resolved::File(path));
            }
            Err(e) => return Err(Error::io(&path, "stat", e)),
        };
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        let not = |what: &str| {
            Err(Error::Input {
                path: given.clone(),
                problem: format!("{what}; an archive cannot be written there"),
            })
        };
        if kind.is_symlink() {
            refuse_planted_symlink(&path, &meta)?;
            let link = fs::read_link(&path).map_err(|e| Error::io(&path, "readlink", e))?;
            path = match path.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            };
        } else if kind.is_file() {
            return Ok(Resolved::File(path));
        } else if kind.is_dir() {
            return not("is a directory");
        } else if kind.is_block_device() {
            return not("is a block device (write to it with -o - > DEVICE if that is meant)");
        } else if kind.is_socket() {
            let stream = std::os::unix::net::UnixStream::connect(&path)
                .map_err(|e| Error::io(&path, "connect", e))?;
            let file = File::from(std::os::fd::OwnedFd::from(stream));
            return Ok(Resolved::Stream(file, given));
        } else {
            // A character device or a FIFO: written in place, as a stream (a FIFO's
            // open waits for its reader, as with tar).
            let file = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| Error::io(&path, "open", e))?;
            return Ok(Resolved::Stream(file, given));
        }
    }
    Err(Error::Input {
        path: given,
        problem: format!("more than {MAX_SYMLINKS} symlinks to follow"),
    })
}

impl From<&Path> for Destination {
    fn from(p: &Path) -> Self {
        Destination::Path(p.into())
    }
}

/// The archive file being written.
pub struct Output {
    /// The open file (temporary file or stream).
    pub file: Arc<File>,
    kind: Kind,
    /// Flush to stable storage when committing.
    sync: bool,
}

/// What temporary file names carry after the target's name: `.NAME` + this + `PID-N`.
const TMP_MARK: &str = ".tmp-znippy-";

/// Numbers the temporary files of this process (one pack per target at a time, but a
/// program may pack to the same target twice).
static TMP_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

enum Kind {
    Temporary {
        /// Removes the file if the process is interrupted (see `interrupt`).
        _registration: super::interrupt::Registration,
        tmp: PathBuf,
        target: PathBuf,
        committed: bool,
    },
    Stream {
        name: PathBuf,
    },
}

impl Output {
    /// Opens `dest` and writes the header (with `flags`); `sync` makes
    /// [`Output::commit`] flush.
    pub fn open(dest: Destination, sync: bool, flags: u32) -> Result<Output> {
        Output::open_resolved(resolve(dest)?, sync, flags)
    }

    /// [`Output::open`] of a destination already resolved.
    pub(crate) fn open_resolved(dest: Resolved, sync: bool, flags: u32) -> Result<Output> {
        let out = Output::open_plain(dest, sync)?;
        out.write_at(&header::encode(flags), 0)?;
        Ok(out)
    }

    /// Opens `dest` for a file that is not an archive (an exported table): replaced or
    /// streamed by the same rules, with nothing written yet.
    pub(crate) fn open_plain(dest: Resolved, sync: bool) -> Result<Output> {
        Ok(match dest {
            Resolved::File(target) => Output::create(&target, sync)?,
            Resolved::Stream(file, name) => Output {
                file: Arc::new(file),
                kind: Kind::Stream { name },
                sync,
            },
        })
    }

    /// Creates the temporary file beside `target`, first removing those that killed
    /// packs to the same target left.
    fn create(target: &Path, sync: bool) -> Result<Output> {
        let name = target
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a file name", target.display())))?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if fs::metadata(target).is_ok_and(|m| m.is_dir()) {
            return Err(Error::Input {
                path: target.into(),
                problem: "is a directory".into(),
            });
        }
        remove_leftovers(&dir, name);
        let (tmp, file) = loop {
            let serial = TMP_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!("{TMP_MARK}{}-{serial}", std::process::id()));
            let tmp = dir.join(tmp_name);
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp);
            match opened {
                Ok(file) => {
                    // Held while the file lives: how another pack, in another PID
                    // namespace or on another host of a shared file system, tells it
                    // is in use (see `remove_leftovers`).
                    let _ = rustix::fs::flock(
                        &file,
                        rustix::fs::FlockOperation::NonBlockingLockExclusive,
                    );
                    break (tmp, file);
                }
                // Left by a killed process that had our number: take the next one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(target, "create", e)),
            }
        };
        Ok(Output {
            file: Arc::new(file),
            kind: Kind::Temporary {
                _registration: super::interrupt::register(&tmp),
                tmp,
                target: target.into(),
                committed: false,
            },
            sync,
        })
    }

    /// (device, inode) of the file written, so a walk can leave it out.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.file.metadata().ok().map(|m| (m.dev(), m.ino()))
    }

    /// Whether writes must come in order, one at a time (a stream), rather than at
    /// their offsets.
    pub fn sequential(&self) -> bool {
        matches!(self.kind, Kind::Stream { .. })
    }

    /// The archive being written, for messages: the target, not its temporary name.
    pub fn path(&self) -> &Path {
        match &self.kind {
            Kind::Temporary { target, .. } => target,
            Kind::Stream { name } => name,
        }
    }

    /// Writes `bytes` at `offset`. On a stream, `offset` must be where the last write
    /// ended (the archive is laid out in order, so callers always know it).
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        (self.write_raw(bytes, offset)).map_err(|e| Error::io(self.path(), "write", e))
    }

    fn write_raw(&self, bytes: &[u8], offset: u64) -> std::io::Result<()> {
        match self.kind {
            Kind::Temporary { .. } => self.file.write_all_at(bytes, offset),
            Kind::Stream { .. } => (&*self.file).write_all(bytes),
        }
    }

    /// Writes the tail (index and footer) at `offset`; a file is trimmed there,
    /// flushed, and renamed to the target, and its directory flushed. Returns the
    /// archive's length.
    pub fn commit(mut self, tail: &[u8], offset: u64) -> Result<u64> {
        self.write_at(tail, offset)?;
        let len = offset + tail.len() as u64;
        let sync = self.sync;
        match &mut self.kind {
            Kind::Temporary {
                tmp,
                target,
                committed,
                ..
            } => {
                (self.file.set_len(len)).map_err(|e| Error::io(target.as_path(), "truncate", e))?;
                // The data reaches the disk before the name does: a crash leaves the old
                // archive or the new one under the target's name, never a partial file.
                if sync {
                    (self.file.sync_data())
                        .map_err(|e| Error::io(target.as_path(), "fdatasync", e))?;
                }
                fs::rename(tmp, &target).map_err(|e| Error::io(target.as_path(), "rename", e))?;
                *committed = true;
                if sync {
                    sync_directory_of(target)?;
                }
            }
            Kind::Stream { name } => {
                // A stream that is a file (`-o - > a.znippy`) is flushed too; a pipe's
                // reader owns durability.
                let is_file = self.file.metadata().is_ok_and(|m| m.is_file());
                if sync && is_file {
                    (self.file.sync_data())
                        .map_err(|e| Error::io(name.as_path(), "fdatasync", e))?;
                }
            }
        }
        Ok(len)
    }
}

/// An [`Output`] as a [`Write`], from offset 0 on: for files that are not archives.
pub(crate) struct Writer<'a> {
    out: &'a Output,
    /// Bytes written so far.
    pub offset: u64,
}

impl<'a> Writer<'a> {
    /// Writes `out` from its start.
    pub fn new(out: &'a Output) -> Self {
        Writer { out, offset: 0 }
    }
}

impl Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write_raw(buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Kind::Temporary {
            tmp,
            committed: false,
            ..
        } = &self.kind
        {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Flushes the directory holding `path`, so that a rename into it is on disk.
fn sync_directory_of(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "fsync directory", e))
}

/// Removes, from `dir`, the temporary files of packs to `name` whose process is gone
/// (killed before they could clean up) and whose lock nobody holds, when they hold
/// nothing but the start of an archive. Files of live packs (in this PID namespace or
/// any other, which their lock tells), and anything that is not ours, stay.
fn remove_leftovers(dir: &Path, name: &std::ffi::OsStr) {
    use std::os::unix::ffi::OsStrExt;
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name.as_bytes());
    prefix.extend_from_slice(TMP_MARK.as_bytes());
    let (Ok(listing), Ok(dirfd)) = (fs::read_dir(dir), File::open(dir)) else {
        return;
    };
    for entry in listing.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.as_bytes().strip_prefix(prefix.as_slice()) else {
            continue;
        };
        let pid = std::str::from_utf8(rest)
            .ok()
            .and_then(|r| r.split_once('-'))
            .and_then(|(pid, serial)| serial.parse::<u64>().ok().and(pid.parse::<i32>().ok()));
        let Some(pid) = pid.filter(|&p| p > 0 && p != std::process::id() as i32) else {
            continue;
        };
        if !is_leftover(&dirfd, &file_name, pid) {
            continue;
        }
        if rustix::fs::unlinkat(&dirfd, &file_name, rustix::fs::AtFlags::empty()).is_ok() {
            log::warn!(
                "removed {}, left by a pack (process {pid}) that was killed",
                entry.path().display()
            );
        }
    }
}

/// Whether `name` in `dir`, named like a temporary file of process `pid`, is one a
/// killed pack left: a regular file of ours (opened without following a symlink and
/// without blocking, so a FIFO or device put there by another user is never waited on
/// or read, and a symlink never followed), empty or starting like an archive, whose
/// lock is free, and whose process is gone, or which was not written for a while (a
/// pid of this namespace that lives may be another's: a container's pid 1).
fn is_leftover(dir: &File, name: &std::ffi::OsStr, pid: i32) -> bool {
    use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    let Ok(st) = rustix::fs::fstat(&fd) else {
        return false;
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || st.st_uid != rustix::process::geteuid().as_raw()
    {
        return false;
    }
    let file = File::from(fd);
    let stale = (file.metadata().ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER);
    let in_use = rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared).is_err();
    (stale || !process_alive(pid)) && !in_use && starts_like_an_archive(&file)
}

/// How long a temporary file whose lock is free must be untouched to count as left by
/// a killed pack although a process of its pid lives here (a pack writes its
/// temporary file at least once per chunk, and holds its lock throughout).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether `file` is empty or begins with an archive header's magic.
fn starts_like_an_archive(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; header::MAGIC.len()];
    match file.read_at(&mut head, 0) {
        Ok(0) => true,
        Ok(n) => n == head.len() && head == header::MAGIC,
        Err(_) => false,
    }
}
