//! The socket file on disk: its directory made private or checked before the bind, its mode set
//! on the inode the bind created rather than through the path, and its identity (device and
//! inode) kept so that only our own file is ever removed.
//!
//! Whoever else can write the socket's directory can swap the socket for a symlink between the
//! bind and the chmod, and a chmod through the path would then change the mode of the link's
//! target: done by root, of any file. So the directory must be ours (or root's) and closed to
//! others unless sticky (a sticky directory lets nobody else rename or remove our file), and the
//! chmod never follows the path again.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::error::BindError;

/// The socket file this server created, identified by inode so that shutdown never removes a
/// file another server has since put at the same path.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub fn remove_if_ours(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if self.is(&meta) => {
                if let Err(err) = std::fs::remove_file(&self.path) {
                    warn!("cannot remove socket file {}: {err}", self.path.display());
                } else {
                    debug!("removed socket file {}", self.path.display());
                }
            }
            Ok(_) => debug!("socket file {} was replaced by another; left in place", self.path.display()),
            Err(_) => {}
        }
    }

    fn is(&self, meta: &std::fs::Metadata) -> bool {
        meta.dev() == self.dev && meta.ino() == self.ino
    }
}

/// Creates the directory the socket goes in if it is missing, private from the start (the mode
/// is applied by mkdir itself, so there is no window in which another user could plant or open
/// anything inside), then checks it whether new or not.
pub(crate) fn prepare_directory(dir: &Path, io_error: impl Fn(std::io::Error) -> BindError) -> Result<(), BindError> {
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error)?;
    }
    check_directory(dir)
}

/// Refuses a directory that others could change entries of. Symlinks are followed: what counts
/// is the directory the socket will really be in (a symlinked component made by someone else
/// leads to a directory they own, which is refused).
fn check_directory(dir: &Path) -> Result<(), BindError> {
    let unsafe_dir = |why: String| BindError::UnsafeDirectory { dir: dir.to_owned(), why };
    let meta = std::fs::metadata(dir).map_err(|err| unsafe_dir(format!("cannot stat it: {err}")))?;
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".to_owned()));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(unsafe_dir(format!("it is owned by uid {}, not by this process's uid {euid} or root", meta.uid())));
    }
    let mode = meta.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    let writers = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        (false, true) => "others",
        (false, false) => return Ok(()),
    };
    if sticky {
        return Ok(());
    }
    Err(unsafe_dir(format!("its mode {mode:04o} lets {writers} write it, and it is not sticky")))
}

/// Sets `mode` on the socket the bind just made at `path` and returns its identity. Fails with
/// [`BindError::Replaced`] when what is at `path` is not a socket of ours, or stops being the
/// one whose mode was set; a socket left by a failure after the bind is removed.
pub(crate) fn claim(path: &Path, mode: u32) -> Result<SocketFile, BindError> {
    let io_error = |source| BindError::Io { endpoint: format!("unix:{}", path.display()), source };
    let replaced = |why: String| BindError::Replaced { path: path.to_owned(), why };
    let (file, meta) = open_no_follow(path).map_err(io_error)?;
    let euid = rustix::process::geteuid().as_raw();
    if !meta.file_type().is_socket() {
        return Err(replaced("it is no longer a socket".to_owned()));
    }
    if meta.uid() != euid {
        return Err(replaced(format!("it is owned by uid {}, not by this process's uid {euid}", meta.uid())));
    }
    let socket = SocketFile { path: path.to_owned(), dev: meta.dev(), ino: meta.ino() };
    if let Err(err) = set_mode(path, &file, mode) {
        socket.remove_if_ours();
        return Err(io_error(err));
    }
    match std::fs::symlink_metadata(path) {
        Ok(now) if socket.is(&now) => Ok(socket),
        Ok(_) => Err(replaced("another file took its place while its mode was being set".to_owned())),
        Err(err) => Err(replaced(format!("it disappeared while its mode was being set ({err})"))),
    }
}

/// What is at `path` itself, never what a symlink there points to, held open so that the chmod
/// reaches that same inode.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_no_follow(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    use rustix::fs::{Mode, OFlags};
    // O_PATH opens a socket (a plain open cannot) without any access to it; O_NOFOLLOW makes a
    // symlink at the path the opened object itself.
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// fchmod refuses an O_PATH descriptor and Linux's fchmodat cannot refuse symlinks (rustix
/// reports it unsupported), but the descriptor's /proc link leads to the very inode it holds.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_mode(_path: &Path, file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    std::fs::set_permissions(link, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_no_follow(path: &Path) -> std::io::Result<((), std::fs::Metadata)> {
    Ok(((), std::fs::symlink_metadata(path)?))
}

/// Without O_PATH the chmod goes by path; the identity check in [`claim`] still catches a swap.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_mode(path: &Path, _opened: &(), mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("wsock").tempdir_in("/tmp").expect("temp dir")
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn the_mode_is_set_on_the_bound_socket() {
        let dir = dir();
        let path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let socket = claim(&path, 0o600).expect("claim");
        assert_eq!(mode_of(&path), 0o600);
        socket.remove_if_ours();
        assert!(!path.exists());
    }

    /// The bind-then-swap race, played in order: what is at the path when the mode is set is a
    /// symlink to a file, which must be neither followed nor chmodded.
    #[test]
    fn a_symlink_in_place_of_the_socket_is_not_followed() {
        let dir = dir();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"data").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let path = dir.path().join("s.sock");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let err = claim(&path, 0o666).expect_err("a symlink is not our socket");
        assert!(matches!(&err, BindError::Replaced { path: named, .. } if named == &path), "{err:?}");
        assert!(err.to_string().contains("no longer a socket"), "{err}");
        assert_eq!(mode_of(&target), 0o640, "the symlink's target was chmodded");
        assert!(std::fs::symlink_metadata(&path).expect("lstat").file_type().is_symlink(), "the link was touched");
    }

    /// The swap after the socket was opened: the mode still reaches the socket (wherever it now
    /// is), never the new file at the path, and the identity check reports the swap.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_mode_reaches_the_opened_inode_not_what_the_path_became() {
        let dir = dir();
        let path = dir.path().join("s.sock");
        let moved = dir.path().join("moved.sock");
        let target = dir.path().join("precious");
        std::fs::write(&target, b"data").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let (file, meta) = open_no_follow(&path).expect("open");
        assert!(meta.file_type().is_socket());
        std::fs::rename(&path, &moved).expect("move the socket away");
        std::os::unix::fs::symlink(&target, &path).expect("symlink in its place");
        set_mode(&path, &file, 0o604).expect("chmod through the descriptor");
        assert_eq!(mode_of(&moved), 0o604, "the socket itself got the mode");
        assert_eq!(mode_of(&target), 0o640, "the symlink's target was chmodded");
    }

    #[test]
    fn directories_others_can_write_are_refused_unless_sticky() {
        let dir = dir();
        for (mode, refused) in [
            (0o700, false),
            (0o755, false),
            (0o770, true),
            (0o702, true),
            (0o777, true),
            (0o1777, false),
            (0o1770, false),
        ] {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
            let outcome = check_directory(dir.path());
            assert_eq!(outcome.is_err(), refused, "mode {mode:04o}: {outcome:?}");
        }
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("write");
        let err = check_directory(&file).expect_err("a file is not a directory");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
