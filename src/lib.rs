//! znippy-uring: a parallel archiver for directory trees on Linux, built on io_uring.
//!
//! An archive holds zstd-compressed (or stored) chunk blobs and an Apache Arrow IPC
//! index; see docs/FORMAT.md for the format and docs/DESIGN.md for the engine.
//!
//! - [`pack()`] packs a directory; [`pack::pack_to`] packs listed paths, or to a stream
//!   such as a pipe; [`Ingest`] packs entries sent over a channel.
//! - [`Archive`] opens an archive for listing, random access ([`Archive::read_file`]),
//!   verification ([`Archive::verify`]) and extraction ([`Archive::unpack`]).

pub mod bench;
pub mod digest;
pub mod error;
pub mod format;
pub mod io;
pub mod owner;
pub mod pack;
pub mod progress;
pub mod read;
pub mod skip;
pub mod stages;
pub mod xattr;

pub use error::{Error, Result};
pub use format::entry::{Entry, EntryKind};
pub use format::manifest::Group;
pub use io::{Backend, IoMode};
pub use pack::{Ingest, IngestEntry, PackOptions, PackReport, pack};
pub use progress::Progress;
pub use read::{Archive, UnpackOptions, UnpackReport, VerifyReport};
pub use xattr::XattrPolicy;
