//! Phase one: what the file said, checked only for TOML syntax, key names and value types.
//!
//! The structs mirror the file key for key; every value keeps its byte span so that later
//! errors can name its line. Nothing is interpreted here: durations, policies and signals stay
//! strings until [`super::plan`] parses them.
//!
//! The top level (`[defaults]`, `[programs.NAME]`) is walked by hand and each program is
//! deserialized on its own, so that one program's unknown key does not hide the next one's, and
//! so that programs keep the order of the file (toml's own tables sort their keys).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::{Collector, ErrorKind, Section, closest};
pub(crate) use super::values::{DurationText, OneOrMany, RawRpc};

/// A key that may be absent, with the span of its value when present.
pub(crate) type Field<T> = Option<Spanned<T>>;

/// The whole file.
#[derive(Debug, Default)]
pub(crate) struct RawFile {
    /// `logs_dir`, at the top level.
    pub(crate) logs_dir: Field<String>,
    pub(crate) http: Option<std::net::SocketAddr>, // `[http] listen`, read by `super::http`
    /// `pid_namespace`, at the top level.
    pub(crate) pid_namespace: bool,
    pub(crate) defaults: Option<RawSection>,
    /// In the order of the file.
    pub(crate) programs: Vec<RawSection>,
}

/// `[defaults]` or one `[programs.NAME]` table.
#[derive(Debug)]
pub(crate) struct RawSection {
    /// The program's name (`defaults` for `[defaults]`), spanning its key in the header.
    pub(crate) name: Spanned<String>,
    /// `None` when the table has an unknown key or a value of the wrong type (already reported).
    pub(crate) body: Option<RawProgram>,
}

/// One program's keys, exactly as written. `[defaults]` takes the same keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProgram {
    pub(crate) command: Field<String>,
    pub(crate) shell: Field<String>,
    pub(crate) args: Field<Vec<String>>,
    pub(crate) env: Field<BTreeMap<String, String>>,
    pub(crate) clear_env: Field<bool>,
    pub(crate) cwd: Field<String>,
    pub(crate) rpc: Field<RawRpc>,
    pub(crate) ready: Field<StringOr<RawReady>>,
    pub(crate) ready_timeout: Field<DurationText>,
    pub(crate) restart: Field<String>,
    pub(crate) autostart: Field<bool>,
    pub(crate) backoff: Field<RawBackoff>,
    pub(crate) crash_loop: Field<RawCrashLoop>,
    pub(crate) stop_signal: Field<String>,
    pub(crate) grace: Field<DurationText>,
    pub(crate) depends_on: Field<Vec<Spanned<StringOr<RawDependency>>>>,
    pub(crate) health: Field<StringOr<RawHealth>>,
    pub(crate) watchdog: Field<DurationText>,
    pub(crate) on_socket_lost: Field<String>,
    pub(crate) reset_after: Field<DurationText>,
    pub(crate) max_size: Field<String>,
    pub(crate) keep: Field<u32>,
    pub(crate) env_file: Field<OneOrMany>,
    pub(crate) dotenv: Field<bool>,
    pub(crate) socket: Field<String>,
    pub(crate) replicas: Field<u32>,
    pub(crate) user: Field<String>,
    pub(crate) group: Field<String>,
    pub(crate) memory_max: Field<String>,
    pub(crate) cpu_max: Field<String>,
    pub(crate) pids_max: Field<u64>,
    pub(crate) listen: Field<Vec<Spanned<StringOr<RawListen>>>>,
    pub(crate) restart_mode: Field<String>,
    pub(crate) transport: Field<String>,
}

/// The table form of a `listen` entry (the string form is the address alone).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub(crate) address: Spanned<String>,
    pub(crate) name: Field<String>,
    pub(crate) mode: Field<u32>,
}

/// The table form of `ready`: one of `log`, `exec`, `shell`, `connect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReady {
    pub(crate) log: Field<String>,
    pub(crate) exec: Field<Vec<String>>,
    pub(crate) shell: Field<String>,
    pub(crate) connect: Field<String>,
    pub(crate) interval: Field<DurationText>,
    pub(crate) http: Field<String>,
    pub(crate) status: Field<u16>,
    pub(crate) timeout: Field<DurationText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub(crate) initial: Field<DurationText>,
    pub(crate) factor: Field<f64>,
    pub(crate) max: Field<DurationText>,
    pub(crate) jitter: Field<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCrashLoop {
    pub(crate) max_starts: Field<u32>,
    pub(crate) window: Field<DurationText>,
}

