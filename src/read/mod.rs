//! Reading archives: open and validate, list, random access, verify, unpack, export
//! the index.

mod archive;
mod beneath;
pub mod export;
mod layout;
mod unpack;
mod verify;
mod visit;

pub use archive::Archive;
pub use unpack::{UnpackOptions, UnpackReport};
pub use verify::VerifyReport;
