//! Removing temporary archives when the process is interrupted.
//!
//! Every temporary archive registers its path in a fixed table of static slots.
//! [`remove_temporaries_on_signal`] installs handlers for SIGINT, SIGTERM and SIGHUP
//! that unlink every registered file (unlink and write are async-signal-safe; the table
//! is plain atomics and static bytes, never allocated or locked), then re-raise the
//! signal with its default action, so the exit status says the process was interrupted.
//! A library does not install handlers by itself: the command line does.

use std::sync::atomic::{AtomicU8, Ordering};

const SLOTS: usize = 16;
const PATH_CAP: usize = 4096;
const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

struct Slot {
    state: AtomicU8,
    path: std::cell::UnsafeCell<[u8; PATH_CAP]>,
}

// SAFETY: a slot's bytes are written only by the thread that moved its state from FREE
// to WRITING, and read (by the signal handler) only in state READY.
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        state: AtomicU8::new(FREE),
        path: std::cell::UnsafeCell::new([0; PATH_CAP]),
    }
}; SLOTS];

/// A registration; dropping it unregisters the path.
pub struct Registration(Option<usize>);

/// Registers `path` for removal on interruption. Paths too long for a slot, or beyond
/// the table's 16 slots, are not registered (they are still removed on errors).
pub fn register(path: &std::path::Path) -> Registration {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() >= PATH_CAP || bytes.contains(&0) {
        return Registration(None);
    }
    for (i, slot) in TABLE.iter().enumerate() {
        if slot
            .state
            .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: this thread owns the slot (state WRITING).
            let buf = unsafe { &mut *slot.path.get() };
            buf[..bytes.len()].copy_from_slice(bytes);
            buf[bytes.len()] = 0;
            slot.state.store(READY, Ordering::Release);
            return Registration(Some(i));
        }
    }
    Registration(None)
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            TABLE[i].state.store(FREE, Ordering::Release);
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    let mut removed = false;
    for slot in &TABLE {
        if slot.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY slots hold a NUL-terminated path; unlink is signal-safe.
            removed |= unsafe { libc::unlink(slot.path.get().cast()) } == 0;
        }
    }
    let msg: &[u8] = if removed {
        b"znippy-uring: interrupted; temporary archive removed\n"
    } else {
        b"znippy-uring: interrupted\n"
    };
    // SAFETY: write, signal and raise are async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs the SIGINT, SIGTERM and SIGHUP handlers described above.
pub fn remove_temporaries_on_signal() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installing a handler that only uses async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}
