//! The index: entries sub-indexes per group, the chunks table and the manifest, written
//! after the blobs; and reading them back with every field checked against the file.

use super::base::{self, Base};
use super::chunk::{self, ChunkRecord, Codec, DigestOf};
use super::entry::{self, DataLocation, Entry, EntryKind};
use super::manifest::{self, Group, SubIndex, SubIndexKind};
use super::{compressed_index, footer, header, ipc_decode, ipc_decode_columns, ipc_encode};
use arrow_array::RecordBatch;
use std::ops::Range;
use std::sync::OnceLock;

/// Length of the manifest's BLAKE3, stored between the manifest and the footer.
pub const MANIFEST_DIGEST_LEN: u64 = 32;

/// Largest uncompressed chunk a reader accepts (the largest `--chunk-size`).
pub const MAX_CHUNK_LEN: u64 = 64 << 20;

/// A decoded, validated index. Entries stay in their Arrow columns; the list of
/// [`Entry`] values is built the first time it is asked for.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// The groups, each with the range of entry numbers that belongs to it.
    pub groups: Vec<(Group, Range<usize>)>,
    /// Each group's entries table, in group order.
    tables: Vec<entry::Columns>,
    /// All entries, group after group, once built.
    entries: OnceLock<Vec<Entry>>,
    /// All chunks; chunk `i` is `chunks[i]`.
    pub chunks: Vec<ChunkRecord>,
    /// End of the blob region (where the index begins).
    pub blob_end: u64,
    /// The manifest's BLAKE3, as stored: it covers every sub-index, and through the
    /// chunks table every chunk's digest, so it names the archive's content.
    pub manifest_digest: [u8; 32],
    /// The archives an incremental archive's data also lies in (empty otherwise).
    pub bases: Vec<Base>,
    /// The format version, as the header and the manifest both state it.
    pub version: u32,
}

impl Index {
    /// What this archive's chunk digests are BLAKE3 of.
    pub fn digest_of(&self) -> DigestOf {
        DigestOf::of_version(self.version)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tables.iter().map(entry::Columns::len).sum()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries, group after group (built on first use).
    pub fn entries(&self) -> &[Entry] {
        self.entries.get_or_init(|| {
            self.tables
                .iter()
                .flat_map(|t| (0..t.len()).map(|i| t.entry(i)))
                .collect()
        })
    }

    /// Every entry as (table, row), in entry order.
    fn rows(&self) -> impl Iterator<Item = (&entry::Columns, usize)> {
        self.tables
            .iter()
            .flat_map(|t| (0..t.len()).map(move |i| (t, i)))
    }

    /// Every entry's exact path, in entry order, without building the entries.
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.rows().map(|(t, i)| t.path(i))
    }

    /// The number of the entry with this exact path, without building all entries.
    pub fn position(&self, path: &[u8]) -> Option<usize> {
        match self.entries.get() {
            Some(all) => all.iter().position(|e| e.path == path),
            None => self.rows().position(|(t, i)| t.path(i) == path),
        }
    }

    /// The numbers of every entry with this exact path (one, in a sound archive),
    /// without building all entries.
    pub fn positions(&self, path: &[u8]) -> Vec<usize> {
        match self.entries.get() {
            Some(all) => (all.iter().enumerate())
                .filter(|(_, e)| e.path == path)
                .map(|(n, _)| n)
                .collect(),
            None => (self.rows().enumerate())
                .filter(|(_, (t, i))| t.path(*i) == path)
                .map(|(n, _)| n)
                .collect(),
        }
    }

    /// Entry number `n`, without building all entries.
    pub fn entry(&self, n: usize) -> Option<Entry> {
        match self.entries.get() {
            Some(all) => all.get(n).cloned(),
            None => self.rows().nth(n).map(|(t, i)| t.entry(i)),
        }
    }
}

/// Encodes the index that follows the blobs ending at `blob_end`: sub-index streams,
/// the manifest and the footer, as bytes to append at `blob_end`.
pub fn encode(
    groups: &[(Group, &[Entry])],
    chunks: &[ChunkRecord],
    bases: &[Base],
    blob_end: u64,
) -> Vec<u8> {
    encode_as(header::VERSION, groups, chunks, bases, blob_end)
}

