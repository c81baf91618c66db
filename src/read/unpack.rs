//! Unpacking: directories first, then file data chunk by chunk on all cores (each chunk
//! checked before any of its bytes is written, files written with positioned writes and
//! closed at once), then symlinks, then directory metadata, deepest first. Every path
//! is checked and resolved beneath the target (see [`super::beneath`]).

use super::archive::{Archive, ReaderSize};
use super::beneath::{Beneath, LastDir, MadeDir, Staged, apply_meta};
use super::layout::Layout;
use super::verify::{Tally, conclude, misplaced, piece_digest};
use super::visit;
use crate::digest::PieceDigest;
use crate::error::{Error, Result};
use crate::format::chunk::ChunkRecord;
use crate::format::entry::{Entry, EntryKind, check_path};
use crate::owner::Owners;
use crate::stages::{self, Clock, Stage};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

/// How to unpack. The defaults follow GNU tar: owners, special mode bits and device
/// nodes are restored only when running as root.
///
/// ```
/// use znippy_uring::{UnpackOptions, XattrPolicy};
/// // Restore as root would, but by numeric ids, and without extended attributes.
/// let opts = UnpackOptions {
///     numeric_owner: true,
///     xattrs: XattrPolicy::None,
///     threads: 4,
///     ..UnpackOptions::default()
/// };
/// assert!(opts.numeric_owner);
/// ```
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// Threads decompressing and writing (default: all cores).
    pub threads: usize,
    /// Restore owners. Default, as GNU tar: when running as root. An archived user or
    /// group name that exists here gives its id here; otherwise the archived id is used.
    pub same_owner: bool,
    /// Restore owners by archived id only, ignoring names (GNU tar's `--numeric-owner`).
    pub numeric_owner: bool,
    /// Restore setuid, setgid and sticky bits too, and ignore the umask; otherwise
    /// only the `rwxrwxrwx` bits the umask lets through are restored (GNU tar's
    /// `--no-same-permissions`). Default, as GNU tar: when running as root.
    pub preserve_permissions: bool,
    /// Which archived extended attributes to restore (default `user.*`).
    pub xattrs: crate::XattrPolicy,
    /// Create device nodes. Default, as GNU tar: when running as root (only root can).
    pub devices: bool,
    /// Bytes the threads may hold for chunks (each holds a chunk's blob and its
    /// decompressed bytes): fewer threads run when it cannot give each thread that
    /// for the archive's largest chunk (default [`crate::DEFAULT_MEMORY`]).
    pub memory: usize,
    /// Give a directory that exists already in the target the archive's owner, mode
    /// and mtime, as GNU tar does by default (`--overwrite-dir`). Off by default: only
    /// directories the unpack makes get them (GNU tar's `--no-overwrite-dir`), so a
    /// directory of yours that another user renames into an archived directory's
    /// place is not opened up.
    pub overwrite_dirs: bool,
    /// Flush everything written to stable storage before reporting success: one
    /// syncfs(2) of the target's file system (`--sync`). Off by default, as for tar.
    pub sync: bool,
    /// The most bytes of file data to write: an unpack whose selected files declare
    /// more is refused before anything is written (default: the target's free space).
    pub max_size: super::MaxSize,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        UnpackOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            same_owner: root,
            numeric_owner: false,
            preserve_permissions: root,
            xattrs: crate::XattrPolicy::User,
            devices: root,
            memory: crate::pack::DEFAULT_MEMORY,
            overwrite_dirs: false,
            sync: false,
            max_size: super::MaxSize::FreeSpace,
        }
    }
}

/// The metadata an unpack restores: its options, with the archived owner names
/// resolved to this system's ids once.
struct Restore<'a> {
    opts: &'a UnpackOptions,
    owners: Option<Owners>,
    /// The bits never given when permissions are not preserved: the process's umask.
    umask: u32,
    xattrs: crate::xattr::Restorer,
}

