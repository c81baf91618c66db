//! How a command reports what it did: one typed report per command (docs/JSON.md,
//! docs/report.schema.json), printed either as its summary line or, with `--json`, as
//! one line of JSON made from the same value.

use serde::{Serialize, Serializer};
use std::path::Path;
use std::time::Instant;

/// Where and how a command reports, from the global flags.
#[derive(Clone, Copy, Debug)]
pub struct Reporting {
    /// `--json`: a JSON report instead of the summary line.
    pub json: bool,
    /// `--quiet`: no summary line and no progress bar.
    pub quiet: bool,
    /// `--progress`: progress bars even when stderr is not a terminal.
    pub progress: bool,
}

/// Where a report goes when standard output carries the command's data (`cat`, `index`
/// to standard output, `pack -o -`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: the usual place.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A command's report: its JSON fields (serialized after `command` and `archive`) and
/// its summary line.
pub trait Report: Serialize {
    /// The one line printed on stderr without `--json`.
    fn summary(&self, command: &str) -> String;
}

/// What every JSON report starts with: the command and the archive it worked on.
#[derive(Serialize)]
pub struct Envelope<'a, R> {
    pub command: &'static str,
    #[serde(serialize_with = "lossy")]
    pub archive: &'a Path,
    #[serde(flatten)]
    pub report: &'a R,
}

/// How long a command took, and at what throughput.
#[derive(Serialize)]
pub struct Timing {
    pub seconds: f64,
    pub mb_per_s: f64,
}

impl Timing {
    /// From `start` to now, over `bytes`.
    pub fn since(start: Instant, bytes: u64) -> Timing {
        let seconds = start.elapsed().as_secs_f64();
        Timing {
            seconds,
            mb_per_s: mb_per_s(bytes, seconds),
        }
    }
}

impl Reporting {
    /// Prints `report` of `command` on `archive`: with `--json` as one line of JSON on
    /// `stream`; otherwise its summary line on stderr, unless `--quiet`.
    pub fn report<R: Report>(
        &self,
        stream: Stream,
        command: &'static str,
        archive: &Path,
        report: &R,
    ) {
        if self.json {
            let envelope = Envelope {
                command,
                archive,
                report,
            };
            // Serializing plain fields into a string cannot fail; say so if it does.
            let line = serde_json::to_string(&envelope)
                .unwrap_or_else(|e| format!("{{\"error\":\"report not serializable: {e}\"}}"));
            match stream {
                Stream::Stdout => println!("{line}"),
                Stream::Stderr => eprintln!("{line}"),
            }
        } else if !self.quiet {
            eprintln!("{}", report.summary(command));
        }
    }
}

/// Serializes a path as text, replacing bytes that are not UTF-8 (serde's own `Path`
/// serialization fails on them).
pub fn lossy<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// Like [`lossy`], for an optional path.
pub fn lossy_opt<S: Serializer>(path: &Option<&Path>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => lossy(p, s),
        None => s.serialize_none(),
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
