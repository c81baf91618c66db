//! `znippy-uring list`: the entries' paths, or `ls -l` style with `-l`, or with
//! `--json` the entries themselves, one JSON object a line (as `index --format json`).

use super::Output;
use super::stdio::{open_archive, to_stdout};
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;
use znippy_uring::export::{self, Format, Table};
use znippy_uring::{Entry, EntryKind};

#[derive(clap::Args)]
pub struct Args {
    /// Archive to read (`-`: standard input).
    archive: PathBuf,
    /// Long format: mode, size, mtime, path.
    #[arg(short = 'l', long)]
    long: bool,
}

pub fn run(args: Args, out: &Output) -> Result<()> {
    let a = open_archive(&args.archive)?;
    if out.json {
        let stdout = "<stdout>".as_ref();
        return to_stdout(|w| Ok(export::export(&a, Table::Entries, Format::Json, w, stdout)?));
    }
    to_stdout(|w| {
        for e in a.entries() {
            if args.long {
                long_prefix(w, e)?;
            }
            w.write_all(&e.path)?;
            if let (true, Some(t)) = (args.long, &e.link_target) {
                let arrow: &[u8] = if e.kind == EntryKind::Hardlink {
                    b" link to "
                } else {
                    b" -> "
                };
                w.write_all(arrow)?;
                w.write_all(t)?;
            }
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Mode, owner, size and mtime, as `list -l` shows them before the path.
fn long_prefix(w: &mut dyn Write, e: &Entry) -> std::io::Result<()> {
    let user = e.user.as_deref().map_or(e.uid.to_string(), str::to_owned);
    let group = e.group.as_deref().map_or(e.gid.to_string(), str::to_owned);
    write!(
        w,
        "{} {:<17} {:>12} {} ",
        mode_string(e.kind, e.mode),
        format!("{user}/{group}"),
        e.size,
        format_time(e.mtime_ns)
    )
}

/// `ls -l` style mode string.
fn mode_string(kind: EntryKind, mode: u32) -> String {
    let t = match kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Hardlink => 'h',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
        EntryKind::File => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// UTC `YYYY-MM-DD HH:MM:SS` from nanoseconds since the epoch.
fn format_time(ns: i64) -> String {
    let ((y, m, d), rem) = super::utc::date(ns.div_euclid(1_000_000_000));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(
            format_time(1_700_000_000_000_000_000),
            "2023-11-14 22:13:20"
        );
        assert_eq!(format_time(-1_000_000_000), "1969-12-31 23:59:59");
        assert_eq!(mode_string(EntryKind::Dir, 0o40755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryKind::Symlink, 0o120777), "lrwxrwxrwx");
    }
}
