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
    let to = target.and_then(directory_of);
    itself.relative_path = to.as_deref().and_then(|to| relative_location(previous, to));
    let dir = previous.parent().unwrap_or(Path::new(""));
    for b in inherited {
        let was = (b.followable_relative_path()).or_else(|| b.plain_name().map(Path::new));
        let from = was.map(|was| dir.join(was));
        b.relative_path = from
            .zip(to.as_deref())
            .and_then(|(f, t)| relative_location(&f, t));
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

    #[test]
    fn inherited_bases_are_rebased_onto_the_new_archive() {
        let tmp = std::env::temp_dir().join(format!("znippy-located-{}", std::process::id()));
        for d in ["mon", "tue", "wed", "old"] {
            std::fs::create_dir_all(tmp.join(d)).unwrap();
        }
        let base = |name: &str, rel: Option<&str>| Base {
            manifest_digest: [0; 32],
            name: name.into(),
            chunks: 0,
            generation: 0,
            relative_path: rel.map(str::to_string),
        };
        let mut itself = base("srv.znippy", None);
        let mut inherited = [
            // Recorded by name only (an archive from before relative paths): beside.
            base("g0.znippy", None),
            base("srv.znippy", Some("../mon/srv.znippy")),
            // Not followable, and not a plain name: no place is recorded.
            base("../x", Some("/abs/x")),
        ];
        let wed = tmp.join("wed/srv.znippy");
        place(
            &tmp.join("tue/srv.znippy"),
            &mut itself,
            &mut inherited,
            Some(&wed),
        );
        assert_eq!(itself.relative_path.as_deref(), Some("../tue/srv.znippy"));
        assert_eq!(
            inherited[0].relative_path.as_deref(),
            Some("../tue/g0.znippy")
        );
        assert_eq!(
            inherited[1].relative_path.as_deref(),
            Some("../mon/srv.znippy")
        );
        assert_eq!(inherited[2].relative_path, None);
        // To a stream, nothing is recorded (not even what PREVIOUS recorded).
        let mut itself = base("srv.znippy", None);
        let mut inherited = [base("srv.znippy", Some("../mon/srv.znippy"))];
        place(
            &tmp.join("tue/srv.znippy"),
            &mut itself,
            &mut inherited,
            None,
        );
        assert_eq!(itself.relative_path, None);
        assert_eq!(inherited[0].relative_path, None);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
