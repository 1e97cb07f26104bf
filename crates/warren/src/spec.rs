//! What to start, and how to treat it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use warren_rpc::{Protocol, Transport};

use crate::signal::Signal;

/// How the host learns that a child is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The child sends `READY=1` to `$NOTIFY_SOCKET` (what `warren::plugin::serve` does, and
    /// what programs written for systemd `Type=notify` do).
    Notify,
    /// Ready as soon as it is started (for programs that say nothing).
    Started,
    /// Ready once a line of its stdout or stderr matches this regular expression.
    LogLine(String),
}

/// A child program to start.
#[derive(Debug, Clone)]
#[must_use]
pub struct Spec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) name: String,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) clear_env: bool,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) readiness: Readiness,
    pub(crate) rpc: bool,
    pub(crate) protocol: Protocol,
    pub(crate) transport: Transport,
    pub(crate) socket: Option<PathBuf>,
    pub(crate) ready_timeout: Duration,
    pub(crate) stop_signal: Signal,
    pub(crate) max_line: usize,
    pub(crate) limits: crate::Limits,
    pub(crate) identity: Option<crate::Identity>,
    pub(crate) listen: Vec<crate::listen::Passed>,
    pub(crate) slot: Option<String>,
}

impl Spec {
    /// A child running `program`, named after the program's file name. By default it is a warren
    /// plugin: it serves RPC on the endpoint the host picks and says `READY=1`.
    pub fn new(program: impl Into<PathBuf>) -> Spec {
        let program = program.into();
        let name =
            program.file_name().map_or_else(|| program.display().to_string(), |n| n.to_string_lossy().into_owned());
        Spec {
            program,
            args: Vec::new(),
            name,
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            readiness: Readiness::Notify,
            rpc: true,
            protocol: Protocol::Binary,
            transport: Transport::Socket,
            socket: None,
            ready_timeout: Duration::from_secs(10),
            stop_signal: Signal::TERM,
            max_line: 64 * 1024,
            limits: crate::Limits::default(),
            identity: None,
            listen: Vec::new(),
            slot: None,
        }
    }

    /// The name used in the host's log and in errors.
    pub fn name(mut self, name: impl Into<String>) -> Spec {
        self.name = name.into();
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Spec {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Spec {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable (computed for the child; the host's own environment is
    /// never modified).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Spec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the child with only the variables given by [`env`](Self::env) plus warren's own.
    pub fn clear_env(mut self) -> Spec {
        self.clear_env = true;
        self
    }

    /// The child's working directory (default: the host's).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Spec {
        self.cwd = Some(dir.into());
        self
    }

    /// How the child says it is ready (default: [`Readiness::Notify`]).
    pub fn readiness(mut self, readiness: Readiness) -> Spec {
        self.readiness = readiness;
        self
    }

    /// Whether the child serves warren RPC on the endpoint passed in `WARREN_ENDPOINT`
    /// (default true). Without it there is no client and stopping starts with the stop signal.
    pub fn rpc(mut self, rpc: bool) -> Spec {
        self.rpc = rpc;
        self
    }

    /// The protocol the child serves on its endpoint (default [`Protocol::Binary`], what
    /// `warren::plugin::serve` speaks). [`Protocol::JsonRpc`] is for a child that speaks
    /// newline-delimited JSON-RPC, typically one written in another language
    /// (`docs/ANY-LANGUAGE.md`): the host's client then talks to it in that protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Spec {
        self.protocol = protocol;
        self
    }

    /// Whether the host's connection to the child may move to shared memory (default
    /// [`Transport::Socket`]: never). Used by the host's client, and passed to the child as
    /// `WARREN_RPC_TRANSPORT` (`auto` or `shm`) for `warren::plugin::serve`'s server. Only the
    /// binary protocol, with a child of the host's uid, ever moves; see `docs/PROTOCOL.md` §19.
    pub fn transport(mut self, transport: Transport) -> Spec {
        self.transport = transport;
        self
    }

    /// A socket the child binds itself, at a path of its own choosing (relative to its `cwd`),
    /// instead of the endpoint in `WARREN_ENDPOINT`: an unmodified Go `net/rpc` server that
    /// listens on `rpc.sock`. The host removes a stale file there before each start (never
    /// one that accepts connections) and the file after the child stops, and with `rpc` calls
    /// the child there.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Spec {
        self.socket = Some(path.into());
        self
    }

    /// How long to wait for readiness before giving up (default 10 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Spec {
        self.ready_timeout = timeout;
        self
    }

    /// The polite signal for children without RPC, and the second step for those with it
    /// (default SIGTERM).
    pub fn stop_signal(mut self, signal: Signal) -> Spec {
        self.stop_signal = signal;
        self
    }

    /// Longest line kept whole in the log; longer ones are split and marked (default 64 KiB).
    pub fn max_line(mut self, bytes: usize) -> Spec {
        self.max_line = bytes;
        self
    }

    /// Resource limits, applied through the child's cgroup; where there is none (or it lacks a
    /// controller), the child runs without them: [`Host::limits_unavailable`](crate::Host::limits_unavailable)
    /// says whether and why, for the caller to tell its user.
    pub fn limits(mut self, limits: crate::Limits) -> Spec {
        self.limits = limits;
        self
    }

    /// Runs the child as this user, groups included (the host must be root).
    pub fn identity(mut self, identity: crate::Identity) -> Spec {
        self.identity = Some(identity);
        self
    }

    /// Sockets passed to the child as systemd's socket activation passes them: fds 3, 4, …,
    /// `LISTEN_FDS`, `LISTEN_PID` (the child's own pid) and `LISTEN_FDNAMES` (these names).
    /// The caller keeps its descriptors, so the sockets outlive the child.
    pub fn listen(mut self, sockets: Vec<crate::listen::Passed>) -> Spec {
        self.listen = sockets;
        self
    }

    /// Lets this child run beside another of the same name (a rolling restart's new instance
    /// beside the old one): its files in the runtime directory (RPC and notify sockets) are
    /// named after `slot` instead, and only two children of one slot are refused.
    pub fn slot(mut self, slot: impl Into<String>) -> Spec {
        self.slot = Some(slot.into());
        self
    }

    /// The transport its RPC connection asks for: [`Transport::Socket`] unless it serves the
    /// binary protocol (JSON-RPC and gob never move).
    pub(crate) fn rpc_transport(&self) -> Transport {
        if self.rpc && matches!(self.protocol, Protocol::Binary) { self.transport } else { Transport::Socket }
    }

    /// What the child's runtime files are named after: its slot, else its name.
    pub(crate) fn slot_name(&self) -> &str {
        self.slot.as_deref().unwrap_or(&self.name)
    }

    /// The program to run.
    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// The child's name.
    pub fn get_name(&self) -> &str {
        &self.name
    }
}
