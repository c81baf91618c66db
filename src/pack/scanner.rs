//! The scanner: walks a directory tree in a stable order (depth first, names sorted
//! bytewise, a directory before its contents), or takes a list of paths under a root,
//! and reports each entry with its lstat metadata. Symlinks are recorded, never
//! followed, at any component: every directory is opened beneath the root's
//! descriptor, and entries are read through it. A file with several links is recorded
//! once; its other names become hard-link entries pointing at the first. Owners are
//! recorded by id and by name.

use super::lister::{Found, Lister, Meta, Rules, Warning, in_walk_order, time_ns, vanished};
use super::root::Root;
use super::root::full_path;
use super::unreadable::Skipped;
use crate::error::{Error, Result};
use crate::format::entry::{Entry, EntryKind};
use crate::resolve::Blocked;
use crate::stages::Clock;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What the walk left out: warnings (vanished entries, sockets), and the entries it
/// could not read.
#[derive(Debug, Default)]
pub struct Notes {
    /// The warning lines.
    pub warnings: Vec<Warning>,
    /// The entries left out because they could not be read.
    pub skipped: Vec<Skipped>,
}

/// What both walks share: the root, the rules, and what has been seen so far.
struct Scan<'a> {
    root: &'a Path,
    /// (device, inode) never to report: the archive being written.
    exclude: Option<(u64, u64)>,
    rules: Rules,
    names: crate::owner::Names,
    /// First path seen of each (device, inode) with more than one link.
    linked: HashMap<(u64, u64), Vec<u8>>,
    notes: Notes,
}

/// Walks `root`, calling `visit` with each entry (location and digest unset) in order.
/// `exclude` is a (dev, inode) pair never to report (the archive being written);
/// paths that `skip` matches are left out, and excluded directories not descended.
/// Entries that vanish during the walk, and sockets, are skipped with a warning, and
/// so are entries that cannot be read if `rules` say so (a directory that cannot be
/// listed is archived, its contents are not). Directories are listed ahead on
/// `threads` lister threads; `clock` hears of the time spent waiting for them. Returns
/// what was left out and the listers' clocks. A directory that is a symlink, or no
/// directory, by the time it is listed is recorded as the directory its parent's
/// listing saw, with a warning, and nothing under it.
pub fn walk(
    root: &Arc<Root>,
    exclude: Option<(u64, u64)>,
    skip: &ignore::gitignore::Gitignore,
    rules: Rules,
    threads: usize,
    clock: &mut Clock,
    mut visit: impl FnMut(Entry) -> Result<()>,
) -> Result<(Notes, Vec<Clock>)> {
    let mut scan = Scan::new(root, exclude, rules)?;
    let lister = Lister::start(root, exclude, skip, rules, threads)?;
    let take = |scan: &mut Scan, clock: &mut Clock, rel: &[u8]| -> Result<Vec<Found>> {
        clock.work("scan");
        let listing = lister.take(rel);
        clock.wait("listing");
        let listing = listing?;
        scan.notes.warnings.extend(listing.warnings);
        scan.notes.skipped.extend(listing.skipped);
        // Ask for the subdirectories now: they are listed while this one is walked.
        for f in listing.entries.iter().rev().filter(|f| f.meta.is_dir()) {
            lister.request(&f.path);
        }
        Ok(listing.entries)
    };
    // Stack of directories still to walk, each with its entries in reverse order.
    let mut stack: Vec<Vec<Found>> = vec![take(&mut scan, clock, b"")?];
    while let Some(top) = stack.last_mut() {
        let Some(found) = top.pop() else {
            stack.pop();
            continue;
        };
        let Some(entry) = scan.describe(found)? else {
            continue;
        };
        let descend = (entry.kind == EntryKind::Dir).then(|| entry.path.clone());
        visit(entry)?;
        if let Some(rel) = descend {
            stack.push(take(&mut scan, clock, &rel)?);
        }
    }
    Ok((scan.notes, lister.finish()))
}

