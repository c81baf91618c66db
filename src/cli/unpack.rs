//! `znippy-uring unpack` (a whole archive) and `extract` (some entries): the same
//! restore options, the same report.

use super::args::{parse_max_size, parse_size, threads};
use super::progress::Bar;
use super::report::{Report, Reporting, Stream, Timing, lossy};
use super::stdio::open_archive_with;
use anyhow::Result;
use serde::Serialize;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use znippy_uring::{Archive, MaxSize, UnpackOptions, UnpackReport, XattrPolicy};

#[derive(clap::Args)]
pub struct UnpackArgs {
    #[command(flatten)]
    shared: Shared,
}

#[derive(clap::Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    shared: Shared,
    /// Paths inside the archive.
    #[arg(required = true)]
    paths: Vec<OsString>,
}

/// What unpack and extract share: the archive, where to, how, and what to restore.
#[derive(clap::Args)]
struct Shared {
    /// Archive to read (`-`: standard input).
    archive: PathBuf,
    /// Target directory (created if missing).
    #[arg(short = 'C', long = "directory", default_value = ".")]
    dir: PathBuf,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Flush everything written to stable storage before reporting success (one
    /// syncfs of the target's file system).
    #[arg(long)]
    sync: bool,
    /// An archive this incremental archive builds on, when not beside it under its
    /// recorded name (repeatable).
    #[arg(long = "base", value_name = "ARCHIVE")]
    bases: Vec<PathBuf>,
    #[command(flatten)]
    restore: RestoreFlags,
}

/// What metadata extraction restores beyond data, mtimes and `rwx` bits. The defaults
/// are GNU tar's: both on when running as root, off otherwise.
#[derive(clap::Args)]
struct RestoreFlags {
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
    xattrs: XattrPolicy,
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
    /// Refuse, before writing anything, when the files to write declare more bytes
    /// than this (suffixes K, M, G; or unlimited) [default: the target's free space].
    #[arg(long, value_name = "SIZE", value_parser = parse_max_size)]
    max_size: Option<MaxSize>,
    /// Give directories that exist already the archive's owner, mode and mtime too
    /// (GNU tar's default); by default only directories unpack makes get them. Only
    /// where no other user can write the target: such a user could rename one of
    /// yours into an archived directory's place.
    #[arg(long)]
    overwrite_dir: bool,
}

impl RestoreFlags {
    fn options(&self, threads_flag: Option<usize>) -> UnpackOptions {
        let d = UnpackOptions::default();
        // A flag pair: `--x` on, `--no-x` off, neither: the default.
        let pick = |yes: bool, no: bool, default: bool| yes || (!no && default);
        UnpackOptions {
            threads: threads(threads_flag),
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
            sync: false,
            max_size: self.max_size.unwrap_or_default(),
            overwrite_dirs: self.overwrite_dir,
        }
    }
}

/// `unpack --json` and `extract --json`.
#[derive(Serialize)]
struct UnpackJson<'a> {
    #[serde(serialize_with = "lossy")]
    target: &'a Path,
    #[serde(flatten)]
    report: &'a UnpackReport,
    #[serde(flatten)]
    timing: Timing,
}

impl Report for UnpackJson<'_> {
    fn summary(&self, command: &str) -> String {
        let r = self.report;
        format!(
            "{command}ed {} files, {} dirs, {} symlinks, {} hard links, {} special, {} bytes in {:.2} s, {:.0} MB/s",
            r.files,
            r.dirs,
            r.symlinks,
            r.hardlinks,
            r.specials,
            r.bytes,
            self.timing.seconds,
            self.timing.mb_per_s
        )
    }
}

pub fn run_unpack(args: UnpackArgs, out: &Reporting) -> Result<()> {
    args.shared
        .run(out, "unpack", |a, dir, opts| a.unpack(dir, opts))
}

pub fn run_extract(args: ExtractArgs, out: &Reporting) -> Result<()> {
    let paths: Vec<&[u8]> = args.paths.iter().map(|p| p.as_bytes()).collect();
    args.shared
        .run(out, "extract", |a, dir, opts| a.extract(&paths, dir, opts))
}

impl Shared {
    /// Opens the archive, runs `restore` with a progress bar, and reports.
    fn run(
        &self,
        out: &Reporting,
        command: &'static str,
        restore: impl FnOnce(&Archive, &Path, &UnpackOptions) -> znippy_uring::Result<UnpackReport>,
    ) -> Result<()> {
        let start = Instant::now();
        let bar = Bar::start(out, command);
        let a = open_archive_with(&self.archive, &self.bases)?.with_progress(bar.counters());
        let opts = UnpackOptions {
            sync: self.sync,
            ..self.restore.options(self.threads)
        };
        let r = restore(&a, &self.dir, &opts);
        drop(bar);
        report(out, command, &self.archive, &self.dir, &r?, start);
        Ok(())
    }
}

fn report(
    out: &Reporting,
    command: &'static str,
    archive: &Path,
    target: &Path,
    r: &UnpackReport,
    start: Instant,
) {
    let timing = Timing::since(start, r.bytes);
    if r.skipped_devices > 0 {
        eprintln!(
            "znippy-uring: warning: {} device node(s) not created (root only; --devices)",
            r.skipped_devices
        );
    }
    for w in &r.xattr_warnings {
        eprintln!("znippy-uring: warning: {w}");
    }
    for s in &r.stages {
        log::info!("{command}: {}", s.line());
    }
    let report = UnpackJson {
        target,
        report: r,
        timing,
    };
    out.report(Stream::Stdout, command, archive, &report);
}
