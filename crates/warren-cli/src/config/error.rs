//! What can be wrong with a configuration file, and where.
//!
//! Every error names the file and, where it has one, the line, the section (`[defaults]` or a
//! program) and the field, so that a message reads like
//! `warren.toml:14: program "api", field "restart": unknown policy "sometimes" (expected never,
//! on-failure, always)`. Validation goes on after the first error, so a file with several
//! mistakes is fixed in one round: [`ConfigErrors`] holds them all, one per line.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::name::valid_name;

/// The part of the file an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    /// The file as a whole, or its top level.
    File,
    /// The `[defaults]` table.
    Defaults,
    /// `[programs.NAME]`.
    Program(String),
}

/// One mistake in a configuration file.
#[derive(Debug)]
pub struct ConfigError {
    /// The file, as it was named to [`super::load`] or [`super::parse`].
    pub file: PathBuf,
    /// 1-based; `None` when the error is about the file as a whole.
    pub line: Option<usize>,
    /// The section of the file.
    pub section: Section,
    /// The key, dotted for nested ones (`backoff.max`).
    pub field: Option<String>,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong. Messages carry their cause inline (a list of errors is printed one per line,
/// with no chain of sources to walk), so only the I/O error is kept as a value.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(io::Error),
    /// The directory of the file could not be found.
    #[error("cannot find the directory of the file: {0}")]
    BaseDir(io::Error),
    /// TOML syntax, in the parser's words.
    #[error("invalid TOML: {0}")]
    Syntax(String),
    /// A key the section does not have.
    #[error("unknown key {key:?}{}", suggest(suggestion.as_deref(), expected))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The known key it is closest to, if it looks like a typo of one.
        suggestion: Option<String>,
        /// Every key the section has.
        expected: Vec<String>,
    },
    /// A value of the wrong type or a missing key, in the deserializer's words.
    #[error("{0}")]
    Schema(String),
    /// A table was expected.
    #[error("expected a table")]
    NotATable,
    /// The file has no `[programs.NAME]` table.
    #[error("no programs (add a [programs.NAME] table)")]
    NoPrograms,
    /// A program name that is not a safe file name.
    #[error("invalid program name {0:?}: use only letters, digits, '_', '.' and '-'")]
    BadName(String),
    /// A key that only a program can set.
    #[error("cannot be set in [defaults] (set it on each program)")]
    NotInDefaults,
    /// `replicas` out of range.
    #[error("replicas must be 1 to {max}, not {0}", max = warren::supervise::plan::MAX_REPLICAS)]
    BadReplicas(u32),
    /// A program named as a member of a replicated one (`web.2` beside `web` with replicas).
    #[error("the name {0:?} is taken by a replica of {1:?}")]
    ReplicaName(String, String),
    /// Neither `command` nor `shell`.
    #[error("missing command (set command, or shell for a shell command line)")]
    MissingCommand,
    /// Both `command` and `shell`.
    #[error("command and shell cannot both be set")]
    CommandAndShell,
    /// `args` with `shell`.
    #[error("args cannot be used with shell (write them in the command line)")]
    ArgsWithShell,
    /// An empty command or shell line.
    #[error("empty command")]
    EmptyCommand,
    /// An environment variable name that cannot be set.
    #[error("invalid environment variable name {0:?}")]
    BadEnvName(String),
    /// An environment variable value with a NUL byte.
    #[error("environment variable {0:?} contains a NUL byte")]
    NulInEnv(String),
    /// A duration that does not parse.
    #[error("invalid duration {text:?}: {reason}")]
    BadDuration {
        /// The value as written.
        text: String,
        /// The parser's words.
        reason: String,
    },
    /// A size that does not parse.
    #[error("invalid size {text:?}: {reason}")]
    BadSize {
        /// The value as written.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource limit that does not parse.
    #[error("invalid limit {text:?}: {reason}")]
    BadLimit {
        /// The value as written.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `user` or `group` that cannot be used, and why.
    #[error("{0}")]
    BadIdentity(String),
    /// A duration that must be positive.
    #[error("must be greater than zero")]
    Zero,
    /// An unknown restart policy.
    #[error("unknown policy {0:?} (expected never, on-failure, always)")]
    UnknownRestart(String),
    /// An unknown `on_socket_lost` action.
    #[error("unknown action {0:?} (expected restart or report)")]
    UnknownOnSocketLost(String),
    /// A `listen` entry that cannot be used.
    #[error("{0}")]
    BadListen(String),
    /// An unknown `restart_mode`.
    #[error("unknown restart mode {0:?} (expected \"stop\" or \"rolling\")")]
    UnknownRestartMode(String),
    /// An unknown stop signal.
    #[error("unknown signal {0:?} (expected SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGKILL, SIGUSR1 or SIGUSR2)")]
    UnknownSignal(String),
    #[error(
        "unknown readiness {0:?} (expected \"none\", \"notify\", \"warren\" or a table with log, exec, shell, connect or http)"
    )]
    /// An unknown `ready` word.
    UnknownReadiness(String),
    /// An unknown `health` word.
    #[error("unknown health check {0:?} (expected \"none\" or a table with rpc_ping, exec, shell, connect or http)")]
    UnknownHealth(String),
    /// A probe table with none, or more than one, of its kinds.
    #[error("set exactly one of {0}")]
    ProbeChoice(&'static str),
    /// `interval` on a log-line readiness.
    #[error("interval applies only to exec, shell, connect and http")]
    IntervalWithLog,
    /// A log-line pattern that is not a regular expression.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    BadRegex {
        /// The pattern as written.
        pattern: String,
        /// The parser's words.
        reason: String,
    },
    /// An endpoint that is neither `tcp:HOST:PORT`, `HOST:PORT` nor `unix:PATH`.
    #[error("invalid endpoint {0:?} (expected tcp:HOST:PORT, HOST:PORT or unix:PATH)")]
    BadEndpoint(String),
    /// An unknown `rpc` value.
    #[error("unknown rpc protocol {0:?} (expected true, false, \"warren\", \"json\", \"go\" or \"go-plain\")")]
    UnknownRpc(String),
    /// `rpc = false` with `ready = "warren"`.
    #[error("rpc = false contradicts ready = \"warren\" (which means notify + rpc)")]
    RpcContradiction,
    /// An unknown `transport`.
    #[error("unknown transport {0:?} (expected \"socket\", \"auto\" or \"shm\")")]
    UnknownTransport(String),
    /// `transport` other than "socket" on a program that does not serve warren's binary protocol.
    #[error("transport = {transport:?} needs warren's binary protocol (rpc = true or ready = \"warren\"); {}",
        rpc.map_or_else(|| "the program serves no RPC".to_owned(), |rpc| format!("rpc = {rpc:?} never moves to shared memory")))]
    TransportNeedsBinaryRpc {
        /// The transport as written.
        transport: String,
        /// The `rpc` it serves instead (`json`, `go`, `go-plain`); `None` without RPC.
        rpc: Option<&'static str>,
    },
    /// An RPC ping on a program that serves no RPC.
    #[error("rpc_ping needs a program that serves RPC (rpc = true or ready = \"warren\")")]
    PingWithoutRpc,
    /// A watchdog on a program that has no notify socket to send its keep-alives on.
    #[error("watchdog needs ready = \"notify\" or \"warren\": the program sends WATCHDOG=1 on NOTIFY_SOCKET")]
    WatchdogWithoutNotify,
    /// A `connect` readiness check on one of the program's own `listen` sockets: warren holds
    /// it, so it accepts before the program runs.
    #[error(
        "ready = {{ connect = \"{0}\" }} is one of its own `listen` sockets, which warren holds and which accepts \
         before the program runs: it would be ready at once; use ready = \"notify\", a log line, or an http probe \
         the program itself answers"
    )]
    ReadyOnHeldSocket(String),
    /// A backoff factor below 1.
    #[error("must be at least 1 (got {0})")]
    FactorBelowOne(f64),
    /// A backoff jitter outside 0 to 1.
    #[error("must be between 0 and 1 (got {0})")]
    JitterOutOfRange(f64),
    /// A backoff maximum below its initial delay.
    #[error("max ({}) is less than initial ({})", humantime::format_duration(*max), humantime::format_duration(*initial))]
    MaxBelowInitial {
        /// `backoff.max`.
        max: std::time::Duration,
        /// `backoff.initial`.
        initial: std::time::Duration,
    },
    /// A count that must be at least 1.
    #[error("must be at least 1")]
    ZeroCount,
    /// An unknown dependency condition.
    #[error("unknown condition {0:?} (expected started, ready, healthy, exited_ok)")]
    UnknownCondition(String),
    /// A dependency on no program of the file.
    #[error("unknown program {name:?}{}", suggest(suggestion.as_deref(), &[]))]
    UnknownDependency {
        /// The name as written.
        name: String,
        /// The program it is closest to, if it looks like a typo of one.
        suggestion: Option<String>,
    },
    /// Two programs of one name (the TOML parser rejects this first).
    #[error("two programs are named {0:?}")]
    DuplicateProgram(String),
    /// A program that depends on itself.
    #[error("a program cannot depend on itself")]
    SelfDependency,
    /// A dependency listed twice.
    #[error("{0:?} is listed twice")]
    DuplicateDependency(String),
    /// Programs that depend on each other in a circle.
    #[error("dependency cycle: {}", cycle(.0))]
    Cycle(Vec<String>),
    /// Condition `healthy` on a program without a health check.
    #[error("condition \"healthy\" on {0:?}, which has no health check")]
    NoHealthCheck(String),
    /// An HTTP probe URL that is not `http://HOST[:PORT]/PATH`.
    #[error("invalid URL {0:?} (expected http://HOST[:PORT]/PATH; probes speak plain HTTP)")]
    BadUrl(String),
    /// `status` on a probe that is not `http`.
    #[error("status applies only to http")]
    StatusWithoutHttp,
    /// An HTTP status outside 100 to 599.
    #[error("not an HTTP status: {0} (expected 100 to 599)")]
    BadStatus(u16),
    /// `timeout` on a readiness probe other than `http` (the others are bounded by
    /// `ready_timeout` alone).
    #[error("timeout applies only to http (other ready probes are bounded by ready_timeout)")]
    TimeoutWithoutHttp,
    /// Condition `exited_ok` on a program that always restarts.
    #[error("condition \"exited_ok\" on {0:?}, which has restart = \"always\" and so never finishes")]
    ExitedOkWithAlways(String),
    /// A program started with the others depends on one started only when asked.
    #[error(
        "{0:?} has autostart = false, so this program would wait for it forever (give this one autostart = false too)"
    )]
    DependsOnManual(String),
    /// A `${...}` reference that cannot be expanded, in `interpolate`'s words.
    #[error("{0}")]
    Expansion(String),
    /// An env file that cannot be read.
    #[error("cannot read env file {}: {error}", path.display())]
    EnvFileRead {
        /// The file, resolved against the configuration's directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A line of an env file that is not `NAME=value` (the error's file is the env file).
    #[error("invalid line {text:?} in env file (at character {column})")]
    EnvFileSyntax {
        /// The line as written (with its continuation, for a multi-line quoted value).
        text: String,
        /// Where in it the parser gave up, from 0.
        column: usize,
    },
    /// A Procfile line that is neither `NAME: COMMAND`, blank nor a `#` comment.
    #[error("expected NAME: COMMAND (a name of letters, digits, '_' and '-'), a blank line or a # comment")]
    ProcfileLine,
    /// A Procfile without a `NAME: COMMAND` line.
    #[error("no NAME: COMMAND lines")]
    EmptyProcfile,
}

