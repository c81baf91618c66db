//! The index as one flat table for other tools (`znippy-uring index`): every entry of
//! every group in one table, or the chunks table, written as an Arrow IPC file, CSV,
//! JSON lines or Parquet. Columns are plain types (paths and link targets as text, digests as hex
//! as `b3sum` prints them), so that pyarrow, Polars, DuckDB and spreadsheets read it as
//! it is. The schema is documented in docs/QUERY.md and only grows.

use super::archive::Archive;
use crate::error::{Error, Result};
use crate::format::base::id_of;
use arrow_array::builder::{StringBuilder, UInt16Builder};
use arrow_array::{
    ArrayRef, BinaryArray, FixedSizeBinaryArray, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The time zone of `mtime`: an offset, which the CSV and JSON writers format without
/// a time zone database.
const UTC: &str = "+00:00";

/// Which table to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// One row per entry, with its group.
    Entries,
    /// One row per chunk.
    Chunks,
}

impl Table {
    /// `entries` or `chunks`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Entries => "entries",
            Table::Chunks => "chunks",
        }
    }
}

/// How to write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An Arrow IPC file (Feather v2): pyarrow, Polars and DuckDB read it directly.
    Arrow,
    /// CSV with a header row.
    Csv,
    /// JSON lines: one object per row.
    Json,
    /// Parquet (zstd, statistics on), in types every query engine reads: signed
    /// integers, `mtime` in microseconds plus `mtime_ns`.
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "arrow" => Ok(Format::Arrow),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "parquet" => Ok(Format::Parquet),
            other => Err(Error::Invalid(format!(
                "unknown format {other:?} (expected arrow, csv, json or parquet)"
            ))),
        }
    }
}

impl Format {
    /// `arrow`, `csv` or `json`: the name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Arrow => "arrow",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Parquet => "parquet",
        }
    }

    /// The format a file name's extension asks for, if it is one we know.
    pub fn from_extension(name: &std::path::Path) -> Option<Format> {
        match name.extension()?.to_str()? {
            "arrow" | "feather" | "ipc" | "arrows" => Some(Format::Arrow),
            "csv" => Some(Format::Csv),
            "json" | "jsonl" | "ndjson" => Some(Format::Json),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// Hex of a digest, as `b3sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How a column of the exported entries table is made. Every column but the group's
/// and the data archive's is a column of the archive's own entries table
/// ([`crate::format::entry::schema`], which names and types it: one place for each),
/// as it is or in a plain type.
#[derive(Clone, Copy)]
enum View {
    /// The stored column as it is.
    Same,
    /// A binary stored column as text (lossy UTF-8).
    Text,
    /// A digest as hex, as `b3sum` prints it.
    Hex,
    /// A timestamp with its zone written as an offset, which the CSV and JSON writers
    /// format without a time zone database.
    Offset,
    /// The number of extended attributes in the encoded stored column.
    Count,
    /// Not stored per entry: the entry's group's package type.
    PkgType,
    /// Not stored per entry: the entry's group's repository.
    Repo,
    /// Not stored per entry: the id of the base that holds the file's data.
    DataArchiveId,
}

/// The exported entries table's columns, in order (docs/QUERY.md; the list only grows).
const ENTRIES: [(&str, View); 20] = [
    ("path", View::Same),
    ("kind", View::Same),
    ("size", View::Same),
    ("mode", View::Same),
    ("mtime", View::Offset),
    ("uid", View::Same),
    ("gid", View::Same),
    ("user", View::Same),
    ("group", View::Same),
    ("blake3", View::Hex),
    ("link_target", View::Text),
    ("first_chunk", View::Same),
    ("last_chunk", View::Same),
    ("chunk_offset", View::Same),
    ("sparse", View::Same),
    ("rdev", View::Same),
    ("xattrs", View::Count),
    ("pkg_type", View::PkgType),
    ("repo", View::Repo),
    ("data_archive_id", View::DataArchiveId),
];

/// The entries table's export schema.
pub fn entries_schema() -> Arc<Schema> {
    let stored = crate::format::entry::schema();
    let field = |name: &str, view| {
        let of = |t: DataType| {
            stored
                .field_with_name(name)
                .map(|f| Field::new(name, t, f.is_nullable()))
        };
        let field = match view {
            View::Same => stored.field_with_name(name).cloned(),
            View::Text | View::Hex => of(DataType::Utf8),
            View::Offset => of(DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))),
            View::Count => Ok(Field::new(name, DataType::UInt32, false)),
            View::PkgType => Ok(Field::new(name, DataType::UInt16, true)),
            View::Repo | View::DataArchiveId => Ok(Field::new(name, DataType::Utf8, true)),
        };
        field.unwrap_or_else(|e| unreachable!("exported entries column {name}: {e}"))
    };
    Arc::new(Schema::new(
        (ENTRIES.iter().map(|&(name, view)| field(name, view))).collect::<Vec<_>>(),
    ))
}

