//! `znippy-uring mount ARCHIVE DIR`: the archive as a read-only file system, in the
//! foreground until SIGINT, SIGTERM or SIGHUP (or `umount DIR`), then unmounted.
//!
//! As root the file system is mounted with mount(2); other users need the setuid
//! `fusermount3` helper (the fuse3 package). Either way `/dev/fuse` must exist.

mod ahead;
mod fs;
mod tree;

use super::args::parse_size;
use super::report::{Output, Report, Stream, lossy};
use anyhow::{Context, Result, bail};
use fuser::{Config, MountOption, SessionACL};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use znippy_uring::{Archive, CacheStats, ChunkCache};

#[derive(clap::Args)]
pub struct Args {
    /// Archive to mount.
    archive: PathBuf,
    /// Directory to mount it on (an empty directory).
    mountpoint: PathBuf,
    /// Memory for decompressed chunks, shared by all readers (suffixes K, M, G); the
    /// default holds 128 chunks of 4 MiB.
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    cache_size: usize,
    /// Threads serving requests (default: all cores, at least 2).
    #[arg(long)]
    threads: Option<usize>,
    /// Let other users see the file system (needs `user_allow_other` in
    /// /etc/fuse.conf unless root); the mode bits still apply.
    #[arg(long)]
    allow_other: bool,
    /// Let root see the file system too.
    #[arg(long, conflicts_with = "allow_other")]
    allow_root: bool,
    /// Further mount options, comma-separated, as mount.fuse takes them (noexec,
    /// nosuid, nodev, noatime, fsname=NAME, allow_other, ...).
    #[arg(short = 'o', value_name = "OPTIONS", value_delimiter = ',')]
    options: Vec<String>,
    /// An archive this incremental archive builds on, when not beside it under its
    /// recorded name (repeatable).
    #[arg(long = "base", value_name = "ARCHIVE")]
    bases: Vec<PathBuf>,
}

/// `mount --json`, printed once unmounted.
#[derive(Serialize)]
struct MountJson<'a> {
    #[serde(serialize_with = "lossy")]
    mountpoint: &'a Path,
    entries: usize,
    inodes: usize,
    chunks_decoded: u64,
    cache_hits: u64,
    chunks_prefetched: u64,
    seconds: f64,
}

impl Report for MountJson<'_> {
    fn summary(&self, _: &str) -> String {
        format!(
            "unmounted {} after {:.0} s: {} chunks decoded, {} cache hits, {} prefetched",
            self.mountpoint.display(),
            self.seconds,
            self.chunks_decoded,
            self.cache_hits,
            self.chunks_prefetched
        )
    }
}

pub fn run(args: Args, out: &Output) -> Result<()> {
    check_can_mount()?;
    let start = Instant::now();
    let archive = Archive::open(&args.archive)?.with_bases(&args.bases)?;
    archive.require_bases()?;
    let archive = Arc::new(archive);
    let tree = tree::Tree::build(&archive)?;
    let inodes = tree.len();
    // Every thread started from here on inherits the blocked signals: they are taken
    // by `wait_for_stop`, which then unmounts.
    let signals = block_stop_signals();
    let cache = Arc::new(ChunkCache::new(archive.clone(), args.cache_size));
    let ahead = ahead::Ahead::start(cache.clone(), tree::ino_of);
    let notifier = ahead.notifier.clone();
    let fs = fs::ArchiveFs::new(tree, cache.clone(), ahead);
    let session = fuser::Session::new(fs, &args.mountpoint, &args.config(&archive))
        .with_context(|| format!("{}: mount", args.mountpoint.display()))?
        .spawn()
        .with_context(|| format!("{}: serve", args.mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    if !out.quiet && !out.json {
        eprintln!(
            "mounted {} on {} ({} entries); stop with Ctrl-C or umount",
            args.archive.display(),
            args.mountpoint.display(),
            archive.entries().len()
        );
    }
    wait_for_stop(&signals, &session.guard);
    // Unmounted from outside already, the unmount fails harmlessly; otherwise a
    // failure (the mount busy) is the command's.
    if let Err(e) = session.umount_and_join()
        && still_mounted(&args.mountpoint)
    {
        bail!(
            "{}: unmount: {e} (still mounted: `umount -l` detaches it)",
            args.mountpoint.display()
        );
    }
    let stats: CacheStats = cache.stats();
    let report = MountJson {
        mountpoint: &args.mountpoint,
        entries: archive.entries().len(),
        inodes,
        chunks_decoded: stats.misses,
        cache_hits: stats.hits,
        chunks_prefetched: stats.prefetched,
        seconds: start.elapsed().as_secs_f64(),
    };
    out.report(Stream::Stdout, "mount", &args.archive, &report);
    Ok(())
}

impl Args {
    /// The session's configuration: read-only, permissions checked by the kernel
    /// from the archived modes, several threads each with its own /dev/fuse clone.
    fn config(&self, archive: &Archive) -> Config {
        let mut options = vec![
            MountOption::RO,
            MountOption::DefaultPermissions,
            MountOption::FSName(archive.path().display().to_string()),
            MountOption::Subtype("znippy".into()),
        ];
        let mut acl = if self.allow_other {
            SessionACL::All
        } else if self.allow_root {
            SessionACL::RootAndOwner
        } else {
            SessionACL::Owner
        };
        for o in self
            .options
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
        {
            match o {
                "allow_other" => acl = SessionACL::All,
                "allow_root" => acl = SessionACL::RootAndOwner,
                "ro" | "default_permissions" => {}
                "noexec" => options.push(MountOption::NoExec),
                "nosuid" => options.push(MountOption::NoSuid),
                "nodev" => options.push(MountOption::NoDev),
                "noatime" => options.push(MountOption::NoAtime),
                "auto_unmount" => options.push(MountOption::AutoUnmount),
                other => match other.strip_prefix("fsname=") {
                    Some(name) => {
                        options.retain(|o| !matches!(o, MountOption::FSName(_)));
                        options.push(MountOption::FSName(name.into()));
                    }
                    None => options.push(MountOption::CUSTOM(other.into())),
                },
            }
        }
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(2);
        let mut config = Config::default();
        config.mount_options = options;
        config.acl = acl;
        config.n_threads = Some(threads);
        config.clone_fd = true;
        config
    }
}

/// Whether `dir` is a mount point in /proc/self/mounts.
fn still_mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1).is_some_and(|m| Path::new(m) == dir))
}

/// Says clearly why a mount cannot work here, before trying.
fn check_can_mount() -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!("cannot mount: /dev/fuse is missing (load the fuse module: modprobe fuse)");
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let helper = ["fusermount3", "fusermount"].iter().any(|h| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(h).is_file()))
    });
    if !root && !helper {
        bail!(
            "cannot mount: not root and no fusermount3 helper (install the fuse3 package, or run as root)"
        );
    }
    Ok(())
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and the threads it starts).
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid argument for sigemptyset, which initializes
    // it; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Returns when one of `signals` arrives or the session ends (unmounted from outside).
fn wait_for_stop(signals: &libc::sigset_t, session: &std::thread::JoinHandle<std::io::Result<()>>) {
    let tick = libc::timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    while !session.is_finished() {
        // SAFETY: `signals` is an initialized set; a null info pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(signals, std::ptr::null_mut(), &tick) };
        if sig > 0 {
            log::info!("mount: signal {sig}: unmounting");
            return;
        }
    }
}
