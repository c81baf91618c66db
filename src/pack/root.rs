//! The pack root: the directory everything is read beneath, and the names of what
//! lies under it, for messages.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The full path of an entry under `root`, for messages.
pub fn full_path(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}
