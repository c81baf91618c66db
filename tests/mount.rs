//! The read-only mount, checked through independent tools: `diff -r`, a `find -printf`
//! listing of type, size, mode, owner, mtime and link count, `getfattr -d`, 16
//! concurrent readers, a damaged chunk (EIO for exactly its files), a crafted file
//! whose digest fails (EIO where unpack refuses it), writes (EROFS), mount options
//! and mount points refused up front, sparse files served sparse, and unmounting by
//! signal, busy or not.
//!
//! They need /dev/fuse (and root, or fusermount3). Where it is missing they print
//! SKIPPED, unless ZNIPPY_REQUIRE_FUSE is set (as `.ci/run` does where /dev/fuse is).

mod common;
#[path = "common/lying.rs"]
mod lying;

use common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the mount tests can run here; panics where they are required but cannot.
fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists() && is_root();
    if !ok {
        assert!(
            std::env::var_os("ZNIPPY_REQUIRE_FUSE").is_none(),
            "ZNIPPY_REQUIRE_FUSE is set but /dev/fuse (as root) is not usable"
        );
        eprintln!("SKIPPED: mount tests need /dev/fuse and root");
    }
    ok
}

/// A mounted archive, unmounted (by SIGTERM) on drop.
struct Mounted {
    child: Option<Child>,
    dir: PathBuf,
}

fn is_mounted(dir: &Path) -> bool {
    mounts_at(dir) > 0
}

/// How many mounts are stacked at `dir`.
fn mounts_at(dir: &Path) -> usize {
    let dir = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some(dir.as_str()))
        .count()
}

impl Mounted {
    fn new(archive: &Path, dir: &Path, extra: &[&str]) -> Mounted {
        fs::create_dir_all(dir).unwrap();
        let child = command()
            .arg("mount")
            .arg(archive)
            .arg(dir)
            .args(extra)
            .arg("-q")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let m = Mounted {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let start = Instant::now();
        while !is_mounted(dir) {
            assert!(start.elapsed() < Duration::from_secs(20), "not mounted");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// Sends `signal`, waits for the process, and returns its stderr and status.
    fn stop(mut self, signal: i32) -> (String, std::process::ExitStatus) {
        end(self.child.take().unwrap(), signal)
    }
}

/// Sends `signal` to a mount's process, waits for it (failing the test if it does
/// not end), and returns its stderr and status.
fn end(mut child: Child, signal: i32) -> (String, std::process::ExitStatus) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("signal {signal}: the mount did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (err, status)
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// A tree with every kind of entry the mount shows.
fn tree(root: &Path) {
    awkward_tree(root, 64 << 10);
    small_files(&root.join("small"), 300);
    write(root, "links/original.txt", b"one inode, two names\n");
    fs::hard_link(
        root.join("links/original.txt"),
        root.join("links/second.txt"),
    )
    .unwrap();
    symlink("original.txt", root.join("links/soft")).unwrap();
    let fifo = std::ffi::CString::new(root.join("links/fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    // A character device (as `/dev/null`), and a directory too big for one listing.
    let null = std::ffi::CString::new(root.join("links/null").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    let made = unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) };
    assert_eq!(made, 0, "mknod");
    for i in 0..3000 {
        write(root, &format!("many/entry-{i:05}"), b"");
    }
    let tagged = root.join("links/original.txt");
    let ok = Command::new("setfattr")
        .args(["-n", "user.tag", "-v", "kept"])
        .arg(&tagged)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || std::env::var_os("ZNIPPY_REQUIRE_FUSE").is_none(),
        "setfattr missing"
    );
}

/// `find -printf` of type, size (files), mode, owner, mtime, link count and path.
fn listing(root: &Path) -> String {
    let out = Command::new("find")
        .arg(root)
        .args(["-mindepth", "1", "-printf", "%y %m %U %G %T@ %n %P\n"])
        .output()
        .unwrap();
    let files = Command::new("find")
        .arg(root)
        .args(["-type", "f", "-printf", "%s %P\n"])
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&files.stdout).lines())
        .map(String::from)
        .collect();
    lines.sort();
    lines.join("\n")
}

/// `getfattr -R -d` of the tree, paths relative.
fn xattrs(root: &Path) -> Option<String> {
    let out = Command::new("getfattr")
        .args(["-R", "-d", "--absolute-names", "-h"])
        .arg(root)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).replace(&*root.to_string_lossy(), "ROOT");
    Some(text)
}

/// BLAKE3 of every regular file under `root`, by relative path.
fn contents(root: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let mut all = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                all.insert(rel, *blake3::hash(&fs::read(e.path()).unwrap()).as_bytes());
            }
        }
    }
    all
}

