//! Faults while packing and unpacking: interruption and a full disk.

mod common;

use common::*;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".znippy"))
        .collect()
}

#[test]
fn sigint_and_sigterm_during_pack_remove_the_temporary_archive() {
    let s = Scratch::new("signal");
    let src = s.path("src");
    write(&src, "a.txt", &bytes(1, 12_000_000, true));
    write(&src, "b.txt", &bytes(2, 12_000_000, true));
    let outdir = s.path("out");
    fs::create_dir_all(&outdir).unwrap();
    for sig in [libc_sig::SIGINT, libc_sig::SIGTERM] {
        let out = outdir.join("a.znippy");
        // Level 19 on one thread takes seconds: time enough to interrupt it.
        let child = command()
            .args([
                os("pack"),
                src.as_os_str(),
                os("-o"),
                out.as_os_str(),
                os("--level"),
                os("19"),
                os("--threads"),
                os("1"),
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while leftovers(&outdir).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no temporary file appeared"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(50));
        unsafe { libc_sig::kill(child.id() as i32, sig) };
        let result = child.wait_with_output().unwrap();
        assert_eq!(result.status.signal(), Some(sig), "{:?}", result.status);
        let err = String::from_utf8_lossy(&result.stderr);
        assert!(
            err.contains("interrupted; temporary archive removed"),
            "{err}"
        );
        assert!(leftovers(&outdir).is_empty(), "{:?}", leftovers(&outdir));
    }
}

mod libc_sig {
    pub const SIGINT: i32 = 2;
    pub const SIGTERM: i32 = 15;
    unsafe extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
    }
}

/// Mounts a small tmpfs at `dir`, or says why not (needs root).
fn small_fs(dir: &Path, size: &str) -> bool {
    fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs at {} (needs root)",
            dir.display()
        );
    }
    ok
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn disk_full_during_pack_and_unpack_fails_cleanly() {
    let s = Scratch::new("enospc");
    let src = s.path("src");
    write(&src, "random.bin", &bytes(3, 6_000_000, false));
    write(&src, "small.txt", b"fits");
    let full = s.path("full");
    if !small_fs(&full, "3m") {
        return;
    }
    let _unmount = Unmount(&full);
    let out = full.join("a.znippy");
    for io in ["uring", "portable"] {
        let r = run(&[
            os("pack"),
            src.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--io"),
            os(io),
        ]);
        assert_eq!(r.status.code(), Some(1), "{io}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("No space left on device"), "{io}: {err}");
        assert_eq!(err.lines().count(), 1, "{io}: {err}");
        assert!(leftovers(&full).is_empty(), "{io}: {:?}", leftovers(&full));
    }

    // Unpack onto the full file system: refused before writing, the files declaring
    // more than is free there.
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    let dest = full.join("dest");
    let r = run(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("free on its file system"), "{err}");
    assert_eq!(
        fs::read_dir(&dest).unwrap().count(),
        0,
        "wrote before refusing"
    );
    // Without the bound: an error naming the file being written.
    let r = run(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("--max-size"),
        os("unlimited"),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("random.bin") && err.contains("No space left on device"),
        "{err}"
    );
}

#[test]
fn an_io_error_in_the_middle_of_a_pack_fails_it_cleanly_on_both_backends() {
    let s = Scratch::new("eio");
    let src = s.path("src");
    small_files(&src, 60);
    write(&src, "big.bin", &bytes(5, 9_000_000, false));
    let outdir = s.path("out");
    fs::create_dir_all(&outdir).unwrap();
    let out = outdir.join("a.znippy");
    for io in ["uring", "portable"] {
        for n in [1, 2, 5, 9] {
            // `timeout` turns a hang into a failure instead of a stuck test run.
            let r = Command::new("timeout")
                .arg("60")
                .arg(bin())
                .env("ZNIPPY_IO_FAULT", format!("eio-after:{n}"))
                .args([
                    os("pack"),
                    src.as_os_str(),
                    os("-o"),
                    out.as_os_str(),
                    os("--io"),
                    os(io),
                    os("--on-unreadable"),
                    os("fail"),
                ])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&r.stderr);
            assert_eq!(r.status.code(), Some(1), "{io} eio-after:{n}: {err}");
            assert!(
                err.contains("Input/output error"),
                "{io} eio-after:{n}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{io} eio-after:{n}: {err}");
            assert!(
                leftovers(&outdir).is_empty(),
                "{io} eio-after:{n}: {:?}",
                leftovers(&outdir)
            );
        }
    }
}

/// Packs slowly (level 19, one thread), so that changes made while it runs are seen,
/// with `--on-change policy`.
fn slow_pack(src: &Path, out: &Path, policy: &str) -> std::process::Output {
    run(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--level"),
        os("19"),
        os("--threads"),
        os("1"),
        os("--on-change"),
        os(policy),
    ])
}

