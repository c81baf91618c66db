//! The bound on what unpack writes: a small archive whose entries all point into one
//! chunk (valid checksums throughout) declares far more bytes than it holds; unpack
//! and extract refuse, before writing anything, more than `--max-size` or the
//! target's free space.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use znippy_uring::testing::format::{header, index};
use znippy_uring::{
    Archive, ChunkRecord, Codec, DataLocation, Entry, EntryKind, Error, Group, MaxSize,
    UnpackOptions,
};

/// Writes an archive of one zstd chunk holding `chunk`, and `files` entries
/// `f000000`... each the whole chunk (sparse when `sparse`), with true digests.
fn amplifying(path: &Path, chunk: &[u8], files: usize, sparse: bool) {
    let mut bytes = header::encode(0).to_vec();
    let blob = zstd::bulk::compress(chunk, 3).unwrap();
    let digest = *blake3::hash(chunk).as_bytes();
    let chunks = [ChunkRecord {
        offset: bytes.len() as u64,
        stored_len: blob.len() as u64,
        raw_len: chunk.len() as u64,
        codec: Codec::Zstd,
        digest: *blake3::hash(&blob).as_bytes(), // format 2: of the blob
        subtree_at: None,
    }];
    bytes.extend_from_slice(&blob);
    let entries: Vec<Entry> = (0..files)
        .map(|i| Entry {
            size: chunk.len() as u64,
            location: Some(DataLocation {
                first_chunk: 0,
                last_chunk: 0,
                chunk_offset: 0,
                base: None,
            }),
            digest: Some(digest),
            sparse,
            ..Entry::new(format!("f{i:06}").into_bytes(), EntryKind::File, 0o100644)
        })
        .collect();
    let blob_end = bytes.len() as u64;
    bytes.extend(index::encode(
        &[(Group::default(), &entries)],
        &chunks,
        &[],
        blob_end,
    ));
    fs::write(path, bytes).unwrap();
}

fn opts(max_size: MaxSize) -> UnpackOptions {
    UnpackOptions {
        threads: 2,
        max_size,
        ..UnpackOptions::default()
    }
}

/// Files written under `dest` (none when it does not exist).
fn written(dest: &Path) -> usize {
    fs::read_dir(dest).map_or(0, |d| d.count())
}

#[test]
fn more_than_max_size_is_refused_before_anything_is_written() {
    let s = Scratch::new("bound-max");
    let a = s.path("amp.znippy");
    // 64 files of 1 MiB each, from one chunk: 64 MiB from a few kilobytes.
    amplifying(&a, &bytes(1, 1 << 20, true), 64, false);
    assert!(fs::metadata(&a).unwrap().len() < 1 << 20);
    let archive = Archive::open(&a).unwrap();
    assert_eq!(archive.file_bytes(), 64 << 20);
    let dest = s.path("dest");
    let err = (archive.unpack(&dest, &opts(MaxSize::Bytes(32 << 20)))).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { total, limit, free: false, .. }
            if total == 64 << 20 && limit == 32 << 20),
        "{err}"
    );
    assert_eq!(written(&dest), 0, "wrote before refusing");
    // What extract selects is what counts: two files fit.
    let two: [&[u8]; 2] = [b"f000001", b"f000002"];
    let r = archive.extract(&two, &dest, &opts(MaxSize::Bytes(32 << 20)));
    assert_eq!(r.unwrap().bytes, 2 << 20);
    let err = archive.extract(&two, &s.path("d2"), &opts(MaxSize::Bytes((2 << 20) - 1)));
    assert!(matches!(err, Err(Error::TooLarge { .. })), "{err:?}");
    assert_eq!(written(&s.path("d2")), 0);

    // The command line: the error names the archive, the total and the limit.
    let cli = run(&[
        os("unpack"),
        a.as_os_str(),
        os("-C"),
        s.path("d3").as_os_str(),
        os("--max-size"),
        os("32M"),
    ]);
    assert_eq!(cli.status.code(), Some(1));
    let err = String::from_utf8_lossy(&cli.stderr);
    assert!(err.contains(&*a.to_string_lossy()), "{err}");
    assert!(err.contains("67108864 bytes of files"), "{err}");
    assert!(err.contains("the limit of 33554432 bytes"), "{err}");
    assert_eq!(written(&s.path("d3")), 0);
    let d4 = s.path("d4");
    let mut extract = vec![os("extract"), a.as_os_str(), os("f000003")];
    extract.extend([os("-C"), d4.as_os_str(), os("--max-size")]);
    ok(&[&extract[..], &[os("unlimited")]].concat());
    assert_eq!(
        fs::read(s.path("d4/f000003")).unwrap(),
        bytes(1, 1 << 20, true)
    );
    let bad = run(&[&extract[..], &[os("lots")]].concat());
    assert_eq!(bad.status.code(), Some(2));

    // info shows what it unpacks to beside the archive's size.
    let info = ok(&[os("info"), a.as_os_str()]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("unpacks to:     67108864 bytes of files ("),
        "{text}"
    );
    let json = ok(&[os("info"), os("--json"), a.as_os_str()]);
    assert!(String::from_utf8_lossy(&json.stdout).contains("\"file_bytes\":67108864"));
}

#[test]
fn more_than_the_free_space_is_refused_by_default() {
    let s = Scratch::new("bound-free");
    let dest = s.path("dest/new");
    fs::create_dir_all(s.path("dest")).unwrap();
    let st = rustix::fs::statvfs(s.path("dest").as_path()).unwrap();
    let free = st.f_bavail * st.f_frsize;
    // Sparse files of zeros: even a wrongly accepted unpack would take no space.
    let chunk = vec![0u8; 64 << 20];
    let files = (free / (64 << 20) * 2 + 1) as usize;
    let a = s.path("amp.znippy");
    amplifying(&a, &chunk, files, true);
    let err = (Archive::open(&a).unwrap())
        .unpack(&dest, &opts(MaxSize::FreeSpace))
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { free: true, total, .. } if total > free),
        "{err}"
    );
    assert!(err.to_string().contains("free on its file system"), "{err}");
    // The target was created (as unpack creates it) and left empty.
    assert_eq!(written(&dest), 0);
    assert!(dest.is_dir());
    // The default of the command line is the same.
    let cli = run(&[os("unpack"), a.as_os_str(), os("-C"), dest.as_os_str()]);
    assert_eq!(cli.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("free on its file system"));
    assert_eq!(written(&dest), 0);
}
