//! `znippy-uring pack`: a directory tree (or a list of paths under it) into an
//! archive, or streamed to standard output.

use super::args::{parse_size, threads};
use super::progress::Bar;
use super::report::{Report, Reporting, Stream, Timing, ratio};
use super::stdio::{read_list, stdout_for_archive};
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use znippy_uring::{
    Destination, IoMode, OnChange, OnUnreadable, PackOptions, PackReport, Selection, XattrPolicy,
};

#[derive(clap::Args)]
pub struct Args {
    /// Directory to pack (with --from-list: the directory the listed paths are
    /// under; default the current one).
    #[arg(required_unless_present = "from_list")]
    dir: Option<PathBuf>,
    /// Archive to write: a file is replaced atomically when complete (a symlink is
    /// followed); a character device, FIFO or socket is written as a stream; `-`
    /// streams it to standard output.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Pack only the paths listed in FILE (`-`: standard input), NUL-separated as
    /// `find -print0` writes them; listed directories are not descended, and a path
    /// under a symlink (never followed) or a file is refused, naming it.
    #[arg(long, value_name = "FILE")]
    from_list: Option<PathBuf>,
    /// zstd level.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    level: i32,
    /// Compressor threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Chunk size: a power of two from 64K to 64M (suffixes K, M).
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    chunk_size: usize,
    /// Compress known compressed formats too, instead of storing them as-is.
    #[arg(long, conflicts_with = "store")]
    no_skip: bool,
    /// Compress nothing: store every chunk as-is (digests and index as usual), at
    /// the speed of the disks.
    #[arg(long)]
    store: bool,
    /// Memory for chunks in flight, at any thread count (suffixes K, M, G): fewer
    /// compressors run when it cannot hold enough chunks for every thread (-v says).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    memory: usize,
    /// Package type number of the entries' group.
    #[arg(long)]
    pkg_type: Option<u16>,
    /// Repository name of the entries' group.
    #[arg(long)]
    repo: Option<String>,
    /// I/O backend: auto, uring or portable (or set ZNIPPY_IO).
    #[arg(long, default_value = "auto")]
    io: IoMode,
    /// A file changed while being packed: fail (no archive), warn (keep the bytes as
    /// read and name the file, once), retry (read it again, up to 3 times, until a read
    /// sees it unchanged, and name it; fail if all 3 see it change), or ignore (do not
    /// check: about 5% faster).
    #[arg(long, default_value = "fail")]
    on_change: OnChange,
    /// A file that cannot be read or a directory that cannot be listed (permission
    /// denied, I/O error): warn (leave it out, name it, write the archive, and exit
    /// with status 3) or fail (no archive, exit status 1).
    #[arg(long, default_value = "warn", value_name = "warn|fail")]
    on_unreadable: OnUnreadable,
    /// Extended attributes to archive: none, user (user.*), or all (also security.*
    /// and trusted.*).
    #[arg(long, default_value = "user")]
    xattrs: XattrPolicy,
    /// Leave out paths matching this gitignore-style pattern, relative to DIR
    /// (`*.log`, `build/`, `/top-only`, `!keep.log`); repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Pack incrementally: files unchanged since PREVIOUS (same path, size, mtime,
    /// ctime, mode, owner) are not read again; renamed ones, and those whose ctime,
    /// mode or owner alone changed, are hashed and reused if their bytes match; the
    /// new archive describes the whole tree but keeps their data where it already
    /// lies, and reading it needs those archives (found beside it, or named with
    /// --base). PREVIOUS and the archives it builds on cannot be the output.
    #[arg(long, value_name = "PREVIOUS")]
    since: Option<PathBuf>,
    /// With --since: a changed device or inode number counts as a change too.
    #[arg(long, requires = "since")]
    check_inode: bool,
    /// Do not flush the archive to stable storage before reporting success (scratch
    /// work: after a power cut it may be missing or empty).
    #[arg(long)]
    no_sync: bool,
}

/// `pack --json`: the library's report and what only the command line knows.
#[derive(Serialize)]
struct PackJson {
    #[serde(flatten)]
    report: PackReport,
    ratio: f64,
    #[serde(flatten)]
    timing: Timing,
}

