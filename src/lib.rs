//! znippy-uring: a parallel archiver for directory trees on Linux, built on io_uring.
//!
//! An archive holds zstd-compressed (or stored) chunk blobs and an Apache Arrow IPC
//! index; see docs/FORMAT.md for the format and docs/DESIGN.md for the engine.
//!
//! - Writing: [`pack()`] packs a directory into a file; [`pack_to`] packs a
//!   [`Selection`] (a tree, or listed paths) to a [`Destination`] (a file, or a stream
//!   such as a pipe); [`Ingest`] packs entries a program sends over a channel. All take
//!   [`PackOptions`] and return a [`PackReport`].
//! - Reading: [`Archive`] opens an archive for its [`Entry`] list, random access
//!   ([`Archive::read_file`]), verification ([`Archive::verify`]) and extraction
//!   ([`Archive::unpack`], [`Archive::extract`]); [`export`] writes its index as a table.
//! - Every failure is an [`Error`] that names the file and the problem.
//!
//! ```
//! # let tmp = std::env::temp_dir().join(format!("znippy-lib-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(tmp.join("site/etc"))?;
//! # std::fs::write(tmp.join("site/etc/hosts"), "127.0.0.1 localhost\n")?;
//! use znippy_uring::{pack, Archive, PackOptions, UnpackOptions};
//!
//! let report = pack(&tmp.join("site"), &tmp.join("site.znippy"), &PackOptions::default())?;
//! assert_eq!(report.files, 1);
//!
//! let archive = Archive::open(&tmp.join("site.znippy"))?;
//! let mut hosts = Vec::new();
//! archive.read_file(b"etc/hosts", &mut hosts)?;
//! assert_eq!(hosts, b"127.0.0.1 localhost\n");
//! assert!(archive.verify(2)?.is_ok());
//! archive.unpack(&tmp.join("restored"), &UnpackOptions::default())?;
//! # std::fs::remove_dir_all(&tmp)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod codec;
mod digest;
mod error;
mod format;
mod io;
mod owner;
mod pack;
mod progress;
mod read;
mod resolve;
mod skip;
mod stages;
mod xattr;

pub use error::{Error, Result};
pub use format::chunk::{ChunkRecord, Codec};
pub use format::entry::{DataLocation, Entry, EntryKind};
pub use format::header::VERSION as FORMAT_VERSION;
pub use format::manifest::Group;
pub use io::{Backend, IoMode};
pub use pack::{
    DEFAULT_CHUNK_SIZE, DEFAULT_MEMORY, Destination, Ingest, IngestEntry, OnChange, OnUnreadable,
    PackOptions, PackReport, RACY_CTIME, Selection, Skipped, pack, pack_to,
    remove_temporaries_on_signal,
};
pub use progress::Progress;
pub use read::export;
pub use read::{
    Archive, CacheStats, ChunkCache, MaxSize, Paths, UnpackOptions, UnpackReport, VerifyReport,
};
pub use stages::{Part, Stage};
pub use xattr::{Xattr, XattrPolicy};

/// Not API: internals that this crate's own fuzz target, tests and benchmarks reach
/// into (writing hand-made and hostile archives, timing the hot pieces). No stability
/// promise; hidden from the documentation.
#[doc(hidden)]
pub mod testing {
    /// The parts of the on-disk format.
    pub mod format {
        /// The fixed header.
        pub mod header {
            pub use crate::format::header::*;
        }
        /// The index at the end.
        pub mod index {
            pub use crate::format::index::*;
        }
    }
    /// BLAKE3 digests of chunks and files.
    pub mod digest {
        pub use crate::digest::*;
    }
    /// The I/O queues (io_uring and portable).
    pub mod io {
        pub use crate::io::*;
    }
}
