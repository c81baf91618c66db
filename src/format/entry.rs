//! Entries: one row per file, directory or symlink, with its metadata and data location.

use super::column;
use crate::xattr::Xattr;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt16Array, UInt32Array, UInt64Array,
    builder::FixedSizeBinaryBuilder,
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
    /// A hard link: another name for the regular file whose path is in `link_target`,
    /// an earlier entry; its data is stored once, with that entry.
    Hardlink,
    /// A named pipe.
    Fifo,
    /// A character device (`rdev` says which).
    CharDevice,
    /// A block device (`rdev` says which).
    BlockDevice,
}

impl EntryKind {
    /// The kind a `kind` column value names.
    pub fn from_name(name: &str) -> Option<EntryKind> {
        Some(match name {
            "file" => EntryKind::File,
            "dir" => EntryKind::Dir,
            "symlink" => EntryKind::Symlink,
            "hardlink" => EntryKind::Hardlink,
            "fifo" => EntryKind::Fifo,
            "chardev" => EntryKind::CharDevice,
            "blockdev" => EntryKind::BlockDevice,
            _ => return None,
        })
    }

    /// The file-type bits of `st_mode` for this kind (a hard link's are its file's).
    pub fn mode_type(self) -> u32 {
        match self {
            EntryKind::File | EntryKind::Hardlink => 0o100000,
            EntryKind::Dir => 0o040000,
            EntryKind::Symlink => 0o120000,
            EntryKind::Fifo => 0o010000,
            EntryKind::CharDevice => 0o020000,
            EntryKind::BlockDevice => 0o060000,
        }
    }

    /// The name used in the `kind` column.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Hardlink => "hardlink",
            EntryKind::Fifo => "fifo",
            EntryKind::CharDevice => "chardev",
            EntryKind::BlockDevice => "blockdev",
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
    /// The archive holding those chunks: `None` for this one, or a position in this
    /// archive's bases (an incremental archive's data left where an earlier one
    /// stored it; docs/FORMAT.md). Chunk numbers are then that archive's.
    pub base: Option<u16>,
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
    /// Owner user name, where the id had one (UTF-8) when packed (shared between
    /// entries: most have the same few owners).
    pub user: Option<Arc<str>>,
    /// Owner group name, where the id had one (UTF-8) when packed.
    pub group: Option<Arc<str>>,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Data location (files with size > 0).
    pub location: Option<DataLocation>,
    /// BLAKE3 of the whole file (files only), equal to `b3sum` of the file.
    pub digest: Option<[u8; 32]>,
    /// Symlink target bytes (symlinks), or the path of the linked file (hard links).
    pub link_target: Option<Vec<u8>>,
    /// Extended attributes (name, value), as archived.
    pub xattrs: Vec<Xattr>,
    /// The file had holes (fewer blocks allocated than its size): extract it sparse.
    pub sparse: bool,
    /// Device number (character and block devices).
    pub rdev: Option<u64>,
    /// Status change time, nanoseconds since the Unix epoch, when packed from a file
    /// system (what `pack --since` compares, with size and mtime); `None` too when it
    /// was too close to the pack's start to be trusted (docs/FORMAT.md).
    pub ctime_ns: Option<i64>,
    /// (device, inode) when packed from a file system: how `pack --since` finds a
    /// file that was renamed or moved.
    pub inode: Option<(u64, u64)>,
}

impl Entry {
    /// An entry with this path, kind and mode, and nothing else yet: time 0, owner 0
    /// without names, no data, no link, no extended attributes.
    pub fn new(path: Vec<u8>, kind: EntryKind, mode: u32) -> Entry {
        Entry {
            path,
            kind,
            mode,
            mtime_ns: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: 0,
            location: None,
            digest: None,
            link_target: None,
            xattrs: Vec::new(),
            sparse: false,
            rdev: None,
            ctime_ns: None,
            inode: None,
        }
    }

    /// The path for display (invalid UTF-8 replaced).
    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// Whether the path (and a hard link's target) is safe to create beneath a
    /// directory: relative, of normal components (no empty, `.` or `..` one), with no
    /// NUL byte. Returns why not. Unpacking and mounting refuse entries that fail it.
    pub fn check_path(&self) -> std::result::Result<(), &'static str> {
        check_path(&self.path)?;
        match (self.kind, &self.link_target) {
            (EntryKind::Hardlink, Some(target)) => check_path(target),
            _ => Ok(()),
        }
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
        Field::new("xattrs", DataType::Binary, true),
        Field::new("sparse", DataType::Boolean, false),
        Field::new("rdev", DataType::UInt64, true),
        Field::new("user", DataType::Utf8, true),
        Field::new("group", DataType::Utf8, true),
        Field::new(
            "ctime",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            true,
        ),
        Field::new("dev", DataType::UInt64, true),
        Field::new("ino", DataType::UInt64, true),
        Field::new("base", DataType::UInt16, true),
    ]))
}