impl Report for PackJson {
    fn summary(&self, _: &str) -> String {
        let r = &self.report;
        format!(
            "packed {} files, {} dirs, {} symlinks, {} hard links, {} special: {} -> {} bytes (ratio {:.2}) in {:.2} s, {:.0} MB/s [{}]",
            r.files,
            r.dirs,
            r.symlinks,
            r.hardlinks,
            r.specials,
            r.bytes_in,
            r.archive_len,
            self.ratio,
            self.timing.seconds,
            self.timing.mb_per_s,
            r.backend
        ) + &reused(r)
    }
}

/// For an incremental pack: what was not read again.
fn reused(r: &PackReport) -> String {
    if r.reused_files == 0 {
        return String::new();
    }
    format!(
        "; {} files ({} bytes) unchanged since --since, not read again",
        r.reused_files, r.reused_bytes
    )
}

pub fn run(args: Args, out: &Reporting) -> Result<()> {
    let root = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let selection = match &args.from_list {
        Some(list) => Selection::List {
            paths: read_list(list)?,
            root,
        },
        None => Selection::Tree(root),
    };
    let to_stdout = args.output.as_os_str() == "-";
    let dest = if to_stdout {
        Destination::Stream(stdout_for_archive()?)
    } else {
        Destination::Path(args.output.clone())
    };
    let start = Instant::now();
    let bar = Bar::start(out, "pack");
    let opts = PackOptions {
        progress: Some(bar.counters()),
        ..args.options()
    };
    if let Err(e) = opts.validate() {
        return Err(super::Usage(e.to_string()).into());
    }
    if opts.since.as_deref().is_some_and(|p| p.as_os_str() == "-") {
        return Err(super::Usage(
            "--since -: the archive to build on must be a file (its index is read from its end, and it is named as a base)".into(),
        )
        .into());
    }
    let r = znippy_uring::pack_to(&selection, dest, &opts);
    drop(bar);
    let r = r?;
    let timing = Timing::since(start, r.bytes_in);
    if let Some(why) = &r.fallback {
        eprintln!("znippy-uring: {why}");
    }
    for w in &r.warnings {
        eprintln!("znippy-uring: warning: {w}");
    }
    for s in &r.stages {
        log::info!("pack: {}", s.line());
    }
    let report = PackJson {
        ratio: ratio(r.bytes_in, r.archive_len),
        report: r,
        timing,
    };
    let stream = if to_stdout {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    out.report(stream, "pack", &args.output, &report);
    let skipped = report.report.skipped.len();
    if skipped > 0 {
        return Err(super::Incomplete {
            status: super::SKIPPED_STATUS,
            message: format!(
                "{}: written without {skipped} entr{} that could not be read (named above)",
                if to_stdout {
                    "the archive on standard output".into()
                } else {
                    args.output.display().to_string()
                },
                if skipped == 1 { "y" } else { "ies" }
            ),
        }
        .into());
    }
    Ok(())
}

impl Args {
    fn options(&self) -> PackOptions {
        PackOptions {
            level: self.level,
            threads: threads(self.threads),
            chunk_size: self.chunk_size,
            skip_compressed: !self.no_skip,
            store: self.store,
            memory: self.memory,
            pkg_type: self.pkg_type,
            repo: self.repo.clone(),
            io: self.io,
            on_change: self.on_change,
            on_unreadable: self.on_unreadable,
            xattrs: self.xattrs,
            progress: None,
            exclude: self.exclude.clone(),
            sync: !self.no_sync,
            since: self.since.clone(),
            check_inode: self.check_inode,
            racy_ctime: racy_ctime(),
        }
    }
}

/// `PackOptions::racy_ctime`: the library's default, or for tests the milliseconds in
/// `ZNIPPY_RACY_CTIME_MS` (0 lets them reach the unread path of `--since` on files
/// they have just written).
fn racy_ctime() -> std::time::Duration {
    std::env::var("ZNIPPY_RACY_CTIME_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(znippy_uring::RACY_CTIME, std::time::Duration::from_millis)
}
