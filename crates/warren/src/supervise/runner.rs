//! Runs a [`Plan`]: feeds the [`Machine`] with what happens to real processes and carries out
//! the actions it returns — spawn, stop, timers — plus readiness probes and health checks.
//!
//! One task owns the machine and the children; everything else (exit watchers, probes, health
//! checks, timers, control requests) talks to it over one channel, so decisions are taken one
//! at a time, in order, without locks around them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info};
use warren_rpc::Client;

use super::machine::{Action, Event, Machine, State, Status};
use super::plan::{self, Command, HealthCheck, Plan, Program};
use crate::child::Child;
use crate::exit::Exit;
use crate::host::Host;
use crate::spec::{Readiness, Spec};

/// What the supervisor reports as it goes, for rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A program changed state; `pid` is set while a process runs for it.
    Changed { name: String, state: State, pid: Option<u32> },
    /// Every program is ready (or completed successfully).
    AllReady,
    /// Everything has stopped.
    AllStopped,
}

/// One program as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramStatus {
    pub name: String,
    pub state: State,
    pub pid: Option<u32>,
    /// How long it has been in its current state.
    pub for_: Duration,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    /// Its socket file went away while it runs (see [`Child::socket_lost`]); shown until it
    /// is restarted, which `on_socket_lost = restart` does at once.
    pub socket_lost: Option<crate::SocketLost>,
}

/// A control request named a program the plan does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no program named {name:?} (known: {known})")]
pub struct UnknownProgram {
    pub name: String,
    pub known: String,
}

enum Input {
    /// From a task working for one instance of a program; stale instances are ignored.
    Instance {
        instance: u64,
        event: Event,
    },
    Control(Event),
}

#[derive(Default)]
struct Shared {
    status: Vec<Status>,
    children: HashMap<String, Child>,
}

/// A running supervisor; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inputs: mpsc::UnboundedSender<Input>,
    shared: Arc<Mutex<Shared>>,
    notices: broadcast::Sender<Notice>,
    finished: watch::Receiver<Option<bool>>,
    names: Arc<Vec<String>>,
    dependencies: Arc<HashMap<String, Vec<String>>>,
    host: Host,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("programs", &self.names).finish()
    }
}

