//! The read-only FUSE file system over one archive (fuser): attributes and names
//! from the [`Tree`], file bytes through the library's shared [`ChunkCache`]. Every
//! request that would change anything fails with EROFS.

use super::ahead::Ahead;
use super::holes::{self, Holes};
use super::tree::Tree;
use fuser::Notifier;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use znippy_uring::{ChunkCache, Entry, EntryKind, Error};

/// How long the kernel may keep names and attributes: the archive never changes.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// The most bytes one read request may ask for (the kernel's readahead unit).
const MAX_READ: u32 = 1 << 20;

/// The mounted archive.
pub struct ArchiveFs {
    tree: Tree,
    cache: Arc<ChunkCache>,
    /// Owner, mode and mtime of the root and of directories without an entry: the
    /// archive file's.
    default: (u32, u32, SystemTime),
    /// The kernel opens files without asking (FUSE_NO_OPEN_SUPPORT).
    no_open: bool,
    /// Whole small files pushed into the kernel's cache ahead of a sequential reader.
    ahead: Ahead,
    /// The data extents of sparse files, found when first asked for.
    holes: Holes,
    /// To drop the kernel's cached pages of a file found damaged (set once the
    /// session runs).
    notifier: Arc<OnceLock<Notifier>>,
    /// The inodes whose cached pages were dropped.
    dropped: Mutex<HashSet<u64>>,
}

impl ArchiveFs {
    /// The file system of `cache`'s archive, with `tree` built from it.
    pub fn new(tree: Tree, cache: Arc<ChunkCache>, ahead: Ahead) -> ArchiveFs {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(cache.archive().path()).ok();
        let default = (
            meta.as_ref().map_or(0, MetadataExt::uid),
            meta.as_ref().map_or(0, MetadataExt::gid),
            meta.and_then(|m| m.modified().ok()).unwrap_or(UNIX_EPOCH),
        );
        ArchiveFs {
            tree,
            cache,
            default,
            no_open: false,
            notifier: ahead.notifier.clone(),
            ahead,
            holes: Holes::default(),
            dropped: Mutex::new(HashSet::new()),
        }
    }

    fn entry(&self, ino: u64) -> Option<&Entry> {
        let i = self.tree.get(ino)?.entry?;
        self.cache.archive().entries().get(i)
    }

