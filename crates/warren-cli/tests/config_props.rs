//! Properties of [`parse`] on text nobody checked: it never panics; every error names the file
//! and a line of the text (only "no programs" is about the file as a whole), one error per line
//! of output, in the order of their lines; and a plan it accepts is one the supervisor can run
//! (every dependency a program of the plan, no cycle, every condition attainable).
//!
//! The texts: arbitrary strings and bytes; TOML-ish fragments; valid files with characters cut,
//! pasted and lines doubled; files assembled from the real keys with values that are often wrong;
//! files of valid programs whose `depends_on` name programs of the file at random, so that
//! self-dependencies, duplicates, unmet conditions and cycles are common; and valid files with
//! one mistake put on a known line, which must be reported there, alone, against its section
//! and field.
//!
//! The case count is proptest's: 256 by default, `PROPTEST_CASES=1000000` for a soak run
//! (`scripts/soak --props`). Failure persistence is off so a failing run writes no regression
//! file into the source tree; proptest prints the minimal failing input, which is what to turn
//! into an example in `tests/config.rs`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::strategy::Union;
use warren::supervise::plan::{Condition, HealthCheck, Plan, Restart};

use warren_cli::config::{ConfigErrors, ErrorKind, Section, parse};

const FILE: &str = "fuzz.toml";

