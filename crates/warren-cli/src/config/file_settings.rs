//! The settings that belong to the whole file rather than to one program: where the log files
//! go and each program's limits for them, the HTTP endpoint, the PID namespace.

use std::collections::HashMap;
use std::path::PathBuf;

use super::LogLimits;

/// A configuration's file-wide settings: what `warren up` needs besides the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSettings {
    /// `logs_dir`, made absolute against the file's directory; the instance's state directory
    /// when `None`.
    pub logs_dir: Option<PathBuf>,
    /// Each program's log-file limits (the defaults for a program not listed).
    pub log_limits: HashMap<String, LogLimits>,
    /// `[http] listen`: where `warren up` serves its HTTP endpoint (none without `[http]`).
    pub http: Option<std::net::SocketAddr>,
    /// `pid_namespace`: the programs run in a PID namespace that ends with `warren up`.
    pub pid_namespace: bool,
}
