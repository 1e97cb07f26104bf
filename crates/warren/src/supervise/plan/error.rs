//! Why a list of programs is not a [`Plan`](super::Plan): every problem found, each naming the
//! program and the `depends_on` entry it is about, so that a caller can point at the place in
//! its own source (a line of a configuration file, say).

use std::fmt;

/// Every problem that keeps the programs from being a plan, in the order of the programs (and
/// of their `depends_on` entries), the cycles last.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join(.problems))]
pub struct PlanError {
    problems: Vec<Problem>,
}

impl PlanError {
    pub(super) fn new(problems: Vec<Problem>) -> PlanError {
        PlanError { problems }
    }

    /// The problems, at least one.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

fn join(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
}

/// One problem, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The index of the program it is about, in the list given to [`Plan::new`](super::Plan::new)
    /// (`None` for a problem of the list as a whole).
    pub program: Option<usize>,
    /// The index of the `depends_on` entry it is about, if it is about one.
    pub entry: Option<usize>,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(program) = self.program {
            write!(f, "program #{}", program + 1)?;
            if let Some(entry) = self.entry {
                write!(f, ", depends_on #{}", entry + 1)?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What can be wrong with a list of programs as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// The list is empty.
    #[error("no programs")]
    NoPrograms,
    /// Two programs have this name.
    #[error("two programs are named {0:?}")]
    DuplicateProgram(String),
    /// A dependency names no program of the list.
    #[error("unknown program {0:?}")]
    UnknownDependency(String),
    /// A program depends on itself.
    #[error("a program cannot depend on itself")]
    SelfDependency,
    /// A program lists the same dependency twice.
    #[error("{0:?} is listed twice")]
    DuplicateDependency(String),
    /// The programs depend on each other in a circle, given from the earliest of them back to it.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// Condition `healthy` on a program that has no health check.
    #[error("condition \"healthy\" on {0:?}, which has no health check")]
    NoHealthCheck(String),
    /// Condition `exited_ok` on a program that restarts always, and so never finishes.
    #[error("condition \"exited_ok\" on {0:?}, which has restart = \"always\" and so never finishes")]
    ExitedOkWithAlways(String),
    /// A program started with the others depends on one that is started only when asked.
    #[error(
        "{0:?} has autostart = false, so this program would wait for it forever (give this one autostart = false too)"
    )]
    DependsOnManual(String),
}
