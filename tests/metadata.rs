//! Metadata fidelity, checked with independent tools (`find -printf`, `diff -r`), not
//! only with this project's reader: owners, special bits, nanosecond mtimes, symlinks,
//! directory modes applied after their contents.

mod common;
#[allow(dead_code)] // only its index rewriter is used here
#[path = "../fuzz/src/lib.rs"]
mod oracle;

use common::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::Path;
use std::process::Command;

/// `find -printf` listing: path, type, mode, owner, size, mtime (ns), link target.
fn listing(dir: &Path, owners: bool) -> String {
    let fmt = if owners {
        "%P|%y|%#m|%U:%G|%s|%T@|%l|%n\n"
    } else {
        "%P|%y|%#m|%s|%T@|%l|%n\n"
    };
    let out = Command::new("find")
        .arg(dir)
        .arg("-mindepth")
        .arg("1")
        .arg("-printf")
        .arg(fmt)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split('|').collect();
            if f[1] == "d" {
                // Directory sizes and link counts are the file system's business.
                f[if owners { 4 } else { 3 }] = "-";
                let last = f.len() - 1;
                f[last] = "-";
            }
            f.join("|")
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn diff_r(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "diff -r: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn round_trip_matches_the_original_by_find_and_diff() {
    let s = Scratch::new("fidelity");
    let src = s.path("src");
    awkward_tree(&src, 64 << 10);
    // A read-only directory with contents: its mode must be applied after them.
    write(&src, "readonly/inside.txt", b"data");
    fs::set_permissions(src.join("readonly"), fs::Permissions::from_mode(0o555)).unwrap();
    // Nanosecond mtimes, set explicitly.
    let t = Command::new("touch")
        .args(["-d", "2021-03-04 05:06:07.123456789"])
        .arg(src.join("bin/tool.sh"))
        .status()
        .unwrap();
    assert!(t.success());
    // Hard links: three names of one file, in different directories.
    let big = bytes(11, 300_000, true);
    write(&src, "links/original.txt", &big);
    fs::hard_link(src.join("links/original.txt"), src.join("links/second.txt")).unwrap();
    fs::create_dir_all(src.join("elsewhere")).unwrap();
    fs::hard_link(
        src.join("links/original.txt"),
        src.join("elsewhere/third.txt"),
    )
    .unwrap();
    let archive = s.path("a.znippy");
    let dest = s.path("dest");
    pack_and_unpack(&src, &archive, &dest, &["--chunk-size", "64K"]);
    assert_eq!(listing(&src, is_root()), listing(&dest, is_root()));
    diff_r(&src, &dest);
    let plain = listing(&dest, false);
    assert!(
        plain.contains("bin/tool.sh|f|0755|18|1614834367.1234567890||1"),
        "{plain}"
    );
    assert!(
        plain.contains("elsewhere/third.txt|f|0644|300000|"),
        "{plain}"
    );
    assert!(plain.contains("links/second.txt|f|0644|300000|"), "{plain}");
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| fs::metadata(dest.join(p)).unwrap().ino();
    assert_eq!(ino("links/original.txt"), ino("elsewhere/third.txt"));
    assert_eq!(ino("links/original.txt"), ino("links/second.txt"));
    // The linked data is stored once.
    let a = znippy_uring::Archive::open(&archive).unwrap();
    let raw: u64 = a.chunks().iter().map(|c| c.raw_len).sum();
    let kind = |k| a.entries().iter().filter(move |e| e.kind == k);
    let files: u64 = kind(znippy_uring::EntryKind::File).map(|e| e.size).sum();
    assert_eq!(raw, files);
    assert_eq!(kind(znippy_uring::EntryKind::Hardlink).count(), 2);
    // cat of a link reads the file; extracting only a link brings the file it names.
    let cat = ok(&[os("cat"), archive.as_os_str(), os("links/second.txt")]);
    assert!(cat.stdout == big);
    let part = s.path("part");
    ok(&[
        os("extract"),
        archive.as_os_str(),
        os("links/second.txt"),
        os("-C"),
        part.as_os_str(),
    ]);
    assert!(fs::read(part.join("links/second.txt")).unwrap() == big);
    assert_eq!(
        fs::metadata(part.join("links/second.txt")).unwrap().ino(),
        // In walk order elsewhere/ comes first: that name holds the data.
        fs::metadata(part.join("elsewhere/third.txt"))
            .unwrap()
            .ino()
    );
}

#[test]
fn owners_and_special_bits_follow_the_gnu_tar_defaults() {
    if !is_root() {
        eprintln!("SKIPPED: restoring owners needs root");
        return;
    }
    let s = Scratch::new("owners");
    let src = s.path("src");
    write(&src, "suid-tool", b"#!/bin/sh\n");
    fs::set_permissions(src.join("suid-tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir_all(src.join("shared")).unwrap();
    write(&src, "shared/file", b"x");
    fs::set_permissions(src.join("shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("suid-tool", src.join("link")).unwrap();
    for p in ["suid-tool", "shared", "shared/file"] {
        std::os::unix::fs::chown(src.join(p), Some(1234), Some(5678)).unwrap();
    }
    // chown clears setuid: set the modes after the owners.
    fs::set_permissions(src.join("suid-tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(src.join("shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    lchown(src.join("link"), Some(4321), Some(8765)).unwrap();
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);

    // As root, by default: owners and special bits restored, symlink owner too.
    let dest = s.path("root-default");
    ok(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
    ]);
    assert_eq!(listing(&src, true), listing(&dest, true));
    assert!(listing(&dest, true).contains("suid-tool|f|04755|1234:5678|"));
    assert!(listing(&dest, true).contains("link|l|0777|4321:8765|"));

    // Explicitly off: owned by the extracting user, only the rwx bits the umask lets
    // through (GNU tar's --no-same-permissions).
    let plain = s.path("plain");
    let cmd = format!(
        "umask 027; {} unpack {} -C {} --no-same-owner --no-preserve-permissions",
        bin().display(),
        archive.display(),
        plain.display()
    );
    let r = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let l = listing(&plain, true);
    assert!(l.contains("suid-tool|f|0750|0:0|"), "{l}");
    assert!(l.contains("shared|d|0750|0:0|"), "{l}");
    assert!(l.contains("shared/file|f|0640|0:0|"), "{l}");

    // As an ordinary user, by default: the same as explicitly off.
    let user = s.path("user");
    fs::create_dir_all(&user).unwrap();
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&user, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644)).unwrap();
    let cmd = format!(
        "umask 022; {} unpack {} -C {}/out",
        bin().display(),
        archive.display(),
        user.display()
    );
    let r = as_nobody(&cmd);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let l = listing(&user.join("out"), true);
    assert!(l.contains("suid-tool|f|0755|65534:65534|"), "{l}");
    assert!(l.contains("shared|d|0755|65534:65534|"), "{l}");
}

/// `name=value` of every extended attribute of `path`, sorted, read with python3.
#[test]
fn owner_names_are_archived_and_win_over_ids_on_unpack_unless_numeric() {
    if !is_root() {
        eprintln!("SKIPPED: restoring owners needs root");
        return;
    }
    let s = Scratch::new("names");
    let src = s.path("src");
    write(&src, "by-root", b"r");
    write(&src, "by-number", b"n");
    write(&src, "by-other-name", b"o");
    write(&src, "by-unknown-name", b"u");
    std::os::unix::fs::chown(src.join("by-number"), Some(4242), Some(4343)).unwrap();
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    let list = String::from_utf8(ok(&[os("list"), os("-l"), archive.as_os_str()]).stdout).unwrap();
    let line = |name: &str| list.lines().find(|l| l.ends_with(name)).unwrap().to_owned();
    assert!(line("by-root").contains(" root/root "), "{list}");
    assert!(line("by-number").contains(" 4242/4343 "), "{list}");

    // As if packed on another system: the same names under other ids there.
    let data = fs::read(&archive).unwrap();
    let moved = oracle::rewrite_index(&data, |entries, _| {
        for e in entries.iter_mut() {
            match e.path.as_slice() {
                b"by-other-name" => (e.uid, e.gid) = (4000, 4001),
                b"by-unknown-name" => {
                    (e.uid, e.gid) = (4100, 4101);
                    e.user = Some("no-such-user-znippy".into());
                    e.group = Some("no-such-group-znippy".into());
                }
                _ => {}
            }
        }
    })
    .unwrap();
    fs::write(&archive, moved).unwrap();
    let owners = |args: &[&str]| {
        let dest = s.path(&format!("d{}", args.len()));
        let mut cmd = vec![
            os("unpack"),
            archive.as_os_str(),
            os("-C"),
            dest.as_os_str(),
        ];
        cmd.extend(args.iter().map(os));
        ok(&cmd);
        listing(&dest, true)
    };
    let by_name = owners(&[]);
    assert!(by_name.contains("by-other-name|f|0644|0:0|"), "{by_name}");
    assert!(
        by_name.contains("by-unknown-name|f|0644|4100:4101|"),
        "{by_name}"
    );
    assert!(by_name.contains("by-number|f|0644|4242:4343|"), "{by_name}");
    let numeric = owners(&["--numeric-owner"]);
    assert!(
        numeric.contains("by-other-name|f|0644|4000:4001|"),
        "{numeric}"
    );
    assert!(numeric.contains("by-root|f|0644|0:0|"), "{numeric}");
}

fn xattrs_of(path: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os,sys\np=sys.argv[1]\nprint(' '.join(sorted(n+'='+os.getxattr(p,n,follow_symlinks=False).decode() for n in os.listxattr(p,follow_symlinks=False))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn set_xattr(path: &Path, name: &str, value: &str) -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import os,sys\nos.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())",
        ])
        .arg(path)
        .args([name, value])
        .status()
        .unwrap()
        .success()
}

#[test]
fn extended_attributes_round_trip_by_namespace() {
    let s = Scratch::new("xattr");
    let src = s.path("src");
    write(&src, "f.txt", b"data");
    write(&src, "big.bin", &bytes(3, 300_000, false));
    fs::create_dir_all(src.join("d")).unwrap();
    if !set_xattr(&src.join("f.txt"), "user.comment", "hello") {
        eprintln!("SKIPPED: this file system does not take user xattrs");
        return;
    }
    assert!(set_xattr(&src.join("d"), "user.dir", "x"));
    assert!(set_xattr(&src.join("big.bin"), "user.split", "many chunks"));
    let trusted = is_root() && set_xattr(&src.join("f.txt"), "trusted.secret", "t");
    let pack_unpack = |pack_policy: &str, unpack_policy: &str, name: &str| {
        let archive = s.path(&format!("{name}.znippy"));
        ok(&[
            os("pack"),
            src.as_os_str(),
            os("-o"),
            archive.as_os_str(),
            os("--xattrs"),
            os(pack_policy),
            os("--chunk-size"),
            os("64K"),
        ]);
        let dest = s.path(name);
        ok(&[
            os("unpack"),
            archive.as_os_str(),
            os("-C"),
            dest.as_os_str(),
            os("--xattrs"),
            os(unpack_policy),
        ]);
        dest
    };
    let d = pack_unpack("user", "user", "default");
    assert_eq!(xattrs_of(&d.join("f.txt")), "user.comment=hello");
    assert_eq!(xattrs_of(&d.join("d")), "user.dir=x");
    assert_eq!(xattrs_of(&d.join("big.bin")), "user.split=many chunks");
    let none = pack_unpack("none", "user", "none");
    assert_eq!(xattrs_of(&none.join("f.txt")), "");
    if trusted {
        let all = pack_unpack("all", "all", "all");
        assert_eq!(
            xattrs_of(&all.join("f.txt")),
            "trusted.secret=t user.comment=hello"
        );
        // Archived, but restored only when asked.
        let user_only = pack_unpack("all", "user", "user-only");
        assert_eq!(xattrs_of(&user_only.join("f.txt")), "user.comment=hello");
    }
}

#[test]
fn sparse_files_keep_their_holes() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let s = Scratch::new("sparse");
    let src = s.path("src");
    fs::create_dir_all(&src).unwrap();
    // A split file (64 KiB chunks) of 20 MiB with 5 bytes of data in the middle, and a
    // small one (one solid chunk) with a hole before its data.
    let big = fs::File::create(src.join("big.img")).unwrap();
    big.write_all_at(b"hello", 10 << 20).unwrap();
    big.set_len(20 << 20).unwrap();
    let small = fs::File::create(src.join("small.img")).unwrap();
    small.write_all_at(&[7u8; 4096], 64 << 10).unwrap();
    small.set_len(100 << 10).unwrap();
    write(&src, "dense.bin", &vec![0u8; 200_000]); // zeros, but allocated: not sparse
    let blocks = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    if blocks(&src.join("big.img")) >= 1 << 20 {
        eprintln!("SKIPPED: this file system does not make holes");
        return;
    }
    let archive = s.path("a.znippy");
    let dest = s.path("dest");
    pack_and_unpack(&src, &archive, &dest, &["--chunk-size", "64K"]);
    diff_r(&src, &dest);
    assert_eq!(fs::metadata(dest.join("big.img")).unwrap().len(), 20 << 20);
    assert!(
        blocks(&dest.join("big.img")) < 1 << 20,
        "holes expanded: {}",
        blocks(&dest.join("big.img"))
    );
    assert!(
        blocks(&dest.join("small.img")) < 64 << 10,
        "holes expanded: {}",
        blocks(&dest.join("small.img"))
    );
    // A dense file of zeros stays dense.
    assert!(blocks(&dest.join("dense.bin")) >= 200_000);
}

#[test]
fn fifos_always_and_device_nodes_only_as_root_or_when_asked() {
    let s = Scratch::new("special");
    let src = s.path("src");
    fs::create_dir_all(&src).unwrap();
    let mkfifo = Command::new("mkfifo")
        .arg(src.join("pipe"))
        .status()
        .unwrap();
    assert!(mkfifo.success());
    let devices = is_root()
        && Command::new("mknod")
            .arg(src.join("null-copy"))
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success();
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    let list = String::from_utf8(ok(&[os("list"), os("-l"), archive.as_os_str()]).stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("prw-r--r--") && l.ends_with(" pipe")),
        "{list}"
    );
    let dest = s.path("dest");
    ok(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
    ]);
    assert_eq!(listing(&src, is_root()), listing(&dest, is_root()));
    if devices {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = fs::symlink_metadata(dest.join("null-copy")).unwrap();
        assert!(
            m.file_type().is_char_device() && m.rdev() == fs::metadata("/dev/null").unwrap().rdev()
        );
        // Not asked for: skipped with a warning, the fifo still made.
        let plain = s.path("plain");
        let r = ok(&[
            os("unpack"),
            archive.as_os_str(),
            os("-C"),
            plain.as_os_str(),
            os("--no-devices"),
        ]);
        assert!(String::from_utf8_lossy(&r.stderr).contains("1 device node(s) not created"));
        assert!(!plain.join("null-copy").exists() && plain.join("pipe").exists());
    } else {
        eprintln!("SKIPPED: device nodes need root");
    }
}

