//! The library's error type: every variant names the file it is about.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, each variant naming the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on `path` failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file the call was about.
        path: PathBuf,
        /// What was being done ("open", "read", "write", ...).
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// `path` is not a znippy archive at all (wrong magic, too short).
    #[error("{}: not a znippy archive: {problem}", path.display())]
    NotArchive {
        /// The file that was opened.
        path: PathBuf,
        /// What did not match.
        problem: String,
    },
    /// The archive's structure is damaged or inconsistent.
    #[error("{}: corrupt archive: {problem}", path.display())]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// File data in the archive failed its checksum or could not be decoded.
    #[error("{}: damaged data: {}", archive.display(), describe_damage(damaged))]
    Damaged {
        /// The archive.
        archive: PathBuf,
        /// Each damaged file's path (lossy UTF-8) and the problem.
        damaged: Vec<(String, String)>,
    },
    /// An input file could not be packed consistently (it shrank, vanished...).
    #[error("{}: {problem}", path.display())]
    Input {
        /// The input file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// An entry path in an archive would escape the target directory or is malformed.
    #[error("{}: refusing unsafe path {path:?}: {why}", archive.display())]
    UnsafePath {
        /// The archive.
        archive: PathBuf,
        /// The entry's path (lossy UTF-8).
        path: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// An unpack or extract would write more bytes of files than its limit allows
    /// ([`crate::MaxSize`]); nothing was written.
    #[error(
        "{}: refusing to unpack {total} bytes of files into {}: more than {}{limit} bytes{} \
         (--max-size SIZE or unlimited sets the limit)",
        archive.display(),
        target.display(),
        if *free { "the " } else { "the limit of " },
        if *free { " free on its file system" } else { "" }
    )]
    TooLarge {
        /// The archive.
        archive: PathBuf,
        /// The target directory.
        target: PathBuf,
        /// The declared size of the files to write.
        total: u64,
        /// The limit.
        limit: u64,
        /// Whether the limit was the target's free space (not one given).
        free: bool,
    },
    /// Invalid options or arguments from the caller.
    #[error("{0}")]
    Invalid(String),
    /// io_uring was requested explicitly but cannot be used.
    #[error("io_uring unavailable: {0}")]
    UringUnavailable(String),
}

fn describe_damage(damaged: &[(String, String)]) -> String {
    let mut s = format!("{} file(s)", damaged.len());
    for (path, problem) in damaged.iter().take(20) {
        s.push_str(&format!("; {path}: {problem}"));
    }
    if damaged.len() > 20 {
        s.push_str("; ...");
    }
    s
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            problem: problem.into(),
        }
    }
}
