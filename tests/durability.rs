//! Durable writes: a system call trace shows the archive flushed before it is renamed
//! into place and its directory flushed after (none of it with `--no-sync`), `unpack
//! --sync` ends with a syncfs, a pack killed with SIGKILL at 20 random moments leaves
//! either no archive or one that verifies, and its temporary file is removed by the
//! next pack to the same target.
//!
//! The trace tests need strace: SKIPPED without it, unless ZNIPPY_REQUIRE_STRACE is
//! set (as `.ci/run` does after installing it).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The flushes and renames of the binary run with `args`, in order.
fn traced(args: &[&std::ffi::OsStr], dir: &Path) -> Option<Vec<String>> {
    common::traced(
        args,
        dir,
        "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2",
    )
}

fn position(calls: &[String], what: impl Fn(&str) -> bool) -> Option<usize> {
    calls.iter().position(|c| what(c))
}

#[test]
fn the_archive_is_flushed_before_the_rename_and_its_directory_after() {
    let s = Scratch::new("durable-trace");
    let src = s.path("src");
    small_files(&src, 50);
    let archive = s.path("a.znippy");
    let pack = [
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("-q"),
    ];
    let Some(calls) = traced(&pack, &s.0) else {
        return;
    };
    let renamed =
        |c: &str| c.contains("rename") && c.contains(".tmp-znippy-") && c.contains("a.znippy\"");
    let rename = position(&calls, renamed).unwrap_or_else(|| panic!("no rename in {calls:#?}"));
    let flush = position(&calls, |c| {
        c.contains("fdatasync(") || c.contains(" fsync(")
    });
    assert!(
        flush.is_some_and(|f| f < rename),
        "no flush before the rename: {calls:#?}"
    );
    let after = calls[rename + 1..].iter().any(|c| c.contains("fsync("));
    assert!(
        after,
        "the directory is not flushed after the rename: {calls:#?}"
    );

    // --no-sync: renamed, never flushed.
    let mut scratch = pack.to_vec();
    scratch.push(os("--no-sync"));
    let calls = traced(&scratch, &s.0).unwrap();
    assert!(position(&calls, renamed).is_some(), "{calls:#?}");
    assert!(!calls.iter().any(|c| c.contains("sync(")), "{calls:#?}");

    // unpack --sync: one syncfs; plain unpack: none.
    let dest = s.path("out");
    let unpack = [
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("--sync"),
    ];
    let calls = traced(&unpack, &s.0).unwrap();
    assert_eq!(
        calls.iter().filter(|c| c.contains("syncfs(")).count(),
        1,
        "{calls:#?}"
    );
    let calls = traced(&unpack[..4], &s.0).unwrap();
    assert!(!calls.iter().any(|c| c.contains("sync")), "{calls:#?}");
}

/// Temporary files of packs to `target`.
fn leftovers(target: &Path) -> Vec<PathBuf> {
    let name = format!(
        ".{}.tmp-znippy-",
        target.file_name().unwrap().to_string_lossy()
    );
    let mut found: Vec<PathBuf> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

#[test]
fn a_pack_killed_at_any_moment_leaves_no_archive_or_one_that_verifies() {
    let s = Scratch::new("durable-kill");
    let src = s.path("src");
    small_files(&src, 1500);
    for i in 0..6 {
        write(
            &src,
            &format!("big/{i}.bin"),
            &bytes(i, 4 << 20, i % 2 == 0),
        );
    }
    let archive = s.path("a.znippy");
    let pack = |extra: &[&str]| {
        let mut c = command();
        c.arg("pack")
            .arg(&src)
            .arg("-o")
            .arg(&archive)
            .arg("-q")
            .args(extra);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c
    };
    let start = Instant::now();
    assert!(pack(&["--threads", "2"]).status().unwrap().success());
    let full = start.elapsed();
    std::fs::remove_file(&archive).unwrap();
    let entries = snapshot(&src).len();
    // A fixed seed: the same 20 moments on every run, spread over the whole pack.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = full.mul_f64((x % 1000) as f64 / 800.0); // up to 125% of a pack
        let mut child = pack(&["--threads", "2"]).spawn().unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if archive.exists() {
            // Complete, or nothing: never a partial file under the target's name.
            let out = run(&[os("verify"), archive.as_os_str(), os("-q")]);
            assert!(
                out.status.success(),
                "round {round} (kill at {at:?}): {out:?}"
            );
            let a = znippy_uring::Archive::open(&archive).unwrap();
            assert_eq!(a.entries().len(), entries, "round {round}");
            if round % 2 == 0 {
                std::fs::remove_file(&archive).unwrap(); // half the rounds start afresh
            }
        }
    }
    // The killed packs' temporary files go with the next pack to the target.
    let left = leftovers(&archive);
    assert!(!left.is_empty(), "no kill landed in the middle of a pack");
    let out = pack(&[]).output().unwrap();
    assert!(out.status.success());
    assert!(
        leftovers(&archive).is_empty(),
        "{:?} remain",
        leftovers(&archive)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("was killed").count(), left.len(), "{said}");
}

#[test]
fn only_dead_packs_temporary_files_are_removed() {
    let s = Scratch::new("durable-leftovers");
    let src = s.path("src");
    small_files(&src, 5);
    let archive = s.path("a.znippy");
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    let header = znippy_uring::testing::format::header::MAGIC;
    let tmp = |pid: u32| s.path(&format!(".a.znippy.tmp-znippy-{pid}-0"));
    std::fs::write(tmp(dead_pid), header).unwrap();
    std::fs::write(tmp(live.id()), header).unwrap();
    let other = s.path(&format!(".a.znippy.tmp-znippy-{dead_pid}-1"));
    std::fs::write(&other, b"not an archive").unwrap();
    let out = ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("-q"),
    ]);
    live.kill().unwrap();
    live.wait().unwrap();
    assert!(
        !tmp(dead_pid).exists(),
        "a dead pack's temporary file stayed"
    );
    assert!(
        tmp(live.id()).exists(),
        "a live pack's temporary file was removed"
    );
    assert!(other.exists(), "a file that is not an archive was removed");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("was killed") && said.contains(&dead_pid.to_string()),
        "{said}"
    );
}
