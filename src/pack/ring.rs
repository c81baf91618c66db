//! The revolver: a compressor's fixed ring of slots, allocated once at start.
//!
//! Each slot holds one chunk: file data is read straight into it, and once the chunk is
//! hashed and compressed its zstd frame (never longer than the data, or the chunk is
//! stored) is copied over the data, so the writer writes the blob from the same slot.
//! The memory is one page-aligned anonymous allocation, so every slot can be
//! registered with io_uring as a fixed buffer. Ownership of a slot moves as a token:
//! compressor -> writer -> compressor.
//! Only the current owner touches its bytes; that protocol is what makes the raw
//! accessors below sound.

use crate::error::{Error, Result};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

const PAGE: usize = 4096;

/// A ring of `slots` slots of `cap` bytes each.
pub struct Ring {
    base: NonNull<u8>,
    layout: Layout,
    slots: usize,
    cap: usize,
}

// SAFETY: the ring is plain memory; access is coordinated by slot ownership (see above).
unsafe impl Send for Ring {}
// SAFETY: as above; no two threads touch the same slot's bytes at once.
unsafe impl Sync for Ring {}

impl Ring {
    /// Allocates `slots` slots for chunks of up to `chunk_size` bytes.
    pub fn new(slots: usize, chunk_size: usize) -> Result<Ring> {
        let cap = slot_bytes(chunk_size);
        let size = slots
            .checked_mul(cap)
            .filter(|&s| s > 0)
            .ok_or_else(|| Error::Invalid("ring size overflows".into()))?;
        let layout = Layout::from_size_align(size, PAGE)
            .map_err(|e| Error::Invalid(format!("ring layout: {e}")))?;
        // SAFETY: layout has non-zero size.
        let base = NonNull::new(unsafe { alloc_zeroed(layout) })
            .ok_or_else(|| Error::Invalid(format!("cannot allocate {size} bytes of ring")))?;
        Ok(Ring {
            base,
            layout,
            slots,
            cap,
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Start of slot `slot`. Panics on an out-of-range slot (a bug).
    pub fn slot_ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.slots, "slot {slot} out of range");
        // SAFETY: in bounds of the allocation.
        unsafe { self.base.as_ptr().add(slot * self.cap) }
    }

    /// The slot's first `len` bytes.
    ///
    /// # Safety
    /// The caller owns the slot and no I/O into it is in flight; `len <= chunk size`.
    // Slots are shared memory handed between threads by ownership tokens; `&self` is
    // how every owner reaches its own slot.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slot(&self, slot: usize, len: usize) -> &mut [u8] {
        assert!(len <= self.cap);
        // SAFETY: in bounds; exclusive by the ownership protocol.
        unsafe { std::slice::from_raw_parts_mut(self.slot_ptr(slot), len) }
    }

    /// The io_uring iovecs of every slot, in slot order (slot `s` is buffer `s`).
    pub fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.slots)
            .map(|s| libc::iovec {
                iov_base: self.slot_ptr(s).cast(),
                iov_len: self.cap,
            })
            .collect()
    }
}

/// Bytes of one slot for chunks of `chunk_size` bytes (whole pages).
pub fn slot_bytes(chunk_size: usize) -> usize {
    chunk_size.div_ceil(PAGE) * PAGE
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.base.as_ptr(), self.layout) }
    }
}
