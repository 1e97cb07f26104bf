//! The configuration file (`warren.toml`), read in two phases: [`raw`] is what the file said,
//! checked for syntax, key names and types; [`plan`] (with [`probe`]) and [`graph`] turn it into a
//! [`warren::supervise::plan::Plan`] with every value parsed, every default resolved and the
//! dependency graph checked. Only the plan goes on to the supervisor. Every error names the
//! file, the line, the program and the field; `docs/CONFIG.md` describes the format.

mod error;
mod graph;
mod load;
mod plan;
mod probe;
#[cfg(test)]
mod props;
mod raw;
#[cfg(test)]
mod tests;

// `load` is what the CLI calls; the rest is there for the supervisor and for tests.
#[cfg_attr(not(test), expect(unused_imports, reason = "the CLI does not name these types yet"))]
pub(crate) use error::{ConfigError, ConfigErrors};
#[cfg_attr(not(test), expect(unused_imports, reason = "the supervisor orders programs itself for now"))]
pub(crate) use graph::topological_order;
pub(crate) use load::load;
#[cfg_attr(not(test), expect(unused_imports, reason = "only `load` has a caller yet"))]
pub(crate) use load::parse;
