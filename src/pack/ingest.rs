//! Streaming ingest: a program sends in-memory entries over a channel and gets a
//! report when it finishes. Entries of distinct (pkg_type, repo) pairs are written as
//! separate sub-indexes; the data runs through the same pipeline as [`super::pack`].

use super::output::{Destination, Output};
use super::pipeline::Pipeline;
use super::segmenter::{Segmenter, Source};
use super::{Fed, PackOptions, PackReport, finish};
use crate::error::{Error, Result};
use crate::format::entry::{Entry, EntryKind, check_path};
use crate::format::manifest::Group;
use crate::stages::Clock;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// One in-memory file to archive.
#[derive(Clone, Debug, Default)]
pub struct IngestEntry {
    /// Relative, `/`-separated path (any bytes but NUL).
    pub path: Vec<u8>,
    /// The file's contents.
    pub data: Vec<u8>,
    /// Package type of its group.
    pub pkg_type: Option<u16>,
    /// Repository of its group.
    pub repo: Option<String>,
    /// Permission bits (default 0o644).
    pub mode: Option<u32>,
    /// Modification time in ns since the epoch (default 0, for reproducible archives).
    pub mtime_ns: i64,
}

impl IngestEntry {
    /// A file `path` with contents `data`, in the default group.
    pub fn new(path: impl Into<Vec<u8>>, data: impl Into<Vec<u8>>) -> Self {
        IngestEntry {
            path: path.into(),
            data: data.into(),
            ..Self::default()
        }
    }

    /// Puts the entry in the (pkg_type, repo) group.
    pub fn group(mut self, pkg_type: Option<u16>, repo: Option<&str>) -> Self {
        self.pkg_type = pkg_type;
        self.repo = repo.map(str::to_string);
        self
    }
}

/// A streaming archive being written.
///
/// ```
/// use znippy_uring::{Ingest, IngestEntry, PackOptions};
/// let dir = std::env::temp_dir().join(format!("ingest-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let ingest = Ingest::create(&dir.join("out.znippy"), &PackOptions::default())?;
/// let tx = ingest.sender();
/// tx.send(IngestEntry::new("a.txt", "hello")).unwrap();
/// tx.send(IngestEntry::new("lib/x.jar", vec![0u8; 10]).group(Some(2), Some("maven"))).unwrap();
/// drop(tx);
/// let report = ingest.finish()?;
/// assert_eq!(report.files, 2);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ingest {
    tx: Option<Sender<IngestEntry>>,
    thread: JoinHandle<Result<PackReport>>,
}

impl Ingest {
    /// Starts writing the archive `dest`.
    pub fn create(dest: &Path, opts: &PackOptions) -> Result<Ingest> {
        Self::start(dest.into(), opts)
    }

    /// Starts writing an archive to `dest`, a file or a stream.
    pub fn start(dest: Destination, opts: &PackOptions) -> Result<Ingest> {
        let budget = opts.budget()?;
        let output = Output::open(dest, opts.sync, 0)?;
        let pipeline = Pipeline::start(opts.config(budget, None), &output)?;
        let name = output.path().to_path_buf();
        let (tx, rx) = bounded::<IngestEntry>(64);
        let opts = opts.clone();
        let thread = std::thread::Builder::new()
            .name("znippy-ingest".into())
            .spawn(move || run(rx, output, pipeline, &opts))
            .map_err(|e| Error::io(name, "spawn ingest", e))?;
        Ok(Ingest {
            tx: Some(tx),
            thread,
        })
    }

    /// A sender for entries; drop every sender (and call [`Ingest::finish`]) to finish.
    pub fn sender(&self) -> Sender<IngestEntry> {
        self.tx.clone().unwrap_or_else(|| bounded(0).0)
    }

    /// Waits for all senders to be dropped, then completes the archive.
    pub fn finish(mut self) -> Result<PackReport> {
        self.tx = None;
        self.thread
            .join()
            .unwrap_or_else(|_| Err(Error::Invalid("ingest thread panicked".into())))
    }
}

/// Refuses an unsafe path, or one sent before.
fn admit(path: &[u8], seen: &mut HashSet<Vec<u8>>) -> Result<()> {
    let refuse = |problem: String| Error::Input {
        path: String::from_utf8_lossy(path).into_owned().into(),
        problem,
    };
    check_path(path).map_err(|why| refuse(format!("invalid entry path: {why}")))?;
    if !seen.insert(path.to_vec()) {
        return Err(refuse("path sent twice".into()));
    }
    Ok(())
}

impl IngestEntry {
    /// The archive entry (a regular file of `size` bytes) and its group.
    fn into_entry(self, size: u64) -> (Group, Entry) {
        let group = Group {
            pkg_type: self.pkg_type,
            repo: self.repo,
        };
        let mode = 0o100000 | (self.mode.unwrap_or(0o644) & 0o7777);
        let entry = Entry {
            mtime_ns: self.mtime_ns,
            size,
            ..Entry::new(self.path, EntryKind::File, mode)
        };
        (group, entry)
    }
}

fn run(
    rx: Receiver<IngestEntry>,
    output: Output,
    pipeline: Pipeline,
    opts: &PackOptions,
) -> Result<PackReport> {
    let (started, mut clock) = (Instant::now(), Clock::start());
    let mut seg = Segmenter::new(opts.chunk_size, pipeline.plans());
    let mut entries: Vec<(Group, Entry)> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut failure = None;
    for mut item in rx.iter() {
        if let Err(e) = admit(&item.path, &mut seen) {
            failure = Some(e);
            break;
        }
        let size = item.data.len() as u64;
        let store = opts.stores(&item.path);
        if size > 0
            && seg
                .add(
                    entries.len(),
                    Source::Memory(Arc::from(std::mem::take(&mut item.data))),
                    size,
                    store,
                )
                .is_err()
        {
            break; // the pipeline failed; finishing it reports why
        }
        entries.push(item.into_entry(size));
    }
    if let Some(e) = failure {
        drop(rx);
        drop(seg);
        pipeline.abort();
        return Err(e);
    }
    clock.work("receive");
    clock.reclassify("receive", "compressors_busy", seg.blocked());
    let fed = Fed {
        seg,
        entries,
        warnings: Vec::new(),
        skipped: Vec::new(),
        stage: "ingest",
        clocks: vec![clock],
        started,
        bases: Vec::new(),
    };
    finish(output, pipeline, fed, opts, None)
}
