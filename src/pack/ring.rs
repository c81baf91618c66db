//! The revolver: a compressor's fixed ring of slots, allocated once at start.
//!
//! Each slot has an input buffer (one chunk of file data, read straight into it) and an
//! output buffer (the chunk's zstd frame). The memory is one page-aligned anonymous
//! allocation, so both halves of every slot can be registered with io_uring as fixed
//! buffers. Ownership of a slot moves as a token: compressor -> writer -> compressor.
//! Only the current owner touches its bytes; that protocol is what makes the raw
//! accessors below sound.

use crate::error::{Error, Result};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

const PAGE: usize = 4096;

/// A ring of `slots` slots, each `in_cap` + `out_cap` bytes.
pub struct Ring {
    base: NonNull<u8>,
    layout: Layout,
    slots: usize,
    in_cap: usize,
    out_cap: usize,
}

// SAFETY: the ring is plain memory; access is coordinated by slot ownership (see above).
unsafe impl Send for Ring {}
// SAFETY: as above; no two threads touch the same slot's bytes at once.
unsafe impl Sync for Ring {}

impl Ring {
    /// Allocates `slots` slots for chunks of up to `chunk_size` bytes.
    pub fn new(slots: usize, chunk_size: usize) -> Result<Ring> {
        let round = |n: usize| n.div_ceil(PAGE) * PAGE;
        let in_cap = round(chunk_size);
        let out_cap = round(zstd::zstd_safe::compress_bound(chunk_size));
        let size = slots
            .checked_mul(in_cap + out_cap)
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
            in_cap,
            out_cap,
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Start of slot `slot`'s input buffer. Panics on an out-of-range slot (a bug).
    pub fn input_ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.slots, "slot {slot} out of range");
        // SAFETY: in bounds of the allocation.
        unsafe { self.base.as_ptr().add(slot * (self.in_cap + self.out_cap)) }
    }

    /// Start of slot `slot`'s output buffer.
    pub fn output_ptr(&self, slot: usize) -> *mut u8 {
        // SAFETY: in bounds of the allocation (input_ptr checked the slot).
        unsafe { self.input_ptr(slot).add(self.in_cap) }
    }

    /// The slot's first `len` input bytes.
    ///
    /// # Safety
    /// The caller owns the slot and no I/O into it is in flight; `len <= chunk size`.
    // Slots are shared memory handed between threads by ownership tokens; `&self` is
    // how every owner reaches its own slot.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn input(&self, slot: usize, len: usize) -> &mut [u8] {
        assert!(len <= self.in_cap);
        // SAFETY: in bounds; exclusive by the ownership protocol.
        unsafe { std::slice::from_raw_parts_mut(self.input_ptr(slot), len) }
    }

    /// The slot's whole output buffer.
    ///
    /// # Safety
    /// As for [`Ring::input`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn output(&self, slot: usize) -> &mut [u8] {
        // SAFETY: in bounds; exclusive by the ownership protocol.
        unsafe { std::slice::from_raw_parts_mut(self.output_ptr(slot), self.out_cap) }
    }

    /// The io_uring iovecs of every slot: input then output, slot after slot.
    pub fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.slots)
            .flat_map(|s| {
                [
                    libc::iovec {
                        iov_base: self.input_ptr(s).cast(),
                        iov_len: self.in_cap,
                    },
                    libc::iovec {
                        iov_base: self.output_ptr(s).cast(),
                        iov_len: self.out_cap,
                    },
                ]
            })
            .collect()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.base.as_ptr(), self.layout) }
    }
}
