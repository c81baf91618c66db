//! The operator's view: every command's `--json` report against the documented schema
//! (docs/report.schema.json), summary lines, `--quiet`, and the progress bar drawn
//! only on a terminal (a pseudo-terminal made with util-linux `script`).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn schema() -> (boon::Schemas, boon::SchemaIndex) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("report.schema.json", doc).unwrap();
    let index = compiler
        .compile("report.schema.json", &mut schemas)
        .unwrap();
    (schemas, index)
}

fn json_of(text: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(text);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn every_json_report_follows_the_documented_schema() {
    let (schemas, index) = schema();
    let check = |v: &serde_json::Value| {
        if let Err(e) = schemas.validate(v, index) {
            panic!("{v}\ndoes not follow docs/report.schema.json: {e}");
        }
    };
    let s = Scratch::new("cli-json");
    let src = s.path("src");
    small_files(&src, 20);
    let archive = s.path("a.znippy");
    let a = archive.as_os_str();
    let pack = ok(&[os("pack"), src.as_os_str(), os("-o"), a, os("--json")]);
    let report = json_of(&pack.stdout);
    check(&report);
    assert_eq!(report["files"], 20);
    assert!(
        pack.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&pack.stderr)
    );

    let dest = s.path("out");
    let unpack = ok(&[os("unpack"), a, os("-C"), dest.as_os_str(), os("--json")]);
    let report = json_of(&unpack.stdout);
    check(&report);
    assert_eq!(report["files"], 20);

    let verify = json_of(&ok(&[os("verify"), a, os("--json")]).stdout);
    check(&verify);
    assert_eq!(verify["ok"], true);
    let info = json_of(&ok(&[os("info"), a, os("--json")]).stdout);
    check(&info);
    assert_eq!(info["files"], 20);

    let first = znippy_uring::Archive::open(&archive).unwrap().entries()[1].clone();
    let cat = ok(&[
        os("cat"),
        a,
        os(std::str::from_utf8(&first.path).unwrap()),
        os("--json"),
    ]);
    assert_eq!(cat.stdout.len() as u64, first.size);
    let report = json_of(&cat.stderr);
    check(&report);
    assert_eq!(report["bytes"], first.size);

    let csv = s.path("index.csv");
    let index = json_of(&ok(&[os("index"), a, os("-o"), csv.as_os_str(), os("--json")]).stdout);
    check(&index);
    assert_eq!(index["format"], "csv");
    assert_eq!(index["rows"], info["entries"]);

    let dir = s.path("catalog");
    let catalog = ok(&[os("catalog"), a, os("-o"), dir.as_os_str(), os("--json")]);
    let report = json_of(&catalog.stdout);
    check(&report);
    assert_eq!(
        (report["archives"].as_u64(), report["rows"].clone()),
        (Some(1), info["entries"].clone())
    );
    // With a duplicate and a failure (exit status 1, the report still printed).
    let missing = s.path("missing.znippy");
    let args = [
        os("catalog"),
        a,
        a,
        missing.as_os_str(),
        os("-o"),
        dir.as_os_str(),
    ];
    let catalog = run(&[&args[..], &[os("--json")]].concat());
    assert_eq!(catalog.status.code(), Some(1));
    let report = json_of(&catalog.stdout);
    check(&report);
    assert_eq!(
        (
            report["duplicates"].as_array().map(Vec::len),
            report["failed"].as_array().map(Vec::len)
        ),
        (Some(1), Some(1))
    );

    // mount: its report comes once it is unmounted (where /dev/fuse can be used).
    if Path::new("/dev/fuse").exists() && is_root() {
        let mnt = s.path("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let child = command()
            .args([os("mount"), a, mnt.as_os_str(), os("--json")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mounts = || std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let start = std::time::Instant::now();
        while !mounts().contains(&*mnt.to_string_lossy()) {
            assert!(start.elapsed().as_secs() < 20, "not mounted");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 20); // d00..d19
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let report = json_of(&out.stdout);
        check(&report);
        assert_eq!(report["entries"], info["entries"]);
    }

    // Damage: the report says which file and which chunk, and the exit status is 1.
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let bad = run(&[os("verify"), a, os("--json")]);
    assert_eq!(bad.status.code(), Some(1));
    let report = json_of(&bad.stdout);
    check(&report);
    assert_eq!(report["ok"], false);
    assert_eq!(report["damaged_chunks"][0]["chunk"], 0);
    assert!(!report["damaged"].as_array().unwrap().is_empty());
}

#[test]
fn json_reports_name_paths_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new("cli-json-bytes");
    let src = s.path("src");
    small_files(&src, 3);
    let archive = s
        .path("")
        .join(std::ffi::OsStr::from_bytes(b"a\xff.znippy"));
    let a = archive.as_os_str();
    let report = json_of(&ok(&[os("pack"), src.as_os_str(), os("-o"), a, os("--json")]).stdout);
    assert_eq!(report["archive"], archive.to_string_lossy().as_ref());
    assert!(
        report["archive"]
            .as_str()
            .unwrap()
            .ends_with("a\u{fffd}.znippy")
    );
    let dest = s.path("").join(std::ffi::OsStr::from_bytes(b"out\xfe"));
    let d = dest.as_os_str();
    let report = json_of(&ok(&[os("unpack"), a, os("-C"), d, os("--json")]).stdout);
    assert_eq!(report["target"], dest.to_string_lossy().as_ref());
    assert_eq!(report["files"], 3);
}

#[test]
fn summary_lines_and_quiet() {
    let s = Scratch::new("cli-summary");
    let src = s.path("src");
    small_files(&src, 5);
    let archive = s.path("a.znippy");
    let a = archive.as_os_str();
    let pack = ok(&[os("pack"), src.as_os_str(), os("-o"), a]);
    let err = String::from_utf8_lossy(&pack.stderr);
    assert!(err.starts_with("packed 5 files"), "{err}");
    assert!(err.contains("ratio") && err.contains("MB/s"), "{err}");
    let verify = ok(&[os("verify"), a]);
    assert!(String::from_utf8_lossy(&verify.stderr).contains(": OK"));
    let d = s.path("d");
    for args in [
        vec![os("pack"), src.as_os_str(), os("-o"), a, os("-q")],
        vec![os("verify"), a, os("--quiet")],
        vec![os("unpack"), a, os("-C"), d.as_os_str(), os("-q")],
    ] {
        let r = ok(&args);
        assert!(r.stderr.is_empty() && r.stdout.is_empty(), "{args:?}");
    }
}

/// Runs the command under a pseudo-terminal (util-linux `script`), returning what the
/// terminal showed.
fn on_a_terminal(args: &[&str]) -> Option<String> {
    let cmd = std::iter::once(bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn progress_bar_on_a_terminal_only_and_never_with_quiet() {
    let s = Scratch::new("cli-progress");
    let src = s.path("src");
    write(&src, "big.txt", &bytes(3, 24 << 20, true));
    let archive = s.path("a.znippy");
    let (src_s, a) = (src.display().to_string(), archive.display().to_string());
    let Some(shown) = on_a_terminal(&["pack", &src_s, "-o", &a, "--level", "9"]) else {
        eprintln!("SKIPPED: util-linux `script` is not installed (.ci/run installs it)");
        return;
    };
    assert!(shown.contains("pack "), "{shown}");
    assert!(
        shown.contains("walking:") || shown.contains("ETA"),
        "{shown}"
    );
    assert!(shown.contains("packed 1 files"), "{shown}");

    let quiet = on_a_terminal(&["verify", &a, "-q"]).unwrap();
    assert!(quiet.trim().is_empty(), "{quiet}");
    // Not a terminal: no bar, only the summary.
    let piped = ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("ETA") && !err.contains("walking"), "{err}");
    // Forced without a terminal: plain lines, no escape sequences.
    let forced = ok(&[os("verify"), archive.as_os_str(), os("--progress")]);
    assert!(!String::from_utf8_lossy(&forced.stderr).contains('\u{1b}'));
}

#[test]
fn bench_shows_its_jobs_as_a_bar_on_a_terminal_and_as_lines_when_forced() {
    let s = Scratch::new("cli-bench-progress");
    let scratch = s.path("scratch").display().to_string();
    let args = [
        "bench",
        "--scale",
        "0.001",
        "--corpus",
        "small",
        "--reps",
        "2",
        "--scratch",
        &scratch,
    ];
    let Some(shown) = on_a_terminal(&args) else {
        eprintln!("SKIPPED: util-linux `script` is not installed (.ci/run installs it)");
        return;
    };
    // Without peers: pack, unpack, verify, list and cat, twice.
    assert!(
        shown.contains("/10 jobs") && shown.contains("ETA"),
        "{shown}"
    );
    assert!(
        shown.contains("small: unpack znippy-uring (2/2)"),
        "{shown}"
    );

    let mut forced: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    forced.push("--progress".into());
    let forced: Vec<&std::ffi::OsStr> = forced.iter().map(|a| a.as_os_str()).collect();
    let err = String::from_utf8(ok(&forced).stderr).unwrap();
    let jobs: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("bench: job "))
        .collect();
    assert_eq!(jobs.len(), 10, "{err}");
    assert_eq!(jobs[0], "bench: job 1/10: small: pack znippy-uring (1/2)");
    assert_eq!(jobs[9], "bench: job 10/10: small: cat znippy-uring (2/2)");
    assert!(!err.contains('\u{1b}'), "no escape codes off a terminal");

    let plain: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let err = String::from_utf8(ok(&plain).stderr).unwrap();
    assert!(!err.contains("bench: job") && !err.contains("ETA"), "{err}");
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let bash = String::from_utf8(ok(&[os("completions"), os("bash")]).stdout).unwrap();
    for word in [
        "pack",
        "unpack",
        "verify",
        "index",
        "--on-change",
        "--numeric-owner",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let s = Scratch::new("cli-completions");
    let script = s.path("znippy-uring.bash");
    std::fs::create_dir_all(s.path("")).unwrap();
    std::fs::write(&script, &bash).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(
        syntax.success(),
        "the bash completion script does not parse"
    );
    let zsh = ok(&[os("completions"), os("zsh")]).stdout;
    assert!(String::from_utf8_lossy(&zsh).contains("#compdef znippy-uring"));

    let man = String::from_utf8(ok(&[os("man")]).stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH znippy-uring 1"),
        "{man}"
    );
    for section in ["PACK COMMAND", "UNPACK COMMAND", "INDEX COMMAND"] {
        assert!(man.contains(section), "man page lacks {section}");
    }
    assert!(man.contains("on\\-change"), "man page lacks --on-change");
}

#[test]
fn list_escapes_control_bytes_in_names_on_a_terminal_only() {
    let s = Scratch::new("cli-list-escape");
    let src = s.path("src");
    write(&src, "red\x1b[31mname", b"1");
    let a = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), a.as_os_str()]);
    let Some(shown) = on_a_terminal(&["list", &a.display().to_string()]) else {
        eprintln!("SKIPPED: no `script` to make a terminal");
        return;
    };
    assert!(shown.contains("red\\x1b[31mname"), "{shown:?}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
    let piped = ok(&[os("list"), a.as_os_str()]).stdout;
    assert_eq!(piped, b"red\x1b[31mname\n");
}

#[test]
fn pack_help_and_readme_say_the_same_about_on_change_and_on_unreadable() {
    let help = String::from_utf8(ok(&[os("pack"), os("--help")]).stdout).unwrap();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // retry gives up after 3 reads: both say so, and neither promises to go on until
    // a read sees the file unchanged.
    for text in [&help, &readme] {
        assert!(
            text.contains("up to 3 times, until a read sees it unchanged"),
            "{text}"
        );
        assert!(text.contains("if all 3 see it change"), "{text}");
        assert!(
            !text.contains("again until a read sees it unchanged"),
            "{text}"
        );
    }
    assert!(help.contains("--on-unreadable") && help.contains("exit with status 3"));
    assert!(readme.contains("| 3 | `pack`: the archive was written, but without entries"));
}

#[test]
fn values_out_of_range_are_an_invalid_command_line() {
    let s = Scratch::new("cli-usage");
    let src = s.path("src");
    write(&src, "a", b"a");
    let out = s.path("a.znippy");
    for bad in [
        ["--chunk-size", "3M"],
        ["--threads", "0"],
        ["--level", "99"],
        ["--memory", "1K"],
    ] {
        let r = run(&[
            os("pack"),
            src.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os(bad[0]),
            os(bad[1]),
        ]);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(!out.exists());
    }
}
