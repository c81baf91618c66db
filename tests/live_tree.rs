//! Packing a tree that changes under the pack: files replaced by FIFOs (which must
//! never be waited on), by other files (renamed over), or truncated while read. With
//! `--on-change warn` the pack always finishes, names what it left out or kept as
//! read, and writes an archive that verifies. These are races: each test repeats the
//! pack while another thread changes the tree, and fails on any run that hangs or
//! fails.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs `args` and waits at most `limit`: None if it had to be killed.
fn run_bounded(args: &[&std::ffi::OsStr], limit: Duration) -> Option<std::process::Output> {
    let mut child = command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Keeps changing `dir`'s files `f0`..`f19` with `change` until `stop`.
fn churn(
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    change: fn(&Path, usize),
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            change(&dir, i % 20);
            i += 1;
        }
    })
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; mkfifo has no other preconditions.
    unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
}

fn pack_while(name: &str, change: fn(&Path, usize), runs: usize) {
    let s = Scratch::new(name);
    let src = s.path("src");
    for i in 0..20 {
        write(&src, &format!("f{i}"), &bytes(i as u64, 200_000, true));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn(src.clone(), stop.clone(), change);
    let archive = s.path("a.znippy");
    let mut failures = Vec::new();
    for n in 0..runs {
        let args = [
            os("pack"),
            src.as_os_str(),
            os("-o"),
            archive.as_os_str(),
            os("--on-change"),
            os("warn"),
            os("--chunk-size"),
            os("64K"),
            os("--no-sync"),
            os("-q"),
        ];
        match run_bounded(&args, Duration::from_secs(60)) {
            None => failures.push(format!("run {n}: hung (killed after 60 s)")),
            Some(out) if !out.status.success() => failures.push(format!(
                "run {n}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )),
            Some(_) => {
                let v = run(&[os("verify"), archive.as_os_str(), os("-q")]);
                if !v.status.success() {
                    failures.push(format!("run {n}: verify failed"));
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn files_swapped_for_fifos_during_a_pack_are_never_waited_on() {
    pack_while(
        "live-fifo",
        |dir, i| {
            let (f, tmp) = (dir.join(format!("f{i}")), dir.join(format!("t{i}")));
            mkfifo(&tmp);
            let _ = fs::rename(&tmp, &f);
            std::thread::sleep(Duration::from_micros(300));
            let _ = fs::write(&tmp, b"a regular file again");
            let _ = fs::rename(&tmp, &f);
        },
        15,
    );
}

#[test]
fn files_renamed_over_and_removed_during_a_pack_leave_a_warning_not_a_failure() {
    pack_while(
        "live-rename",
        |dir, i| {
            let (f, tmp) = (dir.join(format!("f{i}")), dir.join(format!("t{i}")));
            let _ = fs::remove_file(&f);
            std::thread::sleep(Duration::from_micros(200));
            let _ = fs::write(&tmp, bytes(i as u64, 1000 + i * 10, true));
            let _ = fs::rename(&tmp, &f);
        },
        15,
    );
}

#[test]
fn a_file_truncated_while_read_is_kept_as_read_under_warn() {
    let s = Scratch::new("live-shrink");
    let src = s.path("src");
    let archive = s.path("a.znippy");
    let mut outcomes = Vec::new();
    for run in 0..6 {
        write(&src, "big", &bytes(run, 48 << 20, false));
        let big = src.join("big");
        let truncator = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20 + 15 * run));
            let f = fs::OpenOptions::new().write(true).open(&big).unwrap();
            f.set_len(1 << 20).unwrap();
        });
        let out = command()
            .args([os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()])
            .args([
                "--on-change",
                "warn",
                "--store",
                "--threads",
                "1",
                "--no-sync",
                "-q",
            ])
            .output()
            .unwrap();
        truncator.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "run {run}: {err}");
        ok(&[os("verify"), archive.as_os_str(), os("-q")]);
        outcomes.push(err);
    }
    // Whenever the truncation was seen, it is named once, with the sizes that matter.
    for err in outcomes.iter().filter(|e| e.contains("shrank")) {
        assert_eq!(err.matches("shrank").count(), 1, "{err}");
        assert!(err.contains("the walk saw"), "{err}");
    }
}
