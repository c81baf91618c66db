//! The memory budget (`--memory`): how many compressors run, and with how many ring
//! slots each, so that what the pipeline holds stays within it.
//!
//! Everything that grows with the threads is counted: each compressor's ring (one
//! chunk per slot: the chunk being read, compressed or written, and the chunks waiting
//! for their turn at the writer, so the read-ahead and the reorder window are slots
//! too), its zstd output buffer and its zstd context. What is left (the plan queue,
//! the index being built, thread stacks) is small or grows with the entries, not the
//! threads; docs/DESIGN.md gives the formula and the bytes per entry.

use crate::codec::zstd;
use crate::error::{Error, Result};

/// Default budget: 256 MiB.
pub const DEFAULT_MEMORY: usize = 256 << 20;
/// Fewest slots a compressor runs with: one being filled or compressed while the
/// other is with the writer.
pub const SLOTS_MIN: usize = 2;
/// Most slots per compressor: more only holds memory without keeping a core busier.
pub const SLOTS_MAX: usize = 4;

/// How the budget is shared out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Compressor threads that run (at most the threads asked for).
    pub compressors: usize,
    /// Ring slots per compressor.
    pub slots: usize,
    /// Bytes of one slot.
    pub slot_bytes: usize,
    /// Bytes per compressor besides its ring: zstd output buffer and context.
    pub overhead_bytes: usize,
}

impl Budget {
    /// Shares `memory` bytes among up to `threads` compressors packing chunks of
    /// `chunk_size` at zstd `level` (`None`: stored, no zstd). Fewer compressors run
    /// when the budget cannot give each [`SLOTS_MIN`] slots; an error says how much
    /// one compressor needs when not even that fits.
    pub fn plan(
        memory: usize,
        threads: usize,
        chunk_size: usize,
        level: Option<i32>,
    ) -> Result<Budget> {
        let slot_bytes = super::ring::slot_bytes(chunk_size);
        let overhead_bytes = level.map_or(0, |l| {
            zstd::bound(chunk_size) + zstd::context_bytes(l, chunk_size)
        });
        let least = SLOTS_MIN * slot_bytes + overhead_bytes;
        let fit = memory / least;
        if fit == 0 {
            return Err(Error::Invalid(format!(
                "--memory {} is too small for {} KiB chunks{}: one compressor needs {} MiB",
                size_text(memory as u64),
                chunk_size >> 10,
                level.map_or(String::new(), |l| format!(" at zstd level {l}")),
                least.div_ceil(1 << 20)
            )));
        }
        let compressors = threads.max(1).min(fit);
        let share = memory / compressors - overhead_bytes;
        let slots = (share / slot_bytes).clamp(SLOTS_MIN, SLOTS_MAX);
        Ok(Budget {
            compressors,
            slots,
            slot_bytes,
            overhead_bytes,
        })
    }

    /// Bytes the compressors hold at most.
    pub fn bytes(&self) -> usize {
        self.compressors * (self.slots * self.slot_bytes + self.overhead_bytes)
    }
}

/// `bytes` for a message, exactly: in GiB, MiB or KiB when a whole number of them,
/// else in bytes (`1 byte`, `1536 KiB`, `256 MiB`, `1000 bytes`).
pub fn size_text(bytes: u64) -> String {
    match bytes {
        1 => "1 byte".into(),
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn every_thread_runs_when_the_budget_allows() {
        let b = Budget::plan(256 * MIB, 2, 4 * MIB, Some(3)).unwrap();
        assert_eq!((b.compressors, b.slots), (2, SLOTS_MAX));
        assert!(b.bytes() <= 256 * MIB);
        let b = Budget::plan(256 * MIB, 16, 4 * MIB, Some(3)).unwrap();
        assert_eq!((b.compressors, b.slots), (16, 2));
        assert!(b.bytes() <= 256 * MIB);
    }

    #[test]
    fn fewer_compressors_run_when_the_budget_is_short() {
        for threads in [17, 64, 1024] {
            let b = Budget::plan(256 * MIB, threads, 4 * MIB, Some(3)).unwrap();
            assert!(b.compressors < threads && b.compressors >= 16, "{b:?}");
            assert_eq!(b.slots, SLOTS_MIN);
            assert!(b.bytes() <= 256 * MIB, "{b:?}");
        }
        // Stored chunks need no zstd buffers: more compressors fit.
        let stored = Budget::plan(256 * MIB, 64, 4 * MIB, None).unwrap();
        assert_eq!(stored.compressors, 32);
        assert!(stored.bytes() <= 256 * MIB);
        let slow = Budget::plan(256 * MIB, 16, 4 * MIB, Some(19)).unwrap();
        assert!(
            slow.compressors < 16 && slow.bytes() <= 256 * MIB,
            "{slow:?}"
        );
    }

    #[test]
    fn a_budget_too_small_for_one_compressor_is_refused() {
        let e = Budget::plan(8 * MIB, 4, 4 * MIB, Some(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--memory 8 MiB is too small"), "{e}");
        assert!(Budget::plan(8 * MIB, 4, MIB, Some(3)).is_ok());
        // Below a MiB the message says what was asked for, not "0 MiB".
        for (memory, shown) in [(1, "1 byte"), (1000, "1000 bytes"), (512 << 10, "512 KiB")] {
            let e = Budget::plan(memory, 4, 4 * MIB, Some(3))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("--memory {shown} is too small")), "{e}");
        }
    }

    #[test]
    fn sizes_are_shown_exactly() {
        assert_eq!(size_text(0), "0 bytes");
        assert_eq!(size_text(1), "1 byte");
        assert_eq!(size_text(1023), "1023 bytes");
        assert_eq!(size_text(1536 << 10), "1536 KiB");
        assert_eq!(size_text(256 << 20), "256 MiB");
        assert_eq!(size_text(2 << 30), "2 GiB");
        assert_eq!(size_text((1 << 20) + 1), "1048577 bytes");
    }
}
