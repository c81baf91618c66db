//! `znippy-uring catalog ARCHIVE... -o DIR`: one Parquet file per archive, in a
//! hive-partitioned directory layout (`DIR/host=web1/date=2026-11-30/ID.parquet`) that
//! DuckDB, Polars, DataFusion and Spark read as one table. Each row is an entry, led by
//! its archive's id and path (docs/QUERY.md).
//!
//! Archives are catalogued one after another on each thread, so memory is the index
//! of the largest archive per thread. A file is written under a temporary name and
//! renamed into place (`temporary`): re-cataloguing an archive replaces its file.
//!
//! Every archive is tried: one that cannot be read is named and the others are still
//! catalogued; the command then fails. Archives with the same id (copies, or one named
//! twice) that land in the same partition are catalogued once, from the first of them
//! in argument order, whatever the number of threads; the others are named.

mod partition;
mod temporary;

use super::report::lossy;
use super::{Reporting, args::threads};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use temporary::Temporary;
use znippy_uring::Archive;
use znippy_uring::export::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    /// Archives to catalogue (files: an archive is read from its end, so not `-`).
    #[arg(required = true)]
    archives: Vec<PathBuf>,
    /// The catalog directory (created if missing).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// A partition level KEY=VALUE, repeatable, outermost first. VALUE may use
    /// {parent} (the name of the archive's directory), {stem} (its file name without
    /// extension), {date} (its modification day, UTC, YYYY-MM-DD) and {id}.
    #[arg(long = "partition", value_name = "KEY=VALUE")]
    partitions: Vec<String>,
    /// Archives catalogued at once (default: all cores); memory is the index of the
    /// largest archive per thread.
    #[arg(long)]
    threads: Option<usize>,
}

/// `catalog --json`.
#[derive(Serialize)]
struct CatalogJson<'a> {
    command: &'static str,
    #[serde(serialize_with = "lossy")]
    output: &'a Path,
    archives: usize,
    rows: usize,
    files: Vec<String>,
    duplicates: Vec<DuplicateJson<'a>>,
    failed: Vec<FailedJson<'a>>,
    seconds: f64,
}

/// An archive not catalogued because the same archive was, into the same file.
#[derive(Serialize)]
struct DuplicateJson<'a> {
    #[serde(serialize_with = "lossy")]
    archive: &'a Path,
    #[serde(serialize_with = "lossy")]
    same_as: &'a Path,
    #[serde(serialize_with = "lossy")]
    file: &'a Path,
}

/// An archive that could not be catalogued.
#[derive(Serialize)]
struct FailedJson<'a> {
    #[serde(serialize_with = "lossy")]
    archive: &'a Path,
    problem: String,
}

/// What became of one archive.
enum Outcome {
    /// Its rows are in `file`.
    Written {
        file: PathBuf,
        rows: usize,
    },
    /// `file` holds the rows of the archive `same_as` (an index into the arguments),
    /// which has the same id.
    Duplicate {
        file: PathBuf,
        same_as: usize,
    },
    Failed(anyhow::Error),
}

pub fn run(args: Args, out: &Reporting) -> Result<()> {
    let start = Instant::now();
    let levels: Vec<(String, String)> = args
        .partitions
        .iter()
        .map(|p| partition::parse(p))
        .collect::<Result<_>>()?;
    if args.archives.iter().any(|a| a.as_os_str() == "-") {
        bail!(
            "-: catalog cannot read an archive from standard input: it reads each archive's index from the end of the file, and names the archive's path in every row; save the stream to a file and catalogue that"
        );
    }
    prepare_output(&args.output)?;
    let outcomes = catalogue_all(&args, &levels);
    let path = |i: usize| args.archives.get(i).map_or(Path::new("?"), |p| p.as_path());
    let mut report = CatalogJson {
        command: "catalog",
        output: &args.output,
        archives: 0,
        rows: 0,
        files: Vec::new(),
        duplicates: Vec::new(),
        failed: Vec::new(),
        seconds: 0.0,
    };
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Written { file, rows } => {
                report.archives += 1;
                report.rows += rows;
                report.files.push(file.display().to_string());
            }
            Outcome::Duplicate { file, same_as } => {
                eprintln!(
                    "znippy-uring: warning: {}: the same archive as {} (same id, same partition): not catalogued again; {} holds {}",
                    path(i).display(),
                    path(*same_as).display(),
                    file.display(),
                    path(*same_as).display(),
                );
                report.duplicates.push(DuplicateJson {
                    archive: path(i),
                    same_as: path(*same_as),
                    file,
                });
            }
            Outcome::Failed(e) => {
                let problem = crate::message(e);
                eprintln!("znippy-uring: error: {problem}");
                report.failed.push(FailedJson {
                    archive: path(i),
                    problem,
                });
            }
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    if out.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if !out.quiet {
        eprintln!("{}", summary(&report));
    }
    if !report.failed.is_empty() {
        bail!(
            "{} of {} archives could not be catalogued",
            report.failed.len(),
            args.archives.len()
        );
    }
    Ok(())
}

/// The summary line of a catalog.
fn summary(r: &CatalogJson) -> String {
    let mut line = format!(
        "catalogued {} archives, {} rows into {} in {:.2} s",
        r.archives,
        r.rows,
        r.output.display(),
        r.seconds
    );
    if !r.duplicates.is_empty() {
        line.push_str(&format!(
            "; {} duplicate(s) not written again",
            r.duplicates.len()
        ));
    }
    if !r.failed.is_empty() {
        line.push_str(&format!("; {} failed", r.failed.len()));
    }
    line
}

