//! Extraction safety against crafted archives: traversal paths refused, symlinks (from
//! the archive or already in the target) never written through.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use znippy_uring::testing::format::{header, index};
use znippy_uring::{Archive, Entry, EntryKind, Error, Group, UnpackOptions};

fn entry(path: &[u8], kind: EntryKind, link: Option<&[u8]>) -> Entry {
    let mode = match kind {
        EntryKind::File => 0o100644,
        EntryKind::Dir => 0o40755,
        EntryKind::Symlink => 0o120777,
        EntryKind::Hardlink => 0o100644,
        EntryKind::Fifo => 0o010644,
        EntryKind::CharDevice => 0o020644,
        EntryKind::BlockDevice => 0o060644,
    };
    Entry {
        digest: (kind == EntryKind::File).then(|| *blake3::hash(b"").as_bytes()),
        link_target: link.map(<[u8]>::to_vec),
        ..Entry::new(path.to_vec(), kind, mode)
    }
}

/// Writes an archive holding exactly `entries` (no file data).
fn craft(path: &Path, entries: &[Entry]) {
    let mut bytes = header::encode(0).to_vec();
    let tail = index::encode(&[(Group::default(), entries)], &[], &[], header::HEADER_LEN);
    bytes.extend(tail);
    fs::write(path, bytes).unwrap();
}

#[test]
fn traversal_and_absolute_paths_are_refused_and_nothing_is_written() {
    let s = Scratch::new("traversal");
    let dest = s.path("dest");
    for bad in [
        &b"../escaped"[..],
        b"/tmp/znippy-absolute-escape",
        b"a/../../escaped",
        b"ok/./x",
        b"trailing/",
    ] {
        let a = s.path("bad.znippy");
        craft(
            &a,
            &[
                entry(b"innocent", EntryKind::File, None),
                entry(bad, EntryKind::File, None),
            ],
        );
        let err = Archive::open(&a)
            .unwrap()
            .unpack(&dest, &UnpackOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        assert!(!dest.join("innocent").exists(), "wrote before refusing");
        let cli = run(&[os("unpack"), a.as_os_str(), os("-C"), dest.as_os_str()]);
        assert_eq!(cli.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&cli.stderr).contains("refusing unsafe path"));
    }
    assert!(!s.path("escaped").exists());
    assert!(!Path::new("/tmp/znippy-absolute-escape").exists());
}

#[test]
fn symlink_planted_by_the_archive_is_never_written_through() {
    let s = Scratch::new("plant");
    let outside = s.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let a = s.path("plant.znippy");
    let target = outside.as_os_str().as_encoded_bytes();
    craft(
        &a,
        &[
            entry(b"link", EntryKind::Symlink, Some(target)),
            entry(b"link/pwned", EntryKind::File, None),
        ],
    );
    let dest = s.path("dest");
    let r = Archive::open(&a)
        .unwrap()
        .unpack(&dest, &UnpackOptions::default());
    assert!(r.is_err(), "a path through a symlink entry was accepted");
    assert!(
        !outside.join("pwned").exists(),
        "wrote through the archive's symlink"
    );
}

