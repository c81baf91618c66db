//! `znippy-uring catalog ARCHIVE... -o DIR`: one Parquet file per archive, in a
//! hive-partitioned directory layout (`DIR/host=web1/date=2026-11-30/ID.parquet`) that
//! DuckDB, Polars, DataFusion and Spark read as one table. Each row is an entry, led by
//! its archive's id and path (docs/QUERY.md).
//!
//! Archives are catalogued one after another on each thread, so memory is the index
//! of the largest archive per thread. A file is written under a temporary name and
//! renamed into place: re-cataloguing an archive replaces its file.

use super::report::lossy;
use super::{Output, args::threads};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};
use znippy_uring::Archive;
use znippy_uring::export::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    /// Archives to catalogue.
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
    seconds: f64,
}

pub fn run(args: Args, out: &Output) -> Result<()> {
    let start = Instant::now();
    let levels: Vec<(String, String)> = args
        .partitions
        .iter()
        .map(|p| parse_partition(p))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("{}: create directory", args.output.display()))?;
    let next = AtomicUsize::new(0);
    let written: Mutex<Vec<(usize, PathBuf, usize)>> = Mutex::new(Vec::new());
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let threads = threads(args.threads).clamp(1, args.archives.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(archive) = args.archives.get(i) else {
                        break;
                    };
                    if failed.lock().is_ok_and(|f| f.is_some()) {
                        break;
                    }
                    match catalogue(archive, &args.output, &levels) {
                        Ok((file, rows)) => lock(&written).push((i, file, rows)),
                        Err(e) => {
                            lock(&failed).get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut written = written.into_inner().unwrap_or_else(|p| p.into_inner());
    written.sort_unstable_by_key(|w| w.0);
    let rows = written.iter().map(|w| w.2).sum();
    let report = CatalogJson {
        command: "catalog",
        output: &args.output,
        archives: written.len(),
        rows,
        files: written.iter().map(|w| w.1.display().to_string()).collect(),
        seconds: start.elapsed().as_secs_f64(),
    };
    if out.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if !out.quiet {
        eprintln!(
            "catalogued {} archives, {} rows into {} in {:.2} s",
            report.archives,
            rows,
            args.output.display(),
            report.seconds
        );
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes the catalog file of `path`; returns it and its number of rows.
fn catalogue(path: &Path, dir: &Path, levels: &[(String, String)]) -> Result<(PathBuf, usize)> {
    let archive = Archive::open(path)?;
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut target = dir.to_path_buf();
    for (key, value) in levels {
        let value = expand(value, path, &archive)?;
        target.push(format!("{key}={value}"));
    }
    std::fs::create_dir_all(&target)
        .with_context(|| format!("{}: create directory", target.display()))?;
    let file = target.join(format!("{}.parquet", archive.id()));
    let temporary = target.join(format!(
        ".{}.parquet.tmp-{}",
        archive.id(),
        std::process::id()
    ));
    let batch = export::catalog_batch(&archive, &shown.to_string_lossy());
    let f = std::fs::File::create(&temporary)
        .with_context(|| format!("{}: create", temporary.display()))?;
    let written = export::write(
        &batch,
        Format::Parquet,
        std::io::BufWriter::new(f),
        &temporary,
    )
    .and_then(|()| {
        std::fs::rename(&temporary, &file).map_err(|e| znippy_uring::Error::io(&file, "rename", e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e.into());
    }
    Ok((file, batch.num_rows()))
}

/// `KEY=VALUE`, with a key made of letters, digits and `_`.
fn parse_partition(p: &str) -> Result<(String, String)> {
    let Some((key, value)) = p.split_once('=') else {
        bail!("--partition {p:?}: expected KEY=VALUE, e.g. host={{parent}}");
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if key.is_empty() || !key.chars().all(plain) || value.is_empty() {
        bail!("--partition {p:?}: the key must be letters, digits or _, and the value not empty");
    }
    Ok((key.into(), value.into()))
}

/// `value` with its placeholders filled in for the archive at `path`. The result must
/// be usable as one directory name of a hive partition.
fn expand(value: &str, path: &Path, archive: &Archive) -> Result<String> {
    let name = |p: Option<&std::ffi::OsStr>| p.map(|n| n.to_string_lossy().into_owned());
    let parent = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| name(p.parent().and_then(Path::file_name)));
    let stem = name(path.file_stem());
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut out = value.to_string();
    for (placeholder, filled) in [
        ("{parent}", parent),
        ("{stem}", stem),
        ("{date}", mtime.map(day)),
        ("{id}", Some(archive.id())),
    ] {
        if out.contains(placeholder) {
            let Some(filled) = filled else {
                bail!("{}: no value for {placeholder}", path.display());
            };
            out = out.replace(placeholder, &filled);
        }
    }
    if out.is_empty() || out.contains(['/', '=', '\0']) || out == "." || out == ".." {
        bail!(
            "{}: partition value {out:?} cannot be a directory name",
            path.display()
        );
    }
    Ok(out)
}

/// The UTC day of `t`, `YYYY-MM-DD`.
fn day(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let ((y, m, d), _) = super::utc::date(secs);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_days() {
        assert_eq!(
            parse_partition("host=web1").unwrap(),
            ("host".into(), "web1".into())
        );
        assert!(parse_partition("host").is_err());
        assert!(parse_partition("a/b=c").is_err());
        assert!(parse_partition("k=").is_err());
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_460_800);
        assert_eq!(day(t), "2025-11-30");
        assert_eq!(day(SystemTime::UNIX_EPOCH), "1970-01-01");
    }
}
