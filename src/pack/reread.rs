//! The re-read pass (`--on-change retry`): files that changed while the pipeline read
//! them are read again, one at a time, once the pipeline has finished, up to
//! [`ATTEMPTS`] times, until a read sees the same size and mtime on the open file
//! before and after it. That version is
//! appended as new chunks after the pipeline's; the bytes of the first read stay in the
//! archive, unreferenced (their chunks still verify). Changed files are rare, so this
//! pass is plain pread/pwrite on the calling thread.

use super::output::Output;
use super::root::full_path;
use super::root::{OpenError, Root, read_exact_at};
use crate::codec::{Codec, Encoder, Transform};
use crate::digest::{self, PieceDigest};
use crate::error::{Error, Result};
use crate::format::chunk::ChunkRecord;
use crate::format::entry::DataLocation;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Reads of one file before the pack gives up on it.
pub const ATTEMPTS: usize = 3;

/// What a re-read found.
#[derive(Debug)]
pub enum Outcome {
    /// A version that did not change while it was read, appended to the archive.
    Kept(Version),
    /// The file is gone, or no longer a regular file.
    Vanished(String),
}

/// A consistent version of a file, as appended.
#[derive(Debug)]
pub struct Version {
    /// Its size.
    pub size: u64,
    /// Its mtime, ns.
    pub mtime_ns: i64,
    /// Where its bytes are (`None` when empty).
    pub location: Option<DataLocation>,
    /// (chunk, digest) of each of its pieces.
    pub pieces: Vec<(u64, PieceDigest)>,
}

/// Reads changed files again and appends them to the archive.
pub struct Rereader<'a> {
    root: &'a Root,
    output: &'a Output,
    chunk_size: usize,
    encoder: Encoder,
}

impl<'a> Rereader<'a> {
    /// A rereader appending to `output` files under `root`, in chunks of `chunk_size`
    /// compressed at zstd `level`.
    pub fn new(root: &'a Root, output: &'a Output, chunk_size: usize, level: i32) -> Result<Self> {
        Ok(Rereader {
            root,
            output,
            chunk_size,
            encoder: Encoder::new(Some(level))?,
        })
    }

    /// Reads the file at `rel` (relative to the root) until one read is consistent,
    /// appending its chunks to `chunks` from `*blob_end` on, stored without trying
    /// zstd if `store`. Fails after [`ATTEMPTS`] inconsistent reads.
    pub fn reread(
        &mut self,
        rel: &[u8],
        store: bool,
        chunks: &mut Vec<ChunkRecord>,
        blob_end: &mut u64,
    ) -> Result<Outcome> {
        let path = full_path(&self.root.path, rel);
        let rel = Path::new(std::ffi::OsStr::from_bytes(rel));
        for _ in 0..ATTEMPTS {
            let fd = match self.root.open_file(rel, true) {
                Ok(fd) => fd,
                Err(OpenError::Gone(why)) => {
                    return Ok(Outcome::Vanished(format!("{why} while being packed")));
                }
                Err(OpenError::Os(e)) => return Err(Error::io(&path, "open", e)),
            };
            let before = stamp(&fd, &path)?;
            if before.2 {
                return Ok(Outcome::Vanished(
                    "no longer a regular file after being packed".into(),
                ));
            }
            let (mark_len, mark_end) = (chunks.len(), *blob_end);
            let read = self.append(&fd, &path, before.0, store, chunks, blob_end)?;
            let after = stamp(&fd, &path)?;
            match read {
                Some(pieces) if after == before => {
                    let location = (before.0 > 0).then(|| DataLocation {
                        first_chunk: mark_len as u64,
                        last_chunk: chunks.len() as u64 - 1,
                        chunk_offset: 0,
                        base: None,
                    });
                    return Ok(Outcome::Kept(Version {
                        size: before.0,
                        mtime_ns: before.1,
                        location,
                        pieces,
                    }));
                }
                _ => {
                    // Changed again while read: forget this attempt's chunks.
                    chunks.truncate(mark_len);
                    *blob_end = mark_end;
                }
            }
        }
        Err(Error::Input {
            path,
            problem: format!(
                "kept changing while being packed (read again {ATTEMPTS} times, changed each time)"
            ),
        })
    }

    /// Appends `size` bytes of `fd` as chunks: one for a file shorter than a chunk,
    /// else whole chunks of `chunk_size` (BLAKE3 subtrees) and a shorter last one.
    /// `None` if the file turned out shorter than `size`.
    fn append(
        &mut self,
        fd: &OwnedFd,
        path: &Path,
        size: u64,
        store: bool,
        chunks: &mut Vec<ChunkRecord>,
        blob_end: &mut u64,
    ) -> Result<Option<Vec<(u64, PieceDigest)>>> {
        let whole = size < self.chunk_size as u64;
        let mut buf = vec![0u8; (size as usize).min(self.chunk_size)];
        let mut pieces = Vec::new();
        let mut offset = 0u64;
        while offset < size {
            let len = (size - offset).min(self.chunk_size as u64) as usize;
            let data = &mut buf[..len];
            match read_exact_at(fd, data, offset) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(Error::io(path, "read", e)),
            }
            // Each byte hashed once for the file; the chunk's digest is of its blob,
            // which for a stored chunk is what the piece's pass gave (format 4).
            let piece = digest::piece(data, offset, whole);
            let blob = self.encoder.encode(data, store)?;
            let (chunk_digest, subtree_at) = match (blob.codec, piece) {
                (Codec::Stored, PieceDigest::Whole(d)) => (d, None),
                (Codec::Stored, PieceDigest::Subtree(cv)) => (cv, Some(offset)),
                _ => (digest::hash(blob.bytes), None),
            };
            let (codec, blob) = (blob.codec, blob.bytes);
            self.output.write_at(blob, *blob_end)?;
            pieces.push((chunks.len() as u64, piece));
            chunks.push(ChunkRecord {
                offset: *blob_end,
                stored_len: blob.len() as u64,
                raw_len: len as u64,
                codec,
                digest: chunk_digest,
                subtree_at,
            });
            *blob_end += blob.len() as u64;
            offset += len as u64;
        }
        Ok(Some(pieces))
    }
}

/// (size, mtime ns, not a regular file) of an open file.
fn stamp(fd: &OwnedFd, path: &Path) -> Result<(u64, i64, bool)> {
    let st = rustix::fs::fstat(fd).map_err(|e| Error::io(path, "stat", e.into()))?;
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    Ok((
        st.st_size as u64,
        super::lister::time_ns(st.st_mtime, st.st_mtime_nsec as i64)
            .unwrap_or(if st.st_mtime < 0 { i64::MIN } else { i64::MAX }),
        !regular,
    ))
}