/// Encodes extended attributes for the `xattrs` column: for each, the name's length
/// (u16 LE), the name, the value's length (u32 LE), the value.
pub fn encode_xattrs(xattrs: &[Xattr]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in xattrs {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// Decodes the `xattrs` column (see [`encode_xattrs`]), checking every length.
pub fn decode_xattrs(mut bytes: &[u8]) -> Result<Vec<Xattr>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err("xattrs: truncated".into());
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let n = take(&mut bytes, 2)?;
        let name = take(&mut bytes, usize::from(u16::from_le_bytes([n[0], n[1]])))?.to_vec();
        let v = take(&mut bytes, 4)?;
        let len = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize;
        let value = take(&mut bytes, len)?.to_vec();
        if name.is_empty() || name.contains(&0) {
            return Err("xattrs: empty name or NUL in a name".into());
        }
        out.push((name, value));
    }
    Ok(out)
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
            entries.clone().map(|e| e.link_target.as_deref()),
        )),
        Arc::new(BinaryArray::from_iter(entries.clone().map(|e| {
            (!e.xattrs.is_empty()).then(|| encode_xattrs(&e.xattrs))
        }))),
        Arc::new(BooleanArray::from_iter(
            entries.clone().map(|e| Some(e.sparse)),
        )),
        Arc::new(UInt64Array::from_iter(entries.clone().map(|e| e.rdev))),
        Arc::new(StringArray::from_iter(
            entries.clone().map(|e| e.user.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            entries.clone().map(|e| e.group.as_deref()),
        )),
        Arc::new(
            TimestampNanosecondArray::from_iter(entries.clone().map(|e| e.ctime_ns))
                .with_timezone("UTC"),
        ),
        Arc::new(UInt64Array::from_iter(
            entries.clone().map(|e| e.inode.map(|i| i.0)),
        )),
        Arc::new(UInt64Array::from_iter(
            entries.clone().map(|e| e.inode.map(|i| i.1)),
        )),
        Arc::new(UInt16Array::from_iter(
            entries.map(|e| e.location.and_then(|l| l.base)),
        )),
    ];
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|e| unreachable!("entries batch: {e}"))
}

/// A validated entries table: typed columns, read row by row without building every
/// [`Entry`] (opening an archive to read one file should not materialize all of them).
#[derive(Clone, Debug)]
pub struct Columns {
    path: StringArray,
    path_raw: BinaryArray,
    kinds: Vec<EntryKind>,
    /// The next four are absent only in a table decoded for lookups (see
    /// [`LOOKUP_COLUMNS`]), whose entries serve reading a file's bytes and nothing else.
    mode: Option<UInt32Array>,
    mtime: Option<TimestampNanosecondArray>,
    uid: Option<UInt32Array>,
    gid: Option<UInt32Array>,
    size: UInt64Array,
    first: UInt64Array,
    last: UInt64Array,
    offset: UInt64Array,
    digest: FixedSizeBinaryArray,
    link: BinaryArray,
    /// Absent in archives written before the column existed.
    xattrs: Option<BinaryArray>,
    /// Absent in archives written before the column existed.
    sparse: Option<BooleanArray>,
    /// Absent in archives written before the column existed.
    rdev: Option<UInt64Array>,
    /// Absent in archives written before the column existed.
    user: Option<StringArray>,
    /// Absent in archives written before the column existed.
    group: Option<StringArray>,
    /// Absent in archives written before the column existed (and the next three).
    ctime: Option<TimestampNanosecondArray>,
    dev: Option<UInt64Array>,
    ino: Option<UInt64Array>,
    base: Option<UInt16Array>,
}

/// The columns a lookup needs: finding a path, and reading the file (or hard link)
/// there, with every check [`Columns::new`] makes on them. A table of these alone reads
/// the other fields of an entry as 0 or absent: only [`crate::Archive::cat`] uses one.
pub const LOOKUP_COLUMNS: &[&str] = &[
    "path",
    "path_raw",
    "kind",
    "mode", // so that a mode contradicting the kind is refused here too
    "size",
    "first_chunk",
    "last_chunk",
    "chunk_offset",
    "blake3",
    "link_target",
    "base",
];

impl Columns {
    /// Checks column types and, row by row, the fields each kind requires.
    pub fn new(batch: &RecordBatch) -> Result<Columns, String> {
        Columns::build(batch, false)
    }

    /// [`Columns::new`] of a batch of [`LOOKUP_COLUMNS`] (at least).
    pub fn for_lookup(batch: &RecordBatch) -> Result<Columns, String> {
        Columns::build(batch, true)
    }

