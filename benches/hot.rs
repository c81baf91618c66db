//! Criterion benchmarks of the hot pieces of the pack pipeline:
//! compressing one chunk, hashing (chunks, small files, split files), the slot
//! hand-off between compressor and writer, and a batch of small-file reads through the
//! I/O queue on both backends. Run: `cargo bench --bench hot`.
//! Whole-tree throughput against peers is `znippy-uring bench --compare`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::os::fd::AsRawFd;
use znippy_uring::testing::digest::{self, PieceDigest};
use znippy_uring::testing::io::{self, Completion, IoMode, Op};

// The benchmark command's text generator, so that these chunks compress like its corpus.
#[allow(dead_code, unused_imports)]
#[path = "../src/cli/bench/corpus.rs"]
mod corpus;
use corpus::TextGen;

const CHUNK: usize = 4 << 20;

fn text(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    TextGen::new(1, 1).fill(&mut v, len);
    v
}

fn compress(c: &mut Criterion) {
    let chunk = text(CHUNK);
    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(CHUNK)];
    let mut g = c.benchmark_group("compress_chunk");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    g.sample_size(20);
    for level in [1, 3] {
        let mut z = zstd::bulk::Compressor::new(level).unwrap();
        g.bench_with_input(BenchmarkId::new("zstd", level), &level, |b, _| {
            b.iter(|| {
                z.compress_to_buffer(black_box(&chunk[..]), &mut out[..])
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn hash(c: &mut Criterion) {
    let chunk = text(CHUNK);
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    g.bench_function("chunk_4MiB", |b| b.iter(|| digest::hash(black_box(&chunk))));
    // A solid chunk's file digests: 400 files of 10 KiB hashed one by one.
    g.bench_function("small_files_10KiB", |b| {
        b.iter(|| {
            for piece in chunk.chunks(10 << 10) {
                black_box(digest::hash(piece));
            }
        })
    });
    // A split file's pieces as BLAKE3 subtrees, then merged into the file digest.
    let file = text(4 * CHUNK);
    g.throughput(Throughput::Bytes(file.len() as u64));
    g.bench_function("split_file_16MiB", |b| {
        b.iter(|| {
            let cvs: Vec<_> = file
                .chunks(CHUNK)
                .enumerate()
                .map(|(i, p)| match digest::piece(p, (i * CHUNK) as u64, false) {
                    PieceDigest::Subtree(cv) | PieceDigest::Whole(cv) => cv,
                })
                .collect();
            digest::merge_file(&cvs, CHUNK as u64, file.len() as u64)
        })
    });
    g.finish();
}

/// The slot hand-off: a token goes compressor -> writer and back over bounded
/// channels, as slots do in the pipeline.
fn handoff(c: &mut Criterion) {
    let (to_writer, writer_rx) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(8);
    let (to_compressor, compressor_rx) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(8);
    let writer = std::thread::spawn(move || {
        for msg in writer_rx {
            if to_compressor.send(msg).is_err() {
                break;
            }
        }
    });
    let mut token = Some((0usize, Vec::with_capacity(64)));
    c.bench_function("ring_handoff_round_trip", |b| {
        b.iter(|| {
            to_writer.send(token.take().unwrap()).unwrap();
            token = Some(compressor_rx.recv().unwrap());
        })
    });
    drop(to_writer);
    writer.join().unwrap();
}

/// 256 files of 10 KiB read into one registered buffer through the I/O queue.
fn small_file_reads(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("znippy-hot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = text(256 * 10240);
    let paths: Vec<_> = (0..256)
        .map(|i| {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, &data[i * 10240..(i + 1) * 10240]).unwrap();
            p
        })
        .collect();
    let mut buf = vec![0u8; 256 * 10240];
    let iov = vec![libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    let mut g = c.benchmark_group("small_file_read_batch");
    g.throughput(Throughput::Elements(256));
    for mode in [IoMode::Uring, IoMode::Portable] {
        let Ok(mut queues) = io::open(mode, std::slice::from_ref(&iov), 64) else {
            eprintln!("{mode:?} backend unavailable: skipped");
            continue;
        };
        let q = &mut queues.queues[0];
        let base = buf.as_mut_ptr();
        g.bench_function(format!("{mode:?}"), |b| {
            b.iter(|| {
                let mut done: Vec<Completion> = Vec::with_capacity(256);
                for (n, batch) in paths.chunks(32).enumerate() {
                    let files: Vec<std::fs::File> = batch
                        .iter()
                        .map(|p| std::fs::File::open(p).unwrap())
                        .collect();
                    for (k, f) in files.iter().enumerate() {
                        let i = n * 32 + k;
                        let op = Op::Read {
                            fd: f.as_raw_fd(),
                            // SAFETY: inside `buf`, which outlives the queue's requests.
                            buf: unsafe { base.add(i * 10240) },
                            len: 10240,
                            offset: 0,
                            fixed: 0,
                        };
                        // SAFETY: buffer and fd stay valid until completion/submit.
                        unsafe { q.push(op, i as u64) }.unwrap();
                    }
                    q.submit().unwrap();
                }
                while done.len() < 256 {
                    q.wait(1, &mut done).unwrap();
                }
                done
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, compress, hash, handoff, small_file_reads);
criterion_main!(benches);
