//! The holes of files archived as sparse, served as a sparse file's: `st_blocks`
//! counts only the data, and SEEK_DATA / SEEK_HOLE find it.
//!
//! The index records only that a file had holes (its bytes are stored in full, holes
//! as zeros); its holes here are what unpack leaves unwritten: the all-zero 4 KiB
//! blocks on the file's own grid. A sparse file's extents are found the first time
//! they are asked for, by reading the whole file once through the cache (which checks
//! every chunk and the file's digest on the way), and kept while mounted.

use fuser::Errno;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use znippy_uring::{ChunkCache, Error};

/// The grid holes lie on: an all-zero block of this size is a hole.
pub const BLOCK: u64 = 4096;

/// A file's data as `[start, end)` ranges, ascending, neither touching nor
/// overlapping; everything else below its size is a hole.
pub type Extents = Vec<(u64, u64)>;

/// The extents found so far, by file entry.
#[derive(Default)]
pub struct Holes {
    found: Mutex<HashMap<usize, Arc<Extents>>>,
}

impl Holes {
    /// The extents of file entry `entry` (`size` bytes), found now or earlier.
    pub fn extents(
        &self,
        cache: &ChunkCache,
        entry: usize,
        size: u64,
    ) -> Result<Arc<Extents>, Error> {
        let lock = || self.found.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = lock().get(&entry) {
            return Ok(e.clone());
        }
        // Found without the lock held: another file's extents need not wait.
        let extents = Arc::new(scan(cache, entry, size)?);
        lock().insert(entry, extents.clone());
        Ok(extents)
    }
}

/// Reads file entry `entry` (`size` bytes) whole and returns where its data is.
fn scan(cache: &ChunkCache, entry: usize, size: u64) -> Result<Extents, Error> {
    let mut buf = vec![0u8; 1 << 20]; // a multiple of BLOCK: reads stay on the grid
    let mut extents: Extents = Vec::new();
    let mut at = 0u64;
    while at < size {
        let n = cache.read_at(entry, at, &mut buf)?;
        let Some(read) = buf.get(..n).filter(|r| !r.is_empty()) else {
            let name = cache
                .archive()
                .entries()
                .get(entry)
                .map(|e| e.display_path());
            return Err(Error::corrupt(
                cache.archive().path(),
                format!(
                    "{}: short at {at} of {size} bytes",
                    name.unwrap_or_default()
                ),
            ));
        };
        for (k, block) in read.chunks(BLOCK as usize).enumerate() {
            if block.iter().all(|&b| b == 0) {
                continue;
            }
            let start = at + k as u64 * BLOCK;
            let end = start + block.len() as u64;
            match extents.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => extents.push((start, end)),
            }
        }
        at += n as u64;
    }
    Ok(extents)
}

/// The bytes `extents` allocate, in whole blocks, as `st_blocks` counts them (512).
pub fn blocks(extents: &[(u64, u64)]) -> u64 {
    extents
        .iter()
        .map(|(s, e)| (e - s).div_ceil(BLOCK) * (BLOCK / 512))
        .sum()
}

/// Where lseek(`offset`, `whence`) lands in a file of `size` bytes whose data is
/// `extents`: SEEK_DATA the first data at or after `offset`, SEEK_HOLE the first
/// hole (the end of the file counts as one); ENXIO at or beyond the end.
pub fn seek(extents: &[(u64, u64)], size: u64, offset: i64, whence: i32) -> Result<u64, Errno> {
    let offset = u64::try_from(offset)
        .ok()
        .filter(|&o| o < size)
        .ok_or(Errno::ENXIO)?;
    let next = extents.iter().find(|(_, end)| *end > offset);
    match whence {
        libc::SEEK_DATA => next.map(|(s, _)| (*s).max(offset)).ok_or(Errno::ENXIO),
        libc::SEEK_HOLE => Ok(match next {
            Some((s, end)) if *s <= offset => *end,
            _ => offset,
        }),
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeks_find_data_and_holes() {
        // Data at [4096, 8192) and [65536, 65600) of a 100 000-byte file.
        let x = [(4096, 8192), (65536, 65600)];
        let size = 100_000;
        let data = |o| seek(&x, size, o, libc::SEEK_DATA);
        let hole = |o| seek(&x, size, o, libc::SEEK_HOLE);
        assert_eq!(data(0), Ok(4096));
        assert_eq!(data(5000), Ok(5000));
        assert_eq!(data(8192), Ok(65536));
        assert_eq!(data(65600), Err(Errno::ENXIO));
        assert_eq!(hole(0), Ok(0));
        assert_eq!(hole(4096), Ok(8192));
        assert_eq!(hole(65599), Ok(65600));
        assert_eq!(hole(size as i64), Err(Errno::ENXIO));
        assert_eq!(data(-1), Err(Errno::ENXIO));
        // A dense file is one extent: its only hole is its end.
        assert_eq!(seek(&[(0, 10)], 10, 3, libc::SEEK_HOLE), Ok(10));
        assert_eq!(seek(&[(0, 10)], 10, 3, libc::SEEK_DATA), Ok(3));
        assert_eq!(blocks(&x), 8 + 8);
        assert_eq!(blocks(&[]), 0);
    }
}
