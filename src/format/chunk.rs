//! Chunks: the blobs of the archive and their records in the chunks table.

use super::column;
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray, UInt64Array,
    builder::FixedSizeBinaryBuilder,
};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

/// How a chunk's bytes are stored in its blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// The blob is the raw bytes.
    Stored,
    /// The blob is one standard zstd frame.
    Zstd,
}

impl Codec {
    /// The name written in the `codec` column.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Stored => "stored",
            Codec::Zstd => "zstd",
        }
    }
}

/// What a chunk record's digest is BLAKE3 of. The format version of the archive that
/// holds the chunk decides (it is never stored per chunk): an incremental archive's
/// chunks in a base of another version are checked by that base's rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestOf {
    /// Format 1: the chunk's uncompressed bytes, checked after decoding.
    Raw,
    /// Format 2 on: the blob as stored (the zstd frame, or the raw bytes of a stored
    /// chunk), checked before decoding.
    Blob,
}

impl DigestOf {
    /// The rule of format `version`.
    pub fn of_version(version: u32) -> DigestOf {
        if version < 2 {
            DigestOf::Raw
        } else {
            DigestOf::Blob
        }
    }
}

/// Whether archives of format `version` may have [`ChunkRecord::subtree_at`] digests.
pub fn has_subtrees(version: u32) -> bool {
    version >= 4
}

/// One row of the chunks table: where a blob lies and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Byte offset of the blob in the archive.
    pub offset: u64,
    /// Length of the blob in the archive.
    pub stored_len: u64,
    /// Length of the chunk's uncompressed bytes.
    pub raw_len: u64,
    /// How the blob encodes the chunk.
    pub codec: Codec,
    /// BLAKE3 of the blob (format 2; of the uncompressed bytes in format 1: see
    /// [`DigestOf`]), or with [`ChunkRecord::subtree_at`] its chaining value.
    pub digest: [u8; 32],
    /// Format 4, `stored` chunks that are one piece of a split file: the piece's offset
    /// in its file. The digest is then the BLAKE3 chaining value of the blob as the
    /// subtree starting at that input offset (not a root hash), which is what the
    /// file's digest is assembled from: the writer hashes those bytes once.
    pub subtree_at: Option<u64>,
}

impl ChunkRecord {
    /// Checks that chunk `id` may hold what a file's entry says it holds: the piece of a
    /// split file at `file_offset` that fills the chunk (`fills`), or otherwise part of
    /// one or several files. A digest that is the subtree at an offset (format 4) is of
    /// the bytes at that place in a file; the chunk holding anything else is a misplaced
    /// or crafted record, refused before its bytes are served.
    pub fn check_placed(&self, id: u64, file_offset: u64, fills: bool) -> Result<(), String> {
        match self.subtree_at {
            Some(at) if !fills || at != file_offset => Err(format!(
                "chunk {id}: its digest is of the bytes at offset {at} of a file, but it holds {}",
                match fills {
                    true => format!("those at offset {file_offset}"),
                    false => "part of a file, or several files".to_string(),
                }
            )),
            _ => Ok(()),
        }
    }
}

/// The chunks table's schema.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("chunk", DataType::UInt64, false),
        Field::new("offset", DataType::UInt64, false),
        Field::new("stored_len", DataType::UInt64, false),
        Field::new("raw_len", DataType::UInt64, false),
        Field::new("codec", DataType::Utf8, false),
        Field::new("blake3", DataType::FixedSizeBinary(32), false),
        Field::new(SUBTREE_AT, DataType::UInt64, true),
    ]))
}

/// The column of [`ChunkRecord::subtree_at`] (format 4; absent before).
pub const SUBTREE_AT: &str = "subtree_at";

/// Builds the chunks table; row `i` is chunk `i`.
pub fn to_batch(chunks: &[ChunkRecord]) -> RecordBatch {
    let mut digests = FixedSizeBinaryBuilder::with_capacity(chunks.len(), 32);
    for c in chunks {
        digests
            .append_value(c.digest)
            .unwrap_or_else(|e| unreachable!("32-byte digest: {e}"));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(0..chunks.len() as u64)),
        Arc::new(UInt64Array::from_iter_values(
            chunks.iter().map(|c| c.offset),
        )),
        Arc::new(UInt64Array::from_iter_values(
            chunks.iter().map(|c| c.stored_len),
        )),
        Arc::new(UInt64Array::from_iter_values(
            chunks.iter().map(|c| c.raw_len),
        )),
        Arc::new(StringArray::from_iter_values(
            chunks.iter().map(|c| c.codec.name()),
        )),
        Arc::new(digests.finish()),
        Arc::new(UInt64Array::from_iter(chunks.iter().map(|c| c.subtree_at))),
    ];
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|e| unreachable!("chunks batch: {e}"))
}

/// Reads the chunks table of a format-`version` archive, checking types and the row
/// numbering.
pub fn from_batch(batch: &RecordBatch, version: u32) -> Result<Vec<ChunkRecord>, String> {
    let ids = column::<UInt64Array>(batch, "chunk", false)?;
    let offsets = column::<UInt64Array>(batch, "offset", false)?;
    let stored = column::<UInt64Array>(batch, "stored_len", false)?;
    let raw = column::<UInt64Array>(batch, "raw_len", false)?;
    let codecs = column::<StringArray>(batch, "codec", false)?;
    let digests = column::<FixedSizeBinaryArray>(batch, "blake3", false)?;
    // Tables written before format 4 have no such column: every digest is a root hash.
    // From format 4 on it must be there, or its digests would be checked as root hashes.
    let subtrees = match batch.column_by_name(SUBTREE_AT) {
        None if !has_subtrees(version) => None,
        _ => Some(column::<UInt64Array>(batch, SUBTREE_AT, true)?),
    };
    if digests.value_length() != 32 {
        return Err("chunks: blake3 column is not 32 bytes wide".into());
    }
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        if ids.value(i) != i as u64 {
            return Err(format!("chunks: row {i} has chunk number {}", ids.value(i)));
        }
        let codec = match codecs.value(i) {
            "stored" => Codec::Stored,
            "zstd" => Codec::Zstd,
            other => return Err(format!("chunk {i}: unknown codec {other:?}")),
        };
        let mut digest = [0u8; 32];
        digest.copy_from_slice(digests.value(i));
        out.push(ChunkRecord {
            offset: offsets.value(i),
            stored_len: stored.value(i),
            raw_len: raw.value(i),
            codec,
            digest,
            subtree_at: subtrees.and_then(|s| s.is_valid(i).then(|| s.value(i))),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subtree_column_is_required_from_format_4_and_absent_before() {
        let chunks = [ChunkRecord {
            offset: 16,
            stored_len: 5,
            raw_len: 5,
            codec: Codec::Stored,
            digest: [1; 32],
            subtree_at: None,
        }];
        let full = to_batch(&chunks);
        assert_eq!(from_batch(&full, 4), Ok(chunks.to_vec()));
        let mut without = full.clone();
        without.remove_column(full.schema().index_of(SUBTREE_AT).unwrap());
        assert_eq!(from_batch(&without, 3), Ok(chunks.to_vec()));
        let err = from_batch(&without, 4).unwrap_err();
        assert!(err.contains("\"subtree_at\" missing"), "{err}");
    }
}
