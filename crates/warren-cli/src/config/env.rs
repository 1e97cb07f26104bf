//! What a program's environment gets from files, and the `${...}` expansion of its values.
//!
//! A program's environment is, the last one winning: warren's own (unless `clear_env`), the
//! `.env` beside the configuration (unless `dotenv = false`, as foreman, honcho and compose read
//! it), each of its `env_file`s in order, its `env`. `${...}` in `command`, `shell`, `args`,
//! `env`, `cwd` and the probes' `exec`, `shell` and `connect` is expanded (`interpolate`) from
//! warren's environment with the files' variables over it — not from `env`, whose values are
//! being expanded. A `log` pattern is not: `$` is its end-of-line anchor.
//!
//! Runs between `raw` and `plan`: the values are rewritten in place, so every later check sees
//! what the program will get, and an unset variable is reported at its value's line.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use warren::supervise::plan::Program;

use super::error::{Collector, ConfigError, ErrorKind, Section};
use super::interpolate;
use super::raw::{Field, OneOrMany, RawFile, RawProgram, StringOr};

/// The file read beside the configuration unless `dotenv = false`.
pub(crate) const DOTENV: &str = ".env";

/// Variables in the order their files give them (a later one of the same name wins).
pub(crate) type Vars = Vec<(String, String)>;

/// Expands the values of every section in place and gives, per program of `file` (in order),
/// the variables its env files set and the files they came from.
pub(crate) fn prepare(file: &mut RawFile, base: &Path, errors: &mut Collector<'_>) -> Vec<(Vars, Vec<PathBuf>)> {
    let warren: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let mut files = Files { base, read: HashMap::new() };
    let mut inherited: (Option<Spanned<OneOrMany>>, Option<bool>) = (None, None);
    if let Some(defaults) = file.defaults.as_mut().and_then(|d| d.body.as_mut()) {
        inherited = (defaults.env_file.clone(), defaults.dotenv.as_ref().map(|d| *d.get_ref()));
        let dotenv = inherited.1.unwrap_or(true);
        if let Some((vars, _)) = files.of(&Section::Defaults, dotenv, &inherited.0, errors) {
            expand_section(defaults, &lookup(&warren, &vars), &Section::Defaults, errors);
        }
    }
    let mut per_program = Vec::with_capacity(file.programs.len());
    for section in &mut file.programs {
        let Some(body) = section.body.as_mut() else {
            per_program.push((Vars::new(), Vec::new()));
            continue;
        };
        let at = Section::Program(section.name.get_ref().clone());
        let dotenv = body.dotenv.as_ref().map(|d| *d.get_ref()).or(inherited.1).unwrap_or(true);
        // An inherited `env_file` that cannot be read was reported against `[defaults]`.
        let (env_file, owner) = match &body.env_file {
            Some(own) => (Some(own.clone()), at.clone()),
            None => (inherited.0.clone(), Section::Defaults),
        };
        let Some((vars, read)) = files.of(&owner, dotenv, &env_file, errors) else {
            // What the missing file would have set is unknown: "not set" errors would mislead.
            per_program.push((Vars::new(), Vec::new()));
            continue;
        };
        expand_section(body, &lookup(&warren, &vars), &at, errors);
        per_program.push((vars, read));
    }
    per_program
}

/// Puts the env files' variables under the program's own `env`, and notes the files.
pub(crate) fn apply(program: &mut Program, (vars, files): (Vars, Vec<PathBuf>)) {
    program.env_files = files;
    if vars.is_empty() {
        return;
    }
    let mut merged: BTreeMap<String, String> = vars.into_iter().collect();
    merged.extend(program.env.drain(..));
    program.env = merged.into_iter().collect();
}

/// The files' variables over warren's environment.
fn lookup<'v>(warren: &'v HashMap<String, String>, vars: &'v Vars) -> impl Fn(&str) -> Option<String> + 'v {
    let files: HashMap<&str, &str> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    move |name| files.get(name).map(|v| (*v).to_owned()).or_else(|| warren.get(name).cloned())
}

/// Env files read so far, each once, so that a file named by many programs (or a broken one)
/// is read and reported once.
struct Files<'b> {
    base: &'b Path,
    read: HashMap<PathBuf, Option<Vars>>,
}