fn pack(src: &Path, archive: &Path, extra: &[&str]) {
    let mut args = vec![
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("-q"),
    ];
    args.extend(extra.iter().map(os));
    ok(&args);
}

#[test]
fn the_mounted_tree_is_the_packed_tree() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-tree");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    tree(&src);
    pack(&src, &archive, &["--chunk-size", "64K", "--xattrs", "all"]);
    let m = Mounted::new(&archive, &mnt, &[]);
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(src.join("sizes"))
        .arg(mnt.join("sizes"))
        .status()
        .unwrap();
    assert!(diff.success(), "diff -r differs");
    assert_eq!(listing(&src), listing(&mnt));
    assert_eq!(contents(&src), contents(&mnt));
    if let (Some(a), Some(b)) = (xattrs(&src), xattrs(&mnt)) {
        assert!(a.contains("user.tag=\"kept\""), "{a}");
        assert_eq!(a, b);
    }
    // One inode for a hard link's names; du counts the data.
    let (a, b) = (
        fs::metadata(mnt.join("links/original.txt")).unwrap(),
        fs::metadata(mnt.join("links/second.txt")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    let null = fs::symlink_metadata(mnt.join("links/null")).unwrap();
    assert_eq!((libc::major(null.rdev()), libc::minor(null.rdev())), (1, 3));
    assert_eq!(fs::read_dir(mnt.join("many")).unwrap().count(), 3000);
    // The pack root is not an entry: the root shows the archive file's owner and mtime.
    let (root, file) = (fs::metadata(&mnt).unwrap(), fs::metadata(&archive).unwrap());
    assert_eq!(root.modified().unwrap(), file.modified().unwrap());
    assert_eq!((root.uid(), root.mode() & 0o7777), (file.uid(), 0o755));
    let many = fs::metadata(mnt.join("sizes/many.txt")).unwrap();
    assert_eq!(many.blocks(), many.size().div_ceil(512));
    // A missing attribute is ENODATA.
    let missing = Command::new("getfattr")
        .args(["-n", "user.absent"])
        .arg(mnt.join("links/original.txt"))
        .output();
    if let Ok(out) = missing {
        assert!(String::from_utf8_lossy(&out.stderr).contains("No such attribute"));
    }
    // statfs: read-only, one inode per name.
    let stat = Command::new("stat")
        .args(["-f", "-c", "%c %b"])
        .arg(&mnt)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    let inodes: u64 = text.split(' ').next().unwrap().parse().unwrap();
    assert!(inodes > 300, "{text}");
    let opts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = opts
        .lines()
        .find(|l| l.contains(&*mnt.to_string_lossy()))
        .unwrap();
    assert!(
        line.split(' ')
            .nth(3)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{line}"
    );
    drop(m);
}

#[test]
fn sixteen_readers_read_what_was_packed() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-readers");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 2000);
    write(&src, "big/split.bin", &bytes(3, 3 << 20, false));
    pack(&src, &archive, &["--chunk-size", "256K"]);
    // A cache of two chunks: readers keep evicting each other's chunks.
    let _m = Mounted::new(&archive, &mnt, &["--cache-size", "512K", "--threads", "4"]);
    let expected = contents(&src);
    let paths: Vec<PathBuf> = expected.keys().cloned().collect();
    std::thread::scope(|scope| {
        for t in 0..16usize {
            let (paths, expected, mnt) = (&paths, &expected, &mnt);
            scope.spawn(move || {
                // Each reader in its own order.
                let n = paths.len();
                for k in 0..n {
                    let p = &paths[(k * 7 + t * 131) % n];
                    let data = fs::read(mnt.join(p)).unwrap();
                    assert_eq!(blake3::hash(&data).as_bytes(), &expected[p], "{p:?}");
                }
            });
        }
    });
}

