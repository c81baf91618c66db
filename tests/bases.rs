//! Finding the bases of an incremental archive: every `--base` named must be an
//! archive; FIFOs (named, `--since`, or where a hostile archive says a base is) are
//! refused without hanging; with one directory per day (`tue/srv.znippy --since
//! mon/srv.znippy`) every read finds its bases where they were relative to it, and
//! never takes the archive itself for one; `cat` and `extract` need only the bases
//! holding the data they read.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with `args` (in `dir`, standard input from `stdin`), killing it and
/// failing the test if it has not finished after a minute: a hang is the bug.
fn bounded(dir: &Path, args: &[&OsStr], stdin: Option<&Path>) -> Output {
    let (out, err) = (dir.join(".stdout"), dir.join(".stderr"));
    let mut child = command()
        .args(args)
        .stdin(stdin.map_or(Stdio::null(), |p| Stdio::from(fs::File::open(p).unwrap())))
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(&out).unwrap(),
        stderr: fs::read(&err).unwrap(),
    }
}

/// Asserts `out` failed with status 1 and its message contains every one of `needles`.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    err
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

fn pack(src: &Path, archive: &Path, since: Option<&Path>) {
    let mut args = vec![os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()];
    args.extend([os("--chunk-size"), os("64K"), os("-q")]);
    if let Some(p) = since {
        args.extend([os("--since"), p.as_os_str()]);
    }
    ok(&args);
}

/// A tree whose `keep/` stays unchanged across generations.
fn initial(src: &Path) {
    write(src, "keep/a.txt", &bytes(1, 100_000, true));
    write(src, "keep/small", b"small and unchanged\n");
    write(src, "b.txt", b"version 0\n");
}

/// `g0.znippy` (full) and `g1.znippy` on it, beside each other in `s`: g1 holds
/// `new/c.txt` and `b.txt`, and takes `keep/` from g0.
fn two_generations(s: &Scratch) {
    let src = s.path("src");
    initial(&src);
    pack(&src, &s.path("g0.znippy"), None);
    write(&src, "new/c.txt", b"added in g1\n");
    write(&src, "b.txt", b"version 1, longer\n");
    pack(&src, &s.path("g1.znippy"), Some(&s.path("g0.znippy")));
}

