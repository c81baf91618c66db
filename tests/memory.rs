//! Unpack and verify stay within `--memory` whatever `--threads` asks for: its readers' buffers
//! are what the budget counts, and what the process holds beyond a one-thread run.

mod common;
use common::*;

/// Peak RSS in KiB of `unpack ARCHIVE -C DEST` with `extra` flags, measured by the
/// binary's own `measure-exec` (a small process, so the test's size does not count).
fn unpack_peak_kib(s: &Scratch, archive: &std::path::Path, extra: &str) -> u64 {
    let dest = s.path("out");
    let _ = std::fs::remove_dir_all(&dest);
    let args = format!(
        "unpack '{}' -C '{}' {extra}",
        archive.display(),
        dest.display()
    );
    peak_kib(s, &args)
}

/// Peak RSS in KiB of the binary run with `args` (shell words).
fn peak_kib(s: &Scratch, args: &str) -> u64 {
    let script = format!("exec '{}' {args}", bin().display());
    let log = s.path("log");
    let out = command()
        .arg("measure-exec")
        .arg(&log)
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        fields.get(2),
        Some(&"0"),
        "{script}: {text} {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    fields[1].parse().unwrap()
}

#[test]
fn unpack_and_verify_at_64_threads_hold_no_more_than_their_memory_budget() {
    let s = Scratch::new("memory-unpack");
    let src = s.path("src");
    // Solid chunks of small files, as a source tree gives, and files of one chunk.
    for i in 0..3000usize {
        let len = 1000 + (i * 7919) % 30000;
        write(
            &src,
            &format!("d{}/f{i}.txt", i % 30),
            &bytes(i as u64, len, true),
        );
    }
    for i in 0..24usize {
        let len = (256 << 10) + i * (32 << 10);
        write(
            &src,
            &format!("big/f{i:02}.dat"),
            &bytes(i as u64, len, i % 2 == 0),
        );
    }
    let archive = s.path("a.znippy");
    ok(&[
        os("pack"),
        src.as_os_str(),
        os("-o"),
        archive.as_os_str(),
        os("--chunk-size"),
        os("256K"),
    ]);
    let budget_mib = 12u64;
    let flags = format!("--memory {budget_mib}M");
    let one = unpack_peak_kib(&s, &archive, &format!("{flags} --threads 1"));
    let many = unpack_peak_kib(&s, &archive, &format!("{flags} --threads 64"));
    // The one-thread run holds one reader (under 8 MiB here) on top of what any
    // unpack holds; 64 asked-for threads may add at most the rest of the budget.
    assert!(
        many <= one + budget_mib * 1024,
        "--threads 64 peaked at {many} KiB, one thread at {one} KiB, budget {budget_mib} MiB"
    );
    assert!(snapshot(&src) == snapshot(&s.path("out")));
    // verify holds one reader per thread too, within its --memory.
    let verify = |t: u32| {
        peak_kib(
            &s,
            &format!("verify '{}' {flags} --threads {t}", archive.display()),
        )
    };
    let (one, many) = (verify(1), verify(64));
    assert!(
        many <= one + budget_mib * 1024,
        "verify --threads 64 peaked at {many} KiB, one thread at {one} KiB, budget {budget_mib} MiB"
    );
}
