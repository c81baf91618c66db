//! The archives an incremental archive's data lies in (its bases), joined to it for
//! reading: one chunk table (its own chunks, then each base's), and its entries with
//! their locations moved into that table.
//!
//! A base is found among the archives the caller names (`--base`), else where it was
//! relative to the archive when the archive was packed, else beside the archive under
//! the name it had then. Recorded locations are only hints, read from a file that may
//! be hostile: only a bounded relative path is followed, only a regular file is opened
//! (never a FIFO or a device, which could block), and the archive itself is never its
//! own base. A base is taken only if the BLAKE3 of its manifest is the one recorded,
//! which vouches for every chunk digest it holds, so its chunks are checked like the
//! archive's own, each by the rule of the format version of the archive that holds it
//! (a version-2 archive may build on a version-1 base). A base that is missing or not the one recorded is remembered, with
//! why: reading a file whose data lies there fails, naming it
//! ([`super::Archive::require_bases`] and [`Chain::why_missing`]).

use super::file::{open_regular, read_index};
use crate::error::{Error, Result};
use crate::format::base::{Base, id_of};
use crate::format::chunk::{ChunkRecord, DigestOf};
use crate::format::entry::{DataLocation, Entry};
use crate::format::index::{self, Index};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The joined view.
pub struct Chain {
    /// The entries, locations in [`Chain::chunks`]'s numbering.
    pub entries: Vec<Entry>,
    /// The archive's chunks, then each attached base's.
    pub chunks: Vec<ChunkRecord>,
    /// Where the chunks from the `start`-th on are read, and how they are checked.
    sources: Vec<Source>,
    /// Per base: the first chunk number it got, or why it is not there.
    starts: Vec<std::result::Result<u64, String>>,
}

/// The archive that holds a run of the joined chunks.
struct Source {
    /// The first of its chunks, in the joined numbering.
    start: u64,
    /// Its file.
    file: File,
    /// Its path.
    path: PathBuf,
    /// What its chunk digests are BLAKE3 of (by its format version).
    digest_of: DigestOf,
}

/// Where a chunk of the joined table is read from, and how it is checked.
pub struct ChunkSource<'a> {
    /// The file of the archive that holds it.
    pub file: &'a File,
    /// Its path.
    pub path: &'a Path,
    /// What its digest is BLAKE3 of.
    pub digest_of: DigestOf,
    /// Its number in that archive.
    pub id: u64,
}

/// An archive opened as a possible base: its index, its file, its path, and its device
/// and inode.
pub struct Opened {
    index: Index,
    file: File,
    path: PathBuf,
    inode: (u64, u64),
}

impl Opened {
    /// Opens the archive at `path` and reads its index: it must be a regular file, and
    /// an archive.
    pub fn open(path: &Path) -> Result<Opened> {
        let file = open_regular(path)?;
        let meta = file.metadata().map_err(|e| Error::io(path, "stat", e))?;
        let (_, index) = read_index(&file, path)?;
        Ok(Opened {
            index,
            file,
            path: path.to_path_buf(),
            inode: (meta.dev(), meta.ino()),
        })
    }

    /// The BLAKE3 of its manifest: its identity.
    pub fn manifest_digest(&self) -> &[u8; 32] {
        &self.index.manifest_digest
    }

