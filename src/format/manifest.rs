//! The manifest: one row per sub-index stream (its group, kind, offset, length, rows).

use super::column;
use arrow_array::{
    ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray, UInt16Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use std::collections::HashMap;
use std::sync::Arc;

/// A (pkg_type, repo) group: each group's entries are one sub-index.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    /// Package type number, if any.
    pub pkg_type: Option<u16>,
    /// Repository name, if any.
    pub repo: Option<String>,
}

/// What a sub-index stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubIndexKind {
    /// An entries table (one per group).
    Entries,
    /// The chunks table (exactly one per archive).
    Chunks,
    /// The bases table (at most one; incremental archives only).
    Bases,
}

/// One manifest row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubIndex {
    /// Entries or chunks.
    pub kind: SubIndexKind,
    /// The group (entries only).
    pub group: Group,
    /// Offset of the Arrow IPC stream in the archive.
    pub offset: u64,
    /// Length of the stream in bytes.
    pub length: u64,
    /// Number of rows in it.
    pub rows: u64,
    /// BLAKE3 of the stream's bytes, checked before decoding it.
    pub digest: [u8; 32],
}

/// Key of the schema metadata entry carrying the format version.
pub const VERSION_KEY: &str = "znippy.format_version";

/// The manifest's schema, with format `version` in its metadata.
pub fn schema(version: u32) -> Arc<Schema> {
    let meta = HashMap::from([(VERSION_KEY.to_string(), version.to_string())]);
    Arc::new(
        Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("pkg_type", DataType::UInt16, true),
            Field::new("repo", DataType::Utf8, true),
            Field::new("offset", DataType::UInt64, false),
            Field::new("length", DataType::UInt64, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("blake3", DataType::FixedSizeBinary(32), false),
        ])
        .with_metadata(meta),
    )
}

/// Builds the manifest table of an archive of format `version`.
pub fn to_batch(rows: &[SubIndex], version: u32) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(
            |r| match r.kind {
                SubIndexKind::Entries => "entries",
                SubIndexKind::Chunks => "chunks",
                SubIndexKind::Bases => "bases",
            },
        ))),
        Arc::new(UInt16Array::from_iter(
            rows.iter().map(|r| r.group.pkg_type),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.group.repo.as_deref()),
        )),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.length))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.rows))),
        Arc::new(
            FixedSizeBinaryArray::try_from_iter(rows.iter().map(|r| r.digest))
                .unwrap_or_else(|_| FixedSizeBinaryArray::new_null(32, 0)),
        ),
    ];
    RecordBatch::try_new(schema(version), columns).unwrap_or_else(|e| unreachable!("manifest: {e}"))
}

/// The format version the manifest's schema metadata states, if it states one.
pub fn version(batch: &RecordBatch) -> Result<Option<u32>, String> {
    let Some(v) = batch.schema_ref().metadata().get(VERSION_KEY) else {
        return Ok(None);
    };
    v.parse()
        .map(Some)
        .map_err(|_| format!("manifest: format version {v:?} is not a number"))
}

/// Reads the manifest table.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<SubIndex>, String> {
    let kind = column::<StringArray>(batch, "kind", false)?;
    let pkg = column::<UInt16Array>(batch, "pkg_type", true)?;
    let repo = column::<StringArray>(batch, "repo", true)?;
    let offset = column::<UInt64Array>(batch, "offset", false)?;
    let length = column::<UInt64Array>(batch, "length", false)?;
    let rows = column::<UInt64Array>(batch, "rows", false)?;
    let digests = column::<FixedSizeBinaryArray>(batch, "blake3", false)?;
    if digests.value_length() != 32 {
        return Err("manifest: blake3 column is not 32 bytes wide".into());
    }
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        use arrow_array::Array;
        let kind = match kind.value(i) {
            "entries" => SubIndexKind::Entries,
            "chunks" => SubIndexKind::Chunks,
            "bases" => SubIndexKind::Bases,
            other => return Err(format!("manifest row {i}: unknown kind {other:?}")),
        };
        out.push(SubIndex {
            kind,
            group: Group {
                pkg_type: pkg.is_valid(i).then(|| pkg.value(i)),
                repo: repo.is_valid(i).then(|| repo.value(i).to_string()),
            },
            offset: offset.value(i),
            length: length.value(i),
            rows: rows.value(i),
            digest: {
                let mut d = [0u8; 32];
                d.copy_from_slice(digests.value(i));
                d
            },
        });
    }
    Ok(out)
}
