//! Inherited POSIX ACLs: what unpack makes in a directory of another user keeps none of
//! the ACLs that directory's default ACL would give it.

use std::io;
use std::os::fd::OwnedFd;

/// The POSIX ACLs the kernel gives a new inode from its directory's default ACL.
const ACCESS_ACL: &str = "system.posix_acl_access";
const DEFAULT_ACL: &str = "system.posix_acl_default";

/// Whether `fd` has the extended attribute `name`.
fn has_xattr(fd: &OwnedFd, name: &str) -> bool {
    rustix::fs::fgetxattr_query(fd, name).is_ok()
}

/// Removes from `fd`, an inode just made in directory `dir`, the ACLs it inherited
/// from `dir`'s default ACL when `dir` belongs to another user: an ACL that user set
/// would otherwise give them access to what we unpack (archives hold no ACLs; in a
/// directory of our own, a default ACL is ours to keep, and is inherited as usual).
/// A directory inherits a default ACL only along with an access ACL, so for one
/// (`is_dir`) the default ACL tells.
pub(super) fn strip_foreign_acls(fd: &OwnedFd, dir: &OwnedFd, is_dir: bool) -> io::Result<()> {
    let inherited = has_xattr(fd, if is_dir { DEFAULT_ACL } else { ACCESS_ACL });
    if !inherited || rustix::fs::fstat(dir)?.st_uid == rustix::process::geteuid().as_raw() {
        return Ok(());
    }
    let names: &[&str] = if is_dir {
        &[ACCESS_ACL, DEFAULT_ACL]
    } else {
        &[ACCESS_ACL]
    };
    for name in names {
        match rustix::fs::fremovexattr(fd, *name) {
            Err(rustix::io::Errno::NODATA) | Ok(()) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
