//! The `-o` mount options: checked before anything is mounted, each refusal saying
//! what is allowed and why, since the kernel answers an option it does not know with
//! a bare EINVAL.

use anyhow::{Result, bail};
use fuser::{MountOption, SessionACL};

/// Every option `-o` takes, for messages.
const ALLOWED: &str = "ro, default_permissions, allow_other, allow_root, noexec, exec, \
                       nosuid, suid, nodev, dev, noatime, atime, kernel_cache, fsname=NAME, \
                       nonempty, auto_unmount";

/// The mount options asked for.
#[derive(Debug)]
pub struct Options {
    /// Options handed to the mount (flags, `fsname`, `auto_unmount`).
    pub mount: Vec<MountOption>,
    /// Who may use the file system.
    pub acl: SessionACL,
    /// `fsname=NAME`: the source shown in /proc/mounts instead of the archive's path.
    pub fsname: Option<String>,
    /// `nonempty`: mount on a directory that holds files.
    pub nonempty: bool,
}

impl Options {
    /// Parses the `-o` options (`allow_other` and `allow_root` are the flags of the
    /// same names), refusing any the mount cannot honour.
    pub fn parse(given: &[String], allow_other: bool, allow_root: bool) -> Result<Options> {
        let mut options = Options {
            mount: Vec::new(),
            acl: if allow_other {
                SessionACL::All
            } else if allow_root {
                SessionACL::RootAndOwner
            } else {
                SessionACL::Owner
            },
            fsname: None,
            nonempty: false,
        };
        let mut auto_unmount = false;
        for o in given.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            let flag = match o {
                "allow_other" => {
                    options.acl = SessionACL::All;
                    continue;
                }
                "allow_root" => {
                    if options.acl != SessionACL::All {
                        options.acl = SessionACL::RootAndOwner;
                    }
                    continue;
                }
                // Always so: the mount is read-only and the kernel checks the modes;
                // pages stay cached across opens (the archive never changes).
                "ro" | "default_permissions" | "kernel_cache" => continue,
                "nonempty" => {
                    options.nonempty = true;
                    continue;
                }
                "auto_unmount" => {
                    auto_unmount = true;
                    MountOption::AutoUnmount
                }
                "noexec" => MountOption::NoExec,
                "exec" => MountOption::Exec,
                "nosuid" => MountOption::NoSuid,
                "suid" => MountOption::Suid,
                "nodev" => MountOption::NoDev,
                "dev" => MountOption::Dev,
                "noatime" => MountOption::NoAtime,
                "atime" => MountOption::Atime,
                "rw" => bail!("-o rw: the mount is read-only (an archive never changes)"),
                other => match other.strip_prefix("fsname=") {
                    Some("") => bail!("-o fsname=: give a name"),
                    Some(name) => {
                        options.fsname = Some(name.into());
                        MountOption::FSName(name.into())
                    }
                    None => bail!("-o {other}: not a mount option here (allowed: {ALLOWED})"),
                },
            };
            options.mount.retain(|m| m != &flag);
            options.mount.push(flag);
        }
        if auto_unmount && options.acl == SessionACL::Owner {
            bail!(
                "-o auto_unmount needs allow_other or allow_root: the fusermount3 helper \
                 that unmounts when this process dies only serves such mounts (as root \
                 too, and it must be installed); without auto_unmount the mount is still unmounted \
                 on SIGINT, SIGTERM and SIGHUP"
            );
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(o: &str) -> Result<Options> {
        let given: Vec<String> = o.split(',').map(String::from).collect();
        Options::parse(&given, false, false)
    }

    #[test]
    fn flags_and_their_negations_are_taken() {
        let o = parse("dev,suid,exec,atime,kernel_cache,ro,default_permissions").unwrap();
        assert_eq!(
            o.mount,
            [
                MountOption::Dev,
                MountOption::Suid,
                MountOption::Exec,
                MountOption::Atime
            ]
        );
        let o = parse("noexec,nosuid,nodev,noatime,fsname=backup,nonempty").unwrap();
        assert!(o.mount.contains(&MountOption::FSName("backup".into())));
        assert_eq!(o.fsname.as_deref(), Some("backup"));
        assert!(o.nonempty);
        assert_eq!(parse("allow_root").unwrap().acl, SessionACL::RootAndOwner);
        assert_eq!(parse("allow_other").unwrap().acl, SessionACL::All);
    }

    #[test]
    fn unknown_and_unservable_options_are_refused_with_the_reason() {
        let e = parse("direct_io").unwrap_err().to_string();
        assert!(
            e.contains("direct_io: not a mount option") && e.contains("allowed:"),
            "{e}"
        );
        let e = parse("rw").unwrap_err().to_string();
        assert!(e.contains("read-only"), "{e}");
        let e = parse("auto_unmount").unwrap_err().to_string();
        assert!(e.contains("needs allow_other or allow_root"), "{e}");
        let o = parse("auto_unmount,allow_other").unwrap();
        assert!(o.mount.contains(&MountOption::AutoUnmount));
    }
}