impl<'a> Restore<'a> {
    fn new(opts: &'a UnpackOptions, entries: impl Iterator<Item = &'a Entry>) -> Self {
        Restore {
            opts,
            owners: opts
                .same_owner
                .then(|| Owners::resolve(entries, opts.numeric_owner)),
            umask: umask(),
            xattrs: crate::xattr::Restorer::new(opts.xattrs),
        }
    }

    /// The owner to give `e`, if owners are restored.
    fn owner(&self, e: &Entry) -> Option<(u32, u32)> {
        self.owners.as_ref().map(|o| o.ids(e))
    }

    /// The permission bits to give `e`: all twelve, or, as GNU tar's
    /// `--no-same-permissions` (the default for other users than root), the `rwx`
    /// bits less the umask.
    fn mode(&self, e: &Entry) -> u32 {
        e.mode
            & if self.opts.preserve_permissions {
                0o7777
            } else {
                0o777 & !self.umask
            }
    }

    /// Gives the open file or directory `fd` the metadata of `e` these options restore.
    fn apply_meta(&self, fd: &std::os::fd::OwnedFd, e: &Entry) -> std::io::Result<()> {
        apply_meta(
            fd,
            self.owner(e),
            self.xattrs_of(e),
            self.mode(e),
            e.mtime_ns,
        )
    }

    /// The extended attributes of `e` to restore.
    fn xattrs_of<'e>(&'e self, e: &'e Entry) -> crate::xattr::ToSet<'e> {
        crate::xattr::ToSet {
            xattrs: &e.xattrs,
            path: &e.path,
            restorer: &self.xattrs,
        }
    }
}

/// The process's umask, read from /proc/self/status (setting it to read it back would
/// race with other threads creating files). Where that is not available: 022.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .unwrap_or(0o022)
}

/// What an unpack or extract did. Serialized, it is the body of `unpack --json`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct UnpackReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Fifos and device nodes created.
    pub specials: u64,
    /// Device nodes not created (not root, or not asked for).
    pub skipped_devices: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Extended attributes not set, one line per kind, each with a count and the
    /// first: `trusted.*` and `security.*` refused (EPERM) when not root, or any
    /// refused by a file system without them (ENOTSUP). Any other failure to set one
    /// fails the unpack, naming the file and the attribute.
    pub xattr_warnings: Vec<String>,
    /// Threads that wrote file data (fewer than asked for when `memory` is short).
    pub threads: usize,
    /// Where the time went: `prepare` (checks, directories), `data` (the threads
    /// reading, decompressing, verifying and writing chunks), `finish` (split files,
    /// links, special files, symlinks, directory metadata).
    pub stages: Vec<crate::stages::Stage>,
}

#[derive(Default)]
struct Worker {
    tally: Tally,
    files: u64,
    bytes: u64,
    /// Where this thread made its last file.
    last_dir: LastDir,
}

impl Archive {
    /// Unpacks every entry into `dest` (created if missing).
    ///
    /// Damaged files are not written (or are removed); the others are, and the error
    /// lists the damaged ones.
    ///
    /// ```
    /// use znippy_uring::{Archive, UnpackOptions};
    /// # let tmp = std::env::temp_dir().join(format!("doc-unpack-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/bin"))?;
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # std::fs::write(tmp.join("src/bin/tool"), [0u8; 100])?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// # let path = tmp.join("a.znippy");
    /// let report = Archive::open(&path)?.unpack(&tmp.join("restored"), &UnpackOptions::default())?;
    /// assert_eq!(report.files, 3);
    /// assert_eq!(std::fs::read(tmp.join("restored/etc/motd"))?, b"hello\n");
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unpack(&self, dest: &Path, opts: &UnpackOptions) -> Result<UnpackReport> {
        // The whole archive needs every base.
        self.require_bases()?;
        let all: Vec<usize> = (0..self.data_entries().len()).collect();
        self.unpack_selected(&all, dest, opts)
    }

