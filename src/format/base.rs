//! The bases table of an incremental archive: the earlier archives that hold some of
//! its files' data, each named by its manifest's BLAKE3 (its identity) and, as a hint
//! for finding it, its file name when this archive was packed.

use super::column;
use arrow_array::{
    ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

/// One archive an incremental archive builds on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    /// BLAKE3 of its manifest, as stored in it (the first 16 bytes, in hex, are its id).
    pub manifest_digest: [u8; 32],
    /// Its file name when this archive was packed (where readers look first).
    pub name: String,
    /// How many chunks it has: locations that point into it are checked against this.
    pub chunks: u64,
    /// Where it sits in its chain: 0 for a full archive, else one more than the highest
    /// generation of its own bases.
    pub generation: u32,
}

/// An archive's id, from its manifest BLAKE3: the first 16 bytes, in hex.
pub fn id_of(manifest_digest: &[u8; 32]) -> String {
    use std::fmt::Write;
    manifest_digest[..16]
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bases table's schema; row `i` is base `i`.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("manifest_blake3", DataType::FixedSizeBinary(32), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("chunks", DataType::UInt64, false),
        Field::new("generation", DataType::UInt32, false),
    ]))
}

/// Builds the bases table.
pub fn to_batch(bases: &[Base]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            FixedSizeBinaryArray::try_from_iter(bases.iter().map(|b| b.manifest_digest))
                .unwrap_or_else(|_| FixedSizeBinaryArray::new_null(32, 0)),
        ),
        Arc::new(StringArray::from_iter_values(
            bases.iter().map(|b| b.name.as_str()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            bases.iter().map(|b| b.chunks),
        )),
        Arc::new(UInt32Array::from_iter_values(
            bases.iter().map(|b| b.generation),
        )),
    ];
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|e| unreachable!("bases: {e}"))
}

/// Reads the bases table.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Base>, String> {
    let digests = column::<FixedSizeBinaryArray>(batch, "manifest_blake3", false)?;
    let names = column::<StringArray>(batch, "name", false)?;
    let chunks = column::<UInt64Array>(batch, "chunks", false)?;
    let generations = column::<UInt32Array>(batch, "generation", false)?;
    if digests.value_length() != 32 {
        return Err("bases: manifest_blake3 column is not 32 bytes wide".into());
    }
    if batch.num_rows() > usize::from(u16::MAX) {
        return Err(format!("bases: {} rows (at most 65535)", batch.num_rows()));
    }
    Ok((0..batch.num_rows())
        .map(|i| Base {
            manifest_digest: {
                let mut d = [0u8; 32];
                d.copy_from_slice(digests.value(i));
                d
            },
            name: names.value(i).to_string(),
            chunks: chunks.value(i),
            generation: generations.value(i),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bases = vec![Base {
            manifest_digest: [7; 32],
            name: "monday.znippy".into(),
            chunks: 12,
            generation: 1,
        }];
        assert_eq!(from_batch(&to_batch(&bases)).unwrap(), bases);
    }
}