#[test]
fn a_damaged_chunk_fails_exactly_its_files_and_writes_fail() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-damage");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 200);
    pack(&src, &archive, &["--chunk-size", "64K"]);
    let a = znippy_uring::Archive::open(&archive).unwrap();
    let victim = 1u64;
    let rec = a.chunks()[victim as usize].clone();
    let in_victim: Vec<String> = a
        .entries()
        .iter()
        .filter(|e| {
            e.location
                .is_some_and(|l| (l.first_chunk..=l.last_chunk).contains(&victim))
        })
        .map(|e| e.display_path())
        .collect();
    assert!(!in_victim.is_empty());
    let mut bytes = fs::read(&archive).unwrap();
    bytes[(rec.offset + rec.stored_len / 2) as usize] ^= 0x55;
    fs::write(&archive, bytes).unwrap();
    drop(a);
    let m = Mounted::new(&archive, &mnt, &[]);
    for e in znippy_uring::Archive::open(&archive).unwrap().entries() {
        if e.kind != znippy_uring::EntryKind::File {
            continue;
        }
        let path = e.display_path();
        let read = fs::read(mnt.join(&path));
        if in_victim.contains(&path) {
            let err = read.expect_err(&path);
            assert_eq!(err.raw_os_error(), Some(libc::EIO), "{path}");
        } else {
            assert_eq!(read.unwrap(), fs::read(src.join(&path)).unwrap(), "{path}");
        }
    }
    // Nothing changes a mounted archive.
    let erofs = |r: std::io::Result<()>| {
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    };
    let first = mnt.join(&in_victim[0]);
    erofs(fs::write(mnt.join("new.txt"), b"x"));
    erofs(fs::OpenOptions::new().append(true).open(&first).map(drop));
    erofs(fs::create_dir(mnt.join("newdir")));
    erofs(fs::remove_file(&first));
    erofs(fs::rename(&first, mnt.join("moved")));
    erofs(fs::set_permissions(
        &first,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    ));
    erofs(symlink("x", mnt.join("sym")));
    // The damaged files were named in the log.
    let (err, status) = m.stop(libc::SIGTERM);
    assert!(status.success(), "{err}");
    assert!(
        err.contains(&in_victim[0]) && err.contains("BLAKE3"),
        "{err}"
    );
}

#[test]
fn an_interrupt_unmounts_and_leaves_no_mount() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-signal");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 10);
    pack(&src, &archive, &[]);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let m = Mounted::new(&archive, &mnt, &[]);
        assert!(mnt.join("d00").is_dir());
        let (err, status) = m.stop(signal);
        assert!(status.success(), "signal {signal}: {err}");
        assert!(!is_mounted(&mnt), "still mounted after signal {signal}");
    }
    // Unmounted from outside, the command ends by itself.
    let mut m = Mounted::new(&archive, &mnt, &[]);
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    let mut child = m.child.take().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "still serving");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_incremental_archive_mounts_with_its_base() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-incremental");
    let (src, full, inc, mnt) = (
        s.path("src"),
        s.path("full.znippy"),
        s.path("inc.znippy"),
        s.path("mnt"),
    );
    small_files(&src, 300);
    pack(&src, &full, &["--chunk-size", "64K"]);
    write(&src, "d07/f00007.txt", b"changed since the full pack\n");
    fs::remove_file(src.join("d08/f00008.txt")).unwrap();
    let since = ["--chunk-size", "64K", "--since", full.to_str().unwrap()];
    pack(&src, &inc, &since);
    let m = Mounted::new(&inc, &mnt, &[]);
    assert_eq!(contents(&src), contents(&mnt));
    drop(m);
    // Without its base it does not mount, and says which archive is missing.
    fs::rename(&full, s.path("moved.znippy")).unwrap();
    let out = command().arg("mount").arg(&inc).arg(&mnt).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("full.znippy"));
}

