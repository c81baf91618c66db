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

/// The first format version whose sub-index streams compress their buffers (Arrow IPC
/// `BodyCompression`, zstd); the manifest stays uncompressed in every version.
pub const COMPRESSED_INDEX_VERSION: u32 = 3;

/// Whether the sub-index streams of format `version` have zstd-compressed buffers.
pub(crate) fn compressed_index(version: u32) -> bool {
    version >= COMPRESSED_INDEX_VERSION
}

/// A stream may decompress to at most this many times its own length, plus
/// [`INFLATE_SLACK`]: a reader's bound on what a compressed sub-index allocates,
/// whatever its buffers claim. Real indexes inflate 3-10 times (their digest columns do
/// not compress at all).
pub const MAX_INFLATION: u64 = 256;

/// See [`MAX_INFLATION`].
pub const INFLATE_SLACK: u64 = 64 << 20;

/// Serializes one record batch as a complete Arrow IPC stream, its buffers
/// zstd-compressed when `compress` (a buffer that does not shrink is kept as it is, as
/// the IPC format allows).
pub(crate) fn ipc_encode(batch: &RecordBatch, compress: bool) -> Vec<u8> {
    let compression = compress.then_some(arrow_ipc::CompressionType::ZSTD);
    let options = arrow_ipc::writer::IpcWriteOptions::default()
        .try_with_compression(compression)
        .unwrap_or_else(|e| unreachable!("zstd IPC compression is built in: {e}"));
    let mut w =
        arrow_ipc::writer::StreamWriter::try_new_with_options(Vec::new(), &batch.schema(), options)
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
///
/// `compressed`: whether the stream may have compressed buffers (format 3 on, never
/// the manifest); they must then be zstd, and decompress to at most
/// [`MAX_INFLATION`] times the stream's length plus [`INFLATE_SLACK`], as their
/// prefixes declare before anything is allocated.
pub(crate) fn ipc_decode(bytes: Vec<u8>, compressed: bool) -> Result<RecordBatch, String> {
    std::panic::catch_unwind(move || ipc_decode_unguarded(bytes, compressed))
        .unwrap_or_else(|_| Err("malformed Arrow IPC stream".into()))
}

/// [`ipc_decode`] of only the columns of the stream named in `names` (those it lacks
/// are left out too): the other columns' buffers are skipped, not decompressed, and
/// the arrays point into `bytes` wherever their buffers are not compressed.
pub(crate) fn ipc_decode_columns(
    bytes: Vec<u8>,
    compressed: bool,
    names: &[&str],
) -> Result<RecordBatch, String> {
    std::panic::catch_unwind(move || {
        check_ipc_stream(&bytes, compressed)?;
        decode_columns(arrow_buffer::Buffer::from_vec(bytes), names)
    })
    .unwrap_or_else(|_| Err("malformed Arrow IPC stream".into()))
}

/// The batch of the checked stream `buf`, of the columns named in `names`.
fn decode_columns(buf: arrow_buffer::Buffer, names: &[&str]) -> Result<RecordBatch, String> {
    let ipc = |e: arrow_schema::ArrowError| format!("Arrow IPC stream: {e}");
    let short = || "Arrow IPC stream: truncated message".to_string();
    let i32_at = |at: usize| match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(i32::from_le_bytes([a, b, c, d])),
        _ => Err(short()),
    };
    let mut at = 0usize;
    let mut schema: Option<std::sync::Arc<arrow_schema::Schema>> = None;
    let mut batch = None;
    while at < buf.len() {
        let mut len = i32_at(at)?;
        at += 4;
        if len == -1 {
            len = i32_at(at)?;
            at += 4;
        }
        let len = usize::try_from(len).map_err(|_| short())?;
        if len == 0 {
            break;
        }
        let meta = buf.get(at..at + len).ok_or_else(short)?;
        let msg = arrow_ipc::root_as_message(meta).map_err(|e| format!("Arrow IPC: {e}"))?;
        let body_at = at + len;
        let body_len = usize::try_from(msg.bodyLength()).map_err(|_| short())?;
        if let Some(s) = msg.header_as_schema() {
            let s = arrow_ipc::convert::try_fb_to_schema(s).map_err(ipc)?;
            schema = Some(std::sync::Arc::new(s));
        } else if let Some(rb) = msg.header_as_record_batch() {
            let schema = schema
                .clone()
                .ok_or("Arrow IPC stream: batch before schema")?;
            if batch.is_some() {
                return Err("2 or more record batches in one sub-index (expected 1)".into());
            }
            let projection = projection(&schema, names);
            let body = buf.slice_with_length(body_at, body_len);
            let dictionaries = std::collections::HashMap::new();
            batch = Some(
                arrow_ipc::reader::read_record_batch(
                    &body,
                    rb,
                    schema,
                    &dictionaries,
                    Some(&projection),
                    &msg.version(),
                )
                .map_err(ipc)?,
            );
        }
        at = body_at + body_len;
    }
    match (batch, schema) {
        (Some(b), _) => Ok(b),
        (None, Some(s)) => Ok(RecordBatch::new_empty(std::sync::Arc::new(
            s.project(&projection(&s, names)).map_err(ipc)?,
        ))),
        (None, None) => Err("Arrow IPC stream without a schema".into()),
    }
}

