//! `znippy-uring index`: the index as one table (entries or chunks) in Arrow IPC, CSV,
//! JSON lines or Parquet, for pyarrow, Polars, DuckDB and the other query engines
//! (docs/QUERY.md).

use super::report::{Report, Reporting, Stream, lossy_opt};
use super::stdio::{open_archive, to_stdout};
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use znippy_uring::export::{self, Format, Table};

#[derive(clap::Args)]
pub struct Args {
    /// Archive to read (`-`: standard input).
    archive: PathBuf,
    /// Reporting file, replaced atomically (a symlink is followed; a character device,
    /// FIFO or socket is written as a stream); default: standard output.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// arrow (an Arrow IPC file), csv, json (JSON lines) or parquet (signed
    /// integers, microsecond mtime plus mtime_ns; docs/QUERY.md); default: from the
    /// output's extension, else arrow.
    #[arg(long)]
    format: Option<Format>,
    /// Export the chunks table instead of the entries.
    #[arg(long)]
    chunks: bool,
}

/// `index --json`: on standard output, or on stderr when the table went there.
#[derive(Serialize)]
struct IndexJson<'a> {
    #[serde(serialize_with = "lossy_opt")]
    output: Option<&'a Path>,
    format: &'static str,
    table: &'static str,
    rows: usize,
}

impl Report for IndexJson<'_> {
    fn summary(&self, _: &str) -> String {
        let name = self
            .output
            .map_or("standard output".to_string(), |p| p.display().to_string());
        format!("wrote {} rows to {name} ({})", self.rows, self.format)
    }
}

pub fn run(args: Args, out: &Reporting) -> Result<()> {
    let a = open_archive(&args.archive)?;
    let format = args
        .format
        .or_else(|| args.output.as_deref().and_then(Format::from_extension))
        .unwrap_or(Format::Arrow);
    let table = if args.chunks {
        Table::Chunks
    } else {
        Table::Entries
    };
    let output = args.output.as_deref().filter(|o| o.as_os_str() != "-");
    match output {
        Some(path) => export::export_to_path(&a, table, format, path)?,
        None => {
            let stdout = super::stdio::stdout_file()?;
            export::refuse_own_chain(&a, &stdout, "standard output".as_ref())?;
            to_stdout(|w| Ok(export::export(&a, table, format, w, "<stdout>".as_ref())?))?
        }
    }
    let report = IndexJson {
        output,
        format: format.name(),
        table: table.name(),
        rows: match table {
            Table::Entries => a.entries().len(),
            Table::Chunks => a.chunks().len(),
        },
    };
    let stream = if output.is_some() {
        Stream::Stdout
    } else {
        Stream::Stderr
    };
    out.report(stream, "index", &args.archive, &report);
    Ok(())
}
