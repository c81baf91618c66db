//! Entries the pack cannot read (`--on-unreadable`): which errors count, what to do
//! about them, and the record of each entry left out.
//!
//! Unreadable means the operating system refused or failed the read: a file that
//! cannot be opened or read (EACCES, EPERM, EIO), a directory that cannot be listed,
//! an entry that cannot be stat'ed or whose extended attributes cannot be read. A file
//! that vanished or changed is not unreadable: `--on-change` decides about those.

use crate::error::{Error, Result};
use std::io;
use std::path::Path;

/// What to do with an entry that cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUnreadable {
    /// Fail the pack, naming the entry and the error (no archive is written).
    #[default]
    Fail,
    /// Leave the entry out (a directory that cannot be listed: its contents), name it
    /// in the report's `warnings` and `skipped`, and write the archive. The command
    /// line then exits with status 3.
    Warn,
}

impl std::str::FromStr for OnUnreadable {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(OnUnreadable::Fail),
            "warn" => Ok(OnUnreadable::Warn),
            other => Err(Error::Invalid(format!(
                "unknown --on-unreadable {other:?} (expected fail or warn)"
            ))),
        }
    }
}

impl OnUnreadable {
    /// Whether `e` is an error to leave the entry out for: the policy is `Warn` and the
    /// error is one of reading (permission or I/O).
    pub fn skips(self, e: &io::Error) -> bool {
        self == OnUnreadable::Warn && is_unreadable(e)
    }

    /// The record of the entry that failed with `e`, when `e` is a system call's error
    /// to leave it out for ([`OnUnreadable::skips`]); otherwise `e` itself, to fail.
    pub fn skip(self, e: Error) -> Result<Skipped> {
        match e {
            Error::Io { path, op, source } if self.skips(&source) => {
                Ok(Skipped::entry(&path, op, &source))
            }
            other => Err(other),
        }
    }
}

/// Whether `e` says the file cannot be read: permission denied, operation not
/// permitted, an I/O error, or a path longer than the kernel takes (PATH_MAX: the
/// walk names entries by their path from the pack root).
pub fn is_unreadable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EIO) | Some(libc::ENAMETOOLONG)
    )
}

/// An entry left out because it could not be read. Serialized as `{path, problem}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Its path on disk (the packed directory joined with its path in the archive), as
    /// lossy UTF-8.
    pub path: String,
    /// What failed, with the operating system's error, and what was left out.
    pub problem: String,
}

impl Skipped {
    /// A file, or any other entry, left out because `op` failed with `e`.
    pub fn entry(path: &Path, op: &str, e: &io::Error) -> Skipped {
        Skipped {
            path: path.to_string_lossy().into_owned(),
            problem: format!("cannot {op}: {e}; not archived"),
        }
    }

    /// A directory that cannot be listed: itself archived, its contents not.
    pub fn contents(dir: &Path, e: &io::Error) -> Skipped {
        Skipped {
            path: dir.to_string_lossy().into_owned(),
            problem: format!("cannot read directory: {e}; its contents are not archived"),
        }
    }

    /// A hard link whose file could not be read.
    pub fn link(path: &Path, file: &Path) -> Skipped {
        Skipped {
            path: path.to_string_lossy().into_owned(),
            problem: format!(
                "hard link to {}, which could not be read; not archived",
                file.display()
            ),
        }
    }

    /// The warning line for it.
    pub fn warning(&self) -> String {
        format!("{}: {}", self.path, self.problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_of_reading_are_skipped_and_only_when_asked() {
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let eio = io::Error::from_raw_os_error(libc::EIO);
        let gone = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(OnUnreadable::Warn.skips(&denied) && OnUnreadable::Warn.skips(&eio));
        assert!(!OnUnreadable::Warn.skips(&gone));
        assert!(!OnUnreadable::Fail.skips(&denied));
        let e = || Error::io("/x", "read", io::Error::from_raw_os_error(libc::EPERM));
        let s = OnUnreadable::Warn.skip(e()).unwrap();
        assert_eq!(
            (s.path.as_str(), s.problem.starts_with("cannot read: ")),
            ("/x", true)
        );
        assert!(OnUnreadable::Fail.skip(e()).is_err());
        assert!(OnUnreadable::Warn.skip(Error::Invalid("x".into())).is_err());
        assert_eq!("warn".parse::<OnUnreadable>().unwrap(), OnUnreadable::Warn);
        assert!("skip".parse::<OnUnreadable>().is_err());
    }

    #[test]
    fn a_skipped_entry_names_the_path_the_call_and_the_error() {
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let s = Skipped::entry(Path::new("/srv/secret"), "open", &denied);
        assert_eq!(
            s.warning(),
            "/srv/secret: cannot open: Permission denied (os error 13); not archived"
        );
        let d = Skipped::contents(Path::new("/srv/private"), &denied);
        assert!(
            d.warning().contains("its contents are not archived"),
            "{d:?}"
        );
    }
}
