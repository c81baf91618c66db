//! Extended attributes that cannot be set on unpack: one the kernel refuses fails the
//! unpack naming the file and the attribute; `trusted.*` and `security.*` refused to a
//! user who is not root are counted and reported once, not fatal.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use znippy_uring::testing::format::{header, index};
use znippy_uring::{Archive, Entry, EntryKind, Group, UnpackOptions, XattrPolicy};

/// An empty file entry with `xattrs`.
fn file(path: &str, xattrs: &[(&[u8], &[u8])]) -> Entry {
    Entry {
        digest: Some(*blake3::hash(b"").as_bytes()),
        xattrs: (xattrs.iter())
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        ..Entry::new(path.as_bytes().to_vec(), EntryKind::File, 0o100644)
    }
}

/// Writes an archive holding exactly `entries` (no file data).
fn craft(path: &Path, entries: &[Entry]) {
    let mut bytes = header::encode(0).to_vec();
    let tail = index::encode(&[(Group::default(), entries)], &[], &[], header::HEADER_LEN);
    bytes.extend(tail);
    fs::write(path, bytes).unwrap();
}

/// The value of attribute `name` of `path`, read with python3 (None: not set).
fn xattr(path: &Path, name: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys\ntry: print(os.getxattr(sys.argv[1], sys.argv[2]).decode())\nexcept OSError: print('<none>')",
        ])
        .arg(path)
        .arg(name)
        .output()
        .unwrap();
    let v = String::from_utf8(out.stdout).unwrap().trim().to_string();
    (v != "<none>").then_some(v)
}

#[test]
fn an_attribute_the_kernel_refuses_fails_naming_the_file_and_the_attribute() {
    let s = Scratch::new("xattr-bad");
    let a = s.path("bad.znippy");
    // A name longer than the kernel's 255 bytes: ERANGE.
    let long = [b"user.".as_slice(), &[b'n'; 300]].concat();
    craft(&a, &[file("ok", &[]), file("victim", &[(&long, b"v")])]);
    let dest = s.path("dest");
    let err = (Archive::open(&a).unwrap())
        .unpack(&dest, &UnpackOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("victim"), "{err}");
    assert!(err.contains("extended attribute \"user.nnnn"), "{err}");
    assert!(err.contains("(305 bytes)"), "{err}");
    let cli = run(&[
        os("unpack"),
        a.as_os_str(),
        os("-C"),
        s.path("d2").as_os_str(),
    ]);
    assert_eq!(cli.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        stderr.contains("victim: set metadata: extended attribute \"user.nn"),
        "{stderr}"
    );
}

#[test]
fn privileged_namespaces_refused_to_a_user_are_warned_about_once() {
    let s = Scratch::new("xattr-user");
    if is_root() && !as_nobody("true").status.success() {
        eprintln!("SKIPPED: cannot run as nobody (setpriv)");
        return;
    }
    if !{
        let probe = s.path("probe");
        fs::write(&probe, b"").unwrap();
        std::process::Command::new("python3")
            .args([
                "-c",
                "import os,sys\nos.setxattr(sys.argv[1], 'user.p', b'1')",
            ])
            .arg(&probe)
            .status()
            .unwrap()
            .success()
    } {
        eprintln!("SKIPPED: this file system does not take user xattrs");
        return;
    }
    let a = s.path("priv.znippy");
    craft(
        &a,
        &[
            file(
                "f",
                &[
                    (b"trusted.a", b"1"),
                    (b"trusted.b", b"2"),
                    (b"user.c", b"3"),
                ],
            ),
            file("g", &[(b"trusted.z", b"4"), (b"user.d", b"5")]),
        ],
    );
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
    let user = s.path("user");
    fs::create_dir_all(&user).unwrap();
    fs::set_permissions(&user, fs::Permissions::from_mode(0o777)).unwrap();
    let cmd = format!(
        "{} unpack --json --xattrs all --threads 1 {} -C {}/out",
        bin().display(),
        a.display(),
        user.display()
    );
    let r = as_unprivileged(&cmd);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    let warning = "znippy-uring: warning: 3 extended attribute(s) not set: not permitted \
                   (trusted.* and security.* need root) (first: \"trusted.a\" of \"f\")";
    assert_eq!(stderr.matches("extended attribute").count(), 1, "{stderr}");
    assert!(stderr.contains(warning), "{stderr}");
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        stdout.contains("\"xattr_warnings\":[\"3 extended attribute(s)"),
        "{stdout}"
    );
    assert_eq!(xattr(&user.join("out/f"), "user.c").as_deref(), Some("3"));
    assert_eq!(xattr(&user.join("out/g"), "user.d").as_deref(), Some("5"));

    // The library reports the same. As root all are set, and nothing is reported.
    let dest = s.path("lib");
    let opts = UnpackOptions {
        xattrs: XattrPolicy::All,
        ..UnpackOptions::default()
    };
    let report = (Archive::open(&a).unwrap()).unpack(&dest, &opts).unwrap();
    if is_root() {
        assert!(report.xattr_warnings.is_empty(), "{report:?}");
        assert_eq!(xattr(&dest.join("g"), "trusted.z").as_deref(), Some("4"));
    } else {
        assert_eq!(report.xattr_warnings.len(), 1, "{report:?}");
    }
}