impl Files<'_> {
    /// The variables of the `.env` (if `dotenv` and it exists) and of `env_file`, in order; `None`
    /// if one of them could not be read (reported). With them, the files read.
    fn of(
        &mut self,
        at: &Section,
        dotenv: bool,
        env_file: &Field<OneOrMany>,
        errors: &mut Collector<'_>,
    ) -> Option<(Vars, Vec<PathBuf>)> {
        let mut vars = Vars::new();
        let mut read = Vec::new();
        let mut ok = true;
        let auto = self.base.join(DOTENV);
        if dotenv && auto.exists() {
            ok &= self.read(&auto, None, errors).map(|v| vars.extend(v)).is_some();
            read.push(auto);
        }
        if let Some(env_file) = env_file {
            for path in &env_file.get_ref().0 {
                let path: PathBuf = self.base.join(path).components().collect();
                let named = (at, env_file.span());
                ok &= self.read(&path, Some(named), errors).map(|v| vars.extend(v)).is_some();
                if !read.contains(&path) {
                    read.push(path);
                }
            }
        }
        ok.then_some((vars, read))
    }

    fn read(
        &mut self,
        path: &Path,
        named: Option<(&Section, Range<usize>)>,
        errors: &mut Collector<'_>,
    ) -> Option<Vars> {
        if let Some(known) = self.read.get(path) {
            return known.clone();
        }
        let vars = match std::fs::read_to_string(path) {
            Ok(text) => parse(path, &text, errors),
            Err(error) => {
                let kind = ErrorKind::EnvFileRead { path: path.to_path_buf(), error };
                match named {
                    Some((at, span)) => errors.push(Some(span), at, Some("env_file"), kind),
                    None => errors.push(None, &Section::File, None, kind),
                }
                None
            }
        };
        self.read.insert(path.to_path_buf(), vars.clone());
        vars
    }
}

/// The variables of an env file in dotenv syntax (dotenvy: quotes, `export`, comments, and its
/// own `$NAME` substitution within the file); its errors name the file and the line.
pub(crate) fn parse(path: &Path, text: &str, errors: &mut Collector<'_>) -> Option<Vars> {
    let mut vars = Vars::new();
    let mut ok = true;
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (line, kind, more) = match item {
            Ok((name, value)) if value.contains('\0') => (None, ErrorKind::NulInEnv(name), true),
            Ok(pair) => {
                vars.push(pair);
                continue;
            }
            // dotenvy gives the line's text, not its number: the first line that starts with
            // that text is the one (an identical earlier line would have failed first).
            Err(dotenvy::Error::LineParse(text_of_line, column)) => {
                let line = line_start_of(text, &text_of_line);
                (line, ErrorKind::EnvFileSyntax { text: text_of_line, column }, true)
            }
            Err(other) => {
                let error = std::io::Error::other(other.to_string());
                (None, ErrorKind::EnvFileRead { path: path.to_path_buf(), error }, false)
            }
        };
        ok = false;
        errors.push_error(ConfigError { file: path.to_path_buf(), line, section: Section::File, field: None, kind });
        if !more {
            break;
        }
    }
    ok.then_some(vars)
}

/// The 1-based number of the first line of `text` that starts with `line`.
fn line_start_of(text: &str, line: &str) -> Option<usize> {
    if line.is_empty() {
        return None;
    }
    let mut start = 0;
    for (index, current) in text.split_inclusive('\n').enumerate() {
        if text[start..].starts_with(line) {
            return Some(index + 1);
        }
        start += current.len();
    }
    None
}

/// Rewrites the expandable values of one section, reporting what cannot be expanded.
fn expand_section(
    body: &mut RawProgram,
    lookup: &dyn Fn(&str) -> Option<String>,
    at: &Section,
    errors: &mut Collector<'_>,
) {
    let mut expand = |span: &Range<usize>, text: &mut String, field: &str| match interpolate::expand(text, lookup) {
        Ok(expanded) => *text = expanded,
        Err(problem) => errors.push(Some(span.clone()), at, Some(field), ErrorKind::Expansion(problem.to_string())),
    };
    for (value, field) in [(&mut body.command, "command"), (&mut body.shell, "shell"), (&mut body.cwd, "cwd")] {
        if let Some(value) = value {
            let span = value.span();
            expand(&span, value.get_mut(), field);
        }
    }
    if let Some(args) = &mut body.args {
        let span = args.span();
        for arg in args.get_mut() {
            expand(&span, arg, "args");
        }
    }
    if let Some(env) = &mut body.env {
        let span = env.span();
        for (name, value) in env.get_mut() {
            expand(&span, value, &format!("env.{name}"));
        }
    }
    if let Some(ready) = &mut body.ready {
        if let StringOr::Table(table) = ready.get_mut() {
            probe(&mut expand, "ready", &mut table.exec, &mut table.shell, &mut table.connect, &mut table.http);
        }
    }
    if let Some(health) = &mut body.health {
        if let StringOr::Table(table) = health.get_mut() {
            probe(&mut expand, "health", &mut table.exec, &mut table.shell, &mut table.connect, &mut table.http);
        }
    }
}

fn probe(
    expand: &mut impl FnMut(&Range<usize>, &mut String, &str),
    table: &str,
    exec: &mut Field<Vec<String>>,
    shell: &mut Field<String>,
    connect: &mut Field<String>,
    http: &mut Field<String>,
) {
    if let Some(exec) = exec {
        let span = exec.span();
        for word in exec.get_mut() {
            expand(&span, word, &format!("{table}.exec"));
        }
    }
    for (value, key) in [(shell, "shell"), (connect, "connect"), (http, "http")] {
        if let Some(value) = value {
            let span = value.span();
            expand(&span, value.get_mut(), &format!("{table}.{key}"));
        }
    }
}
