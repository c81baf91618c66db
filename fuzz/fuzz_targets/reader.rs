//! Fuzz target: arbitrary bytes as an archive (open, list, verify, cat, unpack), with a
//! structure-aware mutator that rewrites index fields of valid archives.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|data: &[u8]| {
    znippy_uring_fuzz::exercise(data);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    if seed % 3 != 0 {
        if let Some(new) = znippy_uring_fuzz::mutate_index(&data[..size], seed) {
            if new.len() <= max_size {
                data[..new.len()].copy_from_slice(&new);
                return new.len();
            }
        }
    }
    fuzzer_mutate(data, size, max_size)
});
