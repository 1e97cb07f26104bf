//! `warren export systemd`: one service unit per program (and a socket unit per `listen`
//! entry) and a target for the whole file, for
//! handing a stack to systemd (as `foreman export` and `pm2 startup` do). What systemd cannot
//! express — readiness by a log line or a probe, health checks, exponential backoff — is
//! written into the unit as a comment and returned as a note, never dropped silently.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use warren::supervise::plan::{Condition, Invocation, Plan, Program, ReadyCheck, Restart, RestartMode};

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub file_name: String,
    pub text: String,
    /// What warren does for this program that the unit cannot (also in the unit, as comments).
    pub notes: Vec<String>,
}

/// How the units are meant to be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `systemctl --user`: the target is wanted by `default.target`.
    User,
    /// The system manager: wanted by `multi-user.target`.
    System,
}

/// The units for `plan`, read from `config`; `project` prefixes every unit's name.
pub fn units(plan: &Plan, config: &Path, project: &str, scope: Scope) -> Vec<Unit> {
    let project = unit_name_part(project);
    let mut units = Vec::new();
    // `autostart = false`: started by hand (`systemctl start`), so not wanted by the target.
    let mut wants = Vec::new();
    for program in plan.programs() {
        let sockets = sockets(program, config, &project);
        let socket_names: Vec<String> = sockets.iter().map(|unit| unit.file_name.clone()).collect();
        let service = service(program, config, &project, &socket_names);
        if program.autostart {
            wants.push(service.file_name.clone());
        }
        units.push(service);
        units.extend(sockets);
    }
    let wanted_by = match scope {
        Scope::User => "default.target",
        Scope::System => "multi-user.target",
    };
    let mut text = header(config);
    let _ = writeln!(text, "[Unit]\nDescription=warren: every program of {}", config.display());
    let _ = writeln!(text, "Wants={}\n\n[Install]\nWantedBy={wanted_by}", wants.join(" "));
    units.push(Unit { file_name: format!("{project}.target"), text, notes: Vec::new() });
    units
}

/// The project name for a configuration: its directory's name.
pub fn project_of(config: &Path) -> String {
    let absolute = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let dir = absolute.parent().and_then(Path::file_name).map(|name| name.to_string_lossy().into_owned());
    dir.filter(|name| !name.is_empty()).unwrap_or_else(|| "warren".to_owned())
}

fn header(config: &Path) -> String {
    format!("# Made by `warren export systemd` from {}: edit that file and export again.\n", config.display())
}

/// A socket unit per `listen` entry: systemd holds the socket across the service's restarts
/// and passes it as warren does (`LISTEN_FDS`, `LISTEN_FDNAMES` from `FileDescriptorName=`).
fn sockets(program: &Program, config: &Path, project: &str) -> Vec<Unit> {
    let service = format!("{project}-{}.service", unit_name_part(&program.name));
    let base = program.cwd.clone().or_else(|| config.parent().map(Path::to_path_buf)).unwrap_or_default();
    let mut units: Vec<Unit> = Vec::new();
    for (i, entry) in program.listen.iter().enumerate() {
        let mut file_name =
            format!("{project}-{}-{}.socket", unit_name_part(&program.name), unit_name_part(&entry.name));
        if units.iter().any(|unit| unit.file_name == file_name) {
            file_name =
                format!("{project}-{}-{}-{}.socket", unit_name_part(&program.name), unit_name_part(&entry.name), i + 1);
        }
        let mut text = header(config);
        let _ = writeln!(text, "[Unit]\nDescription={}'s socket {} (warren: {project})", program.name, entry.address);
        let _ = writeln!(text, "PartOf={project}.target\n\n[Socket]");
        match (entry.address.strip_prefix("tcp:"), entry.address.strip_prefix("unix:")) {
            (Some(host_port), _) => {
                let _ = writeln!(text, "ListenStream={host_port}");
            }
            (_, Some(path)) => {
                let path = base.join(path);
                let _ = writeln!(text, "ListenStream={}", path.display());
                let _ = writeln!(text, "SocketMode={:04o}", entry.mode.unwrap_or(0o600));
            }
            _ => {}
        }
        let _ = writeln!(text, "FileDescriptorName={}\nService={service}", entry.name);
        if program.autostart {
            let _ = write!(text, "\n[Install]\nWantedBy={project}.target\n");
        }
        units.push(Unit { file_name, text, notes: Vec::new() });
    }
    units
}

