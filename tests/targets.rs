//! Output paths of every kind, for every command that writes a file (`pack -o`,
//! `index -o`): a regular file is replaced atomically, a symlink is followed (its
//! target replaced, the link kept), a character device, FIFO or Unix socket is
//! written in place as a stream and stays what it was, a directory or block device is
//! refused, a missing parent is an error naming the target, and a non-UTF-8 name works.
//! Device nodes are made with mknod in a scratch directory, never in /dev.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The commands that write a file, with the path they write to.
fn writers(src: &Path, archive: &Path, out: &Path) -> Vec<Vec<std::ffi::OsString>> {
    let v = |items: &[&OsStr]| items.iter().map(|s| s.to_os_string()).collect();
    vec![
        v(&[
            os("pack"),
            src.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--no-sync"),
        ]),
        v(&[
            os("index"),
            archive.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--format"),
            os("csv"),
        ]),
    ]
}

fn run_owned(args: &[std::ffi::OsString]) -> std::process::Output {
    command().args(args).output().unwrap()
}

fn setup(name: &str) -> (Scratch, PathBuf, PathBuf) {
    let s = Scratch::new(name);
    let src = s.path("src");
    write(&src, "a.txt", &bytes(3, 20_000, true));
    let archive = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("-q"),
    ]);
    (s, src, archive)
}