/// The numbers of the columns of `schema` named in `names`, in schema order.
fn projection(schema: &arrow_schema::Schema, names: &[&str]) -> Vec<usize> {
    (schema.fields().iter().enumerate())
        .filter(|(_, f)| names.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect()
}

/// Walks an IPC stream before arrow decodes it: every message must pass the flatbuffer
/// verifier, be a Schema or a RecordBatch (compressed only where `compressed` allows,
/// see [`check_compression`]), have its body inside the stream, and every buffer inside
/// its body. arrow-ipc would panic on a buffer outside the body (found by fuzzing, with
/// a checksum the fuzzer had learned to satisfy).
fn check_ipc_stream(mut b: &[u8], compressed: bool) -> Result<(), String> {
    let limit = (b.len() as u64)
        .saturating_mul(MAX_INFLATION)
        .saturating_add(INFLATE_SLACK);
    let mut inflated = 0u64;
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
                let codec = rb.compression();
                if codec.is_some() && !compressed {
                    return Err("Arrow IPC stream: compressed buffers are not used".into());
                }
                if let Some(c) = codec {
                    check_codec(c)?;
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
                    if codec.is_some() {
                        let at = buf.offset() as usize..(buf.offset() + buf.length()) as usize;
                        inflated = inflated.saturating_add(inflated_len(rest.get(at))?);
                        if inflated > limit {
                            return Err(format!(
                                "Arrow IPC stream: compressed buffers claim more than \
                                 {limit} bytes for a stream of {} bytes",
                                b.len()
                            ));
                        }
                    }
                }
            }
            _ => return Err("Arrow IPC stream: unexpected message type".into()),
        }
        b = &rest[body..];
    }
}

/// The one buffer compression the format uses: zstd, per buffer.
fn check_codec(c: arrow_ipc::BodyCompression) -> Result<(), String> {
    if c.codec() != arrow_ipc::CompressionType::ZSTD
        || c.method() != arrow_ipc::BodyCompressionMethod::BUFFER
    {
        return Err(format!(
            "Arrow IPC stream: buffer compression {:?} is not used",
            c.codec()
        ));
    }
    Ok(())
}

/// What the compressed buffer `buf` (its bytes in the body) decompresses to, as its
/// 8-byte prefix declares: its length, or 0 for a buffer kept uncompressed (prefix
/// -1) or empty.
fn inflated_len(buf: Option<&[u8]>) -> Result<u64, String> {
    let buf = buf.ok_or("Arrow IPC stream: buffer outside its message body")?;
    if buf.is_empty() {
        return Ok(0);
    }
    let prefix = match buf.get(..8) {
        Some(&[a, b, c, d, e, f, g, h]) => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => return Err("Arrow IPC stream: compressed buffer shorter than its prefix".into()),
    };
    match prefix {
        -1 => Ok(0),
        n => u64::try_from(n)
            .map_err(|_| format!("Arrow IPC stream: compressed buffer declares {n} bytes")),
    }
}

