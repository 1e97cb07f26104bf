//! The keys of one section, parsed, with where each was written; and how a program's own
//! settings and `[defaults]` make up a [`Program`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use warren::Signal;
use warren::supervise::plan::{Health, Invocation, OnSocketLost, Program, Protocol, ReadyCheck, Restart};

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(super) struct Set<T> {
    pub(super) value: T,
    pub(super) span: Range<usize>,
    /// Taken from `[defaults]` rather than the program's own table.
    pub(super) inherited: bool,
}

impl<T> Set<T> {
    pub(super) fn new<R>(raw: &Spanned<R>, value: T) -> Set<T> {
        Set { value, span: raw.span(), inherited: false }
    }

    pub(super) fn own(&self) -> bool {
        !self.inherited
    }
}

/// `ready` before it is split into readiness and `rpc`.
#[derive(Debug, Clone)]
pub(super) enum Ready {
    Plain(ReadyCheck),
    /// Notify, and the program serves RPC.
    Warren,
}

/// The keys of one section that were given (and valid), parsed.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    pub(super) env: Option<Set<BTreeMap<String, String>>>,
    pub(super) clear_env: Option<Set<bool>>,
    pub(super) cwd: Option<Set<PathBuf>>,
    /// `rpc`: `None` inside for `false`, else the protocol served.
    pub(super) rpc: Option<Set<Option<Protocol>>>,
    pub(super) ready: Option<Set<Ready>>,
    pub(super) ready_timeout: Option<Set<Duration>>,
    pub(super) restart: Option<Set<Restart>>,
    pub(super) autostart: Option<Set<bool>>,
    pub(super) initial: Option<Set<Duration>>,
    pub(super) factor: Option<Set<f64>>,
    pub(super) max: Option<Set<Duration>>,
    pub(super) jitter: Option<Set<f64>>,
    pub(super) max_starts: Option<Set<u32>>,
    pub(super) window: Option<Set<Duration>>,
    pub(super) stop_signal: Option<Set<Signal>>,
    pub(super) grace: Option<Set<Duration>>,
    pub(super) health: Option<Set<Option<Health>>>,
    pub(super) watchdog: Option<Set<Duration>>,
    pub(super) on_socket_lost: Option<Set<OnSocketLost>>,
    /// `socket`: a path the program binds itself, relative to its `cwd`.
    pub(super) socket: Option<Set<PathBuf>>,
    pub(super) reset_after: Option<Set<Duration>>,
    pub(super) max_size: Option<Set<u64>>,
    pub(super) keep: Option<Set<u32>>,
    pub(super) user: Option<Set<String>>,
    pub(super) group: Option<Set<String>>,
    pub(super) memory_max: Option<Set<u64>>,
    pub(super) cpu_max: Option<Set<u32>>,
    pub(super) pids_max: Option<Set<u64>>,
    pub(super) restart_mode: Option<Set<warren::supervise::plan::RestartMode>>,
    /// `transport`: whether warren's connection to it may move to shared memory.
    pub(super) transport: Option<Set<warren_rpc::Transport>>,
}

fn or_inherit<T: Clone>(own: Option<Set<T>>, defaults: &Option<Set<T>>) -> Option<Set<T>> {
    own.or_else(|| defaults.clone().map(|set| Set { inherited: true, ..set }))
}

impl Settings {
    /// These settings, with `defaults` filling what they leave out.
    pub(super) fn over(self, defaults: &Settings) -> Settings {
        let env = match (self.env, &defaults.env) {
            (Some(own), Some(inherited)) => {
                let mut merged = inherited.value.clone();
                merged.extend(own.value);
                Some(Set { value: merged, ..own })
            }
            (own, inherited) => or_inherit(own, inherited),
        };
        Settings {
            env,
            clear_env: or_inherit(self.clear_env, &defaults.clear_env),
            cwd: or_inherit(self.cwd, &defaults.cwd),
            rpc: or_inherit(self.rpc, &defaults.rpc),
            ready: or_inherit(self.ready, &defaults.ready),
            ready_timeout: or_inherit(self.ready_timeout, &defaults.ready_timeout),
            restart: or_inherit(self.restart, &defaults.restart),
            autostart: or_inherit(self.autostart, &defaults.autostart),
            initial: or_inherit(self.initial, &defaults.initial),
            factor: or_inherit(self.factor, &defaults.factor),
            max: or_inherit(self.max, &defaults.max),
            jitter: or_inherit(self.jitter, &defaults.jitter),
            max_starts: or_inherit(self.max_starts, &defaults.max_starts),
            window: or_inherit(self.window, &defaults.window),
            stop_signal: or_inherit(self.stop_signal, &defaults.stop_signal),
            grace: or_inherit(self.grace, &defaults.grace),
            health: or_inherit(self.health, &defaults.health),
            watchdog: or_inherit(self.watchdog, &defaults.watchdog),
            on_socket_lost: or_inherit(self.on_socket_lost, &defaults.on_socket_lost),
            socket: or_inherit(self.socket, &defaults.socket),
            reset_after: or_inherit(self.reset_after, &defaults.reset_after),
            max_size: or_inherit(self.max_size, &defaults.max_size),
            keep: or_inherit(self.keep, &defaults.keep),
            user: or_inherit(self.user, &defaults.user),
            group: or_inherit(self.group, &defaults.group),
            memory_max: or_inherit(self.memory_max, &defaults.memory_max),
            cpu_max: or_inherit(self.cpu_max, &defaults.cpu_max),
            pids_max: or_inherit(self.pids_max, &defaults.pids_max),
            restart_mode: or_inherit(self.restart_mode, &defaults.restart_mode),
            transport: or_inherit(self.transport, &defaults.transport),
        }
    }

