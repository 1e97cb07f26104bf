//! The entry points: a file, or its text, to a checked [`Plan`].

use std::path::Path;

use warren::supervise::plan::Plan;

use super::error::{Collector, ConfigError, ConfigErrors, ErrorKind, Section};
use super::{FileSettings, env, graph, plan, procfile, raw, replicas};

/// Reads and checks the configuration file at `path`. On success, the programs are in the
/// order of the file; [`Plan::start_order`] gives the order to start them in.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    load_with_settings(path).map(|(plan, _)| plan)
}

/// [`load`], with the file-wide settings.
pub fn load_with_settings(path: &Path) -> Result<(Plan, FileSettings), ConfigErrors> {
    if procfile::is_procfile(path) {
        return procfile::load(path);
    }
    let text = std::fs::read_to_string(path).map_err(|err| file_error(path, ErrorKind::Read(err)))?;
    parse_with_settings(&text, path)
}

/// Checks configuration text read from `path`. Paths in it are relative to the directory of
/// `path`; errors name `path` as given.
pub fn parse(text: &str, path: &Path) -> Result<Plan, ConfigErrors> {
    parse_with_settings(text, path).map(|(plan, _)| plan)
}

/// [`parse`], with the file-wide settings.
pub fn parse_with_settings(text: &str, path: &Path) -> Result<(Plan, FileSettings), ConfigErrors> {
    let absolute = std::path::absolute(path).map_err(|err| file_error(path, ErrorKind::BaseDir(err)))?;
    let base = absolute.parent().unwrap_or(Path::new("/"));
    let mut errors = Collector::new(path, text);
    let mut checked = None;
    let mut settings = FileSettings::default();
    if let Some(mut file) = raw::read(text, &mut errors) {
        settings.http = file.http;
        settings.pid_namespace = file.pid_namespace;
        settings.logs_dir = file.logs_dir.as_ref().map(|dir| base.join(dir.get_ref()).components().collect());
        let file_env = env::prepare(&mut file, base, &mut errors);
        let built = plan::build(&file, base, &mut errors);
        let counts = replicas::counts(&built, &mut errors);
        settings.log_limits = built.iter().map(|b| (b.program.name.clone(), b.log_limits)).collect();
        let (mut programs, origins): (Vec<_>, Vec<_>) = built.into_iter().map(|b| (b.program, b.origin)).unzip();
        for (program, vars) in programs.iter_mut().zip(file_env) {
            env::apply(program, vars);
        }
        // Programs run in the configuration's directory unless told otherwise, so relative
        // paths in commands and shell lines mean the same wherever `warren up` is started.
        for program in &mut programs {
            program.cwd.get_or_insert_with(|| base.to_path_buf());
        }
        checked = graph::plan(programs, &origins, &mut errors)
            .and_then(|plan| replicas::expand(plan, &counts, &mut settings.log_limits, &mut errors));
    }
    match (errors.finish(), checked) {
        (Some(errors), _) => Err(errors),
        (None, Some(plan)) => Ok((plan, settings)),
        // `raw::read` gives no file only after reporting a syntax error.
        (None, None) => Err(file_error(path, ErrorKind::NoPrograms)),
    }
}

fn file_error(path: &Path, kind: ErrorKind) -> ConfigErrors {
    ConfigError { file: path.to_path_buf(), line: None, section: Section::File, field: None, kind }.into()
}
