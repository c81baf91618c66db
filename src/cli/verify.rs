//! `znippy-uring verify`: every chunk and file checksum; every damaged file named.

use super::args::{parse_size, threads};
use super::progress::Bar;
use super::report::{Report, Reporting, Stream, Timing};
use super::stdio::open_archive_with;
use anyhow::{Result, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use znippy_uring::VerifyReport;

#[derive(clap::Args)]
pub struct Args {
    /// Archive to read (`-`: standard input).
    archive: PathBuf,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// An archive this incremental archive builds on, when not beside it under its
    /// recorded name (repeatable).
    #[arg(long = "base", value_name = "ARCHIVE")]
    bases: Vec<PathBuf>,
    /// Memory for chunks being checked, at any thread count (suffixes K, M, G): fewer
    /// threads run when it cannot hold a chunk's blob and its decompressed bytes for each.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    memory: usize,
}

/// `verify --json`.
#[derive(Serialize)]
struct VerifyJson {
    ok: bool,
    #[serde(flatten)]
    report: VerifyReport,
    #[serde(flatten)]
    timing: Timing,
}

impl Report for VerifyJson {
    fn summary(&self, _: &str) -> String {
        let (r, t) = (&self.report, &self.timing);
        format!(
            "verified {} files, {} chunks, {} bytes in {:.2} s, {:.0} MB/s: OK",
            r.files, r.chunks, r.bytes, t.seconds, t.mb_per_s
        )
    }
}

/// Fails (exit status 1) when anything is damaged, after naming every damaged file on
/// stderr (and, with `--json`, printing the report).
pub fn run(args: Args, out: &Reporting) -> Result<()> {
    let start = Instant::now();
    let bar = Bar::start(out, "verify");
    let a = open_archive_with(&args.archive, &args.bases)?.with_progress(bar.counters());
    let r = a.verify_within(threads(args.threads), args.memory);
    drop(bar);
    let r = r?;
    let timing = Timing::since(start, r.bytes);
    for (path, why) in &r.damaged {
        eprintln!("DAMAGED {path}: {why}");
    }
    let damaged = r.damaged.len();
    let report = VerifyJson {
        ok: r.is_ok(),
        report: r,
        timing,
    };
    // The summary line says OK, so it is printed only when that is true.
    if out.json || report.ok {
        out.report(Stream::Stdout, "verify", &args.archive, &report);
    }
    if !report.ok {
        bail!("{}: {damaged} damaged file(s)", args.archive.display());
    }
    Ok(())
}
