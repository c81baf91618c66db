//! The sample test: before a whole chunk is given to zstd, a few small pieces of it
//! at fixed places are. When none of them compresses enough to pay
//! ([`super::zstd::frame_pays`]), the chunk is taken to be incompressible (random,
//! encrypted, or already compressed without a name on the skip list) and is stored
//! without a full zstd pass, so it costs a copy and a hash.
//!
//! The test depends only on the chunk's bytes and the level, never on timing or
//! threads, so archives stay byte-identical. A chunk it stores could, rarely, have
//! paid as a whole: when every piece is incompressible but the chunk repeats itself
//! at a distance (the same random block twice within zstd's window), or when what
//! compresses lies only between the pieces.

use super::zstd::{Compressor, frame_pays};
use crate::error::Result;

/// Bytes of one sample piece.
pub const PIECE_LEN: usize = 4 << 10;
/// Pieces sampled from a chunk, one from the middle of each of as many equal stretches.
pub const PIECES: usize = 16;
/// Chunks shorter than this are compressed whole without a sample: the sample would
/// cost more than a quarter of the pass it might save.
pub const MIN_SAMPLED_LEN: usize = 4 * PIECES * PIECE_LEN;

/// Whether `raw` is worth a full zstd pass in `z`: it is short, or one of its sample
/// pieces pays.
pub fn worth_compressing(z: &mut Compressor, raw: &[u8]) -> Result<bool> {
    if raw.len() < MIN_SAMPLED_LEN {
        return Ok(true);
    }
    for piece in pieces(raw) {
        if frame_pays(z.frame_len(piece)?, piece.len()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The sample pieces of `raw` (at least [`MIN_SAMPLED_LEN`] bytes long), in order.
fn pieces(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let stretch = raw.len() / PIECES;
    let skip = (stretch - PIECE_LEN) / 2;
    (0..PIECES).filter_map(move |i| raw.get(i * stretch + skip..i * stretch + skip + PIECE_LEN))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{random, text};
    use super::*;

    #[test]
    fn random_data_is_not_worth_compressing() {
        let mut z = Compressor::new(3).unwrap();
        for len in [MIN_SAMPLED_LEN, 1 << 20, (4 << 20) - 1, 4 << 20] {
            assert!(
                !worth_compressing(&mut z, &random(len, len as u64)).unwrap(),
                "{len}"
            );
        }
    }

    #[test]
    fn text_and_short_chunks_are() {
        let mut z = Compressor::new(3).unwrap();
        assert!(worth_compressing(&mut z, &text(4 << 20)).unwrap());
        assert!(worth_compressing(&mut z, &random(MIN_SAMPLED_LEN - 1, 3)).unwrap());
        // Random data with text in one stretch: the text's piece pays.
        let mut mixed = random(4 << 20, 5);
        let stretch = mixed.len() / PIECES;
        mixed[5 * stretch..6 * stretch].copy_from_slice(&text(stretch));
        assert!(worth_compressing(&mut z, &mixed).unwrap());
    }

    #[test]
    fn the_pieces_are_fixed_by_the_length_alone() {
        let raw: Vec<u8> = (0..(1usize << 20)).map(|i| (i / PIECE_LEN) as u8).collect();
        let got: Vec<&[u8]> = pieces(&raw).collect();
        assert_eq!(got.len(), PIECES);
        assert!(got.iter().all(|p| p.len() == PIECE_LEN));
        let again: Vec<&[u8]> = pieces(&raw).collect();
        assert_eq!(got, again);
        // Each from the middle of its sixteenth: 64 KiB stretches, 30 KiB in.
        let at = |p: &[u8]| p.as_ptr() as usize - raw.as_ptr() as usize;
        assert_eq!(at(got[0]), 30 << 10);
        assert_eq!(at(got[15]), 15 * (64 << 10) + (30 << 10));
    }
}
