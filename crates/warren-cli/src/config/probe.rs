//! The values of `ready` and `health`: a word, or a probe table (a log line, a command, an
//! endpoint to connect to, a URL to GET) with its timing.

use std::time::Duration;

use toml::Spanned;
use warren::supervise::plan::{Health, HealthCheck, HttpProbe, Invocation, ReadyCheck};

use super::checker::Checker;
use super::error::ErrorKind;
use super::raw::{DurationText, Field, RawHealth, RawReady, StringOr};
use super::settings::Ready;

/// How often a readiness probe is tried when `interval` is not given.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Health check timing when not given (Kubernetes' probe defaults).
const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
const HEALTH_FAILURES: u32 = 3;

impl Checker<'_, '_> {
    /// An `exec = [...]` or `shell = "..."` probe (the caller made sure one is set).
    fn probe_command(&mut self, exec: &Field<Vec<String>>, shell: &Field<String>, table: &str) -> Option<Invocation> {
        if let Some(shell) = shell {
            return self.shell(shell, &format!("{table}.shell"));
        }
        let exec = exec.as_ref()?;
        let Some((first, args)) = exec.get_ref().split_first() else {
            return self.fail(exec, &format!("{table}.exec"), ErrorKind::EmptyCommand);
        };
        let program = self.executable(&Spanned::new(exec.span(), first.clone()), &format!("{table}.exec"))?;
        Some(Invocation::Exec { program, args: args.to_vec() })
    }

    pub(super) fn ready(&mut self, raw: &Spanned<StringOr<RawReady>>) -> Option<Ready> {
        let table = match raw.get_ref() {
            StringOr::String(word) => {
                return match word.as_str() {
                    "none" => Some(Ready::Plain(ReadyCheck::None)),
                    "notify" => Some(Ready::Plain(ReadyCheck::Notify)),
                    "warren" => Some(Ready::Warren),
                    other => self.fail(raw, "ready", ErrorKind::UnknownReadiness(other.to_owned())),
                };
            }
            StringOr::Table(table) => table,
        };
        let chosen = [
            table.log.is_some(),
            table.exec.is_some(),
            table.shell.is_some(),
            table.connect.is_some(),
            table.http.is_some(),
        ];
        if chosen.iter().filter(|&&c| c).count() != 1 {
            return self.fail(raw, "ready", ErrorKind::ProbeChoice("log, exec, shell, connect, http"));
        }
        if table.http.is_none() {
            if let Some(status) = &table.status {
                return self.fail(status, "ready.status", ErrorKind::StatusWithoutHttp);
            }
            if let Some(timeout) = &table.timeout {
                return self.fail(timeout, "ready.timeout", ErrorKind::TimeoutWithoutHttp);
            }
        }
        if let Some(log) = &table.log {
            if let Some(interval) = &table.interval {
                return self.fail(interval, "ready.interval", ErrorKind::IntervalWithLog);
            }
            return self.regex(log).map(ReadyCheck::LogLine).map(Ready::Plain);
        }
        let interval = match &table.interval {
            Some(_) => self.duration(&table.interval, "ready.interval", true)?.value,
            None => PROBE_INTERVAL,
        };
        let readiness = if let Some(url) = &table.http {
            let probe = self.http(url, &table.status, "ready")?;
            let timeout = self.probe_timeout(&table.timeout, "ready.timeout")?;
            ReadyCheck::Http { probe, timeout, interval }
        } else if let Some(endpoint) = &table.connect {
            ReadyCheck::Connect { endpoint: self.endpoint(endpoint, "ready.connect")?, interval }
        } else {
            ReadyCheck::Exec { command: self.probe_command(&table.exec, &table.shell, "ready")?, interval }
        };
        Some(Ready::Plain(readiness))
    }

    fn regex(&mut self, raw: &Spanned<String>) -> Option<String> {
        match regex::Regex::new(raw.get_ref()) {
            Ok(_) => Some(raw.get_ref().clone()),
            Err(err) => {
                // The parser's message spans lines (the pattern, a caret, then "error: ...");
                // the last line says what is wrong.
                let message = err.to_string();
                let last = message.lines().last().unwrap_or_default();
                let reason = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                self.fail(raw, "ready.log", ErrorKind::BadRegex { pattern: raw.get_ref().clone(), reason })
            }
        }
    }

