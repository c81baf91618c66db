//! Incremental archives (`pack --since`): a chain built from a tree changed between
//! packs in every way (new, modified, deleted, renamed, moved, type changes,
//! metadata-only changes, hard links gained and lost, renames in a cycle as GNU tar's
//! rename03), each archive restored and compared with the tree as it was when packed
//! by an independent listing (`find -printf` and BLAKE3 of every file), on both I/O
//! backends. Missing and wrong ancestors are refused by name, and verify names damage
//! in an ancestor.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Type, mode, owner, mtime, link count and size of everything under `root`, and the
/// BLAKE3 of every file: what a restore must reproduce.
fn listing(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(root)
        .args([
            "-mindepth",
            "1",
            "-printf",
            "%y %m %U %G %T@ %n %s %l %P\\n",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<String> = text
        .lines()
        // A directory's size is its file system's business.
        .map(|l| match l.strip_prefix("d ") {
            Some(rest) => {
                let f: Vec<&str> = rest.splitn(7, ' ').collect();
                format!("d {} {} {} {} {} - {}", f[0], f[1], f[2], f[3], f[4], f[6])
            }
            None => l.to_string(),
        })
        .collect();
    for (path, desc) in snapshot(root) {
        if desc.starts_with("file") {
            let hash = desc.rsplit(' ').next().unwrap_or_default().to_string();
            lines.push(format!("{} {hash}", String::from_utf8_lossy(&path)));
        }
    }
    lines.sort();
    lines
}

fn pack(src: &Path, archive: &Path, since: Option<&Path>, io: &str) -> serde_json::Value {
    let mut args = vec![
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("--json"),
    ];
    args.extend([os("--io"), os(io), os("--chunk-size"), os("64K")]);
    if let Some(p) = since {
        args.extend([os("--since"), p.as_os_str()]);
    }
    serde_json::from_slice(&ok(&args).stdout).unwrap()
}

fn restored(archive: &Path, dest: &Path) -> Vec<String> {
    let _ = fs::remove_dir_all(dest);
    ok(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("-q"),
    ]);
    listing(dest)
}

/// The changes between generation `g - 1` and `g`.
fn change(src: &Path, g: usize) {
    let p = |rel: &str| src.join(rel);
    match g {
        1 => {
            write(src, "new/added.txt", b"new in generation 1\n");
            write(src, "keep/modified.txt", &bytes(11, 90_000, true)); // new content
            fs::remove_file(p("keep/deleted.txt")).unwrap();
            fs::rename(p("keep/renamed.txt"), p("keep/renamed-now.txt")).unwrap(); // incr03
            fs::rename(p("keep/moved.bin"), p("other/moved.bin")).unwrap();
            fs::remove_file(p("types/file-to-dir")).unwrap();
            write(src, "types/file-to-dir/inside.txt", b"now a directory\n");
            fs::remove_file(p("types/file-to-link")).unwrap();
            symlink("../keep/big.bin", p("types/file-to-link")).unwrap();
            fs::hard_link(p("keep/big.bin"), p("links/gained")).unwrap();
        }
        2 => {
            // Metadata only: chmod, touch, xattr; and a hard link lost.
            fs::set_permissions(p("keep/big.bin"), fs::Permissions::from_mode(0o600)).unwrap();
            let t = "2020-02-02 02:02:02";
            assert!(
                Command::new("touch")
                    .args(["-d", t])
                    .arg(p("keep/a.txt"))
                    .status()
                    .unwrap()
                    .success()
            );
            let _ = Command::new("setfattr")
                .args(["-n", "user.gen", "-v", "2"])
                .arg(p("new/added.txt"))
                .status();
            if is_root() {
                std::os::unix::fs::chown(p("keep/modified.txt"), Some(4242), Some(4243)).unwrap();
            }
            fs::remove_file(p("links/gained")).unwrap();
            fs::remove_dir_all(p("types/file-to-dir")).unwrap();
            write(src, "types/file-to-dir", b"a file again\n");
        }
        3 => {
            // rename03: a cycle of renames.
            fs::rename(p("cycle/x"), p("cycle/tmp")).unwrap();
            fs::rename(p("cycle/y"), p("cycle/x")).unwrap();
            fs::rename(p("cycle/tmp"), p("cycle/y")).unwrap();
            // incr10: deletions in a chain.
            fs::remove_dir_all(p("new")).unwrap();
        }
        _ => {
            fs::remove_file(p("other/moved.bin")).unwrap();
            write(src, "keep/a.txt", b"changed at last\n");
        }
    }
}

fn initial(src: &Path) {
    write(src, "keep/a.txt", b"alpha\n");
    write(src, "keep/modified.txt", &bytes(10, 80_000, true));
    write(src, "keep/deleted.txt", b"gone in generation 1\n");
    write(src, "keep/renamed.txt", &bytes(12, 70_000, false));
    write(src, "keep/moved.bin", &bytes(13, 200_000, false));
    write(src, "keep/big.bin", &bytes(14, 300_000, false));
    write(src, "types/file-to-dir", b"a file\n");
    write(src, "types/file-to-link", b"a file too\n");
    write(src, "cycle/x", b"x's content\n");
    write(src, "cycle/y", b"y's content, longer\n");
    fs::create_dir_all(src.join("links")).unwrap();
    fs::create_dir_all(src.join("other")).unwrap();
}

fn chain_on(io: &str) {
    let s = Scratch::new(&format!("incr-chain-{io}"));
    let src = s.path("src");
    initial(&src);
    let archive = |g: usize| s.path(&format!("g{g}.znippy"));
    let mut expected: Vec<Vec<String>> = vec![listing(&src)];
    let full = pack(&src, &archive(0), None, io);
    assert_eq!(full["reused_files"], 0);
    for g in 1..=4 {
        change(&src, g);
        expected.push(listing(&src));
        let r = pack(&src, &archive(g), Some(&archive(g - 1)), io);
        assert!(
            r["reused_files"].as_u64().unwrap() >= 2,
            "generation {g}: {r}"
        );
        // Data not read again is not stored again.
        assert!(
            r["bytes_out"].as_u64() < full["bytes_out"].as_u64(),
            "generation {g}: {r}"
        );
    }
    // Every generation restores to the tree as it was when packed.
    for (g, want) in expected.iter().enumerate() {
        let got = restored(&archive(g), &s.path(&format!("out{g}")));
        assert_eq!(&got, want, "generation {g} on {io}");
    }
    // Renamed data was not stored again: the renamed file points into generation 0.
    let g1 = znippy_uring::Archive::open(&archive(1)).unwrap();
    let renamed = g1.find(b"keep/renamed-now.txt").unwrap();
    assert!(g1.entries()[renamed].location.unwrap().base.is_some());
    for g in 0..=4 {
        ok(&[os("verify"), archive(g).as_os_str(), os("-q")]);
    }
    // The shared chunk cache (what `mount` reads through) sees the same bytes.
    let last = std::sync::Arc::new(znippy_uring::Archive::open(&archive(4)).unwrap());
    let cache = znippy_uring::ChunkCache::new(last.clone(), 1 << 20);
    for (i, e) in last.entries().iter().enumerate() {
        if e.kind == znippy_uring::EntryKind::File {
            let mut buf = vec![0u8; e.size as usize];
            assert_eq!(cache.read_at(i, 0, &mut buf).unwrap(), buf.len());
            assert_eq!(
                buf,
                fs::read(src.join(e.display_path())).unwrap(),
                "{}",
                e.display_path()
            );
        }
    }
}

#[test]
fn a_chain_restores_every_generation_on_io_uring() {
    chain_on("uring");
}

#[test]
fn a_chain_restores_every_generation_on_the_portable_backend() {
    chain_on("portable");
}

#[test]
fn missing_and_wrong_ancestors_are_refused_by_name_and_damage_in_one_is_named() {
    let s = Scratch::new("incr-refuse");
    let src = s.path("src");
    initial(&src);
    let (a0, a1, a2) = (
        s.path("g0.znippy"),
        s.path("g1.znippy"),
        s.path("g2.znippy"),
    );
    pack(&src, &a0, None, "auto");
    change(&src, 1);
    pack(&src, &a1, Some(&a0), "auto");
    change(&src, 2);
    pack(&src, &a2, Some(&a1), "auto");
    // g2 needs g0 (unchanged data since the full pack) and g1.
    let moved = s.path("elsewhere.znippy");
    fs::rename(&a0, &moved).unwrap();
    let dest = s.path("out");
    for args in [
        vec![os("unpack"), a2.as_os_str(), os("-C"), dest.as_os_str()],
        vec![os("verify"), a2.as_os_str()],
        vec![os("cat"), a2.as_os_str(), os("keep/big.bin")],
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(err.contains("g0.znippy") && err.contains("--base"), "{err}");
    }
    // Listing needs no base: the new archive describes the whole tree.
    let listed = ok(&[os("list"), a2.as_os_str()]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("keep/big.bin"));
    // Named with --base, it is found.
    ok(&[
        os("verify"),
        a2.as_os_str(),
        os("--base"),
        moved.as_os_str(),
        os("-q"),
    ]);
    // Another archive under the recorded name is not taken for it.
    fs::copy(&a1, &a0).unwrap();
    let out = run(&[os("verify"), a2.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not the archive recorded"), "{err}");
    fs::rename(&moved, &a0).unwrap();
    // Damage in the ancestor: verify of the descendant names the files and the base.
    let a = znippy_uring::Archive::open(&a0).unwrap();
    let chunk = a.chunks()[0].clone();
    let mut bytes = fs::read(&a0).unwrap();
    bytes[(chunk.offset + chunk.stored_len / 2) as usize] ^= 0x40;
    fs::write(&a0, bytes).unwrap();
    let out = run(&[os("verify"), a2.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("DAMAGED") && err.contains("in base") && err.contains("g0.znippy"),
        "{err}"
    );
}

#[test]
fn an_archive_cannot_replace_the_one_it_builds_on() {
    let s = Scratch::new("incr-self");
    let src = s.path("src");
    initial(&src);
    let a = s.path("a.znippy");
    pack(&src, &a, None, "auto");
    let out = run(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        a.as_os_str(),
        os("--since"),
        a.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("builds on it"));
    ok(&[os("verify"), a.as_os_str(), os("-q")]);
    // An earlier archive that is not there is named.
    let missing = s.path("missing.znippy");
    let out = run(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        s.path("b.znippy").as_os_str(),
        os("--since"),
        missing.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.znippy: open"), "{err}");
    let _: PathBuf = a;
}

#[test]
fn an_archive_written_before_incremental_packs_still_reads_and_can_be_built_on() {
    // Written by the version before incremental archives (no ctime, dev, ino or base
    // columns, no bases table): etc/motd, numbers.txt (1..=2000) and a symlink.
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-incremental.znippy");
    let a = znippy_uring::Archive::open(&old).unwrap();
    assert_eq!((a.generation(), a.entries().len()), (0, 4));
    assert!(
        a.entries()
            .iter()
            .all(|e| e.ctime_ns.is_none() && e.inode.is_none())
    );
    assert!(a.verify(1).unwrap().is_ok());
    let mut motd = Vec::new();
    a.read_file(b"etc/motd", &mut motd).unwrap();
    assert_eq!(motd, b"old format\n");
    // Built on: without a recorded ctime nothing counts as unchanged, so all is read.
    let s = Scratch::new("incr-old");
    let src = s.path("src");
    write(&src, "etc/motd", b"old format\n");
    let base = s.path("old.znippy");
    fs::copy(&old, &base).unwrap();
    let r = pack(&src, &s.path("new.znippy"), Some(&base), "auto");
    assert_eq!(
        (r["reused_files"].as_u64(), r["files"].as_u64()),
        (Some(0), Some(1))
    );
    ok(&[os("verify"), s.path("new.znippy").as_os_str(), os("-q")]);
}
