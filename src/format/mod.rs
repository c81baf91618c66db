//! The on-disk format, one part per module; docs/FORMAT.md is the contract.
//!
//! ```text
//! header (16) | blob ... blob | sub-index streams (Arrow IPC) | manifest (Arrow IPC) | footer (16)
//! ```

pub mod base;
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

/// Walks an IPC stream before arrow decodes it: every message must pass the flatbuffer
/// verifier, be a Schema or an uncompressed RecordBatch, have its body inside the stream,
/// and every buffer inside its body. arrow-ipc would panic on a buffer outside the body
/// (found by fuzzing, with a checksum the fuzzer had learned to satisfy).
fn check_ipc_stream(mut b: &[u8]) -> Result<(), String> {
    fn i32_at(b: &[u8]) -> Result<i32, String> {
        match b.get(..4) {
            Some(&[x0, x1, x2, x3]) => Ok(i32::from_le_bytes([x0, x1, x2, x3])),
            _ => Err("Arrow IPC stream: truncated message length".into()),
        }
    }
    loop {
        if b.is_empty() {
            return Ok(());
        }
        let mut len = i32_at(b)?;
        b = &b[4..];
        if len == -1 {
            len = i32_at(b)?;
            b = &b[4..];
        }
        if len == 0 {
            return Ok(()); // end-of-stream marker
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= b.len())
            .ok_or("Arrow IPC stream: message length outside the stream")?;
        let (meta, rest) = b.split_at(len);
        let msg = arrow_ipc::root_as_message(meta)
            .map_err(|e| format!("Arrow IPC stream: invalid message: {e}"))?;
        let body = usize::try_from(msg.bodyLength())
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or("Arrow IPC stream: message body outside the stream")?;
        match msg.header_type() {
            arrow_ipc::MessageHeader::Schema => {}
            arrow_ipc::MessageHeader::RecordBatch => {
                let rb = msg
                    .header_as_record_batch()
                    .ok_or("Arrow IPC stream: record batch header missing")?;
                if rb.compression().is_some() {
                    return Err("Arrow IPC stream: compressed buffers are not used".into());
                }
                for buf in rb.buffers().iter().flatten() {
                    let inside = buf.offset() >= 0
                        && buf.length() >= 0
                        && buf
                            .offset()
                            .checked_add(buf.length())
                            .is_some_and(|end| end as u64 <= body as u64);
                    if !inside {
                        return Err("Arrow IPC stream: buffer outside its message body".into());
                    }
                }
            }
            _ => return Err("Arrow IPC stream: unexpected message type".into()),
        }
        b = &rest[body..];
    }
}

fn ipc_decode_unguarded(bytes: Vec<u8>) -> Result<RecordBatch, String> {
    check_ipc_stream(&bytes)?;
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