fn config() -> ProptestConfig {
    // `default()` reads PROPTEST_CASES and the other PROPTEST_* variables.
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// What must hold of any outcome.

/// The lines an editor shows: a final newline does not start another one.
fn line_count(text: &str) -> usize {
    text.lines().count().max(1)
}

/// Checks whatever `parse` made of `text`.
fn check(text: &str) -> Result<(), TestCaseError> {
    match parse(text, Path::new(FILE)) {
        Ok(plan) => check_plan(&plan),
        Err(errors) => check_errors(text, &errors),
    }
}

fn check_errors(text: &str, errors: &ConfigErrors) -> Result<(), TestCaseError> {
    let list = errors.errors();
    prop_assert!(!list.is_empty(), "an Err with no error in it");
    let lines = line_count(text);
    for error in list {
        let shown = error.to_string();
        prop_assert_eq!(error.file.as_path(), Path::new(FILE), "{}", shown);
        match error.line {
            Some(line) => {
                prop_assert!((1..=lines).contains(&line), "line {} of a {}-line text: {}", line, lines, shown);
                let prefix = format!("{FILE}:{line}: ");
                prop_assert!(shown.starts_with(&prefix), "{:?} does not start with {:?}", shown, prefix);
            }
            None => {
                prop_assert!(matches!(error.kind, ErrorKind::NoPrograms), "no line: {}", shown);
                prop_assert!(shown.starts_with(&format!("{FILE}: ")), "{:?}", shown);
            }
        }
        // The errors are printed one per line: a message must not break a line of its own.
        prop_assert!(!shown.contains(['\n', '\r']), "a message spanning lines: {:?}", shown);
    }
    let order: Vec<Option<usize>> = list.iter().map(|e| e.line).collect();
    prop_assert!(order.is_sorted(), "errors not in the order of their lines: {:?}", order);
    prop_assert_eq!(errors.to_string().lines().count(), list.len());
    Ok(())
}

/// A program name as `plan` allows it, said again independently.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_plan(plan: &Plan) -> Result<(), TestCaseError> {
    prop_assert!(!plan.programs().is_empty(), "a plan with no program");
    let by_name: HashMap<&str, _> = plan.programs().iter().map(|p| (p.name.as_str(), p)).collect();
    prop_assert_eq!(by_name.len(), plan.programs().len(), "two programs of one name");
    for p in plan.programs() {
        prop_assert!(valid_name(&p.name), "invalid name {:?} accepted", p.name);
        prop_assert!(p.cwd.as_ref().is_some_and(|cwd| cwd.is_absolute()), "{}: cwd {:?}", p.name, p.cwd);
        let b = &p.backoff;
        prop_assert!(b.factor.is_finite() && b.factor >= 1.0, "{}: factor {}", p.name, b.factor);
        prop_assert!((0.0..=1.0).contains(&b.jitter), "{}: jitter {}", p.name, b.jitter);
        prop_assert!(b.max >= b.initial, "{}: backoff {:?}", p.name, b);
        prop_assert!(p.crash_loop.max_starts >= 1 && !p.crash_loop.window.is_zero(), "{}", p.name);
        prop_assert!(!p.ready_timeout.is_zero(), "{}: ready_timeout 0", p.name);
        if let Some(health) = &p.health {
            prop_assert!(!health.interval.is_zero() && !health.timeout.is_zero() && health.failures >= 1);
            prop_assert!(health.check != HealthCheck::RpcPing || p.rpc, "{}: rpc_ping without rpc", p.name);
        }
        let mut seen = BTreeSet::new();
        for d in &p.depends_on {
            prop_assert!(seen.insert(d.name.as_str()), "{}: {} listed twice", p.name, d.name);
            prop_assert_ne!(&d.name, &p.name, "a program depends on itself");
            let Some(target) = by_name.get(d.name.as_str()) else {
                return Err(TestCaseError::fail(format!("{} depends on {:?}, not in the plan", p.name, d.name)));
            };
            match d.condition {
                Condition::Healthy => prop_assert!(target.health.is_some(), "{} -> {}: healthy", p.name, d.name),
                Condition::ExitedOk => {
                    prop_assert!(target.restart != Restart::Always, "{} -> {}: exited_ok", p.name, d.name);
                }
                Condition::Started | Condition::Ready => {}
            }
        }
    }
    // No cycle: in the start order, every dependency is in an earlier level.
    let levels = plan.start_order();
    let level_of: HashMap<&str, usize> =
        levels.iter().enumerate().flat_map(|(i, level)| level.iter().map(move |name| (name.as_str(), i))).collect();
    prop_assert_eq!(level_of.len(), plan.programs().len());
    for p in plan.programs() {
        for d in &p.depends_on {
            prop_assert!(
                level_of[d.name.as_str()] < level_of[p.name.as_str()],
                "cycle through {} -> {}",
                p.name,
                d.name
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Writing TOML.

/// `text` as a TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key as it goes in a header or before `=`: bare when TOML allows it.
fn key(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
        name.to_owned()
    } else {
        quoted(name)
    }
}

#[derive(Debug, Clone)]
enum Value {
    /// Written as is after `key = `.
    Text(String),
    /// A table's keys and values.
    Table(Vec<(String, String)>),
    /// An array of `Text` and `Table` entries.
    Array(Vec<Value>),
}

/// How a table or an array is written.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// On the key's line: `{ … }` or `[ … ]`.
    Inline,
    /// A table as dotted keys (`backoff.max = …`); an array with one entry per line.
    Spread,
    /// A `[…]` table (or `[[…]]` tables) after the section's other keys.
    Section,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: Value,
    form: Form,
}

#[derive(Debug, Clone)]
enum Header {
    Defaults,
    Program(String),
    /// Not a table of ours: a stray top-level line.
    Junk(String),
}

#[derive(Debug, Clone)]
struct Table {
    header: Header,
    entries: Vec<Entry>,
}

fn inline(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Table(pairs) if pairs.is_empty() => "{}".to_owned(),
        Value::Table(pairs) => {
            let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{} = {v}", key(k))).collect();
            format!("{{ {} }}", pairs.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
    }
}

impl Table {
    fn path(&self) -> String {
        match &self.header {
            Header::Defaults => "defaults".to_owned(),
            Header::Program(name) => format!("programs.{}", key(name)),
            Header::Junk(_) => String::new(),
        }
    }

    /// Its lines, and the places between them where a `key = value` line may go.
    fn render(&self) -> (Vec<String>, Vec<usize>) {
        let path = self.path();
        let mut lines = match &self.header {
            Header::Junk(line) => return (vec![line.clone()], Vec::new()),
            _ => vec![format!("[{path}]")],
        };
        let mut boundaries = vec![lines.len()];
        let mut sections = Vec::new();
        for Entry { key: name, value, form } in &self.entries {
            let k = key(name);
            match (value, form) {
                (Value::Table(pairs), Form::Spread) if !pairs.is_empty() => {
                    lines.extend(pairs.iter().map(|(sub, v)| format!("{k}.{} = {v}", key(sub))));
                }
                (Value::Table(pairs), Form::Section) => {
                    sections.push(format!("[{path}.{k}]"));
                    sections.extend(pairs.iter().map(|(sub, v)| format!("{} = {v}", key(sub))));
                }
                (Value::Array(items), Form::Spread) => {
                    lines.push(format!("{k} = ["));
                    lines.extend(items.iter().map(|item| format!("  {},", inline(item))));
                    lines.push("]".to_owned());
                }
                (Value::Array(items), Form::Section)
                    if !items.is_empty() && items.iter().all(|i| matches!(i, Value::Table(_))) =>
                {
                    for item in items {
                        sections.push(format!("[[{path}.{k}]]"));
                        if let Value::Table(pairs) = item {
                            sections.extend(pairs.iter().map(|(sub, v)| format!("{} = {v}", key(sub))));
                        }
                    }
                }
                _ => lines.push(format!("{k} = {}", inline(value))),
            }
            boundaries.push(lines.len());
        }
        lines.extend(sections);
        (lines, boundaries)
    }
}

/// The whole file, and for each table where its insertion points are in the file's lines.
fn render(tables: &[Table]) -> (Vec<String>, Vec<Vec<usize>>) {
    let mut lines = Vec::new();
    let mut points = Vec::new();
    for table in tables {
        let (own, boundaries) = table.render();
        points.push(boundaries.iter().map(|b| lines.len() + b).collect());
        lines.extend(own);
    }
    (lines, points)
}

fn text_of(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

// ---------------------------------------------------------------------------------------------
// Values: for each key, some that are right everywhere, and some that are wrong, or wrong with
// some other keys, or strange.

fn text(values: &'static [&'static str]) -> BoxedStrategy<Value> {
    select(values).prop_map(|v| Value::Text(v.to_owned())).boxed()
}

/// `valid` values only, or mostly valid ones and the others.
fn either(valid: BoxedStrategy<Value>, risky: BoxedStrategy<Value>, only_valid: bool) -> BoxedStrategy<Value> {
    if only_valid { valid } else { prop_oneof![6 => valid, 1 => risky].boxed() }
}

/// Anything TOML can say, in a few characters.
fn any_toml() -> BoxedStrategy<String> {
    prop_oneof![
        "-?[0-9]{1,21}",
        "[+-]?[0-9]{1,4}\\.[0-9]{1,4}(e[+-]?[0-9]{1,3})?",
        any::<String>().prop_map(|s| quoted(&s)),
        select(
            &["true", "false", "nan", "-inf", "[]", "{}", "[1, \"a\"]", "1979-05-27T07:32:00Z", "0x1f", "'lit'"][..]
        )
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn durations(only_valid: bool) -> BoxedStrategy<String> {
    let valid =
        select(&["\"500ms\"", "\"1s\"", "\"1m 30s\"", "\"2h\"", "\"1.5s\"", "\"250 ms\""][..]).prop_map(str::to_owned);
    if only_valid {
        return valid.boxed();
    }
    let risky = prop_oneof![
        select(
            &[
                "\"0s\"",
                "\"5x\"",
                "\"10\"",
                "\"\"",
                "5",
                "1.5",
                "\"-1s\"",
                "\"18446744073709551615s\"",
                "\"18446744073709551616s\"",
                "\"584942417356y\"",
                "\"99999999999999999999999h\"",
                "\"1e400s\"",
                "\"1.99999999999999999999s\"",
                "\" 1s \"",
                "\"1ns\"",
            ][..]
        )
        .prop_map(str::to_owned),
        "[0-9]{1,22}(\\.[0-9]{0,22})?(ns|us|µs|ms|s|sec|m|min|h|d|w|M|y|x|)( [0-9]{1,5}[a-z]{1,4})?"
            .prop_map(|d| quoted(&d)),
        any_toml(),
    ];
    prop_oneof![4 => valid, 1 => risky].boxed()
}

fn duration(only_valid: bool) -> BoxedStrategy<Value> {
    durations(only_valid).prop_map(Value::Text).boxed()
}

/// A table with some of `keys`, each with a value from its strategy.
fn table(keys: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<Value> {
    let optional: Vec<_> = keys
        .into_iter()
        .map(|(k, v)| {
            // A key the table does not have (a typo, marked so) only now and then.
            let (k, weight) = match k.strip_suffix('!') {
                Some(typo) => (typo, 0.05),
                None => (k, 0.5),
            };
            proptest::option::weighted(weight, v.prop_map(move |v| (k.to_owned(), v)))
        })
        .collect();
    // Shuffled, so that the keys are not always in the order of the struct's fields.
    optional
        .prop_map(|pairs| pairs.into_iter().flatten().collect::<Vec<_>>())
        .prop_shuffle()
        .prop_map(Value::Table)
        .boxed()
}

fn strings(values: &'static [&'static str]) -> BoxedStrategy<String> {
    select(values).prop_map(str::to_owned).boxed()
}

/// A probe table for `ready` or `health`: one of the kinds (sometimes none or two) and timing.
fn probe(
    kinds: &'static [&'static str],
    timing: Vec<(&'static str, BoxedStrategy<String>)>,
    only_valid: bool,
) -> BoxedStrategy<Value> {
    let check = move |kind: &'static str| -> BoxedStrategy<String> {
        let (valid, risky): (&'static [&'static str], &'static [&'static str]) = match kind {
            "log" => (&["\"ready\"", "\"listening on \\\\d+\""], &["\"(\"", "\"a{99999}{99999}\"", "1", "\"\""]),
            "exec" => (&["[\"true\"]", "[\"./check\", \"-q\"]"], &["[]", "[\"\"]", "\"true\"", "[1]"]),
            "shell" => (&["\"true\"", "\"test -e x\""], &["\"\"", "\" \"", "[]"]),
            "connect" => (
                &["\"tcp:127.0.0.1:7000\"", "\"unix:run/x.sock\"", "\"tcp:[::1]:1\""],
                &["\"tcp:h:0\"", "\"unix:\"", "\"127.0.0.1:80\"", "\"tcp::1\"", "\"tcp:h:99999\"", "1"],
            ),
            "rpc_ping" => (&["true"], &["false", "\"yes\""]),
            _ => (&["1"], &["1"]),
        };
        if only_valid {
            strings(valid)
        } else {
            prop_oneof![8 => strings(valid), 2 => strings(risky), 1 => any::<String>().prop_map(|s| quoted(&s))].boxed()
        }
    };
    let one = Union::new(kinds.iter().map(|&k| check(k).prop_map(move |v| (k.to_owned(), v)))).boxed();
    let checks = if only_valid {
        one.prop_map(|pair| vec![pair]).boxed()
    } else {
        prop_oneof![
            6 => one.clone().prop_map(|pair| vec![pair]),
            1 => Just(Vec::new()),
            1 => (one.clone(), one).prop_map(|(a, b)| vec![a, b]),
            1 => Just(vec![("bogus".to_owned(), "1".to_owned())]),
        ]
        .boxed()
    };
    let timing: Vec<_> = timing
        .into_iter()
        .map(|(k, v)| proptest::option::weighted(0.3, v.prop_map(move |v| (k.to_owned(), v))))
        .collect();
    (checks, timing)
        .prop_map(move |(mut pairs, timing)| {
            let log = pairs.iter().any(|(k, _)| k == "log");
            // A log line has no interval: with one it is a mistake, so only when asked for those.
            pairs.extend(timing.into_iter().flatten().filter(|(k, _)| !(only_valid && log && k == "interval")));
            pairs
        })
        .prop_shuffle()
        .prop_map(Value::Table)
        .boxed()
}

/// The values of one key (not `depends_on`, which needs the program names).
fn values(name: &'static str, only_valid: bool) -> BoxedStrategy<Value> {
    let counts = |only_valid: bool| -> BoxedStrategy<String> {
        if only_valid {
            strings(&["1", "3", "5"])
        } else {
            prop_oneof![strings(&["1", "3"]), strings(&["0", "-1", "4294967296", "\"3\"", "1.5"]), any_toml()].boxed()
        }
    };
    match name {
        "command" => either(
            text(&["\"a\"", "\"./bin/x\"", "\"/usr/bin/env\"", "\"run it\""]),
            prop_oneof![
                text(&["\"\"", "\"  \"", "1", "[]", "true"]),
                any::<String>().prop_map(|s| Value::Text(quoted(&s)))
            ]
            .boxed(),
            only_valid,
        ),
        "shell" => either(text(&["\"echo hi\"", "\"exit 0\""]), text(&["\"\"", "3", "\"\\t\""]), only_valid),
        "args" => either(text(&["[]", "[\"x\", \"y z\"]", "[\"\"]"]), text(&["\"x\"", "[1]", "[[\"x\"]]"]), only_valid),
        "env" => either(
            text(&["{}", "{ A = \"1\" }", "{ RUST_LOG = \"info\", EMPTY = \"\" }", "{ \"A.B\" = \"x\" }"]),
            prop_oneof![
                text(&[
                    "{ \"A=B\" = \"x\" }",
                    "{ \"\" = \"x\" }",
                    "{ A = 1 }",
                    "{ A = \"\\u0000\" }",
                    "{ \"\\u0000\" = \"x\" }",
                    "\"A=1\"",
                    "{ A = { B = \"c\" } }",
                ]),
                (any::<String>(), any::<String>()).prop_map(|(k, v)| Value::Table(vec![(k, quoted(&v))])),
            ]
            .boxed(),
            only_valid,
        ),
        "clear_env" => either(text(&["true", "false"]), text(&["\"yes\"", "1", "\"true\""]), only_valid),
        "cwd" => either(text(&["\".\"", "\"run\"", "\"/tmp\""]), text(&["1", "[]", "\"\""]), only_valid),
        "rpc" => {
            either(text(&["true", "\"json\"", "\"warren\""]), text(&["false", "\"grpc\"", "1", "\"\""]), only_valid)
        }
        "ready" => either(
            prop_oneof![
                text(&["\"none\"", "\"notify\"", "\"warren\""]),
                probe(&["log", "exec", "shell", "connect"], vec![("interval", durations(true))], true),
            ]
            .boxed(),
            prop_oneof![
                text(&["\"maybe\"", "3", "\"\"", "[]"]),
                probe(&["log", "exec", "shell", "connect"], vec![("interval", durations(false))], false),
                any::<String>().prop_map(|s| Value::Table(vec![("log".to_owned(), quoted(&s))])),
            ]
            .boxed(),
            only_valid,
        ),
        "health" => {
            let timing = |v: bool| vec![("interval", durations(v)), ("timeout", durations(v)), ("failures", counts(v))];
            either(
                prop_oneof![text(&["\"none\""]), probe(&["exec", "shell", "connect"], timing(true), true)].boxed(),
                prop_oneof![
                    text(&["\"sometimes\"", "3", "\"\""]),
                    probe(&["rpc_ping", "exec", "shell", "connect"], timing(false), false),
                ]
                .boxed(),
                only_valid,
            )
        }
        "restart" => either(
            text(&["\"never\"", "\"on-failure\"", "\"always\""]),
            text(&["\"sometimes\"", "\"Always\"", "1", "\"\""]),
            only_valid,
        ),
        "stop_signal" => either(
            text(&["\"SIGTERM\"", "\"int\"", "\"SIGKILL\"", "\"usr1\""]),
            prop_oneof![
                text(&["\"SIGFOO\"", "\"\"", "15", "\"SIG\""]),
                any::<String>().prop_map(|s| Value::Text(quoted(&s)))
            ]
            .boxed(),
            only_valid,
        ),
        "on_socket_lost" => either(
            text(&["\"restart\"", "\"report\""]),
            text(&["\"sometimes\"", "\"Restart\"", "1", "\"\""]),
            only_valid,
        ),
        "ready_timeout" | "grace" | "reset_after" => duration(only_valid),
        "backoff" => {
            let pick = |valid: &'static [&'static str], risky: &'static [&'static str]| -> BoxedStrategy<String> {
                if only_valid {
                    strings(valid)
                } else {
                    prop_oneof![8 => strings(valid), 2 => strings(risky), 1 => any_toml()].boxed()
                }
            };
            let mut keys = vec![
                ("initial", pick(&["\"100ms\"", "\"500ms\"", "\"1s\""], &["\"1h\"", "\"0s\"", "5"])),
                ("max", pick(&["\"1s\"", "\"5s\"", "\"1m\""], &["\"1ms\"", "\"x\""])),
                (
                    "factor",
                    pick(&["1.0", "1.5", "2.0"], &["0.5", "nan", "inf", "-inf", "2", "\"2\"", "1e308", "0.99999"]),
                ),
                ("jitter", pick(&["0.0", "0.1", "1.0"], &["1.5", "-0.1", "nan", "0", "-0.0", "1.0000001"])),
            ];
            if !only_valid {
                keys.push(("inital!", strings(&["\"1s\""])));
            }
            table(keys)
        }
        "crash_loop" => {
            let mut keys = vec![("max_starts", counts(only_valid)), ("window", durations(only_valid))];
            if !only_valid {
                keys.push(("windows!", strings(&["\"1s\""])));
            }
            table(keys)
        }
        _ => any_toml().prop_map(Value::Text).boxed(),
    }
}

