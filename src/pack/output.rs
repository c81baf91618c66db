//! The archive being written. To a path: a temporary file beside the target, renamed
//! into place only when complete, and removed if dropped before that. To a stream (a
//! pipe, standard output): written strictly in order, header to footer; what has been
//! written stays if the pack fails, and readers refuse it (it has no footer).

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
    /// A file: written beside it under a temporary name and renamed into place when
    /// complete, so a failed pack leaves nothing and an existing archive is replaced
    /// atomically.
    Path(PathBuf),
    /// An open stream, such as a pipe or standard output: written in order, one write
    /// at a time. If the pack fails, what was written stays (readers refuse it).
    Stream(File),
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
}

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
    /// Opens `dest` and writes the header.
    pub fn open(dest: Destination) -> Result<Output> {
        let out = match dest {
            Destination::Path(target) => Output::create(&target)?,
            Destination::Stream(file) => Output {
                file: Arc::new(file),
                kind: Kind::Stream {
                    name: PathBuf::from("<archive stream>"),
                },
            },
        };
        out.write_at(&header::encode(), 0)?;
        Ok(out)
    }

    /// Creates the temporary file beside `target`.
    fn create(target: &Path) -> Result<Output> {
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
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, "create", e))?;
        Ok(Output {
            file: Arc::new(file),
            kind: Kind::Temporary {
                _registration: super::interrupt::register(&tmp),
                tmp,
                target: target.into(),
                committed: false,
            },
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

    /// The path being written (for messages).
    pub fn path(&self) -> &Path {
        match &self.kind {
            Kind::Temporary { tmp, .. } => tmp,
            Kind::Stream { name } => name,
        }
    }

    /// Writes `bytes` at `offset`. On a stream, `offset` must be where the last write
    /// ended (the archive is laid out in order, so callers always know it).
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        let r = match self.kind {
            Kind::Temporary { .. } => self.file.write_all_at(bytes, offset),
            Kind::Stream { .. } => (&*self.file).write_all(bytes),
        };
        r.map_err(|e| Error::io(self.path(), "write", e))
    }

    /// Writes the tail (index and footer) at `offset`; a file is trimmed there and
    /// renamed to the target. Returns the archive's length.
    pub fn commit(mut self, tail: &[u8], offset: u64) -> Result<u64> {
        self.write_at(tail, offset)?;
        let len = offset + tail.len() as u64;
        if let Kind::Temporary {
            tmp,
            target,
            committed,
            ..
        } = &mut self.kind
        {
            self.file
                .set_len(len)
                .map_err(|e| Error::io(tmp.as_path(), "truncate", e))?;
            fs::rename(&tmp, &target).map_err(|e| Error::io(target.as_path(), "rename", e))?;
            *committed = true;
        }
        Ok(len)
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
