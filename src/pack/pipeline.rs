//! The pipeline: N pinned compressors, each with its ring, and one writer, connected by
//! bounded channels. Callers feed it chunk plans (through a [`super::Segmenter`]) and
//! collect the written chunks at the end.

use super::budget::Budget;
use super::compressor::{Changes, Compressor, Returned, Sealed};
use super::output::Output;
use super::ring::Ring;
use super::root::Root;
use super::segmenter::ChunkPlan;
use super::writer::{Writer, Written};
use crate::error::{Error, Result};
use crate::io::{self, Backend, IoMode, Queue};
use crate::stages::Clock;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Submission queue entries per io_uring instance.
const QUEUE_DEPTH: u32 = 64;

/// A pipeline thread: what it returns when joined.
type Thread<T> = JoinHandle<Result<T>>;

/// A running pipeline.
pub struct Pipeline {
    plans: Option<Sender<ChunkPlan>>,
    compressors: Vec<Thread<Clock>>,
    writer: Option<Thread<Written>>,
    abort: Arc<AtomicBool>,
    changes: Arc<Mutex<Changes>>,
    /// The backend in use.
    pub backend: Backend,
    /// Why `Auto` fell back to portable, if it did.
    pub fallback: Option<String>,
    /// How the memory budget was shared out.
    pub budget: Budget,
    // Keeps ring memory alive until every thread has been joined.
    _rings: Vec<Arc<Ring>>,
}

/// What a pipeline needs to start.
pub struct Config {
    /// Compressor threads.
    pub threads: usize,
    /// Chunk size in bytes.
    pub chunk_size: usize,
    /// zstd level (`None`: every chunk stored).
    pub level: Option<i32>,
    /// Bytes the compressors may hold in all.
    pub memory: usize,
    /// How `memory` is shared out among the compressors.
    pub budget: Budget,
    /// I/O backend choice.
    pub io: IoMode,
    /// Root directory for file sources.
    pub root: Option<Arc<Root>>,
    /// What to do with files that change while being read.
    pub on_change: super::OnChange,
    /// What to do with files that cannot be read.
    pub on_unreadable: super::OnUnreadable,
    /// Counters of bytes written.
    pub progress: Option<Arc<crate::Progress>>,
}

impl Pipeline {
    /// Allocates rings, sets up I/O queues and starts the threads.
    pub fn start(cfg: Config, output: &Output) -> Result<Pipeline> {
        let budget = cfg.budget;
        let (threads, slots) = (budget.compressors, budget.slots);
        log_plan(&cfg);
        let rings: Vec<Arc<Ring>> = (0..threads)
            .map(|_| Ring::new(slots, cfg.chunk_size).map(Arc::new))
            .collect::<Result<_>>()?;
        // Queue i < threads belongs to compressor i; the last one to the writer, which
        // registers every slot of every ring (a registration belongs to one ring).
        let mut buffers: Vec<Vec<libc::iovec>> = rings.iter().map(|r| r.iovecs()).collect();
        buffers.push(buffers.iter().flatten().copied().collect());
        let io::Queues {
            mut queues,
            backend,
            fallback,
        } = io::open(cfg.io, &buffers, QUEUE_DEPTH)?;
        let writer_queue = queues
            .pop()
            .ok_or_else(|| Error::Invalid("no writer queue".into()))?;
        let abort = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(Mutex::new(Changes::default()));
        let (plan_tx, plan_rx) = bounded::<ChunkPlan>(threads * slots);
        let (sealed_tx, sealed_rx) = bounded::<Sealed>(threads * slots);
        let (compressors, returns) = spawn_compressors(
            &cfg,
            output,
            &rings,
            queues,
            (&plan_rx, &sealed_tx),
            &abort,
            &changes,
        )?
        .into_iter()
        .unzip();
        drop(sealed_tx);
        let archive = output.file.clone();
        let writer = Writer {
            queue: writer_queue,
            fd: archive.as_raw_fd(),
            sequential: output.sequential(),
            path: output.path().to_path_buf(),
            rings: rings.clone(),
            returns,
            progress: cfg.progress.clone(),
        };
        let wabort = abort.clone();
        let writer = spawn("znippy-writer".into(), "spawn writer", output, move || {
            let _keep_open = archive;
            writer.run(sealed_rx, &wabort)
        })?;
        Ok(Pipeline {
            plans: Some(plan_tx),
            compressors,
            writer: Some(writer),
            abort,
            changes,
            backend,
            fallback,
            budget,
            _rings: rings,
        })
    }