/// Runs `mount`, which must refuse (end within 20 s), returning its exit code and
/// stderr; a mount that went ahead is stopped and unmounted, and fails the test.
fn refused_mount(args: &[&OsStr]) -> (Option<i32>, String) {
    let mut child = command()
        .arg("mount")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            if let Some(dir) = args.get(1).filter(|d| is_mounted(Path::new(d))) {
                let _ = Command::new("umount").arg("-l").arg(dir).status();
            }
            panic!("mount {args:?} went ahead instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_file_whose_digest_fails_gives_eio_where_unpack_refuses_it() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-lying");
    let (archive, mnt) = (s.path("lying.znippy"), s.path("mnt"));
    lying::write(&archive, false);
    let unpack = run(&[
        os("unpack"),
        archive.as_os_str(),
        os("-C"),
        s.path("out").as_os_str(),
    ]);
    assert_eq!(
        unpack.status.code(),
        Some(1),
        "unpack accepted the lying archive"
    );
    let stderr = String::from_utf8_lossy(&unpack.stderr);
    assert!(
        stderr.contains("bad") && stderr.contains("split-bad"),
        "{stderr}"
    );
    lying::write(&archive, true);
    let m = Mounted::new(&archive, &mnt, &[]);
    // Listed first: names that came with their attributes must still fail.
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), lying::FILES.len() + 1);
    for (name, true_digest) in lying::FILES {
        match fs::read(mnt.join(name)) {
            Ok(data) => {
                assert!(true_digest, "{name}: served although its digest fails");
                assert_eq!(data, lying::content(name), "{name}");
            }
            Err(e) => {
                assert!(!true_digest, "{name}: {e}");
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{name}");
            }
        }
    }
    // A file over several read requests: what was served before the read that
    // completed it fails too, once that read has failed.
    use std::os::unix::fs::FileExt;
    let big = fs::File::open(mnt.join(lying::BIG)).unwrap();
    let mut page = [0u8; 4096];
    big.read_exact_at(&mut page, 0).unwrap();
    assert_eq!(page[..], lying::content(lying::BIG)[..4096]);
    let whole = fs::read(mnt.join(lying::BIG)).unwrap_err();
    assert_eq!(whole.raw_os_error(), Some(libc::EIO));
    let start = Instant::now();
    while big.read_exact_at(&mut page, 0).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "cached pages still served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (err, status) = m.stop(libc::SIGTERM);
    assert!(status.success(), "{err}");
    assert!(err.contains("bad: file BLAKE3 mismatch"), "{err}");
    assert!(err.contains("split-bad: file BLAKE3 mismatch"), "{err}");
}

#[test]
fn mount_options_are_checked_up_front_and_flags_are_honoured() {
    let s = Scratch::new("mount-options");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 5);
    pack(&src, &archive, &[]);
    fs::create_dir_all(&mnt).unwrap();
    for (option, says) in [
        (
            "auto_unmount",
            "-o auto_unmount needs allow_other or allow_root",
        ),
        (
            "direct_io",
            "-o direct_io: not a mount option here (allowed: ro,",
        ),
        ("rw", "-o rw: the mount is read-only"),
    ] {
        let (code, err) =
            refused_mount(&[archive.as_os_str(), mnt.as_os_str(), os("-o"), os(option)]);
        assert_eq!(code, Some(1), "-o {option}: {err}");
        assert!(err.contains(says), "-o {option}: {err}");
    }
    // Standard input cannot be read at random: refused, not taken for a file name.
    let (code, err) = refused_mount(&[os("-"), mnt.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the archive must be a file, not `-`"), "{err}");
    if !fuse_available() {
        return;
    }
    let options = |m: &Mounted| {
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        let dir = m.dir.to_string_lossy().into_owned();
        let line = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(&dir))
            .unwrap();
        line.split(' ')
            .nth(3)
            .unwrap()
            .split(',')
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let m = Mounted::new(&archive, &mnt, &["-o", "dev,suid,exec,atime,kernel_cache"]);
    let on = options(&m);
    assert!(
        !on.iter()
            .any(|o| o == "nodev" || o == "nosuid" || o == "noexec"),
        "{on:?}"
    );
    assert!(mnt.join("d00").is_dir());
    drop(m);
    let m = Mounted::new(&archive, &mnt, &["-o", "noexec,nodev,nosuid,noatime"]);
    let on = options(&m);
    for o in ["noexec", "nodev", "nosuid", "noatime", "ro"] {
        assert!(on.iter().any(|x| x == o), "{o}: {on:?}");
    }
}

#[test]
fn a_mount_point_that_is_not_an_empty_directory_is_refused_unless_asked() {
    let s = Scratch::new("mount-point");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 5);
    pack(&src, &archive, &[]);
    write(&mnt, "precious.txt", b"kept\n");
    let (code, err) = refused_mount(&[archive.as_os_str(), mnt.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("mount point is not empty") && err.contains("--nonempty"),
        "{err}"
    );
    let file = mnt.join("precious.txt");
    let (code, err) = refused_mount(&[archive.as_os_str(), file.as_os_str(), os("--nonempty")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("mount point is not a directory"), "{err}");
    if !fuse_available() {
        return;
    }
    let m = Mounted::new(&archive, &mnt, &["--nonempty"]);
    assert!(mnt.join("d00").is_dir() && !file.exists());
    drop(m);
    assert_eq!(fs::read(&file).unwrap(), b"kept\n");
}

#[test]
fn a_signal_while_the_mount_is_busy_detaches_it_lazily() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-busy");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 10);
    pack(&src, &archive, &[]);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let m = Mounted::new(&archive, &mnt, &[]);
        // A file held open and a process whose directory is inside: the mount is busy.
        let open = fs::File::open(mnt.join("d00/f00000.txt")).unwrap();
        let mut inside = Command::new("sleep")
            .arg("60")
            .current_dir(mnt.join("d01"))
            .spawn()
            .unwrap();
        let (err, status) = m.stop(signal);
        inside.kill().unwrap();
        inside.wait().unwrap();
        drop(open);
        assert!(status.success(), "signal {signal}: {err}");
        assert!(err.contains("detached lazily"), "{err}");
        assert!(!is_mounted(&mnt), "still mounted after signal {signal}");
        // Nothing dead is left behind: the directory is usable again.
        assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0);
    }
}