    /// A column that only a lookup table may lack.
    fn metadata<T: Array + Clone + 'static>(
        batch: &RecordBatch,
        name: &str,
        lookup: bool,
    ) -> Result<Option<T>, String> {
        match lookup {
            true => optional::<T>(batch, name, false),
            false => Ok(Some(column::<T>(batch, name, false)?.clone())),
        }
    }

    fn build(batch: &RecordBatch, lookup: bool) -> Result<Columns, String> {
        let mut t = Columns {
            path: column::<StringArray>(batch, "path", false)?.clone(),
            path_raw: column::<BinaryArray>(batch, "path_raw", true)?.clone(),
            kinds: Vec::with_capacity(batch.num_rows()),
            mode: Columns::metadata::<UInt32Array>(batch, "mode", lookup)?,
            mtime: Columns::metadata::<TimestampNanosecondArray>(batch, "mtime", lookup)?,
            uid: Columns::metadata::<UInt32Array>(batch, "uid", lookup)?,
            gid: Columns::metadata::<UInt32Array>(batch, "gid", lookup)?,
            size: column::<UInt64Array>(batch, "size", false)?.clone(),
            first: column::<UInt64Array>(batch, "first_chunk", true)?.clone(),
            last: column::<UInt64Array>(batch, "last_chunk", true)?.clone(),
            offset: column::<UInt64Array>(batch, "chunk_offset", true)?.clone(),
            digest: column::<FixedSizeBinaryArray>(batch, "blake3", true)?.clone(),
            link: column::<BinaryArray>(batch, "link_target", true)?.clone(),
            xattrs: optional::<BinaryArray>(batch, "xattrs", true)?,
            sparse: optional::<BooleanArray>(batch, "sparse", false)?,
            rdev: optional::<UInt64Array>(batch, "rdev", true)?,
            user: optional::<StringArray>(batch, "user", true)?,
            group: optional::<StringArray>(batch, "group", true)?,
            ctime: optional::<TimestampNanosecondArray>(batch, "ctime", true)?,
            dev: optional::<UInt64Array>(batch, "dev", true)?,
            ino: optional::<UInt64Array>(batch, "ino", true)?,
            base: optional::<UInt16Array>(batch, "base", true)?,
        };
        if t.digest.value_length() != 32 {
            return Err("entries: blake3 column is not 32 bytes wide".into());
        }
        let kind = column::<StringArray>(batch, "kind", false)?;
        for i in 0..batch.num_rows() {
            let k = t.check_row(i, kind.value(i))?;
            t.kinds.push(k);
        }
        Ok(t)
    }

    /// Checks row `i`, of kind `kind`: its extended attributes decode, its data
    /// location is all there or all absent, and its kind's fields are as required.
    fn check_row(&self, i: usize, kind: &str) -> Result<EntryKind, String> {
        let name = || String::from_utf8_lossy(self.path(i)).into_owned();
        let k = EntryKind::from_name(kind)
            .ok_or_else(|| format!("entry {:?}: unknown kind {kind:?}", name()))?;
        if let Some(x) = self.xattrs.as_ref().filter(|x| x.is_valid(i)) {
            decode_xattrs(x.value(i)).map_err(|e| format!("entry {:?}: {e}", name()))?;
        }
        let located = [&self.first, &self.last, &self.offset].map(|c| c.is_valid(i));
        if located.iter().any(|&v| v != located[0]) {
            return Err(format!("entry {:?}: partial data location", name()));
        }
        if let Some(mode) = self.mode.as_ref().filter(|m| m.is_valid(i)) {
            let kind_bits = mode.value(i) & 0o170000;
            if kind_bits != 0 && kind_bits != k.mode_type() {
                return Err(format!(
                    "{} {:?}: mode {:o} says another kind",
                    k.name(),
                    name(),
                    mode.value(i)
                ));
            }
        }
        let size = self.size.value(i);
        match k {
            EntryKind::File => {
                if !self.digest.is_valid(i) {
                    return Err(format!("file {:?} has no blake3", name()));
                }
                if (size > 0) != located[0] {
                    return Err(format!(
                        "file {:?}: size {size} and location disagree",
                        name()
                    ));
                }
            }
            EntryKind::Symlink | EntryKind::Hardlink if !self.link.is_valid(i) => {
                return Err(format!("{} {:?} has no target", k.name(), name()));
            }
            _ if located[0] || size != 0 => {
                return Err(format!("{} {:?} carries file data", k.name(), name()));
            }
            _ => {}
        }
        Ok(k)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Row `i`'s exact path bytes.
    pub fn path(&self, i: usize) -> &[u8] {
        if self.path_raw.is_valid(i) {
            self.path_raw.value(i)
        } else {
            self.path.value(i).as_bytes()
        }
    }

    /// Row `i`'s kind.
    pub fn kind(&self, i: usize) -> EntryKind {
        self.kinds[i]
    }

    /// Row `i`'s size.
    pub fn size(&self, i: usize) -> u64 {
        self.size.value(i)
    }

    /// Row `i`'s data location.
    pub fn location(&self, i: usize) -> Option<DataLocation> {
        self.first.is_valid(i).then(|| DataLocation {
            first_chunk: self.first.value(i),
            last_chunk: self.last.value(i),
            chunk_offset: self.offset.value(i),
            base: valid(self.base.as_ref(), i),
        })
    }

    /// Row `i` as an [`Entry`].
    pub fn entry(&self, i: usize) -> Entry {
        Entry {
            path: self.path(i).to_vec(),
            kind: self.kinds[i],
            mode: self.mode.as_ref().map_or(0, |c| c.value(i)),
            mtime_ns: self.mtime.as_ref().map_or(0, |c| c.value(i)),
            uid: self.uid.as_ref().map_or(0, |c| c.value(i)),
            gid: self.gid.as_ref().map_or(0, |c| c.value(i)),
            size: self.size.value(i),
            location: self.location(i),
            digest: self.digest.is_valid(i).then(|| {
                let mut d = [0u8; 32];
                d.copy_from_slice(self.digest.value(i));
                d
            }),
            link_target: self.link.is_valid(i).then(|| self.link.value(i).to_vec()),
            // Checked in `new`, so decoding cannot fail here.
            xattrs: self
                .xattrs
                .as_ref()
                .filter(|x| x.is_valid(i))
                .and_then(|x| decode_xattrs(x.value(i)).ok())
                .unwrap_or_default(),
            sparse: self.sparse.as_ref().is_some_and(|s| s.value(i)),
            rdev: valid(self.rdev.as_ref(), i),
            user: name(self.user.as_ref(), i),
            group: name(self.group.as_ref(), i),
            ctime_ns: valid(self.ctime.as_ref(), i),
            inode: valid(self.dev.as_ref(), i).zip(valid(self.ino.as_ref(), i)),
        }
    }
}

