//! Reads one file out of an archive, decoding only its chunks, and checks it.
//!
//! `cargo run --release --example read_one_file -- ARCHIVE.znippy PATH > file`

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use znippy_uring::Archive;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(archive), Some(path)) = (args.next(), args.next()) else {
        return Err("usage: read_one_file ARCHIVE.znippy PATH".into());
    };
    let archive = Archive::open(archive.as_ref())?;
    let Some(entry) = archive
        .find(path.as_bytes())
        .and_then(|i| archive.entries().get(i))
    else {
        return Err(format!("{}: not in the archive", path.to_string_lossy()).into());
    };
    eprintln!("{} bytes, mode {:o}", entry.size, entry.mode);
    // The chunk and file BLAKE3 are checked before any byte is written out.
    let mut out = std::io::stdout().lock();
    archive.read_file(path.as_bytes(), &mut out)?;
    out.flush()?;
    Ok(())
}