/// The chunks table's export schema: the archive's own chunks table
/// ([`crate::format::chunk::schema`]) with its digests as hex text.
pub fn chunks_schema() -> Arc<Schema> {
    let stored = crate::format::chunk::schema();
    let fields = stored.fields().iter().map(|f| match f.data_type() {
        DataType::FixedSizeBinary(_) => {
            Arc::new(Field::new(f.name(), DataType::Utf8, f.is_nullable()))
        }
        _ => f.clone(),
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// The table as one record batch.
pub fn batch(archive: &Archive, table: Table) -> RecordBatch {
    match table {
        Table::Entries => entries_batch(archive),
        Table::Chunks => chunks_batch(archive),
    }
}

fn entries_batch(archive: &Archive) -> RecordBatch {
    let entries = archive.entries();
    let stored = crate::format::entry::to_batch(entries.iter());
    let mut pkg_type = UInt16Builder::with_capacity(entries.len());
    let mut repo = StringBuilder::new();
    for (group, range) in archive.groups() {
        for _ in range.clone() {
            pkg_type.append_option(group.pkg_type);
            repo.append_option(group.repo.as_deref());
        }
    }
    let (pkg_type, repo): (ArrayRef, ArrayRef) =
        (Arc::new(pkg_type.finish()), Arc::new(repo.finish()));
    let column = |name: &str, view| -> ArrayRef {
        let stored = || {
            stored
                .column_by_name(name)
                .unwrap_or_else(|| unreachable!("stored entries column {name}"))
        };
        let text = |f: &dyn Fn(&[u8]) -> String| {
            let any = stored().as_any();
            let values: Vec<Option<String>> = match any.downcast_ref::<BinaryArray>() {
                Some(b) => b.iter().map(|v| v.map(f)).collect(),
                None => (any.downcast_ref::<FixedSizeBinaryArray>())
                    .map(|b| b.iter().map(|v| v.map(f)).collect())
                    .unwrap_or_else(|| unreachable!("entries column {name} is not binary")),
            };
            Arc::new(StringArray::from(values)) as ArrayRef
        };
        match view {
            View::Same => stored().clone(),
            View::Text => text(&|b| String::from_utf8_lossy(b).into_owned()),
            View::Hex => text(&|b| hex(b)),
            View::Offset => Arc::new(
                (stored().as_any().downcast_ref::<TimestampNanosecondArray>())
                    .unwrap_or_else(|| unreachable!("entries column {name} is no timestamp"))
                    .clone()
                    .with_timezone(UTC),
            ),
            View::Count => Arc::new(UInt32Array::from_iter_values(
                entries.iter().map(|e| e.xattrs.len() as u32),
            )),
            View::PkgType => pkg_type.clone(),
            View::Repo => repo.clone(),
            View::DataArchiveId => Arc::new(StringArray::from_iter(entries.iter().map(|e| {
                let base = e.location.and_then(|l| l.base)?;
                let b = archive.index_bases().get(usize::from(base))?;
                Some(id_of(&b.manifest_digest))
            }))),
        }
    };
    let columns: Vec<ArrayRef> = ENTRIES
        .iter()
        .map(|&(name, view)| column(name, view))
        .collect();
    RecordBatch::try_new(entries_schema(), columns)
        .unwrap_or_else(|e| unreachable!("export entries batch: {e}"))
}

fn chunks_batch(archive: &Archive) -> RecordBatch {
    let table = crate::format::chunk::to_batch(archive.chunks());
    let columns =
        table.columns().iter().map(
            |c| match c.as_any().downcast_ref::<FixedSizeBinaryArray>() {
                Some(digests) => Arc::new(StringArray::from_iter_values(
                    digests.iter().map(|d| hex(d.unwrap_or_default())),
                )) as ArrayRef,
                None => c.clone(),
            },
        );
    RecordBatch::try_new(chunks_schema(), columns.collect())
        .unwrap_or_else(|e| unreachable!("export chunks batch: {e}"))
}

/// The entries table of `archive` for a catalog of many archives: its rows led by
/// `archive_id` ([`Archive::id`]) and `archive` (`shown`, the archive's path), so that
/// a query's answer names the archive to `cat` or `extract` from.
pub fn catalog_batch(archive: &Archive, shown: &str) -> RecordBatch {
    let entries = entries_batch(archive);
    let rows = entries.num_rows();
    let id = archive.id();
    let mut fields = vec![
        Field::new("archive_id", DataType::Utf8, false),
        Field::new("archive", DataType::Utf8, false),
    ];
    fields.extend(entries.schema().fields().iter().map(|f| f.as_ref().clone()));
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            id.as_str(),
            rows,
        ))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            shown, rows,
        ))),
    ];
    columns.extend(entries.columns().iter().cloned());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .unwrap_or_else(|e| unreachable!("catalog batch: {e}"))
}