/// Row `i` of an optional column of numbers, if present and not null.
fn valid<T: arrow_array::ArrowPrimitiveType>(
    column: Option<&arrow_array::PrimitiveArray<T>>,
    i: usize,
) -> Option<T::Native> {
    column.filter(|c| c.is_valid(i)).map(|c| c.value(i))
}

/// A column that archives written before it existed lack: checked like [`column`]
/// where present.
fn optional<T: Array + Clone + 'static>(
    batch: &RecordBatch,
    name: &str,
    nullable: bool,
) -> Result<Option<T>, String> {
    match batch.column_by_name(name) {
        Some(_) => Ok(Some(column::<T>(batch, name, nullable)?.clone())),
        None => Ok(None),
    }
}

/// Row `i` of an optional names column.
fn name(column: Option<&StringArray>, i: usize) -> Option<Arc<str>> {
    column
        .filter(|c| c.is_valid(i))
        .map(|c| Arc::from(c.value(i)))
}

/// The proper ancestors of archive path `path`, shortest first (`a`, `a/b` for
/// `a/b/c`): the entries that must be directories for `path` to be created.
pub fn parents(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    (path.iter().enumerate())
        .filter(|&(_, &b)| b == b'/')
        .filter_map(|(k, _)| path.get(..k))
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
    fn parents_are_the_proper_ancestors_shortest_first() {
        let all = |p: &'static [u8]| parents(p).collect::<Vec<_>>();
        assert_eq!(all(b"a/b/c"), [&b"a"[..], b"a/b"]);
        assert!(all(b"top").is_empty());
    }

    #[test]
    fn xattrs_decode_what_they_encode_and_refuse_truncation() {
        let x = vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), vec![0; 300]),
        ];
        let bytes = encode_xattrs(&x);
        assert_eq!(decode_xattrs(&bytes).unwrap(), x);
        for cut in [1, 3, 9, bytes.len() - 1] {
            assert!(decode_xattrs(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

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
                base: Some(2),
            }),
            digest: Some([7; 32]),
            link_target: None,
            xattrs: vec![(b"user.note".to_vec(), b"\x00binary".to_vec())],
            sparse: true,
            rdev: None,
            user: Some("alice".into()),
            group: None,
            ctime_ns: Some(1_700_000_001_000_000_007),
            inode: Some((2049, 77)),
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
            xattrs: Vec::new(),
            sparse: false,
            rdev: Some(0x0103),
            user: Some("root".into()),
            group: Some("root".into()),
            ctime_ns: None,
            inode: None,
        };
        let batch = to_batch([e.clone(), l.clone()].iter());
        let t = Columns::new(&batch).unwrap();
        assert_eq!(
            (0..t.len()).map(|i| t.entry(i)).collect::<Vec<_>>(),
            vec![e, l]
        );
    }
}
