//! Hostile archives: every input the fuzzer found (tests/data/fuzz, format 1), the fuzz
//! seeds (of formats 1 and 2: `*-v2.znippy` are the same trees packed by format 2),
//! and a fixed set of structure-aware index mutations of those seeds (each keeping its
//! seed's format version), each run through the fuzz target's own checks
//! (fuzz/src/lib.rs): open, list, verify, read every file, unpack; no panic, exact
//! read lengths, nothing written outside the target.

#[path = "../fuzz/src/lib.rs"]
mod oracle;

use std::fs;
use std::path::Path;

fn inputs(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| fs::read(p).unwrap()).collect()
}

#[test]
fn inputs_found_by_the_fuzzer_are_handled() {
    let found = inputs("tests/data/fuzz");
    assert!(!found.is_empty());
    for data in &found {
        oracle::exercise(data);
    }
}

#[test]
fn structure_aware_mutations_of_the_seeds_are_handled() {
    let seeds = inputs("fuzz/seeds/reader");
    assert!(seeds.len() >= 3);
    let mut mutated = 0;
    for seed in &seeds {
        oracle::exercise(seed);
        let mut current = seed.clone();
        for round in 0..400u32 {
            // Chains of mutations, restarting from the seed now and then.
            let Some(next) = oracle::mutate_index(&current, round.wrapping_mul(2_654_435_761))
            else {
                current = seed.clone();
                continue;
            };
            oracle::exercise(&next);
            mutated += 1;
            current = if round % 4 == 3 { seed.clone() } else { next };
        }
    }
    assert!(mutated > 300, "only {mutated} mutations applied");
}
