//! An archive's file: opened only when it is a regular file, and its header and index
//! read and validated (what [`super::archive::Archive`] and a chain's bases share).

use crate::error::{Error, Result};
use crate::format::{footer, header, index};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Opens `path` for reading an archive from it. Only a regular file is taken: the file
/// is opened without blocking (a FIFO with no writer would block an ordinary open
/// forever), and a FIFO, device, socket or directory is refused, naming it.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Looked at before opening, so that opening a device cannot act on it...
    if let Ok(meta) = std::fs::metadata(path) {
        regular(path, &meta)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, "open", e))?;
    // ...and after, as what was opened may have replaced what was looked at.
    regular(
        path,
        &file.metadata().map_err(|e| Error::io(path, "stat", e))?,
    )?;
    let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| Error::io(path, "fcntl", e.into()))?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| Error::io(path, "fcntl", e.into()))?;
    Ok(file)
}

/// Fails, naming `path` and what it is, unless `meta` is a regular file's.
fn regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    };
    Err(Error::NotArchive {
        path: path.into(),
        problem: format!("it is {what}, not a regular file"),
    })
}

/// Reads and validates the header and index of the archive open as `file`, named
/// `path` in messages; returns its length too.
pub(crate) fn read_index(file: &File, path: &Path) -> Result<(u64, index::Index)> {
    read_index_scoped(file, path, false)
}

/// [`read_index`]; `lookup`: decoding only what finding and reading a file needs
/// ([`index::read_for_lookup`]).
pub(crate) fn read_index_scoped(
    file: &File,
    path: &Path,
    lookup: bool,
) -> Result<(u64, index::Index)> {
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "stat", e))?
        .len();
    let not_archive = |problem: String| Error::NotArchive {
        path: path.into(),
        problem,
    };
    if len < header::HEADER_LEN + index::MANIFEST_DIGEST_LEN + footer::FOOTER_LEN {
        return Err(not_archive(format!("only {len} bytes long")));
    }
    let mut head = [0u8; header::HEADER_LEN as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io(path, "read", e))?;
    header::decode(&head).map_err(not_archive)?;
    let read_at = |offset, n| {
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, offset).map(|()| buf)
    };
    let index = match lookup {
        true => index::read_for_lookup(len, read_at),
        false => index::read(len, read_at),
    }
    .map_err(|p| Error::corrupt(path, p))?;
    Ok((len, index))
}