    /// The program's log rotation: its own keys, else `[defaults]`', else 10 MiB × 5.
    pub(super) fn log_limits(&self) -> super::LogLimits {
        let defaults = super::LogLimits::default();
        super::LogLimits {
            max_size: self.max_size.as_ref().map_or(defaults.max_size, |set| set.value),
            keep: self.keep.as_ref().map_or(defaults.keep, |set| set.value),
        }
    }

    pub(super) fn serves_rpc(&self) -> bool {
        matches!(self.rpc, Some(Set { value: Some(_), .. }))
            || matches!(self.ready, Some(Set { value: Ready::Warren, .. }))
    }

    /// Whether it serves warren's binary protocol, the only one that moves to shared memory.
    pub(super) fn serves_binary_rpc(&self) -> bool {
        self.serves_rpc() && !matches!(self.rpc, Some(Set { value: Some(p), .. }) if p != Protocol::Binary)
    }

    pub(super) fn into_program(self, name: String, command: Invocation) -> Program {
        let mut p = Program::new(name, command);
        p.limits = self.resource_limits();
        p.identity = self.identity();
        let serves_rpc = self.serves_rpc();
        p.rpc = serves_rpc;
        // Inherited from `[defaults]`, it applies to the programs that can use it.
        if let Some(set) = self.transport.as_ref().filter(|_| self.serves_binary_rpc()) {
            p.transport = set.value;
        }
        if let Some(Set { value: Some(protocol), .. }) = self.rpc {
            p.protocol = protocol;
        }
        if let Some(env) = self.env {
            p.env = env.value.into_iter().collect();
        }
        if let Some(set) = self.clear_env {
            p.clear_env = set.value;
        }
        if let Some(cwd) = self.cwd {
            p.cwd = Some(cwd.value);
        }
        if let Some(socket) = self.socket {
            p.socket = Some(socket.value);
        }
        if let Some(ready) = self.ready {
            p.readiness = match ready.value {
                Ready::Plain(readiness) => readiness,
                Ready::Warren => ReadyCheck::Notify,
            };
        }
        let b = &mut p.backoff;
        for (slot, set) in [(&mut b.initial, self.initial), (&mut b.max, self.max)] {
            if let Some(set) = set {
                *slot = set.value;
            }
        }
        for (slot, set) in [(&mut b.factor, self.factor), (&mut b.jitter, self.jitter)] {
            if let Some(set) = set {
                *slot = set.value;
            }
        }
        let durations = [
            (&mut p.ready_timeout, self.ready_timeout),
            (&mut p.crash_loop.window, self.window),
            (&mut p.grace, self.grace),
            (&mut p.reset_after, self.reset_after),
        ];
        for (slot, set) in durations {
            if let Some(set) = set {
                *slot = set.value;
            }
        }
        if let Some(set) = self.max_starts {
            p.crash_loop.max_starts = set.value;
        }
        if let Some(set) = self.restart {
            p.restart = set.value;
        }
        if let Some(set) = self.autostart {
            p.autostart = set.value;
        }
        if let Some(set) = self.stop_signal {
            p.stop_signal = set.value;
        }
        if let Some(set) = self.on_socket_lost {
            p.on_socket_lost = set.value;
        }
        if let Some(set) = self.health {
            p.health = set.value;
        }
        if let Some(set) = self.watchdog {
            p.watchdog = Some(set.value);
        }
        if let Some(set) = self.restart_mode {
            p.restart_mode = set.value;
        }
        p
    }
}
