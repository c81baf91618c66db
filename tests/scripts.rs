//! Packing from shell pipelines: `--from-list` (NUL-separated paths, as `find -print0`
//! writes them), `-o -` (the archive streamed to standard output) and `--exclude`.

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

fn listed(archive: &std::path::Path) -> Vec<String> {
    let out = ok(&[os("list"), archive.as_os_str()]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs the binary with `input` on standard input.
fn with_stdin(args: &[&std::ffi::OsStr], input: &[u8]) -> std::process::Output {
    let mut child = command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn from_list_packs_exactly_the_listed_paths_in_walk_order() {
    let s = Scratch::new("from-list");
    let src = s.path("src");
    for rel in [
        "etc/hosts",
        "etc/ssl/cert.pem",
        "var/log/a.log",
        "var/log/b.log",
        "home/u/notes",
    ] {
        write(&src, rel, rel.as_bytes());
    }
    fs::hard_link(src.join("etc/hosts"), src.join("home/u/link")).unwrap();
    // Out of order, a duplicate, `./`, `//`, an absolute path, the root itself, a
    // hard link listed before its first name, an excluded file, a trailing NUL.
    let list = format!(
        "./var/log/b.log\0home/u/link\0{}/etc/hosts\0etc\0etc//ssl/./cert.pem\0var/log/b.log\0.\0",
        src.display()
    );
    fs::write(s.path("list"), &list).unwrap();
    let a = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("--from-list"),
        s.path("list").as_os_str(),
        os("--exclude"),
        os("*.pem"),
        os("-o"),
        a.as_os_str(),
    ]);
    assert_eq!(
        listed(&a),
        ["etc", "etc/hosts", "home/u/link", "var/log/b.log"],
        "a listed directory is not descended; unlisted parents are not entries"
    );
    let dest = s.path("dest");
    ok(&[os("unpack"), a.as_os_str(), os("-C"), dest.as_os_str()]);
    assert_eq!(
        fs::read(dest.join("var/log/b.log")).unwrap(),
        b"var/log/b.log"
    );
    let (hosts, link) = (
        fs::metadata(dest.join("etc/hosts")).unwrap(),
        fs::metadata(dest.join("home/u/link")).unwrap(),
    );
    assert_eq!(hosts.ino(), link.ino(), "the hard link is restored as one");
    assert!(!dest.join("var/log/a.log").exists());

    // From `find -print0` on standard input, with DIR left to the current directory.
    let find = Command::new("find")
        .args([".", "-name", "*.log", "-print0"])
        .current_dir(&src)
        .output()
        .unwrap();
    let b = s.path("b.znippy");
    let piped = command()
        .args([
            os("pack"),
            os("--from-list"),
            os("-"),
            os("-o"),
            b.as_os_str(),
        ])
        .current_dir(&src)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    piped
        .stdin
        .as_ref()
        .unwrap()
        .write_all(&find.stdout)
        .unwrap();
    let piped = piped.wait_with_output().unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(listed(&b), ["var/log/a.log", "var/log/b.log"]);
}

#[test]
fn a_full_find_list_gives_the_same_archive_as_the_walk() {
    let s = Scratch::new("from-list-find");
    let src = s.path("src");
    awkward_tree(&src, 64 << 10);
    let walked = s.path("walked.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), walked.as_os_str()]);
    let find = Command::new("find")
        .args([".", "-print0"])
        .current_dir(&src)
        .output()
        .unwrap();
    let listed = s.path("listed.znippy");
    let r = with_stdin(
        &[
            os("pack"),
            src.as_os_str(),
            os("--from-list"),
            os("-"),
            os("-o"),
            listed.as_os_str(),
        ],
        &find.stdout,
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        fs::read(&walked).unwrap() == fs::read(&listed).unwrap(),
        "packing find's list of everything must equal packing the tree"
    );
}

#[test]
fn from_list_refuses_bad_lists_naming_the_path() {
    let s = Scratch::new("from-list-bad");
    let src = s.path("src");
    write(&src, "a/x", b"x");
    let a = s.path("a.znippy");
    let cases: [(&[u8], &str); 5] = [
        (
            b"a/x\0a/../../etc/passwd\0",
            "a/../../etc/passwd: listed with a '..' component",
        ),
        (b"a/x\0a/nope\0", "a/nope: listed, but does not exist"),
        (b"/etc/passwd\0", "/etc/passwd: listed, but not beneath"),
        (b"a/x\na\n", "no NUL separators"),
        (b"a/x\0a/x/y\0", "a/x/y"),
    ];
    for (list, message) in cases {
        let r = with_stdin(
            &[
                os("pack"),
                src.as_os_str(),
                os("--from-list"),
                os("-"),
                os("-o"),
                a.as_os_str(),
            ],
            list,
        );
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(err.contains(message), "{message:?} not in {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!a.exists(), "no archive after a refused list");
    }
}

/// Packs `src` with `args` to standard output read through a pipe.
fn pack_to_pipe(src: &std::path::Path, args: &[&str], env: (&str, &str)) -> (Vec<u8>, String) {
    let mut child = command()
        .arg("pack")
        .arg(src)
        .args(["-o", "-"])
        .args(args)
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut archive = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut archive)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (archive, err)
}

#[test]
fn an_archive_streamed_through_a_pipe_equals_the_one_written_to_a_file() {
    let s = Scratch::new("stdout");
    let src = s.path("src");
    awkward_tree(&src, 64 << 10);
    write(&src, "big.bin", &bytes(9, 3 << 20, false));
    write(&src, "big.txt", &bytes(8, 3 << 20, true));
    write(&src, "stored.zip", &bytes(7, 500_000, false));
    let file = s.path("file.znippy");
    let args = ["--chunk-size", "64K", "--threads", "2"];
    let mut pack = vec![os("pack"), src.as_os_str(), os("-o"), file.as_os_str()];
    pack.extend(args.iter().map(os));
    ok(&pack);
    let expected = fs::read(&file).unwrap();
    for backend in ["uring", "portable"] {
        let (streamed, err) = pack_to_pipe(&src, &args, ("ZNIPPY_IO", backend));
        assert!(
            streamed == expected,
            "{backend}: {} streamed bytes differ from the {} written to a file",
            streamed.len(),
            expected.len()
        );
        assert!(err.starts_with("packed "), "{err}");
    }
    // The JSON report goes to stderr: stdout carries the archive.
    let (streamed, err) = pack_to_pipe(&src, &["--json", "--chunk-size", "64K"], ("Z", ""));
    assert!(streamed == expected);
    let report: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(report["archive"], "-");
    assert_eq!(report["bytes_out"], expected.len());
    // An archive written into a file inside the tree is left out of it.
    let inside = src.join("self.znippy");
    let status = command()
        .arg("pack")
        .arg(&src)
        .args(["-o", "-", "-q"])
        .stdout(fs::File::create(&inside).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!listed(&inside).contains(&"self.znippy".to_string()));
}

#[test]
fn a_stream_whose_reader_goes_away_fails_the_pack() {
    let s = Scratch::new("stdout-closed");
    let src = s.path("src");
    write(&src, "big.bin", &bytes(5, 8 << 20, false));
    let mut child = command()
        .arg("pack")
        .arg(&src)
        .args(["-o", "-", "--chunk-size", "64K"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(
        head[..8],
        znippy_uring::testing::format::header::MAGIC,
        "the header comes first"
    );
    drop(child.stdout.take());
    assert!(!child.wait().unwrap().success());
}

#[test]
fn an_archive_is_never_written_to_or_read_from_a_terminal() {
    let s = Scratch::new("stdout-tty");
    let src = s.path("src");
    write(&src, "a", b"a");
    let z = bin().display().to_string();
    for (cmd, refusal) in [
        (
            format!("{z} pack {} -o -", src.display()),
            "refusing to write an archive to a terminal",
        ),
        (
            format!("{z} list -"),
            "refusing to read an archive from a terminal",
        ),
    ] {
        let Ok(out) = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
        else {
            eprintln!("SKIPPED: util-linux `script` is not installed (.ci/run installs it)");
            return;
        };
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{shown}");
        assert!(shown.contains(refusal), "{shown}");
    }
}

#[test]
fn exclude_patterns_follow_gitignore_rules() {
    let s = Scratch::new("exclude");
    let src = s.path("src");
    for rel in [
        "app.log",
        "keep.log",
        "src/main.rs",
        "src/debug.log",
        "build/out.o",
        "build/deep/x",
        "src/build/kept-file-named-build-dir",
        "top.tmp",
        "src/nested.tmp",
    ] {
        write(&src, rel, rel.as_bytes());
    }
    let out = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--exclude"),
        os("*.log"),
        os("--exclude"),
        os("!keep.log"),
        os("--exclude"),
        os("/build/"),
        os("--exclude"),
        os("/top.tmp"),
    ]);
    let list = String::from_utf8(ok(&[os("list"), out.as_os_str()]).stdout).unwrap();
    let listed: Vec<&str> = list.lines().collect();
    assert_eq!(
        listed,
        [
            "keep.log",
            "src",
            "src/build",
            "src/build/kept-file-named-build-dir",
            "src/main.rs",
            "src/nested.tmp",
        ]
    );
    let bad = run(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--exclude"),
        os("{a"),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--exclude \"{a\""));
}

#[test]
fn read_commands_take_the_archive_from_standard_input() {
    let s = Scratch::new("stdin");
    let src = s.path("src");
    awkward_tree(&src, 64 << 10);
    write(&src, "big.txt", &bytes(4, 1 << 20, true));
    let file = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), file.as_os_str()]);
    let archive = fs::read(&file).unwrap();

    // `pack -o - | unpack -`: two processes joined by a pipe.
    let dest = s.path("dest");
    let mut packer = command()
        .arg("pack")
        .arg(&src)
        .args(["-o", "-", "-q"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let unpacked = command()
        .args([os("unpack"), os("-"), os("-C"), dest.as_os_str(), os("-q")])
        .stdin(packer.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(packer.wait().unwrap().success());
    assert!(
        unpacked.status.success(),
        "{}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    assert_eq!(snapshot(&src), snapshot(&dest));

    // From a pipe (spooled) and from a regular file (used in place), as from a path.
    let by_path = ok(&[os("list"), os("-l"), file.as_os_str()]).stdout;
    let piped = with_stdin(&[os("list"), os("-l"), os("-")], &archive);
    assert!(piped.status.success());
    assert_eq!(piped.stdout, by_path);
    let cat = with_stdin(&[os("cat"), os("-"), os("big.txt")], &archive);
    assert_eq!(cat.stdout, bytes(4, 1 << 20, true));
    let verified = command()
        .args(["verify", "-", "--json"])
        .stdin(fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(verified.status.success());
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["archive"], "-");
    assert_eq!(report["damaged"].as_array().map(Vec::len), Some(0));

    // A stream cut short has no footer: refused whole, with one line.
    let cut = with_stdin(&[os("list"), os("-")], &archive[..archive.len() - 100]);
    let err = String::from_utf8_lossy(&cut.stderr);
    assert_eq!(cut.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("znippy-uring: error: standard input: corrupt archive"),
        "{err}"
    );
}

#[test]
fn list_null_ends_each_name_with_a_nul_so_names_with_newlines_survive() {
    let s = Scratch::new("list-null");
    let src = s.path("src");
    write(&src, "line\nbreak.txt", b"1");
    write(&src, "plain.txt", b"2");
    fs::create_dir_all(src.join("dir\nnamed")).unwrap();
    let a = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), a.as_os_str()]);
    let names = |out: &[u8]| -> Vec<Vec<u8>> {
        assert_eq!(out.last(), Some(&0), "{}", String::from_utf8_lossy(out));
        out.split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let plain = ok(&[os("list"), os("-0"), a.as_os_str()]).stdout;
    assert_eq!(
        names(&plain),
        [
            b"dir\nnamed".to_vec(),
            b"line\nbreak.txt".to_vec(),
            b"plain.txt".to_vec()
        ]
    );
    let long = ok(&[os("list"), os("--null"), os("-l"), a.as_os_str()]).stdout;
    let records = names(&long);
    assert_eq!(records.len(), 3);
    assert!(records[1].ends_with(b" line\nbreak.txt"), "{records:?}");
    assert!(records[0].starts_with(b"d"), "{records:?}");
    // Without -0, and not to a terminal: one name a line, as they are.
    let lines = ok(&[os("list"), a.as_os_str()]).stdout;
    assert_eq!(lines, b"dir\nnamed\nline\nbreak.txt\nplain.txt\n");
}
