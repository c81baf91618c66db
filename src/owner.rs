//! Owner names. Packing records, beside each entry's uid and gid, the user and group
//! names they had on the packing system (looked up once per id). Unpacking, as GNU tar
//! does, gives a file the id that its archived name has on this system, and the
//! archived number where the name is missing or unknown here, or always with
//! `--numeric-owner`.

use crate::format::entry::Entry;
use std::collections::HashMap;
use std::sync::Arc;

/// Id-to-name lookups while packing, cached: one `getpwuid_r`/`getgrgid_r` per id, and
/// one shared string per name.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, Option<Arc<str>>>,
    groups: HashMap<u32, Option<Arc<str>>>,
}

impl Names {
    /// The name of user `uid`, if it has one that is UTF-8.
    pub fn user(&mut self, uid: u32) -> Option<Arc<str>> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                let user = uzers::get_user_by_uid(uid)?;
                user.name().to_str().map(Arc::from)
            })
            .clone()
    }

    /// The name of group `gid`, if it has one that is UTF-8.
    pub fn group(&mut self, gid: u32) -> Option<Arc<str>> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                let group = uzers::get_group_by_gid(gid)?;
                group.name().to_str().map(Arc::from)
            })
            .clone()
    }
}

/// The archived owner names resolved to this system's ids, once per name.
#[derive(Debug, Default)]
pub struct Owners {
    users: HashMap<Arc<str>, Option<u32>>,
    groups: HashMap<Arc<str>, Option<u32>>,
}

impl Owners {
    /// Looks up every distinct name of `entries` (none when `numeric`).
    pub fn resolve<'a>(entries: impl Iterator<Item = &'a Entry>, numeric: bool) -> Owners {
        let mut owners = Owners::default();
        if numeric {
            return owners;
        }
        for e in entries {
            if let Some(name) = e.user.as_ref().filter(|n| !owners.users.contains_key(*n)) {
                let uid = uzers::get_user_by_name(&**name).map(|u| u.uid());
                owners.users.insert(name.clone(), uid);
            }
            if let Some(name) = e.group.as_ref().filter(|n| !owners.groups.contains_key(*n)) {
                let gid = uzers::get_group_by_name(&**name).map(|g| g.gid());
                owners.groups.insert(name.clone(), gid);
            }
        }
        owners
    }

    /// The (uid, gid) to give `e`: its names' ids here, else its archived numbers.
    pub fn ids(&self, e: &Entry) -> (u32, u32) {
        let by_name = |map: &HashMap<Arc<str>, Option<u32>>, name: &Option<Arc<str>>| {
            name.as_ref().and_then(|n| map.get(n).copied().flatten())
        };
        (
            by_name(&self.users, &e.user).unwrap_or(e.uid),
            by_name(&self.groups, &e.group).unwrap_or(e.gid),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: u32, user: Option<&str>, gid: u32, group: Option<&str>) -> Entry {
        Entry {
            uid,
            gid,
            user: user.map(Arc::from),
            group: group.map(Arc::from),
            ..Entry::new(
                b"f".to_vec(),
                crate::format::entry::EntryKind::File,
                0o100644,
            )
        }
    }

    #[test]
    fn known_names_win_over_numbers_unless_numeric() {
        // "root" is uid and gid 0 on every Linux system.
        let e = entry(4242, Some("root"), 4343, Some("root"));
        let owners = Owners::resolve([&e].into_iter(), false);
        assert_eq!(owners.ids(&e), (0, 0));
        let numeric = Owners::resolve([&e].into_iter(), true);
        assert_eq!(numeric.ids(&e), (4242, 4343));
    }

    #[test]
    fn unknown_or_missing_names_keep_the_numbers() {
        let unknown = entry(4242, Some("no-such-user-znippy"), 7, None);
        let owners = Owners::resolve([&unknown].into_iter(), false);
        assert_eq!(owners.ids(&unknown), (4242, 7));
    }

    #[test]
    fn names_of_ids_are_looked_up() {
        let mut names = Names::default();
        assert_eq!(names.user(0).as_deref(), Some("root"));
        assert_eq!(names.group(0).as_deref(), Some("root"));
    }
}
