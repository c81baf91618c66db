//! zstd: the frames a chunk is compressed into, the rule for keeping one, the bound
//! on a frame's length, the size of a context, and decoding with the size the frame
//! declares checked before anything is allocated.

use crate::error::{Error, Result};
use zstd::zstd_safe;

/// The levels zstd accepts.
pub fn levels() -> std::ops::RangeInclusive<i32> {
    zstd::compression_level_range()
}

/// Bytes of a zstd decompression context (zstd 1.5 measures about 95 KiB; the window
/// is the output buffer itself).
pub const DECODE_CONTEXT_BYTES: u64 = 128 << 10;

/// Whether a zstd frame of `frame_len` bytes is worth keeping for `raw_len` bytes: it
/// must save more than 3%, else the chunk is stored.
pub fn frame_pays(frame_len: usize, raw_len: usize) -> bool {
    (frame_len as u64) * 100 < (raw_len as u64) * 97
}

/// The longest zstd frame of `raw_len` bytes of content.
pub fn bound(raw_len: usize) -> usize {
    zstd_safe::compress_bound(raw_len)
}

/// Bytes of a zstd compression context at `level` for inputs of `chunk_size`, as
/// zstd sizes it (the context's tables grow with the level: about 1 MiB at level 3,
/// tens of MiB at 19).
pub fn context_bytes(level: i32, chunk_size: usize) -> usize {
    let mut cctx = zstd_safe::CCtx::create();
    let ready = cctx
        .set_parameter(zstd_safe::CParameter::CompressionLevel(level))
        .is_ok()
        && cctx.set_pledged_src_size(Some(chunk_size as u64)).is_ok();
    if ready {
        // Flushing nothing makes zstd allocate the context's tables for that size.
        let mut out = [0u8; 64];
        let mut output = zstd_safe::OutBuffer::around(&mut out[..]);
        let mut input = zstd_safe::InBuffer::around(&[][..]);
        let _ = cctx.compress_stream2(
            &mut output,
            &mut input,
            zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush,
        );
    }
    cctx.sizeof()
}

/// A reused zstd compression context at one level and the buffer its frames are
/// made in.
pub struct Compressor {
    cctx: zstd::bulk::Compressor<'static>,
    frame: Vec<u8>,
}

impl Compressor {
    /// A context at `level`.
    pub fn new(level: i32) -> Result<Compressor> {
        Ok(Compressor {
            cctx: zstd::bulk::Compressor::new(level)
                .map_err(|e| Error::Invalid(format!("zstd level {level}: {e}")))?,
            frame: Vec::new(),
        })
    }

    /// Compresses `raw` into one frame, or `None` when the frame does not pay
    /// ([`frame_pays`]).
    pub fn compress(&mut self, raw: &[u8]) -> Result<Option<&[u8]>> {
        let n = self.frame_len(raw)?;
        Ok(frame_pays(n, raw.len()).then(|| &self.frame[..n]))
    }

    /// The length of the frame of `raw`, made in this context's buffer.
    pub(super) fn frame_len(&mut self, raw: &[u8]) -> Result<usize> {
        self.frame.clear();
        self.frame.reserve(bound(raw.len()));
        self.cctx
            .compress_to_buffer(raw, &mut self.frame)
            .map_err(|e| Error::Invalid(format!("zstd: {e}")))
    }
}

/// A reused zstd decompression context.
pub struct Decompressor {
    dctx: zstd::bulk::Decompressor<'static>,
}

impl Decompressor {
    /// A context.
    pub fn new() -> Result<Decompressor> {
        Ok(Decompressor {
            dctx: zstd::bulk::Decompressor::new()
                .map_err(|e| Error::Invalid(format!("zstd decompressor: {e}")))?,
        })
    }

    /// Decodes the zstd frame `blob` of `chunk` into `raw`, which it must fill
    /// exactly: `raw_len` bytes, declared in the frame's header before anything is
    /// allocated.
    pub fn decode(
        &mut self,
        blob: &[u8],
        raw: &mut Vec<u8>,
        raw_len: u64,
        chunk: &str,
    ) -> std::result::Result<(), String> {
        match zstd_safe::get_frame_content_size(blob) {
            Ok(Some(n)) if n == raw_len => {}
            _ => {
                return Err(format!(
                    "{chunk}: zstd frame does not declare {raw_len} bytes"
                ));
            }
        }
        let len = usize::try_from(raw_len).map_err(|_| format!("{chunk}: {raw_len} bytes"))?;
        super::fit(raw, len);
        let n = self
            .dctx
            .decompress_to_buffer(blob, &mut raw[..])
            .map_err(|e| format!("{chunk}: zstd: {e}"))?;
        if n as u64 != raw_len {
            return Err(format!(
                "{chunk}: decompressed to {n} bytes, expected {raw_len}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn zstd_contexts_grow_with_the_level() {
        let (l1, l3, l19) = (
            context_bytes(1, 4 * MIB),
            context_bytes(3, 4 * MIB),
            context_bytes(19, 4 * MIB),
        );
        assert!(l3 > 256 << 10, "level 3 context {l3}");
        assert!(l1 <= l3 && l3 * 8 < l19, "{l1} {l3} {l19}");
    }

    #[test]
    fn a_frame_pays_when_it_saves_more_than_three_percent() {
        assert!(frame_pays(96, 100));
        assert!(!frame_pays(97, 100));
        assert!(!frame_pays(120, 100));
    }
}