    /// `tcp:HOST:PORT`, `HOST:PORT` (what people write for TCP) or `unix:PATH` (a relative
    /// path is made absolute like any other).
    fn endpoint(&mut self, raw: &Spanned<String>, field: &str) -> Option<String> {
        let text = raw.get_ref();
        let bare_tcp = !text.starts_with("unix:") && !text.contains('/');
        let tcp = text.strip_prefix("tcp:").or(bare_tcp.then_some(text.as_str()));
        if let Some(rest) = tcp
            && let Some((host, port)) = rest.rsplit_once(':')
            && !host.is_empty()
            && port.parse::<u16>().is_ok_and(|port| port != 0)
        {
            return Some(format!("tcp:{rest}"));
        }
        if let Some(path) = text.strip_prefix("unix:")
            && !path.is_empty()
        {
            return Some(format!("unix:{}", self.path(path).display()));
        }
        self.fail(raw, field, ErrorKind::BadEndpoint(text.clone()))
    }

    /// `http = "http://HOST[:PORT]/PATH"` and the `status` that passes (any 2xx if not given).
    fn http(&mut self, url: &Spanned<String>, status: &Field<u16>, table: &str) -> Option<HttpProbe> {
        let text = url.get_ref();
        let host = text.strip_prefix("http://").map(|rest| rest.split(['/', '?']).next().unwrap_or_default());
        if host.is_none_or(str::is_empty) || text.chars().any(char::is_whitespace) {
            return self.fail(url, &format!("{table}.http"), ErrorKind::BadUrl(text.clone()));
        }
        let status = match status {
            Some(raw) if !(100..=599).contains(raw.get_ref()) => {
                return self.fail(raw, &format!("{table}.status"), ErrorKind::BadStatus(*raw.get_ref()));
            }
            Some(raw) => Some(*raw.get_ref()),
            None => None,
        };
        Some(HttpProbe { url: text.clone(), status })
    }

    /// A ready probe's own timeout, [`HEALTH_TIMEOUT`] when not given.
    fn probe_timeout(&mut self, raw: &Field<DurationText>, field: &str) -> Option<Duration> {
        match raw {
            Some(_) => self.duration(raw, field, true).map(|set| set.value),
            None => Some(HEALTH_TIMEOUT),
        }
    }

    /// `Some(None)` for `health = "none"`, which turns off a check set in `[defaults]`.
    pub(super) fn health(&mut self, raw: &Spanned<StringOr<RawHealth>>) -> Option<Option<Health>> {
        let table = match raw.get_ref() {
            StringOr::String(word) if word == "none" => return Some(None),
            StringOr::String(word) => return self.fail(raw, "health", ErrorKind::UnknownHealth(word.clone())),
            StringOr::Table(table) => table,
        };
        let ping = table.rpc_ping.as_ref().is_some_and(|ping| *ping.get_ref());
        let chosen = [ping, table.exec.is_some(), table.shell.is_some(), table.connect.is_some(), table.http.is_some()];
        if chosen.iter().filter(|&&c| c).count() != 1 {
            return self.fail(raw, "health", ErrorKind::ProbeChoice("rpc_ping = true, exec, shell, connect, http"));
        }
        if let (None, Some(status)) = (&table.http, &table.status) {
            return self.fail(status, "health.status", ErrorKind::StatusWithoutHttp);
        }
        let before = self.errors.count();
        let interval = self.duration(&table.interval, "health.interval", true).map_or(HEALTH_INTERVAL, |s| s.value);
        let timeout = self.duration(&table.timeout, "health.timeout", true).map_or(HEALTH_TIMEOUT, |s| s.value);
        let failures = self.count(&table.failures, "health.failures").map_or(HEALTH_FAILURES, |s| s.value);
        let check = if ping {
            HealthCheck::RpcPing
        } else if let Some(url) = &table.http {
            HealthCheck::Http(self.http(url, &table.status, "health")?)
        } else if let Some(endpoint) = &table.connect {
            HealthCheck::Connect(self.endpoint(endpoint, "health.connect")?)
        } else {
            HealthCheck::Exec(self.probe_command(&table.exec, &table.shell, "health")?)
        };
        (self.errors.count() == before).then_some(Some(Health { check, interval, timeout, failures }))
    }
}