    /// The channel to send chunk plans into.
    pub fn plans(&self) -> Sender<ChunkPlan> {
        self.plans.clone().unwrap_or_else(|| bounded(0).0)
    }

    /// Stops taking plans, waits for every thread, and returns what was written or
    /// the first error (a compressor's before the writer's).
    pub fn finish(mut self) -> Result<Written> {
        self.plans = None;
        let mut first: Option<Error> = None;
        let mut clocks = Vec::new();
        for h in self.compressors.drain(..) {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("compressor panicked".into())));
            match r {
                Ok(clock) => clocks.push(clock),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        let written = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(Error::Invalid("writer panicked".into())),
        };
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()));
        match (first, written) {
            (Some(e), _) => Err(e),
            (None, r) => r.map(|w| Written {
                changes,
                compressors: clocks,
                ..w
            }),
        }
    }

    /// Stops everything after a failure elsewhere (the caller reports its own error).
    pub fn abort(self) {
        self.abort.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.finish();
    }
}

/// Starts a pipeline thread named `name`; `op` names the failure.
fn spawn<T: Send + 'static>(
    name: String,
    op: &'static str,
    output: &Output,
    run: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<Thread<T>> {
    (std::thread::Builder::new().name(name).spawn(run)).map_err(|e| Error::io(output.path(), op, e))
}

/// Says (with -v) how the memory budget is shared out, and why fewer compressors run
/// than asked for when it is short.
fn log_plan(cfg: &Config) {
    let budget = &cfg.budget;
    let (threads, slots) = (budget.compressors, budget.slots);
    if threads < cfg.threads {
        log::info!(
            "pack: --memory {} runs {threads} compressors, not {}: each needs {} MiB \
             ({} slots of {} KiB and {} KiB of zstd buffers); raise --memory for more",
            super::budget::size_text(cfg.memory as u64),
            cfg.threads,
            (budget.bytes() / threads.max(1)).div_ceil(1 << 20),
            slots,
            budget.slot_bytes >> 10,
            budget.overhead_bytes >> 10
        );
    }
    log::info!(
        "pack: {threads} compressors (pinned), {slots} slots of {} KiB each, {}, {} MiB of {} budget",
        cfg.chunk_size >> 10,
        cfg.level
            .map_or("stored (no zstd)".to_string(), |l| format!(
                "zstd level {l}"
            )),
        budget.bytes() >> 20,
        super::budget::size_text(cfg.memory as u64)
    );
}

/// Starts one pinned compressor per ring, each with its queue; returns each one's
/// thread and the channel that hands slots back to it.
fn spawn_compressors(
    cfg: &Config,
    output: &Output,
    rings: &[Arc<Ring>],
    queues: Vec<Queue>,
    (plan_rx, sealed_tx): (&Receiver<ChunkPlan>, &Sender<Sealed>),
    abort: &Arc<AtomicBool>,
    changes: &Arc<Mutex<Changes>>,
) -> Result<Vec<(Thread<Clock>, Sender<Returned>)>> {
    let slots = cfg.budget.slots;
    let mut compressors = Vec::new();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let open_batch = super::root::open_batch(rings.len());
    for (id, (ring, queue)) in rings.iter().zip(queues).enumerate() {
        let (ret_tx, ret_rx) = bounded::<Returned>(slots);
        let c = Compressor {
            id,
            ring: ring.clone(),
            queue,
            level: cfg.level,
            root: cfg.root.clone(),
            on_change: cfg.on_change,
            on_unreadable: cfg.on_unreadable,
            changes: changes.clone(),
            blocking: false,
            closes: 0,
            open_batch,
        };
        let (plans, sealed, abort) = (plan_rx.clone(), sealed_tx.clone(), abort.clone());
        let core = cores.get(id % cores.len().max(1)).copied();
        let handle = spawn(
            format!("znippy-compress-{id}"),
            "spawn compressor",
            output,
            move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                c.run(plans, ret_rx, sealed, &abort)
            },
        )?;
        compressors.push((handle, ret_tx));
    }
    Ok(compressors)
}
