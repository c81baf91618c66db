//! The benchmark report as terminal tables: per corpus one row per tool, the stage
//! lines of our jobs, the `--threads` sweep, and the ratios against the peers.

use super::rig::{CorpusResult, Report, Scaling};
use std::fmt::Write;

/// The whole report.
pub fn report(report: &Report) -> String {
    let cache = if report.cold {
        "cold (dropped before each job)"
    } else {
        "hot"
    };
    let mut s = format!(
        "{} | zstd level {} | {} repetitions, medians | {} page cache\n",
        report.machine, report.level, report.reps, cache
    );
    let _ = writeln!(
        s,
        "{:<14} {:<13} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "corpus",
        "tool",
        "MB",
        "ratio",
        "pack MB/s",
        "files/s",
        "unpk MB/s",
        "vrfy MB/s",
        "list ms",
        "cat ms",
        "RSS pk",
        "RSS up"
    );
    for c in &report.corpora {
        corpus(&mut s, c);
    }
    if !report.missing_peers.is_empty() {
        let _ = writeln!(
            s,
            "peers not installed: {}",
            report.missing_peers.join(", ")
        );
    }
    s
}

/// `v` with `p` decimals, or `-`.
fn opt(v: Option<f64>, p: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.p$}"))
}

/// One corpus: its tools' rows, our stages, the sweep and the ratios.
fn corpus(s: &mut String, c: &CorpusResult) {
    // The end of a long name (a --dir path) says most.
    let name: String = {
        let tail: Vec<char> = c.corpus.chars().rev().take(14).collect();
        tail.into_iter().rev().collect()
    };
    for t in &c.tools {
        let _ = writeln!(
            s,
            "{:<14} {:<13} {:>9.0} {:>7.2} {:>9.0} {:>9.0} {:>9} {:>9} {:>8} {:>8} {:>8.0} {:>8}",
            name,
            t.tool,
            c.bytes as f64 / 1e6,
            t.ratio,
            t.pack_mb_s,
            t.pack_files_s,
            opt(t.unpack_mb_s, 0),
            opt(t.verify_mb_s, 0),
            opt(t.list_ms, 0),
            opt(t.cat_ms, 1),
            t.pack_rss_mib,
            opt(t.unpack_rss_mib, 0),
        );
    }
    for t in c.tools.iter().filter(|t| !t.pack_stages.is_empty()) {
        for (job, stages) in [("pack", &t.pack_stages), ("unpack", &t.unpack_stages)] {
            for st in stages {
                let _ = writeln!(s, "{:<14} {job:<6} {}", "", st.line());
            }
        }
    }
    if !c.scaling.is_empty() {
        s.push_str(&scaling(&c.scaling));
    }
    if let (Some(p), Some(sz)) = (c.pack_speedup, c.size_ratio) {
        let _ = writeln!(
            s,
            "{:<14} ours/theirs: pack {p:.2}x faster than tar+zstd, unpack {}x, size {:.3} of tar.zst, pack speed {:.2} of plain tar",
            "",
            opt(c.unpack_speedup, 2),
            sz,
            c.pack_vs_tar.unwrap_or(0.0)
        );
    }
}

/// A `--threads` sweep: one row per thread count.
pub fn scaling(rows: &[Scaling]) -> String {
    let mut s = format!(
        "{:<14} {:>7} {:>5} {:>8} {:>8} {:>6} {:>6} {:>9} {:>6} {:>8}  {}\n",
        "",
        "threads",
        "comp",
        "pack s",
        "speedup",
        "effic",
        "walk%",
        "compress%",
        "write%",
        "RSS MiB",
        "compressors waited for"
    );
    for r in rows {
        let stage = |n: &str| r.stages.iter().find(|s| s.stage == n);
        let util = |n: &str| stage(n).map_or(0.0, |s| s.utilization * 100.0);
        let waits = stage("compress")
            .map(|s| {
                s.waits
                    .iter()
                    .filter(|p| p.seconds >= 0.0005)
                    .map(|p| format!("{} {:.3}s", p.name, p.seconds))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{:<14} {:>7} {:>5} {:>8.3} {:>7.2}x {:>6.2} {:>6.1} {:>9.1} {:>6.1} {:>8.0}  {}",
            "",
            r.threads,
            r.compressors,
            r.pack_s,
            r.speedup,
            r.efficiency,
            util("walk"),
            util("compress"),
            util("write"),
            r.rss_mib,
            waits
        );
    }
    s
}
