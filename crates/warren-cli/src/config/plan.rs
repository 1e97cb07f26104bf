//! Phase two, per program: from what the file said to a [`Program`], every value parsed and
//! checked and every default resolved.
//!
//! A key's value is taken from the program's own table, else from `[defaults]`, else from
//! [`Program::new`]. `backoff`, `crash_loop` and `env` merge key by key; `ready` and `health`
//! are replaced whole. A value is checked where it is written: a bad `[defaults]` value is
//! reported once, against `[defaults]`, not once per program.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use warren::Signal;
use warren::supervise::plan::{
    Backoff, Condition, Dependency, Health, HealthCheck, Invocation, OnSocketLost, Program, Protocol, ReadyCheck,
    Restart,
};

use super::checker::Checker;
use super::error::{Collector, ErrorKind, Section};
use super::graph::Origin;
use super::name::valid_name;
use super::raw::{Field, RawDependency, RawFile, RawProgram, RawRpc, RawSection, StringOr};
use super::settings::{Ready, Set, Settings};

/// A program built from its section, with what the dependency check needs to know.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) program: Program,
    pub(crate) log_limits: super::LogLimits,
    pub(crate) origin: Origin,
    /// `replicas`, as written.
    pub(crate) replicas: Field<u32>,
}

/// Builds every program of the file (also the broken ones, marked as such), reporting errors.
pub(crate) fn build(file: &RawFile, base: &Path, errors: &mut Collector<'_>) -> Vec<Built> {
    let before = errors.count();
    let defaults = match &file.defaults {
        Some(RawSection { body: Some(body), .. }) => {
            let mut check = Checker { base, at: Section::Defaults, errors };
            for (field, set) in [
                ("command", span(&body.command)),
                ("shell", span(&body.shell)),
                ("args", span(&body.args)),
                ("depends_on", span(&body.depends_on)),
                ("replicas", span(&body.replicas)),
                ("listen", span(&body.listen)),
            ] {
                if let Some(span) = set {
                    check.report(span, field, ErrorKind::NotInDefaults);
                }
            }
            let settings = check.settings(body);
            check.consistent(&settings);
            settings
        }
        _ => Settings::default(),
    };
    // A `[defaults]` table that did not deserialize was reported already; what it would have
    // given every program is unknown, so checks that depend on it are skipped.
    let defaults_ok = errors.count() == before && file.defaults.as_ref().is_none_or(|d| d.body.is_some());
    file.programs.iter().map(|section| program(section, &defaults, defaults_ok, base, errors)).collect()
}

fn program(
    section: &RawSection,
    defaults: &Settings,
    defaults_ok: bool,
    base: &Path,
    errors: &mut Collector<'_>,
) -> Built {
    let before = errors.count();
    let name = section.name.get_ref().clone();
    let name_span = section.name.span();
    let mut check = Checker { base, at: Section::Program(name.clone()), errors };
    if !valid_name(&name) {
        check.errors.push(Some(name_span.clone()), &check.at, None, ErrorKind::BadName(name.clone()));
    }
    let placeholder = Invocation::Shell(String::new());
    let Some(body) = &section.body else {
        let origin = Origin { ok: false, dependency_spans: Vec::new() };
        let log_limits = super::LogLimits::default();
        return Built { program: Program::new(name, placeholder), log_limits, origin, replicas: None };
    };
    let command = check.command(body, &name_span);
    let (depends_on, dependency_spans) = check.dependencies(&body.depends_on).into_iter().unzip();
    let settings = check.settings(body).over(defaults);
    let dir = settings.cwd.as_ref().map_or(base, |cwd| cwd.value.as_path());
    let listen = body.listen.as_ref().and_then(|raw| check.listen(raw, dir, &name));
    if check.errors.count() == before && defaults_ok {
        check.consistent(&settings);
        check.ping_needs_rpc(&settings);
        check.transport_needs_binary_rpc(&settings);
        check.watchdog_needs_notify(&settings);
        check.ready_not_on_held_socket(&settings, listen.as_deref().unwrap_or_default(), dir);
    }
    let ok = check.errors.count() == before && defaults_ok;
    let log_limits = settings.log_limits();
    let mut program = settings.into_program(name, command.unwrap_or(placeholder));
    program.depends_on = depends_on;
    program.listen = listen.unwrap_or_default();
    Built { program, log_limits, origin: Origin { ok, dependency_spans }, replicas: body.replicas.clone() }
}

