//! The lister: reads directories ahead of the walk on a few threads. For every entry of
//! a directory it applies `--exclude` and gathers what the scanner needs (lstat
//! metadata, a symlink's target, extended attributes), so the per-entry system calls
//! and matching run in parallel while the scanner, on one thread, still reports
//! entries in exactly its order.
//!
//! Every directory is opened beneath the pack root's descriptor without following a
//! symlink at any component ([`crate::resolve::beneath`]), and its entries are read
//! through that descriptor only (`statat`, `readlinkat`, xattrs through
//! `/proc/self/fd`): a directory swapped for a symlink by another user during the walk
//! is reported, never followed.
//!
//! The scanner requests the subdirectories of each listing it takes. Threads always
//! list the pending directory that comes first in the walk's order, which is the one
//! the scanner will need soonest. At most [`AHEAD`] directories are requested ahead;
//! one beyond that is requested when the scanner reaches it.

use super::root::Root;
use super::root::full_path;
use super::unreadable::{OnUnreadable, Skipped};
use crate::error::{Error, Result};
use crate::resolve::Blocked;
use crate::stages::Clock;
use crate::xattr::{self, Xattr, XattrPolicy};
use ignore::gitignore::Gitignore;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, Stat};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Directories listed ahead of the scanner at most (requested and not yet taken).
pub const AHEAD: usize = 1024;
/// Most lister threads.
pub const THREADS_MAX: usize = 8;
/// Bytes of directory entries read by one getdents call.
const DIRENT_BUFFER: usize = 32 << 10;

/// One entry of a listing, with what the scanner needs to describe it.
pub struct Found {
    /// Path relative to the root.
    pub path: Vec<u8>,
    /// Its lstat metadata.
    pub meta: Meta,
    /// A symlink's target (read at listing time).
    pub link: Option<io::Result<Vec<u8>>>,
    /// Its extended attributes under the policy.
    pub xattrs: io::Result<Vec<Xattr>>,
}

/// An entry's lstat metadata, as the walk uses it (from `statat` with
/// `AT_SYMLINK_NOFOLLOW`).
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// Its type.
    pub kind: FileType,
    /// `st_mode`: permission bits and type.
    pub mode: u32,
    /// Device and inode.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device node.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Modification time: seconds since the epoch, and nanoseconds.
    pub mtime: (i64, i64),
    /// Status change time: seconds since the epoch, and nanoseconds.
    pub ctime: (i64, i64),
}

impl Meta {
    /// The metadata `st` holds.
    #[allow(clippy::unnecessary_cast)] // `Stat`'s field types differ between targets.
    pub fn of(st: &Stat) -> Meta {
        Meta {
            kind: FileType::from_raw_mode(st.st_mode),
            mode: st.st_mode as u32,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u64,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }
}

/// A directory's entries, sorted in reverse name order (so `pop` yields walk order),
/// with the warnings for those that vanished while listed, and those left out because
/// they (or the directory) could not be read.
#[derive(Default)]
pub struct Listing {
    /// The entries.
    pub entries: Vec<Found>,
    /// Entries (or the directory itself) that vanished, as warning lines.
    pub warnings: Vec<String>,
    /// Entries that could not be stat'ed, or the directory, that could not be listed.
    pub skipped: Vec<Skipped>,
}

/// A path ordered as the walk visits it.
#[derive(PartialEq, Eq)]
struct InWalkOrder(Vec<u8>);

impl Ord for InWalkOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        in_walk_order(&self.0, &other.0)
    }
}

impl PartialOrd for InWalkOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
struct State {
    pending: BTreeSet<InWalkOrder>,
    done: HashMap<Vec<u8>, Result<Listing>>,
    /// Being listed by a thread now.
    listing: HashSet<Vec<u8>>,
    /// Requested and not yet taken by the scanner.
    ahead: usize,
    closed: bool,
}

