//! Entries: one row per file, directory or symlink, with its metadata and data location.

use super::column;
use arrow_array::{
    Array, ArrayRef, BinaryArray, FixedSizeBinaryArray, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array, UInt64Array, builder::FixedSizeBinaryBuilder,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::sync::Arc;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (its target is kept, never followed).
    Symlink,
}

impl EntryKind {
    /// The name used in the `kind` column.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// Where a file's bytes lie: from `chunk_offset` in `first_chunk`, running on through
/// the following chunks up to `last_chunk`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataLocation {
    /// The chunk holding the file's first byte.
    pub first_chunk: u64,
    /// The chunk holding the file's last byte.
    pub last_chunk: u64,
    /// Offset of the first byte inside `first_chunk`.
    pub chunk_offset: u64,
}

/// One entry of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated, exact bytes (not necessarily UTF-8).
    pub path: Vec<u8>,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Data location (files with size > 0).
    pub location: Option<DataLocation>,
    /// BLAKE3 of the whole file (files only), equal to `b3sum` of the file.
    pub digest: Option<[u8; 32]>,
    /// Symlink target bytes (symlinks only).
    pub link_target: Option<Vec<u8>>,
}

impl Entry {
    /// The path for display (invalid UTF-8 replaced).
    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// The entries table's schema.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("path_raw", DataType::Binary, true),
        Field::new("kind", DataType::Utf8, false),
        Field::new("mode", DataType::UInt32, false),
        Field::new(
            "mtime",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("uid", DataType::UInt32, false),
        Field::new("gid", DataType::UInt32, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("first_chunk", DataType::UInt64, true),
        Field::new("last_chunk", DataType::UInt64, true),
        Field::new("chunk_offset", DataType::UInt64, true),
        Field::new("blake3", DataType::FixedSizeBinary(32), true),
        Field::new("link_target", DataType::Binary, true),
    ]))
}

/// Builds the entries table of one group.
pub fn to_batch<'a>(entries: impl Iterator<Item = &'a Entry> + Clone) -> RecordBatch {
    let n = entries.clone().count();
    let mut digests = FixedSizeBinaryBuilder::with_capacity(n, 32);
    for e in entries.clone() {
        match &e.digest {
            Some(d) => digests
                .append_value(d)
                .unwrap_or_else(|err| unreachable!("32-byte digest: {err}")),
            None => digests.append_null(),
        }
    }
    let loc = |f: fn(&DataLocation) -> u64| {
        UInt64Array::from_iter(entries.clone().map(|e| e.location.as_ref().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            entries.clone().map(|e| e.display_path()),
        )),
        Arc::new(BinaryArray::from_iter(entries.clone().map(|e| {
            std::str::from_utf8(&e.path)
                .is_err()
                .then_some(e.path.as_slice())
        }))),
        Arc::new(StringArray::from_iter_values(
            entries.clone().map(|e| e.kind.name()),
        )),
        Arc::new(UInt32Array::from_iter_values(
            entries.clone().map(|e| e.mode),
        )),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(entries.clone().map(|e| e.mtime_ns))
                .with_timezone("UTC"),
        ),
        Arc::new(UInt32Array::from_iter_values(
            entries.clone().map(|e| e.uid),
        )),
        Arc::new(UInt32Array::from_iter_values(
            entries.clone().map(|e| e.gid),
        )),
        Arc::new(UInt64Array::from_iter_values(
            entries.clone().map(|e| e.size),
        )),
        Arc::new(loc(|l| l.first_chunk)),
        Arc::new(loc(|l| l.last_chunk)),
        Arc::new(loc(|l| l.chunk_offset)),
        Arc::new(digests.finish()),
        Arc::new(BinaryArray::from_iter(
            entries.map(|e| e.link_target.as_deref()),
        )),
    ];
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|e| unreachable!("entries batch: {e}"))
}

