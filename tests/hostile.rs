//! Hostile archives: every input the fuzzer found (tests/data/fuzz, format 1), the fuzz
//! seeds (of formats 1, 2 and 3: `*-v2.znippy` are the same trees packed by format 2,
//! `*-v3.znippy` those re-encoded as format 3 by [`write_the_v3_seeds`]),
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

/// Writes `fuzz/seeds/reader/NAME-v3.znippy` for every `NAME-v2.znippy` there: the same
/// blobs and index, re-encoded as format 3 (compressed index streams; the chunk digest
/// rule is the same). Run once when the format changed:
/// `cargo test --test hostile -- --ignored write_the_v3_seeds`.
#[test]
#[ignore = "rewrites the fuzz seeds"]
fn write_the_v3_seeds() {
    use znippy_uring::testing::format::index;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/reader");
    for e in fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = name.strip_suffix("-v2.znippy") else {
            continue;
        };
        let data = fs::read(&path).unwrap();
        let idx = index::read(data.len() as u64, |off, len| {
            Ok(data[off as usize..off as usize + len].to_vec())
        })
        .unwrap();
        let entries = idx.entries();
        let groups: Vec<_> = (idx.groups.iter())
            .map(|(g, r)| (g.clone(), &entries[r.clone()]))
            .collect();
        let mut out = data[..idx.blob_end as usize].to_vec();
        out[8..12].copy_from_slice(&3u32.to_le_bytes());
        out.extend(index::encode_as(
            3,
            &groups,
            &idx.chunks,
            &idx.bases,
            idx.blob_end,
        ));
        fs::write(dir.join(format!("{stem}-v3.znippy")), out).unwrap();
    }
}