    /// The attributes of inode `ino`.
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.tree.get(ino)?;
        let (uid, gid, mtime) = self.default;
        let mut attr = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: node.nlink,
            uid,
            gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        let Some(e) = self.entry(ino) else {
            return Some(attr);
        };
        let t = time(e.mtime_ns);
        attr.kind = kind(e.kind);
        attr.perm = (e.mode & 0o7777) as u16;
        (attr.uid, attr.gid) = (e.uid, e.gid);
        (attr.atime, attr.mtime, attr.ctime, attr.crtime) = (t, t, t, t);
        attr.size = match e.kind {
            EntryKind::File => e.size,
            EntryKind::Symlink => e.link_target.as_ref().map_or(0, |t| t.len() as u64),
            _ => 0,
        };
        // What `du` counts: the data, in 512-byte blocks (a sparse file's holes not).
        attr.blocks = match self.sparse_extents(ino) {
            Some(Ok(extents)) => holes::blocks(&extents),
            _ => attr.size.div_ceil(512),
        };
        attr.rdev = e.rdev.map_or(0, encode_dev);
        Some(attr)
    }

    /// Directory `ino`'s listing from `offset` on, as (offset of the next one, inode,
    /// name): 1 is ".", 2 is "..", 3 + i is child i. `None` if it is not a directory.
    fn listing(&self, ino: u64, offset: u64) -> Option<impl Iterator<Item = (u64, u64, &[u8])>> {
        let node = self.tree.get(ino).filter(|n| n.dir)?;
        let dots = [(ino, &b"."[..]), (node.parent, &b".."[..])].into_iter();
        let children = node.children.iter().map(|(name, i)| (*i, &name[..]));
        let all = dots.chain(children).enumerate().skip(offset as usize);
        Some(all.map(|(k, (child, name))| (k as u64 + 1, child, name)))
    }

    /// The data extents of inode `ino` if it is a file archived as sparse (a failure
    /// to read them is logged); `None` for anything else.
    fn sparse_extents(&self, ino: u64) -> Option<Result<Arc<holes::Extents>, Errno>> {
        let i = self.tree.get(ino).filter(|n| !n.dir)?.entry?;
        let e = self.cache.archive().entries().get(i)?;
        (e.kind == EntryKind::File && e.sparse)
            .then(|| (self.holes.extents(&self.cache, i, e.size)).map_err(|e| log_read_error(&e)))
    }

    /// Checks inode `ino`, if it is an empty file, against its digest (EIO, logged, if
    /// it does not match). The kernel sends no read for an empty file (and no open):
    /// its lookup is where it can fail.
    fn check_empty(&self, ino: u64) -> Result<(), Errno> {
        let Some(i) = self.tree.get(ino).filter(|n| !n.dir).and_then(|n| n.entry) else {
            return Ok(());
        };
        match self.cache.archive().entries().get(i) {
            Some(e) if e.kind == EntryKind::File && e.size == 0 => {
                self.cache
                    .read_at(i, 0, &mut [])
                    .map_err(|e| log_read_error(&e))?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Where lseek(SEEK_DATA or SEEK_HOLE) lands in inode `ino`.
    fn seek(&self, ino: u64, offset: i64, whence: i32) -> Result<u64, Errno> {
        // A hard link's inode is its file's: the entry is a file.
        let e = self.entry(ino).ok_or(Errno::ENOENT)?;
        if e.kind != EntryKind::File {
            return Err(Errno::EINVAL);
        }
        let size = e.size;
        match self.sparse_extents(ino) {
            Some(extents) => holes::seek(&extents?, size, offset, whence),
            None => holes::seek(&[(0, size)], size, offset, whence),
        }
    }

    /// Reads `size` bytes of inode `ino` from `offset`.
    fn read_bytes(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let node = self.tree.get(ino).ok_or(Errno::ENOENT)?;
        let entry = node.entry.filter(|_| !node.dir).ok_or(Errno::EISDIR)?;
        let mut buf = vec![0u8; size.min(MAX_READ) as usize];
        let n = self.cache.read_at(entry, offset, &mut buf).map_err(|e| {
            if matches!(e, Error::Damaged { .. }) {
                self.drop_cached(ino);
            }
            log_read_error(&e)
        })?;
        buf.truncate(n);
        if offset == 0 {
            self.ahead.read_from_start(entry);
        }
        Ok(buf)
    }
}

impl ArchiveFs {
    /// Drops the kernel's cached pages of inode `ino`, once: a file over several
    /// chunks found damaged by the read that completed it had pages served before,
    /// and those must fail too. From a thread of its own: the kernel may hold one of
    /// them locked until the failing read is answered.
    fn drop_cached(&self, ino: u64) {
        let first = (self.dropped.lock().unwrap_or_else(|p| p.into_inner())).insert(ino);
        let Some(notifier) = self.notifier.get().filter(|_| first).cloned() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("znippy-inval".into())
            .spawn(move || {
                if let Err(e) = notifier.inval_inode(INodeNo(ino), 0, 0) {
                    log::debug!("mount: inode {ino}: dropping cached pages: {e}");
                }
            });
        if let Err(e) = spawned {
            log::warn!("mount: inode {ino}: cached pages not dropped: {e}");
        }
    }
}

/// Logs why a read failed, naming each damaged file; the reader gets EIO.
fn log_read_error(e: &Error) -> Errno {
    match e {
        Error::Damaged { archive, damaged } => {
            for (path, problem) in damaged {
                log::error!("{}: {path}: {problem}", archive.display());
            }
        }
        e => log::error!("{e}"),
    }
    Errno::EIO
}

impl Filesystem for ArchiveFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(MAX_READ);
        // Fewer round trips per file, each asked for alone so that a kernel without
        // one still gets the others: listings carry attributes (no lookup per name),
        // opens and closes need no message, symlinks are cached, reads run in
        // parallel and may be large.
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_NO_OPEN_SUPPORT,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_READ,
            InitFlags::FUSE_MAX_PAGES,
        ] {
            if config.add_capabilities(cap).is_err() {
                log::debug!("mount: the kernel lacks {cap:?}");
            } else if cap == InitFlags::FUSE_NO_OPEN_SUPPORT {
                self.no_open = true;
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(ino) = self.tree.lookup(parent.0, name.as_bytes()) else {
            return reply.error(Errno::ENOENT);
        };
        if let Err(e) = self.check_empty(ino) {
            return reply.error(e);
        }
        match self.attr(ino) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.entry(ino.0) {
            Some(e) if e.kind == EntryKind::Symlink => {
                reply.data(e.link_target.as_deref().unwrap_or_default());
            }
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.tree.get(ino.0) {
            // ENOSYS tells a kernel with zero-message opens to stop asking (and to
            // stop sending releases); the mount is read-only, so the kernel itself
            // refuses opens for writing.
            Some(_) if self.no_open => reply.error(Errno::ENOSYS),
            // The archive never changes: pages read once stay valid for every open.
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_bytes(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self.seek(ino.0, offset, whence) {
            Ok(to) => reply.offset(to as i64),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing was written: ENOSYS makes the kernel stop sending flushes.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(listing) = self.listing(ino.0, offset) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (next, child, name) in listing {
            let kind = self.attr(child).map_or(FileType::RegularFile, |a| a.kind);
            if reply.add(INodeNo(child), next, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(listing) = self.listing(ino.0, offset) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (next, child, name) in listing {
            let Some(attr) = self.attr(child) else {
                continue;
            };
            let name = OsStr::from_bytes(name);
            // A damaged empty file's name must be looked up each time, to fail there.
            let ttl = match self.check_empty(child) {
                Ok(()) => TTL,
                Err(_) => Duration::ZERO,
            };
            if reply.add(INodeNo(child), next, name, &ttl, &attr, Generation(0)) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let data: u64 = self
            .cache
            .archive()
            .chunks()
            .iter()
            .map(|c| c.raw_len)
            .sum();
        let files = self.tree.len() as u64;
        reply.statfs(data.div_ceil(4096), 0, 0, files, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(e) = self.entry(ino.0) else {
            return reply.error(Errno::NO_XATTR);
        };
        match e.xattrs.iter().find(|(n, _)| n == name.as_bytes()) {
            Some((_, value)) => sized(value, size, reply),
            None => reply.error(Errno::NO_XATTR),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        for (name, _) in self.entry(ino.0).map_or(&[][..], |e| &e.xattrs[..]) {
            names.extend_from_slice(name);
            names.push(0);
        }
        sized(&names, size, reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if self.tree.get(ino.0).is_none() {
            reply.error(Errno::ENOENT);
        } else if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok(); // the kernel checks the mode bits (default_permissions)
        }
    }

    // Nothing changes a mounted archive.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
}

/// Replies with `value`, or its size when asked with `size` 0, or ERANGE when it
/// does not fit.
fn sized(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

fn kind(k: EntryKind) -> FileType {
    match k {
        EntryKind::File | EntryKind::Hardlink => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
    }
}

fn time(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// A device number as `stat` gives it, in the kernel's 32-bit encoding that FUSE
/// carries (`new_encode_dev`).
fn encode_dev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_and_times() {
        assert_eq!(encode_dev(libc::makedev(8, 1)), (8 << 8) | 1);
        assert_eq!(
            encode_dev(libc::makedev(1, 300)),
            (300 & 0xff) | (1 << 8) | (256 << 12)
        );
        assert_eq!(
            time(1_500_000_000),
            UNIX_EPOCH + Duration::from_millis(1500)
        );
        assert_eq!(time(-1_000_000_000), UNIX_EPOCH - Duration::from_secs(1));
    }
}
