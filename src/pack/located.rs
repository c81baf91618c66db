//! Where the bases of a new incremental archive lie relative to it: what `pack
//! --since` records as their `relative_path`, so that readers find them wherever the
//! archives are moved or copied together (one directory per day: `tue/srv.znippy`
//! finds `../mon/srv.znippy`).

use crate::format::base::Base;
use std::path::{Component, Path, PathBuf};

/// Sets the relative paths of `itself` (PREVIOUS, at `previous`) and of `inherited`
/// (PREVIOUS's own bases, as its table records them) for a new archive at `target`;
/// `None` (a stream) records none. PREVIOUS's bases were where its table says,
/// relative to PREVIOUS, or else beside it: that place is said again relative to the
/// new archive.
pub fn place(previous: &Path, itself: &mut Base, inherited: &mut [Base], target: Option<&Path>) {
    let Some(to) = target.and_then(directory_of) else {
        return;
    };
    itself.relative_path = relative_location(previous, &to);
    let dir = previous.parent().unwrap_or(Path::new(""));
    for b in inherited {
        let was = (b.followable_relative_path()).or_else(|| b.plain_name().map(Path::new));
        b.relative_path = was.and_then(|was| relative_location(&dir.join(was), &to));
    }
}

/// The directory the file at `path` is (to be) in, with every symbolic link resolved.
fn directory_of(path: &Path) -> Option<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::canonicalize(dir.unwrap_or(Path::new("."))).ok()
}

/// Where the archive at `base` is, relative to the directory `to` (resolved, as
/// [`directory_of`] gives it): `../mon/srv.znippy`. Symbolic links on the way are
/// resolved where `base` exists, so the path leads to the file itself; `None` when
/// it cannot be said in UTF-8.
fn relative_location(base: &Path, to: &Path) -> Option<String> {
    let at = match std::fs::canonicalize(base) {
        Ok(at) => at,
        // Gone, or never there: the path as recorded, made absolute.
        Err(_) => {
            let mut at = directory_of(base)?;
            at.push(base.file_name()?);
            at
        }
    };
    let at: Vec<Component> = at.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = at.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..to.len() {
        rel.push("..");
    }
    for c in at.get(common..)? {
        rel.push(c);
    }
    rel.to_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_is_recorded_relative_to_the_new_archive() {
        let tmp = std::env::temp_dir().join(format!("znippy-since-rel-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("mon")).unwrap();
        std::fs::create_dir_all(tmp.join("tue")).unwrap();
        std::fs::write(tmp.join("mon/srv.znippy"), b"").unwrap();
        let tue = directory_of(&tmp.join("tue/srv.znippy")).unwrap();
        let mon = tmp.join("mon/srv.znippy");
        assert_eq!(relative_location(&mon, &tue).unwrap(), "../mon/srv.znippy");
        let mon_dir = directory_of(&mon).unwrap();
        assert_eq!(relative_location(&mon, &mon_dir).unwrap(), "srv.znippy");
        // Through a link to the directory, and to a file that is not there.
        std::os::unix::fs::symlink(tmp.join("mon"), tmp.join("latest")).unwrap();
        let linked = tmp.join("latest/srv.znippy");
        assert_eq!(
            relative_location(&linked, &tue).unwrap(),
            "../mon/srv.znippy"
        );
        let gone = tmp.join("latest/gone.znippy");
        assert_eq!(
            relative_location(&gone, &tue).unwrap(),
            "../mon/gone.znippy"
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
