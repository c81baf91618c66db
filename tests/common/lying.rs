//! A crafted archive whose every checksum is valid (chunk digests, sub-index and
//! manifest digests) but some of whose files' whole-file digests do not match their
//! bytes: what only the whole-file check can catch.
#![allow(dead_code)]

use std::path::Path;
use znippy_uring::testing::format::{header, index};
use znippy_uring::{ChunkRecord, Codec, DataLocation, Entry, EntryKind, Group};

/// Files in the lying archive: (path, whether its digest is true).
pub const FILES: [(&str, bool); 6] = [
    ("bad", false),
    ("good", true),
    ("empty-bad", false),
    ("split-bad", false),
    ("split-good", true),
    ("link-to-bad", false),
];

/// A file over three 1 MiB chunks whose digest lies, besides [`FILES`]: more than
/// one read request of the kernel's.
pub const BIG: &str = "split-big-bad";

/// The bytes of file `path` in the lying archive.
pub fn content(path: &str) -> Vec<u8> {
    match path {
        "bad" => vec![b'b'; 100],
        "good" => vec![b'g'; 100],
        "split-bad" | "split-good" => (0..2500u32).map(|i| (i * 7 % 251) as u8).collect(),
        "link-to-bad" => content("bad"),
        BIG => (0..3u32 << 20).map(|i| (i % 253) as u8).collect(),
        _ => Vec::new(),
    }
}

/// Writes the lying archive to `path`: "bad" and "good" share chunk 0; "split-bad"
/// and "split-good" lie over three 1 KiB chunks each; "empty-bad" is empty with the
/// digest of "x"; "link-to-bad" is a hard link to "bad" when `link`.
pub fn write(path: &Path, link: bool) {
    let mut bytes = header::encode(0).to_vec();
    let mut chunks = Vec::new();
    let mut add = |raw: &[u8]| {
        chunks.push(ChunkRecord {
            offset: bytes.len() as u64,
            stored_len: raw.len() as u64,
            raw_len: raw.len() as u64,
            codec: Codec::Stored,
            digest: *blake3::hash(raw).as_bytes(),
            subtree_at: None,
        });
        bytes.extend_from_slice(raw);
        chunks.len() as u64 - 1
    };
    let shared = [content("bad"), content("good")].concat();
    let c0 = add(&shared);
    let split = content("split-good");
    let split_chunks = |add: &mut dyn FnMut(&[u8]) -> u64| {
        let mut ids = Vec::new();
        for piece in split.chunks(1024) {
            ids.push(add(piece));
        }
        (ids[0], ids[ids.len() - 1])
    };
    let (b0, b1) = split_chunks(&mut add);
    let (g0, g1) = split_chunks(&mut add);
    let big = content(BIG);
    let mut big_ids = Vec::new();
    for piece in big.chunks(1 << 20) {
        big_ids.push(add(piece));
    }
    let file = |path: &str, size: usize, loc: Option<(u64, u64, u64)>, digest: &[u8]| Entry {
        size: size as u64,
        location: loc.map(|(first_chunk, last_chunk, chunk_offset)| DataLocation {
            first_chunk,
            last_chunk,
            chunk_offset,
            base: None,
        }),
        digest: Some(*blake3::hash(digest).as_bytes()),
        mtime_ns: 1_700_000_000_000_000_000,
        ..Entry::new(path.as_bytes().to_vec(), EntryKind::File, 0o100644)
    };
    let mut lie = split.clone();
    lie[2000] ^= 1;
    let mut entries = vec![
        file("bad", 100, Some((c0, c0, 0)), b"not these bytes"),
        file("empty-bad", 0, None, b"x"),
        file("good", 100, Some((c0, c0, 100)), &content("good")),
        Entry {
            link_target: Some(b"bad".to_vec()),
            ..Entry::new(b"link-to-bad".to_vec(), EntryKind::Hardlink, 0o100644)
        },
        file("split-bad", split.len(), Some((b0, b1, 0)), &lie),
        file("split-good", split.len(), Some((g0, g1, 0)), &split),
        file(
            BIG,
            big.len(),
            Some((big_ids[0], big_ids[2], 0)),
            b"not these",
        ),
    ];
    entries.retain(|e| link || e.kind != EntryKind::Hardlink);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let blob_end = bytes.len() as u64;
    bytes.extend(index::encode(
        &[(Group::default(), &entries)],
        &chunks,
        &[],
        blob_end,
    ));
    std::fs::write(path, bytes).unwrap();
}
