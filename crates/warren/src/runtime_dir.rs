//! The host's private runtime directory: where children's sockets live.
//!
//! Short (a Unix socket path is limited to 107 bytes), private (0700, created that way by
//! mkdir so there is no window), unique per host, removed when the host ends, and swept on the
//! next start if a killed host could not remove it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::sys;

const PREFIX: &str = "warren-";

#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    /// Creates `$XDG_RUNTIME_DIR/warren-<pid>-<random>` (or under `/tmp`).
    pub fn create() -> io::Result<RuntimeDir> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute() && dir.is_dir() && dir.as_os_str().len() < 60)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        RuntimeDir::create_in(&base)
    }

    pub fn create_in(base: &Path) -> io::Result<RuntimeDir> {
        sweep_stale(base);
        let pid = sys::current_pid();
        for _ in 0..16 {
            let path = base.join(format!("{PREFIX}{pid}-{:06x}", fastrand::u32(..0x100_0000)));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(RuntimeDir { path }),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "could not pick a unique runtime directory name"))
    }

    /// The directory an earlier image of this process made (a hand-over).
    pub fn adopt(path: PathBuf) -> io::Result<RuntimeDir> {
        let dir = RuntimeDir { path };
        dir.ensure()?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the directory again if something removed it (a `/tmp` cleaner sweeping old
    /// directories), so that later children can still start; refuses one that is not ours,
    /// which someone could have made at the freed name in between.
    pub fn ensure(&self) -> io::Result<()> {
        match std::fs::DirBuilder::new().mode(0o700).create(&self.path) {
            Ok(()) => {
                warn!("runtime directory {} had been removed; made it again", self.path.display());
                Ok(())
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(&self.path)?;
                if meta.is_dir() && meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o077 == 0 {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("{} is no longer our private directory", self.path.display()),
                    ))
                }
            }
            Err(err) => Err(err),
        }
    }

    /// A path for `name` with `suffix` that fits the Unix socket limit, even for long names.
    pub fn file_for(&self, name: &str, suffix: &str) -> PathBuf {
        let clean: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let candidate = self.path.join(format!("{clean}{suffix}"));
        if candidate.as_os_str().len() <= warren_rpc::MAX_UNIX_PATH && !clean.is_empty() {
            return candidate;
        }
        let mut hasher = RandomState::new().build_hasher();
        hasher.write(name.as_bytes());
        self.path.join(format!("c{:08x}{suffix}", hasher.finish() as u32))
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            debug!("cannot remove runtime dir {}: {err}", self.path.display());
        }
    }
}

/// The pid in a runtime dir name `warren-<pid>-<6 hex digits>`; anything else is not ours.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, suffix) = name.strip_prefix(PREFIX)?.split_once('-')?;
    let well_formed = suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    pid.parse::<u32>().ok().filter(|&pid| pid > 0 && well_formed)
}

/// Removes runtime directories of hosts that no longer exist (killed before they could clean
/// up), so sockets do not pile up as they do under go-plugin.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    let uid = sys::effective_uid();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else { continue };
        let ours = entry.metadata().is_ok_and(|meta| meta.is_dir() && meta.uid() == uid);
        if ours && pid != sys::current_pid() && !sys::process_exists(pid) {
            debug!("removing stale runtime dir {}", entry.path().display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_names_are_swept() {
        assert_eq!(owner_pid("warren-4242-0a1b2c"), Some(4242));
        for other in ["warren-0", "warren-0-0a1b2c", "warren-12", "warren-12-xyz", "warren-ctl", "warren-12-0a1b2c3"] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }
}
