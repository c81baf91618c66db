//! System calls per archived file outside the ring: a trace of a pack of 1,000 files
//! counts the file-level calls (the walk's stat and xattr listing, the compressor's
//! open, type check, change check; close goes through the ring, and no fcntl is made
//! on a file system io_uring reads without blocking).
//!
//! Needs strace: SKIPPED without it, unless ZNIPPY_REQUIRE_STRACE is set (as `.ci/run`
//! does after installing it).

mod common;
use common::*;

const FILE_CALLS: &str = "trace=openat,openat2,close,fstat,newfstatat,statx,fcntl,llistxattr,flistxattr,lgetxattr,readlinkat,pread64";

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
                        call.starts_with(&format!("{n}("))
                    })
                    .count();
                (n.to_string(), count as f64 / FILES as f64)
            })
            .collect(),
    )
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
    assert!((1.0..1.1).contains(&get("llistxattr")), "{per:?}");
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
