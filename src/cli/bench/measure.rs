//! Timing a command: wall-clock seconds and peak RSS (from `wait4`, which covers the
//! whole process tree of a shell pipeline).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use znippy_uring::{Error, Result};

/// One timed run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Wall-clock seconds.
    pub secs: f64,
    /// Peak resident set size of the largest process, in KiB.
    pub max_rss_kib: u64,
}

/// Runs `sh -c script` through `launcher` (this executable's hidden `measure-exec`
/// subcommand) and returns its timing and peak RSS; fails with the script's stderr.
///
/// Peak RSS is taken by a fresh, small launcher process and not by the bench itself:
/// Linux folds the memory high-water mark of the process that forks into the child at
/// exec, so measuring from a large parent would report the parent's size.
pub fn shell(launcher: &Path, script: &str, log: &Path) -> Result<Run> {
    let out = Command::new(launcher)
        .arg("measure-exec")
        .arg(log)
        .arg(script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io(launcher, "spawn", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        [secs, rss, "0"] => Ok(Run {
            secs: secs.parse().unwrap_or(0.0),
            max_rss_kib: rss.parse().unwrap_or(0),
        }),
        _ => {
            let msg = fs::read_to_string(log).unwrap_or_default();
            Err(Error::Invalid(format!(
                "benchmark command failed: {script}: {}",
                msg.trim()
            )))
        }
    }
}

/// The launcher's side: runs `sh -c script` (stdout discarded, stderr to `log`),
/// waits with `wait4`, and returns (seconds, peak RSS in KiB, exit status).
pub fn exec_measured(script: &str, log: &Path) -> Result<(f64, u64, i32)> {
    let err = fs::File::create(log).map_err(|e| Error::io(log, "create", e))?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| Error::io("sh", "spawn", e))?;
    let start = Instant::now();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    if r != pid {
        return Err(Error::io("sh", "wait4", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((secs, usage.ru_maxrss as u64, code))
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Median of `v` (0 for none).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Single-quotes `s` for sh.
pub fn quote(s: &Path) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}
