//! The entry points: a file, or its text, to a checked [`Plan`].

use std::path::Path;

use warren::supervise::plan::Plan;

use super::error::{Collector, ConfigError, ConfigErrors, ErrorKind, Section};
use super::{graph, plan, raw};

/// Reads and checks the configuration file at `path`. On success, the programs are in the
/// order of the file; [`super::topological_order`] gives the order to start them in.
pub(crate) fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| file_error(path, ErrorKind::Read(err)))?;
    parse(&text, path)
}

/// Checks configuration text read from `path`. Paths in it are relative to the directory of
/// `path`; errors name `path` as given.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Plan, ConfigErrors> {
    let absolute = std::path::absolute(path).map_err(|err| file_error(path, ErrorKind::BaseDir(err)))?;
    let base = absolute.parent().unwrap_or(Path::new("/"));
    let mut errors = Collector::new(path, text);
    let mut programs = Vec::new();
    if let Some(file) = raw::read(text, &mut errors) {
        if file.programs.is_empty() {
            errors.push(None, &Section::File, None, ErrorKind::NoPrograms);
        }
        let built = plan::build(&file, base, &mut errors);
        graph::check(&built, &mut errors);
        programs = built.into_iter().map(|b| b.program).collect();
        // Programs run in the configuration's directory unless told otherwise, so relative
        // paths in commands and shell lines mean the same wherever `warren up` is started.
        for program in &mut programs {
            let program: &mut warren::supervise::plan::Program = program;
            program.cwd.get_or_insert_with(|| base.to_path_buf());
        }
    }
    match errors.finish() {
        Some(errors) => Err(errors),
        None => Ok(Plan { programs }),
    }
}

fn file_error(path: &Path, kind: ErrorKind) -> ConfigErrors {
    ConfigError { file: path.to_path_buf(), line: None, section: Section::File, field: None, kind }.into()
}
