//! The walk never follows a symlink at any component, even one another user swaps in
//! while root packs a tree that user can write: every directory is opened beneath the
//! pack root's descriptor and its entries are read through that descriptor. With
//! `--from-list`, a listed path under a symlink is refused, naming it.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable that turns [`attacker`] from a no-op into the attacker: its
/// value is the tree whose `subN` and `swapN` it exchanges.
const ATTACK: &str = "ZNIPPY_TEST_ATTACK_TREE";
/// Pairs of a directory and a symlink the attacker exchanges.
const PAIRS: usize = 4;
/// The longest the attacker runs, whatever happens to the test.
const ATTACK_MAX: Duration = Duration::from_secs(30);

/// Not a test of its own: run by [`a_directory_swapped_for_a_symlink_while_packed_is_never_followed`]
/// as `nobody`, with [`ATTACK`] set, it exchanges each `subN` of the tree with its
/// `swapN` (a symlink to a root-only directory) with renameat2(RENAME_EXCHANGE), over
/// and over, until the file `stop` appears in the tree or [`ATTACK_MAX`] has passed.
/// Without [`ATTACK`] it does nothing.
#[test]
fn attacker() {
    let Some(tree) = std::env::var_os(ATTACK) else {
        return;
    };
    let tree = Path::new(&tree);
    let start = Instant::now();
    let mut swaps = 0u64;
    while start.elapsed() < ATTACK_MAX && !tree.join("stop").exists() {
        for i in 0..PAIRS {
            let (a, b) = (tree.join(format!("sub{i}")), tree.join(format!("swap{i}")));
            let flags = rustix::fs::RenameFlags::EXCHANGE;
            if rustix::fs::renameat_with(rustix::fs::CWD, &a, rustix::fs::CWD, &b, flags).is_ok() {
                swaps += 1;
            }
        }
    }
    // Swapping must have worked: otherwise the race test proves nothing.
    assert!(swaps > 0, "no exchange succeeded");
}

/// The attacker process, told to stop (and killed if it has not) when dropped, so a
/// failing assertion does not leave it running.
struct Attacker {
    child: Option<std::process::Child>,
    stop: std::path::PathBuf,
}

