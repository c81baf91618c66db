//! The znippy-uring command line: a thin layer over the library.
//!
//! Exit status: 0 success; 1 failure (the one-line message names the file and the
//! problem; for `verify`, damage was found); 2 invalid command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
mod cli;

use cli::stdio::{open_archive, read_list, stdout_for_archive};
use cli::{Output, Stream, mb_per_s, ratio};
use serde_json::json;
use znippy_uring::pack::{Destination, Selection};
use znippy_uring::read::export::{self, Format};
use znippy_uring::{EntryKind, IoMode, PackOptions, UnpackOptions};

#[derive(Parser)]
#[command(
    name = "znippy-uring",
    version,
    about = "Parallel io_uring archiver: zstd chunks, Arrow index, per-file random access"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

/// Flags every command takes.
#[derive(clap::Args)]
struct Global {
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
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Pack a directory tree into an archive.
    Pack {
        /// Directory to pack (with --from-list: the directory the listed paths are
        /// under; default the current one).
        #[arg(required_unless_present = "from_list")]
        dir: Option<PathBuf>,
        /// Archive to write (replaced atomically when complete); `-` streams it to
        /// standard output.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Pack only the paths listed in FILE (`-`: standard input), NUL-separated as
        /// `find -print0` writes them; listed directories are not descended.
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
        /// read and name the file), retry (read it again until a read sees it unchanged,
        /// and name it), or ignore (do not check: about 5% faster).
        #[arg(long, default_value = "fail")]
        on_change: znippy_uring::pack::OnChange,
        /// Extended attributes to archive: none, user (user.*), or all (also security.*
        /// and trusted.*).
        #[arg(long, default_value = "user")]
        xattrs: znippy_uring::XattrPolicy,
        /// Leave out paths matching this gitignore-style pattern, relative to DIR
        /// (`*.log`, `build/`, `/top-only`, `!keep.log`); repeatable.
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
    },
    /// Unpack a whole archive into a directory.
    Unpack {
        /// Archive to read (`-`: standard input).
        archive: PathBuf,
        /// Target directory (created if missing).
        #[arg(short = 'C', long = "directory", default_value = ".")]
        dir: PathBuf,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        restore: Restore,
    },
    /// Extract some entries (a directory brings its contents).
    Extract {
        /// Archive to read (`-`: standard input).
        archive: PathBuf,
        /// Paths inside the archive.
        #[arg(required = true)]
        paths: Vec<OsString>,
        /// Target directory (created if missing).
        #[arg(short = 'C', long = "directory", default_value = ".")]
        dir: PathBuf,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        restore: Restore,
    },
    /// List the entries.
    List {
        /// Archive to read (`-`: standard input).
        archive: PathBuf,
        /// Long format: mode, size, mtime, path.
        #[arg(short = 'l', long)]
        long: bool,
    },
    /// Check every chunk and file checksum; name every damaged file.
    Verify {
        /// Archive to read (`-`: standard input).
        archive: PathBuf,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Write one file to standard output, reading only its chunks.
    Cat {
        /// Archive to read (`-`: standard input).
        archive: PathBuf,
        /// Path inside the archive.
        path: OsString,
    },
    /// Show format version, counts, sizes, ratio and groups.
    Info {
        /// Archive to read (`-`: standard input).
        archive: PathBuf,
    },
    /// Write the index as one table for pyarrow, Polars, DuckDB (docs/QUERY.md).
    Index {
        /// Archive to read (`-`: standard input).
        archive: PathBuf,
        /// Output file (default: standard output).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// arrow (an Arrow IPC file), csv or json (JSON lines); default: from the
        /// output's extension, else arrow.
        #[arg(long)]
        format: Option<Format>,
        /// Export the chunks table instead of the entries.
        #[arg(long)]
        chunks: bool,
    },
    /// Benchmark pack/unpack/verify/list/cat on standard corpora or a tree, optionally
    /// side by side with tar | zstd -T0.
    Bench {
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
        corpora: Vec<znippy_uring::bench::corpus::Corpus>,
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
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `znippy-uring man > znippy-uring.1`.
    Man,
    /// Internal to `bench`: run `sh -c SCRIPT` and print seconds, peak RSS (KiB) and
    /// exit status, measured from this small process.
    #[command(hide = true)]
    MeasureExec {
        /// File for the script's stderr.
        log: PathBuf,
        /// The shell script.
        script: String,
    },
}

/// What metadata extraction restores beyond data, mtimes and `rwx` bits. The defaults
/// are GNU tar's: both on when running as root, off otherwise.
#[derive(clap::Args)]
struct Restore {
    /// Restore owners [default when root]: by archived user and group name where the
    /// name exists here, else by archived id.
    #[arg(long, overrides_with = "no_same_owner")]
    same_owner: bool,
    /// Do not restore owners [default when not root].
    #[arg(long)]
    no_same_owner: bool,
    /// Restore owners by archived id only, ignoring the names.
    #[arg(long)]
    numeric_owner: bool,
    /// Restore setuid, setgid and sticky bits too [default when root].
    #[arg(short = 'p', long, overrides_with = "no_preserve_permissions")]
    preserve_permissions: bool,
    /// Restore only rwx bits [default when not root].
    #[arg(long)]
    no_preserve_permissions: bool,
    /// Extended attributes to restore: none, user (user.*), or all (also security.* and
    /// trusted.*).
    #[arg(long, default_value = "user")]
    xattrs: znippy_uring::XattrPolicy,
    /// Create device nodes [default when root].
    #[arg(long, overrides_with = "no_devices")]
    devices: bool,
    /// Do not create device nodes [default when not root].
    #[arg(long)]
    no_devices: bool,
    /// Memory for chunks being decompressed, at any thread count (suffixes K, M, G):
    /// fewer threads run when it cannot hold two chunks for each.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    memory: usize,
}

impl Restore {
    fn options(&self, threads: Option<usize>) -> UnpackOptions {
        let d = UnpackOptions::default();
        let pick = |yes: bool, no: bool, default: bool| {
            if yes {
                true
            } else if no {
                false
            } else {
                default
            }
        };
        UnpackOptions {
            threads: threads.unwrap_or(d.threads),
            same_owner: pick(self.same_owner, self.no_same_owner, d.same_owner),
            numeric_owner: self.numeric_owner,
            preserve_permissions: pick(
                self.preserve_permissions,
                self.no_preserve_permissions,
                d.preserve_permissions,
            ),
            xattrs: self.xattrs,
            devices: pick(self.devices, self.no_devices, d.devices),
            memory: self.memory,
        }
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = [
        ("kib", 1usize << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("k", 1 << 10),
        ("m", 1 << 20),
        ("g", 1 << 30),
    ]
    .iter()
    .find_map(|(suf, m)| lower.strip_suffix(suf).map(|n| (n.to_string(), *m)))
    .unwrap_or((lower.clone(), 1));
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?} (examples: 1M, 256K, 1048576)"))
}

fn threads(t: Option<usize>) -> usize {
    t.unwrap_or_else(|| UnpackOptions::default().threads)
}

fn main() -> ExitCode {
    // Like other Unix filters, stop quietly when the reader of our output goes away
    // (`znippy-uring cat ... | head`); Rust ignores SIGPIPE by default.
    // SAFETY: restoring a default signal disposition at start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let level = match cli.global.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .format_timestamp(None)
        .format_target(false)
        .init();
    znippy_uring::pack::remove_temporaries_on_signal();
    let out = cli::Output {
        json: cli.global.json,
        quiet: cli.global.quiet,
        progress: cli.global.progress,
    };
    match run(cli.command, out) {
        Ok(code) => code,
        Err(e) => {
            // The library's errors already show their cause; print each text once.
            let mut msg = String::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if !msg.ends_with(&cause) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&cause);
                }
            }
            eprintln!("znippy-uring: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Command, out: Output) -> Result<ExitCode> {
    match cmd {
        Command::Pack {
            dir,
            output,
            level,
            threads: t,
            chunk_size,
            no_skip,
            store,
            memory,
            pkg_type,
            repo,
            io,
            on_change,
            xattrs,
            exclude,
            from_list,
        } => {
            let root = dir.unwrap_or_else(|| PathBuf::from("."));
            let selection = match &from_list {
                Some(list) => Selection::List {
                    paths: read_list(list)?,
                    root,
                },
                None => Selection::Tree(root),
            };
            let to_stdout = output.as_os_str() == "-";
            let dest = if to_stdout {
                Destination::Stream(stdout_for_archive()?)
            } else {
                Destination::Path(output.clone())
            };
            let opts = PackOptions {
                level,
                threads: threads(t),
                chunk_size,
                skip_compressed: !no_skip,
                store,
                memory,
                pkg_type,
                repo,
                io,
                on_change,
                xattrs,
                progress: None,
                exclude,
            };
            let start = Instant::now();
            let bar = cli::progress::Bar::start(&out, "pack");
            let opts = PackOptions {
                progress: Some(bar.counters()),
                ..opts
            };
            let r = znippy_uring::pack::pack_to(&selection, dest, &opts);
            drop(bar);
            let r = r?;
            let secs = start.elapsed().as_secs_f64();
            if let Some(why) = &r.fallback {
                eprintln!("znippy-uring: {why}");
            }
            for w in &r.warnings {
                eprintln!("znippy-uring: warning: {w}");
            }
            let summary = || {
                format!(
                    "packed {} files, {} dirs, {} symlinks, {} hard links, {} special: {} -> {} bytes (ratio {:.2}) in {:.2} s, {:.0} MB/s [{}]",
                    r.files,
                    r.dirs,
                    r.symlinks,
                    r.hardlinks,
                    r.specials,
                    r.bytes_in,
                    r.archive_len,
                    ratio(r.bytes_in, r.archive_len),
                    secs,
                    mb_per_s(r.bytes_in, secs),
                    r.backend
                )
            };
            let report = json!({
                "command": "pack",
                "archive": output,
                "entries": r.entries,
                "files": r.files,
                "dirs": r.dirs,
                "symlinks": r.symlinks,
                "hardlinks": r.hardlinks,
                "specials": r.specials,
                "bytes_in": r.bytes_in,
                "bytes_out": r.archive_len,
                "ratio": ratio(r.bytes_in, r.archive_len),
                "chunks": r.chunks,
                "stored_chunks": r.stored_chunks,
                "seconds": secs,
                "mb_per_s": mb_per_s(r.bytes_in, secs),
                "backend": r.backend.to_string(),
                "fallback": r.fallback,
                "warnings": r.warnings,
                "compressors": r.compressors,
                "pipeline_bytes": r.pipeline_bytes,
                "stages": r.stages,
            });
            for s in &r.stages {
                log::info!("pack: {}", s.line());
            }
            let stream = if to_stdout {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            out.report(stream, summary, report);
        }
        Command::Unpack {
            archive,
            dir,
            threads: t,
            restore,
        } => {
            let start = Instant::now();
            let bar = cli::progress::Bar::start(&out, "unpack");
            let a = open_archive(&archive)?.with_progress(bar.counters());
            let r = a.unpack(&dir, &restore.options(t));
            drop(bar);
            let r = r?;
            unpacked(
                &out,
                "unpack",
                &archive,
                &dir,
                &r,
                start.elapsed().as_secs_f64(),
            );
        }
        Command::Extract {
            archive,
            paths,
            dir,
            threads: t,
            restore,
        } => {
            let start = Instant::now();
            let bar = cli::progress::Bar::start(&out, "extract");
            let a = open_archive(&archive)?.with_progress(bar.counters());
            let paths: Vec<&[u8]> = paths.iter().map(|p| p.as_bytes()).collect();
            let r = a.extract(&paths, &dir, &restore.options(t));
            drop(bar);
            let r = r?;
            unpacked(
                &out,
                "extract",
                &archive,
                &dir,
                &r,
                start.elapsed().as_secs_f64(),
            );
        }
        Command::Index {
            archive,
            output,
            format,
            chunks,
        } => {
            let a = open_archive(&archive)?;
            let format = format
                .or_else(|| output.as_deref().and_then(Format::from_extension))
                .unwrap_or(Format::Arrow);
            let table = if chunks {
                export::Table::Chunks
            } else {
                export::Table::Entries
            };
            let output = output.filter(|o| o.as_os_str() != "-");
            match &output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("{}: create", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    export::export(&a, table, format, &mut w, path)?;
                    w.flush()
                        .with_context(|| format!("{}: write", path.display()))?;
                }
                None => {
                    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                    export::export(&a, table, format, &mut w, "<stdout>".as_ref())?;
                    w.flush().context("<stdout>: write")?;
                }
            }
            let rows = match table {
                export::Table::Entries => a.entries().len(),
                export::Table::Chunks => a.chunks().len(),
            };
            let name = output
                .as_ref()
                .map_or("standard output".to_string(), |p| p.display().to_string());
            let format = format!("{format:?}").to_lowercase();
            let report = json!({
                "command": "index",
                "archive": archive,
                "output": output,
                "format": format,
                "table": if chunks { "chunks" } else { "entries" },
                "rows": rows,
            });
            let stream = if output.is_some() {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            out.report(
                stream,
                || format!("wrote {rows} rows to {name} ({format})"),
                report,
            );
        }
        Command::List { archive, .. } if out.json => {
            // The entries themselves, one JSON object a line (as `index --format json`).
            let a = open_archive(&archive)?;
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            let table = export::Table::Entries;
            export::export(&a, table, Format::Json, &mut w, "<stdout>".as_ref())?;
            w.flush().context("<stdout>: write")?;
        }
        Command::List { archive, long } => {
            let a = open_archive(&archive)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for e in a.entries() {
                if long {
                    let user = e.user.as_deref().map_or(e.uid.to_string(), str::to_owned);
                    let group = e.group.as_deref().map_or(e.gid.to_string(), str::to_owned);
                    write!(
                        out,
                        "{} {:<17} {:>12} {} ",
                        mode_string(e.kind, e.mode),
                        format!("{user}/{group}"),
                        e.size,
                        format_time(e.mtime_ns)
                    )?;
                }
                out.write_all(&e.path)?;
                if let (true, Some(t)) = (long, &e.link_target) {
                    let arrow: &[u8] = if e.kind == EntryKind::Hardlink {
                        b" link to "
                    } else {
                        b" -> "
                    };
                    out.write_all(arrow)?;
                    out.write_all(t)?;
                }
                out.write_all(b"\n")?;
            }
            out.flush().context("writing the listing")?;
        }
        Command::Verify {
            archive,
            threads: t,
        } => {
            let start = Instant::now();
            let bar = cli::progress::Bar::start(&out, "verify");
            let a = open_archive(&archive)?.with_progress(bar.counters());
            let r = a.verify(threads(t));
            drop(bar);
            let r = r?;
            let secs = start.elapsed().as_secs_f64();
            for (path, why) in &r.damaged {
                eprintln!("DAMAGED {path}: {why}");
            }
            if out.json {
                let report = json!({
                    "command": "verify",
                    "archive": archive,
                    "ok": r.is_ok(),
                    "files": r.files,
                    "chunks": r.chunks,
                    "bytes": r.bytes,
                    "seconds": secs,
                    "mb_per_s": mb_per_s(r.bytes, secs),
                    "damaged": r.damaged.iter().map(|(path, problem)| json!({"path": path, "problem": problem})).collect::<Vec<_>>(),
                    "damaged_chunks": r.damaged_chunks.iter().map(|(chunk, problem)| json!({"chunk": chunk, "problem": problem})).collect::<Vec<_>>(),
                });
                out.report(Stream::Stdout, String::new, report);
            }
            if !r.is_ok() {
                bail!("{}: {} damaged file(s)", archive.display(), r.damaged.len());
            }
            if !out.json && !out.quiet {
                eprintln!(
                    "verified {} files, {} chunks, {} bytes in {:.2} s, {:.0} MB/s: OK",
                    r.files,
                    r.chunks,
                    r.bytes,
                    secs,
                    mb_per_s(r.bytes, secs)
                );
            }
        }
        Command::Cat { archive, path } => {
            let start = Instant::now();
            let a = open_archive(&archive)?;
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            let bytes = a.read_file(path.as_bytes(), &mut w)?;
            w.flush().context("writing to standard output")?;
            // A filter: no summary line, but a report on stderr when asked.
            if out.json {
                let report = json!({
                    "command": "cat",
                    "archive": archive,
                    "path": path.to_string_lossy(),
                    "bytes": bytes,
                    "seconds": start.elapsed().as_secs_f64(),
                });
                out.report(Stream::Stderr, String::new, report);
            }
        }
        Command::Info { archive } => {
            let a = open_archive(&archive)?;
            let count = |k| a.entries().iter().filter(|e| e.kind == k).count();
            let raw: u64 = a.chunks().iter().map(|c| c.raw_len).sum();
            let stored: u64 = a.chunks().iter().map(|c| c.stored_len).sum();
            let zstd = a
                .chunks()
                .iter()
                .filter(|c| c.codec == znippy_uring::format::chunk::Codec::Zstd)
                .count();
            let specials = count(EntryKind::Fifo)
                + count(EntryKind::CharDevice)
                + count(EntryKind::BlockDevice);
            if out.json {
                let groups: Vec<_> = a
                    .groups()
                    .iter()
                    .map(|(g, range)| {
                        json!({"pkg_type": g.pkg_type, "repo": g.repo, "entries": range.len()})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({
                        "command": "info",
                        "archive": archive,
                        "format_version": znippy_uring::format::header::VERSION,
                        "size": a.len(),
                        "entries": a.entries().len(),
                        "files": count(EntryKind::File),
                        "dirs": count(EntryKind::Dir),
                        "symlinks": count(EntryKind::Symlink),
                        "hardlinks": count(EntryKind::Hardlink),
                        "specials": specials,
                        "chunks": a.chunks().len(),
                        "zstd_chunks": zstd,
                        "stored_chunks": a.chunks().len() - zstd,
                        "data_bytes": raw,
                        "blob_bytes": stored,
                        "ratio": ratio(raw, stored),
                        "groups": groups,
                    })
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!("archive:        {}", archive.display());
            println!("format version: {}", znippy_uring::format::header::VERSION);
            println!("size:           {} bytes", a.len());
            println!(
                "entries:        {} ({} files, {} dirs, {} symlinks, {} hard links, {} special)",
                a.entries().len(),
                count(EntryKind::File),
                count(EntryKind::Dir),
                count(EntryKind::Symlink),
                count(EntryKind::Hardlink),
                specials
            );
            println!(
                "chunks:         {} ({} zstd, {} stored)",
                a.chunks().len(),
                zstd,
                a.chunks().len() - zstd
            );
            println!(
                "data:           {raw} bytes in {stored} bytes of blobs (ratio {:.2})",
                raw as f64 / stored.max(1) as f64
            );
            println!("groups:         {}", a.groups().len());
            for (g, range) in a.groups() {
                let pkg = g.pkg_type.map_or("-".to_string(), |p| p.to_string());
                println!(
                    "  pkg_type {pkg:>5}  repo {:<20} {} entries",
                    g.repo.as_deref().unwrap_or("-"),
                    range.len()
                );
            }
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "znippy-uring", &mut std::io::stdout());
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut w = std::io::stdout().lock();
            clap_mangen::Man::new(cmd.clone())
                .render(&mut w)
                .context("writing the manual page")?;
            // Then each command's options, in one page.
            for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                writeln!(
                    w,
                    ".SH \"{} COMMAND\"\n{about}",
                    sub.get_name().to_uppercase()
                )?;
                clap_mangen::Man::new(sub.clone())
                    .render_options_section(&mut w)
                    .context("writing the manual page")?;
            }
        }
        Command::MeasureExec { log, script } => {
            let (secs, rss, code) = znippy_uring::bench::measure::exec_measured(&script, &log)?;
            println!("{secs} {rss} {code}");
        }
        Command::Bench {
            scale,
            seed,
            corpora,
            dir,
            reps,
            compare,
            level,
            threads,
            scratch,
            cold,
            work,
        } => {
            use znippy_uring::bench;
            let corpora = if corpora.is_empty() && dir.is_empty() {
                bench::corpus::Corpus::ALL.to_vec()
            } else {
                corpora
            };
            if !(scale > 0.0 && scale.is_finite()) {
                bail!("--scale must be a positive number");
            }
            let opts = bench::BenchOptions {
                scratch: scratch.unwrap_or_else(|| std::env::temp_dir().join("znippy-bench")),
                scale,
                seed,
                corpora,
                dirs: dir,
                reps,
                compare,
                level,
                threads,
                exe: std::env::current_exe().context("locating this executable")?,
                cold,
                work,
            };
            let mut bar = cli::progress::JobsBar::new(&out);
            let report = bench::run(&opts, |step| bar.step(step));
            drop(bar);
            let report = report?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", bench::table(&report));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports an unpack or extract.
fn unpacked(
    out: &Output,
    command: &str,
    archive: &std::path::Path,
    dir: &std::path::Path,
    r: &znippy_uring::UnpackReport,
    secs: f64,
) {
    if r.skipped_devices > 0 {
        eprintln!(
            "znippy-uring: warning: {} device node(s) not created (root only; --devices)",
            r.skipped_devices
        );
    }
    let summary = || {
        format!(
            "{command}ed {} files, {} dirs, {} symlinks, {} hard links, {} special, {} bytes in {:.2} s, {:.0} MB/s",
            r.files,
            r.dirs,
            r.symlinks,
            r.hardlinks,
            r.specials,
            r.bytes,
            secs,
            mb_per_s(r.bytes, secs)
        )
    };
    let report = json!({
        "command": command,
        "archive": archive,
        "target": dir,
        "files": r.files,
        "dirs": r.dirs,
        "symlinks": r.symlinks,
        "hardlinks": r.hardlinks,
        "specials": r.specials,
        "skipped_devices": r.skipped_devices,
        "bytes": r.bytes,
        "seconds": secs,
        "mb_per_s": mb_per_s(r.bytes, secs),
        "threads": r.threads,
        "stages": r.stages,
    });
    for s in &r.stages {
        log::info!("{command}: {}", s.line());
    }
    out.report(Stream::Stdout, summary, report);
}

/// `ls -l` style mode string.
fn mode_string(kind: EntryKind, mode: u32) -> String {
    let t = match kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Hardlink => 'h',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
        EntryKind::File => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// UTC `YYYY-MM-DD HH:MM:SS` from nanoseconds since the epoch.
fn format_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("256k"), Ok(256 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("x").is_err());
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(
            format_time(1_700_000_000_000_000_000),
            "2023-11-14 22:13:20"
        );
        assert_eq!(format_time(-1_000_000_000), "1969-12-31 23:59:59");
        assert_eq!(mode_string(EntryKind::Dir, 0o40755), "drwxr-xr-x");
    }
}