impl Supervisor {
    /// Starts supervising `plan` with `host`'s processes. Subscribe to notices before anything
    /// can happen by passing `notices` (a sender from `broadcast::channel`).
    pub fn start(plan: Plan, host: Host, notices: broadcast::Sender<Notice>) -> Supervisor {
        let (inputs, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (finished_tx, finished) = watch::channel(None);
        let names = Arc::new(plan.programs.iter().map(|p| p.name.clone()).collect());
        let dependencies = Arc::new(
            plan.programs
                .iter()
                .map(|p| (p.name.clone(), p.depends_on.iter().map(|d| d.name.clone()).collect()))
                .collect(),
        );
        let seed = u64::from(std::process::id()) ^ 0x5eed;
        let machine = Machine::new(&plan, Instant::now(), seed);
        let runner = Runner {
            machine,
            host: host.clone(),
            inputs: inputs.clone(),
            shared: Arc::clone(&shared),
            notices: notices.clone(),
            instances: HashMap::new(),
            next_instance: 1,
        };
        tokio::spawn(runner.run(queue, finished_tx));
        Supervisor { inputs, shared, notices, finished, names, dependencies, host }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    fn control(&self, event: Event) {
        let _ = self.inputs.send(Input::Control(event));
    }

    fn check(&self, name: &str) -> Result<(), UnknownProgram> {
        if self.names.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(UnknownProgram { name: name.to_owned(), known: self.names.join(", ") })
        }
    }

    pub fn start_program(&self, name: &str) -> Result<(), UnknownProgram> {
        self.check(name)?;
        self.control(Event::Start { name: name.to_owned() });
        Ok(())
    }

    pub fn stop_program(&self, name: &str) -> Result<(), UnknownProgram> {
        self.check(name)?;
        self.control(Event::Stop { name: name.to_owned() });
        Ok(())
    }

    pub fn restart_program(&self, name: &str) -> Result<(), UnknownProgram> {
        self.check(name)?;
        self.control(Event::Restart { name: name.to_owned() });
        Ok(())
    }

    /// Stops everything, dependents first.
    pub fn shutdown(&self) {
        self.control(Event::Shutdown);
    }

    /// Whether the program waits for others before it starts.
    pub fn has_dependencies(&self, name: &str) -> bool {
        self.dependencies.get(name).is_some_and(|deps| !deps.is_empty())
    }

    /// SIGKILLs every process group now (a second Ctrl-C).
    pub fn kill_all(&self) {
        self.host.kill_all();
    }

    /// Sends `signal` to every running program's process group (Ctrl-Z and `fg`).
    pub fn signal_all(&self, signal: crate::Signal) {
        self.host.signal_all(signal);
    }

    /// The RPC client of a running program that serves RPC.
    pub fn client(&self, name: &str) -> Result<Option<Client>, UnknownProgram> {
        self.check(name)?;
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(shared.children.get(name).and_then(|c| c.try_client().cloned()))
    }

    pub fn status(&self) -> Vec<ProgramStatus> {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        shared
            .status
            .iter()
            .map(|s| {
                let child = shared.children.get(&s.name).filter(|_| s.state.is_active());
                ProgramStatus {
                    name: s.name.clone(),
                    state: s.state.clone(),
                    pid: child.map(Child::pid),
                    for_: now.duration_since(s.since),
                    restarts: s.restarts,
                    last_exit: s.last_exit,
                    socket_lost: child.and_then(Child::socket_lost_now),
                }
            })
            .collect()
    }

    /// Waits until everything has stopped after a shutdown; true if any program failed.
    pub async fn finished(&self) -> bool {
        let mut finished = self.finished.clone();
        match finished.wait_for(Option::is_some).await {
            Ok(failed) => failed.unwrap_or(true),
            Err(_) => true,
        }
    }
}

struct Runner {
    machine: Machine,
    host: Host,
    inputs: mpsc::UnboundedSender<Input>,
    shared: Arc<Mutex<Shared>>,
    notices: broadcast::Sender<Notice>,
    /// The current instance number of each program: events of older instances are stale.
    instances: HashMap<String, u64>,
    next_instance: u64,
}

impl Runner {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Input>, finished: watch::Sender<Option<bool>>) {
        let actions = self.machine.begin(Instant::now());
        self.publish_status();
        if self.execute(actions) {
            let _ = finished.send(Some(self.machine.any_failed()));
            return;
        }
        while let Some(input) = queue.recv().await {
            let event = match input {
                Input::Control(event) => event,
                Input::Instance { instance, event } => {
                    let name = event_name(&event);
                    if self.instances.get(name) != Some(&instance) {
                        debug!(program = name, "stale event ignored: {event:?}");
                        continue;
                    }
                    event
                }
            };
            let actions = self.machine.handle(Instant::now(), event);
            self.publish_status();
            if self.execute(actions) {
                break;
            }
        }
        let _ = finished.send(Some(self.machine.any_failed()));
    }

