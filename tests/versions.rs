//! Archives of earlier format versions keep reading. `tests/data/v1-plain.znippy` was
//! written by the format-1 build (85c75a1) from [`v1_tree`]: zstd chunks, stored
//! chunks (solid and a split file), a text file split over zstd chunks, an empty file
//! and a symlink. It must list, verify and unpack byte-exact, and a version-2 archive
//! built on it (`pack --since`) must read its files from it.
//!
//! To make the fixture again (only ever with a format-1 build):
//! `ZNIPPY_V1_TREE=/tmp/v1-tree cargo test --test versions -- --ignored` writes the
//! tree, then `znippy-uring pack /tmp/v1-tree -o v1-plain.znippy --chunk-size 64K`.
//!
//! `tests/data/v2-plain.znippy` is the same tree packed the same way by the format-2
//! build (e9d0f16): its index streams are uncompressed Arrow IPC.
//! `tests/data/v3-plain.znippy` is the same tree packed the same way by the format-3
//! build (9654a31): every chunk digest a plain BLAKE3 of its blob, no `subtree_at`.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};
use znippy_uring::Codec;

/// The fixture, as committed.
fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-plain.znippy")
}

/// The version-2 fixture, as committed.
fn fixture_v2() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v2-plain.znippy")
}

/// The version-3 fixture, as committed.
fn fixture_v3() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v3-plain.znippy")
}

/// The mtime every file of the tree gets: `pack --since` then sees the same size and
/// mtime, hashes the file, and reuses the fixture's data when the bytes match.
const MTIME: u64 = 1_700_000_000;

/// The files of the tree the fixture holds: (path, bytes).
fn v1_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("notes/a.txt", bytes(1, 700, true)),
        ("notes/b.md", bytes(2, 3000, true)),
        // 150 KiB of text over three 64 KiB zstd chunks.
        ("big.log", bytes(3, 150 * 1024, true)),
        // 80 KiB of noise: two stored chunks of its own.
        ("noise.bin", bytes(4, 80 * 1024, false)),
        // On the skip list: a stored solid chunk.
        ("pic.jpg", bytes(5, 3000, false)),
        ("empty", Vec::new()),
    ]
}

/// Writes the fixture's tree under `root`, every file with mtime [`MTIME`].
fn v1_tree(root: &Path) {
    for (rel, data) in v1_files() {
        write(root, rel, &data);
        let f = fs::File::options()
            .write(true)
            .open(root.join(rel))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME))
            .unwrap();
    }
    std::os::unix::fs::symlink("notes/a.txt", root.join("link")).unwrap();
}

#[test]
#[ignore = "writes the fixture's tree where ZNIPPY_V1_TREE says, for a format-1 build to pack"]
fn write_the_v1_fixture_tree() {
    let root = std::env::var_os("ZNIPPY_V1_TREE").expect("ZNIPPY_V1_TREE");
    v1_tree(Path::new(&root));
}

/// Unpacks `archive` into `dest` through the command line and checks every file of
/// [`v1_files`] (with `changed` in place of theirs, and `added` besides) byte for byte,
/// and the symlink.
fn unpacks_to(archive: &Path, dest: &Path, changed: &[(&str, Vec<u8>)]) {
    ok(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("-q"),
    ]);
    let mut expected = v1_files();
    for (rel, data) in changed {
        match expected.iter_mut().find(|(r, _)| r == rel) {
            Some(e) => e.1 = data.clone(),
            None => expected.push((rel, data.clone())),
        }
    }
    for (rel, data) in &expected {
        assert!(fs::read(dest.join(rel)).unwrap() == *data, "{rel} differs");
    }
    assert_eq!(
        fs::read_link(dest.join("link")).unwrap(),
        Path::new("notes/a.txt")
    );
    let files = snapshot(dest)
        .iter()
        .filter(|(_, d)| d.starts_with("file "))
        .count();
    assert_eq!(files, expected.len(), "files besides those expected");
}