fn span<T>(field: &Field<T>) -> Option<Range<usize>> {
    field.as_ref().map(Spanned::span)
}

impl Checker<'_, '_> {
    fn settings(&mut self, raw: &RawProgram) -> Settings {
        let mut s = Settings {
            env: raw.env.as_ref().and_then(|env| self.env(env)),
            clear_env: raw.clear_env.as_ref().map(|clear| Set::new(clear, *clear.get_ref())),
            cwd: raw.cwd.as_ref().map(|cwd| Set::new(cwd, self.path(cwd.get_ref()))),
            rpc: raw.rpc.as_ref().and_then(|rpc| self.rpc(rpc)),
            ready: raw.ready.as_ref().and_then(|ready| Some(Set::new(ready, self.ready(ready)?))),
            ready_timeout: self.duration(&raw.ready_timeout, "ready_timeout", true),
            restart: raw.restart.as_ref().and_then(|restart| self.restart(restart)),
            autostart: raw.autostart.as_ref().map(|autostart| Set::new(autostart, *autostart.get_ref())),
            stop_signal: raw.stop_signal.as_ref().and_then(|signal| self.signal(signal)),
            grace: self.duration(&raw.grace, "grace", false),
            health: raw.health.as_ref().and_then(|health| Some(Set::new(health, self.health(health)?))),
            watchdog: self.duration(&raw.watchdog, "watchdog", true),
            on_socket_lost: raw.on_socket_lost.as_ref().and_then(|raw| self.on_socket_lost(raw)),
            socket: raw.socket.as_ref().map(|socket| Set::new(socket, std::path::PathBuf::from(socket.get_ref()))),
            reset_after: self.duration(&raw.reset_after, "reset_after", false),
            max_size: raw.max_size.as_ref().and_then(|size| match super::logs::parse_size(size.get_ref()) {
                Ok(bytes) => Some(Set::new(size, bytes)),
                Err(reason) => self.fail(size, "max_size", ErrorKind::BadSize { text: size.get_ref().clone(), reason }),
            }),
            keep: self.count(&raw.keep, "keep"),
            restart_mode: raw.restart_mode.as_ref().and_then(|mode| self.restart_mode(mode)),
            transport: raw.transport.as_ref().and_then(|transport| self.transport(transport)),
            ..Settings::default()
        };
        if let Some(backoff) = &raw.backoff {
            let backoff = backoff.get_ref();
            s.initial = self.duration(&backoff.initial, "backoff.initial", false);
            s.max = self.duration(&backoff.max, "backoff.max", false);
            s.factor = backoff.factor.as_ref().and_then(|factor| match *factor.get_ref() {
                f if f.is_finite() && f >= 1.0 => Some(Set::new(factor, f)),
                f => self.fail(factor, "backoff.factor", ErrorKind::FactorBelowOne(f)),
            });
            s.jitter = backoff.jitter.as_ref().and_then(|jitter| match *jitter.get_ref() {
                j if (0.0..=1.0).contains(&j) => Some(Set::new(jitter, j)),
                j => self.fail(jitter, "backoff.jitter", ErrorKind::JitterOutOfRange(j)),
            });
        }
        if let Some(crash_loop) = &raw.crash_loop {
            let crash_loop = crash_loop.get_ref();
            s.max_starts = self.count(&crash_loop.max_starts, "crash_loop.max_starts");
            s.window = self.duration(&crash_loop.window, "crash_loop.window", true);
        }
        self.limits(raw, &mut s);
        s
    }

