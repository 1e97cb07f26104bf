//! Supervision: keep a set of programs running according to a [`plan::Plan`] — restarts with
//! backoff, crash-loop limits, dependencies, health — as a pure state machine
//! ([`machine::Machine`]) driven by a runner that owns the processes.
//!
//! One task (the runner's event loop) owns the machine, the children and what users see of
//! them; each started instance of a program has its own task, which alone stops its child and
//! talks to the runner over a channel. [`Supervisor`] is the handle users hold.

mod backoff;
mod channel;
mod events;
mod http;
mod instance;
pub mod machine;
mod order;
pub mod plan;
mod probe;
mod reload;
mod rolled;
mod runner;
mod supervisor;

#[cfg(test)]
mod tests;

pub use backoff::{Jitter, delay};
pub use channel::{Rolled, Update};
pub use reload::PlanDiff;
pub use runner::endpoint_variable;
pub use supervisor::{ProgramStatus, Supervisor, UnknownProgram};