impl Attacker {
    /// Stops it and returns what it said.
    fn finish(mut self) -> std::process::Output {
        fs::write(&self.stop, b"").unwrap();
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = fs::write(&self.stop, b"");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The attacker, as `nobody`: this test binary, run with [`ATTACK`] set, selecting
/// [`attacker`] only. The binary is copied where `nobody` can run it if it cannot be
/// run in place.
fn spawn_attacker(tree: &Path, scratch: &Scratch) -> Attacker {
    let mut exe = std::env::current_exe().unwrap();
    let runnable = as_nobody(&format!("test -x '{}'", exe.display()));
    if !runnable.status.success() {
        let copy = scratch.path("attacker-exe");
        fs::copy(&exe, &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        exe = copy;
    }
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", "attacker", "--nocapture", "--test-threads=1"])
        .env(ATTACK, tree)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Attacker {
        child: Some(child),
        stop: tree.join("stop"),
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_while_packed_is_never_followed() {
    if !is_root() {
        eprintln!("skipped: needs root (to pack a tree nobody can write)");
        return;
    }
    let s = Scratch::new("walk-race");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    // The root-only directory the symlinks lead to, outside the tree.
    let secret = s.path("secret");
    fs::create_dir(&secret).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(secret.join("marker-file"), b"root only").unwrap();
    fs::create_dir(secret.join("marker-dir")).unwrap();
    // The tree, all owned by nobody: directories to be swapped, each with something in
    // it, and the symlinks they are swapped with.
    let tree = s.path("tree");
    fs::create_dir(&tree).unwrap();
    for i in 0..PAIRS {
        let sub = tree.join(format!("sub{i}"));
        fs::create_dir_all(sub.join("inner")).unwrap();
        fs::write(sub.join("inner/plain"), b"nobody's").unwrap();
        symlink(&secret, tree.join(format!("swap{i}"))).unwrap();
    }
    for e in walk_all(&tree) {
        std::os::unix::fs::lchown(&e, Some(65534), Some(65534)).unwrap();
    }
    chown(&tree, Some(65534), Some(65534)).unwrap();

    let attacker = spawn_attacker(&tree, &s);
    let mut outcomes = Vec::new();
    for run in 0..20 {
        let out = s.path(&format!("out{run}.znippy"));
        let r = run_pack(&tree, &out);
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert!(
            !err.contains("marker"),
            "run {run}: the walk followed a symlink: {err}"
        );
        if r.status.success() {
            let listed = ok(&[os("list"), out.as_os_str()]).stdout;
            let listed = String::from_utf8_lossy(&listed).into_owned();
            assert!(
                !listed.contains("marker"),
                "run {run}: archived what a swapped-in symlink leads to:\n{listed}"
            );
        }
        outcomes.push((r.status.code(), err));
    }
    let done = attacker.finish();
    assert!(
        done.status.success(),
        "attacker: {}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    // Each pack either wrote its archive or failed cleanly; and the swaps did reach the
    // walk in some runs (reported as a directory that became a symlink).
    assert!(outcomes.iter().all(|(c, _)| *c == Some(0)), "{outcomes:?}");
    let reported = outcomes
        .iter()
        .filter(|(_, e)| e.contains("now a symlink"))
        .count();
    eprintln!(
        "{reported} of {} packs saw a swapped directory",
        outcomes.len()
    );
}

/// Packs `tree` into `out`, keeping going past files that change (the swaps move them).
fn run_pack(tree: &Path, out: &Path) -> std::process::Output {
    run(&[
        os("pack"),
        tree.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--on-change"),
        os("warn"),
    ])
}

/// Every path under `dir`, not following symlinks.
fn walk_all(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk_all(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_directory_symlink_is_archived_as_a_symlink_with_nothing_under_it() {
    let s = Scratch::new("walk-dirlink");
    let outside = s.path("outside");
    write(&outside, "secret.txt", b"outside the tree");
    let src = s.path("src");
    write(&src, "d/f.txt", b"inside");
    symlink(&outside, src.join("to-outside")).unwrap();
    symlink("d", src.join("to-d")).unwrap();
    let out = s.path("a.znippy");
    let r = ok(&[os("pack"), src.as_os_str(), os("-o"), out.as_os_str()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!err.contains("warning") && !err.contains("secret"), "{err}");
    let listed = String::from_utf8(ok(&[os("list"), out.as_os_str()]).stdout).unwrap();
    assert_eq!(listed, "d\nd/f.txt\nto-d\nto-outside\n");
    let long = String::from_utf8(ok(&[os("list"), os("-l"), out.as_os_str()]).stdout).unwrap();
    assert!(
        long.contains(&format!("to-outside -> {}", outside.display())),
        "{long}"
    );
    assert!(long.contains("to-d -> d"), "{long}");
}

#[test]
fn a_listed_path_under_a_symlinked_directory_is_refused_naming_it() {
    let s = Scratch::new("walk-listed-link");
    let outside = s.path("outside");
    write(&outside, "secret.txt", b"outside the tree");
    let src = s.path("src");
    write(&src, "d/e/f.txt", b"inside");
    write(&src, "d/g.txt", b"inside too");
    write(&src, "top.txt", b"top");
    symlink(&outside, src.join("to-outside")).unwrap();
    symlink("d", src.join("to-d")).unwrap();
    let out = s.path("a.znippy");
    let pack_list = |list: &[u8]| {
        let listfile = s.path("list");
        fs::write(&listfile, list).unwrap();
        run(&[
            os("pack"),
            os("--from-list"),
            listfile.as_os_str(),
            src.as_os_str(),
            os("-o"),
            out.as_os_str(),
        ])
    };
    for (listed, link) in [
        ("to-outside/secret.txt", "to-outside"),
        ("to-d/e/f.txt", "to-d"),
        ("to-d/e", "to-d"),
    ] {
        let r = pack_list(format!("top.txt\0{listed}\0").as_bytes());
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{listed}: {err}");
        let named = format!(
            "{}: listed, but {} above it is a symlink",
            src.join(listed).display(),
            src.join(link).display()
        );
        assert!(err.contains(&named), "{listed}: {err}");
        assert!(!out.exists(), "{listed}: an archive was written");
    }
    // Under a file: refused too, saying what is in the way.
    let r = pack_list(b"top.txt/x\0");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("top.txt above it is not a directory"), "{err}");
    // Under an excluded symlink: left out, as anything under an excluded directory.
    let listfile = s.path("list");
    fs::write(&listfile, b"to-d/e/f.txt\0top.txt\0").unwrap();
    ok(&[
        os("pack"),
        os("--from-list"),
        listfile.as_os_str(),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--exclude"),
        os("to-d"),
    ]);
    let listed = String::from_utf8(ok(&[os("list"), out.as_os_str()]).stdout).unwrap();
    assert_eq!(listed, "top.txt\n");
    // The symlinks themselves, and paths beneath real directories in any order, are
    // packed: the directories above are opened once for a run of paths beneath them.
    let r = pack_list(b"d/g.txt\0to-d\0d/e/f.txt\0top.txt\0d/e\0to-outside\0");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let listed = String::from_utf8(ok(&[os("list"), out.as_os_str()]).stdout).unwrap();
    assert_eq!(
        listed,
        "d/e\nd/e/f.txt\nd/g.txt\nto-d\nto-outside\ntop.txt\n"
    );
    let content = ok(&[os("cat"), out.as_os_str(), os("d/e/f.txt")]).stdout;
    assert_eq!(content, b"inside");
}