/// [`encode`], the manifest stating format `version` (for rewriting an archive of an
/// earlier version, whose header and chunk digests are of that version).
pub fn encode_as(
    version: u32,
    groups: &[(Group, &[Entry])],
    chunks: &[ChunkRecord],
    bases: &[Base],
    blob_end: u64,
) -> Vec<u8> {
    let compress = compressed_index(version);
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let mut push = |out: &mut Vec<u8>, kind, group: Group, bytes: Vec<u8>, n: usize| {
        rows.push(SubIndex {
            kind,
            group,
            offset: blob_end + out.len() as u64,
            length: bytes.len() as u64,
            rows: n as u64,
            digest: crate::digest::hash(&bytes),
        });
        out.extend_from_slice(&bytes);
    };
    for (group, entries) in groups {
        let bytes = ipc_encode(&entry::to_batch(entries.iter()), compress);
        push(
            &mut out,
            SubIndexKind::Entries,
            group.clone(),
            bytes,
            entries.len(),
        );
    }
    let bytes = ipc_encode(&chunk::to_batch(chunks), compress);
    push(
        &mut out,
        SubIndexKind::Chunks,
        Group::default(),
        bytes,
        chunks.len(),
    );
    if !bases.is_empty() {
        let bytes = ipc_encode(&base::to_batch(bases), compress);
        push(
            &mut out,
            SubIndexKind::Bases,
            Group::default(),
            bytes,
            bases.len(),
        );
    }
    let manifest_offset = blob_end + out.len() as u64;
    let manifest = ipc_encode(&manifest::to_batch(&rows, version), false);
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&crate::digest::hash(&manifest));
    out.extend_from_slice(&footer::encode(manifest_offset));
    out
}