#[test]
fn symlink_already_in_the_target_is_never_followed() {
    let s = Scratch::new("existing");
    let outside = s.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();
    let dest = s.path("dest");
    fs::create_dir_all(&dest).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), dest.join("filelink")).unwrap();

    // A file under a pre-existing symlinked directory: refused.
    let a = s.path("a.znippy");
    craft(&a, &[entry(b"dirlink/victim", EntryKind::File, None)]);
    assert!(
        Archive::open(&a)
            .unwrap()
            .unpack(&dest, &UnpackOptions::default())
            .is_err()
    );
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");

    // A file where a symlink to a file stands: the symlink is replaced, not followed.
    let src = s.path("src");
    write(&src, "filelink", b"new contents");
    let b = s.path("b.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), b.as_os_str()]);
    ok(&[os("unpack"), b.as_os_str(), os("-C"), dest.as_os_str()]);
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");
    assert!(
        !fs::symlink_metadata(dest.join("filelink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(dest.join("filelink")).unwrap(), b"new contents");
}

#[test]
fn duplicate_paths_in_an_archive_are_refused() {
    let s = Scratch::new("dup");
    let a = s.path("dup.znippy");
    craft(
        &a,
        &[
            entry(b"same", EntryKind::File, None),
            entry(b"same", EntryKind::Dir, None),
        ],
    );
    let err = Archive::open(&a)
        .unwrap()
        .unpack(&s.path("d"), &UnpackOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("duplicate path same"), "{err}");
}

#[test]
fn chunk_lengths_beyond_what_zstd_can_produce_are_refused_before_any_allocation() {
    use znippy_uring::{ChunkRecord, Codec};
    let s = Scratch::new("biglen");
    let a = s.path("a.znippy");
    let mut bytes = header::encode(0).to_vec();
    bytes.extend(vec![0u8; 1 << 20]); // a 1 MiB "blob"
    let lying = ChunkRecord {
        offset: header::HEADER_LEN,
        stored_len: 1 << 20,
        raw_len: 100,
        codec: Codec::Zstd,
        digest: [0; 32],
        subtree_at: None,
    };
    let blob_end = bytes.len() as u64;
    bytes.extend(index::encode(
        &[(Group::default(), &[])],
        &[lying],
        &[],
        blob_end,
    ));
    fs::write(&a, bytes).unwrap();
    let err = Archive::open(&a).expect_err("accepted a 1 MiB frame for 100 bytes");
    assert!(
        err.to_string()
            .contains("zstd blob of 1048576 bytes for 100 raw bytes"),
        "{err}"
    );
}

#[test]
fn hard_links_to_paths_outside_the_target_are_refused() {
    let s = Scratch::new("hardlink");
    let a = s.path("h.znippy");
    craft(
        &a,
        &[
            entry(b"innocent", EntryKind::File, None),
            entry(b"evil", EntryKind::Hardlink, Some(b"../../etc/passwd")),
        ],
    );
    let dest = s.path("dest");
    let err = Archive::open(&a)
        .unwrap()
        .unpack(&dest, &UnpackOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    assert!(!dest.join("innocent").exists() && !dest.join("evil").exists());
}

#[test]
fn hard_links_that_do_not_name_a_file_of_the_archive_are_refused_before_anything_is_written() {
    let s = Scratch::new("hardlink-targets");
    let cases: [(&[u8], Vec<Entry>, &str); 6] = [
        (
            b"missing",
            vec![entry(b"missing", EntryKind::Hardlink, Some(b"nowhere"))],
            "a file not in the archive",
        ),
        (
            b"l2",
            vec![
                entry(b"f", EntryKind::File, None),
                entry(b"l1", EntryKind::Hardlink, Some(b"f")),
                entry(b"l2", EntryKind::Hardlink, Some(b"l1")),
            ],
            "another hard link",
        ),
        (
            b"self",
            vec![entry(b"self", EntryKind::Hardlink, Some(b"self"))],
            "itself",
        ),
        (
            b"to-dir",
            vec![
                entry(b"d", EntryKind::Dir, None),
                entry(b"to-dir", EntryKind::Hardlink, Some(b"d")),
            ],
            "a dir",
        ),
        (
            b"to-symlink",
            vec![
                entry(b"s", EntryKind::Symlink, Some(b"innocent")),
                entry(b"to-symlink", EntryKind::Hardlink, Some(b"s")),
            ],
            "a symlink",
        ),
        (
            b"to-fifo",
            vec![
                entry(b"p", EntryKind::Fifo, None),
                entry(b"to-fifo", EntryKind::Hardlink, Some(b"p")),
            ],
            "a fifo",
        ),
    ];
    for (n, (bad, mut entries, why)) in cases.into_iter().enumerate() {
        // A file that would be written first if the links were checked late.
        entries.insert(0, entry(b"innocent", EntryKind::File, None));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let a = s.path(&format!("h{n}.znippy"));
        craft(&a, &entries);
        let archive = Archive::open(&a).unwrap();
        let dest = s.path(&format!("dest{n}"));
        let err = archive
            .unpack(&dest, &UnpackOptions::default())
            .unwrap_err();
        let text = err.to_string();
        let name = String::from_utf8_lossy(bad);
        assert!(matches!(err, Error::Corrupt { .. }), "{text}");
        assert!(text.contains(&format!("hard link {name} names")), "{text}");
        assert!(text.contains(why), "{text}");
        assert!(
            !dest.join("innocent").exists(),
            "{name}: written before the check"
        );
        // Extracting the link alone is refused the same way.
        let err = archive.extract(&[bad], &dest, &UnpackOptions::default());
        let text = err.unwrap_err().to_string();
        assert!(text.contains(&format!("hard link {name} names")), "{text}");
    }
}

#[test]
fn extracting_a_hard_link_never_writes_the_file_it_names_unasked() {
    let s = Scratch::new("extract-link");
    let src = s.path("src");
    write(&src, "a/orig", b"archived version\n");
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::hard_link(src.join("a/orig"), src.join("b/link")).unwrap();
    let archive = s.path("h.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("-q"),
    ]);
    let live = s.path("live");
    write(&live, "a/orig", b"NEWER, not in the archive\n");
    for selection in ["b/link", "b"] {
        let out = run(&[
            os("extract"),
            archive.as_os_str(),
            os(selection),
            os("-C"),
            live.as_os_str(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{selection}: {err}");
        assert!(err.contains("b/link") && err.contains("a/orig"), "{err}");
        assert_eq!(
            std::fs::read(live.join("a/orig")).unwrap(),
            b"NEWER, not in the archive\n"
        );
        assert!(!live.join("b/link").exists());
    }
    // Named together, both come out, linked.
    ok(&[
        os("extract"),
        archive.as_os_str(),
        os("a/orig"),
        os("b/link"),
        os("-C"),
        s.path("both").as_os_str(),
    ]);
    use std::os::unix::fs::MetadataExt;
    let (x, y) = (
        std::fs::metadata(s.path("both/a/orig")).unwrap(),
        std::fs::metadata(s.path("both/b/link")).unwrap(),
    );
    assert_eq!(x.ino(), y.ino());
}

#[test]
fn what_unpack_refuses_verify_does_not_pass_and_entries_under_a_file_are_refused_first() {
    let s = Scratch::new("verify-refuses");
    let cases: [(&str, Vec<Entry>, &str); 3] = [
        (
            "dup",
            vec![
                entry(b"same", EntryKind::File, None),
                entry(b"same", EntryKind::Dir, None),
            ],
            "duplicate path same",
        ),
        (
            "under-file",
            vec![
                entry(b"multi", EntryKind::File, None),
                entry(b"multi/x", EntryKind::File, None),
            ],
            "multi/x lies under multi",
        ),
        (
            "traversal",
            vec![entry(b"../../x", EntryKind::File, None)],
            "../../x",
        ),
    ];
    for (name, entries, why) in cases {
        let a = s.path(&format!("{name}.znippy"));
        craft(&a, &entries);
        let archive = Archive::open(&a).unwrap();
        let err = archive.verify(1).unwrap_err();
        assert!(err.to_string().contains(why), "{name}: {err}");
        let dest = s.path(&format!("d-{name}"));
        let err = archive
            .unpack(&dest, &UnpackOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains(why), "{name}: {err}");
        // Refused before anything was written.
        assert!(!dest.join("multi").exists(), "{name}");
    }
}

#[test]
fn extracting_an_entry_under_a_file_of_the_archive_is_refused() {
    let s = Scratch::new("extract-under-file");
    let a = s.path("multi.znippy");
    craft(
        &a,
        &[
            entry(b"multi", EntryKind::File, None),
            entry(b"multi/x", EntryKind::File, None),
        ],
    );
    let dest = s.path("o");
    let err = Archive::open(&a)
        .unwrap()
        .extract(&[b"multi/x"], &dest, &UnpackOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("multi/x lies under multi"),
        "{err}"
    );
    assert!(!dest.join("multi").exists());
}

/// Directory modes are given deepest first whatever the archive's order: a parent
/// listed after its child and made unreadable and unwritable (mode 000) must not stop
/// the child getting its own mode, for a user who is not root.
#[test]
fn directory_modes_are_given_deepest_first_whatever_the_order() {
    let s = Scratch::new("dir-order");
    let a = s.path("order.znippy");
    let mut locked = entry(b"a", EntryKind::Dir, None);
    locked.mode = 0o40000;
    let mut child = entry(b"a/b", EntryKind::Dir, None);
    child.mode = 0o40700;
    craft(&a, &[child, locked, entry(b"a/b/f", EntryKind::File, None)]);
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
    let dest = s.path("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o777)).unwrap();
    let cmd = format!(
        "{} unpack {} -C {}",
        bin().display(),
        a.display(),
        dest.display()
    );
    let r = as_unprivileged(&cmd);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    fs::set_permissions(dest.join("a"), fs::Permissions::from_mode(0o700)).unwrap();
    let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("a/b"), 0o700);
    assert!(dest.join("a/b/f").exists());
}

/// Another user who can write the target renames a directory of root's that they
/// cannot read (0700) into the place of a directory of the archive (0755): by default
/// unpack gives its metadata only to directories it makes, so that one stays closed.
/// `--overwrite-dir` (GNU tar's default) gives it the archive's.
#[test]
fn a_directory_renamed_into_an_archived_directorys_place_is_not_opened_up() {
    if !is_root() {
        eprintln!("SKIPPED: needs root, to act as another user");
        return;
    }
    let s = Scratch::new("adopt");
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let a = s.path("a.znippy");
    craft(&a, &[entry(b"pub", EntryKind::Dir, None)]);
    for overwrite in [false, true] {
        let dest = s.path(&format!("dest-{overwrite}"));
        fs::create_dir(&dest).unwrap();
        std::os::unix::fs::chown(&dest, Some(65534), Some(65534)).unwrap();
        fs::create_dir(dest.join("vault")).unwrap();
        fs::set_permissions(dest.join("vault"), fs::Permissions::from_mode(0o700)).unwrap();
        let moved = as_nobody(&format!("mv '{0}/vault' '{0}/pub'", dest.display()));
        assert!(
            moved.status.success(),
            "{}",
            String::from_utf8_lossy(&moved.stderr)
        );
        let mut args = vec![os("unpack"), a.as_os_str(), os("-C"), dest.as_os_str()];
        if overwrite {
            args.push(os("--overwrite-dir"));
        }
        ok(&args);
        let mode = fs::metadata(dest.join("pub")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, if overwrite { 0o755 } else { 0o700 });
    }
}

#[test]
fn cat_refuses_what_unpack_and_verify_refuse() {
    let s = Scratch::new("cat-unsound");
    let a = s.path("a.znippy");
    let file = |p: &[u8]| entry(p, EntryKind::File, None);
    let cases: [(&[Entry], &[u8], &str); 5] = [
        (&[file(b"a"), file(b"a")], b"a", "duplicate path a"),
        (&[file(b"../evil")], b"../evil", "../evil"),
        (&[file(b"f"), file(b"f/x")], b"f/x", "f/x lies under f"),
        (
            &[
                file(b"t"),
                entry(b"h", EntryKind::Hardlink, Some(b"t")),
                file(b"t"),
            ],
            b"h",
            "duplicate path t",
        ),
        // Round 2: the trailing `/` stripped from what the user asks was stripped from a
        // hard link's target too.
        (
            &[file(b"t"), entry(b"h", EntryKind::Hardlink, Some(b"t/"))],
            b"h",
            "empty path component",
        ),
    ];
    for (entries, asked, says) in cases {
        craft(&a, entries);
        // Before: cat served the first entry of that name, or the unsafe one.
        let lookup = Archive::cat(&a, asked, &mut Vec::new()).unwrap_err();
        let opened = Archive::open(&a)
            .unwrap()
            .read_file(asked, &mut Vec::new())
            .unwrap_err();
        for err in [lookup, opened] {
            assert!(err.to_string().contains(says), "{err}");
        }
        let verified = Archive::open(&a).unwrap().verify(1);
        assert!(verified.is_err(), "verify passed what cat refuses");
    }
}

#[test]
fn a_mode_that_says_another_kind_is_refused() {
    let s = Scratch::new("mode-kind");
    let a = s.path("a.znippy");
    let mut link = entry(b"l", EntryKind::Symlink, Some(b"t"));
    link.mode = 0o100644; // a regular file's type bits on a symlink
    craft(&a, &[link]);
    // Before: verify passed and list -l showed `lrw-r--r--`.
    let err = Archive::open(&a).unwrap_err();
    assert!(err.to_string().contains("says another kind"), "{err}");
    // The lookup path (`cat`, plain `list`) reads the mode too (round 2: it did not).
    let mut file = entry(b"f", EntryKind::File, None);
    file.mode = 0o120644;
    craft(&a, &[file]);
    let err = Archive::cat(&a, b"f", &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("says another kind"), "{err}");
    assert!(Archive::paths(&a).is_err());
    // Type bits left out are not a contradiction.
    let mut bare = entry(b"l", EntryKind::Symlink, Some(b"t"));
    bare.mode = 0o777;
    craft(&a, &[bare]);
    assert!(Archive::open(&a).unwrap().verify(1).unwrap().is_ok());
}

/// A stored chunk of `raw` at offset 16 whose digest is its chaining value as the
/// BLAKE3 subtree at `at` (as format 4 writes a piece of a split file), in an archive
/// of format `version` with one file over it.
fn subtree_archive(path: &Path, raw: &[u8], at: u64, codec: znippy_uring::Codec, version: u32) {
    use blake3::hazmat::HasherExt;
    use znippy_uring::{ChunkRecord, DataLocation};
    // Where BLAKE3 cannot hash `raw` as that subtree (it panics), any digest will do.
    let fits = at.is_multiple_of(1024)
        && blake3::hazmat::max_subtree_len(at).is_none_or(|max| raw.len() as u64 <= max);
    let digest = match fits {
        true => {
            let mut h = blake3::Hasher::new();
            h.set_input_offset(at);
            h.update(raw);
            h.finalize_non_root()
        }
        false => [0; 32],
    };
    let mut bytes = header::encode(0).to_vec();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(raw);
    let chunk = ChunkRecord {
        offset: header::HEADER_LEN,
        stored_len: raw.len() as u64,
        raw_len: raw.len() as u64,
        codec,
        digest,
        subtree_at: Some(at),
    };
    let mut file = entry(b"f", EntryKind::File, None);
    file.size = raw.len() as u64;
    file.digest = Some(*blake3::hash(raw).as_bytes());
    file.location = Some(DataLocation {
        first_chunk: 0,
        last_chunk: 0,
        chunk_offset: 0,
        base: None,
    });
    let blob_end = bytes.len() as u64;
    bytes.extend(index::encode_as(
        version,
        &[(Group::default(), &[file])],
        &[chunk],
        &[],
        blob_end,
    ));
    fs::write(path, bytes).unwrap();
}

#[test]
fn subtree_digests_a_hasher_cannot_take_are_refused_when_opening_not_panicked_on() {
    use znippy_uring::Codec;
    let s = Scratch::new("subtree");
    let raw = vec![7u8; 3000];
    // What BLAKE3's hazmat API would panic on, or give no subtree's value for, and
    // what the format does not allow: each refused by name when the index is read.
    for (at, codec, version, why) in [
        (100, Codec::Stored, 4, "not a multiple of 1024"),
        (1 << 63, Codec::Stored, 4, "beyond any file's length"),
        (1024, Codec::Stored, 4, "longer than a BLAKE3 subtree there"),
        (2048, Codec::Stored, 4, "longer than a BLAKE3 subtree there"),
        (4096, Codec::Zstd, 4, "only a stored chunk's digest"),
        (
            4096,
            Codec::Stored,
            3,
            "no such digests before format version 4",
        ),
    ] {
        let a = s.path(&format!("a-{at}-{version}-{}.znippy", codec.name()));
        subtree_archive(&a, &raw, at, codec, version);
        let err = Archive::open(&a).err().map(|e| e.to_string());
        let err = err.unwrap_or_else(|| panic!("{at} {codec:?} v{version} accepted"));
        assert!(err.contains(&format!("subtree_at {at}: {why}")), "{err}");
        let out = run(&[os("verify"), a.as_os_str()]);
        assert_eq!(out.status.code(), Some(1), "{at}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panick"));
    }
    // Where the subtree fits (3000 bytes may start at 4096), the index is sound, but a
    // whole file is no piece at 4096: every reader refuses the chunk before using it.
    let a = s.path("fits.znippy");
    subtree_archive(&a, &raw, 4096, Codec::Stored, 4);
    Archive::open(&a).unwrap();
    let why =
        "chunk 0: its digest is of the bytes at offset 4096 of a file, but it holds part of a file";
    for args in [
        vec![os("verify"), a.as_os_str()],
        vec![os("cat"), a.as_os_str(), os("f")],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty() || args[0] == "verify");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
}
