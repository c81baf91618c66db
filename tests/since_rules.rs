//! The reuse rule of `pack --since` and the archives a pack may not replace, each case
//! one that an earlier version got wrong: stale bytes restored after a same-size
//! rewrite with the old mtime put back, after a tree was deleted and extracted again
//! (recycled inode numbers), after a rename followed by a rewrite; and a pack that
//! replaced a deeper base of its own chain.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

fn pack(src: &Path, archive: &Path, since: Option<&Path>, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("--json"),
        os("--no-sync"),
    ];
    if let Some(p) = since {
        args.extend([os("--since"), p.as_os_str()]);
    }
    args.extend(extra.iter().map(os));
    // No racy-ctime window: the files here were all just written, and the rules
    // under test are those of files whose ctime is trusted.
    let out = command()
        .args(&args)
        .env("ZNIPPY_RACY_CTIME_MS", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cat(archive: &Path, rel: &str) -> Vec<u8> {
    ok(&[os("cat"), archive.as_os_str(), os(rel)]).stdout
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p).unwrap().modified().unwrap()
}

fn set_mtime(p: &Path, t: SystemTime) {
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn a_same_size_rewrite_with_the_old_mtime_put_back_is_read_again() {
    for check_inode in [false, true] {
        let s = Scratch::new(&format!("since-touch-{check_inode}"));
        let src = s.path("src");
        write(&src, "f.txt", b"version1");
        let (g0, g1) = (s.path("g0.znippy"), s.path("g1.znippy"));
        let extra: &[&str] = if check_inode { &["--check-inode"] } else { &[] };
        pack(&src, &g0, None, &[]);
        let t = mtime(&src.join("f.txt"));
        fs::write(src.join("f.txt"), b"VERSION2").unwrap(); // same size, same inode
        set_mtime(&src.join("f.txt"), t); // touch -d: only the ctime tells
        let report = pack(&src, &g1, Some(&g0), extra);
        assert_eq!(report["reused_files"], 0, "{report}");
        assert_eq!(cat(&g1, "f.txt"), b"VERSION2");
        ok(&[os("verify"), g1.as_os_str(), os("-q")]);
    }
}

#[test]
fn files_deleted_and_extracted_again_with_fixed_mtimes_are_read_again() {
    // Reproducible builds extract with one fixed mtime; after rm -rf, the file system
    // hands the freed inode numbers to the new files.
    let s = Scratch::new("since-recycled");
    let src = s.path("src");
    let fixed = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    let make = |generation: u8| {
        for i in 0..200 {
            let rel = format!("out/file{i:03}");
            let mut data = bytes(u64::from(generation) * 1000 + i, 512, false);
            data[0] = generation;
            write(&src, &rel, &data);
            set_mtime(&src.join(&rel), fixed);
        }
    };
    make(1);
    let (g0, g1) = (s.path("g0.znippy"), s.path("g1.znippy"));
    pack(&src, &g0, None, &[]);
    fs::remove_dir_all(src.join("out")).unwrap();
    make(2);
    pack(&src, &g1, Some(&g0), &[]);
    let dest = s.path("restored");
    ok(&[
        os("unpack"),
        g1.as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("-q"),
    ]);
    for i in 0..200 {
        let rel = format!("out/file{i:03}");
        assert_eq!(
            fs::read(dest.join(&rel)).unwrap(),
            fs::read(src.join(&rel)).unwrap(),
            "{rel} restored with stale bytes"
        );
    }
}

#[test]
fn a_rename_is_reused_only_when_its_content_is_the_same() {
    let s = Scratch::new("since-rename");
    let src = s.path("src");
    let big = bytes(7, 300_000, false);
    write(&src, "moved.bin", &big);
    write(&src, "changed.bin", &bytes(8, 200_000, false));
    let (g0, g1) = (s.path("g0.znippy"), s.path("g1.znippy"));
    pack(&src, &g0, None, &["--chunk-size", "64K"]);
    // A true rename: reused, not read into the new archive.
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::rename(src.join("moved.bin"), src.join("dir/moved.bin")).unwrap();
    // A rename, then new bytes at the same size with the old mtime: same inode, size
    // and mtime at a new path, but other content.
    let t = mtime(&src.join("changed.bin"));
    fs::rename(src.join("changed.bin"), src.join("dir/changed.bin")).unwrap();
    let other = bytes(9, 200_000, false);
    fs::write(src.join("dir/changed.bin"), &other).unwrap();
    set_mtime(&src.join("dir/changed.bin"), t);
    let report = pack(&src, &g1, Some(&g0), &["--chunk-size", "64K"]);
    assert_eq!(report["reused_files"], 1, "{report}");
    assert_eq!(report["bytes_in"], 200_000, "{report}");
    assert_eq!(cat(&g1, "dir/moved.bin"), big);
    assert_eq!(cat(&g1, "dir/changed.bin"), other);
    ok(&[os("verify"), g1.as_os_str(), os("-q")]);
}

/// g0 <- g1 <- g2, each with a change.
fn chain(s: &Scratch) -> [std::path::PathBuf; 3] {
    let src = s.path("src");
    write(&src, "base.txt", &bytes(1, 50_000, true));
    let gs = [
        s.path("g0.znippy"),
        s.path("g1.znippy"),
        s.path("g2.znippy"),
    ];
    pack(&src, &gs[0], None, &[]);
    write(&src, "one.txt", b"generation 1\n");
    pack(&src, &gs[1], Some(&gs[0]), &[]);
    write(&src, "two.txt", b"generation 2\n");
    pack(&src, &gs[2], Some(&gs[1]), &[]);
    gs
}

#[test]
fn a_pack_cannot_replace_any_archive_of_its_chain() {
    let s = Scratch::new("since-chain-target");
    let src = s.path("src");
    let gs = chain(&s);
    let before: Vec<Vec<u8>> = gs.iter().map(|g| fs::read(g).unwrap()).collect();
    // A symlink to g0, a hard link to it, and a copy of it are g0 too.
    let link = s.path("link.znippy");
    std::os::unix::fs::symlink(&gs[0], &link).unwrap();
    let hard = s.path("hard.znippy");
    fs::hard_link(&gs[0], &hard).unwrap();
    let copy = s.path("copy.znippy");
    fs::copy(&gs[0], &copy).unwrap();
    for target in [&gs[0], &gs[1], &gs[2], &link, &hard, &copy] {
        let out = run(&[
            os("pack"),
            src.as_os_str(),
            os("-o"),
            target.as_os_str(),
            os("--since"),
            gs[2].as_os_str(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", target.display());
        assert!(err.contains("cannot be replaced"), "{err}");
    }
    // Nothing was touched, and the chain still reads.
    for (g, bytes) in gs.iter().zip(&before) {
        assert_eq!(&fs::read(g).unwrap(), bytes, "{} changed", g.display());
        ok(&[os("verify"), g.as_os_str(), os("-q")]);
    }
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // An unrelated archive may be replaced, and so may a name of the chain's that is
    // free again.
    let other = s.path("other.znippy");
    pack(&src, &other, None, &[]);
    pack(&src, &other, Some(&gs[2]), &[]);
    ok(&[os("verify"), other.as_os_str(), os("-q")]);
}

#[test]
fn a_chmod_alone_keeps_the_data_once_its_bytes_are_confirmed() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("since-chmod");
    let src = s.path("src");
    let data = bytes(5, 150_000, false);
    write(&src, "big.bin", &data);
    let (g0, g1) = (s.path("g0.znippy"), s.path("g1.znippy"));
    pack(&src, &g0, None, &[]);
    fs::set_permissions(src.join("big.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    let report = pack(&src, &g1, Some(&g0), &[]);
    assert_eq!(report["reused_files"], 1, "{report}");
    assert_eq!(report["bytes_in"], 0, "{report}");
    let dest = s.path("restored");
    ok(&[
        os("unpack"),
        g1.as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("-q"),
    ]);
    assert_eq!(fs::read(dest.join("big.bin")).unwrap(), data);
    let mode = fs::metadata(dest.join("big.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The recorded ctime of `rel` in `archive`.
fn ctime(archive: &Path, rel: &str) -> Option<i64> {
    let a = znippy_uring::Archive::open(archive).unwrap();
    let e = a
        .entries()
        .iter()
        .find(|e| e.path == rel.as_bytes())
        .unwrap();
    e.ctime_ns
}

#[test]
fn a_file_changed_just_before_the_pack_is_recorded_without_its_ctime() {
    let s = Scratch::new("since-racy");
    let src = s.path("src");
    write(&src, "fresh.txt", b"written a moment ago");
    let (g0, g1) = (s.path("g0.znippy"), s.path("g1.znippy"));
    // Within the window (3 s by default): no ctime, so the next --since reads and
    // hashes the file before reusing its data.
    let out = std::process::Command::new(bin())
        .args([
            os("pack"),
            src.as_os_str(),
            os("-o"),
            g0.as_os_str(),
            os("-q"),
        ])
        .env_remove("ZNIPPY_RACY_CTIME_MS")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(ctime(&g0, "fresh.txt"), None);
    let report = pack(&src, &g1, Some(&g0), &[]);
    assert_eq!(report["reused_files"], 1, "{report}");
    // With no window, the ctime is kept.
    pack(&src, &g0, None, &[]);
    assert!(ctime(&g0, "fresh.txt").is_some());
}

#[test]
fn an_archive_of_the_chain_cannot_be_the_output_stream_either() {
    let s = Scratch::new("since-chain-stdout");
    let src = s.path("src");
    let gs = chain(&s);
    let before = fs::read(&gs[0]).unwrap();
    for (append, target) in [(false, &gs[0]), (true, &gs[0]), (false, &gs[2])] {
        // `-o - 1<>g0.znippy` and `-o - >>g0.znippy`: standard output is that file.
        let file = fs::OpenOptions::new()
            .read(true)
            .write(!append)
            .append(append)
            .open(target)
            .unwrap();
        let out = command()
            .args([os("pack"), src.as_os_str(), os("-o"), os("-")])
            .args([os("--since"), gs[2].as_os_str()])
            .stdout(file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot be replaced"), "{err}");
    }
    assert_eq!(fs::read(&gs[0]).unwrap(), before);
    for g in &gs {
        ok(&[os("verify"), g.as_os_str(), os("-q")]);
    }
}

#[test]
fn a_deeper_base_that_previous_no_longer_needs_is_protected_too() {
    // mon <- tue (reuses f2, f3 from mon) <- wed (f2, f3 rewritten: wed needs only
    // tue, where f4 lies). Replacing mon would break tue.
    let s = Scratch::new("since-deeper");
    let src = s.path("src");
    let (mon, tue, wed) = (
        s.path("mon.znippy"),
        s.path("tue.znippy"),
        s.path("wed.znippy"),
    );
    write(&src, "f2", &bytes(2, 30_000, true));
    write(&src, "f3", &bytes(3, 30_000, true));
    pack(&src, &mon, None, &[]);
    write(&src, "f4", b"tuesday");
    pack(&src, &tue, Some(&mon), &[]);
    write(&src, "f2", &bytes(22, 30_000, true));
    write(&src, "f3", &bytes(33, 30_000, true));
    pack(&src, &wed, Some(&tue), &[]); // f4 still lies in tue: wed's one base
    let bases = ok(&[os("info"), wed.as_os_str(), os("--json")]).stdout;
    let bases = String::from_utf8_lossy(&bases);
    assert!(
        bases.contains("tue.znippy") && !bases.contains("mon.znippy"),
        "{bases}"
    );
    let out = run(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        mon.as_os_str(),
        os("--since"),
        wed.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot be replaced"), "{err}");
    for a in [&mon, &tue, &wed] {
        ok(&[os("verify"), a.as_os_str(), os("-q")]);
    }
}
