//! The Arrow ecosystem for real: the exported index read by pyarrow and checked
//! against the tree by an independent script (tests/interop/check_index.py, BLAKE3 from
//! the `blake3` Python package), and every `python` example of docs/QUERY.md run
//! against a real archive. .ci/run installs pyarrow, blake3, duckdb and polars in a
//! virtual environment and sets ZNIPPY_PYTHON; without them the tests say SKIPPED,
//! unless ZNIPPY_REQUIRE_PYARROW=1 (set by .ci/run when the install worked).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    std::env::var_os("ZNIPPY_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// Whether `python` can import all of `modules`.
fn has(modules: &[&str]) -> bool {
    Command::new(python())
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn required_or_skip(modules: &[&str]) -> bool {
    if has(modules) {
        return true;
    }
    let required = std::env::var("ZNIPPY_REQUIRE_PYARROW").is_ok_and(|v| v == "1");
    assert!(!required, "{modules:?} not importable by {:?}", python());
    eprintln!(
        "SKIPPED: {modules:?} not importable by {:?} (.ci/run installs them; set ZNIPPY_PYTHON)",
        python()
    );
    false
}

fn py(args: &[&std::ffi::OsStr], dir: &Path) -> String {
    let out = Command::new(python())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A packed tree with its index exported, in `s`.
fn packed(s: &Scratch) -> (PathBuf, PathBuf) {
    let src = s.path("src");
    small_files(&src, 30);
    write(&src, "big/split.bin", &bytes(9, 300_000, false));
    write(&src, "big/empty", b"");
    write(&src, "unicodé/ß.txt", "grüße".as_bytes());
    std::os::unix::fs::symlink("../big/split.bin", src.join("unicodé/link")).unwrap();
    let archive = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("--chunk-size"),
        os("64K"),
        os("--repo"),
        os("main"),
        os("--pkg-type"),
        os("3"),
    ]);
    let work = s.path("work");
    std::fs::create_dir_all(&work).unwrap();
    for name in ["index.arrow", "index.csv"] {
        let out = work.join(name);
        ok(&[os("index"), archive.as_os_str(), os("-o"), out.as_os_str()]);
    }
    (src, archive)
}

#[test]
fn pyarrow_reads_the_index_and_it_matches_the_tree() {
    if !required_or_skip(&["pyarrow", "blake3"]) {
        return;
    }
    let s = Scratch::new("interop-check");
    let (src, _) = packed(&s);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/check_index.py");
    let work = s.path("work");
    let out = py(
        &[
            script.as_os_str(),
            src.as_os_str(),
            work.join("index.arrow").as_os_str(),
        ],
        &work,
    );
    let found = Command::new("find")
        .arg(&src)
        .arg("-mindepth")
        .arg("1")
        .output()
        .unwrap();
    let on_disk = String::from_utf8_lossy(&found.stdout).lines().count();
    assert!(on_disk > 30);
    assert_eq!(out.trim(), format!("ok: {on_disk} entries match"));
}

#[test]
fn every_python_example_in_query_md_runs() {
    if !required_or_skip(&["pyarrow", "duckdb", "polars"]) {
        return;
    }
    let s = Scratch::new("interop-query");
    let (_, archive) = packed(&s);
    let work = s.path("work");
    // A damaged copy for the verification example: chunk 1 flipped.
    let damaged = s.path("damaged.znippy");
    let a = znippy_uring::Archive::open(&archive).unwrap();
    let chunk = a.chunks()[1].clone();
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[chunk.offset as usize + 8] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let verify = run(&[os("verify"), damaged.as_os_str(), os("--json")]);
    assert_eq!(verify.status.code(), Some(1));
    std::fs::write(work.join("verify.json"), &verify.stdout).unwrap();

    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/QUERY.md"))
        .unwrap();
    let blocks: Vec<&str> = doc
        .split("```python\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(blocks.len() >= 4, "QUERY.md lost its examples");
    let mut outputs = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let file = work.join(format!("example{i}.py"));
        std::fs::write(&file, block).unwrap();
        outputs.push(py(&[file.as_os_str()], &work));
    }
    let all = outputs.join("\n");
    // The largest file first; the repository total; the damaged chunk's file.
    assert!(all.contains("300000 big/split.bin"), "{all}");
    assert!(all.contains("main"), "{all}");
    let damaged_files: Vec<&str> = a
        .entries()
        .iter()
        .filter(|e| {
            e.location
                .is_some_and(|l| (l.first_chunk..=l.last_chunk).contains(&1))
        })
        .map(|e| std::str::from_utf8(&e.path).unwrap())
        .collect();
    assert!(!damaged_files.is_empty());
    assert!(
        damaged_files.iter().all(|p| outputs[3].contains(p)),
        "{damaged_files:?} not all in\n{}",
        outputs[3]
    );
}
