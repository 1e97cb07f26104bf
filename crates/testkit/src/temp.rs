//! Temporary directories and unique names.

/// A private directory with a short path under `/tmp` (a Unix socket's path is limited to 107
/// bytes), its name starting with `prefix`; removed on drop.
pub fn socket_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp").expect("temp dir")
}

/// A name no other run on this machine uses: this process's pid and 64 random bits.
pub fn unique_tag() -> String {
    format!("{}-{:016x}", std::process::id(), fastrand::u64(..))
}
