//! Helpers shared by the integration tests: generated trees, running the binary,
//! comparing trees.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("znippy-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift), `text` makes them compressible.
pub fn bytes(seed: u64, len: usize, text: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words: [&[u8]; 8] = [
        b"alpha ",
        b"beta ",
        b"gamma\n",
        b"delta ",
        b"io_uring ",
        b"zstd ",
        b"chunk ",
        b"ring\n",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if text {
            out.extend_from_slice(words[(x % 8) as usize]);
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

pub fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
}

/// A tree covering the awkward cases, with files around `chunk` bytes.
pub fn awkward_tree(root: &Path, chunk: usize) {
    fs::create_dir_all(root.join("empty/dir/inside")).unwrap();
    write(root, "empty-file", b"");
    write(root, "sub/empty-too", b"");
    for (name, len) in [
        ("exact", chunk),
        ("minus", chunk - 1),
        ("plus", chunk + 1),
        ("many", chunk * 5 + 3),
    ] {
        write(
            root,
            &format!("sizes/{name}.txt"),
            &bytes(len as u64, len, true),
        );
    }
    write(
        root,
        "sizes/random-many.bin",
        &bytes(7, chunk * 3 + 11, false),
    );
    write(root, "mixed/photo.jpg", &bytes(8, 30_000, false));
    write(root, "mixed/archive.tar.gz", &bytes(9, chunk + 5, false));
    write(root, "mixed/notes.md", &bytes(10, 20_000, true));
    write(root, "unicode/日本語/ファイル.txt", b"konnichiwa\n");
    write(root, "unicode/ÅÄÖ émoji 🦀.txt", b"crab\n");
    let raw = root
        .join("unicode")
        .join(OsStr::from_bytes(b"latin1-\xe9\xff.bin"));
    fs::write(raw, b"not utf-8 name").unwrap();
    let mut deep = String::from("deep");
    for i in 0..40 {
        deep.push_str(&format!("/level{i}"));
    }
    write(root, &format!("{deep}/bottom.txt"), b"deep down\n");
    symlink("../sizes/exact.txt", root.join("sub/link-to-file")).unwrap();
    symlink("/nonexistent/absolute/target", root.join("sub/dangling")).unwrap();
    symlink("unicode", root.join("dir-link")).unwrap();
    fs::set_permissions(
        root.join("mixed/notes.md"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(root.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    write(root, "bin/tool.sh", b"#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("bin/tool.sh"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// `count` small files of varied sizes and contents in a few directories.
pub fn small_files(root: &Path, count: usize) {
    for i in 0..count {
        let len = 100 + (i * 37) % 12_000;
        write(
            root,
            &format!("d{:02}/f{i:05}.txt", i % 50),
            &bytes(i as u64, len, i % 3 != 0),
        );
    }
}

/// Every entry under `root`: (relative path, description of type, mode, mtime, content).
pub fn snapshot(root: &Path) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let desc = if m.file_type().is_symlink() {
                format!("link -> {:?}", fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!(
                    "dir {:o} {}",
                    m.mode() & 0o777,
                    m.mtime_nsec() + m.mtime() * 1_000_000_000
                )
            } else {
                let data = fs::read(&p).unwrap();
                format!(
                    "file {:o} {} {} {}",
                    m.mode() & 0o777,
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    data.len(),
                    blake3::hash(&data)
                )
            };
            out.push((rel, desc));
        }
    }
    out.sort();
    out
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_znippy-uring"))
}

/// Runs the binary with `args`, returning its output. Packs record every ctime (no
/// racy-ctime window, `ZNIPPY_RACY_CTIME_MS=0`, unless the environment sets one), so
/// that archives of trees just written are the same whenever they are packed.
pub fn run(args: &[&OsStr]) -> Output {
    command().args(args).output().unwrap()
}

/// The binary as a command, with the environment of [`run`].
pub fn command() -> Command {
    let mut c = Command::new(bin());
    if std::env::var_os("ZNIPPY_RACY_CTIME_MS").is_none() {
        c.env("ZNIPPY_RACY_CTIME_MS", "0");
    }
    c
}

/// Runs the binary and asserts success.
pub fn ok(args: &[&OsStr]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    unsafe extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions.
    unsafe { geteuid() == 0 }
}

/// Runs `sh -c script` as the user `nobody` (65534), through setpriv.
pub fn as_nobody(script: &str) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap()
}

/// Packs `src` into `archive` with `pack_args`, then unpacks it into `dest`, both through
/// the command line, asserting success.
pub fn pack_and_unpack(src: &Path, archive: &Path, dest: &Path, pack_args: &[&str]) {
    let mut pack: Vec<&OsStr> = vec![os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()];
    pack.extend(pack_args.iter().map(os));
    ok(&pack);
    ok(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        dest.as_os_str(),
    ]);
}

/// Runs shell command `script` as a user who is not root: as `nobody` when we are
/// root, else as ourselves.
pub fn as_unprivileged(script: &str) -> Output {
    if is_root() {
        as_nobody(script)
    } else {
        Command::new("sh").args(["-c", script]).output().unwrap()
    }
}

/// Gives directory `dir` a default POSIX ACL granting user `uid` rwx (user::rwx,
/// user:UID:rwx, group::r-x, mask::rwx, other::r-x, in the kernel's xattr encoding),
/// or says why not (a file system without ACLs).
pub fn set_default_acl(dir: &Path, uid: u32) -> Result<(), String> {
    let mut acl = 2u32.to_le_bytes().to_vec();
    let all = u32::MAX;
    for (tag, perm, id) in [
        (1u16, 7u16, all),
        (2, 7, uid),
        (4, 5, all),
        (0x10, 7, all),
        (0x20, 5, all),
    ] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(id.to_le_bytes());
    }
    let flags = rustix::fs::XattrFlags::empty();
    rustix::fs::setxattr(dir, "system.posix_acl_default", &acl, flags).map_err(|e| e.to_string())
}

/// Runs the binary with `args` under `strace -f -e FILTER`, returning the traced calls
/// in order; None (SKIPPED) without strace, unless ZNIPPY_REQUIRE_STRACE is set.
pub fn traced(args: &[&OsStr], dir: &Path, filter: &str) -> Option<Vec<String>> {
    let log = dir.join("strace.log");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", filter])
        .arg("-o")
        .arg(&log)
        .arg(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let Ok(status) = status else {
        assert!(
            std::env::var_os("ZNIPPY_REQUIRE_STRACE").is_none(),
            "ZNIPPY_REQUIRE_STRACE is set but strace cannot run"
        );
        eprintln!("SKIPPED: no strace");
        return None;
    };
    assert!(status.success(), "{args:?} failed under strace");
    let text = std::fs::read_to_string(&log).unwrap();
    Some(text.lines().map(String::from).collect())
}