    /// Checks what only makes sense together, once defaults are merged. A conflict between
    /// two inherited values was reported against `[defaults]` already.
    fn consistent(&mut self, s: &Settings) {
        if let (Some(ready @ Set { value: Ready::Warren, .. }), Some(rpc @ Set { value: None, .. })) =
            (&s.ready, &s.rpc)
        {
            if rpc.own() {
                self.report(rpc.span.clone(), "rpc", ErrorKind::RpcContradiction);
            } else if ready.own() {
                self.report(ready.span.clone(), "ready", ErrorKind::RpcContradiction);
            }
        }
        let defaults = Backoff::default();
        let initial = s.initial.as_ref().map_or(defaults.initial, |set| set.value);
        let max = s.max.as_ref().map_or(defaults.max, |set| set.value);
        if max < initial {
            let kind = ErrorKind::MaxBelowInitial { max, initial };
            match (&s.max, &s.initial) {
                (Some(set), _) if set.own() => self.report(set.span.clone(), "backoff.max", kind),
                (_, Some(set)) if set.own() => self.report(set.span.clone(), "backoff.initial", kind),
                _ => {}
            }
        }
    }

    /// An RPC ping needs an RPC connection, which whether a program serves RPC decides per
    /// program: so this is checked for programs only, even when `health` is inherited.
    fn ping_needs_rpc(&mut self, s: &Settings) {
        if let Some(Set { value: Some(Health { check: HealthCheck::RpcPing, .. }), span, .. }) = &s.health
            && !s.serves_rpc()
        {
            self.report(span.clone(), "health", ErrorKind::PingWithoutRpc);
        }
    }

    /// Only warren's binary protocol moves to shared memory: a program's own `transport` on one
    /// that does not serve it is a mistake (one from `[defaults]` is left to those that do).
    fn transport_needs_binary_rpc(&mut self, s: &Settings) {
        let Some(set @ Set { value, span, .. }) = &s.transport else { return };
        if *value == warren_rpc::Transport::Socket || !set.own() || s.serves_binary_rpc() {
            return;
        }
        let rpc = match &s.rpc {
            Some(Set { value: Some(Protocol::JsonRpc), .. }) => Some("json"),
            Some(Set { value: Some(Protocol::GoGob { http_connect: true }), .. }) => Some("go"),
            Some(Set { value: Some(Protocol::GoGob { http_connect: false }), .. }) => Some("go-plain"),
            _ => None,
        };
        let transport = value.as_str().to_owned();
        self.report(span.clone(), "transport", ErrorKind::TransportNeedsBinaryRpc { transport, rpc });
    }

    /// The keep-alives come on the notify socket, which only `notify` and `warren` give it.
    fn watchdog_needs_notify(&mut self, s: &Settings) {
        let notified = matches!(
            &s.ready,
            Some(Set { value: Ready::Warren | Ready::Plain(warren::supervise::plan::ReadyCheck::Notify), .. })
        );
        if let Some(Set { span, .. }) = &s.watchdog
            && !notified
        {
            self.report(span.clone(), "watchdog", ErrorKind::WatchdogWithoutNotify);
        }
    }

    fn ready_not_on_held_socket(&mut self, s: &Settings, listen: &[warren::listen::Listen], dir: &Path) {
        let Some(Set { value: Ready::Plain(ReadyCheck::Connect { endpoint, .. }), span, .. }) = &s.ready else {
            return;
        };
        // Both sides as the bind would see them: a relative Unix path from the program's directory.
        let held = listen.iter().any(|entry| match entry.address.strip_prefix("unix:") {
            Some(path) => endpoint.strip_prefix("unix:").is_some_and(|ready| Path::new(ready) == dir.join(path)),
            None => *endpoint == entry.address,
        });
        if held {
            self.report(span.clone(), "ready", ErrorKind::ReadyOnHeldSocket(endpoint.clone()));
        }
    }

    fn command(&mut self, raw: &RawProgram, name_span: &Range<usize>) -> Option<Invocation> {
        match (&raw.command, &raw.shell) {
            (Some(command), None) => {
                let program = self.executable(command, "command")?;
                let args = raw.args.as_ref().map(|args| args.get_ref().clone()).unwrap_or_default();
                Some(Invocation::Exec { program, args })
            }
            (None, Some(shell)) => {
                if let Some(args) = &raw.args {
                    return self.fail(args, "args", ErrorKind::ArgsWithShell);
                }
                self.shell(shell, "shell")
            }
            (Some(_), Some(shell)) => self.fail(shell, "shell", ErrorKind::CommandAndShell),
            (None, None) => {
                self.errors.push(Some(name_span.clone()), &self.at, None, ErrorKind::MissingCommand);
                None
            }
        }
    }

