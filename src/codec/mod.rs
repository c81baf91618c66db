//! The per-chunk codec: how a chunk's bytes become the blob the archive stores, and
//! back. One place for the codecs' names (the on-disk tag is
//! [`crate::format::chunk::Codec`]), encoding with the "does the frame pay" rule and
//! the sample test, decoding with the declared-size check, the bounds a reader
//! trusts, and the memory a context takes.
//!
//! The seam: [`Transform`] is one stage of a chunk's way to the archive, raw bytes in,
//! a [`Blob`] out, and [`Encoder`] is the stage every pack runs (zstd or stored).
//! Later stages (deduplication before it, encryption or parity after it) implement
//! the same trait and are run beside it by the compressor, which hashes the blob it
//! is finally given.

mod sample;
pub mod zstd;

pub use crate::format::chunk::Codec;
pub use sample::worth_compressing;

use crate::error::Result;

/// A chunk as it is to be stored: its blob and how the blob encodes the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blob<'a> {
    /// How `bytes` encode the chunk.
    pub codec: Codec,
    /// The bytes to store: the chunk itself when [`Codec::Stored`].
    pub bytes: &'a [u8],
}

/// One stage of a chunk's way into the archive: raw bytes in, a blob out.
pub trait Transform {
    /// Encodes the chunk `raw`, whose files are all on the skip list when `store`.
    /// The blob borrows `raw` or this stage's own buffer.
    fn encode<'a>(&'a mut self, raw: &'a [u8], store: bool) -> Result<Blob<'a>>;
}

/// The codec stage of a pack: zstd at one level, a chunk stored when zstd would not
/// pay (the sample test first, then the frame's own length), or every chunk stored.
pub struct Encoder {
    zstd: Option<zstd::Compressor>,
}

impl Encoder {
    /// An encoder compressing at zstd `level`, or storing everything (`None`).
    pub fn new(level: Option<i32>) -> Result<Encoder> {
        Ok(Encoder {
            zstd: level.map(zstd::Compressor::new).transpose()?,
        })
    }
}

impl Transform for Encoder {
    /// Encodes `raw`, stored as it is when `store` (a file on the skip list), when
    /// this encoder stores everything, when the sample test finds it incompressible,
    /// or when its zstd frame does not pay.
    fn encode<'a>(&'a mut self, raw: &'a [u8], store: bool) -> Result<Blob<'a>> {
        let stored = Blob {
            codec: Codec::Stored,
            bytes: raw,
        };
        let Some(z) = self.zstd.as_mut().filter(|_| !store) else {
            return Ok(stored);
        };
        if !worth_compressing(z, raw)? {
            return Ok(stored);
        }
        Ok(match z.compress(raw)? {
            Some(frame) => Blob {
                codec: Codec::Zstd,
                bytes: frame,
            },
            None => stored,
        })
    }
}

/// Most bytes a blob of `codec` may hold for a chunk of `raw_len` bytes: what caps a
/// reader's allocation whatever an archive claims.
pub fn max_stored_len(codec: Codec, raw_len: u64) -> u64 {
    match codec {
        Codec::Stored => raw_len,
        Codec::Zstd => usize::try_from(raw_len).map_or(u64::MAX, |n| zstd::bound(n) as u64),
    }
}

/// Makes `buf` exactly `len` bytes long, growing its allocation to exactly that when it
/// is too small (a doubling `resize` could hold twice the memory budget's share).
pub(crate) fn fit(buf: &mut Vec<u8>, len: usize) {
    if buf.capacity() < len {
        *buf = Vec::new();
        buf.reserve_exact(len);
    }
    buf.resize(len, 0);
}

/// Reusable state for decoding blobs (one per thread).
pub struct Decoder {
    zstd: zstd::Decompressor,
}

impl Decoder {
    /// A decoder.
    pub fn new() -> Result<Decoder> {
        Ok(Decoder {
            zstd: zstd::Decompressor::new()?,
        })
    }

    /// Decodes `blob` of `codec` (named `chunk` in messages), which must give exactly
    /// `raw_len` bytes: a stored blob is the chunk itself, a zstd frame is decoded
    /// into `raw`. Returns the chunk's bytes.
    pub fn decode<'a>(
        &mut self,
        codec: Codec,
        blob: &'a [u8],
        raw: &'a mut Vec<u8>,
        raw_len: u64,
        chunk: &str,
    ) -> std::result::Result<&'a [u8], String> {
        match codec {
            Codec::Stored if blob.len() as u64 == raw_len => Ok(blob),
            Codec::Stored => Err(format!(
                "{chunk}: stored blob of {} bytes, expected {raw_len}",
                blob.len()
            )),
            Codec::Zstd => {
                self.zstd.decode(blob, raw, raw_len, chunk)?;
                Ok(raw)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    pub(crate) fn text(len: usize) -> Vec<u8> {
        let words = [
            "fn ", "let ", "mut ", "self", ".len()", " = ", ";\n", "    ", "chunk",
        ];
        let mut out = Vec::with_capacity(len);
        let mut i = 0usize;
        while out.len() < len {
            out.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn random_data_is_stored_and_text_compressed() {
        let mut e = Encoder::new(Some(3)).unwrap();
        let r = random(1 << 20, 7);
        assert_eq!(e.encode(&r, false).unwrap().codec, Codec::Stored);
        let t = text(1 << 20);
        let blob = e.encode(&t, false).unwrap();
        assert_eq!(blob.codec, Codec::Zstd);
        let bytes = blob.bytes.to_vec();
        let mut d = Decoder::new().unwrap();
        let mut raw = Vec::new();
        let back = d
            .decode(Codec::Zstd, &bytes, &mut raw, t.len() as u64, "chunk 0")
            .unwrap();
        assert_eq!(back, &t[..]);
        assert_eq!(e.encode(&t, true).unwrap().codec, Codec::Stored);
        let mut none = Encoder::new(None).unwrap();
        assert_eq!(none.encode(&t, false).unwrap().codec, Codec::Stored);
    }

    #[test]
    fn a_frame_declaring_another_size_is_refused() {
        let mut e = Encoder::new(Some(3)).unwrap();
        let t = text(100_000);
        let frame = e.encode(&t, false).unwrap().bytes.to_vec();
        let mut d = Decoder::new().unwrap();
        let mut raw = Vec::new();
        let err = d
            .decode(Codec::Zstd, &frame, &mut raw, 99_999, "chunk 3")
            .unwrap_err();
        assert!(
            err.contains("chunk 3: zstd frame does not declare 99999"),
            "{err}"
        );
        let err = d
            .decode(Codec::Stored, &t, &mut raw, 5, "chunk 4")
            .unwrap_err();
        assert!(err.contains("chunk 4: stored blob"), "{err}");
    }

    #[test]
    fn blobs_are_bounded_by_their_codec() {
        assert_eq!(max_stored_len(Codec::Stored, 4096), 4096);
        assert!(max_stored_len(Codec::Zstd, 4096) > 4096);
        assert!(max_stored_len(Codec::Zstd, 4096) < 5000);
    }
}