/// Writes `table` of `archive` to `out` in `format`; `name` is `out`'s name for messages.
///
/// ```
/// use znippy_uring::Archive;
/// use znippy_uring::export::{export, Format, Table};
/// # let tmp = std::env::temp_dir().join(format!("doc-export-{}", std::process::id()));
/// # std::fs::create_dir_all(tmp.join("src/etc"))?;
/// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
/// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
/// # let path = tmp.join("a.znippy");
/// let archive = Archive::open(&path)?;
/// let mut csv = Vec::new();
/// export(&archive, Table::Entries, Format::Csv, &mut csv, "index.csv".as_ref())?;
/// let csv = String::from_utf8(csv)?;
/// let header = csv.lines().next().unwrap_or_default();
/// assert!(header.starts_with("path,kind,size,"), "{header}");
/// assert!(csv.contains("etc/hosts,file,20,"));
/// // The same table as an Arrow IPC file, for pyarrow, Polars or DuckDB.
/// export(&archive, Table::Entries, Format::Arrow, std::fs::File::create(tmp.join("index.arrow"))?, "index.arrow".as_ref())?;
/// # std::fs::remove_dir_all(&tmp)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn export(
    archive: &Archive,
    table: Table,
    format: Format,
    out: impl Write,
    name: &std::path::Path,
) -> Result<()> {
    write(&batch(archive, table), format, out, name)
}

/// Writes `table` of `archive` in `format` to the file at `path`, by the rules `pack`
/// writes an archive by: a regular file (or none yet) is written under a temporary
/// name beside it, flushed and renamed into place, so a failure leaves the old file;
/// a symlink is followed; a character device (`/dev/null`), FIFO or socket is written
/// in place as a stream; a directory or block device is refused.
pub fn export_to_path(archive: &Archive, table: Table, format: Format, path: &Path) -> Result<()> {
    use crate::pack::output::{Destination, refuse_overwrite, resolve};
    let dest = resolve(Destination::Path(path.into()))?;
    // Never the archive read, nor one of its bases.
    let mut lineage = super::lineage(archive.path());
    lineage.inodes.extend(archive.identity());
    lineage.digests.insert(archive.manifest_digest());
    refuse_overwrite(&dest, &lineage, "its own index")?;
    write_resolved(&batch(archive, table), format, dest, path)
}

/// Fails if `out`, an open file such as standard output, is the file of `archive` or
/// of an archive of its chain (`index -o - 1<>a.znippy` would destroy it).
pub fn refuse_own_chain(archive: &Archive, out: &std::fs::File, name: &Path) -> Result<()> {
    use crate::pack::output::{Resolved, refuse_overwrite};
    let mut lineage = super::lineage(archive.path());
    lineage.inodes.extend(archive.identity());
    let file = out.try_clone().map_err(|e| Error::io(name, "dup", e))?;
    refuse_overwrite(
        &Resolved::Stream(file, name.into()),
        &lineage,
        "its own index",
    )
}

/// [`write`] to the file at `path`, by the rules of [`export_to_path`].
pub fn write_to_path(batch: &RecordBatch, format: Format, path: &Path) -> Result<()> {
    use crate::pack::output::{Destination, resolve};
    write_resolved(
        batch,
        format,
        resolve(Destination::Path(path.into()))?,
        path,
    )
}

/// [`write`] to `dest`, named `path`.
fn write_resolved(
    batch: &RecordBatch,
    format: Format,
    dest: crate::pack::output::Resolved,
    path: &Path,
) -> Result<()> {
    use crate::pack::output::{Output, Writer};
    let out = Output::open_plain(dest, true)?;
    let mut w = std::io::BufWriter::new(Writer::new(&out));
    write(batch, format, &mut w, path)?;
    let end = match w.into_inner() {
        Ok(w) => w.offset,
        Err(e) => return Err(Error::io(path, "write", e.into_error())),
    };
    out.commit(&[], end).map(|_| ())
}

/// Writes a table made by [`batch`] (with columns added or not) to `out` in `format`;
/// `name` is `out`'s name for messages.
pub fn write(
    batch: &RecordBatch,
    format: Format,
    out: impl Write,
    name: &std::path::Path,
) -> Result<()> {
    let fail = |e: arrow_schema::ArrowError| match e {
        arrow_schema::ArrowError::IoError(_, io) => Error::io(name, "write", io),
        other => Error::Invalid(format!("export: {other}")),
    };
    match format {
        Format::Arrow => {
            let mut w =
                arrow_ipc::writer::FileWriter::try_new(out, &batch.schema()).map_err(fail)?;
            w.write(batch).map_err(fail)?;
            w.finish().map_err(fail)
        }
        Format::Csv => {
            let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(out);
            w.write(batch).map_err(fail)
        }
        Format::Json => {
            // Every key on every row, null or not: stable keys for scripts.
            let mut w = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow_json::writer::LineDelimited>(out);
            w.write(batch).map_err(fail)?;
            w.finish().map_err(fail)
        }
        Format::Parquet => super::parquet::write(batch, out, name),
    }
}
