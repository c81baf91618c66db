//! An open archive: its validated index, and verified reads of chunks and files.

use super::chain::{Chain, ChunkSource, Opened};
use super::file::{open_regular, read_index, read_index_scoped};
use crate::codec::fit;
use crate::digest;
use crate::error::{Error, Result};
use crate::format::base::id_of;
use crate::format::chunk::{ChunkRecord, Codec, DigestOf};
use crate::format::entry::{Entry, EntryKind};
use crate::format::index;
use crate::format::manifest::Group;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An archive opened for reading.
///
/// ```
/// use znippy_uring::Archive;
/// # let tmp = std::env::temp_dir().join(format!("doc-archive-{}", std::process::id()));
/// # std::fs::create_dir_all(tmp.join("root/etc"))?;
/// # std::fs::write(tmp.join("root/etc/hosts"), "127.0.0.1 localhost\n")?;
/// # let path = tmp.join("data.znippy");
/// # znippy_uring::pack(&tmp.join("root"), &path, &Default::default())?;
/// let archive = Archive::open(&path)?;
/// for e in archive.entries() {
///     println!("{:>8} {}", e.size, e.display_path()); // etc, etc/hosts
/// }
/// let mut out = Vec::new();
/// archive.read_file(b"etc/hosts", &mut out)?; // checks chunk and file BLAKE3
/// assert_eq!(out, b"127.0.0.1 localhost\n");
/// # std::fs::remove_dir_all(&tmp)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Archive {
    path: PathBuf,
    file: File,
    len: u64,
    index: index::Index,
    progress: Option<std::sync::Arc<crate::Progress>>,
    /// An incremental archive joined with its bases (None for a full archive).
    chain: Option<Chain>,
    /// The archives named as bases that are none of its bases.
    unneeded: Vec<PathBuf>,
}

/// The paths of an archive's entries: [`Archive::paths`].
pub struct Paths {
    index: index::Index,
}

impl Paths {
    /// Every entry's exact path, in entry order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.index.paths()
    }
}

/// A read-write file in `dir` with no name: O_TMPFILE, or where the file system lacks
/// it, a fresh name removed at once.
fn unnamed_file(dir: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDWR | OFlags::CLOEXEC;
    match rustix::fs::open(dir, flags | OFlags::TMPFILE, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok(File::from(fd)),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
            let name = dir.join(format!(
                ".znippy-spool.{}.{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&name)?;
            std::fs::remove_file(&name)?;
            Ok(file)
        }
        Err(e) => Err(e.into()),
    }
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("entries", &self.index.entries().len())
            .field("chunks", &self.index.chunks.len())
            .finish_non_exhaustive()
    }
}

/// Reusable buffers for reading chunks (one per thread).
pub(crate) struct ChunkReader {
    dec: crate::codec::Decoder,
    blob: Vec<u8>,
    raw: Vec<u8>,
    /// Where this reader's time went (read, decompress, verify).
    pub(crate) clock: crate::stages::Clock,
}

/// The buffers a [`ChunkReader`] needs for a set of chunks: the largest blob, and the
/// largest decoded zstd chunk (a stored chunk is used where it was read).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ReaderSize {
    blob: u64,
    raw: u64,
}

impl ReaderSize {
    /// What reading each of `chunks` takes.
    pub(crate) fn of<'c>(chunks: impl IntoIterator<Item = &'c ChunkRecord>) -> ReaderSize {
        chunks.into_iter().fold(ReaderSize::default(), |s, c| {
            let raw = if c.codec == Codec::Zstd { c.raw_len } else { 0 };
            ReaderSize {
                blob: s.blob.max(c.stored_len),
                raw: s.raw.max(raw),
            }
        })
    }

    /// Bytes a reader of this size holds: both buffers and its zstd context.
    pub(crate) fn bytes(&self) -> u64 {
        self.blob
            .saturating_add(self.raw)
            .saturating_add(crate::codec::zstd::DECODE_CONTEXT_BYTES)
    }
}

