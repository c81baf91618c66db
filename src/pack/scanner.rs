//! The scanner: walks a directory tree in a stable order (depth first, names sorted
//! bytewise, a directory before its contents) and reports each entry with its lstat
//! metadata. Symlinks are recorded, never followed. A file with several links is
//! recorded once; its other names become hard-link entries pointing at the first.
//! Owners are recorded by id and by name.

use crate::error::{Error, Result};
use crate::format::entry::{Entry, EntryKind};
use crate::xattr::{self, XattrPolicy};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Something the walk noticed and skipped, and why.
pub type Warning = String;

/// Walks `root`, calling `visit` with each entry (location and digest unset) in order.
/// `exclude` is a (dev, inode) pair never to report (the archive being written);
/// paths that `skip` matches are left out, and excluded directories not descended.
/// Entries that vanish during the walk, and sockets, are skipped with a warning.
pub fn walk(
    root: &Path,
    exclude: Option<(u64, u64)>,
    skip: &ignore::gitignore::Gitignore,
    xattrs: XattrPolicy,
    mut visit: impl FnMut(Entry) -> Result<()>,
) -> Result<Vec<Warning>> {
    let meta = fs::metadata(root).map_err(|e| Error::io(root, "stat", e))?;
    if !meta.is_dir() {
        return Err(Error::Input {
            path: root.into(),
            problem: "not a directory".into(),
        });
    }
    let mut warnings = Vec::new();
    let mut names = crate::owner::Names::default();
    // First path seen of each (device, inode) with more than one link.
    let mut linked: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    // Stack of directories still to list, each with its entries in reverse order.
    let mut stack: Vec<Vec<(Vec<u8>, fs::Metadata)>> =
        vec![list(root, &[], exclude, &mut warnings)?];
    while let Some(top) = stack.last_mut() {
        let Some((rel, meta)) = top.pop() else {
            stack.pop();
            continue;
        };
        let relative = Path::new(std::ffi::OsStr::from_bytes(&rel));
        let ft = meta.file_type();
        if !skip.is_empty() && skip.matched(relative, ft.is_dir()).is_ignore() {
            continue;
        }
        let full = root.join(relative);
        let (kind, link_target) = if ft.is_dir() {
            (EntryKind::Dir, None)
        } else if ft.is_symlink() {
            match fs::read_link(&full) {
                Ok(t) => (EntryKind::Symlink, Some(t.into_os_string().into_vec())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    warnings.push(format!(
                        "{}: vanished during the walk, skipped",
                        full.display()
                    ));
                    continue;
                }
                Err(e) => return Err(Error::io(&full, "readlink", e)),
            }
        } else if ft.is_file() && meta.nlink() > 1 {
            match linked.entry((meta.dev(), meta.ino())) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    (EntryKind::Hardlink, Some(first.get().clone()))
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(rel.clone());
                    (EntryKind::File, None)
                }
            }
        } else if ft.is_file() {
            (EntryKind::File, None)
        } else if ft.is_fifo() {
            (EntryKind::Fifo, None)
        } else if ft.is_char_device() {
            (EntryKind::CharDevice, None)
        } else if ft.is_block_device() {
            (EntryKind::BlockDevice, None)
        } else {
            warnings.push(format!("{}: socket not archived", full.display()));
            continue;
        };
        let xattrs = match xattr::read(&full, xattrs) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                warnings.push(format!(
                    "{}: vanished during the walk, skipped",
                    full.display()
                ));
                continue;
            }
            Err(e) => return Err(Error::io(&full, "read extended attributes", e)),
        };
        let entry = Entry {
            path: rel.clone(),
            kind,
            mode: meta.mode(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            uid: meta.uid(),
            gid: meta.gid(),
            user: names.user(meta.uid()),
            group: names.group(meta.gid()),
            size: if kind == EntryKind::File {
                meta.size()
            } else {
                0
            },
            location: None,
            digest: None,
            link_target,
            xattrs,
            // Fewer blocks than bytes: the file has holes (no extra syscall to know).
            sparse: kind == EntryKind::File && meta.blocks().saturating_mul(512) < meta.size(),
            rdev: matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice)
                .then(|| meta.rdev()),
        };
        visit(entry)?;
        if kind == EntryKind::Dir {
            stack.push(list(&full, &rel, exclude, &mut warnings)?);
        }
    }
    Ok(warnings)
}

/// Lists `dir` (relative path `rel`), sorted by name in reverse so `pop` yields order.
fn list(
    dir: &Path,
    rel: &[u8],
    exclude: Option<(u64, u64)>,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(Vec<u8>, fs::Metadata)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.is_empty() => {
            warnings.push(format!(
                "{}: vanished during the walk, skipped",
                dir.display()
            ));
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::io(dir, "read directory", e)),
    };
    let mut out = Vec::new();
    for de in rd {
        let de = de.map_err(|e| Error::io(dir, "read directory", e))?;
        let name: OsString = de.file_name();
        let meta = match de.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                warnings.push(format!(
                    "{}: vanished during the walk, skipped",
                    dir.join(&name).display()
                ));
                continue;
            }
            Err(e) => return Err(Error::io(dir.join(&name), "stat", e)),
        };
        if exclude == Some((meta.dev(), meta.ino())) {
            continue;
        }
        let mut path = Vec::with_capacity(rel.len() + 1 + name.len());
        if !rel.is_empty() {
            path.extend_from_slice(rel);
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        out.push((path, meta));
    }
    out.sort_unstable_by(|a, b| b.0.cmp(&a.0));
    Ok(out)
}

/// The full path of an entry under `root`, for messages.
pub fn full_path(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(rel))
}