/// Reports the entries at `paths` under `root`, and nothing else: a listed directory
/// is recorded but not descended (a list from `find` names its contents too). Paths
/// are relative to `root`, or absolute and beneath it; `.` components and repeated
/// slashes are dropped, `..` is refused, and the root itself is not an entry. Entries
/// come in the walk's order whatever the list's order, each once. A listed path that
/// does not exist, or that lies under a symlink or a non-directory (nothing is
/// followed: the directories above each path are opened beneath the root without
/// following a symlink), is an error naming it; `exclude`, `skip` and `rules` apply
/// as in [`walk`] (a path under an excluded directory is left out too).
pub fn walk_list(
    root: &Root,
    paths: &[Vec<u8>],
    exclude: Option<(u64, u64)>,
    skip: &ignore::gitignore::Gitignore,
    rules: Rules,
    mut visit: impl FnMut(Entry) -> Result<()>,
) -> Result<Notes> {
    let mut scan = Scan::new(root, exclude, rules)?;
    super::lister::confined_xattrs(root, rules)?;
    let bases = Bases::new(&root.path);
    let mut rels: Vec<Vec<u8>> = Vec::with_capacity(paths.len());
    for p in paths {
        if let Some(rel) = bases.relative(p)? {
            rels.push(rel);
        }
    }
    rels.sort_unstable_by(|a, b| in_walk_order(a, b));
    rels.dedup();
    let mut parents = Parents::new(root);
    for rel in rels {
        let relative = Path::new(OsStr::from_bytes(&rel));
        let full = root.path.join(relative);
        let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (
                rel.get(..i).unwrap_or_default(),
                rel.get(i + 1..).unwrap_or_default(),
            ),
            None => (&b""[..], &rel[..]),
        };
        let name = OsStr::from_bytes(name);
        let under_excluded = |p: &[u8]| {
            let p = Path::new(OsStr::from_bytes(p));
            !p.as_os_str().is_empty() && skip.matched_path_or_any_parents(p, true).is_ignore()
        };
        if !skip.is_empty() && under_excluded(parent) {
            continue;
        }
        let dir = match parents.open(parent) {
            Ok(dir) => dir,
            Err(e) if rules.on_unreadable.skips(&e) => {
                scan.notes.skipped.push(Skipped::entry(&full, "stat", &e));
                continue;
            }
            Err(e) => return Err(refused(root, &rel, parent, e)),
        };
        let meta = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Meta::of(&st),
            Err(rustix::io::Errno::NOENT) => {
                return Err(Error::Input {
                    path: full,
                    problem: "listed, but does not exist".into(),
                });
            }
            Err(e) => {
                let e = io::Error::from(e);
                if rules.on_unreadable.skips(&e) {
                    scan.notes.skipped.push(Skipped::entry(&full, "stat", &e));
                    continue;
                }
                return Err(Error::io(&full, "stat", e));
            }
        };
        if scan.exclude == Some((meta.dev, meta.ino)) {
            continue;
        }
        if !skip.is_empty()
            && skip
                .matched_path_or_any_parents(relative, meta.is_dir())
                .is_ignore()
        {
            continue;
        }
        let link = (meta.kind == FileType::Symlink).then(|| super::lister::read_link(dir, name));
        let xattrs = super::lister::read_xattrs(dir, name, meta.kind, scan.rules.xattrs);
        let found = Found {
            path: rel,
            meta,
            link,
            xattrs,
        };
        if let Some(entry) = scan.describe(found)? {
            visit(entry)?;
        }
    }
    Ok(scan.notes)
}