/// `api -> db -> api`. A name that is not valid (and so reported already) is quoted, so that it
/// can neither break the line nor hide in it.
fn cycle(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().map(|n| if valid_name(n) { n.clone() } else { format!("{n:?}") }).collect();
    shown.join(" -> ")
}

fn suggest(suggestion: Option<&str>, expected: &[String]) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None if expected.is_empty() => String::new(),
        None => format!(" (expected one of {})", expected.join(", ")),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        match (&self.section, &self.field) {
            (Section::File, None) => {}
            (Section::File, Some(field)) => write!(f, "key {field:?}: ")?,
            (Section::Defaults, None) => f.write_str("[defaults]: ")?,
            (Section::Defaults, Some(field)) => write!(f, "[defaults], field {field:?}: ")?,
            (Section::Program(name), None) => write!(f, "program {name:?}: ")?,
            (Section::Program(name), Some(field)) => write!(f, "program {name:?}, field {field:?}: ")?,
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for ConfigError {}

/// Every mistake found in one file, in the order of their lines.
#[derive(Debug)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, by line.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Gathers errors while a file is checked, turning byte offsets into line numbers.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Collector { file, text, errors: Vec::new() }
    }

    /// Records an error at the line holding byte `span.start` (no line when `span` is `None`).
    pub(crate) fn push(&mut self, span: Option<Range<usize>>, section: &Section, field: Option<&str>, kind: ErrorKind) {
        let line = span.map(|span| line_of(self.text, span.start));
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            section: section.clone(),
            field: field.map(str::to_owned),
            kind,
        });
    }

    /// Records an error found in another file (an env file) that this one led to.
    pub(crate) fn push_error(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// How many errors so far: compare before and after a step to learn whether it failed.
    pub(crate) fn count(&self) -> usize {
        self.errors.len()
    }

    /// The errors, by line (stable, so errors on one line keep the order they were found in).
    pub(crate) fn finish(mut self) -> Option<ConfigErrors> {
        if self.errors.is_empty() {
            return None;
        }
        self.errors.sort_by_key(|e| e.line);
        Some(ConfigErrors(self.errors))
    }
}