#[test]
fn a_file_changing_while_packed_fails_the_pack_or_is_kept_with_a_warning() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = Scratch::new("changing");
    let src = s.path("src");
    // Compressed first and slowly (level 19, one thread), so the appender below has
    // changed the log by the time its read is checked.
    write(&src, "a-slow.txt", &bytes(6, 5_000_000, true));
    write(&src, "z-growing.log", b"first line\n");
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (stop, log) = (stop.clone(), src.join("z-growing.log"));
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"more\n").unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let out = s.path("a.znippy");
    let pack = |policy: &str| slow_pack(&src, &out, policy);
    let failed = pack("fail");
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(
        err.contains("z-growing.log: changed while being packed"),
        "{err}"
    );
    assert!(!out.exists());

    let kept = pack("warn");
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    let err = String::from_utf8_lossy(&kept.stderr).into_owned();
    assert!(kept.status.success(), "{err}");
    assert!(
        err.contains("warning:") && err.contains("z-growing.log: changed while being packed"),
        "{err}"
    );
    let a = znippy_uring::Archive::open(&out).unwrap();
    assert!(a.verify(1).unwrap().is_ok());
    let log = a
        .entries()
        .iter()
        .find(|e| e.path == b"z-growing.log")
        .unwrap();
    let mut read = Vec::new();
    a.read_file(b"z-growing.log", &mut read).unwrap();
    assert_eq!(read.len() as u64, log.size);
    assert!(read.starts_with(b"first line\n"));
}

/// Waits until a pack has created its temporary archive in `dir`.
fn wait_for_pack_start(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while leftovers(dir).is_empty() {
        assert!(Instant::now() < deadline, "pack never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn retry_archives_a_consistent_version_of_a_changed_file_and_drops_a_vanished_one() {
    use std::io::Write;
    let s = Scratch::new("retry");
    let src = s.path("src");
    // Compressed first and slowly (level 19, one thread): the changes below are over
    // before the pipeline checks the later files, and before the re-read pass.
    write(&src, "a-slow.txt", &bytes(6, 5_000_000, true));
    write(&src, "z-growing.log", b"first line\n");
    write(&src, "z-vanishing.txt", b"here at the walk");
    fs::hard_link(src.join("z-vanishing.txt"), src.join("zz-link")).unwrap();
    let out = s.path("a.znippy");
    let changer = {
        let (dir, src) = (s.path(""), src.clone());
        std::thread::spawn(move || {
            wait_for_pack_start(&dir);
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(src.join("z-growing.log"))
                .unwrap();
            for i in 0..200 {
                writeln!(f, "line {i}").unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            fs::remove_file(src.join("z-vanishing.txt")).unwrap();
            fs::remove_file(src.join("zz-link")).unwrap();
        })
    };
    let r = slow_pack(&src, &out, "retry");
    changer.join().unwrap();
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(r.status.success(), "{err}");
    assert!(
        err.contains("z-growing.log: changed while being packed; archived as read again"),
        "{err}"
    );
    assert!(
        err.contains("z-vanishing.txt: vanished while being packed; not archived"),
        "{err}"
    );
    assert!(
        err.contains("zz-link: hard link to a file that vanished"),
        "{err}"
    );
    let a = znippy_uring::Archive::open(&out).unwrap();
    assert!(a.verify(1).unwrap().is_ok());
    // The version read again is the file as it is now, not a prefix of it.
    let now = fs::read(src.join("z-growing.log")).unwrap();
    assert!(now.ends_with(b"line 199\n"));
    let mut read = Vec::new();
    a.read_file(b"z-growing.log", &mut read).unwrap();
    assert_eq!(read, now);
    let paths: Vec<Vec<u8>> = a.entries().iter().map(|e| e.path.clone()).collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with(b"z-vanishing") || p == b"zz-link")
    );
    // Every name left unpacks and matches the tree.
    let dest = s.path("d");
    ok(&[os("unpack"), out.as_os_str(), os("-C"), dest.as_os_str()]);
    assert_eq!(snapshot(&dest), snapshot(&src));
}

#[test]
fn a_tree_1900_directories_deep_round_trips() {
    let s = Scratch::new("deep-tree");
    let src = s.path("src");
    let deep = vec!["d"; 1900].join("/");
    write(&src, &format!("{deep}/leaf"), b"deep down");
    let out = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), out.as_os_str()]);
    let dest = s.path("out");
    ok(&[os("unpack"), out.as_os_str(), os("-C"), dest.as_os_str()]);
    assert_eq!(
        fs::read(dest.join(&deep).join("leaf")).unwrap(),
        b"deep down"
    );
    let dirs = |root: &Path| {
        let out = Command::new("find")
            .arg(root)
            .arg("-type")
            .arg("d")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(dirs(&dest), dirs(&src));
    assert_eq!(dirs(&dest), 1901);
}