/// The error for listed path `rel`, whose directory `parent` failed to open with `e`:
/// missing, or under a symlink or a non-directory (named), which is not followed.
fn refused(root: &Root, rel: &[u8], parent: &[u8], e: io::Error) -> Error {
    let full = full_path(&root.path, rel);
    let code = e.raw_os_error();
    if !matches!(
        code,
        Some(libc::ENOENT | libc::ELOOP | libc::EXDEV | libc::ENOTDIR)
    ) {
        return Error::io(&full, "open the directory above", e);
    }
    let problem = match crate::resolve::obstacle(&root.fd, parent) {
        Some(o) if o.what == Blocked::Missing => "listed, but does not exist".to_string(),
        Some(o) => format!(
            "listed, but {} above it is {}",
            full_path(&root.path, &o.at).display(),
            o.what
        ),
        None if code == Some(libc::ENOENT) => "listed, but does not exist".to_string(),
        None => format!("listed, but a directory above it could not be opened: {e}"),
    };
    Error::Input {
        path: full,
        problem,
    }
}

/// The directories above the listed paths, opened (`O_PATH`) beneath the root without
/// following a symlink: those of the path last opened, from the root down, are kept,
/// so a directory is opened once for a run of paths beneath it (at most once per
/// listed path, for paths in walk order).
struct Parents<'a> {
    root: &'a Root,
    /// Each open directory's path relative to the root, deepest last; each is beneath
    /// the one before.
    open: Vec<(Vec<u8>, OwnedFd)>,
}

