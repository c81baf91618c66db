//! Standard input and output as `-` on the command line: the list of paths of
//! `pack --from-list -`, the archive of `pack -o -`, and the archive read by the other
//! commands (`unpack -`, `list -`, ...), and tables written to standard output.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use znippy_uring::Archive;

/// The NUL-separated paths in `list` (`-`: standard input). Empty items (a trailing
/// NUL) are dropped. Input without a single NUL but with a newline is refused: it is
/// a newline-separated list, which would be read as one path.
pub fn read_list(list: &Path) -> Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    let shown = if list.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("--from-list -: reading standard input")?;
        Path::new("standard input")
    } else {
        File::open(list)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("--from-list {}", list.display()))?;
        list
    };
    if !bytes.contains(&0) && bytes.contains(&b'\n') {
        bail!(
            "--from-list {}: no NUL separators; paths must be NUL-separated (find -print0, \
             or tr '\\n' '\\0')",
            shown.display()
        );
    }
    Ok(bytes
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// Standard output as a file (a duplicate of its descriptor), to look at.
pub fn stdout_file() -> Result<File> {
    let fd =
        (std::io::stdout().as_fd().try_clone_to_owned()).context("duplicating standard output")?;
    Ok(File::from(fd))
}

/// Standard output as a file to stream an archive to; refused on a terminal.
pub fn stdout_for_archive() -> Result<File> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        bail!("-o -: refusing to write an archive to a terminal (redirect standard output)");
    }
    let fd = stdout
        .as_fd()
        .try_clone_to_owned()
        .context("-o -: duplicating standard output")?;
    Ok(File::from(fd))
}

/// The archive at `path`, or with `-` the one on standard input: used in place where
/// it is a regular file (`< a.znippy`), else read into an unnamed temporary file first
/// (the index is at the end). Refused on a terminal.
pub fn open_archive(path: &Path) -> Result<Archive> {
    open_archive_with(path, &[])
}

/// [`open_archive`], for an incremental archive also looking for its bases among
/// `bases` (`--base`) first. Each of them must be an archive (else this fails, naming
/// it); one that is none of the archive's bases is ignored with a warning.
pub fn open_archive_with(path: &Path, bases: &[std::path::PathBuf]) -> Result<Archive> {
    if bases.iter().any(|b| b.as_os_str() == "-") {
        return Err(super::Usage(
            "--base -: a base must be a file (standard input can carry only the archive itself)"
                .into(),
        )
        .into());
    }
    let archive = open_alone(path)?.with_bases(bases)?;
    for b in archive.unneeded_bases() {
        eprintln!(
            "znippy-uring: warning: --base {}: not a base of {} (ignored)",
            b.display(),
            archive.path().display()
        );
    }
    Ok(archive)
}

/// The archive at `path`, or on standard input, without the bases named.
fn open_alone(path: &Path) -> Result<Archive> {
    if path.as_os_str() != "-" {
        return Ok(Archive::open(path)?);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("-: refusing to read an archive from a terminal (redirect standard input)");
    }
    let file = File::from(
        stdin
            .as_fd()
            .try_clone_to_owned()
            .context("-: duplicating standard input")?,
    );
    let name = Path::new("standard input");
    Ok(if file.metadata().is_ok_and(|m| m.is_file()) {
        Archive::from_file(file, name)?
    } else {
        Archive::from_stream(file, name)?
    })
}

/// Runs `write` on buffered standard output, then flushes it.
pub fn to_stdout(write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    write(&mut w)?;
    w.flush().context("<stdout>: write")
}