/// Every key a section may have, but `command`, `shell`, `args` and `depends_on`.
const SETTINGS: [&str; 15] = [
    "env",
    "clear_env",
    "cwd",
    "rpc",
    "ready",
    "ready_timeout",
    "restart",
    "backoff",
    "crash_loop",
    "stop_signal",
    "grace",
    "health",
    "reset_after",
    "on_socket_lost",
    // Not a key: what a typo looks like.
    "restat",
];

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![4 => Just(Form::Inline), 1 => Just(Form::Spread), 1 => Just(Form::Section)]
}

/// Some of the settings, in a random order.
fn settings(only_valid: bool, weight: f64) -> BoxedStrategy<Vec<Entry>> {
    let keys = SETTINGS.iter().filter(|&&k| !(only_valid && k == "restat"));
    let optional: Vec<_> = keys
        .map(|&k| {
            let weight = if k == "restat" { weight / 5.0 } else { weight };
            proptest::option::weighted(weight, (values(k, only_valid), form()))
                .prop_map(move |v| v.map(|(value, form)| Entry { key: k.to_owned(), value, form }))
        })
        .collect();
    optional.prop_map(|entries| entries.into_iter().flatten().collect::<Vec<_>>()).prop_shuffle().boxed()
}

/// `command` (with or without `args`) or `shell`; and, when not only valid ones, both or neither.
fn command(only_valid: bool) -> BoxedStrategy<Vec<Entry>> {
    let entry = |k: &'static str| {
        values(k, only_valid).prop_map(move |value| Entry { key: k.to_owned(), value, form: Form::Inline })
    };
    let valid = prop_oneof![
        entry("command").prop_map(|c| vec![c]),
        (entry("command"), entry("args")).prop_map(|(c, a)| vec![c, a]),
        entry("shell").prop_map(|s| vec![s]),
    ];
    if only_valid {
        return valid.boxed();
    }
    prop_oneof![
        8 => valid,
        1 => Just(Vec::new()),
        1 => (entry("command"), entry("shell")).prop_map(|(c, s)| vec![c, s]),
        1 => (entry("shell"), entry("args")).prop_map(|(s, a)| vec![s, a]),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Files assembled from the keys, mostly wrong.

/// Up to this many programs in a file.
const PROGRAMS: usize = 4;

/// Program names: mostly valid; `depends_on` mostly names programs of the same file, so that
/// self-dependencies, duplicates and cycles are common.
const GOOD_NAMES: [&str; 7] = ["a", "b", "c", "api", "db", "x.y", "run-2"];
const BAD_NAMES: [&str; 5] = ["bad name", "", "ä", "..", "a\nb"];

/// Whom a `depends_on` entry names.
#[derive(Debug, Clone)]
enum Whom {
    /// A program of the file (of the earlier ones, in a valid file).
    Program(Index),
    Other(&'static str),
}

/// A `depends_on` entry before the program names are known.
#[derive(Debug, Clone)]
enum Dependency {
    Bare(Whom),
    Table(Whom, &'static str),
    NameOnly(Whom),
    /// Something else entirely, as TOML.
    Junk(String),
}

impl Dependency {
    /// The entry, naming one of `names` (`None` when a valid file's entry has no earlier program).
    fn value(&self, names: &[String]) -> Option<Value> {
        let name = |whom: &Whom| match whom {
            Whom::Program(_) if names.is_empty() => None,
            Whom::Program(i) => Some(quoted(&names[i.index(names.len())])),
            Whom::Other(name) => Some(quoted(name)),
        };
        Some(match self {
            Dependency::Bare(whom) => Value::Text(name(whom)?),
            Dependency::Table(whom, condition) => {
                Value::Table(vec![("name".into(), name(whom)?), ("condition".into(), quoted(condition))])
            }
            Dependency::NameOnly(whom) => Value::Table(vec![("name".into(), name(whom)?)]),
            Dependency::Junk(text) => Value::Text(text.clone()),
        })
    }
}

fn whom() -> impl Strategy<Value = Whom> {
    prop_oneof![
        8 => any::<Index>().prop_map(Whom::Program),
        1 => select(&["nope", "", "A", "x.y", "bad name"][..]).prop_map(Whom::Other),
    ]
}

fn dependency() -> impl Strategy<Value = Dependency> {
    let condition = select(&["started", "ready", "healthy", "exited_ok", "later", ""][..]);
    prop_oneof![
        4 => whom().prop_map(Dependency::Bare),
        3 => (whom(), condition).prop_map(|(w, c)| Dependency::Table(w, c)),
        1 => whom().prop_map(Dependency::NameOnly),
        1 => Just(Dependency::Junk("{ condition = \"ready\" }".into())),
        1 => any_toml().prop_map(Dependency::Junk),
    ]
}

/// A `depends_on` key, if any: an array of entries (or, now and then, not an array).
type Dependencies = Option<(Result<Vec<Dependency>, String>, Form)>;

fn dependencies() -> impl Strategy<Value = Dependencies> {
    let list = prop_oneof![
        8 => prop::collection::vec(dependency(), 0..4).prop_map(Ok),
        1 => any_toml().prop_map(Err),
    ];
    proptest::option::weighted(0.6, (list, form()))
}

fn dependencies_entry(dependencies: Dependencies, names: &[String]) -> Option<Entry> {
    let (list, form) = dependencies?;
    let value = match list {
        Ok(list) => Value::Array(list.iter().filter_map(|d| d.value(names)).collect()),
        Err(text) => Value::Text(text),
    };
    Some(Entry { key: "depends_on".into(), value, form })
}

/// A program's keys but `depends_on`, with `command` or `shell` anywhere among the others.
fn body(only_valid: bool) -> BoxedStrategy<Vec<Entry>> {
    let weight = if only_valid { 0.3 } else { 0.2 };
    (command(only_valid), settings(only_valid, weight), any::<Index>())
        .prop_map(|(command, mut entries, at)| {
            let tail = entries.split_off(at.index(entries.len() + 1));
            entries.extend(command);
            entries.extend(tail);
            entries
        })
        .boxed()
}

/// Top-level lines that are no table of ours.
fn junk() -> BoxedStrategy<Table> {
    select(&["[progams.a]", "programs = 3", "[defaults.x]", "x = 1", "# a comment", "", "[[programs.a]]", "[programs]"][..])
        .prop_map(|line| Table { header: Header::Junk(line.to_owned()), entries: Vec::new() })
        .boxed()
}

/// A file of up to [`PROGRAMS`] programs. With `valid_values`, every program and `[defaults]`
/// is valid on its own, so that what is wrong, if anything, is between programs: a name in
/// `depends_on` and its condition.
fn assembled(valid_values: bool) -> impl Strategy<Value = String> {
    let names = if valid_values {
        subsequence(GOOD_NAMES.to_vec(), 1..=PROGRAMS).prop_shuffle().boxed()
    } else {
        assembled_names().boxed()
    };
    let defaults = if valid_values {
        proptest::option::weighted(0.4, (settings(true, 0.3), Just(None), Just(None))).boxed()
    } else {
        proptest::option::weighted(
            0.4,
            (
                settings(false, 0.15),
                // What is not allowed in [defaults], now and then.
                proptest::option::weighted(0.1, command(false)),
                proptest::option::weighted(0.1, dependencies()).prop_map(Option::flatten),
            ),
        )
        .boxed()
    };
    let programs = prop::collection::vec((body(valid_values), dependencies()), PROGRAMS);
    // Stray lines only among the mistakes: with valid values, every error is a dependency's.
    let stray = if valid_values { 0 } else { 1 };
    let junk = prop::collection::vec((junk(), any::<Index>()), 0..=stray);
    (names, programs, defaults, junk, any::<Index>()).prop_map(|(names, programs, defaults, junk, at)| {
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        let mut tables: Vec<Table> = names
            .iter()
            .zip(programs)
            .map(|(name, (mut entries, dependencies))| {
                entries.extend(dependencies_entry(dependencies, &names));
                Table { header: Header::Program(name.clone()), entries }
            })
            .collect();
        if let Some((mut entries, command, dependencies)) = defaults {
            entries.extend(command.into_iter().flatten());
            entries.extend(dependencies_entry(dependencies, &names));
            tables.insert(at.index(tables.len() + 1), Table { header: Header::Defaults, entries });
        }
        for (line, at) in junk {
            tables.insert(at.index(tables.len() + 1), line);
        }
        text_of(&render(&tables).0)
    })
}

fn assembled_names() -> impl Strategy<Value = Vec<&'static str>> {
    prop_oneof![
        8 => subsequence(GOOD_NAMES.to_vec(), 1..=PROGRAMS).prop_shuffle(),
        1 => (subsequence(GOOD_NAMES.to_vec(), 0..=2), subsequence(BAD_NAMES.to_vec(), 1..=2))
            .prop_map(|(mut good, bad)| { good.extend(bad); good })
            .prop_shuffle(),
        // Two programs of one name, or none at all.
        1 => prop::collection::vec(select(&GOOD_NAMES[..3]), 0..=PROGRAMS),
    ]
}

// ---------------------------------------------------------------------------------------------
// Valid files, to spoil on one line.

/// Dependencies of a valid file's program: on earlier programs only, with a condition any
/// program meets.
fn valid_dependencies() -> impl Strategy<Value = Dependencies> {
    let entry = (any::<Index>(), any::<bool>(), select(&["started", "ready"][..])).prop_map(|(i, bare, c)| {
        if bare { Dependency::Bare(Whom::Program(i)) } else { Dependency::Table(Whom::Program(i), c) }
    });
    proptest::option::weighted(0.5, (prop::collection::vec(entry, 1..4).prop_map(Ok), form()))
}

/// A valid file: unique valid names, dependencies only on earlier programs, values valid alone
/// and together; and always a `[defaults]` table, maybe empty.
fn valid_file() -> impl Strategy<Value = Vec<Table>> {
    let names = subsequence(GOOD_NAMES.to_vec(), 1..=PROGRAMS).prop_shuffle();
    let programs = prop::collection::vec((body(true), valid_dependencies()), PROGRAMS);
    (names, programs, settings(true, 0.3), any::<Index>()).prop_map(|(names, programs, defaults, at)| {
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        let mut tables: Vec<Table> = names
            .iter()
            .enumerate()
            .zip(programs)
            .map(|((i, name), (mut entries, dependencies))| {
                if let Some(mut entry) = dependencies_entry(dependencies, &names[..i]) {
                    // Each earlier program once.
                    if let Value::Array(items) = &mut entry.value {
                        let mut seen = BTreeSet::new();
                        items.retain(|item| seen.insert(entry_name(item).map(str::to_owned)));
                    }
                    entries.push(entry);
                }
                Table { header: Header::Program(name.clone()), entries }
            })
            .collect();
        tables.insert(at.index(tables.len() + 1), Table { header: Header::Defaults, entries: defaults });
        tables
    })
}

/// The name a `depends_on` entry gives, as written.
fn entry_name(item: &Value) -> Option<&str> {
    match item {
        Value::Text(text) => Some(text),
        Value::Table(pairs) => pairs.iter().find(|(k, _)| k == "name").map(|(_, v)| v.as_str()),
        Value::Array(_) => None,
    }
}

/// Where a mistake may be made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum In {
    Both,
    Defaults,
}

/// A line that is wrong in a valid file wherever it goes (when its key is not there already),
/// and the field it must be reported against (`None`: the section itself, for an unknown key).
/// Each is one error only: nothing else in the file depends on it being right.
const MISTAKES: [(&str, &str, Option<&str>, In); 44] = [
    ("restart", "\"sometimes\"", Some("restart"), In::Both),
    ("restart", "1", Some("restart"), In::Both),
    ("grace", "\"5x\"", Some("grace"), In::Both),
    ("grace", "5", Some("grace"), In::Both),
    ("grace", "\"18446744073709551616s\"", Some("grace"), In::Both),
    ("ready_timeout", "\"0s\"", Some("ready_timeout"), In::Both),
    ("reset_after", "\"10\"", Some("reset_after"), In::Both),
    ("stop_signal", "\"SIGFOO\"", Some("stop_signal"), In::Both),
    ("stop_signal", "15", Some("stop_signal"), In::Both),
    ("ready", "\"maybe\"", Some("ready"), In::Both),
    ("ready", "{}", Some("ready"), In::Both),
    ("ready", "{ log = \"(\" }", Some("ready.log"), In::Both),
    ("ready", "{ log = \"x\", interval = \"1s\" }", Some("ready.interval"), In::Both),
    ("ready", "{ connect = \"tcp:h:0\" }", Some("ready.connect"), In::Both),
    ("ready", "{ exec = [\"x\"], interval = \"0s\" }", Some("ready.interval"), In::Both),
    ("ready", "{ lgo = \"x\" }", Some("ready"), In::Both),
    ("health", "\"sometimes\"", Some("health"), In::Both),
    ("health", "{ exec = [] }", Some("health.exec"), In::Both),
    ("health", "{ shell = \"true\", failures = 0 }", Some("health.failures"), In::Both),
    ("health", "{ shell = \"true\", timeout = \"0s\" }", Some("health.timeout"), In::Both),
    ("health", "{ connect = \"unix:\" }", Some("health.connect"), In::Both),
    ("backoff", "{ factor = 0.5 }", Some("backoff.factor"), In::Both),
    ("backoff", "{ jitter = nan }", Some("backoff.jitter"), In::Both),
    ("backoff", "{ initial = \"1h\" }", Some("backoff.initial"), In::Both),
    ("backoff", "{ inital = \"1s\" }", Some("backoff"), In::Both),
    ("crash_loop", "{ max_starts = 0 }", Some("crash_loop.max_starts"), In::Both),
    ("crash_loop", "{ max_starts = -1 }", Some("crash_loop.max_starts"), In::Both),
    ("crash_loop", "{ window = \"0s\" }", Some("crash_loop.window"), In::Both),
    ("env", "{ \"A=B\" = \"x\" }", Some("env"), In::Both),
    ("env", "{ A = 1 }", Some("env.A"), In::Both),
    ("rpc", "\"grpc\"", Some("rpc"), In::Both),
    ("clear_env", "\"yes\"", Some("clear_env"), In::Both),
    ("clear_env", "1", Some("clear_env"), In::Both),
    ("on_socket_lost", "\"sometimes\"", Some("on_socket_lost"), In::Both),
    ("on_socket_lost", "true", Some("on_socket_lost"), In::Both),
    ("cwd", "[]", Some("cwd"), In::Both),
    ("depends_on", "[\"nope\"]", Some("depends_on"), In::Both),
    ("depends_on", "[{ name = \"a\", condition = \"later\" }]", Some("depends_on"), In::Both),
    ("depends_on", "[{ condition = \"ready\" }]", Some("depends_on"), In::Both),
    ("args", "\"x\"", Some("args"), In::Both),
    ("shell", "\"echo\"", Some("shell"), In::Both),
    ("restat", "\"always\"", None, In::Both),
    // In a program with `shell`, a `command` is reported at the `shell` line.
    ("command", "\"x\"", Some("command"), In::Defaults),
    ("command", "\"\"", Some("command"), In::Defaults),
];

// ---------------------------------------------------------------------------------------------
// TOML-ish text: fragments of the syntax and the keys, and valid files with bytes changed.

const FRAGMENTS: [&str; 40] = [
    "[",
    "]",
    "[[",
    "]]",
    "programs",
    "defaults",
    ".",
    "=",
    " ",
    "\n",
    "\r\n",
    "\r",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "{",
    "}",
    ",",
    "#",
    "\\",
    "\\u",
    "1",
    "-1",
    "1.5",
    "nan",
    "inf",
    "true",
    "1979-05-27",
    "command",
    "depends_on",
    "ready",
    "health",
    "backoff",
    "env",
    "\t",
    "\u{feff}",
    "\0",
    "é",
    "programs.a",
];

fn fragment() -> BoxedStrategy<String> {
    prop_oneof![4 => select(&FRAGMENTS[..]).prop_map(str::to_owned), 1 => "[a-z_]{1,8}", 1 => any_toml()].boxed()
}

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..64).prop_map(|parts| parts.concat())
}

