//! The lister: reads directories ahead of the walk on a few threads. For every entry of
//! a directory it applies `--exclude` and gathers what the scanner needs (lstat
//! metadata, a symlink's target, extended attributes), so the per-entry system calls
//! and matching run in parallel while the scanner, on one thread, still reports
//! entries in exactly its order.
//!
//! The scanner requests the subdirectories of each listing it takes. Threads always
//! list the pending directory that comes first in the walk's order, which is the one
//! the scanner will need soonest. At most [`AHEAD`] directories are requested ahead;
//! one beyond that is requested when the scanner reaches it.

use super::scanner::{Rules, in_walk_order, vanished};
use super::unreadable::Skipped;
use crate::error::{Error, Result};
use crate::stages::Clock;
use crate::xattr::{self, Xattr};
use ignore::gitignore::Gitignore;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Directories listed ahead of the scanner at most (requested and not yet taken).
pub const AHEAD: usize = 1024;
/// Most lister threads.
pub const THREADS_MAX: usize = 8;

/// One entry of a listing, with what the scanner needs to describe it.
pub struct Found {
    /// Path relative to the root.
    pub path: Vec<u8>,
    /// Its lstat metadata.
    pub meta: fs::Metadata,
    /// A symlink's target (read at listing time).
    pub link: Option<io::Result<PathBuf>>,
    /// Its extended attributes under the policy.
    pub xattrs: io::Result<Vec<Xattr>>,
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
    root: PathBuf,
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
    /// entries `skip` matches, and reading each entry as `rules` say.
    pub fn start(
        root: &Path,
        exclude: Option<(u64, u64)>,
        skip: &Gitignore,
        rules: Rules,
        threads: usize,
    ) -> Result<Lister> {
        let shared = Arc::new(Shared {
            root: root.into(),
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
                .map_err(|e| Error::io(root, "spawn lister", e))?;
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

/// Lists the directory at `rel`, with each entry's metadata, symlink target and
/// extended attributes. A directory below the root that cannot be listed, and an
/// entry that cannot be stat'ed, are left out with a record if the rules say so.
fn list(shared: &Shared, rel: &[u8]) -> Result<Listing> {
    let dir = shared.root.join(OsStr::from_bytes(rel));
    let mut listing = Listing::default();
    let unreadable = shared.rules.on_unreadable;
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.is_empty() => {
            listing.warnings.push(vanished(&dir));
            return Ok(listing);
        }
        Err(e) if !rel.is_empty() && unreadable.skips(&e) => {
            listing.skipped.push(Skipped::contents(&dir, &e));
            return Ok(listing);
        }
        Err(e) => return Err(Error::io(&dir, "read directory", e)),
    };
    for de in rd {
        let de = de.map_err(|e| Error::io(&dir, "read directory", e))?;
        let name: OsString = de.file_name();
        let meta = match de.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                listing.warnings.push(vanished(&dir.join(&name)));
                continue;
            }
            Err(e) if unreadable.skips(&e) => {
                if !excluded(shared, &join(rel, &name), None) {
                    listing
                        .skipped
                        .push(Skipped::entry(&dir.join(&name), "stat", &e));
                }
                continue;
            }
            Err(e) => return Err(Error::io(dir.join(&name), "stat", e)),
        };
        if shared.exclude == Some((meta.dev(), meta.ino())) {
            continue;
        }
        let path = join(rel, &name);
        if excluded(shared, &path, Some(meta.is_dir())) {
            continue;
        }
        let full = dir.join(&name);
        let link = meta.file_type().is_symlink().then(|| fs::read_link(&full));
        let xattrs = xattr::read(&full, shared.rules.xattrs);
        listing.entries.push(Found {
            path,
            meta,
            link,
            xattrs,
        });
    }
    listing.entries.sort_unstable_by(|a, b| b.path.cmp(&a.path));
    listing.skipped.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
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