/// Reads an entries table, checking column types and per-kind required fields.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Entry>, String> {
    let path = column::<StringArray>(batch, "path", false)?;
    let path_raw = column::<BinaryArray>(batch, "path_raw", true)?;
    let kind = column::<StringArray>(batch, "kind", false)?;
    let mode = column::<UInt32Array>(batch, "mode", false)?;
    let mtime = column::<TimestampNanosecondArray>(batch, "mtime", false)?;
    let uid = column::<UInt32Array>(batch, "uid", false)?;
    let gid = column::<UInt32Array>(batch, "gid", false)?;
    let size = column::<UInt64Array>(batch, "size", false)?;
    let first = column::<UInt64Array>(batch, "first_chunk", true)?;
    let last = column::<UInt64Array>(batch, "last_chunk", true)?;
    let offset = column::<UInt64Array>(batch, "chunk_offset", true)?;
    let digest = column::<FixedSizeBinaryArray>(batch, "blake3", true)?;
    let link = column::<BinaryArray>(batch, "link_target", true)?;
    if digest.value_length() != 32 {
        return Err("entries: blake3 column is not 32 bytes wide".into());
    }
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let p = if path_raw.is_valid(i) {
            path_raw.value(i).to_vec()
        } else {
            path.value(i).as_bytes().to_vec()
        };
        let name = String::from_utf8_lossy(&p).into_owned();
        let kind = match kind.value(i) {
            "file" => EntryKind::File,
            "dir" => EntryKind::Dir,
            "symlink" => EntryKind::Symlink,
            other => return Err(format!("entry {name:?}: unknown kind {other:?}")),
        };
        let location = match (first.is_valid(i), last.is_valid(i), offset.is_valid(i)) {
            (true, true, true) => Some(DataLocation {
                first_chunk: first.value(i),
                last_chunk: last.value(i),
                chunk_offset: offset.value(i),
            }),
            (false, false, false) => None,
            _ => return Err(format!("entry {name:?}: partial data location")),
        };
        let digest = digest.is_valid(i).then(|| {
            let mut d = [0u8; 32];
            d.copy_from_slice(digest.value(i));
            d
        });
        let link_target = link.is_valid(i).then(|| link.value(i).to_vec());
        let size = size.value(i);
        match kind {
            EntryKind::File => {
                if digest.is_none() {
                    return Err(format!("file {name:?} has no blake3"));
                }
                if (size > 0) != location.is_some() {
                    return Err(format!("file {name:?}: size {size} and location disagree"));
                }
            }
            EntryKind::Symlink if link_target.is_none() => {
                return Err(format!("symlink {name:?} has no target"));
            }
            _ if location.is_some() || size != 0 => {
                return Err(format!("{} {name:?} carries file data", kind.name()));
            }
            _ => {}
        }
        out.push(Entry {
            path: p,
            kind,
            mode: mode.value(i),
            mtime_ns: mtime.value(i),
            uid: uid.value(i),
            gid: gid.value(i),
            size,
            location,
            digest,
            link_target,
        });
    }
    Ok(out)
}

/// Checks that an entry path is relative and made of normal components: no leading
/// `/`, no empty, `.` or `..` component, no NUL byte. Returns why not.
pub fn check_path(path: &[u8]) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.contains(&0) {
        return Err("NUL byte in path");
    }
    if path.first() == Some(&b'/') {
        return Err("absolute path");
    }
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" => return Err("empty path component (// or trailing /)"),
            b"." => return Err("'.' component"),
            b".." => return Err("'..' component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_path_refuses_escapes() {
        assert!(check_path(b"a/b/c.txt").is_ok());
        assert!(check_path(b"..a/b..").is_ok());
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"../x",
            b"a/../../x",
            b"a/",
            b"a//b",
            b"./a",
            b"a\0b",
        ] {
            assert!(
                check_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn batch_round_trip_keeps_non_utf8_paths() {
        let e = Entry {
            path: b"dir/\xff\xfe.bin".to_vec(),
            kind: EntryKind::File,
            mode: 0o100644,
            mtime_ns: 1_700_000_000_123_456_789,
            uid: 1000,
            gid: 1000,
            size: 3,
            location: Some(DataLocation {
                first_chunk: 0,
                last_chunk: 0,
                chunk_offset: 5,
            }),
            digest: Some([7; 32]),
            link_target: None,
        };
        let l = Entry {
            path: b"link".to_vec(),
            kind: EntryKind::Symlink,
            mode: 0o120777,
            mtime_ns: -5,
            uid: 0,
            gid: 0,
            size: 0,
            location: None,
            digest: None,
            link_target: Some(b"../target".to_vec()),
        };
        let batch = to_batch([e.clone(), l.clone()].iter());
        assert_eq!(from_batch(&batch).unwrap(), vec![e, l]);
    }
}