    fn publish_status(&self) {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner).status = self.machine.status();
    }

    /// Carries out the actions; true once everything has stopped.
    fn execute(&mut self, actions: Vec<Action>) -> bool {
        let mut done = false;
        for action in actions {
            match action {
                Action::Spawn { name } => self.spawn(&name),
                Action::Stop { name } => self.stop(&name),
                Action::SetTimer { name, after, generation } => {
                    let inputs = self.inputs.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = inputs.send(Input::Control(Event::Timer { name, generation }));
                    });
                }
                Action::Changed { name, state } => {
                    let pid = match state.is_active() {
                        true => self
                            .shared
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .children
                            .get(&name)
                            .map(Child::pid),
                        false => None,
                    };
                    let _ = self.notices.send(Notice::Changed { name, state, pid });
                }
                Action::AllReady => {
                    let _ = self.notices.send(Notice::AllReady);
                }
                Action::AllStopped => {
                    let _ = self.notices.send(Notice::AllStopped);
                    done = true;
                }
            }
        }
        done
    }

    fn spawn(&mut self, name: &str) {
        let Some(program) = self.machine.program(name).cloned() else { return };
        let instance = self.next_instance;
        self.next_instance += 1;
        self.instances.insert(name.to_owned(), instance);
        let work = Instance {
            name: name.to_owned(),
            instance,
            inputs: self.inputs.clone(),
            shared: Arc::clone(&self.shared),
            host: self.host.clone(),
        };
        tokio::spawn(work.run(program));
    }

    fn stop(&mut self, name: &str) {
        let Some(grace) = self.machine.program(name).map(|p| p.grace) else { return };
        let child = self.shared.lock().unwrap_or_else(PoisonError::into_inner).children.get(name).cloned();
        if let Some(child) = child {
            // The instance's exit watcher reports the exit; stopping only makes it happen.
            tokio::spawn(async move { child.stop(grace).await });
        }
    }
}

fn event_name(event: &Event) -> &str {
    match event {
        Event::Started { name }
        | Event::StartFailed { name, .. }
        | Event::Ready { name }
        | Event::Exited { name, .. }
        | Event::HealthPassed { name }
        | Event::HealthFailed { name }
        | Event::SocketLost { name }
        | Event::Timer { name, .. }
        | Event::Start { name }
        | Event::Stop { name }
        | Event::Restart { name } => name,
        Event::Shutdown => "",
    }
}

/// The life of one started instance of a program: spawn, readiness, health, exit.
struct Instance {
    name: String,
    instance: u64,
    inputs: mpsc::UnboundedSender<Input>,
    shared: Arc<Mutex<Shared>>,
    host: Host,
}

impl Instance {
    fn send(&self, event: Event) {
        let _ = self.inputs.send(Input::Instance { instance: self.instance, event });
    }

    async fn run(self, program: Program) {
        let child = match self.host.spawn(spec_for(&program)).await {
            Ok(child) => child,
            Err(err) => {
                self.send(Event::StartFailed { name: self.name.clone(), error: crate::error::with_causes(&err) });
                return;
            }
        };
        self.shared.lock().unwrap_or_else(PoisonError::into_inner).children.insert(self.name.clone(), child.clone());
        self.send(Event::Started { name: self.name.clone() });
        let exit = tokio::select! {
            exit = child.wait() => Some(exit),
            ready = wait_ready(&program) => {
                match ready {
                    Ok(()) => {
                        self.send(Event::Ready { name: self.name.clone() });
                        None
                    }
                    Err(why) => {
                        self.send(Event::StartFailed { name: self.name.clone(), error: why });
                        child.kill();
                        None
                    }
                }
            }
        };
        let exit = match exit {
            Some(exit) => exit,
            None => {
                tokio::select! {
                    exit = child.wait() => exit,
                    () = self.check_health(&program, &child) => child.wait().await,
                    () = self.follow_socket(&program, &child) => child.wait().await,
                }
            }
        };
        // Reap, drain the pipes and remove what it left, then report: the next instance may
        // start as soon as the machine hears of this exit.
        child.stop(program.grace).await;
        self.send(Event::Exited { name: self.name.clone(), exit });
    }

    /// Acts on the child's socket file going away, as the program says (the host has logged
    /// it already); never returns, the caller selects on the exit.
    async fn follow_socket(&self, program: &Program, child: &Child) {
        let lost = child.socket_lost().await;
        if program.on_socket_lost == plan::OnSocketLost::Restart {
            info!(program = %self.name, "{lost}: restarting it so that it binds its socket again");
            self.send(Event::SocketLost { name: self.name.clone() });
        }
        std::future::pending().await
    }