fn ipc_decode_unguarded(bytes: Vec<u8>, compressed: bool) -> Result<RecordBatch, String> {
    check_ipc_stream(&bytes, compressed)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{StringArray, UInt64Array};
    use std::sync::Arc;

    /// A batch whose columns compress well: 10,000 rows.
    fn batch() -> RecordBatch {
        let paths: Vec<String> = (0..10_000).map(|i| format!("dir/sub/file{i}")).collect();
        let sizes: Vec<u64> = (0..10_000).map(|i| i % 7).collect();
        RecordBatch::try_from_iter([
            ("path", Arc::new(StringArray::from(paths)) as _),
            ("size", Arc::new(UInt64Array::from(sizes)) as _),
        ])
        .unwrap()
    }

    /// Where the record batch's buffers lie in `stream`: (absolute offset, length).
    fn buffers(stream: &[u8]) -> Vec<(usize, usize)> {
        let mut at = 0;
        loop {
            let mut len = i32::from_le_bytes(stream[at..at + 4].try_into().unwrap());
            at += 4;
            if len == -1 {
                len = i32::from_le_bytes(stream[at..at + 4].try_into().unwrap());
                at += 4;
            }
            let meta = &stream[at..at + len as usize];
            let msg = arrow_ipc::root_as_message(meta).unwrap();
            let body = at + len as usize;
            if let Some(rb) = msg.header_as_record_batch() {
                let bufs = rb.buffers().unwrap().iter();
                return bufs
                    .map(|b| (body + b.offset() as usize, b.length() as usize))
                    .collect();
            }
            at = body + msg.bodyLength() as usize;
        }
    }

    /// The compressed buffers of `stream` (prefix not -1, not empty).
    fn compressed(stream: &[u8]) -> Vec<(usize, usize)> {
        let prefix = |o: usize| i64::from_le_bytes(stream[o..o + 8].try_into().unwrap());
        buffers(stream)
            .into_iter()
            .filter(|&(o, l)| l >= 8 && prefix(o) > 0)
            .collect()
    }

    #[test]
    fn compressed_streams_round_trip_and_are_smaller() {
        let plain = ipc_encode(&batch(), false);
        let packed = ipc_encode(&batch(), true);
        assert!(
            packed.len() * 3 < plain.len(),
            "{} {}",
            packed.len(),
            plain.len()
        );
        assert!(!compressed(&packed).is_empty());
        assert_eq!(ipc_decode(packed, true).unwrap(), batch());
        assert_eq!(ipc_decode(plain, true).unwrap(), batch());
    }

    #[test]
    fn compressed_buffers_are_refused_where_the_version_has_none() {
        let err = ipc_decode(ipc_encode(&batch(), true), false).unwrap_err();
        assert!(err.contains("compressed buffers are not used"), "{err}");
    }

    #[test]
    fn a_buffer_claiming_a_huge_size_is_refused_before_allocating() {
        let mut s = ipc_encode(&batch(), true);
        let (at, _) = compressed(&s)[0];
        for claim in [i64::MAX, 1 << 40, (s.len() as i64) * 300 + (64 << 20)] {
            s[at..at + 8].copy_from_slice(&claim.to_le_bytes());
            let err = ipc_decode(s.clone(), true).unwrap_err();
            assert!(err.contains("compressed buffers claim more than"), "{err}");
        }
        s[at..at + 8].copy_from_slice(&(-2i64).to_le_bytes());
        let err = ipc_decode(s, true).unwrap_err();
        assert!(err.contains("declares -2 bytes"), "{err}");
    }

    #[test]
    fn a_buffer_lying_about_its_size_or_holding_garbage_is_an_error() {
        let good = ipc_encode(&batch(), true);
        for (at, len) in compressed(&good) {
            let declared = i64::from_le_bytes(good[at..at + 8].try_into().unwrap());
            for lie in [declared - 1, declared + 1, 1] {
                let mut s = good.clone();
                s[at..at + 8].copy_from_slice(&lie.to_le_bytes());
                assert!(
                    ipc_decode(s, true).is_err(),
                    "declared {lie} for {declared}"
                );
            }
            let mut s = good.clone();
            for b in &mut s[at + 8..at + len] {
                *b = b.wrapping_mul(31).wrapping_add(7);
            }
            assert!(ipc_decode(s, true).is_err(), "garbage at {at}");
            let mut s = good.clone();
            s[at..at + 8].copy_from_slice(&(-1i64).to_le_bytes());
            // Kept "uncompressed": the zstd bytes are taken as the column's values,
            // of the wrong length for it.
            assert!(ipc_decode(s, true).is_err(), "uncompressed claim at {at}");
        }
    }

    #[test]
    fn a_projection_decodes_only_the_columns_named_with_the_same_checks() {
        for compress in [false, true] {
            let s = ipc_encode(&batch(), compress);
            let only = ipc_decode_columns(s.clone(), true, &["size", "absent"]).unwrap();
            assert_eq!(only.num_columns(), 1);
            assert_eq!(only.column(0), batch().column(1));
            let err = ipc_decode_columns(s, false, &["size"]).map(|_| ());
            assert_eq!(err.is_err(), compress, "{err:?}");
        }
        let mut s = ipc_encode(&batch(), true);
        let (at, _) = compressed(&s)[0];
        s[at..at + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
        let err = ipc_decode_columns(s, true, &["path", "size"]).unwrap_err();
        assert!(err.contains("compressed buffers claim more than"), "{err}");
    }
}