/// The table form of a `depends_on` entry (the string form is a name with condition `ready`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDependency {
    pub(crate) name: Spanned<String>,
    pub(crate) condition: Field<String>,
}

/// The table form of `health`: one of `rpc_ping`, `exec`, `shell`, `connect`, and the timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub(crate) rpc_ping: Field<bool>,
    pub(crate) exec: Field<Vec<String>>,
    pub(crate) shell: Field<String>,
    pub(crate) connect: Field<String>,
    pub(crate) interval: Field<DurationText>,
    pub(crate) timeout: Field<DurationText>,
    pub(crate) failures: Field<u32>,
    pub(crate) http: Field<String>,
    pub(crate) status: Field<u16>,
}

/// A key that takes either a word (`ready = "notify"`) or a table (`ready = { log = "..." }`).
#[derive(Debug)]
pub(crate) enum StringOr<T> {
    String(String),
    Table(T),
}

/// What a [`StringOr`] says it expected, in a type error.
pub(crate) trait Expecting {
    const EXPECTING: &'static str;
}

impl Expecting for RawReady {
    const EXPECTING: &'static str = "\"none\", \"notify\", \"warren\" or a table such as { log = \"regex\" }";
}
impl Expecting for RawHealth {
    const EXPECTING: &'static str = "\"none\" or a table such as { rpc_ping = true }";
}
impl Expecting for RawListen {
    const EXPECTING: &'static str = "an address or a table such as { address = \"unix:api.sock\", name = \"api\" }";
}
impl Expecting for RawDependency {
    const EXPECTING: &'static str = "a program name or a table such as { name = \"db\", condition = \"ready\" }";
}

// Written out rather than `#[serde(untagged)]`, whose only error is "data did not match any
// variant": this way a bad key inside the table is reported as such.
impl<'de, T: Deserialize<'de> + Expecting> Deserialize<'de> for StringOr<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Expecting> Visitor<'de> for Either<T> {
            type Value = StringOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<StringOr<T>, E> {
                Ok(StringOr::String(text.to_owned()))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<StringOr<T>, M::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StringOr::Table)
            }
        }
        deserializer.deserialize_any(Either(PhantomData))
    }
}

/// Reads the file's structure, reporting syntax errors, unknown keys and wrong types. `None`
/// after a syntax error (nothing else can be trusted then).
pub(crate) fn read(text: &str, errors: &mut Collector<'_>) -> Option<RawFile> {
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(err) => {
            errors.push(err.span(), &Section::File, None, ErrorKind::Syntax(err.message().to_owned()));
            return None;
        }
    };
    let mut file = RawFile::default();
    for (key, value) in in_file_order(document.get_ref()) {
        match key.get_ref().as_ref() {
            "defaults" => file.defaults = Some(section(key, value, Section::Defaults, errors)),
            "logs_dir" => match value.get_ref().as_str() {
                Some(dir) => file.logs_dir = Some(Spanned::new(value.span(), dir.to_owned())),
                None => errors.push(
                    Some(value.span()),
                    &Section::File,
                    Some("logs_dir"),
                    ErrorKind::Schema("expected a directory path (a string)".to_owned()),
                ),
            },
            "http" => file.http = super::http::read(value, errors),
            "pid_namespace" => match value.get_ref().as_bool() {
                Some(on) => file.pid_namespace = on,
                None => errors.push(
                    Some(value.span()),
                    &Section::File,
                    Some("pid_namespace"),
                    ErrorKind::Schema("expected true or false".to_owned()),
                ),
            },
            "programs" => match value.get_ref().as_table() {
                Some(programs) => {
                    for (name, body) in in_file_order(programs) {
                        let at = Section::Program(name.get_ref().to_string());
                        file.programs.push(section(name, body, at, errors));
                    }
                }
                None => errors.push(Some(value.span()), &Section::File, Some("programs"), ErrorKind::NotATable),
            },
            other => errors.push(
                Some(key.span()),
                &Section::File,
                None,
                ErrorKind::UnknownKey {
                    key: other.to_owned(),
                    suggestion: closest(other, ["defaults", "programs", "logs_dir", "http", "pid_namespace"]),
                    expected: ["defaults", "programs", "logs_dir", "http", "pid_namespace"].map(String::from).to_vec(),
                },
            ),
        }
    }
    Some(file)
}

type Entry<'t, 'i> = (&'t Spanned<toml::de::DeString<'i>>, &'t Spanned<DeValue<'i>>);