    /// Runs the health check until the child exits (the caller selects on that).
    async fn check_health(&self, program: &Program, child: &Child) {
        let Some(health) = &program.health else { return std::future::pending().await };
        let mut ticks = tokio::time::interval(health.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let passed =
                tokio::time::timeout(health.timeout, probe(&health.check, child, program)).await.unwrap_or(false);
            let name = self.name.clone();
            self.send(if passed { Event::HealthPassed { name } } else { Event::HealthFailed { name } });
        }
    }
}

/// What warren's host needs to start `program`.
fn spec_for(program: &Program) -> Spec {
    let spec = match &program.command {
        Command::Exec { program, args } => Spec::new(program).args(args),
        Command::Shell(line) => Spec::new("/bin/sh").args(["-c", line.as_str()]),
    };
    let mut spec = spec
        .name(&program.name)
        .rpc(program.rpc)
        .protocol(program.protocol)
        .ready_timeout(program.ready_timeout)
        .stop_signal(program.stop_signal)
        .readiness(match &program.readiness {
            plan::Readiness::Notify => Readiness::Notify,
            plan::Readiness::LogLine(pattern) => Readiness::LogLine(pattern.clone()),
            _ => Readiness::Started,
        });
    if program.clear_env {
        spec = spec.clear_env();
    }
    for (key, value) in &program.env {
        spec = spec.env(key, value);
    }
    if let Some(dir) = &program.cwd {
        spec = spec.cwd(dir);
    }
    spec
}

/// Waits for the program's readiness condition, bounded by its ready timeout.
async fn wait_ready(program: &Program) -> Result<(), String> {
    let check = async {
        match &program.readiness {
            // The host's spawn already waited for READY=1 or the line.
            plan::Readiness::None | plan::Readiness::Notify | plan::Readiness::LogLine(_) => {}
            plan::Readiness::Exec { command, interval } => {
                poll(*interval, || run_probe(command, program)).await;
            }
            plan::Readiness::Connect { endpoint, interval } => {
                poll(*interval, || connect_probe(endpoint)).await;
            }
        }
    };
    tokio::time::timeout(program.ready_timeout, check)
        .await
        .map_err(|_| format!("not ready within {:?}", program.ready_timeout))
}

async fn poll<F, Fut>(interval: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if probe().await {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

async fn probe(check: &HealthCheck, child: &Child, program: &Program) -> bool {
    match check {
        HealthCheck::RpcPing => match child.try_client() {
            Some(client) => client.ping(Duration::from_secs(3600)).await.is_ok(),
            None => false,
        },
        HealthCheck::Exec(command) => run_probe(command, program).await,
        HealthCheck::Connect(endpoint) => connect_probe(endpoint).await,
    }
}

/// Runs a probe command to completion: exit code 0 passes.
async fn run_probe(command: &Command, program: &Program) -> bool {
    let mut cmd = match command {
        Command::Exec { program, args } => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            cmd
        }
        Command::Shell(line) => {
            let mut cmd = tokio::process::Command::new("/bin/sh");
            cmd.args(["-c", line]);
            cmd
        }
    };
    if let Some(dir) = &program.cwd {
        cmd.current_dir(dir);
    }
    // warren's own NOTIFY_SOCKET (systemd's) is not for its probes: one that says READY=1 there
    // would announce warren ready before its programs are.
    cmd.env_remove("NOTIFY_SOCKET");
    cmd.envs(program.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    cmd.kill_on_drop(true);
    matches!(cmd.status().await, Ok(status) if status.success())
}

async fn connect_probe(endpoint: &str) -> bool {
    match warren_rpc::Endpoint::parse(endpoint) {
        Ok(warren_rpc::Endpoint::Tcp(addr)) => tokio::net::TcpStream::connect(addr.as_str()).await.is_ok(),
        Ok(warren_rpc::Endpoint::Unix(path)) => tokio::net::UnixStream::connect(path).await.is_ok(),
        _ => false,
    }
}