fn service(program: &Program, config: &Path, project: &str, sockets: &[String]) -> Unit {
    let name = |program: &str| format!("{project}-{}.service", unit_name_part(program));
    let mut notes = Vec::new();
    let mut unit = String::from("[Unit]\n");
    let _ = writeln!(unit, "Description={} (warren: {project})", program.name);
    let _ = writeln!(unit, "PartOf={project}.target");
    for socket in sockets {
        let _ = writeln!(unit, "Requires={socket}\nAfter={socket}");
    }
    if program.restart_mode == RestartMode::Rolling {
        notes.push(
            "restarts rolling (the new instance ready before the old one stops); systemd stops, then starts \
             (connections wait in the socket's queue meanwhile)"
                .to_owned(),
        );
    }
    for dependency in &program.depends_on {
        let other = name(&dependency.name);
        let _ = writeln!(unit, "Requires={other}\nAfter={other}");
        match dependency.condition {
            Condition::Started | Condition::Ready => {}
            Condition::Healthy => notes.push(format!(
                "waits until {} is healthy; systemd orders it only after {} is ready",
                dependency.name, dependency.name
            )),
            Condition::ExitedOk => notes.push(format!(
                "waits until {} has exited with code 0; make that unit Type=oneshot for systemd to do the same",
                dependency.name
            )),
        }
    }
    let crash_loop = program.crash_loop;
    let _ = writeln!(unit, "StartLimitIntervalSec={}", seconds(crash_loop.window));
    let _ = writeln!(unit, "StartLimitBurst={}", crash_loop.max_starts);

    let mut service = String::from("[Service]\n");
    let kind = match &program.readiness {
        ReadyCheck::Notify => "notify",
        ReadyCheck::None => "exec",
        ReadyCheck::LogLine(pattern) => {
            notes.push(format!("ready when a line matches {pattern:?}; systemd counts it ready once started"));
            "exec"
        }
        ReadyCheck::Exec { .. } => {
            notes.push("ready when its ready command succeeds; systemd counts it ready once started".to_owned());
            "exec"
        }
        ReadyCheck::Connect { endpoint, .. } => {
            notes.push(format!("ready when {endpoint} accepts a connection; systemd counts it ready once started"));
            "exec"
        }
        ReadyCheck::Http { probe, .. } => {
            notes.push(format!("ready when GET {} answers; systemd counts it ready once started", probe.url));
            "exec"
        }
    };
    let _ = writeln!(service, "Type={kind}");
    let _ = writeln!(service, "ExecStart={}", exec_start(&program.command));
    if !sockets.is_empty() {
        let _ = writeln!(service, "Sockets={}", sockets.join(" "));
    }
    if let Some(cwd) = &program.cwd {
        let _ = writeln!(service, "WorkingDirectory={}", quote(&cwd.to_string_lossy()));
    }
    for (key, value) in &program.env {
        let _ = writeln!(service, "Environment={}", quote(&format!("{key}={value}")));
    }
    let restart = match program.restart {
        Restart::Never => "no",
        Restart::OnFailure => "on-failure",
        Restart::Always => "always",
    };
    let _ = writeln!(service, "Restart={restart}");
    let backoff = program.backoff;
    let _ = writeln!(service, "RestartSec={}", seconds(backoff.initial));
    if program.restart != Restart::Never && backoff.factor > 1.0 {
        notes.push(format!(
            "restarts back off from {} by ×{} up to {}; systemd 252 waits RestartSec each time",
            humantime::format_duration(backoff.initial),
            backoff.factor,
            humantime::format_duration(backoff.max)
        ));
    }
    let _ = writeln!(service, "TimeoutStopSec={}", seconds(program.grace));
    if program.readiness == ReadyCheck::Notify {
        let _ = writeln!(service, "TimeoutStartSec={}", seconds(program.ready_timeout));
    }
    let _ = writeln!(service, "KillSignal={}", program.stop_signal);
    if let Some(identity) = &program.identity {
        let _ = writeln!(service, "User={}", identity.user);
        if let Some(group) = &identity.group {
            let _ = writeln!(service, "Group={group}");
        }
    }
    let limits = program.limits;
    if let Some(bytes) = limits.memory_max {
        let _ = writeln!(service, "MemoryMax={bytes}");
    }
    if let Some(percent) = limits.cpu_max {
        let _ = writeln!(service, "CPUQuota={percent}%");
    }
    if let Some(count) = limits.pids_max {
        let _ = writeln!(service, "TasksMax={count}");
    }
    if program.health.is_some() {
        notes.push("has a health check, which systemd does not run".to_owned());
    }
    if program.rpc {
        notes.push(
            "serves RPC to warren's host (WARREN_ENDPOINT and friends); under systemd nothing gives it an endpoint"
                .to_owned(),
        );
    }

    let mut text = header(config);
    for note in &notes {
        let _ = writeln!(text, "# warren: {note}");
    }
    let _ = write!(text, "{unit}\n{service}");
    if program.autostart {
        let _ = write!(text, "\n[Install]\nWantedBy={project}.target\n");
    }
    Unit { file_name: name(&program.name), text, notes }
}

/// `ExecStart=`: an absolute program (systemd 252 wants one) and each argument quoted.
fn exec_start(command: &Invocation) -> String {
    match command {
        Invocation::Exec { program, args } => {
            let program = resolve(program);
            let mut line = quote(&program.to_string_lossy());
            for arg in args {
                line.push(' ');
                line.push_str(&quote(arg));
            }
            line
        }
        Invocation::Shell(script) => format!("/bin/sh -c {}", quote(script)),
    }
}

/// A bare program name as the PATH of the exporting user finds it; as given if not found.
fn resolve(program: &Path) -> PathBuf {
    if program.components().count() > 1 || program.is_absolute() {
        return program.to_path_buf();
    }
    which::which(program).unwrap_or_else(|_| program.to_path_buf())
}

/// One word for systemd: double-quoted when needed, with `\`, `"`, `%` (specifiers) and `$`
/// (variable expansion in ExecStart) escaped so that it arrives as written.
fn quote(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c));
    if plain && escaped == word { escaped } else { format!("\"{escaped}\"") }
}

/// Characters a unit name may hold; anything else becomes `_`.
fn unit_name_part(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect()
}

/// A time span systemd reads: whole milliseconds.
fn seconds(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_arrive_as_written() {
        assert_eq!(quote("plain-word"), "plain-word");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("100% $HOME \"q\" a\\b"), "\"100%% $$HOME \\\"q\\\" a\\\\b\"");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn unit_names_keep_only_what_systemd_allows() {
        assert_eq!(unit_name_part("my app/1"), "my_app_1");
        assert_eq!(unit_name_part("web-2.x"), "web-2.x");
    }
}
