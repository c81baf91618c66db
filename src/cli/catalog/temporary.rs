//! A catalog file is written under a temporary name beside its target and renamed into
//! place when complete: `.ID.parquet.tmp-znippy-PID-N`, unique per process (PID) and
//! per file written (N), so two writers never share one.
//!
//! A catalog killed outright (SIGKILL, a crash) leaves its temporary files behind.
//! Before writing into a partition directory, a catalog removes the ones there whose
//! process is gone and whose content is empty or starts like Parquet, and says so.
//! Files of live catalogs, and anything not named like ours, stay.

use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What follows `.ID.parquet` in a temporary name, before `PID-N`.
const MARK: &str = ".parquet.tmp-znippy-";

/// The mark of catalogs before temporary names were numbered: `.ID.parquet.tmp-PID`.
const OLD_MARK: &str = ".parquet.tmp-";

/// The magic a Parquet file starts (and ends) with.
const PARQUET_MAGIC: &[u8] = b"PAR1";

/// Numbers this process's temporary files.
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// A temporary file, removed when dropped unless renamed into place.
pub struct Temporary {
    path: PathBuf,
    placed: bool,
}

impl Temporary {
    /// Creates a new temporary file for the catalog file of archive `id` in `dir`.
    pub fn create(dir: &Path, id: &str) -> Result<(Temporary, File)> {
        loop {
            let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{id}{MARK}{}-{serial}", std::process::id()));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path);
            match opened {
                Ok(file) => {
                    let temporary = Temporary {
                        path,
                        placed: false,
                    };
                    return Ok((temporary, file));
                }
                // Left by a killed process that had our number: take the next one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    let target = dir.join(format!("{id}.parquet"));
                    return Err(e).with_context(|| {
                        format!("{}: create its temporary file", target.display())
                    });
                }
            }
        }
    }

    /// Renames the file to `target`, replacing what is there.
    pub fn place(mut self, target: &Path) -> Result<()> {
        fs::rename(&self.path, target).with_context(|| {
            format!(
                "{}: rename {} onto it",
                target.display(),
                self.path.display()
            )
        })?;
        self.placed = true;
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Removes from `dir` the temporary files of catalogs that were killed (see the
/// module's documentation), with a warning for each.
pub fn remove_leftovers(dir: &Path) {
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let Some(pid) = leftover_pid(&entry.file_name()) else {
            continue;
        };
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !regular || process_alive(pid) || !starts_like_parquet(&entry.path()) {
            continue;
        }
        if fs::remove_file(entry.path()).is_ok() {
            eprintln!(
                "znippy-uring: warning: removed {}, left by a catalog (process {pid}) that was killed",
                entry.path().display()
            );
        }
    }
}

/// The process that wrote the temporary file named `name`, if the name is one of
/// ours (`.ID.parquet.tmp-znippy-PID-N`, or `.ID.parquet.tmp-PID` of older
/// versions) and not this process's.
fn leftover_pid(name: &OsStr) -> Option<i32> {
    let name = std::str::from_utf8(name.as_bytes()).ok()?;
    let rest = name.strip_prefix('.')?;
    let (id, rest) = rest.split_at_checked(32)?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let pid = if let Some(numbers) = rest.strip_prefix(MARK) {
        let (pid, serial) = numbers.split_once('-')?;
        digits(serial).then_some(pid)?
    } else {
        rest.strip_prefix(OLD_MARK)?
    };
    let pid: i32 = digits(pid).then(|| pid.parse().ok()).flatten()?;
    (pid > 0 && pid != std::process::id() as i32).then_some(pid)
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether the file at `path` is a regular file of ours, empty or beginning with
/// Parquet's magic. It is opened without following a symlink and without blocking (a
/// FIFO or device another user put there is never waited on or read).
fn starts_like_parquet(path: &Path) -> bool {
    use rustix::fs::{FileType, Mode, OFlags};
    use std::os::unix::fs::FileExt;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::open(path, flags, Mode::empty()) else {
        return false;
    };
    let ours = rustix::fs::fstat(&fd).is_ok_and(|st| {
        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_uid == rustix::process::geteuid().as_raw()
    });
    let mut head = [0u8; PARQUET_MAGIC.len()];
    ours && match File::from(fd).read_at(&mut head, 0) {
        Ok(0) => true,
        Ok(n) => n == head.len() && head == PARQUET_MAGIC,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_leftovers() {
        let id = "0123456789abcdef0123456789abcdef";
        let ours = |s: String| leftover_pid(OsStr::new(&s));
        assert_eq!(ours(format!(".{id}.parquet.tmp-znippy-42-7")), Some(42));
        assert_eq!(ours(format!(".{id}.parquet.tmp-42")), Some(42));
        let me = std::process::id();
        assert_eq!(ours(format!(".{id}.parquet.tmp-znippy-{me}-0")), None);
        for other in [
            format!("{id}.parquet"),
            format!(".{id}.parquet.tmp-znippy-42-"),
            format!(".{id}.parquet.tmp-znippy-42"),
            format!(".{id}.parquet.tmp-znippy-x-1"),
            format!(".{id}.parquet.tmp-0"),
            format!(".{}.parquet.tmp-42", &id[1..]),
            ".0123456789ABCDEF0123456789ABCDEF.parquet.tmp-42".to_string(),
            format!(".{id}.csv.tmp-42"),
        ] {
            assert_eq!(ours(other.clone()), None, "{other}");
        }
    }
}
