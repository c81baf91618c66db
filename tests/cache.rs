//! The library's shared chunk cache (what `mount` serves from): reads at any offset
//! equal the packed bytes, concurrent readers of one chunk decode it once, the cache
//! stays within its size, a sequential reader gets the next chunk decoded ahead, and a
//! damaged chunk fails the files in it by name.

mod common;
#[path = "common/lying.rs"]
mod lying;

use common::*;
use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};
use znippy_uring::{Archive, ChunkCache, EntryKind, Error, PackOptions, pack};

const CHUNK: usize = 64 << 10;

fn packed(name: &str) -> (Scratch, Arc<Archive>) {
    let s = Scratch::new(name);
    let src = s.path("src");
    small_files(&src, 200);
    write(&src, "big/split.bin", &bytes(5, 10 * CHUNK + 123, false));
    let opts = PackOptions {
        chunk_size: CHUNK,
        threads: 2,
        ..PackOptions::default()
    };
    pack(&src, &s.path("a.znippy"), &opts).unwrap();
    let a = Arc::new(Archive::open(&s.path("a.znippy")).unwrap());
    (s, a)
}

#[test]
fn reads_at_any_offset_are_the_packed_bytes() {
    let (s, a) = packed("cache-offsets");
    let cache = ChunkCache::new(a.clone(), 4 * CHUNK);
    for (i, e) in a.entries().iter().enumerate() {
        if e.kind != EntryKind::File {
            continue;
        }
        let want = std::fs::read(s.path("src").join(e.display_path())).unwrap();
        let size = want.len() as u64;
        for (offset, len) in [(0, 1), (0, want.len() + 10), (size / 2, 7777), (size, 5)] {
            let mut buf = vec![0u8; len];
            let n = cache.read_at(i, offset, &mut buf).unwrap();
            let from = (offset as usize).min(want.len());
            let expect = &want[from..(from + len).min(want.len())];
            assert_eq!(&buf[..n], expect, "{} at {offset}+{len}", e.display_path());
        }
    }
    // Not a file: refused by name.
    let dir = a
        .entries()
        .iter()
        .position(|e| e.kind == EntryKind::Dir)
        .unwrap();
    let err = cache.read_at(dir, 0, &mut [0u8; 4]).unwrap_err();
    assert!(err.to_string().contains("not a file"), "{err}");
}

#[test]
fn concurrent_readers_decode_a_chunk_once_and_the_cache_stays_bounded() {
    let (_s, a) = packed("cache-bounded");
    let cache = Arc::new(ChunkCache::new(a.clone(), 2 * CHUNK));
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                barrier.wait();
                cache.chunk(3).unwrap();
            });
        }
    });
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits), (1, 15), "{stats:?}");
    let chunks = a.chunks().len() as u64;
    for id in 0..chunks {
        cache.chunk(id).unwrap();
        let held = cache.stats().bytes;
        assert!(held <= 2 * CHUNK as u64 + CHUNK as u64, "{held} bytes held");
    }
    assert!(cache.stats().evicted >= chunks - 3, "{:?}", cache.stats());
}

#[test]
fn a_sequential_reader_gets_the_next_chunk_decoded_ahead() {
    let (_s, a) = packed("cache-prefetch");
    let cache = ChunkCache::new(a.clone(), 16 * CHUNK);
    cache.chunk(0).unwrap();
    cache.chunk(1).unwrap(); // two misses in order: chunk 2 is decoded ahead
    let start = Instant::now();
    while cache.stats().prefetched == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "no prefetch");
        std::thread::sleep(Duration::from_millis(5));
    }
    cache.chunk(2).unwrap();
    let stats = cache.stats();
    assert_eq!(
        (stats.misses, stats.hits, stats.prefetched),
        (2, 1, 1),
        "{stats:?}"
    );
    // Random order: nothing ahead.
    cache.chunk(9).unwrap();
    cache.chunk(5).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(cache.stats().prefetched, 1);
}

#[test]
fn a_damaged_chunk_fails_the_files_in_it_by_name() {
    let (s, a) = packed("cache-damage");
    let rec = a.chunks()[0].clone();
    let path = s.path("a.znippy");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(rec.offset + 3) as usize] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let a = Arc::new(Archive::open(&path).unwrap());
    let cache = ChunkCache::new(a.clone(), 4 * CHUNK);
    let (i, e) = (a.entries().iter().enumerate())
        .find(|(_, e)| e.location.is_some_and(|l| l.first_chunk == 0))
        .unwrap();
    match cache.read_at(i, 0, &mut [0u8; 16]) {
        Err(Error::Damaged { damaged, .. }) => {
            assert_eq!(damaged[0].0, e.display_path());
            assert!(damaged[0].1.contains("chunk 0"), "{damaged:?}");
        }
        other => panic!("expected damage, got {other:?}"),
    }
    // Another chunk still reads.
    let last = a.chunks().len() as u64 - 1;
    assert!(cache.chunk(last).is_ok());
}

/// The damaged file names in `e`, which must be [`Error::Damaged`].
fn damaged_names(e: Error) -> Vec<String> {
    match e {
        Error::Damaged { damaged, .. } => damaged.into_iter().map(|(p, _)| p).collect(),
        other => panic!("not a damage report: {other}"),
    }
}

