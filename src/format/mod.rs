//! The on-disk format, one part per module; docs/FORMAT.md is the contract.
//!
//! ```text
//! header (16) | blob ... blob | sub-index streams (Arrow IPC) | manifest (Arrow IPC) | footer (16)
//! ```

pub mod chunk;
pub mod entry;
pub mod footer;
pub mod header;
pub mod index;
pub mod manifest;

use arrow_array::{Array, RecordBatch};

/// Serializes one record batch as a complete Arrow IPC stream.
pub(crate) fn ipc_encode(batch: &RecordBatch) -> Vec<u8> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
        .unwrap_or_else(|e| unreachable!("in-memory IPC writer: {e}"));
    // Writing into a Vec cannot fail; the schema is our own.
    w.write(batch)
        .unwrap_or_else(|e| unreachable!("in-memory IPC write: {e}"));
    w.into_inner()
        .unwrap_or_else(|e| unreachable!("in-memory IPC finish: {e}"))
}

/// Reads the one record batch of an Arrow IPC stream, decoding in place: the arrays
/// point into `bytes` (no copy of the index is made).
///
/// arrow-ipc can panic on malformed input instead of returning an error. Sub-indexes
/// are checksummed, so only a deliberately crafted archive gets here with bad bytes;
/// the unwind guard turns such a panic into an error rather than a crash.
pub(crate) fn ipc_decode(bytes: Vec<u8>) -> Result<RecordBatch, String> {
    std::panic::catch_unwind(move || ipc_decode_unguarded(bytes))
        .unwrap_or_else(|_| Err("malformed Arrow IPC stream".into()))
}

fn ipc_decode_unguarded(bytes: Vec<u8>) -> Result<RecordBatch, String> {
    let mut buffer = arrow_buffer::Buffer::from_vec(bytes);
    let mut decoder = arrow_ipc::reader::StreamDecoder::new();
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        match decoder.decode(&mut buffer) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => {}
            Err(e) => return Err(format!("Arrow IPC stream: {e}")),
        }
    }
    decoder
        .finish()
        .map_err(|e| format!("Arrow IPC stream: {e}"))?;
    let schema = decoder
        .schema()
        .ok_or_else(|| "Arrow IPC stream without a schema".to_string())?;
    // The format says one batch per sub-index stream (docs/FORMAT.md).
    match (batches.pop(), batches.is_empty()) {
        (None, _) => Ok(RecordBatch::new_empty(schema)),
        (Some(b), true) => Ok(b),
        (Some(_), false) => Err(format!(
            "{} record batches in one sub-index (expected 1)",
            batches.len() + 1
        )),
    }
}

/// The column `name` of `batch` as array type `T`, without nulls unless `nullable`.
pub(crate) fn column<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    nullable: bool,
) -> Result<&'a T, String> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| format!("column {name:?} missing"))?;
    let typed = col
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("column {name:?} has type {}", col.data_type()))?;
    if !nullable && typed.null_count() > 0 {
        return Err(format!("column {name:?} has nulls"));
    }
    Ok(typed)
}