fn mknod(path: &Path, kind: &str, major: &str, minor: &str) -> bool {
    Command::new("mknod")
        .arg(path)
        .args([kind, major, minor])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_character_device_is_written_as_a_stream_and_stays_a_device() {
    if !is_root() {
        eprintln!("SKIPPED: mknod needs root");
        return;
    }
    let (s, src, archive) = setup("target-chardev");
    // A null device of our own (1:3), in the scratch directory.
    let null = s.path("null");
    assert!(mknod(&null, "c", "1", "3"));
    for args in writers(&src, &archive, &null) {
        let out = run_owned(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = fs::symlink_metadata(&null).unwrap();
        assert!(
            m.file_type().is_char_device(),
            "{args:?} replaced the device"
        );
    }
    // Nothing left beside it.
    let names: Vec<_> = fs::read_dir(s.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains("tmp-znippy")),
        "{names:?}"
    );
    // A full device (1:7) fails with ENOSPC, named, and stays a device.
    let full = s.path("full");
    assert!(mknod(&full, "c", "1", "7"));
    let out = run(&[os("pack"), src.as_os_str(), os("-o"), full.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("full") && err.contains("space"), "{err}");
    assert!(
        fs::symlink_metadata(&full)
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn a_fifo_is_written_as_a_stream_to_its_reader() {
    let (s, src, archive) = setup("target-fifo");
    let fifo = s.path("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (i, args) in writers(&src, &archive, &fifo).into_iter().enumerate() {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                fs::File::open(&fifo)
                    .unwrap()
                    .read_to_end(&mut got)
                    .unwrap();
                got
            })
        };
        let out = run_owned(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = reader.join().unwrap();
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        if i == 0 {
            // What came through the FIFO is the archive, whole.
            let copy = s.path("through-fifo.znippy");
            fs::write(&copy, &got).unwrap();
            ok(&[os("verify"), copy.as_os_str(), os("-q")]);
        } else {
            assert!(
                got.starts_with(b"path,"),
                "{}",
                String::from_utf8_lossy(&got)
            );
        }
    }
}

#[test]
fn a_unix_socket_is_written_as_a_stream_to_its_listener() {
    let (s, src, _archive) = setup("target-socket");
    let sock = s.path("sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        sock.as_os_str(),
        os("-q"),
    ]);
    let copy = s.path("through-socket.znippy");
    fs::write(&copy, reader.join().unwrap()).unwrap();
    ok(&[os("verify"), copy.as_os_str(), os("-q")]);
    assert!(fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
}

#[test]
fn a_symlink_is_followed_and_its_target_replaced() {
    let (s, src, archive) = setup("target-symlink");
    for (i, args) in [0, 1]
        .into_iter()
        .zip(writers(&src, &archive, &s.path("link")))
    {
        let target = s.path(&format!("real{i}"));
        fs::write(&target, b"old").unwrap();
        let link = s.path("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("real{i}"), &link).unwrap();
        ok(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_ne!(fs::read(&target).unwrap(), b"old");
        if i == 0 {
            ok(&[os("verify"), target.as_os_str(), os("-q")]);
        }
        // A dangling symlink: the file is created where it points.
        let _ = fs::remove_file(&link);
        let fresh = s.path(&format!("fresh{i}"));
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        ok(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
        assert!(fresh.is_file());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

#[test]
fn a_directory_a_block_device_and_a_missing_parent_are_refused_by_name() {
    let (s, src, archive) = setup("target-refused");
    let dir = s.path("dir");
    fs::create_dir(&dir).unwrap();
    let missing = s.path("no/such/dir/out");
    let mut cases = vec![
        (dir.clone(), "directory"),
        (missing.clone(), "No such file"),
    ];
    let block = s.path("block");
    if is_root() && mknod(&block, "b", "7", "200") {
        cases.push((block.clone(), "block device"));
    }
    for (target, why) in cases {
        for args in writers(&src, &archive, &target) {
            let out = run_owned(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(err.contains(why), "{args:?}: {err}");
            assert!(err.contains(&*target.to_string_lossy()), "{args:?}: {err}");
            assert!(
                !err.contains("tmp-znippy"),
                "names the temporary file: {err}"
            );
        }
    }
    assert!(dir.is_dir() && fs::read_dir(&dir).unwrap().next().is_none());
    if block.exists() {
        assert!(
            fs::symlink_metadata(&block)
                .unwrap()
                .file_type()
                .is_block_device()
        );
    }
}

#[test]
fn a_read_only_directory_is_an_error_naming_the_target() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to drop privileges with setpriv");
        return;
    }
    let (s, src, archive) = setup("target-readonly");
    let ro = s.path("ro");
    fs::create_dir(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(s.path(""), fs::Permissions::from_mode(0o755)).unwrap();
    let out_path = ro.join("out");
    for args in writers(&src, &archive, &out_path) {
        let line: Vec<String> = std::iter::once(bin().display().to_string())
            .chain(args.iter().map(|a| format!("'{}'", a.to_string_lossy())))
            .collect();
        let out = as_nobody(&line.join(" "));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("Permission denied"), "{err}");
        assert!(err.contains(&*out_path.to_string_lossy()), "{err}");
    }
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 0);
}

#[test]
fn a_regular_file_is_replaced_and_a_non_utf8_name_works() {
    let (s, src, archive) = setup("target-regular");
    let name = s.0.join(OsStr::from_bytes(b"out-\xff\xfe"));
    for (i, args) in writers(&src, &archive, &name).into_iter().enumerate() {
        fs::write(&name, b"old content").unwrap();
        ok(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
        assert!(fs::symlink_metadata(&name).unwrap().is_file());
        if i == 0 {
            ok(&[os("verify"), name.as_os_str(), os("-q")]);
        } else {
            assert!(fs::read(&name).unwrap().starts_with(b"path,"));
        }
    }
    // Only the target and what setup made are left: no temporary files.
    let mut names: Vec<_> = fs::read_dir(s.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn index_never_replaces_the_archive_it_reads_nor_a_base_of_it() {
    let (s, src, archive) = setup("target-index-self");
    let link = s.path("link.arrow");
    std::os::unix::fs::symlink(&archive, &link).unwrap();
    let copy = s.path("copy.znippy");
    fs::copy(&archive, &copy).unwrap();
    let inc = s.path("inc.znippy");
    write(&src, "b.txt", b"more");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        inc.as_os_str(),
        os("--since"),
        archive.as_os_str(),
        os("-q"),
    ]);
    let before = fs::read(&archive).unwrap();
    for (read, target) in [
        (&archive, &archive),
        (&archive, &link),
        (&archive, &copy),
        (&inc, &archive),
    ] {
        let out = run(&[os("index"), read.as_os_str(), os("-o"), target.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", target.display());
        assert!(err.contains("cannot be replaced"), "{err}");
    }
    assert_eq!(fs::read(&archive).unwrap(), before);
    ok(&[os("verify"), inc.as_os_str(), os("-q")]);
}

#[test]
fn index_to_standard_output_never_writes_over_the_archive_it_reads() {
    let (s, src, archive) = setup("target-index-stdout");
    let inc = s.path("inc.znippy");
    write(&src, "b.txt", b"more");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        inc.as_os_str(),
        os("--since"),
        archive.as_os_str(),
        os("-q"),
    ]);
    let before = fs::read(&archive).unwrap();
    for (read, append) in [(&archive, false), (&archive, true), (&inc, false)] {
        let stdout = fs::OpenOptions::new()
            .read(true)
            .write(!append)
            .append(append)
            .open(&archive)
            .unwrap();
        let out = command()
            .args([os("index"), read.as_os_str()])
            .stdout(stdout)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot be replaced"), "{err}");
    }
    assert_eq!(fs::read(&archive).unwrap(), before);
}

/// What another user puts in a shared (sticky, world-writable) output directory under
/// the name of a killed pack's temporary file is never waited on, read, followed or
/// removed: a FIFO (opening it for reading would block the pack forever) and a
/// symlink to a root-only file (whose lock and first bytes would be taken).
#[test]
fn fifos_and_symlinks_named_like_leftovers_are_not_opened() {
    if !is_root() {
        eprintln!("SKIPPED: needs root, to plant them as another user");
        return;
    }
    let s = Scratch::new("leftover-traps");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let src = s.path("src");
    write(&src, "f", b"data");
    let shared = s.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = s.path("victim");
    fs::write(&victim, b"root only").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let fifo = shared.join(".out.znippy.tmp-znippy-4000000-0");
    let link = shared.join(".out.znippy.tmp-znippy-4000001-0");
    let planted = as_nobody(&format!(
        "mkfifo '{}' && ln -s '{}' '{}'",
        fifo.display(),
        victim.display(),
        link.display()
    ));
    assert!(
        planted.status.success(),
        "{}",
        String::from_utf8_lossy(&planted.stderr)
    );
    let out = shared.join("out.znippy");
    let r = Command::new("timeout")
        .arg("60")
        .arg(bin())
        .args([os("pack"), src.as_os_str(), os("-o"), out.as_os_str()])
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "{:?} {}",
        r.status,
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&victim).unwrap(), b"root only");
    ok(&[os("verify"), out.as_os_str()]);
}

/// A symlink that another user planted under the output's name in a sticky,
/// world-writable directory is not followed (the kernel's protected_symlinks rule,
/// which resolving the link ourselves must keep): the file it names stays as it was.
/// Our own symlink there is still followed.
#[test]
fn a_symlink_planted_by_another_user_in_a_shared_directory_is_not_followed() {
    if !is_root() {
        eprintln!("SKIPPED: needs root, to plant it as another user");
        return;
    }
    let s = Scratch::new("planted-link");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let src = s.path("src");
    write(&src, "f", b"data");
    let shared = s.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = s.path("victim");
    fs::write(&victim, b"root only").unwrap();
    let planted = shared.join("out.znippy");
    let r = as_nobody(&format!(
        "ln -s '{}' '{}'",
        victim.display(),
        planted.display()
    ));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for writer in writers(&src, &s.path("a.znippy"), &planted) {
        if writer[0] == "index" {
            ok(&[
                os("pack"),
                src.as_os_str(),
                os("-o"),
                s.path("a.znippy").as_os_str(),
            ]);
        }
        let args: Vec<&OsStr> = writer.iter().map(|a| a.as_os_str()).collect();
        let r = run(&args);
        assert!(
            !r.status.success(),
            "{writer:?} followed the planted symlink"
        );
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("protected_symlinks"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"root only");
    }
    // Nor one above the output: `shared/sub/out.znippy`, `sub` the other user's
    // symlink to a directory of root's.
    let vault = s.path("vault");
    fs::create_dir(&vault).unwrap();
    fs::write(vault.join("out.znippy"), b"root only").unwrap();
    let sub = shared.join("sub");
    let r = as_nobody(&format!("ln -s '{}' '{}'", vault.display(), sub.display()));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let through = sub.join("out.znippy");
    let r = run(&[os("pack"), src.as_os_str(), os("-o"), through.as_os_str()]);
    assert!(
        !r.status.success(),
        "followed the planted symlink above the output"
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("protected_symlinks"));
    assert_eq!(fs::read(vault.join("out.znippy")).unwrap(), b"root only");
    // Ours is followed, as documented.
    fs::remove_file(&planted).unwrap();
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    ok(&[os("pack"), src.as_os_str(), os("-o"), planted.as_os_str()]);
    assert!(fs::read(&victim).unwrap().starts_with(b"ZNPYURNG"));
}
