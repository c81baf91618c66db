//! Quick engine benchmark (no harness): per-chunk compress and hash cost, and a small
//! tree packed through both I/O backends. Run with `cargo bench --bench engine`.
//! The full rig with peers and corpora is `znippy-uring bench` (throughput issue).

use std::time::{Duration, Instant};
use znippy_uring::{IoMode, PackOptions, pack};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn text(len: usize) -> Vec<u8> {
    let words = ["alpha ", "beta ", "gamma\n", "io_uring ", "zstd ", "ring\n"];
    let mut x = 1u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(x >> 60) as usize % words.len()].as_bytes());
    }
    out.truncate(len);
    out
}

fn main() {
    let chunk = text(1 << 20);
    let mb = chunk.len() as f64 / 1e6;
    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(chunk.len())];
    for level in [1, 3] {
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        let d = time(21, || {
            c.compress_to_buffer(&chunk, &mut out[..]).unwrap();
        });
        println!(
            "zstd level {level}, 1 MiB text chunk: {:.0} MB/s",
            mb / d.as_secs_f64()
        );
    }
    let d = time(51, || {
        std::hint::black_box(blake3::hash(&chunk));
    });
    println!("blake3, 1 MiB chunk: {:.0} MB/s", mb / d.as_secs_f64());

    let dir = std::env::temp_dir().join(format!("znippy-bench-{}", std::process::id()));
    let src = dir.join("src");
    for i in 0..5000 {
        let p = src.join(format!("d{}/f{i}.txt", i % 20));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &chunk[i * 7 % 1000..i * 7 % 1000 + 4000 + i % 9000]).unwrap();
    }
    let bytes: u64 = 5000 * 4000 + (0..5000u64).map(|i| i % 9000).sum::<u64>();
    for io in [IoMode::Uring, IoMode::Portable] {
        let opts = PackOptions {
            io,
            ..PackOptions::default()
        };
        let out = dir.join("b.znippy");
        let d = time(7, || {
            pack(&src, &out, &opts).unwrap();
        });
        println!(
            "pack 5000 small files ({:.0} MB), {io:?}: {:.0} MB/s, {:.0} files/s",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / d.as_secs_f64(),
            5000.0 / d.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
