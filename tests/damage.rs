//! Damaged and bad input: flipped blob bytes found and named, truncated, garbage and
//! corrupted archives rejected cleanly, failed packs leaving nothing behind.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use znippy_uring::{Archive, Error, PackOptions, UnpackOptions, pack};

fn packed(s: &Scratch) -> std::path::PathBuf {
    let src = s.path("src");
    write(&src, "big.txt", &bytes(1, 300_000, true));
    write(&src, "small/a.txt", &bytes(2, 5_000, true));
    write(&src, "small/b.txt", &bytes(3, 7_000, true));
    write(&src, "other.bin", &bytes(4, 80_000, false));
    let out = s.path("a.znippy");
    let opts = PackOptions {
        chunk_size: 64 << 10,
        ..PackOptions::default()
    };
    pack(&src, &out, &opts).unwrap();
    out
}

fn flip(path: &std::path::Path, offset: u64) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).unwrap();
}

#[test]
fn flipped_blob_byte_is_found_by_verify_cat_and_unpack_and_named() {
    let s = Scratch::new("flip");
    let out = packed(&s);
    let a = Archive::open(&out).unwrap();
    let e = a
        .entries()
        .iter()
        .find(|e| e.path == b"small/b.txt")
        .unwrap();
    let chunk = a.chunks()[e.location.unwrap().first_chunk as usize].clone();
    drop(a);
    flip(&out, chunk.offset + chunk.stored_len / 2);

    let v = run(&[os("verify"), out.as_os_str()]);
    assert_eq!(v.status.code(), Some(1));
    let err = String::from_utf8_lossy(&v.stderr);
    // Both small files share the damaged solid chunk; the others are fine.
    assert!(
        err.contains("DAMAGED small/a.txt") && err.contains("DAMAGED small/b.txt"),
        "{err}"
    );
    assert!(
        !err.contains("big.txt") && !err.contains("other.bin"),
        "{err}"
    );

    let c = run(&[os("cat"), out.as_os_str(), os("small/b.txt")]);
    assert_eq!(c.status.code(), Some(1));
    assert!(c.stdout.is_empty(), "damaged bytes were written");
    assert!(String::from_utf8_lossy(&c.stderr).contains("small/b.txt"));
    let good = ok(&[os("cat"), out.as_os_str(), os("big.txt")]);
    assert_eq!(good.stdout, bytes(1, 300_000, true));

    let dest = s.path("dest");
    let u = Archive::open(&out)
        .unwrap()
        .unpack(&dest, &UnpackOptions::default());
    match u {
        Err(Error::Damaged { damaged, .. }) => {
            let names: Vec<&str> = damaged.iter().map(|d| d.0.as_str()).collect();
            assert_eq!(names, vec!["small/a.txt", "small/b.txt"]);
        }
        other => panic!("expected damage, got {other:?}"),
    }
    assert!(!dest.join("small/b.txt").exists(), "damaged file written");
    assert_eq!(
        fs::read(dest.join("big.txt")).unwrap(),
        bytes(1, 300_000, true)
    );
}

#[test]
fn flipped_byte_in_a_split_file_is_caught_and_the_file_never_named() {
    let s = Scratch::new("flipbig");
    let out = packed(&s);
    let a = Archive::open(&out).unwrap();
    let e = a.entries().iter().find(|e| e.path == b"big.txt").unwrap();
    let loc = e.location.unwrap();
    assert!(loc.last_chunk > loc.first_chunk);
    let chunk = a.chunks()[loc.first_chunk as usize + 1].clone();
    drop(a);
    flip(&out, chunk.offset + 3);
    let dest = s.path("dest");
    let u = run(&[os("unpack"), out.as_os_str(), os("-C"), dest.as_os_str()]);
    assert_eq!(u.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&u.stderr).contains("big.txt"));
    // Never named at all (it was written in the staging directory, which is gone).
    assert!(
        !dest.join("big.txt").exists(),
        "damaged split file left behind"
    );
    let names: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().starts_with(".znippy")),
        "{names:?}"
    );
    assert_eq!(
        fs::read(dest.join("small/a.txt")).unwrap(),
        bytes(2, 5_000, true)
    );
}

