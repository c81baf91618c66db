//! Packing: scanner -> segmenter -> compressors (pinned, one ring each) -> writer ->
//! index -> rename. [`pack`] packs a directory tree, [`pack_to`] a list of paths or to
//! a stream; [`Ingest`] packs entries a program sends over a channel. All run the same
//! pipeline.

mod budget;
mod compressor;
mod ingest;
mod interrupt;
mod lister;
mod located;
pub(crate) mod output;
mod pipeline;
mod reread;
mod ring;
mod root;
mod scanner;
mod segmenter;
mod since;
mod unreadable;
mod writer;

pub(crate) use budget::size_text;
pub use budget::{Budget, DEFAULT_MEMORY};
pub use ingest::{Ingest, IngestEntry};
pub use interrupt::remove_temporaries_on_signal;
pub use output::Destination;
pub use unreadable::{OnUnreadable, Skipped};

use crate::digest;
use crate::error::{Error, Result};
use crate::format::chunk::ChunkRecord;
use crate::format::entry::{DataLocation, Entry, EntryKind};
use crate::format::manifest::Group;
use crate::format::{header, index};
use crate::io::{Backend, IoMode};
use crate::skip;
use crate::stages::{self, Clock, Stage};
use output::Output;
use pipeline::{Config, Pipeline};
use root::Root;
use segmenter::{Segmenter, Source};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Smallest and largest accepted chunk sizes (powers of two in between).
pub const CHUNK_SIZE_RANGE: (usize, usize) = (64 << 10, 64 << 20);
/// Default chunk size.
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;

/// How to pack. Start from the default and change what you need:
///
/// ```
/// use znippy_uring::PackOptions;
/// use znippy_uring::OnChange;
/// let opts = PackOptions {
///     level: 9,
///     chunk_size: 1 << 20,
///     on_change: OnChange::Retry,
///     exclude: vec!["*.tmp".into(), "/cache/".into()],
///     ..PackOptions::default()
/// };
/// assert!(opts.validate().is_ok());
/// let bad = PackOptions { chunk_size: 3 << 20, ..PackOptions::default() };
/// assert!(bad.validate().unwrap_err().to_string().contains("power of two"));
/// ```
#[derive(Clone, Debug)]
pub struct PackOptions {
    /// zstd level (default 3).
    pub level: i32,
    /// Compressor threads (default: all cores).
    pub threads: usize,
    /// Chunk size: a power of two from 64 KiB to 64 MiB (default 4 MiB).
    pub chunk_size: usize,
    /// Store known compressed formats without trying to compress them (default true).
    pub skip_compressed: bool,
    /// Store every chunk without compressing it (`--store`); digests and index as usual.
    pub store: bool,
    /// Bytes the pipeline may hold for chunks in flight, at any thread count (default
    /// [`DEFAULT_MEMORY`]): fewer compressors run when it cannot give every thread
    /// enough slots (docs/DESIGN.md, "Memory").
    pub memory: usize,
    /// Package type of the entries' group.
    pub pkg_type: Option<u16>,
    /// Repository name of the entries' group.
    pub repo: Option<String>,
    /// I/O backend.
    pub io: IoMode,
    /// What to do when a file changes while it is being packed.
    pub on_change: OnChange,
    /// What to do with a file that cannot be read or a directory that cannot be
    /// listed (default [`OnUnreadable::Fail`]: a caller that asks for `Warn` checks
    /// [`PackReport::skipped`]; the command line's default is `warn`, with exit status 3).
    pub on_unreadable: OnUnreadable,
    /// Which extended attributes to archive (default `user.*`).
    pub xattrs: crate::XattrPolicy,
    /// Counters to update as the pack goes (for a progress display).
    pub progress: Option<Arc<crate::Progress>>,
    /// Paths to leave out: gitignore-style patterns, relative to the pack root (`*.log`,
    /// `build/`, `/top-only`, `!keep.log`). An excluded directory is not descended.
    pub exclude: Vec<String>,
    /// Pack incrementally on this earlier archive (`--since`): files unchanged since
    /// it (or only renamed) are not read again; the new archive points at the data
    /// where it already lies, and readers need those archives (docs/FORMAT.md).
    pub since: Option<PathBuf>,
    /// With `since`: a file whose device or inode changed counts as changed too.
    pub check_inode: bool,
    /// Flush the archive to stable storage before reporting success (default): its
    /// data before it is renamed into place, its directory after. Off (`--no-sync`)
    /// for scratch work: the archive may then be lost or empty after a power cut.
    pub sync: bool,
    /// A file whose ctime is at most this long before the pack's start, or later, is
    /// recorded without it (default [`RACY_CTIME`]): on a file system with coarse
    /// timestamps a change in the same tick would not show, so a later `since` pack
    /// confirms such a file by content. Zero records every ctime (archives of a tree
    /// just written are then the same whenever they are packed).
    pub racy_ctime: std::time::Duration,
}

