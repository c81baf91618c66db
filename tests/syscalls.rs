//! System calls and descriptors per archived file outside the ring: a trace of a pack
//! of 1,000 files counts the file-level calls (the walk's stat and xattr listing, the
//! compressor's open, type check, change check; close goes through the ring, and no
//! fcntl is made on a file system io_uring reads without blocking), and packs within a
//! low descriptor limit succeed.
//!
//! Needs strace: SKIPPED without it, unless ZNIPPY_REQUIRE_STRACE is set (as `.ci/run`
//! does after installing it).

mod common;
use common::*;

/// Every call: strace before 6.13 cannot name `listxattrat` in a filter (it prints it
/// as `syscall_0x1d1`).
const FILE_CALLS: &str = "trace=all";

/// How strace prints each call counted, by the name the test uses.
fn spellings(name: &str) -> &[&str] {
    match name {
        "listxattrat" => &["listxattrat", "syscall_0x1d1"],
        "openat2" => &["openat2"],
        "close" => &["close"],
        "fstat" => &["fstat"],
        "newfstatat" => &["newfstatat"],
        "fcntl" => &["fcntl"],
        "llistxattr" => &["llistxattr"],
        _ => &["pread64"],
    }
}

fn calls_per_file(io: &str) -> Option<Vec<(String, f64)>> {
    let s = Scratch::new(&format!("syscalls-{io}"));
    let src = s.path("src");
    const FILES: usize = 1000;
    for i in 0..FILES {
        write(
            &src,
            &format!("d{}/f{i}", i % 8),
            &bytes(i as u64, 3000, true),
        );
    }
    let archive = s.path("a.znippy");
    let args = [
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("--no-sync"),
        os("--io"),
        os(io),
    ];
    let calls = traced(&args, &s.0, FILE_CALLS)?;
    let names = [
        "openat2",
        "close",
        "fstat",
        "newfstatat",
        "fcntl",
        "llistxattr",
        "listxattrat",
        "pread64",
    ];
    Some(
        names
            .iter()
            .map(|n| {
                let count = calls
                    .iter()
                    .filter(|c| {
                        // "PID  call(args) = result", the PID padded to 5 columns.
                        let call = c.split_once(' ').map_or("", |(_, r)| r.trim_start());
                        (spellings(n).iter()).any(|n| call.starts_with(&format!("{n}(")))
                    })
                    .count();
                (n.to_string(), count as f64 / FILES as f64)
            })
            .collect(),
    )
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

#[test]
fn a_file_costs_an_open_two_stats_and_an_xattr_listing_and_its_close_is_in_the_ring() {
    let Some(per) = calls_per_file("uring") else {
        return;
    };
    let get = |n: &str| per.iter().find(|(k, _)| k == n).map_or(0.0, |(_, v)| *v);
    // Opens include the directories' (8 of them, and the root's few).
    assert!((1.0..1.1).contains(&get("openat2")), "{per:?}");
    assert!((1.0..1.1).contains(&get("fstat")), "{per:?}");
    assert!((2.0..2.2).contains(&get("newfstatat")), "{per:?}");
    // The listing's one xattr call: listxattrat relative to the directory where the
    // kernel has it (6.13), which looks up one name instead of a /proc magic link;
    // llistxattr through /proc/self/fd only for a file that has attributes, or on an
    // older kernel.
    let listings = get("llistxattr") + get("listxattrat");
    assert!((1.0..1.1).contains(&listings), "{per:?}");
    if kernel_at_least(6, 13) {
        assert!(get("llistxattr") < 0.05, "{per:?}");
    }
    // Before: a fcntl pair per file to clear O_NONBLOCK, and a close per file.
    assert!(get("fcntl") < 0.1, "{per:?}");
    assert!(get("close") < 0.2, "{per:?}");
    // Nothing read outside the ring (only a short read would be).
    assert!(get("pread64") < 0.05, "{per:?}");
}

#[test]
fn the_portable_backend_closes_each_file_itself_and_reads_it_with_pread() {
    let Some(per) = calls_per_file("portable") else {
        return;
    };
    let get = |n: &str| per.iter().find(|(k, _)| k == n).map_or(0.0, |(_, v)| *v);
    assert!((1.0..1.2).contains(&get("close")), "{per:?}");
    assert!((1.0..1.1).contains(&get("pread64")), "{per:?}");
    assert!(get("fcntl") < 0.1, "{per:?}");
}

/// A pack under `ulimit -n LIMIT` (soft and hard), as `sh` runs it.
fn pack_under_limit(s: &Scratch, limit: u32, io: &str, threads: u32) -> std::process::Output {
    let script = format!(
        "ulimit -n {limit} && exec '{}' pack '{}' -o '{}' --io {io} --threads {threads} --no-sync -q",
        bin().display(),
        s.path("src").display(),
        s.path("a.znippy").display()
    );
    std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap()
}

#[test]
fn a_low_descriptor_limit_holds_on_both_backends() {
    let s = Scratch::new("syscalls-nofile");
    let src = s.path("src");
    for i in 0..3000usize {
        write(
            &src,
            &format!("d{}/f{i}", i % 10),
            &bytes(i as u64, i % 700, i % 3 == 0),
        );
    }
    for (limit, io, threads) in [
        (64, "uring", 8),
        (32, "uring", 2),
        (32, "portable", 8),
        (24, "uring", 16),
    ] {
        let out = pack_under_limit(&s, limit, io, threads);
        // Before: 32 files open per compressor between submissions, whatever the limit
        // (and, until round 2, as many threads as asked for at 24).
        assert!(
            out.status.success(),
            "ulimit -n {limit}, --io {io}, --threads {threads}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dest = s.path("out");
        let _ = std::fs::remove_dir_all(&dest);
        ok(&[
            os("unpack"),
            s.path("a.znippy").as_os_str(),
            os("-C"),
            dest.as_os_str(),
        ]);
        assert!(snapshot(&src) == snapshot(&dest));
    }
}