#[test]
fn truncated_archives_are_rejected_cleanly() {
    let s = Scratch::new("trunc");
    let out = packed(&s);
    let full = fs::read(&out).unwrap();
    let cut = s.path("cut.znippy");
    for len in [
        0,
        1,
        15,
        16,
        31,
        32,
        100,
        full.len() / 2,
        full.len() - 17,
        full.len() - 16,
        full.len() - 1,
    ] {
        fs::write(&cut, &full[..len]).unwrap();
        let r = run(&[os("list"), cut.as_os_str()]);
        assert_eq!(r.status.code(), Some(1), "length {len}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.starts_with("znippy-uring: error: ") && err.contains("cut.znippy"),
            "length {len}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "length {len}: {err}");
    }
}

#[test]
fn garbage_is_not_an_archive() {
    let s = Scratch::new("garbage");
    let g = s.path("g.znippy");
    fs::write(&g, bytes(9, 100_000, false)).unwrap();
    assert!(matches!(Archive::open(&g), Err(Error::NotArchive { .. })));
    // Right header and footer magic around garbage, with a huge manifest offset.
    let mut v = b"ZNPYURNG\x01\0\0\0\0\0\0\0".to_vec();
    v.extend(bytes(10, 5_000, false));
    v.extend(b"ZNPYMIDX");
    v.extend(u64::MAX.to_le_bytes());
    fs::write(&g, &v).unwrap();
    assert!(matches!(Archive::open(&g), Err(Error::Corrupt { .. })));
    let n = v.len();
    v[n - 8..].copy_from_slice(&20u64.to_le_bytes());
    fs::write(&g, &v).unwrap();
    assert!(matches!(Archive::open(&g), Err(Error::Corrupt { .. })));
}

#[test]
fn every_single_byte_flip_in_the_index_is_rejected_at_open() {
    let s = Scratch::new("indexflip");
    let out = packed(&s);
    let original = fs::read(&out).unwrap();
    let blob_end = Archive::open(&out)
        .unwrap()
        .chunks()
        .iter()
        .map(|c| c.offset + c.stored_len)
        .max()
        .unwrap();
    let mutated = s.path("m.znippy");
    // Sub-indexes, manifest and footer are all covered by checksums or bounds checks.
    for at in blob_end as usize..original.len() {
        let mut v = original.clone();
        v[at] ^= 0x5a;
        fs::write(&mutated, &v).unwrap();
        match Archive::open(&mutated) {
            Err(Error::Corrupt { .. }) => {}
            Err(e) => panic!("flip at {at}: unexpected error kind {e}"),
            Ok(_) => panic!("flip at {at} of {} went unnoticed", original.len()),
        }
        // `cat` and plain `list` decode less of the index, and check all of it.
        match Archive::cat(&mutated, b"small/a.txt", &mut Vec::new()) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, mutated),
            Err(e) => panic!("cat, flip at {at}: unexpected error kind {e}"),
            Ok(_) => panic!("cat, flip at {at} of {} went unnoticed", original.len()),
        }
        match Archive::paths(&mutated) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, mutated),
            Err(e) => panic!("paths, flip at {at}: unexpected error kind {e}"),
            Ok(_) => panic!("paths, flip at {at} of {} went unnoticed", original.len()),
        }
    }
}