/// Default [`PackOptions::racy_ctime`]: more than any file system's timestamp
/// granularity (FAT's 2 s).
pub const RACY_CTIME: std::time::Duration = std::time::Duration::from_secs(3);

/// What to do when a file's size or mtime changed between the walk and the end of its
/// read (it was written to while being packed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnChange {
    /// Fail the pack, naming the file (no archive is written).
    #[default]
    Fail,
    /// Keep the bytes as read (the walked size of them) and report the file as a
    /// warning, once: the archived content may mix the versions before and after the
    /// change.
    Warn,
    /// Do not check (saves one `statat` per file, about 5% of a kernel-tree pack): for
    /// trees known not to change.
    Ignore,
    /// Keep a consistent version: read the file again after the main pass, up to 3
    /// times, until one read sees the same size and mtime before and after it (if all
    /// 3 see it change, the pack fails), and report it as a warning. A file that is
    /// gone by then is left out of the archive with a warning.
    Retry,
}

impl std::str::FromStr for OnChange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(OnChange::Fail),
            "warn" => Ok(OnChange::Warn),
            "ignore" => Ok(OnChange::Ignore),
            "retry" => Ok(OnChange::Retry),
            other => Err(Error::Invalid(format!(
                "unknown --on-change {other:?} (expected fail, warn, retry or ignore)"
            ))),
        }
    }
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            level: 3,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_size: DEFAULT_CHUNK_SIZE,
            skip_compressed: true,
            store: false,
            memory: DEFAULT_MEMORY,
            pkg_type: None,
            repo: None,
            io: IoMode::Auto,
            on_change: OnChange::Fail,
            on_unreadable: OnUnreadable::Fail,
            xattrs: crate::XattrPolicy::User,
            progress: None,
            exclude: Vec::new(),
            since: None,
            check_inode: false,
            sync: true,
            racy_ctime: RACY_CTIME,
        }
    }
}

impl PackOptions {
    /// Checks the options, saying what is wrong.
    pub fn validate(&self) -> Result<()> {
        self.budget().map(|_| ())
    }

    /// Checks the options and shares out the memory budget (measuring the zstd
    /// context once).
    fn budget(&self) -> Result<Budget> {
        let (lo, hi) = CHUNK_SIZE_RANGE;
        if !self.chunk_size.is_power_of_two() || self.chunk_size < lo || self.chunk_size > hi {
            return Err(Error::Invalid(format!(
                "chunk size {} must be a power of two from 64 KiB to 64 MiB",
                self.chunk_size
            )));
        }
        let levels = crate::codec::zstd::levels();
        if !levels.contains(&self.level) {
            return Err(Error::Invalid(format!(
                "zstd level {} outside {}..={}",
                self.level,
                levels.start(),
                levels.end()
            )));
        }
        if self.threads == 0 || self.threads > 1024 {
            return Err(Error::Invalid(format!(
                "threads {} outside 1..=1024",
                self.threads
            )));
        }
        Budget::plan(
            self.memory,
            self.threads,
            self.chunk_size,
            (!self.store).then_some(self.level),
        )
    }

