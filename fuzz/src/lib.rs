//! What the reader fuzz target does with each input, and its structure-aware
//! mutator. Shared with the regression tests, which replay saved inputs through
//! [`exercise`].

use std::fs;
use std::path::{Path, PathBuf};
use znippy_uring::testing::format::{header, index};
use znippy_uring::{
    Archive, ChunkCache, ChunkRecord, Codec, DataLocation, Entry, EntryKind, Group, UnpackOptions,
};

/// A per-process, per-thread scratch directory, on tmpfs where possible.
pub fn scratch() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    base.join(format!("znippy-fuzz-{}-{thread}", std::process::id()))
}

/// Opens `data` as an archive and, if it opens, lists, verifies, reads every file and
/// unpacks it. Panics only on a broken guarantee: a panic inside the library, a read
/// whose length differs from the entry's size, or anything written outside the
/// target directory.
pub fn exercise(data: &[u8]) {
    let dir = scratch();
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join("a.znippy");
    fs::write(&path, data).expect("write input");
    if let Ok(archive) = Archive::open(&path) {
        let _ = archive.verify(1);
        // Plain `list`'s path decodes less of the index, and must agree.
        let paths = Archive::paths(&path).expect("Archive::paths refuses what open takes");
        assert!(
            paths
                .iter()
                .eq(archive.entries().iter().map(|e| &e.path[..])),
            "Archive::paths and entries disagree"
        );
        for e in archive.entries() {
            let mut out = Vec::new();
            let read = archive.read_file(&e.path, &mut out);
            // `cat`'s lookup path decodes less of the index, and must agree.
            let mut cat = Vec::new();
            let by_cat = Archive::cat(&path, &e.path, &mut cat);
            assert_eq!(
                (read.as_ref().ok(), &out),
                (by_cat.as_ref().ok(), &cat),
                "Archive::cat and read_file disagree"
            );
            if read.is_ok() {
                // With duplicate paths, read_file reads the entry that find() names, and
                // a hard link reads as the file it names.
                let entry_at = |p: &[u8]| archive.find(p).and_then(|i| archive.entries().get(i));
                let found = entry_at(&e.path).and_then(|f| match f.kind {
                    EntryKind::Hardlink => entry_at(f.link_target.as_deref().unwrap_or_default()),
                    _ => Some(f),
                });
                let size = found.map_or(u64::MAX, |f| f.size);
                assert_eq!(out.len() as u64, size, "read_file returned a wrong length");
            }
        }
        let opts = UnpackOptions {
            threads: 2,
            ..UnpackOptions::default()
        };
        let _ = archive.unpack(&dir.join("out"), &opts);
        // The mount's reads: any entry, any offset, through the shared cache; never
        // more than the file holds.
        let archive = std::sync::Arc::new(archive);
        let cache = ChunkCache::new(archive.clone(), 1 << 20);
        let mut buf = [0u8; 4096];
        for (i, e) in archive.entries().iter().enumerate() {
            for offset in [0, e.size / 2, e.size.saturating_sub(1)] {
                if let Ok(n) = cache.read_at(i, offset, &mut buf) {
                    let left = e.size.saturating_sub(offset);
                    assert!(
                        n as u64 <= left || e.kind == EntryKind::Hardlink,
                        "read past the end"
                    );
                }
            }
        }
    }
    // Nothing may appear beside the archive and the target directory.
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("list scratch")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| n == "a.znippy" || n == "out"),
        "unpack wrote outside its target: {names:?}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A tiny deterministic generator for the mutator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

const HOSTILE_PATHS: &[&[u8]] = &[
    b"../escape",
    b"/tmp/znippy-fuzz-absolute",
    b"a/../../escape",
    b"",
    b"x/./y",
    b"dir/",
    b"link/through",
    b"nul\0byte",
];

/// Decodes a valid archive, lets `edit` change its entries and chunk records, and
/// encodes the index again (one group) with valid checksums. `None` if `data` is not a
/// valid archive.
pub fn rewrite_index(
    data: &[u8],
    edit: impl FnOnce(&mut Vec<Entry>, &mut Vec<ChunkRecord>),
) -> Option<Vec<u8>> {
    let idx = index::read(data.len() as u64, |off, len| {
        usize::try_from(off)
            .ok()
            .and_then(|start| data.get(start..start.checked_add(len)?))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
    })
    .ok()?;
    let mut entries: Vec<Entry> = idx.entries().to_vec();
    let mut chunks: Vec<ChunkRecord> = idx.chunks.clone();
    edit(&mut entries, &mut chunks);
    let blob_end = idx.blob_end;
    let mut out = data.get(..usize::try_from(blob_end).ok()?)?.to_vec();
    if out.len() < header::HEADER_LEN as usize {
        return None;
    }
    let groups = [(Group::default(), entries.as_slice())];
    // The manifest states the header's version, whose rule the chunk digests follow.
    out.extend(index::encode_as(
        idx.version,
        &groups,
        &chunks,
        &[],
        blob_end,
    ));
    Some(out)
}

/// Hostile extended attribute names: privileged namespaces, empty, unterminated, and
/// one too long for the u16 length of the encoding (which then decodes as damage).
const HOSTILE_XATTRS: &[&[u8]] = &[
    b"security.capability",
    b"trusted.overlay.opaque",
    b"system.posix_acl_access",
    b"",
    b"user.",
    b"user.nul\0inside",
];

