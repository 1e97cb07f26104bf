//! Supervision: keep a set of programs running according to a [`plan::Plan`] — restarts with
//! backoff, crash-loop limits, dependencies, health — as a pure state machine
//! ([`machine::Machine`]) driven by a runner that owns the processes.

mod backoff;
mod events;
pub mod machine;
mod order;
pub mod plan;
mod runner;

#[cfg(test)]
mod tests;

pub use backoff::{Jitter, delay};
pub use runner::{Notice, ProgramStatus, Supervisor, UnknownProgram};
