//! The configuration file (`warren.toml`), read in two phases: `raw` is what the file said,
//! checked for syntax, key names and types; `plan` (with `checker`, `probe` and `settings`)
//! turns it into programs with every value parsed and every default resolved, and
//! [`Plan::new`] checks them as a whole (`graph` reports what it finds at the file's lines). Only the plan goes on to the
//! supervisor. Between the two, `env` reads the env files and expands `${...}` in the raw values
//! (`interpolate`). A Procfile (`procfile`) is read as the warren.toml it equals.
//! Every error names the file, the line, the program and the field;
//! `docs/CONFIG.md` describes the format.
//!
//! [`Plan::new`]: warren::supervise::plan::Plan::new

mod checker;
mod env;
mod error;
mod file_settings;
mod graph;
mod http;
mod interpolate;
mod limits;
mod listen;
mod load;
mod logs;
mod name;
mod plan;
mod probe;
mod procfile;
mod raw;
mod replicas;
mod settings;
mod values;

pub use error::{ConfigError, ConfigErrors, ErrorKind, Section};
pub use file_settings::FileSettings;
pub use load::{load, load_with_settings, parse, parse_with_settings};
pub use logs::LogLimits;
pub use procfile::{find, import};
