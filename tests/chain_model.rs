//! Model-based test of incremental chains (`pack --since`): random sequences of changes
//! to a tree, the hostile ones included (content rewritten at the same size with the
//! old mtime put back, files deleted and recreated so that inode numbers are recycled,
//! swaps, renames whose content then changes, truncate-and-regrow, hard links moved,
//! files turned into directories and back), one incremental archive per generation.
//! Every generation is verified and restored, and compared with the snapshot taken
//! when it was packed.
//!
//! A failure prints its seed and the changes of every generation. Seeds:
//! `ZNIPPY_MODEL_SEEDS=N` runs N seeds (default 8), `ZNIPPY_MODEL_SEED=S` only seed S,
//! `ZNIPPY_MODEL_GENERATIONS=G` makes G generations (default 6).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len()))
        }
    }
}

/// Chunk size of the packs: small, so that files span chunks cheaply.
const CHUNK: usize = 64 << 10;

const DIRS: [&str; 4] = ["a", "a/deep", "b", "c"];

/// Sizes that matter: empty, tiny, one chunk exactly, around chunk boundaries.
fn size(rng: &mut Rng) -> usize {
    let sizes = [
        0,
        1,
        8,
        100,
        4096,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        3 * CHUNK + 5,
    ];
    sizes.get(rng.below(sizes.len())).copied().unwrap_or(8)
}

/// Content that differs from anything written before at the same size.
fn content(rng: &mut Rng, len: usize) -> Vec<u8> {
    bytes(rng.next(), len, rng.below(2) == 0)
}

/// Regular files under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = snapshot(root)
        .into_iter()
        .filter(|(_, d)| d.starts_with("file"))
        .map(|(p, _)| String::from_utf8(p).unwrap())
        .collect();
    out.sort();
    out
}

fn mtime(p: &Path) -> SystemTime {
    fs::symlink_metadata(p).unwrap().modified().unwrap()
}

