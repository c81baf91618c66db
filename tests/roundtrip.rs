//! Pack -> unpack round trips over generated trees, on both I/O backends, and the
//! determinism of the archive bytes.

mod common;

use common::*;
use std::fs;
use std::process::Command;
use znippy_uring::{Archive, EntryKind, IoMode, PackOptions, UnpackOptions, pack};

const CHUNK: usize = 64 << 10;

fn opts(io: IoMode, threads: usize) -> PackOptions {
    PackOptions {
        chunk_size: CHUNK,
        threads,
        io,
        // Every ctime recorded, so that packs of the same tree at any moment agree.
        racy_ctime: std::time::Duration::ZERO,
        ..PackOptions::default()
    }
}

#[test]
fn awkward_tree_round_trips_on_both_backends_byte_identically() {
    let s = Scratch::new("awkward");
    let src = s.path("src");
    awkward_tree(&src, CHUNK);
    let mut archives = Vec::new();
    // Thread counts beyond the cores, and a memory budget too small for eight
    // compressors (so fewer run than asked for), give the same archive.
    let one_compressor = 3 * CHUNK + (1 << 20) + zstd::zstd_safe::compress_bound(CHUNK);
    let runs = [1, 2, 3, 16, 64]
        .into_iter()
        .flat_map(|t| [(IoMode::Uring, t, None), (IoMode::Portable, t, None)])
        .chain([(IoMode::Uring, 8, Some(one_compressor))]);
    for (io, threads, memory) in runs {
        let out = s.path(&format!("a-{io:?}-{threads}-{memory:?}.znippy"));
        let opts = PackOptions {
            memory: memory.unwrap_or(opts(io, threads).memory),
            ..opts(io, threads)
        };
        let report = pack(&src, &out, &opts).unwrap();
        assert_eq!(
            report.backend.to_string(),
            if io == IoMode::Uring {
                "io_uring"
            } else {
                "portable"
            }
        );
        let dest = s.path(&format!("out-{io:?}-{threads}-{memory:?}"));
        Archive::open(&out)
            .unwrap()
            .unpack(&dest, &UnpackOptions::default())
            .unwrap();
        assert_eq!(
            snapshot(&src),
            snapshot(&dest),
            "tree differs after {io:?} x{threads}"
        );
        archives.push(fs::read(&out).unwrap());
    }
    for a in &archives[1..] {
        assert!(
            a == &archives[0],
            "archives differ between backends or thread counts"
        );
    }
}

#[test]
fn index_records_what_the_tree_holds() {
    let s = Scratch::new("index");
    let src = s.path("src");
    awkward_tree(&src, CHUNK);
    let out = s.path("a.znippy");
    let report = pack(&src, &out, &opts(IoMode::Auto, 2)).unwrap();
    let a = Archive::open(&out).unwrap();
    assert_eq!(a.entries().len() as u64, report.entries);
    let files: Vec<_> = a
        .entries()
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .collect();
    assert_eq!(files.len() as u64, report.files);
    for e in &files {
        let path = src.join(std::ffi::OsStr::from_bytes(&e.path));
        let data = fs::read(&path).unwrap();
        assert_eq!(e.size, data.len() as u64, "{}", e.display_path());
        // The file digest is plain BLAKE3 of the file, as b3sum prints it.
        assert_eq!(
            e.digest,
            Some(*blake3::hash(&data).as_bytes()),
            "{}",
            e.display_path()
        );
        let mut read = Vec::new();
        a.read_file(&e.path, &mut read).unwrap();
        assert!(read == data, "read_file of {} differs", e.display_path());
    }
    let link = a
        .entries()
        .iter()
        .find(|e| e.path == b"sub/link-to-file")
        .unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(
        link.link_target.as_deref(),
        Some(&b"../sizes/exact.txt"[..])
    );
    assert!(
        a.entries()
            .iter()
            .any(|e| e.path == b"empty/dir/inside" && e.kind == EntryKind::Dir)
    );
    // Stored: the skip-listed and the random chunks; the text is compressed.
    let stored = a
        .chunks()
        .iter()
        .filter(|c| c.stored_len == c.raw_len)
        .count() as u64;
    assert_eq!(stored, report.stored_chunks);
    assert!(report.stored_chunks >= 3 && report.stored_chunks < report.chunks);
    // Paths are in walk order: sorted, each directory before its contents.
    let paths: Vec<&[u8]> = a.entries().iter().map(|e| e.path.as_slice()).collect();
    let mut sorted = paths.clone();
    sorted.sort_by(|x, y| x.split(|&b| b == b'/').cmp(y.split(|&b| b == b'/')));
    assert_eq!(paths, sorted);
    assert!(a.verify(2).unwrap().is_ok());
}

