//! The directory of the control socket, checked before it is trusted. With `XDG_RUNTIME_DIR`
//! unset (sudo, cron, containers) it is `$TMPDIR/warren-<uid>`, a name any user can take first:
//! a directory made by someone else, one others can write, or a symlink to a shared directory
//! would let them plant a socket that answers `warren status` or receives what `warren call`
//! sends. So the directory must be a real directory (not a symlink), owned by this user, that
//! nobody else can write; anything else is refused, naming the path and its owner.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A control directory that cannot be trusted.
#[derive(Debug, thiserror::Error)]
#[error(
    "{dir} cannot hold warren's control socket: {why}; remove it, or set XDG_RUNTIME_DIR to a directory of your own"
)]
pub struct UnsafeDir {
    dir: PathBuf,
    why: String,
}

/// For `up`: makes the directory if it is missing (private from the start: mkdir applies the
/// mode, so there is no moment in which another user could open it), then checks it.
pub fn ensure(dir: &Path) -> Result<(), UnsafeDir> {
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|err| UnsafeDir { dir: dir.to_owned(), why: format!("cannot create it: {err}") })?;
    }
    match check(dir)? {
        true => Ok(()),
        false => Err(UnsafeDir { dir: dir.to_owned(), why: "it vanished as it was made".to_owned() }),
    }
}

/// For the other commands: whether the directory is there (no directory, no instance), and
/// an error if it is there but cannot be trusted.
pub fn check(dir: &Path) -> Result<bool, UnsafeDir> {
    let refuse = |why: String| UnsafeDir { dir: dir.to_owned(), why };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(refuse(format!("cannot inspect it: {err}"))),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(dir).map_or_else(|_| "?".to_owned(), |t| t.display().to_string());
        return Err(refuse(format!("it is a symbolic link (to {target}, made by uid {})", meta.uid())));
    }
    if !meta.is_dir() {
        return Err(refuse(format!("it is not a directory (owner uid {})", meta.uid())));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!("it is owned by uid {}, not by you (uid {me})", meta.uid())));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(format!("its mode {mode:04o} lets other users write in it")));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_missing_directory_is_made_private_and_then_trusted() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("warren-test");
        assert!(!check(&dir).expect("missing is no error"));
        ensure(&dir).expect("made");
        assert_eq!(std::fs::metadata(&dir).expect("stat").mode() & 0o777, 0o700);
        assert!(check(&dir).expect("trusted"));
    }

    #[test]
    fn a_directory_others_can_write_or_a_symlink_is_refused() {
        let base = tempfile::tempdir().expect("tempdir");
        let open = base.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = check(&open).expect_err("0777 refused").to_string();
        assert!(err.contains("0777") && err.contains(&open.display().to_string()), "{err}");
        assert!(ensure(&open).is_err(), "up refuses it too");

        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link).expect("symlink");
        let err = check(&link).expect_err("symlink refused").to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
