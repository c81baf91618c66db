//! What a pack did: [`PackReport`].

use super::Skipped;
use crate::io::Backend;
use crate::stages::Stage;

/// What a pack did. Serialized, it is the body of `pack --json` (docs/JSON.md).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PackReport {
    /// Entries archived.
    pub entries: u64,
    /// Regular files among them.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Hard links (further names of files already archived).
    pub hardlinks: u64,
    /// Fifos and device nodes.
    pub specials: u64,
    /// Bytes of file data read.
    pub bytes_in: u64,
    /// Size of the archive.
    #[serde(rename = "bytes_out")]
    pub archive_len: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Chunks stored without compression.
    pub stored_chunks: u64,
    /// Files not read again (`since`): unchanged, or renamed, since the earlier archive.
    pub reused_files: u64,
    /// Their bytes (not in `bytes_in`).
    pub reused_bytes: u64,
    /// The I/O backend that ran.
    pub backend: Backend,
    /// Why the portable backend was used instead of io_uring, if it was.
    pub fallback: Option<String>,
    /// Entries skipped, and why (vanished during the walk, special files, and each
    /// of `skipped`).
    pub warnings: Vec<String>,
    /// Entries left out because they could not be read (`on_unreadable` `Warn`): those
    /// the walk found, then those the reads found, each in walk order.
    pub skipped: Vec<Skipped>,
    /// Compressor threads that ran (fewer than asked for when `memory` is short).
    pub compressors: usize,
    /// Bytes the compressors could hold at most (their share of `memory`).
    pub pipeline_bytes: u64,
    /// Where the time went, stage by stage.
    pub stages: Vec<Stage>,
}
