//! `znippy-uring cat`: one file to standard output, reading only its chunks.

use super::report::{Report, Reporting, Stream, lossy};
use super::stdio::open_archive_with;
use anyhow::{Context, Result};
use serde::Serialize;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use znippy_uring::Archive;

#[derive(clap::Args)]
pub struct Args {
    /// Archive to read (`-`: standard input).
    archive: PathBuf,
    /// Path inside the archive.
    path: OsString,
    /// An archive this incremental archive builds on, when not beside it under its
    /// recorded name (repeatable).
    #[arg(long = "base", value_name = "ARCHIVE")]
    bases: Vec<PathBuf>,
}

/// `cat --json`, on stderr (standard output carries the file).
#[derive(Serialize)]
struct CatJson<'a> {
    #[serde(serialize_with = "lossy")]
    path: &'a Path,
    bytes: u64,
    seconds: f64,
}

impl Report for CatJson<'_> {
    /// A filter has no summary line: `cat` prints one only with `--json`.
    fn summary(&self, _: &str) -> String {
        String::new()
    }
}

pub fn run(args: Args, out: &Reporting) -> Result<()> {
    let start = Instant::now();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    // A file, with no bases named: only what finding the one file needs is decoded.
    let bytes = if args.archive.as_os_str() != "-" && args.bases.is_empty() {
        Archive::cat(&args.archive, args.path.as_bytes(), &mut w)?
    } else {
        let a = open_archive_with(&args.archive, &args.bases)?;
        a.read_file(args.path.as_bytes(), &mut w)?
    };
    w.flush().context("writing to standard output")?;
    if out.json {
        let report = CatJson {
            path: Path::new(&args.path),
            bytes,
            seconds: start.elapsed().as_secs_f64(),
        };
        out.report(Stream::Stderr, "cat", &args.archive, &report);
    }
    Ok(())
}