impl ChunkReader {
    /// A reader whose buffers grow to what each chunk needs.
    pub(crate) fn new() -> Result<Self> {
        ChunkReader::with_size(ReaderSize::default())
    }

    /// A reader whose buffers are allocated once, at `size` (lengths were validated
    /// against the file and `MAX_CHUNK_LEN` when the archive was opened).
    pub(crate) fn with_size(size: ReaderSize) -> Result<Self> {
        let mut r = ChunkReader {
            dec: crate::codec::Decoder::new()?,
            blob: Vec::new(),
            raw: Vec::new(),
            clock: crate::stages::Clock::start(),
        };
        r.blob.reserve_exact(size.blob as usize);
        r.raw.reserve_exact(size.raw as usize);
        Ok(r)
    }
}

impl Archive {
    /// Opens `path` and reads and validates its index. Nothing else is read: file data
    /// is read, and checked, only when asked for.
    ///
    /// ```
    /// use znippy_uring::{Archive, Error};
    /// let err = Archive::open("/nonexistent.znippy".as_ref()).unwrap_err();
    /// assert!(matches!(err, Error::Io { op: "open", .. }));
    /// assert!(err.to_string().starts_with("/nonexistent.znippy: open:"));
    /// ```
    ///
    /// Only a regular file is opened: a FIFO, a device or a directory is refused, by
    /// name, without blocking on it.
    pub fn open(path: &Path) -> Result<Archive> {
        Archive::load(open_regular(path)?, path, true)
    }

    /// Writes the file at `file` in the archive at `path` to `out`, as
    /// [`Archive::read_file`] does, checking the same, but decoding of the index only
    /// what finding and reading one file needs (every byte of it is still checked
    /// against its BLAKE3): the fast path of `cat`. An incremental archive, whose files
    /// may lie in its bases, is opened whole, its bases found as [`Archive::open`]
    /// finds them.
    ///
    /// ```
    /// use znippy_uring::Archive;
    /// # let tmp = std::env::temp_dir().join(format!("doc-cat-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// let mut motd = Vec::new();
    /// Archive::cat(&tmp.join("a.znippy"), b"etc/motd", &mut motd)?;
    /// assert_eq!(motd, b"hello\n");
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cat(path: &Path, file: &[u8], out: &mut dyn Write) -> Result<u64> {
        let opened = open_regular(path)?;
        let (len, index) = read_index_scoped(&opened, path, true)?;
        if !index.bases.is_empty() {
            // Joining a chain moves every entry; it needs the whole index.
            return Archive::load(opened, path, true)?.read_file(file, out);
        }
        let lookup = Archive {
            path: path.into(),
            file: opened,
            len,
            index,
            progress: None,
            chain: None,
            unneeded: Vec::new(),
        };
        lookup.read_file(file, out)
    }

    /// The paths of the archive at `path`, in entry order (as [`Archive::entries`] has
    /// them), decoding of the index only what [`Archive::cat`] does: what plain `list`
    /// needs. Bases are not looked for (a listing needs none of them).
    ///
    /// ```
    /// use znippy_uring::Archive;
    /// # let tmp = std::env::temp_dir().join(format!("doc-paths-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// let paths = Archive::paths(&tmp.join("a.znippy"))?;
    /// assert_eq!(paths.iter().collect::<Vec<_>>(), [&b"etc"[..], b"etc/motd"]);
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn paths(path: &Path) -> Result<Paths> {
        let (_, index) = read_index_scoped(&open_regular(path)?, path, true)?;
        Ok(Paths { index })
    }

    /// [`Archive::open`] without looking for an incremental archive's bases: for
    /// reading its index only (what `pack --since` needs of the archive it builds on).
    pub(crate) fn open_index(path: &Path) -> Result<Archive> {
        Archive::load(open_regular(path)?, path, false)
    }

    /// Reads and validates the index of the archive open as `file` (read from its
    /// start, whatever its position), named `path` in messages.
    pub fn from_file(file: File, path: &Path) -> Result<Archive> {
        Archive::load(file, path, true)
    }