fn in_file_order<'t, 'i>(table: &'t DeTable<'i>) -> Vec<Entry<'t, 'i>> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// Deserializes one `[defaults]` or `[programs.NAME]` table, reporting what serde rejects at
/// the line and key it is about.
fn section(
    key: &Spanned<toml::de::DeString<'_>>,
    value: &Spanned<DeValue<'_>>,
    at: Section,
    errors: &mut Collector<'_>,
) -> RawSection {
    let name = Spanned::new(key.span(), key.get_ref().to_string());
    let Some(table) = value.get_ref().as_table() else {
        errors.push(Some(value.span()), &at, None, ErrorKind::NotATable);
        return RawSection { name, body: None };
    };
    // serde stops at the first error: the key it was about is taken out and the rest read
    // again, so that every wrong key of the table is reported, not only the first. Each round
    // removes a key, so this ends.
    let mut table = table.clone();
    let mut failed = false;
    loop {
        let attempt = Spanned::new(value.span(), DeValue::Table(table.clone()));
        let err = match RawProgram::deserialize(ValueDeserializer::from(attempt)) {
            Ok(body) => return RawSection { name, body: (!failed).then_some(body) },
            Err(err) => err,
        };
        failed = true;
        let span = err.span().unwrap_or_else(|| key.span());
        let path = key_path(&table, &span);
        report(&err, span, path.clone(), &at, errors);
        if path.is_empty() || !remove_path(&mut table, &path) {
            return RawSection { name, body: None };
        }
    }
}

/// Takes the key at `path` out of `table` (the key holding an array, for a path through one);
/// false if there is none.
fn remove_path(table: &mut DeTable<'_>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else { return false };
    if !rest.is_empty()
        && let Some(DeValue::Table(inner)) = table.get_mut(first.as_str()).map(Spanned::get_mut)
    {
        return remove_path(inner, rest);
    }
    table.remove(first.as_str()).is_some()
}

/// Reports what serde rejected at the line and key it is about.
fn report(err: &toml::de::Error, span: Range<usize>, mut path: Vec<String>, at: &Section, errors: &mut Collector<'_>) {
    let kind = match unknown_field(err.message()) {
        Some((key, expected)) => {
            // The span is the unknown key itself: the field is the table around it.
            path.pop();
            let suggestion = closest(&key, expected.iter().map(String::as_str));
            ErrorKind::UnknownKey { key, suggestion, expected }
        }
        None => ErrorKind::Schema(err.message().to_owned()),
    };
    let field = (!path.is_empty()).then(|| path.join("."));
    errors.push(Some(span), at, field.as_deref(), kind);
}

