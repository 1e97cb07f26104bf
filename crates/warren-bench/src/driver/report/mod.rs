//! The Markdown report, and where it goes in `BENCHMARKS.md`.

mod environment;
mod format;
mod gob;
mod logs_files;
mod render;
mod shm;
mod splice;
mod targets;

pub use environment::Environment;
pub use render::render;
pub use splice::{BEGIN, END, HEADING, splice_into};
