//! `znippy-uring mount ARCHIVE DIR`: the archive as a read-only file system, in the
//! foreground until SIGINT, SIGTERM or SIGHUP (or `umount DIR`), then unmounted.
//!
//! As root the file system is mounted with mount(2); other users need the setuid
//! `fusermount3` helper (the fuse3 package). Either way `/dev/fuse` must exist.

mod ahead;
mod fs;
mod holes;
mod options;
mod tree;
mod unmount;

use super::args::parse_size;
use super::report::{Report, Reporting, Stream, lossy};
use anyhow::{Context, Result, bail};
use fuser::{Config, MountOption};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use znippy_uring::{Archive, CacheStats, ChunkCache};

#[derive(clap::Args)]
pub struct Args {
    /// Archive to mount (a file: a mount reads it at random, so not `-`).
    archive: PathBuf,
    /// Directory to mount it on (an empty directory, unless `--nonempty`).
    mountpoint: PathBuf,
    /// Mount on a directory that is not empty, hiding what it holds while mounted.
    #[arg(long)]
    nonempty: bool,
    /// Memory for decompressed chunks, shared by all readers (suffixes K, M, G); the
    /// default holds 128 chunks of 4 MiB.
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    cache_size: usize,
    /// Threads serving requests, 1 to 256; at least 2 are started (default: all
    /// cores, at most 256).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Let other users see the file system (needs `user_allow_other` in
    /// /etc/fuse.conf unless root); the mode bits still apply.
    #[arg(long)]
    allow_other: bool,
    /// Let root see the file system too.
    #[arg(long, conflicts_with = "allow_other")]
    allow_root: bool,
    /// Further mount options, comma-separated: ro, default_permissions,
    /// allow_other, allow_root, noexec/exec, nosuid/suid, nodev/dev (nosuid and
    /// nodev are the default), noatime/atime, kernel_cache (always on),
    /// fsname=NAME, nonempty, auto_unmount (with allow_other or allow_root).
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

pub fn run(args: Args, out: &Reporting) -> Result<()> {
    if args.archive == Path::new("-") {
        bail!(
            "mount: the archive must be a file, not `-`: a mount reads it at random, \
             which standard input cannot do (save it to a file first)"
        );
    }
    let options = options::Options::parse(&args.options, args.allow_other, args.allow_root)?;
    check_can_mount(&options)?;
    check_mountpoint(&args.mountpoint, args.nonempty || options.nonempty)?;
    let start = Instant::now();
    let archive = super::stdio::open_archive_with(&args.archive, &args.bases)?;
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
    let config = args.config(&archive, &options);
    let session = fuser::Session::new(fs, &args.mountpoint, &config)
        .with_context(|| format!("{}: mount", args.mountpoint.display()))?
        .spawn()
        .with_context(|| format!("{}: serve", args.mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    // fuser unmounts by the mount point's path when its session is dropped, whatever
    // is there by then: its session is never dropped, the mount is unmounted here by
    // its identity instead.
    let session = std::mem::ManuallyDrop::new(session);
    // SAFETY: `guard` is read out once, and `session` (in ManuallyDrop) is never
    // dropped or used for it again, so the handle is owned exactly once.
    let guard = unsafe { std::ptr::read(&session.guard) };
    let ours = match unmount::MountId::of(&args.mountpoint) {
        Ok(ours) => ours,
        Err(e) => bail!(
            "{}: cannot identify the mount just made ({e:#}); left as it is",
            args.mountpoint.display()
        ),
    };
    if !out.quiet && !out.json {
        eprintln!(
            "mounted {} on {} ({} entries); stop with Ctrl-C or umount",
            args.archive.display(),
            args.mountpoint.display(),
            archive.entries().len()
        );
    }
    wait_for_stop(&signals, &guard);
    let mountpoint = stop(&ours, guard, &args.mountpoint)?;
    let stats: CacheStats = cache.stats();
    let report = MountJson {
        mountpoint: &mountpoint,
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
    fn config(&self, archive: &Archive, options: &options::Options) -> Config {
        let mut mount_options = vec![
            MountOption::RO,
            MountOption::DefaultPermissions,
            MountOption::FSName(archive.path().display().to_string()),
            MountOption::Subtype("znippy".into()),
        ];
        if options.fsname.is_some() {
            mount_options.retain(|o| !matches!(o, MountOption::FSName(_)));
        }
        mount_options.extend(options.mount.iter().cloned());
        let threads = self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 256)),
            |n| usize::from(n).max(2),
        );
        let mut config = Config::default();
        config.mount_options = mount_options;
        config.acl = options.acl;
        config.n_threads = Some(threads);
        config.clone_fd = true;
        config
    }
}

/// Refuses a mount point that is not a directory, or (unless `nonempty`) one that
/// holds anything: mounted over, its files would be hidden until the unmount.
fn check_mountpoint(dir: &Path, nonempty: bool) -> Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("{}: mount point", dir.display()))?;
    if !meta.is_dir() {
        bail!("{}: mount point is not a directory", dir.display());
    }
    let mut listing =
        std::fs::read_dir(dir).with_context(|| format!("{}: mount point", dir.display()))?;
    if !nonempty && listing.next().is_some() {
        bail!(
            "{}: mount point is not empty (its files would be hidden while mounted; \
             --nonempty mounts over them anyway)",
            dir.display()
        );
    }
    Ok(())
}

/// Unmounts our mount (`ours`) and waits for the session (`guard`) to end; returns
/// where the mount was. Unmounted from outside already, there is nothing to do.
/// Busy (a process has a file open or its directory inside), it is detached
/// lazily, as libfuse does, and its connection aborted: gone from the tree at
/// once, and reads of files still open there fail. Where the mount can no longer
/// be reached (another mount stacked on it, its path replaced), nothing is
/// unmounted: its connection is aborted (it then answers "Transport endpoint is
/// not connected" until unmounted) and this fails, saying so.
fn stop(
    ours: &unmount::MountId,
    guard: std::thread::JoinHandle<std::io::Result<()>>,
    dir: &Path,
) -> Result<PathBuf> {
    let unmounted = ours.unmount();
    let served = if guard.is_finished() || matches!(unmounted, Ok(unmount::Unmounted::Done(_))) {
        // The kernel ended the connection with the unmount (or before).
        guard.join()
    } else {
        // Only our own connection is aborted; where that is impossible the
        // session is not waited for (it ends with this process).
        match ours.abort() {
            Ok(()) => guard.join(),
            Err(e) => {
                log::debug!("{}: cannot abort our FUSE connection: {e}", dir.display());
                Ok(Ok(()))
            }
        }
    };
    let served = served.unwrap_or_else(|_| Err(std::io::Error::other("the session panicked")));
    let unmounted = unmounted.map_err(|e| {
        anyhow::anyhow!(
            "{e:#}; our mount ends with this process, and answers \"Transport endpoint \
             is not connected\" until unmounted"
        )
    })?;
    let at = match unmounted {
        unmount::Unmounted::Done(at) => at,
        unmount::Unmounted::Detached(at, e) => {
            log::warn!(
                "{}: busy ({e}): detached lazily; files still open there now fail",
                at.display()
            );
            at
        }
        unmount::Unmounted::Gone => dir.to_path_buf(),
    };
    served.with_context(|| format!("{}: serve", at.display()))?;
    Ok(at)
}

/// Says clearly why a mount cannot work here, before trying.
fn check_can_mount(options: &options::Options) -> Result<()> {
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
    if !helper && options.mount.contains(&MountOption::AutoUnmount) {
        bail!("cannot mount: -o auto_unmount needs the fusermount3 helper (the fuse3 package)");
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