    /// The pipeline's configuration, with the budget [`PackOptions::budget`] gave.
    fn config(&self, budget: Budget, root: Option<Arc<Root>>) -> Config {
        Config {
            threads: self.threads,
            chunk_size: self.chunk_size,
            level: (!self.store).then_some(self.level),
            memory: self.memory,
            budget,
            io: self.io,
            on_change: self.on_change,
            on_unreadable: self.on_unreadable,
            root,
            progress: self.progress.clone(),
        }
    }

    /// Whether the data of the file at `path` is stored without trying zstd.
    fn stores(&self, path: &[u8]) -> bool {
        self.store || (self.skip_compressed && skip::is_compressed_name(path))
    }

    fn group(&self) -> Group {
        Group {
            pkg_type: self.pkg_type,
            repo: self.repo.clone(),
        }
    }
}

/// What a pack did. Serialized, it is the body of `pack --json` (docs/JSON.md).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PackReport {
    /// Entries archived.
    pub entries: u64,
    /// Regular files among them.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Hard links (further names of files already archived).
    pub hardlinks: u64,
    /// Fifos and device nodes.
    pub specials: u64,
    /// Bytes of file data read.
    pub bytes_in: u64,
    /// Size of the archive.
    #[serde(rename = "bytes_out")]
    pub archive_len: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Chunks stored without compression.
    pub stored_chunks: u64,
    /// Files not read again (`since`): unchanged, or renamed, since the earlier archive.
    pub reused_files: u64,
    /// Their bytes (not in `bytes_in`).
    pub reused_bytes: u64,
    /// The I/O backend that ran.
    pub backend: Backend,
    /// Why the portable backend was used instead of io_uring, if it was.
    pub fallback: Option<String>,
    /// Entries skipped, and why (vanished during the walk, special files, and each
    /// of `skipped`).
    pub warnings: Vec<String>,
    /// Entries left out because they could not be read (`on_unreadable` `Warn`): those
    /// the walk found, then those the reads found, each in walk order.
    pub skipped: Vec<Skipped>,
    /// Compressor threads that ran (fewer than asked for when `memory` is short).
    pub compressors: usize,
    /// Bytes the compressors could hold at most (their share of `memory`).
    pub pipeline_bytes: u64,
    /// Where the time went, stage by stage.
    pub stages: Vec<Stage>,
}

/// What a pack archives.
#[derive(Clone, Debug)]
pub enum Selection {
    /// The whole tree under a directory.
    Tree(PathBuf),
    /// Only the listed paths under `root` (relative to it, or absolute beneath it), in
    /// the walk's order whatever the list's; a listed directory is recorded but not
    /// descended, as `find DIR -print0` lists its contents too. Parents that are not
    /// listed are not archived (unpacking creates them). A listed path that does not
    /// exist fails the pack.
    List {
        /// The directory the paths are under; archive paths are relative to it.
        root: PathBuf,
        /// The paths, as bytes (`find -print0` output split at the NULs).
        paths: Vec<Vec<u8>>,
    },
}

impl Selection {
    /// The directory being packed.
    pub fn root(&self) -> &Path {
        match self {
            Selection::Tree(root) | Selection::List { root, .. } => root,
        }
    }
}

/// Packs the tree at `src` into the archive `dest`.
///
/// ```
/// use znippy_uring::{pack, PackOptions};
/// # let tmp = std::env::temp_dir().join(format!("doc-pack-{}", std::process::id()));
/// # std::fs::create_dir_all(tmp.join("data/logs"))?;
/// # std::fs::write(tmp.join("data/logs/app.log"), "started\n".repeat(1000))?;
/// # std::fs::write(tmp.join("data/photo.jpg"), [0xff, 0xd8, 0xff, 0xe0])?;
/// # let (data, archive) = (tmp.join("data"), tmp.join("data.znippy"));
/// let report = pack(&data, &archive, &PackOptions::default())?;
/// assert_eq!((report.files, report.dirs), (2, 1));
/// println!("{} bytes -> {} bytes", report.bytes_in, report.archive_len);
/// # std::fs::remove_dir_all(&tmp)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pack(src: &Path, dest: &Path, opts: &PackOptions) -> Result<PackReport> {
    pack_to(&Selection::Tree(src.into()), dest.into(), opts)
}