/// Unmounts its directory when dropped.
struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_file_system_without_xattrs_gets_the_data_and_one_warning() {
    let s = Scratch::new("xattr-ramfs");
    let src = s.path("src");
    write(&src, "a.txt", &bytes(1, 100_000, true));
    write(&src, "b.txt", b"b");
    let set = |p: &Path| {
        std::process::Command::new("python3")
            .args([
                "-c",
                "import os,sys\nos.setxattr(sys.argv[1], 'user.x', b'1')",
            ])
            .arg(p)
            .status()
            .unwrap()
            .success()
    };
    if !set(&src.join("a.txt")) || !set(&src.join("b.txt")) {
        eprintln!("SKIPPED: this file system does not take user xattrs");
        return;
    }
    let a = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), a.as_os_str()]);
    // ramfs keeps no extended attributes (ENOTSUP) and reports no size (zero blocks).
    let ram = s.path("ram");
    fs::create_dir_all(&ram).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "ramfs", "ramfs"])
        .arg(&ram)
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a ramfs (needs root)");
        return;
    }
    let _unmount = Unmount(&ram);
    let r = run(&[
        os("unpack"),
        a.as_os_str(),
        os("-C"),
        ram.join("out").as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "2 extended attribute(s) not set: the target's file system does not support them"
        ),
        "{stderr}"
    );
    assert_eq!(
        fs::read(ram.join("out/a.txt")).unwrap(),
        bytes(1, 100_000, true)
    );
}

#[test]
fn attributes_recorded_on_a_symlink_are_named_not_set_and_none_are_archived_there() {
    let s = Scratch::new("xattr-symlink");
    // An archive (older, or crafted) whose symlink entry carries attributes.
    let a = s.path("link.znippy");
    let link = Entry {
        link_target: Some(b"target".to_vec()),
        xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
        ..Entry::new(b"l".to_vec(), EntryKind::Symlink, 0o120777)
    };
    craft(&a, &[file("target", &[]), link]);
    let report = (Archive::open(&a).unwrap())
        .unpack(&s.path("dest"), &UnpackOptions::default())
        .unwrap();
    assert_eq!(
        report.xattr_warnings,
        [
            "1 extended attribute(s) not set: recorded on a symlink, which is restored \
          without any (first: \"user.k\" of \"l\")"
        ]
    );
    assert!(fs::symlink_metadata(s.path("dest/l")).unwrap().is_symlink());

    // A pack records none on a symlink, even in the namespaces a symlink may carry.
    let src = s.path("src");
    write(&src, "f", b"x");
    std::os::unix::fs::symlink("f", src.join("l")).unwrap();
    let set = rustix::fs::lsetxattr(
        src.join("l"),
        "trusted.t",
        b"1",
        rustix::fs::XattrFlags::empty(),
    );
    if set.is_err() {
        return; // not root, or no trusted.* here
    }
    let out = s.path("a.znippy");
    let args = [os("pack"), src.as_os_str(), os("-o"), out.as_os_str()];
    ok(&[&args[..], &[os("--xattrs"), os("all"), os("-q")]].concat());
    let archive = Archive::open(&out).unwrap();
    let l = archive.entries().iter().find(|e| e.path == b"l").unwrap();
    assert_eq!(l.kind, EntryKind::Symlink);
    assert!(l.xattrs.is_empty(), "{:?}", l.xattrs);
}
