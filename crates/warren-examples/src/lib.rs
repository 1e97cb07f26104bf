//! Shared bits of warren's example programs.

use std::path::PathBuf;

/// The path of a sibling binary (built into the same directory as the running one).
pub fn sibling(name: &str) -> PathBuf {
    let dir = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from)).unwrap_or_default();
    dir.join(name)
}

/// Logs to stderr, filtered by `RUST_LOG` (default info), coloured only on a terminal. Under a
/// warren host (`WARREN_NAME` is set) the timestamp is left out: the host's log adds its own.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    if std::env::var_os("WARREN_NAME").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Todo {
    #[serde(rename = "ID")]
    pub id: String,
}