    /// Its path, as named.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What the archive being joined is: never taken as its own base.
struct Itself {
    inode: Option<(u64, u64)>,
    manifest_digest: [u8; 32],
}

impl Itself {
    fn is(&self, o: &Opened) -> bool {
        self.inode == Some(o.inode) || self.manifest_digest == o.index.manifest_digest
    }
}

impl Chain {
    /// Joins `index` (of the archive at `path`, open as `file`) with its bases, found
    /// among `named` (the archives the caller named, each used once) or where the
    /// bases table says they were.
    pub fn join(index: &Index, path: &Path, file: &File, mut named: Vec<Opened>) -> Result<Chain> {
        let own = file.try_clone().map_err(|e| Error::io(path, "dup", e))?;
        let mut chain = Chain {
            entries: Vec::new(),
            chunks: index.chunks.clone(),
            sources: vec![Source {
                start: 0,
                file: own,
                path: path.to_path_buf(),
                digest_of: index.digest_of(),
            }],
            starts: Vec::new(),
        };
        let itself = Itself {
            inode: file.metadata().ok().map(|m| (m.dev(), m.ino())),
            manifest_digest: index.manifest_digest,
        };
        let advice = match named.len() {
            0 => "name it with --base".to_string(),
            n => format!("it is none of the {n} archive(s) named with --base"),
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for (b, base) in index.bases.iter().enumerate() {
            let found = match named
                .iter()
                .position(|o| o.index.manifest_digest == base.manifest_digest && !itself.is(o))
            {
                Some(k) => Ok(named.swap_remove(k)),
                None => look_for(base, dir, &itself).map_err(|tried| {
                    format!(
                        "{} (id {}) is needed: {tried}; {advice}",
                        base.name,
                        id_of(&base.manifest_digest)
                    )
                }),
            };
            let start = match found {
                Ok(o) => {
                    let start = chain.chunks.len() as u64;
                    let b16 = u16::try_from(b).unwrap_or(u16::MAX);
                    index::check_based(index, b16, &o.index.chunks)
                        .map_err(|p| Error::corrupt(path, p))?;
                    chain.chunks.extend(o.index.chunks.iter().cloned());
                    chain.sources.push(Source {
                        start,
                        digest_of: o.index.digest_of(),
                        file: o.file,
                        path: o.path,
                    });
                    Ok(start)
                }
                Err(why) => Err(why),
            };
            chain.starts.push(start);
        }
        chain.entries = index.entries().iter().map(|e| chain.moved(e)).collect();
        Ok(chain)
    }

    /// `e` with its location in the joined numbering (a sentinel past every chunk when
    /// its base is missing).
    fn moved(&self, e: &Entry) -> Entry {
        let mut e = e.clone();
        if let Some(loc) = e.location
            && let Some(b) = loc.base
        {
            e.location = Some(match self.starts.get(usize::from(b)) {
                Some(Ok(start)) => DataLocation {
                    first_chunk: loc.first_chunk + start,
                    last_chunk: loc.last_chunk + start,
                    chunk_offset: loc.chunk_offset,
                    base: None,
                },
                _ => DataLocation {
                    first_chunk: u64::MAX,
                    last_chunk: u64::MAX,
                    chunk_offset: 0,
                    base: None,
                },
            });
        }
        e
    }

    /// Where chunk `id` (joined numbering) is read from, and how it is checked.
    pub fn source(&self, id: u64) -> Option<ChunkSource<'_>> {
        let i = self
            .sources
            .partition_point(|s| s.start <= id)
            .checked_sub(1)?;
        self.sources.get(i).map(|s| ChunkSource {
            file: &s.file,
            path: &s.path,
            digest_of: s.digest_of,
            id: id - s.start,
        })
    }

    /// Why the bases that are missing are missing.
    pub fn missing(&self) -> impl Iterator<Item = &str> {
        self.starts
            .iter()
            .filter_map(|s| s.as_ref().err().map(String::as_str))
    }

    /// Why base `b` is missing; `None` when it is there (or there is no such base).
    pub fn why_missing(&self, b: u16) -> Option<&str> {
        match self.starts.get(usize::from(b)) {
            Some(Err(why)) => Some(why),
            _ => None,
        }
    }
}

/// The archives a chain is made of, as far as their recorded places find them: what a
/// command that writes must never replace.
#[derive(Debug, Default)]
pub struct Lineage {
    /// (device, inode) of each archive found: the first one and its bases, theirs, ...
    pub inodes: std::collections::HashSet<(u64, u64)>,
    /// Manifest BLAKE3 of each of them, and of every base recorded, found or not.
    pub digests: std::collections::HashSet<[u8; 32]>,
}

/// How many archives [`lineage`] opens at most (a chain is one per night).
const LINEAGE_LIMIT: usize = 100_000;

/// The lineage of the archive at `path`: itself, its bases, their bases and so on,
/// each looked for where the archive that names it recorded it (relative path, then
/// name beside it) and taken only if its manifest digest is the recorded one. An
/// archive that cannot be opened ends its branch; the digests recorded still count.
pub fn lineage(path: &Path) -> Lineage {
    let mut found = Lineage::default();
    let mut queue: Vec<(PathBuf, Option<[u8; 32]>)> = vec![(path.to_path_buf(), None)];
    let mut opened = 0;
    while let Some((at, expected)) = queue.pop() {
        opened += 1;
        if opened > LINEAGE_LIMIT {
            break;
        }
        // Only the manifest and the bases table are read: no entries, no chunks.
        let Some((inode, digest, bases)) = bases_of(&at) else {
            continue;
        };
        if expected.is_some_and(|d| d != digest) {
            continue; // something else lies where the hint points
        }
        found.inodes.insert(inode);
        found.digests.insert(digest);
        let dir = at
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for base in &bases {
            if !found.digests.insert(base.manifest_digest) {
                continue; // seen: its own bases are queued already
            }
            for hint in hints(base, dir) {
                queue.push((hint, Some(base.manifest_digest)));
            }
        }
    }
    found
}

/// What following a chain needs of one archive: (device, inode), manifest digest,
/// bases.
type Link = ((u64, u64), [u8; 32], Vec<Base>);

/// The [`Link`] of the archive at `path`, if it is a regular file whose manifest reads.
fn bases_of(path: &Path) -> Option<Link> {
    use std::os::unix::fs::FileExt;
    let file = open_regular(path).ok()?;
    let meta = file.metadata().ok()?;
    let (digest, bases) = index::read_bases(meta.len(), |offset, n| {
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, offset).map(|()| buf)
    })
    .ok()?;
    Some(((meta.dev(), meta.ino()), digest, bases))
}

