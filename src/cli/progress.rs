//! Progress bars on stderr (indicatif). [`Bar`] is drawn from the library's
//! [`Progress`] counters by a thread of its own ten times a second: bytes done of the
//! total, throughput and ETA, and during a pack's walk the entries found so far.
//! [`JobsBar`] follows the benchmark's steps: timed jobs done of all, elapsed time, ETA
//! and the job running. Shown when stderr is a terminal or with `--progress` (then as
//! plain lines); never with `--quiet` or `--json`.

use super::Reporting;
use super::bench::rig::Step;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use znippy_uring::Progress;

/// Whether `out` asks for progress: on a terminal, or forced with `--progress`.
fn wanted(out: &Reporting) -> bool {
    !out.quiet && !out.json && (out.progress || std::io::stderr().is_terminal())
}

/// A progress bar following a [`Progress`] until dropped.
pub struct Bar {
    counters: Arc<Progress>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bar {
    /// Starts a bar labelled `what` if `out` says to show one; the counters are there
    /// for the library either way.
    pub fn start(out: &Reporting, what: &'static str) -> Bar {
        let counters = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = wanted(out).then(|| {
            let (counters, stop) = (counters.clone(), stop.clone());
            std::thread::spawn(move || draw(what, &counters, &stop))
        });
        Bar {
            counters,
            stop,
            thread,
        }
    }

    /// The counters to hand to the library.
    pub fn counters(&self) -> Arc<Progress> {
        self.counters.clone()
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn draw(what: &'static str, counters: &Progress, stop: &AtomicBool) {
    if !std::io::stderr().is_terminal() {
        return log_lines(what, counters, stop);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    let walking = ProgressStyle::with_template("{prefix} {spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let running = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_prefix(what);
    bar.set_style(walking);
    let mut known = false;
    while !stop.load(Ordering::Relaxed) {
        let (done, total, total_known, entries) = counters.snapshot();
        if total_known && !known {
            known = true;
            bar.set_style(running.clone());
        }
        if known {
            bar.set_length(total);
            bar.set_position(done);
            if entries > 0 {
                bar.set_message(format!("{entries} entries"));
            }
        } else {
            bar.set_message(format!(
                "walking: {entries} entries, {}",
                indicatif::HumanBytes(total)
            ));
            bar.tick();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// `--progress` without a terminal (a log file): one plain line a second.
fn log_lines(what: &'static str, counters: &Progress, stop: &AtomicBool) {
    let start = std::time::Instant::now();
    let mut last = start;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last = std::time::Instant::now();
        let (done, total, known, entries) = counters.snapshot();
        let secs = start.elapsed().as_secs_f64();
        let of = if known { "" } else { "walking, " };
        eprintln!(
            "{what}: {} of {} ({of}{entries} entries), {:.0} MB/s",
            indicatif::HumanBytes(done),
            indicatif::HumanBytes(total),
            super::report::mb_per_s(done, secs)
        );
    }
}

/// The benchmark's progress: a bar of timed jobs on a terminal, a line per job with
/// `--progress` elsewhere; notes (corpus generation, missing peers) unless `--quiet`.
pub struct JobsBar {
    bar: Option<ProgressBar>,
    /// A bar once the total is known (on a terminal).
    drawn: bool,
    /// Lines instead of a bar (`--progress` without a terminal).
    lines: bool,
    quiet: bool,
    started: u64,
    total: u64,
}

impl JobsBar {
    /// Progress for `bench` as `out` asks.
    pub fn new(out: &Reporting) -> JobsBar {
        let tty = std::io::stderr().is_terminal();
        JobsBar {
            bar: None,
            drawn: wanted(out) && tty,
            lines: wanted(out) && !tty,
            quiet: out.quiet,
            started: 0,
            total: 0,
        }
    }

    /// Shows one step of the benchmark.
    pub fn step(&mut self, step: Step) {
        match step {
            Step::Note(line) => match &self.bar {
                Some(bar) => bar.println(format!("bench: {line}")),
                None if !self.quiet => eprintln!("bench: {line}"),
                None => {}
            },
            Step::Total(n) => {
                self.total = n;
                if self.drawn {
                    let bar = ProgressBar::with_draw_target(
                        Some(n),
                        ProgressDrawTarget::stderr_with_hz(10),
                    );
                    bar.set_style(
                        ProgressStyle::with_template(
                            "bench [{bar:30}] {pos}/{len} jobs {elapsed_precise} ETA {eta} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.enable_steady_tick(Duration::from_millis(250));
                    self.bar = Some(bar);
                }
            }
            Step::Job(label) => {
                self.started += 1;
                if let Some(bar) = &self.bar {
                    bar.set_position(self.started - 1);
                    bar.set_message(label.to_string());
                } else if self.lines {
                    eprintln!("bench: job {}/{}: {label}", self.started, self.total);
                }
            }
        }
    }
}

impl Drop for JobsBar {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
