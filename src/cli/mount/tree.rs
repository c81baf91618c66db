//! The directory tree of an archive as inodes, built once from the index.
//!
//! Inode numbers are stable for an archive and never reused while mounted: the root
//! is 1, entry `i` is `i + 2`, and a hard link is the inode of the file it names
//! (one inode, its link count the names it has). Directories that hold entries but
//! have none of their own (an archive of listed paths) come after the entries, in
//! path order. Each directory keeps its children sorted by name: a lookup is a
//! binary search and a listing is read from any offset in linear time.

use anyhow::{Result, bail};
use std::collections::HashMap;
use znippy_uring::{Archive, Entry, EntryKind};

/// The root's inode number.
pub const ROOT: u64 = 1;

/// One inode.
#[derive(Debug)]
pub struct Node {
    /// The archive entry it shows (for a hard link, the file's), or `None` for the
    /// root and directories without an entry.
    pub entry: Option<usize>,
    /// The directory holding it (the root holds itself).
    pub parent: u64,
    /// Names: 1 + hard links for a file, 2 + subdirectories for a directory.
    pub nlink: u32,
    /// A directory's children, sorted by name.
    pub children: Vec<(Box<[u8]>, u64)>,
    /// Whether it is a directory.
    pub dir: bool,
}

/// All inodes of an archive.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<u64, Node>,
}

impl Tree {
    /// Builds the tree, refusing an archive whose paths clash (a path twice, an entry
    /// under a non-directory) or a hard link to something not archived as a file.
    pub fn build(archive: &Archive) -> Result<Tree> {
        let entries = archive.entries();
        let mut by_path: HashMap<&[u8], usize> = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            if let Err(why) = e.check_path() {
                bail!(
                    "{}: {}: unsafe path ({why})",
                    archive.path().display(),
                    e.display_path()
                );
            }
            if by_path.insert(&e.path, i).is_some() {
                bail!(
                    "{}: {} is archived twice",
                    archive.path().display(),
                    e.display_path()
                );
            }
        }
        let mut tree = Tree {
            nodes: HashMap::with_capacity(entries.len() + 1),
        };
        tree.nodes.insert(ROOT, Node::dir(None, ROOT));
        let mut dirs: HashMap<&[u8], u64> = HashMap::new();
        dirs.insert(b"", ROOT);
        for (i, e) in entries.iter().enumerate() {
            if e.kind == EntryKind::Dir {
                dirs.insert(&e.path, ino_of(i));
                tree.nodes.insert(ino_of(i), Node::dir(Some(i), ROOT));
            }
        }
        let mut synthesized = ino_of(entries.len());
        let mut missing: Vec<&[u8]> = Vec::new();
        for e in entries {
            missing.extend(parents(&e.path).filter(|p| !dirs.contains_key(p)));
        }
        missing.sort_unstable();
        missing.dedup();
        for p in missing {
            if by_path.contains_key(p) {
                bail!(
                    "{}: {} is not a directory but holds entries",
                    archive.path().display(),
                    String::from_utf8_lossy(p)
                );
            }
            dirs.insert(p, synthesized);
            tree.nodes.insert(synthesized, Node::dir(None, ROOT));
            synthesized += 1;
        }
        for (i, e) in entries.iter().enumerate() {
            let ino = tree.place(archive, e, i, &by_path)?;
            let (parent, name) = split(&e.path);
            let parent = dirs.get(parent).copied().unwrap_or(ROOT);
            tree.adopt(parent, name, ino);
        }
        for (path, &ino) in &dirs {
            if !path.is_empty() && !by_path.contains_key(path) {
                let (parent, name) = split(path);
                let parent = dirs.get(parent).copied().unwrap_or(ROOT);
                tree.adopt(parent, name, ino);
            }
        }
        for node in tree.nodes.values_mut() {
            node.children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(tree)
    }

    /// The inode of entry `e` (number `i`), created unless it is a directory (made
    /// already) or a hard link (the file's inode, which gains a link).
    fn place(
        &mut self,
        archive: &Archive,
        e: &Entry,
        i: usize,
        by_path: &HashMap<&[u8], usize>,
    ) -> Result<u64> {
        match e.kind {
            EntryKind::Dir => Ok(ino_of(i)),
            EntryKind::Hardlink => {
                let target = e.link_target.as_deref().unwrap_or_default();
                let file = by_path.get(target).copied().filter(|&t| {
                    archive
                        .entries()
                        .get(t)
                        .is_some_and(|f| f.kind == EntryKind::File)
                });
                let Some(file) = file else {
                    bail!(
                        "{}: {}: hard link to a file not in the archive",
                        archive.path().display(),
                        e.display_path()
                    );
                };
                let node = self
                    .nodes
                    .entry(ino_of(file))
                    .or_insert_with(|| Node::leaf(file));
                node.nlink += 1;
                Ok(ino_of(file))
            }
            _ => {
                self.nodes.entry(ino_of(i)).or_insert_with(|| Node::leaf(i));
                Ok(ino_of(i))
            }
        }
    }

    /// Puts `ino` in directory `parent` under `name`.
    fn adopt(&mut self, parent: u64, name: &[u8], ino: u64) {
        let is_dir = self.nodes.get(&ino).is_some_and(|n| n.dir);
        if let Some(node) = self.nodes.get_mut(&ino)
            && node.dir
        {
            node.parent = parent;
        }
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children.push((name.into(), ino));
            if is_dir {
                p.nlink += 1;
            }
        }
    }

    /// Inode `ino`.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    /// The inode named `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Option<u64> {
        let children = &self.nodes.get(&parent)?.children;
        let i = children.binary_search_by(|c| (*c.0).cmp(name)).ok()?;
        children.get(i).map(|c| c.1)
    }

    /// Number of inodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

impl Node {
    fn dir(entry: Option<usize>, parent: u64) -> Node {
        Node {
            entry,
            parent,
            nlink: 2,
            children: Vec::new(),
            dir: true,
        }
    }

    fn leaf(entry: usize) -> Node {
        Node {
            entry: Some(entry),
            parent: ROOT,
            nlink: 1,
            children: Vec::new(),
            dir: false,
        }
    }
}

/// Entry `i`'s inode number.
pub fn ino_of(i: usize) -> u64 {
    i as u64 + 2
}

/// A path's parent directory (empty for the root) and its last component.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

/// Every proper ancestor of `path` but the root: `a/b/c` gives `a`, `a/b`.
fn parents(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_parents_and_names() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"top"), (&b""[..], &b"top"[..]));
        let p: Vec<&[u8]> = parents(b"a/b/c").collect();
        assert_eq!(p, vec![&b"a"[..], &b"a/b"[..]]);
        assert_eq!(parents(b"top").count(), 0);
    }
}