fn set_mtime(p: &Path, t: SystemTime) {
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

/// Rewrites `p` in place with other bytes of the same length, then puts its old mtime
/// back: only the ctime tells.
fn same_size_old_mtime(p: &Path, rng: &mut Rng) {
    let (len, t) = (fs::metadata(p).unwrap().len() as usize, mtime(p));
    let mut data = content(rng, len);
    if let Some(b) = data.first_mut() {
        *b ^= 0x55; // never the same bytes by chance
    }
    fs::write(p, &data).unwrap();
    set_mtime(p, t);
}

/// One random change to the tree at `src`, described in the returned line.
fn mutate(src: &Path, rng: &mut Rng, serial: &mut u32) -> String {
    let all = files(src);
    let new_name = |rng: &mut Rng, serial: &mut u32| {
        *serial += 1;
        let dir = DIRS.get(rng.below(DIRS.len())).copied().unwrap_or("a");
        format!("{dir}/f{serial}")
    };
    match rng.below(14) {
        0 | 1 => {
            let rel = new_name(rng, serial);
            let len = size(rng);
            write(src, &rel, &content(rng, len));
            format!("create {rel} ({len} bytes)")
        }
        2 | 3 => match rng.pick(&all) {
            Some(rel) => {
                same_size_old_mtime(&src.join(rel), rng);
                format!("rewrite {rel} at the same size, old mtime put back")
            }
            None => "nothing to rewrite".into(),
        },
        4 => match rng.pick(&all) {
            Some(rel) => {
                let len = size(rng);
                fs::write(src.join(rel), content(rng, len)).unwrap();
                format!("rewrite {rel} ({len} bytes)")
            }
            None => "nothing to rewrite".into(),
        },
        5 => {
            // rm -rf of a directory and the same names written again, other bytes, the
            // same sizes and mtimes (tar --mtime): the freed inodes are reused.
            let dir = DIRS.get(rng.below(DIRS.len())).copied().unwrap_or("b");
            let inside: Vec<(String, usize, SystemTime)> = all
                .iter()
                .filter(|f| Path::new(f).parent() == Some(Path::new(dir)))
                .map(|f| {
                    let p = src.join(f);
                    (
                        f.clone(),
                        fs::metadata(&p).unwrap().len() as usize,
                        mtime(&p),
                    )
                })
                .collect();
            for (f, _, _) in &inside {
                fs::remove_file(src.join(f)).unwrap();
            }
            for (f, len, t) in &inside {
                let mut data = content(rng, *len);
                if let Some(b) = data.first_mut() {
                    *b ^= 0xaa;
                }
                write(src, f, &data);
                set_mtime(&src.join(f), *t);
            }
            format!(
                "recreate the {} files of {dir} (same sizes and mtimes)",
                inside.len()
            )
        }
        6 => match (rng.pick(&all).cloned(), rng.pick(&all).cloned()) {
            (Some(x), Some(y)) if x != y => {
                let tmp = src.join("swap.tmp");
                fs::rename(src.join(&x), &tmp).unwrap();
                fs::rename(src.join(&y), src.join(&x)).unwrap();
                fs::rename(&tmp, src.join(&y)).unwrap();
                format!("swap {x} and {y}")
            }
            _ => "nothing to swap".into(),
        },
        7 => match rng.pick(&all).cloned() {
            Some(x) => {
                let to = new_name(rng, serial);
                fs::create_dir_all(src.join(&to).parent().unwrap()).unwrap();
                fs::rename(src.join(&x), src.join(&to)).unwrap();
                format!("rename {x} to {to}")
            }
            None => "nothing to rename".into(),
        },
        8 => match rng.pick(&all).cloned() {
            // Renamed, then rewritten at the same size with the old mtime: same inode,
            // size and mtime at a new path, other bytes.
            Some(x) => {
                let to = new_name(rng, serial);
                fs::create_dir_all(src.join(&to).parent().unwrap()).unwrap();
                fs::rename(src.join(&x), src.join(&to)).unwrap();
                same_size_old_mtime(&src.join(&to), rng);
                format!("rename {x} to {to}, then rewrite it at the same size, old mtime")
            }
            None => "nothing to rename".into(),
        },
        9 => match rng.pick(&all) {
            // Truncate and regrow: the same size in the end, the old mtime put back.
            Some(rel) => {
                let p = src.join(rel);
                let (len, t) = (fs::metadata(&p).unwrap().len(), mtime(&p));
                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(0).unwrap();
                f.set_len(len).unwrap(); // zeros now
                drop(f);
                set_mtime(&p, t);
                format!("truncate {rel} and regrow it to {len} bytes (zeros)")
            }
            None => "nothing to truncate".into(),
        },
        10 => match rng.pick(&all).cloned() {
            Some(x) => {
                let link = new_name(rng, serial);
                fs::create_dir_all(src.join(&link).parent().unwrap()).unwrap();
                fs::hard_link(src.join(&x), src.join(&link)).unwrap();
                if rng.below(2) == 0 {
                    // ... and the original name moved away.
                    let to = new_name(rng, serial);
                    fs::create_dir_all(src.join(&to).parent().unwrap()).unwrap();
                    fs::rename(src.join(&x), src.join(&to)).unwrap();
                    format!("hard link {x} as {link}, then move {x} to {to}")
                } else {
                    format!("hard link {x} as {link}")
                }
            }
            None => "nothing to link".into(),
        },
        11 => match rng.pick(&all).cloned() {
            Some(x) => {
                fs::remove_file(src.join(&x)).unwrap();
                let len = size(rng);
                write(src, &format!("{x}/inside"), &content(rng, len));
                format!("turn {x} into a directory")
            }
            None => "nothing to turn".into(),
        },
        12 => match rng.pick(&all) {
            Some(rel) => {
                let p = src.join(rel);
                let m = fs::metadata(&p).unwrap();
                let t = mtime(&p) + Duration::from_secs(1 + rng.below(1000) as u64);
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&p, fs::Permissions::from_mode((m.mode() & 0o7777) ^ 0o040))
                    .unwrap();
                set_mtime(&p, t);
                format!("chmod and touch {rel}")
            }
            None => "nothing to touch".into(),
        },
        _ => match rng.pick(&all) {
            Some(rel) => {
                fs::remove_file(src.join(rel)).unwrap();
                format!("delete {rel}")
            }
            None => "nothing to delete".into(),
        },
    }
}

/// Directories that became files again: a directory `x` made by "turn into a directory"
/// is sometimes replaced by a file.
fn dir_to_file(src: &Path, rng: &mut Rng) -> Option<String> {
    let dirs: Vec<String> = snapshot(src)
        .into_iter()
        .filter(|(_, d)| d.starts_with("dir"))
        .map(|(p, _)| String::from_utf8(p).unwrap())
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with('f')))
        .collect();
    let d = rng.pick(&dirs)?.clone();
    fs::remove_dir_all(src.join(&d)).unwrap();
    let len = size(rng);
    write(src, &d, &content(rng, len));
    Some(format!("turn directory {d} into a file"))
}

/// What a restore must reproduce: every entry's type, mode, mtime and content, and
/// which files are hard links of each other.
fn state(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = snapshot(root)
        .into_iter()
        .map(|(p, d)| format!("{} {d}", String::from_utf8_lossy(&p)))
        .collect();
    // Hard-link groups, by inode within this tree.
    let mut by_inode: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    for f in files(root) {
        let m = fs::metadata(root.join(&f)).unwrap();
        if m.nlink() > 1 {
            by_inode.entry(m.ino()).or_default().push(f);
        }
    }
    let mut groups: Vec<String> = by_inode.into_values().map(|g| g.join(" = ")).collect();
    groups.sort();
    out.extend(groups.into_iter().map(|g| format!("linked {g}")));
    out
}