#[test]
fn failed_pack_leaves_no_archive_and_no_temporary_file() {
    let s = Scratch::new("failpack");
    let out = s.path("never.znippy");
    let r = run(&[
        os("pack"),
        s.path("missing").as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("missing"));
    assert!(!out.exists());

    // An unreadable input file, with --on-unreadable fail: an error naming it, and no
    // archive.
    let src = s.path("src");
    write(&src, "fine.txt", b"fine");
    write(&src, "secret.txt", b"secret");
    fs::set_permissions(
        src.join("secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    fs::set_permissions(&s.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let cmd = format!(
        "{} pack {} -o {} --on-unreadable fail",
        bin().display(),
        src.display(),
        out.display()
    );
    // Root reads anything: drop to nobody for this one.
    let r = as_unprivileged(&cmd);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("secret.txt") && err.contains("ermission denied"),
        "{err}"
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = fs::read_dir(&s.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().contains(".tmp")),
        "{leftovers:?}"
    );
}

#[test]
fn io_uring_failure_falls_back_to_portable_with_one_line_or_fails_when_forced() {
    let s = Scratch::new("fallback");
    let src = s.path("src");
    small_files(&src, 50);
    let a = s.path("a.znippy");
    let b = s.path("b.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), a.as_os_str()]);
    for fault in ["setup", "register"] {
        let r = command()
            .env("ZNIPPY_IO_FAULT", fault)
            .args([os("pack"), src.as_os_str(), os("-o"), b.as_os_str()])
            .output()
            .unwrap();
        assert!(r.status.success());
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(err.matches("io_uring unavailable").count(), 1, "{err}");
        assert!(err.contains("[portable]"), "{err}");
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        let forced = command()
            .env("ZNIPPY_IO_FAULT", fault)
            .args([
                os("pack"),
                src.as_os_str(),
                os("-o"),
                b.as_os_str(),
                os("--io"),
                os("uring"),
            ])
            .output()
            .unwrap();
        assert_eq!(forced.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&forced.stderr).contains("io_uring unavailable"));
    }
    let env = command()
        .env("ZNIPPY_IO", "portable")
        .args([os("pack"), src.as_os_str(), os("-o"), b.as_os_str()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&env.stderr).contains("[portable]"));
}

#[test]
fn every_flipped_byte_of_a_zstd_or_stored_blob_fails_its_digest_before_decoding() {
    let s = Scratch::new("flipall");
    let out = packed(&s);
    let a = Archive::open(&out).unwrap();
    let chunk_of = |path: &[u8]| {
        let e = a.entries().iter().find(|e| e.path == path).unwrap();
        e.location.unwrap().first_chunk
    };
    // The solid chunk of the small text files, and the first of other.bin's.
    let picked = [chunk_of(b"small/a.txt"), chunk_of(b"other.bin")];
    let records: Vec<_> = picked
        .iter()
        .map(|&id| a.chunks()[id as usize].clone())
        .collect();
    assert_eq!(
        records.iter().map(|c| c.codec).collect::<Vec<_>>(),
        [znippy_uring::Codec::Zstd, znippy_uring::Codec::Stored]
    );
    drop(a);
    let pristine = fs::read(&out).unwrap();
    for (id, c) in picked.iter().zip(&records) {
        // Every byte of the frame header and the first block's, then a sample.
        let offsets = (0..c.stored_len).filter(|&o| o < 64 || o % 389 == 0);
        for o in offsets {
            let mut damaged = pristine.clone();
            damaged[(c.offset + o) as usize] ^= 0x40;
            fs::write(&out, &damaged).unwrap();
            let report = Archive::open(&out).unwrap().verify(1).unwrap();
            // Found by the digest of the blob, never by zstd choking on the frame.
            let problem = format!("chunk {id}: BLAKE3 mismatch");
            assert_eq!(
                report.damaged_chunks,
                [(*id, problem)],
                "byte {o} of chunk {id}"
            );
        }
    }
}

#[test]
fn damage_in_a_base_is_named_by_the_bases_own_chunk_number() {
    let s = Scratch::new("base-chunk-number");
    let src = s.path("src");
    write(&src, "big.jpg", &bytes(1, 700_000, false)); // 11 stored chunks of 64 KiB
    write(&src, "t.txt", &bytes(2, 5000, true));
    let base = s.path("base.znippy");
    let pack = |out: &Path, since: Option<&Path>| {
        let mut args = vec![os("pack"), src.as_os_str(), os("-o"), out.as_os_str()];
        args.extend([os("--chunk-size"), os("64K"), os("-q")]);
        if let Some(b) = since {
            args.extend([os("--since"), b.as_os_str()]);
        }
        ok(&args);
    };
    pack(&base, None);
    write(&src, "t.txt", &bytes(3, 5000, true));
    let g1 = s.path("g1.znippy");
    pack(&g1, Some(&base));
    let a = znippy_uring::Archive::open(&base).unwrap();
    let chunk = a.chunks()[3].clone();
    drop(a);
    flip(&base, chunk.offset + 100);
    // The base names its chunk 3; so must the incremental archive that reads it.
    for archive in [&base, &g1] {
        let out = run(&[os("verify"), archive.as_os_str()]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("DAMAGED big.jpg: chunk 3"), "{err}");
        let json = run(&[os("verify"), archive.as_os_str(), os("--json")]);
        let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(report["damaged_chunks"][0]["chunk"], 3, "{report}");
    }
    let out = run(&[os("verify"), g1.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("chunk 3 (in base {})", base.display())),
        "{err}"
    );
}
