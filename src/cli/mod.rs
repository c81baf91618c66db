//! Parts of the command line that are not the library: how a command reports what it
//! did (summary line or JSON report, docs/JSON.md) and shows progress.

pub mod progress;
pub mod stdio;

use serde_json::Value;

/// Where and how a command reports, from the global flags.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// `--json`: a JSON report instead of the summary line.
    pub json: bool,
    /// `--quiet`: no summary line and no progress bar.
    pub quiet: bool,
    /// `--progress`: progress bars even when stderr is not a terminal.
    pub progress: bool,
}

/// Where a report goes when standard output carries the command's data (`cat`, `index`
/// to standard output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: the usual place.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Output {
    /// Prints the command's report: with `--json`, `report` as one line of JSON on
    /// `stream`; otherwise `summary` as one line on stderr, unless `--quiet`.
    pub fn report(&self, stream: Stream, summary: impl FnOnce() -> String, report: Value) {
        if self.json {
            match stream {
                Stream::Stdout => println!("{report}"),
                Stream::Stderr => eprintln!("{report}"),
            }
        } else if !self.quiet {
            eprintln!("{}", summary());
        }
    }
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// `a / b` as a ratio, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}
