//! The benchmark rig runs end to end at a tiny scale and reports what it measured.

mod common;

use common::*;

#[test]
fn bench_reports_every_job_as_json_and_compares_with_tar_zstd() {
    let s = Scratch::new("bench");
    let out = ok(&[
        os("bench"),
        os("--scale"),
        os("0.002"),
        os("--corpus"),
        os("small,random"),
        os("--reps"),
        os("2"),
        os("--compare"),
        os("--json"),
        os("--scratch"),
        s.0.as_os_str(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let corpora = report["corpora"].as_array().unwrap();
    assert_eq!(corpora.len(), 2);
    let small = &corpora[0];
    assert_eq!(small["corpus"], "small");
    assert_eq!(small["files"], 200);
    assert_eq!(small["bytes"], 200 * 10240);
    let ours = &small["tools"][0];
    assert_eq!(ours["tool"], "znippy-uring");
    assert_eq!(ours["pack_runs"].as_array().unwrap().len(), 2);
    for key in [
        "pack_mb_s",
        "unpack_mb_s",
        "verify_mb_s",
        "list_ms",
        "cat_ms",
        "pack_rss_mib",
        "ratio",
    ] {
        assert!(ours[key].as_f64().unwrap() > 0.0, "{key}: {}", ours[key]);
    }
    assert!(
        small["cat_path"].as_str().unwrap().starts_with("d0000/f"),
        "{}",
        small["cat_path"]
    );
    // Random data is stored: ratio about 1, never "compressed".
    let random = &corpora[1]["tools"][0];
    assert!(
        (0.98..1.01).contains(&random["ratio"].as_f64().unwrap()),
        "{random}"
    );
    let missing = report["missing_peers"].as_array().unwrap();
    if missing.is_empty() {
        let peer = &small["tools"][1];
        assert_eq!(peer["tool"], "tar+zstd");
        assert!(peer["pack_s"].as_f64().unwrap() > 0.0);
        assert!(small["pack_speedup"].as_f64().unwrap() > 0.0);
        assert!(small["size_ratio"].as_f64().unwrap() > 0.5);
    } else {
        // A peer that is not installed is said, not silently dropped.
        assert_eq!(small["tools"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn bench_table_on_a_given_directory() {
    let s = Scratch::new("benchdir");
    let src = s.path("tree");
    small_files(&src, 30);
    let out = ok(&[
        os("bench"),
        os("--dir"),
        src.as_os_str(),
        os("--reps"),
        os("1"),
        os("--scratch"),
        s.path("scratch").as_os_str(),
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("pack MB/s") && table.contains("znippy-uring"),
        "{table}"
    );
    assert!(!table.contains("tar+zstd"), "no comparison was asked for");
}

#[test]
fn bench_sweeps_a_list_of_thread_counts_with_stages() {
    let s = Scratch::new("benchsweep");
    let src = s.path("tree");
    small_files(&src, 40);
    let scratch = s.path("scratch");
    let args = |json: bool| {
        let mut a = vec![
            os("bench"),
            os("--dir"),
            src.as_os_str(),
            os("--reps"),
            os("1"),
            os("--threads"),
            os("1,2,3"),
            os("--scratch"),
            scratch.as_os_str(),
        ];
        if json {
            a.push(os("--json"));
        }
        ok(&a).stdout
    };
    let report: serde_json::Value = serde_json::from_slice(&args(true)).unwrap();
    let corpus = &report["corpora"][0];
    let rows = corpus["scaling"].as_array().unwrap();
    let threads: Vec<u64> = rows
        .iter()
        .map(|r| r["threads"].as_u64().unwrap())
        .collect();
    assert_eq!(threads, [1, 2, 3]);
    assert_eq!(rows[0]["speedup"].as_f64().unwrap(), 1.0);
    for r in rows {
        assert_eq!(r["compressors"], r["threads"], "{r}");
        assert!(r["pack_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["rss_mib"].as_f64().unwrap() > 0.0, "{r}");
        let stages: Vec<&str> = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["walk", "compress", "write", "index"], "{r}");
    }
    // The other jobs ran with the last count, and say where their time went.
    let ours = &corpus["tools"][0];
    let compress = ours["pack_stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "compress")
        .unwrap();
    assert_eq!(compress["threads"], 3);
    assert!(!ours["unpack_stages"].as_array().unwrap().is_empty());

    let table = String::from_utf8(args(false)).unwrap();
    assert!(
        table.contains("speedup") && table.contains("compress%"),
        "{table}"
    );
    assert!(table.contains("pack   compress"), "{table}");
}
