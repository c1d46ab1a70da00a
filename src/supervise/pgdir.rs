//! Where a private PostgreSQL cluster can live. As root the server runs as user `postgres`, which
//! must be able to reach the cluster's directory: a checkout in root's mode-700 home is out of its
//! reach, so the demo then keeps the cluster in a private directory under the temporary directory.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Result, RunAs, SuperviseError, effective_uid, io_err, pg_run_as};

/// Owner, group and permission bits of one directory on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirMode {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// The index of the first of `dirs` that user `uid` (group `gid`) may not search, deciding as the
/// kernel does from the mode bits: the owner's bits for its owner, else the group's for its group,
/// else the others'. Root may search anything. Supplementary groups are left out on purpose: std
/// drops them when a child is started with another uid, as the server tools are.
pub fn first_unsearchable(dirs: &[DirMode], uid: u32, gid: u32) -> Option<usize> {
    if uid == 0 {
        return None;
    }
    dirs.iter().position(|d| {
        let bit = if d.uid == uid {
            0o100
        } else if d.gid == gid {
            0o010
        } else {
            0o001
        };
        d.mode & bit == 0
    })
}

/// The existing directories from `/` down to `dir`'s nearest existing ancestor (or `dir` itself
/// when `include_self`), with their modes. Symlinks are resolved as the kernel would.
pub(super) fn existing_dirs(dir: &Path, include_self: bool) -> Vec<(PathBuf, DirMode)> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.as_path();
    let start = if include_self {
        Some(dir)
    } else {
        dir.parent()
    };
    let Some(existing) = start
        .into_iter()
        .flat_map(Path::ancestors)
        .find_map(|p| p.canonicalize().ok())
    else {
        return Vec::new();
    };
    let mut dirs: Vec<(PathBuf, DirMode)> = existing
        .ancestors()
        .filter_map(|p| {
            let m = fs::metadata(p).ok()?;
            let mode = DirMode {
                uid: m.uid(),
                gid: m.gid(),
                mode: m.mode() & 0o7777,
            };
            Some((p.to_path_buf(), mode))
        })
        .collect();
    dirs.reverse();
    dirs
}

/// Why the account PostgreSQL runs as (user `postgres` when we are root) could not reach `dir`, or
/// None when it can: every existing parent must be searchable by it, as the cluster directory
/// itself is handed to it. Not root: the server runs as ourselves, who can.
pub fn pg_dir_unreachable(dir: &Path) -> Option<String> {
    let user = pg_run_as()?;
    unsearchable_by(&existing_dirs(dir, false), &user)
}

pub(super) fn unsearchable_by(dirs: &[(PathBuf, DirMode)], user: &RunAs) -> Option<String> {
    let modes: Vec<DirMode> = dirs.iter().map(|(_, m)| *m).collect();
    let i = first_unsearchable(&modes, user.uid, user.gid)?;
    let (path, m) = &dirs[i];
    Some(format!(
        "user {} cannot search {} (mode {:o}, owner uid {})",
        user.name,
        path.display(),
        m.mode,
        m.uid
    ))
}

/// A cluster directory PostgreSQL can reach, private to this user and to the demo directory `key`
/// (so demos from two checkouts do not share, and a demo restarted in one finds its cluster):
/// `TMP/visitorflow-demo-UID/demo-HASH`, where `TMP` is the temporary directory (`$TMPDIR`), or
/// `/tmp` when the server's account cannot search that. `visitorflow-demo-UID` is made mode 700 and
/// handed to that account.
pub fn private_pg_dir(key: &Path) -> Result<PathBuf> {
    let user = pg_run_as();
    let uid = effective_uid().unwrap_or(0);
    let mut bases = vec![std::env::temp_dir()];
    if !bases.contains(&PathBuf::from("/tmp")) {
        bases.push(PathBuf::from("/tmp"));
    }
    let mut reasons = Vec::new();
    for base in bases {
        if let Some(user) = &user
            && let Some(why) = unsearchable_by(&existing_dirs(&base, true), user)
        {
            reasons.push(why);
            continue;
        }
        let parent = base.join(format!("visitorflow-demo-{uid}"));
        ensure_private_dir(&parent, user.as_ref())?;
        return Ok(parent.join(format!(
            "demo-{:016x}",
            fnv1a(key.as_os_str().as_encoded_bytes())
        )));
    }
    Err(SuperviseError::BadDir {
        dir: std::env::temp_dir(),
        reason: format!(
            "no temporary directory for PostgreSQL: {}",
            reasons.join("; ")
        ),
    })
}

