//! The streaming ingest API: entries sent over a channel, groups as sub-indexes.

mod common;

use common::*;
use znippy_uring::{Archive, Group, Ingest, IngestEntry, PackOptions, UnpackOptions};

#[test]
fn entries_sent_over_a_channel_round_trip_with_their_groups() {
    let s = Scratch::new("ingest");
    let out = s.path("i.znippy");
    let opts = PackOptions {
        chunk_size: 64 << 10,
        ..PackOptions::default()
    };
    let ingest = Ingest::create(&out, &opts).unwrap();
    let tx = ingest.sender();
    let producer = std::thread::spawn(move || {
        for i in 0..300u64 {
            let (pkg, repo) = match i % 3 {
                0 => (None, None),
                1 => (Some(1), Some("npm")),
                _ => (Some(2), Some("maven")),
            };
            let len = if i == 7 {
                200_000
            } else {
                (i * 97 % 5000) as usize
            };
            tx.send(
                IngestEntry::new(format!("p{i:03}/data.txt"), bytes(i, len, true)).group(pkg, repo),
            )
            .unwrap();
        }
    });
    producer.join().unwrap();
    let report = ingest.finish().unwrap();
    assert_eq!(report.files, 300);

    let a = Archive::open(&out).unwrap();
    let groups: Vec<(Group, usize)> = a
        .groups()
        .iter()
        .map(|(g, r)| (g.clone(), r.len()))
        .collect();
    assert_eq!(
        groups,
        vec![
            (
                Group {
                    pkg_type: None,
                    repo: None
                },
                100
            ),
            (
                Group {
                    pkg_type: Some(1),
                    repo: Some("npm".into())
                },
                100
            ),
            (
                Group {
                    pkg_type: Some(2),
                    repo: Some("maven".into())
                },
                100
            ),
        ]
    );
    assert!(a.verify(2).unwrap().is_ok());
    let mut big = Vec::new();
    a.read_file(b"p007/data.txt", &mut big).unwrap();
    assert_eq!(big, bytes(7, 200_000, true));
    let dest = s.path("dest");
    a.unpack(&dest, &UnpackOptions::default()).unwrap();
    assert_eq!(
        std::fs::read(dest.join("p299/data.txt")).unwrap(),
        bytes(299, 299 * 97 % 5000, true)
    );
}

#[test]
fn duplicate_and_unsafe_paths_are_refused_and_leave_no_archive() {
    let s = Scratch::new("ingestbad");
    for (first, second, why) in [
        ("a.txt", "a.txt", "path sent twice"),
        ("a.txt", "../b", "invalid entry path"),
    ] {
        let out = s.path("bad.znippy");
        let ingest = Ingest::create(&out, &PackOptions::default()).unwrap();
        let tx = ingest.sender();
        tx.send(IngestEntry::new(first, "one")).unwrap();
        let _ = tx.send(IngestEntry::new(second, "two"));
        drop(tx);
        let err = ingest.finish().unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn ingest_output_is_deterministic() {
    let s = Scratch::new("ingestdet");
    let mut archives = Vec::new();
    for threads in [1, 2] {
        let out = s.path(&format!("{threads}.znippy"));
        let opts = PackOptions {
            threads,
            ..PackOptions::default()
        };
        let ingest = Ingest::create(&out, &opts).unwrap();
        let tx = ingest.sender();
        for i in 0..50 {
            tx.send(IngestEntry::new(
                format!("f{i}"),
                bytes(i, 40_000, i % 2 == 0),
            ))
            .unwrap();
        }
        drop(tx);
        ingest.finish().unwrap();
        archives.push(std::fs::read(&out).unwrap());
    }
    assert!(archives[0] == archives[1]);
}

#[test]
fn ingest_streams_an_archive_through_a_pipe() {
    let s = Scratch::new("ingest-pipe");
    let (mut reader, writer) = std::io::pipe().unwrap();
    let stream = std::fs::File::from(std::os::fd::OwnedFd::from(writer));
    let opts = PackOptions {
        chunk_size: 64 << 10,
        ..PackOptions::default()
    };
    let ingest = Ingest::start(znippy_uring::Destination::Stream(stream), &opts).unwrap();
    let drain = std::thread::spawn(move || {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut all).map(|_| all)
    });
    let tx = ingest.sender();
    for i in 0..40u64 {
        let data = bytes(i, (i as usize) * 7919, i % 2 == 0);
        tx.send(IngestEntry::new(format!("f{i:02}"), data)).unwrap();
    }
    drop(tx);
    let report = ingest.finish().unwrap();
    let archive = drain.join().unwrap().unwrap();
    assert_eq!(archive.len() as u64, report.archive_len);
    let path = s.path("streamed.znippy");
    std::fs::write(&path, &archive).unwrap();
    let a = Archive::open(&path).unwrap();
    assert!(a.verify(2).unwrap().is_ok());
    for i in 0..40u64 {
        let expected = bytes(i, (i as usize) * 7919, i % 2 == 0);
        let mut got = Vec::new();
        a.read_file(format!("f{i:02}").as_bytes(), &mut got)
            .unwrap();
        assert_eq!(got, expected);
    }
}