/// Packs `selection` into `dest`: [`pack`] with a list of paths instead of a whole
/// tree, or a stream instead of a file.
///
/// ```
/// use znippy_uring::{pack_to, Destination, Selection};
/// use znippy_uring::{Archive, PackOptions};
/// # let dir = std::env::temp_dir().join(format!("pack-to-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(dir.join("src/etc"))?;
/// # std::fs::write(dir.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
/// # std::fs::write(dir.join("src/big.log"), "not wanted")?;
/// // Only etc/hosts (and not big.log), written to an open file as a stream.
/// let listed = Selection::List { root: dir.join("src"), paths: vec![b"./etc/hosts".to_vec()] };
/// let stream = std::fs::File::create(dir.join("out.znippy"))?;
/// let report = pack_to(&listed, Destination::Stream(stream), &PackOptions::default())?;
/// assert_eq!((report.entries, report.files), (1, 1));
/// let archive = Archive::open(&dir.join("out.znippy"))?;
/// let mut hosts = Vec::new();
/// archive.read_file(b"etc/hosts", &mut hosts)?;
/// assert_eq!(hosts, b"127.0.0.1 localhost\n");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pack_to(selection: &Selection, dest: Destination, opts: &PackOptions) -> Result<PackReport> {
    let started = Instant::now();
    let window = i64::try_from(opts.racy_ctime.as_nanos()).unwrap_or(i64::MAX);
    let racy_from = unix_ns(std::time::SystemTime::now()).saturating_sub(window);
    let budget = opts.budget()?;
    let src = selection.root();
    let root = Arc::new(Root::open(src)?);
    let exclude = exclusions(src, &opts.exclude)?;
    let mut clock = Clock::start();
    let dest = output::resolve(dest)?;
    let mut since = open_since(opts, &dest, &root)?;
    let flags = since.as_ref().map_or(0, |_| header::FLAG_BASES);
    let output = Output::open_resolved(dest, opts.sync, flags)?;
    let pipeline = Pipeline::start(opts.config(budget, Some(root.clone())), &output)?;
    clock.work("setup");
    let mut seg = Segmenter::new(opts.chunk_size, pipeline.plans());
    let mut entries: Vec<(Group, Entry)> = Vec::new();
    let group = opts.group();
    let mut stopped = false;
    let visit = |mut e: Entry| {
        if let Some(p) = &opts.progress {
            p.add_entry(if e.kind == EntryKind::File { e.size } else { 0 });
        }
        if feed(opts, since.as_mut(), &mut seg, entries.len(), &mut e).is_err() {
            stopped = true;
            return Err(Error::Invalid("pipeline stopped".into()));
        }
        forget_racy_ctime(&mut e, racy_from);
        entries.push((group.clone(), e));
        Ok(())
    };
    let walked = walk(
        selection,
        &root,
        output.identity(),
        &exclude,
        opts,
        &mut clock,
        visit,
    );
    if let Some(p) = &opts.progress {
        p.total_is_final();
    }
    let (notes, mut listers) = match walked {
        Ok(w) => w,
        Err(e) => {
            drop(seg);
            if stopped {
                pipeline.finish()?;
            } else {
                pipeline.abort();
            }
            return Err(e);
        }
    };
    clock.work("scan");
    clock.reclassify("scan", "compressors_busy", seg.blocked());
    listers.insert(0, clock);
    let fed = Fed {
        seg,
        entries,
        warnings: notes.warnings,
        skipped: notes.skipped,
        stage: "walk",
        clocks: listers,
        started,
        bases: since.map(|s| s.bases).unwrap_or_default(),
    };
    finish(output, pipeline, fed, opts, Some(&root))
}