fn run_seed(seed: u64, generations: usize) {
    let s = Scratch::new(&format!("model-{seed}"));
    let src = s.path("src");
    let mut rng = Rng::new(seed);
    let mut serial = 0;
    for d in DIRS {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for i in 0..8 {
        let dir = DIRS.get(i % DIRS.len()).copied().unwrap_or("a");
        let len = size(&mut rng);
        write(&src, &format!("{dir}/init{i}"), &content(&mut rng, len));
    }
    let io = if seed.is_multiple_of(2) {
        "uring"
    } else {
        "portable"
    };
    let window = if seed % 4 < 2 { "no" } else { "a 3 s" };
    let mut log = vec![format!(
        "seed {seed} ({io}, {window} racy-ctime window); generation 0: initial tree"
    )];
    let mut snapshots = Vec::new();
    for g in 0..generations {
        if g > 0 {
            let changes = 1 + rng.below(6);
            for _ in 0..changes {
                let line = mutate(&src, &mut rng, &mut serial);
                log.push(format!("generation {g}: {line}"));
            }
            if rng.below(4) == 0
                && let Some(line) = dir_to_file(&src, &mut rng)
            {
                log.push(format!("generation {g}: {line}"));
            }
        }
        let archive = s.path(&format!("g{g}.znippy"));
        let mut args = vec![
            os("pack"),
            src.as_os_str(),
            os("-o"),
            archive.as_os_str(),
            os("--chunk-size"),
            os("64K"),
            os("--io"),
            os(io),
            os("-q"),
            os("--no-sync"),
        ];
        let previous = s.path(&format!("g{}.znippy", g.wrapping_sub(1)));
        if g > 0 {
            args.extend([os("--since"), previous.as_os_str()]);
        }
        // Half the seeds pack with no racy-ctime window, so that files just written
        // take the unread path of --since; the others confirm them by content.
        let window = if seed % 4 < 2 { "0" } else { "3000" };
        let out = command()
            .args(&args)
            .env("ZNIPPY_RACY_CTIME_MS", window)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pack of generation {g} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            log.join("\n")
        );
        snapshots.push(state(&src));
    }
    for (g, expected) in snapshots.iter().enumerate() {
        let archive = s.path(&format!("g{g}.znippy"));
        let verify = run(&[os("verify"), archive.as_os_str(), os("-q")]);
        assert!(
            verify.status.success(),
            "verify of generation {g} failed: {}\n{}",
            String::from_utf8_lossy(&verify.stderr),
            log.join("\n")
        );
        let dest = s.path(&format!("restored{g}"));
        let out = run(&[
            os("unpack"),
            archive.as_os_str(),
            os("-C"),
            dest.as_os_str(),
            os("-q"),
        ]);
        assert!(
            out.status.success(),
            "unpack of generation {g} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            log.join("\n")
        );
        let got = state(&dest);
        if &got != expected {
            let missing: Vec<&String> = expected.iter().filter(|l| !got.contains(l)).collect();
            let extra: Vec<&String> = got.iter().filter(|l| !expected.contains(l)).collect();
            panic!(
                "generation {g} restored wrong (seed {seed}; rerun with ZNIPPY_MODEL_SEED={seed})\n\
                 expected but not restored: {missing:#?}\nrestored but not expected: {extra:#?}\n\
                 changes:\n{}",
                log.join("\n")
            );
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn random_chains_restore_every_generation_exactly() {
    let generations = env_number("ZNIPPY_MODEL_GENERATIONS").unwrap_or(6) as usize;
    let seeds: Vec<u64> = match env_number("ZNIPPY_MODEL_SEED") {
        Some(seed) => vec![seed],
        None => {
            // A different set of seeds each day in CI would find more, but a red run
            // must be reproducible: the seeds are fixed, and more are one variable away.
            let n = env_number("ZNIPPY_MODEL_SEEDS").unwrap_or(8);
            (1..=n).collect()
        }
    };
    for seed in seeds {
        eprintln!("chain model: seed {seed}, {generations} generations");
        run_seed(seed, generations);
    }
}

/// The shell's view agrees: `cmp` of every restored file against a copy taken at pack
/// time, for one fixed hostile sequence (a guard that `state` itself compares bytes).
#[test]
fn state_tells_same_size_rewrites_apart() {
    let s = Scratch::new("model-state");
    let (a, b) = (s.path("a"), s.path("b"));
    write(&a, "x", b"12345678");
    write(&b, "x", b"12345678");
    set_mtime(&b.join("x"), mtime(&a.join("x")));
    assert_eq!(state(&a), state(&b));
    same_size_old_mtime(&b.join("x"), &mut Rng::new(1));
    assert_ne!(state(&a), state(&b), "a same-size rewrite must show");
    let cmp = Command::new("cmp")
        .arg(a.join("x"))
        .arg(b.join("x"))
        .status()
        .unwrap();
    assert!(!cmp.success());
}
