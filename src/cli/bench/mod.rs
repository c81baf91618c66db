//! `znippy-uring bench`: the benchmark rig ([`rig`]) on generated corpora
//! ([`corpus`]) or real trees, each job timed from a small process of its own
//! ([`measure`]). A part of the command line, not of the library.

pub mod corpus;
pub mod measure;
pub mod rig;
mod table;

use super::Reporting;
use super::progress::JobsBar;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Corpus size factor (1: text 500 MB, binary 256 MB, random 256 MB, 100,000
    /// small files, mixed repo ~300 MB, one 2 GiB file).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seed of the corpus generators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Corpora to run (text, binary, random, small, mixed, big; default all, or
    /// none when --dir is given).
    #[arg(long = "corpus", value_delimiter = ',')]
    corpora: Vec<corpus::Corpus>,
    /// A real directory tree to benchmark (repeatable).
    #[arg(long)]
    dir: Vec<PathBuf>,
    /// Repetitions of each job; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Also run tar | zstd -T0 and plain tar on the same data, alternating.
    #[arg(long)]
    compare: bool,
    /// zstd level for us and the peer.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    level: i32,
    /// Compressor threads for us (default: all cores); a list (`1,2,4,8,16`) also
    /// times our pack at each count and prints a scaling table (time, speed-up,
    /// efficiency, stage utilization, peak RSS); the other jobs use the last count.
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Scratch directory (corpora are kept there and reused).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Drop the page cache before every timed job (needs root): data comes from disk.
    #[arg(long)]
    cold: bool,
    /// Where archives and unpacked trees go (default: the scratch directory), e.g. a
    /// tmpfs to measure unpack without the disk file system's costs.
    #[arg(long)]
    work: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct MeasureExecArgs {
    /// File for the script's stderr.
    log: PathBuf,
    /// The shell script.
    script: String,
}

/// Runs the benchmark; prints the tables, or with `--json` the whole report.
pub fn run(args: Args, out: &Reporting) -> Result<()> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be a positive number");
    }
    let corpora = if args.corpora.is_empty() && args.dir.is_empty() {
        corpus::Corpus::ALL.to_vec()
    } else {
        args.corpora
    };
    let opts = rig::BenchOptions {
        scratch: (args.scratch).unwrap_or_else(|| std::env::temp_dir().join("znippy-bench")),
        scale: args.scale,
        seed: args.seed,
        corpora,
        dirs: args.dir,
        reps: args.reps,
        compare: args.compare,
        level: args.level,
        threads: args.threads,
        exe: std::env::current_exe().context("locating this executable")?,
        cold: args.cold,
        work: args.work,
    };
    let mut bar = JobsBar::new(out);
    let report = rig::run(&opts, |step| bar.step(step));
    drop(bar);
    let report = report?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table::report(&report));
    }
    Ok(())
}

/// `measure-exec LOG SCRIPT`: one timed job, run by the rig in a process of its own.
pub fn measure_exec(args: MeasureExecArgs) -> Result<()> {
    let (secs, rss, code) = measure::exec_measured(&args.script, &args.log)?;
    println!("{secs} {rss} {code}");
    Ok(())
}
