//! How a process ended.

use std::fmt;

use crate::signal::Signal;

/// How a process ended, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(Signal),
    /// The kernel's OOM killer ended it, its cgroup being at its `memory_max` (in bytes).
    OutOfMemory {
        /// The limit it reached.
        memory_max: u64,
    },
    /// Its status could not be read (waiting for it failed, or the runtime shut down first).
    Unknown,
}

impl Exit {
    /// Reads a status from `std::process`.
    pub fn from_status(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal().and_then(Signal::from_number)) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Unknown,
        }
    }

    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Signal(signal) => write!(f, "killed by {signal}"),
            Exit::OutOfMemory { memory_max } => {
                write!(f, "killed: out of memory (memory_max {})", crate::limits::size(*memory_max))
            }
            Exit::Unknown => f.write_str("ended with a status that could not be read"),
        }
    }
}