/// The dotted key path (`backoff.initial`) whose key or value holds `span`.
fn key_path(table: &DeTable<'_>, span: &Range<usize>) -> Vec<String> {
    for (key, value) in table {
        let within = |s: Range<usize>| s.start <= span.start && span.end <= s.end;
        let mut path = vec![key.get_ref().to_string()];
        if within(key.span()) {
            return path;
        }
        let nested = match value.get_ref() {
            DeValue::Table(inner) => key_path(inner, span),
            DeValue::Array(items) => items
                .iter()
                .filter_map(|item| item.get_ref().as_table())
                .map(|inner| key_path(inner, span))
                .find(|p| !p.is_empty())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if !nested.is_empty() {
            path.extend(nested);
            return path;
        }
        if within(value.span()) {
            return path;
        }
    }
    Vec::new()
}

/// Picks serde's "unknown field `x`, expected one of `a`, `b`" apart, so that the message can
/// suggest the closest key instead of listing them all.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    Some((key.to_owned(), expected))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn read_ok(text: &str) -> RawFile {
        let mut errors = Collector::new(Path::new("w.toml"), text);
        let file = read(text, &mut errors).expect("valid TOML");
        assert!(errors.finish().is_none(), "unexpected errors in {text}");
        file
    }

    fn read_err(text: &str) -> String {
        let mut errors = Collector::new(Path::new("w.toml"), text);
        read(text, &mut errors);
        errors.finish().expect("errors").to_string()
    }

    #[test]
    fn programs_keep_the_order_of_the_file() {
        let file = read_ok("[programs.zeta]\ncommand = 'z'\n[programs.alpha]\ncommand = 'a'\n");
        let names: Vec<_> = file.programs.iter().map(|p| p.name.get_ref().as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
    }

    #[test]
    fn word_or_table_keys_take_both_forms() {
        let file = read_ok(
            "[programs.a]\ncommand = 'a'\nready = 'notify'\nhealth = { rpc_ping = true }\n\
             depends_on = ['b', { name = 'c', condition = 'started' }]\n",
        );
        let body = file.programs[0].body.as_ref().expect("body");
        assert!(matches!(body.ready.as_ref().map(Spanned::get_ref), Some(StringOr::String(s)) if s == "notify"));
        assert!(matches!(body.health.as_ref().map(Spanned::get_ref), Some(StringOr::Table(_))));
        assert_eq!(body.depends_on.as_ref().map(|d| d.get_ref().len()), Some(2));
    }

    #[test]
    fn unknown_keys_name_their_table_and_suggest() {
        assert_eq!(
            read_err("[programs.a]\ncommand = 'a'\nrestrat = 'always'\n"),
            "w.toml:3: program \"a\": unknown key \"restrat\" (did you mean \"restart\"?)"
        );
        assert_eq!(
            read_err("[programs.a]\ncommand = 'a'\nbackoff = { inital = '1s' }\n"),
            "w.toml:3: program \"a\", field \"backoff\": unknown key \"inital\" (did you mean \"initial\"?)"
        );
        assert_eq!(
            read_err("[defaults]\nzzz = 1\n"),
            "w.toml:2: [defaults]: unknown key \"zzz\" (expected one of command, shell, args, env, clear_env, cwd, \
             rpc, ready, ready_timeout, restart, autostart, backoff, crash_loop, stop_signal, grace, depends_on, health, \
             watchdog, on_socket_lost, reset_after, max_size, keep, env_file, dotenv, socket, replicas, user, group, \
             memory_max, cpu_max, pids_max, listen, restart_mode, transport)"
        );
        assert_eq!(read_err("[program.a]\n"), "w.toml:1: unknown key \"program\" (did you mean \"programs\"?)");
    }

    #[test]
    fn wrong_types_name_the_dotted_field() {
        assert_eq!(
            read_err("[programs.a]\ncommand = 'a'\n\n[programs.a.backoff]\ninitial = 5\n"),
            "w.toml:5: program \"a\", field \"backoff.initial\": invalid type: integer `5`, expected a duration \
             such as \"500ms\" or \"1m 30s\""
        );
        assert_eq!(
            read_err("[programs.a]\ncommand = 'a'\nready = 3\n"),
            "w.toml:3: program \"a\", field \"ready\": invalid type: integer `3`, expected \"none\", \"notify\", \
             \"warren\" or a table such as { log = \"regex\" }"
        );
        assert_eq!(
            read_err("[programs.a]\ncommand = 'a'\ncrash_loop = { max_starts = -1 }\n"),
            "w.toml:3: program \"a\", field \"crash_loop.max_starts\": invalid value: integer `-1`, expected u32"
        );
    }

    #[test]
    fn every_wrong_key_of_one_program_is_reported() {
        let text = "[programs.a]\ncommand = 5\ngrace = true\nbackoff = { initial = 1, max = 2 }\nnope = 1\n";
        let errors = read_err(text);
        let lines: Vec<&str> = errors.lines().map(|l| l.split(':').take(2).collect::<Vec<_>>()[1]).collect();
        assert_eq!(lines, ["2", "3", "4", "4", "5"], "{errors}");
        for field in ["\"command\"", "\"grace\"", "\"backoff.initial\"", "\"backoff.max\"", "unknown key \"nope\""] {
            assert!(errors.contains(field), "{field}: {errors}");
        }
    }

    #[test]
    fn every_bad_program_is_reported() {
        assert_eq!(
            read_err("[programs.a]\nfoo = 1\n[programs.b]\nrpc = 1\n"),
            "w.toml:2: program \"a\": unknown key \"foo\" (expected one of command, shell, args, env, clear_env, cwd, \
             rpc, ready, ready_timeout, restart, autostart, backoff, crash_loop, stop_signal, grace, depends_on, health, \
             watchdog, on_socket_lost, reset_after, max_size, keep, env_file, dotenv, socket, replicas, user, group, \
             memory_max, cpu_max, pids_max, listen, restart_mode, transport)\n\
             w.toml:4: program \"b\", field \"rpc\": invalid type: integer `1`, expected true, false, \"warren\", \"json\", \"go\" or \"go-plain\""
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        assert_eq!(
            read_err("[programs.a]\ncommand = 'a\n"),
            "w.toml:2: invalid TOML: invalid literal string, expected `'`"
        );
        assert_eq!(read_err("[programs.a]\n[programs.a]\n"), "w.toml:2: invalid TOML: duplicate key");
        assert_eq!(read_err("programs = 3\n"), "w.toml:1: key \"programs\": expected a table");
    }
}
