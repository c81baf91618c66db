//! Races with another user: while root (or one user) unpacks into a directory that an
//! unprivileged attacker can write, the attacker renames its own files, hard links
//! and symlinks over the paths being made, in a loop, for a bounded time. Whatever
//! wins a race, no file of the attacker's may end up with the archive's owner, mode
//! or data, and nothing outside the target may change.
//!
//! This file has its own `main` (harness = false): run with `ZNIPPY_ATTACK` set, the
//! same binary is the attacker, started under setpriv as another user.

mod common;

use common::*;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The attacker's uid and gid (`nobody` on most systems).
const ATTACKER: u32 = 65534;
/// Marks the attacker's files.
const MARK: &[u8] = b"ATTACKER-OWNED";
/// How long an attacker runs at most.
const ATTACK_FOR: Duration = Duration::from_secs(60);

fn main() {
    if let Some(mode) = std::env::var_os("ZNIPPY_ATTACK") {
        attack(&mode.to_string_lossy());
        return;
    }
    let tests: [(&str, fn()); 5] = [
        (
            "split_file_renamed_over_is_never_given_the_archives_owner_mode_or_data",
            split_files,
        ),
        ("fifo_chmod_is_never_redirected_through_a_symlink", fifos),
        (
            "non_root_split_file_data_never_reaches_another_users_file",
            non_root_split_files,
        ),
        (
            "pack_never_follows_a_directory_swapped_for_a_symlink",
            pack_swaps,
        ),
        (
            "no_file_inherits_the_acl_of_a_directory_exchanged_into_place",
            acl_swaps,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if !is_root() {
            println!("test {name} ... SKIPPED (needs root to run an attacker as another user)");
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        std::process::exit(101);
    }
}

/// The attacker: in directory `ZNIPPY_ATTACK_DIR`, again and again until the file
/// `stop` appears there (or [`ATTACK_FOR`] passes), puts something of its own at each
/// of the names in `ZNIPPY_ATTACK_NAMES` (comma-separated) by rename:
/// - `file`: a file of its own holding [`MARK`], mode 0755 (`open`: 0666), with a
///   second name in `ZNIPPY_ATTACK_KEEP`, so that every inode it made can be checked
///   afterwards (and none is freed and reused);
/// - `link`: a hard link to `ZNIPPY_ATTACK_VICTIM`, a file of its own outside;
/// - `symlink`: a symlink to `ZNIPPY_ATTACK_VICTIM`;
/// - `exchange`: each name is `A:B`, two names it exchanges (renameat2
///   `RENAME_EXCHANGE`), a directory and a symlink.
fn attack(mode: &str) {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let dir = var("ZNIPPY_ATTACK_DIR").unwrap();
    let names: Vec<OsString> = std::env::var("ZNIPPY_ATTACK_NAMES")
        .unwrap()
        .split(',')
        .map(OsString::from)
        .collect();
    let (victim, keep) = (var("ZNIPPY_ATTACK_VICTIM"), var("ZNIPPY_ATTACK_KEEP"));
    let started = Instant::now();
    let mut n = 0u64;
    while !dir.join("stop").exists() && started.elapsed() < ATTACK_FOR {
        for name in &names {
            n += 1;
            if mode == "exchange" {
                let (a, b) = name.to_str().unwrap().split_once(':').unwrap();
                let flags = rustix::fs::RenameFlags::EXCHANGE;
                let cwd = rustix::fs::CWD;
                let _ = rustix::fs::renameat_with(cwd, dir.join(a), cwd, dir.join(b), flags);
                continue;
            }
            let tmp = dir.join(format!(".attacker-{n}"));
            let own = |perm: u32| {
                fs::write(&tmp, MARK)?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(perm))?;
                fs::hard_link(&tmp, keep.as_ref().unwrap().join(n.to_string()))
            };
            let made = match mode {
                "file" => own(0o755),
                "open" => own(0o666),
                "link" => fs::hard_link(victim.as_ref().unwrap(), &tmp),
                "symlink" => std::os::unix::fs::symlink(victim.as_ref().unwrap(), &tmp),
                other => panic!("unknown attack {other}"),
            };
            if made.is_ok() && fs::rename(&tmp, dir.join(name)).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Starts the attacker as uid `uid` against `names` in `dir` (which it must be able
/// to write).
fn start_attacker(
    uid: u32,
    mode: &str,
    dir: &Path,
    names: &[String],
    victim: Option<&Path>,
    keep: Option<&Path>,
) -> Child {
    let mut exe = std::env::current_exe().unwrap();
    let runnable = as_nobody(&format!("test -x '{}'", exe.display()));
    if !runnable.status.success() {
        // Where the build directory is closed to others: a copy it can run.
        let copy = std::env::temp_dir().join(format!("znippy-attacker-{}", std::process::id()));
        fs::copy(&exe, &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        exe = copy;
    }
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(exe)
        .env("ZNIPPY_ATTACK", mode)
        .env("ZNIPPY_ATTACK_DIR", dir)
        .env("ZNIPPY_ATTACK_NAMES", names.join(","));
    if let Some(v) = victim {
        c.env("ZNIPPY_ATTACK_VICTIM", v);
    }
    if let Some(k) = keep {
        c.env("ZNIPPY_ATTACK_KEEP", k);
    }
    c.spawn().unwrap()
}

fn stop(mut attacker: Child, dir: &Path) {
    let _ = fs::write(dir.join("stop"), b"");
    let _ = attacker.wait();
    let _ = fs::remove_file(dir.join("stop"));
}

/// A directory `uid` owns, which others may search, under the scratch directory.
fn owned_dir(s: &Scratch, rel: &str, uid: u32) -> PathBuf {
    let d = s.path(rel);
    fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(uid), Some(uid)).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Asserts that every file the attacker made (each has a name in `keep`) is still the
/// attacker's, without setuid or setgid bits, and holds none of `secret`.
fn assert_attacker_gained_nothing(keep: &Path, secret: &[u8]) {
    let probe = &secret[..secret.len().min(64)];
    for e in walk(keep) {
        let m = fs::symlink_metadata(&e).unwrap();
        assert!(
            m.uid() == ATTACKER && m.mode() & 0o6000 == 0,
            "a file the attacker made ({}) became uid {} mode {:o}",
            e.display(),
            m.uid(),
            m.mode()
        );
        let data = fs::read(&e).unwrap();
        assert!(
            !data.windows(probe.len()).any(|w| w == probe),
            "a file the attacker made ({}) holds the archive's data",
            e.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// An archive of one file of three 64 KiB chunks, `name`, of mode `mode`, made
/// readable to all: the archive and the file's bytes.
fn split_archive(s: &Scratch, name: &str, mode: u32, seed: u64) -> (PathBuf, Vec<u8>) {
    let src = s.path("src");
    let data = bytes(seed, 3 * 65536 + 100, false);
    write(&src, name, &data);
    fs::set_permissions(src.join(name), fs::Permissions::from_mode(mode)).unwrap();
    let archive = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("--chunk-size"),
        os("64K"),
    ]);
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644)).unwrap();
    (archive, data)
}

/// Root unpacks a setuid file of several chunks into a directory the attacker owns,
/// while the attacker renames its own files, and hard links to a file of its own
/// outside, over that path.
fn split_files() {
    let s = Scratch::new("race-split");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let (archive, data) = split_archive(&s, "big", 0o4755, 7);
    let outside = owned_dir(&s, "outside", ATTACKER);
    let victim = outside.join("victim");
    fs::write(&victim, MARK).unwrap();
    std::os::unix::fs::chown(&victim, Some(ATTACKER), Some(ATTACKER)).unwrap();
    for (round, mode) in ["file", "link", "file", "link", "file", "link"]
        .iter()
        .enumerate()
    {
        let dest = owned_dir(&s, &format!("dest{round}"), ATTACKER);
        let keep = owned_dir(&s, &format!("keep{round}"), ATTACKER);
        let attacker = start_attacker(
            ATTACKER,
            mode,
            &dest,
            &["big".into()],
            Some(&victim),
            Some(&keep),
        );
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..10 {
            // Whoever wins, the unpack may fail; it must never serve the attacker.
            let _ = run(&[
                os("unpack"),
                archive.as_os_str(),
                os("-C"),
                dest.as_os_str(),
            ]);
        }
        stop(attacker, &dest);
        assert_attacker_gained_nothing(&keep, &data);
        let v = fs::metadata(&victim).unwrap();
        assert_eq!(
            fs::read(&victim).unwrap(),
            MARK,
            "the file outside was written"
        );
        assert_eq!(
            (v.uid(), v.mode() & 0o7777),
            (ATTACKER, 0o644),
            "the file outside changed"
        );
        // Left alone, the same unpack restores the file whole.
        let clean = s.path(&format!("clean{round}"));
        ok(&[
            os("unpack"),
            archive.as_os_str(),
            os("-C"),
            clean.as_os_str(),
        ]);
        let m = fs::metadata(clean.join("big")).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o4755));
        assert_eq!(fs::read(clean.join("big")).unwrap(), data);
    }
}

/// A second user who can write the target never receives the first user's private
/// data through a file of its own renamed over a file being unpacked.
fn non_root_split_files() {
    const OWNER: u32 = 4711;
    let s = Scratch::new("race-user");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let (archive, data) = split_archive(&s, "private", 0o600, 11);
    for round in 0..4 {
        let dest = owned_dir(&s, &format!("dest{round}"), OWNER);
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o777)).unwrap();
        let keep = owned_dir(&s, &format!("keep{round}"), ATTACKER);
        let names = ["private".into()];
        let attacker = start_attacker(ATTACKER, "open", &dest, &names, None, Some(&keep));
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..10 {
            let _ = Command::new("setpriv")
                .args([
                    &format!("--reuid={OWNER}"),
                    &format!("--regid={OWNER}"),
                    "--clear-groups",
                ])
                .arg(bin())
                .args([
                    os("unpack"),
                    archive.as_os_str(),
                    os("-C"),
                    dest.as_os_str(),
                ])
                .output()
                .unwrap();
        }
        stop(attacker, &dest);
        assert_attacker_gained_nothing(&keep, &data);
    }
}

/// Root unpacks many fifos of mode 0666 into a directory the attacker owns, while the
/// attacker renames symlinks to a root-only file over their names.
fn fifos() {
    let s = Scratch::new("race-fifo");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let src = s.path("src");
    fs::create_dir_all(&src).unwrap();
    let names: Vec<String> = (0..500).map(|i| format!("f{i}")).collect();
    for n in &names {
        let p = src.join(n);
        let made = Command::new("mkfifo")
            .arg("-m")
            .arg("0666")
            .arg(&p)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644)).unwrap();
    let secret = s.path("secret");
    fs::write(&secret, b"root only").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    for round in 0..4 {
        let dest = owned_dir(&s, &format!("dest{round}"), ATTACKER);
        let attacker = start_attacker(ATTACKER, "symlink", &dest, &names, Some(&secret), None);
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..3 {
            let _ = run(&[
                os("unpack"),
                archive.as_os_str(),
                os("-C"),
                dest.as_os_str(),
            ]);
        }
        stop(attacker, &dest);
        let m = fs::metadata(&secret).unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o7777),
            (0, 0o600),
            "round {round}: the root-only file's mode was changed through a symlink"
        );
    }
}