#[test]
fn an_mtime_beyond_what_the_format_holds_is_clamped_with_a_warning() {
    let s = Scratch::new("mtime-2300");
    let src = s.path("src");
    write(&src, "future", b"from the future");
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(10_413_792_000); // 2300
    fs::OpenOptions::new()
        .write(true)
        .open(src.join("future"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    let archive = s.path("a.znippy");
    let out = ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("future") && err.contains("2262-04-11"),
        "{err}"
    );
    let listed =
        String::from_utf8(ok(&[os("list"), os("-l"), archive.as_os_str()]).stdout).unwrap();
    assert!(listed.contains("2262-04-11"), "{listed}");
    let dest = s.path("out");
    ok(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
    ]);
    use std::os::unix::fs::MetadataExt;
    let year = fs::metadata(dest.join("future")).unwrap().mtime() / 31_556_952 + 1970;
    assert_eq!(year, 2262);
}

/// A private directory is private from the moment it is made: mkdir is given its
/// archived rwx bits (plus ours, to fill it), not 0755 until its mode is set at the
/// end, when another user could have opened files in it meanwhile.
#[test]
fn a_private_directory_is_made_private() {
    let s = Scratch::new("private-dir");
    let src = s.path("src");
    write(&src, "private/notes.txt", b"secret");
    fs::set_permissions(src.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    write(&src, "open/readme", b"hello");
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    let log = s.path("strace.log");
    let dest = s.path("dest");
    let traced = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=mkdir,mkdirat", "-o"])
        .arg(&log)
        .arg(bin())
        .args([
            os("unpack"),
            archive.as_os_str(),
            os("-C"),
            dest.as_os_str(),
        ])
        .output();
    let Ok(out) = traced else {
        assert!(
            std::env::var_os("ZNIPPY_REQUIRE_STRACE").is_none(),
            "no strace"
        );
        eprintln!("SKIPPED: no strace");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = fs::read_to_string(&log).unwrap();
    let made = |name: &str| {
        calls
            .lines()
            .find(|l| l.contains(&format!("\"{name}\"")) && l.contains("mkdir"))
            .unwrap_or_else(|| panic!("no mkdir of {name}:\n{calls}"))
            .to_owned()
    };
    assert!(made("private").contains("0700"), "{}", made("private"));
    assert!(made("open").contains("0755"), "{}", made("open"));
    let mode = fs::metadata(dest.join("private"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}

/// A default POSIX ACL on a target directory of another user (who set it to read
/// what root unpacks there) is not inherited by anything unpack makes: files of one
/// chunk and of several, directories, fifos. In a directory of our own, it is
/// inherited as usual.
#[test]
fn a_default_acl_of_another_users_directory_is_not_inherited() {
    if !is_root() {
        eprintln!("SKIPPED: needs root, to unpack into another user's directory");
        return;
    }
    let s = Scratch::new("acl");
    let src = s.path("src");
    write(&src, "grp", b"group only");
    fs::set_permissions(src.join("grp"), fs::Permissions::from_mode(0o640)).unwrap();
    write(&src, "dir/inner", b"inner");
    fs::set_permissions(src.join("dir"), fs::Permissions::from_mode(0o750)).unwrap();
    write(&src, "big", &bytes(3, 3 * 65536 + 10, false));
    fs::set_permissions(src.join("big"), fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(src.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let archive = s.path("a.znippy");
    let chunk = ["--chunk-size", "64K"];
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os(chunk[0]),
        os(chunk[1]),
    ]);
    let has_acl =
        |p: &Path| rustix::fs::lgetxattr(p, "system.posix_acl_access", &mut [0u8; 256][..]).is_ok();
    for (owner, inherited) in [(65534, false), (0, true)] {
        let dest = s.path(&format!("dest-{owner}"));
        fs::create_dir(&dest).unwrap();
        std::os::unix::fs::chown(&dest, Some(owner), Some(owner)).unwrap();
        if let Err(e) = set_default_acl(&dest, 65534) {
            eprintln!("SKIPPED: no POSIX ACLs here ({e})");
            return;
        }
        ok(&[
            os("unpack"),
            archive.as_os_str(),
            os("-C"),
            dest.as_os_str(),
        ]);
        for p in ["grp", "dir", "dir/inner", "big", "fifo"] {
            assert_eq!(
                has_acl(&dest.join(p)),
                inherited,
                "{p} in a directory of uid {owner}"
            );
        }
    }
}