/// Nanoseconds since the epoch (negative before it).
fn unix_ns(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Leaves out the ctime of an entry changed at or after `racy_from` (just before the
/// pack started, or during it). On a file system with coarse timestamps, a change in
/// the same tick as the walk's stat would keep that ctime, so a later `--since`
/// must not trust it: with no ctime recorded, it confirms the file by content.
fn forget_racy_ctime(e: &mut Entry, racy_from: i64) {
    if e.ctime_ns.is_some_and(|c| c >= racy_from) {
        e.ctime_ns = None;
    }
}

/// Hands entry `e` (number `n`) to the pipeline: a file's data goes to the segmenter,
/// unless it is unchanged since the earlier archive of an incremental pack, whose data
/// `e` then points at. Fails when the pipeline has stopped.
fn feed(
    opts: &PackOptions,
    since: Option<&mut since::Since>,
    seg: &mut Segmenter,
    n: usize,
    e: &mut Entry,
) -> std::result::Result<(), ()> {
    if let Some((location, digest)) = since.and_then(|s| s.reuse(e)) {
        (e.location, e.digest) = (Some(location), Some(digest));
        if let Some(p) = &opts.progress {
            p.add_bytes(e.size);
        }
    } else if e.kind == EntryKind::File && e.size > 0 {
        let source = Source::File {
            rel: Arc::from(Path::new(OsStr::from_bytes(&e.path))),
            size: e.size,
            mtime_ns: e.mtime_ns,
            ctime_ns: e.ctime_ns,
        };
        seg.add(n, source, e.size, opts.stores(&e.path))
            .map_err(|_| ())?;
    }
    Ok(())
}

/// The earlier archive of an incremental pack (`since`), opened for a walk of `root`.
/// The new archive may not replace or write over any archive of PREVIOUS's chain:
/// PREVIOUS, its bases, theirs (by the same file, or by the same manifest digest).
fn open_since(
    opts: &PackOptions,
    dest: &output::Resolved,
    root: &Arc<Root>,
) -> Result<Option<since::Since>> {
    let Some(p) = &opts.since else {
        return Ok(None);
    };
    let target = match dest {
        output::Resolved::File(t) => Some(t.as_path()),
        output::Resolved::Stream(..) => None,
    };
    let since = since::Since::open(p, target, opts.check_inode, root.clone())?;
    let why = format!("an archive that builds on it (--since {})", p.display());
    output::refuse_overwrite(dest, &crate::read::lineage(p), &why)?;
    Ok(Some(since))
}

/// Walks what `selection` names beneath `root` (its root, open; leaving out the archive itself, `identity`), calling
/// `visit` for each entry in walk order; returns the warnings and entries skipped and,
/// for a tree, the lister threads' clocks.
fn walk(
    selection: &Selection,
    root: &Arc<Root>,
    identity: Option<(u64, u64)>,
    exclude: &ignore::gitignore::Gitignore,
    opts: &PackOptions,
    clock: &mut Clock,
    visit: impl FnMut(Entry) -> Result<()>,
) -> Result<(scanner::Notes, Vec<Clock>)> {
    let rules = lister::Rules {
        xattrs: opts.xattrs,
        on_unreadable: opts.on_unreadable,
    };
    match selection {
        Selection::Tree(_) => {
            scanner::walk(root, identity, exclude, rules, opts.threads, clock, visit)
        }
        Selection::List { paths, .. } => {
            scanner::walk_list(root, paths, identity, exclude, rules, visit)
                .map(|notes| (notes, Vec::new()))
        }
    }
}

/// What the front of the pipeline (the walk, or an ingest) leaves to [`finish`].
struct Fed {
    seg: Segmenter,
    entries: Vec<(Group, Entry)>,
    warnings: Vec<String>,
    /// Entries the walk could not read (`on_unreadable` `Warn`).
    skipped: Vec<Skipped>,
    /// The front's stage name, and where its threads' time went.
    stage: &'static str,
    clocks: Vec<Clock>,
    /// When the pack started, for the stages' utilization.
    started: Instant,
    /// The archives that hold data of reused files (`since`).
    bases: Vec<crate::format::base::Base>,
}

/// The matcher of `--exclude` patterns.
fn exclusions(root: &Path, patterns: &[String]) -> Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
    for p in patterns {
        builder
            .add_line(None, p)
            .map_err(|e| Error::Invalid(format!("--exclude {p:?}: {e}")))?;
    }
    builder
        .build()
        .map_err(|e| Error::Invalid(format!("--exclude: {e}")))
}

/// Closes the segmenter, waits for the pipeline, and writes index and footer.
fn finish(
    output: Output,
    pipeline: Pipeline,
    fed: Fed,
    opts: &PackOptions,
    root: Option<&Root>,
) -> Result<PackReport> {
    let (backend, fallback, budget) =
        (pipeline.backend, pipeline.fallback.clone(), pipeline.budget);
    let locations = fed.seg.finish();
    let written = pipeline.finish()?;
    let mut index = Clock::start();
    let mut stages = vec![
        Stage::of(fed.stage, &fed.clocks),
        Stage::of("compress", &written.compressors),
        Stage::of("write", &[written.clock]),
    ];
    let changes = written.changes;
    let mut warnings = fed.warnings;
    warnings.extend(changes.warnings.into_values());
    let mut data = Data {
        entries: fed.entries,
        chunks: written.chunks,
        pieces: written.pieces,
        blob_end: written.blob_end,
        locations: locations
            .map_err(|_| Error::Invalid("pipeline stopped without an error".into()))?,
        warnings,
        skipped: fed.skipped,
        unreadable: changes.unreadable,
        bases: fed.bases,
    };
    let again: Vec<usize> = (changes.reread.into_iter())
        .filter(|i| !data.unreadable.contains_key(i))
        .collect();
    let mut dropped = match root {
        Some(root) if !again.is_empty() => data.reread(root, &output, opts, again)?,
        _ => Vec::new(),
    };
    // Vanished or replaced since the walk: left out, with their hard links.
    dropped.extend(changes.vanished.keys().copied());
    data.warnings.extend(changes.vanished.into_values());
    if let Some(root) = root {
        data.unreadable_links(&root.path);
    }
    let report = data.commit(output, opts, &dropped, &mut index)?;
    stages.push(Stage::of("index", &[index]));
    stages::conclude(&mut stages, fed.started.elapsed());
    Ok(PackReport {
        backend,
        fallback,
        compressors: budget.compressors,
        pipeline_bytes: budget.bytes() as u64,
        stages,
        ..report
    })
}

/// What the pipeline wrote for the entries: the chunks, every piece's digest, and each
/// file's place.
struct Data {
    entries: Vec<(Group, Entry)>,
    chunks: Vec<ChunkRecord>,
    pieces: Vec<(usize, u64, digest::PieceDigest)>,
    blob_end: u64,
    locations: Vec<Option<DataLocation>>,
    warnings: Vec<String>,
    /// Entries the walk could not read.
    skipped: Vec<Skipped>,
    /// Files the reads could not read (and, once [`Data::unreadable_links`] ran, the
    /// hard links to them), by entry: left out.
    unreadable: BTreeMap<usize, Skipped>,
    bases: Vec<crate::format::base::Base>,
}

impl Data {
    /// Reads the files that changed while being packed again (`--on-change retry`),
    /// appending their chunks; returns the entries that vanished meanwhile.
    fn reread(
        &mut self,
        root: &Root,
        output: &Output,
        opts: &PackOptions,
        mut again: Vec<usize>,
    ) -> Result<Vec<usize>> {
        again.sort_unstable();
        again.dedup();
        (self.pieces).retain(|(e, _, _)| again.binary_search(e).is_err());
        let mut rereader = reread::Rereader::new(root, output, opts.chunk_size, opts.level)?;
        let mut dropped = Vec::new();
        for i in again {
            let Some((_, entry)) = self.entries.get_mut(i) else {
                continue;
            };
            let store = opts.stores(&entry.path);
            let shown = root::full_path(&root.path, &entry.path);
            let (chunks, end) = (&mut self.chunks, &mut self.blob_end);
            let outcome = match rereader.reread(&entry.path, store, chunks, end) {
                Ok(outcome) => outcome,
                // The file's own error (not the archive's): left out if the policy says.
                Err(e) if matches!(&e, Error::Io { path, .. } if *path == shown) => {
                    self.unreadable.insert(i, opts.on_unreadable.skip(e)?);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match outcome {
                reread::Outcome::Kept(v) => {
                    self.warnings.push(format!(
                        "{}: changed while being packed; archived as read again ({} bytes)",
                        shown.display(),
                        v.size
                    ));
                    (entry.size, entry.mtime_ns) = (v.size, v.mtime_ns);
                    if let Some(slot) = self.locations.get_mut(i) {
                        *slot = v.location;
                    }
                    (self.pieces).extend(v.pieces.into_iter().map(|(c, d)| (i, c, d)));
                }
                reread::Outcome::Vanished(why) => {
                    (self.warnings).push(format!("{}: {why}; not archived", shown.display()));
                    dropped.push(i);
                }
            }
        }
        Ok(dropped)
    }

    /// Leaves out the hard links to files that could not be read (they are the same
    /// file), each with its own record; `root` is the packed directory.
    fn unreadable_links(&mut self, root: &Path) {
        if self.unreadable.is_empty() {
            return;
        }
        let files: std::collections::HashSet<&[u8]> = (self.unreadable.keys())
            .filter_map(|&i| self.entries.get(i).map(|(_, e)| e.path.as_slice()))
            .collect();
        let mut links = Vec::new();
        for (i, (_, e)) in self.entries.iter().enumerate() {
            let target = (e.link_target.as_deref())
                .filter(|t| e.kind == EntryKind::Hardlink && files.contains(t));
            if let Some(file) = target {
                let (link, file) = (root::full_path(root, &e.path), root::full_path(root, file));
                links.push((i, Skipped::link(&link, &file)));
            }
        }
        self.unreadable.extend(links);
    }

    /// Gives every file its location and digest (leaving out `dropped`), sorts the
    /// entries into groups, and writes index and footer. Returns the counts.
    fn commit(
        mut self,
        output: Output,
        opts: &PackOptions,
        dropped: &[usize],
        clock: &mut Clock,
    ) -> Result<PackReport> {
        let mut skip = drop_entries(&self.entries, dropped, &mut self.warnings);
        for &i in self.unreadable.keys() {
            if let Some(s) = skip.get_mut(i) {
                *s = true;
            }
        }
        self.skipped.extend(self.unreadable.into_values());
        (self.warnings).extend(self.skipped.iter().map(Skipped::warning));
        let stored_chunks = (self.chunks.iter())
            .filter(|c| c.codec == crate::codec::Codec::Stored)
            .count() as u64;
        let (groups, stats) = assemble(
            self.entries,
            &skip,
            &self.locations,
            &mut self.pieces,
            opts.chunk_size,
            opts.group(),
        )?;
        let refs: Vec<(Group, &[Entry])> = groups
            .iter()
            .map(|(g, e)| (g.clone(), e.as_slice()))
            .collect();
        let tail = index::encode(&refs, &self.chunks, &self.bases, self.blob_end);
        clock.work("encode");
        let archive_len = output.commit(&tail, self.blob_end)?;
        clock.work("commit");
        Ok(PackReport {
            archive_len,
            chunks: self.chunks.len() as u64,
            stored_chunks,
            warnings: self.warnings,
            skipped: self.skipped,
            ..stats
        })
    }
}

/// Leaves out the files in `dropped` (gone before they could be read consistently) and
/// the hard links to them, which have no data of their own.
fn drop_entries(
    entries: &[(Group, Entry)],
    dropped: &[usize],
    warnings: &mut Vec<String>,
) -> Vec<bool> {
    let mut skip = vec![false; entries.len()];
    if dropped.is_empty() {
        return skip;
    }
    let gone: std::collections::HashSet<Vec<u8>> = dropped
        .iter()
        .filter_map(|&i| entries.get(i).map(|(_, e)| e.path.clone()))
        .collect();
    for ((_, e), skip) in entries.iter().zip(&mut skip) {
        let orphan = e.kind == EntryKind::Hardlink
            && e.link_target.as_ref().is_some_and(|t| gone.contains(t));
        if orphan {
            warnings.push(format!(
                "{}: hard link to a file that vanished; not archived",
                e.display_path()
            ));
        }
        *skip = orphan || gone.contains(&e.path);
    }
    skip
}

/// Gives every file its location and digest, and sorts entries into their groups,
/// leaving out those marked in `skip`.
/// Gives file `e` the location and digest its data got (`location`, `digest`), unless
/// it points at an earlier archive's data already (then returns true).
fn place_file(
    e: &mut Entry,
    location: Option<DataLocation>,
    digest: Option<[u8; 32]>,
) -> Result<bool> {
    if e.location.is_some_and(|l| l.base.is_some()) {
        return Ok(true); // location and digest came from the earlier archive
    }
    if e.size > 0 {
        (e.location, e.digest) = (location, digest);
    } else {
        e.digest = Some(digest::hash(b""));
    }
    if e.digest.is_none() || (e.size > 0 && e.location.is_none()) {
        return Err(Error::Invalid(format!(
            "internal: {} has no data location or digest",
            e.display_path()
        )));
    }
    Ok(false)
}

fn assemble(
    entries: Vec<(Group, Entry)>,
    skip: &[bool],
    locations: &[Option<DataLocation>],
    pieces: &mut [(usize, u64, digest::PieceDigest)],
    chunk_size: usize,
    always: Group,
) -> Result<(BTreeMap<Group, Vec<Entry>>, PackReport)> {
    let whole = digest::assemble(entries.len(), pieces, |e| {
        let size = entries.get(e).map_or(0, |(_, e)| e.size);
        (size, chunk_size as u64)
    });
    let mut report = PackReport {
        entries: 0,
        files: 0,
        dirs: 0,
        symlinks: 0,
        hardlinks: 0,
        specials: 0,
        bytes_in: 0,
        archive_len: 0,
        chunks: 0,
        stored_chunks: 0,
        reused_files: 0,
        reused_bytes: 0,
        backend: Backend::Portable,
        fallback: None,
        warnings: Vec::new(),
        skipped: Vec::new(),
        compressors: 0,
        pipeline_bytes: 0,
        stages: Vec::new(),
    };
    let mut groups: BTreeMap<Group, Vec<Entry>> = BTreeMap::new();
    groups.insert(always, Vec::new());
    for (i, (group, mut e)) in entries.into_iter().enumerate() {
        if skip.get(i).copied().unwrap_or(false) {
            continue;
        }
        report.entries += 1;
        match e.kind {
            EntryKind::File => {
                report.files += 1;
                let reused = place_file(
                    &mut e,
                    locations.get(i).copied().flatten(),
                    whole.get(i).copied().flatten(),
                )?;
                if reused {
                    report.reused_files += 1;
                    report.reused_bytes += e.size;
                } else {
                    report.bytes_in += e.size;
                }
            }
            EntryKind::Dir => report.dirs += 1,
            EntryKind::Symlink => report.symlinks += 1,
            EntryKind::Hardlink => report.hardlinks += 1,
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                report.specials += 1
            }
        }
        groups.entry(group).or_default().push(e);
    }
    Ok((groups, report))
}
