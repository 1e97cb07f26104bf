//! The entry points: a file, or its text, to a checked [`Plan`].

use std::path::Path;

use warren::supervise::plan::Plan;

use super::error::{Collector, ConfigError, ConfigErrors, ErrorKind, Section};
use super::{env, graph, plan, procfile, raw};

/// Reads and checks the configuration file at `path`. On success, the programs are in the
/// order of the file; [`Plan::start_order`] gives the order to start them in.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    if procfile::is_procfile(path) {
        return procfile::load(path);
    }
    let text = std::fs::read_to_string(path).map_err(|err| file_error(path, ErrorKind::Read(err)))?;
    parse(&text, path)
}

/// Checks configuration text read from `path`. Paths in it are relative to the directory of
/// `path`; errors name `path` as given.
pub fn parse(text: &str, path: &Path) -> Result<Plan, ConfigErrors> {
    let absolute = std::path::absolute(path).map_err(|err| file_error(path, ErrorKind::BaseDir(err)))?;
    let base = absolute.parent().unwrap_or(Path::new("/"));
    let mut errors = Collector::new(path, text);
    let mut checked = None;
    if let Some(mut file) = raw::read(text, &mut errors) {
        let file_env = env::prepare(&mut file, base, &mut errors);
        let (mut programs, origins): (Vec<_>, Vec<_>) =
            plan::build(&file, base, &mut errors).into_iter().map(|b| (b.program, b.origin)).unzip();
        for (program, vars) in programs.iter_mut().zip(file_env) {
            env::apply(program, vars);
        }
        // Programs run in the configuration's directory unless told otherwise, so relative
        // paths in commands and shell lines mean the same wherever `warren up` is started.
        for program in &mut programs {
            program.cwd.get_or_insert_with(|| base.to_path_buf());
        }
        checked = graph::plan(programs, &origins, &mut errors);
    }
    match (errors.finish(), checked) {
        (Some(errors), _) => Err(errors),
        (None, Some(plan)) => Ok(plan),
        // `raw::read` gives no file only after reporting a syntax error.
        (None, None) => Err(file_error(path, ErrorKind::NoPrograms)),
    }
}

fn file_error(path: &Path, kind: ErrorKind) -> ConfigErrors {
    ConfigError { file: path.to_path_buf(), line: None, section: Section::File, field: None, kind }.into()
}
