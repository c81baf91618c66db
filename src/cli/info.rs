//! `znippy-uring info`: format version, counts, sizes, ratio and groups. The text is
//! the command's output (on standard output, whatever `--quiet` says); `--json` prints
//! the same report as JSON.

use super::Reporting;
use super::report::{Envelope, ratio};
use super::stdio::open_archive;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use znippy_uring::{Archive, Codec, EntryKind};

#[derive(clap::Args)]
pub struct Args {
    /// Archive to read (`-`: standard input).
    archive: PathBuf,
}

/// `info --json`.
#[derive(Serialize)]
struct Info<'a> {
    #[serde(skip)]
    archive: &'a Path,
    format_version: u32,
    size: u64,
    entries: usize,
    files: usize,
    dirs: usize,
    symlinks: usize,
    hardlinks: usize,
    specials: usize,
    chunks: usize,
    zstd_chunks: usize,
    stored_chunks: usize,
    data_bytes: u64,
    blob_bytes: u64,
    ratio: f64,
    /// The declared size of its regular files: what `unpack` writes.
    file_bytes: u64,
    groups: Vec<Group<'a>>,
    generation: u32,
    bases: Vec<BaseJson>,
}

/// An archive an incremental archive builds on.
#[derive(Serialize)]
struct BaseJson {
    id: String,
    name: String,
    generation: u32,
    /// Where it was relative to this archive when packed (null: not recorded).
    relative_path: Option<String>,
}

#[derive(Serialize)]
struct Group<'a> {
    pkg_type: Option<u16>,
    repo: Option<&'a str>,
    entries: usize,
}

impl<'a> Info<'a> {
    fn of(archive: &'a Path, a: &'a Archive) -> Info<'a> {
        let count = |k| a.entries().iter().filter(|e| e.kind == k).count();
        let data_bytes = a.chunks().iter().map(|c| c.raw_len).sum();
        let blob_bytes = a.chunks().iter().map(|c| c.stored_len).sum();
        let zstd_chunks = a.chunks().iter().filter(|c| c.codec == Codec::Zstd).count();
        Info {
            archive,
            format_version: a.format_version(),
            size: a.len(),
            entries: a.entries().len(),
            files: count(EntryKind::File),
            dirs: count(EntryKind::Dir),
            symlinks: count(EntryKind::Symlink),
            hardlinks: count(EntryKind::Hardlink),
            specials: count(EntryKind::Fifo)
                + count(EntryKind::CharDevice)
                + count(EntryKind::BlockDevice),
            chunks: a.chunks().len(),
            zstd_chunks,
            stored_chunks: a.chunks().len() - zstd_chunks,
            data_bytes,
            blob_bytes,
            ratio: ratio(data_bytes, blob_bytes),
            file_bytes: a.file_bytes(),
            groups: (a.groups().iter())
                .map(|(g, range)| Group {
                    pkg_type: g.pkg_type,
                    repo: g.repo.as_deref(),
                    entries: range.len(),
                })
                .collect(),
            generation: a.generation(),
            bases: (a.bases().into_iter())
                .zip(a.base_relative_paths())
                .map(|((id, name, generation), relative_path)| BaseJson {
                    id,
                    name,
                    generation,
                    relative_path,
                })
                .collect(),
        }
    }

    /// The text `info` prints without `--json`.
    fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "archive:        {}", self.archive.display());
        let _ = writeln!(s, "format version: {}", self.format_version);
        let _ = writeln!(s, "size:           {} bytes", self.size);
        let _ = writeln!(
            s,
            "entries:        {} ({} files, {} dirs, {} symlinks, {} hard links, {} special)",
            self.entries, self.files, self.dirs, self.symlinks, self.hardlinks, self.specials
        );
        let _ = writeln!(
            s,
            "chunks:         {} ({} zstd, {} stored)",
            self.chunks, self.zstd_chunks, self.stored_chunks
        );
        let _ = writeln!(
            s,
            "data:           {} bytes in {} bytes of blobs (ratio {:.2})",
            self.data_bytes,
            self.blob_bytes,
            self.data_bytes as f64 / self.blob_bytes.max(1) as f64
        );
        let _ = writeln!(
            s,
            "unpacks to:     {} bytes of files ({:.2} times the archive's size)",
            self.file_bytes,
            self.file_bytes as f64 / self.size.max(1) as f64
        );
        if !self.bases.is_empty() {
            let _ = writeln!(s, "incremental:    generation {}, on", self.generation);
            for b in &self.bases {
                let _ = write!(s, "  {} {} (generation {})", b.id, b.name, b.generation);
                let _ = match &b.relative_path {
                    Some(at) => writeln!(s, " at {at}"),
                    None => writeln!(s),
                };
            }
        }
        let _ = writeln!(s, "groups:         {}", self.groups.len());
        for g in &self.groups {
            let pkg = g.pkg_type.map_or("-".to_string(), |p| p.to_string());
            let repo = g.repo.unwrap_or("-");
            let _ = writeln!(
                s,
                "  pkg_type {pkg:>5}  repo {repo:<20} {} entries",
                g.entries
            );
        }
        s
    }
}

pub fn run(args: Args, out: &Reporting) -> Result<()> {
    let a = open_archive(&args.archive)?;
    let info = Info::of(&args.archive, &a);
    if out.json {
        let envelope = Envelope {
            command: "info",
            archive: &args.archive,
            report: &info,
        };
        println!("{}", serde_json::to_string(&envelope)?);
    } else {
        print!("{}", info.text());
    }
    Ok(())
}