#[test]
fn every_base_named_must_be_an_archive_and_one_not_needed_is_warned_about() {
    let s = Scratch::new("bases-named");
    two_generations(&s);
    let g1 = s.path("g1.znippy");
    fs::write(s.path("garbage.znippy"), bytes(7, 5000, false)).unwrap();
    fs::create_dir(s.path("dir.znippy")).unwrap();
    let cases: [(&str, &[&str]); 3] = [
        ("nope.znippy", &["nope.znippy", "No such file"]),
        (
            "garbage.znippy",
            &["garbage.znippy", "not a znippy archive"],
        ),
        ("dir.znippy", &["dir.znippy", "is a directory"]),
    ];
    for (named, needles) in cases {
        let named = s.path(named);
        for cmd in [
            vec![os("verify"), g1.as_os_str()],
            vec![os("cat"), g1.as_os_str(), os("new/c.txt")],
            vec![
                os("unpack"),
                g1.as_os_str(),
                os("-C"),
                s.path("out").as_os_str(),
            ],
        ] {
            let mut args = cmd.clone();
            args.extend([os("--base"), named.as_os_str()]);
            fails_with(&run(&args), needles);
        }
    }
    // A valid archive that is none of its bases: warned about, and ignored.
    let src = s.path("other-src");
    write(&src, "x", b"unrelated\n");
    let other = s.path("other.znippy");
    pack(&src, &other, None);
    let out = ok(&[
        os("verify"),
        g1.as_os_str(),
        os("--base"),
        other.as_os_str(),
        os("-q"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other.znippy: not a base of"), "{err}");
    // A named base is used rather than the copy beside, which may be damaged.
    let good = s.path("good-g0.znippy");
    fs::copy(s.path("g0.znippy"), &good).unwrap();
    let chunk = znippy_uring::Archive::open(&good).unwrap().chunks()[0].clone();
    let mut damaged = fs::read(s.path("g0.znippy")).unwrap();
    damaged[(chunk.offset + chunk.stored_len / 2) as usize] ^= 0x40;
    fs::write(s.path("g0.znippy"), damaged).unwrap();
    fails_with(
        &run(&[os("verify"), g1.as_os_str()]),
        &["DAMAGED", "in base"],
    );
    ok(&[
        os("verify"),
        g1.as_os_str(),
        os("--base"),
        good.as_os_str(),
        os("-q"),
    ]);
    // A missing base, with a --base that is not it: the message does not ask for
    // what was done.
    fs::rename(s.path("g0.znippy"), s.path("away.znippy")).unwrap();
    let out = run(&[
        os("verify"),
        g1.as_os_str(),
        os("--base"),
        other.as_os_str(),
    ]);
    let err = fails_with(
        &out,
        &["g0.znippy", "none of the 1 archive(s) named with --base"],
    );
    assert!(!err.contains("name it with --base"), "{err}");
}

#[test]
fn fifos_are_refused_by_name_without_hanging() {
    let s = Scratch::new("bases-fifo");
    two_generations(&s);
    let (g0, g1) = (s.path("g0.znippy"), s.path("g1.znippy"));
    let fifo = s.path("fifo.znippy");
    mkfifo(&fifo);
    let dir = &s.0;
    // Named as a base, as the earlier archive of a pack, as the archive itself.
    let out = bounded(
        dir,
        &[os("verify"), g1.as_os_str(), os("--base"), fifo.as_os_str()],
        None,
    );
    fails_with(&out, &["fifo.znippy", "is a FIFO"]);
    let (src, x) = (s.path("src"), s.path("x.znippy"));
    let since = [
        os("pack"),
        src.as_os_str(),
        os("-o"),
        x.as_os_str(),
        os("--since"),
        fifo.as_os_str(),
    ];
    fails_with(&bounded(dir, &since, None), &["fifo.znippy", "is a FIFO"]);
    assert!(!x.exists());
    for cmd in ["list", "info", "verify"] {
        let out = bounded(dir, &[os(cmd), fifo.as_os_str()], None);
        fails_with(&out, &["fifo.znippy", "is a FIFO"]);
    }
    // Where the archive says its base is, a FIFO: list and info need no base, unpack
    // names it.
    let away = s.path("g0-away.znippy");
    fs::rename(&g0, &away).unwrap();
    mkfifo(&g0);
    for cmd in ["list", "info"] {
        let out = bounded(dir, &[os(cmd), g1.as_os_str()], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dest = s.path("out");
    let out = bounded(
        dir,
        &[os("unpack"), g1.as_os_str(), os("-C"), dest.as_os_str()],
        None,
    );
    fails_with(&out, &["g0.znippy", "is a FIFO"]);
    // Named, it is found first: the FIFO is never waited on.
    let out = bounded(
        dir,
        &[os("verify"), g1.as_os_str(), os("--base"), away.as_os_str()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Standard input stays readable from a pipe.
    let piped = Command::new("sh")
        .arg("-c")
        .arg(r#"cat "$1" | "$2" verify - --base "$3" -q"#)
        .args([
            os("sh"),
            g1.as_os_str(),
            bin().as_os_str(),
            away.as_os_str(),
        ])
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
}

#[test]
fn with_one_directory_per_day_bases_are_found_where_they_were() {
    let s = Scratch::new("bases-days");
    let src = s.path("src");
    let days = s.path("days");
    for d in ["mon", "tue", "wed"] {
        fs::create_dir_all(days.join(d)).unwrap();
    }
    initial(&src);
    let at = |d: &str| days.join(d).join("srv.znippy");
    pack(&src, &at("mon"), None);
    let snap_mon = snapshot(&src);
    write(&src, "b.txt", b"tuesday\n");
    write(&src, "tue.txt", b"only since tuesday\n");
    // Through a link that later moves on, as a `latest` link does.
    std::os::unix::fs::symlink("mon", days.join("latest")).unwrap();
    pack(&src, &at("tue"), Some(&days.join("latest/srv.znippy")));
    fs::remove_file(days.join("latest")).unwrap();
    std::os::unix::fs::symlink("tue", days.join("latest")).unwrap();
    write(&src, "b.txt", b"wednesday, longer\n");
    pack(&src, &at("wed"), Some(&at("tue")));
    let snap_wed = snapshot(&src);
    // wed takes keep/ from mon (inherited through tue) and tue.txt from tue.
    let info = ok(&[os("info"), at("wed").as_os_str(), os("--json")]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let mut rel: Vec<&str> = (info["bases"].as_array().unwrap().iter())
        .map(|b| b["relative_path"].as_str().unwrap())
        .collect();
    rel.sort();
    assert_eq!(rel, ["../mon/srv.znippy", "../tue/srv.znippy"]);
    for d in ["tue", "wed"] {
        ok(&[os("verify"), at(d).as_os_str(), os("-q")]);
    }
    let dest = s.path("out");
    ok(&[
        os("unpack"),
        at("wed").as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("-q"),
    ]);
    assert_eq!(snapshot(&dest), snap_wed);
    // The days moved together still find each other.
    let moved = s.path("moved");
    fs::rename(&days, &moved).unwrap();
    ok(&[
        os("verify"),
        moved.join("wed/srv.znippy").as_os_str(),
        os("-q"),
    ]);
    let dest = s.path("out-mon");
    ok(&[
        os("unpack"),
        moved.join("mon/srv.znippy").as_os_str(),
        os("-C"),
        dest.as_os_str(),
        os("-q"),
    ]);
    assert_eq!(snapshot(&dest), snap_mon);
    // Monday gone: tuesday is not taken for its own base, and the places looked at are said.
    fs::remove_file(moved.join("mon/srv.znippy")).unwrap();
    let out = run(&[os("verify"), moved.join("tue/srv.znippy").as_os_str()]);
    let err = fails_with(
        &out,
        &["not found at", "mon/srv.znippy", "is this archive itself"],
    );
    assert!(!err.contains("is not the archive recorded"), "{err}");
}

#[test]
fn cat_and_extract_need_only_the_bases_they_read_from() {
    let s = Scratch::new("bases-need");
    two_generations(&s);
    let src = s.path("src");
    write(&src, "d.txt", b"added in g2\n");
    pack(&src, &s.path("g2.znippy"), Some(&s.path("g1.znippy")));
    fs::rename(s.path("g0.znippy"), s.path("away.znippy")).unwrap();
    for g in ["g1.znippy", "g2.znippy"] {
        let g = s.path(g);
        // new/c.txt lies in g1 (present), b.txt in g1 or g2, d.txt in g2 (or absent).
        let cat = ok(&[os("cat"), g.as_os_str(), os("new/c.txt")]);
        assert_eq!(cat.stdout, b"added in g1\n");
        let cat = ok(&[os("cat"), g.as_os_str(), os("b.txt")]);
        assert_eq!(cat.stdout, b"version 1, longer\n");
        let out = run(&[os("cat"), g.as_os_str(), os("keep/a.txt")]);
        fails_with(&out, &["keep/a.txt", "g0.znippy", "--base"]);
        let dest = s.path("out");
        let _ = fs::remove_dir_all(&dest);
        ok(&[
            os("extract"),
            g.as_os_str(),
            os("new"),
            os("b.txt"),
            os("-C"),
            dest.as_os_str(),
            os("-q"),
        ]);
        assert_eq!(fs::read(dest.join("new/c.txt")).unwrap(), b"added in g1\n");
        let out = run(&[
            os("extract"),
            g.as_os_str(),
            os("keep"),
            os("-C"),
            dest.as_os_str(),
        ]);
        fails_with(&out, &["keep/", "g0.znippy"]);
        assert!(!dest.join("keep").exists());
        // The whole archive still needs every base.
        let out = run(&[
            os("unpack"),
            g.as_os_str(),
            os("-C"),
            s.path("all").as_os_str(),
        ]);
        fails_with(&out, &["g0.znippy"]);
        fails_with(&run(&[os("verify"), g.as_os_str()]), &["g0.znippy"]);
    }
    // With the base named, all of it reads.
    let away = s.path("away.znippy");
    let cat = ok(&[
        os("cat"),
        s.path("g2.znippy").as_os_str(),
        os("keep/small"),
        os("--base"),
        away.as_os_str(),
    ]);
    assert_eq!(cat.stdout, b"small and unchanged\n");
}

#[test]
fn an_incremental_archive_without_relative_paths_still_reads() {
    // Written by 33a242f, before relative paths were recorded: g0 holds keep.txt,
    // g1 (built on g0, beside it) holds new.txt and takes keep.txt from g0.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-relative-paths");
    let g1 = data.join("g1.znippy");
    let a = znippy_uring::Archive::open(&g1).unwrap();
    assert_eq!(a.base_relative_paths(), [None]);
    a.require_bases().unwrap();
    assert!(a.verify(1).unwrap().is_ok());
    let mut kept = Vec::new();
    a.read_file(b"keep.txt", &mut kept).unwrap();
    assert_eq!(kept, b"kept in g0\n");
    let info = ok(&[os("info"), g1.as_os_str(), os("--json")]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(info["bases"][0]["relative_path"].is_null());
}