/// Creates `dir` mode 700 or accepts an existing one that is ours (a real directory, not a
/// symlink: it sits in a world-writable directory), then hands it to `owner`.
fn ensure_private_dir(dir: &Path, owner: Option<&RunAs>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let bad = |reason: String| SuperviseError::BadDir {
        dir: dir.to_path_buf(),
        reason,
    };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(io_err(format!("creating {}", dir.display())))?,
        Err(e) => return Err(io_err(format!("inspecting {}", dir.display()))(e)),
        Ok(m) if !m.file_type().is_dir() => {
            return Err(bad("exists and is not a directory; remove it".into()));
        }
        Ok(m) => {
            let ours = Some(m.uid()) == effective_uid() || owner.is_some_and(|o| o.uid == m.uid());
            if !ours {
                return Err(bad(format!(
                    "belongs to uid {}, not to us; remove it",
                    m.uid()
                )));
            }
        }
    }
    if let Some(user) = owner {
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).map_err(io_err(format!(
            "chown {} to {}",
            dir.display(),
            user.name
        )))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod 700 {}", dir.display())))
}

/// FNV-1a: a name from a path that stays the same across builds (std's hasher may change).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn dir(uid: u32, gid: u32, mode: u32) -> DirMode {
        DirMode { uid, gid, mode }
    }

    const POSTGRES: (u32, u32) = (101, 104);

    #[test]
    fn a_private_home_blocks_another_user_but_not_root() {
        // / (755) → /root (700, root) → /root/checkout (755)
        let path = [dir(0, 0, 0o755), dir(0, 0, 0o700), dir(0, 0, 0o755)];
        assert_eq!(first_unsearchable(&path, POSTGRES.0, POSTGRES.1), Some(1));
        assert_eq!(first_unsearchable(&path, 0, 0), None);
        // /tmp is world-searchable (1777), as is the usual checkout under /home/user (755).
        let tmp = [dir(0, 0, 0o755), dir(0, 0, 0o1777)];
        assert_eq!(first_unsearchable(&tmp, POSTGRES.0, POSTGRES.1), None);
        assert_eq!(first_unsearchable(&[], POSTGRES.0, POSTGRES.1), None);
    }

    #[test]
    fn the_class_is_owner_then_group_then_others_and_only_its_bits_count() {
        let (uid, gid) = POSTGRES;
        // Owner: only the owner's x bit counts, even when others may search.
        assert_eq!(first_unsearchable(&[dir(uid, 0, 0o711)], uid, gid), None);
        assert_eq!(first_unsearchable(&[dir(uid, 0, 0o611)], uid, gid), Some(0));
        // Group (not owner): the group's bit, not the others'.
        assert_eq!(first_unsearchable(&[dir(0, gid, 0o710)], uid, gid), None);
        assert_eq!(first_unsearchable(&[dir(0, gid, 0o701)], uid, gid), Some(0));
        // Others.
        assert_eq!(first_unsearchable(&[dir(0, 0, 0o701)], uid, gid), None);
        assert_eq!(first_unsearchable(&[dir(0, 0, 0o770)], uid, gid), Some(0));
        // Read without search is not enough to pass through.
        assert_eq!(first_unsearchable(&[dir(0, 0, 0o744)], uid, gid), Some(0));
        // The first blocker is named, however many follow.
        let path = [
            dir(0, 0, 0o755),
            dir(0, gid, 0o750),
            dir(0, 0, 0o700),
            dir(0, 0, 0o700),
        ];
        assert_eq!(first_unsearchable(&path, uid, gid), Some(2));
    }

    #[test]
    fn the_private_cluster_name_is_stable() {
        // Changing it would orphan every existing demo cluster.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(b"/root/a/.demo"), fnv1a(b"/root/b/.demo"));
    }
}
