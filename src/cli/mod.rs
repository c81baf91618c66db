//! The command line, one module per command: each holds its clap arguments (`Args`)
//! and the function that runs it, with typed options into the library and a typed
//! report out ([`report`]). Nothing here is part of the library's API.

mod args;
mod bench;
mod cat;
mod catalog;
mod completions;
mod index;
mod info;
mod list;
mod man;
mod mount;
mod pack;
mod progress;
mod report;
mod stdio;
mod unpack;
mod utc;
mod verify;

use clap::{Parser, Subcommand};
pub use report::Reporting;

/// Exit status of a pack that wrote its archive without some entries it could not
/// read (`--on-unreadable warn`).
pub const SKIPPED_STATUS: u8 = 3;

/// A command that did its work, but not all of it: it ends with `status` (not 0, 1 or
/// 2) and `message` as a warning, after its report.
#[derive(Debug)]
pub struct Incomplete {
    /// The exit status.
    pub status: u8,
    /// What was left undone.
    pub message: String,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Incomplete {}

/// An invalid command line found after parsing (a value out of range, say): exit
/// status 2, as for what clap refuses.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

#[derive(Parser)]
#[command(
    name = "znippy-uring",
    version,
    about = "Parallel io_uring archiver: zstd chunks, Arrow index, per-file random access"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

/// Flags every command takes.
#[derive(clap::Args)]
pub struct Global {
    /// Print a JSON report (docs/JSON.md) instead of the summary line.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bar and no summary line (warnings and errors are still printed).
    #[arg(short = 'q', long, global = true)]
    quiet: bool,
    /// Show progress even when stderr is not a terminal (then as a line a second).
    #[arg(long, global = true, conflicts_with = "quiet")]
    progress: bool,
    /// Log decisions to stderr: -v the I/O backend, threads and rings, -vv more.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl Global {
    /// How commands report.
    pub fn reporting(&self) -> Reporting {
        Reporting {
            json: self.json,
            quiet: self.quiet,
            progress: self.progress,
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Pack a directory tree into an archive.
    Pack(pack::Args),
    /// Unpack a whole archive into a directory.
    Unpack(unpack::UnpackArgs),
    /// Extract some entries (a directory brings its contents).
    Extract(unpack::ExtractArgs),
    /// List the entries.
    List(list::Args),
    /// Check every chunk and file checksum; name every damaged file.
    Verify(verify::Args),
    /// Write one file to standard output, reading only its chunks.
    Cat(cat::Args),
    /// Show format version, counts, sizes, ratio and groups.
    Info(info::Args),
    /// Write the index as one table for pyarrow, Polars, DuckDB (docs/QUERY.md).
    Index(index::Args),
    /// Mount an archive read-only on a directory (FUSE), until Ctrl-C or umount.
    ///
    /// Every entry appears with its metadata; reads decode only the chunks they
    /// touch, each checked against its BLAKE3 first (a damaged chunk gives EIO for its
    /// files, logged by name); every change fails with EROFS. As root the file system
    /// is mounted with mount(2); other users need the fusermount3 helper (the fuse3
    /// package), and --allow-other needs user_allow_other in /etc/fuse.conf. It stays
    /// in the foreground and unmounts on SIGINT, SIGTERM or SIGHUP, or ends when
    /// unmounted with umount or fusermount3 -u.
    Mount(mount::Args),
    /// Write a Parquet catalog of many archives, hive-partitioned, for DuckDB,
    /// Polars, DataFusion and Spark (docs/QUERY.md).
    ///
    /// One file per archive, named by the archive's id, under KEY=VALUE directories
    /// (--partition); each row is an entry led by archive_id and archive.
    /// Cataloguing an archive again replaces its file.
    Catalog(catalog::Args),
    /// Benchmark pack/unpack/verify/list/cat on standard corpora or a tree, optionally
    /// side by side with tar | zstd -T0.
    Bench(bench::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print the manual page (roff), e.g. `znippy-uring man > znippy-uring.1`.
    Man,
    /// Internal to `bench`: run `sh -c SCRIPT` and print seconds, peak RSS (KiB) and
    /// exit status, measured from this small process.
    #[command(hide = true)]
    MeasureExec(bench::MeasureExecArgs),
}

/// Runs one command.
pub fn run(command: Command, out: &Reporting) -> anyhow::Result<()> {
    match command {
        Command::Pack(a) => pack::run(a, out),
        Command::Unpack(a) => unpack::run_unpack(a, out),
        Command::Extract(a) => unpack::run_extract(a, out),
        Command::List(a) => list::run(a, out),
        Command::Verify(a) => verify::run(a, out),
        Command::Cat(a) => cat::run(a, out),
        Command::Info(a) => info::run(a, out),
        Command::Index(a) => index::run(a, out),
        Command::Mount(a) => mount::run(a, out),
        Command::Catalog(a) => catalog::run(a, out),
        Command::Bench(a) => bench::run(a, out),
        Command::Completions(a) => completions::run(a),
        Command::Man => man::run(),
        Command::MeasureExec(a) => bench::measure_exec(a),
    }
}
