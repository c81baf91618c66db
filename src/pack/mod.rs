//! Packing: scanner -> segmenter -> compressors (pinned, one ring each) -> writer ->
//! index -> rename. [`pack`] packs a directory tree, [`pack_to`] a list of paths or to
//! a stream; [`Ingest`] packs entries a program sends over a channel. All run the same
//! pipeline.

mod assemble;
mod budget;
mod compressor;
mod ingest;
mod interrupt;
mod lister;
mod located;
mod options;
pub(crate) mod output;
mod pipeline;
mod report;
mod reread;
mod ring;
mod root;
mod scanner;
mod segmenter;
mod since;
mod unreadable;
mod writer;

pub use budget::DEFAULT_MEMORY;
pub(crate) use budget::size_text;
pub use ingest::{Ingest, IngestEntry};
pub use interrupt::remove_temporaries_on_signal;
pub use options::{DEFAULT_CHUNK_SIZE, OnChange, PackOptions, RACY_CTIME, Selection};
pub use output::Destination;
pub use report::PackReport;
pub use unreadable::{OnUnreadable, Skipped};

use crate::error::{Error, Result};
use crate::format::entry::{Entry, EntryKind};
use crate::format::header;
use crate::format::manifest::Group;
use crate::stages::{self, Clock, Stage};
use assemble::Data;
use output::Output;
use pipeline::Pipeline;
use root::Root;
use segmenter::{Segmenter, Source};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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
    // Threads never change the archive: fewer run where the descriptor limit is low.
    let threads = root::threads_within_descriptors(opts.threads);
    let opts = &PackOptions {
        threads,
        ..opts.clone()
    };
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