/// Reads and validates the index of an archive of `file_len` bytes; `read_at(offset,
/// len)` returns exactly those bytes. Errors are the problem, without the file name.
pub fn read(
    file_len: u64,
    read_at: impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<Index, String> {
    read_scoped(file_len, read_at, false)
}

/// [`read`], decoding of the entries only [`entry::LOOKUP_COLUMNS`]: every byte of the
/// index is still read and checked against its BLAKE3, and every check on those
/// columns made, but the other columns are not decompressed, and the entries read
/// their other fields as 0 or absent. For finding and reading a file's bytes only.
pub fn read_for_lookup(
    file_len: u64,
    read_at: impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<Index, String> {
    read_scoped(file_len, read_at, true)
}

/// [`read`], or with `lookup` [`read_for_lookup`].
fn read_scoped(
    file_len: u64,
    mut read_at: impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
    lookup: bool,
) -> Result<Index, String> {
    let (manifest_offset, rows, manifest_digest, version) = read_manifest(file_len, &mut read_at)?;
    let mut index = Index {
        blob_end: blob_end(&rows, manifest_offset)?,
        manifest_digest,
        version,
        ..Index::default()
    };
    let mut chunk_tables = 0;
    for r in &rows {
        let columns = (lookup && r.kind == SubIndexKind::Entries).then_some(entry::LOOKUP_COLUMNS);
        let batch = read_sub_index(r, version, columns, &mut read_at)?;
        match r.kind {
            SubIndexKind::Chunks => {
                chunk_tables += 1;
                index.chunks = chunk::from_batch(&batch, version)?;
            }
            SubIndexKind::Bases => {
                if !index.bases.is_empty() {
                    return Err("two bases tables".into());
                }
                index.bases = base::from_batch(&batch)?;
            }
            SubIndexKind::Entries => {
                let table = match lookup {
                    true => entry::Columns::for_lookup(&batch)?,
                    false => entry::Columns::new(&batch)?,
                };
                let start = index.len();
                index
                    .groups
                    .push((r.group.clone(), start..start + table.len()));
                index.tables.push(table);
            }
        }
    }
    if chunk_tables != 1 {
        return Err(format!("{chunk_tables} chunks tables (expected 1)"));
    }
    validate(&index)?;
    Ok(index)
}

fn io(e: std::io::Error) -> String {
    format!("read: {e}")
}

/// The manifest digest and the bases table alone (empty for a full archive): what
/// following a chain needs, without decoding entries or chunks.
pub fn read_bases(
    file_len: u64,
    mut read_at: impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<([u8; 32], Vec<Base>), String> {
    let (manifest_offset, rows, manifest_digest, version) = read_manifest(file_len, &mut read_at)?;
    blob_end(&rows, manifest_offset)?; // every span checked before anything is read
    let mut bases = Vec::new();
    for r in rows.iter().filter(|r| r.kind == SubIndexKind::Bases) {
        bases = base::from_batch(&read_sub_index(r, version, None, &mut read_at)?)?;
    }
    Ok((manifest_digest, bases))
}

/// What [`read_manifest`] returns: the manifest's offset, rows and digest, and the
/// format version.
type Manifest = (u64, Vec<SubIndex>, [u8; 32], u32);

/// Checks header and footer, and reads the manifest the footer points at, checking
/// its digest and that it states the header's format version.
fn read_manifest(
    file_len: u64,
    read_at: &mut impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<Manifest, String> {
    if file_len < header::HEADER_LEN + MANIFEST_DIGEST_LEN + footer::FOOTER_LEN {
        return Err(format!("only {file_len} bytes long"));
    }
    let head = read_at(0, header::HEADER_LEN as usize).map_err(io)?;
    let head: [u8; 16] = head.try_into().map_err(|_| "short header read")?;
    let version = header::decode(&head).map_err(|p| format!("not a znippy archive: {p}"))?;
    let foot = read_at(file_len - footer::FOOTER_LEN, footer::FOOTER_LEN as usize).map_err(io)?;
    let foot: [u8; 16] = foot.try_into().map_err(|_| "short footer read")?;
    let manifest_offset = footer::decode(&foot)?;
    let manifest_end = file_len - footer::FOOTER_LEN - MANIFEST_DIGEST_LEN;
    if manifest_offset < header::HEADER_LEN || manifest_offset >= manifest_end {
        return Err(format!(
            "manifest offset {manifest_offset} outside the file (length {file_len})"
        ));
    }
    let bytes = read_at(manifest_offset, (manifest_end - manifest_offset) as usize).map_err(io)?;
    let digest = read_at(manifest_end, MANIFEST_DIGEST_LEN as usize).map_err(io)?;
    let manifest_digest = crate::digest::hash(&bytes);
    if manifest_digest.as_slice() != digest.as_slice() {
        return Err("manifest BLAKE3 mismatch (the index is damaged)".into());
    }
    let batch = ipc_decode(bytes, false).map_err(|e| format!("manifest: {e}"))?;
    check_version(version, manifest::version(&batch)?)?;
    let rows = manifest::from_batch(&batch).map_err(|e| format!("manifest: {e}"))?;
    Ok((manifest_offset, rows, manifest_digest, version))
}

/// The header's format version must be the one the manifest states, so that the
/// rule chunks are checked by is covered by the manifest's BLAKE3 (and so by the
/// archive's id). Only a version-1 manifest may leave it unstated.
fn check_version(header: u32, manifest: Option<u32>) -> Result<(), String> {
    match manifest {
        Some(m) if m == header => Ok(()),
        None if header == 1 => Ok(()),
        Some(m) => Err(format!(
            "the header says format version {header}, the manifest {m}"
        )),
        None => Err(format!(
            "the header says format version {header}, the manifest states none"
        )),
    }
}

/// Where the blobs end: at the first sub-index. Sub-indexes must be disjoint, inside
/// [HEADER_LEN, manifest_offset).
fn blob_end(rows: &[SubIndex], manifest_offset: u64) -> Result<u64, String> {
    let mut spans: Vec<(u64, u64)> = Vec::with_capacity(rows.len());
    for r in rows {
        let end = r
            .offset
            .checked_add(r.length)
            .filter(|&end| r.offset >= header::HEADER_LEN && end <= manifest_offset)
            .ok_or_else(|| {
                format!(
                    "sub-index at {} (+{}) lies outside the index region",
                    r.offset, r.length
                )
            })?;
        spans.push((r.offset, end));
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[0].1 > w[1].0) {
        return Err("sub-indexes overlap".into());
    }
    Ok(spans.first().map_or(manifest_offset, |s| s.0))
}

/// Reads one sub-index of a format-`version` archive, checking its digest and row
/// count against the manifest; decodes only the `columns` named, where given.
fn read_sub_index(
    r: &SubIndex,
    version: u32,
    columns: Option<&[&str]>,
    read_at: &mut impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<RecordBatch, String> {
    let bytes = read_at(r.offset, r.length as usize).map_err(io)?;
    if crate::digest::hash(&bytes) != r.digest {
        return Err(format!(
            "sub-index at {}: BLAKE3 mismatch (the index is damaged)",
            r.offset
        ));
    }
    let compressed = compressed_index(version);
    let batch = match columns {
        Some(names) => ipc_decode_columns(bytes, compressed, names),
        None => ipc_decode(bytes, compressed),
    }
    .map_err(|e| format!("sub-index at {}: {e}", r.offset))?;
    if batch.num_rows() as u64 != r.rows {
        return Err(format!(
            "sub-index at {} has {} rows, manifest says {}",
            r.offset,
            batch.num_rows(),
            r.rows
        ));
    }
    Ok(batch)
}

/// Checks that chunks lie in the blob region and that every file's data location is
/// consistent with the chunks, so readers can trust offsets and lengths.
fn validate(index: &Index) -> Result<(), String> {
    let spans = Spans::of(index)?;
    for (t, row) in index.rows() {
        if t.path(row).is_empty() {
            return Err("an entry has an empty path".into());
        }
        if let (Some(loc), EntryKind::File) = (t.location(row), t.kind(row)) {
            let name = || String::from_utf8_lossy(t.path(row)).into_owned();
            match loc.base {
                None => spans.check_file(&index.chunks, loc, t.size(row), name)?,
                // Checked against the base's chunks once it is opened; here, only that
                // it names a base and lies within its number of chunks.
                Some(b) => {
                    let chunks = index.bases.get(usize::from(b)).map(|b| b.chunks);
                    if !chunks
                        .is_some_and(|n| loc.first_chunk <= loc.last_chunk && loc.last_chunk < n)
                    {
                        return Err(format!(
                            "{}: data in base {b}, which does not hold it",
                            name()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The chunks' raw spans, for checking files against them in O(1) each.
struct Spans {
    /// Prefix sums of raw lengths: chunk `i` holds raw bytes `cum[i]..cum[i + 1]`.
    cum: Vec<u64>,
    /// `same_len_run[i]`: how many chunks from `i` on share chunk `i`'s raw length (so
    /// that hostile overlapping spans cost no quadratic time).
    same_len_run: Vec<usize>,
}

impl Spans {
    /// Checks every chunk record and sums their lengths.
    fn of(index: &Index) -> Result<Spans, String> {
        for (i, c) in index.chunks.iter().enumerate() {
            check_chunk(i, c, index.blob_end, index.version)?;
        }
        Ok(Spans::new(&index.chunks))
    }

    /// The spans of `chunks` (already checked).
    fn new(chunks: &[ChunkRecord]) -> Spans {
        let mut cum = Vec::with_capacity(chunks.len() + 1);
        cum.push(0u64);
        for c in chunks {
            let total = cum.last().copied().unwrap_or(0);
            cum.push(total + c.raw_len); // ≤ 2^26 per chunk, cannot overflow in practice
        }
        let mut same_len_run = vec![1usize; chunks.len()];
        for i in (0..chunks.len().saturating_sub(1)).rev() {
            if chunks[i].raw_len == chunks[i + 1].raw_len {
                same_len_run[i] = same_len_run[i + 1] + 1;
            }
        }
        Spans { cum, same_len_run }
    }

    /// Checks that a file of `size` bytes at `loc` lies within its chunks, and that a
    /// split file's pieces are BLAKE3 subtrees (see digest.rs).
    fn check_file(
        &self,
        chunks: &[ChunkRecord],
        loc: DataLocation,
        size: u64,
        name: impl Fn() -> String,
    ) -> Result<(), String> {
        let n = chunks.len() as u64;
        if loc.first_chunk > loc.last_chunk || loc.last_chunk >= n {
            return Err(format!(
                "{}: chunks {}..={} out of range ({n} chunks)",
                name(),
                loc.first_chunk,
                loc.last_chunk
            ));
        }
        let (first, last) = (loc.first_chunk as usize, loc.last_chunk as usize);
        let cum = &self.cum;
        let end = cum[first]
            .checked_add(loc.chunk_offset)
            .and_then(|start| start.checked_add(size));
        let fits = loc.chunk_offset < chunks[first].raw_len
            && end.is_some_and(|end| end > cum[last] && end <= cum[last + 1]);
        if !fits {
            return Err(format!(
                "{}: size {} does not fit chunks {first}..={last} at offset {}",
                name(),
                size,
                loc.chunk_offset
            ));
        }
        if first != last {
            let piece = chunks[first].raw_len;
            let uniform = self.same_len_run[first] >= last - first;
            if loc.chunk_offset != 0 || !piece.is_power_of_two() || piece < 1024 || !uniform {
                return Err(format!(
                    "{}: split over chunks of unequal or odd lengths",
                    name()
                ));
            }
        }
        Ok(())
    }
}

/// Checks the files whose data lies in base `base` of `index` against that base's
/// chunks (`chunks`, from the base archive, which checked them when it was opened).
pub fn check_based(index: &Index, base: u16, chunks: &[ChunkRecord]) -> Result<(), String> {
    let spans = Spans::new(chunks);
    for (t, row) in index.rows() {
        if let (Some(loc), EntryKind::File) = (t.location(row), t.kind(row))
            && loc.base == Some(base)
        {
            let name = || String::from_utf8_lossy(t.path(row)).into_owned();
            spans.check_file(chunks, loc, t.size(row), name)?;
        }
    }
    Ok(())
}

/// Checks chunk record `i`: its blob inside the blob region (ending at `blob_end`), a
/// sane raw length, a blob length its codec allows, and a subtree offset only where
/// format `version` has them and BLAKE3 can hash the blob as that subtree.
fn check_chunk(i: usize, c: &ChunkRecord, blob_end: u64, version: u32) -> Result<(), String> {
    let in_region = c
        .offset
        .checked_add(c.stored_len)
        .is_some_and(|end| c.offset >= header::HEADER_LEN && end <= blob_end);
    if !in_region {
        return Err(format!(
            "chunk {i}: blob at {} (+{}) outside the blob region",
            c.offset, c.stored_len
        ));
    }
    if c.raw_len == 0 || c.raw_len > MAX_CHUNK_LEN {
        return Err(format!("chunk {i}: uncompressed length {}", c.raw_len));
    }
    if c.codec == Codec::Stored && c.stored_len != c.raw_len {
        return Err(format!(
            "chunk {i}: stored blob length differs from its raw length"
        ));
    }
    // A zstd frame is never longer than the bound for its content: this caps what a
    // reader allocates for a blob whatever the archive claims.
    if c.stored_len > crate::codec::max_stored_len(c.codec, c.raw_len) {
        return Err(format!(
            "chunk {i}: zstd blob of {} bytes for {} raw bytes",
            c.stored_len, c.raw_len
        ));
    }
    if let Some(at) = c.subtree_at {
        check_subtree(c, at, version)
            .map_err(|why| format!("chunk {i}: subtree_at {at}: {why}"))?;
    }
    Ok(())
}

/// Whether a chunk's digest may be the chaining value of its blob as the BLAKE3 subtree
/// at input offset `at`: format 4 on, a `stored` chunk, `at` on a BLAKE3 chunk boundary
/// and the blob no longer than a subtree there may be (the hasher would panic, or give
/// a value that is no subtree's, otherwise).
fn check_subtree(c: &ChunkRecord, at: u64, version: u32) -> Result<(), &'static str> {
    if !chunk::has_subtrees(version) {
        return Err("no such digests before format version 4");
    }
    if c.codec != Codec::Stored {
        return Err("only a stored chunk's digest is a subtree's");
    }
    if at > i64::MAX as u64 {
        return Err("beyond any file's length");
    }
    if !at.is_multiple_of(blake3::CHUNK_LEN as u64) {
        return Err("not a multiple of 1024");
    }
    match blake3::hazmat::max_subtree_len(at) {
        Some(max) if c.raw_len > max => Err("longer than a BLAKE3 subtree there"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_the_manifest_must_state_the_same_version() {
        assert_eq!(check_version(2, Some(2)), Ok(()));
        assert_eq!(check_version(1, Some(1)), Ok(()));
        assert_eq!(check_version(1, None), Ok(()));
        let err = check_version(2, None).unwrap_err();
        assert!(err.contains("the manifest states none"), "{err}");
        let err = check_version(2, Some(1)).unwrap_err();
        assert!(err.contains("format version 2, the manifest 1"), "{err}");
    }
}