#[test]
fn a_file_that_fails_its_digest_is_never_served_where_unpack_refuses_it() {
    let s = Scratch::new("cache-lying");
    let path = s.path("lying.znippy");
    // Every checksum of the archive holds; only the whole-file digests lie. Unpack
    // names every damaged file, and the hard link to one (which it does not make).
    lying::write(&path, true);
    let err = Archive::open(&path)
        .unwrap()
        .unpack(&s.path("out"), &znippy_uring::UnpackOptions::default())
        .unwrap_err();
    let refused = damaged_names(err);
    for (name, true_digest) in lying::FILES {
        let listed = refused.iter().any(|r| r == name);
        assert!(listed != true_digest, "{name}: {refused:?}");
        // A damaged file is never written: absent, or emptied.
        let written = fs::metadata(s.path("out").join(name)).map_or(0, |m| m.len());
        assert_eq!(
            written > 0,
            true_digest && !lying::content(name).is_empty(),
            "{name}"
        );
    }
    let archive = Arc::new(Archive::open(&path).unwrap());
    let cache = ChunkCache::new(archive.clone(), 1 << 20);
    for (name, true_digest) in lying::FILES {
        let i = archive.find(name.as_bytes()).unwrap();
        let mut buf = vec![0u8; 4096];
        match cache.read_at(i, 0, &mut buf) {
            Ok(n) => {
                assert!(true_digest, "{name}: served although its digest fails");
                assert_eq!(buf[..n], lying::content(name), "{name}");
            }
            Err(e) => {
                assert!(!true_digest, "{name}: {e}");
                // A hard link fails as the file it names.
                let file = if name == "link-to-bad" { "bad" } else { name };
                assert_eq!(damaged_names(e), [file], "{name}");
            }
        }
    }
    // A file over several chunks, read piece by piece: the read that completes it
    // fails, and every read after it.
    let cache = ChunkCache::new(archive.clone(), 1 << 20);
    let split = archive.find(b"split-bad").unwrap();
    let mut buf = vec![0u8; 1024];
    assert_eq!(cache.read_at(split, 1024, &mut buf).unwrap(), 1024);
    assert_eq!(cache.read_at(split, 0, &mut buf).unwrap(), 1024);
    assert_eq!(buf, lying::content("split-bad")[..1024]);
    assert!(cache.read_at(split, 2048, &mut buf).is_err());
    assert!(cache.read_at(split, 0, &mut buf).is_err());
    let good = archive.find(b"split-good").unwrap();
    for at in [2048, 0, 1024, 0] {
        assert!(
            cache.read_at(good, at, &mut buf).is_ok(),
            "split-good at {at}"
        );
    }
}

#[test]
fn a_stored_piece_whose_subtree_offset_is_another_place_is_served_by_no_reader() {
    use znippy_uring::testing::format::index;
    let s = Scratch::new("cache-misplaced");
    let src = s.path("src");
    let data = bytes(9, 300_000, false); // five stored pieces of 64 KiB
    write(&src, "a.bin", &data);
    let good = s.path("good.znippy");
    let opts = PackOptions {
        chunk_size: 64 << 10,
        ..PackOptions::default()
    };
    pack(&src, &good, &opts).unwrap();
    // Swap the records of the file's second and third pieces: each record still
    // matches its blob, checked as the subtree at its own offset, but the file now
    // says its bytes at 65536 are those from 131072.
    let file = fs::read(&good).unwrap();
    let idx = index::read(file.len() as u64, |off, len| {
        Ok(file[off as usize..off as usize + len].to_vec())
    })
    .unwrap();
    let mut chunks = idx.chunks.clone();
    assert_eq!(chunks[1].subtree_at, Some(65536), "{chunks:?}");
    chunks.swap(1, 2);
    let entries = idx.entries();
    let groups: Vec<_> = (idx.groups.iter())
        .map(|(g, r)| (g.clone(), &entries[r.clone()]))
        .collect();
    let mut out = file[..idx.blob_end as usize].to_vec();
    out.extend(index::encode(&groups, &chunks, &idx.bases, idx.blob_end));
    let bad = s.path("swapped.znippy");
    fs::write(&bad, out).unwrap();
    let why = "chunk 1: its digest is of the bytes at offset 131072 of a file, but it holds those at offset 65536";

    let archive = Arc::new(Archive::open(&bad).unwrap());
    let cache = ChunkCache::new(archive.clone(), 1 << 20);
    let i = archive.find(b"a.bin").unwrap();
    let mut buf = vec![0u8; 4096];
    // The first piece is where it says; the second is refused before a byte of it.
    assert_eq!(cache.read_at(i, 0, &mut buf).unwrap(), 4096);
    let err = cache.read_at(i, 70_000, &mut buf).unwrap_err().to_string();
    assert!(err.contains(why), "{err}");
    // cat writes nothing of the misplaced piece; verify and unpack name the file.
    let cat = run(&[os("cat"), bad.as_os_str(), os("a.bin")]);
    assert_eq!(cat.status.code(), Some(1));
    assert!(cat.stdout.len() <= 65536, "{}", cat.stdout.len());
    assert!(String::from_utf8_lossy(&cat.stderr).contains(why));
    for cmd in ["verify", "unpack"] {
        let dest = s.path(&format!("out-{cmd}"));
        let mut args = vec![os(cmd), bad.as_os_str()];
        if cmd == "unpack" {
            args.extend([os("-C"), dest.as_os_str()]);
        }
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}");
        assert!(err.contains(&format!("a.bin: {why}")), "{cmd}: {err}");
    }
    assert!(
        !s.path("out-unpack/a.bin").exists()
            || fs::read(s.path("out-unpack/a.bin")).unwrap().is_empty()
    );
}