/// Makes sure `dir` is a directory to write the catalog into: created if missing,
/// followed if a symbolic link to a directory, refused if anything else.
fn prepare_output(dir: &Path) -> Result<()> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(dir)
                .with_context(|| format!("{shown}: create directory"));
        }
        Err(e) => return Err(e).with_context(|| format!("{shown}: stat")),
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(dir) {
            Ok(target) if target.is_dir() => {}
            Ok(target) => bail!(
                "{shown}: a symbolic link to {}, not to a directory; a catalog is a directory of Parquet files",
                kind(&target)
            ),
            Err(e) => bail!(
                "{shown}: a symbolic link that cannot be followed ({e}); a catalog is a directory of Parquet files"
            ),
        },
        Ok(m) if m.is_dir() => {}
        Ok(m) => bail!(
            "{shown}: is {}, not a directory; a catalog is a directory of Parquet files",
            kind(&m)
        ),
    }
    use rustix::fs::{Access, access};
    access(dir, Access::WRITE_OK | Access::EXEC_OK)
        .map_err(std::io::Error::from)
        .with_context(|| format!("{shown}: cannot write into it"))
}

/// What a file is, for messages: "a regular file", "a FIFO", ...
fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// State shared by the threads of one catalog.
struct Shared<'a> {
    output: &'a Path,
    levels: &'a [(String, String)],
    /// Which archive's rows each catalog file holds (an index into the arguments).
    holders: Mutex<HashMap<PathBuf, usize>>,
    /// The partition directories already cleared of leftovers.
    cleared: Mutex<HashSet<PathBuf>>,
}

/// What catalogue did with one archive.
enum Done {
    /// Wrote `file` with `rows` rows.
    Wrote { file: PathBuf, rows: usize },
    /// Left `file` alone: an earlier archive with the same id was written into it.
    Skipped { file: PathBuf },
}

/// Catalogues every archive of `args`, on threads; the outcomes in argument order.
fn catalogue_all(args: &Args, levels: &[(String, String)]) -> Vec<Outcome> {
    let shared = Shared {
        output: &args.output,
        levels,
        holders: Mutex::new(HashMap::new()),
        cleared: Mutex::new(HashSet::new()),
    };
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Result<Done>)>> = Mutex::new(Vec::new());
    let threads = threads(args.threads).clamp(1, args.archives.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(archive) = args.archives.get(i) else {
                        break;
                    };
                    let result = catalogue(i, archive, &shared);
                    lock(&done).push((i, result));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_unstable_by_key(|d| d.0);
    let holders = shared
        .holders
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    done.into_iter()
        .map(|(i, result)| match result {
            Err(e) => Outcome::Failed(e),
            Ok(Done::Wrote { file, rows }) if holders.get(&file) == Some(&i) => {
                Outcome::Written { file, rows }
            }
            Ok(Done::Wrote { file, .. } | Done::Skipped { file }) => match holders.get(&file) {
                Some(&same_as) => Outcome::Duplicate { file, same_as },
                None => Outcome::Failed(anyhow::anyhow!(
                    "{}: written by no archive (a bug)",
                    file.display()
                )),
            },
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes the catalog file of the archive at `path`, argument `i`, unless an earlier
/// argument with the same id has been written into the same file.
fn catalogue(i: usize, path: &Path, shared: &Shared) -> Result<Done> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}: stat", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{}: is {}, not an archive file",
            path.display(),
            kind(&meta)
        );
    }
    let archive = Archive::open(path)?;
    let id = archive.id();
    let mut target = shared.output.to_path_buf();
    for (key, value) in shared.levels {
        let value = partition::expand(value, path, &id)?;
        target.push(format!("{key}={value}"));
    }
    std::fs::create_dir_all(&target)
        .with_context(|| format!("{}: create directory", target.display()))?;
    if lock(&shared.cleared).insert(target.clone()) {
        temporary::remove_leftovers(&target);
    }
    let file = target.join(format!("{id}.parquet"));
    if held_before(&shared.holders, &file, i) {
        return Ok(Done::Skipped { file });
    }
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let batch = export::catalog_batch(&archive, &shown.to_string_lossy());
    drop(archive);
    // Encoded first, then written in one go: a killed catalog seldom leaves a
    // temporary file, and a write error is reported, not lost in a buffer's drop.
    let mut encoded = Vec::new();
    export::write(&batch, Format::Parquet, &mut encoded, &file)?;
    let (tmp, mut f) = Temporary::create(&target, &id)?;
    f.write_all(&encoded)
        .with_context(|| format!("{}: write", file.display()))?;
    drop(f);
    // One rename at a time, so that the file ends with the rows of the earliest
    // argument, however the threads ran.
    let mut holders = lock(&shared.holders);
    if holders.get(&file).is_some_and(|&h| h < i) {
        return Ok(Done::Skipped { file });
    }
    if let Ok(there) = std::fs::symlink_metadata(&file)
        && !there.is_file()
    {
        bail!(
            "{}: is {}; not replaced by a catalog file",
            file.display(),
            kind(&there)
        );
    }
    tmp.place(&file)?;
    holders.insert(file.clone(), i);
    Ok(Done::Wrote {
        file,
        rows: batch.num_rows(),
    })
}

/// Whether `file` already holds the rows of an argument before `i`.
fn held_before(holders: &Mutex<HashMap<PathBuf, usize>>, file: &Path, i: usize) -> bool {
    lock(holders).get(file).is_some_and(|&h| h < i)
}