use std::os::unix::ffi::OsStrExt;

#[test]
fn ten_thousand_small_files_share_solid_chunks_and_unpack_under_a_low_fd_limit() {
    let s = Scratch::new("small");
    let src = s.path("src");
    small_files(&src, 10_000);
    let out = s.path("small.znippy");
    let limited = |args: &str| {
        let cmd = format!("ulimit -n 256 && {} {args}", bin().display());
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    limited(&format!("pack {} -o {}", src.display(), out.display()));
    let a = Archive::open(&out).unwrap();
    let files = a
        .entries()
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .count();
    assert_eq!(files, 10_000);
    // Small files are packed together: far fewer chunks than files.
    assert!(a.chunks().len() < files / 10, "{} chunks", a.chunks().len());
    let dest = s.path("dest");
    limited(&format!("unpack {} -C {}", out.display(), dest.display()));
    assert_eq!(snapshot(&src), snapshot(&dest));
}

#[test]
fn cat_and_extract_read_only_what_is_asked() {
    let s = Scratch::new("cat");
    let src = s.path("src");
    awkward_tree(&src, CHUNK);
    let out = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--chunk-size"),
        os("64K"),
    ]);
    let cat = ok(&[os("cat"), out.as_os_str(), os("sizes/many.txt")]);
    assert!(cat.stdout == fs::read(src.join("sizes/many.txt")).unwrap());
    let raw_name = std::ffi::OsStr::from_bytes(b"unicode/latin1-\xe9\xff.bin");
    let cat = ok(&[os("cat"), out.as_os_str(), raw_name]);
    assert_eq!(cat.stdout, b"not utf-8 name");
    let dest = s.path("x");
    // A path given twice is extracted once; a directory brings its contents.
    ok(&[
        os("extract"),
        out.as_os_str(),
        os("unicode"),
        os("mixed/notes.md"),
        os("mixed/notes.md"),
        os("-C"),
        dest.as_os_str(),
    ]);
    assert_eq!(
        fs::read(dest.join("unicode/日本語/ファイル.txt")).unwrap(),
        b"konnichiwa\n"
    );
    assert!(dest.join("mixed/notes.md").exists());
    assert!(!dest.join("sizes").exists());
    let missing = run(&[
        os("extract"),
        out.as_os_str(),
        os("no/such/file"),
        os("-C"),
        dest.as_os_str(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file: not in"));
    let dir = run(&[os("cat"), out.as_os_str(), os("sub")]);
    assert!(String::from_utf8_lossy(&dir.stderr).contains("is a dir"));
}

#[test]
fn list_and_info_describe_the_archive() {
    let s = Scratch::new("list");
    let src = s.path("src");
    write(&src, "a.txt", b"hello");
    write(&src, "b/c.txt", &bytes(1, 100_000, true));
    std::os::unix::fs::symlink("a.txt", src.join("l")).unwrap();
    let out = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--repo"),
        os("main"),
        os("--pkg-type"),
        os("7"),
    ]);
    let list = String::from_utf8(ok(&[os("list"), out.as_os_str()]).stdout).unwrap();
    assert_eq!(list, "a.txt\nb\nb/c.txt\nl\n");
    let long = String::from_utf8(ok(&[os("list"), os("-l"), out.as_os_str()]).stdout).unwrap();
    let user = |id: &str| {
        let out = Command::new("id").arg(id).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let owner = format!("{}/{}", user("-un"), user("-gn"));
    assert!(
        long.contains(&format!("-rw-r--r-- {owner:<17}       100000 ")),
        "{long}"
    );
    assert!(long.contains(" l -> a.txt"), "{long}");
    let info = String::from_utf8(ok(&[os("info"), out.as_os_str()]).stdout).unwrap();
    assert!(info.contains("format version: 4"), "{info}");
    assert!(
        info.contains("(2 files, 1 dirs, 1 symlinks, 0 hard links, 0 special)"),
        "{info}"
    );
    assert!(info.contains("pkg_type     7  repo main"), "{info}");
}

#[test]
fn empty_directory_packs_and_unpacks() {
    let s = Scratch::new("emptydir");
    let src = s.path("src");
    fs::create_dir_all(&src).unwrap();
    let out = s.path("e.znippy");
    let r = pack(&src, &out, &opts(IoMode::Auto, 2)).unwrap();
    assert_eq!((r.entries, r.chunks), (0, 0));
    let a = Archive::open(&out).unwrap();
    assert!(a.is_empty() && a.verify(1).unwrap().is_ok());
    a.unpack(&s.path("dest"), &UnpackOptions::default())
        .unwrap();
    assert!(s.path("dest").is_dir());
}

#[test]
fn no_skip_compresses_skip_listed_files_and_random_data_is_still_stored() {
    let s = Scratch::new("noskip");
    let src = s.path("src");
    write(&src, "text.gz", &bytes(3, 200_000, true)); // compressible despite its name
    write(&src, "random.bin", &bytes(4, 200_000, false));
    let skip = pack(&src, &s.path("skip.znippy"), &opts(IoMode::Auto, 2)).unwrap();
    let noskip = pack(
        &src,
        &s.path("noskip.znippy"),
        &PackOptions {
            skip_compressed: false,
            ..opts(IoMode::Auto, 2)
        },
    )
    .unwrap();
    assert!(
        noskip.archive_len + 100_000 < skip.archive_len,
        "{noskip:?} vs {skip:?}"
    );
    assert_eq!(noskip.stored_chunks, skip.stored_chunks / 2);
    // The random file is incompressible: stored raw either way.
    let a = Archive::open(&s.path("noskip.znippy")).unwrap();
    let random = a
        .entries()
        .iter()
        .find(|e| e.path == b"random.bin")
        .unwrap()
        .location
        .unwrap();
    for id in random.first_chunk..=random.last_chunk {
        let c = &a.chunks()[id as usize];
        assert_eq!(c.stored_len, c.raw_len, "random chunk {id} kept compressed");
    }
}

#[test]
fn archive_written_inside_the_packed_tree_leaves_itself_out() {
    let s = Scratch::new("self");
    let src = s.path("src");
    write(&src, "a.txt", b"content");
    let out = src.join("self.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), out.as_os_str()]);
    let list = String::from_utf8(ok(&[os("list"), out.as_os_str()]).stdout).unwrap();
    assert_eq!(list, "a.txt\n");
}

#[test]
fn each_zstd_blob_is_a_standalone_standard_frame() {
    let s = Scratch::new("frames");
    let src = s.path("src");
    awkward_tree(&src, CHUNK);
    let out = s.path("a.znippy");
    pack(&src, &out, &opts(IoMode::Auto, 2)).unwrap();
    let bytes = fs::read(&out).unwrap();
    let a = Archive::open(&out).unwrap();
    let mut frames = 0;
    for c in a
        .chunks()
        .iter()
        .filter(|c| c.codec == znippy_uring::Codec::Zstd)
    {
        let blob = &bytes[c.offset as usize..(c.offset + c.stored_len) as usize];
        // The streaming decoder reads frame after frame: exactly one frame, exact size.
        let raw = zstd::stream::decode_all(blob).unwrap();
        assert_eq!(raw.len() as u64, c.raw_len);
        // The chunk's digest is of the frame as stored (format 2).
        assert_eq!(*blake3::hash(blob).as_bytes(), c.digest);
        frames += 1;
    }
    assert!(frames > 3);
}

#[test]
fn cat_into_a_closed_pipe_stops_quietly() {
    let s = Scratch::new("pipe");
    let src = s.path("src");
    write(&src, "big.txt", &bytes(1, 3_000_000, true));
    let out = s.path("a.znippy");
    ok(&[os("pack"), src.as_os_str(), os("-o"), out.as_os_str()]);
    let cmd = format!(
        "{} cat {} big.txt | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        bin().display(),
        out.display()
    );
    let r = std::process::Command::new("bash")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    // Killed by SIGPIPE (128 + 13), with nothing on stderr.
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "141");
    assert!(
        r.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn store_packs_every_chunk_as_is_and_round_trips() {
    let s = Scratch::new("store");
    let src = s.path("src");
    awkward_tree(&src, CHUNK);
    let out = s.path("a.znippy");
    let stored = PackOptions {
        store: true,
        ..opts(IoMode::Auto, 2)
    };
    let report = pack(&src, &out, &stored).unwrap();
    assert!(report.chunks > 1);
    assert_eq!(report.stored_chunks, report.chunks);
    let a = Archive::open(&out).unwrap();
    let raw: u64 = a.chunks().iter().map(|c| c.raw_len).sum();
    assert_eq!(
        raw, report.bytes_in,
        "a stored pack's blobs are the files' bytes"
    );
    assert!(a.verify(2).unwrap().damaged.is_empty());
    let dest = s.path("out");
    a.unpack(&dest, &UnpackOptions::default()).unwrap();
    assert_eq!(snapshot(&src), snapshot(&dest));
    // The same files compressed are smaller: --store really turned zstd off.
    let zipped = pack(&src, &s.path("z.znippy"), &opts(IoMode::Auto, 2)).unwrap();
    assert!(zipped.archive_len < report.archive_len);
}

#[test]
fn a_memory_budget_too_small_for_one_compressor_is_refused() {
    let s = Scratch::new("memory");
    let src = s.path("src");
    awkward_tree(&src, CHUNK);
    let opts = PackOptions {
        memory: CHUNK,
        ..opts(IoMode::Auto, 2)
    };
    let e = pack(&src, &s.path("a.znippy"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("too small") && e.contains("one compressor needs"),
        "{e}"
    );
    assert!(!s.path("a.znippy").exists());
}

#[test]
fn pack_and_unpack_report_where_their_time_went() {
    let s = Scratch::new("stages");
    let src = s.path("src");
    awkward_tree(&src, CHUNK);
    let out = s.path("a.znippy");
    let report = pack(&src, &out, &opts(IoMode::Auto, 3)).unwrap();
    let names: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["walk", "compress", "write", "index"]);
    let stage = |n: &str| report.stages.iter().find(|s| s.stage == n).unwrap();
    let compress = stage("compress");
    assert_eq!(compress.threads, 3);
    assert_eq!(report.compressors, 3);
    assert!(report.pipeline_bytes > 0);
    let work: Vec<&str> = compress.work.iter().map(|p| p.name.as_str()).collect();
    assert!(
        work.contains(&"compress") && work.contains(&"hash"),
        "{work:?}"
    );
    for s in &report.stages {
        assert!(s.busy_s >= 0.0 && s.wait_s >= 0.0, "{s:?}");
        assert!(s.utilization >= 0.0 && s.utilization <= 1.5, "{s:?}");
        let parts: f64 = s.work.iter().map(|p| p.seconds).sum();
        assert!((parts - s.busy_s).abs() < 1e-6, "{s:?}");
    }
    assert!(stage("walk").busy_s > 0.0);

    let r = Archive::open(&out)
        .unwrap()
        .unpack(&s.path("out"), &UnpackOptions::default())
        .unwrap();
    let names: Vec<&str> = r.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["prepare", "data", "finish"]);
    let data = &r.stages[1];
    assert_eq!(data.threads, r.threads);
    let work: Vec<&str> = data.work.iter().map(|p| p.name.as_str()).collect();
    assert!(
        work.contains(&"verify") && work.contains(&"write"),
        "{work:?}"
    );
}

/// Codec of each chunk of the file at `path` in `a`.
fn codecs_of(a: &Archive, path: &[u8]) -> Vec<znippy_uring::Codec> {
    let e = a.entries().iter().find(|e| e.path == path).unwrap();
    let at = e.location.unwrap();
    (at.first_chunk..=at.last_chunk)
        .map(|id| a.chunks()[id as usize].codec)
        .collect()
}

#[test]
fn random_data_off_the_skip_list_is_stored_by_the_sample_test_deterministically() {
    use znippy_uring::Codec;
    const MIB: usize = 1 << 20;
    let s = Scratch::new("sample");
    let src = s.path("src");
    write(&src, "random.bin", &bytes(11, 3 * MIB + 5000, false));
    write(&src, "text.dat", &bytes(12, 2 * MIB + 77, true));
    // Random with text in its middle sixteenth: the sample finds the text.
    let mut mixed = bytes(13, MIB, false);
    mixed[MIB / 2..MIB / 2 + MIB / 16].copy_from_slice(&bytes(14, MIB / 16, true));
    write(&src, "mixed.dat", &mixed);
    let mut archives = Vec::new();
    for (io, threads) in [
        (IoMode::Uring, 1),
        (IoMode::Uring, 2),
        (IoMode::Portable, 3),
    ] {
        let out = s.path(&format!("a-{io:?}-{threads}.znippy"));
        let o = PackOptions {
            chunk_size: MIB,
            ..opts(io, threads)
        };
        let report = pack(&src, &out, &o).unwrap();
        let a = Archive::open(&out).unwrap();
        assert_eq!(codecs_of(&a, b"random.bin"), [Codec::Stored; 4]);
        assert_eq!(codecs_of(&a, b"text.dat"), [Codec::Zstd; 3]);
        let mixed_codecs = codecs_of(&a, b"mixed.dat");
        assert!(mixed_codecs.contains(&Codec::Zstd), "{mixed_codecs:?}");
        assert_eq!(report.stored_chunks, 4, "{report:?}");
        let dest = s.path(&format!("out-{io:?}-{threads}"));
        a.unpack(&dest, &UnpackOptions::default()).unwrap();
        assert_eq!(snapshot(&src), snapshot(&dest));
        assert!(a.verify(2).unwrap().is_ok());
        archives.push(fs::read(&out).unwrap());
    }
    assert!(
        archives.iter().all(|a| a == &archives[0]),
        "archives differ"
    );
    // `info --json` says so too.
    let info = ok(&[
        os("info"),
        os("--json"),
        s.path("a-Uring-1.znippy").as_os_str(),
    ]);
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(info.contains("\"stored_chunks\":4"), "{info}");
}