impl<'a> Parents<'a> {
    fn new(root: &'a Root) -> Parents<'a> {
        Parents {
            root,
            open: Vec::new(),
        }
    }

    /// The directory at `rel` (the root when empty), opened beneath the root.
    fn open(&mut self, rel: &[u8]) -> io::Result<BorrowedFd<'_>> {
        if rel.is_empty() {
            return Ok(self.root.fd.as_fd());
        }
        while let Some((top, _)) = self.open.last() {
            let beneath = rel.starts_with(top) && matches!(rel.get(top.len()), None | Some(b'/'));
            if beneath {
                break;
            }
            self.open.pop();
        }
        let (base, rest) = match self.open.last() {
            Some((top, _)) if top.len() == rel.len() => (None, &b""[..]),
            Some((top, fd)) => (
                Some(fd.as_fd()),
                rel.get(top.len() + 1..).unwrap_or_default(),
            ),
            None => (Some(self.root.fd.as_fd()), rel),
        };
        if let Some(base) = base {
            let flags = OFlags::PATH | OFlags::DIRECTORY;
            let fd = crate::resolve::beneath(base, rest, flags, Mode::empty())?;
            self.open.push((rel.to_vec(), fd));
        }
        match self.open.last() {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
}

/// The forms of the root that an absolute listed path may start with: as given (made
/// absolute) and with symlinks resolved.
struct Bases {
    given: Option<PathBuf>,
    resolved: Option<PathBuf>,
}

impl Bases {
    fn new(root: &Path) -> Bases {
        Bases {
            given: std::path::absolute(root).ok(),
            resolved: fs::canonicalize(root).ok(),
        }
    }

    /// The archive path of listed path `raw`, or `None` for the root itself.
    fn relative(&self, raw: &[u8]) -> Result<Option<Vec<u8>>> {
        let path = Path::new(OsStr::from_bytes(raw));
        let bad = |problem: &str| Error::Input {
            path: path.into(),
            problem: problem.into(),
        };
        let rest = if path.is_absolute() {
            [&self.given, &self.resolved]
                .into_iter()
                .flatten()
                .find_map(|base| path.strip_prefix(base).ok())
                .ok_or_else(|| bad("listed, but not beneath the directory being packed"))?
        } else {
            path
        };
        let mut rel = Vec::with_capacity(raw.len());
        for c in rest.components() {
            match c {
                Component::Normal(name) => {
                    if !rel.is_empty() {
                        rel.push(b'/');
                    }
                    rel.extend_from_slice(name.as_bytes());
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(bad("listed with a '..' component")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(bad("listed, but not beneath the directory being packed"));
                }
            }
        }
        Ok((!rel.is_empty()).then_some(rel))
    }
}

impl<'a> Scan<'a> {
    fn new(root: &'a Root, exclude: Option<(u64, u64)>, rules: Rules) -> Result<Scan<'a>> {
        let st =
            rustix::fs::fstat(&root.fd).map_err(|e| Error::io(&root.path, "stat", e.into()))?;
        if !Meta::of(&st).is_dir() {
            return Err(Error::Input {
                path: root.path.clone(),
                problem: "not a directory".into(),
            });
        }
        Ok(Scan {
            root: &root.path,
            exclude,
            rules,
            names: crate::owner::Names::default(),
            linked: HashMap::new(),
            notes: Notes::default(),
        })
    }

    fn vanished(&mut self, full: &Path) {
        self.notes.warnings.push(vanished(full));
    }

    /// The kind of entry `meta` describes and its link target (a hard link's: the first
    /// path seen of its inode), or `None` (with a warning) for a socket or a symlink
    /// that vanished.
    fn kind(
        &mut self,
        rel: &[u8],
        meta: &Meta,
        link: Option<io::Result<Vec<u8>>>,
        full: &Path,
    ) -> Result<Option<(EntryKind, Option<Vec<u8>>)>> {
        let kind = match meta.kind {
            FileType::Directory => (EntryKind::Dir, None),
            FileType::Symlink => {
                let unread = || Err(io::Error::other("the walk did not read its target"));
                match link.unwrap_or_else(unread) {
                    Ok(t) => (EntryKind::Symlink, Some(t)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.vanished(full);
                        return Ok(None);
                    }
                    // Replaced by something else between its stat and readlink.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        (self.notes.warnings).push(format!(
                            "{}: a symlink when stat'ed, then replaced during the walk, skipped",
                            full.display()
                        ));
                        return Ok(None);
                    }
                    Err(e) if self.rules.on_unreadable.skips(&e) => {
                        self.notes
                            .skipped
                            .push(Skipped::entry(full, "read symlink", &e));
                        return Ok(None);
                    }
                    Err(e) => return Err(Error::io(full, "readlink", e)),
                }
            }
            FileType::RegularFile if meta.nlink > 1 => {
                match self.linked.entry((meta.dev, meta.ino)) {
                    std::collections::hash_map::Entry::Occupied(first) => {
                        (EntryKind::Hardlink, Some(first.get().clone()))
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(rel.to_vec());
                        (EntryKind::File, None)
                    }
                }
            }
            FileType::RegularFile => (EntryKind::File, None),
            FileType::Fifo => (EntryKind::Fifo, None),
            FileType::CharacterDevice => (EntryKind::CharDevice, None),
            FileType::BlockDevice => (EntryKind::BlockDevice, None),
            _ => {
                (self.notes.warnings).push(format!("{}: socket not archived", full.display()));
                return Ok(None);
            }
        };
        Ok(Some(kind))
    }
    /// The entry for what the lister found, or `None` (with a warning) for a socket,
    /// something that vanished, or something that cannot be read that `rules` leave out.
    fn describe(&mut self, found: Found) -> Result<Option<Entry>> {
        let Found {
            path: rel,
            meta,
            link,
            xattrs,
        } = found;
        let full = self.root.join(OsStr::from_bytes(&rel));
        let Some((kind, link_target)) = self.kind(&rel, &meta, link, &full)? else {
            return Ok(None);
        };
        let xattrs = match xattrs {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.vanished(&full);
                return Ok(None);
            }
            Err(e) if self.rules.on_unreadable.skips(&e) => {
                (self.notes.skipped).push(Skipped::entry(&full, "read extended attributes", &e));
                return Ok(None);
            }
            Err(e) => return Err(Error::io(&full, "read extended attributes", e)),
        };
        let mtime_ns = time_ns(meta.mtime.0, meta.mtime.1).unwrap_or_else(|| {
            let clamped = if meta.mtime.0 < 0 { i64::MIN } else { i64::MAX };
            (self.notes.warnings).push(format!(
                "{}: mtime {} s since the epoch is outside what the format holds \
                 (1677-09-21 to 2262-04-11); archived as {}",
                full.display(),
                meta.mtime.0,
                if clamped < 0 {
                    "1677-09-21"
                } else {
                    "2262-04-11"
                }
            ));
            clamped
        });
        Ok(Some(Entry {
            path: rel,
            kind,
            mode: meta.mode,
            mtime_ns,
            uid: meta.uid,
            gid: meta.gid,
            user: self.names.user(meta.uid),
            group: self.names.group(meta.gid),
            size: if kind == EntryKind::File {
                meta.size
            } else {
                0
            },
            location: None,
            digest: None,
            link_target,
            xattrs,
            // Fewer blocks than bytes: the file has holes (no extra syscall to know).
            sparse: kind == EntryKind::File && meta.blocks.saturating_mul(512) < meta.size,
            rdev: matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice)
                .then_some(meta.rdev),
            // A ctime out of range is left out: it then counts as not comparable.
            ctime_ns: time_ns(meta.ctime.0, meta.ctime.1),
            inode: Some((meta.dev, meta.ino)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::unreadable::OnUnreadable;
    use crate::xattr::XattrPolicy;

    #[test]
    fn walk_order_puts_a_directory_right_before_its_contents() {
        let mut v: Vec<&[u8]> = vec![b"a-b", b"a/b", b"a", b"a/b/c", b"b", b"a.txt"];
        v.sort_by(|a, b| in_walk_order(a, b));
        assert_eq!(v, [&b"a"[..], b"a/b", b"a/b/c", b"a-b", b"a.txt", b"b"]);
    }

    #[test]
    fn walk_order_holds_beyond_the_listers_read_ahead() {
        let root = std::env::temp_dir().join(format!("znippy-lister-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        // More subdirectories in one directory than the listers request ahead, some
        // nested, so some are requested only when the walk reaches them.
        let dirs = super::super::lister::AHEAD + 100;
        for i in 0..dirs {
            let d = root.join(format!("d{i:05}"));
            fs::create_dir_all(d.join("sub")).unwrap();
            fs::write(d.join("sub/f"), b"x").unwrap();
        }
        let skip = ignore::gitignore::Gitignore::empty();
        let root = Arc::new(Root::open(&root).unwrap());
        for threads in [1, 3] {
            let mut seen = Vec::new();
            let mut clock = Clock::start();
            let rules = Rules {
                xattrs: XattrPolicy::User,
                on_unreadable: OnUnreadable::Fail,
            };
            let (notes, clocks) = walk(&root, None, &skip, rules, threads, &mut clock, |e| {
                seen.push(e.path);
                Ok(())
            })
            .unwrap();
            assert!(notes.warnings.is_empty() && notes.skipped.is_empty());
            assert_eq!(clocks.len(), threads);
            assert_eq!(seen.len(), dirs * 3);
            let mut sorted = seen.clone();
            sorted.sort_by(|a, b| in_walk_order(a, b));
            assert!(
                seen == sorted,
                "entries out of walk order with {threads} listers"
            );
            assert_eq!(
                seen[..3],
                [
                    b"d00000".to_vec(),
                    b"d00000/sub".to_vec(),
                    b"d00000/sub/f".to_vec()
                ]
            );
        }
        fs::remove_dir_all(&root.path).unwrap();
    }

    #[test]
    fn listed_paths_become_archive_paths_beneath_the_root() {
        let bases = Bases {
            given: Some("/srv/data".into()),
            resolved: Some("/mnt/disk/data".into()),
        };
        let rel = |p: &str| bases.relative(p.as_bytes());
        assert_eq!(rel("./a//b/./c/").unwrap(), Some(b"a/b/c".to_vec()));
        assert_eq!(rel("/srv/data/x/y").unwrap(), Some(b"x/y".to_vec()));
        assert_eq!(rel("/mnt/disk/data/x").unwrap(), Some(b"x".to_vec()));
        assert_eq!(rel(".").unwrap(), None);
        assert_eq!(rel("/srv/data").unwrap(), None);
        for bad in ["/srv/database/x", "/etc/passwd", "a/../../b", "../x"] {
            let e = rel(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