struct Shared {
    root: Arc<Root>,
    /// (device, inode) never to list: the archive being written.
    exclude: Option<(u64, u64)>,
    rules: Rules,
    /// `--exclude` patterns: matching entries are left out of listings.
    skip: Gitignore,
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The lister threads and what they have listed.
pub struct Lister {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Clock>>,
}

impl Lister {
    /// Starts `threads` threads listing directories under `root`, leaving out the
    /// entries `skip` matches, and reading each entry as `rules` say. Fails if rules
    /// ask for extended attributes and they cannot be read confined to the walk
    /// ([`xattr::check_proc`]).
    pub fn start(
        root: &Arc<Root>,
        exclude: Option<(u64, u64)>,
        skip: &Gitignore,
        rules: Rules,
        threads: usize,
    ) -> Result<Lister> {
        confined_xattrs(root, rules)?;
        let shared = Arc::new(Shared {
            root: root.clone(),
            exclude,
            rules,
            skip: skip.clone(),
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let mut lister = Lister {
            shared,
            threads: Vec::new(),
        };
        for i in 0..threads.clamp(1, THREADS_MAX) {
            let shared = lister.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("znippy-list-{i}"))
                .spawn(move || run(&shared))
                .map_err(|e| Error::io(&root.path, "spawn lister", e))?;
            lister.threads.push(handle);
        }
        Ok(lister)
    }

    /// Asks for the directory at `rel` to be listed, if fewer than [`AHEAD`] are.
    pub fn request(&self, rel: &[u8]) {
        let mut state = self.shared.lock();
        if state.ahead < AHEAD && state.pending.insert(InWalkOrder(rel.to_vec())) {
            state.ahead += 1;
            self.shared.work.notify_one();
        }
    }

    /// The listing of `rel` (relative to the root; empty for the root), waiting for it.
    pub fn take(&self, rel: &[u8]) -> Result<Listing> {
        let mut state = self.shared.lock();
        let key = InWalkOrder(rel.to_vec());
        let asked = state.done.contains_key(rel)
            || state.listing.contains(rel)
            || state.pending.contains(&key);
        if !asked {
            // Beyond the read-ahead when its parent was taken: ask now.
            state.pending.insert(key);
            state.ahead += 1;
            self.shared.work.notify_one();
        }
        loop {
            if let Some(listing) = state.done.remove(rel) {
                state.ahead = state.ahead.saturating_sub(1);
                return listing;
            }
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops the threads and returns where their time went.
    pub fn finish(mut self) -> Vec<Clock> {
        self.stop();
        self.threads
            .drain(..)
            .filter_map(|h| h.join().ok())
            .collect()
    }

    fn stop(&self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
    }
}

impl Drop for Lister {
    fn drop(&mut self) {
        self.stop();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// A lister thread: lists the first pending directory in walk order until closed.
fn run(shared: &Shared) -> Clock {
    let mut clock = Clock::start();
    loop {
        let rel = {
            let mut state = shared.lock();
            loop {
                if state.closed {
                    clock.wait("no_directory");
                    return clock;
                }
                if let Some(InWalkOrder(rel)) = state.pending.pop_first() {
                    state.listing.insert(rel.clone());
                    break rel;
                }
                state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        clock.wait("no_directory");
        let listing = list(shared, &rel);
        clock.work("list");
        let mut state = shared.lock();
        state.listing.remove(&rel);
        state.done.insert(rel, listing);
        shared.done.notify_all();
    }
}

/// Fails, naming the problem, if `rules` ask for extended attributes and /proc cannot
/// give them confined to the directories the walk holds open.
pub fn confined_xattrs(root: &Root, rules: Rules) -> Result<()> {
    if rules.xattrs == xattr::XattrPolicy::None {
        return Ok(());
    }
    xattr::check_proc(root.fd.as_fd()).map_err(|why| Error::Input {
        path: root.path.clone(),
        problem: format!(
            "extended attributes are read through /proc/self/fd, confined to each \
             directory the walk holds open, and that does not work here ({why}); \
             mount /proc, or pack with --xattrs none"
        ),
    })
}

/// Lists the directory at `rel`, with each entry's metadata, symlink target and
/// extended attributes. The directory is opened beneath the root without following a
/// symlink, and its entries read through that descriptor. A directory below the root
/// that is a symlink now, or no directory, is reported and not listed; one that cannot
/// be listed, and an entry that cannot be stat'ed, are left out with a record if the
/// rules say so.
fn list(shared: &Shared, rel: &[u8]) -> Result<Listing> {
    let shown = full_path(&shared.root.path, rel);
    let mut listing = Listing::default();
    let unreadable = shared.rules.on_unreadable;
    let fd = match open_dir(&shared.root.fd, rel) {
        Ok(fd) => fd,
        Err(e) if rel.is_empty() => return Err(Error::io(&shown, "open directory", e)),
        Err(e) => {
            if let Some(why) = changed(&shared.root, rel, &e) {
                listing.warnings.push(why);
                return Ok(listing);
            }
            if unreadable.skips(&e) {
                listing.skipped.push(Skipped::contents(&shown, &e));
                return Ok(listing);
            }
            return Err(Error::io(&shown, "open directory", e));
        }
    };
    let read_err = |e: rustix::io::Errno| Error::io(&shown, "read directory", e.into());
    // glibc's readdir buffer: as many getdents calls as `std::fs::read_dir` makes.
    let mut buf = Vec::with_capacity(DIRENT_BUFFER);
    let mut dir = RawDir::new(&fd, buf.spare_capacity_mut());
    while let Some(de) = dir.next() {
        let de = de.map_err(read_err)?;
        let name = de.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        if let Some(found) = entry(shared, rel, fd.as_fd(), name, &mut listing)? {
            listing.entries.push(found);
        }
    }
    listing.entries.sort_unstable_by(|a, b| b.path.cmp(&a.path));
    listing.skipped.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}

/// Opens the directory at `rel` beneath the root for listing (the root itself when
/// `rel` is empty), following no symlink.
fn open_dir(root: &OwnedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    if rel.is_empty() {
        return Ok(rustix::fs::openat(root, c".", flags, Mode::empty())?);
    }
    crate::resolve::beneath(root, rel, flags, Mode::empty())
}

/// The warning for the directory at `rel`, which failed to open with `e`, when that is
/// because it vanished, or it (or a directory above it) is a symlink or no directory
/// now: its contents are not archived, and nothing is followed. `None` for any other
/// failure.
fn changed(root: &Root, rel: &[u8], e: &io::Error) -> Option<String> {
    let shown = full_path(&root.path, rel);
    let code = e.raw_os_error();
    if code == Some(libc::ENOENT) {
        return Some(vanished(&shown));
    }
    if !matches!(code, Some(libc::ELOOP | libc::EXDEV | libc::ENOTDIR)) {
        return None;
    }
    let Some(o) = crate::resolve::obstacle(&root.fd, rel) else {
        // Changed again since the open: what it was then is not known.
        return Some(format!(
            "{}: a directory when its parent was listed, not one when opened ({e}; it \
             changed again since): its contents are not archived",
            shown.display()
        ));
    };
    if o.what == Blocked::Missing {
        return Some(vanished(&shown));
    }
    let now = if o.at == rel {
        format!("is now {}", o.what)
    } else {
        let above = full_path(&root.path, &o.at);
        format!("{} above it is now {}", above.display(), o.what)
    };
    Some(format!(
        "{}: a directory when its parent was listed, {now}: its contents are not archived",
        shown.display()
    ))
}

/// What the scanner needs of entry `name` of the directory at `rel`, open as `dir`:
/// `None` when it vanished, is the archive being written, is excluded, or cannot be
/// stat'ed and the rules leave it out (with a warning or record in `listing`).
fn entry(
    shared: &Shared,
    rel: &[u8],
    dir: BorrowedFd<'_>,
    name: &CStr,
    listing: &mut Listing,
) -> Result<Option<Found>> {
    let name_os = OsStr::from_bytes(name.to_bytes());
    let path = join(rel, name_os);
    let shown = || full_path(&shared.root.path, &path);
    let meta = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Meta::of(&st),
        Err(rustix::io::Errno::NOENT) => {
            listing.warnings.push(vanished(&shown()));
            return Ok(None);
        }
        Err(e) => {
            let e = io::Error::from(e);
            if shared.rules.on_unreadable.skips(&e) {
                if !excluded(shared, &path, None) {
                    listing.skipped.push(Skipped::entry(&shown(), "stat", &e));
                }
                return Ok(None);
            }
            return Err(Error::io(shown(), "stat", e));
        }
    };
    if shared.exclude == Some((meta.dev, meta.ino)) || excluded(shared, &path, Some(meta.is_dir()))
    {
        return Ok(None);
    }
    Ok(Some(Found {
        link: (meta.kind == FileType::Symlink).then(|| read_link(dir, name)),
        xattrs: read_xattrs(dir, name_os, meta.kind, shared.rules.xattrs),
        path,
        meta,
    }))
}

/// The extended attributes of entry `name` (of type `kind`) of the directory open as
/// `dir`. A symlink has none: none are archived or restored on symlinks, and reading
/// them by name would take, when the name was swapped between the stat and the
/// listing, the attributes of the file that had it.
pub fn read_xattrs(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: FileType,
    policy: XattrPolicy,
) -> io::Result<Vec<Xattr>> {
    match kind {
        FileType::Symlink => Ok(Vec::new()),
        _ => xattr::read_at(dir, name, policy),
    }
}

/// The target of symlink `name` of the directory open as `dir`.
pub fn read_link(dir: BorrowedFd<'_>, name: impl rustix::path::Arg) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// The path of entry `name` of the directory at `rel`.
fn join(rel: &[u8], name: &OsStr) -> Vec<u8> {
    let mut path = Vec::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        path.extend_from_slice(rel);
        path.push(b'/');
    }
    path.extend_from_slice(name.as_bytes());
    path
}

/// Whether `--exclude` leaves out `path`, a directory or not as `dir` says (`None`: not
/// known, as for an entry that cannot be stat'ed: left out if either would be).
fn excluded(shared: &Shared, path: &[u8], dir: Option<bool>) -> bool {
    if shared.skip.is_empty() {
        return false;
    }
    let path = Path::new(OsStr::from_bytes(path));
    let ignored = |d: bool| shared.skip.matched(path, d).is_ignore();
    match dir {
        Some(d) => ignored(d),
        None => ignored(false) || ignored(true),
    }
}

/// Something the walk noticed and skipped, and why.
pub type Warning = String;

/// What the walk reads of each entry, and what it does with an entry it cannot read.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// The extended attributes to read.
    pub xattrs: XattrPolicy,
    /// An entry that cannot be stat'ed, a directory that cannot be listed, extended
    /// attributes that cannot be read: fail, or leave it out.
    pub on_unreadable: OnUnreadable,
}

/// Orders relative paths as the walk visits them: component by component, so that a
/// directory comes right before its contents (`a`, `a/b`, `a-b`).
pub fn in_walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// Nanoseconds since the epoch of a time in seconds and nanoseconds, if it fits in the
/// format's i64 (1677-09-21 to 2262-04-11).
pub fn time_ns(secs: i64, nsec: i64) -> Option<i64> {
    secs.checked_mul(1_000_000_000)?.checked_add(nsec)
}

/// The warning for an entry at `full` that vanished during the walk.
pub fn vanished(full: &Path) -> Warning {
    format!("{}: vanished during the walk, skipped", full.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::unreadable::OnUnreadable;
    use crate::xattr::XattrPolicy;

    /// What the lister gives for `rel` under `root`.
    fn listed(root: &Path, rel: &[u8]) -> Listing {
        let root = Arc::new(Root::open(root).unwrap());
        let rules = Rules {
            xattrs: XattrPolicy::User,
            on_unreadable: OnUnreadable::Fail,
        };
        let lister = Lister::start(&root, None, &Gitignore::empty(), rules, 1).unwrap();
        lister.take(rel).unwrap()
    }

    #[test]
    fn a_directory_that_is_a_symlink_or_no_directory_when_listed_is_reported_not_followed() {
        // The scanner asks for a directory its parent's listing saw; by then it may be
        // a symlink (swapped by another user) or something else.
        let tmp = std::env::temp_dir().join(format!("lister-swap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("root/d")).unwrap();
        std::fs::create_dir_all(tmp.join("outside/deeper")).unwrap();
        std::fs::write(tmp.join("outside/secret"), b"x").unwrap();
        std::fs::write(tmp.join("root/file"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.join("outside"), tmp.join("root/link")).unwrap();
        std::os::unix::fs::symlink(tmp.join("outside"), tmp.join("root/d/link")).unwrap();
        let root = tmp.join("root");
        let shown = |rel: &str| root.join(rel).display().to_string();
        for (rel, why) in [
            (
                "link",
                format!(
                    "{}: a directory when its parent was listed, is now a symlink",
                    shown("link")
                ),
            ),
            (
                "d/link",
                format!(
                    "{}: a directory when its parent was listed, is now a symlink",
                    shown("d/link")
                ),
            ),
            (
                "link/deeper",
                format!(
                    "{}: a directory when its parent was listed, {} above it is now a symlink",
                    shown("link/deeper"),
                    shown("link")
                ),
            ),
            (
                "file",
                format!(
                    "{}: a directory when its parent was listed, is now not a directory",
                    shown("file")
                ),
            ),
            (
                "gone",
                format!("{}: vanished during the walk", shown("gone")),
            ),
        ] {
            let l = listed(&root, rel.as_bytes());
            assert!(l.entries.is_empty() && l.skipped.is_empty(), "{rel}");
            assert_eq!(l.warnings.len(), 1, "{rel}: {:?}", l.warnings);
            assert!(l.warnings[0].starts_with(&why), "{rel}: {:?}", l.warnings);
        }
        let l = listed(&root, b"d");
        let names: Vec<_> = l.entries.iter().map(|f| f.path.clone()).collect();
        assert_eq!(names, [b"d/link".to_vec()]);
        assert_eq!(l.entries[0].meta.kind, FileType::Symlink);
        let target = l.entries[0].link.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(target, tmp.join("outside").as_os_str().as_bytes());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
