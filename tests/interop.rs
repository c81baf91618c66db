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
fn pyarrow_polars_and_duckdb_read_the_compressed_index_slices_of_the_file() {
    if !required_or_skip(&["pyarrow", "polars", "duckdb"]) {
        return;
    }
    let s = Scratch::new("interop-slices");
    let (src, archive) = packed(&s);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_slices.py");
    let out = py(&[script.as_os_str(), archive.as_os_str()], &s.path("work"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("version {}", znippy_uring::FORMAT_VERSION)
    );
    let a = znippy_uring::Archive::open(&archive).unwrap();
    let mut paths: Vec<String> = a.entries().iter().map(|e| e.display_path()).collect();
    paths.sort();
    let expected = format!("{} {} {}", paths.len(), a.chunks().len(), paths.join(","));
    assert!(paths.len() > 30 && src.join("unicodé/ß.txt").exists());
    for reader in ["pyarrow", "polars", "duckdb"] {
        let line = lines.iter().find(|l| l.starts_with(reader)).unwrap();
        assert_eq!(line[reader.len() + 1..], expected, "{reader}");
    }
}

/// A fleet of two hosts over two days, catalogued into `work/catalog`; returns the
/// archives that hold the nginx.conf whose digest is in `work/wanted.b3`.
fn fleet(s: &Scratch, work: &Path) -> Vec<PathBuf> {
    let mut holding = Vec::new();
    let mut archives = Vec::new();
    for (host, date, conf) in [
        ("web1", "2026-11-29", "worker_processes 4;\n"),
        ("web1", "2026-11-30", "worker_processes 8;\n"),
        ("web2", "2026-11-29", "worker_processes 4;\n"),
        ("web2", "2026-11-30", "worker_processes 4;\n"),
    ] {
        let tree = s.path(&format!("fleet/{host}/{date}"));
        write(&tree, "etc/nginx/nginx.conf", conf.as_bytes());
        small_files(&tree.join("var"), 5);
        let archive = s.path(&format!("backups/{host}/{date}.znippy"));
        std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
        ok(&[
            os("pack"),
            tree.as_os_str(),
            os("-o"),
            archive.as_os_str(),
            os("-q"),
        ]);
        if conf.contains('4') {
            holding.push(std::fs::canonicalize(&archive).unwrap());
        }
        archives.push(archive);
    }
    let wanted = blake3::hash(b"worker_processes 4;\n").to_hex();
    std::fs::write(
        work.join("wanted.b3"),
        format!("{wanted}  /etc/nginx/nginx.conf\n"),
    )
    .unwrap();
    let catalog = work.join("catalog");
    let mut args = vec![os("catalog")];
    args.extend(archives.iter().map(|a| a.as_os_str()));
    args.extend([
        os("-o"),
        catalog.as_os_str(),
        os("--partition"),
        os("host={parent}"),
    ]);
    args.extend([os("--partition"), os("date={stem}"), os("--json")]);
    let report: serde_json::Value = serde_json::from_slice(&ok(&args).stdout).unwrap();
    assert_eq!(report["archives"], 4);
    // Catalogued again: each archive's file is replaced, not added.
    ok(&args);
    let files = Command::new("find")
        .arg(&catalog)
        .args(["-name", "*.parquet"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&files.stdout).lines().count(), 4);
    holding
}

#[test]
fn every_python_example_in_query_md_runs() {
    if !required_or_skip(&["pyarrow", "duckdb", "polars", "datafusion"]) {
        return;
    }
    let s = Scratch::new("interop-query");
    let (_, archive) = packed(&s);
    let work = s.path("work");
    let holding = fleet(&s, &work);
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
    // The fleet: the digest's three archives (DuckDB), bytes per host and day, two
    // versions of nginx.conf (Polars), the same three by DataFusion.
    let (digest, per_day, versions, fusion) = (&outputs[4], &outputs[5], &outputs[6], &outputs[7]);
    for a in &holding {
        assert!(
            digest.contains(&*a.to_string_lossy()),
            "{a:?} not in\n{digest}"
        );
    }
    assert_eq!(digest.lines().count(), 3, "{digest}");
    assert!(
        digest.contains("web1 2026-11-29 etc/nginx/nginx.conf"),
        "{digest}"
    );
    assert!(
        per_day.contains("web2") && per_day.contains("2026-11-30"),
        "{per_day}"
    );
    assert!(versions.contains("distinct versions: 2"), "{versions}");
    assert_eq!(fusion.lines().count(), 3, "{fusion}");
    assert!(
        fusion.contains("web2 2026-11-30 etc/nginx/nginx.conf"),
        "{fusion}"
    );
}
