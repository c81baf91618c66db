//! The bases table of an incremental archive: the earlier archives that hold some of
//! its files' data, each named by its manifest's BLAKE3 (its identity) and, as hints
//! for finding it, its file name and its path relative to this archive's directory
//! when this archive was packed.

use super::column;
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use std::path::{Component, Path};
use std::sync::Arc;

/// One archive an incremental archive builds on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    /// BLAKE3 of its manifest, as stored in it (the first 16 bytes, in hex, are its id).
    pub manifest_digest: [u8; 32],
    /// Its file name when this archive was packed (readers look for it beside the
    /// archive).
    pub name: String,
    /// Where it was, relative to the directory of this archive, when this archive was
    /// packed (`../mon/srv.znippy`; readers look there first). `None` when unknown:
    /// archives written before this was recorded, or written to a stream. Only a hint,
    /// as the name is: the manifest digest decides.
    pub relative_path: Option<String>,
    /// How many chunks it has: locations that point into it are checked against this.
    pub chunks: u64,
    /// Where it sits in its chain: 0 for a full archive, else one more than the highest
    /// generation of its own bases.
    pub generation: u32,
}

/// The longest recorded relative path that is followed, in bytes.
const MAX_RELATIVE_LEN: usize = 4096;
/// The most components a recorded relative path that is followed may have.
const MAX_RELATIVE_COMPONENTS: usize = 256;

impl Base {
    /// Its recorded relative path, if it is one that may be followed: relative,
    /// bounded in length and depth, made of names, `.` and `..` only, naming a file.
    /// Anything else (an absolute path, say: the table may be hostile) is no hint.
    pub fn followable_relative_path(&self) -> Option<&Path> {
        let rel = self.relative_path.as_deref()?;
        let p = Path::new(rel);
        let named = matches!(p.components().next_back(), Some(Component::Normal(_)));
        let ok = rel.len() <= MAX_RELATIVE_LEN
            && !rel.contains('\0')
            && named
            && p.components().count() <= MAX_RELATIVE_COMPONENTS
            && p.components().all(|c| {
                matches!(
                    c,
                    Component::Normal(_) | Component::ParentDir | Component::CurDir
                )
            });
        ok.then_some(p)
    }
}

impl Base {
    /// Its recorded name, if it is a plain file name (no `/`, not `.` or `..`), as a
    /// name must be to be looked for beside the archive.
    pub fn plain_name(&self) -> Option<&str> {
        let n = self.name.as_str();
        let plain = !n.is_empty() && !n.contains(['/', '\0']) && n != "." && n != "..";
        plain.then_some(n)
    }
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
        Field::new("relative_path", DataType::Utf8, true),
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
        Arc::new(StringArray::from_iter(
            bases.iter().map(|b| b.relative_path.as_deref()),
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
    // Tables written before relative paths were recorded have no such column.
    let relative = match batch.column_by_name("relative_path") {
        Some(_) => Some(column::<StringArray>(batch, "relative_path", true)?),
        None => None,
    };
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
            relative_path: relative
                .filter(|r| r.is_valid(i))
                .map(|r| r.value(i).to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bases = vec![
            Base {
                manifest_digest: [7; 32],
                name: "monday.znippy".into(),
                chunks: 12,
                generation: 1,
                relative_path: Some("../mon/monday.znippy".into()),
            },
            Base {
                manifest_digest: [8; 32],
                name: "sunday.znippy".into(),
                chunks: 3,
                generation: 0,
                relative_path: None,
            },
        ];
        assert_eq!(from_batch(&to_batch(&bases)).unwrap(), bases);
    }

    #[test]
    fn only_bounded_relative_paths_are_followed() {
        let at = |rel: &str| Base {
            manifest_digest: [0; 32],
            name: "srv.znippy".into(),
            chunks: 0,
            generation: 0,
            relative_path: Some(rel.into()),
        };
        for ok in ["../mon/srv.znippy", "srv.znippy", "./a/../b.znippy"] {
            assert_eq!(at(ok).followable_relative_path(), Some(Path::new(ok)));
        }
        let deep = "../".repeat(300) + "x";
        let long = "a/".repeat(3000) + "x";
        for bad in ["/etc/passwd", "", "..", "a/..", "a\0b", &deep, &long] {
            assert_eq!(at(bad).followable_relative_path(), None, "{bad:?}");
        }
    }

    #[test]
    fn a_table_without_relative_paths_reads() {
        let bases = vec![Base {
            manifest_digest: [7; 32],
            name: "monday.znippy".into(),
            chunks: 12,
            generation: 1,
            relative_path: Some("x".into()),
        }];
        let batch = to_batch(&bases);
        let old = batch.project(&[0, 1, 2, 3]).unwrap();
        let read = from_batch(&old).unwrap();
        assert_eq!(read[0].relative_path, None);
        assert_eq!(read[0].name, "monday.znippy");
    }
}