/// Root packs a tree that the attacker owns, with both I/O backends, while the
/// attacker exchanges directories of the tree with symlinks to a root-only directory.
/// No archive may hold, and no message may name, what the symlinks lead to.
fn pack_swaps() {
    const PAIRS: usize = 4;
    let s = Scratch::new("race-pack");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let secret = s.path("secret");
    fs::create_dir(&secret).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(secret.join("marker-file"), b"root only").unwrap();
    fs::create_dir(secret.join("marker-dir")).unwrap();
    let tree = s.path("tree");
    fs::create_dir(&tree).unwrap();
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let sub = tree.join(format!("sub{i}"));
        fs::create_dir_all(sub.join("inner")).unwrap();
        fs::write(sub.join("inner/plain"), b"nobody's").unwrap();
        std::os::unix::fs::symlink(&secret, tree.join(format!("swap{i}"))).unwrap();
        pairs.push(format!("sub{i}:swap{i}"));
    }
    for e in walk(&tree) {
        std::os::unix::fs::lchown(&e, Some(ATTACKER), Some(ATTACKER)).unwrap();
    }
    std::os::unix::fs::chown(&tree, Some(ATTACKER), Some(ATTACKER)).unwrap();
    let attacker = start_attacker(ATTACKER, "exchange", &tree, &pairs, None, None);
    let mut swapped = 0;
    for run in 0..20 {
        let io = if run % 2 == 0 { "uring" } else { "portable" };
        let out = s.path(&format!("out{run}.znippy"));
        let r = command()
            .env("ZNIPPY_IO", io)
            .args([os("pack"), tree.as_os_str(), os("-o"), out.as_os_str()])
            .args(["--on-change", "warn"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert!(
            !err.contains("marker"),
            "run {run} ({io}): the walk followed a symlink: {err}"
        );
        assert!(r.status.success(), "run {run} ({io}): {err}");
        let listed = ok(&[os("list"), out.as_os_str()]).stdout;
        let listed = String::from_utf8_lossy(&listed).into_owned();
        assert!(
            !listed.contains("marker"),
            "run {run} ({io}): archived what a symlink leads to:\n{listed}"
        );
        swapped += usize::from(err.contains("now a symlink"));
    }
    stop(attacker, &tree);
    println!("  {swapped} of 20 packs saw a swapped directory");
}

/// Root unpacks 300 files of mode 0640 into `g`, in a target the attacker owns, while
/// the attacker exchanges `g` with a directory of its own that has a default ACL
/// giving it access: files made in the attacker's directory, whatever its path was
/// when we looked, must not keep that ACL.
fn acl_swaps() {
    let s = Scratch::new("race-acl");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let src = s.path("src");
    for i in 0..300 {
        write(&src, &format!("g/f{i}"), format!("secret {i}").as_bytes());
        fs::set_permissions(
            src.join(format!("g/f{i}")),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
    }
    let archive = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), archive.as_os_str()]);
    for round in 0..4 {
        let dest = owned_dir(&s, &format!("dest{round}"), ATTACKER);
        let theirs = dest.join(".theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(ATTACKER), Some(ATTACKER)).unwrap();
        if let Err(e) = set_default_acl(&theirs, ATTACKER) {
            println!("  SKIPPED: no POSIX ACLs here ({e})");
            return;
        }
        fs::create_dir(dest.join("g")).unwrap();
        let attacker = start_attacker(
            ATTACKER,
            "exchange",
            &dest,
            &["g:.theirs".into()],
            None,
            None,
        );
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..3 {
            let _ = run(&[
                os("unpack"),
                archive.as_os_str(),
                os("-C"),
                dest.as_os_str(),
            ]);
        }
        stop(attacker, &dest);
        for e in walk(&dest) {
            let m = fs::symlink_metadata(&e).unwrap();
            if !m.is_file() || m.uid() != 0 {
                continue;
            }
            let acl = rustix::fs::lgetxattr(&e, "system.posix_acl_access", &mut [0u8; 256][..]);
            assert!(
                acl.is_err(),
                "round {round}: {} kept the attacker's ACL",
                e.display()
            );
        }
    }
}