    /// [`Archive::from_file`]; `join` looks for an incremental archive's bases beside it.
    fn load(file: File, path: &Path, join: bool) -> Result<Archive> {
        let (len, index) = read_index(&file, path)?;
        let chain = if index.bases.is_empty() || !join {
            None
        } else {
            Some(Chain::join(&index, path, &file, Vec::new())?)
        };
        Ok(Archive {
            path: path.into(),
            file,
            len,
            index,
            progress: None,
            chain,
            unneeded: Vec::new(),
        })
    }

    /// Takes the archives at `paths` as candidates for this incremental archive's
    /// bases, used before the places its bases table records. Each must be a
    /// regular file and an archive, or this fails naming it. Those that are none of
    /// this archive's bases are ignored, and listed by [`Archive::unneeded_bases`].
    pub fn with_bases(mut self, paths: &[PathBuf]) -> Result<Archive> {
        let named = paths
            .iter()
            .map(|p| Opened::open(p))
            .collect::<Result<Vec<Opened>>>()?;
        let bases = &self.index.bases;
        self.unneeded = (named.iter())
            .filter(|o| {
                !bases
                    .iter()
                    .any(|b| &b.manifest_digest == o.manifest_digest())
            })
            .map(|o| o.path().to_path_buf())
            .collect();
        let missing = self
            .chain
            .as_ref()
            .is_none_or(|c| c.missing().next().is_some());
        // A named base is read rather than a copy found beside (which may be damaged:
        // naming a good copy is how to get past it); the message for a missing one
        // says what was named.
        let used = named.len() > self.unneeded.len();
        if !bases.is_empty() && (used || (missing && !named.is_empty())) {
            self.chain = Some(Chain::join(&self.index, &self.path, &self.file, named)?);
        }
        Ok(self)
    }

    /// The archives given to [`Archive::with_bases`] that are none of this archive's
    /// bases (and so were not used).
    pub fn unneeded_bases(&self) -> &[PathBuf] {
        &self.unneeded
    }