#[test]
fn a_sparse_file_is_served_sparse() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-sparse");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    fs::create_dir_all(&src).unwrap();
    let sparse = src.join("disk.img");
    let f = fs::File::create(&sparse).unwrap();
    f.set_len(100 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"boot sector", 0).unwrap();
    f.write_all_at(b"middle", 50 << 20).unwrap();
    f.write_all_at(b"tail", (100 << 20) - 4).unwrap();
    drop(f);
    let allocated = fs::metadata(&sparse).unwrap().blocks();
    assert!(
        allocated < 100,
        "the scratch file system is not sparse: {allocated}"
    );
    write(&src, "dense.txt", b"no holes here\n");
    pack(&src, &archive, &[]);
    let m = Mounted::new(&archive, &mnt, &[]);
    let served = mnt.join("disk.img");
    let meta = fs::metadata(&served).unwrap();
    assert_eq!(meta.size(), 100 << 20);
    assert_eq!(meta.blocks(), 3 * 8, "three 4 KiB blocks of data");
    let dense = fs::metadata(mnt.join("dense.txt")).unwrap();
    assert_eq!(dense.blocks(), dense.size().div_ceil(512));
    // SEEK_DATA and SEEK_HOLE find the data.
    let f = fs::File::open(&served).unwrap();
    let seek = |offset: i64, whence: i32| {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor; lseek has no other preconditions.
        let at = unsafe { libc::lseek(f.as_raw_fd(), offset, whence) };
        (at >= 0).then_some(at)
    };
    assert_eq!(seek(0, libc::SEEK_DATA), Some(0));
    assert_eq!(seek(0, libc::SEEK_HOLE), Some(4096));
    assert_eq!(seek(4096, libc::SEEK_DATA), Some(50 << 20));
    assert_eq!(
        seek((50 << 20) + 4096, libc::SEEK_DATA),
        Some((100 << 20) - 4096)
    );
    assert_eq!(seek((100 << 20) - 4096, libc::SEEK_HOLE), Some(100 << 20));
    // A copy with the usual tools comes out sparse and equal.
    let copy = s.path("copy.img");
    let cp = Command::new("cp")
        .arg("--sparse=always")
        .arg(&served)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    assert!(fs::metadata(&copy).unwrap().blocks() < 100);
    assert_eq!(
        blake3::hash(&fs::read(&copy).unwrap()),
        blake3::hash(&fs::read(&sparse).unwrap())
    );
    let cp_a = s.path("copy-a.img");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&served)
            .arg(&cp_a)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        fs::metadata(&cp_a).unwrap().blocks() < 100,
        "cp -a wrote it dense"
    );
    drop(m);
}

#[test]
fn a_signal_unmounts_our_mount_after_its_parent_was_renamed() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-renamed");
    let (src, archive) = (s.path("src"), s.path("a.znippy"));
    small_files(&src, 10);
    pack(&src, &archive, &[]);
    let m = Mounted::new(&archive, &s.path("par/mp"), &[]);
    fs::rename(s.path("par"), s.path("par2")).unwrap();
    let moved = s.path("par2/mp");
    assert!(is_mounted(&moved));
    let (err, status) = m.stop(libc::SIGTERM);
    let left = is_mounted(&moved);
    if left {
        let _ = Command::new("umount").arg("-l").arg(&moved).status();
    }
    assert!(status.success(), "{err}");
    assert!(!left, "our mount was left at its new path: {err}");
    assert_eq!(fs::read_dir(&moved).unwrap().count(), 0);
}

