//! `znippy-uring list`: the entries' paths, or `ls -l` style with `-l`, or with
//! `--json` the entries themselves, one JSON object a line (as `index --format json`).
//! Each line ends with a newline, or with `-0` a NUL; on a terminal, control bytes in
//! names are shown escaped.

use super::Reporting;
use super::stdio::{open_archive, to_stdout};
use anyhow::Result;
use std::borrow::Cow;
use std::io::{IsTerminal, Write};
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
    /// End each entry with a NUL instead of a newline, for `xargs -0` and names that
    /// hold newlines (names are then never escaped).
    #[arg(short = '0', long = "null")]
    null: bool,
}

pub fn run(args: Args, out: &Reporting) -> Result<()> {
    let end: &[u8] = if args.null { b"\0" } else { b"\n" };
    // Names go out as they are, except to a terminal, which would act on the escape
    // sequences a name can hold.
    let escaping = !args.null && std::io::stdout().is_terminal();
    if !args.long && !out.json && args.archive.as_os_str() != "-" {
        // Paths alone: only the lookup columns are decoded, no entry is built.
        let paths = znippy_uring::Archive::paths(&args.archive)?;
        return to_stdout(|w| {
            for p in paths.iter() {
                w.write_all(&shown(p, escaping))?;
                w.write_all(end)?;
            }
            Ok(())
        });
    }
    let a = open_archive(&args.archive)?;
    if out.json {
        let stdout = "<stdout>".as_ref();
        return to_stdout(|w| Ok(export::export(&a, Table::Entries, Format::Json, w, stdout)?));
    }
    to_stdout(|w| {
        for e in a.entries() {
            if args.long {
                long_prefix(w, e, escaping)?;
            }
            w.write_all(&shown(&e.path, escaping))?;
            if let (true, Some(t)) = (args.long, &e.link_target) {
                let arrow: &[u8] = if e.kind == EntryKind::Hardlink {
                    b" link to "
                } else {
                    b" -> "
                };
                w.write_all(arrow)?;
                w.write_all(&shown(t, escaping))?;
            }
            w.write_all(end)?;
        }
        Ok(())
    })
}

/// `name` as written: escaped when `escaping`.
fn shown(name: &[u8], escaping: bool) -> Cow<'_, [u8]> {
    if escaping {
        escape_controls(name)
    } else {
        Cow::Borrowed(name)
    }
}

/// `name` with each control byte (below 0x20, and 0x7f) as `\xNN`, for a terminal.
fn escape_controls(name: &[u8]) -> Cow<'_, [u8]> {
    let control = |b: u8| b < 0x20 || b == 0x7f;
    if !name.iter().copied().any(control) {
        return Cow::Borrowed(name);
    }
    let mut out = Vec::with_capacity(name.len() + 8);
    for &b in name {
        if control(b) {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// Mode, owner, size (or a device's `major,minor`) and mtime, as `list -l` shows them
/// before the path; the owner's names escaped as the path is when `escaping`.
fn long_prefix(w: &mut dyn Write, e: &Entry, escaping: bool) -> std::io::Result<()> {
    let user = e.user.as_deref().map_or(e.uid.to_string(), str::to_owned);
    let group = e.group.as_deref().map_or(e.gid.to_string(), str::to_owned);
    let owner = format!("{user}/{group}");
    let owner = String::from_utf8_lossy(&shown(owner.as_bytes(), escaping)).into_owned();
    write!(
        w,
        "{} {:<17} {:>12} {} ",
        mode_string(e.kind, e.mode),
        owner,
        size_or_device(e),
        format_time(e.mtime_ns)
    )
}

/// The size column: a character or block device's `major,minor` (as `ls -l` and
/// `tar -tv`), else the size in bytes.
fn size_or_device(e: &Entry) -> String {
    match (e.kind, e.rdev) {
        (EntryKind::CharDevice | EntryKind::BlockDevice, Some(rdev)) => {
            format!("{},{}", rustix::fs::major(rdev), rustix::fs::minor(rdev))
        }
        _ => e.size.to_string(),
    }
}

/// `ls -l` style mode string: setuid and setgid as `s` in the owner's and group's
/// execute place (`S` when that execute bit is off), sticky as `t` in the others'
/// (`T`).
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
    // (shift of the rwx triple, its special bit, the letter for that bit)
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (mode & special != 0, bits & 1 != 0) {
            (true, true) => letter,
            (true, false) => letter.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
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

    #[test]
    fn special_bits_as_ls_shows_them() {
        assert_eq!(mode_string(EntryKind::File, 0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(EntryKind::File, 0o104644), "-rwSr--r--");
        assert_eq!(mode_string(EntryKind::File, 0o102755), "-rwxr-sr-x");
        assert_eq!(mode_string(EntryKind::File, 0o102745), "-rwxr-Sr-x");
        assert_eq!(mode_string(EntryKind::Dir, 0o41777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryKind::Dir, 0o41776), "drwxrwxrwT");
        assert_eq!(mode_string(EntryKind::File, 0o107777), "-rwsrwsrwt");
        assert_eq!(mode_string(EntryKind::File, 0o107000), "---S--S--T");
    }

    #[test]
    fn devices_show_major_and_minor_in_place_of_the_size() {
        let dev = |kind, rdev| Entry {
            rdev: Some(rdev),
            ..Entry::new(b"dev/x".to_vec(), kind, 0o20660)
        };
        let line = |e: &Entry| {
            let mut out = Vec::new();
            long_prefix(&mut out, e, false).unwrap();
            String::from_utf8(out).unwrap()
        };
        let sda = line(&dev(EntryKind::BlockDevice, rustix::fs::makedev(8, 1)));
        assert!(
            sda.starts_with("brw-rw----") && sda.contains(" 8,1 "),
            "{sda}"
        );
        let big = line(&dev(EntryKind::CharDevice, rustix::fs::makedev(259, 70000)));
        assert!(big.contains(" 259,70000 "), "{big}");
        let file = Entry {
            size: 1234,
            ..Entry::new(b"f".to_vec(), EntryKind::File, 0o100644)
        };
        assert!(line(&file).contains(" 1234 "));
    }

    #[test]
    fn owner_names_are_escaped_for_a_terminal_too() {
        let e = Entry {
            user: Some("ev\x1bil\x1b[2J".into()),
            group: Some("g\ny".into()),
            ..Entry::new(b"f".to_vec(), EntryKind::File, 0o100644)
        };
        let mut out = Vec::new();
        long_prefix(&mut out, &e, true).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("ev\\x1bil\\x1b[2J/g\\x0ay"), "{out}");
        assert!(!out.contains('\x1b') && !out.contains('\n'));
    }

    #[test]
    fn control_bytes_are_escaped_for_a_terminal() {
        assert_eq!(&*escape_controls(b"plain/name.txt"), b"plain/name.txt");
        assert_eq!(
            &*escape_controls(b"a\nb\x1b[31mred\x7f\t"),
            b"a\\x0ab\\x1b[31mred\\x7f\\x09"
        );
        // UTF-8 passes through.
        assert_eq!(
            &*escape_controls("d\u{e9}j\u{e0}".as_bytes()),
            "d\u{e9}j\u{e0}".as_bytes()
        );
    }
}