#[derive(Debug, Clone)]
enum Edit {
    /// Removes this many characters.
    Cut(usize),
    Paste(String),
    /// Repeats the line.
    Double,
}

fn edit() -> impl Strategy<Value = (Index, Edit)> {
    let edit = prop_oneof![(1usize..40).prop_map(Edit::Cut), fragment().prop_map(Edit::Paste), Just(Edit::Double)];
    (any::<Index>(), edit)
}

fn edited(lines: &[String], edits: &[(Index, Edit)]) -> String {
    let mut chars: Vec<char> = text_of(lines).chars().collect();
    for (at, edit) in edits {
        let at = at.index(chars.len() + 1);
        match edit {
            Edit::Cut(n) => {
                chars.drain(at..(at + n).min(chars.len()));
            }
            Edit::Paste(text) => {
                chars.splice(at..at, text.chars());
            }
            Edit::Double => {
                let start = chars[..at].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
                let end = chars[at..].iter().position(|&c| c == '\n').map_or(chars.len(), |i| at + i + 1);
                let line: Vec<char> = chars[start..end].to_vec();
                chars.splice(end..end, line);
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_parsed_or_refused_with_lines(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn any_bytes_are_parsed_or_refused_with_lines(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn toml_fragments_are_parsed_or_refused_with_lines(text in fragments()) {
        check(&text)?;
    }

    #[test]
    fn edited_valid_files_are_parsed_or_refused_with_lines(
        tables in valid_file(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        check(&edited(&render(&tables).0, &edits))?;
    }

    #[test]
    fn files_of_the_real_keys_are_parsed_or_refused_with_lines(text in assembled(false)) {
        check(&text)?;
    }

    #[test]
    fn dependencies_between_valid_programs_are_parsed_or_refused_with_lines(text in assembled(true)) {
        check(&text)?;
    }

    #[test]
    fn one_mistake_in_a_valid_file_is_reported_alone_on_its_line(
        tables in valid_file(),
        which in any::<Index>(),
        at in any::<Index>(),
        mistake in any::<Index>(),
    ) {
        let (mut lines, points) = render(&tables);
        let text = text_of(&lines);
        let plan = match parse(&text, Path::new(FILE)) {
            Ok(plan) => plan,
            Err(errors) => return Err(TestCaseError::fail(format!("a valid file was refused:\n{errors}\nin\n{text}"))),
        };
        check_plan(&plan)?;
        let names: Vec<&str> = tables
            .iter()
            .filter_map(|t| match &t.header { Header::Program(n) => Some(n.as_str()), _ => None })
            .collect();
        let planned: Vec<&str> = plan.programs().iter().map(|p| p.name.as_str()).collect();
        prop_assert_eq!(planned, names);

        let target = which.index(tables.len());
        let table = &tables[target];
        let section = match &table.header {
            Header::Defaults => Section::Defaults,
            Header::Program(name) => Section::Program(name.clone()),
            Header::Junk(_) => unreachable!("a valid file has no junk"),
        };
        let present: BTreeSet<&str> = table.entries.iter().map(|e| e.key.as_str()).collect();
        let candidates: Vec<_> = MISTAKES
            .iter()
            .filter(|(key, _, _, place)| !present.contains(key) && (*place == In::Both || section == Section::Defaults))
            .collect();
        prop_assume!(!candidates.is_empty());
        let &&(key, value, field, _) = &candidates[mistake.index(candidates.len())];
        let index = points[target][at.index(points[target].len())];
        lines.insert(index, format!("{key} = {value}"));
        let line = index + 1;
        let text = text_of(&lines);
        let errors = match parse(&text, Path::new(FILE)) {
            Ok(_) => return Err(TestCaseError::fail(format!("`{key} = {value}` on line {line} was accepted:\n{text}"))),
            Err(errors) => errors,
        };
        check_errors(&text, &errors)?;
        let list = errors.errors();
        prop_assert_eq!(list.len(), 1, "one mistake, one error:\n{}\nin\n{}", errors, text);
        let error = &list[0];
        prop_assert_eq!(error.line, Some(line), "{}\nin\n{}", error, text);
        prop_assert_eq!(&error.section, &section, "{}", error);
        match field {
            Some(field) => prop_assert!(
                error.field.as_deref().is_some_and(|f| f == field || f.starts_with(&format!("{field}."))),
                "field {:?}, expected {:?}: {}",
                error.field,
                field,
                error
            ),
            None => prop_assert_eq!(error.field.as_deref(), None, "{}", error),
        }
    }
}
