//! The archive being written: a temporary file beside the target, renamed into place
//! only when complete. Dropped before that, it removes itself.

use crate::error::{Error, Result};
use crate::format::header;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A temporary archive file that becomes `target` on [`Output::commit`].
pub struct Output {
    /// The open temporary file.
    pub file: Arc<File>,
    /// Removes the file if the process is interrupted (see `interrupt`).
    _registration: super::interrupt::Registration,
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Output {
    /// Creates the temporary file beside `target` and writes the header.
    pub fn create(target: &Path) -> Result<Output> {
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
        let out = Output {
            file: Arc::new(file),
            _registration: super::interrupt::register(&tmp),
            tmp,
            target: target.into(),
            committed: false,
        };
        out.write_at(&header::encode(), 0)?;
        Ok(out)
    }

    /// (device, inode) of the temporary file, so a walk can leave it out.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.file.metadata().ok().map(|m| (m.dev(), m.ino()))
    }

    /// The path being written (for messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Writes `bytes` at `offset`.
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| Error::io(&self.tmp, "write", e))
    }

    /// Writes the tail (index and footer) at `offset`, trims the file there, and renames
    /// it to the target.
    pub fn commit(mut self, tail: &[u8], offset: u64) -> Result<u64> {
        self.write_at(tail, offset)?;
        let len = offset + tail.len() as u64;
        self.file
            .set_len(len)
            .map_err(|e| Error::io(&self.tmp, "truncate", e))?;
        fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, "rename", e))?;
        self.committed = true;
        Ok(len)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
