//! Where a running `warren up` listens for the other subcommands: one control socket per
//! configuration directory, so that `warren status` run in the same directory finds it, and a
//! second `warren up` there finds it taken.

use std::path::{Path, PathBuf};

/// The control socket for the instance that runs `config_dir`'s programs. `WARREN_CONTROL`
/// overrides it (for tests and unusual setups).
pub fn control_socket(config_dir: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("WARREN_CONTROL") {
        return PathBuf::from(path);
    }
    let dir = config_dir.canonicalize().unwrap_or_else(|_| config_dir.to_path_buf());
    base_dir().join(format!("{:016x}.sock", fnv1a(dir.as_os_str().as_encoded_bytes())))
}

/// Where the instance for `config_dir` keeps what outlives it (its log files):
/// `$XDG_STATE_HOME/warren/<dir name>-<hash>`, or `~/.local/state/warren/…`. The directory's
/// name makes it easy to find; the hash of its full path keeps two `app/` directories apart.
pub fn state_dir(config_dir: &Path) -> PathBuf {
    let dir = config_dir.canonicalize().unwrap_or_else(|_| config_dir.to_path_buf());
    let name = dir.file_name().map_or_else(|| "root".to_owned(), |n| n.to_string_lossy().into_owned());
    let hash = fnv1a(dir.as_os_str().as_encoded_bytes());
    let base = match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        Some(state) if state.is_absolute() => state,
        _ => match std::env::var_os("HOME").map(PathBuf::from) {
            Some(home) if home.is_absolute() => home.join(".local/state"),
            _ => PathBuf::from(format!("/tmp/warren-{}-state", rustix::process::geteuid().as_raw())),
        },
    };
    base.join("warren").join(format!("{name}-{:08x}", hash >> 32))
}

/// `$XDG_RUNTIME_DIR/warren`, or `/tmp/warren-<uid>`: short, per user.
fn base_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() && dir.as_os_str().len() < 60 => dir.join("warren"),
        // The uid keeps users apart in the shared temporary directory, where the name can be
        // taken first by someone else: `private_dir` checks it before it is trusted.
        _ => {
            let tmp = std::env::temp_dir();
            let tmp = if tmp.is_absolute() && tmp.as_os_str().len() < 60 { tmp } else { PathBuf::from("/tmp") };
            tmp.join(format!("warren-{}", rustix::process::geteuid().as_raw()))
        }
    }
}

/// FNV-1a: a hash that stays the same across Rust versions, unlike std's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_socket_per_directory_and_short_enough() {
        let a = control_socket(Path::new("/srv/a"));
        let b = control_socket(Path::new("/srv/b"));
        assert_ne!(a, b);
        assert_eq!(a, control_socket(Path::new("/srv/a")));
        assert!(a.as_os_str().len() <= warren_rpc::MAX_UNIX_PATH, "{}", a.display());
    }

    #[test]
    fn one_state_directory_per_configuration_directory_named_after_it() {
        let a = state_dir(Path::new("/srv/one/app"));
        let b = state_dir(Path::new("/srv/two/app"));
        assert_ne!(a, b);
        for dir in [&a, &b] {
            let name = dir.file_name().expect("a name").to_string_lossy();
            assert!(name.starts_with("app-"), "{}", dir.display());
            assert_eq!(dir.parent().and_then(Path::file_name), Some("warren".as_ref()));
        }
    }
}
