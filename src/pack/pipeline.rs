//! The pipeline: N pinned compressors, each with its ring, and one writer, connected by
//! bounded channels. Callers feed it chunk plans (through a [`super::Segmenter`]) and
//! collect the written chunks at the end.

use super::budget::Budget;
use super::compressor::{Changes, Compressor, Returned, Root, Sealed};
use super::output::Output;
use super::ring::Ring;
use super::segmenter::ChunkPlan;
use super::writer::{Writer, Written};
use crate::error::{Error, Result};
use crate::io::{self, Backend, IoMode};
use crate::stages::Clock;
use crossbeam_channel::{Sender, bounded};
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Submission queue entries per io_uring instance.
const QUEUE_DEPTH: u32 = 64;

/// A running pipeline.
pub struct Pipeline {
    plans: Option<Sender<ChunkPlan>>,
    compressors: Vec<JoinHandle<Result<Clock>>>,
    writer: Option<JoinHandle<Result<Written>>>,
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
    /// Counters of bytes written.
    pub progress: Option<Arc<crate::Progress>>,
}

impl Pipeline {
    /// Allocates rings, sets up I/O queues and starts the threads.
    pub fn start(cfg: Config, output: &Output) -> Result<Pipeline> {
        let archive = output.file.clone();
        let archive_path = output.path().to_path_buf();
        let budget = cfg.budget;
        let (threads, slots) = (budget.compressors, budget.slots);
        if threads < cfg.threads {
            log::info!(
                "pack: --memory {} MiB runs {threads} compressors, not {}: each needs {} MiB \
                 ({} slots of {} KiB and {} KiB of zstd buffers); raise --memory for more",
                cfg.memory >> 20,
                cfg.threads,
                (budget.bytes() / threads).div_ceil(1 << 20),
                slots,
                budget.slot_bytes >> 10,
                budget.overhead_bytes >> 10
            );
        }
        let rings: Vec<Arc<Ring>> = (0..threads)
            .map(|_| Ring::new(slots, cfg.chunk_size).map(Arc::new))
            .collect::<Result<_>>()?;
        // Queue i < threads belongs to compressor i; the last one to the writer, which
        // registers every slot of every ring (a registration belongs to one ring).
        log::info!(
            "pack: {threads} compressors (pinned), {slots} slots of {} KiB each, {}, {} MiB of {} MiB budget",
            cfg.chunk_size >> 10,
            cfg.level
                .map_or("stored (no zstd)".to_string(), |l| format!(
                    "zstd level {l}"
                )),
            budget.bytes() >> 20,
            cfg.memory >> 20
        );
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
        let mut returns = Vec::new();
        let mut compressors = Vec::new();
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        for (id, (ring, queue)) in rings.iter().zip(queues).enumerate() {
            let (ret_tx, ret_rx) = bounded::<Returned>(slots);
            returns.push(ret_tx);
            let c = Compressor {
                id,
                ring: ring.clone(),
                queue,
                level: cfg.level,
                root: cfg.root.clone(),
                on_change: cfg.on_change,
                changes: changes.clone(),
            };
            let (plans, sealed, abort) = (plan_rx.clone(), sealed_tx.clone(), abort.clone());
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let handle = std::thread::Builder::new()
                .name(format!("znippy-compress-{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    c.run(plans, ret_rx, sealed, &abort)
                })
                .map_err(|e| Error::io(&archive_path, "spawn compressor", e))?;
            compressors.push(handle);
        }
        drop(sealed_tx);
        let writer = Writer {
            queue: writer_queue,
            fd: archive.as_raw_fd(),
            sequential: output.sequential(),
            path: archive_path.clone(),
            rings: rings.clone(),
            returns,
            progress: cfg.progress.clone(),
        };
        let wabort = abort.clone();
        let writer = std::thread::Builder::new()
            .name("znippy-writer".into())
            .spawn(move || {
                let _keep_open = archive;
                writer.run(sealed_rx, &wabort)
            })
            .map_err(|e| Error::io(&archive_path, "spawn writer", e))?;
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
