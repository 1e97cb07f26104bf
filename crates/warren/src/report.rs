//! What a stop reports: how the child ended, the steps taken, and what it left behind.

use std::fmt;
use std::time::Duration;

use crate::signal::Signal;

/// How a stop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The child exited by itself (after being asked, or before).
    Exited {
        /// Its exit code.
        code: i32,
    },
    /// The child died of a signal: the stop signal it did not handle, or another.
    Signalled {
        /// The signal that ended it.
        signal: Signal,
    },
    /// The child did not stop within the grace period (or a forced stop was requested) and was
    /// killed with SIGKILL, with its whole process group.
    Killed {
        /// From the stop request until it was gone.
        after: Duration,
    },
    /// The child is gone but its exit status could not be read.
    Unknown,
}

impl Outcome {
    /// Whether the child stopped cleanly on its own: exit code 0.
    pub fn is_clean(&self) -> bool {
        *self == Outcome::Exited { code: 0 }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited { code } => write!(f, "exited with code {code}"),
            Outcome::Signalled { signal } => write!(f, "killed by {signal}"),
            Outcome::Killed { after } => write!(f, "killed with SIGKILL after {after:?}"),
            Outcome::Unknown => f.write_str("ended with a status that could not be read"),
        }
    }
}

/// Something the child left behind that warren had to clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leak {
    /// Processes of the child's group (grandchildren) outlived it; they were killed.
    GroupMembers,
    /// Something outside the group kept the child's stdout/stderr open; warren stopped reading.
    PipesHeldOpen,
    /// Descendants that had left the child's process group outlived it; they were found in
    /// its cgroup and killed.
    Escaped {
        /// How many were killed.
        count: usize,
    },
}

/// The report of one stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// The child's name.
    pub name: String,
    /// The child's pid (and process group).
    pub pid: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// From the stop request until the child was gone.
    pub took: Duration,
    /// The steps taken, in order, with when each happened.
    pub steps: Vec<(Duration, Step)>,
    /// What it left behind, which warren cleaned up.
    pub leaks: Vec<Leak>,
    /// The child had not removed its socket file; warren did.
    pub removed_socket: bool,
}

/// One action of the stop procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The child had exited before the stop began.
    AlreadyExited,
    /// The `warren.Shutdown` notification was sent.
    ShutdownCall,
    /// The stop signal was sent to the child's group.
    Signal(Signal),
    /// SIGKILL was sent to the child's group.
    KilledGroup,
}

impl fmt::Display for StopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {}) {} in {:?}", self.name, self.pid, self.outcome, self.took)?;
        for leak in &self.leaks {
            match leak {
                Leak::GroupMembers => f.write_str("; leftover processes in its group were killed")?,
                Leak::PipesHeldOpen => f.write_str("; a process outside its group kept its pipes open")?,
                Leak::Escaped { count } => write!(f, "; {count} descendant(s) outside its group were killed")?,
            }
        }
        Ok(())
    }
}