/// Rewrites one or a few index fields of a valid archive (see [`rewrite_index`]), so
/// the mutation reaches validation and the read paths instead of stopping at a
/// checksum. `None` if `data` is not a valid archive.
pub fn mutate_index(data: &[u8], seed: u32) -> Option<Vec<u8>> {
    rewrite_index(data, |entries, chunks| mutate(entries, chunks, seed))
}

fn mutate(entries: &mut Vec<Entry>, chunks: &mut [ChunkRecord], seed: u32) {
    let mut rng = Rng(u64::from(seed) | 1 << 40);
    let n = entries.len() as u64;
    let c = chunks.len() as u64;
    let small = |rng: &mut Rng| match rng.below(6) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => rng.below(1 << 20),
        4 => 1 << 26,
        _ => rng.next(),
    };
    for _ in 0..1 + rng.below(3) {
        match rng.below(18) {
            0 if n > 0 => {
                let i = rng.below(n) as usize;
                entries[i].path =
                    HOSTILE_PATHS[rng.below(HOSTILE_PATHS.len() as u64) as usize].to_vec();
            }
            1 if n > 1 => {
                let (i, j) = (rng.below(n) as usize, rng.below(n) as usize);
                entries[i].path = entries[j].path.clone();
            }
            2 if n > 0 => {
                let i = rng.below(n) as usize;
                entries[i].size = small(&mut rng);
            }
            3 if n > 0 => {
                let i = rng.below(n) as usize;
                entries[i].location = Some(DataLocation {
                    first_chunk: rng.below(c + 2),
                    last_chunk: rng.below(c + 2),
                    chunk_offset: small(&mut rng),
                    base: None,
                });
            }
            4 if n > 0 => {
                let i = rng.below(n) as usize;
                let kinds = [
                    EntryKind::File,
                    EntryKind::Dir,
                    EntryKind::Symlink,
                    EntryKind::Hardlink,
                    EntryKind::Fifo,
                    EntryKind::CharDevice,
                    EntryKind::BlockDevice,
                ];
                entries[i].kind = kinds[rng.below(kinds.len() as u64) as usize];
            }
            5 if n > 0 => {
                let i = rng.below(n) as usize;
                if let Some(d) = entries[i].digest.as_mut() {
                    d[rng.below(32) as usize] ^= 1;
                }
            }
            6 if n > 0 => {
                let i = rng.below(n) as usize;
                let j = rng.below(n) as usize;
                let target = match rng.below(3) {
                    0 => b"/".to_vec(),
                    1 => HOSTILE_PATHS[rng.below(HOSTILE_PATHS.len() as u64) as usize].to_vec(),
                    _ => entries[j].path.clone(),
                };
                entries[i].link_target = Some(target);
                entries[i].kind = if rng.below(2) == 0 {
                    EntryKind::Symlink
                } else {
                    EntryKind::Hardlink
                };
                entries[i].size = 0;
                entries[i].location = None;
            }
            7 if n > 0 => {
                let i = rng.below(n) as usize;
                let e = entries.remove(i);
                let at = rng.below(entries.len() as u64 + 1) as usize;
                entries.insert(at, e);
            }
            8 if c > 0 => {
                let i = rng.below(c) as usize;
                chunks[i].offset = small(&mut rng);
            }
            9 if c > 0 => {
                let i = rng.below(c) as usize;
                chunks[i].stored_len = small(&mut rng);
            }
            10 if c > 0 => {
                let i = rng.below(c) as usize;
                chunks[i].raw_len = small(&mut rng);
            }
            11 if c > 0 => {
                let i = rng.below(c) as usize;
                chunks[i].codec = if chunks[i].codec == Codec::Zstd {
                    Codec::Stored
                } else {
                    Codec::Zstd
                };
            }
            12 if c > 0 => {
                let i = rng.below(c) as usize;
                chunks[i].digest[0] ^= 0x80;
            }
            13 if n > 0 => {
                let i = rng.below(n) as usize;
                let mut name =
                    HOSTILE_XATTRS[rng.below(HOSTILE_XATTRS.len() as u64) as usize].to_vec();
                if rng.below(8) == 0 {
                    name = vec![b'u'; 70_000]; // wraps the u16 length: damage
                }
                let value = vec![rng.next() as u8; rng.below(1 << 17) as usize];
                entries[i].xattrs.push((name, value));
            }
            14 if n > 0 => {
                let i = rng.below(n) as usize;
                entries[i].rdev = Some(rng.next());
                entries[i].sparse = !entries[i].sparse;
            }
            15 if n > 0 => {
                let i = rng.below(n) as usize;
                let names = ["root", "", "no-such-user-znippy", "nobody\0x", "ü"];
                let pick =
                    |rng: &mut Rng| Some(names[rng.below(names.len() as u64) as usize].into());
                entries[i].user = pick(&mut rng);
                entries[i].group = pick(&mut rng);
                entries[i].uid = rng.next() as u32;
                entries[i].gid = rng.next() as u32;
            }
            _ if n > 0 => {
                let i = rng.below(n) as usize;
                entries[i].mode = rng.next() as u32;
                entries[i].mtime_ns = rng.next() as i64;
            }
            _ => {}
        }
    }
}
