//! BLAKE3 digests of chunks and of whole files.
//!
//! A chunk's digest is plain BLAKE3 of its blob as stored (format 2; in format 1, of
//! its uncompressed bytes: see `format::chunk::DigestOf`), or, for a stored piece of a
//! split file (format 4), the piece's chaining value. A file's digest is plain
//! BLAKE3 of the whole file (what `b3sum` prints), even when the file is split over
//! chunks compressed on different cores: each core computes the chaining value of its
//! piece as a BLAKE3 subtree, and [`merge_file`] joins them in the tree's shape. This
//! works because chunk sizes are powers of two (at least 1 KiB) and a split file's
//! pieces start at multiples of the chunk size.

use blake3::hazmat::{
    HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

/// A 32-byte BLAKE3 output.
pub type Digest = [u8; 32];

/// What hashing a piece of a file yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceDigest {
    /// The piece is the whole file: this is the file's digest.
    Whole(Digest),
    /// The piece is one subtree of a larger file: its chaining value.
    Subtree(Digest),
}

/// Plain BLAKE3 of `bytes`: what `b3sum` prints, in bytes.
pub fn hash(bytes: &[u8]) -> Digest {
    *blake3::hash(bytes).as_bytes()
}

/// A chunk's digest of its blob (format 2 on): plain BLAKE3, or with `subtree_at`
/// (format 4, a stored piece of a split file) the chaining value of the blob as the
/// subtree at that input offset, the value [`piece`] gives for the same bytes. The
/// offset must have passed `format::index`'s check (a multiple of 1024, the blob no
/// longer than a subtree there), or the hasher panics.
pub fn blob(bytes: &[u8], subtree_at: Option<u64>) -> Digest {
    match subtree_at {
        None => hash(bytes),
        Some(at) => {
            let mut h = blake3::Hasher::new();
            h.set_input_offset(at);
            h.update(bytes);
            h.finalize_non_root()
        }
    }
}

/// The digest of a piece of a file that starts at `file_offset`, when the file is
/// `whole` (one piece) or split at multiples of a power-of-two piece length.
pub fn piece(bytes: &[u8], file_offset: u64, whole: bool) -> PieceDigest {
    match whole {
        true => PieceDigest::Whole(hash(bytes)),
        false => PieceDigest::Subtree(blob(bytes, Some(file_offset))),
    }
}

/// Joins the chaining values of a file's pieces (in order, each `piece_len` long except
/// the last) into the file's BLAKE3. `None` if the pieces do not fit that shape.
pub fn merge_file(cvs: &[Digest], piece_len: u64, file_len: u64) -> Option<Digest> {
    let (left, right) = split(cvs, piece_len, file_len)?;
    Some(*merge_subtrees_root(&left, &right, Mode::Hash).as_bytes())
}

/// The two children of the subtree over `cvs`, which covers `len` bytes.
fn split(cvs: &[Digest], piece_len: u64, len: u64) -> Option<(Digest, Digest)> {
    if cvs.len() < 2 || !piece_len.is_power_of_two() || piece_len < blake3::CHUNK_LEN as u64 {
        return None;
    }
    let left_len = left_subtree_len(len);
    let at = usize::try_from(left_len / piece_len).ok()?;
    let (l, r) = (cvs.get(..at)?, cvs.get(at..)?);
    Some((
        subtree(l, piece_len, left_len)?,
        subtree(r, piece_len, len - left_len)?,
    ))
}

fn subtree(cvs: &[Digest], piece_len: u64, len: u64) -> Option<Digest> {
    match cvs {
        [] => None,
        [one] => Some(*one),
        _ => {
            let (l, r) = split(cvs, piece_len, len)?;
            Some(merge_subtrees_non_root(&l, &r, Mode::Hash))
        }
    }
}

/// Whole-file digests from the piece digests of `entries` files: `pieces` holds
/// (entry, chunk, digest) in any order; `shape(entry)` gives the file's length and the
/// length of its pieces. Files without pieces, or whose pieces do not fit, get `None`.
pub fn assemble(
    entries: usize,
    pieces: &mut [(usize, u64, PieceDigest)],
    shape: impl Fn(usize) -> (u64, u64),
) -> Vec<Option<Digest>> {
    let mut out = vec![None; entries];
    pieces.sort_unstable_by_key(|&(e, chunk, _)| (e, chunk));
    for run in pieces.chunk_by(|a, b| a.0 == b.0) {
        let entry = run[0].0;
        let digest = match run {
            [(_, _, PieceDigest::Whole(d))] => Some(*d),
            _ => {
                let cvs: Option<Vec<Digest>> = run
                    .iter()
                    .map(|p| match p.2 {
                        PieceDigest::Subtree(cv) => Some(cv),
                        PieceDigest::Whole(_) => None,
                    })
                    .collect();
                let (file_len, piece_len) = shape(entry);
                cvs.and_then(|cvs| merge_file(&cvs, piece_len, file_len))
            }
        };
        if let Some(slot) = out.get_mut(entry) {
            *slot = digest;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_what_b3sum_prints() {
        // `printf hello | b3sum`
        let hex = crate::read::export::hex(&hash(b"hello"));
        assert!(hex.starts_with("ea8f163db38682925e4491c5e58d4bb3"), "{hex}");
    }

    fn split_hash(data: &[u8], piece_len: usize) -> Digest {
        let cvs: Vec<Digest> = data
            .chunks(piece_len)
            .enumerate()
            .map(|(i, p)| match piece(p, (i * piece_len) as u64, false) {
                PieceDigest::Subtree(cv) => cv,
                PieceDigest::Whole(_) => unreachable!(),
            })
            .collect();
        merge_file(&cvs, piece_len as u64, data.len() as u64).unwrap()
    }

    #[test]
    fn split_file_digest_equals_plain_blake3() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece_len in [1024usize, 4096, 65536] {
            for len in [
                piece_len + 1,
                2 * piece_len,
                3 * piece_len - 1,
                5 * piece_len + 17,
                300_000,
            ] {
                if len <= piece_len || len > data.len() {
                    continue;
                }
                let d = &data[..len];
                assert_eq!(
                    split_hash(d, piece_len),
                    hash(d),
                    "piece {piece_len} len {len}"
                );
            }
        }
    }

    #[test]
    fn whole_piece_is_plain_blake3() {
        assert_eq!(piece(b"abc", 0, true), PieceDigest::Whole(hash(b"abc")));
    }
}