#[test]
fn paths_near_path_max_round_trip_and_deeper_ones_are_left_out_by_name() {
    let s = Scratch::new("deep");
    let src = s.path("src");
    // 38 levels of 99-byte names: a relative path of about 3,800 bytes.
    let name = "n".repeat(99);
    let rel: Vec<String> = (0..38).map(|i| format!("{i:02}{}", &name[2..])).collect();
    let deep = rel.join("/");
    write(&src, &format!("{deep}/leaf.txt"), b"at the bottom");
    assert!(deep.len() > 3700 && src.join(&deep).as_os_str().len() < 4000);
    let out = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), out.as_os_str()]);
    let dest = s.path("d");
    ok(&[os("unpack"), out.as_os_str(), os("-C"), dest.as_os_str()]);
    assert_eq!(
        fs::read(dest.join(&deep).join("leaf.txt")).unwrap(),
        b"at the bottom"
    );

    // Deeper than PATH_MAX, made relative to directory descriptors (no path that long
    // can be named at once).
    let script = format!(
        "import os\nfd = os.open({:?}, os.O_RDONLY)\nfor _ in range(50):\n    os.mkdir('{name}', dir_fd=fd)\n    fd = os.open('{name}', os.O_RDONLY, dir_fd=fd)\n",
        src.display().to_string()
    );
    let made = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .status()
        .unwrap();
    assert!(made.success());
    // By default (--on-unreadable warn) the part past PATH_MAX is left out by name, and
    // the rest archived: exit status 3.
    let r = run(&[os("pack"), src.as_os_str(), os("-o"), out.as_os_str()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{err}");
    assert!(err.contains("File name too long"), "{err}");
    let listed = String::from_utf8(ok(&[os("list"), out.as_os_str()]).stdout).unwrap();
    assert!(listed.contains("leaf.txt"), "{listed}");
    ok(&[os("verify"), out.as_os_str(), os("-q")]);
    // With --on-unreadable fail, the pack fails with one clear line.
    let r = run(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--on-unreadable"),
        os("fail"),
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("File name too long"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Clean up what std cannot delete by absolute path.
    let _ = Command::new("rm").arg("-rf").arg(&src).status();
}

/// Runs the binary with `args` as a user that cannot read files of mode 0 and
/// directories of mode 0 (root can): as `nobody` when the tests run as root.
fn as_reader_without_rights(args: &[&str]) -> std::process::Output {
    if is_root() {
        let cmd = std::iter::once(bin().display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        as_nobody(&cmd)
    } else {
        command().args(args).output().unwrap()
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

#[test]
fn unreadable_files_and_directories_are_left_out_named_with_exit_status_3_or_fail_the_pack() {
    let s = Scratch::new("unreadable");
    chmod(&s.0, 0o777);
    let src = s.path("src");
    write(&src, "fine.txt", b"fine");
    write(&src, "secret.txt", b"secret");
    // Several chunks of 64 KiB, and a second name: each is left out, named once.
    write(&src, "big-secret.bin", &bytes(7, 300_000, false));
    fs::hard_link(src.join("big-secret.bin"), src.join("zz-link")).unwrap();
    write(&src, "private/inner.txt", b"inner");
    write(&src, "noexec/f.txt", b"listed but not stat-able");
    write(&src, "open/g.txt", b"readable");
    for p in ["secret.txt", "big-secret.bin"] {
        chmod(&src.join(p), 0o000);
    }
    chmod(&src.join("private"), 0o000);
    chmod(&src.join("noexec"), 0o644);
    let out = s.path("a.znippy");
    let (srcs, outs) = (src.display().to_string(), out.display().to_string());
    let pack = |extra: &[&str]| {
        let mut args = vec!["pack", &srcs, "-o", &outs, "--chunk-size", "64K"];
        args.extend_from_slice(extra);
        as_reader_without_rights(&args)
    };

    // fail: no archive, the first unreadable entry named.
    let failed = pack(&["--on-unreadable", "fail"]);
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(err.contains("ermission denied"), "{err}");
    assert!(!out.exists());

    // warn (the default): the archive without them, each named once, exit status 3.
    let kept = pack(&["--json"]);
    let err = String::from_utf8_lossy(&kept.stderr).into_owned();
    assert_eq!(kept.status.code(), Some(3), "{err}");
    let at = |rel: &str| src.join(rel).display().to_string();
    for (rel, problem) in [
        ("secret.txt", "cannot open: Permission denied"),
        ("big-secret.bin", "cannot open: Permission denied"),
        ("zz-link", "hard link to"),
        ("private", "cannot read directory: Permission denied"),
        ("noexec/f.txt", "cannot stat: Permission denied"),
    ] {
        let line = format!("warning: {}: {problem}", at(rel));
        assert_eq!(err.matches(&line).count(), 1, "{line}\n{err}");
    }
    assert!(
        err.contains("written without 5 entries that could not be read"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(&kept.stdout).unwrap();
    let skipped = report["skipped"].as_array().unwrap();
    let paths: Vec<&str> = skipped
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    let mut expected = [
        at("big-secret.bin"),
        at("noexec/f.txt"),
        at("private"),
        at("secret.txt"),
        at("zz-link"),
    ];
    expected.sort();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{report}");
    assert!(skipped.iter().all(|s| s["problem"].is_string()));

    let a = znippy_uring::Archive::open(&out).unwrap();
    assert!(a.verify(1).unwrap().is_ok());
    let names: Vec<String> = (a.entries().iter())
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect();
    // A directory that cannot be listed is archived, empty; the rest is left out.
    assert_eq!(
        names,
        ["fine.txt", "noexec", "open", "open/g.txt", "private"],
        "{names:?}"
    );
    let mut fine = Vec::new();
    a.read_file(b"open/g.txt", &mut fine).unwrap();
    assert_eq!(fine, b"readable");

    // A list names the entries it wants: the same rules.
    let list = s.path("list");
    fs::write(&list, b"fine.txt\0secret.txt\0noexec/f.txt\0").unwrap();
    chmod(&list, 0o644);
    let listed = pack(&["--from-list", &list.display().to_string()]);
    let err = String::from_utf8_lossy(&listed.stderr).into_owned();
    assert_eq!(listed.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("{}: cannot open", at("secret.txt"))),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: cannot stat", at("noexec/f.txt"))),
        "{err}"
    );
    let names: Vec<Vec<u8>> = (znippy_uring::Archive::open(&out).unwrap().entries().iter())
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(names, [b"fine.txt".to_vec()]);
    chmod(&src.join("private"), 0o755);
    chmod(&src.join("noexec"), 0o755);
}

#[test]
fn a_file_that_fails_to_read_is_left_out_and_named_on_both_backends() {
    let s = Scratch::new("eio-read");
    let src = s.path("src");
    for name in ["a.txt", "b.txt", "c.txt"] {
        write(&src, name, name.as_bytes());
    }
    let out = s.path("a.znippy");
    for io in ["uring", "portable"] {
        // The second read of the one compressor fails with EIO; the archive is fine.
        let r = command()
            .env("ZNIPPY_IO_FAULT", "eio-read-after:2")
            .args([os("pack"), src.as_os_str(), os("-o"), out.as_os_str()])
            .args(["--io", io, "--threads", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert_eq!(r.status.code(), Some(3), "{io}: {err}");
        let failed: Vec<&str> = ["a.txt", "b.txt", "c.txt"]
            .into_iter()
            .filter(|n| err.contains(&format!("{n}: cannot read: Input/output error")))
            .collect();
        assert_eq!(failed.len(), 1, "{io}: {err}");
        let a = znippy_uring::Archive::open(&out).unwrap();
        assert!(a.verify(1).unwrap().is_ok());
        assert_eq!(a.entries().len(), 2, "{io}");
        for e in a.entries() {
            let mut data = Vec::new();
            a.read_file(&e.path, &mut data).unwrap();
            assert_eq!(data, e.path, "{io}");
            assert_ne!(e.path, failed[0].as_bytes(), "{io}");
        }
    }
}

#[test]
fn a_changing_file_of_many_chunks_is_warned_about_once() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = Scratch::new("changing-once");
    let src = s.path("src");
    write(&src, "a-slow.txt", &bytes(6, 1_000_000, true));
    // 16 chunks of 64 KiB, growing from before the walk on.
    write(&src, "z-growing.log", &bytes(7, 1 << 20, true));
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (stop, log) = (stop.clone(), src.join("z-growing.log"));
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"more\n").unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let out = s.path("a.znippy");
    let r = run(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--chunk-size"),
        os("64K"),
        os("--level"),
        os("19"),
        os("--threads"),
        os("1"),
        os("--on-change"),
        os("warn"),
    ]);
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(r.status.success(), "{err}");
    assert_eq!(
        err.matches("z-growing.log: changed while being packed")
            .count(),
        1,
        "{err}"
    );
    let a = znippy_uring::Archive::open(&out).unwrap();
    assert!(a.verify(1).unwrap().is_ok());
}