/// The 1-based line of a byte offset (counting bytes, so any offset is safe).
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    let line = text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1;
    // The end of a text that ends with a newline starts no line an editor would show: the
    // parser points there for what the last line left open (a string, a table header).
    if end == text.len() && text.ends_with('\n') { line - 1 } else { line }
}

/// The candidate closest to `word` by edit distance (a swap of two letters is one edit), if it
/// is close enough to be a typo.
pub(crate) fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<String> {
    // A third of the word, rounded up: two edits make a typo of `restrat`, but not of `tcp`
    // (whose nearest key, `http`, is not what was meant; the list of keys serves better).
    let limit = word.chars().count().div_ceil(3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
        assert_eq!(line_of(text, 99), 3);
        assert_eq!(line_of("a\nb\n", 3), 2, "the newline ends its line");
        assert_eq!(line_of("a\nb\n", 4), 2, "the end of the text is on its last line");
        assert_eq!(line_of("\n", 1), 1);
        assert_eq!(line_of("", 0), 1);
    }

    #[test]
    fn typos_find_their_word() {
        assert_eq!(strsim::osa_distance("restrat", "restart"), 1, "a swap is one edit");
        assert_eq!(closest("restrat", ["restart", "ready", "rpc"]).as_deref(), Some("restart"));
        assert_eq!(closest("inital", ["initial", "max"]).as_deref(), Some("initial"));
        assert_eq!(closest("zzz", ["restart", "ready"]), None);
        assert_eq!(closest("tcp", ["log", "exec", "shell", "connect", "http"]), None, "two edits of three letters");
        assert_eq!(closest("evn", ["env", "args"]).as_deref(), Some("env"));
    }

    #[test]
    fn display_names_file_line_program_and_field() {
        let text = "x\ny\n";
        let mut c = Collector::new(Path::new("warren.toml"), text);
        c.push(
            Some(2..3),
            &Section::Program("api".into()),
            Some("restart"),
            ErrorKind::UnknownRestart("sometimes".into()),
        );
        c.push(None, &Section::File, None, ErrorKind::NoPrograms);
        let errors = c.finish().expect("two errors");
        assert_eq!(
            errors.to_string(),
            "warren.toml: no programs (add a [programs.NAME] table)\n\
             warren.toml:2: program \"api\", field \"restart\": unknown policy \"sometimes\" (expected never, on-failure, always)"
        );
    }
}
