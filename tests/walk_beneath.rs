//! The walk never follows a symlink at any component: every directory is opened
//! beneath the pack root's descriptor and its entries are read through that
//! descriptor. With `--from-list`, a listed path under a symlink is refused, naming
//! it. (The race with another user swapping directories for symlinks while root
//! packs is in tests/races.rs.)

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::symlink;

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
