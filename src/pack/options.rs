//! What a pack is asked to do: [`PackOptions`], the [`OnChange`] rule and the
//! [`Selection`] of what to archive, checked before anything is read.

use super::OnUnreadable;
use super::budget::{Budget, DEFAULT_MEMORY};
use super::pipeline::Config;
use super::root::Root;
use crate::error::{Error, Result};
use crate::format::manifest::Group;
use crate::io::IoMode;
use crate::skip;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Smallest and largest accepted chunk sizes (powers of two in between).
pub const CHUNK_SIZE_RANGE: (usize, usize) = (64 << 10, 64 << 20);
/// Default chunk size.
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;

/// How to pack. Start from the default and change what you need:
///
/// ```
/// use znippy_uring::PackOptions;
/// use znippy_uring::OnChange;
/// let opts = PackOptions {
///     level: 9,
///     chunk_size: 1 << 20,
///     on_change: OnChange::Retry,
///     exclude: vec!["*.tmp".into(), "/cache/".into()],
///     ..PackOptions::default()
/// };
/// assert!(opts.validate().is_ok());
/// let bad = PackOptions { chunk_size: 3 << 20, ..PackOptions::default() };
/// assert!(bad.validate().unwrap_err().to_string().contains("power of two"));
/// ```
#[derive(Clone, Debug)]
pub struct PackOptions {
    /// zstd level (default 3).
    pub level: i32,
    /// Compressor threads (default: all cores).
    pub threads: usize,
    /// Chunk size: a power of two from 64 KiB to 64 MiB (default 4 MiB).
    pub chunk_size: usize,
    /// Store known compressed formats without trying to compress them (default true).
    pub skip_compressed: bool,
    /// Store every chunk without compressing it (`--store`); digests and index as usual.
    pub store: bool,
    /// Bytes the pipeline may hold for chunks in flight, at any thread count (default
    /// [`DEFAULT_MEMORY`]): fewer compressors run when it cannot give every thread
    /// enough slots (docs/DESIGN.md, "Memory").
    pub memory: usize,
    /// Package type of the entries' group.
    pub pkg_type: Option<u16>,
    /// Repository name of the entries' group.
    pub repo: Option<String>,
    /// I/O backend.
    pub io: IoMode,
    /// What to do when a file changes while it is being packed.
    pub on_change: OnChange,
    /// What to do with a file that cannot be read or a directory that cannot be
    /// listed (default [`OnUnreadable::Fail`]: a caller that asks for `Warn` checks
    /// [`PackReport::skipped`]; the command line's default is `warn`, with exit status 3).
    pub on_unreadable: OnUnreadable,
    /// Which extended attributes to archive (default `user.*`).
    pub xattrs: crate::XattrPolicy,
    /// Counters to update as the pack goes (for a progress display).
    pub progress: Option<Arc<crate::Progress>>,
    /// Paths to leave out: gitignore-style patterns, relative to the pack root (`*.log`,
    /// `build/`, `/top-only`, `!keep.log`). An excluded directory is not descended.
    pub exclude: Vec<String>,
    /// Pack incrementally on this earlier archive (`--since`): files unchanged since
    /// it (or only renamed) are not read again; the new archive points at the data
    /// where it already lies, and readers need those archives (docs/FORMAT.md).
    pub since: Option<PathBuf>,
    /// With `since`: a file whose device or inode changed counts as changed too.
    pub check_inode: bool,
    /// Flush the archive to stable storage before reporting success (default): its
    /// data before it is renamed into place, its directory after. Off (`--no-sync`)
    /// for scratch work: the archive may then be lost or empty after a power cut.
    pub sync: bool,
    /// A file whose ctime is at most this long before the pack's start, or later, is
    /// recorded without it (default [`RACY_CTIME`]): on a file system with coarse
    /// timestamps a change in the same tick would not show, so a later `since` pack
    /// confirms such a file by content. Zero records every ctime (archives of a tree
    /// just written are then the same whenever they are packed).
    pub racy_ctime: std::time::Duration,
}

/// Default [`PackOptions::racy_ctime`]: more than any file system's timestamp
/// granularity (FAT's 2 s).
pub const RACY_CTIME: std::time::Duration = std::time::Duration::from_secs(3);