    /// Unpacks the entries named by `paths` into `dest`; a directory brings everything
    /// under it. Every path must be in the archive. A hard link brings the file it
    /// names, unless that path exists in `dest` already (then it fails: nothing is
    /// written over that was not asked for). Of an incremental archive's bases, only
    /// those holding data of the selected files are needed.
    ///
    /// ```
    /// use znippy_uring::{Archive, UnpackOptions};
    /// # let tmp = std::env::temp_dir().join(format!("doc-extract-{}", std::process::id()));
    /// # std::fs::create_dir_all(tmp.join("src/bin"))?;
    /// # std::fs::create_dir_all(tmp.join("src/etc"))?;
    /// # std::fs::write(tmp.join("src/etc/hosts"), "127.0.0.1 localhost\n")?;
    /// # std::fs::write(tmp.join("src/etc/motd"), "hello\n")?;
    /// # std::fs::write(tmp.join("src/bin/tool"), [0u8; 100])?;
    /// # znippy_uring::pack(&tmp.join("src"), &tmp.join("a.znippy"), &Default::default())?;
    /// # let path = tmp.join("a.znippy");
    /// let archive = Archive::open(&path)?;
    /// let out = tmp.join("out");
    /// archive.extract(&[b"etc"], &out, &UnpackOptions::default())?;
    /// assert!(out.join("etc/hosts").exists() && !out.join("bin").exists());
    /// assert!(archive.extract(&[b"var"], &out, &UnpackOptions::default()).is_err());
    /// # std::fs::remove_dir_all(&tmp)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extract(
        &self,
        paths: &[&[u8]],
        dest: &Path,
        opts: &UnpackOptions,
    ) -> Result<UnpackReport> {
        let mut selected = BTreeSet::new();
        for p in paths {
            let p = p.strip_suffix(b"/").unwrap_or(p);
            let before = selected.len();
            for (i, e) in self.data_entries().iter().enumerate() {
                let under = e.path.len() > p.len()
                    && e.path.starts_with(p)
                    && e.path.get(p.len()) == Some(&b'/');
                if e.path == p || under {
                    selected.insert(i);
                }
            }
            if selected.len() == before && !self.data_entries().iter().any(|e| e.path == p) {
                return Err(Error::Invalid(format!(
                    "{}: not in {}",
                    String::from_utf8_lossy(p),
                    self.path().display()
                )));
            }
        }
        // A selected hard link needs the file it names (a link to anything else is
        // refused by `check_selected`): it is brought in, unless something is at its
        // path in `dest` already, which would be written over though not asked for.
        let targets: Vec<(usize, &Entry)> = selected
            .iter()
            .filter_map(|&i| self.data_entries().get(i))
            .filter(|e| e.kind == EntryKind::Hardlink)
            .filter_map(|e| {
                e.link_target
                    .as_deref()
                    .and_then(|t| self.find(t))
                    .map(|t| (t, e))
            })
            .filter(|&(t, _)| !selected.contains(&t))
            .filter(|&(t, _)| {
                self.data_entries()
                    .get(t)
                    .is_some_and(|t| t.kind == EntryKind::File)
            })
            .collect();
        for &(t, link) in &targets {
            let Some(file) = self.data_entries().get(t) else {
                continue;
            };
            let at = dest
                .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&file.path));
            if check_path(&file.path).is_ok() && std::fs::symlink_metadata(&at).is_ok() {
                return Err(Error::Invalid(format!(
                    "{}: a hard link to {}, which is not among the paths extracted and \
                     exists in {} already: name it too to replace it, or extract elsewhere",
                    link.display_path(),
                    file.display_path(),
                    dest.display()
                )));
            }
        }
        selected.extend(targets.into_iter().map(|(t, _)| t));
        let selected: Vec<usize> = selected.into_iter().collect();
        self.unpack_selected(&selected, dest, opts)
    }

    fn unpack_selected(
        &self,
        selected: &[usize],
        dest: &Path,
        opts: &UnpackOptions,
    ) -> Result<UnpackReport> {
        let (started, mut prepare) = (std::time::Instant::now(), Clock::start());
        self.require_bases_of(selected)?;
        self.check_selected(selected)?;
        super::space::check(self, selected, dest, opts.max_size)?;
        let root = Beneath::open(dest).map_err(|e| Error::io(dest, "open target directory", e))?;
        let entries = self.data_entries();
        let job = Job {
            archive: self,
            entries,
            selected,
            root,
            meta: Restore::new(opts, selected.iter().filter_map(|&i| entries.get(i))),
            opts,
            split: Mutex::default(),
            dirs: Mutex::default(),
        };
        let mut report = UnpackReport::default();
        job.directories()?;
        report.files += job.empty_and_split_files()?;
        prepare.work("directories");
        let (workers, clocks) = job.data()?;
        let mut finish = Clock::start();
        report.threads = clocks.len();
        report.files += workers.iter().map(|w| w.files).sum::<u64>();
        report.bytes = workers.iter().map(|w| w.bytes).sum();
        let tallies = workers.into_iter().map(|w| w.tally).collect();
        let mut damaged = conclude(self, selected, tallies);
        report.files += job.complete_split_files(&damaged)?;
        report.hardlinks = job.hardlinks(&mut damaged)?;
        (report.specials, report.skipped_devices) = job.specials()?;
        report.symlinks = job.symlinks()?;
        (job.root.end_staging()).map_err(job.root.err(b"", "remove the staging directory"))?;
        report.dirs = job.directory_metadata()?;
        report.xattr_warnings = job.meta.xattrs.warnings();
        finish.work("links and metadata");
        if opts.sync && damaged.is_empty() {
            job.root.sync_fs().map_err(job.root.err(b"", "syncfs"))?;
            finish.work("sync");
        }
        report.stages = vec![
            Stage::of("prepare", &[prepare]),
            Stage::of("data", &clocks),
            Stage::of("finish", &[finish]),
        ];
        stages::conclude(&mut report.stages, started.elapsed());
        if damaged.is_empty() {
            return Ok(report);
        }
        Err(Error::Damaged {
            archive: self.path().into(),
            damaged: damaged
                .into_iter()
                .filter_map(|(i, why)| entries.get(i).map(|e| (e.display_path(), why)))
                .collect(),
        })
    }

    /// Refuses unsafe paths (and hard link targets), duplicate paths, and hard links
    /// that do not name a file of the archive among the selected entries, before
    /// anything is written.
    pub(super) fn check_selected(&self, selected: &[usize]) -> Result<()> {
        let unsafe_path = |path: &[u8], why| Error::UnsafePath {
            archive: self.path().into(),
            path: String::from_utf8_lossy(path).into_owned(),
            why,
        };
        let mut seen = HashSet::new();
        for e in selected.iter().filter_map(|&i| self.data_entries().get(i)) {
            check_path(&e.path).map_err(|why| unsafe_path(&e.path, why))?;
            if e.kind == EntryKind::Hardlink {
                let target = e.link_target.as_deref().unwrap_or_default();
                check_path(target).map_err(|why| unsafe_path(target, why))?;
                self.check_hardlink(e, target, selected)?;
            }
            if !seen.insert(e.path.as_slice()) {
                return Err(Error::corrupt(
                    self.path(),
                    format!("duplicate path {}", e.display_path()),
                ));
            }
        }
        // No entry may lie under one that is not a directory (`f` a file, `f/x` too).
        let entries = self.data_entries();
        // (Over all entries: extracting `f/x` alone must not make `f` a directory.)
        let not_dirs: HashSet<&[u8]> = (entries.iter())
            .filter(|e| e.kind != EntryKind::Dir)
            .map(|e| e.path.as_slice())
            .collect();
        for e in selected.iter().filter_map(|&i| entries.get(i)) {
            let mut parents = crate::format::entry::parents(&e.path);
            if let Some(p) = parents.find(|p| not_dirs.contains(p)) {
                return Err(Error::corrupt(
                    self.path(),
                    format!(
                        "{} lies under {}, which is not a directory",
                        e.display_path(),
                        String::from_utf8_lossy(p)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses hard link `e` unless it names `target`, a regular file entry (not a
    /// hard link itself: links never chain) other than itself, among the `selected`
    /// ones (sorted).
    fn check_hardlink(&self, e: &Entry, target: &[u8], selected: &[usize]) -> Result<()> {
        let found = self.find(target);
        let problem = match found.and_then(|i| self.data_entries().get(i)) {
            None => "a file not in the archive".to_string(),
            Some(_) if target == e.path.as_slice() => "itself".to_string(),
            Some(t) if t.kind == EntryKind::Hardlink => "another hard link".to_string(),
            Some(t) if t.kind != EntryKind::File => format!("a {}", t.kind.name()),
            Some(_) if found.is_none_or(|i| selected.binary_search(&i).is_err()) => {
                "a file not among those unpacked".to_string()
            }
            Some(_) => return Ok(()),
        };
        Err(Error::corrupt(
            self.path(),
            format!(
                "hard link {} names {}, {problem}; only a file of the archive can be linked to",
                e.display_path(),
                String::from_utf8_lossy(target)
            ),
        ))
    }
}

/// One unpack or extract under way: the selected entries, written beneath the target
/// in steps, each a method, in the order they run.
struct Job<'a> {
    archive: &'a Archive,
    entries: &'a [Entry],
    selected: &'a [usize],
    root: Beneath,
    meta: Restore<'a>,
    opts: &'a UnpackOptions,
    /// Files of several chunks, made in the staging directory, by entry index.
    split: Mutex<HashMap<usize, Staged>>,
    /// Each directory entry's identity when made or found, by entry path.
    dirs: Mutex<HashMap<&'a [u8], MadeDir>>,
}

impl<'a> Job<'a> {
    /// The selected entries, in archive order.
    fn each(&self) -> impl DoubleEndedIterator<Item = &'a Entry> + 'a {
        let entries = self.entries;
        self.selected.iter().filter_map(move |&i| entries.get(i))
    }

    fn is_split(e: &Entry) -> bool {
        e.location.is_some_and(|l| l.first_chunk != l.last_chunk)
    }

    /// 1. Directories, parents before children (sorted order), plus any parent that
    ///    has no entry of its own. The identity of each directory entry is kept, so
    ///    that its metadata goes to that directory and no other.
    fn directories(&self) -> Result<()> {
        let mut dirs: BTreeSet<&[u8]> = BTreeSet::new();
        let mut entries: HashMap<&[u8], &Entry> = HashMap::new();
        for e in self.each() {
            let mut end = 0;
            while let Some(pos) = e.path[end..].iter().position(|&b| b == b'/') {
                dirs.insert(&e.path[..end + pos]);
                end += pos + 1;
            }
            if e.kind == EntryKind::Dir {
                dirs.insert(&e.path);
                entries.insert(&e.path, e);
            }
        }
        let mut identities = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        for d in dirs {
            // A directory of the archive is made with its own rwx bits (and ours, to
            // fill it) from the start, so that a private one is never open meanwhile.
            let mode = match entries.get(d) {
                Some(e) => self.meta.mode(e) & 0o777 | 0o700,
                None => 0o755,
            };
            let made = self
                .root
                .mkdir(d, mode)
                .map_err(self.root.err(d, "mkdir"))?;
            if entries.contains_key(d) && (made.made() || self.opts.overwrite_dirs) {
                identities.insert(d, made);
            }
        }
        Ok(())
    }

    /// 2. Empty files (complete at once: counted), and files spanning several chunks,
    ///    made at full size in the staging directory, so that each chunk can be
    ///    written into place by whichever thread decodes it, and no other user can
    ///    put another file in their place meanwhile.
    fn empty_and_split_files(&self) -> Result<u64> {
        let root = &self.root;
        let mut files = 0;
        let mut split = self.split.lock().unwrap_or_else(|p| p.into_inner());
        let mut last_dir = LastDir::default();
        for &i in self.selected {
            let Some(e) = self.entries.get(i).filter(|e| e.kind == EntryKind::File) else {
                continue;
            };
            if e.location.is_none() {
                let fd =
                    (root.create(&e.path, &mut last_dir)).map_err(root.err(&e.path, "create"))?;
                (self.meta.apply_meta(&fd, e)).map_err(root.err(&e.path, "set metadata"))?;
                files += 1;
            } else if Self::is_split(e) {
                let staged = (root.stage_file(&e.path, e.size))
                    .map_err(root.err(&e.path, "create (staged)"))?;
                split.insert(i, staged);
            }
        }
        Ok(files)
    }

    /// 3. File data, chunk by chunk, on all cores. Writes into one split file are
    ///    serialized by a lock of ours: concurrent pwrites to one file contend on its
    ///    inode lock, where the kernel spins (seen in perf: 20% of samples in
    ///    rwsem_spin_on_owner for a 2 GiB file), while a waiter here sleeps and the
    ///    other thread goes on decoding.
    fn data(&self) -> Result<(Vec<Worker>, Vec<Clock>)> {
        let split_locks: HashMap<usize, Mutex<()>> = (self.selected.iter())
            .filter(|&&i| self.entries.get(i).is_some_and(Self::is_split))
            .map(|&i| (i, Mutex::new(())))
            .collect();
        let layout = Layout::new(self.entries, self.archive.data_chunks(), self.selected);
        let chunks = self.archive.data_chunks();
        let size = ReaderSize::of(
            layout
                .chunks
                .iter()
                .filter_map(|&id| chunks.get(id as usize)),
        );
        let threads = visit::threads_within(self.opts.memory, self.opts.threads, size);
        visit::chunks(
            self.archive,
            &layout.chunks,
            threads,
            "write",
            Worker::default,
            |w, k, data| {
                let id = layout.chunks.get(k).copied().unwrap_or_default();
                let chunk = usize::try_from(id).ok().and_then(|i| chunks.get(i));
                let data = data.and_then(|d| match misplaced(chunk, id, layout.pieces(k)) {
                    Some(why) => Err(why),
                    None => Ok(d),
                });
                match data {
                    Ok(data) => self.write_chunk(w, &layout, &split_locks, k, (id, chunk), data),
                    Err(problem) => {
                        w.tally.bad_chunks.push((id, problem));
                        Ok(())
                    }
                }
            },
        )
    }

    /// Writes the pieces of chunk `k` (archive chunk `id`, its record `chunk`) that
    /// were selected; a whole file only when its digest matches (a damaged one is
    /// never written).
    fn write_chunk(
        &self,
        w: &mut Worker,
        layout: &Layout,
        split_locks: &HashMap<usize, Mutex<()>>,
        k: usize,
        (id, chunk): (u64, Option<&ChunkRecord>),
        data: &[u8],
    ) -> Result<()> {
        let root = &self.root;
        for p in layout.pieces(k) {
            let Some(e) = self.entries.get(p.entry) else {
                continue;
            };
            let bytes = data
                .get(p.chunk_offset..p.chunk_offset + p.len)
                .unwrap_or_default();
            let d = piece_digest(chunk, data, p);
            w.tally.pieces.push((p.entry, id, d));
            if p.whole {
                if d != PieceDigest::Whole(e.digest.unwrap_or_default()) {
                    continue; // damaged: never written; reported by `conclude`
                }
                let fd =
                    (root.create(&e.path, &mut w.last_dir)).map_err(root.err(&e.path, "create"))?;
                let file = std::fs::File::from(fd);
                let written = if e.sparse {
                    file.set_len(e.size)
                        .and_then(|()| write_sparse(&file, bytes, 0))
                } else {
                    file.write_all_at(bytes, 0)
                };
                written.map_err(root.err(&e.path, "write"))?;
                (self.meta.apply_meta(&file.into(), e))
                    .map_err(root.err(&e.path, "set metadata"))?;
                w.files += 1;
            } else {
                let _turn = split_locks
                    .get(&p.entry)
                    .map(|m| m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
                let split = self.split.lock().unwrap_or_else(|p| p.into_inner());
                let fd = match split.get(&p.entry) {
                    Some(staged) => root.open_staged(staged),
                    None => Err(std::io::Error::other("not staged")),
                };
                drop(split);
                let file = std::fs::File::from(fd.map_err(root.err(&e.path, "open (staged)"))?);
                let written = if e.sparse {
                    write_sparse(&file, bytes, p.file_offset)
                } else {
                    file.write_all_at(bytes, p.file_offset)
                };
                written.map_err(root.err(&e.path, "write"))?;
            }
            w.bytes += bytes.len() as u64;
        }
        Ok(())
    }

    /// 4. Split files: metadata once complete, given on the descriptor of the staged
    ///    file, then named; a damaged one is removed, never named. Returns how many
    ///    were completed.
    fn complete_split_files(&self, damaged: &BTreeMap<usize, String>) -> Result<u64> {
        let root = &self.root;
        let mut files = 0;
        let mut split = std::mem::take(&mut *self.split.lock().unwrap_or_else(|p| p.into_inner()));
        for &i in self.selected {
            let (Some(e), Some(staged)) = (self.entries.get(i), split.remove(&i)) else {
                continue;
            };
            if damaged.contains_key(&i) {
                root.discard(staged)
                    .map_err(root.err(&e.path, "remove (staged)"))?;
                continue;
            }
            let fd = root
                .open_staged(&staged)
                .map_err(root.err(&e.path, "open (staged)"))?;
            (self.meta.apply_meta(&fd, e)).map_err(root.err(&e.path, "set metadata"))?;
            drop(fd);
            root.publish(staged, &e.path)
                .map_err(root.err(&e.path, "rename into place"))?;
            files += 1;
        }
        Ok(files)
    }

    /// 5. Hard links, once the files they name are complete. A link to a damaged
    ///    file (not written) is not made either, and is named as damaged with it.
    fn hardlinks(&self, damaged: &mut BTreeMap<usize, String>) -> Result<u64> {
        let bad: std::collections::HashSet<&[u8]> = (damaged.keys())
            .filter_map(|&i| self.entries.get(i))
            .map(|e| e.path.as_slice())
            .collect();
        let mut links = 0;
        let mut also = Vec::new();
        for &i in self.selected {
            let Some(e) = self.entries.get(i) else {
                continue;
            };
            if let (EntryKind::Hardlink, Some(target)) = (e.kind, &e.link_target) {
                if bad.contains(target.as_slice()) {
                    let shown = String::from_utf8_lossy(target);
                    also.push((i, format!("hard link to {shown}, which is damaged")));
                    continue;
                }
                (self.root.hardlink(target, &e.path))
                    .map_err(self.root.err(&e.path, "hard link"))?;
                links += 1;
            }
        }
        damaged.extend(also);
        Ok(links)
    }

    /// 6. Fifos always; device nodes only when asked (by default: as root). Returns
    ///    the nodes made and the device nodes skipped.
    fn specials(&self) -> Result<(u64, u64)> {
        use rustix::fs::FileType;
        let (mut made, mut skipped) = (0, 0);
        for e in self.each() {
            let node = match e.kind {
                EntryKind::Fifo => FileType::Fifo,
                EntryKind::CharDevice | EntryKind::BlockDevice if !self.opts.devices => {
                    skipped += 1;
                    continue;
                }
                EntryKind::CharDevice => FileType::CharacterDevice,
                EntryKind::BlockDevice => FileType::BlockDevice,
                _ => continue,
            };
            let (owner, mode) = (self.meta.owner(e), self.meta.mode(e));
            (self
                .root
                .mknod(&e.path, node, e.rdev.unwrap_or(0), owner, mode, e.mtime_ns))
            .map_err(self.root.err(&e.path, "mknod"))?;
            made += 1;
        }
        Ok((made, skipped))
    }

    /// 7. Symlinks, after all file data, so nothing is written through one.
    fn symlinks(&self) -> Result<u64> {
        let root = &self.root;
        let mut links = 0;
        for e in self.each() {
            let (EntryKind::Symlink, Some(target)) = (e.kind, &e.link_target) else {
                continue;
            };
            (root.symlink(&e.path, target, self.meta.owner(e), e.mtime_ns))
                .map_err(root.err(&e.path, "symlink"))?;
            self.meta.xattrs_of(e).not_on_symlink();
            links += 1;
        }
        Ok(links)
    }

    /// 8. Directory owners, modes and mtimes, after their contents, deepest first (a
    ///    directory made unwritable must not stop its subdirectories getting theirs),
    ///    each on the directory made (or, with `overwrite_dirs`, found) in step 1 and
    ///    no other. A directory that existed already keeps its own, by default.
    fn directory_metadata(&self) -> Result<u64> {
        let root = &self.root;
        let made = std::mem::take(&mut *self.dirs.lock().unwrap_or_else(|p| p.into_inner()));
        let mut dirs: Vec<&Entry> = (self.each())
            .filter(|e| e.kind == EntryKind::Dir && made.contains_key(e.path.as_slice()))
            .collect();
        dirs.sort_by_key(|e| std::cmp::Reverse(e.path.iter().filter(|&&b| b == b'/').count()));
        for e in &dirs {
            let Some(&dir) = made.get(e.path.as_slice()) else {
                continue;
            };
            let fd = (root.open_dir_checked(&e.path, dir))
                .map_err(root.err(&e.path, "open directory"))?;
            (self.meta.apply_meta(&fd, e)).map_err(root.err(&e.path, "set metadata"))?;
        }
        Ok(dirs.len() as u64)
    }
}

/// Writes `bytes` at `offset` of a file already sized to its full length, skipping the
/// 4 KiB blocks (on the file's own 4 KiB grid) that are all zeros, so they stay holes.
fn write_sparse(file: &std::fs::File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    const BLOCK: u64 = 4096;
    let mut run: Option<usize> = None;
    let mut i = 0usize;
    while i < bytes.len() {
        let pos = offset + i as u64;
        let end = (((pos / BLOCK + 1) * BLOCK - offset) as usize).min(bytes.len());
        let zero = bytes[i..end].iter().all(|&b| b == 0);
        match (zero, run) {
            (false, None) => run = Some(i),
            (true, Some(start)) => {
                file.write_all_at(&bytes[start..i], offset + start as u64)?;
                run = None;
            }
            _ => {}
        }
        i = end;
    }
    if let Some(start) = run {
        file.write_all_at(&bytes[start..], offset + start as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ReaderSize;
    use crate::format::chunk::{ChunkRecord, Codec};
    use crate::read::visit::threads_within;

    #[test]
    fn threads_fit_the_memory_budget() {
        let chunk = |raw_len: u64, stored_len: u64, codec| ChunkRecord {
            offset: 0,
            stored_len,
            raw_len,
            codec,
            digest: [0; 32],
            subtree_at: None,
        };
        let four = [
            chunk(4 << 20, 1 << 20, Codec::Zstd),
            chunk(2 << 20, 2 << 20, Codec::Stored),
        ];
        // A 2 MiB blob, 4 MiB decoded and 128 KiB per thread: 41 fit in 256 MiB.
        let size = ReaderSize::of(&four);
        assert_eq!(size.bytes(), (6 << 20) + (128 << 10));
        assert_eq!(threads_within(256 << 20, 64, size), 41);
        assert_eq!(threads_within(256 << 20, 8, size), 8);
        assert_eq!(threads_within(1 << 20, 8, size), 1);
        assert_eq!(threads_within(256 << 20, 4, ReaderSize::of(&[])), 4);
    }
}