/// `base`, where the bases table says it was, relative to `dir` (the archive's
/// directory), else beside the archive; if it is in neither place, what was found
/// there.
fn look_for(base: &Base, dir: &Path, itself: &Itself) -> std::result::Result<Opened, String> {
    let mut tried = Vec::new();
    for at in hints(base, dir) {
        match Opened::open(&at) {
            Ok(o) if itself.is(&o) => {
                tried.push(format!("{} is this archive itself", at.display()));
            }
            Ok(o) if o.index.manifest_digest == base.manifest_digest => return Ok(o),
            Ok(o) => tried.push(format!(
                "{} is not the archive recorded as a base (id {}, expected {})",
                at.display(),
                id_of(&o.index.manifest_digest),
                id_of(&base.manifest_digest)
            )),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                tried.push(format!("not found at {}", at.display()));
            }
            Err(e) => tried.push(e.to_string()),
        }
    }
    if tried.is_empty() {
        tried.push("no usable location is recorded".into());
    }
    Err(tried.join(", "))
}

/// Where to look for `base`, in order: its recorded relative path (if it is one that
/// may be followed) and its recorded name (if a plain file name), from `dir`.
fn hints(base: &Base, dir: &Path) -> Vec<PathBuf> {
    let mut at = Vec::new();
    if let Some(rel) = base.followable_relative_path() {
        at.push(dir.join(rel));
    }
    if let Some(name) = base.plain_name()
        && !at.contains(&dir.join(name))
    {
        at.push(dir.join(name));
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relative_path_is_looked_at_first_and_each_place_once() {
        let base = Base {
            manifest_digest: [0; 32],
            name: "srv.znippy".into(),
            chunks: 0,
            generation: 0,
            relative_path: Some("../mon/srv.znippy".into()),
        };
        let dir = Path::new("tue");
        assert_eq!(
            hints(&base, dir),
            [dir.join("../mon/srv.znippy"), dir.join("srv.znippy")]
        );
        let beside = Base {
            relative_path: Some("srv.znippy".into()),
            ..base.clone()
        };
        assert_eq!(hints(&beside, dir), [dir.join("srv.znippy")]);
        let hostile = Base {
            name: "../x".into(),
            relative_path: Some("/dev/zero".into()),
            ..base
        };
        assert!(hints(&hostile, dir).is_empty());
    }

    #[test]
    fn hostile_hints_are_refused_without_blocking() {
        let tmp = std::env::temp_dir().join(format!("znippy-chain-hints-{}", std::process::id()));
        let day = tmp.join("day");
        std::fs::create_dir_all(&day).unwrap();
        let fifo = std::ffi::CString::new(tmp.join("fifo").into_os_string().into_encoded_bytes());
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.unwrap().as_ptr(), 0o600) }, 0);
        std::fs::create_dir(tmp.join("dir")).unwrap();
        let itself = Itself {
            inode: None,
            manifest_digest: [1; 32],
        };
        let depth = day.components().count();
        for (rel, name, why) in [
            ("../fifo", "x", "it is a FIFO"),
            ("../dir", "x", "it is a directory"),
            (
                &format!("{}dev/null", "../".repeat(depth)),
                "x",
                "it is a character device",
            ),
            ("/dev/null", "../x", "no usable location is recorded"),
            ("../missing", "x", "not found at"),
        ] {
            let base = Base {
                manifest_digest: [2; 32],
                name: name.into(),
                chunks: 0,
                generation: 0,
                relative_path: Some(rel.into()),
            };
            let Err(tried) = look_for(&base, &day, &itself) else {
                panic!("{rel}: taken");
            };
            assert!(tried.contains(why), "{rel}: {tried}");
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