    fn env(&mut self, raw: &Spanned<BTreeMap<String, String>>) -> Option<Set<BTreeMap<String, String>>> {
        let before = self.errors.count();
        for (name, value) in raw.get_ref() {
            if name.is_empty() || name.contains(['=', '\0']) {
                self.report(raw.span(), "env", ErrorKind::BadEnvName(name.clone()));
            } else if value.contains('\0') {
                self.report(raw.span(), "env", ErrorKind::NulInEnv(name.clone()));
            }
        }
        (self.errors.count() == before).then(|| Set::new(raw, raw.get_ref().clone()))
    }

    fn rpc(&mut self, raw: &Spanned<RawRpc>) -> Option<Set<Option<Protocol>>> {
        let protocol = match raw.get_ref() {
            RawRpc::Bool(false) => None,
            RawRpc::Bool(true) => Some(Protocol::Binary),
            RawRpc::Protocol(name) => match name.as_str() {
                "warren" => Some(Protocol::Binary),
                "json" => Some(Protocol::JsonRpc),
                // Go's net/rpc with gob: `rpc.HandleHTTP` (the usual Go server), or `rpc.ServeConn`.
                "go" => Some(Protocol::GoGob { http_connect: true }),
                "go-plain" => Some(Protocol::GoGob { http_connect: false }),
                other => return self.fail(raw, "rpc", ErrorKind::UnknownRpc(other.to_owned())),
            },
        };
        Some(Set::new(raw, protocol))
    }

    fn transport(&mut self, raw: &Spanned<String>) -> Option<Set<warren_rpc::Transport>> {
        let Some(transport) = warren_rpc::Transport::from_name(raw.get_ref()) else {
            let unknown = ErrorKind::UnknownTransport(raw.get_ref().clone());
            return self.fail(raw, "transport", unknown);
        };
        Some(Set::new(raw, transport))
    }

    fn restart(&mut self, raw: &Spanned<String>) -> Option<Set<Restart>> {
        let restart = match raw.get_ref().as_str() {
            "never" => Restart::Never,
            "on-failure" => Restart::OnFailure,
            "always" => Restart::Always,
            other => return self.fail(raw, "restart", ErrorKind::UnknownRestart(other.to_owned())),
        };
        Some(Set::new(raw, restart))
    }

    fn on_socket_lost(&mut self, raw: &Spanned<String>) -> Option<Set<OnSocketLost>> {
        let action = match raw.get_ref().as_str() {
            "restart" => OnSocketLost::Restart,
            "report" => OnSocketLost::Report,
            other => return self.fail(raw, "on_socket_lost", ErrorKind::UnknownOnSocketLost(other.to_owned())),
        };
        Some(Set::new(raw, action))
    }

    fn signal(&mut self, raw: &Spanned<String>) -> Option<Set<Signal>> {
        match Signal::parse_stop(raw.get_ref()) {
            Some(signal) => Some(Set::new(raw, signal)),
            None => self.fail(raw, "stop_signal", ErrorKind::UnknownSignal(raw.get_ref().clone())),
        }
    }

    fn dependencies(&mut self, raw: &Field<Vec<Spanned<StringOr<RawDependency>>>>) -> Vec<(Dependency, Range<usize>)> {
        let Some(raw) = raw else { return Vec::new() };
        let mut dependencies = Vec::new();
        for entry in raw.get_ref() {
            let dependency = match entry.get_ref() {
                StringOr::String(name) => Dependency { name: name.clone(), condition: Condition::Ready },
                StringOr::Table(table) => {
                    let condition = match table.condition.as_ref().map(|c| (c, c.get_ref().as_str())) {
                        None | Some((_, "ready")) => Condition::Ready,
                        Some((_, "started")) => Condition::Started,
                        Some((_, "healthy")) => Condition::Healthy,
                        Some((_, "exited_ok")) => Condition::ExitedOk,
                        Some((raw, other)) => {
                            self.report(raw.span(), "depends_on", ErrorKind::UnknownCondition(other.to_owned()));
                            continue;
                        }
                    };
                    Dependency { name: table.name.get_ref().clone(), condition }
                }
            };
            dependencies.push((dependency, entry.span()));
        }
        dependencies
    }
}
