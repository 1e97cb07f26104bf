//! The driver behind `bench/run-all` (`wb-run`): runs every implementation through every
//! workload, several rounds, implementations interleaved within a round (their order rotating
//! from round to round), and writes the figures — medians over the rounds with their spread,
//! ratios taken per round — into `BENCHMARKS.md`.

mod cells;
mod config;
mod gob;
mod imp;
mod lifecycle;
mod logs;
mod logs_files;
mod process;
pub mod report;
mod runner;
mod store;
pub mod supervisor;

pub use config::Config;
pub use imp::{Imp, Pin};
pub use runner::run;
pub use store::{RoundInfo, Store, m1_key, m3_key};
