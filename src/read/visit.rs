//! Parallel chunk visits: every thread takes the next chunk, loads and checks it, and
//! hands the bytes (or the problem) to a callback with its own per-thread state.

use super::archive::{Archive, ChunkReader, ReaderSize};
use crate::error::{Error, Result};
use crate::stages::Clock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The threads, of `threads` asked for, that `memory` bytes hold when each keeps a
/// reader of `size` (at least one).
pub(crate) fn threads_within(memory: usize, threads: usize, size: ReaderSize) -> usize {
    let per_thread = size.bytes();
    let fit = usize::try_from(memory as u64 / per_thread).unwrap_or(usize::MAX);
    let run = threads.clamp(1, fit.max(1));
    if (memory as u64) < per_thread {
        log::warn!(
            "--memory {} is less than one thread's chunk buffers ({} MiB): one thread runs, over the budget",
            crate::pack::size_text(memory as u64),
            per_thread.div_ceil(1 << 20)
        );
    } else if run < threads {
        log::info!(
            "--memory {} runs {run} threads, not {threads}: each holds up to {} MiB",
            crate::pack::size_text(memory as u64),
            per_thread.div_ceil(1 << 20)
        );
    }
    run
}

/// Visits the chunks `0..count` of a layout on `threads` threads. `visit(state, k,
/// data)` gets the `k`-th chunk's bytes or its problem; an `Err` from it stops the
/// visit. Returns every thread's final state, and where its time went (the visit's
/// own work counted as `work`).
pub fn chunks<S: Send>(
    archive: &Archive,
    ids: &[u64],
    threads: usize,
    work: &'static str,
    init: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, usize, std::result::Result<&[u8], String>) -> Result<()> + Sync,
) -> Result<(Vec<S>, Vec<Clock>)> {
    if let Some(p) = archive.progress() {
        let chunks = archive.data_chunks();
        let total = ids
            .iter()
            .filter_map(|&id| chunks.get(id as usize))
            .map(|c| c.raw_len)
            .sum();
        p.set_total(total);
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let threads = threads.clamp(1, ids.len().max(1));
    let chunks = archive.data_chunks();
    let size = ReaderSize::of(ids.iter().filter_map(|&id| chunks.get(id as usize)));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(S, Clock)> {
                    let mut reader = ChunkReader::with_size(size)?;
                    let mut state = init();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&id) = ids.get(k) else { break };
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let data = archive.load_chunk(id, &mut reader);
                        if let (Some(p), Ok(d)) = (archive.progress(), &data) {
                            p.add_bytes(d.len() as u64);
                        }
                        let visited = visit(&mut state, k, data);
                        reader.clock.work(work);
                        if let Err(e) = visited {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    Ok((state, reader.clock))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Invalid("reader thread panicked".into())))
            })
            .collect::<Result<Vec<_>>>()
            .map(|done| done.into_iter().unzip())
    })
}
