//! What to supervise: the validated form of a configuration. Only a [`Plan`] reaches the
//! supervisor, and [`Plan::new`] is the only way to make one: every dependency names another
//! program of the plan once, there is no cycle, and every condition can be met. Parsing a file
//! and checking its values (of a TOML file, say) happen before, so that every value of a
//! [`Program`] is already checked and every default resolved.

mod error;
mod graph;
mod program;
mod replicas;

pub use error::{PlanError, Problem, ProblemKind};
pub use program::{
    Backoff, Condition, CrashLoop, Dependency, Health, HealthCheck, HttpProbe, Invocation, OnSocketLost, Program,
    ReadyCheck, Restart, RestartMode,
};
pub use replicas::{MAX_REPLICAS, Replica, ScaleError, expand_dependencies, replica};
pub use warren_rpc::Protocol;

/// Every program to run, in the order they were given; checked as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    programs: Vec<Program>,
}

impl Plan {
    /// A plan of `programs`, if together they make one: at least one program, unique names, and
    /// a dependency graph that can be carried out. Otherwise every problem found.
    pub fn new(programs: Vec<Program>) -> Result<Plan, PlanError> {
        let problems = graph::check(&programs);
        if problems.is_empty() { Ok(Plan { programs }) } else { Err(PlanError::new(problems)) }
    }

    /// The programs, in the order they were given.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// The program named `name`.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// The names of the programs started only when asked (`autostart = false`), in plan order.
    pub fn manual(&self) -> Vec<&str> {
        self.programs.iter().filter(|p| !p.autostart).map(|p| p.name.as_str()).collect()
    }

    /// The programs in start order, by levels: first those that depend on nothing, then those
    /// whose dependencies are all in earlier levels, and so on. The programs of one level can
    /// start in parallel; within a level they keep the order they were given in.
    pub fn start_order(&self) -> Vec<Vec<String>> {
        graph::start_order(&self.programs)
    }
}