#[test]
fn a_signal_leaves_a_mount_stacked_on_ours_alone() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-stacked");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 10);
    pack(&src, &archive, &[]);
    let mut below = Mounted::new(&archive, &mnt, &[]);
    let mut above = Mounted::new(&archive, &mnt, &["--nonempty"]);
    let start = Instant::now();
    while mounts_at(&mnt) < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "not stacked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (err, status) = end(below.child.take().unwrap(), libc::SIGTERM);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no longer reachable"), "{err}");
    // The mount on top is untouched and still serves.
    assert!(mnt.join("d00").is_dir(), "{err}");
    let (err, status) = end(above.child.take().unwrap(), libc::SIGTERM);
    assert!(status.success(), "{err}");
    // What is left is the dead mount below, the one whose process failed.
    assert!(is_mounted(&mnt));
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    assert!(!is_mounted(&mnt));
    drop((below, above));
}

#[test]
fn a_signal_unmounts_an_auto_unmount_mount() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-auto-unmount");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 10);
    pack(&src, &archive, &[]);
    for (signal, extra) in [
        (libc::SIGTERM, ["-o", "allow_other,auto_unmount"]),
        (libc::SIGINT, ["--allow-root", "-oauto_unmount"]),
    ] {
        let m = Mounted::new(&archive, &mnt, &extra);
        assert!(mnt.join("d00").is_dir());
        let (err, status) = m.stop(signal);
        assert!(status.success(), "{extra:?}: {err}");
        assert!(!is_mounted(&mnt), "{extra:?}: still mounted");
    }
}

#[test]
fn a_thread_count_out_of_range_is_refused() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-threads");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 1);
    pack(&src, &archive, &[]);
    fs::create_dir(&mnt).unwrap();
    for n in ["0", "257", "100000"] {
        let (code, err) = refused_mount(&[
            archive.as_os_str(),
            mnt.as_os_str(),
            OsStr::new("--threads"),
            OsStr::new(n),
        ]);
        assert_eq!(code, Some(2), "--threads {n}: {err}");
        assert!(err.contains("1..=256"), "--threads {n}: {err}");
    }
}

#[test]
fn a_base_that_is_not_one_is_warned_about() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-unneeded-base");
    let (src, archive, other, mnt) = (
        s.path("src"),
        s.path("a.znippy"),
        s.path("other.znippy"),
        s.path("mnt"),
    );
    small_files(&src, 2);
    pack(&src, &archive, &[]);
    pack(&src, &other, &[]);
    let m = Mounted::new(&archive, &mnt, &["--base", other.to_str().unwrap()]);
    let (err, status) = m.stop(libc::SIGTERM);
    assert!(status.success(), "{err}");
    assert!(
        err.contains("other.znippy: not a base of") && err.contains("(ignored)"),
        "{err}"
    );
}

#[test]
fn a_serving_thread_that_cannot_start_fails_the_mount() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-no-threads");
    let (src, archive, mnt) = (s.path("src"), s.path("a.znippy"), s.path("mnt"));
    small_files(&src, 1);
    pack(&src, &archive, &[]);
    fs::create_dir(&mnt).unwrap();
    // 30 descriptors cannot hold 256 /dev/fuse clones: the session fails at once.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 30 && exec \"$0\" mount -q \"$1\" \"$2\" --threads 256")
        .arg(bin())
        .arg(&archive)
        .arg(&mnt)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let left = is_mounted(&mnt);
    if left {
        let _ = Command::new("umount").arg("-l").arg(&mnt).status();
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("serve") && err.contains("Too many open files"),
        "{err}"
    );
    assert!(!left);
}

#[test]
fn a_mount_point_named_through_a_symlink_or_with_odd_bytes_unmounts() {
    if !fuse_available() {
        return;
    }
    let s = Scratch::new("mount-odd-names");
    let (src, archive) = (s.path("src"), s.path("a.znippy"));
    small_files(&src, 2);
    pack(&src, &archive, &[]);
    let odd = s.path("a b\\c\td");
    fs::create_dir(&odd).unwrap();
    symlink(&odd, s.path("link")).unwrap();
    for dir in [odd.clone(), s.path("link")] {
        let mut child = command()
            .arg("mount")
            .arg(&archive)
            .arg(&dir)
            .arg("-q")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !odd.join("d00").is_dir() {
            assert!(child.try_wait().unwrap().is_none(), "{dir:?}: mount ended");
            assert!(start.elapsed() < Duration::from_secs(20), "not mounted");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (err, status) = end(child, libc::SIGTERM);
        assert!(status.success(), "{dir:?}: {err}");
        assert_eq!(fs::read_dir(&odd).unwrap().count(), 0, "{dir:?}: {err}");
    }
}