#[test]
fn the_v1_fixture_lists_verifies_and_unpacks_byte_exact() {
    let a = znippy_uring::Archive::open(&fixture()).unwrap();
    assert_eq!(a.format_version(), 1);
    // What it is meant to cover: zstd and stored chunks, a file split over zstd
    // chunks and one over stored chunks.
    let codecs: Vec<Codec> = a.chunks().iter().map(|c| c.codec).collect();
    assert!(codecs.contains(&Codec::Zstd) && codecs.contains(&Codec::Stored));
    for (split, codec) in [("big.log", Codec::Zstd), ("noise.bin", Codec::Stored)] {
        let e = a
            .entries()
            .iter()
            .find(|e| e.path == split.as_bytes())
            .unwrap();
        let loc = e.location.unwrap();
        assert!(loc.last_chunk > loc.first_chunk, "{split} is not split");
        assert_eq!(a.chunks()[loc.first_chunk as usize].codec, codec, "{split}");
    }
    // The chunk digests are those of format 1: of the uncompressed bytes.
    let zstd = a.chunks().iter().find(|c| c.codec == Codec::Zstd).unwrap();
    let blob = &fs::read(fixture()).unwrap()[zstd.offset as usize..][..zstd.stored_len as usize];
    assert_ne!(*blake3::hash(blob).as_bytes(), zstd.digest);
    drop(a);

    let list = ok(&[os("list"), fixture().as_os_str()]);
    let mut names: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    let mut expected: Vec<String> = v1_files().iter().map(|f| f.0.to_string()).collect();
    expected.extend(["link".to_string(), "notes".to_string()]);
    expected.sort();
    assert_eq!(names, expected);
    let info = ok(&[os("info"), fixture().as_os_str()]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("format version: 1"), "{info}");
    ok(&[os("verify"), fixture().as_os_str(), os("-q")]);
    let s = Scratch::new("v1-fixture");
    unpacks_to(&fixture(), &s.path("out"), &[]);
    let mut out = Vec::new();
    znippy_uring::Archive::open(&fixture())
        .unwrap()
        .read_file(b"big.log", &mut out)
        .unwrap();
    assert!(out == bytes(3, 150 * 1024, true));
}

#[test]
fn a_current_archive_built_on_the_v1_fixture_reads_its_files_from_it() {
    incremental_on(&fixture(), "v1");
}

#[test]
fn a_current_archive_built_on_the_v2_fixture_reads_its_files_from_it() {
    incremental_on(&fixture_v2(), "v2");
}

#[test]
fn a_current_archive_built_on_the_v3_fixture_reads_its_files_from_it() {
    incremental_on(&fixture_v3(), "v3");
}

/// Packs the fixture's tree with two files changed as an incremental archive (of the
/// current version) on a copy of `fixture`, and reads, verifies and unpacks it; damage
/// in the base is then found there, by the base's own rule.
fn incremental_on(fixture: &Path, tag: &str) {
    let s = Scratch::new(&format!("current-on-{tag}"));
    let base = s.path(&format!("{tag}.znippy"));
    fs::copy(fixture, &base).unwrap();
    let src = s.path("src");
    v1_tree(&src);
    let changed = [
        ("notes/b.md", bytes(20, 3000, true)),
        ("added.txt", bytes(21, 100_000, true)),
    ];
    for (rel, data) in &changed {
        write(&src, rel, data);
    }
    let inc = s.path("incremental.znippy");
    let out = ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        inc.as_os_str(),
        os("--since"),
        base.as_os_str(),
        os("--chunk-size"),
        os("64K"),
        os("--json"),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // a.txt, big.log, noise.bin, pic.jpg: same size and mtime, hashed, reused.
    assert_eq!(report["reused_files"].as_u64(), Some(4), "{report}");
    let a = znippy_uring::Archive::open(&inc).unwrap();
    assert_eq!(
        (a.format_version(), a.bases().len()),
        (znippy_uring::FORMAT_VERSION, 1)
    );
    a.require_bases().unwrap();
    let v = a.verify(2).unwrap();
    assert!(v.is_ok() && v.damaged_chunks.is_empty(), "{v:?}");
    drop(a);
    ok(&[os("verify"), inc.as_os_str(), os("-q")]);
    unpacks_to(&inc, &s.path("out"), &changed);
    let cat = ok(&[os("cat"), inc.as_os_str(), os("noise.bin")]);
    assert!(cat.stdout == bytes(4, 80 * 1024, false));

    // Damage in the older base is found there, by the base's own rule.
    let b = znippy_uring::Archive::open(&base).unwrap();
    let e = b.entries().iter().find(|e| e.path == b"big.log").unwrap();
    let chunk = b.chunks()[e.location.unwrap().first_chunk as usize].clone();
    drop(b);
    let mut bytes = fs::read(&base).unwrap();
    bytes[(chunk.offset + chunk.stored_len / 2) as usize] ^= 0x40;
    fs::write(&base, bytes).unwrap();
    let v = run(&[os("verify"), inc.as_os_str()]);
    assert_eq!(v.status.code(), Some(1));
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(err.contains("DAMAGED big.log"), "{err}");
    assert!(
        !err.contains("added.txt") && !err.contains("noise.bin"),
        "{err}"
    );
}

/// BLAKE3's chaining value of `bytes` as the subtree at input offset `at`.
fn subtree(bytes: &[u8], at: u64) -> [u8; 32] {
    use blake3::hazmat::HasherExt;
    let mut h = blake3::Hasher::new();
    h.set_input_offset(at);
    h.update(bytes);
    h.finalize_non_root()
}