/// What to do when a file's size or mtime changed between the walk and the end of its
/// read (it was written to while being packed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnChange {
    /// Fail the pack, naming the file (no archive is written).
    #[default]
    Fail,
    /// Keep the bytes as read (the walked size of them) and report the file as a
    /// warning, once: the archived content may mix the versions before and after the
    /// change.
    Warn,
    /// Do not check (saves one `statat` per file, about 5% of a kernel-tree pack): for
    /// trees known not to change.
    Ignore,
    /// Keep a consistent version: read the file again after the main pass, up to 3
    /// times, until one read sees the same size and mtime before and after it (if all
    /// 3 see it change, the pack fails), and report it as a warning. A file that is
    /// gone by then is left out of the archive with a warning.
    Retry,
}

impl std::str::FromStr for OnChange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(OnChange::Fail),
            "warn" => Ok(OnChange::Warn),
            "ignore" => Ok(OnChange::Ignore),
            "retry" => Ok(OnChange::Retry),
            other => Err(Error::Invalid(format!(
                "unknown --on-change {other:?} (expected fail, warn, retry or ignore)"
            ))),
        }
    }
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            level: 3,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_size: DEFAULT_CHUNK_SIZE,
            skip_compressed: true,
            store: false,
            memory: DEFAULT_MEMORY,
            pkg_type: None,
            repo: None,
            io: IoMode::Auto,
            on_change: OnChange::Fail,
            on_unreadable: OnUnreadable::Fail,
            xattrs: crate::XattrPolicy::User,
            progress: None,
            exclude: Vec::new(),
            since: None,
            check_inode: false,
            sync: true,
            racy_ctime: RACY_CTIME,
        }
    }
}

impl PackOptions {
    /// Checks the options, saying what is wrong.
    pub fn validate(&self) -> Result<()> {
        self.budget().map(|_| ())
    }

    /// Checks the options and shares out the memory budget (measuring the zstd
    /// context once).
    pub(super) fn budget(&self) -> Result<Budget> {
        let (lo, hi) = CHUNK_SIZE_RANGE;
        if !self.chunk_size.is_power_of_two() || self.chunk_size < lo || self.chunk_size > hi {
            return Err(Error::Invalid(format!(
                "chunk size {} must be a power of two from 64 KiB to 64 MiB",
                self.chunk_size
            )));
        }
        let levels = crate::codec::zstd::levels();
        if !levels.contains(&self.level) {
            return Err(Error::Invalid(format!(
                "zstd level {} outside {}..={}",
                self.level,
                levels.start(),
                levels.end()
            )));
        }
        if self.threads == 0 || self.threads > 1024 {
            return Err(Error::Invalid(format!(
                "threads {} outside 1..=1024",
                self.threads
            )));
        }
        Budget::plan(
            self.memory,
            self.threads,
            self.chunk_size,
            (!self.store).then_some(self.level),
        )
    }

    /// The pipeline's configuration, with the budget [`PackOptions::budget`] gave.
    pub(super) fn config(&self, budget: Budget, root: Option<Arc<Root>>) -> Config {
        Config {
            threads: self.threads,
            chunk_size: self.chunk_size,
            level: (!self.store).then_some(self.level),
            memory: self.memory,
            budget,
            io: self.io,
            on_change: self.on_change,
            on_unreadable: self.on_unreadable,
            root,
            progress: self.progress.clone(),
        }
    }

    /// Whether the data of the file at `path` is stored without trying zstd.
    pub(super) fn stores(&self, path: &[u8]) -> bool {
        self.store || (self.skip_compressed && skip::is_compressed_name(path))
    }

    pub(super) fn group(&self) -> Group {
        Group {
            pkg_type: self.pkg_type,
            repo: self.repo.clone(),
        }
    }
}

/// What a pack archives.
#[derive(Clone, Debug)]
pub enum Selection {
    /// The whole tree under a directory.
    Tree(PathBuf),
    /// Only the listed paths under `root` (relative to it, or absolute beneath it), in
    /// the walk's order whatever the list's; a listed directory is recorded but not
    /// descended, as `find DIR -print0` lists its contents too. Parents that are not
    /// listed are not archived (unpacking creates them). A listed path that does not
    /// exist fails the pack.
    List {
        /// The directory the paths are under; archive paths are relative to it.
        root: PathBuf,
        /// The paths, as bytes (`find -print0` output split at the NULs).
        paths: Vec<Vec<u8>>,
    },
}

impl Selection {
    /// The directory being packed.
    pub fn root(&self) -> &Path {
        match self {
            Selection::Tree(root) | Selection::List { root, .. } => root,
        }
    }
}
