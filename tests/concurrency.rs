//! Two runs at once: packs racing to the same target, and an incremental pack while
//! another pack replaces an unrelated archive beside its base. Whatever the order,
//! each run succeeds or fails by name, the target holds one whole archive, and no
//! temporary file is left behind.

mod common;

use common::*;
use std::fs;

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp-znippy"))
        .collect()
}

#[test]
fn packs_racing_to_one_target_leave_one_whole_archive() {
    let s = Scratch::new("race-target");
    let (a, b) = (s.path("a"), s.path("b"));
    awkward_tree(&a, 64 << 10);
    small_files(&b, 300);
    let target = s.path("out.znippy");
    for round in 0..8 {
        let spawn = |src: &std::path::Path, threads: &str| {
            command()
                .args([os("pack"), src.as_os_str(), os("-o"), target.as_os_str()])
                .args(["--threads", threads, "--chunk-size", "64K", "-q"])
                .spawn()
                .unwrap()
        };
        let (mut x, mut y) = (spawn(&a, "8"), spawn(&b, "1"));
        assert!(x.wait().unwrap().success(), "round {round}");
        assert!(y.wait().unwrap().success(), "round {round}");
        ok(&[os("verify"), target.as_os_str(), os("-q")]);
        // It is one of the two trees, whole.
        let listed = ok(&[os("list"), target.as_os_str()]).stdout;
        let listed = String::from_utf8_lossy(&listed); // the awkward tree has non-UTF-8 names
        let from_a = listed.contains("sizes/many.txt");
        let from_b = listed.lines().count() >= 300 && !from_a;
        assert!(from_a ^ from_b, "round {round}: {listed}");
        assert!(leftovers(&s.0).is_empty(), "{:?}", leftovers(&s.0));
    }
}

#[test]
fn an_incremental_pack_beside_a_racing_full_pack_keeps_its_chain() {
    let s = Scratch::new("race-chain");
    let src = s.path("src");
    awkward_tree(&src, 64 << 10);
    let (g0, g1, other) = (
        s.path("g0.znippy"),
        s.path("g1.znippy"),
        s.path("other.znippy"),
    );
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        g0.as_os_str(),
        os("-q"),
    ]);
    for round in 0..6 {
        write(&src, "changing.txt", format!("round {round}\n").as_bytes());
        let mut full = command()
            .args([
                os("pack"),
                src.as_os_str(),
                os("-o"),
                other.as_os_str(),
                os("-q"),
            ])
            .spawn()
            .unwrap();
        ok(&[
            os("pack"),
            src.as_os_str(),
            os("-o"),
            g1.as_os_str(),
            os("--since"),
            g0.as_os_str(),
            os("-q"),
        ]);
        assert!(full.wait().unwrap().success());
        for a in [&g0, &g1, &other] {
            ok(&[os("verify"), a.as_os_str(), os("-q")]);
        }
        let got = ok(&[os("cat"), g1.as_os_str(), os("changing.txt")]).stdout;
        assert_eq!(got, format!("round {round}\n").as_bytes());
    }
    assert!(leftovers(&s.0).is_empty());
}

#[test]
fn a_temporary_file_locked_by_a_pack_elsewhere_is_left_alone() {
    // A pack in another PID namespace (or on another host of a shared file system):
    // its process id means nothing here, its lock does.
    let s = Scratch::new("race-namespace");
    let src = s.path("src");
    write(&src, "a.txt", b"data");
    let target = s.path("out.znippy");
    let theirs = s.path(".out.znippy.tmp-znippy-2147483646-0");
    fs::write(&theirs, b"ZNPYURNG").unwrap();
    let f = fs::File::open(&theirs).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        target.as_os_str(),
        os("-q"),
    ]);
    assert!(theirs.exists(), "a live pack's temporary file was removed");
    drop(f); // that pack is gone now
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        target.as_os_str(),
        os("-q"),
    ]);
    assert!(!theirs.exists(), "a dead pack's temporary file was left");
}

#[test]
fn a_stale_unlocked_temporary_file_of_a_living_pid_is_removed() {
    // A pack killed as pid 1 of a container: here pid 1 lives, but the file's lock is
    // free and it has not been written for long.
    let s = Scratch::new("race-stale");
    let src = s.path("src");
    write(&src, "a.txt", b"data");
    let target = s.path("out.znippy");
    let (old, fresh) = (
        s.path(".out.znippy.tmp-znippy-1-0"),
        s.path(".out.znippy.tmp-znippy-1-1"),
    );
    fs::write(&old, b"ZNPYURNG").unwrap();
    fs::write(&fresh, b"ZNPYURNG").unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::OpenOptions::new()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        target.as_os_str(),
        os("-q"),
    ]);
    assert!(!old.exists(), "a stale leftover stayed");
    assert!(fresh.exists(), "a recent file of a living pid was removed");
}