#[test]
fn a_current_archive_has_chunk_digests_of_its_blobs() {
    let s = Scratch::new("v4-digests");
    let src = s.path("src");
    v1_tree(&src);
    let archive = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("--chunk-size"),
        os("64K"),
    ]);
    let a = znippy_uring::Archive::open(&archive).unwrap();
    assert_eq!(a.format_version(), 4);
    let file = fs::read(&archive).unwrap();
    assert_eq!(file[8..12], 4u32.to_le_bytes());
    let mut codecs = Vec::new();
    for c in a.chunks() {
        let blob = &file[c.offset as usize..][..c.stored_len as usize];
        let expected = match c.subtree_at {
            None => *blake3::hash(blob).as_bytes(),
            Some(at) => subtree(blob, at),
        };
        assert_eq!(expected, c.digest, "{c:?}");
        codecs.push(c.codec);
    }
    assert!(codecs.contains(&Codec::Zstd) && codecs.contains(&Codec::Stored));
    // The split stored file's chunks carry their pieces' offsets in the file (so the
    // writer hashed them once); every other chunk's digest is a plain BLAKE3.
    let noise = a.entries().iter().find(|e| e.path == b"noise.bin").unwrap();
    let loc = noise.location.unwrap();
    let subtrees: Vec<(u64, Option<u64>)> = a
        .chunks()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.subtree_at.is_some())
        .map(|(i, c)| (i as u64, c.subtree_at))
        .collect();
    assert_eq!(
        subtrees,
        [
            (loc.first_chunk, Some(0)),
            (loc.first_chunk + 1, Some(65536))
        ]
    );
    // File digests stay plain BLAKE3 of the file, as b3sum prints it.
    for (rel, data) in v1_files() {
        let e = a
            .entries()
            .iter()
            .find(|e| e.path == rel.as_bytes())
            .unwrap();
        assert_eq!(e.digest, Some(*blake3::hash(&data).as_bytes()), "{rel}");
    }
    drop(a);
    unpacks_to(&archive, &s.path("out"), &[]);
}

#[test]
fn a_header_whose_version_the_manifest_does_not_state_is_refused() {
    let s = Scratch::new("v-disagree");
    let src = s.path("src");
    write(&src, "a.txt", &bytes(1, 5000, true));
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    let mut file = fs::read(&archive).unwrap();
    file[8] = 3; // the header now says version 3; the manifest still says 4
    fs::write(&archive, &file).unwrap();
    let err = znippy_uring::Archive::open(&archive)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the header says format version 3, the manifest 4"),
        "{err}"
    );
    file[8] = 5;
    fs::write(&archive, &file).unwrap();
    let err = znippy_uring::Archive::open(&archive)
        .unwrap_err()
        .to_string();
    assert!(err.contains("format version 5 is not supported"), "{err}");
}

/// A fixture of format `version` (2 or 3): every chunk digest the plain BLAKE3 of its
/// blob (the split stored file's too, with no `subtree_at`), and it is described,
/// verified, unpacked and read by `cat` (`rel`, whose bytes are `expected`) exactly.
fn plain_digest_fixture_reads(fixture: &Path, version: u32, rel: &str, expected: &[u8]) {
    let a = znippy_uring::Archive::open(fixture).unwrap();
    assert_eq!(a.format_version(), version);
    let file = fs::read(fixture).unwrap();
    assert!(a.chunks().iter().any(|c| c.codec == Codec::Stored));
    for c in a.chunks() {
        assert_eq!(c.subtree_at, None);
        let blob = &file[c.offset as usize..][..c.stored_len as usize];
        assert_eq!(*blake3::hash(blob).as_bytes(), c.digest, "{c:?}");
    }
    drop(a);
    let info = ok(&[os("info"), fixture.as_os_str()]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains(&format!("format version: {version}")),
        "{info}"
    );
    ok(&[os("verify"), fixture.as_os_str(), os("-q")]);
    let s = Scratch::new(&format!("v{version}-fixture"));
    unpacks_to(fixture, &s.path("out"), &[]);
    let cat = ok(&[os("cat"), fixture.as_os_str(), os(rel)]);
    assert!(cat.stdout == expected, "{rel}");
}

#[test]
fn the_v2_fixture_lists_verifies_and_unpacks_byte_exact() {
    plain_digest_fixture_reads(&fixture_v2(), 2, "big.log", &bytes(3, 150 * 1024, true));
}

#[test]
fn the_v3_fixture_lists_verifies_and_unpacks_byte_exact() {
    plain_digest_fixture_reads(&fixture_v3(), 3, "noise.bin", &bytes(4, 80 * 1024, false));
}