    /// Fails, naming the file and the base, if the data of any of the entries
    /// numbered `selected` (as in [`Archive::entries`]) lies in a base that is
    /// missing or is not the one recorded. Files whose data lies in this archive or in
    /// a base that is there need nothing more.
    pub(crate) fn require_bases_of(&self, selected: &[usize]) -> Result<()> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let entries = self.index.entries();
        for e in selected.iter().filter_map(|&i| entries.get(i)) {
            let why = (e.location.and_then(|l| l.base)).and_then(|b| chain.why_missing(b));
            if let Some(why) = why {
                return Err(Error::Input {
                    path: self.path.clone(),
                    problem: format!(
                        "incremental archive: the data of {} lies in a missing base: {why}",
                        e.display_path()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Fails, naming the archive, if a base that holds some of this archive's data is
    /// missing or is not the one recorded. Listing works without them; reading the
    /// files whose data lies there does not.
    pub fn require_bases(&self) -> Result<()> {
        let missing: Vec<&str> = self.chain.iter().flat_map(|c| c.missing()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Input {
            path: self.path.clone(),
            problem: format!("incremental archive: {}", missing.join("; ")),
        })
    }

    /// The entries with their data locations in [`Archive::data_chunks`]' numbering
    /// (those of an incremental archive moved into its joined chunk table).
    pub(crate) fn data_entries(&self) -> &[Entry] {
        self.chain
            .as_ref()
            .map_or_else(|| self.index.entries(), |c| &c.entries)
    }

    /// Entry `i` as [`Archive::data_entries`] has it, without building them all for a
    /// full archive.
    fn data_entry(&self, i: usize) -> Option<Entry> {
        match &self.chain {
            Some(c) => c.entries.get(i).cloned(),
            None => self.index.entry(i),
        }
    }

    /// The chunks data is read from: this archive's, then its bases'.
    pub(crate) fn data_chunks(&self) -> &[ChunkRecord] {
        self.chain
            .as_ref()
            .map_or(&self.index.chunks, |c| &c.chunks)
    }

    /// Reads the archive coming from `stream` (a pipe, say) into an unnamed temporary
    /// file in [`std::env::temp_dir`] (`$TMPDIR`), and opens that: the index is at the
    /// end, and reads need random access. The file needs room for the whole archive; it
    /// disappears when the `Archive` is dropped. `name` names the stream in messages.
    ///
    /// ```
    /// use znippy_uring::Archive;
    /// # let tmp = std::env::temp_dir().join(format!("doc-stream-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src"))?;
    /// # std::fs::write(tmp.join("src/a.txt"), "from a pipe")?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// let bytes = std::fs::read(tmp.join("a.znippy"))?; // as if from `ssh host cat ...`
    /// let archive = Archive::from_stream(&bytes[..], "received".as_ref())?;
    /// let mut text = Vec::new();
    /// archive.read_file(b"a.txt", &mut text)?;
    /// assert_eq!(text, b"from a pipe");
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_stream(mut stream: impl std::io::Read, name: &Path) -> Result<Archive> {
        let dir = std::env::temp_dir();
        let mut spool =
            unnamed_file(&dir).map_err(|e| Error::io(&dir, "create temporary file", e))?;
        std::io::copy(&mut stream, &mut spool).map_err(|e| Error::io(name, "read", e))?;
        Archive::from_file(spool, name)
    }

    /// Counts the bytes that [`Archive::verify`], [`Archive::unpack`] and
    /// [`Archive::extract`] process into `progress`, for a progress display.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use znippy_uring::{Archive, Progress};
    /// # let tmp = std::env::temp_dir().join(format!("doc-progress-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/bin"))?;
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # std::fs::write(tmp.join("src/bin/tool"), [0u8; 100])?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// # let path = tmp.join("a.znippy");
    /// let progress = Arc::new(Progress::default());
    /// let archive = Archive::open(&path)?.with_progress(progress.clone());
    /// // Another thread may poll `progress.snapshot()` while this runs.
    /// archive.verify(2)?;
    /// let (done, total, final_total, _) = progress.snapshot();
    /// assert_eq!((done, total, final_total), (126, 126, true));
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_progress(mut self, progress: std::sync::Arc<crate::Progress>) -> Archive {
        self.progress = Some(progress);
        self
    }

    /// The progress counters, if set.
    pub(crate) fn progress(&self) -> Option<&crate::Progress> {
        self.progress.as_deref()
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (device, inode) of the archive's file, if it can be told.
    pub(crate) fn identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().ok().map(|m| (m.dev(), m.ino()))
    }

    /// The archive's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the archive has no entries.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// All entries, group after group (built on first call: an archive opened to read
    /// one file never builds them).
    pub fn entries(&self) -> &[Entry] {
        self.index.entries()
    }

    /// Number of entries.
    pub fn entry_count(&self) -> usize {
        self.index.len()
    }

    /// The groups and the range of [`Archive::entries`] each one holds.
    pub fn groups(&self) -> &[(Group, Range<usize>)] {
        &self.index.groups
    }

    /// The archive's format version (this build writes [`crate::FORMAT_VERSION`] and
    /// reads every version from 1 up to it).
    pub fn format_version(&self) -> u32 {
        self.index.version
    }

    /// The chunks table.
    pub fn chunks(&self) -> &[ChunkRecord] {
        &self.index.chunks
    }

    /// Index of the entry with this path (a trailing `/` is ignored).
    ///
    /// ```
    /// use znippy_uring::{Archive, EntryKind};
    /// # let tmp = std::env::temp_dir().join(format!("doc-find-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/bin"))?;
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # std::fs::write(tmp.join("src/bin/tool"), [0u8; 100])?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// # let path = tmp.join("a.znippy");
    /// let archive = Archive::open(&path)?;
    /// let i = archive.find(b"etc/hosts").expect("archived");
    /// let e = &archive.entries()[i];
    /// assert_eq!((e.kind, e.size), (EntryKind::File, 20));
    /// // The file's digest is plain BLAKE3, as `b3sum` prints it.
    /// assert_eq!(e.digest, Some(*blake3::hash(b"127.0.0.1 localhost\n").as_bytes()));
    /// assert_eq!(archive.find(b"etc/"), archive.find(b"etc"));
    /// assert_eq!(archive.find(b"etc/passwd"), None);
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn find(&self, path: &[u8]) -> Option<usize> {
        let path = path.strip_suffix(b"/").unwrap_or(path);
        self.index.position(path)
    }

    /// The entry at exactly `path`, if there is one, refused as unpack and verify
    /// refuse it: an unsafe path, a path named twice, or one under an entry that is not
    /// a directory. (So `cat` never serves what `unpack` would not write.)
    fn sound_entry(&self, path: &[u8]) -> Result<Option<(usize, Entry)>> {
        let shown = || String::from_utf8_lossy(path).into_owned();
        let found = self.index.positions(path);
        let Some(&i) = found.first() else {
            return Ok(None);
        };
        if found.len() > 1 {
            let why = format!("duplicate path {}", shown());
            return Err(Error::corrupt(&self.path, why));
        }
        (crate::format::entry::check_path(path)).map_err(|why| Error::UnsafePath {
            archive: self.path.clone(),
            path: shown(),
            why,
        })?;
        for p in crate::format::entry::parents(path) {
            let not_dir = (self.index.positions(p).into_iter())
                .filter_map(|n| self.data_entry(n))
                .any(|e| e.kind != EntryKind::Dir);
            if not_dir {
                let under = String::from_utf8_lossy(p);
                let why = format!("{} lies under {under}, which is not a directory", shown());
                return Err(Error::corrupt(&self.path, why));
            }
        }
        Ok(self.data_entry(i).map(|e| (i, e)))
    }

    /// The BLAKE3 of the manifest, as stored.
    pub(crate) fn manifest_digest(&self) -> [u8; 32] {
        self.index.manifest_digest
    }

    /// The archives this (incremental) archive's data also lies in, as recorded.
    pub(crate) fn index_bases(&self) -> &[crate::format::base::Base] {
        &self.index.bases
    }

    /// An incremental archive's bases, in order: each one's id (as [`Archive::id`]
    /// gives it), its file name when this archive was packed, and its generation (0
    /// for a full archive). Empty for a full archive.
    pub fn bases(&self) -> Vec<(String, String, u32)> {
        (self.index.bases.iter())
            .map(|b| (id_of(&b.manifest_digest), b.name.clone(), b.generation))
            .collect()
    }

    /// Where each of [`Archive::bases`] was, relative to this archive's directory, when
    /// this archive was packed (`../mon/srv.znippy`), where that is recorded. Only a
    /// hint, as the name is: readers take a base only by its recorded identity.
    pub fn base_relative_paths(&self) -> Vec<Option<String>> {
        (self.index.bases.iter())
            .map(|b| b.relative_path.clone())
            .collect()
    }

    /// Where this archive sits in its chain: 0 for a full archive, else one more than
    /// its bases' highest generation.
    pub fn generation(&self) -> u32 {
        self.index
            .bases
            .iter()
            .map(|b| b.generation + 1)
            .max()
            .unwrap_or(0)
    }

    /// A stable id of the archive's content: the first 16 bytes, in hex, of the BLAKE3
    /// of its manifest, which covers the whole index and through it every chunk's
    /// digest. The same archive has the same id wherever it is copied; archives with
    /// different contents have different ids.
    pub fn id(&self) -> String {
        id_of(&self.index.manifest_digest)
    }

    /// Reads chunk `id`, checked against its BLAKE3 and decompressed; the error is the
    /// problem, for the caller to attach to the files concerned. The digest is checked
    /// by the rule of the archive that holds the chunk: of the blob before it is
    /// decoded (format 2: a damaged frame never reaches zstd), or of the decoded bytes
    /// (format 1).
    pub(crate) fn load_chunk<'r>(
        &self,
        id: u64,
        r: &'r mut ChunkReader,
    ) -> Result<&'r [u8], String> {
        let rec = usize::try_from(id)
            .ok()
            .and_then(|i| self.data_chunks().get(i))
            .ok_or_else(|| format!("chunk {id} does not exist"))?;
        // Lengths were validated against the file and MAX_CHUNK_LEN when opening.
        fit(&mut r.blob, rec.stored_len as usize);
        let from = match &self.chain {
            Some(chain) => chain
                .source(id)
                .ok_or_else(|| format!("chunk {id} has no file"))?,
            None => ChunkSource {
                file: &self.file,
                path: &self.path,
                digest_of: self.index.digest_of(),
                id,
            },
        };
        // A base's chunk is named by its number there and its archive, so damage there
        // is found where it is.
        let chunk = match from.path == self.path {
            true => format!("chunk {id}"),
            false => format!("chunk {} (in base {})", from.id, from.path.display()),
        };
        from.file
            .read_exact_at(&mut r.blob, rec.offset)
            .map_err(|e| format!("{chunk}: read: {e}"))?;
        r.clock.work("read");
        let mismatch = || format!("{chunk}: BLAKE3 mismatch");
        if from.digest_of == DigestOf::Blob {
            let same = digest::blob(&r.blob, rec.subtree_at) == rec.digest;
            r.clock.work("verify");
            if !same {
                return Err(mismatch());
            }
        }
        let data = (r.dec).decode(rec.codec, &r.blob, &mut r.raw, rec.raw_len, &chunk)?;
        if rec.codec == Codec::Zstd {
            r.clock.work("decompress");
        }
        if from.digest_of == DigestOf::Raw {
            let same = digest::hash(data) == rec.digest;
            r.clock.work("verify");
            if !same {
                return Err(mismatch());
            }
        }
        Ok(data)
    }

    /// Chunk `id` (of [`Archive::data_chunks`]) as its archive numbers it, and that
    /// archive's path when it is a base: how a report names it.
    pub(crate) fn chunk_home(&self, id: u64) -> (u64, Option<&Path>) {
        match self.chain.as_ref().and_then(|c| c.source(id)) {
            Some(from) if from.path != self.path => (from.id, Some(from.path)),
            _ => (id, None),
        }
    }

    /// Like [`Archive::load_chunk`], but the chunk's bytes are handed over in a buffer
    /// of their own (the reader makes itself a new one).
    pub(crate) fn take_chunk(&self, id: u64, r: &mut ChunkReader) -> Result<Vec<u8>, String> {
        self.load_chunk(id, r)?;
        let stored = usize::try_from(id)
            .ok()
            .and_then(|i| self.data_chunks().get(i))
            .is_some_and(|c| c.codec == Codec::Stored);
        Ok(std::mem::take(if stored {
            &mut r.blob
        } else {
            &mut r.raw
        }))
    }

    /// Writes the file at `path` to `out`, reading only its chunks. Each chunk is
    /// checked before any of its bytes are written, and the file's BLAKE3 at the end.
    /// Returns the number of bytes written.
    ///
    /// ```
    /// use znippy_uring::Archive;
    /// # let tmp = std::env::temp_dir().join(format!("doc-read-file-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/bin"))?;
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # std::fs::write(tmp.join("src/bin/tool"), [0u8; 100])?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// # let path = tmp.join("a.znippy");
    /// let archive = Archive::open(&path)?;
    /// let mut motd = Vec::new();
    /// assert_eq!(archive.read_file(b"etc/motd", &mut motd)?, 6);
    /// assert_eq!(motd, b"hello\n");
    /// let missing = archive.read_file(b"etc/shadow", &mut Vec::new()).unwrap_err();
    /// assert!(missing.to_string().contains("etc/shadow: not in"));
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_file(&self, path: &[u8], out: &mut dyn Write) -> Result<u64> {
        let name = String::from_utf8_lossy(path).into_owned();
        // The trailing `/` a shell adds to a directory is the user's, not the archive's.
        let asked = path.strip_suffix(b"/").unwrap_or(path);
        let (mut i, mut entry) = self
            .sound_entry(asked)?
            .ok_or_else(|| Error::Invalid(format!("{name}: not in {}", self.path.display())))?;
        // A hard link reads as the file it names (one level: links never chain).
        if entry.kind == EntryKind::Hardlink {
            let target = entry.link_target.clone().unwrap_or_default();
            (crate::format::entry::check_path(&target)).map_err(|why| Error::UnsafePath {
                archive: self.path.clone(),
                path: String::from_utf8_lossy(&target).into_owned(),
                why,
            })?;
            let shown = String::from_utf8_lossy(&target).into_owned();
            let linked = |problem: String| {
                let why = format!("hard link {name} names {shown}, {problem}");
                Error::corrupt(&self.path, why)
            };
            (i, entry) = match self.sound_entry(&target)? {
                None => return Err(linked("a file not in the archive".into())),
                Some((t, _)) if t == i => return Err(linked("itself".into())),
                Some((_, e)) if e.kind != EntryKind::File => {
                    return Err(linked(format!("a {}", e.kind.name())));
                }
                Some(found) => found,
            };
        }
        // Only the base this file's data lies in is needed.
        self.require_bases_of(&[i])?;
        if entry.kind != EntryKind::File {
            return Err(Error::Invalid(format!(
                "{name}: is a {}, not a file",
                entry.kind.name()
            )));
        }
        let damaged = |problem: String| Error::Damaged {
            archive: self.path.clone(),
            damaged: vec![(name.clone(), problem)],
        };
        let mut hasher = blake3::Hasher::new();
        let mut left = entry.size;
        if let Some(loc) = entry.location {
            let mut reader = ChunkReader::new()?;
            for id in loc.first_chunk..=loc.last_chunk {
                let data = self.load_chunk(id, &mut reader).map_err(&damaged)?;
                let start = if id == loc.first_chunk {
                    loc.chunk_offset as usize
                } else {
                    0
                };
                let end = data
                    .len()
                    .min(start.saturating_add(usize::try_from(left).unwrap_or(usize::MAX)));
                let part = data
                    .get(start..end)
                    .ok_or_else(|| damaged(format!("chunk {id}: short")))?;
                let split = loc.last_chunk > loc.first_chunk;
                let fills = split && start == 0 && part.len() == data.len();
                let rec = usize::try_from(id)
                    .ok()
                    .and_then(|i| self.data_chunks().get(i));
                if let Some(rec) = rec {
                    rec.check_placed(id, entry.size - left, fills)
                        .map_err(&damaged)?;
                }
                hasher.update(part);
                out.write_all(part)
                    .map_err(|e| Error::io("<output>", "write", e))?;
                left -= part.len() as u64;
            }
        }
        if left != 0 || Some(*hasher.finalize().as_bytes()) != entry.digest {
            return Err(damaged("file BLAKE3 mismatch".into()));
        }
        Ok(entry.size)
    }
}

#[cfg(test)]
mod tests {
    use super::{ChunkReader, ReaderSize, fit};
    use crate::format::chunk::{ChunkRecord, Codec};

    #[test]
    fn buffers_grow_to_exactly_the_largest_chunk() {
        let mut buf = Vec::new();
        for len in [1000, 1500, 2500, 2000] {
            fit(&mut buf, len);
            assert_eq!(buf.len(), len);
        }
        // A doubling resize would hold 4000 bytes here.
        assert_eq!(buf.capacity(), 2500);
    }

    #[test]
    fn a_sized_reader_holds_the_largest_blob_and_decoded_chunk() {
        let chunk = |raw_len, stored_len, codec| ChunkRecord {
            offset: 0,
            stored_len,
            raw_len,
            codec,
            digest: [0; 32],
            subtree_at: None,
        };
        let chunks = [chunk(900, 300, Codec::Zstd), chunk(700, 700, Codec::Stored)];
        let size = ReaderSize::of(&chunks);
        assert_eq!(
            size,
            ReaderSize {
                blob: 700,
                raw: 900
            }
        );
        let r = ChunkReader::with_size(size).unwrap();
        assert!(r.blob.capacity() >= 700 && r.raw.capacity() >= 900);
    }
}
