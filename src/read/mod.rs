//! Reading archives: open and validate, list, random access, verify, unpack, export
//! the index.

mod acl;
mod archive;
mod beneath;
mod cache;
mod chain;
pub mod export;
mod file;
mod layout;
mod parquet;
mod space;
mod staging;
mod unpack;
mod verify;
mod visit;

pub use archive::{Archive, Paths};
pub use cache::{CacheStats, ChunkCache};
pub(crate) use chain::{Lineage, lineage};
pub use space::MaxSize;
pub use unpack::{UnpackOptions, UnpackReport};
pub use verify::VerifyReport;
